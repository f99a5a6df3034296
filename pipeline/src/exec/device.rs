//! The device seam: where one run's (or one stream chunk's) actions go.
//! [`enqueue_actions`] walks an action list ([`super::plan::plan`],
//! [`super::plan::stream_chunk`]) and hands each action to an
//! [`EnqueueTo`]: CUDA calls on a part's streams (runs, `exec::enqueue`;
//! streams, `stream`), or the simulated device ([`crate::sim`]), which runs
//! the same walk on the CPU with a race detector. The walk is this one
//! function for both, so what the simulator checks is what reaches CUDA.
use super::plan::{Action, EventId};
use crate::PipelineError;

/// A device that takes stream actions, one call each, in enqueue order.
pub trait EnqueueTo {
    /// `cuStreamWaitEvent(stream, event)`: the stream's later work waits for
    /// the event's latest record enqueued before this call (none: no wait).
    fn wait(&mut self, stream: usize, event: EventId) -> Result<(), PipelineError>;
    /// `cuEventRecord(event, stream)`: a new capture of the event.
    fn record(&mut self, stream: usize, event: EventId) -> Result<(), PipelineError>;
    /// Stage `stage`'s per-run setup (resetting records, halo history) on `stream`.
    fn begin_run(&mut self, stream: usize, stage: usize) -> Result<(), PipelineError>;
    /// Stage `stage` on local chunk `chunk`, reading slot `slot` of ring
    /// `stage - 1` and writing slot `slot` of ring `stage`, on `stream`.
    fn op(&mut self, stream: usize, stage: usize, chunk: usize, slot: usize) -> Result<(), PipelineError>;
}

/// Hands `actions` to `to` in order, each to its call: the executor's one
/// walk over an action list, for every device.
pub fn enqueue_actions(actions: impl IntoIterator<Item = Action>, to: &mut impl EnqueueTo) -> Result<(), PipelineError> {
    for action in actions {
        match action {
            Action::Wait { stream, event } => to.wait(stream, event)?,
            Action::Record { stream, event } => to.record(stream, event)?,
            Action::BeginRun { stream, stage } => to.begin_run(stream, stage)?,
            Action::Op { stream, stage, chunk, slot } => to.op(stream, stage, chunk, slot)?,
        }
    }
    Ok(())
}
