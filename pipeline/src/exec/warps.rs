//! The warps grain (`Launch::Warps`, sm_90): the pipeline run with stream
//! launches and its events as always, but with every stage that has a warps
//! form ([`WarpForm`], a [`Stage`] carries it as data) run by it instead.
//! The built-in `consumer`, `reduce` and `fir` have theirs (given them by
//! the catalog): kernels-hopper's `ring_consumer_kernel`,
//! `ring_reduce_kernel` and `ring_fir_kernel`, which hand each chunk over
//! inside the block through the warp-specialized mbarrier ring
//! (`nvptx_std::hopper::ring`): one producer lane bulk-copies tiles (the
//! fir's with its halo) into shared-memory slots, the other warps compute
//! on them.
//!
//! The replacement stages are prepared at the first warps run and swapped
//! with the plain ones around each such run, so the same pipeline (rings,
//! events, verification) serves every grain.
use super::error::{Result, err};
use super::part::Part;
use crate::elem::ElemType;
use crate::halo::History;
use crate::records::Records;
use crate::spec::PipelineSpec;
use crate::stage::{OnGpu, Op, Setup, Stage};
use crate::{Pipeline, PipelineError};
use cudarc::driver::CudaSlice;
use cudarc::driver::{CudaStream, LaunchConfig};
use kernel_math::Reduction;
use kernel_math::ring::{WarpWatch, warp_wait};
use nvptx_std::hopper::ring::{MAX_SLOTS, shared_bytes};
use pc_runtime::gpu::DeviceInfo;
use pc_runtime::launch::Module;
use pc_runtime::launch::{Kernel, Ptx, WarpMapKernel, WarpRingArgs};
use ptx_kernels::hopper::{KernelCrate as HopperCrate, RingFirKernel, RingReduceKernel};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Shared memory an sm_90 SM has for blocks (H100, H200: 228 KiB), and
/// what the driver keeps per block (1 KiB).
const SM90_SHARED_PER_SM: u32 = 228 << 10;
const SHARED_RESERVED_PER_BLOCK: u32 = 1 << 10;

/// How a ring kernel is launched: `slots` shared-memory slots of
/// `slot_bytes` (one tile each), `consumer_warps` warps computing beside
/// the producer warp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingShape {
    pub slots: u32,
    pub slot_bytes: u32,
    pub consumer_warps: u32,
}

impl RingShape {
    /// 8 consumer warps and the largest tile of 64, 32 or 16 KiB whose K
    /// slots fit in 192 KiB of shared memory: on an H200 (2026-11-26, `host
    /// bench`) 64 KiB tiles ran the map at 96.7% of the plain 16-byte
    /// kernel's bandwidth (K = 2), 32 KiB at 94.1% (K = 3), 16 KiB at
    /// 90-91.5%: fewer, larger bulk copies keep more bytes in flight per
    /// block. `slots` clamped to `1..=MAX_SLOTS`.
    pub fn new(slots: usize) -> RingShape {
        let slots = (slots as u32).clamp(1, MAX_SLOTS);
        let slot_bytes = [64u32 << 10, 32 << 10].into_iter().find(|&b| slots * b <= 192 << 10).unwrap_or(16 << 10);
        RingShape { slots, slot_bytes, consumer_warps: 8 }
    }

    /// [`RingShape::new`] for chunks of `chunk_bytes`: the largest tile
    /// that still cuts a chunk into at least 64 tiles (one block each), so
    /// a small chunk still spreads over the GPU. On the H200 (2026-11-26)
    /// 64 KiB tiles made the generate pipeline at 4 MiB chunks faster
    /// (188.5 against 161.9 GB/s with 16 KiB) but at 1 MiB and 64 KiB
    /// chunks slower (53.3 against 80.8, 3.5 against 5.8): too few blocks.
    pub fn for_chunk(slots: usize, chunk_bytes: u64) -> RingShape {
        let big = RingShape::new(slots);
        let slot_bytes =
            [big.slot_bytes, 32 << 10, 16 << 10].into_iter().filter(|&b| b <= big.slot_bytes).find(|&b| chunk_bytes / b as u64 >= 64).unwrap_or(16 << 10);
        RingShape { slot_bytes, ..big }
    }

