//! Stages as values: each owns its name, its kernel (or copy), its element
//! types in and out, and its CPU reference. The built-in stages
//! ([`crate::builtin`]) are made exactly the way a user's are.
//!
//! A map stage from any kernel of the map shape (see
//! [`pc_runtime::launch::MapKernel`]) and its reference:
//!
//! ```no_run
//! use pc_pipeline::{Stage, PipelineSpec, Workload};
//! // From the project's kernels; a user's kernel crate gives the same: a
//! // launcher type from #[kernel] and the PTX its build script embedded.
//! let double = Stage::map::<ptx_kernels::ConsumerKernel>("double", ptx_kernels::PTX, |input: &[f32], output: &mut [f32]| {
//!     output.iter_mut().zip(input).for_each(|(o, x)| *o = 2.0 * x)
//! });
//! let spec = PipelineSpec::new(Workload::Stream).stages(vec![Stage::h2d(), double, Stage::d2h()]);
//! ```
use crate::PipelineError;
use crate::elem::{ElemType, HostChunk};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, LaunchConfig};
use kernel_math::{Element, Reduction};
use pc_runtime::gpu::Gpu;
use pc_runtime::launch::{KernelParams, MapKernel, Module, Ptx};
use std::any::{Any, TypeId};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// What a stage reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// This element type.
    Elem(ElemType),
    /// Whatever its neighbour has (copies).
    Any,
}

impl Port {
    pub fn of<T: Element>() -> Port {
        Port::Elem(ElemType::of::<T>())
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Elem(e) => write!(f, "{e}"),
            Port::Any => f.write_str("any type"),
        }
    }
}

/// The CPU reference of a halo stage: `(history, input, output)`, `history`
/// being the stage's halo of elements just before `input` in the stream.
/// (Any `Fn` of this signature will do; see [`Stage::halo_map`].)
pub type HaloReference<I, O> = fn(&[I], &[I], &mut [O]);

/// The CPU reference of a map stage with run-time parameters: `(params,
/// input, output)`.
pub(crate) type MapReference<P, I, O> = Box<dyn Fn(&P, &[I], &mut [O]) + Send + Sync>;

/// The CPU reference of a halo stage with run-time parameters: `(params,
/// history, input, output)`.
pub(crate) type HaloParamsReference<P, I, O> = Box<dyn Fn(&P, &[I], &[I], &mut [O]) + Send + Sync>;

/// One stage of a pipeline: a source, a map or a sink, with its name.
#[derive(Clone)]
pub struct Stage {
    name: Arc<str>,
    about: Arc<str>,
    kind: Kind,
    /// Its forms: how the grains that need more than its stream kernel run
    /// it (a flags form, a warps form, ...), at most one per type. Each grain
    /// looks up its own form type ([`Stage::form`]); the model names none.
    forms: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

/// What a stage is.
#[derive(Clone)]
pub enum Kind {
    Source(Arc<dyn SourceStage>),
    Map(Arc<dyn MapStage>),
    Sink(Arc<dyn SinkStage>),
}

impl Stage {
    /// A stage from its parts.
    pub fn new(name: impl Into<Arc<str>>, about: impl Into<Arc<str>>, kind: Kind) -> Stage {
        Stage { name: name.into(), about: about.into(), kind, forms: Vec::new() }
    }

    /// This stage with `form` as its form of type `F` (replacing one of
    /// that type it had): how a grain that needs more than the stage's
    /// stream kernel runs it. A grain's own methods wrap this for its form
    /// type (see [`Stage::with_flag_form`]).
    pub fn with_form<F: Any + Send + Sync>(mut self, form: F) -> Stage {
        let form: Arc<dyn Any + Send + Sync> = Arc::new(form);
        match self.forms.iter_mut().find(|(t, _)| *t == TypeId::of::<F>()) {
            Some(slot) => slot.1 = form,
            None => self.forms.push((TypeId::of::<F>(), form)),
        }
        self
    }

