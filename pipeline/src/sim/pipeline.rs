//! A pipeline on the simulated device: the executor's action lists
//! ([`plan`], [`stream_chunk`]) walked by the executor's walker
//! ([`enqueue_actions`]) into a [`SimDevice`], for runs (stream launches,
//! graph replay) and for streams.
use super::device::{OpModel, Race, Rng, SimDevice};
use super::grains::{SimProtocol, WarpsSim, flags_run, pdl_run};
use crate::PipelineError;
use crate::exec::device::{EnqueueTo, enqueue_actions};
use crate::exec::plan::{Action, EventId, plan, stream_chunk, stream_of};
use crate::exec::{HostInput, RunReport, generated_bytes};
use crate::graph::EventGraph;
use crate::reference::{Verification, verify};
use crate::spec::{Launch, PipelineSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What a run on the simulated device can hit.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Failed(#[from] PipelineError),
    /// The race detector's first report, and how many there were.
    #[error("race: {first} ({count} race(s) in all)")]
    Race { first: Box<Race>, count: usize, all: Vec<Race> },
    /// A stage's operation failed while the device ran it (its CPU
    /// reference's error, or a trap injected by a test): which stage, on
    /// which chunk.
    #[error("the simulated device failed: {0}")]
    Reference(String),
    /// A protocol grain's actors all wait for something that can no longer
    /// happen (the simulator's watchdog): who waits for what.
    #[error("the simulated device is stuck: {0}")]
    Stuck(String),
}

impl SimError {
    /// The races reported, if this is a race.
    pub fn races(&self) -> &[Race] {
        match self {
            SimError::Race { all, .. } => all,
            _ => &[],
        }
    }
}

/// The launches the simulated device runs: every grain (stream launches
/// and graph replay through the executor's own action lists; flags, PDL
/// and the warps grain's block ring as models of their protocols, see
/// `docs/sim.md`), in the order of [`crate::LAUNCHES`].
pub const SIM_LAUNCHES: [Launch; 6] = [Launch::Streams, Launch::Graph, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps, Launch::Flags];

/// Takes the actions as a list: a graph capture.
#[derive(Default)]
struct Capture(Vec<Action>);

impl EnqueueTo for Capture {
    fn wait(&mut self, stream: usize, event: EventId) -> Result<(), PipelineError> {
        self.0.push(Action::Wait { stream, event });
        Ok(())
    }
    fn record(&mut self, stream: usize, event: EventId) -> Result<(), PipelineError> {
        self.0.push(Action::Record { stream, event });
        Ok(())
    }
    fn begin_run(&mut self, stream: usize, stage: usize) -> Result<(), PipelineError> {
        self.0.push(Action::BeginRun { stream, stage });
        Ok(())
    }
    fn op(&mut self, stream: usize, stage: usize, chunk: usize, slot: usize) -> Result<(), PipelineError> {
        self.0.push(Action::Op { stream, stage, chunk, slot });
        Ok(())
    }
}

/// A pipeline on the simulated device, built and run like
/// [`crate::Pipeline`] on one GPU: one stream per stage (one when serial),
/// rings of `min(K, chunks)` slots, exactly the waits of its
/// [`EventGraph`]. Results are checked with [`SimPipeline::verify`], the
/// same [`crate::reference::verify`] a GPU run is checked with.
///
/// ```
/// use pc_pipeline::sim::SimPipeline;
/// use pc_pipeline::{HostInput, Launch, PipelineSpec, Workload};
/// let spec = PipelineSpec::new(Workload::Stream).slots(2).chunk_elements(64).total_elements(1000);
/// let mut sim = SimPipeline::new(spec, HostInput::Generated)?.scheduler_seed(7);
/// let report = sim.run(Launch::Graph, 2)?;
/// assert!(sim.verify(&report).passed());
/// # Ok::<(), pc_pipeline::sim::SimError>(())
/// ```
pub struct SimPipeline {
    spec: PipelineSpec,
    graph: EventGraph,
    streams: usize,
    device: SimDevice,
    capture: Option<Vec<Action>>,
    seed: u64,
    /// Runs enqueued so far (numbers each run's operations).
    runs_done: usize,
    /// The protocol grains' geometry and weakenings (tests).
    protocol: SimProtocol,
    /// The protocol grains' scheduler.
    rng: Rng,
    /// Set (say by a SIGINT handler): stop before the next run.
    interrupt: Option<Arc<AtomicBool>>,
    /// The next run call's injected fault (tests): (stage, chunk).
    fault: Option<(usize, usize)>,
}

impl SimPipeline {
    /// Validates `spec` and loads its host input (h2d sources). Placement
    /// over several GPUs is refused (the simulated device is one GPU).
    pub fn new(spec: PipelineSpec, input: HostInput) -> Result<SimPipeline, PipelineError> {
        spec.validate()?;
        if !spec.placement.is_empty() {
            return Err(PipelineError::BadStages("the simulated device is one GPU: a placed pipeline does not run on it".into()));
        }
        let host_in = if spec.reads_host() { Some(input_bytes(&spec, input)?) } else { None };
        let chunks = spec.chunks();
        let stages = spec.stages.len();
        let slots = spec.slots.min(chunks).max(1);
        let streams = if spec.serial { 1 } else { stages };
        let graph = if spec.serial { EventGraph::unordered(stages, chunks, slots) } else { EventGraph::new(stages, chunks, slots) };
        let seed = 0;
        let device = SimDevice::new(&spec, streams, slots, host_in, seed)?;
        Ok(SimPipeline {
            spec,
            graph,
            streams,
            device,
            capture: None,
            seed,
            runs_done: 0,
            protocol: SimProtocol::default(),
            rng: Rng::new(seed),
            interrupt: None,
            fault: None,
        })
    }

    /// The scheduler's seed (default 0): which of the orders CUDA allows
    /// the device runs. Resets the device (rings, races).
    pub fn scheduler_seed(mut self, seed: u64) -> SimPipeline {
        let host_in = self.device.input_bytes().map(<[u8]>::to_vec);
        if let Ok(d) = SimDevice::new(&self.spec, self.streams, self.graph.slots(), host_in, seed) {
            self.device = d;
            self.seed = seed;
            self.runs_done = 0;
            self.rng = Rng::new(seed);
        }
        self
    }

    /// The protocol grains' geometry and weakenings (tests: a weakened
    /// protocol must be found).
    #[doc(hidden)]
    pub fn protocol(mut self, protocol: SimProtocol) -> SimPipeline {
        self.protocol = protocol;
        self
    }

    /// As [`crate::Pipeline::set_interrupt`]: once `flag` is set, a run
    /// call enqueues no further run, lets the runs already enqueued finish
    /// and returns [`PipelineError::Interrupted`]. A run is never cut in
    /// the middle (the next run call starts from a whole one).
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Makes the next run call's operation of stage `stage` on chunk
    /// `chunk` fail once, as a kernel that traps would (tests: the failure
    /// is reported naming both, and leaves nothing that makes a later run
    /// wrong). A fault the run call never reaches is dropped with it.
    #[doc(hidden)]
    pub fn inject_fault(&mut self, stage: usize, chunk: usize) {
        self.fault = Some((stage, chunk));
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The event graph the runs enqueue.
    pub fn event_graph(&self) -> &EventGraph {
        &self.graph
    }

    /// Replaces the event graph (say, one edge removed, to see the race
    /// detector report it); drops the captured graph. Safe here: the
    /// simulated device has no undefined behaviour to fear.
    pub fn set_event_graph(&mut self, f: impl Fn(&EventGraph) -> EventGraph) -> Result<(), PipelineError> {
        let g = f(&self.graph);
        let (have, want) = ((g.stages(), g.chunks(), g.slots()), (self.graph.stages(), self.graph.chunks(), self.graph.slots()));
        if have != want {
            return Err(PipelineError::BadStages(format!("event graph of (stages, chunks, K) = {have:?} for a pipeline of {want:?}")));
        }
        self.graph = g;
        self.capture = None;
        Ok(())
    }

    /// The scheduler's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The device (its races, the order it ran the operations in).
    pub fn device(&self) -> &SimDevice {
        &self.device
    }

    /// Runs the pipeline `runs` times back to back with `launch`, then
    /// synchronizes. Stream launches and graph replay run the executor's
    /// action lists; the flags, PDL and warps grains run as models of their
    /// protocols (refused where the grain's own check refuses the spec).
    /// Any race is an error ([`SimError::Race`]), a protocol that cannot go
    /// on too ([`SimError::Stuck`]). The report's times are the
    /// simulation's: `gpu_ms` is 0 and `part_ms` empty (no GPU time is
    /// simulated); `wall_ms` is the host's time simulating.
    pub fn run(&mut self, launch: Launch, runs: usize) -> Result<RunReport, SimError> {
        self.spec.check_launch(launch)?;
        if matches!(launch, Launch::Flags | Launch::Pdl { .. } | Launch::Warps) && self.spec.serial {
            return Err(PipelineError::GrainUnsupported {
                grain: launch.name(),
                why: "it runs each stage on its own stream or kernel; drop the serial baseline".into(),
            }
            .into());
        }
        if let Launch::Grain(g) = launch {
            return Err(PipelineError::GrainUnsupported { grain: g.name(), why: "the simulated device models the built-in grains only".into() }.into());
        }
        let runs = runs.max(1);
        let wall = Instant::now();
        self.device.clear_reports();
        self.device.poison_output();
        // For this call only: the next call sets its own, or none.
        self.device.set_fault(self.fault.take());
        let runs_done = self.run_launch(launch, runs)?;
        check_device(&self.device)?;
        if runs_done < runs {
            return Err(PipelineError::Interrupted { runs_done, runs }.into());
        }
        let reductions = self.device.records().iter().map(|r| r.unwrap_or(kernel_math::Reduction::EMPTY)).collect();
        let reductions = if self.spec.reduces() { reductions } else { Vec::new() };
        Ok(RunReport {
            runs,
            gpu_ms: 0.0,
            wall_ms: wall.elapsed().as_secs_f64() * 1e3,
            part_ms: Vec::new(),
            reductions,
            timeline: None,
            flag_stamps: Vec::new(),
        })
    }

    /// Runs `launch` up to `runs` times; the runs done (fewer when
    /// interrupted, each one whole).
    fn run_launch(&mut self, launch: Launch, runs: usize) -> Result<usize, SimError> {
        match launch {
            Launch::Streams | Launch::Graph | Launch::Warps => self.run_streams(launch, runs),
            Launch::Flags | Launch::Pdl { .. } | Launch::Grain(_) => {
                let slots = self.graph.slots();
                let mut done = 0;
                for run in 0..runs {
                    if self.interrupted() {
                        break;
                    }
                    done += 1;
                    self.device.set_run(self.runs_done + run);
                    // The run's reset (counters, records) on stream 0 and
                    // its join: runs are ordered one after the other.
                    (0..self.spec.stages.len()).for_each(|s| self.device.run_begin(s));
                    let ran = match launch {
                        Launch::Flags => flags_run(&mut self.device, &self.spec, slots, &self.protocol, &mut self.rng),
                        _ => pdl_run(&mut self.device, &self.spec, slots, &self.protocol, &mut self.rng),
                    };
                    if let Err(stuck) = ran {
                        self.device.set_stuck(format!("run {}: {}", self.runs_done + run, stuck.0));
                        break;
                    }
                }
                self.runs_done += done;
                Ok(done)
            }
        }
    }

    /// Stream launches, graph replay, or the warps grain (stream launches
    /// with its ring stages on the block ring), enqueued and synchronized;
    /// the runs enqueued.
    fn run_streams(&mut self, launch: Launch, runs: usize) -> Result<usize, SimError> {
        if launch == Launch::Graph && self.capture.is_none() {
            // The capture: the run's actions as enqueued, kept and replayed.
            let mut c = Capture::default();
            enqueue_actions(plan(&self.graph, self.streams), &mut c)?;
            self.capture = Some(c.0);
        }
        let warps = (launch == Launch::Warps).then(|| Arc::new(WarpsSim::new(&self.spec, self.protocol.clone())) as Arc<dyn OpModel>);
        self.device.set_op_model(warps);
        let enqueued = self.enqueue_runs(launch, runs);
        // The runs enqueued finish, interrupted or not.
        let synced = enqueued.and_then(|done| self.device.synchronize().map(|()| done));
        self.device.set_op_model(None);
        Ok(synced?)
    }

    fn enqueue_runs(&mut self, launch: Launch, runs: usize) -> Result<usize, PipelineError> {
        for run in 0..runs {
            if self.interrupted() {
                self.runs_done += run;
                return Ok(run);
            }
            self.device.set_run(self.runs_done + run);
            match (&self.capture, launch) {
                (Some(actions), Launch::Graph) => enqueue_actions(actions.iter().copied(), &mut self.device)?,
                _ => enqueue_actions(plan(&self.graph, self.streams), &mut self.device)?,
            }
        }
        self.runs_done += runs;
        Ok(runs)
    }

    /// Checks the last run's results against the CPU reference, as
    /// [`crate::Pipeline::verify`] does.
    pub fn verify(&self, report: &RunReport) -> Verification {
        verify(&self.spec, self.device.input_bytes(), self.device.output_bytes(), &report.reductions)
    }

    /// The host output's bytes (d2h sinks), as of the last run.
    pub fn output_bytes(&self) -> Option<&[u8]> {
        self.device.output_bytes()
    }
}

fn check_device(d: &SimDevice) -> Result<(), SimError> {
    if let Some(first) = d.races().first() {
        return Err(SimError::Race { first: Box::new(first.clone()), count: d.race_count(), all: d.races().to_vec() });
    }
    if let Some(why) = d.stuck() {
        return Err(SimError::Stuck(why.to_string()));
    }
    if let Some(why) = d.failure() {
        return Err(SimError::Reference(why.to_string()));
    }
    Ok(())
}

/// The host input's bytes for `spec`, as [`crate::Pipeline::new`] loads them.
fn input_bytes(spec: &PipelineSpec, input: HostInput) -> Result<Vec<u8>, PipelineError> {
    let elem = spec.input_type()?;
    let n = spec.total_elements as usize;
    let bytes = n * elem.size();
    match input {
        HostInput::Generated => {
            let mut b = vec![0u8; bytes];
            generated_bytes(elem, spec.seed, 0, &mut b);
            Ok(b)
        }
        HostInput::File(path) => {
            let b = std::fs::read(&path).map_err(|source| PipelineError::Input { path: path.clone(), source })?;
            if b.len() < bytes {
                return Err(PipelineError::InputTooShort { path, have: b.len() as u64, want: bytes as u64, elements: n as u64, elem: elem.name() });
            }
            Ok(b[..bytes].to_vec())
        }
        HostInput::Data(chunk) => {
            if chunk.elem() != elem {
                return Err(PipelineError::BadInput(format!("the data holds {} but the source writes {elem}", chunk.elem())));
            }
            if chunk.len() < n {
                return Err(PipelineError::BadInput(format!("the data has {} elements, fewer than the {n} declared", chunk.len())));
            }
            Ok(chunk.bytes()[..bytes].to_vec())
        }
    }
}

/// The stream mode on the simulated device: `input` (whole elements of
/// the pipeline's input type) through `spec` (from `h2d` to `d2h`; its
/// total is ignored) one chunk at a time, each chunk's actions from
/// [`stream_chunk`] walked as [`crate::stream::run`] walks them. Returns
/// the output bytes; any race is an error.
pub fn stream(spec: &PipelineSpec, input: &[u8], seed: u64) -> Result<Vec<u8>, SimError> {
    stream_interruptible(spec, input, seed, &AtomicBool::new(false))
}

/// [`stream`], stopping at a chunk boundary once `interrupt` is set (say
/// by a SIGINT handler): the chunks enqueued finish, no output is
/// returned, and the error is [`PipelineError::StreamInterrupted`] with
/// the chunks done, as [`crate::stream::run`]'s.
pub fn stream_interruptible(spec: &PipelineSpec, input: &[u8], seed: u64, interrupt: &AtomicBool) -> Result<Vec<u8>, SimError> {
    if !spec.reads_host() || !spec.writes_host() {
        return Err(PipelineError::BadStages("a stream needs a pipeline from a host source (h2d) to a host sink (d2h)".into()).into());
    }
    let size = spec.input_type()?.size();
    if !input.len().is_multiple_of(size) {
        return Err(PipelineError::StreamEndsMidElement { bytes: input.len() as u64, size, partial: input.len() % size }.into());
    }
    let n = (input.len() / size) as u64;
    if n == 0 {
        return Ok(Vec::new());
    }
    let spec = spec.clone().total_elements(n);
    let stages = spec.stages.len();
    let (k, streams) = (spec.slots, if spec.serial { 1 } else { stages });
    let mut device = SimDevice::new(&spec, streams, k, Some(input.to_vec()), seed)?;
    let begins = (0..stages).map(|stage| Action::BeginRun { stream: stream_of(stage, streams), stage });
    enqueue_actions(begins, &mut device)?;
    let mut chunks = 0;
    for c in 0..spec.chunks() {
        if interrupt.load(Ordering::Relaxed) {
            break;
        }
        enqueue_actions(stream_chunk(stages, streams, k, c), &mut device)?;
        chunks += 1;
    }
    device.synchronize()?;
    check_device(&device)?;
    if chunks < spec.chunks() {
        return Err(PipelineError::StreamInterrupted { chunks: chunks as u64 }.into());
    }
    Ok(device.output_bytes().unwrap_or_default().to_vec())
}
