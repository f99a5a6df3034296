//! Runs a [`PipelineSpec`] on one or more GPUs: per GPU, one stream per
//! stage, a ring of K slots between neighbouring stages, and exactly the
//! waits of the [`EventGraph`]. The host only enqueues; it synchronizes once,
//! at the end of a run.
use crate::PipelineError;
use crate::graph::EventGraph;
use crate::host_mem::PinnedBuffer;
use crate::reference::{Verification, verify};
use crate::spec::{MapKernel, PipelineSpec, Stage};
use crate::timeline::{PendingSpan, Timeline};
use cudarc::driver::{CudaEvent, CudaGraph, CudaSlice, CudaStream, DevicePtr, PushKernelArg, result as cu, sys};
use kernel_math::{POISON_BITS, Reduction};
use pc_runtime::Error;
use pc_runtime::gpu::{Gpu, Kernel};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

const RECORD_WORDS: usize = std::mem::size_of::<Reduction>() / 8;
const _: () = assert!(std::mem::size_of::<Reduction>() == 80, "Reduction is 80 bytes, no padding");

/// Where stream input comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// `produce(i, seed)`, computed on the host.
    Generated,
    /// Little-endian f32 from a file, at least `total_elements` of them.
    File(PathBuf),
}

/// How a run is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Every operation enqueued on the streams, each run.
    Streams,
    /// The launch sequence captured once as a CUDA graph and replayed.
    Graph,
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
    /// Start and end of every (stage, chunk), when asked for (stream launches only).
    pub timeline: Option<Timeline>,
}

impl RunReport {
    /// Input elements moved per second, over all runs, in decimal GB/s of f32.
    pub fn input_gbps(&self, spec: &PipelineSpec) -> f64 {
        let bytes = spec.total_elements as f64 * 4.0 * self.runs as f64;
        bytes / (self.gpu_ms as f64 * 1e-3) / 1e9
    }
}

/// One GPU's share of the chunks and everything it runs them with.
struct Part<'g> {
    gpu: &'g Gpu,
    /// Global chunk indices of this part.
    chunks: Range<usize>,
    streams: Vec<Arc<CudaStream>>,
    /// Ring `r` between stage `r` and `r + 1`; `ring_ptrs` their base addresses.
    rings: Vec<CudaSlice<f32>>,
    ring_ptrs: Vec<u64>,
    slot_stride: u64,
    /// Reduction records (one per local chunk) and the EMPTY template they are reset from.
    reductions: Option<(CudaSlice<u64>, CudaSlice<u64>)>,
    kernels: Vec<Option<Kernel>>,
    delay: Kernel,
    /// `events[stage][c % pool]`: the "done" event of (stage, c).
    events: Vec<Vec<CudaEvent>>,
    fork: CudaEvent,
    joins: Vec<CudaEvent>,
    graph: EventGraph,
    cuda_graph: Option<CudaGraph>,
}

/// A pipeline ready to run: buffers allocated, streams and events created.
///
/// ```no_run
/// use pc_pipeline::{Pipeline, PipelineSpec, Workload, Launch, Input};
/// use pc_runtime::gpu::Gpu;
/// let gpu = Gpu::open(0)?;
/// let spec = PipelineSpec::new(Workload::Stream).slots(3).chunk_elements(1 << 20).total_elements(1 << 26);
/// let mut pipeline = Pipeline::new(&[&gpu], spec, Input::Generated)?;
/// let report = pipeline.run(Launch::Streams, 1, false)?;
/// assert!(pipeline.verify(&report).passed());
/// println!("{:.1} GB/s", report.input_gbps(pipeline.spec()));
/// # Ok::<(), pc_pipeline::PipelineError>(())
/// ```
pub struct Pipeline<'g> {
    spec: PipelineSpec,
    parts: Vec<Part<'g>>,
    input: Option<PinnedBuffer>,
    output: Option<PinnedBuffer>,
}

