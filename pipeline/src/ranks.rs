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
//! Verification happens where the pipeline's sink is, on the last rank: the
//! `recv` source's CPU reference is the original upstream stages' references
//! applied to the original source's reference (halos included), so every
//! element or record of the last rank is checked against the whole
//! pipeline's CPU reference. A rank that ends in a `send` has nothing to
//! check (nothing comes back); [`RankedPipeline::verify`] says so with `None`.
use crate::PipelineError;
use crate::elem::{ElemType, HostChunk};
use crate::exec::{Input, Pipeline, RunReport, generated_bytes};
use crate::nccl::{Comm, NcclId};
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

/// This rank's pipeline: a `recv` source in front of its stages where they
/// do not start the pipeline, a `send` sink after them where they do not
/// end it; no placement (one GPU). `comm` may be `None` to compute
/// references only (preparing a send or recv stage then fails). `input` is
/// the pipeline's host input as every rank knows it: a `recv` whose
/// upstream source reads host input computes its reference from it.
pub fn local_spec(spec: &PipelineSpec, layout: &RankLayout, comm: Option<Arc<Comm>>, input: &Input) -> Result<PipelineSpec> {
    let types = spec.ring_types()?;
    let Range { start: lo, end } = layout.stages.clone();
    let mut stages = Vec::new();
    let mut spins = Vec::new();
    if let Some(peer) = layout.from {
        let elem = types[lo - 1];
        let mut upstream = spec.clone().stages(spec.stages[..lo].iter().cloned().chain([send_stage(elem, layout.rank, None)]).collect());
        upstream.placement = Vec::new();
        upstream.spin_ns = Vec::new();
        let recv = RecvSource { elem, peer, comm: comm.clone(), upstream, input: input.clone() };
        stages.push(Stage::new(format!("recv-from-rank{peer}"), format!("source: {elem} by ncclRecv from rank {peer}"), Kind::Source(Arc::new(recv))));
        spins.push(0);
    }
    for s in layout.stages.clone() {
        stages.push(spec.stages[s].clone());
        spins.push(spec.spin_of(s));
    }
    if let Some(peer) = layout.to {
        stages.push(send_stage(types[end - 1], peer, comm));
        spins.push(0);
    }
    let mut local = spec.clone().stages(stages);
    local.placement = Vec::new();
    local.spin_ns = if spec.spin_ns.is_empty() { Vec::new() } else { spins };
    local.validate()?;
    Ok(local)
}

fn send_stage(elem: ElemType, peer: usize, comm: Option<Arc<Comm>>) -> Stage {
    Stage::new(format!("send-to-rank{peer}"), format!("sink: {elem} by ncclSend to rank {peer}"), Kind::Sink(Arc::new(SendSink { elem, peer, comm })))
}

fn no_comm(stage: &str) -> PipelineError {
    PipelineError::BadRanks(format!("stage {stage} has no NCCL communicator (a spec built for references only)"))
}

/// The `recv-from-rankA` source.
struct RecvSource {
    elem: ElemType,
    peer: usize,
    comm: Option<Arc<Comm>>,
    /// The original stages up to the boundary, ending in a send: its
    /// reference is what arrives here.
    upstream: PipelineSpec,
    /// The pipeline's host input (h2d upstream).
    input: Input,
}

