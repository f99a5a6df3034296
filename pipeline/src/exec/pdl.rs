//! The PDL grains (`Launch::Pdl`): a chain of stages on one stream, chunk
//! after chunk, every stage run by its PDL form ([`PdlForm`], a
//! [`Stage`] carries it as data), whose kernels are `#[kernel(pdl)]`s
//! launched with programmatic dependent launch, either enqueued each run or
//! captured once as a CUDA graph (whose edges are then programmatic) and
//! replayed. The built-in producer, consumer and reduce have PDL forms
//! (kernels-hopper's `pdl_*_kernel`s, given them by the catalog), so the
//! generate pipeline runs; so does any chain whose stages all have one.
//!
//! Why it is correct with no event at all: each kernel's entry waits
//! (`griddepcontrol.wait`) for the kernel ahead of it on the stream to
//! complete before touching memory, so every kernel's memory effects follow
//! the previous kernel's: the filled edge (stage s+1 after stage s on chunk
//! c) and the freed edge (stage s on chunk c+K after stage s+1 on chunk c)
//! of the event graph both hold, by the stream's order. What PDL removes
//! is the gap between kernels: the next kernel is scheduled while this one
//! runs (each calls `launch_dependents` first) and waits on the GPU.
//!
//! The sync checker's fault knob ([`Pipeline::set_pdl_faults`]) makes
//! every stage whose PDL kernel has one (`#[kernel(pdl, faults = f)]`: the
//! built-in consumer's) skip its wait; with the producer slowed, it then
//! reads slots before they are written.
use super::error::{Result, err};
use super::part::Part;
use crate::Pipeline;
use crate::PipelineError;
use crate::records::Records;
use crate::spec::PipelineSpec;
use crate::stage::{ChunkInfo, OnGpu, Op, Setup, Stage};
use cudarc::driver::{CudaGraph, CudaStream};
use kernel_math::Reduction;
use pc_runtime::launch::{Kernel, KernelParams, Module, PdlMapKernel, Ptx};
use pc_runtime::stream;
use ptx_kernels::hopper::{KernelCrate as HopperCrate, PdlProducerKernel, PdlReduceKernel};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A stage's form in the PDL grains: its work on one chunk as kernels
/// launched on the chain's one stream. What it prepares is an [`OnGpu`]
/// (an `unsafe` trait: all work on [`Op::stream`], only the op's slots and
/// its own buffers), whose kernels may be launched with PDL
/// (`launch_pdl`, for `#[kernel(pdl)]` kernels only, which wait for the
/// kernel ahead before touching memory). Launch with PDL what follows a
/// kernel on the stream; the source's op on its first local chunk
/// ([`Op::local_chunk`] 0) follows the run's resets (copies), and is
/// launched plainly.
pub trait PdlForm: Send + Sync {
    fn prepare(&self, setup: &mut Setup<'_>, ctx: &PdlCtx<'_>) -> Result<Box<dyn OnGpu>>;
}

/// What a stage's PDL form is given to prepare itself: the Hopper module
/// and the stage's knobs.
pub struct PdlCtx<'a> {
    module: &'a Module<HopperCrate>,
    knobs: &'a Arc<PdlKnobs>,
}

impl PdlCtx<'_> {
    /// kernels-hopper, loaded on the part's GPU.
    pub fn module(&self) -> &Module<HopperCrate> {
        self.module
    }

    /// The stage's knobs, which the grain sets before each run.
    pub fn knobs(&self) -> &Arc<PdlKnobs> {
        self.knobs
    }
}

/// One stage's sync-checker knobs in the PDL grains: the fault bits
/// ([`Pipeline::set_pdl_faults`]) and the stage's delay
/// ([`PipelineSpec::spin_ns`]), for a form to pass to its kernels.
#[derive(Debug, Default)]
pub struct PdlKnobs {
    faults: AtomicU32,
    spin_ns: AtomicU64,
}

impl PdlKnobs {
    /// The fault bits (`nvptx_std::hopper::pdl::fault`; 0: the protocol).
    /// Only a launcher whose contract accepts the race takes them
    /// (`launch_with_faults`, `unsafe`), and the caller of
    /// [`Pipeline::set_pdl_faults`] accepted it.
    pub fn faults(&self) -> u32 {
        self.faults.load(Ordering::Relaxed)
    }

    /// The stage's delay in nanoseconds.
    pub fn spin_ns(&self) -> u64 {
        self.spin_ns.load(Ordering::Relaxed)
    }
}

