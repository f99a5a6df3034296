//! Runs a [`PipelineSpec`] on one or more GPUs: per GPU, one stream per
//! stage, a ring of K slots between neighbouring stages, and exactly the
//! waits of the [`EventGraph`]. The host only enqueues; it synchronizes once,
//! at the end of a run (and on every error path, before returning).
//!
//! - `part`: one GPU's share: allocation, the memory budget, teardown;
//! - `enqueue`: one run's operations with their waits;
//! - `capture`: a run captured as a CUDA graph, replayed;
//! - `error`: the executor's `Result` and CUDA error helper;
//! - [`pdl`]: the PDL grains (sm_90): the generate pipeline on one stream,
//!   programmatic dependent launches, plain or captured as a graph;
//! - [`warps`]: the warps grain (sm_90): consumer and reduce on the
//!   warp-specialized mbarrier ring;
//! - [`plan`]: one run's stream operations as data (what `enqueue` walks);
//! - [`device`]: the seam: the one walk of an action list, to CUDA or to
//!   the simulated device ([`crate::sim`]);
//! - [`split`]: chunks spread over GPUs.
pub(crate) mod capture;
pub mod device;
mod enqueue;
mod error;
pub(crate) mod flags;
pub(crate) mod part;
pub use part::{GrainState, Part, PartStages};
pub mod pdl;
pub mod plan;
pub mod split;
pub mod warps;

use crate::PipelineError;
use crate::elem::{ElemType, HostChunk};
use crate::graph::EventGraph;
use crate::host_mem::PinnedBuffer;
use crate::reference::{Verification, verify};
use crate::spec::PipelineSpec;
use crate::timeline::{PendingSpan, Timeline};
use cudarc::driver::CudaEvent;
use error::{Result, err};
use kernel_math::{Element, POISON_BITS, Reduction};

use pc_runtime::Error;
use pc_runtime::gpu::Gpu;
use std::path::PathBuf;
use std::time::Instant;

/// The old name of [`HostInput`].
#[deprecated(note = "renamed HostInput: a source is a stage kind (SourceStage)")]
pub type Input = HostInput;

/// Where a pipeline's host input (what its `h2d` stage copies) comes from.
#[derive(Debug, Clone)]
pub enum HostInput {
    /// Generated on the host: `produce(i, seed)` for f32, hashed bytes for
    /// other element types.
    Generated,
    /// Little-endian elements of the source's type from a file, at least
    /// `total_elements` of them.
    File(PathBuf),
    /// These elements (their type must be the source's).
    Data(HostChunk),
}

impl HostInput {
    /// HostInput from a slice of elements.
    pub fn from_slice<T: Element>(v: &[T]) -> HostInput {
        HostInput::Data(HostChunk::from_slice(v))
    }
}

/// The outcome of [`Pipeline::run`].
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Runs enqueued back to back.
    pub runs: usize,
    /// GPU time from the first run's origin event to the last run's end
    /// event, the largest over the GPUs.
    pub gpu_ms: f32,
    /// Host time from the first enqueue to the final synchronize.
    pub wall_ms: f64,
    /// Per-GPU time of each part, same origin/end events.
    pub part_ms: Vec<f32>,
    /// One record per chunk (reduce sinks; empty otherwise), from the last run.
    pub reductions: Vec<Reduction>,
    /// Start and end of every (stage, chunk), when asked for (stream
    /// launches and the warps grain, from events; the flags grain, from
    /// device timestamps).
    pub timeline: Option<Timeline>,
    /// The flags grain's device timestamps of the last run, per GPU (when a
    /// timeline was asked for).
    pub flag_stamps: Vec<crate::timeline::FlagStamps>,
}

impl RunReport {
    /// HostInput bytes moved per second, over all runs, in decimal GB/s.
    pub fn input_gbps(&self, spec: &PipelineSpec) -> f64 {
        let size = spec.input_type().map_or(4, |t| t.size());
        let bytes = spec.total_elements as f64 * size as f64 * self.runs as f64;
        bytes / (self.gpu_ms as f64 * 1e-3) / 1e9
    }
}

