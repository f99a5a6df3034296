//! Fault paths on the simulated device, no GPU: a stage that fails
//! mid-run (an injected trap), a stream whose input ends mid-element, and
//! an interrupt. Each is one clear error, and leaves nothing that makes
//! the next run wrong.
use pc_pipeline::sim::{self, SIM_LAUNCHES, SimError, SimPipeline};
use pc_pipeline::{HostInput, Launch, PipelineError, PipelineSpec, StageRegistry, Workload};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn spec(list: &str, k: usize, chunk: u64, total: u64) -> PipelineSpec {
    PipelineSpec::new(Workload::Generate).stages(StageRegistry::builtin().parse(list).unwrap()).slots(k).chunk_elements(chunk).total_elements(total)
}

/// Random f32 input (in the references' usual range), `n` elements.
fn input(n: usize, mut x: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 4);
    for _ in 0..n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v = ((x >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// A stage that traps at a chunk, in every grain that runs the pipeline
/// and for every stage: the run call fails naming the stage and the
/// chunk, and the next run call of the same pipeline verifies.
#[test]
fn a_stage_failing_mid_run_is_named_and_the_next_run_verifies() {
    let mut ran = Vec::new();
    for list in ["producer,consumer,reduce", "producer,moving-average,fir,d2h"] {
        let spec = spec(list, 3, 100, 1000);
        let names: Vec<&str> = list.split(',').collect();
        for launch in SIM_LAUNCHES {
            if spec.check_launch(launch).is_err() {
                continue;
            }
            for (stage, name) in names.iter().enumerate() {
                for (runs, chunk) in [(1, 0), (2, 4), (1, 9)] {
                    let mut sim = SimPipeline::new(spec.clone(), HostInput::Generated).unwrap().scheduler_seed(stage as u64 * 31 + chunk as u64);
                    sim.inject_fault(stage, chunk);
                    let what = format!("{list}, {}, stage {name}, chunk {chunk}, {runs} run(s)", launch.name());
                    match sim.run(launch, runs) {
                        Err(e @ SimError::Reference(_)) => {
                            let line = e.to_string();
                            assert!(line.contains(&format!("stage {name} on chunk {chunk}: the kernel trapped")), "{what}: {line}");
                            assert!(!line.contains('\n'), "{what}: {line}");
                        }
                        other => panic!("{what}: not the stage's failure: {:?}", other.map(|r| r.runs)),
                    }
                    let report = sim.run(launch, runs).unwrap_or_else(|e| panic!("{what}: the run after the failure: {e}"));
                    let v = sim.verify(&report);
                    assert!(v.passed(), "{what}: the run after the failure: {}", v.summary());
                }
            }
            ran.push(launch);
        }
    }
    for l in [Launch::Streams, Launch::Graph, Launch::Flags, Launch::Warps, Launch::Pdl { graph: false }] {
        assert!(ran.contains(&l), "{} never ran", l.name());
    }
}

/// A fault past the last chunk is never reached: the run verifies. A
/// fault the run call does not reach (interrupted first) is gone after it
/// (the knob is for that call only).
#[test]
fn a_fault_never_reached_is_dropped_with_its_run() {
    let mut sim = SimPipeline::new(spec("producer,consumer,reduce", 2, 64, 256), HostInput::Generated).unwrap();
    sim.inject_fault(1, 4);
    let r = sim.run(Launch::Streams, 1).unwrap();
    assert!(sim.verify(&r).passed());
    let flag = Arc::new(AtomicBool::new(true));
    sim.set_interrupt(flag.clone());
    sim.inject_fault(1, 1);
    assert!(matches!(sim.run(Launch::Streams, 1), Err(SimError::Failed(PipelineError::Interrupted { .. }))));
    flag.store(false, Ordering::SeqCst);
    let r = sim.run(Launch::Streams, 1).unwrap();
    assert!(sim.verify(&r).passed());
    sim.inject_fault(1, 3);
    assert!(matches!(sim.run(Launch::Streams, 1), Err(SimError::Reference(_))));
    let r = sim.run(Launch::Streams, 1).unwrap();
    assert!(sim.verify(&r).passed());
}

/// A stream whose input ends mid-element is refused naming the bytes, as
/// on the GPU ([`PipelineError::StreamEndsMidElement`]), for every element
/// size; whole elements of the same input stream and verify.
#[test]
fn a_stream_ending_mid_element_names_the_bytes() {
    let list = "h2d,consumer,d2h";
    let spec = spec(list, 2, 64, 1);
    let data = input(1000, 5);
    for cut in [1, 2, 3] {
        let short = &data[..data.len() - cut];
        match sim::stream(&spec, short, 1) {
            Err(SimError::Failed(e @ PipelineError::StreamEndsMidElement { bytes, size: 4, partial })) => {
                assert_eq!((bytes, partial), (short.len() as u64, 4 - cut));
                let line = e.to_string();
                assert!(line.contains(&format!("{} bytes", short.len())), "{line}");
            }
            other => panic!("cut {cut}: not the mid-element error: {:?}", other.map(|o| o.len())),
        }
    }
    let whole = spec.clone().total_elements(1000);
    let out = sim::stream(&spec, &data, 1).unwrap();
    assert!(pc_pipeline::reference::verify(&whole, Some(&data), Some(&out), &[]).passed());
}

/// An interrupt set before a run call: no run, the interrupted error.
/// Cleared, the same pipeline runs and verifies.
#[test]
fn an_interrupt_stops_before_the_next_run_and_the_pipeline_runs_after() {
    for launch in [Launch::Streams, Launch::Graph, Launch::Flags, Launch::Warps] {
        let mut sim = SimPipeline::new(spec("producer,consumer,reduce", 3, 100, 1000), HostInput::Generated).unwrap();
        let flag = Arc::new(AtomicBool::new(true));
        sim.set_interrupt(flag.clone());
        match sim.run(launch, 5) {
            Err(SimError::Failed(e @ PipelineError::Interrupted { runs_done: 0, runs: 5 })) => assert!(e.to_string().starts_with("interrupted:"), "{e}"),
            other => panic!("{}: not interrupted: {:?}", launch.name(), other.map(|r| r.runs)),
        }
        flag.store(false, Ordering::SeqCst);
        let r = sim.run(launch, 2).unwrap();
        assert!(sim.verify(&r).passed(), "{}: after the interrupt", launch.name());
    }
}

/// An interrupt set while a long run call goes on (from another thread,
/// as a SIGINT handler would): it stops between runs, with fewer runs done
/// than asked, and the pipeline still verifies after.
#[test]
fn an_interrupt_mid_run_stops_at_a_run_boundary() {
    for launch in [Launch::Graph, Launch::Flags] {
        let mut sim = SimPipeline::new(spec("producer,consumer,reduce", 2, 64, 512), HostInput::Generated).unwrap().scheduler_seed(3);
        let flag = Arc::new(AtomicBool::new(false));
        sim.set_interrupt(flag.clone());
        let setter = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                flag.store(true, Ordering::SeqCst);
            })
        };
        // Seconds of runs uninterrupted (thousands of runs a second in a debug build).
        let runs = 20_000;
        match sim.run(launch, runs) {
            Err(SimError::Failed(PipelineError::Interrupted { runs_done, runs: r })) => {
                eprintln!("{}: {runs_done} of {r} runs before the interrupt", launch.name());
                assert!(runs_done < r && r == runs, "{runs_done} of {r}")
            }
            other => panic!("{}: not interrupted: {:?}", launch.name(), other.map(|r| r.runs)),
        }
        setter.join().unwrap();
        flag.store(false, Ordering::SeqCst);
        let r = sim.run(launch, 1).unwrap();
        assert!(sim.verify(&r).passed(), "{}: after the interrupt", launch.name());
    }
}

/// A stream interrupted: no output, the stream's interrupted error with the
/// chunks done.
#[test]
fn an_interrupted_stream_returns_no_output() {
    let spec = spec("h2d,fir,d2h", 2, 64, 1);
    let data = input(1000, 9);
    match sim::stream_interruptible(&spec, &data, 1, &AtomicBool::new(true)) {
        Err(SimError::Failed(PipelineError::StreamInterrupted { chunks: 0 })) => {}
        other => panic!("not interrupted: {:?}", other.map(|o| o.len())),
    }
    let out = sim::stream_interruptible(&spec, &data, 1, &AtomicBool::new(false)).unwrap();
    assert!(pc_pipeline::reference::verify(&spec.clone().total_elements(1000), Some(&data), Some(&out), &[]).passed());
}
