//! Halo stages without a GPU: the CPU reference of every chunk of a
//! pipeline with halo stages (fir, moving-average) must equal the
//! computation over the whole stream, for chunk sizes below, equal to and
//! above the halo. The whole-stream oracles are written here from the
//! definitions, not with the reference code under test.
use kernel_math::produce;
use pc_pipeline::builtin::{d2h, fir, fir_default, h2d, moving_average, producer, reduce};
use pc_pipeline::reference::{expected_chunk, expected_chunk_from, verify};
use pc_pipeline::{PipelineError, PipelineSpec, Stage, StageRegistry, Workload};

/// Whole-stream causal FIR: `y[i] = sum_j taps[j] * x[i-j]`, x before 0 is
/// 0, added for j = 0, 1, .. from 0.0 as `acc + tap * x`.
fn fir_oracle(taps: &[f32], x: &[f32]) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let mut acc = 0.0f32;
            for (j, &t) in taps.iter().enumerate() {
                let v = if j <= i { x[i - j] } else { 0.0 };
                acc += t * v;
            }
            acc
        })
        .collect()
}

/// Whole-stream causal 3-point mean: `(x[i-2] + x[i-1] + x[i]) / 3`.
fn moving_average_oracle(x: &[f32]) -> Vec<f32> {
    let at = |k: isize| if k < 0 { 0.0 } else { x[k as usize] };
    (0..x.len() as isize).map(|i| (at(i - 2) + at(i - 1) + at(i)) / 3.0).collect()
}

fn bytes<T: Copy>(v: &[T]) -> Vec<u8> {
    // SAFETY: f32 and u8 have no padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }.to_vec()
}

fn random_f32(n: usize, salt: u32) -> Vec<f32> {
    (0..n as u64).map(|i| produce(i, salt)).collect()
}

/// Taps whose rounding shows any change of order: mixed signs and scales.
fn odd_taps(t: usize) -> Vec<f32> {
    (0..t as u64).map(|j| produce(j, 77) * if j % 3 == 0 { 1000.0 } else { 0.001 }).collect()
}

const CHUNKS: [u64; 8] = [1, 2, 7, 61, 62, 63, 64, 1000];

/// Every chunk of `spec` (h2d .. d2h over `input`) against `want`, bit for
/// bit, and `verify` passes on `want` as the output.
fn check_stream<I: Copy>(spec: &PipelineSpec, input: &[I], want: &[f32]) {
    let label = format!("{:?} chunk {} total {}", spec.stages, spec.chunk_elements, spec.total_elements);
    let inb = bytes(input);
    for c in 0..spec.chunks() {
        let got = expected_chunk(spec, c, Some(&inb)).unwrap_or_else(|e| panic!("{label}: chunk {c}: {e}"));
        let r = spec.chunk_range(c);
        let got = got.view::<f32>().unwrap();
        let want = &want[r.start as usize..r.end as usize];
        if let Some(i) = (0..want.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
            panic!("{label}: chunk {c} element {i} (global {}): {} want {}", r.start as usize + i, got[i], want[i]);
        }
        assert_eq!(got.len(), want.len(), "{label}: chunk {c}");
    }
    let v = verify(spec, Some(&inb), Some(&bytes(want)), &[]);
    assert!(v.passed(), "{label}: {}", v.summary());
}

#[test]
fn fir_chunks_equal_the_whole_stream_filter() {
    for taps in [odd_taps(63), fir_default_taps(), vec![0.5], odd_taps(2), odd_taps(200)] {
        for chunk in CHUNKS {
            let total = 3 * chunk + chunk / 2 + 1;
            let x = random_f32(total as usize, 5);
            let spec = PipelineSpec::new(Workload::Stream).stages(vec![h2d(), fir(taps.clone()).unwrap(), d2h()]).chunk_elements(chunk).total_elements(total);
            check_stream(&spec, &x, &fir_oracle(&taps, &x));
        }
    }
}

fn fir_default_taps() -> Vec<f32> {
    pc_pipeline::fir::default_taps()
}

#[test]
fn halo_stages_in_series_equal_the_whole_stream() {
    // h2d, u8-to-f32, moving-average, fir, d2h: two halos (2 + 62).
    let reg = StageRegistry::builtin();
    let taps = fir_default_taps();
    for chunk in CHUNKS.into_iter().chain([4096 + 3]) {
        let total = 2 * chunk + 3 + chunk / 3;
        let raw: Vec<u8> = (0..total).map(|i| kernel_math::hash32(i as u32) as u8).collect();
        let x: Vec<f32> = raw.iter().map(|&b| b as f32 / 255.0).collect();
        let want = fir_oracle(&taps, &moving_average_oracle(&x));
        let stages = reg.parse("h2d,u8-to-f32,moving-average,fir,d2h").unwrap();
        let spec = PipelineSpec::new(Workload::Stream).stages(stages).chunk_elements(chunk).total_elements(total);
        assert_eq!(spec.halo(), 64);
        check_stream(&spec, &raw, &want);
        // And the other order, with a map between.
        let want = moving_average_oracle(&fir_oracle(&taps, &x).iter().map(|v| v * 2.0).collect::<Vec<_>>());
        let stages = reg.parse("h2d,u8-to-f32,fir,consumer,moving-average,d2h").unwrap();
        let spec = PipelineSpec::new(Workload::Stream).stages(stages).chunk_elements(chunk).total_elements(total);
        check_stream(&spec, &raw, &want);
    }
}