impl Stage {
    /// This stage with `form` as its PDL-grains form.
    pub fn with_pdl_form(self, form: Arc<dyn PdlForm>) -> Stage {
        self.with_form(form)
    }

    /// Its PDL-grains form, if it has one.
    pub fn pdl_form(&self) -> Option<&Arc<dyn PdlForm>> {
        self.form::<Arc<dyn PdlForm>>()
    }

    /// This stage with a PDL form from kernel `K` in `ptx`: a
    /// `#[kernel(pdl)]` of the map shape ([`PdlMapKernel`]) with no
    /// run-time parameters, launched with PDL after the kernel ahead of it.
    /// Its per-element work must equal the stage's own kernel's (the CPU
    /// reference checks both). A fault knob (`#[kernel(pdl, faults = f)]`)
    /// gets [`Pipeline::set_pdl_faults`]' bits.
    ///
    /// ```no_run
    /// use pc_pipeline::{Stage, builtin};
    /// let square = Stage::map::<ptx_kernels::SquareKernel>("square", ptx_kernels::PTX, |i: &[f32], o: &mut [f32]| {
    ///     o.iter_mut().zip(i).for_each(|(o, &x)| *o = kernel_math::square(x))
    /// })
    /// .with_pdl_map::<ptx_kernels::hopper::PdlSquareKernel>(ptx_kernels::hopper::PTX);
    /// let spec = pc_pipeline::PipelineSpec::new(pc_pipeline::Workload::Generate).stages(vec![builtin::producer(), square, builtin::reduce()]);
    /// ```
    pub fn with_pdl_map<K: PdlMapKernel<Params = ()> + 'static>(self, ptx: Ptx<K::Crate>) -> Stage {
        self.with_pdl_map_with::<K>(ptx, ())
    }

    /// [`Stage::with_pdl_map`] for a kernel with run-time parameters after
    /// `output`, which take `params` (give it the values the stage's own
    /// kernel has: the CPU reference sees only those).
    pub fn with_pdl_map_with<K: PdlMapKernel + 'static>(self, ptx: Ptx<K::Crate>, params: K::Params) -> Stage {
        self.with_pdl_form(Arc::new(PdlMap::<K> { ptx, params }))
    }
}

/// A map stage's PDL form from a [`PdlMapKernel`].
struct PdlMap<K: PdlMapKernel> {
    ptx: Ptx<K::Crate>,
    params: K::Params,
}

impl<K: PdlMapKernel + 'static> PdlForm for PdlMap<K> {
    fn prepare(&self, setup: &mut Setup<'_>, ctx: &PdlCtx<'_>) -> Result<Box<dyn OnGpu>> {
        let kernel = setup.module(self.ptx, &format!("the module of {}", K::NAME))?.kernel::<K>()?;
        kernel.check_block(setup.block_size())?;
        // On the setup stream, which the chain synchronizes before running.
        let params = self.params.upload(setup.stream)?;
        Ok(Box::new(PdlMapOnGpu::<K> { kernel, params, knobs: ctx.knobs().clone() }))
    }
}

struct PdlMapOnGpu<K: PdlMapKernel> {
    kernel: Kernel<K>,
    params: <K::Params as KernelParams>::OnDevice,
    knobs: Arc<PdlKnobs>,
}

// SAFETY: one launch on the op's stream, reading its input slot and
// writing its output slot (and this stage's own parameter copies, written
// once on the setup stream before the run).
unsafe impl<K: PdlMapKernel + 'static> OnGpu for PdlMapOnGpu<K> {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (cfg, stream) = (op.cfg, op.stream);
        let faults = self.knobs.faults();
        let (input, mut output) = op.slots::<K::In, K::Out>()?;
        // SAFETY: the chain's one stream, and a map always follows the
        // kernel of the stage before it, which a PdlKernel waits for (the
        // module docs); fault bits only from `Pipeline::set_pdl_faults`,
        // whose caller accepted the race.
        unsafe { K::launch_map_pdl(&self.kernel, stream, cfg, true, faults, &input, &mut output, &self.params) }?;
        Ok(())
    }
}

/// One part's PDL stages and captured graph.
pub(crate) struct PdlChain {
    stages: Vec<Box<dyn OnGpu>>,
    /// Each stage's knobs.
    knobs: Vec<Arc<PdlKnobs>>,
    /// The run captured as a graph (`Launch::Pdl { graph: true }`).
    pub graph: Option<CudaGraph>,
}

impl super::part::GrainState for PdlChain {
    /// The captured graph holds the old delays.
    fn delays_changed(&mut self) {
        self.graph = None;
    }
}

