//! Halo stages on a GPU: every output element equals the computation over
//! the whole stream (an oracle written here from the definitions, not the
//! pipeline's references), at every chunk boundary, for K = 1..4, chunk
//! sizes below, equal to and above the halo, a partial last chunk, repeated
//! runs and CUDA graph replay (each run must start from a zero history).
mod common;
use common::Rng;
use kernel_math::{Reduction, produce};
use pc_pipeline::builtin::{fir, moving_average, producer, reduce};
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineError, PipelineSpec, StageRegistry, Workload};
use pc_runtime::gpu::Gpu;

/// `y[i] = sum_j taps[j] * x[i-j]`, x before 0 is 0, added in tap order from 0.0.
fn fir_oracle(taps: &[f32], x: &[f32]) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let mut acc = 0.0f32;
            for (j, &t) in taps.iter().enumerate() {
                acc += t * if j <= i { x[i - j] } else { 0.0 };
            }
            acc
        })
        .collect()
}

/// `(x[i-2] + x[i-1] + x[i]) / 3`, x before 0 is 0.
fn moving_average_oracle(x: &[f32]) -> Vec<f32> {
    let at = |k: isize| if k < 0 { 0.0 } else { x[k as usize] };
    (0..x.len() as isize).map(|i| (at(i - 2) + at(i - 1) + at(i)) / 3.0).collect()
}

const CHUNKS: [u64; 6] = [7, 62, 63, 64, 1000, 4096 + 3];

fn runs_of(launch: Launch) -> usize {
    if launch == Launch::Graph { 3 } else { 2 }
}

/// Runs `list` over `input` for every K, chunk size and launch mode; the
/// host output must equal `want` bit for bit, and verification must pass.
fn check<I: kernel_math::Element>(gpu: &Gpu, stages: &dyn Fn() -> Vec<pc_pipeline::Stage>, name: &str, input: &[I], want: &[f32]) {
    for chunk in CHUNKS {
        // A partial last chunk: 3.5 chunks and 5 elements, at most the input.
        let total = (3 * chunk + chunk / 2 + 5).min(input.len() as u64);
        for k in 1..=4 {
            for launch in [Launch::Streams, Launch::Graph] {
                let label = format!("{name} K={k} chunk={chunk} total={total} {launch:?}");
                let spec = PipelineSpec::new(Workload::Stream).stages(stages()).slots(k).chunk_elements(chunk).total_elements(total);
                let mut p = Pipeline::new(&[gpu], spec, HostInput::from_slice(&input[..total as usize])).unwrap_or_else(|e| panic!("{label}: {e}"));
                let r = p.run(launch, runs_of(launch), false).unwrap_or_else(|e| panic!("{label}: {e}"));
                let v = p.verify(&r);
                assert!(v.passed(), "{label}: {}", v.summary());
                let got = p.output::<f32>().unwrap_or_else(|| panic!("{label}: no f32 output"));
                if let Some(i) = (0..total as usize).find(|&i| got[i].to_bits() != want[i].to_bits()) {
                    panic!("{label}: element {i} (chunk {}, +{}) = {}, want {}", i as u64 / chunk, i as u64 % chunk, got[i], want[i]);
                }
            }
        }
    }
}

fn input_f32(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u64).map(|i| produce(i, seed)).collect()
}

