//! The built-in stages, made the way a user makes theirs ([`Stage::map`]
//! or the stage traits), and the registry that names stages for
//! `--stages` lists.
use crate::PipelineError;
use crate::elem::{ElemType, HostChunk};
use crate::flags::{FlagForm, FlagLaunch, FlagOnGpu};
use crate::records::Records;
use crate::spec::Workload;
use crate::stage::{ChunkInfo, Kind, OnGpu, Op, Port, Setup, Sink, SinkStage, SourceStage, Stage};
use cudarc::driver::CudaStream;
use kernel_math::{Reduction, consume, produce};
use pc_runtime::launch::{Kernel, Ptx};
use ptx_kernels::{
    AbsI32Kernel, ConsumerFlagsKernel, ConsumerVecKernel, DoubleF64Kernel, KernelCrate, MixU32Kernel, MovingAverageKernel, PTX, ProducerFlagsKernel,
    ProducerVecKernel, ReduceFlagsKernel, ReduceKernel, StereoToMonoKernel, U8ToF32Kernel,
};

/// The built-in kernels' PTX: the embedded build of kernels-gpu, or another
/// build of it (`--ptx`).
type Kernels = Ptx<KernelCrate>;
use ptx_kernels::hopper;
use std::sync::Arc;

// The copy stages are the model's (the executor inserts peer copies); the
// catalog lists them with the others.
pub use crate::copy::{d2h, h2d, is_peer_copy, peer_copy};

type Result<T, E = PipelineError> = std::result::Result<T, E>;

const ORIGIN: &str = "the kernels' PTX";

/// `producer`: `produce(i, seed)` for the chunk's indices (f32).
pub fn producer() -> Stage {
    producer_in(PTX)
}

/// `consumer`: doubles each f32 (the seed's consumer).
pub fn consumer() -> Stage {
    consumer_in(PTX)
}

/// `moving-average`: causal 3-point moving average of f32, `y[i] =
/// moving_average3(x[i-2], x[i-1], x[i])` over the whole stream (a halo
/// stage; elements before the stream's start are 0).
pub fn moving_average() -> Stage {
    moving_average_in(PTX)
}

/// `fir`: a causal FIR filter of f32 with these taps, `y[i] = sum_j
/// taps[j] * x[i-j]` over the whole stream (a halo stage of `taps.len() -
/// 1` elements). Refuses no taps, more than [`crate::fir::MAX_TAPS`], and
/// taps that are not finite.
pub fn fir(taps: Vec<f32>) -> Result<Stage> {
    crate::fir::stage_in(PTX, taps)
}

/// [`fir`] with its kernel from another build of kernels-gpu (`--ptx`).
pub fn fir_in(ptx: Kernels, taps: Vec<f32>) -> Result<Stage> {
    crate::fir::stage_in(ptx, taps)
}

/// `fir` with the default taps: a 63-tap windowed-sinc low-pass at 0.1 of
/// the sample rate ([`crate::fir::default_taps`]).
pub fn fir_default() -> Stage {
    crate::fir::default_stage_in(PTX)
}

/// `reduce`: per-chunk sum, min, max and histogram of f32 (the only data
/// that comes back).
pub fn reduce() -> Stage {
    reduce_in(PTX)
}

// The same stages with their kernels from another build of kernels-gpu
// (`--ptx`, toolchain experiments): the module must have the same kernels
// with the same signatures, which loading checks.
fn producer_in(ptx: Kernels) -> Stage {
    Stage::new("producer", "source: f32 produce(i, seed), the seed's producer kernel", Kind::Source(Arc::new(Producer { ptx })))
        .with_flag_form(Arc::new(ProducerFlags { ptx }))
        .with_pdl_form(Arc::new(crate::exec::pdl::ProducerPdl))
}
fn consumer_in(ptx: Kernels) -> Stage {
    Stage::map::<ConsumerVecKernel>("consumer", ptx, |input, output| output.iter_mut().zip(input).for_each(|(o, &x)| *o = consume(x)))
        .with_flags_map::<ConsumerFlagsKernel>(ptx)
        .with_pdl_map::<hopper::PdlConsumerKernel>(hopper::PTX)
        .with_warps_map::<hopper::RingConsumerKernel>(hopper::PTX)
}
fn moving_average_in(ptx: Kernels) -> Stage {
    Stage::halo_map::<MovingAverageKernel>("moving-average", ptx, 2, moving_average_reference)
}
/// Map stages of other element types, each `Stage::map` over a kernel of
/// kernels-gpu and the same kernel-math function on the CPU.
fn typed_maps(ptx: Kernels) -> Vec<Stage> {
    fn each<I: Copy, O>(f: fn(I) -> O) -> impl Fn(&[I], &mut [O]) {
        move |i, o| o.iter_mut().zip(i).for_each(|(o, &x)| *o = f(x))
    }
    vec![
        Stage::map::<U8ToF32Kernel>("u8-to-f32", ptx, |i, o| each(kernel_math::unit_from_u8)(i, o)),
        Stage::map::<StereoToMonoKernel>("stereo-to-mono", ptx, |i, o| each(kernel_math::mono)(i, o)),
        Stage::map::<MixU32Kernel>("mix-u32", ptx, |i, o| each(kernel_math::mix_u32)(i, o)),
        Stage::map::<AbsI32Kernel>("abs-i32", ptx, |i, o| each(kernel_math::abs_i32)(i, o)),
        Stage::map::<DoubleF64Kernel>("double-f64", ptx, |i, o| each(kernel_math::double_f64)(i, o)),
    ]
}

