//! The table of grains: which [`Grain`] runs each [`Launch`]. It sits
//! above the grains (which import no other grain), so the model and the
//! executor name none of them.
use crate::PipelineError;
use crate::exec::{Grain, StreamsGrain, capture::GraphGrain, flags::FlagsGrain, pdl::PdlGrain, warps::WarpsGrain};
use crate::spec::{Launch, PipelineSpec};

/// The grain that runs `launch`.
pub(crate) fn grain(launch: Launch) -> &'static dyn Grain {
    match launch {
        Launch::Streams => &StreamsGrain,
        Launch::Graph => &GraphGrain,
        Launch::Flags => &FlagsGrain,
        Launch::Pdl { .. } => &PdlGrain,
        Launch::Warps => &WarpsGrain,
    }
}

impl PipelineSpec {
    /// Refuses, before anything is opened or allocated, what `launch`
    /// cannot run of this spec: the PDL grains anything but the generate
    /// pipeline, the warps grain a pipeline with no ring stage, the flags
    /// grain a stage with no flags form, a halo or K over its limit, and a
    /// placed pipeline any launch but streams or graph replay. The same
    /// checks run again when the pipeline runs.
    pub fn check_launch(&self, launch: Launch) -> Result<(), PipelineError> {
        if !self.placement.is_empty() && !matches!(launch, Launch::Streams | Launch::Graph) {
            return Err(PipelineError::BadStages(format!(
                "a pipeline placed on several GPUs runs with stream launches or graph replay, not --grain {}",
                launch.name()
            )));
        }
        grain(launch).check(self)
    }
}