/// Refuses, in one line, a pipeline the PDL grains cannot run.
pub fn check_pdl_spec(spec: &PipelineSpec) -> Result<()> {
    if let Some(s) = spec.stages.iter().find(|s| s.pdl_form().is_none()) {
        let names: Vec<&str> = spec.stages.iter().map(|s| s.name()).collect();
        return Err(PipelineError::GrainUnsupported {
            grain: "pdl",
            why: format!(
                "it runs stages with a PDL form (Stage::with_pdl_map for a map, Stage::with_pdl_form for any stage; the built-in producer,consumer,reduce have one) and {} of {} has none",
                s.name(),
                names.join(",")
            ),
        });
    }
    if spec.serial {
        return Err(PipelineError::GrainUnsupported { grain: "pdl", why: "it runs on one stream already; drop the serial baseline".into() });
    }
    Ok(())
}

/// The PDL grains ([`crate::Launch::Pdl`], plain or captured as a graph).
pub(crate) struct PdlGrain {
    /// Captured once as a CUDA graph and replayed.
    pub graph: bool,
}

impl super::Grain for PdlGrain {
    fn name(&self) -> &'static str {
        if self.graph { "pdl-graph" } else { "pdl" }
    }

    fn check(&self, spec: &PipelineSpec) -> Result<()> {
        check_pdl_spec(spec)
    }

    /// The chain prepared (once), and captured (once) for the graph grain.
    fn before_runs(&self, part: &mut Part<'_>, run: &mut super::RunCtx<'_>) -> Result<()> {
        part.prepare_pdl(run.spec)?;
        if self.graph && part.pdl_uncaptured() {
            part.capture_pdl(run.spec)?;
        }
        Ok(())
    }

    fn enqueue_run(&self, part: &mut Part<'_>, run: &mut super::RunCtx<'_>) -> Result<()> {
        if self.graph { part.launch_pdl_graph() } else { part.enqueue_pdl(run.spec) }
    }

    fn records(&self, part: &mut Part<'_>) -> Result<Vec<Reduction>> {
        part.pdl_records()
    }
}

