//! A pipeline on the simulated device: the executor's action lists
//! ([`plan`], [`stream_chunk`]) walked by the executor's walker
//! ([`enqueue_actions`]) into a [`SimDevice`], for runs (stream launches,
//! graph replay) and for streams.
use super::device::{OpModel, Race, Rng, SimDevice};
use super::grains::{SimProtocol, WarpsSim, flags_run, pdl_run};
use crate::PipelineError;
use crate::copy::peer_copy;
use crate::exec::device::{EnqueueTo, enqueue_actions};
use crate::exec::plan::{Action, EventId, plan, stream_chunk, stream_of};
use crate::exec::split::split_chunks;
use crate::exec::{HostInput, RunReport, generated_bytes, placed_spec};
use crate::graph::EventGraph;
use crate::reference::{Verification, verify};
use crate::spec::{Launch, PipelineSpec};
use crate::timeline::Timeline;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What a run on the simulated device can hit. Each message is one line;
/// more kinds may come (the simulator checks more of CUDA's rules).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A graph capture CUDA would refuse or get wrong: work on a stream
    /// that never joined the capture (it would run at once, outside the
    /// graph), or a stream never joined back to the origin stream
    /// (`cudaErrorStreamCaptureUnjoined`).
    #[error("invalid graph capture: {0}")]
    Capture(String),
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

/// Takes the actions as a list: a graph capture, begun on stream 0 (the
/// origin), with CUDA's rules for the other streams: a stream joins the
/// capture by waiting on an event recorded in it, and before the capture
/// ends each stream that joined must be joined back, stream 0 waiting on
/// an event recorded on it after its last work. (CUDA also accepts a join
/// through a third stream; the executor's plans join each stream
/// directly, so this model takes direct joins only.) The first rule
/// broken is kept.
#[derive(Default)]
struct Capture {
    actions: Vec<Action>,
    /// Per stream: joined the capture; items enqueued; items joined back.
    joined: Vec<bool>,
    items: Vec<usize>,
    joined_back: Vec<usize>,
    /// Events recorded in the capture: the stream and its item count then.
    recorded: std::collections::HashMap<EventId, (usize, usize)>,
    broken: Option<String>,
}

impl Capture {
    fn grow(&mut self, stream: usize) {
        if self.joined.len() <= stream {
            self.joined.resize(stream + 1, false);
            self.items.resize(stream + 1, 0);
            self.joined_back.resize(stream + 1, 0);
        }
        self.joined[0] = true;
    }

    /// Work on `stream`: it must be in the capture.
    fn work(&mut self, stream: usize, what: &str) {
        self.grow(stream);
        if !self.joined[stream] && self.broken.is_none() {
            self.broken = Some(format!("{what} on stream {stream}, which never joined the capture (it would run at once, outside the graph)"));
        }
        self.items[stream] += 1;
    }

    /// The actions, or the first rule broken (a stream not joined back included).
    fn finish(self) -> Result<Vec<Action>, SimError> {
        if let Some(b) = self.broken {
            return Err(SimError::Capture(b));
        }
        match (1..self.joined.len()).find(|&s| self.joined[s] && self.joined_back[s] < self.items[s]) {
            Some(s) => {
                Err(SimError::Capture(format!("stream {s} is not joined back to the origin stream after its last work (cudaErrorStreamCaptureUnjoined)")))
            }
            None => Ok(self.actions),
        }
    }
}

impl EnqueueTo for Capture {
    fn wait(&mut self, stream: usize, event: EventId) -> Result<(), PipelineError> {
        self.actions.push(Action::Wait { stream, event });
        self.grow(stream);
        if let Some(&(from, at)) = self.recorded.get(&event) {
            self.joined[stream] = true;
            if stream == 0 {
                self.joined_back[from] = self.joined_back[from].max(at);
            }
        }
        self.items[stream] += 1;
        Ok(())
    }
    fn record(&mut self, stream: usize, event: EventId) -> Result<(), PipelineError> {
        self.actions.push(Action::Record { stream, event });
        self.work(stream, "an event record");
        self.recorded.insert(event, (stream, self.items[stream]));
        Ok(())
    }
    fn begin_run(&mut self, stream: usize, stage: usize) -> Result<(), PipelineError> {
        self.actions.push(Action::BeginRun { stream, stage });
        self.work(stream, &format!("stage {stage}'s per-run setup"));
        Ok(())
    }
    fn op(&mut self, stream: usize, stage: usize, chunk: usize, slot: usize) -> Result<(), PipelineError> {
        self.actions.push(Action::Op { stream, stage, chunk, slot });
        self.work(stream, &format!("stage {stage} on chunk {chunk}"));
        Ok(())
    }
}