/// A pipeline ready to run: buffers allocated, streams and events created.
///
/// Dropping it waits for the GPU work that uses its memory; so does every
/// error return of [`Pipeline::run`].
///
/// ```no_run
/// use pc_pipeline::{Pipeline, PipelineSpec, Workload, Launch, HostInput};
/// use pc_runtime::gpu::Gpu;
/// let gpu = Gpu::open(0)?;
/// let spec = PipelineSpec::new(Workload::Stream).slots(3).chunk_elements(1 << 20).total_elements(1 << 26);
/// let mut pipeline = Pipeline::new(&[&gpu], spec, HostInput::Generated)?;
/// let report = pipeline.run(Launch::Streams, 1, false)?;
/// assert!(pipeline.verify(&report).passed());
/// println!("{:.1} GB/s", report.input_gbps(pipeline.spec()));
/// # Ok::<(), pc_pipeline::PipelineError>(())
/// ```
pub struct Pipeline<'g> {
    spec: PipelineSpec,
    /// Declared before the host buffers: dropped (and synchronized) first.
    parts: Vec<Part<'g>>,
    input: Option<PinnedBuffer>,
    output: Option<PinnedBuffer>,
    output_type: ElemType,
    input_type: ElemType,
    /// Set from outside (a signal handler) to stop between runs.
    interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// A run started and has not been seen to finish (it returned early: a
    /// panic in the progress callback, caught by the caller). Host buffers
    /// are handed out only after the streams are synchronized.
    in_flight: std::sync::atomic::AtomicBool,
    /// Fault bits per stage in the flags grain (the sync checker's).
    flag_faults: Vec<u32>,
}

/// How a run is launched: the grain of its hand-offs. The named variants
/// are the built-in grains (`grains::GRAINS`, the table, binds each to its
/// [`Grain`]); [`Launch::Grain`] runs any other grain, one of the table or
/// one of yours. Two launches are equal when their grains have the same
/// name.
#[derive(Clone, Copy)]
pub enum Launch {
    /// Every operation enqueued on the streams, each run.
    Streams,
    /// The launch sequence captured once as a CUDA graph and replayed.
    Graph,
    /// The flags grain: each stage one kernel for the whole run, all
    /// running at once, slots handed over through counters in device
    /// memory (`nvptx_std::ring`) instead of events. Stages need a flag
    /// form (see [`crate::flags`]).
    Flags,
    /// Programmatic dependent launch (sm_90; see [`pdl`]): a
    /// chain of stages with PDL forms (the generate pipeline's built-ins
    /// have theirs) on one stream, each kernel starting while the one ahead
    /// of it finishes and waiting on the GPU (`griddepcontrol.wait`);
    /// enqueued each run, or with `graph` captured once and replayed.
    Pdl { graph: bool },
    /// Stream launches as [`Launch::Streams`], with the stages that have a
    /// warps form ([`warps::WarpForm`]; the built-in consumer, reduce and
    /// fir do) on the warp-specialized mbarrier ring (sm_90; see
    /// [`warps`]).
    Warps,
    /// Any grain: one added to the table since the named ones, or one of
    /// yours (a `'static` value of a type implementing [`Grain`]).
    Grain(&'static dyn Grain),
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Launch::Streams => f.write_str("Streams"),
            Launch::Graph => f.write_str("Graph"),
            Launch::Flags => f.write_str("Flags"),
            Launch::Pdl { graph } => f.debug_struct("Pdl").field("graph", graph).finish(),
            Launch::Warps => f.write_str("Warps"),
            Launch::Grain(g) => f.debug_tuple("Grain").field(&g.name()).finish(),
        }
    }
}

/// Launches are their grains: equal when the grains' names are.
impl PartialEq for Launch {
    fn eq(&self, other: &Launch) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Launch {}

/// One way of launching a pipeline's work (`--grain`): a grain. Each
/// built-in grain is a module implementing it and one line in the table of
/// grains (`grains::GRAINS`, from which [`crate::LAUNCHES`],
/// [`Launch::name`] and [`Launch`]'s `FromStr` come); a grain of yours runs
/// with [`Launch::Grain`]. The executor runs a pipeline through this trait
/// alone. The hooks run in this order: `prepare` (per part), the stages
/// selected, then in flight `check_run`, `before_runs` (per part),
/// `enqueue_run` (per run, per part), and after the final synchronize
/// `status`, `records` and `stamps` (per part); `failure` after a failed
/// run.
///
/// The hooks are safe to implement: a [`Part`] hands a grain of another
/// crate its own state ([`Part::state`]) and the run's stream launches
/// ([`RunCtx::enqueue_streams`]), nothing that enqueues raw GPU work.
/// A grain whose GPU work is its stages' own takes it from their forms
/// (as the flags, PDL and warps grains do), whose GPU side is an `unsafe`
/// trait with its contract.
pub trait Grain: Sync {
    /// Its name on the command line (`--grain`), which [`Launch::name`]
    /// gives and [`Launch`]'s `FromStr` reads.
    fn name(&self) -> &'static str;

