//! Streams: an unbounded sequence of chunks from a host source (any
//! `Read`, an iterator, a channel) through the GPU stages to a host sink
//! (any `Write`, a callback, a channel), in O(K x chunk) memory whatever
//! the stream's length.
//!
//! The host side is a producer/consumer pipeline itself, with the same
//! filled/freed rule as the GPU rings:
//! - **reader threads** fill pinned input staging slots from the source
//!   (a slot is *filled* when read; *freed* once the chunk's last GPU
//!   operation finished, which follows its h2d copy): one for a source read
//!   in order, several for one read at any offset (a regular file), whose
//!   chunks are then handed on in chunk order whatever order their reads
//!   finish in (`input`);
//! - the **calling thread** enqueues each chunk on the GPU stages exactly
//!   as [`crate::exec::plan::stream_chunk`] lists (the waits of the event
//!   graph, one chunk at a time) and records a done event after its d2h;
//! - a **writer thread** waits for that event, optionally checks the chunk
//!   against the CPU reference, hands it to the sink and frees both slots.
//!
//! Backpressure: by default the reader waits for a free slot. A live
//! source may choose [`Backpressure::DropOldest`]: when every slot is busy
//! the oldest chunk not yet on the GPU is dropped, counted and reported.
//!
//! ```no_run
//! use pc_pipeline::stream::{self, StreamOptions};
//! use pc_pipeline::{PipelineSpec, Workload};
//! let gpu = pc_runtime::gpu::Gpu::open(0)?;
//! let spec = PipelineSpec::new(Workload::Stream).chunk_elements(1 << 20);
//! let source = stream::ReadSource(std::io::stdin());
//! let sink = stream::WriteSink(std::io::sink());
//! let report = stream::run(&gpu, &spec, source, sink, StreamOptions::default())?;
//! println!("{} chunks, latency p99 {:.0} us", report.chunks, report.latency.p99_us);
//! # Ok::<(), pc_pipeline::PipelineError>(())
//! ```
mod input;
mod io;

pub use input::Backpressure;
pub use io::{
    Discard, FileSink, FileSource, FnSink, IterSource, ReadAt, ReadSource, StreamReader, StreamSink, StreamSource, WriteSink, from_channel, from_iter,
    to_channel, to_fn,
};

use crate::PipelineError;
use crate::elem::ElemType;
use crate::exec::device::{EnqueueTo, enqueue_actions};
use crate::exec::part::Part;
use crate::exec::plan::{Action, EventId, stream_chunk};
use crate::host_mem::PinnedBuffer;
use crate::reference::Verification;
use crate::spec::PipelineSpec;
use crate::stage::{ChunkInfo, Kind, Sink};
use crate::timeline::{Span, Timeline};
use cudarc::driver::CudaEvent;
use input::{Input, Pace, Reading, tight_timer_slack};
use pc_runtime::gpu::Gpu;
// Timing events' flags (the done events need none).
use pc_runtime::stream::TIMING;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// How a stream runs.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Pinned staging slots per direction (default: enough for every chunk
    /// the GPU rings can hold at once, plus one per reader and one written).
    pub host_slots: Option<usize>,
    /// Chunks read at once from a source read at any offset
    /// ([`StreamSource::positional`], a regular file); default: one piece
    /// of 256 KiB per core, at least 4 and at most 16 chunks; at most the
    /// staging slots less one. A source read in order has one reader.
    pub readers: Option<usize>,
    pub backpressure: Backpressure,
    /// Pace the source to this many input bytes per second (a live source):
    /// chunk `i` counts as arrived when its last byte is due, and latency
    /// is measured from then.
    pub rate_bytes_per_s: Option<f64>,
    /// Check every chunk against the CPU reference on the writer thread.
    pub verify: bool,
    /// Set (say by a SIGINT handler) to stop: no new chunk is started, the
    /// GPU work already queued finishes, and the run returns
    /// [`PipelineError::StreamInterrupted`].
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Keep a timeline ([`StreamReport::timeline`]): per chunk, its GPU
    /// operations (timing events around each) and its latency span. One
    /// record per chunk, so memory grows with the stream: for bounded runs.
    pub trace: bool,
}

/// Per-chunk latency: from the moment the source had the chunk to the
/// moment the sink had taken it, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub chunks: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

