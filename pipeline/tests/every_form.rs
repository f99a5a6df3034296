//! A map stage of yours that runs at every grain: its kernels and one
//! registration ([`square`] below), through the public API alone. The
//! kernels are kernels-gpu's `square_kernel` (streams, graph) and
//! `square_flags_kernel` (flags), kernels-hopper's `pdl_square_kernel`
//! (PDL, plain and graph) and `ring_square_kernel` (warps), each
//! `kernel_math::square` per element, which the CPU reference uses too.
//!
//! On the simulated device (CI) the stage runs at every grain of
//! [`LAUNCHES`] and verifies; without its forms the flags, PDL and warps
//! grains refuse it. On a GPU (`--include-ignored`) it runs at every grain
//! over random inputs, every element or record compared with the CPU
//! reference; and a form that computes something else fails verification
//! at its grain, so the grain really ran that form.
use pc_pipeline::sim::SimPipeline;
use pc_pipeline::{HostInput, LAUNCHES, Launch, Pipeline, PipelineSpec, Stage, StageRegistry, Workload};
use pc_runtime::gpu::Gpu;
use ptx_kernels::hopper;

mod common;
use common::{seed, skipped};

/// The CPU reference: the same `kernel_math::square` as every kernel.
fn reference(input: &[f32], output: &mut [f32]) {
    output.iter_mut().zip(input).for_each(|(o, &x)| *o = kernel_math::square(x));
}

/// The stage: its streams kernel and reference, then one form per grain
/// that needs more than the streams kernel.
fn square() -> Stage {
    Stage::map::<ptx_kernels::SquareKernel>("square", ptx_kernels::PTX, reference)
        .with_flags_map::<ptx_kernels::SquareFlagsKernel>(ptx_kernels::PTX)
        .with_pdl_map::<hopper::PdlSquareKernel>(hopper::PTX)
        .with_warps_map::<hopper::RingSquareKernel>(hopper::PTX)
}

/// A stage of the PDL grains whose kernel has run-time parameters around
/// a fault knob and a spin (`pdl_affine_kernel`): each value must reach its
/// own place in the launch.
fn affine(scale: f32, offset: f32) -> Stage {
    use hopper::{PdlAffineKernel, PdlAffineKernelParams};
    let reference = |p: &PdlAffineKernelParams, input: &[f32], output: &mut [f32]| {
        output.iter_mut().zip(input).for_each(|(o, &x)| *o = kernel_math::affine(x, p.scale, p.offset))
    };
    Stage::map_with::<PdlAffineKernel>("affine", hopper::PTX, PdlAffineKernelParams { scale, offset }, reference)
        .with_pdl_map_with::<PdlAffineKernel>(hopper::PTX, PdlAffineKernelParams { scale, offset })
}

/// A stage of a 12-byte element, whose size does not divide 16, with its
/// warps form (`ring_reverse3_kernel`): the ring's bulk copies move whole
/// 16-byte units only.
fn reverse3() -> Stage {
    let reference = |input: &[[f32; 3]], output: &mut [[f32; 3]]| output.iter_mut().zip(input).for_each(|(o, &x)| *o = kernel_math::reverse3(x));
    Stage::map::<ptx_kernels::Reverse3Kernel>("reverse3", ptx_kernels::PTX, reference).with_warps_map::<hopper::RingReverse3Kernel>(hopper::PTX)
}

/// `list` of built-in stages with `square`, `affine` (scale 1.5, offset
/// -0.25) and `reverse3` at their names.
fn spec(list: &str, k: usize, chunk: u64, total: u64, seed: u32) -> PipelineSpec {
    let builtin = StageRegistry::builtin();
    let stage = |name: &str| match name {
        "square" => square(),
        "affine" => affine(1.5, -0.25),
        "reverse3" => reverse3(),
        _ => builtin.parse_one(name).unwrap(),
    };
    let stages = list.split(',').map(stage).collect();
    let workload = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
    PipelineSpec::new(workload).stages(stages).slots(k).chunk_elements(chunk).total_elements(total).seed(seed)
}

