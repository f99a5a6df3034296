//! Asynchronous copies and fills on a stream: each function is one CUDA
//! driver call, its status turned into a `Result` (cudarc's `result` layer
//! does the same for the calls it covers), so the host and pipeline crates
//! make no raw driver call of their own (issue 19).
//!
//! The functions take raw addresses, as the callers hold them: a device
//! address from cudarc's [`DevicePtr::device_ptr`](cudarc::driver::DevicePtr::device_ptr)
//! taken once outside a timed loop, a pointer into pinned host memory. They
//! add no driver call of their own (no context binding, no event): a timed
//! loop times the copy alone. The error is cudarc's [`DriverError`], for the
//! caller to say what it was doing.
//!
//! # Safety (every function here)
//! With cudarc's event tracking off ([`Gpu`](crate::gpu::Gpu)), the caller
//! orders the streams:
//! - every address names memory that stays allocated, and every range
//!   (`bytes` from the address, or `count` words) lies inside one
//!   allocation, until the operation has completed on the GPU;
//! - no other stream accesses the written range, nor writes the read range,
//!   until the operation has completed (order it with events); nor does the
//!   host (it may read a range the operation only reads).
//!
//! Host memory is meant to be pinned (page-locked): with pageable memory
//! the driver stages the copy and it does not overlap the host's work. The
//! calls are made in the thread's current context: where several GPUs are
//! open, bind the stream's first (`CudaContext::bind_to_thread`), as the
//! callers do today.
use cudarc::driver::{CudaContext, CudaStream, DriverError, sys};

/// A device address (CUDA's `CUdeviceptr`), as cudarc's
/// [`DevicePtr::device_ptr`](cudarc::driver::DevicePtr::device_ptr) returns it.
pub type DeviceAddr = sys::CUdeviceptr;

/// Copies `bytes` from pinned host memory at `src` to the device at `dst`
/// on `stream` ([`cuMemcpyHtoDAsync`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html)).
///
/// # Safety
/// As the [module's contract](crate::copy#safety-every-function-here).
pub unsafe fn htod_async<T>(dst: DeviceAddr, src: *const T, bytes: usize, stream: &CudaStream) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { sys::cuMemcpyHtoDAsync_v2(dst, src.cast(), bytes, stream.cu_stream()) }.result()
}

/// Copies `bytes` from the device at `src` to pinned host memory at `dst`
/// on `stream` ([`cuMemcpyDtoHAsync`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html#group__CUDA__MEM_1g56f30236c7c5247f8e061b59d3268362)).
///
/// # Safety
/// As the [module's contract](crate::copy#safety-every-function-here).
pub unsafe fn dtoh_async<T>(dst: *mut T, src: DeviceAddr, bytes: usize, stream: &CudaStream) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { sys::cuMemcpyDtoHAsync_v2(dst.cast(), src, bytes, stream.cu_stream()) }.result()
}

/// Copies `bytes` from `src` to `dst` on one device on `stream`
/// ([`cuMemcpyDtoDAsync`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html#group__CUDA__MEM_1g39ea09ba682b8eccc9c3e0c04319b5c8)).
///
/// # Safety
/// As the [module's contract](crate::copy#safety-every-function-here).
pub unsafe fn dtod_async(dst: DeviceAddr, src: DeviceAddr, bytes: usize, stream: &CudaStream) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { sys::cuMemcpyDtoDAsync_v2(dst, src, bytes, stream.cu_stream()) }.result()
}

/// Copies `bytes` from `src` to `dst`, which unified addressing places on
/// any device (or pinned host memory), on `stream`
/// ([`cuMemcpyAsync`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html)).
/// The pipeline copies between two GPUs with it where they have peer access
/// ([`Gpu::enable_peer_access`](crate::gpu::Gpu::enable_peer_access)): a
/// direct copy that, unlike [`peer_async`] staged through the host, can be
/// captured in a CUDA graph.
///
/// # Safety
/// As the [module's contract](crate::copy#safety-every-function-here).
pub unsafe fn unified_async(dst: DeviceAddr, src: DeviceAddr, bytes: usize, stream: &CudaStream) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { sys::cuMemcpyAsync(dst, src, bytes, stream.cu_stream()) }.result()
}

/// Copies `bytes` from `src` in `src_ctx` to `dst` in `dst_ctx` on `stream`
/// ([`cuMemcpyPeerAsync`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html#group__CUDA__MEM_1g82fcecb38018e64b98616a8ac30112f2)):
/// directly with peer access, staged through the host by the driver without
/// it (then not capturable in a CUDA graph).
///
/// # Safety
/// As the [module's contract](crate::copy#safety-every-function-here); `dst` lies
/// in `dst_ctx`'s device memory and `src` in `src_ctx`'s.
pub unsafe fn peer_async(
    dst: DeviceAddr,
    dst_ctx: &CudaContext,
    src: DeviceAddr,
    src_ctx: &CudaContext,
    bytes: usize,
    stream: &CudaStream,
) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { sys::cuMemcpyPeerAsync(dst, dst_ctx.cu_ctx(), src, src_ctx.cu_ctx(), bytes, stream.cu_stream()) }.result()
}

/// Sets `count` 32-bit words from `dst` (4-byte aligned) to `value` on
/// `stream` ([`cuMemsetD32Async`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html)).
///
/// # Safety
/// As the [module's contract](crate::copy#safety-every-function-here); `dst` is
/// 4-byte aligned.
pub unsafe fn memset_d32_async(dst: DeviceAddr, value: u32, count: usize, stream: &CudaStream) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { sys::cuMemsetD32Async(dst, value, count, stream.cu_stream()) }.result()
}

/// Sets `bytes` bytes from `dst` to `value` on `stream`
/// ([`cuMemsetD8Async`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html#group__CUDA__MEM_1gaef08a7ccd61112f94e82f2b30d43627)).
///
/// # Safety
/// As the [module's contract](crate::copy#safety-every-function-here).
pub unsafe fn memset_d8_async(dst: DeviceAddr, value: u8, bytes: usize, stream: &CudaStream) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { sys::cuMemsetD8Async(dst, value, bytes, stream.cu_stream()) }.result()
}
