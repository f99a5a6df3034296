//! Several simulated GPUs: a pipeline split over 1-3 GPUs (each GPU a part
//! with its own chunks, streams and rings) and a pipeline placed over 2
//! (a peer copy stage between GPUs, its events across GPUs) verify, and
//! every edge of a placed pipeline's event graph, the cross-GPU ones
//! included, is needed: the race detector names each one removed.
use pc_pipeline::graph::{Edge, EdgeKind, EventGraph};
use pc_pipeline::sim::{Hazard, SimError, SimPipeline};
use pc_pipeline::{HostInput, Launch, PipelineSpec, StageRegistry, Workload};

fn spec(list: &str, k: usize, chunk: u64, total: u64) -> PipelineSpec {
    let stages = StageRegistry::builtin().parse(list).unwrap();
    PipelineSpec::new(Workload::Generate).stages(stages).slots(k).chunk_elements(chunk).total_elements(total)
}

const LAUNCHES: [Launch; 2] = [Launch::Streams, Launch::Graph];

#[test]
fn split_over_one_to_three_gpus_verifies() {
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h", "h2d,u8-to-f32,consumer,d2h", "producer,d2h"] {
        for gpus in 1..=3 {
            for (k, chunks) in [(1, 1), (2, 7), (3, 10), (2, 2)] {
                for launch in LAUNCHES {
                    for seed in 0..3 {
                        let what = format!("{list} on {gpus} GPU(s), K={k}, {chunks} chunks, {launch:?}, seed {seed}");
                        let mut p = SimPipeline::on_gpus(gpus, spec(list, k, 6, 6 * chunks - 1), HostInput::Generated).unwrap().scheduler_seed(seed);
                        assert_eq!(p.parts(), gpus.min(chunks as usize), "{what}");
                        let r = p.run(launch, 2).unwrap_or_else(|e| panic!("{what}: {e}"));
                        let v = p.verify(&r);
                        assert!(v.passed(), "{what}: {v:?}");
                    }
                }
            }
        }
    }
}

/// Each part's ops are its own chunks (a part that ran part 0's chunks
/// would fail verification; this also checks the parts cover everything).
#[test]
fn split_parts_run_their_own_chunks() {
    let mut p = SimPipeline::on_gpus(3, spec("producer,consumer,reduce", 2, 4, 40), HostInput::Generated).unwrap();
    let r = p.run(Launch::Streams, 1).unwrap();
    assert!(p.verify(&r).passed());
    let counts: Vec<usize> = (0..3).map(|g| p.event_graph_of(g).unwrap().chunks()).collect();
    assert_eq!(counts, [3, 3, 4]);
    assert!(p.event_graph_of(3).is_none());
}

/// A split pipeline's races are still found: each part with no events.
#[test]
fn split_without_events_races_on_every_part() {
    let mut p = SimPipeline::on_gpus(2, spec("producer,consumer,reduce", 2, 5, 40), HostInput::Generated).unwrap();
    p.set_event_graph(|g| EventGraph::unordered(g.stages(), g.chunks(), g.slots())).unwrap();
    let e = p.run(Launch::Streams, 1).unwrap_err();
    assert!(matches!(e, SimError::Race { .. }), "{e}");
}

#[test]
fn a_halo_stage_is_not_split_and_flags_need_one_gpu() {
    let e = SimPipeline::on_gpus(2, spec("h2d,fir,d2h", 2, 5, 40), HostInput::Generated).err().expect("a halo stage split");
    assert!(e.to_string().contains("fir"), "{e}");
    let mut p = SimPipeline::on_gpus(2, spec("producer,consumer,reduce", 2, 5, 40), HostInput::Generated).unwrap();
    let e = p.run(Launch::Flags, 1).unwrap_err();
    assert!(e.to_string().contains("one GPU"), "{e}");
}

const PLACED: [(&str, &[usize]); 4] =
    [("producer,consumer,reduce", &[0, 1, 1]), ("h2d,consumer,d2h", &[0, 0, 1]), ("h2d,consumer,moving-average,d2h", &[0, 1, 0, 1]), ("producer,d2h", &[1, 0])];

#[test]
fn placed_over_two_gpus_verifies_with_peer_copies() {
    for (list, place) in PLACED {
        for k in [1, 2, 3] {
            for launch in LAUNCHES {
                for seed in 0..4 {
                    let what = format!("{list} placed {place:?}, K={k}, {launch:?}, seed {seed}");
                    let s = spec(list, k, 5, 5 * 7 - 2).placement(place.to_vec());
                    let mut p = SimPipeline::new(s, HostInput::Generated).unwrap().scheduler_seed(seed);
                    let crossings = place.windows(2).filter(|w| w[0] != w[1]).count();
                    assert_eq!(p.spec().stages.len(), place.len() + crossings, "{what}: one peer copy per crossing");
                    assert!(p.spec().stages.iter().any(|s| s.name().starts_with("copy-gpu")), "{what}");
                    let r = p.run(launch, 2).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(p.verify(&r).passed(), "{what}");
                }
            }
        }
    }
}

