//! The executor's enqueued operations against a model of CUDA's stream and
//! event semantics, with no GPU. `pc_pipeline::exec::plan::plan` is the list
//! of actions the executor walks for each run (records, waits, operations);
//! this file decides from the definitions alone, by brute force, whether
//! those actions keep every ring slot safe:
//!
//! - a stream runs its work in the order enqueued;
//! - `wait(stream, E)` makes the stream's later work wait for the latest
//!   record of E enqueued before the wait (none: no wait);
//! - an operation (stage s, chunk c) reads ring s-1 and writes ring s, in
//!   the slot the executor gives it (checked: the same slot for a chunk's
//!   write and read, and below K).
//!
//! Safe means: every read of chunk c happens after the write of chunk c to
//! that slot, and every other write to the slot (other chunks, other runs)
//! happens before that write or after that read. Nothing here uses the
//! implementation's edge rule or event pool.
use pc_pipeline::EventGraph;
use pc_pipeline::exec::plan::{Action, EventId, plan, stream_chunk, stream_of};
use proptest::prelude::*;
use std::collections::HashMap;

/// (run, stage, chunk).
type OpId = (usize, usize, usize);

struct Model {
    /// Direct predecessors of each node.
    deps: Vec<Vec<usize>>,
    /// The node of each operation, and the slot the executor uses for it.
    ops: HashMap<OpId, (usize, usize)>,
}

fn simulate(actions_per_run: &[Vec<Action>]) -> Model {
    let mut deps: Vec<Vec<usize>> = Vec::new();
    let mut last_on: HashMap<usize, usize> = HashMap::new();
    let mut latest: HashMap<EventId, usize> = HashMap::new();
    let mut ops = HashMap::new();
    for (run, actions) in actions_per_run.iter().enumerate() {
        for a in actions {
            let (stream, extra) = match *a {
                Action::Record { stream, .. } | Action::BeginRun { stream, .. } | Action::Op { stream, .. } => (stream, None),
                Action::Wait { stream, event } => (stream, latest.get(&event).copied()),
            };
            let node = deps.len();
            deps.push(last_on.get(&stream).copied().into_iter().chain(extra).collect());
            last_on.insert(stream, node);
            match *a {
                Action::Record { event, .. } => {
                    latest.insert(event, node);
                }
                Action::Op { stage, chunk, slot, .. } => {
                    ops.insert((run, stage, chunk), (node, slot));
                }
                _ => {}
            }
        }
    }
    Model { deps, ops }
}

/// `before[a]`: the set of nodes that finish before node `a` starts.
fn closure(m: &Model) -> Vec<Vec<u64>> {
    let n = m.deps.len();
    let words = n.div_ceil(64);
    let mut before = vec![vec![0u64; words]; n];
    // Nodes are created in enqueue order and depend only on earlier ones.
    for a in 0..n {
        for &d in &m.deps[a] {
            let (lo, hi) = before.split_at_mut(a);
            for (x, y) in hi[0].iter_mut().zip(&lo[d]) {
                *x |= y;
            }
            hi[0][d / 64] |= 1 << (d % 64);
        }
    }
    before
}

/// The first unsafe access, in words, or None.
fn check(g: &EventGraph, runs: usize, streams: usize) -> Option<String> {
    let actions: Vec<Vec<Action>> = (0..runs).map(|_| plan(g, streams)).collect();
    check_actions(&actions, g.stages(), g.chunks(), g.slots())
}

/// A stream of `chunks` chunks as the streaming executor enqueues it: one
/// `stream_chunk` after another, one "run".
fn stream_actions(stages: usize, chunks: usize, k: usize) -> Vec<Vec<Action>> {
    vec![(0..chunks).flat_map(|c| stream_chunk(stages, stages, k, c)).collect()]
}

fn check_actions(actions: &[Vec<Action>], stages: usize, chunks: usize, k: usize) -> Option<String> {
    let runs = actions.len();
    let m = simulate(actions);
    let before = closure(&m);
    let hb = |a: usize, b: usize| before[b][a / 64] >> (a % 64) & 1 == 1;
    for (&(run, stage, chunk), &(_, slot)) in &m.ops {
        if slot >= k {
            return Some(format!("run {run}: stage {stage} chunk {chunk} uses slot {slot} of a {k}-slot ring"));
        }
    }
    for run in 0..runs {
        for s in 1..stages {
            let ring = s - 1;
            for c in 0..chunks {
                let (read, read_slot) = m.ops[&(run, s, c)];
                let (write, write_slot) = m.ops[&(run, ring, c)];
                if read_slot != write_slot {
                    return Some(format!("run {run}: chunk {c} written to slot {write_slot} of ring {ring} but read from slot {read_slot}"));
                }
                if !hb(write, read) {
                    return Some(format!("run {run}: stage {s} reads chunk {c} of ring {ring} before stage {ring} finished writing it"));
                }
                // Every other write into the same slot of this ring, any run.
                for (&(r2, st2, c2), &(other, slot2)) in &m.ops {
                    if st2 != ring || slot2 != read_slot || (r2, c2) == (run, c) {
                        continue;
                    }
                    if !(hb(other, write) || hb(read, other)) {
                        return Some(format!(
                            "run {r2}: stage {ring} writes chunk {c2} into slot {slot2} of ring {ring} while run {run}'s chunk {c} there is not yet read (or not yet written)"
                        ));
                    }
                }
            }
        }
    }
    None
}