    /// The fir stage's ring: 3 slots of 16 KiB (each its 64-element halo
    /// and a tile of 4032 f32, 448 groups of 9 outputs), 4 consumer warps.
    /// On the H200 (2026-11-26, `host bench`, 256 MiB, 63 taps) the fastest
    /// of the shapes tried: 543 GB/s moved, 1.32x the plain `fir_kernel`;
    /// 7 consumer warps 1.25x, 14 warps 1.16x, 32 KiB slots at most 0.99x.
    pub const FIR: RingShape = RingShape { slots: 3, slot_bytes: 16 << 10, consumer_warps: 4 };

    /// Threads a block: the producer warp and the consumer warps.
    pub fn block(&self) -> u32 {
        32 * (1 + self.consumer_warps)
    }

    /// Dynamic shared memory a block needs.
    pub fn shared_bytes(&self) -> u32 {
        shared_bytes(self.slots, self.slot_bytes)
    }

    /// Blocks one SM holds, by shared memory and threads.
    pub fn blocks_per_sm(&self, max_threads_per_sm: u32) -> u32 {
        let by_shared = SM90_SHARED_PER_SM / (self.shared_bytes() + SHARED_RESERVED_PER_BLOCK);
        by_shared.min(max_threads_per_sm / self.block()).max(1)
    }

    /// The launch for `bytes` of input: one block per tile, at most
    /// `share` (0 < share <= 1) of what the GPU holds resident at once
    /// (the pipeline leaves the rest to its other stages).
    pub fn config(&self, info: &DeviceInfo, bytes: u64, share: f64) -> LaunchConfig {
        let resident = (info.sm_count * self.blocks_per_sm(info.max_threads_per_sm)) as f64;
        let cap = ((resident * share) as u64).max(1);
        let tiles = bytes.div_ceil(self.slot_bytes as u64).max(1);
        LaunchConfig { grid_dim: (tiles.min(cap) as u32, 1, 1), block_dim: (self.block(), 1, 1), shared_mem_bytes: self.shared_bytes() }
    }
}

/// The sync checker's knobs of the ring kernels, shared by a part's ring
/// stages: fault bits (`nvptx_std::hopper::ring::fault`) and the producer
/// lane's spin before each copy ([`Pipeline::set_ring_knobs`]), and the
/// ring waits' watchdog, for a form to pass to its kernels.
#[derive(Debug, Default)]
pub struct RingKnobs {
    faults: AtomicU32,
    spin_ns: AtomicU64,
    /// The ring waits' watchdog (`--watchdog-ms`; 0: the kernels' 10 s).
    timeout_ns: AtomicU64,
}

impl RingKnobs {
    /// The ring waits' watchdog in nanoseconds (`--watchdog-ms`).
    pub fn timeout_ns(&self) -> u64 {
        self.timeout_ns.load(Ordering::Relaxed)
    }

    /// The fault bits (0: the protocol). Only a launcher whose contract
    /// accepts the race takes them (`launch_with_faults`, `unsafe`), and
    /// the caller of [`Pipeline::set_ring_knobs`] accepted it.
    pub fn faults(&self) -> u32 {
        self.faults.load(Ordering::Relaxed)
    }

    /// The producer lane's spin before each copy, in nanoseconds.
    pub fn spin_ns(&self) -> u64 {
        self.spin_ns.load(Ordering::Relaxed)
    }
}

