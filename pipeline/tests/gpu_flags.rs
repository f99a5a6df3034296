//! The flags grain on a GPU: every stage one kernel for the whole run, all
//! running at once, slots handed over through counters. Every chunk's
//! record checked exactly against the CPU reference; a stuck ring ends as
//! an error naming the stage and slot; removing a wait of the protocol,
//! with the stage it orders against slowed, corrupts the output.
use kernel_math::ring::fault;
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineError, PipelineSpec, Workload, parse_stages};
use pc_runtime::gpu::Gpu;

mod common;
use common::seed;

fn spec(list: &str, k: usize, chunk: u64, total: u64, seed: u32) -> PipelineSpec {
    PipelineSpec::new(Workload::Generate).stages(parse_stages(list).unwrap()).slots(k).chunk_elements(chunk).total_elements(total).seed(seed)
}

#[test]
#[ignore = "needs a CUDA device"]
fn every_k_stage_count_and_odd_sizes_verify() {
    let gpu = Gpu::open(0).unwrap();
    let seed = seed();
    for list in ["producer,reduce", "producer,consumer,reduce", "producer,consumer,consumer,reduce"] {
        for k in [1, 2, 3, 4, 16] {
            // 37 chunks and 3 elements; then chunks of an odd element count.
            for (chunk, total) in [(1024, 1024 * 37 + 3), (1001, 1001 * 9 + 500), (1 << 16, 1 << 22)] {
                for block in [128, 512] {
                    let label = format!("{list} K={k} chunk={chunk} total={total} block={block}");
                    let mut p = Pipeline::new(&[&gpu], spec(list, k, chunk, total, seed).block_size(block), HostInput::Generated)
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                    // Twice: the counters are reset between runs.
                    let r = p.run(Launch::Flags, 2, false).unwrap_or_else(|e| panic!("{label}: {e}"));
                    let v = p.verify(&r);
                    assert!(v.passed(), "{label}: {v:?}");
                    assert_eq!(v.chunks_checked, p.spec().chunks(), "{label}");
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn flags_give_the_records_of_streams() {
    let gpu = Gpu::open(0).unwrap();
    let mut p = Pipeline::new(&[&gpu], spec("producer,consumer,reduce", 8, 1 << 14, (1 << 20) + 7, seed()), HostInput::Generated).unwrap();
    let streams = p.run(Launch::Streams, 1, false).unwrap();
    let flags = p.run(Launch::Flags, 3, false).unwrap();
    assert!(p.verify(&flags).passed());
    assert_eq!(streams.reductions, flags.reductions);
}

/// A stage slowed far past the watchdog: the run ends with an error that
/// names a stage and slot, promptly, and the pipeline runs again after.
#[test]
#[ignore = "needs a CUDA device"]
fn a_stuck_ring_is_an_error_not_a_hang() {
    let gpu = Gpu::open(0).unwrap();
    let s = spec("producer,consumer,reduce", 2, 1 << 12, 1 << 16, seed()).watchdog_ms(20).delays(vec![0, 200_000_000, 0]);
    let mut p = Pipeline::new(&[&gpu], s, HostInput::Generated).unwrap();
    let t = std::time::Instant::now();
    let e = p.run(Launch::Flags, 1, false).unwrap_err();
    let msg = e.to_string();
    eprintln!("{msg} (after {:?})", t.elapsed());
    assert!(matches!(e, PipelineError::RingStuck { .. }), "{msg}");
    assert!(msg.contains("stage ") && msg.contains("slot ") && msg.contains("20 ms"), "{msg}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "took {:?}", t.elapsed());
    p.set_delays(vec![]);
    let r = p.run(Launch::Flags, 1, false).unwrap();
    assert!(p.verify(&r).passed());
}

#[test]
#[ignore = "needs a CUDA device"]
fn refusals_are_one_line() {
    let gpu = Gpu::open(0).unwrap();
    let cases = [
        (spec("producer,consumer,reduce", 257, 1024, 1 << 20, 1), "at most 256 slots"),
        (PipelineSpec::new(Workload::Stream).chunk_elements(1024).total_elements(1 << 14), "no flags form"),
        (spec("producer,moving-average,reduce", 2, 1024, 1 << 14, 1), "no flags form"),
    ];
    for (s, want) in cases {
        let mut p = Pipeline::new(&[&gpu], s, HostInput::Generated).unwrap();
        let e = p.run(Launch::Flags, 1, false).unwrap_err().to_string();
        assert!(e.contains(want) && !e.contains('\n'), "{e}");
    }
}

/// Each wait of the protocol is needed: without the reader's *filled* wait
/// (producer slowed) or the writer's *freed* wait (reader slowed), chunks
/// come out wrong; the complete protocol with the same delays is right.
#[test]
#[ignore = "needs a CUDA device"]
fn removing_a_wait_corrupts_and_the_full_protocol_does_not() {
    let gpu = Gpu::open(0).unwrap();
    let seed = seed();
    let list = "producer,consumer,reduce";
    // (faults per stage, delays per stage, what is removed)
    let cases: [(Vec<u32>, Vec<u64>, &str); 4] = [
        (vec![0, fault::SKIP_FILLED_WAIT, 0], vec![1_000_000, 0, 0], "consumer's filled wait"),
        (vec![0, 0, fault::SKIP_FILLED_WAIT], vec![0, 1_000_000, 0], "reduce's filled wait"),
        (vec![fault::SKIP_FREED_WAIT, 0, 0], vec![0, 1_000_000, 0], "producer's freed wait"),
        (vec![0, fault::SKIP_FREED_WAIT, 0], vec![0, 0, 1_000_000], "consumer's freed wait"),
    ];
    for k in [1, 2, 3] {
        for (faults, delays, what) in &cases {
            let s = spec(list, k, 1 << 16, 12 << 16, seed).delays(delays.clone());
            let mut p = Pipeline::new(&[&gpu], s, HostInput::Generated).unwrap();
            p.poison_rings().unwrap();
            let r = p.run(Launch::Flags, 1, false).unwrap();
            let v = p.verify(&r);
            assert!(v.passed(), "K={k}, full protocol, delays {delays:?}: {v:?}");
            // SAFETY: the race on purpose; results only verified.
            unsafe { p.set_flag_faults(faults.clone()) };
            p.poison_rings().unwrap();
            let r = p.run(Launch::Flags, 1, false).unwrap();
            let v = p.verify(&r);
            eprintln!("K={k}, without the {what}: {} of {} chunks wrong", v.chunks_wrong, v.chunks_checked);
            assert!(!v.passed(), "K={k}: removing the {what} went unnoticed");
        }
    }
}

/// The device timestamps: one span per (stage, chunk), each starting before
/// it ends, and hand-offs measured where the reader was waiting.
#[test]
#[ignore = "needs a CUDA device"]
fn timestamps_give_a_timeline_and_hand_offs() {
    let gpu = Gpu::open(0).unwrap();
    let mut p = Pipeline::new(&[&gpu], spec("producer,consumer,reduce", 2, 1 << 14, 1 << 20, seed()), HostInput::Generated).unwrap();
    let r = p.run(Launch::Flags, 1, true).unwrap();
    assert!(p.verify(&r).passed());
    let tl = r.timeline.expect("a timeline");
    assert_eq!(tl.spans.len(), 3 * p.spec().chunks());
    for s in &tl.spans {
        assert!(s.start_ms <= s.end_ms && s.end_ms > 0.0, "{s:?}");
    }
    let st = &r.flag_stamps[0];
    assert!(!st.handoffs_ns().is_empty());
    assert!(st.latencies_ns().iter().all(|&l| l > 0));
}

/// The flags grain's sync checker over the generate pipeline: the complete
/// protocol shows no corruption with any stage slowed; each removed wait
/// and each early release is detected on every ring (under the early-filled
/// fault the writer's warps but the publishing one are slowed, so they are
/// still writing when the release comes).
#[test]
#[ignore = "needs a CUDA device"]
fn sync_checker_covers_every_ring_of_the_flags_grain() {
    use pc_pipeline::sync_check::check_flags;
    let gpu = Gpu::open(0).unwrap();
    for k in 1..=3 {
        let s = spec("producer,consumer,reduce", k, 1 << 16, 8 << 16, seed());
        // SAFETY: races on purpose; results only verified.
        let r = unsafe { check_flags(&gpu, &s, 500_000, |_, _| {}) }.unwrap();
        for (stage, v) in &r.baseline {
            assert!(v.passed(), "K={k}, stage {stage} slowed: {v:?}");
        }
        for f in &r.faults {
            eprintln!("K={k} ring {}: without the {}: {} of {} chunks wrong", f.ring, f.removed, f.check.chunks_wrong, f.check.chunks_checked);
            assert!(f.detected(), "K={k} ring {}: removing the {} went unnoticed", f.ring, f.removed);
        }
    }
}
