//! Every built-in kernel on a GPU judged by an oracle independent of
//! `kernel_math` (`common/oracle.rs`: plain f64 code from the definitions,
//! proved on the CPU by `tests/oracle.rs`), not by the stage references,
//! which call the same `kernel_math` functions the kernels run. Random
//! inputs, output buffers poisoned by the pipeline before each run, every
//! element checked; sizes that the chunks do not divide, K = 2 and 3, over
//! the stream and graph grains, the flags grain, and on sm_90 the PDL and
//! warps grains. Run with --include-ignored.
use kernel_math::{Reduction, Stereo};
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload, parse_stages};
use pc_runtime::gpu::Gpu;

mod common;
use common::oracle::{self, close};
use common::{Rng, skipped};

const CHUNK: u64 = 10_007;
const TOTAL: u64 = 10_007 * 7 + 33;

fn spec(list: &str, k: usize, seed: u32) -> PipelineSpec {
    let w = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
    PipelineSpec::new(w).stages(parse_stages(list).unwrap()).slots(k).chunk_elements(CHUNK).total_elements(TOTAL).seed(seed)
}

/// Runs `list` over `input` with `launch` and K = `k`; returns the pipeline
/// (its output) and the records.
fn run<'g>(gpu: &'g Gpu, list: &str, k: usize, seed: u32, input: HostInput, launch: Launch) -> (Pipeline<'g>, Vec<Reduction>) {
    let label = format!("{list} K={k} {launch:?}");
    let mut p = Pipeline::new(&[gpu], spec(list, k, seed), input).unwrap_or_else(|e| panic!("{label}: {e}"));
    let r = p.run(launch, 1, false).unwrap_or_else(|e| panic!("{label}: {e}"));
    (p, r.reductions)
}

/// Every element of `got` against `want`, by `ok`; panics naming the first wrong one.
fn check_all<T: std::fmt::Debug + Copy, W: std::fmt::Debug + Copy>(label: &str, got: &[T], want: &[W], ok: impl Fn(usize, T, W) -> bool) {
    assert_eq!(got.len(), want.len(), "{label}: output length");
    let wrong: Vec<usize> = (0..got.len()).filter(|&i| !ok(i, got[i], want[i])).collect();
    if let Some(&i) = wrong.first() {
        panic!("{label}: {} of {} elements wrong; first [{i}] = {:?}, want {:?}", wrong.len(), got.len(), got[i], want[i]);
    }
}

/// The records of each chunk against the oracle record of its values.
fn check_records(label: &str, got: &[Reduction], values: &[f64]) {
    let chunks: Vec<&[f64]> = values.chunks(CHUNK as usize).collect();
    assert_eq!(got.len(), chunks.len(), "{label}: records");
    for (c, (r, v)) in got.iter().zip(chunks).enumerate() {
        if let Some(why) = oracle::record_differs(r, &oracle::record(v.iter().copied())) {
            panic!("{label}: chunk {c}: {why}");
        }
    }
}

fn f32s(rng: &mut Rng, n: u64) -> Vec<f32> {
    // Multiples of 2^-22 in [-5, 5): exact in the reduce's fixed point, every bin hit.
    (0..n).map(|_| (rng.below(10 << 22) as i64 - (5 << 22)) as f32 / 4_194_304.0).collect()
}