/// A part's ring stages: `alt[s]` is stage `s`'s replacement (`None`: kept),
/// swapped with `Part::stages` around each warps run.
pub(crate) struct WarpStages {
    alt: Vec<Option<Box<dyn OnGpu>>>,
    knobs: Arc<RingKnobs>,
    /// Each ring stage's watchdog record (`None`: a plain stage).
    watches: Vec<Option<Arc<Watch>>>,
    swapped: bool,
}

impl super::part::GrainState for WarpStages {
    /// Swaps the ring stages in (`on`) or back out; before a warps run
    /// (nothing runs), no watchdog has fired.
    fn select(&mut self, stages: super::part::PartStages<'_>, on: bool) {
        if self.swapped != on {
            for (stage, alt) in stages.0.iter_mut().zip(self.alt.iter_mut()) {
                if let Some(alt) = alt {
                    std::mem::swap(stage, alt);
                }
            }
            self.swapped = on;
        }
        if on {
            self.watches.iter().flatten().for_each(|w| w.clear());
        }
    }
}

/// A ring stage's watchdog record ([`WarpWatch`]): pinned host memory the
/// GPU maps, so that the report of a wait that timed out can be read after
/// the trap left the context unusable. A stage passes its device address
/// to its ring kernels and keeps the `Arc` as long as it launches them.
pub struct Watch {
    host: *mut WarpWatch,
    device: u64,
}

// SAFETY: the pointer is to host memory this value owns; it is only read
// and written with volatile accesses, from one thread at a time (`&mut`
// for writes; reads may race only the GPU's own writes).
unsafe impl Send for Watch {}
// SAFETY: as Send.
unsafe impl Sync for Watch {}

impl Watch {
    /// The record's device address (a ring kernel's `watch` parameter).
    pub fn device(&self) -> u64 {
        self.device
    }

    fn new(gpu: &pc_runtime::gpu::Gpu) -> Result<Watch> {
        use pc_runtime::pinned::{self, HostAlloc};
        // SAFETY: only made current.
        unsafe { gpu.context() }.bind_to_thread().map_err(err("binding the GPU"))?;
        let bytes = std::mem::size_of::<WarpWatch>();
        // A fresh allocation of `bytes`, mapped for the device.
        let host = pinned::alloc(bytes, HostAlloc::DeviceMapped).map_err(err("allocating a ring's watchdog record"))?.cast::<WarpWatch>();
        // Owned before the mapping is asked for, so a failure frees it.
        let mut w = Watch { host, device: 0 };
        w.device = pinned::device_address(host.cast()).map_err(err("mapping a ring's watchdog record"))?;
        w.clear();
        Ok(w)
    }

    /// Nothing fired. Called before a run, when no ring kernel runs.
    fn clear(&self) {
        // SAFETY: this value's host memory, holding a WarpWatch (any bits valid).
        unsafe { std::ptr::write_volatile(self.host, WarpWatch::default()) }
    }

    /// The report, if a wait fired (read after the run's streams stopped).
    fn fired(&self) -> Option<WarpWatch> {
        // SAFETY: as `clear`.
        let w = unsafe { std::ptr::read_volatile(self.host) };
        (w.fired != 0).then_some(w)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: allocated by `pinned::alloc`, freed once; the stages that
        // pass its address have synchronized (Part's drop) or their context
        // failed, when the free may fail, which is ignored.
        let _ = unsafe { pc_runtime::pinned::free(self.host.cast()) };
    }
}

/// What a stage's warps form is given to prepare itself: the Hopper module,
/// the GPU, the ring shape the grain chose for the spec, the sync checker's
/// knobs and the stage's watchdog record.
pub struct WarpCtx<'a> {
    module: &'a Module<HopperCrate>,
    info: &'a DeviceInfo,
    shape: RingShape,
    knobs: &'a Arc<RingKnobs>,
    /// The stage's watchdog record.
    watch: &'a Arc<Watch>,
}