    /// Its form of type `F`, if it has one.
    pub fn form<F: Any>(&self) -> Option<&F> {
        self.forms.iter().find(|(t, _)| *t == TypeId::of::<F>()).and_then(|(_, f)| (**f).downcast_ref::<F>())
    }

    /// A map stage running kernel `K` (from `#[kernel] fn(input: &[I],
    /// output: Out<O>)`) from the PTX module `ptx`, with `reference`, the
    /// same computation on the CPU over one chunk, which verification
    /// compares with the GPU's output bit for bit. A kernel with run-time
    /// parameters after `output` is made with [`Stage::map_with`].
    pub fn map<K: MapKernel<Params = ()> + 'static>(
        name: &str,
        ptx: Ptx<K::Crate>,
        reference: impl Fn(&[K::In], &mut [K::Out]) + Send + Sync + 'static,
    ) -> Stage {
        Stage::map_with::<K>(name, ptx, (), move |_: &(), input: &[K::In], output: &mut [K::Out]| reference(input, output))
    }

    /// A map stage running kernel `K`, whose parameters after `output`
    /// (`#[kernel] fn(input: &[I], output: Out<O>, scale: f32)`) take the
    /// values `params` (`K::Params`: the struct `#[kernel]` generates,
    /// `ScaleKernelParams { scale: 2.0 }`). The stage owns them: every
    /// launch passes them (each `&T`/`&[T]` copied to the GPU once, when
    /// the pipeline is prepared) and `reference(params, input, output)` gets
    /// the same values, so kernel and reference cannot disagree about them.
    pub fn map_with<K: MapKernel + 'static>(
        name: &str,
        ptx: Ptx<K::Crate>,
        params: K::Params,
        reference: impl Fn(&K::Params, &[K::In], &mut [K::Out]) + Send + Sync + 'static,
    ) -> Stage {
        let about = format!("{} -> {}: kernel {}", ElemType::of::<K::In>(), ElemType::of::<K::Out>(), K::NAME);
        Stage::new(name, about, Kind::Map(Arc::new(KernelMap::<K> { ptx, params, reference: Box::new(reference) })))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    /// One line for help and errors.
    pub fn about(&self) -> &str {
        &self.about
    }
    pub fn kind(&self) -> &Kind {
        &self.kind
    }
    pub fn is_source(&self) -> bool {
        matches!(self.kind, Kind::Source(_))
    }
    pub fn is_sink(&self) -> bool {
        matches!(self.kind, Kind::Sink(_))
    }
    /// Elements before each chunk the stage reads (0 but for halo stages).
    pub fn halo(&self) -> usize {
        match &self.kind {
            Kind::Map(m) => m.halo(),
            _ => 0,
        }
    }
    /// What the stage reads (`None` for a source).
    pub fn input(&self) -> Option<Port> {
        match &self.kind {
            Kind::Source(_) => None,
            Kind::Map(m) => Some(Port::Elem(m.input())),
            Kind::Sink(s) => Some(s.input()),
        }
    }
    /// What the stage writes (`None` for a sink).
    pub fn output(&self) -> Option<Port> {
        match &self.kind {
            Kind::Source(s) => Some(s.output()),
            Kind::Map(m) => Some(Port::Elem(m.output())),
            Kind::Sink(_) => None,
        }
    }

    pub(crate) fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        match &self.kind {
            Kind::Source(s) => s.prepare(setup),
            Kind::Map(m) => m.prepare(setup),
            Kind::Sink(s) => s.prepare(setup),
        }
    }
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Stages are equal when they have the same name and role.
impl PartialEq for Stage {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && std::mem::discriminant(&self.kind) == std::mem::discriminant(&other.kind)
    }
}

/// Where chunk values come from: a kernel that generates them, or a copy
/// from host input.
pub trait SourceStage: Send + Sync + 'static {
    fn output(&self) -> Port;
    /// Whether the pipeline must provide pinned host input.
    fn reads_host(&self) -> bool {
        false
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>>;
    /// The CPU reference of one chunk. `host` is the chunk's host input
    /// (for sources that read it), `elem` the resolved output type.
    fn reference(&self, chunk: &ChunkInfo, elem: ElemType, host: Option<&[u8]>) -> Result<HostChunk, String>;
}

