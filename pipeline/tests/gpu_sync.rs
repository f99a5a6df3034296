//! The sync checker on a GPU: every filled and freed edge of the default
//! pipelines is needed (removing it, with its source stage slowed, corrupts
//! a chunk that the checks catch), and the full graph shows no corruption.
use pc_pipeline::sync_check::check_edges;
use pc_pipeline::{HostInput, PipelineSpec, Workload};
use pc_runtime::gpu::Gpu;

#[test]
#[ignore = "needs a CUDA device"]
fn every_edge_of_the_default_pipelines_is_needed_and_detected() {
    let gpu = Gpu::open(0).unwrap();
    for workload in [Workload::Generate, Workload::Stream] {
        for k in 1..=3 {
            let spec = PipelineSpec::new(workload).slots(k).chunk_elements(1 << 18).total_elements(6 << 18);
            // SAFETY: the races on purpose that the checker shows, results only verified.
            let report = unsafe { check_edges(&gpu, &spec, HostInput::Generated, 1_000_000, |_, _| {}) }.unwrap();
            for (stage, v) in &report.baseline {
                assert!(v.passed(), "{workload:?} K={k}: corruption with every edge, stage {stage} slowed: {v:?}");
            }
            for r in &report.edges {
                assert!(r.detected(), "{workload:?} K={k}: removing {:?} went unnoticed", r.edge);
            }
            eprintln!("{workload:?} K={k}: {} edges, all needed and detected", report.edges.len());
        }
    }
}