impl WarpCtx<'_> {
    /// kernels-hopper, loaded on the part's GPU.
    pub fn module(&self) -> &Module<HopperCrate> {
        self.module
    }

    /// The part's GPU.
    pub fn info(&self) -> &DeviceInfo {
        self.info
    }

    /// The ring shape for this spec's K and chunk ([`RingShape::for_chunk`]).
    pub fn shape(&self) -> RingShape {
        self.shape
    }

    /// The ring kernels' knobs, shared by the part's ring stages.
    pub fn knobs(&self) -> &Arc<RingKnobs> {
        self.knobs
    }

    /// The stage's watchdog record.
    pub fn watch(&self) -> &Arc<Watch> {
        self.watch
    }
}

/// A stage's form in the warps grain: what runs the stage in place of its
/// stream kernel. What it prepares is an [`OnGpu`] (an `unsafe` trait: all
/// work on [`Op::stream`], only the op's slots and its own buffers).
pub trait WarpForm: Send + Sync {
    fn prepare(&self, setup: &mut Setup<'_>, ctx: &WarpCtx<'_>) -> Result<Box<dyn OnGpu>>;
}

impl Stage {
    /// This stage with `form` as its warps-grain form.
    pub fn with_warp_form(self, form: Arc<dyn WarpForm>) -> Stage {
        self.with_form(form)
    }

    /// Its warps-grain form, if it has one.
    pub fn warp_form(&self) -> Option<&Arc<dyn WarpForm>> {
        self.form::<Arc<dyn WarpForm>>()
    }

    /// This stage with a warps form from kernel `K` in `ptx`: a kernel of
    /// the warp-ring map shape ([`WarpMapKernel`], whose body is, e.g.,
    /// `nvptx_std::hopper::ring::map_stage`), launched on the ring's shape
    /// for the spec's K and chunk ([`RingShape::for_chunk`]). Its
    /// per-element work must equal the stage's own kernel's (the CPU
    /// reference checks both). [`Pipeline::set_ring_knobs`] reaches it.
    ///
    /// ```no_run
    /// use pc_pipeline::Stage;
    /// let square = Stage::map::<ptx_kernels::SquareKernel>("square", ptx_kernels::PTX, |i: &[f32], o: &mut [f32]| {
    ///     o.iter_mut().zip(i).for_each(|(o, &x)| *o = kernel_math::square(x))
    /// })
    /// .with_warps_map::<ptx_kernels::hopper::RingSquareKernel>(ptx_kernels::hopper::PTX);
    /// ```
    pub fn with_warps_map<K: WarpMapKernel + 'static>(self, ptx: Ptx<K::Crate>) -> Stage {
        self.with_warp_form(Arc::new(WarpMap::<K> { ptx }))
    }
}

/// A map stage's warps form from a [`WarpMapKernel`].
struct WarpMap<K: WarpMapKernel> {
    ptx: Ptx<K::Crate>,
}

impl<K: WarpMapKernel + 'static> WarpForm for WarpMap<K> {
    fn prepare(&self, setup: &mut Setup<'_>, ctx: &WarpCtx<'_>) -> Result<Box<dyn OnGpu>> {
        let shape = ctx.shape;
        let kernel = setup.module(self.ptx, &format!("the module of {}", K::NAME))?.kernel::<K>()?;
        kernel.check_block(shape.block())?;
        kernel.allow_dynamic_shared_bytes(shape.shared_bytes())?;
        Ok(Box::new(WarpMapOnGpu { kernel, gpu: ctx.info.clone(), shape, knobs: ctx.knobs.clone(), watch: ctx.watch.clone() }))
    }
}

struct WarpMapOnGpu<K> {
    kernel: Kernel<K>,
    gpu: DeviceInfo,
    shape: RingShape,
    knobs: Arc<RingKnobs>,
    watch: Arc<Watch>,
}