/// Pipelines with the stage: generate chains and a stream.
const PIPELINES: [&str; 3] = ["producer,square,reduce", "producer,square,consumer,square,reduce", "h2d,square,d2h"];

/// Whether `launch` runs `list`: every grain runs the generate chains;
/// the flags and PDL grains run no copies, so not the stream.
fn runs_at(list: &str, launch: Launch) -> bool {
    !(list.starts_with("h2d") && matches!(launch, Launch::Flags | Launch::Pdl { .. }))
}

/// Every grain of the table accepts the stage; with only its streams
/// kernel the grains that need a form refuse it, naming it.
#[test]
fn every_grain_accepts_a_stage_with_every_form() {
    let mut ran = Vec::new();
    for list in PIPELINES {
        for launch in LAUNCHES {
            let s = spec(list, 3, 1000, 10_000, 1);
            assert_eq!(s.check_launch(launch).is_ok(), runs_at(list, launch), "{list} {launch:?}");
            if runs_at(list, launch) {
                ran.push(launch);
            }
        }
    }
    assert!(LAUNCHES.iter().all(|l| ran.contains(l)), "some grain runs none of {PIPELINES:?}");
    // Where the built-in consumer runs, a user's stage runs.
    for list in PIPELINES {
        for launch in LAUNCHES {
            let consumer = spec(&list.replace("square", "consumer"), 3, 1000, 10_000, 1).check_launch(launch).is_ok();
            assert_eq!(consumer, runs_at(list, launch), "{list} with the consumer, {launch:?}");
        }
    }
    let s = square();
    assert!(s.flag_form().is_some() && s.pdl_form().is_some() && s.warp_form().is_some());
    let plain = || Stage::map::<ptx_kernels::SquareKernel>("square", ptx_kernels::PTX, reference);
    let builtin = StageRegistry::builtin();
    let stages = vec![builtin.parse_one("producer").unwrap(), plain(), builtin.parse_one("reduce").unwrap()];
    let s = PipelineSpec::new(Workload::Generate).stages(stages);
    for launch in [Launch::Flags, Launch::Pdl { graph: false }] {
        let e = s.check_launch(launch).unwrap_err().to_string();
        assert!(e.contains("square") && !e.contains('\n'), "{launch:?}: {e}");
    }
    // The warps grain runs what has a form and leaves the rest to its
    // stream kernel: the built-in consumer has one, so only a pipeline of
    // the plain stage alone is refused.
    let alone = PipelineSpec::new(Workload::Stream).stages(vec![builtin.parse_one("h2d").unwrap(), plain(), builtin.parse_one("d2h").unwrap()]);
    assert!(alone.check_launch(Launch::Warps).unwrap_err().to_string().contains("h2d,square,d2h"));
}

/// The other two stages run where their forms say: `affine` at every grain
/// but flags (warps runs it by its stream kernel beside the reduce's ring),
/// `reverse3` at streams, graph and warps; both verify on the simulated
/// device.
#[test]
fn stages_of_other_shapes_run_at_their_grains_on_the_simulated_device() {
    for (list, grains) in [
        ("producer,affine,reduce", &[Launch::Streams, Launch::Graph, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps][..]),
        ("h2d,reverse3,d2h", &[Launch::Streams, Launch::Graph, Launch::Warps][..]),
    ] {
        for launch in LAUNCHES {
            let s = spec(list, 2, 37, 301, 3);
            assert_eq!(s.check_launch(launch).is_ok(), grains.contains(&launch), "{list} {launch:?}");
            if grains.contains(&launch) {
                let mut p = SimPipeline::new(s, HostInput::Generated).unwrap();
                let r = p.run(launch, 2).unwrap_or_else(|e| panic!("{list} {launch:?}: {e}"));
                assert!(p.verify(&r).passed(), "{list} {launch:?}");
            }
        }
    }
}