#[test]
#[ignore = "needs a CUDA device"]
fn maps_match_the_independent_oracle() {
    let gpu = Gpu::open(0).unwrap();
    let seed = common::seed();
    let mut rng = Rng(seed as u64);
    for k in [2, 3] {
        for launch in [Launch::Streams, Launch::Graph] {
            let x = f32s(&mut rng, TOTAL);
            let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let (p, _) = run(&gpu, "h2d,consumer,d2h", k, seed, HostInput::from_slice(&x), launch);
            let want: Vec<f64> = xs.iter().map(|&v| oracle::consume(v)).collect();
            check_all(&format!("consumer K={k} {launch:?}"), p.output::<f32>().unwrap(), &want, |_, g, w| g as f64 == w);

            let (p, _) = run(&gpu, "h2d,moving-average,d2h", k, seed, HostInput::from_slice(&x), launch);
            let want = oracle::moving_average(&xs);
            let scale = oracle::moving_average(&xs.iter().map(|v| v.abs()).collect::<Vec<_>>());
            check_all(&format!("moving-average K={k} {launch:?}"), p.output::<f32>().unwrap(), &want, |i, g, w| close(g, w, scale[i], 4.0));

            let taps: Vec<f64> = pc_pipeline::fir::default_taps().iter().map(|&t| t as f64).collect();
            let (p, _) = run(&gpu, "h2d,fir,d2h", k, seed, HostInput::from_slice(&x), launch);
            let (want, scale) = (oracle::fir(&taps, &xs), oracle::fir_scale(&taps, &xs));
            check_all(&format!("fir K={k} {launch:?}"), p.output::<f32>().unwrap(), &want, |i, g, w| close(g, w, scale[i], 2.0 * taps.len() as f64));

            let bytes: Vec<u8> = (0..TOTAL).map(|_| rng.next() as u8).collect();
            let (p, _) = run(&gpu, "h2d,u8-to-f32,d2h", k, seed, HostInput::from_slice(&bytes), launch);
            let want: Vec<f64> = bytes.iter().map(|&b| oracle::unit_from_u8(b)).collect();
            check_all(&format!("u8-to-f32 K={k} {launch:?}"), p.output::<f32>().unwrap(), &want, |_, g, w| close(g, w, w, 1.0));

            let stereo: Vec<Stereo> = (0..TOTAL).map(|_| rng.next()).map(|r| Stereo { left: r as i16, right: (r >> 16) as i16 }).collect();
            let (p, _) = run(&gpu, "h2d,stereo-to-mono,d2h", k, seed, HostInput::from_slice(&stereo), launch);
            let want: Vec<f64> = stereo.iter().map(|s| oracle::mono(s.left, s.right)).collect();
            check_all(&format!("stereo-to-mono K={k} {launch:?}"), p.output::<f32>().unwrap(), &want, |_, g, w| g as f64 == w);

            let words: Vec<u32> = (0..TOTAL).map(|_| rng.next() as u32).collect();
            let (p, _) = run(&gpu, "h2d,mix-u32,d2h", k, seed, HostInput::from_slice(&words), launch);
            let want: Vec<u32> = words.iter().map(|&w| oracle::hash(w)).collect();
            check_all(&format!("mix-u32 K={k} {launch:?}"), p.output::<u32>().unwrap(), &want, |_, g, w| g == w);

            let mut ints: Vec<i32> = words.iter().map(|&w| w as i32).collect();
            ints[3] = i32::MIN;
            let (p, _) = run(&gpu, "h2d,abs-i32,d2h", k, seed, HostInput::from_slice(&ints), launch);
            let want: Vec<i32> = ints.iter().map(|&v| oracle::abs_i32(v)).collect();
            check_all(&format!("abs-i32 K={k} {launch:?}"), p.output::<i32>().unwrap(), &want, |_, g, w| g == w);

            let doubles: Vec<f64> = x.iter().map(|&v| v as f64 * 1e100).collect();
            let (p, _) = run(&gpu, "h2d,double-f64,d2h", k, seed, HostInput::from_slice(&doubles), launch);
            let want: Vec<f64> = doubles.iter().map(|&v| v * 2.0).collect();
            check_all(&format!("double-f64 K={k} {launch:?}"), p.output::<f64>().unwrap(), &want, |_, g, w| g == w);
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn the_producer_and_reduce_match_the_independent_oracle() {
    let gpu = Gpu::open(0).unwrap();
    let seed = common::seed();
    let mut rng = Rng(seed as u64);
    let produced: Vec<f64> = (0..TOTAL).map(|i| oracle::produce(i, seed)).collect();
    let consumed: Vec<f64> = produced.iter().map(|&v| oracle::consume(v)).collect();
    for k in [2, 3] {
        for launch in [Launch::Streams, Launch::Graph, Launch::Flags] {
            let label = format!("K={k} {launch:?}");
            let (_, records) = run(&gpu, "producer,consumer,reduce", k, seed, HostInput::Generated, launch);
            check_records(&format!("producer,consumer,reduce {label}"), &records, &consumed);
            if launch != Launch::Flags {
                let (_, records) = run(&gpu, "producer,reduce", k, seed, HostInput::Generated, launch);
                check_records(&format!("producer,reduce {label}"), &records, &produced);
                let x = f32s(&mut rng, TOTAL);
                let (_, records) = run(&gpu, "h2d,reduce", k, seed, HostInput::from_slice(&x), launch);
                check_records(&format!("h2d,reduce {label}"), &records, &x.iter().map(|&v| v as f64).collect::<Vec<_>>());
            }
        }
    }
}

/// The sm_90 grains' own kernels (PDL: producer, consumer, reduce; warps:
/// the ring's consumer, reduce and fir).
#[test]
#[ignore = "needs a CUDA device"]
fn the_hopper_grains_match_the_independent_oracle() {
    let gpu = Gpu::open(0).unwrap();
    if gpu.info().compute_capability < (9, 0) {
        skipped!(
            "the_hopper_grains_match_the_independent_oracle",
            "the PDL and warps grains need sm_90, GPU 0 is sm_{}{}",
            gpu.info().compute_capability.0,
            gpu.info().compute_capability.1
        );
        return;
    }
    let seed = common::seed();
    let mut rng = Rng(seed as u64);
    let consumed: Vec<f64> = (0..TOTAL).map(|i| oracle::consume(oracle::produce(i, seed))).collect();
    for k in [2, 3] {
        for launch in [Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps] {
            let (_, records) = run(&gpu, "producer,consumer,reduce", k, seed, HostInput::Generated, launch);
            check_records(&format!("producer,consumer,reduce K={k} {launch:?}"), &records, &consumed);
        }
        // A longer chain than the generate pipeline: every stage by its
        // form (PDL: any chain of PDL forms; warps: each stage with one).
        let twice: Vec<f64> = consumed.iter().map(|&v| oracle::consume(v)).collect();
        for launch in [Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps] {
            let (_, records) = run(&gpu, "producer,consumer,consumer,reduce", k, seed, HostInput::Generated, launch);
            check_records(&format!("producer,consumer,consumer,reduce K={k} {launch:?}"), &records, &twice);
        }
        let x = f32s(&mut rng, TOTAL);
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let (p, _) = run(&gpu, "h2d,consumer,d2h", k, seed, HostInput::from_slice(&x), Launch::Warps);
        let want: Vec<f64> = xs.iter().map(|&v| oracle::consume(v)).collect();
        check_all(&format!("warps consumer K={k}"), p.output::<f32>().unwrap(), &want, |_, g, w| g as f64 == w);
        let taps: Vec<f64> = pc_pipeline::fir::default_taps().iter().map(|&t| t as f64).collect();
        let (p, _) = run(&gpu, "h2d,fir,d2h", k, seed, HostInput::from_slice(&x), Launch::Warps);
        let (want, scale) = (oracle::fir(&taps, &xs), oracle::fir_scale(&taps, &xs));
        check_all(&format!("warps fir K={k}"), p.output::<f32>().unwrap(), &want, |i, g, w| close(g, w, scale[i], 2.0 * taps.len() as f64));
    }
}