// SAFETY: one launch on the op's stream, reading the op's input slot and
// writing its output slot (the kernel's own shared memory and this stage's
// watchdog record aside).
unsafe impl<K: WarpMapKernel + 'static> OnGpu for WarpMapOnGpu<K> {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let stream = op.stream;
        let len = op.len();
        let (input, mut output) = op.slots::<K::In, K::Out>()?;
        let cfg = self.shape.config(&self.gpu, (len * std::mem::size_of::<K::In>()) as u64, 0.5);
        let RingShape { slots, slot_bytes, .. } = self.shape;
        let ring = WarpRingArgs {
            slots,
            slot_bytes,
            timeout_ns: self.knobs.timeout_ns(),
            watch: self.watch.device(),
            spin: self.knobs.spin_ns.load(Ordering::Relaxed),
            faults: self.knobs.faults.load(Ordering::Relaxed),
        };
        // SAFETY: ordered by the pipeline's events; the block and dynamic
        // shared memory are the shape's (prepared above), the watch record
        // is this stage's and outlives the run; fault bits only from
        // `Pipeline::set_ring_knobs`, whose caller accepted the race.
        unsafe { K::launch_warp_map(&self.kernel, stream, cfg, &input, &mut output, ring) }?;
        Ok(())
    }
}

/// Refuses, in one line, a pipeline with nothing for the warps grain to replace.
pub fn check_warps_spec(spec: &PipelineSpec) -> Result<()> {
    if spec.serial {
        return Err(PipelineError::GrainUnsupported { grain: "warps", why: "drop the serial baseline".into() });
    }
    if !spec.stages.iter().any(|s| s.warp_form().is_some()) {
        let names: Vec<&str> = spec.stages.iter().map(|s| s.name()).collect();
        return Err(PipelineError::GrainUnsupported {
            grain: "warps",
            why: format!(
                "it runs the stages with a warps form (Stage::with_warps_map for a map, Stage::with_warp_form for any stage; the built-in consumer, reduce and fir have one) on the warp-specialized ring, and {} has none",
                names.join(",")
            ),
        });
    }
    Ok(())
}

/// The warps grain ([`crate::Launch::Warps`]).
pub(crate) struct WarpsGrain;

impl super::Grain for WarpsGrain {
    fn name(&self) -> &'static str {
        "warps"
    }

    fn check(&self, spec: &PipelineSpec) -> Result<()> {
        check_warps_spec(spec)
    }

    fn prepare(&self, part: &mut Part<'_>, spec: &PipelineSpec) -> Result<()> {
        part.prepare_warps(spec)
    }

    /// The ring stages run in place of the plain ones.
    fn stages(&self) -> Option<std::any::TypeId> {
        Some(std::any::TypeId::of::<WarpStages>())
    }

    fn enqueue_run(&self, part: &mut Part<'_>, run: &mut super::RunCtx<'_>) -> Result<()> {
        part.enqueue(run.spec, run.part, run.host, run.spans.take())
    }

    fn event_spans(&self) -> bool {
        true
    }

    fn failure(&self, part: &Part<'_>, spec: &PipelineSpec) -> Option<PipelineError> {
        part.fired_watch(&part.names, spec.watchdog_ms)
    }
}

