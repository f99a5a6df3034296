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

/// The table of grains: every built-in grain, in the order `--grain`
/// lists them, with the [`Launch`] that names it. Adding a grain is its
/// module and one line here, `entry(&ItsGrain)` (its [`Launch`] is then
/// [`Launch::Grain`]); [`LAUNCHES`], [`Launch::name`], [`Launch`]'s
/// `FromStr` and host's `--grain` all come from this table. No named
/// grain's hooks are reachable from outside the crate (only a
/// [`Launch::Grain`]'s are: give one a grain whose hooks are sound in any
/// order, as a grain of another crate is by the trait's safe API).
const GRAINS: [(Launch, &dyn Grain); 6] = [
    (Launch::Streams, &StreamsGrain),
    (Launch::Graph, &GraphGrain),
    (Launch::Pdl { graph: false }, &PdlGrain { graph: false }),
    (Launch::Pdl { graph: true }, &PdlGrain { graph: true }),
    (Launch::Warps, &WarpsGrain),
    (Launch::Flags, &FlagsGrain { with_form: flag_stage_names }),
];

/// A table line for a grain with no named [`Launch`] variant.
#[allow(dead_code)]
const fn entry(grain: &'static dyn Grain) -> (Launch, &'static dyn Grain) {
    (Launch::Grain(grain), grain)
}

/// Every launch of the table, in the order `--grain` lists them: a command
/// line's values are their [`Launch::name`]s (host builds its `--grain`
/// parser from this list, so a grain's name is spelled once).
pub const LAUNCHES: [Launch; GRAINS.len()] = {
    let mut out = [Launch::Streams; GRAINS.len()];
    let mut i = 0;
    while i < GRAINS.len() {
        out[i] = GRAINS[i].0;
        i += 1;
    }
    out
};

impl Launch {
    /// The grain's name on the command line (`--grain`), its grain's.
    pub fn name(self) -> &'static str {
        grain(self).name()
    }
}

impl std::str::FromStr for Launch {
    type Err = PipelineError;

    /// The launch of the table whose grain is named `s` (see [`Launch::name`]).
    fn from_str(s: &str) -> Result<Launch, PipelineError> {
        GRAINS.iter().find(|(_, g)| g.name() == s).map(|(l, _)| *l).ok_or_else(|| {
            let names: Vec<&str> = GRAINS.iter().map(|(_, g)| g.name()).collect();
            PipelineError::BadStages(format!("no grain {s:?}; the grains are {}", names.join(", ")))
        })
    }
}

/// The grain that runs `launch`: its own for [`Launch::Grain`], the
/// table's for a named variant.
fn grain(launch: Launch) -> &'static dyn Grain {
    if let Launch::Grain(g) = launch {
        return g;
    }
    let same = |l: &Launch| match (l, &launch) {
        (Launch::Pdl { graph: a }, Launch::Pdl { graph: b }) => a == b,
        (l, launch) => std::mem::discriminant(l) == std::mem::discriminant(launch),
    };
    // Every named variant has its line (a test checks).
    GRAINS.iter().find(|(l, _)| same(l)).map_or(&StreamsGrain, |(_, g)| *g)
}

impl PipelineSpec {
    /// Refuses, before anything is opened or allocated, what `launch`
    /// cannot run of this spec: the PDL grains a stage with no PDL form,
    /// the warps grain a pipeline with no stage of a warps form, the flags
    /// grain a stage with no flags form, a halo or K over its limit, and a
    /// placed pipeline any launch but streams or graph replay (any grain
    /// that does not run placed pipelines). The same checks run again when
    /// the pipeline runs.
    pub fn check_launch(&self, launch: Launch) -> Result<(), PipelineError> {
        not_a_builtin_name(launch)?;
        if !self.placement.is_empty() && !grain(launch).runs_placed() {
            return Err(PipelineError::BadStages(format!(
                "a pipeline placed on several GPUs runs with stream launches or graph replay, not --grain {}",
                launch.name()
            )));
        }
        grain(launch).check(self)
    }
}

/// Refuses a [`Launch::Grain`] named as a built-in grain is: launches are
/// equal by name, so it would pass for the built-in one.
fn not_a_builtin_name(launch: Launch) -> Result<(), PipelineError> {
    let Launch::Grain(g) = launch else { return Ok(()) };
    match GRAINS.iter().find(|(l, t)| t.name() == g.name() && !matches!(l, Launch::Grain(_))) {
        Some(_) => Err(PipelineError::BadStages(format!("a grain of yours is named {:?}, as a built-in grain is; give it a name of its own", g.name()))),
        None => Ok(()),
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
        not_a_builtin_name(launch)?;
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

    /// Every named variant has its own line of the table (what `grain`
    /// relies on), and a `Launch::Grain` of a table grain is the same launch.
    #[test]
    fn every_named_launch_has_its_line() {
        for (l, g) in GRAINS {
            assert_eq!(grain(l).name(), g.name(), "{l:?}");
            assert_eq!(Launch::Grain(g), l);
            assert_eq!(entry(g).0, l);
        }
        assert_eq!(format!("{:?}", Launch::Pdl { graph: true }), "Pdl { graph: true }");
        assert_eq!(format!("{:?}", Launch::Grain(GRAINS[4].1)), "Grain(\"warps\")");
    }
}