/// The outcome of [`run`].
#[derive(Debug, Clone)]
pub struct StreamReport {
    /// Chunks delivered to the sink.
    pub chunks: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Chunks (and their bytes) dropped under [`Backpressure::DropOldest`].
    pub dropped_chunks: u64,
    pub dropped_bytes: u64,
    /// From the first read to the sink's `finish`.
    pub wall_s: f64,
    pub latency: Latency,
    /// Pinned staging slots per direction.
    pub host_slots: usize,
    /// When asked for: every delivered chunk checked.
    pub verification: Option<Verification>,
    /// When asked for ([`StreamOptions::trace`]): one row per GPU stage, its
    /// operations as spans, then a row with each chunk's read (into its
    /// staging slot) and a last row with each chunk's latency span (source
    /// had it -> sink took it), in ms from the stream's start. GPU
    /// times are placed on the host clock through an origin event recorded
    /// and waited for before the first chunk: they may sit a few
    /// microseconds late (the wait's wake-up).
    pub timeline: Option<Timeline>,
}

impl StreamReport {
    /// Input bytes delivered per second of wall time, decimal GB/s.
    pub fn input_gbps(&self) -> f64 {
        self.bytes_in as f64 / self.wall_s.max(1e-9) / 1e9
    }
}

/// A chunk on the GPU, for the writer.
struct Job {
    chunk: u64,
    in_slot: usize,
    out_slot: usize,
    in_bytes: usize,
    out_bytes: usize,
    ready: Instant,
    read: (Instant, Instant),
    /// With a trace: (stage, start, end) timing events around each operation.
    ops: Vec<(usize, CudaEvent, CudaEvent)>,
}

/// The pinned staging rings and what the threads share.
struct Shared {
    /// The input slots, their readers' queue and the drop counts.
    input: Arc<Input>,
    output: PinnedBuffer,
    out_slot_bytes: usize,
    stop: AtomicBool,
}

impl Shared {
    /// # Safety
    /// The caller holds input slot `i`'s token and no copy writes into it;
    /// `len` at most the slot's size.
    unsafe fn in_view(&self, i: usize, len: usize) -> &[u8] {
        // SAFETY: the caller's token (as required).
        unsafe { self.input.view(i, len) }
    }
    /// # Safety
    /// The caller holds output slot `i`'s token and the GPU copy into it
    /// has finished; `len` at most the slot's size.
    unsafe fn out_view(&self, i: usize, len: usize) -> &[u8] {
        // SAFETY: in bounds; the copy that wrote it is complete.
        unsafe { std::slice::from_raw_parts(self.output.base().add(i * self.out_slot_bytes), len.min(self.out_slot_bytes)) }
    }
    fn in_ptr(&self, i: usize) -> *const u8 {
        self.input.ptr(i)
    }
    fn out_ptr(&self, i: usize) -> *mut u8 {
        self.output.base().wrapping_add(i * self.out_slot_bytes)
    }
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.input.close();
    }
}

const TICK: Duration = Duration::from_millis(20);

/// Chunks read at once from a positional source by default: enough for a
/// piece of 256 KiB per core (a file reads each chunk in such pieces on a
/// pool of one thread per core), and at least 4, so a few chunks in flight
/// keep the pool busy across one chunk's fixed costs (its pieces' start and
/// join, the hand-off); at most 16, each holding a slot while it reads.
fn default_readers(chunk_bytes: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * (256 << 10) / chunk_bytes.max(1)).clamp(4, 16)
}