impl Part<'_> {
    /// Prepares the ring stages (once; refuses GPUs older than sm_90).
    pub(crate) fn prepare_warps(&mut self, spec: &PipelineSpec) -> Result<()> {
        check_warps_spec(spec)?;
        if self.state::<WarpStages>().is_some() {
            return Ok(());
        }
        let chunk_bytes = spec.chunk_elements.min(spec.total_elements) * 4;
        let shape = RingShape::for_chunk(spec.slots, chunk_bytes);
        let knobs = Arc::new(RingKnobs::default());
        knobs.timeout_ns.store(spec.watchdog_ms.saturating_mul(1_000_000), Ordering::Relaxed);
        let s0 = self.streams[0].clone();
        let mut alt: Vec<Option<Box<dyn OnGpu>>> = Vec::new();
        let mut watches = Vec::new();
        let mut modules = Vec::new();
        // Through the setup's modules, so forms that load kernels-hopper
        // themselves (`Stage::with_warps_map`) share this one.
        let module =
            super::load_hopper(&mut Setup { gpu: self.gpu, block_size: spec.block_size, local_chunks: self.chunks.len(), stream: &s0, modules: &mut modules })?;
        for st in &spec.stages {
            let Some(form) = st.warp_form() else {
                alt.push(None);
                watches.push(None);
                continue;
            };
            let watch = Arc::new(Watch::new(self.gpu)?);
            let mut setup = Setup { gpu: self.gpu, block_size: spec.block_size, local_chunks: self.chunks.len(), stream: &s0, modules: &mut modules };
            let ctx = WarpCtx { module: &module, info: self.gpu.info(), shape, knobs: &knobs, watch: &watch };
            alt.push(Some(form.prepare(&mut setup, &ctx)?));
            watches.push(Some(watch));
        }
        s0.synchronize().map_err(err("preparing the warps grain"))?;
        self.set_state(WarpStages { alt, knobs, watches, swapped: false });
        Ok(())
    }

    /// After a warps run failed and its streams stopped: the first ring
    /// stage whose watchdog fired, as the error naming it.
    pub(crate) fn fired_watch(&self, names: &[String], timeout_ms: u64) -> Option<PipelineError> {
        let w = self.state::<WarpStages>()?;
        w.watches.iter().zip(names).find_map(|(watch, stage)| {
            let r = watch.as_ref()?.fired()?;
            let tile = if r.tile_start == u64::MAX { "its last tiles".to_string() } else { format!("the tile from element {} of the chunk", r.tile_start) };
            Some(PipelineError::WarpRingStuck {
                stage: stage.clone(),
                what: warp_wait::describe(r.what),
                slot: r.slot,
                parity: r.parity,
                block: r.block,
                tile,
                ms: r.waited_ns / 1_000_000,
                timeout_ms,
            })
        })
    }
}

