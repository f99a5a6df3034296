//! Halo stages: map stages that read `h` elements before each chunk (a
//! causal filter). The rings carry only the chunk, so each halo stage keeps
//! its own device history: the last `h` elements of its input, zeros before
//! the stream's start. All of it runs on the stage's own stream, so stream
//! order alone keeps it right: per chunk, the stage's kernel reads the
//! history, then a shift writes the next history from it and the chunk's
//! input. No event-graph edge is added, and the history never leaves its
//! GPU, which is why a pipeline with a halo stage is not split over GPUs
//! ([`crate::PipelineSpec::check_split`]).
use crate::PipelineError;
use crate::elem::{ElemType, HostChunk};
use crate::stage::{HaloParamsReference, Kind, MapStage, OnGpu, Op, Setup, Stage};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, DevicePtrMut, LaunchConfig};
use kernel_math::Element;
use pc_runtime::launch::{HaloKernel, Kernel, KernelParams, Ptx};
use ptx_kernels::HaloShiftKernel;
use std::sync::Arc;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

fn cuda(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> PipelineError + '_ {
    move |e| PipelineError::Runtime(pc_runtime::Error::cuda(what)(e))
}

/// Halo stages are made here, next to the `KernelHalo` they wrap: the
/// stage model does not import its halo history.
impl Stage {
    /// A halo stage running kernel `K` (from `#[kernel] fn(history: &[I],
    /// input: &[I], output: Out<O>)`): it reads the `halo` elements before
    /// each chunk too. The pipeline keeps them on the GPU (the stage's own
    /// history, zeros before the stream's start) and passes them as
    /// `history`, so the output equals the computation over the whole
    /// stream whatever the chunk size. `reference(history, input, output)`
    /// is the same computation on the CPU. A pipeline with a halo stage
    /// runs on one GPU. A kernel with run-time parameters after `output`
    /// is made with [`Stage::halo_map_with`].
    pub fn halo_map<K: HaloKernel<Params = ()> + 'static>(
        name: &str,
        ptx: Ptx<K::Crate>,
        halo: usize,
        reference: impl Fn(&[K::In], &[K::In], &mut [K::Out]) + Send + Sync + 'static,
    ) -> Stage {
        Stage::halo_map_with::<K>(name, ptx, halo, (), move |_: &(), history: &[K::In], input: &[K::In], output: &mut [K::Out]| {
            reference(history, input, output)
        })
    }

    /// [`Stage::halo_map`] for a kernel with parameters after `output`,
    /// whose values `params` the stage owns and passes as
    /// [`Stage::map_with`] does; `reference(params, history, input, output)`.
    pub fn halo_map_with<K: HaloKernel + 'static>(
        name: &str,
        ptx: Ptx<K::Crate>,
        halo: usize,
        params: K::Params,
        reference: impl Fn(&K::Params, &[K::In], &[K::In], &mut [K::Out]) + Send + Sync + 'static,
    ) -> Stage {
        let about = format!("{} -> {}: kernel {}, halo {halo}", ElemType::of::<K::In>(), ElemType::of::<K::Out>(), K::NAME);
        Stage::new(name, about, Kind::Map(Arc::new(KernelHalo::<K> { ptx, halo, params, reference: Box::new(reference) })))
    }
}

/// Threads per block of the shift kernel (a few hundred bytes to move).
const SHIFT_BLOCK: u32 = 256;

/// A halo stage's device history on one GPU: two buffers of `halo`
/// elements, one read by the current chunk, the other written with the next
/// chunk's history (so no kernel reads what it writes).
pub(crate) struct History {
    elem: ElemType,
    halo: usize,
    bufs: [CudaSlice<u8>; 2],
    /// Which buffer holds the history of the next chunk to run.
    flip: Flip,
    shift: Kernel<HaloShiftKernel>,
}