impl Part<'_> {
    /// Prepares every stage's PDL form (refusing GPUs older than sm_90),
    /// once.
    pub(crate) fn prepare_pdl(&mut self, spec: &PipelineSpec) -> Result<()> {
        check_pdl_spec(spec)?;
        if self.state::<PdlChain>().is_some() {
            return Ok(());
        }
        let s0 = self.streams[0].clone();
        let mut modules = Vec::new();
        let mut setup = Setup { gpu: self.gpu, block_size: spec.block_size, local_chunks: self.chunks.len(), stream: &s0, modules: &mut modules };
        // Through the setup's modules, so forms that load kernels-hopper
        // themselves (`Stage::with_pdl_map`) share this one.
        let module = super::load_hopper(&mut setup)?;
        let (mut stages, mut knobs) = (Vec::new(), Vec::new());
        for st in &spec.stages {
            let form = st.pdl_form().ok_or_else(|| PipelineError::BadStages(format!("stage {} has no PDL form", st.name())))?;
            let k = Arc::new(PdlKnobs::default());
            stages.push(form.prepare(&mut setup, &PdlCtx { module: &module, knobs: &k })?);
            knobs.push(k);
        }
        s0.synchronize().map_err(err("preparing the PDL stages"))?;
        self.set_state(PdlChain { stages, knobs, graph: None });
        Ok(())
    }

    /// Enqueues one run on stream 0: every stage's per-run setup (the
    /// records' reset), then per chunk every stage in order, each by its
    /// PDL form.
    pub(crate) fn enqueue_pdl(&mut self, spec: &PipelineSpec) -> Result<()> {
        self.with_state(|p, chain: &mut PdlChain| p.enqueue_pdl_with(chain, spec)).unwrap_or(Err(PipelineError::EmptyCapture))
    }

    /// [`Part::enqueue_pdl`] once the chain is there.
    fn enqueue_pdl_with(&mut self, chain: &mut PdlChain, spec: &PipelineSpec) -> Result<()> {
        let s0 = self.streams[0].clone();
        // Raw driver calls act on the current context (another part's, on several GPUs).
        s0.context().bind_to_thread().map_err(err("binding the GPU"))?;
        for (s, k) in chain.knobs.iter().enumerate() {
            k.spin_ns.store(spec.spin_of(s), Ordering::Relaxed);
        }
        for stage in &mut chain.stages {
            stage.begin_run(&s0)?;
        }
        let slots = self.rings.first().map_or(1, |r| r.buf.len() / r.slot_bytes.max(1)).max(1);
        let last = chain.stages.len().saturating_sub(1);
        for lc in 0..self.chunks.len() {
            let index = self.chunks.start + lc;
            let range = spec.chunk_range(index);
            let cfg = self.gpu.launch_config(range.end - range.start, spec.block_size, None)?;
            let slot = lc % slots;
            for (s, stage) in chain.stages.iter_mut().enumerate() {
                // The rings either side of stage s: ring s-1 read, ring s written.
                let (before, after) = self.rings.split_at_mut(s);
                let input = before.last().map(|r| (r.elem, r.buf.slice(slot * r.slot_bytes..(slot + 1) * r.slot_bytes)));
                let output = if s < last { after.first_mut().map(|r| (r.elem, r.buf.slice_mut(slot * r.slot_bytes..(slot + 1) * r.slot_bytes))) } else { None };
                let chunk = ChunkInfo { index, range: range.clone(), seed: spec.seed };
                let mut op = Op { stream: &s0, cfg, chunk, local_chunk: lc, input, output, host_in: None, host_out: None, stage: &self.names[s] };
                stage.enqueue(&mut op)?;
            }
        }
        Ok(())
    }

    /// Whether the chain is prepared and not yet captured.
    pub(crate) fn pdl_uncaptured(&self) -> bool {
        self.state::<PdlChain>().is_some_and(|c| c.graph.is_none())
    }

    /// Replays the captured PDL run.
    pub(crate) fn launch_pdl_graph(&self) -> Result<()> {
        match self.state::<PdlChain>().and_then(|c| c.graph.as_ref()) {
            Some(g) => g.launch().map_err(err("launching the captured PDL graph")),
            None => Err(PipelineError::EmptyCapture),
        }
    }

    /// Captures one PDL run as a CUDA graph (programmatic edges), once.
    pub(crate) fn capture_pdl(&mut self, spec: &PipelineSpec) -> Result<()> {
        let s0 = self.streams[0].clone();
        stream::begin_capture(&s0).map_err(err("starting the PDL graph capture"))?;
        let enqueued = self.enqueue_pdl(spec);
        let ended = stream::end_capture(&s0).map_err(err("ending the PDL graph capture"));
        enqueued?;
        let graph = ended?.ok_or(PipelineError::EmptyCapture)?;
        graph.upload().map_err(err("uploading the PDL graph"))?;
        if let Some(chain) = self.state_mut::<PdlChain>() {
            chain.graph = Some(graph);
        }
        Ok(())
    }

    /// The PDL run's per-chunk records (its sink's), after the run synchronized.
    pub(crate) fn pdl_records(&mut self) -> Result<Vec<Reduction>> {
        let s0 = self.streams[0].clone();
        let chain = self.state_mut::<PdlChain>().ok_or(PipelineError::EmptyCapture)?;
        match chain.stages.last_mut() {
            Some(sink) => sink.records(&s0),
            None => Err(PipelineError::BadStages("no stages".into())),
        }
    }
}

impl Pipeline<'_> {
    /// Sets the fault bits of every stage for the PDL grains
    /// (`nvptx_std::hopper::pdl::fault`; 0 restores the protocol): those
    /// whose PDL kernel has a fault knob (`#[kernel(pdl, faults = f)]`,
    /// the built-in consumer's, or one of yours through
    /// [`Stage::with_pdl_map`]) take them. Drops any captured PDL graph.
    ///
    /// # Safety
    /// A fault bit breaks the protocol on purpose: with `SKIP_WAIT` such a
    /// kernel reads ring slots while the stage before it may still write
    /// them, a data race on device memory (on the GPU: wrong `f32` values,
    /// any bits valid, which verification reports). Set it only to show
    /// that race, and judge the results only through [`Pipeline::verify`].
    pub unsafe fn set_pdl_faults(&mut self, spec_faults: u32) -> Result<()> {
        self.settle();
        for p in &mut self.parts {
            p.prepare_pdl(&self.spec)?;
            if let Some(chain) = p.state_mut::<PdlChain>() {
                chain.knobs.iter().for_each(|k| k.faults.store(spec_faults, Ordering::Relaxed));
                chain.graph = None;
            }
        }
        Ok(())
    }
}

/// The built-in `producer`'s PDL form: `pdl_producer_kernel`.
pub(crate) struct ProducerPdl;

