//! The seed's program, in Rust: a producer kernel fills a buffer on stream A
//! and an event is recorded after it; stream B waits on that event, then the
//! consumer kernel reads the buffer and writes the output. Every output
//! element is then checked against the CPU reference.
//!
//! With `sync: false` the wait is skipped: the seed's pitfall. The consumer may
//! then read the buffer before the producer has written it (buffers start
//! poisoned), and the check counts the elements that came out wrong.
use crate::verify::{Check, check_consumed};
use crate::{ConsumerKernel, ProducerKernel};
use cudarc::driver::{CudaSlice, CudaStream, sys};
use pc_runtime::gpu::{Gpu, StreamGuard, poison};
use pc_runtime::launch::{KernelEntry, Module};
use pc_runtime::{Error, Result};
use std::sync::Arc;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Number of `f32` elements in the buffer and the output.
    pub elements: u64,
    /// Threads per block.
    pub block_size: u32,
    /// Blocks per grid; `None` picks one from the device (see [`Gpu::launch_config`]).
    pub grid_size: Option<u32>,
    /// Seed of the producer's values.
    pub seed: u32,
    /// Make stream B wait on the producer's event (the correct program).
    /// `false` is the seed's pitfall, a race on purpose: only
    /// [`run_demo_unsynchronized`] (unsafe) runs it.
    pub sync: bool,
    /// Microseconds every producer thread spins before writing.
    pub producer_spin_us: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig { elements: 1 << 20, block_size: 256, grid_size: None, seed: 0x5eed, sync: true, producer_spin_us: 0 }
    }
}