impl History {
    /// Allocates the two buffers on the setup stream (synchronized before
    /// any run) and loads the shift kernel.
    pub(crate) fn new(setup: &mut Setup<'_>, elem: ElemType, halo: usize) -> Result<History> {
        let bytes =
            halo.checked_mul(elem.size()).ok_or_else(|| PipelineError::BadStages(format!("a halo of {halo} elements of {elem} does not fit in memory")))?;
        let shift = setup.module(ptx_kernels::PTX, "the embedded kernels")?.kernel::<HaloShiftKernel>()?;
        shift.check_block(SHIFT_BLOCK)?;
        // At least one byte: an allocation of 0 is refused; views use `bytes`.
        let alloc = || setup.stream.alloc_zeros::<u8>(bytes.max(1)).map_err(cuda("allocating a halo stage's history"));
        Ok(History { elem, halo, bufs: [alloc()?, alloc()?], flip: Flip::default(), shift })
    }

    fn bytes(&self) -> usize {
        self.halo * self.elem.size()
    }

    /// Zeros the history the first chunk reads (the elements before the
    /// stream's start), on the stage's stream: ordered after the previous
    /// run's last use, and captured into CUDA graphs with the rest.
    pub(crate) fn begin_run(&mut self, stream: &CudaStream) -> Result<()> {
        self.flip = Flip::default();
        let bytes = self.bytes();
        let (ptr, _no_tracking) = self.bufs[self.flip.current()].device_ptr_mut(stream);
        // SAFETY: `ptr` addresses this buffer's `bytes` (or more); only this
        // stage's stream touches it.
        unsafe { pc_runtime::copy::memset_d8_async(ptr, 0, bytes, stream) }.map_err(cuda("zeroing a halo stage's history"))
    }

    /// The history of the chunk about to run, as `T` (the stage's input type).
    pub(crate) fn current<T: Element>(&self) -> Result<CudaView<'_, T>> {
        if !self.elem.is::<T>() {
            return Err(PipelineError::BadStages(format!("a halo history of {} viewed as {}", self.elem, ElemType::of::<T>())));
        }
        let view = self.bufs[self.flip.current()].slice(0..self.bytes());
        // SAFETY: the buffer holds `halo` elements of T (checked just above),
        // starts 256-byte aligned (a fresh allocation), and T: Element accepts any bits.
        unsafe { view.transmute::<T>(self.halo) }.ok_or_else(|| PipelineError::BadStages("halo history too small".into()))
    }

    /// After the stage's kernel for `op`'s chunk, on the same stream: the
    /// other buffer gets the last `halo` elements of (history ++ input),
    /// and becomes current.
    pub(crate) fn advance(&mut self, op: &Op<'_>) -> Result<()> {
        let bytes = self.bytes();
        let Some((elem, input)) = op.input.as_ref() else { return Err(PipelineError::BadStages(format!("halo stage {} has no input slot", op.stage))) };
        if *elem != self.elem {
            return Err(PipelineError::BadStages(format!("halo stage {} keeps a history of {} but reads {elem}", op.stage, self.elem)));
        }
        let input = input.slice(0..op.len() * elem.size());
        let [a, b] = &mut self.bufs;
        let (old, next) = if self.flip.shift() == (0, 1) { (&*a, b) } else { (&*b, a) };
        let old = old.slice(0..bytes);
        let mut next = next.slice_mut(0..bytes);
        let grid = bytes.div_ceil(SHIFT_BLOCK as usize).clamp(1, 1024) as u32;
        let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (SHIFT_BLOCK, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: on the op's stream, after the stage's kernel that read
        // `old`; the input slot is ordered by the pipeline's events and the
        // two history buffers are this stage's alone.
        unsafe { HaloShiftKernel::launch(&self.shift, op.stream, cfg, &old, &input, &mut next) }?;
        Ok(())
    }
}

/// Which of a history's two buffers the next chunk reads. The shift after
/// a chunk reads that one and writes the other, which becomes current: the
/// bookkeeping of [`History`] without the GPU, so a CPU test runs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flip {
    current: usize,
}

impl Flip {
    fn current(self) -> usize {
        self.current
    }

    /// The (read, written) buffers of the shift after the current chunk;
    /// the written one is current from now on.
    fn shift(&mut self) -> (usize, usize) {
        let (old, next) = (self.current, 1 - self.current);
        self.current = next;
        (old, next)
    }
}

