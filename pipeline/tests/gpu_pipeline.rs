//! Pipelines on a GPU, every chunk verified against the CPU reference
//! (every element for d2h sinks; reductions compared exactly, sums included,
//! since they are added in 2^-22 fixed point). Run with --include-ignored.
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload, parse_stages};
use pc_runtime::gpu::{Gpu, device_count};

mod common;
use common::{oracle, seed, skipped};

const STAGE_LISTS: [&str; 8] = [
    "producer,reduce",
    "producer,consumer,reduce",
    "producer,consumer,consumer,reduce",
    "h2d,d2h",
    "h2d,consumer,d2h",
    "h2d,consumer,consumer,d2h",
    "producer,moving-average,reduce",
    "h2d,moving-average,consumer,d2h",
];

fn workload(list: &str) -> Workload {
    if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate }
}

/// Runs `spec` on `gpus`, `runs` times, and asserts every chunk verifies.
fn run_and_verify(gpus: &[&Gpu], spec: PipelineSpec, launch: Launch, runs: usize) {
    let label = format!(
        "{:?} K={} chunk={} total={} {:?} runs={runs} gpus={}",
        spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
        spec.slots,
        spec.chunk_elements,
        spec.total_elements,
        launch,
        gpus.len()
    );
    let mut p = Pipeline::new(gpus, spec, HostInput::Generated).unwrap_or_else(|e| panic!("{label}: {e}"));
    let r = p.run(launch, runs, false).unwrap_or_else(|e| panic!("{label}: {e}"));
    let v = p.verify(&r);
    assert!(v.passed(), "{label}: {v:?}");
    assert_eq!(v.chunks_checked, p.spec().chunks(), "{label}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn every_k_stage_count_workload_and_launch_mode() {
    let gpu = Gpu::open(0).unwrap();
    let seed = seed();
    // 4 KiB chunks over a total that they do not divide (37 chunks and 3 elements).
    for list in STAGE_LISTS {
        for k in 1..=4 {
            for launch in [Launch::Streams, Launch::Graph] {
                let spec = PipelineSpec::new(workload(list))
                    .stages(parse_stages(list).unwrap())
                    .slots(k)
                    .chunk_elements(1024)
                    .total_elements(1024 * 37 + 3)
                    .seed(seed);
                run_and_verify(&[&gpu], spec, launch, 1);
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn chunk_sizes_from_4_kib_to_256_mib() {
    let gpu = Gpu::open(0).unwrap();
    let seed = seed();
    // (chunk bytes, total bytes): dividing and not.
    let sizes: [(u64, u64); 5] = [(4 << 10, 1 << 20), (1 << 20, (13 << 20) + 12), (4 << 20, 64 << 20), (64 << 20, 200 << 20), (256 << 20, 600 << 20)];
    for (chunk, total) in sizes {
        for list in ["producer,consumer,reduce", "h2d,consumer,d2h"] {
            for launch in [Launch::Streams, Launch::Graph] {
                let spec = PipelineSpec::new(workload(list)).slots(3).chunk_elements(chunk / 4).total_elements(total / 4).seed(seed);
                run_and_verify(&[&gpu], spec, launch, 1);
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn repeated_runs_and_graph_replays_give_the_same_results() {
    let gpu = Gpu::open(0).unwrap();
    let seed = seed();
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h"] {
        let spec = PipelineSpec::new(workload(list)).slots(2).chunk_elements(1 << 16).total_elements((1 << 20) + 5).seed(seed);
        let chunks = spec.chunks();
        let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
        let streams = p.run(Launch::Streams, 5, false).unwrap();
        assert!(p.verify(&streams).passed());
        let streams_out = p.output::<f32>().map(<[f32]>::to_vec);
        let graph = p.run(Launch::Graph, 5, false).unwrap();
        assert!(p.verify(&graph).passed());
        if list.ends_with("d2h") {
            // The data itself, not two empty record lists: both grains'
            // output, element for element, and the doubled generated input
            // by the independent oracle.
            let (a, b) = (streams_out.expect("a d2h pipeline has host output"), p.output::<f32>().unwrap());
            assert!(streams.reductions.is_empty() && graph.reductions.is_empty());
            assert_eq!(a.len() as u64, p.spec().total_elements);
            let wrong =
                (0..a.len()).filter(|&i| a[i].to_bits() != b[i].to_bits() || a[i] as f64 != oracle::consume(oracle::produce(i as u64, p.spec().seed))).count();
            assert_eq!(wrong, 0, "{list}: elements differ between the grains or from the oracle");
        } else {
            assert_eq!(streams.reductions.len(), chunks, "{list}");
            assert_eq!(streams.reductions, graph.reductions);
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn serial_baseline_verifies() {
    let gpu = Gpu::open(0).unwrap();
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h"] {
        let spec = PipelineSpec::new(workload(list)).slots(1).serial(true).chunk_elements(1 << 18).total_elements(3 << 20).seed(seed());
        run_and_verify(&[&gpu], spec, Launch::Streams, 2);
    }
}

/// The timeline is what the event graph promises: a stage starts a chunk
/// after the stage before finished it (filled), and writes chunk c + K only
/// after the next stage finished chunk c (freed); and the stages overlap.
/// Every stage is slowed (200 us ahead of each operation, inside its span),
/// so overlap does not hang on how fast the kernels are against the host's
/// launches (with the reduce's block-level combine, 1 MiB chunks of the
/// plain stages took less time than their launches).
#[test]
#[ignore = "needs a CUDA device"]
fn timeline_honours_filled_and_freed_edges() {
    let gpu = Gpu::open(0).unwrap();
    for list in ["producer,consumer,reduce", "h2d,consumer,consumer,d2h"] {
        let k = 2;
        let stages = parse_stages(list).unwrap();
        let slowed = vec![200_000; stages.len()];
        let spec = PipelineSpec::new(workload(list)).stages(stages).delays(slowed).slots(k).chunk_elements(1 << 20).total_elements(12 << 20).seed(seed());
        let stages = spec.stages.len();
        let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
        let r = p.run(Launch::Streams, 1, true).unwrap();
        assert!(p.verify(&r).passed());
        let tl = r.timeline.expect("timeline");
        assert_eq!(tl.spans.len(), stages * 12);
        let at = |s: usize, c: usize| tl.spans.iter().find(|x| x.stage == s && x.chunk == c).unwrap();
        for s in 0..stages - 1 {
            for c in 0..12 {
                assert!(at(s + 1, c).start_ms >= at(s, c).end_ms, "filled edge violated: stage {s} chunk {c}");
                if c + k < 12 {
                    assert!(at(s, c + k).start_ms >= at(s + 1, c).end_ms, "freed edge violated: stage {s} chunk {}", c + k);
                }
            }
        }
        assert!(tl.overlap_factor() > 1.0, "no overlap at all: {}", tl.overlap_factor());
        let json = tl.chrome_trace();
        assert_eq!(json["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").count(), stages * 12);
    }
}

/// Chunks spread over every visible GPU, merged in chunk order. With one
/// GPU, the same device serves as two parts (the split and merge are still
/// exercised); the two-H200 machine runs it on two real GPUs.
#[test]
#[ignore = "needs a CUDA device"]
fn spread_over_several_gpus() {
    let n = device_count().unwrap();
    let gpus: Vec<Gpu> = if n >= 2 { (0..n).map(|i| Gpu::open(i).unwrap()).collect() } else { vec![Gpu::open(0).unwrap(), Gpu::open(0).unwrap()] };
    eprintln!("{} physical GPU(s), {} parts", n, gpus.len());
    if n < 2 {
        skipped!("spread_over_several_gpus", "one GPU: its two parts ran on GPU 0, so no chunk crossed between two GPUs");
    }
    let refs: Vec<&Gpu> = gpus.iter().collect();
    let seed = seed();
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h"] {
        for launch in [Launch::Streams, Launch::Graph] {
            for (chunk, total) in [(1 << 20, (37 << 20) + 12), (4 << 10, 1 << 20)] {
                let spec = PipelineSpec::new(workload(list)).slots(3).chunk_elements(chunk / 4).total_elements(total / 4).seed(seed);
                run_and_verify(&refs, spec, launch, 2);
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn too_much_device_memory_is_an_error() {
    let gpu = Gpu::open(0).unwrap();
    let spec = PipelineSpec::new(Workload::Generate).slots(64).chunk_elements(1 << 30).total_elements(1 << 36);
    let e = Pipeline::new(&[&gpu], spec, HostInput::Generated).err().expect("must refuse");
    assert!(e.to_string().contains("of device memory"), "{e}");
}

// This test file is a kernel crate of its own (for the launcher below).
nvptx_std::kernel_crate!();

/// The launcher of the hand-written `negate.ptx`, from the signature alone
/// (the body is what the PTX does; it is compiled here for the host only).
#[nvptx_std::kernel(same_len(input, output))]
fn negate_kernel(input: &[f32], mut output: nvptx_std::Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = -input[i];
    }
}

/// The hand-written module carries the layout record of this file's
/// `negate_kernel`, which `Module::kernel` checks when the GPU test below
/// loads it; checked here with no GPU, so CI sees a record gone stale.
#[test]
fn the_hand_written_module_carries_the_hosts_layout_record() {
    use pc_runtime::launch::{KernelEntry, check_layout, layout_record_ptx};
    let (sig, layout) = (NegateKernel::SIGNATURE, NegateKernel::PARAM_LAYOUT);
    check_layout(include_str!("negate.ptx"), "negate.ptx", "negate_kernel", sig, layout)
        .unwrap_or_else(|e| panic!("{e}\nnegate.ptx needs the line\n{}", layout_record_ptx("negate_kernel", sig, layout)));
}

/// A map stage from a module of the user's own (not the embedded PTX),
/// between the built-in stages, verified against its CPU reference.
#[test]
#[ignore = "needs a CUDA device"]
fn a_users_own_kernel_module_runs_as_a_stage() {
    use pc_pipeline::builtin::{consumer, d2h, h2d, producer, reduce};
    // SAFETY: negate.ptx is this file's negate_kernel, written by hand: it
    // reads `input` and writes `output` at indices below their length.
    let ptx: pc_runtime::launch::Ptx<KernelCrate> = unsafe { pc_runtime::launch::Ptx::new(include_str!("negate.ptx")) };
    let negate = || pc_pipeline::Stage::map::<NegateKernel>("negate", ptx, |i, o| o.iter_mut().zip(i).for_each(|(o, x)| *o = -x));
    let gpu = Gpu::open(0).unwrap();
    let seed = seed();
    for (first, last, w) in [(h2d(), d2h(), Workload::Stream), (producer(), reduce(), Workload::Generate)] {
        let stages = vec![first, negate(), consumer(), last];
        let spec = PipelineSpec::new(w).stages(stages).slots(2).chunk_elements(100_000).total_elements(1_000_003).seed(seed);
        run_and_verify(&[&gpu], spec, Launch::Streams, 1);
    }
}

/// A replacement event graph of another shape than the rings were allocated
/// for is refused (it would index slots past the ring), and the pipeline
/// still runs and verifies afterwards.
#[test]
#[ignore = "needs a CUDA device"]
fn an_event_graph_of_another_shape_is_refused() {
    use pc_pipeline::EventGraph;
    let gpu = Gpu::open(0).unwrap();
    let spec = PipelineSpec::new(Workload::Stream).slots(2).chunk_elements(1 << 16).total_elements(1 << 19).seed(seed());
    let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
    for (extra_slots, extra_chunks) in [(1, 0), (0, 1)] {
        // SAFETY: refused before anything runs (the shape check comes first).
        let e = unsafe { p.set_event_graph(|g| EventGraph::new(g.stages(), g.chunks() + extra_chunks, g.slots() + extra_slots)) };
        let msg = e.expect_err("a graph of another shape must be refused").to_string();
        assert!(msg.contains("for a part allocated as"), "{msg}");
    }
    let r = p.run(Launch::Streams, 1, false).unwrap();
    assert!(p.verify(&r).passed());
}
