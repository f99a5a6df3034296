//! A pipeline over ranks (`pc_pipeline::ranks`): here the ranks are threads
//! of one process, one GPU each, joined through NCCL as separate processes
//! would be (`host launch` runs them as processes: host/tests/launch.rs).
//! Needs as many GPUs as ranks and NCCL (libnccl.so.2); where either is
//! missing the test says so and checks nothing else.
use pc_pipeline::nccl::{self, NcclId};
use pc_pipeline::ranks::RankedPipeline;
use pc_pipeline::{Input, PipelineSpec, Workload, parse_stages};
use pc_runtime::gpu::{Gpu, device_count};

fn ready(ranks: usize) -> bool {
    let gpus = device_count().unwrap_or(0);
    if gpus < ranks {
        eprintln!("SKIPPED: {ranks} ranks need {ranks} GPUs, this machine has {gpus}");
        return false;
    }
    if let Err(e) = nccl::version() {
        eprintln!("SKIPPED: {e}");
        return false;
    }
    true
}

/// Every rank on its own thread and GPU, two runs; the last rank's check must pass.
fn run(list: &str, placement: Vec<usize>, k: usize, chunk: u64, total: u64) {
    let n = placement.iter().max().map_or(1, |m| m + 1);
    let w = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
    let spec = PipelineSpec::new(w).stages(parse_stages(list).unwrap()).placement(placement.clone()).slots(k).chunk_elements(chunk).total_elements(total);
    let label = format!("{list} on ranks {placement:?} K={k} chunk {chunk} total {total}");
    let last = *placement.last().unwrap();
    let id = NcclId::new().unwrap();
    let threads: Vec<_> = (0..n)
        .map(|rank| {
            let (spec, id, label) = (spec.clone(), id.clone(), label.clone());
            std::thread::spawn(move || {
                let gpu = Gpu::open(rank).unwrap();
                // SAFETY: every rank's thread gets the same spec.
                let mut p =
                    unsafe { RankedPipeline::new(&gpu, spec, Input::Generated, rank, n, Some(&id)) }.unwrap_or_else(|e| panic!("{label}: rank {rank}: {e}"));
                let report = p.run(2, false, |_| {}).unwrap_or_else(|e| panic!("{label}: rank {rank}: {e}"));
                let v = p.verify(&report);
                // Only the rank of the pipeline's sink checks; it checks every chunk.
                assert_eq!(v.is_some(), rank == last, "{label}: rank {rank}");
                if let Some(v) = v {
                    assert!(v.passed(), "{label}: rank {rank}: {}", v.summary());
                    assert_eq!(v.chunks_checked, p.pipeline().spec().chunks());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a rank panicked");
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn two_ranks_verify_every_chunk() {
    if !ready(2) {
        return;
    }
    for k in 1..=3 {
        run("producer,consumer,reduce", vec![0, 1, 1], k, 1 << 16, (1 << 16) * 13 + 5);
        run("producer,consumer,reduce", vec![0, 0, 1], k, 1 << 16, (1 << 16) * 13 + 5);
        run("h2d,consumer,d2h", vec![0, 1, 1], k, 1 << 16, (1 << 16) * 13 + 5);
        run("h2d,u8-to-f32,moving-average,d2h", vec![0, 1, 1, 1], k, 1 << 16, (1 << 16) * 13 + 5);
        run("h2d,u8-to-f32,moving-average,d2h", vec![0, 0, 1, 1], k, 1 << 16, (1 << 16) * 13 + 5);
    }
    // Ranks in reverse order along the stages; one chunk; chunks of one element.
    run("producer,consumer,reduce", vec![1, 0, 0], 2, 1 << 16, 1 << 16);
    run("h2d,consumer,d2h", vec![0, 0, 1], 3, 1, 17);
}

#[test]
#[ignore = "needs a CUDA device"]
fn three_ranks_pass_chunks_along() {
    if !ready(3) {
        return;
    }
    for k in 1..=3 {
        run("producer,consumer,consumer,reduce", vec![0, 1, 1, 2], k, 1 << 16, (1 << 16) * 9 + 3);
    }
}
