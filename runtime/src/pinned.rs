//! Pinned (page-locked) host memory from the driver, one call each: the
//! allocation the pipeline's host buffers and watchdog records are made of
//! (cudarc's `PinnedHostSlice` keeps a context and an event with each, and
//! offers no device mapping).
use crate::copy::DeviceAddr;
use cudarc::driver::{DriverError, sys};

/// What a pinned allocation is for ([`alloc`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostAlloc {
    /// Pinned for every context, not only the current one
    /// (`CU_MEMHOSTALLOC_PORTABLE`): buffers that copies on any GPU use.
    Portable,
    /// Mapped into the device's address space (`CU_MEMHOSTALLOC_DEVICEMAP`):
    /// kernels read and write it in place at [`device_address`].
    DeviceMapped,
}

/// `bytes` of pinned host memory, uninitialized, allocated
/// in the thread's current context ([`cuMemHostAlloc`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html#group__CUDA__MEM_1g572ca4011bfcb25034888a14d4e035b9)):
/// bind the context first (`CudaContext::bind_to_thread`). The caller owns
/// it and frees it with [`free`].
pub fn alloc(bytes: usize, kind: HostAlloc) -> Result<*mut u8, DriverError> {
    let flags = match kind {
        HostAlloc::Portable => sys::CU_MEMHOSTALLOC_PORTABLE,
        HostAlloc::DeviceMapped => sys::CU_MEMHOSTALLOC_DEVICEMAP,
    };
    let mut ptr = std::ptr::null_mut();
    // SAFETY: writes one pointer into `ptr`; the memory is only handed out.
    unsafe { sys::cuMemHostAlloc(&mut ptr, bytes, flags) }.result()?;
    Ok(ptr.cast())
}

/// The device's address of the [`HostAlloc::DeviceMapped`] memory at `host`
/// in the current context ([`cuMemHostGetDevicePointer`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html));
/// an error for memory that is not mapped. The address is valid until
/// `host` is freed.
pub fn device_address(host: *mut u8) -> Result<DeviceAddr, DriverError> {
    let mut device: DeviceAddr = 0;
    // SAFETY: a query writing one address into `device`; the driver checks
    // `host` against its own allocations and reads no memory there.
    unsafe { sys::cuMemHostGetDevicePointer_v2(&mut device, host.cast(), 0) }.result()?;
    Ok(device)
}

/// Frees memory from [`alloc`] ([`cuMemFreeHost`](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html#group__CUDA__MEM_1g62e0fdbe181dab6b1c90fa1a51c7b92c)).
///
/// # Safety
/// `ptr` came from [`alloc`] and is freed once; no host reference into it
/// is used after, and no GPU work that reads or writes it (copies, kernels
/// through a mapped address) is still pending: synchronize its streams
/// first.
pub unsafe fn free(ptr: *mut u8) -> Result<(), DriverError> {
    // SAFETY: the caller's contract.
    unsafe { sys::cuMemFreeHost(ptr.cast()) }.result()
}
