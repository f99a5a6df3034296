//! One pipeline over several processes, one GPU each (the way NCCL jobs
//! run, and the way to several machines): the placement
//! ([`PipelineSpec::placement`]) names a *rank* per stage, and each rank
//! runs only its own stages, as an ordinary one-GPU [`Pipeline`].
//!
//! Every rank builds the whole stage list (all ranks get the same
//! arguments) and cuts out its own consecutive stages. Where its stages
//! start after another rank's, a `recv-from-rankA` source goes first: each
//! chunk is an `ncclRecv` into its ring slot, on the source's stream, the
//! slot's freed edge waited as for any source. Where the next stage is
//! another rank's, a `send-to-rankB` sink goes last: each chunk is an
//! `ncclSend` of its slot, on the sink's stream, whose done event frees the
//! slot as for any sink. Both sides walk the chunks in the same order (the
//! executor's chunk-major order, run after run), so the n-th send meets the
//! n-th receive; the local event graphs are unchanged, and the sync
//! checker's proofs of them still hold on each rank.
//!
//! NCCL requires each send to meet a receive of the same byte count, and
//! cannot check it: a mismatch corrupts memory or hangs. So ranks given
//! different pipelines are refused, not run: each rank joins the job with
//! [`transfer_digest`] of its spec ([`Comm::init`] all-gathers the digests
//! and fails every rank where one differs), [`local_spec`] builds send and
//! recv stages only from a spec with the communicator's digest and this
//! rank's own layout, and those stages make each transfer only as the next
//! chunk of that plan (numbered in order through a lock on the
//! communicator), on the communicator's GPU.
//!
//! Verification happens where the pipeline's sink is, on the last rank: the
//! `recv` source's CPU reference is the original upstream stages' references
//! applied to the original source's reference (halos included), so every
//! element or record of the last rank is checked against the whole
//! pipeline's CPU reference. A rank that ends in a `send` has nothing to
//! check (nothing comes back); [`RankedPipeline::verify`] says so with `None`.
use crate::PipelineError;
use crate::elem::{ElemType, HostChunk};
use crate::exec::{HostInput, Pipeline, RunReport, generated_bytes};
use crate::nccl::{Comm, DIGEST_BYTES, NcclId};
use crate::reference::{Verification, expected_chunk_from};
use crate::spec::PipelineSpec;
use crate::stage::{ChunkInfo, Kind, OnGpu, Op, Port, Setup, Sink, SinkStage, SourceStage, Stage};
use cudarc::driver::{DevicePtr, DevicePtrMut};
use pc_runtime::gpu::Gpu;
use std::ops::Range;
use std::sync::Arc;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// What rank `rank` of `nranks` runs of a placed spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankLayout {
    pub rank: usize,
    pub nranks: usize,
    /// This rank's stages, indices into the spec's stage list.
    pub stages: Range<usize>,
    /// The rank whose stages come just before (chunks arrive from it).
    pub from: Option<usize>,
    /// The rank whose stages come just after (chunks leave for it).
    pub to: Option<usize>,
}

impl RankLayout {
    /// Checks the placement over `nranks` ranks and cuts out `rank`'s
    /// stages. Every rank refuses the same way (the checks use only the
    /// arguments every rank shares), before any rank joins NCCL.
    pub fn new(spec: &PipelineSpec, rank: usize, nranks: usize) -> Result<RankLayout> {
        spec.validate()?;
        let bad = |s: String| Err(PipelineError::BadRanks(s));
        let n = spec.stages.len();
        let name = |s: usize| spec.stages[s].name();
        if nranks == 0 || rank >= nranks {
            return bad(format!("this process is rank {rank} of {nranks}; ranks are 0..{}", nranks.saturating_sub(1)));
        }
        if spec.placement.len() != n {
            return bad(format!("the placement names {} rank(s) for {n} stages; give one per stage", spec.placement.len()));
        }
        if spec.serial {
            return bad("the serial baseline runs on one stream, so its stages cannot be spread over ranks".into());
        }
        if let Some(s) = (0..n).find(|&s| spec.placement[s] >= nranks) {
            return bad(format!("stage {} is placed on rank {}, but the job has {nranks} rank(s) (0..{})", name(s), spec.placement[s], nranks - 1));
        }
        for r in 0..nranks {
            let on: Vec<usize> = (0..n).filter(|&s| spec.placement[s] == r).collect();
            let (Some(&lo), Some(&hi)) = (on.first(), on.last()) else {
                return bad(format!("rank {r} has no stage; use as many ranks as the placement names"));
            };
            if hi - lo + 1 != on.len() {
                let names: Vec<&str> = on.iter().map(|&s| name(s)).collect();
                return bad(format!("rank {r} has stages {} that are not neighbours; each rank runs consecutive stages", names.join(",")));
            }
        }
        let on: Vec<usize> = (0..n).filter(|&s| spec.placement[s] == rank).collect();
        let (lo, hi) = (on[0], on[on.len() - 1]);
        let from = lo.checked_sub(1).map(|s| spec.placement[s]);
        let to = (hi + 1 < n).then(|| spec.placement[hi + 1]);
        Ok(RankLayout { rank, nranks, stages: lo..hi + 1, from, to })
    }