/// A halo stage from a `#[kernel]` of the halo shape (see [`HaloKernel`]).
pub(crate) struct KernelHalo<K: HaloKernel> {
    pub ptx: Ptx<K::Crate>,
    pub halo: usize,
    pub params: K::Params,
    pub reference: HaloParamsReference<K::Params, K::In, K::Out>,
}

impl<K: HaloKernel + 'static> MapStage for KernelHalo<K> {
    fn input(&self) -> ElemType {
        ElemType::of::<K::In>()
    }
    fn output(&self) -> ElemType {
        ElemType::of::<K::Out>()
    }
    fn halo(&self) -> usize {
        self.halo
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let kernel = setup.module(self.ptx, &format!("the module of {}", K::NAME))?.kernel::<K>()?;
        kernel.check_block(setup.block_size())?;
        let history = History::new(setup, ElemType::of::<K::In>(), self.halo)?;
        // On the setup stream, which the pipeline synchronizes before running.
        let params = self.params.upload(setup.stream)?;
        Ok(Box::new(KernelHaloOnGpu::<K> { kernel, history, params }))
    }
    fn reference(&self, history: &HostChunk, input: &HostChunk) -> Result<HostChunk, String> {
        let wrong = |got: ElemType| format!("{} reads {} but got {got}", K::NAME, ElemType::of::<K::In>());
        let i = input.view::<K::In>().ok_or_else(|| wrong(input.elem()))?;
        let h = history.view::<K::In>().ok_or_else(|| wrong(history.elem()))?;
        if h.len() != self.halo {
            return Err(format!("{} has a halo of {} elements but was given {}", K::NAME, self.halo, h.len()));
        }
        let mut out = HostChunk::zeroed(ElemType::of::<K::Out>(), i.len());
        let o = out.view_mut::<K::Out>().ok_or("output type")?;
        (self.reference)(&self.params, h, i, o);
        Ok(out)
    }
}

struct KernelHaloOnGpu<K: HaloKernel> {
    kernel: Kernel<K>,
    history: History,
    /// The parameters' values on this GPU (device copies are this stage's own).
    params: <K::Params as KernelParams>::OnDevice,
}

// SAFETY: the kernel and the shift run on the op's stream, over the op's
// input and output slots and this stage's own history buffers and
// parameter copies (written once, on the setup stream, before the run).
unsafe impl<K: HaloKernel + 'static> OnGpu for KernelHaloOnGpu<K> {
    fn begin_run(&mut self, stream: &CudaStream) -> Result<()> {
        self.history.begin_run(stream)
    }

    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (cfg, stream) = (op.cfg, op.stream);
        {
            let history = self.history.current::<K::In>()?;
            let (input, mut output) = op.slots::<K::In, K::Out>()?;
            // SAFETY: the pipeline orders this stream against every other
            // access to the two slots; the history is this stage's own.
            unsafe { K::launch_halo(&self.kernel, stream, cfg, &history, &input, &mut output, &self.params) }?;
        }
        self.history.advance(op)
    }
}

#[cfg(test)]
mod tests {
    use super::Flip;

    /// The history's bookkeeping on host buffers, with the shift kernel's
    /// rule (`next` = the last `h` of `old ++ input`): before each chunk,
    /// the buffer read holds exactly the `h` stream elements before it
    /// (zeros before the start), for chunks longer and shorter than `h`.
    #[test]
    fn each_chunk_reads_the_elements_just_before_it() {
        let h = 5;
        let stream: Vec<u32> = (1..=200).collect();
        let mut bufs = [vec![0u32; h], vec![0u32; h]];
        let mut flip = Flip::default();
        let (mut at, mut len) = (0usize, 1usize);
        while at < stream.len() {
            let chunk = &stream[at..(at + len).min(stream.len())];
            let want: Vec<u32> = (0..h).map(|b| (at + b).checked_sub(h).map_or(0, |i| stream[i])).collect();
            assert_eq!(bufs[flip.current()], want, "history before the chunk at {at}");
            let (old, next) = flip.shift();
            assert_ne!(old, next, "a shift reads and writes different buffers");
            let joined: Vec<u32> = bufs[old].iter().chain(chunk).copied().collect();
            bufs[next] = joined[joined.len() - h..].to_vec();
            at += chunk.len();
            len = len % 9 + 1;
        }
    }
}
