//! One CUDA device and its context.
use crate::error::{Error, Result};
use crate::launch::{Module, Ptx as KernelPtx, RawModule};
use cudarc::driver::{CudaContext, CudaStream, DevicePtrMut, LaunchConfig, sys};
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

/// An open device.
///
/// cudarc's implicit event tracking is turned off: with it on, cudarc would
/// make a stream wait for every other stream that touched a buffer, which
/// would hide a missing synchronization. Here the explicit events the caller
/// records are the only ordering between streams. That is why the cudarc
/// handles ([`Gpu::context`], [`Gpu::stream`]) are `unsafe` to take: cudarc's
/// safe API assumes the tracking it does not get here.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    info: DeviceInfo,
}

impl Drop for Gpu {
    /// After a sticky error (a kernel that trapped or faulted) the context
    /// is unusable and CUDA says the process must end. Releasing it then
    /// crashed the process under compute-sanitizer (SIGSEGV in the release
    /// after a trap; H200, CUDA 13.0, 2026-11-26), so such a context is
    /// left to the process's exit: its last reference is leaked.
    fn drop(&mut self) {
        if Arc::strong_count(&self.ctx) == 1 && self.ctx.synchronize().is_err() {
            std::mem::forget(self.ctx.clone());
        }
    }
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
    /// Opens device `index`.
    pub fn open(index: usize) -> Result<Gpu> {
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
        Ok(Gpu { ctx, info })
    }

    /// Loads the PTX of kernel crate `C` (the embedded kernels, a user's
    /// kernel crate); `origin` names it in errors. Its kernels are taken with
    /// [`Module::kernel`], typed by their `#[kernel]` launchers.
    pub fn load<C>(&self, ptx: KernelPtx<C>, origin: &str) -> Result<Module<C>> {
        Ok(Module { raw: self.load_raw(ptx.text(), origin)?, _crate: std::marker::PhantomData })
    }

    pub(crate) fn load_raw(&self, ptx: &'static str, origin: &str) -> Result<RawModule> {
        let module =
            self.ctx.load_module(Ptx::from_src(ptx)).map_err(|e| Error::BadModule { origin: origin.to_string(), detail: crate::error::describe(&e) })?;
        Ok(RawModule { ctx: self.ctx.clone(), module, ptx, origin: origin.into() })
    }

    /// Refuses, in one line naming `what`, a device older than compute
    /// capability `need` (e.g. `(9, 0)` for PTX built for sm_90, which the
    /// driver cannot load on older GPUs).
    pub fn require_compute_capability(&self, need: (i32, i32), what: &str) -> Result<()> {
        let have = self.info.compute_capability;
        if have >= need {
            return Ok(());
        }
        Err(Error::NeedsComputeCapability { what: what.to_string(), need, have, device: self.info.index, name: self.info.name.clone() })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Lets kernels and copies on this device reach `other`'s memory
    /// directly (NVLink or PCIe peer-to-peer), buffers from its default
    /// memory pool included: `Ok(false)` where the two
    /// cannot (copies between them then go through the host, slower but
    /// correct), `Ok(true)` once enabled (or already), and the same device
    /// is `Ok(true)`.
    pub fn enable_peer_access(&self, other: &Gpu) -> Result<bool> {
        if self.info.index == other.info.index {
            return Ok(true);
        }
        let mut can = 0i32;
        // SAFETY: a query of two valid device ordinals.
        unsafe { sys::cuDeviceCanAccessPeer(&mut can, self.info.index as i32, other.info.index as i32) }
            .result()
            .map_err(Error::cuda("asking whether two GPUs can reach each other"))?;
        if can == 0 {
            return Ok(false);
        }
        self.ctx.bind_to_thread().map_err(Error::cuda("binding the context"))?;
        // SAFETY: enables access from the current context (this device's) to
        // a valid context; no memory is touched.
        let what = || format!("enabling peer access from GPU {} to GPU {}", self.info.index, other.info.index);
        match unsafe { sys::cuCtxEnablePeerAccess(other.ctx.cu_ctx(), 0) } {
            sys::CUresult::CUDA_SUCCESS | sys::CUresult::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED => {}
            e => return Err(Error::cuda(what())(cudarc::driver::DriverError(e))),
        }
        // cudarc allocates from each device's default memory pool
        // (cuMemAllocAsync), whose memory a peer reaches only once the pool
        // grants it: context peer access alone does not cover pools.
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: a query into `pool`, then an access grant on that valid pool.
        unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, other.info.index as i32) }.result().map_err(Error::cuda(what()))?;
        let desc = sys::CUmemAccessDesc {
            location: sys::CUmemLocation { type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE, id: self.info.index as i32 },
            flags: sys::CUmemAccess_flags::CU_MEM_ACCESS_FLAGS_PROT_READWRITE,
        };
        unsafe { sys::cuMemPoolSetAccess(pool, &desc, 1) }.result().map_err(Error::cuda(what()))?;
        Ok(true)
    }

    /// cudarc's context of this device.
    ///
    /// # Safety
    /// cudarc's implicit event tracking is off on this context, so its safe
    /// API no longer orders work between streams by itself: the caller must
    /// order with events every use of a buffer on more than one stream (a
    /// write and any other access), and must not free or reuse a buffer, nor
    /// read a host buffer a copy targets, before the GPU work using it has
    /// completed.
    pub unsafe fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// A new stream on this device.
    ///
    /// # Safety
    /// As [`Gpu::context`]: the caller orders this stream's work against every
    /// other stream that touches the same memory.
    pub unsafe fn stream(&self) -> Result<Arc<CudaStream>> {
        self.ctx.new_stream().map_err(Error::cuda("creating a stream"))
    }

    /// Free and total device memory, in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().map_err(Error::cuda("reading free device memory"))
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

/// Fills `buf` with the poison pattern ([`kernel_math::POISON_BITS`] in
/// every 32-bit word; the byte `0xAD` where the size is not a multiple of 4)
/// on `stream`.
///
/// # Safety
/// No other stream may access `buf` until this fill completes (order it
/// with events), as for any write with event tracking off.
pub unsafe fn poison<T>(stream: &CudaStream, buf: &mut impl DevicePtrMut<T>) -> Result<()> {
    // The raw fill acts on the current context: the stream's.
    stream.context().bind_to_thread().map_err(Error::cuda("binding the context"))?;
    let bytes = buf.num_bytes();
    let (ptr, _no_tracking) = buf.device_ptr_mut(stream);
    // SAFETY: `ptr` addresses `bytes` bytes owned by `buf`.
    let r = unsafe {
        if bytes % 4 == 0 {
            sys::cuMemsetD32Async(ptr, kernel_math::POISON_BITS, bytes / 4, stream.cu_stream())
        } else {
            sys::cuMemsetD8Async(ptr, 0xAD, bytes, stream.cu_stream())
        }
    };
    r.result().map_err(Error::cuda("poisoning a buffer"))
}

/// Synchronizes its streams when dropped: declared after the buffers a
/// function allocates, it makes every return path (errors included) wait
/// for the GPU work on them before the buffers are freed.
pub struct StreamGuard<'a> {
    streams: Vec<&'a CudaStream>,
}

impl<'a> StreamGuard<'a> {
    pub fn new<S: AsRef<CudaStream> + 'a>(streams: impl IntoIterator<Item = &'a S>) -> Self {
        StreamGuard { streams: streams.into_iter().map(|s| s.as_ref()).collect() }
    }
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        for s in &self.streams {
            // An error here is the sticky error the caller already returns.
            let _ = s.synchronize();
        }
    }
}