    /// Whether this rank has the pipeline's sink (and checks its results).
    pub fn verifies(&self) -> bool {
        self.to.is_none()
    }

    /// Whether this rank talks to another (and needs NCCL).
    pub fn exchanges(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }
}

/// A digest of everything that fixes the sizes and the order of the NCCL
/// transfers of `spec` run over `nranks` ranks: the rank count, the stage
/// list (names), every ring's element type (name, size, alignment), the
/// placement, and the chunk and total sizes. Equal digests mean that each
/// rank's sends meet receives of the same byte count, in the same order.
/// The seed, K, block size, delays and watchdog change no transfer and are
/// left out. FNV-1a (128 bits) of a canonical encoding of those fields:
/// the same on every machine and build, and a pure function of the spec.
pub fn transfer_digest(spec: &PipelineSpec, nranks: usize) -> Result<[u8; DIGEST_BYTES]> {
    let mut key = Vec::new();
    let mut put = |bytes: &[u8]| {
        // Length first: no two field lists encode the same.
        key.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        key.extend_from_slice(bytes);
    };
    put(b"pc-pipeline ranks v1");
    put(&(nranks as u64).to_le_bytes());
    put(&spec.chunk_elements.to_le_bytes());
    put(&spec.total_elements.to_le_bytes());
    put(&(spec.stages.len() as u64).to_le_bytes());
    for s in &spec.stages {
        put(s.name().as_bytes());
    }
    let types = spec.ring_types()?;
    put(&(types.len() as u64).to_le_bytes());
    for t in types {
        put(t.name().as_bytes());
        put(&(t.size() as u64).to_le_bytes());
        put(&(t.align() as u64).to_le_bytes());
    }
    put(&(spec.placement.len() as u64).to_le_bytes());
    for &r in &spec.placement {
        put(&(r as u64).to_le_bytes());
    }
    Ok(fnv1a_128(&key).to_le_bytes())
}

fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    bytes.iter().fold(OFFSET, |h, &b| (h ^ b as u128).wrapping_mul(PRIME))
}

/// The transfers at a boundary between two ranks, as both sides make them:
/// in each run, chunk `c` (in order, from 0) carries the elements of
/// [`PipelineSpec::chunk_range`]`(c)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    chunk_elements: u64,
    total_elements: u64,
    chunks: usize,
}

impl Plan {
    fn of(spec: &PipelineSpec) -> Plan {
        Plan { chunk_elements: spec.chunk_elements, total_elements: spec.total_elements, chunks: spec.chunks() }
    }

    /// Refuses an operation that is not a chunk of this plan (a send or
    /// recv stage moved into another spec): its byte count would not be
    /// the peer's.
    fn check(&self, stage: &str, chunk: &ChunkInfo) -> Result<()> {
        let start = chunk.index as u64 * self.chunk_elements;
        let want = start..start.saturating_add(self.chunk_elements).min(self.total_elements);
        if chunk.index >= self.chunks || chunk.range != want {
            return Err(PipelineError::BadRanks(format!(
                "{stage}: chunk {} of elements {:?} is not chunk {} of the plan the ranks agreed on ({} elements in chunks of {})",
                chunk.index, chunk.range, chunk.index, self.total_elements, self.chunk_elements
            )));
        }
        Ok(())
    }

    /// Refuses to prepare a transfer stage on another GPU than the
    /// communicator's, or on a share of the chunks (a pipeline split over
    /// several GPUs): the transfers would not be the plan's.
    fn check_setup(&self, stage: &str, setup: &Setup<'_>, comm: &Comm) -> Result<()> {
        if setup.gpu().info().index != comm.device() {
            return Err(PipelineError::BadRanks(format!(
                "stage {stage} runs on GPU {}, but its NCCL communicator is on GPU {}",
                setup.gpu().info().index,
                comm.device()
            )));
        }
        if setup.local_chunks() != self.chunks {
            return Err(PipelineError::BadRanks(format!(
                "stage {stage} would run {} of the {} chunks: a rank's pipeline runs on one GPU, every chunk",
                setup.local_chunks(),
                self.chunks
            )));
        }
        Ok(())
    }
}

/// Refuses a communicator for another rank, another job size, or another
/// pipeline than `spec` (its digest is not the one the ranks agreed on).
fn check_comm(spec: &PipelineSpec, layout: &RankLayout, comm: &Comm) -> Result<()> {
    if (comm.rank(), comm.nranks()) != (layout.rank, layout.nranks) {
        return Err(PipelineError::BadRanks(format!(
            "the NCCL communicator is rank {} of {}, but the layout is rank {} of {}",
            comm.rank(),
            comm.nranks(),
            layout.rank,
            layout.nranks
        )));
    }
    if comm.digest() != transfer_digest(spec, layout.nranks)? {
        return Err(PipelineError::BadRanks(
            "this pipeline is not the one the ranks agreed on when they joined (the stage list, chunk or total size, or placement differ)".into(),
        ));
    }
    Ok(())
}

