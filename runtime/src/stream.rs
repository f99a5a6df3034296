//! What a stream does besides copies and launches, in the terms this
//! project uses: timing events, and capturing a stream's work as a CUDA
//! graph. Callers name no driver enum (issue 19: driver details live in
//! this crate).
use cudarc::driver::{CudaGraph, CudaStream, DriverError, sys};
use std::sync::Arc;

/// The flags of an event that times (`CU_EVENT_DEFAULT`), for
/// `CudaStream::record_event` and `CudaContext::new_event`: `None` there
/// gives an event without timing, whose `elapsed_ms` fails.
pub const TIMING: Option<sys::CUevent_flags> = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);

/// Starts capturing `stream`'s work into a graph, in the thread-local mode
/// ([`cuStreamBeginCapture`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__STREAM.html#group__CUDA__STREAM_1g767167da0bbf07157dc20b6c258a2143)):
/// only this thread's unsafe calls (a synchronization, say) are refused
/// while it lasts. End it with [`end_capture`].
pub fn begin_capture(stream: &CudaStream) -> Result<(), DriverError> {
    stream.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
}

/// Ends the capture [`begin_capture`] started and instantiates the graph
/// with the default flags; `None` where nothing was captured.
pub fn end_capture(stream: &Arc<CudaStream>) -> Result<Option<CudaGraph>, DriverError> {
    stream.end_capture(sys::CUgraphInstantiate_flags(0))
}

/// Whether `stream` is being captured into a graph, or was and the capture
/// failed (invalidated, not yet ended): either way, work enqueued now would
/// not run as a plain stream launch.
pub fn is_capturing(stream: &CudaStream) -> Result<bool, DriverError> {
    Ok(stream.capture_status()? != sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE)
}