impl RecvSource {
    /// The upstream source's host input for the element range `r`.
    fn host_input(&self, r: Range<u64>) -> Result<Vec<u8>, String> {
        let elem = self.upstream.input_type().map_err(|e| e.to_string())?;
        let size = elem.size() as u64;
        let (a, b) = (r.start * size, r.end * size);
        let len = usize::try_from(b - a).map_err(|_| "range too large".to_string())?;
        match &self.input {
            Input::Generated => {
                let mut out = vec![0u8; len];
                generated_bytes(elem, self.upstream.seed, a, &mut out);
                Ok(out)
            }
            Input::Data(chunk) => chunk.bytes().get(a as usize..b as usize).map(<[u8]>::to_vec).ok_or_else(|| format!("the input data has no bytes {a}..{b}")),
            Input::File(path) => {
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
    fn prepare(&self, _setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let comm = self.comm.clone().ok_or_else(|| no_comm("recv"))?;
        Ok(Box::new(RecvOnGpu { comm, peer: self.peer, elem: self.elem }))
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
}

// SAFETY: one ncclRecv on the op's stream, into the op's output slot.
unsafe impl OnGpu for RecvOnGpu {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (stream, bytes) = (op.stream, op.len() * self.elem.size());
        let Some((_, slot)) = op.output.as_mut() else { return Err(PipelineError::BadStages(format!("{}: no output slot", op.stage))) };
        if bytes > slot.len() {
            return Err(PipelineError::BadStages(format!("{}: slot too small", op.stage)));
        }
        let (dst, _) = slot.device_ptr_mut(stream);
        // SAFETY: the slot holds `bytes` on this rank's GPU; the event graph
        // orders every other access to it around this stream's operation.
        unsafe { self.comm.recv(dst, bytes, self.peer, stream.cu_stream().cast()) }
    }
}

/// The `send-to-rankB` sink.
struct SendSink {
    elem: ElemType,
    peer: usize,
    comm: Option<Arc<Comm>>,
}

impl SinkStage for SendSink {
    fn input(&self) -> Port {
        Port::Elem(self.elem)
    }
    fn prepare(&self, _setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let comm = self.comm.clone().ok_or_else(|| no_comm("send"))?;
        Ok(Box::new(SendOnGpu { comm, peer: self.peer, elem: self.elem }))
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
}

// SAFETY: one ncclSend on the op's stream, from the op's input slot.
unsafe impl OnGpu for SendOnGpu {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (stream, bytes) = (op.stream, op.len() * self.elem.size());
        let Some((_, slot)) = op.input.as_ref() else { return Err(PipelineError::BadStages(format!("{}: no input slot", op.stage))) };
        if bytes > slot.len() {
            return Err(PipelineError::BadStages(format!("{}: slot too small", op.stage)));
        }
        let (src, _) = slot.device_ptr(stream);
        // SAFETY: the slot holds `bytes` on this rank's GPU; nothing writes
        // it before this stream's done event (the freed edge).
        unsafe { self.comm.send(src, bytes, self.peer, stream.cu_stream().cast()) }
    }
}

/// This process's part of a pipeline spread over ranks: its stages as a
/// one-GPU [`Pipeline`], with the NCCL communicator its `send` and `recv`
/// stages use.
///
/// ```no_run
/// use pc_pipeline::{Input, PipelineSpec, Workload, nccl::NcclId, ranks::RankedPipeline};
/// use pc_runtime::gpu::Gpu;
/// // Rank `rank` of 2: the producer on rank 0, consumer and reduce on rank 1;
/// // `id` is rank 0's NcclId::new(), handed to every rank.
/// # let (rank, id) = (0, NcclId::new()?);
/// let gpu = Gpu::open(rank)?;
/// let spec = PipelineSpec::new(Workload::Generate).placement(vec![0, 1, 1]);
/// // SAFETY: every rank runs this same program with the same spec.
/// let mut p = unsafe { RankedPipeline::new(&gpu, spec, Input::Generated, rank, 2, Some(&id)) }?;
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
    /// # Safety
    /// Every rank of the job is made with the same `spec` (stages, K,
    /// chunk and total sizes) and `nranks`: each `ncclSend` is matched by
    /// an `ncclRecv` of the same byte count on the peer, which NCCL
    /// requires and nothing here can check (a mismatch corrupts or hangs
    /// the transfers). `host launch` gives every rank the same arguments.
    pub unsafe fn new(gpu: &'g Gpu, spec: PipelineSpec, input: Input, rank: usize, nranks: usize, id: Option<&NcclId>) -> Result<RankedPipeline<'g>> {
        let layout = RankLayout::new(&spec, rank, nranks)?;
        // The local spec is checked before joining: a bad one fails every
        // rank alike, none left waiting in NCCL.
        local_spec(&spec, &layout, None, &input)?;
        let comm = match (layout.exchanges(), id) {
            (false, _) => None,
            (true, Some(id)) => Some(Arc::new(Comm::init(gpu, id, rank, nranks)?)),
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
            c.connect(s, from, to).map_err(failed)?;
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
        let local = |r: usize| local_spec(&s, &l[r], None, &Input::Generated).unwrap();
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
            let local = local_spec(&s, &last, None, &Input::Generated).unwrap();
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
                let local = local_spec(&s, &l, None, &Input::Generated).unwrap();
                let end = l.stages.end;
                let cut = s.clone().stages(s.stages[..end].iter().cloned().chain([send_stage(types[end - 1], r + 1, None)]).collect());
                for c in [0, s.chunks() - 1] {
                    let (got, want) = (expected_chunk(&local, c, Some(&host)).unwrap(), expected_chunk(&cut, c, Some(&host)).unwrap());
                    assert!(got.bytes() == want.bytes(), "{list} {placement:?} rank {r} chunk {c}");
                }
            }
            // Input given as data or as a file gives the same.
            let dir = std::env::temp_dir().join(format!("pc-ranks-{}-{}", std::process::id(), list.len()));
            std::fs::write(&dir, &host).unwrap();
            for input in [Input::Data(HostChunk::from_bytes(elem, &host)), Input::File(dir.clone())] {
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
        let local = local_spec(&s, &RankLayout::new(&s, 1, 2).unwrap(), None, &Input::Generated).unwrap();
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
        let local = local_spec(&s, &l0, None, &Input::Generated).unwrap();
        let Kind::Sink(sink) = local.stages[1].kind() else { panic!("not a sink") };
        assert!(sink.check(&HostChunk::zeroed(ElemType::of::<f32>(), 3), Sink::Record(None)).is_none());
        assert!(!sink.writes_host());
    }

    #[test]
    fn delays_follow_their_stages() {
        let s = spec("producer,consumer,reduce", vec![0, 1, 1]).delays(vec![10, 20, 30]);
        let l1 = RankLayout::new(&s, 1, 2).unwrap();
        assert_eq!(local_spec(&s, &l1, None, &Input::Generated).unwrap().spin_ns, [0, 20, 30]);
        let l0 = RankLayout::new(&s, 0, 2).unwrap();
        assert_eq!(local_spec(&s, &l0, None, &Input::Generated).unwrap().spin_ns, [10, 0]);
    }
}