/// This rank's pipeline: a `recv` source in front of its stages where they
/// do not start the pipeline, a `send` sink after them where they do not
/// end it; no placement (one GPU). `comm` may be `None` to compute
/// references only (preparing a send or recv stage then fails); a `comm`
/// must be this rank's, made with [`transfer_digest`] of this `spec`, and
/// `layout` must be [`RankLayout::new`]'s for this spec: anything else is
/// refused. `input` is the pipeline's host input as every rank knows it: a
/// `recv` whose upstream source reads host input computes its reference
/// from it.
pub fn local_spec(spec: &PipelineSpec, layout: &RankLayout, comm: Option<Arc<Comm>>, input: &HostInput) -> Result<PipelineSpec> {
    // The layout's fields are public: the peers and stages must be the spec's own.
    if RankLayout::new(spec, layout.rank, layout.nranks)? != *layout {
        return Err(PipelineError::BadRanks(format!("the layout given is not rank {}'s of this spec over {} ranks", layout.rank, layout.nranks)));
    }
    if let Some(c) = &comm {
        check_comm(spec, layout, c)?;
    }
    let plan = Plan::of(spec);
    let types = spec.ring_types()?;
    let Range { start: lo, end } = layout.stages.clone();
    let mut stages = Vec::new();
    let mut spins = Vec::new();
    if let Some(peer) = layout.from {
        let elem = types[lo - 1];
        let mut upstream = spec.clone().stages(spec.stages[..lo].iter().cloned().chain([send_stage(elem, layout.rank, None, plan.clone())]).collect());
        upstream.placement = Vec::new();
        upstream.spin_ns = Vec::new();
        let recv = RecvSource { elem, peer, comm: comm.clone(), plan: plan.clone(), upstream, input: input.clone() };
        stages.push(Stage::new(format!("recv-from-rank{peer}"), format!("source: {elem} by ncclRecv from rank {peer}"), Kind::Source(Arc::new(recv))));
        spins.push(0);
    }
    for s in layout.stages.clone() {
        stages.push(spec.stages[s].clone());
        spins.push(spec.spin_of(s));
    }
    if let Some(peer) = layout.to {
        stages.push(send_stage(types[end - 1], peer, comm, plan));
        spins.push(0);
    }
    let mut local = spec.clone().stages(stages);
    local.placement = Vec::new();
    local.spin_ns = if spec.spin_ns.is_empty() { Vec::new() } else { spins };
    local.validate()?;
    Ok(local)
}

fn send_stage(elem: ElemType, peer: usize, comm: Option<Arc<Comm>>, plan: Plan) -> Stage {
    Stage::new(format!("send-to-rank{peer}"), format!("sink: {elem} by ncclSend to rank {peer}"), Kind::Sink(Arc::new(SendSink { elem, peer, comm, plan })))
}

fn no_comm(stage: &str) -> PipelineError {
    PipelineError::BadRanks(format!("stage {stage} has no NCCL communicator (a spec built for references only)"))
}

/// The `recv-from-rankA` source.
struct RecvSource {
    elem: ElemType,
    peer: usize,
    comm: Option<Arc<Comm>>,
    plan: Plan,
    /// The original stages up to the boundary, ending in a send: its
    /// reference is what arrives here.
    upstream: PipelineSpec,
    /// The pipeline's host input (h2d upstream).
    input: HostInput,
}

impl RecvSource {
    /// The upstream source's host input for the element range `r`.
    fn host_input(&self, r: Range<u64>) -> Result<Vec<u8>, String> {
        let elem = self.upstream.input_type().map_err(|e| e.to_string())?;
        let size = elem.size() as u64;
        let (a, b) = (r.start * size, r.end * size);
        let len = usize::try_from(b - a).map_err(|_| "range too large".to_string())?;
        match &self.input {
            HostInput::Generated => {
                let mut out = vec![0u8; len];
                generated_bytes(elem, self.upstream.seed, a, &mut out);
                Ok(out)
            }
            HostInput::Data(chunk) => {
                chunk.bytes().get(a as usize..b as usize).map(<[u8]>::to_vec).ok_or_else(|| format!("the input data has no bytes {a}..{b}"))
            }
            HostInput::File(path) => {
                use std::os::unix::fs::FileExt;
                let mut out = vec![0u8; len];
                let f = std::fs::File::open(path).map_err(|e| format!("input file {}: {e}", path.display()))?;
                f.read_exact_at(&mut out, a).map_err(|e| format!("input file {} at byte {a}: {e}", path.display()))?;
                Ok(out)
            }
        }
    }
}

