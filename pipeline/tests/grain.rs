//! A grain of another crate, through the public API alone: what a grain's
//! module holds, shown by the smallest useful one. Stream launches with one
//! slot per ring (the serial baseline as a grain): a name, what it refuses,
//! and how it enqueues a run; the other hooks have defaults. Built into
//! `pc-pipeline` it would also take one line in its table of grains
//! (`grains::GRAINS`) to be named by `--grain`; from here it runs as
//! `Launch::Grain(&SerialGrain)`.
use pc_pipeline::exec::{Grain, Part, RunCtx};
use pc_pipeline::{LAUNCHES, Launch, PipelineError, PipelineSpec, Workload};

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

    fn enqueue_run(&self, part: &mut Part<'_>, run: &mut RunCtx<'_>) -> Result<(), PipelineError> {
        run.enqueue_streams(part)
    }
}

const SERIAL: Launch = Launch::Grain(&SerialGrain);

/// The grain's name and refusals reach a pipeline through the trait alone
/// (the same checks `Pipeline::run` makes, before anything is opened): it
/// runs nothing placed (the default) and is no grain of the table.
#[test]
fn a_grain_is_a_name_a_check_and_an_enqueue() {
    assert_eq!(SERIAL.name(), "serial");
    let spec = |k: usize| PipelineSpec::new(Workload::Generate).slots(k);
    spec(1).check_launch(SERIAL).unwrap();
    let e = spec(3).check_launch(SERIAL).unwrap_err().to_string();
    assert!(e.contains("one slot per ring, not -k 3") && !e.contains('\n'), "{e}");
    let e = spec(1).placement(vec![0, 1, 1]).check_launch(SERIAL).unwrap_err().to_string();
    assert!(e.contains("placed on several GPUs") && e.contains("--grain serial"), "{e}");
    assert!(!SerialGrain.runs_placed() && !SerialGrain.event_spans() && SerialGrain.stages().is_none());
    assert!("serial".parse::<Launch>().is_err());
    assert!(!LAUNCHES.contains(&SERIAL));
    assert_eq!(format!("{SERIAL:?}"), "Grain(\"serial\")");
}

/// A grain of yours named as a built-in one is refused (launches are equal
/// by name, so it would pass for the built-in), before anything runs.
#[test]
fn a_grain_with_a_builtin_name_is_refused() {
    struct Impostor;
    impl Grain for Impostor {
        fn name(&self) -> &'static str {
            "graph"
        }
        fn check(&self, _spec: &PipelineSpec) -> Result<(), PipelineError> {
            Ok(())
        }
        fn enqueue_run(&self, part: &mut Part<'_>, run: &mut RunCtx<'_>) -> Result<(), PipelineError> {
            run.enqueue_streams(part)
        }
    }
    let e = PipelineSpec::new(Workload::Generate).check_launch(Launch::Grain(&Impostor)).unwrap_err().to_string();
    assert!(e.contains("named \"graph\", as a built-in grain is"), "{e}");
}