impl PdlForm for ProducerPdl {
    fn prepare(&self, setup: &mut Setup<'_>, ctx: &PdlCtx<'_>) -> Result<Box<dyn OnGpu>> {
        let kernel = ctx.module().kernel::<PdlProducerKernel>()?;
        kernel.check_block(setup.block_size())?;
        Ok(Box::new(ProducerPdlOnGpu { kernel, knobs: ctx.knobs().clone() }))
    }
}

struct ProducerPdlOnGpu {
    kernel: Kernel<PdlProducerKernel>,
    knobs: Arc<PdlKnobs>,
}

// SAFETY: one launch on the op's stream, writing the op's output slot.
unsafe impl OnGpu for ProducerPdlOnGpu {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (cfg, stream, first, seed, lc) = (op.cfg, op.stream, op.chunk.range.start, op.chunk.seed, op.local_chunk);
        let spin = self.knobs.spin_ns();
        let mut out = op.output::<f32>()?;
        // SAFETY: the chain's one stream; a PDL launch is of a PdlKernel,
        // which waits for the kernel ahead before touching memory (the
        // module docs). The first chunk's follows the resets: plain.
        unsafe {
            if lc == 0 {
                PdlProducerKernel::launch(&self.kernel, stream, cfg, &mut out, first, seed, spin)
            } else {
                PdlProducerKernel::launch_pdl(&self.kernel, stream, cfg, &mut out, first, seed, spin)
            }
        }?;
        Ok(())
    }
}

/// The built-in `reduce`'s PDL form: `pdl_reduce_kernel`, one record per chunk.
pub(crate) struct ReducePdl;

impl PdlForm for ReducePdl {
    fn prepare(&self, setup: &mut Setup<'_>, ctx: &PdlCtx<'_>) -> Result<Box<dyn OnGpu>> {
        let kernel = ctx.module().kernel::<PdlReduceKernel>()?;
        kernel.check_block(setup.block_size())?;
        let records = Records::new(setup)?;
        Ok(Box::new(ReducePdlOnGpu { kernel, records }))
    }
}

struct ReducePdlOnGpu {
    kernel: Kernel<PdlReduceKernel>,
    records: Records,
}

// SAFETY: the reset, each launch and the read-back touch only this stage's
// records and the op's input slot, on the op's stream (the read-back after
// the run synchronized).
unsafe impl OnGpu for ReducePdlOnGpu {
    fn begin_run(&mut self, stream: &CudaStream) -> Result<()> {
        self.records.reset(stream)
    }

    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (stream, lc) = (op.stream, op.local_chunk);
        let cfg = cudarc::driver::LaunchConfig { shared_mem_bytes: nvptx_std::REDUCE_SHARED_BYTES, ..op.cfg };
        let input = op.input::<f32>()?;
        let record = self.records.atomic(lc, 1)?;
        // SAFETY: as the producer's; the record is this chunk's alone.
        unsafe { PdlReduceKernel::launch_pdl(&self.kernel, stream, cfg, &input, &record) }?;
        Ok(())
    }

    fn records(&mut self, stream: &Arc<CudaStream>) -> Result<Vec<Reduction>> {
        self.records.read(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PipelineSpec, Workload, builtin};

    /// Any chain whose stages all have a PDL form runs; by its forms, not
    /// by its stages' names.
    #[test]
    fn chains_of_pdl_forms_run_as_pdl() {
        assert!(check_pdl_spec(&PipelineSpec::new(Workload::Generate)).is_ok());
        let e = check_pdl_spec(&PipelineSpec::new(Workload::Stream)).unwrap_err().to_string();
        assert!(e.contains("h2d of h2d,consumer,d2h has none") && !e.contains('\n'), "{e}");
        let two = PipelineSpec::new(Workload::Generate).stages(vec![builtin::producer(), builtin::consumer(), builtin::consumer(), builtin::reduce()]);
        assert!(check_pdl_spec(&two).is_ok());
        assert!(check_pdl_spec(&PipelineSpec::new(Workload::Generate).serial(true)).is_err());
        // A stage of yours named like a built-in has no form until given one.
        let mine = || Stage::map::<ptx_kernels::ConsumerKernel>("consumer", ptx_kernels::PTX, |i: &[f32], o: &mut [f32]| o.copy_from_slice(i));
        let spec = |c: Stage| PipelineSpec::new(Workload::Generate).stages(vec![builtin::producer(), c, builtin::reduce()]);
        assert!(check_pdl_spec(&spec(mine())).unwrap_err().to_string().contains("consumer of producer,consumer,reduce has none"));
        assert!(check_pdl_spec(&spec(mine().with_pdl_map::<ptx_kernels::hopper::PdlConsumerKernel>(ptx_kernels::hopper::PTX))).is_ok());
    }
}
