//! The event graph as a value, checked on the CPU: the listed edges are
//! exactly the filled and freed edges of the design (written out here,
//! independently), each one is needed, and together with stream order they
//! make every slot's writes and reads safe. What the executor actually
//! enqueues for a graph (its events and their reuse) is checked against a
//! model of CUDA's semantics in `plan_model.rs`.
use pc_pipeline::{EdgeKind, EventGraph};
use std::collections::BTreeSet;

/// (kind, ring, slot, from, to).
type EdgeKey = (EdgeKind, usize, usize, (usize, usize), (usize, usize));

/// The design, written independently of the implementation.
fn expected(stages: usize, chunks: usize, k: usize) -> BTreeSet<EdgeKey> {
    let mut set = BTreeSet::new();
    for ring in 0..stages - 1 {
        for c in 0..chunks {
            set.insert((EdgeKind::Filled, ring, c % k, (ring, c), (ring + 1, c)));
        }
        for c in k..chunks {
            // Writing chunk c into slot c % K waits for the read of chunk c - K.
            set.insert((EdgeKind::Freed, ring, c % k, (ring + 1, c - k), (ring, c)));
        }
    }
    set
}

/// `happens_before[a][b]`: a finishes before b starts, from stream order (one
/// stream per stage) plus the graph's edges, transitively.
fn happens_before(g: &EventGraph) -> Vec<Vec<bool>> {
    let (s, c) = (g.stages(), g.chunks());
    let id = |st: usize, ch: usize| st * c + ch;
    let n = s * c;
    let mut hb = vec![vec![false; n]; n];
    for st in 0..s {
        for a in 0..c {
            for b in a + 1..c {
                hb[id(st, a)][id(st, b)] = true;
            }
        }
    }
    for e in g.edges() {
        hb[id(e.from.0, e.from.1)][id(e.to.0, e.to.1)] = true;
    }
    // Warshall's transitive closure.
    for m in 0..n {
        for a in 0..n {
            if hb[a][m] {
                let via = hb[m].clone();
                for (to, reach) in hb[a].iter_mut().zip(via) {
                    *to |= reach;
                }
            }
        }
    }
    hb
}

/// Every slot of every ring: chunk c is written before it is read, and read
/// before chunk c + K overwrites it. Returns the first violation.
fn unsafe_slot(g: &EventGraph) -> Option<String> {
    let hb = happens_before(g);
    let c = g.chunks();
    let id = |st: usize, ch: usize| st * c + ch;
    for ring in 0..g.stages() - 1 {
        for ch in 0..c {
            if !hb[id(ring, ch)][id(ring + 1, ch)] {
                return Some(format!("ring {ring}: chunk {ch} may be read before it is written"));
            }
            if ch + g.slots() < c && !hb[id(ring + 1, ch)][id(ring, ch + g.slots())] {
                return Some(format!("ring {ring}: chunk {} may overwrite chunk {ch} before it is read", ch + g.slots()));
            }
        }
    }
    None
}

#[test]
fn edges_are_exactly_the_filled_and_freed_edges() {
    for stages in 2..=5 {
        for k in 1..=5 {
            for chunks in 0..=11 {
                let g = EventGraph::new(stages, chunks, k);
                let got: Vec<_> = g.edges().iter().map(|e| (e.kind, e.ring, e.slot, e.from, e.to)).collect();
                let set: BTreeSet<_> = got.iter().copied().collect();
                assert_eq!(set.len(), got.len(), "duplicate edges for S={stages} K={k} chunks={chunks}");
                assert_eq!(set, expected(stages, chunks, k), "S={stages} K={k} chunks={chunks}");
            }
        }
    }
}

#[test]
fn waits_and_signals_index_the_same_edges() {
    let g = EventGraph::new(4, 9, 3);
    let mut from_waits = Vec::new();
    for (s, c) in g.enqueue_order() {
        for e in g.waits_of(s, c) {
            assert_eq!(e.to, (s, c));
            assert!(g.signals(e.from.0, e.from.1));
            from_waits.push(*e);
        }
    }
    assert_eq!(from_waits.len(), g.edges().len());
}

#[test]
fn the_graph_makes_every_slot_safe_and_every_edge_is_needed() {
    for stages in 2..=4 {
        for k in 1..=4 {
            for chunks in 1..=9 {
                let g = EventGraph::new(stages, chunks, k);
                assert_eq!(unsafe_slot(&g), None, "S={stages} K={k} chunks={chunks}");
                for e in g.edges() {
                    assert!(unsafe_slot(&g.without(e)).is_some(), "edge {e:?} is redundant (S={stages} K={k} chunks={chunks})");
                }
            }
        }
    }
}

#[test]
fn without_the_freed_edges_a_ring_is_overwritten() {
    // The seed's single edge (filled only) is not enough for a ring.
    let g = EventGraph::new(3, 6, 2);
    let mut filled_only = g.clone();
    for e in g.edges().iter().filter(|e| e.kind == EdgeKind::Freed) {
        filled_only = filled_only.without(e);
    }
    let problem = unsafe_slot(&filled_only).expect("must be unsafe");
    assert!(problem.contains("overwrite"), "{problem}");
}

/// The executor keeps `event_pool_size()` events per stage and records
/// (s, c) into event `c % pool`. Replaying its enqueue order: every wait
/// must find the event still holding the record it needs.
#[test]
fn serial_graph_has_no_edges() {
    assert!(EventGraph::unordered(3, 10, 1).edges().is_empty());
}
