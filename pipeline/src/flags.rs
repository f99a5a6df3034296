//! The flags grain's stage forms: a stage that can run as one kernel for
//! the whole run, beside the other stages' kernels, handing ring slots over
//! through counters in device memory (`nvptx_std::ring`) instead of events.
//!
//! A stage has a flag form when its kernel crate has one: the built-in
//! `producer`, `consumer` and `reduce` do. A map stage of yours gets one
//! from a `#[kernel]` of the flag-map shape (see
//! [`pc_runtime::launch::FlagMapKernel`]) with [`Stage::with_flags_map`]:
//!
//! ```no_run
//! use pc_pipeline::{Stage, PipelineSpec, Workload, Launch, Pipeline, HostInput};
//! let consumer = pc_pipeline::builtin::consumer(); // has its flag form already
//! let spec = PipelineSpec::new(Workload::Generate)
//!     .stages(vec![pc_pipeline::builtin::producer(), consumer, pc_pipeline::builtin::reduce()])
//!     .slots(16);
//! let gpu = pc_runtime::gpu::Gpu::open(0)?;
//! let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated)?;
//! let report = p.run(Launch::Flags, 1, false)?;
//! assert!(p.verify(&report).passed());
//! # Ok::<(), pc_pipeline::PipelineError>(())
//! ```
use crate::PipelineError;
use crate::elem::ElemType;
use crate::stage::{Setup, Stage};
use cudarc::driver::{CudaStream, CudaView, CudaViewMut, LaunchConfig};
use kernel_math::Reduction;
use kernel_math::ring::{RingControl, RingFlags, RingPlan};
use pc_runtime::launch::{FlagMapArgs, FlagMapKernel, Kernel, Ptx};
use std::sync::Arc;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// A stage's flag form, before it is prepared on a GPU.
pub trait FlagForm: Send + Sync + 'static {
    /// The element type it reads and writes (checked against the stage's).
    fn ports(&self) -> (Option<ElemType>, Option<ElemType>);
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn FlagOnGpu>>;
}

/// A flag form prepared on one GPU.
///
/// # Safety
/// [`FlagOnGpu::launch`] launches one kernel on [`FlagLaunch::stream`] that
/// touches only the launch's ring slots (through `nvptx_std::ring`'s
/// protocol with the launch's flags), the plan and control records, and the
/// stage's own buffers.
pub unsafe trait FlagOnGpu: Send {
    /// Launches the stage's kernel for the whole run.
    fn launch(&mut self, l: &mut FlagLaunch<'_>) -> Result<()>;
    /// Blocks of `block` threads one multiprocessor holds at once.
    fn max_active_blocks_per_sm(&self, block: u32) -> Result<u32>;
    /// Per-run setup on the stage's stream, before the launch.
    fn begin_run(&mut self, _stream: &CudaStream) -> Result<()> {
        Ok(())
    }
    /// Per-chunk records (sinks), after every stream synchronized.
    fn records(&mut self, _stream: &Arc<CudaStream>) -> Result<Vec<Reduction>> {
        Ok(Vec::new())
    }
    /// The kernel's name (errors).
    fn kernel_name(&self) -> &'static str;
}

/// One stage's launch in the flags grain.
pub struct FlagLaunch<'a> {
    pub(crate) stream: &'a CudaStream,
    pub(crate) cfg: LaunchConfig,
    pub(crate) plan: CudaView<'a, RingPlan>,
    pub(crate) ctl: CudaView<'a, RingControl>,
    /// The ring read (not for sources): its slots and flags.
    pub(crate) input: Option<(ElemType, CudaViewMut<'a, u8>, CudaView<'a, RingFlags>)>,
    /// The ring written (not for sinks).
    pub(crate) output: Option<(ElemType, CudaViewMut<'a, u8>, CudaView<'a, RingFlags>)>,
    pub(crate) stamps: CudaView<'a, std::sync::atomic::AtomicU64>,
    pub(crate) stage: u32,
    pub(crate) spin: u64,
    pub(crate) faults: u32,
    pub(crate) seed: u32,
    pub(crate) stage_name: &'a str,
}

impl<'a> FlagLaunch<'a> {
    pub fn stream(&self) -> &CudaStream {
        self.stream
    }
    pub fn launch_config(&self) -> LaunchConfig {
        self.cfg
    }
    pub fn plan(&self) -> &CudaView<'a, RingPlan> {
        &self.plan
    }
    pub fn control(&self) -> &CudaView<'a, RingControl> {
        &self.ctl
    }
    /// Where the kernel records per-chunk timestamps (see
    /// `nvptx_std::ring::StageCtx::with_stamps`).
    pub fn stamps(&self) -> &CudaView<'a, std::sync::atomic::AtomicU64> {
        &self.stamps
    }
    /// The stage's index in the pipeline.
    pub fn stage(&self) -> u32 {
        self.stage
    }
    /// Nanoseconds of delay per chunk (the sync checker's slowed stage).
    pub fn spin(&self) -> u64 {
        self.spin
    }
    /// Fault bits (0 but in the sync checker's demonstrations).
    pub fn faults(&self) -> u32 {
        self.faults
    }
    pub fn seed(&self) -> u32 {
        self.seed
    }

    /// The ring read, as `T`, and its flags.
    pub fn input<T: kernel_math::Element>(&mut self) -> Result<(CudaViewMut<'_, T>, &CudaView<'a, RingFlags>)> {
        ring_as(self.stage_name, "input", self.input.as_mut())
    }
    /// The ring written, as `T`, and its flags.
    pub fn output<T: kernel_math::Element>(&mut self) -> Result<(CudaViewMut<'_, T>, &CudaView<'a, RingFlags>)> {
        ring_as(self.stage_name, "output", self.output.as_mut())
    }
}

