//! The executor's `Result` and its CUDA error helper, shared by `exec` and
//! its children (a module of its own, so a child need not import its parent).
use crate::PipelineError;
use pc_runtime::Error;

pub(crate) type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// Maps a driver error to [`PipelineError::Runtime`], saying what failed.
pub(crate) fn err(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> PipelineError + '_ {
    move |e| PipelineError::Runtime(Error::cuda(what)(e))
}