/// Runs `spec` (from `h2d` to `d2h`; its total is ignored: the stream is as
/// long as the source) over everything `source` yields, writing every
/// chunk's output to `sink` in order. A last partial chunk is processed; a
/// stream that ends mid-element is an error naming the byte count (the
/// chunks before it were delivered).
pub fn run(gpu: &Gpu, spec: &PipelineSpec, source: impl StreamSource, sink: impl StreamSink, opts: StreamOptions) -> Result<StreamReport> {
    let source: Box<dyn StreamSource> = Box::new(source);
    let sink: Box<dyn StreamSink> = Box::new(sink);
    let k = spec.slots;
    let chunk = spec.chunk_elements;
    // Allocation: exactly K chunks, so each ring has K slots of one chunk.
    let spec = spec.clone().total_elements(chunk.saturating_mul(k as u64).max(1));
    spec.validate()?;
    if !spec.reads_host() || !spec.writes_host() {
        return Err(PipelineError::BadStages("a stream needs a pipeline from a host source (h2d) to a host sink (d2h)".into()));
    }
    let types = spec.ring_types()?;
    let (in_t, out_t) = (types[0], types[types.len() - 1]);
    for (what, have, want) in [("source", source.elem(), in_t), ("sink", sink.elem(), out_t)] {
        if let Some(have) = have.filter(|h| *h != want) {
            return Err(PipelineError::BadInput(format!("the stream's {what} holds {have} but the pipeline's is {want}")));
        }
    }
    let stages = spec.stages.len();
    let mut reading = Reading::of(source, opts.readers.unwrap_or_else(|| default_readers((chunk as usize).saturating_mul(in_t.size()))));
    let host_slots = opts.host_slots.unwrap_or((stages - 1) * k + 1 + reading.readers()).max(2);
    // A reader holds a slot while it reads: leave one for the GPU side.
    reading.limit_readers(host_slots - 1);
    let slot_bytes = |t: ElemType| (chunk as usize).checked_mul(t.size()).map(|b| b.next_multiple_of(256));
    let too_big = || PipelineError::Runtime(pc_runtime::Error::HostMemory { elements: chunk, needed: chunk as u128 * 16 * host_slots as u128 });
    let (in_slot_bytes, out_slot_bytes) = (slot_bytes(in_t).ok_or_else(too_big)?, slot_bytes(out_t).ok_or_else(too_big)?);
    // SAFETY: the staging buffers are reached only through slot tokens
    // (below); the GPU copies that use a slot finish before its token is
    // passed on (the writer waits for the chunk's done event).
    let ctx = unsafe { gpu.context() };
    let in_mem = PinnedBuffer::new(ctx, in_slot_bytes.checked_mul(host_slots).ok_or_else(too_big)?)?;
    let shared = Arc::new(Shared {
        input: Arc::new(Input::new(Box::new(in_mem), host_slots, in_slot_bytes, chunk as usize * in_t.size(), in_t.size())),
        output: PinnedBuffer::new(ctx, out_slot_bytes.checked_mul(host_slots).ok_or_else(too_big)?)?,
        out_slot_bytes,
        stop: AtomicBool::new(false),
    });
    let mut part = Part::new(gpu, &spec, &types, 0..k)?;
    let done: Arc<Vec<CudaEvent>> = Arc::new((0..host_slots).map(|_| ctx.new_event(None)).collect::<Result<_, _>>().map_err(cuda("creating an event"))?);
    let start = Instant::now();
    // The trace's GPU clock: an origin event, waited for, taken as now.
    let origin = match opts.trace {
        true => {
            let e = part.streams[0].record_event(TIMING).map_err(cuda("recording the trace's origin event"))?;
            e.synchronize().map_err(cuda("waiting for the trace's origin event"))?;
            Some(Origin { offset_ms: start.elapsed().as_secs_f64() * 1e3, event: e, start, host_row: stages })
        }
        false => None,
    };

    let (out_free_tx, out_free_rx) = mpsc::channel::<usize>();
    for i in 0..host_slots {
        let _ = out_free_tx.send(i);
    }
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let interrupted = {
        let flag = opts.interrupt.clone();
        move || flag.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    };

    // The readers are joined only at a normal end: one may be blocked in
    // a read that never returns (a quiet pipe) when the run stops. Each
    // owns a reference to the input slots, so nothing it touches is freed
    // under it.
    let pace = Pace { start, rate: opts.rate_bytes_per_s };
    let readers = shared.input.spawn_readers(reading, opts.backpressure, pace);
    let readers = match readers {
        Ok(r) => r,
        Err(e) => {
            shared.stop();
            return Err(PipelineError::BadInput(format!("starting a reader thread: {e}")));
        }
    };

    let writer = {
        let (shared, done) = (shared.clone(), done.clone());
        let check = opts.verify.then(|| spec.clone());
        let interrupted = interrupted.clone();
        std::thread::Builder::new().name("stream-writer".into()).spawn(move || {
            tight_timer_slack();
            write_loop(&shared, &done, sink, job_rx, out_free_tx, check, origin, interrupted)
        })
    };
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            shared.stop();
            return Err(PipelineError::BadInput(format!("starting the writer thread: {e}")));
        }
    };

    let enqueued = enqueue_loop(&mut part, &spec, &shared, &done, &out_free_rx, &job_tx, opts.trace, &interrupted);
    drop(job_tx);
    if enqueued.is_err() {
        shared.stop();
    }
    // The writer ends when its jobs are done (or the GPU failed, which
    // its event waits report).
    let written = writer.join().unwrap_or_else(|_| Err(PipelineError::BadInput("the stream's writer thread panicked".into())));
    // Every copy into or out of the staging slots has finished: the part
    // synchronizes its streams when dropped.
    drop(part);
    let (bytes_in, chunks) = enqueued?;
    let w = written?;
    if interrupted() {
        shared.stop();
        return Err(PipelineError::StreamInterrupted { chunks: w.chunks });
    }
    // The input reached its end, so the readers are ending (none is
    // blocked: the end stops every claim).
    for r in readers {
        let _ = r.join();
    }
    if let Some(e) = shared.input.take_error() {
        return Err(e);
    }
    if w.chunks != chunks {
        return Err(PipelineError::BadInput(format!("{chunks} chunks went to the GPU but {} reached the sink", w.chunks)));
    }
    let (dropped_chunks, dropped_bytes) = shared.input.dropped();
    let verification = w.check.map(|mut v| {
        v.chunks_expected = chunks as usize;
        v
    });
    Ok(StreamReport {
        chunks,
        bytes_in,
        bytes_out: w.bytes_out,
        dropped_chunks,
        dropped_bytes,
        wall_s: start.elapsed().as_secs_f64(),
        latency: w.latency,
        host_slots,
        verification,
        timeline: w.spans.map(|spans| {
            let mut t = Timeline::new(spec.stages.iter().map(|s| s.name().to_string()).collect(), 1, spans);
            t.push_row(READ_ROW, "host: chunk read");
            t.push_row(LATENCY_ROW, "host: chunk latency");
            t
        }),
    })
}