/// A stage that maps each chunk of one ring to the next, element count kept.
pub trait MapStage: Send + Sync + 'static {
    fn input(&self) -> ElemType;
    fn output(&self) -> ElemType;
    /// Elements before each chunk this stage reads (its halo): 0 for a
    /// stage that maps each chunk on its own. A halo stage keeps them on
    /// the GPU itself (see [`Stage::halo_map`]).
    fn halo(&self) -> usize {
        0
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>>;
    /// The CPU reference: this stage's output for one chunk of `input`.
    /// `history` holds the [`MapStage::halo`] elements just before the
    /// chunk in the stream (zeros before its start), of the input type;
    /// empty for a stage without a halo.
    fn reference(&self, history: &HostChunk, input: &HostChunk) -> Result<HostChunk, String>;
}

/// Where chunks end: copied to the host, or reduced on the GPU to records.
pub trait SinkStage: Send + Sync + 'static {
    fn input(&self) -> Port;
    /// Whether the pipeline must provide pinned host output.
    fn writes_host(&self) -> bool {
        false
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>>;
    /// Compares what came back for one chunk with the reference values
    /// that reached the sink: `None` when right, else what is wrong.
    fn check(&self, expected: &HostChunk, got: Sink<'_>) -> Option<(u64, String)>;
}

/// What a sink produced for one chunk.
#[derive(Debug, Clone, Copy)]
pub enum Sink<'a> {
    /// The chunk's bytes in the host output.
    Host(&'a [u8]),
    /// The chunk's record (reduce), if one came back.
    Record(Option<&'a Reduction>),
}

/// A chunk: its global index and element range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkInfo {
    pub index: usize,
    pub range: Range<u64>,
    /// The pipeline's seed (sources that generate values use it).
    pub seed: u32,
}

/// A stage prepared on one GPU: its kernels loaded, its device state
/// allocated.
///
/// # Safety
/// The pipeline orders the stages' streams by the event graph: an
/// implementation must enqueue all its work for a chunk on [`Op::stream`]
/// (no other stream, no fork of it, no host-side access to device memory)
/// and touch no device memory other than the op's input and output slots
/// and its own buffers. Then every access it makes is ordered by the graph.
pub unsafe trait OnGpu: Send {
    /// Enqueues this stage's work for one chunk.
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()>;
    /// Enqueues per-run setup on the stage's stream (e.g. resetting records).
    fn begin_run(&mut self, _stream: &CudaStream) -> Result<()> {
        Ok(())
    }
    /// Per-chunk records after a run (record sinks), in local chunk order.
    /// Called after every stream has synchronized.
    fn records(&mut self, _stream: &Arc<CudaStream>) -> Result<Vec<Reduction>> {
        Ok(Vec::new())
    }
}

/// A module loaded for a part: its PTX text's (address, length), the
/// context it is loaded in, and the `Module<C>`.
pub(crate) type LoadedModule = ((usize, usize, usize), Box<dyn std::any::Any>);

/// Everything a stage needs to prepare itself on one GPU.
pub struct Setup<'a> {
    pub(crate) gpu: &'a Gpu,
    pub(crate) block_size: u32,
    pub(crate) local_chunks: usize,
    /// Setup stream (stream 0); the pipeline synchronizes it before running.
    pub(crate) stream: &'a Arc<CudaStream>,
    /// Loaded modules, by (address, length) of their PTX text, each a `Module<C>`.
    pub(crate) modules: &'a mut Vec<LoadedModule>,
}