fn reduce_in(ptx: Kernels) -> Stage {
    Stage::new("reduce", "sink: f32 per-chunk sum, min, max, 16-bin histogram (exact)", Kind::Sink(Arc::new(Reduce { ptx })))
        .with_flag_form(Arc::new(ReduceFlags { ptx }))
        .with_pdl_form(Arc::new(crate::exec::pdl::ReducePdl))
        .with_warp_form(Arc::new(crate::exec::warps::ReduceRing))
}

/// A workload's stages are built-in ones: the catalog, not the model, lists
/// them.
impl Workload {
    /// The workload's stages, from source to sink.
    pub fn default_stages(self) -> Vec<Stage> {
        match self {
            Workload::Generate => vec![producer(), consumer(), reduce()],
            Workload::Stream => vec![h2d(), consumer(), d2h()],
        }
    }
}

/// CPU reference of `moving_average_kernel`: `history` is the 2 elements
/// before `input`.
fn moving_average_reference(history: &[f32], input: &[f32], output: &mut [f32]) {
    let x: Vec<f32> = history.iter().chain(input).copied().collect();
    for (o, w) in output.iter_mut().zip(x.windows(3)) {
        *o = kernel_math::moving_average3(w[0], w[1], w[2]);
    }
}

/// Stages by name, for stage lists on the command line: the built-ins,
/// then whatever a program registers.
#[derive(Clone)]
pub struct StageRegistry {
    stages: Vec<Stage>,
}

impl Default for StageRegistry {
    fn default() -> Self {
        StageRegistry::builtin()
    }
}

impl StageRegistry {
    /// producer, h2d, consumer, moving-average, fir (default taps), reduce,
    /// d2h, and the typed maps u8-to-f32, stereo-to-mono, mix-u32, abs-i32,
    /// double-f64.
    pub fn builtin() -> StageRegistry {
        StageRegistry::builtin_in(PTX)
    }

    /// The built-in stages with their kernels from `ptx`, another build of
    /// `kernels-gpu` (toolchain experiments).
    pub fn builtin_in(ptx: Kernels) -> StageRegistry {
        let mut stages = vec![producer_in(ptx), h2d(), consumer_in(ptx), moving_average_in(ptx), crate::fir::default_stage_in(ptx)];
        stages.extend(typed_maps(ptx));
        stages.extend([reduce_in(ptx), d2h()]);
        StageRegistry { stages }
    }

    /// This registry with the built-in stages' kernels from `ptx` (another
    /// build of kernels-gpu) and every other stage kept.
    pub fn with_builtins_in(&self, ptx: Kernels) -> StageRegistry {
        let mut r = StageRegistry::builtin_in(ptx);
        let builtin = StageRegistry::builtin();
        r.stages.extend(self.stages.iter().filter(|s| builtin.get(s.name()).is_none()).cloned());
        r
    }

    /// Adds a stage; its name must be new.
    pub fn register(&mut self, stage: Stage) -> Result<()> {
        if self.get(stage.name()).is_some() {
            return Err(PipelineError::BadStages(format!("a stage named {:?} is already registered", stage.name())));
        }
        if !valid_name(stage.name()) {
            return Err(PipelineError::BadStages(format!("stage name {:?}: use letters, digits, '-' and '_'", stage.name())));
        }
        self.stages.push(stage);
        Ok(())
    }