impl SourceStage for RecvSource {
    fn output(&self) -> Port {
        Port::Elem(self.elem)
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let comm = self.comm.clone().ok_or_else(|| no_comm("recv"))?;
        self.plan.check_setup("recv", setup, &comm)?;
        Ok(Box::new(RecvOnGpu { comm, peer: self.peer, elem: self.elem, plan: self.plan.clone() }))
    }
    /// The upstream stages' references over the chunk's range (which the
    /// caller extends by the halos after this rank's source): the values
    /// as they leave the upstream rank.
    fn reference(&self, chunk: &ChunkInfo, _elem: ElemType, _host: Option<&[u8]>) -> Result<HostChunk, String> {
        // The upstream halos reach further back still.
        let first = chunk.range.start.saturating_sub(self.upstream.halo());
        let bytes = if self.upstream.reads_host() { self.host_input(first..chunk.range.end)? } else { Vec::new() };
        let size = self.upstream.input_type().map_err(|e| e.to_string())?.size() as u64;
        let host_at = |r: Range<u64>| -> Result<&[u8], String> {
            let (a, b) = (r.start.checked_sub(first).ok_or("range before the input fetched")? * size, (r.end - first) * size);
            bytes.get(a as usize..b as usize).ok_or_else(|| format!("no host input for elements {r:?}"))
        };
        expected_chunk_from(&self.upstream, chunk.index, chunk.range.clone(), &host_at)
    }
}

struct RecvOnGpu {
    comm: Arc<Comm>,
    peer: usize,
    elem: ElemType,
    plan: Plan,
}

// SAFETY: one ncclRecv on the op's stream, into the op's output slot.
unsafe impl OnGpu for RecvOnGpu {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        self.plan.check(op.stage, &op.chunk)?;
        refuse_capture(op)?;
        let (stream, bytes, chunk) = (op.stream, op.len() * self.elem.size(), op.chunk.index);
        let Some((_, slot)) = op.output.as_mut() else { return Err(PipelineError::BadStages(format!("{}: no output slot", op.stage))) };
        if bytes > slot.len() {
            return Err(PipelineError::BadStages(format!("{}: slot too small", op.stage)));
        }
        let (dst, _) = slot.device_ptr_mut(stream);
        // SAFETY: the slot holds `bytes` on this rank's GPU (the
        // communicator's, checked at prepare); the event graph orders every
        // other access to it around this stream's operation. The chunk is
        // the plan's (checked above), whose digest every rank agreed on, so
        // the peer's send numbered `chunk` carries these `bytes`.
        unsafe { self.comm.recv_nth(chunk, self.plan.chunks, dst, bytes, self.peer, stream.cu_stream().cast()) }
    }
}

/// Refuses to enqueue a transfer into a CUDA graph capture: a replay makes
/// its NCCL call again without [`Comm::send_nth`]'s numbering, so after a
/// run that failed mid-cycle it would pair with the wrong transfer of the
/// peer (another size for the last chunk). Ranks run with stream launches.
fn refuse_capture(op: &Op<'_>) -> Result<()> {
    let capturing =
        pc_runtime::stream::is_capturing(op.stream).map_err(|e| PipelineError::Runtime(pc_runtime::Error::cuda("reading the stream's capture status")(e)))?;
    if capturing {
        return Err(PipelineError::BadStages(format!(
            "{}: rank transfers cannot be captured in a CUDA graph (a replay would skip their numbering); run ranks with stream launches",
            op.stage
        )));
    }
    Ok(())
}

/// The `send-to-rankB` sink.
struct SendSink {
    elem: ElemType,
    peer: usize,
    comm: Option<Arc<Comm>>,
    plan: Plan,
}

impl SinkStage for SendSink {
    fn input(&self) -> Port {
        Port::Elem(self.elem)
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let comm = self.comm.clone().ok_or_else(|| no_comm("send"))?;
        self.plan.check_setup("send", setup, &comm)?;
        Ok(Box::new(SendOnGpu { comm, peer: self.peer, elem: self.elem, plan: self.plan.clone() }))
    }
    /// Nothing comes back to this rank: the chunk is checked on the last
    /// rank, where the pipeline's sink is.
    fn check(&self, _expected: &HostChunk, _got: Sink<'_>) -> Option<(u64, String)> {
        None
    }
}

struct SendOnGpu {
    comm: Arc<Comm>,
    peer: usize,
    elem: ElemType,
    plan: Plan,
}

// SAFETY: one ncclSend on the op's stream, from the op's input slot.
unsafe impl OnGpu for SendOnGpu {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        self.plan.check(op.stage, &op.chunk)?;
        refuse_capture(op)?;
        let (stream, bytes, chunk) = (op.stream, op.len() * self.elem.size(), op.chunk.index);
        let Some((_, slot)) = op.input.as_ref() else { return Err(PipelineError::BadStages(format!("{}: no input slot", op.stage))) };
        if bytes > slot.len() {
            return Err(PipelineError::BadStages(format!("{}: slot too small", op.stage)));
        }
        let (src, _) = slot.device_ptr(stream);
        // SAFETY: the slot holds `bytes` on this rank's GPU (the
        // communicator's, checked at prepare); nothing writes it before this
        // stream's done event (the freed edge). The chunk is the plan's
        // (checked above), whose digest every rank agreed on, so the peer's
        // receive numbered `chunk` takes these `bytes`.
        unsafe { self.comm.send_nth(chunk, self.plan.chunks, src, bytes, self.peer, stream.cu_stream().cast()) }
    }
}