impl Setup<'_> {
    pub fn gpu(&self) -> &Gpu {
        self.gpu
    }
    /// Threads per block of every kernel stage: check your kernels accept it.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }
    /// Chunks this GPU runs.
    pub fn local_chunks(&self) -> usize {
        self.local_chunks
    }

    /// The PTX module `ptx`, loaded once per GPU however many stages use it.
    pub fn module<C: 'static>(&mut self, ptx: Ptx<C>, origin: &str) -> Result<Module<C>> {
        // The context itself, not the device index: two `Gpu`s of one
        // device hold two handles, and a launch checks the kernel's is the stream's.
        // SAFETY: only the context's address is read.
        let ctx = std::sync::Arc::as_ptr(unsafe { self.gpu.context() }) as usize;
        let key = (ptx.text().as_ptr() as usize, ptx.text().len(), ctx);
        if let Some(m) = self.modules.iter().filter(|(k, _)| *k == key).find_map(|(_, m)| m.downcast_ref::<Module<C>>()) {
            return Ok(m.clone());
        }
        let m = self.gpu.load(ptx, origin)?;
        self.modules.push((key, Box::new(m.clone())));
        Ok(m)
    }

    /// A device buffer holding `data`, for a stage's own use. Crate-private:
    /// a `CudaSlice` hands out its stream, whose safe API (say `fork`) would
    /// escape the pipeline's ordering.
    pub(crate) fn upload<T: Element + cudarc::driver::DeviceRepr>(&self, data: &[T]) -> Result<CudaSlice<T>> {
        self.stream.clone_htod(data).map_err(|e| PipelineError::Runtime(pc_runtime::Error::cuda("uploading a stage's buffer")(e)))
    }
}

/// One stage's work on one chunk.
pub struct Op<'a> {
    pub(crate) stream: &'a CudaStream,
    pub(crate) cfg: LaunchConfig,
    pub(crate) chunk: ChunkInfo,
    pub(crate) local_chunk: usize,
    pub(crate) input: Option<(ElemType, CudaView<'a, u8>)>,
    pub(crate) output: Option<(ElemType, CudaViewMut<'a, u8>)>,
    /// The chunk's bytes in pinned host input/output (copy stages).
    pub(crate) host_in: Option<*const u8>,
    pub(crate) host_out: Option<*mut u8>,
    pub(crate) stage: &'a str,
}

impl<'a> Op<'a> {
    /// The stage's stream: enqueue everything here.
    pub fn stream(&self) -> &CudaStream {
        self.stream
    }
    /// Launch shape for this chunk's element count.
    pub fn launch_config(&self) -> LaunchConfig {
        self.cfg
    }
    pub fn chunk(&self) -> &ChunkInfo {
        &self.chunk
    }
    /// Index of the chunk among this GPU's chunks.
    pub fn local_chunk(&self) -> usize {
        self.local_chunk
    }
    /// Elements in this chunk.
    pub fn len(&self) -> usize {
        (self.chunk.range.end - self.chunk.range.start) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The input slot, as `T` (an error if the ring holds another type).
    pub fn input<T: Element>(&self) -> Result<CudaView<'_, T>> {
        typed(self.stage, "input", self.len(), self.input.as_ref())
    }

    /// The output slot, as `T`.
    pub fn output<T: Element>(&mut self) -> Result<CudaViewMut<'_, T>> {
        typed_mut(self.stage, self.len(), self.output.as_mut())
    }

    /// Both slots at once, as `I` in and `O` out (map stages).
    pub fn slots<I: Element, O: Element>(&mut self) -> Result<(CudaView<'_, I>, CudaViewMut<'_, O>)> {
        let len = self.len();
        Ok((typed(self.stage, "input", len, self.input.as_ref())?, typed_mut(self.stage, len, self.output.as_mut())?))
    }
}

fn slot_error(stage: &str, what: String) -> PipelineError {
    PipelineError::BadStages(format!("stage {stage}: {what}"))
}