/// The names of a stream trace's host rows, after the stages (their
/// spans: "read chunk C", "latency chunk C"): each chunk's read into its
/// staging slot, and its latency.
const READ_ROW: &str = "read";
const LATENCY_ROW: &str = "latency";

/// A trace's clock: `event` completed `offset_ms` after `start` (host
/// clock); the read spans go on row `host_row` (after the stages), the
/// latency spans on the next.
struct Origin {
    event: CudaEvent,
    start: Instant,
    offset_ms: f64,
    host_row: usize,
}

/// The host side alone, no GPU: reads `source` with the stream's readers
/// (several at once for a positional source) into staging slots of
/// ordinary memory, `chunk_bytes` (whole elements of `elem_size` bytes)
/// per chunk, hands each chunk, in order, as it is to `sink` ([`Discard`]:
/// to nothing) on this thread, and gives its slot back. Its throughput is
/// the ceiling the host side puts on a stream from this source to this
/// sink (`host pipeline --host-only`); latency runs from the read to the
/// sink. Slots: `host_slots`, by default the readers plus two. The errors
/// are those of [`run`].
pub fn host_only(source: impl StreamSource, sink: impl StreamSink, chunk_bytes: usize, elem_size: usize, opts: StreamOptions) -> Result<StreamReport> {
    if elem_size == 0 || chunk_bytes == 0 || !chunk_bytes.is_multiple_of(elem_size) {
        return Err(PipelineError::BadInput(format!("a chunk of {chunk_bytes} bytes is not whole elements of {elem_size} bytes")));
    }
    let source: Box<dyn StreamSource> = Box::new(source);
    let mut reading = Reading::of(source, opts.readers.unwrap_or_else(|| default_readers(chunk_bytes)));
    let slots = opts.host_slots.unwrap_or(reading.readers() + 2).max(2);
    reading.limit_readers(slots - 1);
    let bytes = chunk_bytes.checked_mul(slots).ok_or(PipelineError::BadInput(format!("{slots} slots of {chunk_bytes} bytes")))?;
    let input = Arc::new(Input::new(Box::new(input::HeapMemory::new(bytes)), slots, chunk_bytes, chunk_bytes, elem_size));
    let start = Instant::now();
    let handles = match input.spawn_readers(reading, opts.backpressure, Pace { start, rate: opts.rate_bytes_per_s }) {
        Ok(h) => h,
        Err(e) => {
            input.close();
            return Err(PipelineError::BadInput(format!("starting a reader thread: {e}")));
        }
    };
    let interrupted = || opts.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
    let mut hist = latency_histogram()?;
    let mut sink = sink;
    let (mut chunks, mut bytes_in) = (0u64, 0u64);
    while let Some(f) = input.pop(TICK, || !interrupted()) {
        // SAFETY: `pop` handed this thread the slot until it frees it.
        let written = sink.write_chunk(unsafe { input.view(f.slot, f.bytes) });
        input.free(f.slot);
        if let Err(e) = written {
            input.close();
            return Err(PipelineError::StreamOutput(e));
        }
        hist.saturating_record(f.ready.elapsed().as_micros() as u64);
        chunks += 1;
        bytes_in += f.bytes as u64;
    }
    if interrupted() {
        input.close();
        return Err(PipelineError::StreamInterrupted { chunks });
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(e) = input.take_error() {
        return Err(e);
    }
    sink.finish().map_err(PipelineError::StreamOutput)?;
    let (dropped_chunks, dropped_bytes) = input.dropped();
    Ok(StreamReport {
        chunks,
        bytes_in,
        bytes_out: bytes_in,
        dropped_chunks,
        dropped_bytes,
        wall_s: start.elapsed().as_secs_f64(),
        latency: latency_of(&hist),
        host_slots: slots,
        verification: None,
        timeline: None,
    })
}

/// 1 us to one hour, 3 significant digits: constant memory for any length.
fn latency_histogram() -> Result<hdrhistogram::Histogram<u64>> {
    hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| PipelineError::BadInput(format!("latency histogram: {e}")))
}

