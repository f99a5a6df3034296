//! Stages placed on GPUs of their own (`PipelineSpec::placement`): a peer
//! copy between neighbours on different GPUs, filled and freed events
//! across devices, every chunk verified; the sync checker covers the
//! edges across GPUs. On a machine with one GPU, "GPU 1" is GPU 0 again (the
//! copy path and the events, without the link).
use pc_pipeline::sync_check::check_edges_on;
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload, parse_stages};
use pc_runtime::gpu::{Gpu, device_count};

mod common;
use common::{seed, skipped};

fn check(gpus: &[&Gpu], list: &str, placement: Vec<usize>, k: usize, launch: Launch) {
    let workload = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
    let spec = PipelineSpec::new(workload)
        .stages(parse_stages(list).unwrap())
        .placement(placement.clone())
        .slots(k)
        .chunk_elements(1 << 14)
        .total_elements((1 << 14) * 13 + 5)
        .seed(seed());
    let label = format!("{list} placed {placement:?} K={k} {launch:?}");
    let mut p = Pipeline::new(gpus, spec, HostInput::Generated).unwrap_or_else(|e| panic!("{label}: {e}"));
    let copies = p.spec().stages.iter().filter(|s| s.name().starts_with("copy-gpu")).count();
    let changes = placement.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(copies, changes, "{label}: one peer copy per change of GPU");
    p.poison_rings().unwrap();
    let r = p.run(launch, 2, false).unwrap_or_else(|e| panic!("{label}: {e}"));
    let v = p.verify(&r);
    assert!(v.passed(), "{label}: {v:?}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn placed_on_the_same_device_twice_verifies() {
    let g = Gpu::open(0).unwrap();
    let gpus = [&g, &g];
    for k in 1..=3 {
        for launch in [Launch::Streams, Launch::Graph] {
            check(&gpus, "producer,consumer,reduce", vec![0, 1, 1], k, launch);
            check(&gpus, "producer,consumer,reduce", vec![0, 0, 1], k, launch);
            check(&gpus, "h2d,consumer,d2h", vec![0, 1, 0], k, launch);
            check(&gpus, "h2d,u8-to-f32,moving-average,d2h", vec![0, 1, 1, 1], k, launch);
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn bad_placements_are_one_line_errors() {
    let g = Gpu::open(0).unwrap();
    for (placement, want) in [(vec![0, 1], "names 2 GPU(s) for 3 stages"), (vec![0, 2, 0], "GPU #2 of the list")] {
        let spec = PipelineSpec::new(Workload::Generate).placement(placement);
        let e = Pipeline::new(&[&g, &g], spec, HostInput::Generated).err().expect("refused").to_string();
        assert!(e.contains(want) && !e.contains('\n'), "{e}");
    }
    let spec = PipelineSpec::new(Workload::Generate).placement(vec![0, 1, 1]).chunk_elements(1024).total_elements(1 << 14);
    let mut p = Pipeline::new(&[&g, &g], spec, HostInput::Generated).unwrap();
    let e = p.run(Launch::Flags, 1, false).unwrap_err().to_string();
    assert!(e.contains("placed on several GPUs"), "{e}");
}

/// GPUs 0 and 1, or GPU 0 twice on a machine with one: then `test` still
/// runs, but its copies between two GPUs do not, which a SKIPPED line says.
fn two_gpus(test: &str) -> (Gpu, Gpu) {
    let n = device_count().unwrap();
    eprintln!("{n} physical GPU(s){}", if n < 2 { ": the second is GPU 0 again" } else { "" });
    if n < 2 {
        skipped!(test, "one GPU: ran on GPU 0 twice, so nothing crossed between two GPUs");
    }
    (Gpu::open(0).unwrap(), Gpu::open(if n >= 2 { 1 } else { 0 }).unwrap())
}

#[test]
#[ignore = "needs a CUDA device"]
fn producer_on_gpu0_consumer_and_reduce_on_gpu1_verify() {
    let (a, b) = two_gpus("producer_on_gpu0_consumer_and_reduce_on_gpu1_verify");
    let gpus = [&a, &b];
    for k in 1..=4 {
        for launch in [Launch::Streams, Launch::Graph] {
            check(&gpus, "producer,consumer,reduce", vec![0, 1, 1], k, launch);
            check(&gpus, "h2d,consumer,consumer,d2h", vec![0, 1, 0, 1], k, launch);
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn the_sync_checker_covers_the_edges_across_gpus() {
    let (a, b) = two_gpus("the_sync_checker_covers_the_edges_across_gpus");
    let spec = PipelineSpec::new(Workload::Generate).placement(vec![0, 1, 1]).slots(2).chunk_elements(1 << 18).total_elements(6 << 18);
    // SAFETY: races on purpose; results only verified.
    let report = unsafe { check_edges_on(&[&a, &b], &spec, HostInput::Generated, 1_000_000, |_, _| {}) }.unwrap();
    assert!(report.stage_names.iter().any(|n| n.starts_with("copy-gpu")), "{:?}", report.stage_names);
    for (stage, v) in &report.baseline {
        assert!(v.passed(), "stage {stage} slowed, full graph: {v:?}");
    }
    for r in &report.edges {
        assert!(r.detected(), "removing {:?} went unnoticed", r.edge);
    }
    eprintln!("{} edges across 2 GPUs, all needed and detected", report.edges.len());
}