#[allow(clippy::type_complexity)]
pub(crate) fn ring_as<'s, 'a, T: kernel_math::Element>(
    stage: &str,
    which: &str,
    ring: Option<&'s mut (ElemType, CudaViewMut<'a, u8>, CudaView<'a, RingFlags>)>,
) -> Result<(CudaViewMut<'s, T>, &'s CudaView<'a, RingFlags>)> {
    let bad = |what: String| PipelineError::BadStages(format!("stage {stage}: {what}"));
    let (elem, slots, flags) = ring.ok_or_else(|| bad(format!("no {which} ring")))?;
    if !elem.is::<T>() {
        return Err(bad(format!("its flag form uses {} but its {which} ring holds {elem}", ElemType::of::<T>())));
    }
    let size = std::mem::size_of::<T>();
    if size == 0 || slots.len() % size != 0 {
        return Err(bad(format!("{which} ring of {} bytes is not whole elements of {size} bytes", slots.len())));
    }
    let n = slots.len() / size;
    // SAFETY: the ring's bytes hold `n` whole T (checked), 256-byte aligned.
    let typed = unsafe { slots.transmute_mut::<T>(n) }.ok_or_else(|| bad(format!("{which} ring too small")))?;
    Ok((typed, flags))
}

impl Stage {
    /// This stage with `form` as its flags-grain form.
    pub fn with_flag_form(self, form: Arc<dyn FlagForm>) -> Stage {
        self.with_form(form)
    }

    /// Its flags-grain form, if it has one.
    pub fn flag_form(&self) -> Option<&Arc<dyn FlagForm>> {
        self.form::<Arc<dyn FlagForm>>()
    }

    /// This stage with a flag form from kernel `K` (a `#[kernel]` of the
    /// flag-map shape, see [`FlagMapKernel`]) in `ptx`: the stage can then
    /// run in the flags grain. Its per-element work must equal the stage's
    /// own kernel's (the CPU reference checks both).
    pub fn with_flags_map<K: FlagMapKernel + 'static>(self, ptx: Ptx<K::Crate>) -> Stage {
        self.with_flag_form(Arc::new(FlagMap::<K> { ptx }))
    }
}

struct FlagMap<K: FlagMapKernel> {
    ptx: Ptx<K::Crate>,
}

impl<K: FlagMapKernel + 'static> FlagForm for FlagMap<K> {
    fn ports(&self) -> (Option<ElemType>, Option<ElemType>) {
        (Some(ElemType::of::<K::In>()), Some(ElemType::of::<K::Out>()))
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn FlagOnGpu>> {
        let kernel = setup.module(self.ptx, &format!("the module of {}", K::NAME))?.kernel::<K>()?;
        kernel.check_block(setup.block_size())?;
        Ok(Box::new(FlagMapOnGpu { kernel }))
    }
}

struct FlagMapOnGpu<K> {
    kernel: Kernel<K>,
}

// SAFETY: one launch on the launch's stream over its two rings and records.
unsafe impl<K: FlagMapKernel + 'static> FlagOnGpu for FlagMapOnGpu<K> {
    fn launch(&mut self, l: &mut FlagLaunch<'_>) -> Result<()> {
        let FlagLaunch { stream, cfg, plan, ctl, input, output, stamps, stage, spin, faults, stage_name, .. } = l;
        let (mut input, in_flags) = ring_as::<K::In>(stage_name, "input", input.as_mut())?;
        let (mut output, out_flags) = ring_as::<K::Out>(stage_name, "output", output.as_mut())?;
        let args = FlagMapArgs { plan, ctl, input: &mut input, in_flags, output: &mut output, out_flags, stamps, stage: *stage, spin: *spin, faults: *faults };
        // SAFETY: the flags executor's launch: one flag pipeline, flags zeroed, co-resident.
        unsafe { K::launch_flag_map(&self.kernel, stream, *cfg, args) }?;
        Ok(())
    }
    fn max_active_blocks_per_sm(&self, block: u32) -> Result<u32> {
        Ok(self.kernel.max_active_blocks_per_sm(block)?)
    }
    fn kernel_name(&self) -> &'static str {
        K::NAME
    }
}

// The stamps are timeline data (the executor's report holds them).
pub use crate::timeline::FlagStamps;

/// p-th percentile (0..=100) of `v` (sorted in place); 0 for none.
pub fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}