    /// Replaces the stage of the same name (say `fir` with other taps).
    pub fn replace(&mut self, stage: Stage) -> Result<()> {
        match self.stages.iter_mut().find(|s| s.name() == stage.name()) {
            Some(s) => {
                *s = stage;
                Ok(())
            }
            None => Err(PipelineError::BadStages(format!("no stage named {:?} to replace", stage.name()))),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name() == name)
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Every name, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// One stage by name.
    pub fn parse_one(&self, name: &str) -> Result<Stage> {
        let name = name.trim();
        self.get(name).cloned().ok_or_else(|| PipelineError::UnknownStage { name: name.to_string(), known: self.names().join(", ") })
    }

    /// A comma-separated list, e.g. `"h2d,consumer,d2h"`. An empty entry
    /// (`"producer,,reduce"`) is an error, not skipped.
    pub fn parse(&self, list: &str) -> Result<Vec<Stage>> {
        list.split(',')
            .enumerate()
            .map(
                |(i, name)| {
                    if name.trim().is_empty() { Err(PipelineError::BadStages(format!("{list:?}: stage {} is empty", i + 1))) } else { self.parse_one(name) }
                },
            )
            .collect()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses a stage list against the built-in stages.
pub fn parse_stages(list: &str) -> Result<Vec<Stage>> {
    StageRegistry::builtin().parse(list)
}

struct Producer {
    ptx: Kernels,
}

impl SourceStage for Producer {
    fn output(&self) -> Port {
        Port::of::<f32>()
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let kernel = setup.module(self.ptx, ORIGIN)?.kernel::<ProducerVecKernel>()?;
        kernel.check_block(setup.block_size())?;
        Ok(Box::new(ProducerOnGpu { kernel }))
    }
    fn reference(&self, chunk: &ChunkInfo, _elem: ElemType, _host: Option<&[u8]>) -> Result<HostChunk, String> {
        let v: Vec<f32> = chunk.range.clone().map(|i| produce(i, chunk.seed)).collect();
        Ok(HostChunk::from_slice(&v))
    }
}

struct ProducerOnGpu {
    kernel: Kernel<ProducerVecKernel>,
}

// SAFETY: one launch on the op's stream, writing the op's output slot.
unsafe impl OnGpu for ProducerOnGpu {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (cfg, stream, first, seed) = (op.cfg, op.stream, op.chunk.range.start, op.chunk.seed);
        let mut out = op.output::<f32>()?;
        // SAFETY: ordered by the pipeline's events.
        unsafe { ProducerVecKernel::launch(&self.kernel, stream, cfg, &mut out, first, seed, 0) }?;
        Ok(())
    }
}

struct Reduce {
    ptx: Kernels,
}

impl SinkStage for Reduce {
    fn input(&self) -> Port {
        Port::of::<f32>()
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let kernel = setup.module(self.ptx, ORIGIN)?.kernel::<ReduceKernel>()?;
        kernel.check_block(setup.block_size())?;
        let records = Records::new(setup)?;
        Ok(Box::new(ReduceOnGpu { kernel, records }))
    }
    fn check(&self, expected: &HostChunk, got: Sink<'_>) -> Option<(u64, String)> {
        let Some(values) = expected.view::<f32>() else { return Some((1, format!("reduce reads f32, the reference reached it as {}", expected.elem()))) };
        let mut want = Reduction::EMPTY;
        values.iter().for_each(|&v| want.add(v));
        match got {
            Sink::Record(Some(got)) if *got == want => None,
            Sink::Record(Some(got)) => Some((
                1,
                format!(
                    "reduction differs: got sum {} min {} max {} count {}, want sum {} min {} max {} count {}",
                    got.sum(),
                    got.min(),
                    got.max(),
                    got.count(),
                    want.sum(),
                    want.min(),
                    want.max(),
                    want.count()
                ),
            )),
            _ => Some((1, "no reduction came back".into())),
        }
    }
}

struct ReduceOnGpu {
    kernel: Kernel<ReduceKernel>,
    records: Records,
}

// SAFETY: the reset, each launch and the read-back touch only this stage's
// records and the op's input slot, on the stage's stream (the read-back
// runs after every stream synchronized).
unsafe impl OnGpu for ReduceOnGpu {
    fn begin_run(&mut self, stream: &CudaStream) -> Result<()> {
        self.records.reset(stream)
    }

    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (cfg, stream, lc) = (op.cfg, op.stream, op.local_chunk);
        // Shared memory for each block to combine its warps: one atomic
        // addition to the record a block, not a warp.
        let cfg = cudarc::driver::LaunchConfig { shared_mem_bytes: nvptx_std::REDUCE_SHARED_BYTES, ..cfg };
        let input = op.input::<f32>()?;
        let record = self.records.atomic(lc, 1)?;
        // SAFETY: ordered by the pipeline's events; the record is this chunk's alone.
        unsafe { ReduceKernel::launch(&self.kernel, stream, cfg, &input, &record, 0) }?;
        Ok(())
    }

    fn records(&mut self, stream: &Arc<CudaStream>) -> Result<Vec<Reduction>> {
        self.records.read(stream)
    }
}

/// `producer`'s flag form: `producer_flags_kernel`.
struct ProducerFlags {
    ptx: Kernels,
}

impl FlagForm for ProducerFlags {
    fn ports(&self) -> (Option<ElemType>, Option<ElemType>) {
        (None, Some(ElemType::of::<f32>()))
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn FlagOnGpu>> {
        let kernel = setup.module(self.ptx, ORIGIN)?.kernel::<ProducerFlagsKernel>()?;
        kernel.check_block(setup.block_size())?;
        Ok(Box::new(ProducerFlagsOnGpu { kernel }))
    }
}

struct ProducerFlagsOnGpu {
    kernel: Kernel<ProducerFlagsKernel>,
}

// SAFETY: one launch on the launch's stream, writing only its output ring.
unsafe impl FlagOnGpu for ProducerFlagsOnGpu {
    fn launch(&mut self, l: &mut FlagLaunch<'_>) -> Result<()> {
        let FlagLaunch { stream, cfg, plan, ctl, output, stamps, stage, seed, spin, faults, stage_name, .. } = l;
        let (mut output, flags) = crate::flags::ring_as::<f32>(stage_name, "output", output.as_mut())?;
        // SAFETY: the flags executor's launch (one flag pipeline, flags zeroed, co-resident).
        unsafe { ProducerFlagsKernel::launch(&self.kernel, stream, *cfg, plan, ctl, &mut output, flags, stamps, *stage, *seed, *spin, *faults) }?;
        Ok(())
    }
    fn max_active_blocks_per_sm(&self, block: u32) -> Result<u32> {
        Ok(self.kernel.max_active_blocks_per_sm(block)?)
    }
    fn kernel_name(&self) -> &'static str {
        "producer_flags_kernel"
    }
}

/// `reduce`'s flag form: `reduce_flags_kernel`, one record per chunk.
struct ReduceFlags {
    ptx: Kernels,
}

impl FlagForm for ReduceFlags {
    fn ports(&self) -> (Option<ElemType>, Option<ElemType>) {
        (Some(ElemType::of::<f32>()), None)
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn FlagOnGpu>> {
        let kernel = setup.module(self.ptx, ORIGIN)?.kernel::<ReduceFlagsKernel>()?;
        kernel.check_block(setup.block_size())?;
        let records = Records::new(setup)?;
        Ok(Box::new(ReduceFlagsOnGpu { kernel, records }))
    }
}

struct ReduceFlagsOnGpu {
    kernel: Kernel<ReduceFlagsKernel>,
    records: Records,
}

// SAFETY: the reset, the launch and the read-back touch only this stage's
// records and its input ring, on the stage's stream.
unsafe impl FlagOnGpu for ReduceFlagsOnGpu {
    fn begin_run(&mut self, stream: &CudaStream) -> Result<()> {
        self.records.reset(stream)
    }
    fn launch(&mut self, l: &mut FlagLaunch<'_>) -> Result<()> {
        let FlagLaunch { stream, cfg, plan, ctl, input, stamps, stage, spin, faults, stage_name, .. } = l;
        let records = self.records.atomic(0, self.records.chunks())?;
        let (mut input, flags) = crate::flags::ring_as::<f32>(stage_name, "input", input.as_mut())?;
        // SAFETY: the flags executor's launch; the records are this stage's.
        unsafe { ReduceFlagsKernel::launch(&self.kernel, stream, *cfg, plan, ctl, &mut input, flags, &records, stamps, *stage, *spin, *faults) }?;
        Ok(())
    }
    fn max_active_blocks_per_sm(&self, block: u32) -> Result<u32> {
        Ok(self.kernel.max_active_blocks_per_sm(block)?)
    }
    fn records(&mut self, stream: &Arc<CudaStream>) -> Result<Vec<Reduction>> {
        self.records.read(stream)
    }
    fn kernel_name(&self) -> &'static str {
        "reduce_flags_kernel"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_parses_and_refuses() {
        let r = StageRegistry::builtin();
        let names: Vec<String> = r.parse("h2d,consumer,moving-average,d2h").unwrap().iter().map(|s| s.name().to_string()).collect();
        assert_eq!(names, ["h2d", "consumer", "moving-average", "d2h"]);
        assert!(r.parse("producer,,reduce").unwrap_err().to_string().contains("stage 2 is empty"));
        let e = r.parse("h2d,blur,d2h").unwrap_err().to_string();
        assert!(e.contains("unknown stage \"blur\"") && e.contains("consumer"), "{e}");
        let mut r2 = r.clone();
        assert!(r2.register(consumer()).unwrap_err().to_string().contains("already registered"));
    }
}