#[test]
fn a_placement_past_the_gpus_is_refused() {
    let s = spec("producer,consumer,reduce", 2, 5, 20).placement(vec![0, 2, 2]);
    let e = SimPipeline::on_gpus(2, s, HostInput::Generated).err().expect("GPU #2 of 2");
    assert!(e.to_string().contains("GPU #2"), "{e}");
}

fn names_edge(err: &SimError, e: &Edge) -> bool {
    let hazard = match e.kind {
        EdgeKind::Filled => Hazard::Filled,
        EdgeKind::Freed => Hazard::Freed,
    };
    err.races().iter().any(|r| {
        r.hazard == hazard
            && r.ring == e.ring
            && r.slot == e.slot
            && r.from.as_ref().is_some_and(|(f, _)| (f.stage, f.chunk) == e.from)
            && (r.to.0.stage, r.to.0.chunk) == e.to
    })
}

/// Every edge of a placed pipeline, those into and out of the peer copy
/// (events recorded on one GPU, waited on by another) included.
#[test]
fn every_edge_removed_from_a_placed_pipeline_is_reported() {
    for (list, place) in PLACED {
        for launch in LAUNCHES {
            let s = spec(list, 2, 5, 5 * 6).placement(place.to_vec());
            let mut p = SimPipeline::new(s, HostInput::Generated).unwrap();
            let full = p.event_graph().clone();
            let copies: Vec<usize> = p.spec().stages.iter().enumerate().filter(|(_, s)| s.name().starts_with("copy-gpu")).map(|(i, _)| i).collect();
            assert!(full.edges().iter().any(|e| copies.contains(&e.to.0) || copies.contains(&e.from.0)), "{list}: no edge at a peer copy");
            for e in full.edges() {
                p.set_event_graph(|_| full.without(e)).unwrap();
                match p.run(launch, 2) {
                    Err(err @ SimError::Race { .. }) => assert!(names_edge(&err, e), "{list} {launch:?}: without {e:?}: {err}"),
                    Err(other) => panic!("{list} {launch:?}: without {e:?}: {other}"),
                    Ok(_) => panic!("{list} {launch:?}: removing {e:?} went unreported"),
                }
            }
            p.set_event_graph(|_| full.clone()).unwrap();
            let r = p.run(launch, 1).unwrap();
            assert!(p.verify(&r).passed());
        }
    }
}

/// The simulated timeline: every operation a span, one stage's spans one
/// after the other, each (stage, chunk) after what it waits for (the
/// filled and freed edges), the stages overlapping, the same whatever the
/// scheduler's seed; split parts' spans on their own GPUs.
#[test]
fn the_simulated_timeline_follows_the_event_graph() {
    let (k, chunks, runs) = (2, 8, 2);
    let mut first = None;
    for seed in 0..4 {
        for launch in LAUNCHES {
            let mut p =
                SimPipeline::new(spec("h2d,consumer,d2h", k, 50, 50 * chunks as u64), HostInput::Generated).unwrap().scheduler_seed(seed).record_timeline(true);
            let r = p.run(launch, runs).unwrap();
            let tl = r.timeline.expect("a timeline was asked for");
            assert!(tl.labels.iter().all(|l| l.ends_with("(simulated time)")), "{:?}", tl.labels);
            assert_eq!(tl.spans.len(), 3 * chunks * runs);
            let span = |s: usize, c: usize, run: usize| tl.spans.iter().filter(|x| (x.stage, x.chunk) == (s, c)).nth(run).unwrap().clone();
            for run in 0..runs {
                for c in 0..chunks {
                    for s in 0..3 {
                        let me = span(s, c, run);
                        assert!(me.end_ms > me.start_ms);
                        if s > 0 {
                            assert!(me.start_ms >= span(s - 1, c, run).end_ms, "filled: ({s}, {c}) starts before ({}, {c}) ends", s - 1);
                        }
                        if s < 2 && c >= k {
                            assert!(me.start_ms >= span(s + 1, c - k, run).end_ms, "freed: ({s}, {c}) starts before ({}, {}) ends", s + 1, c - k);
                        }
                        if c > 0 {
                            assert!(me.start_ms >= span(s, c - 1, run).end_ms, "stream order: ({s}, {c})");
                        }
                    }
                }
            }
            assert!(tl.overlap_factor() > 1.5, "the stages overlap: {}", tl.overlap_factor());
            let mut spans: Vec<_> = tl.spans.iter().map(|s| (s.stage, s.chunk, s.start_ms.to_bits(), s.end_ms.to_bits())).collect();
            spans.sort();
            match &first {
                None => first = Some(spans),
                Some(f) => assert_eq!(f, &spans, "the times depend on the seed ({seed}, {launch:?})"),
            }
        }
    }
    let mut p = SimPipeline::on_gpus(2, spec("producer,consumer,reduce", 2, 5, 40), HostInput::Generated).unwrap().record_timeline(true);
    let tl = p.run(Launch::Streams, 1).unwrap().timeline.unwrap();
    assert_eq!(tl.gpus, 2);
    assert!(tl.spans.iter().all(|s| s.gpu == usize::from(s.chunk >= 4)), "each part's spans on its GPU");
    let mut p = SimPipeline::new(spec("producer,consumer,reduce", 2, 5, 40), HostInput::Generated).unwrap();
    assert!(p.run(Launch::Streams, 1).unwrap().timeline.is_none());
}
