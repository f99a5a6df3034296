//! One CUDA device, its context and the embedded kernels.
use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig, sys};
use cudarc::nvrtc::Ptx;
use std::sync::Arc;

/// What the runtime needs to know about a device.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub index: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub sm_count: u32,
    pub max_threads_per_sm: u32,
    pub total_memory: usize,
}

/// An open device with the kernels loaded.
///
/// cudarc's implicit event tracking is turned off: with it on, cudarc would
/// make a stream wait for every other stream that touched a buffer, which
/// would hide a missing synchronization. Here the explicit events the caller
/// records are the only ordering between streams.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    module: Arc<CudaModule>,
    info: DeviceInfo,
}

/// Whether libcuda can be loaded (an NVIDIA driver is installed).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library.
    unsafe { sys::is_culib_present() }
}

/// Number of CUDA devices, with the driver's absence and `CUDA_ERROR_NO_DEVICE`
/// as their own errors.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(Error::NoDriver);
    }
    cudarc::driver::result::init().map_err(|e| match e.0 {
        sys::CUresult::CUDA_ERROR_NO_DEVICE => Error::NoDevice(crate::error::describe(&e)),
        _ => Error::cuda("initializing the CUDA driver")(e),
    })?;
    let n = CudaContext::device_count().map_err(Error::cuda("counting CUDA devices"))?;
    if n <= 0 {
        return Err(Error::NoDevice("the driver reports 0 devices".into()));
    }
    Ok(n as usize)
}

impl Gpu {
    /// Opens device `index` and loads the embedded kernels' PTX.
    pub fn open(index: usize) -> Result<Gpu> {
        Self::open_with_ptx(index, ptx_kernels::KERNELS, ptx_kernels::ARCH)
    }

    /// Opens device `index` with kernels from another PTX module (for
    /// toolchain experiments: a hand-edited or differently built PTX). It
    /// must have the same entries with the same signatures. `origin` names it
    /// in errors.
    pub fn open_with_ptx(index: usize, ptx: &str, origin: &str) -> Result<Gpu> {
        let count = device_count()?;
        if index >= count {
            return Err(Error::BadDevice { index, count });
        }
        let ctx = CudaContext::new(index).map_err(Error::cuda(format!("opening device {index}")))?;
        // SAFETY: called before any buffer or stream exists on this context.
        unsafe { ctx.disable_event_tracking() };
        let attr = |a| ctx.attribute(a).map_err(Error::cuda("reading device attributes"));
        let info = DeviceInfo {
            index,
            name: ctx.name().map_err(Error::cuda("reading the device name"))?,
            compute_capability: ctx.compute_capability().map_err(Error::cuda("reading the compute capability"))?,
            sm_count: attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
            max_threads_per_sm: attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR)? as u32,
            total_memory: ctx.total_mem().map_err(Error::cuda("reading the memory size"))?,
        };
        let module = ctx.load_module(Ptx::from_src(ptx)).map_err(Error::cuda(format!("loading the kernels' PTX ({origin})")))?;
        Ok(Gpu { ctx, module, info })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// A new stream on this device.
    pub fn stream(&self) -> Result<Arc<CudaStream>> {
        self.ctx.new_stream().map_err(Error::cuda("creating a stream"))
    }

    /// Free and total device memory, in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().map_err(Error::cuda("reading free device memory"))
    }

    /// A kernel of the embedded PTX, by entry name.
    pub fn kernel(&self, name: &'static str) -> Result<Kernel> {
        Self::kernel_of(&self.module, name)
    }

    /// A kernel from another PTX module (a user's own kernel crate, built to
    /// PTX with nvptx-builder): the module is loaded into this device's
    /// context and the entry looked up.
    pub fn kernel_from_ptx(&self, ptx: &str, name: &'static str) -> Result<Kernel> {
        let module = self.ctx.load_module(Ptx::from_src(ptx)).map_err(Error::cuda(format!("loading the PTX module of {name}")))?;
        Self::kernel_of(&module, name)
    }

    fn kernel_of(module: &Arc<CudaModule>, name: &'static str) -> Result<Kernel> {
        let func = module.load_function(name).map_err(Error::cuda(format!("finding kernel {name}")))?;
        // SAFETY: a valid function handle and an int-sized attribute.
        let max_block = unsafe {
            cudarc::driver::result::function::get_function_attribute(func.cu_function(), sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
        }
        .map_err(Error::cuda(format!("reading {name}'s limits")))?;
        Ok(Kernel { name, func, max_block: max_block as u32 })
    }

    /// Launch shape for `elements` items with `block` threads a block.
    ///
    /// Without an explicit grid: enough blocks to cover the elements, at most
    /// half of what the GPU holds resident at once. The kernels loop
    /// grid-stride, so fewer blocks still cover everything, and the other
    /// half of the GPU stays free for a concurrent stage (the next stage of a
    /// pipeline, or the consumer racing the producer in the `--no-sync` demo).
    pub fn launch_config(&self, elements: u64, block: u32, grid: Option<u32>) -> Result<LaunchConfig> {
        let grid = match grid {
            Some(0) => return Err(Error::BadGridSize),
            Some(g) => g,
            None => {
                let resident = (self.info.max_threads_per_sm / block.max(1)).max(1) as u64 * self.info.sm_count as u64;
                elements.div_ceil(block.max(1) as u64).min((resident / 2).max(1)).min(i32::MAX as u64) as u32
            }
        };
        Ok(LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 })
    }
}

/// A kernel and its limits.
pub struct Kernel {
    pub name: &'static str,
    pub func: CudaFunction,
    /// Most threads a block of this kernel may have on this device.
    pub max_block: u32,
}

impl Kernel {
    /// Refuses a block size this kernel cannot launch with, before the launch.
    pub fn check_block(&self, block: u32) -> Result<()> {
        if block == 0 || block > self.max_block {
            return Err(Error::BadBlockSize { block, kernel: self.name, max: self.max_block });
        }
        Ok(())
    }
}

/// Fills `buf` with the poison pattern on `stream`.
pub fn poison(stream: &CudaStream, buf: &CudaSlice<f32>) -> Result<()> {
    use cudarc::driver::DevicePtr;
    let (ptr, _guard) = buf.device_ptr(stream);
    // SAFETY: `ptr` addresses `buf.len()` 32-bit words owned by `buf`.
    unsafe { sys::cuMemsetD32Async(ptr, kernel_math::POISON_BITS, buf.len(), stream.cu_stream()) }.result().map_err(Error::cuda("poisoning a buffer"))
}