fn latency_of(hist: &hdrhistogram::Histogram<u64>) -> Latency {
    let us = |q: f64| hist.value_at_quantile(q) as f64;
    Latency { chunks: hist.len(), p50_us: us(0.5), p99_us: us(0.99), max_us: hist.max() as f64, mean_us: hist.mean() }
}

fn cuda(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> PipelineError + '_ {
    move |e| PipelineError::Runtime(pc_runtime::Error::cuda(what)(e))
}

/// The calling thread: each filled chunk onto the GPU. Returns (input
/// bytes, chunks) enqueued.
#[allow(clippy::too_many_arguments)]
fn enqueue_loop(
    part: &mut Part<'_>,
    spec: &PipelineSpec,
    shared: &Shared,
    done: &[CudaEvent],
    out_free: &mpsc::Receiver<usize>,
    jobs: &mpsc::Sender<Job>,
    trace: bool,
    interrupted: &dyn Fn() -> bool,
) -> Result<(u64, u64)> {
    let stages = spec.stages.len();
    let k = spec.slots;
    let (in_size, out_size) = (part.rings.first().map_or(4, |r| r.elem.size()), part.rings.last().map_or(4, |r| r.elem.size()));
    let (mut bytes, mut c, mut first) = (0u64, 0u64, 0u64);
    let h = done.len();
    // Per-stage setup once, before the first chunk (a stream's chunks
    // carry none), through the same seam.
    {
        let chunk = ChunkInfo { index: 0, range: 0..0, seed: spec.seed };
        let mut on_gpu =
            OnStreams { part: &mut *part, spec, chunk: &chunk, host: (std::ptr::null(), std::ptr::null_mut()), trace: false, ops: &mut Vec::new() };
        let streams = on_gpu.part.streams.len();
        let begins = (0..stages).map(|stage| Action::BeginRun { stream: crate::exec::plan::stream_of(stage, streams), stage });
        enqueue_actions(begins, &mut on_gpu)?;
    }
    while let Some(f) = shared.input.pop(TICK, || !interrupted()) {
        // The output slot: the writer frees them in chunk order, so holding
        // one for chunk c means chunk c - H is written and its done event
        // waited for: re-recording `done[c % H]` below is safe.
        let out_slot = loop {
            match out_free.recv_timeout(TICK) {
                Ok(s) => break Some(s),
                Err(mpsc::RecvTimeoutError::Timeout) if !interrupted() => {}
                Err(_) => break None,
            }
        };
        let Some(out_slot) = out_slot else { break };
        let n = (f.bytes / in_size) as u64;
        let chunk = ChunkInfo { index: c as usize, range: first..first + n, seed: spec.seed };
        let local = c as usize;
        let mut ops = Vec::new();
        let mut on_gpu = OnStreams { part: &mut *part, spec, chunk: &chunk, host: (shared.in_ptr(f.slot), shared.out_ptr(out_slot)), trace, ops: &mut ops };
        enqueue_actions(stream_chunk(stages, on_gpu.part.streams.len(), k, local), &mut on_gpu)?;
        let last = part.streams[crate::exec::plan::stream_of(stages - 1, part.streams.len())].clone();
        done[(c % h as u64) as usize].record(&last).map_err(cuda("recording a chunk's done event"))?;
        let job = Job { chunk: c, in_slot: f.slot, out_slot, in_bytes: f.bytes, out_bytes: n as usize * out_size, ready: f.ready, read: f.read, ops };
        if jobs.send(job).is_err() {
            break;
        }
        bytes += f.bytes as u64;
        first += n;
        c += 1;
    }
    Ok((bytes, c))
}

