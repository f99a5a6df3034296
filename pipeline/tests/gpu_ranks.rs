//! A pipeline over ranks (`pc_pipeline::ranks`): here the ranks are threads
//! of one process, one GPU each, joined through NCCL as separate processes
//! would be (`host launch` runs them as processes: host/tests/launch.rs).
//! Needs as many GPUs as ranks and NCCL (libnccl.so.2); where either is
//! missing the test says so in a SKIPPED line (scripts/run-gpu-tests.sh
//! fails on a skip it was not told to allow). The sink rank's results are
//! checked twice: by `verify` (the pipeline's references) and against the
//! independent oracle (`common/oracle.rs`), which shares no code with them.
use pc_pipeline::nccl::{self, NcclId};
use pc_pipeline::ranks::{RankLayout, RankedPipeline, local_spec, transfer_digest};
use pc_pipeline::{HostInput, PipelineSpec, Workload, parse_stages};
use pc_runtime::gpu::{Gpu, device_count};

mod common;
use common::oracle;
use common::skipped;

/// Whether this machine has `ranks` GPUs and NCCL; a SKIPPED line for `test` if not.
fn ready(test: &str, ranks: usize) -> bool {
    let gpus = device_count().unwrap_or(0);
    if gpus < ranks {
        skipped!(test, "{ranks} ranks need {ranks} GPUs, this machine has {gpus}");
        return false;
    }
    if let Err(e) = nccl::version() {
        skipped!(test, "{e}");
        return false;
    }
    true
}

/// The values that reach the sink of `list` over a generated input, from
/// the oracle alone: the producer's values, or the generated host input
/// (f32: the producer's values; u8: the bytes of little-endian words
/// `hash(lo(w) ^ hash(hi(w) ^ seed))`), through each map stage.
fn oracle_values(list: &str, seed: u32, total: u64) -> Vec<f64> {
    let stages: Vec<&str> = list.split(',').collect();
    let mut v: Vec<f64> = if stages[1] == "u8-to-f32" {
        (0..total)
            .map(|j| {
                let w = j / 4;
                let word = oracle::hash(w as u32 ^ oracle::hash((w >> 32) as u32 ^ seed)).to_le_bytes();
                oracle::unit_from_u8(word[(j % 4) as usize])
            })
            .collect()
    } else {
        (0..total).map(|i| oracle::produce(i, seed)).collect()
    };
    for stage in &stages[1..stages.len() - 1] {
        v = match *stage {
            "consumer" => v.iter().map(|&x| oracle::consume(x)).collect(),
            "moving-average" => oracle::moving_average(&v),
            "u8-to-f32" => v,
            other => panic!("no oracle for {other}"),
        };
    }
    v
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
            let (spec, id, label, list) = (spec.clone(), id.clone(), label.clone(), list.to_string());
            std::thread::spawn(move || {
                let gpu = Gpu::open(rank).unwrap();
                let mut p = RankedPipeline::new(&gpu, spec, HostInput::Generated, rank, n, Some(&id)).unwrap_or_else(|e| panic!("{label}: rank {rank}: {e}"));
                let report = p.run(2, false, |_| {}).unwrap_or_else(|e| panic!("{label}: rank {rank}: {e}"));
                let v = p.verify(&report);
                // Only the rank of the pipeline's sink checks; it checks every chunk.
                assert_eq!(v.is_some(), rank == last, "{label}: rank {rank}");
                if let Some(v) = v {
                    assert!(v.passed(), "{label}: rank {rank}: {}", v.summary());
                    assert_eq!(v.chunks_checked, p.pipeline().spec().chunks());
                    let want = oracle_values(&list, p.pipeline().spec().seed, total);
                    if list.ends_with("d2h") {
                        let got = p.pipeline().output::<f32>().expect("the sink rank has host output");
                        let scale = oracle::moving_average(&want.iter().map(|x| x.abs()).collect::<Vec<_>>());
                        let wrong = (0..want.len()).filter(|&i| !oracle::close(got[i], want[i], scale[i].max(want[i].abs()), 4.0)).count();
                        assert_eq!((got.len(), wrong), (want.len(), 0), "{label}: elements differ from the oracle");
                    } else {
                        let chunks: Vec<&[f64]> = want.chunks(chunk as usize).collect();
                        assert_eq!(report.reductions.len(), chunks.len(), "{label}: records");
                        for (c, (r, w)) in report.reductions.iter().zip(chunks).enumerate() {
                            if let Some(why) = oracle::record_differs(r, &oracle::record(w.iter().copied())) {
                                panic!("{label}: chunk {c}: {why}");
                            }
                        }
                    }
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
    if !ready("two_ranks_verify_every_chunk", 2) {
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
    if !ready("three_ranks_pass_chunks_along", 3) {
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
    if !ready("ranks_with_different_pipelines_are_refused", 2) {
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
                    RankedPipeline::new(&gpu, spec, HostInput::Generated, rank, 2, Some(&id)).err().map(|e| e.to_string())
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
                assert!(local_spec(&spec, &layout, Some(comm.clone()), &HostInput::Generated).is_ok());
                let other = spec.clone().chunk_elements(1 << 15);
                let e = local_spec(&other, &RankLayout::new(&other, rank, 2).unwrap(), Some(comm), &HostInput::Generated).unwrap_err().to_string();
                assert!(e.contains("not the one the ranks agreed on"), "rank {rank}: {e}");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a rank panicked");
    }
}
