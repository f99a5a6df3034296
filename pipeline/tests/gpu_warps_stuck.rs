//! The warps grain's watchdog on a GPU (sm_90 or newer), in a process of
//! its own: the trap it ends in leaves the context unusable. A ring whose
//! producer lane never fills its first slot must end as one line naming the
//! stage, the slot and who waited, within the watchdog's time, not hang.
//! Run with --include-ignored.
use nvptx_std::hopper::ring::fault::STALL_PRODUCER;
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload};
use pc_runtime::gpu::Gpu;
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs a CUDA device"]
fn a_stuck_warp_ring_names_its_stage_and_slot() {
    let gpu = Gpu::open(0).unwrap();
    if gpu.info().compute_capability < (9, 0) {
        println!("SKIPPED: gpu_warps_stuck::a_stuck_warp_ring_names_its_stage_and_slot: the warps grain needs sm_90");
        return;
    }
    let spec = PipelineSpec::new(Workload::Stream).slots(2).chunk_elements(1 << 16).total_elements(1 << 18).watchdog_ms(300);
    let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
    // SAFETY: the fault only stalls the ring (no race); the run's outcome is the error.
    unsafe { p.set_ring_knobs(STALL_PRODUCER, 0) }.unwrap();
    let t = Instant::now();
    let e = p.run(Launch::Warps, 1, false).unwrap_err().to_string();
    eprintln!("{e} (after {:?})", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(5), "the watchdog fires after 300 ms, not {:?}", t.elapsed());
    assert!(e.starts_with("the warps grain stopped: in stage consumer's ring") && !e.contains('\n'), "{e}");
    assert!(e.contains("a consumer thread waited for the bulk copy to fill slot 0") && e.contains("past the watchdog's 300 ms"), "{e}");
}