#[test]
fn the_plan_is_the_graph_in_stream_terms() {
    let g = EventGraph::new(3, 5, 2);
    let p = plan(&g, 3);
    assert_eq!(p[0], Action::Record { stream: 0, event: EventId::Fork });
    assert_eq!(p.iter().filter(|a| matches!(a, Action::Op { .. })).count(), 15);
    // Every wait of an operation names the done event of an edge's source.
    assert_eq!(p.iter().filter(|a| matches!(a, Action::Wait { event: EventId::Done { .. }, .. })).count(), g.edges().len());
    assert_eq!(stream_of(2, 1), 0);
}

#[test]
fn full_graphs_are_safe_over_several_runs() {
    for stages in 2..=5 {
        for k in 1..=4 {
            for chunks in [1, 2, 3, 5, 8, 11] {
                let g = EventGraph::new(stages, chunks, k.min(chunks));
                assert_eq!(check(&g, 2, stages), None, "stages {stages} K {k} chunks {chunks}");
                // The serial baseline: one stream, no events, stream order alone.
                let serial = EventGraph::unordered(stages, chunks, k.min(chunks));
                assert_eq!(check(&serial, 2, 1), None, "serial: stages {stages} chunks {chunks}");
            }
        }
    }
}

#[test]
fn every_edge_is_needed() {
    for stages in 2..=4 {
        for k in 1..=3 {
            let chunks = 7;
            let g = EventGraph::new(stages, chunks, k);
            for e in g.edges() {
                let without = g.without(e);
                assert!(check(&without, 1, stages).is_some(), "removing {e:?} left every slot safe (stages {stages}, K {k})");
            }
        }
    }
}

#[test]
fn unordered_streams_are_unsafe() {
    // Without events and with a stream per stage nothing orders the stages.
    let g = EventGraph::unordered(3, 4, 2);
    assert!(check(&g, 1, 3).is_some());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any shape: the full graph is safe over 1-3 runs, and removing a
    /// random edge is caught.
    #[test]
    fn random_shapes(stages in 2usize..6, chunks in 0usize..14, k in 1usize..6, runs in 1usize..4, pick in any::<prop::sample::Index>()) {
        let g = EventGraph::new(stages, chunks, k.min(chunks.max(1)));
        prop_assert_eq!(check(&g, runs, stages), None);
        if !g.edges().is_empty() {
            let e = g.edges()[pick.index(g.edges().len())];
            prop_assert!(check(&g.without(&e), runs, stages).is_some(), "edge {:?} not needed", e);
        }
    }
}

#[test]
fn streams_are_safe_for_any_length() {
    for stages in 2..5 {
        for k in 1..5 {
            for chunks in 0..12 {
                assert_eq!(check_actions(&stream_actions(stages, chunks, k), stages, chunks, k), None, "stages {stages}, K {k}, {chunks} chunks");
            }
        }
    }
}

/// A stream waits exactly where a run of the same length waits: the same
/// (stage, chunk) operations in the same order, with the same waits.
#[test]
fn a_stream_waits_like_a_run() {
    let waits_and_ops = |a: &[Action]| -> Vec<Action> { a.iter().filter(|x| matches!(x, Action::Wait { .. } | Action::Op { .. })).copied().collect() };
    for stages in 2..5 {
        for k in 1..5 {
            for chunks in 0..10 {
                let run = plan(&EventGraph::new(stages, chunks, k), stages);
                let stream = &stream_actions(stages, chunks, k)[0];
                let run_body: Vec<Action> =
                    waits_and_ops(&run).into_iter().filter(|x| !matches!(x, Action::Wait { event: EventId::Fork | EventId::Join(_), .. })).collect();
                assert_eq!(run_body, waits_and_ops(stream), "stages {stages}, K {k}, {chunks} chunks");
            }
        }
    }
}

/// Dropping any one wait from a stream's chunk opens a race the model sees.
#[test]
fn every_stream_wait_is_needed() {
    for stages in 2..4 {
        for k in 1..4 {
            let chunks = k + 3;
            let full = &stream_actions(stages, chunks, k)[0];
            for (i, a) in full.iter().enumerate() {
                if !matches!(a, Action::Wait { .. }) {
                    continue;
                }
                let mut cut = full.clone();
                cut.remove(i);
                assert!(check_actions(&[cut], stages, chunks, k).is_some(), "removing {a:?} left every slot safe (stages {stages}, K {k})");
            }
        }
    }
}
