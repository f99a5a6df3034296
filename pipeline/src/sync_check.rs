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
use crate::exec::{HostInput, Launch, Pipeline};
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
    /// The stages as run (a placed pipeline has its peer copies in).
    pub stage_names: Vec<String>,
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

/// One run of `p` with stage `slowed` delayed by `delay_ns` before each of
/// its operations (0: none), rings re-poisoned first, every chunk verified.
pub fn run_slowed(p: &mut Pipeline, slowed: Option<usize>, delay_ns: u64) -> Result<Verification, PipelineError> {
    run_slowed_as(p, Launch::Streams, slowed, delay_ns)
}

/// [`run_slowed`] launched as `launch`.
pub fn run_slowed_as(p: &mut Pipeline, launch: Launch, slowed: Option<usize>, delay_ns: u64) -> Result<Verification, PipelineError> {
    let stages = p.spec().stages.len();
    p.set_delays((0..stages).map(|s| if Some(s) == slowed { delay_ns } else { 0 }).collect());
    p.poison_rings()?;
    let r = p.run(launch, 1, false)?;
    Ok(p.verify(&r))
}

/// One run of the PDL checker.
#[derive(Debug, Clone)]
pub struct PdlCheck {
    /// `Launch::Pdl { .. }`, plain or as a graph.
    pub launch: Launch,
    /// The consumer's fault bits (`nvptx_std::hopper::pdl::fault`; 0: the protocol).
    pub faults: u32,
    pub check: Verification,
}

impl PdlCheck {
    /// The protocol shows no corruption; a fault shows some.
    pub fn as_expected(&self) -> bool {
        if self.faults == 0 { self.check.passed() } else { self.check.chunks_wrong > 0 }
    }
}

/// The PDL grains' checker (one GPU of compute capability 9.0 or newer,
/// the generate pipeline): for `pdl` and `pdl-graph`, the complete protocol
/// with the producer slowed by `delay_ns` (must show no corruption), then
/// the consumer without its `griddepcontrol.wait` (`fault::SKIP_WAIT`),
/// producer slowed the same (must show corruption: the consumer, scheduled
/// as soon as the producer called `launch_dependents`, reads slots before
/// they are written).
///
/// # Safety
/// As [`Pipeline::set_pdl_faults`]: the faulted runs race on purpose;
/// their results are read only through verification.
pub unsafe fn check_pdl(gpu: &Gpu, spec: &PipelineSpec, input: HostInput, delay_ns: u64) -> Result<Vec<PdlCheck>, PipelineError> {
    let mut p = Pipeline::new(&[gpu], spec.clone().serial(false), input)?;
    let mut out = Vec::new();
    for launch in [Launch::Pdl { graph: false }, Launch::Pdl { graph: true }] {
        for faults in [0, nvptx_std::hopper::pdl::fault::SKIP_WAIT] {
            // SAFETY: the caller's contract.
            unsafe { p.set_pdl_faults(faults) }?;
            let check = run_slowed_as(&mut p, launch, Some(0), delay_ns);
            // SAFETY: the protocol again: no race.
            unsafe { p.set_pdl_faults(0) }?;
            out.push(PdlCheck { launch, faults, check: check? });
        }
    }
    Ok(out)
}

/// `p` (one GPU) run once without `edge` and with the edge's source stage
/// slowed (see [`stage_to_slow`]), then its full graph restored. The result
/// shows the corruption the edge prevents.
///
/// # Safety
/// As [`Pipeline::set_event_graph`]: the run races on purpose (stages read
/// slots another stream writes); results are read only through
/// verification, after the run synchronized.
pub unsafe fn run_without_edge(p: &mut Pipeline, edge: &Edge, delay_ns: u64) -> Result<EdgeResult, PipelineError> {
    let full = p.event_graph(0).ok_or(PipelineError::NoGpus)?.clone();
    // SAFETY: the race this function's caller accepted.
    unsafe { p.set_event_graph(|_| full.without(edge)) }?;
    let slowed_stage = stage_to_slow(edge);
    let check = run_slowed(p, Some(slowed_stage), delay_ns);
    // SAFETY: the full graph again: no race.
    unsafe { p.set_event_graph(|_| full.clone()) }?;
    Ok(EdgeResult { edge: *edge, slowed_stage, check: check? })
}

