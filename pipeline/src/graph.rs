//! The event graph of a pipeline, as a value: which (stage, chunk) waits on
//! which, and why. The executor enqueues exactly these waits and nothing
//! else orders work between streams; tests reason about the same list.
//!
//! Between stage `r` and stage `r + 1` sits ring `r` of `K` slots; chunk `c`
//! uses slot `c % K`. Two edges per hand-off:
//! - **filled**: `(r + 1, c)` waits for `(r, c)`: the downstream stage reads
//!   chunk `c` only after the upstream stage finished writing it;
//! - **freed**: `(r, c + K)` waits for `(r + 1, c)`: the upstream stage
//!   overwrites the slot with chunk `c + K` only after the downstream stage
//!   finished reading chunk `c` from it.
//!
//! ```
//! use pc_pipeline::graph::{EventGraph, EdgeKind};
//! let g = EventGraph::new(3, 5, 2); // 3 stages, 5 chunks, K = 2
//! assert_eq!(g.edges().len(), 2 * 5 + 2 * 3); // filled: 2 rings x 5; freed: 2 rings x (5 - 2)
//! let w: Vec<_> = g.waits_of(0, 2).collect();
//! assert_eq!(w.len(), 1);
//! assert_eq!((w[0].kind, w[0].from), (EdgeKind::Freed, (1, 0)));
//! ```

/// Why an edge exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// The slot holds the chunk: downstream may read.
    Filled,
    /// The slot was read: upstream may overwrite it.
    Freed,
}

/// `to` (stage, chunk) waits on `from` (stage, chunk), over `ring`'s `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    pub kind: EdgeKind,
    pub ring: usize,
    pub slot: usize,
    pub from: (usize, usize),
    pub to: (usize, usize),
}

/// All edges of a pipeline of `stages` stages over `chunks` chunks with `K`
/// slots per ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGraph {
    stages: usize,
    chunks: usize,
    slots: usize,
    edges: Vec<Edge>,
    /// `waits[stage * chunks + chunk]`: indices into `edges` of its incoming edges.
    waits: Vec<Vec<usize>>,
    signals: Vec<bool>,
}

impl EventGraph {
    /// Builds the graph. `slots` (K) must be at least 1.
    pub fn new(stages: usize, chunks: usize, slots: usize) -> EventGraph {
        assert!(slots >= 1, "a ring needs at least one slot");
        let mut edges = Vec::new();
        for ring in 0..stages.saturating_sub(1) {
            for c in 0..chunks {
                edges.push(Edge { kind: EdgeKind::Filled, ring, slot: c % slots, from: (ring, c), to: (ring + 1, c) });
                if c + slots < chunks {
                    edges.push(Edge { kind: EdgeKind::Freed, ring, slot: c % slots, from: (ring + 1, c), to: (ring, c + slots) });
                }
            }
        }
        Self::from_edges(stages, chunks, slots, edges)
    }

    /// The same shape with no edges: for the serial baseline, where one
    /// stream runs everything in order and needs no events.
    pub fn unordered(stages: usize, chunks: usize, slots: usize) -> EventGraph {
        assert!(slots >= 1, "a ring needs at least one slot");
        Self::from_edges(stages, chunks, slots, Vec::new())
    }

    fn from_edges(stages: usize, chunks: usize, slots: usize, edges: Vec<Edge>) -> EventGraph {
        let mut waits = vec![Vec::new(); stages * chunks];
        let mut signals = vec![false; stages * chunks];
        for (i, e) in edges.iter().enumerate() {
            waits[e.to.0 * chunks + e.to.1].push(i);
            signals[e.from.0 * chunks + e.from.1] = true;
        }
        EventGraph { stages, chunks, slots, edges, waits, signals }
    }

    pub fn stages(&self) -> usize {
        self.stages
    }
    pub fn chunks(&self) -> usize {
        self.chunks
    }
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Every edge: per ring, per chunk, filled then freed.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The edges `(stage, chunk)` must wait on before it starts.
    pub fn waits_of(&self, stage: usize, chunk: usize) -> impl Iterator<Item = &Edge> {
        self.waits[stage * self.chunks + chunk].iter().map(|&i| &self.edges[i])
    }

    /// Whether any edge starts at `(stage, chunk)` (it must record an event).
    pub fn signals(&self, stage: usize, chunk: usize) -> bool {
        self.signals[stage * self.chunks + chunk]
    }

    /// The same graph without one edge (for checking that each edge is needed).
    pub fn without(&self, edge: &Edge) -> EventGraph {
        let edges = self.edges.iter().filter(|e| *e != edge).copied().collect();
        Self::from_edges(self.stages, self.chunks, self.slots, edges)
    }

    /// The order the executor enqueues operations in: chunk-major, stages in
    /// order within a chunk. Every wait is enqueued after the record it waits
    /// on (a stream waits on an event's latest record at the time of the call).
    pub fn enqueue_order(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.chunks).flat_map(move |c| (0..self.stages).map(move |s| (s, c)))
    }

    /// How many events a stage needs in its pool so that an event is never
    /// re-recorded before its last waiter is enqueued, given the executor's
    /// chunk-major enqueue order: the latest waiter of `(s, c)` is
    /// `(s - 1, c + K)`, enqueued before `(s, c + K + 1)` records again.
    pub fn event_pool_size(&self) -> usize {
        self.slots + 1
    }
}