    /// Refuses, before anything is opened or allocated, what this grain
    /// cannot run of `spec`.
    fn check(&self, spec: &PipelineSpec) -> Result<()>;

    /// Whether it runs a pipeline placed on several GPUs.
    fn runs_placed(&self) -> bool {
        false
    }

    /// Before the run is in flight: what the part keeps between runs
    /// (made once).
    fn prepare(&self, _part: &mut Part<'_>, _spec: &PipelineSpec) -> Result<()> {
        Ok(())
    }

    /// The type of the part's state whose stages this grain runs instead
    /// of the part's own (see [`GrainState::select`]).
    fn stages(&self) -> Option<std::any::TypeId> {
        None
    }

    /// Refuses, when the run starts, what [`Grain::prepare`] does not.
    fn check_run(&self, _spec: &PipelineSpec) -> Result<()> {
        Ok(())
    }

    /// In flight, once per run call, before the first run: captures
    /// (`run.spans()` is empty).
    fn before_runs(&self, _part: &mut Part<'_>, _run: &mut RunCtx<'_>) -> Result<()> {
        Ok(())
    }

    /// Enqueues one run on one part.
    fn enqueue_run(&self, part: &mut Part<'_>, run: &mut RunCtx<'_>) -> Result<()>;

    /// After the runs synchronized: the error the device recorded, if any.
    fn status(&self, _part: &mut Part<'_>) -> Result<()> {
        Ok(())
    }

    /// After the runs synchronized: the sink's per-chunk records.
    fn records(&self, part: &mut Part<'_>) -> Result<Vec<Reduction>> {
        part.records()
    }

    /// After the runs synchronized, when a timeline was asked for: device
    /// timestamps (`None`: this grain has none).
    fn stamps(&self, _part: &mut Part<'_>, _stages: usize) -> Result<Option<crate::timeline::FlagStamps>> {
        Ok(None)
    }

    /// Whether its timeline comes from the event spans [`RunCtx::enqueue_streams`] collects.
    fn event_spans(&self) -> bool {
        false
    }

    /// After a failed run whose streams stopped: an error saying where
    /// it stopped, if this grain knows better than the one returned.
    fn failure(&self, _part: &Part<'_>, _spec: &PipelineSpec) -> Option<PipelineError> {
        None
    }
}

/// What [`Grain::enqueue_run`] (and [`Grain::before_runs`]) is given for
/// one run on one part, while the run is in flight.
pub struct RunCtx<'a> {
    pub(crate) spec: &'a PipelineSpec,
    /// The part's index.
    pub(crate) part: usize,
    pub(crate) host: &'a enqueue::HostBuffers,
    /// Where event spans go (the last run of a timeline run; `None` otherwise).
    pub(crate) spans: Option<&'a mut Vec<PendingSpan>>,
    /// The sync checker's fault bits per stage for the flags grain.
    pub(crate) flag_faults: &'a [u32],
}

impl RunCtx<'_> {
    /// The pipeline's spec.
    pub fn spec(&self) -> &PipelineSpec {
        self.spec
    }

    /// The index of the part (GPU) this run is enqueued on.
    pub fn part(&self) -> usize {
        self.part
    }

    /// Enqueues one run on `part` with stream launches: every (stage,
    /// chunk) on its stage's stream with exactly the event graph's waits,
    /// and the timeline's spans when this run collects them (what
    /// [`Launch::Streams`] does each run).
    pub fn enqueue_streams(&mut self, part: &mut Part<'_>) -> Result<()> {
        part.enqueue(self.spec, self.part, self.host, self.spans.take())
    }
}

/// Stream launches ([`Launch::Streams`]): every operation enqueued on the
/// streams, each run; any spec.
pub(crate) struct StreamsGrain;

impl Grain for StreamsGrain {
    fn name(&self) -> &'static str {
        "streams"
    }

    fn check(&self, _spec: &PipelineSpec) -> Result<()> {
        Ok(())
    }

    fn runs_placed(&self) -> bool {
        true
    }

    fn enqueue_run(&self, part: &mut Part<'_>, run: &mut RunCtx<'_>) -> Result<()> {
        run.enqueue_streams(part)
    }

    fn event_spans(&self) -> bool {
        true
    }
}