/// On the simulated device the stage runs and verifies at every grain,
/// over several scheduler seeds, K and sizes that do not divide.
#[test]
fn the_stage_runs_at_every_grain_on_the_simulated_device() {
    for list in PIPELINES {
        for launch in LAUNCHES.into_iter().filter(|&l| runs_at(list, l)) {
            for (k, chunk, total) in [(1, 64, 640), (2, 37, 300), (4, 100, 1001)] {
                for seed in 0..3 {
                    let what = format!("{list} {launch:?} K={k} chunk={chunk} total={total} seed={seed}");
                    let mut p = SimPipeline::new(spec(list, k, chunk, total, seed as u32 + 7), HostInput::Generated).unwrap().scheduler_seed(seed);
                    let r = p.run(launch, 2).unwrap_or_else(|e| panic!("{what}: {e}"));
                    let v = p.verify(&r);
                    assert!(v.passed(), "{what}: {}", v.summary());
                }
            }
        }
    }
}

/// The GPU, or `None` (saying SKIPPED) when it is older than sm_90, which
/// the PDL and warps grains need.
fn hopper_gpu(test: &str) -> Option<Gpu> {
    let gpu = Gpu::open(0).unwrap();
    if gpu.info().compute_capability >= (9, 0) {
        return Some(gpu);
    }
    skipped!(test, "the PDL and warps grains need sm_90; this GPU is {:?}", gpu.info().compute_capability);
    None
}

/// Whether a run of `n` elements fits `PC_TEST_MAX_ELEMENTS` (a cap for
/// runs under compute-sanitizer; none by default).
fn fits(n: u64) -> bool {
    std::env::var("PC_TEST_MAX_ELEMENTS").ok().and_then(|v| v.parse().ok()).is_none_or(|cap: u64| n <= cap)
}

/// On a GPU: the stage at every grain, K = 1..4, sizes that do not divide
/// (and a chunk under one warps tile), random inputs; every chunk verified.
#[test]
#[ignore = "needs a CUDA device"]
fn the_stage_runs_at_every_grain_on_a_gpu() {
    let Some(gpu) = hopper_gpu("the_stage_runs_at_every_grain_on_a_gpu") else { return };
    let seed = seed();
    for list in PIPELINES {
        for launch in LAUNCHES.into_iter().filter(|&l| runs_at(list, l)) {
            for (k, chunk, total) in
                [(1, 1 << 16, (1 << 18) + 5), (2, 1001, 100_003), (3, 1 << 20, (1 << 22) + 3), (4, 5, 23)].into_iter().filter(|s| fits(s.2))
            {
                let what = format!("{list} {launch:?} K={k} chunk={chunk} total={total} seed={seed}");
                let mut p = Pipeline::new(&[&gpu], spec(list, k, chunk, total, seed), HostInput::Generated).unwrap_or_else(|e| panic!("{what}: {e}"));
                for runs in [1, 2] {
                    let r = p.run(launch, runs, false).unwrap_or_else(|e| panic!("{what}: {e}"));
                    let v = p.verify(&r);
                    assert!(v.passed(), "{what} runs={runs}: {}", v.summary());
                    assert_eq!(v.chunks_checked, p.spec().chunks(), "{what}");
                }
            }
        }
    }
}

/// The proof that each grain ran the stage's own form: the same stage with
/// one form swapped for the built-in consumer's (which doubles) fails
/// verification at that grain, and only there.
#[test]
#[ignore = "needs a CUDA device"]
fn a_wrong_form_fails_at_its_grain() {
    let Some(gpu) = hopper_gpu("a_wrong_form_fails_at_its_grain") else { return };
    let seed = seed();
    type Swap = fn(Stage) -> Stage;
    let wrong: [(Launch, Swap); 3] = [
        (Launch::Flags, |s| s.with_flags_map::<ptx_kernels::ConsumerFlagsKernel>(ptx_kernels::PTX)),
        (Launch::Pdl { graph: false }, |s| s.with_pdl_map::<hopper::PdlConsumerKernel>(hopper::PTX)),
        (Launch::Warps, |s| s.with_warps_map::<hopper::RingConsumerKernel>(hopper::PTX)),
    ];
    for (bad_at, swap) in wrong {
        let mut s = spec("producer,square,reduce", 2, 1 << 14, (1 << 18) + 3, seed);
        s.stages[1] = swap(s.stages[1].clone());
        let mut p = Pipeline::new(&[&gpu], s, HostInput::Generated).unwrap();
        for launch in [Launch::Streams, Launch::Graph, Launch::Flags, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps] {
            let r = p.run(launch, 1, false).unwrap_or_else(|e| panic!("{bad_at:?} form, {launch:?}: {e}"));
            // Both PDL grains (launched, captured) run the one PDL form.
            let uses_it = launch == bad_at || matches!((launch, bad_at), (Launch::Pdl { .. }, Launch::Pdl { .. }));
            assert_eq!(p.verify(&r).passed(), !uses_it, "the {bad_at:?} form swapped, run at {launch:?}");
        }
    }
}

