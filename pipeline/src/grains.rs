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

/// Every launch, in the order `--grain` lists them: a command line's
/// values are their [`Launch::name`]s (host builds its `--grain` parser
/// from this list, so a grain's name is spelled once).
pub const LAUNCHES: [Launch; 6] = [Launch::Streams, Launch::Graph, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps, Launch::Flags];

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

    /// What a grain's module holds, shown by the smallest useful grain:
    /// stream launches with one slot per ring (the serial baseline as a
    /// grain). A name, what it refuses, and how it enqueues a run; the
    /// other hooks have defaults. To be named by `--grain` it would also
    /// take a `Launch` variant, an entry in [`LAUNCHES`] and an arm in
    /// [`grain`] (ARCHITECTURE.md, "Where a change goes").
    struct SerialGrain;

    impl Grain for SerialGrain {
        fn name(&self) -> &'static str {
            "serial"
        }

        fn check(&self, spec: &PipelineSpec) -> Result<(), PipelineError> {
            if spec.slots != 1 {
                return Err(PipelineError::BadStages(format!("the serial grain runs one slot per ring, not -k {}", spec.slots)));
            }
            Ok(())
        }

        fn enqueue_run(&self, part: &mut crate::exec::part::Part<'_>, run: &mut crate::exec::RunCtx<'_>) -> Result<(), PipelineError> {
            part.enqueue(run.spec, run.part, run.host, run.spans.take())
        }
    }

    /// The small grain's name and refusals reach the executor through the
    /// trait alone; it runs nothing placed (the default) and is no grain of
    /// the table, whose names stay the six built-ins'.
    #[test]
    fn a_grain_is_a_name_a_check_and_an_enqueue() {
        let g: &dyn Grain = &SerialGrain;
        assert_eq!(g.name(), "serial");
        let spec = |k: usize| PipelineSpec::new(crate::Workload::Generate).slots(k);
        g.check(&spec(1)).unwrap();
        let e = g.check(&spec(3)).unwrap_err().to_string();
        assert!(e.contains("one slot per ring, not -k 3"), "{e}");
        assert!(!g.runs_placed() && !g.event_spans() && g.stages().is_none());
        assert!("serial".parse::<Launch>().is_err());
    }
}
