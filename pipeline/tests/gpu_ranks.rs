//! A pipeline over ranks (`pc_pipeline::ranks`): here the ranks are threads
//! of one process, one GPU each, joined through NCCL as separate processes
//! would be (`host launch` runs them as processes: host/tests/launch.rs).
//! Needs as many GPUs as ranks and NCCL (libnccl.so.2); where either is
//! missing the test says so and checks nothing else.
use pc_pipeline::nccl::{self, NcclId};
use pc_pipeline::ranks::{RankLayout, RankedPipeline, local_spec, transfer_digest};
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
                let mut p = RankedPipeline::new(&gpu, spec, Input::Generated, rank, n, Some(&id)).unwrap_or_else(|e| panic!("{label}: rank {rank}: {e}"));
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

/// Ranks given pipelines whose transfers would not match (another chunk
/// size, another placement, another stage list) are refused on every rank
/// when they join, before any transfer; and a communicator joined for one
/// spec refuses to make send or recv stages for another.
#[test]
#[ignore = "needs a CUDA device"]
fn ranks_with_different_pipelines_are_refused() {
    if !ready(2) {
        return;
    }
    let base = || PipelineSpec::new(Workload::Generate).placement(vec![0, 1, 1]).chunk_elements(1 << 16).total_elements((1 << 16) * 5 + 3);
    let others = [
        base().chunk_elements(1 << 15),
        base().total_elements((1 << 16) * 5 + 4),
        base().placement(vec![0, 0, 1]),
        base().stages(parse_stages("producer,moving-average,reduce").unwrap()),
    ];
    for other in others {
        let id = NcclId::new().unwrap();
        let threads: Vec<_> = [base(), other.clone()]
            .into_iter()
            .enumerate()
            .map(|(rank, spec)| {
                let id = id.clone();
                std::thread::spawn(move || {
                    let gpu = Gpu::open(rank).unwrap();
                    RankedPipeline::new(&gpu, spec, Input::Generated, rank, 2, Some(&id)).err().map(|e| e.to_string())
                })
            })
            .collect();
        for (rank, t) in threads.into_iter().enumerate() {
            let e = t.join().expect("a rank panicked").unwrap_or_else(|| panic!("rank {rank} ran with {other:?}"));
            assert!(e.contains("rank 1 was given another pipeline than rank 0"), "rank {rank}: {e}");
        }
    }
    // One communicator, joined for `base`: a send stage for another spec is refused.
    let id = NcclId::new().unwrap();
    let threads: Vec<_> = (0..2)
        .map(|rank| {
            let id = id.clone();
            std::thread::spawn(move || {
                let gpu = Gpu::open(rank).unwrap();
                let spec = base();
                let comm = std::sync::Arc::new(nccl::Comm::init(&gpu, &id, rank, 2, transfer_digest(&spec, 2).unwrap()).unwrap());
                let layout = RankLayout::new(&spec, rank, 2).unwrap();
                assert!(local_spec(&spec, &layout, Some(comm.clone()), &Input::Generated).is_ok());
                let other = spec.clone().chunk_elements(1 << 15);
                let e = local_spec(&other, &RankLayout::new(&other, rank, 2).unwrap(), Some(comm), &Input::Generated).unwrap_err().to_string();
                assert!(e.contains("not the one the ranks agreed on"), "rank {rank}: {e}");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a rank panicked");
    }
}