#[test]
#[ignore = "needs a CUDA device"]
fn halo_pipelines_equal_the_whole_stream() {
    let gpu = Gpu::open(0).unwrap();
    let seed = common::seed_from_env();
    eprintln!("seed {seed} (replay with PC_TEST_SEED={seed})");
    let mut rng = Rng(seed);
    let reg = StageRegistry::builtin();
    let n = 3 * 4099 + 4099 / 2 + 5;
    let x = input_f32(n, rng.next() as u32);
    let taps = pc_pipeline::fir::default_taps();

    let reg = &reg;
    let list = |l: &'static str| move || reg.parse(l).unwrap();
    check(&gpu, &list("h2d,fir,d2h"), "h2d,fir,d2h", &x, &fir_oracle(&taps, &x));
    check(&gpu, &list("h2d,moving-average,d2h"), "h2d,moving-average,d2h", &x, &moving_average_oracle(&x));

    let raw: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    let unit: Vec<f32> = raw.iter().map(|&b| b as f32 / 255.0).collect();
    let want = fir_oracle(&taps, &moving_average_oracle(&unit));
    check(&gpu, &list("h2d,u8-to-f32,moving-average,fir,d2h"), "h2d,u8-to-f32,moving-average,fir,d2h", &raw, &want);

    // Other tap counts: one tap (no halo), a few, and more than most chunks.
    for t in [1usize, 5, 200] {
        let taps: Vec<f32> = (0..t).map(|_| produce(rng.next(), 1) * 0.25).collect();
        let stages = || vec![pc_pipeline::Stage::h2d(), fir(taps.clone()).unwrap(), pc_pipeline::Stage::d2h()];
        check(&gpu, &stages, &format!("h2d,fir({t} taps),d2h"), &x, &fir_oracle(&taps, &x));
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn producer_through_halo_stages_into_reduce() {
    let gpu = Gpu::open(0).unwrap();
    let seed = common::seed_from_env() as u32;
    eprintln!("seed {seed} (replay with PC_TEST_SEED={seed})");
    let taps = pc_pipeline::fir::default_taps();
    for chunk in CHUNKS {
        let total = 3 * chunk + chunk / 2 + 5;
        let x: Vec<f32> = (0..total).map(|i| produce(i, seed)).collect();
        let want = moving_average_oracle(&fir_oracle(&taps, &x));
        let records: Vec<Reduction> = want
            .chunks(chunk as usize)
            .map(|c| {
                let mut r = Reduction::EMPTY;
                c.iter().for_each(|&v| r.add(v));
                r
            })
            .collect();
        for k in 1..=4 {
            for launch in [Launch::Streams, Launch::Graph] {
                let label = format!("producer,fir,moving-average,reduce K={k} chunk={chunk} {launch:?}");
                let spec = PipelineSpec::new(Workload::Generate)
                    .stages(vec![producer(), pc_pipeline::builtin::fir_default(), moving_average(), reduce()])
                    .slots(k)
                    .chunk_elements(chunk)
                    .total_elements(total)
                    .seed(seed);
                let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap_or_else(|e| panic!("{label}: {e}"));
                let r = p.run(launch, runs_of(launch), false).unwrap_or_else(|e| panic!("{label}: {e}"));
                assert!(p.verify(&r).passed(), "{label}: {}", p.verify(&r).summary());
                assert_eq!(r.reductions, records, "{label}");
            }
        }
    }
}

/// The serial baseline (one stream, no events) keeps the history right too.
#[test]
#[ignore = "needs a CUDA device"]
fn serial_halo_pipeline_verifies() {
    let gpu = Gpu::open(0).unwrap();
    let reg = StageRegistry::builtin();
    let spec = PipelineSpec::new(Workload::Stream)
        .stages(reg.parse("h2d,fir,moving-average,d2h").unwrap())
        .slots(1)
        .serial(true)
        .chunk_elements(1000)
        .total_elements(10_007);
    let x = input_f32(10_007, 3);
    let mut p = Pipeline::new(&[&gpu], spec, HostInput::from_slice(&x)).unwrap();
    let r = p.run(Launch::Streams, 2, false).unwrap();
    assert!(p.verify(&r).passed());
    let want = moving_average_oracle(&fir_oracle(&pc_pipeline::fir::default_taps(), &x));
    assert!(p.output::<f32>().unwrap().iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
}

/// A halo pipeline over two parts (the same GPU twice, as the multi-GPU
/// test does on a one-GPU machine) is refused with one line; with a single
/// chunk there is one part, which runs.
#[test]
#[ignore = "needs a CUDA device"]
fn a_halo_pipeline_is_not_split_over_gpus() {
    let gpu = Gpu::open(0).unwrap();
    let reg = StageRegistry::builtin();
    let spec = PipelineSpec::new(Workload::Stream).stages(reg.parse("h2d,fir,d2h").unwrap()).chunk_elements(1000).total_elements(5000);
    let e = Pipeline::new(&[&gpu, &gpu], spec.clone(), HostInput::Generated).err().expect("must refuse");
    assert!(matches!(e, PipelineError::HaloSplit { parts: 2, .. }), "{e}");
    assert!(!e.to_string().contains('\n'));
    let mut p = Pipeline::new(&[&gpu, &gpu], spec.total_elements(1000), HostInput::Generated).unwrap();
    let r = p.run(Launch::Streams, 1, false).unwrap();
    assert!(p.verify(&r).passed());
}