/// One chunk's actions as CUDA calls on a part's streams; `host`: the
/// chunk's (input, output) staging slots; with `trace`, timing events
/// around each operation go to `ops`.
struct OnStreams<'a, 'p> {
    part: &'a mut Part<'p>,
    spec: &'a PipelineSpec,
    chunk: &'a ChunkInfo,
    host: (*const u8, *mut u8),
    trace: bool,
    ops: &'a mut Vec<(usize, CudaEvent, CudaEvent)>,
}

impl EnqueueTo for OnStreams<'_, '_> {
    fn wait(&mut self, stream: usize, event: EventId) -> Result<()> {
        self.part.streams[stream].wait(self.part.event(event)).map_err(cuda("waiting on an event"))
    }

    fn record(&mut self, stream: usize, event: EventId) -> Result<()> {
        self.part.event(event).record(&self.part.streams[stream]).map_err(cuda("recording an event"))
    }

    fn begin_run(&mut self, stream: usize, stage: usize) -> Result<()> {
        let st = self.part.streams[stream].clone();
        self.part.stages[stage].begin_run(&st)
    }

    fn op(&mut self, stream: usize, stage: usize, lc: usize, slot: usize) -> Result<()> {
        let (stages, k) = (self.spec.stages.len(), self.spec.slots);
        let st = self.part.streams[stream].clone();
        let host_in = (stage == 0).then_some(self.host.0);
        let host_out = (stage + 1 == stages).then_some(self.host.1);
        let begin = if self.trace { Some(st.record_event(TIMING).map_err(cuda("recording a timeline event"))?) } else { None };
        self.part.op_at(stage, self.chunk.clone(), lc % k, slot, &st, (host_in, host_out), (self.spec.spin_of(stage), self.spec.block_size))?;
        // The end before the next action's event, as in a run's timeline,
        // so the chunk's done event follows it.
        if let Some(begin) = begin {
            self.ops.push((stage, begin, st.record_event(TIMING).map_err(cuda("recording a timeline event"))?));
        }
        Ok(())
    }
}

struct Written {
    chunks: u64,
    bytes_out: u64,
    latency: Latency,
    check: Option<Verification>,
    spans: Option<Vec<Span>>,
}