/// A placed spec (see [`PipelineSpec::placement`]) with a peer copy where
/// two neighbouring stages sit on different GPUs (peer access enabled both
/// ways where the GPUs allow it), and each stage's GPU.
fn place<'g>(spec: PipelineSpec, gpus: &[&'g Gpu]) -> Result<(PipelineSpec, Vec<&'g Gpu>)> {
    let placed = placed_spec(spec, gpus.len(), |elem, prev, here| {
        let (a, b) = (gpus[prev], gpus[here]);
        let direct = b.enable_peer_access(a)? & a.enable_peer_access(b)?;
        Ok(crate::copy::peer_copy(elem, a.info().index, b.info().index, direct))
    })?;
    let stage_gpus = placed.placement.iter().map(|&i| gpus[i]).collect();
    Ok((placed, stage_gpus))
}

/// kernels-hopper (`ptx_kernels::hopper`) through `setup`'s modules, so
/// the PDL and warps grains and any form that loads it itself
/// (`Stage::with_pdl_map`, `Stage::with_warps_map`) share one copy;
/// refuses GPUs older than compute capability 9.0 in one line.
pub(crate) fn load_hopper(setup: &mut crate::stage::Setup<'_>) -> Result<pc_runtime::launch::Module<ptx_kernels::hopper::KernelCrate>> {
    use ptx_kernels::hopper::{ARCH, COMPUTE_CAPABILITY, PTX};
    setup.gpu().require_compute_capability(COMPUTE_CAPABILITY, "the Hopper kernels (PDL, mbarrier rings)")?;
    setup.module(PTX, &format!("the Hopper kernels' PTX (embedded, {ARCH})"))
}

/// `spec` placed over `gpus` GPUs (its placement checked: one GPU index
/// per stage, each below `gpus`, no serial baseline), with the stage
/// `peer(elem, from, to)` makes between two neighbouring stages on GPUs
/// `from` and `to` (list indexes) reading `elem`: the placement of CUDA
/// (`Pipeline::new`) and of the simulated device (`sim::SimPipeline`).
pub(crate) fn placed_spec(spec: PipelineSpec, gpus: usize, mut peer: impl FnMut(ElemType, usize, usize) -> Result<crate::Stage>) -> Result<PipelineSpec> {
    let n = spec.stages.len();
    if spec.placement.len() != n {
        return Err(PipelineError::BadStages(format!("the placement names {} GPU(s) for {n} stages; give one per stage", spec.placement.len())));
    }
    if let Some((s, &i)) = spec.placement.iter().enumerate().find(|&(_, &i)| i >= gpus) {
        return Err(PipelineError::BadStages(format!("stage {} is placed on GPU #{i} of the list, which has {gpus} GPU(s)", spec.stages[s].name())));
    }
    if spec.serial {
        return Err(PipelineError::BadStages("the serial baseline runs on one stream, so its stages cannot be placed on several GPUs".into()));
    }
    let types = spec.ring_types()?;
    let (mut stages, mut placement) = (Vec::new(), Vec::new());
    for s in 0..n {
        let (prev, here) = (s.checked_sub(1).map(|p| spec.placement[p]), spec.placement[s]);
        // A peer copy between, unless this stage is one already (a placed
        // spec given again).
        if let Some(prev) = prev.filter(|&p| p != here && !crate::copy::is_peer_copy(&spec.stages[s])) {
            stages.push(peer(types[s - 1], prev, here)?);
            placement.push(here);
        }
        stages.push(spec.stages[s].clone());
        placement.push(here);
    }
    let mut placed = spec.stages(stages);
    placed.placement = placement;
    Ok(placed)
}