#[test]
fn producer_through_halo_stages_into_reduce() {
    let taps = fir_default_taps();
    for chunk in [7u64, 62, 63, 64, 1000] {
        let total = 5 * chunk - 3;
        let seed = 11;
        let x: Vec<f32> = (0..total).map(|i| produce(i, seed)).collect();
        let want = moving_average_oracle(&fir_oracle(&taps, &x));
        let spec = PipelineSpec::new(Workload::Generate)
            .stages(vec![producer(), fir_default(), moving_average(), reduce()])
            .chunk_elements(chunk)
            .total_elements(total)
            .seed(seed);
        for c in 0..spec.chunks() {
            let r = spec.chunk_range(c);
            let got = expected_chunk(&spec, c, None).unwrap();
            assert_eq!(got.view::<f32>().unwrap(), &want[r.start as usize..r.end as usize], "chunk {chunk}: chunk {c}");
        }
        let records: Vec<_> = (0..spec.chunks())
            .map(|c| {
                let r = spec.chunk_range(c);
                let mut red = kernel_math::Reduction::EMPTY;
                want[r.start as usize..r.end as usize].iter().for_each(|&v| red.add(v));
                red
            })
            .collect();
        assert!(verify(&spec, None, None, &records).passed());
    }
}

/// A caller that keeps only a tail of the input (a streaming executor) gets
/// asked only for the chunk and the halo before it.
#[test]
fn expected_chunk_from_asks_only_for_the_halo_before_the_chunk() {
    let reg = StageRegistry::builtin();
    let spec = PipelineSpec::new(Workload::Stream).stages(reg.parse("h2d,moving-average,fir,d2h").unwrap()).chunk_elements(100).total_elements(1000);
    let x = random_f32(1000, 9);
    let all = bytes(&x);
    let want = fir_oracle(&fir_default_taps(), &moving_average_oracle(&x));
    for c in 0..spec.chunks() {
        let chunk = spec.chunk_range(c);
        let asked = std::cell::RefCell::new(Vec::new());
        let host_at = |r: std::ops::Range<u64>| -> Result<&[u8], String> {
            asked.borrow_mut().push(r.clone());
            Ok(&all[r.start as usize * 4..r.end as usize * 4])
        };
        let got = expected_chunk_from(&spec, c, chunk.clone(), &host_at).unwrap();
        assert_eq!(got.view::<f32>().unwrap(), &want[chunk.start as usize..chunk.end as usize]);
        assert_eq!(*asked.borrow(), vec![chunk.start.saturating_sub(64)..chunk.end], "chunk {c}");
    }
    // HostInput the caller no longer has is an error, not a guess.
    let gone = |_: std::ops::Range<u64>| -> Result<&[u8], String> { Err("dropped".into()) };
    assert_eq!(expected_chunk_from(&spec, 3, spec.chunk_range(3), &gone).unwrap_err(), "dropped");
}

#[test]
fn stages_report_their_halo() {
    let reg = StageRegistry::builtin();
    let halo = |n: &str| reg.parse_one(n).unwrap().halo();
    assert_eq!((halo("moving-average"), halo("fir"), halo("consumer"), halo("h2d"), halo("reduce")), (2, 62, 0, 0, 0));
    let spec = PipelineSpec::new(Workload::Stream).stages(reg.parse("h2d,consumer,d2h").unwrap());
    assert_eq!(spec.halo(), 0);
}

#[test]
fn a_halo_pipeline_is_not_split_over_gpus() {
    let reg = StageRegistry::builtin();
    let spec = PipelineSpec::new(Workload::Stream).stages(reg.parse("h2d,fir,d2h").unwrap());
    let e = spec.check_split(2).unwrap_err();
    assert!(matches!(e, PipelineError::HaloSplit { .. }));
    assert_eq!(
        e.to_string(),
        "stage fir reads 62 element(s) before each chunk (a halo), which only its own GPU keeps; it cannot run split over 2 GPUs: use one GPU"
    );
    assert!(spec.check_split(1).is_ok());
    let plain = PipelineSpec::new(Workload::Stream);
    assert!(plain.check_split(8).is_ok());
}

#[test]
fn a_user_halo_stage_from_a_kernel() {
    // The built-in moving average's kernel with a reference of a user's:
    // Stage::halo_map takes the element types from the kernel.
    fn reference(history: &[f32], input: &[f32], output: &mut [f32]) {
        let x: Vec<f32> = history.iter().chain(input).copied().collect();
        output.iter_mut().enumerate().for_each(|(i, o)| *o = kernel_math::moving_average3(x[i], x[i + 1], x[i + 2]));
    }
    let s = Stage::halo_map::<ptx_kernels::MovingAverageKernel>("mine", ptx_kernels::PTX, 2, reference);
    assert_eq!(s.halo(), 2);
    assert!(s.about().contains("halo 2"), "{}", s.about());
    let x = random_f32(500, 3);
    let spec = PipelineSpec::new(Workload::Stream).stages(vec![h2d(), s, d2h()]).chunk_elements(1).total_elements(500);
    check_stream(&spec, &x, &moving_average_oracle(&x));
}