impl DemoConfig {
    /// Checks what can be checked without a GPU.
    pub fn validate(&self) -> Result<()> {
        if self.elements == 0 {
            return Err(Error::EmptyInput);
        }
        if self.grid_size == Some(0) {
            return Err(Error::BadGridSize);
        }
        if self.block_size == 0 {
            return Err(Error::BadBlockSize { block: 0, kernel: ProducerKernel::NAME, max: 1024 });
        }
        Ok(())
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub config: DemoConfig,
    /// Blocks per grid actually launched.
    pub grid_size: u32,
    /// Producer time (event on A before it, to the producer's event).
    pub producer_ms: f32,
    /// Consumer time (events on B around it).
    pub consumer_ms: f32,
    /// The first output elements, for display.
    pub samples: Vec<f32>,
    /// Every element against the CPU reference.
    pub check: Check,
}

impl DemoReport {
    /// Bytes the producer writes.
    pub fn producer_bytes(&self) -> u64 {
        self.config.elements * 4
    }
    /// Bytes the consumer reads and writes.
    pub fn consumer_bytes(&self) -> u64 {
        self.config.elements * 8
    }
    pub fn producer_gbps(&self) -> f64 {
        gbps(self.producer_bytes(), self.producer_ms)
    }
    pub fn consumer_gbps(&self) -> f64 {
        gbps(self.consumer_bytes(), self.consumer_ms)
    }
}

/// Decimal GB/s from bytes and milliseconds.
pub fn gbps(bytes: u64, ms: f32) -> f64 {
    if ms > 0.0 { bytes as f64 / (ms as f64 * 1e-3) / 1e9 } else { f64::NAN }
}

/// Allocates `elements` uninitialised `f32` on `stream`.
fn alloc(stream: &Arc<CudaStream>, elements: u64, what: &str) -> Result<CudaSlice<f32>> {
    // SAFETY: every buffer is poisoned before any kernel reads it.
    unsafe { stream.alloc::<f32>(elements as usize) }.map_err(Error::cuda(format!("allocating the {what}")))
}

/// Runs the demo once on fresh, poisoned buffers, with the embedded kernels.
/// `cfg.sync` must be on (see [`run_demo_unsynchronized`]).
pub fn run_demo(gpu: &Gpu, cfg: &DemoConfig) -> Result<DemoReport> {
    run_demo_with(gpu, &crate::load(gpu)?, cfg)
}

/// [`run_demo`] with the kernels of `module` (another build of kernels-gpu).
pub fn run_demo_with(gpu: &Gpu, module: &Module<crate::KernelCrate>, cfg: &DemoConfig) -> Result<DemoReport> {
    if !cfg.sync {
        return Err(Error::Refused("the demo without its event wait races on purpose: run it with run_demo_unsynchronized"));
    }
    // SAFETY: with the wait, nothing races.
    unsafe { run(gpu, module, cfg) }
}

/// The seed's pitfall: the demo with `cfg.sync` off, so the consumer may
/// read the buffer while the producer writes it.
///
/// # Safety
/// This is a data race on device memory between two kernels, on purpose,
/// to show what the event prevents: the consumer reads `f32` (any bits
/// valid) that the producer may be writing. The host reads the output only
/// after both streams synchronized; call it for that demonstration only.
pub unsafe fn run_demo_unsynchronized(gpu: &Gpu, module: &Module<crate::KernelCrate>, cfg: &DemoConfig) -> Result<DemoReport> {
    // SAFETY: the caller's contract.
    unsafe { run(gpu, module, cfg) }
}

/// # Safety
/// When `cfg.sync` is off, the caller accepts the race (see
/// [`run_demo_unsynchronized`]).
unsafe fn run(gpu: &Gpu, module: &Module<crate::KernelCrate>, cfg: &DemoConfig) -> Result<DemoReport> {
    cfg.validate()?;
    let producer = module.kernel::<ProducerKernel>()?;
    let consumer = module.kernel::<ConsumerKernel>()?;
    producer.check_block(cfg.block_size)?;
    consumer.check_block(cfg.block_size)?;

    let n = cfg.elements;
    let (free, total) = gpu.memory()?;
    let needed = n as u128 * 8;
    if needed > free as u128 {
        return Err(Error::TooLarge { elements: n, needed, free: free as u128, total: total as u128, device: gpu.info().index });
    }
    let mut host: Vec<f32> = Vec::new();
    host.try_reserve_exact(n as usize).map_err(|_| Error::HostMemory { elements: n, needed: n as u128 * 4 })?;
    host.resize(n as usize, 0.0);

    let launch = gpu.launch_config(n, cfg.block_size, cfg.grid_size)?;
    // SAFETY: the two streams are ordered by the events below, and the
    // guard synchronizes both before any buffer is freed, on every path.
    let (ctx, stream_a, stream_b) = unsafe { (gpu.context(), gpu.stream()?, gpu.stream()?) };
    let mut buffer = alloc(&stream_a, n, "buffer")?;
    let mut output = alloc(&stream_b, n, "output")?;
    let _guard = StreamGuard::new([&stream_a, &stream_b]);
    // SAFETY: each buffer is poisoned on the stream that allocated it; both
    // streams are synchronized right after, before any kernel.
    unsafe {
        poison(&stream_a, &mut buffer)?;
        poison(&stream_b, &mut output)?;
    }
    // The poison must be in place before either kernel starts.
    stream_a.synchronize().map_err(Error::cuda("poisoning the buffer"))?;
    stream_b.synchronize().map_err(Error::cuda("poisoning the output"))?;

    let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
    let event = |s: &Arc<CudaStream>, what: &str| s.record_event(timing).map_err(Error::cuda(format!("recording {what}")));

    let spin_ns = cfg.producer_spin_us.saturating_mul(1000);
    let producer_start = event(&stream_a, "the producer's start event")?;
    let first = 0u64;
    // SAFETY: only stream A touches `buffer` until the event below.
    unsafe { ProducerKernel::launch(&producer, &stream_a, launch, &mut buffer, first, cfg.seed, spin_ns) }?;
    // The seed's event: "the buffer is filled".
    let produced = event(&stream_a, "the producer's event")?;
    if cfg.sync {
        stream_b.wait(&produced).map_err(Error::cuda("making stream B wait on the producer's event"))?;
    }
    let consumer_start = event(&stream_b, "the consumer's start event")?;
    let no_spin = 0u64;
    // SAFETY: stream B waits on the producer's event (unless `sync` is
    // off: the race this function's caller accepted).
    unsafe { ConsumerKernel::launch(&consumer, &stream_b, launch, &buffer, &mut output, no_spin) }?;
    let consumer_end = event(&stream_b, "the consumer's end event")?;

    stream_a.synchronize().map_err(Error::cuda("running producer_kernel"))?;
    stream_b.synchronize().map_err(Error::cuda("running consumer_kernel"))?;
    let producer_ms = producer_start.elapsed_ms(&produced).map_err(Error::cuda("timing the producer"))?;
    let consumer_ms = consumer_start.elapsed_ms(&consumer_end).map_err(Error::cuda("timing the consumer"))?;

    stream_b.memcpy_dtoh(&output, &mut host).map_err(Error::cuda("copying the output back"))?;
    stream_b.synchronize().map_err(Error::cuda("copying the output back"))?;
    ctx.check_err().map_err(Error::cuda("after the demo"))?;

    let check = check_consumed(&host, 0, cfg.seed);
    let samples = host.iter().take(10).copied().collect();
    Ok(DemoReport { config: cfg.clone(), grid_size: launch.grid_dim.0, producer_ms, consumer_ms, samples, check })
}