/// A pipeline on the simulated device, built and run like
/// [`crate::Pipeline`]: one stream per stage (one when serial), rings of
/// `min(K, chunks)` slots, exactly the waits of its [`EventGraph`]; on one
/// simulated GPU ([`SimPipeline::new`]), split over several (each GPU a
/// part with its own range of chunks, streams and rings, as `exec` splits
/// them) or placed on several ([`SimPipeline::on_gpus`]). Results are
/// checked with [`SimPipeline::verify`], the same
/// [`crate::reference::verify`] a GPU run is checked with.
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
    /// One per simulated GPU of a split pipeline; one for a placed one
    /// (its stages' streams on several GPUs: events across GPUs are
    /// events, so the race detector sees the hand-offs as any other).
    parts: Vec<SimPart>,
    streams: usize,
    seed: u64,
    /// Runs enqueued so far (numbers each run's operations).
    runs_done: usize,
    /// The protocol grains' geometry and weakenings (tests).
    protocol: SimProtocol,
    /// The protocol grains' scheduler.
    rng: Rng,
    /// The host output and the records, gathered from the parts.
    output: Option<Vec<u8>>,
    records: Vec<Option<kernel_math::Reduction>>,
    /// How a rank's send and recv stages run (`sim::ranks`), if a rank.
    link: Option<Arc<dyn OpModel>>,
    /// Whether runs return a simulated timeline.
    timeline: bool,
    /// Set (say by a SIGINT handler): stop before the next run.
    interrupt: Option<Arc<AtomicBool>>,
    /// The next run call's injected fault (tests): (stage, chunk).
    fault: Option<(usize, usize)>,
}

/// One part: a simulated device running chunks `chunks` of the pipeline.
struct SimPart {
    device: SimDevice,
    graph: EventGraph,
    capture: Option<Vec<Action>>,
    chunks: Range<usize>,
}

impl SimPart {
    /// Part `gpu` (a simulated GPU) of chunks `chunks`.
    fn new(spec: &PipelineSpec, streams: usize, (gpu, chunks): (usize, Range<usize>), host_in: Option<Vec<u8>>, seed: u64) -> Result<SimPart, PipelineError> {
        let (stages, local) = (spec.stages.len(), chunks.len());
        let slots = spec.slots.min(local).max(1);
        let graph = if spec.serial { EventGraph::unordered(stages, local, slots) } else { EventGraph::new(stages, local, slots) };
        let mut device = SimDevice::new(spec, streams, slots, host_in, seed)?;
        device.set_first_chunk(chunks.start);
        device.set_gpu(gpu);
        Ok(SimPart { device, graph, capture: None, chunks })
    }
}

impl SimPipeline {
    /// Validates `spec` and loads its host input (h2d sources): one
    /// simulated GPU, or the GPUs its placement names.
    pub fn new(spec: PipelineSpec, input: HostInput) -> Result<SimPipeline, PipelineError> {
        let gpus = spec.placement.iter().max().map_or(1, |&g| g + 1);
        SimPipeline::on_gpus(gpus, spec, input)
    }

    /// `spec` on `gpus` simulated GPUs, as [`crate::Pipeline::new`] on
    /// that many: with a placement, its stages on the GPUs it names (a
    /// peer copy stage between neighbours on different GPUs, its events
    /// across GPUs); without, the chunks split over them
    /// ([`crate::exec::split::split_chunks`]), each part its own device.
    pub fn on_gpus(gpus: usize, spec: PipelineSpec, input: HostInput) -> Result<SimPipeline, PipelineError> {
        spec.validate()?;
        if gpus == 0 {
            return Err(PipelineError::NoGpus);
        }
        let spec = if spec.placement.is_empty() { spec } else { placed_spec(spec, gpus, |elem, from, to| Ok(peer_copy(elem, from, to, true)))? };
        // A placed pipeline is one part (all its chunks).
        let ranges = if spec.placement.is_empty() { split_chunks(spec.chunks(), gpus) } else { split_chunks(spec.chunks(), 1) };
        spec.check_split(ranges.len())?;
        let host_in = if spec.reads_host() { Some(input_bytes(&spec, input)?) } else { None };
        let streams = if spec.serial { 1 } else { spec.stages.len() };
        let seed = 0;
        let parts = ranges.into_iter().enumerate().map(|r| SimPart::new(&spec, streams, r, host_in.clone(), seed)).collect::<Result<Vec<_>, _>>()?;
        let records = vec![None; spec.chunks()];
        Ok(SimPipeline {
            spec,
            parts,
            streams,
            seed,
            runs_done: 0,
            protocol: SimProtocol::default(),
            rng: Rng::new(seed),
            output: None,
            records,
            link: None,
            timeline: false,
            interrupt: None,
            fault: None,
        })
    }