fn err(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> PipelineError + '_ {
    move |e| PipelineError::Runtime(Error::cuda(what)(e))
}

impl<'g> Pipeline<'g> {
    /// Splits the chunks over `gpus` (contiguous ranges, in order) and
    /// allocates everything. Nothing runs yet.
    pub fn new(gpus: &[&'g Gpu], spec: PipelineSpec, input: Input) -> Result<Pipeline<'g>> {
        spec.validate()?;
        if gpus.is_empty() {
            return Err(PipelineError::NoGpus);
        }
        let chunks = spec.chunks();
        let n = gpus.len().min(chunks);
        let ranges: Vec<Range<usize>> = (0..n).map(|g| (g * chunks / n)..((g + 1) * chunks / n)).collect();
        let parts = gpus[..n].iter().zip(ranges).map(|(gpu, r)| Part::new(gpu, &spec, r)).collect::<Result<Vec<_>>>()?;
        let ctx = gpus[0].context();
        let input = if spec.reads_host() { Some(load_input(ctx, &spec, input)?) } else { None };
        let output = if spec.reduces() { None } else { Some(PinnedBuffer::new(ctx, spec.total_elements as usize)?) };
        Ok(Pipeline { spec, parts, input, output })
    }

    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The event graph of GPU `part`'s share (local chunk numbers).
    pub fn event_graph(&self, part: usize) -> &EventGraph {
        &self.parts[part].graph
    }

    /// Replaces every part's event graph (for the sync checker: the same
    /// pipeline with an edge removed). Drops any captured CUDA graph.
    pub fn set_event_graph(&mut self, f: impl Fn(&EventGraph) -> EventGraph) {
        for p in &mut self.parts {
            p.graph = f(&p.graph);
            p.cuda_graph = None;
        }
    }

    /// Changes the per-stage delays (see [`PipelineSpec::spin_ns`]) without
    /// reallocating. Drops any captured CUDA graph.
    pub fn set_delays(&mut self, ns: Vec<u64>) {
        self.spec.spin_ns = ns;
        for p in &mut self.parts {
            p.cuda_graph = None;
        }
    }

    /// Refills every ring slot with the poison pattern, so that a stage that
    /// reads a slot too early sees poison, not a stale copy of the right data.
    pub fn poison_rings(&self) -> Result<()> {
        for p in &self.parts {
            p.poison_rings()?;
        }
        Ok(())
    }

    /// Number of GPUs in use (at most one per chunk).
    pub fn gpus(&self) -> usize {
        self.parts.len()
    }

    /// The host input (h2d sources).
    pub fn input(&self) -> Option<&[f32]> {
        self.input.as_ref().map(|b| b.as_slice())
    }

    /// The host output (d2h sinks), as of the last run.
    pub fn output(&self) -> Option<&[f32]> {
        self.output.as_ref().map(|b| b.as_slice())
    }

    /// Runs the pipeline `runs` times back to back (no host synchronization
    /// between runs: each run's streams wait on the previous run's end),
    /// then synchronizes once. `timeline` records start/end events of every
    /// (stage, chunk) of the last run (stream launches only).
    pub fn run(&mut self, launch: Launch, runs: usize, timeline: bool) -> Result<RunReport> {
        self.run_with_progress(launch, runs, timeline, |_| {})
    }

    /// [`Pipeline::run`], calling `progress(done_runs)` as runs finish on the GPU.
    pub fn run_with_progress(&mut self, launch: Launch, runs: usize, timeline: bool, mut progress: impl FnMut(usize)) -> Result<RunReport> {
        let runs = runs.max(1);
        if let Some(out) = &mut self.output {
            out.as_mut_slice().fill(f32::from_bits(POISON_BITS));
        }
        if launch == Launch::Graph {
            for p in &mut self.parts {
                if p.cuda_graph.is_none() {
                    p.capture(&self.spec, self.input.as_ref(), self.output.as_mut())?;
                }
            }
        }
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let wall = Instant::now();
        let mut origins = Vec::new();
        let mut spans: Vec<PendingSpan> = Vec::new();
        // Run completion events, to report progress and to keep the host at
        // most two runs ahead of the GPU. Only the unfinished ones are kept:
        // a long run must not grow with its run count.
        let mut pending: std::collections::VecDeque<Vec<CudaEvent>> = std::collections::VecDeque::new();
        let mut finished = 0;
        for run in 0..runs {
            let last = run + 1 == runs;
            let mut run_done = Vec::new();
            for (pi, p) in self.parts.iter().enumerate() {
                let s0 = &p.streams[0];
                if run == 0 {
                    origins.push(s0.record_event(timing).map_err(err("recording the origin event"))?);
                }
                match launch {
                    Launch::Streams => {
                        let tl = if timeline && last { Some(&mut spans) } else { None };
                        p.enqueue(&self.spec, pi, self.input.as_ref(), self.output.as_mut(), tl)?;
                    }
                    Launch::Graph => match &p.cuda_graph {
                        Some(g) => g.launch().map_err(err("launching the captured graph"))?,
                        None => return Err(PipelineError::EmptyCapture),
                    },
                }
                run_done.push(s0.record_event(timing).map_err(err("recording the end event"))?);
            }
            pending.push_back(run_done);
            while pending.len() > 2 {
                for e in pending.pop_front().into_iter().flatten() {
                    e.synchronize().map_err(err("running the pipeline"))?;
                }
                finished += 1;
                progress(finished);
            }
        }
        for p in &self.parts {
            for s in &p.streams {
                s.synchronize().map_err(err("running the pipeline"))?;
            }
        }
        progress(runs);
        let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
        let ends = pending.back().expect("at least one run");
        let part_ms: Vec<f32> = origins.iter().zip(ends).map(|(o, e)| o.elapsed_ms(e)).collect::<Result<_, _>>().map_err(err("timing the run"))?;
        let gpu_ms = part_ms.iter().copied().fold(0.0, f32::max);

        let mut reductions = Vec::new();
        for p in &self.parts {
            reductions.extend(p.read_reductions()?);
        }
        let timeline = if timeline && launch == Launch::Streams {
            let mut out = Vec::with_capacity(spans.len());
            for s in &spans {
                out.push(s.resolve(&origins[s.part])?);
            }
            Some(Timeline::new(self.spec.stages.iter().map(|s| s.name().to_string()).collect(), self.parts.len(), out))
        } else {
            None
        };
        Ok(RunReport { runs, gpu_ms, wall_ms, part_ms, reductions, timeline })
    }

    /// Checks the last run's results, chunk by chunk, against the CPU reference.
    pub fn verify(&self, report: &RunReport) -> Verification {
        verify(&self.spec, self.input(), self.output(), &report.reductions)
    }
}

fn load_input(ctx: &Arc<cudarc::driver::CudaContext>, spec: &PipelineSpec, input: Input) -> Result<PinnedBuffer> {
    let n = spec.total_elements as usize;
    let mut buf = PinnedBuffer::new(ctx, n)?;
    match input {
        Input::Generated => {
            let seed = spec.seed;
            let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
            let part = n.div_ceil(threads).max(1 << 16);
            std::thread::scope(|s| {
                for (k, chunk) in buf.as_mut_slice().chunks_mut(part).enumerate() {
                    s.spawn(move || {
                        let base = (k * part) as u64;
                        chunk.iter_mut().enumerate().for_each(|(i, v)| *v = kernel_math::produce(base + i as u64, seed));
                    });
                }
            });
        }
        Input::File(path) => {
            use std::io::Read;
            let io = |source| PipelineError::Input { path: path.clone(), source };
            let mut f = std::fs::File::open(&path).map_err(io)?;
            let have = f.metadata().map_err(io)?.len();
            let want = spec.total_elements * 4;
            if have < want {
                return Err(PipelineError::InputTooShort { path, have, want });
            }
            // SAFETY: viewing the f32 buffer as bytes; any bytes are a valid f32.
            let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, n * 4) };
            f.read_exact(bytes).map_err(io)?;
            if cfg!(target_endian = "big") {
                buf.as_mut_slice().iter_mut().for_each(|v| *v = f32::from_bits(u32::from_le(v.to_bits())));
            }
        }
    }
    Ok(buf)
}

