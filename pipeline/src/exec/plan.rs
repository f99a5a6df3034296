//! One run's stream operations as data: the event records and waits and the
//! (stage, chunk) operations, in the order the executor enqueues them. The
//! executor walks exactly this list (`enqueue.rs`), so a test that checks
//! the list against a model of CUDA's stream and event semantics checks
//! what is enqueued, with no GPU.
use crate::graph::EventGraph;

/// An event of a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventId {
    /// Recorded on stream 0 at the start of a run; every other stream waits on it.
    Fork,
    /// Recorded on stream `s` (`s >= 1`) at the end of a run; stream 0 waits on it.
    Join(usize),
    /// The "done" event of stage `stage`, slot `index` of its pool
    /// (`chunk % EventGraph::event_pool_size()`).
    Done { stage: usize, index: usize },
}

/// One operation on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `cuEventRecord(event, stream)`.
    Record { stream: usize, event: EventId },
    /// `cuStreamWaitEvent(stream, event)`: the stream's later work waits for
    /// the event's latest record enqueued before this call.
    Wait { stream: usize, event: EventId },
    /// The stage's per-run setup (e.g. resetting records), on its stream.
    BeginRun { stream: usize, stage: usize },
    /// Stage `stage` on local chunk `chunk`, on its stream: reads slot
    /// `slot` of ring `stage - 1` and writes slot `slot` of ring `stage`.
    Op { stream: usize, stage: usize, chunk: usize, slot: usize },
}

/// The stream stage `stage` runs on, with `streams` streams (1 when serial).
pub fn stream_of(stage: usize, streams: usize) -> usize {
    stage.min(streams.saturating_sub(1))
}

/// One run of `graph` over `streams` streams: fork, per-stage setup, every
/// (stage, chunk) in the graph's enqueue order with exactly its waits and,
/// where something waits on it, its done event; then join.
pub fn plan(graph: &EventGraph, streams: usize) -> Vec<Action> {
    let mut out = vec![Action::Record { stream: 0, event: EventId::Fork }];
    out.extend((1..streams).map(|stream| Action::Wait { stream, event: EventId::Fork }));
    out.extend((0..graph.stages()).map(|stage| Action::BeginRun { stream: stream_of(stage, streams), stage }));
    let pool = graph.event_pool_size();
    for (stage, chunk) in graph.enqueue_order() {
        let stream = stream_of(stage, streams);
        for e in graph.waits_of(stage, chunk) {
            out.push(Action::Wait { stream, event: EventId::Done { stage: e.from.0, index: e.from.1 % pool } });
        }
        out.push(Action::Op { stream, stage, chunk, slot: chunk % graph.slots() });
        if graph.signals(stage, chunk) {
            out.push(Action::Record { stream, event: EventId::Done { stage, index: chunk % pool } });
        }
    }
    for stream in 1..streams {
        out.push(Action::Record { stream, event: EventId::Join(stream) });
        out.push(Action::Wait { stream: 0, event: EventId::Join(stream) });
    }
    out
}

/// One chunk of an unbounded stream over `stages` stages with `slots` (K)
/// slots per ring: per stage, in order, the same waits as
/// [`EventGraph::new`]'s edges (filled from `(s - 1, c)`, freed from
/// `(s + 1, c - K)`), the operation, and its done event (recorded always:
/// a stream's later chunks may wait on any of them). Concatenated over
/// chunks `0..n`, this is [`plan`]'s body for `n` chunks wherever `plan`
/// records too (`plan_model` checks it), so a stream runs the same proven
/// protocol one chunk at a time.
pub fn stream_chunk(stages: usize, streams: usize, slots: usize, chunk: usize) -> Vec<Action> {
    let pool = slots + 1;
    let mut out = Vec::with_capacity(stages * 4);
    for stage in 0..stages {
        let stream = stream_of(stage, streams);
        if stage > 0 {
            out.push(Action::Wait { stream, event: EventId::Done { stage: stage - 1, index: chunk % pool } });
        }
        if stage + 1 < stages && chunk >= slots {
            out.push(Action::Wait { stream, event: EventId::Done { stage: stage + 1, index: (chunk - slots) % pool } });
        }
        out.push(Action::Op { stream, stage, chunk, slot: chunk % slots });
        if stages > 1 {
            out.push(Action::Record { stream, event: EventId::Done { stage, index: chunk % pool } });
        }
    }
    out
}