impl Pipeline<'_> {
    /// Sets the ring kernels' fault bits (`nvptx_std::hopper::ring::fault`;
    /// 0 restores the protocol) and the producer lane's spin before each
    /// copy, for the warps grain.
    ///
    /// # Safety
    /// A fault bit breaks the protocol on purpose: with `SKIP_FULL_WAIT`
    /// consumer threads read shared-memory slots while bulk copies may
    /// still write them, a data race (wrong `f32` values, any bits valid,
    /// which verification reports). Set it only to show that race, and
    /// judge the results only through [`Pipeline::verify`].
    /// `STALL_PRODUCER` races nothing: the run ends in the watchdog's trap
    /// ([`PipelineError::WarpRingStuck`]), after which the GPU's context
    /// stays unusable for the rest of the process.
    pub unsafe fn set_ring_knobs(&mut self, faults: u32, producer_spin_ns: u64) -> Result<()> {
        self.settle();
        for p in &mut self.parts {
            p.prepare_warps(&self.spec)?;
            if let Some(w) = p.state::<WarpStages>() {
                w.knobs.faults.store(faults, Ordering::Relaxed);
                w.knobs.spin_ns.store(producer_spin_ns, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// The built-in `reduce`'s warps form: `ring_reduce_kernel`, one record a chunk.
pub(crate) struct ReduceRing;

impl WarpForm for ReduceRing {
    fn prepare(&self, setup: &mut Setup<'_>, ctx: &WarpCtx<'_>) -> Result<Box<dyn OnGpu>> {
        let shape = ctx.shape;
        let kernel = ctx.module.kernel::<RingReduceKernel>()?;
        kernel.check_block(shape.block())?;
        kernel.allow_dynamic_shared_bytes(shape.shared_bytes())?;
        let records = Records::new(setup)?;
        Ok(Box::new(RingReduceOnGpu { kernel, gpu: ctx.info.clone(), shape, knobs: ctx.knobs.clone(), records, watch: ctx.watch.clone() }))
    }
}

/// The launch for a chunk of `len` f32: at most half of what the GPU
/// holds, as `Gpu::launch_config` leaves the rest to the other stages.
fn chunk_config(info: &DeviceInfo, shape: &RingShape, len: usize) -> LaunchConfig {
    shape.config(info, len as u64 * 4, 0.5)
}

struct RingReduceOnGpu {
    kernel: Kernel<RingReduceKernel>,
    gpu: DeviceInfo,
    shape: RingShape,
    knobs: Arc<RingKnobs>,
    records: Records,
    watch: Arc<Watch>,
}

// SAFETY: the reset, each launch and the read-back touch only this stage's
// records and the op's input slot, on the stage's stream (the read-back
// runs after every stream synchronized).
unsafe impl OnGpu for RingReduceOnGpu {
    fn begin_run(&mut self, stream: &CudaStream) -> Result<()> {
        self.records.reset(stream)
    }

    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (stream, lc, len) = (op.stream, op.local_chunk, op.len());
        let input = op.input::<f32>()?;
        let record = self.records.atomic(lc, 1)?;
        let cfg = chunk_config(&self.gpu, &self.shape, len);
        let (faults, spin) = (self.knobs.faults.load(Ordering::Relaxed), self.knobs.spin_ns.load(Ordering::Relaxed));
        let RingShape { slots, slot_bytes, .. } = self.shape;
        // SAFETY: as WarpMapOnGpu's; the record is this chunk's alone.
        unsafe {
            RingReduceKernel::launch_with_faults(
                &self.kernel,
                stream,
                cfg,
                false,
                &input,
                &record,
                slots,
                slot_bytes,
                self.knobs.timeout_ns(),
                self.watch.device(),
                spin,
                faults,
            )
        }?;
        Ok(())
    }

    fn records(&mut self, stream: &Arc<CudaStream>) -> Result<Vec<Reduction>> {
        self.records.read(stream)
    }
}

/// The `fir` stage's warps form: `ring_fir_kernel` with the stage's taps.
pub(crate) struct FirRing {
    pub taps: Arc<[f32]>,
}

impl WarpForm for FirRing {
    fn prepare(&self, setup: &mut Setup<'_>, ctx: &WarpCtx<'_>) -> Result<Box<dyn OnGpu>> {
        let shape = RingShape::FIR;
        // A slot holds the halo and a tile at least as long (Ring::init_with_halo).
        let most = shape.slot_bytes as usize / 4 / 2;
        if self.taps.len() > most {
            return Err(PipelineError::GrainUnsupported {
                grain: "warps",
                why: format!("its fir stage has {} taps and the ring's slots fit at most {most}; run it with another grain", self.taps.len()),
            });
        }
        let kernel = ctx.module.kernel::<RingFirKernel>()?;
        kernel.check_block(shape.block())?;
        kernel.allow_dynamic_shared_bytes(shape.shared_bytes())?;
        let taps = setup.upload(&self.taps)?;
        // The halo as the ring keeps it (whole 16-byte units): then the
        // first tile of a chunk takes it into shared memory too.
        let history = History::new(setup, ElemType::of::<f32>(), (self.taps.len() - 1).div_ceil(4) * 4)?;
        Ok(Box::new(RingFirOnGpu { kernel, gpu: ctx.info.clone(), shape, knobs: ctx.knobs.clone(), taps, history, watch: ctx.watch.clone() }))
    }
}

struct RingFirOnGpu {
    kernel: Kernel<RingFirKernel>,
    gpu: DeviceInfo,
    shape: RingShape,
    knobs: Arc<RingKnobs>,
    taps: CudaSlice<f32>,
    history: History,
    watch: Arc<Watch>,
}

// SAFETY: the kernel and the history's shift run on the op's stream, over
// the op's input and output slots and this stage's own taps and history.
unsafe impl OnGpu for RingFirOnGpu {
    fn begin_run(&mut self, stream: &CudaStream) -> Result<()> {
        self.history.begin_run(stream)
    }

    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (stream, len) = (op.stream, op.len());
        // All of the GPU, unlike the map's half: the fir computes far more
        // than the stages around it. On an H100 (2026-11-26, producer ->
        // fir -> reduce, 1 GiB) 16 MiB chunks ran at 164.7 GB/s against
        // 118.0 with half (streams grain: 150.1), 64 MiB at 174.4 against 131.4.
        let cfg = self.shape.config(&self.gpu, len as u64 * 4, 1.0);
        let (faults, spin) = (self.knobs.faults.load(Ordering::Relaxed), self.knobs.spin_ns.load(Ordering::Relaxed));
        let RingShape { slots, slot_bytes, .. } = self.shape;
        {
            let history = self.history.current::<f32>()?;
            let (input, mut output) = op.slots::<f32, f32>()?;
            // SAFETY: ordered by the pipeline's events; the history and taps
            // are this stage's; fault bits only from `Pipeline::set_ring_knobs`.
            unsafe {
                RingFirKernel::launch_with_faults(
                    &self.kernel,
                    stream,
                    cfg,
                    false,
                    &history,
                    &input,
                    &mut output,
                    &self.taps,
                    slots,
                    slot_bytes,
                    self.knobs.timeout_ns(),
                    self.watch.device(),
                    spin,
                    faults,
                )
            }?;
        }
        self.history.advance(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Workload, builtin};

    #[test]
    fn the_warps_grain_needs_a_consumer_or_reduce_stage() {
        assert!(check_warps_spec(&PipelineSpec::new(Workload::Generate)).is_ok());
        assert!(check_warps_spec(&PipelineSpec::new(Workload::Stream)).is_ok());
        let e = check_warps_spec(&PipelineSpec::new(Workload::Stream).stages(vec![builtin::h2d(), builtin::d2h()])).unwrap_err().to_string();
        assert!(e.contains("the warps grain cannot run this pipeline") && e.contains("h2d,d2h") && !e.contains('\n'), "{e}");
        // By its form, not its name: a stage of yours named consumer has
        // none until given one.
        let mine = || Stage::map::<ptx_kernels::ConsumerKernel>("consumer", ptx_kernels::PTX, |i: &[f32], o: &mut [f32]| o.copy_from_slice(i));
        let spec = |c: Stage| PipelineSpec::new(Workload::Stream).stages(vec![builtin::h2d(), c, builtin::d2h()]);
        assert!(check_warps_spec(&spec(mine())).is_err());
        assert!(check_warps_spec(&spec(mine().with_warps_map::<ptx_kernels::hopper::RingConsumerKernel>(ptx_kernels::hopper::PTX))).is_ok());
    }

    #[test]
    fn ring_shapes_fit_an_sm90_sm() {
        for k in 0..=12 {
            let s = RingShape::new(k);
            assert!((1..=MAX_SLOTS).contains(&s.slots));
            assert!(s.shared_bytes() <= 227 << 10, "{s:?}");
            assert!(s.blocks_per_sm(2048) >= 1);
            assert_eq!(s.block() % 32, 0);
        }
        assert_eq!((RingShape::new(2).slot_bytes, RingShape::new(4).slot_bytes, RingShape::new(8).slot_bytes), (64 << 10, 32 << 10, 16 << 10));
        assert_eq!(RingShape::new(8).blocks_per_sm(2048), 1);
        let tile = |k, bytes| RingShape::for_chunk(k, bytes).slot_bytes;
        assert_eq!((tile(3, 4 << 20), tile(3, 1 << 20), tile(3, 64 << 10), tile(4, 4 << 20)), (64 << 10, 16 << 10, 16 << 10, 32 << 10));
    }
}