/// This process's part of a pipeline spread over ranks: its stages as a
/// one-GPU [`Pipeline`], with the NCCL communicator its `send` and `recv`
/// stages use.
///
/// ```no_run
/// use pc_pipeline::{HostInput, PipelineSpec, Workload, nccl::NcclId, ranks::RankedPipeline};
/// use pc_runtime::gpu::Gpu;
/// // Rank `rank` of 2: the producer on rank 0, consumer and reduce on rank 1;
/// // `id` is rank 0's NcclId::new(), handed to every rank.
/// # let (rank, id) = (0, NcclId::new()?);
/// let gpu = Gpu::open(rank)?;
/// let spec = PipelineSpec::new(Workload::Generate).placement(vec![0, 1, 1]);
/// // Every rank runs this with the same spec (a rank given another is refused).
/// let mut p = RankedPipeline::new(&gpu, spec, HostInput::Generated, rank, 2, Some(&id))?;
/// let report = p.run(1, false, |_| {})?;
/// if let Some(v) = p.verify(&report) {
///     assert!(v.passed());
/// }
/// # Ok::<(), pc_pipeline::PipelineError>(())
/// ```
pub struct RankedPipeline<'g> {
    /// Dropped first: its streams are synchronized before the communicator goes.
    pipeline: Pipeline<'g>,
    layout: RankLayout,
    /// The end-of-run barrier's stream.
    barrier: Option<Arc<cudarc::driver::CudaStream>>,
    comm: Option<Arc<Comm>>,
}

impl<'g> RankedPipeline<'g> {
    /// Checks the placement, joins the job (`ncclCommInitRank`, which waits
    /// for every rank) where this rank exchanges chunks, and allocates its
    /// pipeline on `gpu`. `id` is the job's id; a rank with every stage
    /// (one rank) needs none.
    ///
    /// Every rank must be made with the same stage list, chunk and total
    /// sizes, placement and `nranks`, or its NCCL transfers would not match
    /// its peers': joining compares [`transfer_digest`] across the ranks
    /// and, where one differs, every rank returns
    /// [`PipelineError::BadRanks`] (no transfer is made). `host launch`
    /// gives every rank the same arguments.
    pub fn new(gpu: &'g Gpu, spec: PipelineSpec, input: HostInput, rank: usize, nranks: usize, id: Option<&NcclId>) -> Result<RankedPipeline<'g>> {
        let layout = RankLayout::new(&spec, rank, nranks)?;
        // The local spec is checked before joining: a bad one fails every
        // rank alike, none left waiting in NCCL.
        local_spec(&spec, &layout, None, &input)?;
        let comm = match (layout.exchanges(), id) {
            (false, _) => None,
            (true, Some(id)) => Some(Arc::new(Comm::init(gpu, id, rank, nranks, transfer_digest(&spec, nranks)?)?)),
            (true, None) => return Err(PipelineError::BadRanks(format!("rank {rank} exchanges chunks with other ranks and needs the job's NCCL id"))),
        };
        let failed = |e: PipelineError| {
            if let Some(c) = &comm {
                c.mark_failed();
            }
            e
        };
        let local = local_spec(&spec, &layout, comm.clone(), &input)?;
        let pipeline = Pipeline::new(&[gpu], local, input).map_err(failed)?;
        // SAFETY: the stream only runs the barrier's all-reduce, on a byte
        // of its own, after the pipeline's streams have synchronized.
        let barrier = comm.as_ref().map(|_| unsafe { gpu.stream() }).transpose().map_err(|e| failed(e.into()))?;
        if let (Some(c), Some(s)) = (&comm, &barrier) {
            // Chunk bytes at each boundary: the types of the rings that cross it.
            let types = spec.ring_types()?;
            let bytes = |ring: usize| spec.chunk_elements as usize * types[ring].size();
            let from = layout.from.map(|peer| (peer, bytes(layout.stages.start - 1)));
            let to = layout.to.map(|peer| (peer, bytes(layout.stages.end - 1)));
            // SAFETY: every rank's spec has this digest (checked when it
            // joined), so the peer computes the same bytes for the ring
            // between us; no chunk has been sent or received yet.
            unsafe { c.connect(s, from, to) }.map_err(failed)?;
        }
        Ok(RankedPipeline { pipeline, layout, barrier, comm })
    }

    pub fn layout(&self) -> &RankLayout {
        &self.layout
    }

    /// The local pipeline (its spec has the `send`/`recv` stages).
    pub fn pipeline(&self) -> &Pipeline<'g> {
        &self.pipeline
    }

    /// See [`Pipeline::set_interrupt`]. A rank that stops early leaves its
    /// peers' transfers unmatched: stop every rank (the launcher does).
    pub fn set_interrupt(&mut self, flag: Arc<std::sync::atomic::AtomicBool>) {
        self.pipeline.set_interrupt(flag);
    }