    /// The scheduler's seed (default 0): which of the orders CUDA allows
    /// the device runs. Resets the devices (rings, races); part `p` draws
    /// from `seed + p`.
    pub fn scheduler_seed(mut self, seed: u64) -> SimPipeline {
        let host_in = self.parts[0].device.input_bytes().map(<[u8]>::to_vec);
        let parts: Result<Vec<SimPart>, _> = self
            .parts
            .iter()
            .enumerate()
            .map(|(p, part)| SimPart::new(&self.spec, self.streams, (p, part.chunks.clone()), host_in.clone(), seed.wrapping_add(p as u64)))
            .collect();
        if let Ok(mut parts) = parts {
            for (new, old) in parts.iter_mut().zip(&self.parts) {
                new.graph = old.graph.clone();
                new.device.record_times(self.timeline);
            }
            self.parts = parts;
            self.seed = seed;
            self.runs_done = 0;
            self.rng = Rng::new(seed);
        }
        self
    }

    /// Runs return a timeline of simulated times (`RunReport::timeline`):
    /// each operation a duration from a nominal cost model
    /// ([`super::SIM_GBPS`]), placed as its stream's order and its waits
    /// allow; stream launches, graph replay and the warps grain only (the
    /// flags and PDL models have no streams to time). Nothing is measured.
    pub fn record_timeline(mut self, on: bool) -> SimPipeline {
        self.timeline = on;
        self.parts.iter_mut().for_each(|p| p.device.record_times(on));
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

    /// The spec as run (a placed one with its peer copies in).
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// How many parts (simulated GPUs of a split; 1 when placed).
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The event graph the runs enqueue (part 0's).
    pub fn event_graph(&self) -> &EventGraph {
        &self.parts[0].graph
    }

    /// Part `part`'s event graph, if there is that part.
    pub fn event_graph_of(&self, part: usize) -> Option<&EventGraph> {
        self.parts.get(part).map(|p| &p.graph)
    }

    /// Replaces every part's event graph by `f` of it (say, one edge
    /// removed, to see the race detector report it); drops the captured
    /// graphs. Safe here: the simulated device has no undefined behaviour
    /// to fear.
    pub fn set_event_graph(&mut self, f: impl Fn(&EventGraph) -> EventGraph) -> Result<(), PipelineError> {
        let graphs: Vec<EventGraph> = self.parts.iter().map(|p| f(&p.graph)).collect();
        for (p, g) in self.parts.iter().zip(&graphs) {
            let (have, want) = ((g.stages(), g.chunks(), g.slots()), (p.graph.stages(), p.graph.chunks(), p.graph.slots()));
            if have != want {
                return Err(PipelineError::BadStages(format!("event graph of (stages, chunks, K) = {have:?} for a pipeline of {want:?}")));
            }
        }
        for (p, g) in self.parts.iter_mut().zip(graphs) {
            p.graph = g;
            p.capture = None;
        }
        Ok(())
    }

    /// The scheduler's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The device (its races, the order it ran the operations in): part 0's.
    pub fn device(&self) -> &SimDevice {
        &self.parts[0].device
    }

    /// Part `part`'s device, if there is that part.
    pub fn device_of(&self, part: usize) -> Option<&SimDevice> {
        self.parts.get(part).map(|p| &p.device)
    }

    /// Runs the pipeline `runs` times back to back with `launch`, then
    /// synchronizes. Stream launches and graph replay run the executor's
    /// action lists (each part's); the flags, PDL and warps grains run as
    /// models of their protocols on one simulated GPU (refused where the
    /// grain's own check refuses the spec). Any race is an error
    /// ([`SimError::Race`]), a protocol that cannot go on too
    /// ([`SimError::Stuck`]). The report's times are the simulation's:
    /// `gpu_ms` is 0 and `part_ms` empty (no GPU time is simulated);
    /// `wall_ms` is the host's time simulating.
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
        let several = self.parts.len() > 1 || !self.spec.placement.is_empty();
        if several && matches!(launch, Launch::Flags | Launch::Pdl { .. } | Launch::Warps) {
            return Err(PipelineError::GrainUnsupported { grain: launch.name(), why: "the simulated device models it on one GPU only".into() }.into());
        }
        let runs = runs.max(1);
        let wall = Instant::now();
        for p in &mut self.parts {
            p.device.clear_reports();
            p.device.poison_output();
        }
        // For this call only: the next call sets its own, or none. The
        // fault's chunk is the pipeline's; each part checks its own chunks.
        let fault = self.fault.take();
        for p in &mut self.parts {
            p.device.set_fault(fault);
        }
        let runs_done = self.run_launch(launch, runs)?;
        for p in &self.parts {
            check_device(&p.device)?;
        }
        if runs_done < runs {
            return Err(PipelineError::Interrupted { runs_done, runs }.into());
        }
        self.gather();
        let timeline = (self.timeline && matches!(launch, Launch::Streams | Launch::Graph | Launch::Warps)).then(|| self.simulated_timeline());
        let reductions = self.records.iter().map(|r| r.unwrap_or(kernel_math::Reduction::EMPTY)).collect();
        let reductions = if self.spec.reduces() { reductions } else { Vec::new() };
        Ok(RunReport { runs, gpu_ms: 0.0, wall_ms: wall.elapsed().as_secs_f64() * 1e3, part_ms: Vec::new(), reductions, timeline, flag_stamps: Vec::new() })
    }

    /// Runs `launch` up to `runs` times; the runs done (fewer when
    /// interrupted, each one whole).
    fn run_launch(&mut self, launch: Launch, runs: usize) -> Result<usize, SimError> {
        match launch {
            Launch::Streams | Launch::Graph | Launch::Warps => {
                // Every run enqueued before one synchronize (runs overlap
                // as on a GPU); an interrupt stops each part at a whole run.
                let mut done = runs;
                for p in 0..self.parts.len() {
                    done = done.min(self.run_streams(p, launch, runs)?);
                }
                self.runs_done += done;
                Ok(done)
            }
            Launch::Flags | Launch::Pdl { .. } | Launch::Grain(_) => {
                let slots = self.parts[0].graph.slots();
                let mut done = 0;
                for run in 0..runs {
                    if self.interrupted() {
                        break;
                    }
                    done += 1;
                    let device = &mut self.parts[0].device;
                    device.set_run(self.runs_done + run);
                    // The run's reset (counters, records) on stream 0 and
                    // its join: runs are ordered one after the other.
                    (0..self.spec.stages.len()).for_each(|s| device.run_begin(s));
                    let ran = match launch {
                        Launch::Flags => flags_run(device, &self.spec, slots, &self.protocol, &mut self.rng),
                        _ => pdl_run(device, &self.spec, slots, &self.protocol, &mut self.rng),
                    };
                    if let Err(stuck) = ran {
                        device.set_stuck(format!("run {}: {}", self.runs_done + run, stuck.0));
                        break;
                    }
                }
                self.runs_done += done;
                Ok(done)
            }
        }
    }

    /// Every part's simulated spans, one row per stage, each label saying
    /// the times are simulated.
    fn simulated_timeline(&self) -> Timeline {
        let names: Vec<String> = self.spec.stages.iter().map(|s| s.name().to_string()).collect();
        let gpus = self.spec.placement.iter().max().map_or(self.parts.len(), |&g| g + 1);
        let spans = self.parts.iter().flat_map(|p| p.device.spans().iter().cloned()).collect();
        let mut tl = Timeline::new(names, gpus, spans);
        tl.labels.iter_mut().for_each(|l| l.push_str(" (simulated time)"));
        tl
    }

    /// The host output's bytes and the records, each part's chunks from its device.
    fn gather(&mut self) {
        let size = self.spec.ring_types().ok().and_then(|t| t.last().map(|t| t.size())).unwrap_or(1);
        self.output = self.parts[0].device.output_bytes().map(<[u8]>::to_vec);
        for p in &self.parts {
            let (lo, hi) = (self.spec.chunk_range(p.chunks.start).start as usize, self.spec.chunk_range(p.chunks.end - 1).end as usize);
            if let (Some(out), Some(theirs)) = (&mut self.output, p.device.output_bytes()) {
                out[lo * size..hi * size].copy_from_slice(&theirs[lo * size..hi * size]);
            }
            for c in p.chunks.clone() {
                self.records[c] = p.device.records()[c];
            }
        }
    }

    /// Part `p`'s stream launches, graph replay, or the warps grain (stream
    /// launches with its ring stages on the block ring), enqueued and synchronized.
    fn run_streams(&mut self, p: usize, launch: Launch, runs: usize) -> Result<usize, SimError> {
        let streams = self.streams;
        let part = &mut self.parts[p];
        if launch == Launch::Graph && part.capture.is_none() {
            // The capture: the run's actions as enqueued, kept and replayed.
            let mut c = Capture::default();
            enqueue_actions(plan(&part.graph, streams), &mut c)?;
            part.capture = Some(c.finish()?);
        }
        let warps = (launch == Launch::Warps).then(|| Arc::new(WarpsSim::new(&self.spec, self.protocol.clone())) as Arc<dyn OpModel>);
        part.device.set_op_model(warps.or_else(|| self.link.clone()));
        let interrupt = self.interrupt.clone();
        let stop = || interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
        let enqueued = enqueue_runs(part, streams, self.runs_done, launch, runs, stop);
        // The runs enqueued finish, interrupted or not.
        let synced = enqueued.and_then(|done| part.device.synchronize().map(|()| done));
        part.device.set_op_model(None);
        Ok(synced?)
    }

    /// Checks the last run's results against the CPU reference, as
    /// [`crate::Pipeline::verify`] does.
    pub fn verify(&self, report: &RunReport) -> Verification {
        verify(&self.spec, self.parts[0].device.input_bytes(), self.output.as_deref(), &report.reductions)
    }

    /// Runs this pipeline's send and recv stages with `link` (a rank).
    pub(crate) fn set_link(&mut self, link: Arc<dyn OpModel>) {
        self.link = Some(link);
    }

    /// The host output's bytes (d2h sinks), as of the last run.
    pub fn output_bytes(&self) -> Option<&[u8]> {
        self.output.as_deref()
    }
}

/// Enqueues up to `runs` runs on `part`, none once `stop()`; the runs enqueued.
fn enqueue_runs(part: &mut SimPart, streams: usize, runs_done: usize, launch: Launch, runs: usize, stop: impl Fn() -> bool) -> Result<usize, PipelineError> {
    for run in 0..runs {
        if stop() {
            return Ok(run);
        }
        part.device.set_run(runs_done + run);
        match (&part.capture, launch) {
            (Some(actions), Launch::Graph) => enqueue_actions(actions.iter().copied(), &mut part.device)?,
            _ => enqueue_actions(plan(&part.graph, streams), &mut part.device)?,
        }
    }
    Ok(runs)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(actions: Vec<Action>) -> Result<Vec<Action>, SimError> {
        let mut c = Capture::default();
        enqueue_actions(actions, &mut c)?;
        c.finish()
    }

    /// The executor's plans are valid captures; without the fork a stream
    /// works outside the capture, without a join it is left unjoined, and
    /// the capture says which, in one line.
    #[test]
    fn a_capture_needs_the_fork_and_every_join() {
        for (stages, slots, chunks) in [(3, 2, 7), (2, 1, 1), (5, 3, 10)] {
            let graph = EventGraph::new(stages, chunks, slots);
            let actions = plan(&graph, stages);
            assert_eq!(capture(actions.clone()).unwrap(), actions);
            let no_fork: Vec<Action> = actions.iter().copied().filter(|a| !matches!(a, Action::Wait { event: EventId::Fork, .. })).collect();
            let e = capture(no_fork).unwrap_err().to_string();
            assert!(e.contains("never joined the capture") && e.contains("stream 1") && !e.contains('\n'), "{e}");
            let last_join = actions.iter().rposition(|a| matches!(a, Action::Wait { stream: 0, event: EventId::Join(_) })).unwrap();
            let mut no_join = actions.clone();
            no_join.remove(last_join);
            let e = capture(no_join).unwrap_err().to_string();
            assert!(e.contains(&format!("stream {} is not joined back", stages - 1)), "{e}");
        }
        // One stream (serial): nothing to fork or join.
        let serial = plan(&EventGraph::new(3, 4, 2), 1);
        assert!(capture(serial).is_ok());
    }
}
