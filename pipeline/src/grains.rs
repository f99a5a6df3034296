//! The table of grains: which [`Grain`] runs each [`Launch`]. It sits
//! above the grains (which import no other grain), so the model and the
//! executor name none of them.
use crate::builtin::StageRegistry;
use crate::exec::{Grain, RunReport, StreamsGrain, capture::GraphGrain, flags::FlagsGrain, pdl::PdlGrain, warps::WarpsGrain};
use crate::spec::{Launch, PipelineSpec};
use crate::{Pipeline, PipelineError};

/// The built-in stages with a flags form (the flags grain's error names them).
fn flag_stage_names() -> Vec<String> {
    StageRegistry::builtin().stages().iter().filter(|s| s.flag_form().is_some()).map(|s| s.name().to_string()).collect()
}

/// Every launch, in the order `--grain` lists them.
pub(crate) const LAUNCHES: [Launch; 6] =
    [Launch::Streams, Launch::Graph, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps, Launch::Flags];

impl Launch {
    /// The grain's name on the command line (`--grain`), its grain's.
    pub fn name(self) -> &'static str {
        grain(self).name()
    }
}

impl std::str::FromStr for Launch {
    type Err = PipelineError;

    /// The launch whose grain is named `s` (see [`Launch::name`]).
    fn from_str(s: &str) -> Result<Launch, PipelineError> {
        LAUNCHES.into_iter().find(|l| l.name() == s).ok_or_else(|| {
            let names: Vec<&str> = LAUNCHES.iter().map(|l| l.name()).collect();
            PipelineError::BadStages(format!("no grain {s:?}; the grains are {}", names.join(", ")))
        })
    }
}

/// The grain that runs `launch`.
pub(crate) fn grain(launch: Launch) -> &'static dyn Grain {
    match launch {
        Launch::Streams => &StreamsGrain,
        Launch::Graph => &GraphGrain,
        Launch::Flags => &FlagsGrain { with_form: flag_stage_names },
        Launch::Pdl { graph: false } => &PdlGrain { graph: false },
        Launch::Pdl { graph: true } => &PdlGrain { graph: true },
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

impl Pipeline<'_> {
    /// Runs the pipeline `runs` times back to back (no host synchronization
    /// between runs: each run's streams wait on the previous run's end),
    /// then synchronizes once. `timeline` records start/end events of every
    /// (stage, chunk) of the last run (stream launches and the warps grain;
    /// the flags grain's from device timestamps).
    pub fn run(&mut self, launch: Launch, runs: usize, timeline: bool) -> Result<RunReport, PipelineError> {
        self.run_with_progress(launch, runs, timeline, |_| {})
    }

    /// [`Pipeline::run`], calling `progress(done_runs)` as runs finish on the GPU.
    pub fn run_with_progress(&mut self, launch: Launch, runs: usize, timeline: bool, progress: impl FnMut(usize)) -> Result<RunReport, PipelineError> {
        self.run_grain(grain(launch), launch.name(), runs, timeline, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every launch is listed once, has a name of its own, and reads back
    /// from it.
    #[test]
    fn every_launch_reads_back_from_its_name() {
        let names: Vec<&str> = LAUNCHES.iter().map(|l| l.name()).collect();
        assert_eq!(names, ["streams", "graph", "pdl", "pdl-graph", "warps", "flags"]);
        for l in LAUNCHES {
            assert_eq!(l.name().parse::<Launch>().unwrap(), l);
        }
        let e = "pdl_graph".parse::<Launch>().unwrap_err().to_string();
        assert!(e.contains("no grain \"pdl_graph\"") && e.contains("streams, graph, pdl, pdl-graph, warps, flags"), "{e}");
    }
}