/// On a GPU: a PDL map kernel's run-time parameters, fault knob and spin
/// each reach their place (`PdlMapKernel::launch_map_pdl`); and the proof
/// it can fail: the PDL form given other values than the reference fails
/// at the PDL grains only.
#[test]
#[ignore = "needs a CUDA device"]
fn parameters_reach_the_pdl_kernel_in_their_places() {
    let Some(gpu) = hopper_gpu("parameters_reach_the_pdl_kernel_in_their_places") else { return };
    let seed = seed();
    let (scale, offset) = (1.0 + (seed % 7) as f32 / 8.0, -((seed % 5) as f32) / 4.0 - 0.5);
    let pdl = [Launch::Pdl { graph: false }, Launch::Pdl { graph: true }];
    for (k, chunk, total) in [(2, 1 << 14, (1 << 18) + 3), (3, 1001, 100_003)] {
        let mut s = spec("producer,square,reduce", k, chunk, total, seed);
        s.stages[1] = affine(scale, offset);
        let mut p = Pipeline::new(&[&gpu], s.clone(), HostInput::Generated).unwrap();
        for launch in [Launch::Streams, pdl[0], pdl[1]] {
            let r = p.run(launch, 2, false).unwrap_or_else(|e| panic!("{launch:?}: {e}"));
            assert!(p.verify(&r).passed(), "scale {scale} offset {offset} K={k} {launch:?}: {}", p.verify(&r).summary());
        }
        // The PDL form with the offset off by one: its grains fail, the stream kernel's do not.
        s.stages[1] =
            s.stages[1].clone().with_pdl_map_with::<hopper::PdlAffineKernel>(hopper::PTX, hopper::PdlAffineKernelParams { scale, offset: offset + 1.0 });
        let mut p = Pipeline::new(&[&gpu], s, HostInput::Generated).unwrap();
        for launch in [Launch::Streams, pdl[0], pdl[1]] {
            let r = p.run(launch, 1, false).unwrap();
            assert_eq!(p.verify(&r).passed(), launch == Launch::Streams, "the PDL form's values differ, {launch:?}");
        }
    }
}

/// On a GPU: a 12-byte element on the warp ring (bulk copies of whole
/// 16-byte units, the rest read from global memory), every element checked,
/// sizes and K that put tiles at every alignment.
#[test]
#[ignore = "needs a CUDA device"]
fn a_12_byte_element_runs_on_the_warp_ring() {
    let Some(gpu) = hopper_gpu("a_12_byte_element_runs_on_the_warp_ring") else { return };
    let seed = seed();
    for (k, chunk, total) in [(1, 4093, 40_000), (2, 1 << 16, (1 << 18) + 7), (3, 333_333, 1_000_003), (2, 5, 17)].into_iter().filter(|s| fits(s.2)) {
        let mut p = Pipeline::new(&[&gpu], spec("h2d,reverse3,d2h", k, chunk, total, seed), HostInput::Generated).unwrap();
        for launch in [Launch::Streams, Launch::Warps] {
            let r = p.run(launch, 2, false).unwrap_or_else(|e| panic!("K={k} chunk={chunk} {launch:?}: {e}"));
            let v = p.verify(&r);
            assert!(v.passed(), "K={k} chunk={chunk} total={total} {launch:?}: {}", v.summary());
            assert_eq!(v.chunks_checked, p.spec().chunks());
        }
    }
}