    /// Runs `runs` times with stream launches (every rank must run the
    /// same number of times: each run's sends meet the peer's receives),
    /// then waits for every rank to finish (a barrier through NCCL): no
    /// rank frees or reuses buffers a peer's transfer may still touch.
    pub fn run(&mut self, runs: usize, timeline: bool, progress: impl FnMut(usize)) -> Result<RunReport> {
        let r = self.pipeline.run_with_progress(crate::Launch::Streams, runs, timeline, progress).and_then(|report| {
            if let (Some(c), Some(s)) = (&self.comm, &self.barrier) {
                c.barrier(s)?;
            }
            Ok(report)
        });
        if let (Err(_), Some(c)) = (&r, &self.comm) {
            c.mark_failed();
        }
        r
    }

    /// The last rank: every chunk against the whole pipeline's CPU
    /// reference. Other ranks: `None` (their chunks are checked there).
    pub fn verify(&self, report: &RunReport) -> Option<Verification> {
        self.layout.verifies().then(|| self.pipeline.verify(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::expected_chunk;
    use crate::{Workload, parse_stages};

    fn spec(list: &str, placement: Vec<usize>) -> PipelineSpec {
        let w = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
        PipelineSpec::new(w).stages(parse_stages(list).unwrap()).placement(placement).chunk_elements(1000).total_elements(5 * 1000 + 7).seed(99)
    }

    fn names(s: &PipelineSpec) -> Vec<&str> {
        s.stages.iter().map(|s| s.name()).collect()
    }

    #[test]
    fn layouts_cut_out_each_ranks_stages() {
        let s = spec("producer,consumer,consumer,reduce", vec![0, 1, 1, 2]);
        let l: Vec<RankLayout> = (0..3).map(|r| RankLayout::new(&s, r, 3).unwrap()).collect();
        assert_eq!((l[0].stages.clone(), l[0].from, l[0].to), (0..1, None, Some(1)));
        assert_eq!((l[1].stages.clone(), l[1].from, l[1].to), (1..3, Some(0), Some(2)));
        assert_eq!((l[2].stages.clone(), l[2].from, l[2].to), (3..4, Some(1), None));
        assert!(!l[0].verifies() && !l[1].verifies() && l[2].verifies());
        let local = |r: usize| local_spec(&s, &l[r], None, &HostInput::Generated).unwrap();
        assert_eq!(names(&local(0)), ["producer", "send-to-rank1"]);
        assert_eq!(names(&local(1)), ["recv-from-rank0", "consumer", "consumer", "send-to-rank2"]);
        assert_eq!(names(&local(2)), ["recv-from-rank1", "reduce"]);
        assert!(local(1).placement.is_empty());
        // Ranks in any order along the stages.
        let back = spec("producer,consumer,reduce", vec![1, 0, 0]);
        let l1 = RankLayout::new(&back, 1, 2).unwrap();
        assert_eq!((l1.from, l1.to), (None, Some(0)));
    }

    #[test]
    fn bad_layouts_are_one_line_and_the_same_on_every_rank() {
        for (list, placement, n, want) in [
            ("producer,consumer,reduce", vec![0, 1], 2, "names 2 rank(s) for 3 stages"),
            ("producer,consumer,reduce", vec![0, 2, 2], 2, "placed on rank 2, but the job has 2 rank(s)"),
            ("producer,consumer,reduce", vec![0, 1, 1], 3, "rank 2 has no stage"),
            ("producer,consumer,reduce", vec![0, 1, 0], 2, "rank 0 has stages producer,reduce that are not neighbours"),
        ] {
            let s = spec(list, placement);
            let errors: Vec<String> = (0..n).map(|r| RankLayout::new(&s, r, n).unwrap_err().to_string()).collect();
            assert!(errors[0].contains(want) && !errors[0].contains('\n'), "{}", errors[0]);
            assert!(errors.iter().all(|e| *e == errors[0]), "{errors:?}");
        }
        let s = spec("producer,consumer,reduce", vec![0, 1, 1]);
        assert!(RankLayout::new(&s, 2, 2).unwrap_err().to_string().contains("rank 2 of 2"));
        assert!(RankLayout::new(&s.clone().serial(true), 0, 2).unwrap_err().to_string().contains("serial"));
    }

    /// The reference a rank computes at its sink (its `recv` source's
    /// reference through its own stages) is the whole pipeline's at that
    /// point, for every chunk: at the last rank, the pipeline's own.
    #[test]
    fn recv_references_compose_to_the_whole_pipelines() {
        let cases: Vec<(&str, Vec<usize>, usize)> = vec![
            ("producer,consumer,reduce", vec![0, 1, 1], 2),
            ("producer,consumer,reduce", vec![0, 0, 1], 2),
            ("producer,consumer,consumer,reduce", vec![0, 1, 1, 2], 3),
            ("h2d,consumer,d2h", vec![0, 1, 1], 2),
            ("h2d,u8-to-f32,moving-average,d2h", vec![0, 1, 1, 1], 2),
            ("h2d,u8-to-f32,moving-average,d2h", vec![0, 0, 1, 1], 2),
            ("h2d,moving-average,moving-average,fir,d2h", vec![0, 0, 1, 2, 2], 3),
        ];
        for (list, placement, n) in cases {
            let s = spec(list, placement.clone());
            let elem = s.input_type().unwrap();
            let mut host = vec![0u8; s.total_elements as usize * elem.size()];
            generated_bytes(elem, s.seed, 0, &mut host);
            let last = RankLayout::new(&s, n - 1, n).unwrap();
            let local = local_spec(&s, &last, None, &HostInput::Generated).unwrap();
            for c in 0..s.chunks() {
                let want = expected_chunk(&s, c, Some(&host)).unwrap();
                let got = expected_chunk(&local, c, None).unwrap_or_else(|e| panic!("{list} {placement:?} chunk {c}: {e}"));
                assert!(got.elem() == want.elem() && got.bytes() == want.bytes(), "{list} {placement:?} chunk {c}");
            }
            // Every other rank's send carries the whole pipeline's values
            // after that rank's last stage.
            let types = s.ring_types().unwrap();
            for r in 0..n - 1 {
                let l = RankLayout::new(&s, r, n).unwrap();
                let local = local_spec(&s, &l, None, &HostInput::Generated).unwrap();
                let end = l.stages.end;
                let cut = s.clone().stages(s.stages[..end].iter().cloned().chain([send_stage(types[end - 1], r + 1, None, Plan::of(&s))]).collect());
                for c in [0, s.chunks() - 1] {
                    let (got, want) = (expected_chunk(&local, c, Some(&host)).unwrap(), expected_chunk(&cut, c, Some(&host)).unwrap());
                    assert!(got.bytes() == want.bytes(), "{list} {placement:?} rank {r} chunk {c}");
                }
            }
            // HostInput given as data or as a file gives the same.
            let dir = std::env::temp_dir().join(format!("pc-ranks-{}-{}", std::process::id(), list.len()));
            std::fs::write(&dir, &host).unwrap();
            for input in [HostInput::Data(HostChunk::from_bytes(elem, &host)), HostInput::File(dir.clone())] {
                let local = local_spec(&s, &last, None, &input).unwrap();
                let (got, want) = (expected_chunk(&local, 3, None).unwrap(), expected_chunk(&s, 3, Some(&host)).unwrap());
                assert!(got.bytes() == want.bytes(), "{list} {input:?}");
            }
            let _ = std::fs::remove_file(&dir);
        }
    }

    /// The composition is not vacuous: with the consumer upstream of the
    /// boundary, what rank 1 expects is the consumer's output, not the
    /// producer's.
    #[test]
    fn recv_references_run_the_upstream_maps() {
        let s = spec("producer,consumer,reduce", vec![0, 0, 1]);
        let local = local_spec(&s, &RankLayout::new(&s, 1, 2).unwrap(), None, &HostInput::Generated).unwrap();
        let got = expected_chunk(&local, 2, None).unwrap();
        let raw: Vec<f32> = s.chunk_range(2).map(|i| kernel_math::produce(i, s.seed)).collect();
        let doubled: Vec<f32> = raw.iter().map(|&x| kernel_math::consume(x)).collect();
        assert_eq!(got.view::<f32>().unwrap(), &doubled[..]);
        assert_ne!(got.view::<f32>().unwrap(), &raw[..]);
    }

    /// A rank that ends in a send checks nothing; its sink's check passes by
    /// construction (nothing comes back), which `RankedPipeline::verify`
    /// reports as `None`, not as a pass.
    #[test]
    fn send_sinks_check_nothing() {
        let s = spec("producer,consumer,reduce", vec![0, 1, 1]);
        let l0 = RankLayout::new(&s, 0, 2).unwrap();
        assert!(!l0.verifies());
        let local = local_spec(&s, &l0, None, &HostInput::Generated).unwrap();
        let Kind::Sink(sink) = local.stages[1].kind() else { panic!("not a sink") };
        assert!(sink.check(&HostChunk::zeroed(ElemType::of::<f32>(), 3), Sink::Record(None)).is_none());
        assert!(!sink.writes_host());
    }

    /// Equal specs give equal digests; every field that changes the size or
    /// the order of a transfer changes it; fields that change no transfer
    /// do not (a rank may differ there and still be run).
    #[test]
    fn digests_cover_what_fixes_the_transfers() {
        let base = || spec("producer,consumer,reduce", vec![0, 1, 1]);
        let d = |s: &PipelineSpec, n: usize| transfer_digest(s, n).unwrap();
        assert_eq!(d(&base(), 2), d(&base(), 2));
        assert_eq!(d(&base(), 2), d(&base().clone(), 2));
        let changed: Vec<(&str, PipelineSpec, usize)> = vec![
            ("chunk size", base().chunk_elements(999), 2),
            ("total size", base().total_elements(5 * 1000 + 8), 2),
            ("total size in the last chunk only", base().total_elements(5 * 1000 + 6), 2),
            ("placement", base().placement(vec![0, 0, 1]), 2),
            ("rank count", base(), 3),
            ("stage list", base().stages(parse_stages("producer,moving-average,reduce").unwrap()), 2),
            ("ring types", spec("h2d,u8-to-f32,d2h", vec![0, 1, 1]), 2),
            ("ring types", spec("h2d,abs-i32,d2h", vec![0, 1, 1]), 2),
        ];
        let mut seen = vec![d(&base(), 2)];
        for (what, s, n) in &changed {
            let x = d(s, *n);
            assert_ne!(x, d(&base(), 2), "{what}");
            seen.push(x);
        }
        // The ring type alone (a stage of the same name on another element
        // type, as a program of its own may register) changes it.
        struct Typed(ElemType);
        impl crate::stage::MapStage for Typed {
            fn input(&self) -> ElemType {
                self.0
            }
            fn output(&self) -> ElemType {
                self.0
            }
            fn prepare(&self, _: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
                Err(PipelineError::BadStages("not run".into()))
            }
            fn reference(&self, _: &HostChunk, input: &HostChunk) -> Result<HostChunk, String> {
                Ok(input.clone())
            }
        }
        let typed = |t: ElemType| {
            let mine = Stage::new("mine", "", Kind::Map(Arc::new(Typed(t))));
            base().stages(vec![crate::builtin::h2d(), mine, crate::builtin::d2h()])
        };
        assert_eq!(d(&typed(ElemType::of::<u32>()), 2), d(&typed(ElemType::of::<u32>()), 2));
        assert_ne!(d(&typed(ElemType::of::<u32>()), 2), d(&typed(ElemType::of::<f32>()), 2));
        assert_ne!(d(&typed(ElemType::of::<u32>()), 2), d(&typed(ElemType::of::<[u8; 4]>()), 2));
        for same in [base().seed(7), base().slots(5), base().block_size(128), base().delays(vec![1, 2, 3]), base().watchdog_ms(1)] {
            assert_eq!(d(&same, 2), d(&base(), 2), "{same:?}");
        }
        // FNV-1a's published 128-bit value of "a": the digest is stable across builds.
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    /// `local_spec` takes only the spec's own layout for the rank: a layout
    /// with other peers or stages (its fields are public) is refused.
    #[test]
    fn forged_layouts_are_refused() {
        let s = spec("producer,consumer,consumer,reduce", vec![0, 1, 1, 2]);
        let good = RankLayout::new(&s, 1, 3).unwrap();
        assert!(local_spec(&s, &good, None, &HostInput::Generated).is_ok());
        for bad in [
            RankLayout { to: Some(0), ..good.clone() },
            RankLayout { from: Some(2), ..good.clone() },
            RankLayout { stages: 1..2, ..good.clone() },
            RankLayout { nranks: 4, ..good.clone() },
        ] {
            let e = local_spec(&s, &bad, None, &HostInput::Generated).unwrap_err().to_string();
            assert!(e.contains("rank") && !e.contains('\n'), "{bad:?}: {e}");
        }
    }

    /// The send and recv stages make a transfer only for a chunk of the
    /// plan they were made with: moved into a spec with other sizes, they
    /// refuse the op instead of sending another byte count.
    #[test]
    fn transfer_plans_refuse_other_chunks() {
        let s = spec("producer,consumer,reduce", vec![0, 1, 1]);
        let plan = Plan::of(&s);
        let chunk = |index: usize, range: Range<u64>| ChunkInfo { index, range, seed: 0 };
        for c in 0..s.chunks() {
            plan.check("send", &chunk(c, s.chunk_range(c))).unwrap();
        }
        let last = s.chunks() - 1;
        for (c, r) in [(0, 0..999), (1, 1000..2001), (last, s.chunk_range(last).start..s.chunk_range(last).end + 1), (last + 1, 6000..6007), (2, 1000..2000)] {
            let e = plan.check("send-to-rank1", &chunk(c, r.clone())).unwrap_err().to_string();
            assert!(e.contains("not chunk") && e.contains("send-to-rank1") && !e.contains('\n'), "{c} {r:?}: {e}");
        }
        // A spec with other chunk sizes: its chunks are not the plan's.
        let other = s.clone().chunk_elements(500);
        assert!((0..other.chunks()).any(|c| plan.check("send", &chunk(c, other.chunk_range(c))).is_err()));
    }

    #[test]
    fn delays_follow_their_stages() {
        let s = spec("producer,consumer,reduce", vec![0, 1, 1]).delays(vec![10, 20, 30]);
        let l1 = RankLayout::new(&s, 1, 2).unwrap();
        assert_eq!(local_spec(&s, &l1, None, &HostInput::Generated).unwrap().spin_ns, [0, 20, 30]);
        let l0 = RankLayout::new(&s, 0, 2).unwrap();
        assert_eq!(local_spec(&s, &l0, None, &HostInput::Generated).unwrap().spin_ns, [10, 0]);
    }
}