impl<'g> Pipeline<'g> {
    /// Splits the chunks over `gpus` (contiguous ranges, in order) and
    /// allocates everything. Nothing runs yet.
    pub fn new(gpus: &[&'g Gpu], spec: PipelineSpec, input: HostInput) -> Result<Pipeline<'g>> {
        spec.validate()?;
        if gpus.is_empty() {
            return Err(PipelineError::NoGpus);
        }
        let (spec, stage_gpus) = if spec.placement.is_empty() { (spec, None) } else { place(spec, gpus).map(|(s, g)| (s, Some(g)))? };
        // A halo stage's history stays on its GPU: refused before any allocation.
        let parts = if stage_gpus.is_some() { 1 } else { split::split_chunks(spec.chunks(), gpus.len()).len() };
        spec.check_split(parts)?;
        let ring_types = spec.ring_types()?;
        let (input_type, output_type) = (ring_types[0], ring_types[ring_types.len() - 1]);
        // Host buffers first: a bad input file costs no GPU setup.
        // SAFETY: the pinned buffers are only reached by this pipeline's
        // copies, which every path synchronizes before the host touches them.
        let ctx = unsafe { gpus[0].context() };
        let input = if spec.reads_host() { Some(load_input(ctx, &spec, input_type, input)?) } else { None };
        let out_bytes = spec.total_elements as usize * output_type.size();
        let output = if spec.writes_host() { Some(PinnedBuffer::new(ctx, out_bytes)?) } else { None };
        let parts = match &stage_gpus {
            Some(sg) => vec![Part::placed(sg, &spec, &ring_types, 0..spec.chunks())?],
            None => {
                let ranges = split::split_chunks(spec.chunks(), gpus.len());
                gpus.iter().zip(ranges).map(|(gpu, r)| Part::new(gpu, &spec, &ring_types, r)).collect::<Result<Vec<_>>>()?
            }
        };
        Ok(Pipeline { spec, parts, input, output, output_type, input_type, interrupt: None, in_flight: false.into(), flag_faults: Vec::new() })
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The event graph of GPU `part`'s share (local chunk numbers); `None`
    /// past the last part.
    pub fn event_graph(&self, part: usize) -> Option<&EventGraph> {
        self.parts.get(part).map(|p| &p.graph)
    }

    /// Replaces every part's event graph (the sync checker: the same
    /// pipeline with an edge removed). Drops any captured CUDA graph. A graph
    /// of another shape (stages, chunks, K) than the part's is refused.
    ///
    /// # Safety
    /// A graph that lacks edges of [`EventGraph::new`] lets stages race on
    /// ring slots: kernels read `&[T]` that another stream writes, which is
    /// undefined behaviour in Rust's model (on the GPU it gives wrong
    /// values of `Element` types, which verification then reports). Call
    /// only to demonstrate exactly that, and read results only through
    /// [`Pipeline::verify`].
    pub unsafe fn set_event_graph(&mut self, f: impl Fn(&EventGraph) -> EventGraph) -> Result<()> {
        self.settle();
        let graphs: Vec<EventGraph> = self.parts.iter().map(|p| f(&p.graph)).collect();
        for (p, g) in self.parts.iter().zip(&graphs) {
            let (have, want) = ((g.stages(), g.chunks(), g.slots()), (p.graph.stages(), p.graph.chunks(), p.graph.slots()));
            if have != want {
                return Err(PipelineError::BadStages(format!("event graph of (stages, chunks, K) = {have:?} for a part allocated as {want:?}")));
            }
        }
        for (p, g) in self.parts.iter_mut().zip(graphs) {
            p.graph = g;
            p.cuda_graph = None;
        }
        Ok(())
    }

    /// Removes parts of the flags grain's protocol, per stage (bits of
    /// `kernel_math::ring::fault`; empty: none), for the sync checker.
    ///
    /// # Safety
    /// As [`Pipeline::set_event_graph`]: without them the stages race on
    /// ring slots. Only to demonstrate that, reading results only through
    /// [`Pipeline::verify`].
    pub unsafe fn set_flag_faults(&mut self, faults: Vec<u32>) {
        self.settle();
        self.flag_faults = faults;
    }

    /// Changes the per-stage delays (see [`PipelineSpec::spin_ns`]) without
    /// reallocating. Drops any captured CUDA graph.
    pub fn set_delays(&mut self, ns: Vec<u64>) {
        self.settle();
        self.spec.spin_ns = ns;
        for p in &mut self.parts {
            p.delays_changed();
        }
    }

    /// Refills every ring slot with the poison pattern, so that a stage that
    /// reads a slot too early sees poison, not a stale copy of the right data.
    pub fn poison_rings(&mut self) -> Result<()> {
        // No run may still read the rings (one that unwound is waited for).
        self.settle();
        for p in &mut self.parts {
            p.poison_rings()?;
        }
        Ok(())
    }

    /// A flag that, once set (say by a SIGINT handler), makes a run stop
    /// queueing work and return [`PipelineError::Interrupted`] after the work
    /// already queued has finished; waits then poll the flag instead of
    /// blocking in the driver.
    pub fn set_interrupt(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.interrupt = Some(flag);
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Waits for `e`: blocking in the driver, or polling the interrupt flag.
    fn wait_for(&self, e: &CudaEvent, runs_done: usize, runs: usize) -> Result<()> {
        if self.interrupt.is_none() {
            return e.synchronize().map_err(err("running the pipeline"));
        }
        while !e.try_is_complete().map_err(err("running the pipeline"))? {
            if self.interrupted() {
                return Err(PipelineError::Interrupted { runs_done, runs });
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        Ok(())
    }

    /// Number of GPUs in use (at most one per chunk).
    pub fn gpus(&self) -> usize {
        self.parts.len()
    }

    /// Waits for every stream if a run did not finish normally.
    fn settle(&self) {
        if self.in_flight.swap(false, std::sync::atomic::Ordering::SeqCst) {
            for p in &self.parts {
                p.synchronize_quietly();
            }
        }
    }

    /// The host input's bytes (h2d sources).
    pub fn input_bytes(&self) -> Option<&[u8]> {
        self.settle();
        self.input.as_ref().map(|b| b.bytes())
    }

    /// The host output as `T` (d2h sinks), as of the last run; `None` when
    /// the sink writes no host output or `T` is not its element type. No
    /// copy can be running: [`Pipeline::run`] returns only after every
    /// stream synchronized.
    pub fn output<T: Element>(&self) -> Option<&[T]> {
        self.settle();
        self.output.as_ref().filter(|_| self.output_type.is::<T>()).map(|b| b.view::<T>())
    }

    /// The host input as `T`.
    pub fn input<T: Element>(&self) -> Option<&[T]> {
        self.settle();
        self.input.as_ref().filter(|_| self.input_type.is::<T>()).map(|b| b.view::<T>())
    }

    /// Runs the pipeline `runs` times with `grain` (named `name` in
    /// errors): the body of [`Pipeline::run_with_progress`].
    pub(crate) fn run_grain(&mut self, grain: &dyn Grain, name: &str, runs: usize, timeline: bool, progress: impl FnMut(usize)) -> Result<RunReport> {
        self.settle();
        for p in &mut self.parts {
            grain.prepare(p, &self.spec)?;
        }
        // The grain's stages in (the warps grain's ring stages), every
        // other grain's out (records included: the sink's are read at the
        // end of the run).
        let stages = grain.stages();
        self.parts.iter_mut().for_each(|p| p.select_stages(stages));
        self.in_flight.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut result = self.run_inner(grain, name, runs, timeline, progress);
        // Nothing may still run on the rings or copy into host memory when
        // this returns: the caller may drop or read them. (Success ends
        // synchronized; an error is settled here; an unwinding panic leaves
        // `in_flight` set, so the next access settles first.)
        self.in_flight.store(false, std::sync::atomic::Ordering::SeqCst);
        if result.is_err() {
            for p in &self.parts {
                p.synchronize_quietly();
            }
            // A ring wait that timed out trapped (a launch error): say where.
            if let Some(e) = self.parts.iter().find_map(|p| grain.failure(p, &self.spec)) {
                result = Err(e);
            }
        }
        result
    }

    fn run_inner(&mut self, grain: &dyn Grain, name: &str, runs: usize, timeline: bool, mut progress: impl FnMut(usize)) -> Result<RunReport> {
        let runs = runs.max(1);
        if !self.spec.placement.is_empty() && !grain.runs_placed() {
            return Err(PipelineError::BadStages(format!("a pipeline placed on several GPUs runs with stream launches or graph replay, not --grain {name}")));
        }
        grain.check_run(&self.spec)?;
        if let Some(out) = &mut self.output {
            // Poison, so that an element no copy wrote cannot pass.
            let mut words = out.bytes_mut().chunks_exact_mut(4);
            words.by_ref().for_each(|w| w.copy_from_slice(&POISON_BITS.to_ne_bytes()));
            words.into_remainder().fill(0xAD);
        }
        let host_in = self.input.as_ref().map(|b| b.as_ptr());
        let host_out = self.output.as_mut().map(|b| b.as_mut_ptr());
        let host = enqueue::HostBuffers { input: host_in, input_size: self.input_type.size(), output: host_out, output_size: self.output_type.size() };
        for (pi, p) in self.parts.iter_mut().enumerate() {
            grain.before_runs(p, &mut RunCtx { spec: &self.spec, part: pi, host: &host, spans: None, flag_faults: &self.flag_faults })?;
        }
        let timing = pc_runtime::stream::TIMING;
        let wall = Instant::now();
        let mut origins = Vec::new();
        let mut spans: Vec<PendingSpan> = Vec::new();
        // Run completion events, to report progress and to keep the host at
        // most two runs ahead of the GPU. Only the unfinished ones are kept:
        // a long run must not grow with its run count.
        let mut pending: std::collections::VecDeque<Vec<CudaEvent>> = std::collections::VecDeque::new();
        let mut finished = 0;
        for run in 0..runs {
            if self.interrupted() {
                return Err(PipelineError::Interrupted { runs_done: finished, runs });
            }
            let last = run + 1 == runs;
            let mut run_done = Vec::new();
            for (pi, p) in self.parts.iter_mut().enumerate() {
                let s0 = p.streams[0].clone();
                if run == 0 {
                    origins.push(s0.record_event(timing).map_err(err("recording the origin event"))?);
                }
                let spans = if timeline && last { Some(&mut spans) } else { None };
                grain.enqueue_run(p, &mut RunCtx { spec: &self.spec, part: pi, host: &host, spans, flag_faults: &self.flag_faults })?;
                run_done.push(s0.record_event(timing).map_err(err("recording the end event"))?);
            }
            pending.push_back(run_done);
            while pending.len() > 2 {
                for e in pending.pop_front().into_iter().flatten() {
                    self.wait_for(&e, finished, runs)?;
                }
                finished += 1;
                progress(finished);
            }
        }
        // Every run's end event, then every stream (their last work is the
        // join into stream 0, which the end event follows).
        for e in pending.iter().flatten() {
            self.wait_for(e, finished, runs)?;
        }
        for p in &self.parts {
            for s in &p.streams {
                s.synchronize().map_err(err("running the pipeline"))?;
            }
        }
        progress(runs);
        let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
        let ends = pending.back().ok_or(PipelineError::EmptyCapture)?;
        let part_ms: Vec<f32> = origins.iter().zip(ends).map(|(o, e)| o.elapsed_ms(e)).collect::<Result<_, _>>().map_err(err("timing the run"))?;
        let gpu_ms = part_ms.iter().copied().fold(0.0, f32::max);

        for p in &mut self.parts {
            grain.status(p)?;
        }
        let mut reductions = Vec::new();
        for p in &mut self.parts {
            reductions.extend(grain.records(p)?);
        }
        let mut flag_stamps = Vec::new();
        if timeline {
            for p in &mut self.parts {
                flag_stamps.extend(grain.stamps(p, self.spec.stages.len())?);
            }
        }
        let timeline = if let Some(st) = flag_stamps.first() {
            Some(st.timeline(self.spec.stages.iter().map(|s| s.name().to_string()).collect(), 0))
        } else if timeline && grain.event_spans() {
            let mut out = Vec::with_capacity(spans.len());
            for s in &spans {
                out.push(s.resolve(&origins[s.part])?);
            }
            // A placed pipeline's rows say which GPU each stream is on.
            let placed = !self.spec.placement.is_empty();
            let names = self
                .spec
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| match self.parts.first().and_then(|p| p.stage_gpus.get(i)) {
                    Some(g) if placed => format!("{} (GPU {})", s.name(), g.info().index),
                    _ => s.name().to_string(),
                })
                .collect();
            Some(Timeline::new(names, self.parts.len(), out))
        } else {
            None
        };
        Ok(RunReport { runs, gpu_ms, wall_ms, part_ms, reductions, timeline, flag_stamps })
    }

    /// Checks the last run's results, chunk by chunk, against the CPU reference.
    pub fn verify(&self, report: &RunReport) -> Verification {
        self.settle();
        verify(&self.spec, self.input_bytes(), self.output.as_ref().map(|b| b.bytes()), &report.reductions)
    }
}

/// Bytes `offset..offset + out.len()` of the generated input of element
/// type `elem`: 4-byte little-endian words, word `i` being
/// `produce(i, seed)` for f32 (the producer's values) and a hash of `i`
/// otherwise. The same for any split of the stream into pieces: `host gen`
/// writes it, and the in-memory generated input is it.
pub fn generated_bytes(elem: ElemType, seed: u32, offset: u64, out: &mut [u8]) {
    let is_f32 = elem.is::<f32>();
    let word = |i: u64| -> [u8; 4] {
        let v = if is_f32 { kernel_math::produce(i, seed).to_bits() } else { kernel_math::hash32(i as u32 ^ kernel_math::hash32((i >> 32) as u32 ^ seed)) };
        v.to_le_bytes()
    };
    let mut at = 0;
    // A first partial word, then whole words, then a last partial one.
    let skip = (offset % 4) as usize;
    if skip != 0 {
        let w = word(offset / 4);
        let n = (4 - skip).min(out.len());
        out[..n].copy_from_slice(&w[skip..skip + n]);
        at = n;
    }
    let first = (offset + at as u64) / 4;
    let end = offset + out.len() as u64;
    let mut words = out[at..].chunks_exact_mut(4);
    for (j, w) in words.by_ref().enumerate() {
        w.copy_from_slice(&word(first + j as u64));
    }
    let rest = words.into_remainder();
    if !rest.is_empty() {
        let n = rest.len();
        rest.copy_from_slice(&word(end / 4)[..n]);
    }
}

fn load_input(ctx: &std::sync::Arc<cudarc::driver::CudaContext>, spec: &PipelineSpec, elem: ElemType, input: HostInput) -> Result<PinnedBuffer> {
    let n = spec.total_elements as usize;
    let bytes = n.checked_mul(elem.size()).ok_or(PipelineError::Runtime(Error::HostMemory { elements: n as u64, needed: n as u128 * elem.size() as u128 }))?;
    // A file that is too short is refused before any allocation.
    if let HostInput::File(path) = &input {
        let have = std::fs::metadata(path).map_err(|source| PipelineError::Input { path: path.clone(), source })?.len();
        if have < bytes as u64 {
            return Err(PipelineError::InputTooShort { path: path.clone(), have, want: bytes as u64, elements: n as u64, elem: elem.name() });
        }
    }
    let mut buf = PinnedBuffer::new(ctx, bytes)?;
    match input {
        HostInput::Generated => {
            let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
            let part = bytes.div_ceil(threads).max(1 << 18).next_multiple_of(4);
            std::thread::scope(|s| {
                for (k, chunk) in buf.bytes_mut().chunks_mut(part).enumerate() {
                    s.spawn(move || generated_bytes(elem, spec.seed, (k * part) as u64, chunk));
                }
            });
        }
        HostInput::File(path) => {
            use std::io::Read;
            let io = |source| PipelineError::Input { path: path.clone(), source };
            let mut f = std::fs::File::open(&path).map_err(io)?;
            let have = f.metadata().map_err(io)?.len();
            let want = bytes as u64;
            if have < want {
                return Err(PipelineError::InputTooShort { path, have, want, elements: n as u64, elem: elem.name() });
            }
            if cfg!(target_endian = "big") {
                // Files hold little-endian elements; which bytes of a struct
                // element to swap is the element's business, not ours.
                return Err(PipelineError::BadInput("input files are little-endian; this host is big-endian".into()));
            }
            f.read_exact(buf.bytes_mut()).map_err(io)?;
        }
        HostInput::Data(chunk) => {
            if chunk.elem() != elem {
                return Err(PipelineError::BadInput(format!("the data holds {} but the source writes {elem}", chunk.elem())));
            }
            if chunk.len() < n {
                return Err(PipelineError::BadInput(format!("the data has {} elements, fewer than the {n} declared", chunk.len())));
            }
            buf.bytes_mut().copy_from_slice(&chunk.bytes()[..bytes]);
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod gen_tests {
    use super::*;

    /// Any split of the generated stream gives the same bytes.
    #[test]
    fn generated_bytes_are_the_same_for_any_split() {
        let elem = ElemType::of::<u8>();
        let mut whole = vec![0u8; 203];
        generated_bytes(elem, 7, 5, &mut whole);
        for cut in [0, 1, 2, 3, 4, 9, 100, 203] {
            let mut a = vec![0u8; 203];
            let (x, y) = a.split_at_mut(cut);
            generated_bytes(elem, 7, 5, x);
            generated_bytes(elem, 7, 5 + cut as u64, y);
            assert_eq!(a, whole, "cut at {cut}");
        }
        let mut f = [0u8; 8];
        generated_bytes(ElemType::of::<f32>(), 7, 4, &mut f);
        assert_eq!(f32::from_le_bytes(f[..4].try_into().unwrap()), kernel_math::produce(1, 7));
    }
}