fn typed<'v, T: Element>(stage: &str, which: &str, len: usize, slot: Option<&'v (ElemType, CudaView<'_, u8>)>) -> Result<CudaView<'v, T>> {
    let (elem, view) = slot.ok_or_else(|| slot_error(stage, format!("no {which} slot")))?;
    if !elem.is::<T>() {
        return Err(slot_error(stage, format!("reads {} but its {which} ring holds {elem}", ElemType::of::<T>())));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|b| b > view.len()) {
        return Err(slot_error(stage, format!("{which} slot too small")));
    }
    // SAFETY: the slot holds `len` elements of T (same type, size checked
    // just above; each slot starts 256-byte aligned).
    unsafe { view.transmute::<T>(len) }.ok_or_else(|| slot_error(stage, format!("{which} slot too small")))
}

fn typed_mut<'v, T: Element>(stage: &str, len: usize, slot: Option<&'v mut (ElemType, CudaViewMut<'_, u8>)>) -> Result<CudaViewMut<'v, T>> {
    let (elem, view) = slot.ok_or_else(|| slot_error(stage, "no output slot".into()))?;
    if !elem.is::<T>() {
        return Err(slot_error(stage, format!("writes {} but its output ring holds {elem}", ElemType::of::<T>())));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|b| b > view.len()) {
        return Err(slot_error(stage, "output slot too small".into()));
    }
    // SAFETY: as `typed`.
    unsafe { view.transmute_mut::<T>(len) }.ok_or_else(|| slot_error(stage, "output slot too small".into()))
}

/// A map stage from a `#[kernel]` of the map shape, with its parameters' values.
struct KernelMap<K: MapKernel> {
    ptx: Ptx<K::Crate>,
    params: K::Params,
    reference: MapReference<K::Params, K::In, K::Out>,
}

impl<K: MapKernel + 'static> MapStage for KernelMap<K> {
    fn input(&self) -> ElemType {
        ElemType::of::<K::In>()
    }
    fn output(&self) -> ElemType {
        ElemType::of::<K::Out>()
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let kernel = setup.module(self.ptx, &format!("the module of {}", K::NAME))?.kernel::<K>()?;
        kernel.check_block(setup.block_size())?;
        // On the setup stream, which the pipeline synchronizes before running.
        let params = self.params.upload(setup.stream)?;
        Ok(Box::new(KernelMapOnGpu::<K> { kernel, params }))
    }
    fn reference(&self, _history: &HostChunk, input: &HostChunk) -> Result<HostChunk, String> {
        let i = input.view::<K::In>().ok_or_else(|| format!("{} reads {} but got {}", K::NAME, ElemType::of::<K::In>(), input.elem()))?;
        let mut out = HostChunk::zeroed(ElemType::of::<K::Out>(), i.len());
        let o = out.view_mut::<K::Out>().ok_or("output type")?;
        (self.reference)(&self.params, i, o);
        Ok(out)
    }
}

struct KernelMapOnGpu<K: MapKernel> {
    kernel: pc_runtime::launch::Kernel<K>,
    /// The parameters' values on this GPU (device copies are this stage's own).
    params: <K::Params as KernelParams>::OnDevice,
}

// SAFETY: launches only on the op's stream, over the op's input and output
// slots and this stage's own parameter copies (written once, on the setup
// stream, before the run; freed with the stage).
unsafe impl<K: MapKernel + 'static> OnGpu for KernelMapOnGpu<K> {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (cfg, stream) = (op.cfg, op.stream);
        let (input, mut output) = op.slots::<K::In, K::Out>()?;
        // SAFETY: the pipeline orders this stream against every other
        // access to the two slots (filled and freed events); the
        // parameters' copies are never written after setup.
        unsafe { K::launch_map(&self.kernel, stream, cfg, &input, &mut output, &self.params) }?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Forms are found by their type, one per type, the last given winning.
    #[test]
    fn a_stage_keeps_one_form_per_type() {
        #[derive(Debug, PartialEq)]
        struct A(u32);
        #[derive(Debug, PartialEq)]
        struct B(&'static str);
        let s = crate::copy::d2h();
        assert_eq!(s.form::<A>(), None);
        let s = s.with_form(A(1)).with_form(B("b")).with_form(A(2));
        assert_eq!(s.form::<A>(), Some(&A(2)));
        assert_eq!(s.form::<B>(), Some(&B("b")));
        assert_eq!(s.forms.len(), 2);
        // A clone shares its forms.
        assert_eq!(s.clone().form::<B>(), Some(&B("b")));
        assert_eq!(s.form::<u32>(), None);
    }
}