#[allow(clippy::too_many_arguments)]
fn write_loop(
    shared: &Shared,
    done: &[CudaEvent],
    mut sink: Box<dyn StreamSink>,
    jobs: mpsc::Receiver<Job>,
    out_free: mpsc::Sender<usize>,
    check: Option<PipelineSpec>,
    origin: Option<Origin>,
    interrupted: impl Fn() -> bool,
) -> Result<Written> {
    let mut hist = latency_histogram()?;
    let (mut chunks, mut bytes_out) = (0u64, 0u64);
    let mut checker = check.map(Checker::new).transpose()?;
    let mut verification = checker.as_ref().map(|_| Verification::default());
    let mut spans = origin.as_ref().map(|_| Vec::new());
    let ms_since_start = |t: Instant, o: &Origin| t.saturating_duration_since(o.start).as_secs_f64() * 1e3;
    let result = (|| -> Result<()> {
        for job in jobs {
            let e = &done[(job.chunk % done.len() as u64) as usize];
            while !e.try_is_complete().map_err(cuda("running the stream"))? {
                if interrupted() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            // SAFETY: this thread holds both slots' tokens (the job) and the
            // chunk's done event follows its last copy.
            let (inp, out) = unsafe { (shared.in_view(job.in_slot, job.in_bytes), shared.out_view(job.out_slot, job.out_bytes)) };
            if let (Some(checker), Some(v)) = (checker.as_mut(), verification.as_mut()) {
                checker.check(job.chunk, inp, out, v);
            }
            shared.input.free(job.in_slot);
            if shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            sink.write_chunk(out).map_err(PipelineError::StreamOutput)?;
            let delivered = Instant::now();
            hist.saturating_record(delivered.saturating_duration_since(job.ready).as_micros() as u64);
            if let (Some(spans), Some(o)) = (spans.as_mut(), origin.as_ref()) {
                // Every operation's events precede the done event just waited for.
                let at = |e: &CudaEvent| o.event.elapsed_ms(e).map(|ms| o.offset_ms + f64::from(ms)).map_err(cuda("reading timeline events"));
                for (stage, begin, end) in &job.ops {
                    spans.push(Span { gpu: 0, stage: *stage, chunk: job.chunk as usize, start_ms: at(begin)?, end_ms: at(end)? });
                }
                let (began, read) = job.read;
                spans.push(Span { gpu: 0, stage: o.host_row, chunk: job.chunk as usize, start_ms: ms_since_start(began, o), end_ms: ms_since_start(read, o) });
                spans.push(Span {
                    gpu: 0,
                    stage: o.host_row + 1,
                    chunk: job.chunk as usize,
                    start_ms: ms_since_start(job.ready, o),
                    end_ms: ms_since_start(delivered, o),
                });
            }
            chunks += 1;
            bytes_out += job.out_bytes as u64;
            let _ = out_free.send(job.out_slot);
        }
        sink.finish().map_err(PipelineError::StreamOutput)
    })();
    if result.is_err() {
        // Stops the readers; dropping the output free queue's sender stops
        // the enqueuing thread.
        shared.stop();
    }
    result?;
    let latency = latency_of(&hist);
    Ok(Written { chunks, bytes_out, latency, check: verification, spans })
}

/// What the writer keeps to check chunks: the last `halo` input elements
/// before the next chunk (the reference of a halo stage reads them), and
/// where the next chunk starts in the stream.
struct Checker {
    spec: PipelineSpec,
    in_size: usize,
    out_size: usize,
    halo: usize,
    tail: Vec<u8>,
    first: u64,
    threads: usize,
}

impl Checker {
    fn new(spec: PipelineSpec) -> Result<Checker> {
        let types = spec.ring_types()?;
        let halo = spec.halo() as usize;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        Ok(Checker { in_size: types[0].size(), out_size: types[types.len() - 1].size(), halo, spec, tail: Vec::new(), first: 0, threads })
    }

    /// Checks chunk `c` (its input and output bytes) against the CPU
    /// reference over the stream so far, in pieces on several threads.
    fn check(&mut self, c: u64, input: &[u8], output: &[u8], v: &mut Verification) {
        let n = (input.len() / self.in_size) as u64;
        let first = self.first;
        // The input from `window_start`: the kept tail, then this chunk.
        let window: std::borrow::Cow<'_, [u8]> = if self.tail.is_empty() { input.into() } else { [&self.tail[..], input].concat().into() };
        let window_start = first - (self.tail.len() / self.in_size) as u64;
        let size = self.in_size;
        let host_at = |r: Range<u64>| -> Result<&[u8], String> {
            let (a, b) = (r.start.checked_sub(window_start), r.end.checked_sub(window_start));
            match (a, b) {
                (Some(a), Some(b)) => window.get(a as usize * size..b as usize * size).ok_or_else(|| format!("elements {r:?} are past the chunk")),
                _ => Err(format!("elements {r:?} are before the kept history")),
            }
        };
        let Some(Kind::Sink(sink)) = self.spec.stages.last().map(|s| s.kind()) else { return v.wrong(c as usize, 0, "the last stage is not a sink".into()) };
        let piece = n.div_ceil(self.threads as u64).max(1 << 16);
        let (spec, out_size) = (&self.spec, self.out_size);
        let results: Vec<Option<(u64, String)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (first..first + n)
                .step_by(piece as usize)
                .map(|a| {
                    let r = a..(a + piece).min(first + n);
                    let host_at = &host_at;
                    s.spawn(move || {
                        let got = &output[(r.start - first) as usize * out_size..(r.end - first) as usize * out_size];
                        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            crate::reference::expected_chunk_from(spec, c as usize, r.clone(), host_at)
                        })) {
                            Ok(Ok(expected)) => sink.check(&expected, Sink::Host(got)).map(|(k, what)| (k, format!("elements from {}: {what}", r.start))),
                            Ok(Err(why)) => Some((0, format!("no CPU reference: {why}"))),
                            Err(_) => Some((0, "the CPU reference panicked".into())),
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Some((0, "a checker thread panicked".into())))).collect()
        });
        let wrong: Vec<(u64, String)> = results.into_iter().flatten().collect();
        if let Some((_, what)) = wrong.first() {
            v.wrong(c as usize, wrong.iter().map(|w| w.0).sum(), what.clone());
        } else {
            v.chunks_checked += 1;
        }
        // Keep the last `halo` elements for the next chunk.
        let keep = (self.halo * size).min(window.len());
        self.tail = window[window.len() - keep..].to_vec();
        self.first += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elem::HostChunk;
    use crate::stage::{MapStage, OnGpu, Setup, Stage};
    use crate::{StageRegistry, Workload};

    /// Takes the actions as a list, as they reach the GPU.
    #[derive(Default)]
    struct Recorder(Vec<Action>);

    impl EnqueueTo for Recorder {
        fn wait(&mut self, stream: usize, event: EventId) -> Result<()> {
            self.0.push(Action::Wait { stream, event });
            Ok(())
        }
        fn record(&mut self, stream: usize, event: EventId) -> Result<()> {
            self.0.push(Action::Record { stream, event });
            Ok(())
        }
        fn begin_run(&mut self, stream: usize, stage: usize) -> Result<()> {
            self.0.push(Action::BeginRun { stream, stage });
            Ok(())
        }
        fn op(&mut self, stream: usize, stage: usize, chunk: usize, slot: usize) -> Result<()> {
            self.0.push(Action::Op { stream, stage, chunk, slot });
            Ok(())
        }
    }

    /// Every action of each chunk reaches the GPU in order, waits
    /// included: the executor runs the protocol `plan_model` proves, not a
    /// part of it.
    #[test]
    fn every_action_of_a_chunk_is_enqueued_in_order() {
        for (stages, streams, slots) in [(2, 1, 1), (3, 3, 2), (4, 4, 3), (5, 2, 2)] {
            for chunk in 0..2 * slots + 2 {
                let actions = stream_chunk(stages, streams, slots, chunk);
                let mut rec = Recorder::default();
                enqueue_actions(actions.clone(), &mut rec).unwrap();
                assert_eq!(rec.0, actions, "stages={stages} streams={streams} slots={slots} chunk={chunk}");
                if stages > 1 {
                    assert!(rec.0.iter().any(|a| matches!(a, Action::Wait { .. })), "no wait to check");
                }
            }
        }
    }

    /// A map stage whose reference panics.
    struct Panicky;
    impl MapStage for Panicky {
        fn input(&self) -> ElemType {
            ElemType::of::<f32>()
        }
        fn output(&self) -> ElemType {
            ElemType::of::<f32>()
        }
        fn prepare(&self, _: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
            Err(PipelineError::NoGpus)
        }
        fn reference(&self, _: &HostChunk, _: &HostChunk) -> Result<HostChunk, String> {
            panic!("a bug in the reference")
        }
    }

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    /// The stream's checker: a right chunk is checked, a wrong one is
    /// wrong, and a reference that panics fails the chunk (fail closed),
    /// never passes it.
    #[test]
    fn the_stream_checker_fails_closed() {
        let stages = StageRegistry::builtin().parse("h2d,consumer,d2h").unwrap();
        let spec = PipelineSpec::new(Workload::Stream).stages(stages).chunk_elements(100);
        let input: Vec<f32> = (0..100).map(|i| i as f32 - 50.0).collect();
        let doubled: Vec<f32> = input.iter().map(|x| x * 2.0).collect();
        let mut checker = Checker::new(spec.clone()).unwrap();
        let mut v = Verification::default();
        checker.check(0, &bytes(&input), &bytes(&doubled), &mut v);
        assert_eq!((v.chunks_checked, v.chunks_wrong), (1, 0), "{v:?}");
        let mut wrong = doubled.clone();
        wrong[7] = 0.5;
        checker.check(1, &bytes(&input), &bytes(&wrong), &mut v);
        assert_eq!((v.chunks_checked, v.chunks_wrong, v.items_wrong), (1, 1, 1), "{v:?}");

        let panicky = Stage::new("panicky", "", Kind::Map(Arc::new(Panicky)));
        let spec = spec.stages(vec![Stage::h2d(), panicky, Stage::d2h()]);
        let mut checker = Checker::new(spec).unwrap();
        let mut v = Verification::default();
        checker.check(0, &bytes(&input), &bytes(&input), &mut v);
        assert_eq!((v.chunks_checked, v.chunks_wrong), (0, 1), "{v:?}");
        assert!(v.first_wrong.as_ref().is_some_and(|(c, w)| *c == 0 && w.contains("panicked")), "{v:?}");
    }
}
