//! Oracles of the kernels' math independent of `kernel_math`: plain f64 (or
//! integer) code written here from the definitions in kernel-math's docs,
//! calling none of its functions, so a GPU test judged by them does not
//! judge a kernel by the very function it runs. `tests/oracle.rs` proves
//! them against `kernel_math` on the CPU (which also guards kernel_math).
//! Halo stages are computed over the whole stream (zeros before its start).
#![allow(dead_code)]

/// lowbias32 (C. Wellons): xor-shift 16, multiply 0x7feb352d, xor-shift 15,
/// multiply 0x846ca68b, xor-shift 16, all mod 2^32.
pub fn hash(x: u32) -> u32 {
    let mut x = x as u64;
    x ^= x >> 16;
    x = (x * 0x7feb_352d) & 0xffff_ffff;
    x ^= x >> 15;
    x = (x * 0x846c_a68b) & 0xffff_ffff;
    x ^= x >> 16;
    x as u32
}

/// The producer's value of element `i`: the top 23 bits of
/// `hash(lo(i) ^ hash(hi(i) ^ seed))` as the fraction of a number `u` in
/// [1, 2), then `2u - 3`, in [-1, 1).
pub fn produce(i: u64, seed: u32) -> f64 {
    let h = hash(i as u32 ^ hash((i >> 32) as u32 ^ seed));
    let u = 1.0 + (h >> 9) as f64 / (1u64 << 23) as f64;
    2.0 * u - 3.0
}

/// The consumer: doubling.
pub fn consume(x: f64) -> f64 {
    2.0 * x
}

/// The 3-point causal moving average of a whole stream, zeros before it.
pub fn moving_average(x: &[f64]) -> Vec<f64> {
    let at = |i: usize, back: usize| if i >= back { x[i - back] } else { 0.0 };
    (0..x.len()).map(|i| (at(i, 2) + at(i, 1) + at(i, 0)) / 3.0).collect()
}

/// A causal FIR over a whole stream: `y[i] = sum_j taps[j] * x[i - j]`,
/// zeros before it.
pub fn fir(taps: &[f64], x: &[f64]) -> Vec<f64> {
    (0..x.len()).map(|i| taps.iter().enumerate().filter(|&(j, _)| j <= i).map(|(j, t)| t * x[i - j]).sum()).collect()
}

/// The same FIR's scale for a tolerance: `sum_j |taps[j] * x[i - j]|`.
pub fn fir_scale(taps: &[f64], x: &[f64]) -> Vec<f64> {
    (0..x.len()).map(|i| taps.iter().enumerate().filter(|&(j, _)| j <= i).map(|(j, t)| (t * x[i - j]).abs()).sum()).collect()
}

/// A u8 sample in [0, 1]: `x / 255`.
pub fn unit_from_u8(x: u8) -> f64 {
    x as f64 / 255.0
}

/// The mean of a stereo sample's two i16 channels.
pub fn mono(left: i16, right: i16) -> f64 {
    (left as f64 + right as f64) / 2.0
}

/// The absolute value, with i32::MIN (whose absolute value does not fit) kept.
pub fn abs_i32(x: i32) -> i32 {
    if x == i32::MIN {
        x
    } else if x < 0 {
        -x
    } else {
        x
    }
}

/// Whether an f32 result is within `ulps` roundings of the exact `want`,
/// relative to `scale` (the sum of the magnitudes added): each rounded
/// operation is off by at most half an f32 ulp of what it adds up.
pub fn close(got: f32, want: f64, scale: f64, ulps: f64) -> bool {
    (got as f64 - want).abs() <= ulps * f32::EPSILON as f64 * scale.max(f32::MIN_POSITIVE as f64)
}

/// A reduce record from its definition: the sum, smallest and largest
/// value, element count, and counts in 16 bins of width 0.5 over [-4, 4)
/// (the outer bins open).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
    pub hist: [u32; 16],
}

pub fn record(values: impl IntoIterator<Item = f64>) -> Record {
    let mut r = Record { sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY, count: 0, hist: [0; 16] };
    for v in values {
        r.sum += v;
        r.min = r.min.min(v);
        r.max = r.max.max(v);
        r.count += 1;
        r.hist[((v + 4.0) / 0.5).floor().clamp(0.0, 15.0) as usize] += 1;
    }
    r
}

/// Where `got` differs from the record of its definition, in words. The
/// sum is compared exactly: its fixed point (2^-22 units) holds values of
/// the producer, their doublings and any multiple of 2^-22 exactly; min
/// and max through the record's decoding.
pub fn record_differs(got: &kernel_math::Reduction, want: &Record) -> Option<String> {
    let sum = got.sum_fixed as f64 / 4_194_304.0;
    let count: u64 = got.hist.iter().map(|&c| c as u64).sum();
    let same =
        sum == want.sum && count == want.count && got.hist == want.hist && (want.count == 0 || (got.min() as f64 == want.min && got.max() as f64 == want.max));
    (!same).then(|| {
        format!(
            "got sum {sum} min {} max {} count {count} hist {:?}, want sum {} min {} max {} count {} hist {:?}",
            got.min(),
            got.max(),
            got.hist,
            want.sum,
            want.min,
            want.max,
            want.count,
            want.hist
        )
    })
}