impl<'g> Part<'g> {
    fn new(gpu: &'g Gpu, spec: &PipelineSpec, chunks: Range<usize>) -> Result<Part<'g>> {
        let stages = spec.stages.len();
        let local = chunks.len();
        let slots = spec.slots.min(local).max(1);
        let slot_stride = spec.chunk_elements.min(spec.total_elements);
        let ring_elems = slot_stride * slots as u64;
        let records = if spec.reduces() { local * RECORD_WORDS * 8 * 2 } else { 0 };
        let needed = (stages as u128 - 1) * ring_elems as u128 * 4 + records as u128;
        let (free, total) = gpu.memory()?;
        if needed > free as u128 {
            return Err(Error::TooLarge { elements: spec.total_elements, needed, free: free as u128, total: total as u128, device: gpu.info().index }.into());
        }

        let streams: Vec<Arc<CudaStream>> = (0..if spec.serial { 1 } else { stages }).map(|_| gpu.stream()).collect::<Result<_, _>>()?;
        let s0 = &streams[0];
        let mut rings = Vec::new();
        let mut ring_ptrs = Vec::new();
        for r in 0..stages - 1 {
            // SAFETY: poisoned right below, before any use.
            let ring = unsafe { s0.alloc::<f32>(ring_elems as usize) }.map_err(err(&format!("allocating ring {r}")))?;
            let (ptr, _) = ring.device_ptr(s0);
            pc_runtime::gpu::poison(s0, &ring)?;
            ring_ptrs.push(ptr);
            rings.push(ring);
        }
        let reductions = if spec.reduces() {
            let template: Vec<u64> = (0..local).flat_map(|_| reduction_words(&Reduction::EMPTY)).collect();
            let empty = s0.clone_htod(&template).map_err(err("uploading empty reductions"))?;
            let recs = s0.clone_htod(&template).map_err(err("allocating reductions"))?;
            Some((recs, empty))
        } else {
            None
        };
        let kernels = spec
            .stages
            .iter()
            .map(|st| {
                let k = match st {
                    Stage::Producer => gpu.kernel(ptx_kernels::PRODUCER_VEC)?,
                    Stage::Map(MapKernel { entry, module: None, .. }) => gpu.kernel(entry)?,
                    Stage::Map(MapKernel { entry, module: Some(ptx), .. }) => gpu.kernel_from_ptx(ptx, entry)?,
                    Stage::Reduce => gpu.kernel(ptx_kernels::REDUCE)?,
                    Stage::H2d | Stage::D2h => return Ok(None),
                };
                k.check_block(spec.block_size)?;
                Ok::<_, Error>(Some(k))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let delay = gpu.kernel(ptx_kernels::DELAY)?;
        let graph = if spec.serial { EventGraph::unordered(stages, local, slots) } else { EventGraph::new(stages, local, slots) };
        let ctx = gpu.context();
        let event = || ctx.new_event(None).map_err(err("creating an event"));
        let events = (0..stages).map(|_| (0..graph.event_pool_size()).map(|_| event()).collect::<Result<Vec<_>>>()).collect::<Result<Vec<_>>>()?;
        let fork = event()?;
        let joins = (0..streams.len()).map(|_| event()).collect::<Result<Vec<_>>>()?;
        s0.synchronize().map_err(err("setting up the pipeline"))?;
        Ok(Part { gpu, chunks, streams, rings, ring_ptrs, slot_stride, reductions, kernels, delay, events, fork, joins, graph, cuda_graph: None })
    }

    /// Poison in every ring slot, then wait for it.
    fn poison_rings(&self) -> Result<()> {
        let s0 = &self.streams[0];
        for ring in &self.rings {
            pc_runtime::gpu::poison(s0, ring)?;
        }
        s0.synchronize().map_err(err("poisoning the rings"))
    }

    fn stream(&self, stage: usize) -> &Arc<CudaStream> {
        &self.streams[stage.min(self.streams.len() - 1)]
    }

    /// Enqueues one run: fork every stream from stream 0, reset the
    /// reductions, every (stage, chunk) with exactly its graph waits, then
    /// join every stream back into stream 0.
    fn enqueue(
        &self,
        spec: &PipelineSpec,
        part: usize,
        input: Option<&PinnedBuffer>,
        output: Option<&mut PinnedBuffer>,
        mut timeline: Option<&mut Vec<PendingSpan>>,
    ) -> Result<()> {
        let s0 = &self.streams[0];
        self.fork.record(s0).map_err(err("recording the fork event"))?;
        for s in &self.streams[1..] {
            s.wait(&self.fork).map_err(err("waiting on the fork event"))?;
        }
        if let Some((recs, empty)) = &self.reductions {
            let sink = self.stream(spec.stages.len() - 1);
            let (dst, _) = recs.device_ptr(sink);
            let (src, _) = empty.device_ptr(sink);
            // SAFETY: both buffers hold the same number of words.
            unsafe { cu::memcpy_dtod_async(dst, src, recs.len() * 8, sink.cu_stream()) }.map_err(err("resetting the reductions"))?;
        }
        let host_in = input.map(|b| b.as_ptr());
        let host_out = output.map(|b| b.as_mut_ptr());
        let pool = self.graph.event_pool_size();
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        for (s, lc) in self.graph.enqueue_order() {
            {
                let st = self.stream(s);
                for e in self.graph.waits_of(s, lc) {
                    st.wait(&self.events[e.from.0][e.from.1 % pool]).map_err(err("waiting on a filled/freed event"))?;
                }
                let start = match timeline {
                    Some(_) => Some(st.record_event(timing).map_err(err("recording a timeline event"))?),
                    None => None,
                };
                self.op(spec, s, lc, st, host_in, host_out)?;
                // The end timestamp before the done event: a waiter released
                // by the done event then never appears to start before it.
                if let (Some(tl), Some(start)) = (timeline.as_deref_mut(), start) {
                    let end = st.record_event(timing).map_err(err("recording a timeline event"))?;
                    tl.push(PendingSpan { part, gpu: part, stage: s, chunk: self.chunks.start + lc, start, end });
                }
                if self.graph.signals(s, lc) {
                    self.events[s][lc % pool].record(st).map_err(err("recording a stage's done event"))?;
                }
            }
        }
        for (s, j) in self.streams.iter().zip(&self.joins).skip(1) {
            j.record(s).map_err(err("recording a join event"))?;
            s0.wait(j).map_err(err("joining a stream"))?;
        }
        Ok(())
    }

    /// Stage `s` on local chunk `lc`, enqueued on `st`.
    fn op(&self, spec: &PipelineSpec, s: usize, lc: usize, st: &Arc<CudaStream>, host_in: Option<*const f32>, host_out: Option<*mut f32>) -> Result<()> {
        let range = spec.chunk_range(self.chunks.start + lc);
        let len = range.end - range.start;
        let slot = (lc % self.graph.slots()) as u64 * self.slot_stride * 4;
        let input = if s > 0 { self.ring_ptrs[s - 1] + slot } else { 0 };
        let output = if s + 1 < spec.stages.len() { self.ring_ptrs[s] + slot } else { 0 };
        let spin = spec.spin_of(s);
        let cfg = self.gpu.launch_config(len, spec.block_size, None)?;
        let what = spec.stages[s].name();
        let launch_err = |e| PipelineError::Runtime(Error::cuda(format!("launching stage {s} ({what})"))(e));
        if spin > 0 && matches!(spec.stages[s], Stage::H2d | Stage::D2h) {
            let one = cudarc::driver::LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: delay_kernel(ns: u64) touches no memory.
            unsafe { st.launch_builder(&self.delay.func).arg(&spin).launch(one) }.map_err(launch_err)?;
        }
        // SAFETY (all arms): the pointers address `len` elements of a ring
        // slot, of the pinned host buffers at the chunk's offset, or of the
        // chunk's reduction record; the kernel signatures match the args.
        match spec.stages[s] {
            Stage::Producer => {
                let k = self.kernels[s].as_ref().expect("kernel stage");
                unsafe { st.launch_builder(&k.func).arg(&output).arg(&len).arg(&range.start).arg(&spec.seed).arg(&spin).launch(cfg) }.map_err(launch_err)?;
            }
            Stage::Map(_) => {
                let k = self.kernels[s].as_ref().expect("kernel stage");
                unsafe { st.launch_builder(&k.func).arg(&input).arg(&output).arg(&len).arg(&spin).launch(cfg) }.map_err(launch_err)?;
            }
            Stage::Reduce => {
                let k = self.kernels[s].as_ref().expect("kernel stage");
                let (recs, _) = self.reductions.as_ref().expect("reduce sink has records");
                let (base, _) = recs.device_ptr(st);
                let rec = base + (lc * RECORD_WORDS * 8) as u64;
                unsafe { st.launch_builder(&k.func).arg(&input).arg(&len).arg(&rec).arg(&spin).launch(cfg) }.map_err(launch_err)?;
            }
            Stage::H2d => {
                let src = host_in.expect("h2d has host input");
                unsafe { sys::cuMemcpyHtoDAsync_v2(output, src.add(range.start as usize) as *const _, len as usize * 4, st.cu_stream()) }
                    .result()
                    .map_err(err("enqueuing a host-to-device copy"))?;
            }
            Stage::D2h => {
                let dst = host_out.expect("d2h has host output");
                unsafe { sys::cuMemcpyDtoHAsync_v2(dst.add(range.start as usize) as *mut _, input, len as usize * 4, st.cu_stream()) }
                    .result()
                    .map_err(err("enqueuing a device-to-host copy"))?;
            }
        }
        Ok(())
    }

    /// Captures one run's launch sequence as a CUDA graph on stream 0.
    fn capture(&mut self, spec: &PipelineSpec, input: Option<&PinnedBuffer>, output: Option<&mut PinnedBuffer>) -> Result<()> {
        let s0 = self.streams[0].clone();
        s0.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).map_err(err("starting the graph capture"))?;
        let enqueued = self.enqueue(spec, 0, input, output, None);
        let ended = s0.end_capture(sys::CUgraphInstantiate_flags(0)).map_err(err("ending the graph capture"));
        enqueued?;
        self.cuda_graph = ended?;
        if let Some(g) = &self.cuda_graph {
            g.upload().map_err(err("uploading the graph"))?;
        }
        Ok(())
    }

    fn read_reductions(&self) -> Result<Vec<Reduction>> {
        let Some((recs, _)) = &self.reductions else { return Ok(Vec::new()) };
        let s0 = &self.streams[0];
        let words = s0.clone_dtoh(recs).map_err(err("copying the reductions back"))?;
        s0.synchronize().map_err(err("copying the reductions back"))?;
        Ok(words.chunks_exact(RECORD_WORDS).map(reduction_from_words).collect())
    }
}

fn reduction_words(r: &Reduction) -> [u64; RECORD_WORDS] {
    // SAFETY: Reduction is repr(C), 80 bytes without padding (checked above).
    unsafe { std::mem::transmute_copy(r) }
}

fn reduction_from_words(w: &[u64]) -> Reduction {
    let mut a = [0u64; RECORD_WORDS];
    a.copy_from_slice(w);
    // SAFETY: as above; every bit pattern is a valid Reduction (integers only).
    unsafe { std::mem::transmute::<[u64; RECORD_WORDS], Reduction>(a) }
}