/// Runs the checker on one GPU, for any pipeline (built-in stages or
/// yours): each stage slowed in turn with the full graph (must show no
/// corruption), then each edge removed in turn ([`run_without_edge`]).
/// `delay_ns` is how long the slowed stage waits before each operation.
/// `progress(done, total)` is called per run.
///
/// # Safety
/// As [`run_without_edge`], for every edge: races on purpose.
pub unsafe fn check_edges(
    gpu: &Gpu,
    spec: &PipelineSpec,
    input: HostInput,
    delay_ns: u64,
    progress: impl FnMut(usize, usize),
) -> Result<SyncReport, PipelineError> {
    // SAFETY: the caller's contract.
    unsafe { check_edges_on(&[gpu], spec, input, delay_ns, progress) }
}

/// [`check_edges`] for a pipeline on several GPUs (`spec.placement`
/// indexes `gpus`): its edges across GPUs, peer copies included, are
/// checked like every other.
///
/// # Safety
/// As [`check_edges`].
pub unsafe fn check_edges_on(
    gpus: &[&Gpu],
    spec: &PipelineSpec,
    input: HostInput,
    delay_ns: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<SyncReport, PipelineError> {
    let mut p = Pipeline::new(gpus, spec.clone().serial(false), input)?;
    let stages = p.spec().stages.len();
    let stage_names = p.spec().stages.iter().map(|s| s.name().to_string()).collect();
    let full = p.event_graph(0).ok_or(PipelineError::NoGpus)?.clone();
    let total = stages + full.edges().len();
    let mut done = 0;
    let mut baseline = Vec::new();
    for stage in 0..stages {
        baseline.push((stage, run_slowed(&mut p, Some(stage), delay_ns)?));
        done += 1;
        progress(done, total);
    }
    let mut edges = Vec::new();
    for edge in full.edges() {
        // SAFETY: the caller's contract.
        edges.push(unsafe { run_without_edge(&mut p, edge, delay_ns) }?);
        done += 1;
        progress(done, total);
    }
    Ok(SyncReport { stage_names, baseline, edges })
}

/// One part of the flags grain's protocol removed on one ring, with the
/// stage it orders against slowed (see [`check_flags`]).
#[derive(Debug, Clone)]
pub struct FlagFaultResult {
    /// Ring `r` joins stages `r` and `r + 1`.
    pub ring: usize,
    /// What was removed, in words.
    pub removed: &'static str,
    /// The stage given the fault bit, and the bit (`kernel_math::ring::fault`).
    pub stage: usize,
    pub fault: u32,
    pub slowed_stage: usize,
    pub check: Verification,
}

impl FlagFaultResult {
    pub fn detected(&self) -> bool {
        self.check.chunks_wrong > 0
    }
}

/// The flags grain's checker findings.
#[derive(Debug, Clone)]
pub struct FlagsReport {
    /// The complete protocol, once per stage slowed: must all pass.
    pub baseline: Vec<(usize, Verification)>,
    pub faults: Vec<FlagFaultResult>,
}

/// The sync checker for the flags grain (one GPU): each stage slowed in
/// turn with the complete protocol (no corruption allowed), then, on every
/// ring, each part of the protocol removed in turn with the stage it
/// orders against slowed: the reader's *filled* wait (writer slowed), the
/// writer's *freed* wait (reader slowed), the release of *filled* (the
/// writer publishes before its block's writes are done; writer slowed) and
/// the release of *freed* (the reader publishes before reading; reader
/// slowed). `delay_ns` is the slowed stage's delay per chunk.
///
/// # Safety
/// Races on purpose, as [`Pipeline::set_flag_faults`].
pub unsafe fn check_flags(gpu: &Gpu, spec: &PipelineSpec, delay_ns: u64, mut progress: impl FnMut(usize, usize)) -> Result<FlagsReport, PipelineError> {
    use kernel_math::ring::fault;
    let stages = spec.stages.len();
    let mut p = Pipeline::new(&[gpu], spec.clone().serial(false), HostInput::Generated)?;
    let run = |p: &mut Pipeline, faults: Vec<u32>, slowed: usize| -> Result<Verification, PipelineError> {
        p.set_delays((0..stages).map(|s| if s == slowed { delay_ns } else { 0 }).collect());
        // SAFETY: the caller's contract.
        unsafe { p.set_flag_faults(faults) };
        p.poison_rings()?;
        let r = p.run(Launch::Flags, 1, false)?;
        Ok(p.verify(&r))
    };
    let kinds: [(&'static str, bool, u32, bool); 4] = [
        // (removed, on the writer?, bit, slow the writer?)
        ("reader's filled wait", false, fault::SKIP_FILLED_WAIT, true),
        ("writer's freed wait", true, fault::SKIP_FREED_WAIT, false),
        ("release of filled (published before the block's writes)", true, fault::EARLY_FILLED, true),
        ("release of freed (published before the reads)", false, fault::EARLY_FREED, false),
    ];
    let total = stages + (stages - 1) * kinds.len();
    let mut done = 0;
    let mut baseline = Vec::new();
    for s in 0..stages {
        baseline.push((s, run(&mut p, Vec::new(), s)?));
        done += 1;
        progress(done, total);
    }
    let mut faults = Vec::new();
    for ring in 0..stages - 1 {
        for (removed, on_writer, bit, slow_writer) in kinds {
            let stage = if on_writer { ring } else { ring + 1 };
            let slowed_stage = if slow_writer { ring } else { ring + 1 };
            let bits = (0..stages).map(|s| if s == stage { bit } else { 0 }).collect();
            let check = run(&mut p, bits, slowed_stage)?;
            faults.push(FlagFaultResult { ring, removed, stage, fault: bit, slowed_stage, check });
            done += 1;
            progress(done, total);
        }
    }
    // SAFETY: the complete protocol again.
    unsafe { p.set_flag_faults(Vec::new()) };
    Ok(FlagsReport { baseline, faults })
}

/// One run of the warps checker.
#[derive(Debug, Clone)]
pub struct RingCheck {
    /// The ring kernels' fault bits (`nvptx_std::hopper::ring::fault`; 0: the protocol).
    pub faults: u32,
    pub check: Verification,
}

impl RingCheck {
    /// The protocol shows no corruption; a fault shows some.
    pub fn as_expected(&self) -> bool {
        if self.faults == 0 { self.check.passed() } else { self.check.chunks_wrong > 0 }
    }
}

/// The warps grain's checker (one GPU of compute capability 9.0 or newer):
/// the ring kernels' producer lane slowed by `delay_ns` before each copy,
/// first with the complete protocol (must show no corruption), then with
/// the consumers skipping the full barrier's wait (`SKIP_FULL_WAIT`; must
/// show corruption: they read slots before the copy lands).
///
/// # Safety
/// As [`Pipeline::set_ring_knobs`]: the faulted run races on purpose; its
/// results are read only through verification.
pub unsafe fn check_warps(gpu: &Gpu, spec: &PipelineSpec, input: HostInput, delay_ns: u64) -> Result<Vec<RingCheck>, PipelineError> {
    let mut p = Pipeline::new(&[gpu], spec.clone().serial(false), input)?;
    let mut out = Vec::new();
    for faults in [0, nvptx_std::hopper::ring::fault::SKIP_FULL_WAIT] {
        // SAFETY: the caller's contract.
        unsafe { p.set_ring_knobs(faults, delay_ns) }?;
        let check = run_slowed_as(&mut p, Launch::Warps, None, 0);
        // SAFETY: the protocol again: no race.
        unsafe { p.set_ring_knobs(0, 0) }?;
        out.push(RingCheck { faults, check: check? });
    }
    Ok(out)
}
