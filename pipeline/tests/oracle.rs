//! The GPU tests' independent oracles (`common/oracle.rs`) against
//! `kernel_math`, on random inputs, within the tolerance the GPU tests use:
//! an oracle that is wrong would pass or fail kernels for the wrong reason,
//! and a `kernel_math` that drifts from its documented definition fails here.
mod common;
use common::Rng;
use common::oracle;
use kernel_math::Reduction;

fn f32_in(rng: &mut Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * (rng.next() >> 40) as f32 / (1u64 << 24) as f32
}

#[test]
fn exact_maps_match_bit_for_bit() {
    let mut rng = Rng(common::seed_from_env());
    for _ in 0..20_000 {
        let (i, seed, w) = (rng.next() >> rng.below(64), rng.next() as u32, rng.next() as u32);
        assert_eq!(oracle::hash(w), kernel_math::hash32(w), "hash {w}");
        assert_eq!(oracle::hash(w), kernel_math::mix_u32(w));
        let p = kernel_math::produce(i, seed);
        assert_eq!(oracle::produce(i, seed), p as f64, "produce({i}, {seed})");
        assert_eq!(oracle::consume(p as f64), kernel_math::consume(p) as f64);
        let b = w as u8;
        assert_eq!(kernel_math::unit_from_u8(b), oracle::unit_from_u8(b) as f32, "u8 {b}: one rounding of the exact quotient");
        let (l, r) = (w as i16, (w >> 16) as i16);
        assert_eq!(kernel_math::mono(kernel_math::Stereo { left: l, right: r }) as f64, oracle::mono(l, r));
        assert_eq!(kernel_math::abs_i32(w as i32), oracle::abs_i32(w as i32));
        let d = f64::from_bits(rng.next() & !(0x7ffu64 << 52) | (0x3ffu64 << 52));
        assert_eq!(kernel_math::double_f64(d), 2.0 * d);
    }
    assert_eq!(oracle::abs_i32(i32::MIN), kernel_math::abs_i32(i32::MIN));
}

#[test]
fn halo_maps_agree_within_the_tolerance() {
    let mut rng = Rng(common::seed_from_env());
    let x: Vec<f32> = (0..5000).map(|_| f32_in(&mut rng, -3.0, 3.0)).collect();
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    // Moving average over the whole stream, history zeros.
    let want = oracle::moving_average(&xs);
    for i in 0..x.len() {
        let at = |b: usize| if i >= b { x[i - b] } else { 0.0 };
        let m = kernel_math::moving_average3(at(2), at(1), at(0));
        let scale = (at(2).abs() + at(1).abs() + at(0).abs()) as f64 / 3.0;
        assert!(oracle::close(m, want[i], scale, 4.0), "moving average [{i}]: {m} vs {}", want[i]);
    }
    // The FIR with random taps, in pieces with the last T - 1 as history.
    let taps: Vec<f32> = (0..17).map(|_| f32_in(&mut rng, -1.0, 1.0)).collect();
    let t64: Vec<f64> = taps.iter().map(|&t| t as f64).collect();
    let (want, scale) = (oracle::fir(&t64, &xs), oracle::fir_scale(&t64, &xs));
    let mut hist = vec![0.0f32; taps.len() - 1];
    for (n, chunk) in x.chunks(777).enumerate() {
        let mut out = vec![0.0f32; chunk.len()];
        kernel_math::fir(&taps, &hist, chunk, &mut out);
        for (k, &o) in out.iter().enumerate() {
            let i = n * 777 + k;
            assert!(oracle::close(o, want[i], scale[i], 2.0 * taps.len() as f64), "fir [{i}]: {o} vs {}", want[i]);
        }
        let joined: Vec<f32> = hist.iter().chain(chunk).copied().collect();
        hist = joined[joined.len() - hist.len()..].to_vec();
    }
}

#[test]
fn reduce_records_agree() {
    let mut rng = Rng(common::seed_from_env());
    for n in [0usize, 1, 2, 100, 4099] {
        // Multiples of 2^-22 over [-6, 6): every bin, the open outer ones too.
        let values: Vec<f32> = (0..n).map(|_| (rng.below(12 << 22) as i64 - (6 << 22)) as f32 / 4_194_304.0).collect();
        let mut r = Reduction::EMPTY;
        values.iter().for_each(|&v| r.add(v));
        let want = oracle::record(values.iter().map(|&v| v as f64));
        assert_eq!(oracle::record_differs(&r, &want), None, "{n} values");
        if n > 1 {
            let mut off = r;
            off.hist[(rng.below(16)) as usize] += 1;
            assert!(oracle::record_differs(&off, &want).is_some(), "a wrong bin must show");
            let mut off = r;
            off.sum_fixed += 1;
            assert!(oracle::record_differs(&off, &want).is_some(), "a wrong sum must show");
        }
    }
}
