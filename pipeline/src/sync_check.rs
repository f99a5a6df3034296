//! The sync checker: proves each edge of a pipeline's event graph is needed.
//!
//! For every edge in turn, the pipeline runs with only that edge removed and
//! with one stage slowed on purpose, so that the race the missing edge opens
//! actually happens: for a *filled* edge the upstream stage is slowed (the
//! downstream stage then reads the slot before it is written); for a *freed*
//! edge the downstream stage is slowed (the upstream stage then overwrites
//! the slot before it is read). Rings are re-poisoned before each run and
//! every chunk is checked against the CPU reference. The unmodified graph
//! runs with each of the same delays and must show no corruption.
use crate::PipelineError;
use crate::exec::{Input, Launch, Pipeline};
use crate::graph::{Edge, EdgeKind};
use crate::reference::Verification;
use crate::spec::PipelineSpec;
use pc_runtime::gpu::Gpu;

/// What removing one edge did.
#[derive(Debug, Clone)]
pub struct EdgeResult {
    pub edge: Edge,
    /// The stage slowed for this run.
    pub slowed_stage: usize,
    pub check: Verification,
}

impl EdgeResult {
    /// The edge is needed, and the checks saw what goes wrong without it.
    pub fn detected(&self) -> bool {
        self.check.chunks_wrong > 0
    }
}

/// The checker's findings.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// The full graph, once per stage slowed: must all pass.
    pub baseline: Vec<(usize, Verification)>,
    pub edges: Vec<EdgeResult>,
}

impl SyncReport {
    /// Zero corruption with every edge, and corruption detected without each one.
    pub fn all_needed_and_clean(&self) -> bool {
        self.baseline.iter().all(|(_, v)| v.passed()) && self.edges.iter().all(EdgeResult::detected)
    }
}

/// The stage to slow so that removing `edge` opens a race: the edge's
/// source, whose completion the edge waited for. For a filled edge that is
/// the upstream writer (it writes late, the reader comes early); for a freed
/// edge the downstream reader (it reads late, the next writer comes early).
pub fn stage_to_slow(edge: &Edge) -> usize {
    debug_assert!(matches!(edge.kind, EdgeKind::Filled | EdgeKind::Freed));
    edge.from.0
}

/// Runs the checker on one GPU. `delay_ns` is how long the slowed stage
/// waits before each operation. `progress(done, total)` is called per run.
pub fn check_edges(gpu: &Gpu, spec: &PipelineSpec, input: Input, delay_ns: u64, mut progress: impl FnMut(usize, usize)) -> Result<SyncReport, PipelineError> {
    let stages = spec.stages.len();
    let mut p = Pipeline::new(&[gpu], spec.clone().serial(false), input)?;
    let full = p.event_graph(0).clone();
    let delays_for = |stage: usize| (0..stages).map(|s| if s == stage { delay_ns } else { 0 }).collect::<Vec<_>>();
    let total = stages + full.edges().len();
    let mut done = 0;

    let run = |p: &mut Pipeline, stage: usize| -> Result<Verification, PipelineError> {
        p.set_delays(delays_for(stage));
        p.poison_rings()?;
        let r = p.run(Launch::Streams, 1, false)?;
        Ok(p.verify(&r))
    };

    let mut baseline = Vec::new();
    for stage in 0..stages {
        baseline.push((stage, run(&mut p, stage)?));
        done += 1;
        progress(done, total);
    }
    let mut edges = Vec::new();
    for edge in full.edges() {
        // SAFETY: a race on purpose, which is what this checker shows: the
        // rings hold Element types (any bits valid) and results are read
        // only through verification, after the run synchronized.
        unsafe { p.set_event_graph(|_| full.without(edge)) }?;
        let slowed_stage = stage_to_slow(edge);
        let check = run(&mut p, slowed_stage)?;
        edges.push(EdgeResult { edge: *edge, slowed_stage, check });
        done += 1;
        progress(done, total);
    }
    // SAFETY: the full graph again: no race.
    unsafe { p.set_event_graph(|_| full.clone()) }?;
    Ok(SyncReport { baseline, edges })
}
