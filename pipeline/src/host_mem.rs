//! Pinned (page-locked) host memory, so host/device copies run on the copy
//! engines asynchronously, at full speed, overlapped with kernels.
use cudarc::driver::CudaContext;
use kernel_math::Element;
use pc_runtime::Error;
use pc_runtime::pinned::{self, HostAlloc};
use std::sync::Arc;

/// `len` bytes of pinned host memory, freed on drop. Allocated PORTABLE, so
/// every GPU's context can copy to and from it (the multi-GPU pipeline
/// shares one input and one output buffer).
///
/// Crate-private: the pipeline is what guarantees that no copy still
/// targets the memory when the host reads it or frees it (it synchronizes
/// every stream first, on every path).
pub(crate) struct PinnedBuffer {
    ptr: *mut u8,
    len: usize,
    ctx: Arc<CudaContext>,
}

// SAFETY: plain memory owned by this value; access goes through &/&mut.
unsafe impl Send for PinnedBuffer {}
unsafe impl Sync for PinnedBuffer {}

impl PinnedBuffer {
    pub(crate) fn new(ctx: &Arc<CudaContext>, len: usize) -> Result<PinnedBuffer, Error> {
        ctx.bind_to_thread().map_err(Error::cuda("binding the context"))?;
        // At least one byte, so the pointer is a real allocation; freed in Drop.
        let ptr = pinned::alloc(len.max(1), HostAlloc::Portable).map_err(|_| Error::PinnedMemory { needed: len as u128 })?;
        // Initialized once, so the buffer never exposes uninitialized bytes.
        // SAFETY: `len` bytes just allocated.
        unsafe { std::ptr::write_bytes(ptr, 0, len) };
        Ok(PinnedBuffer { ptr, len, ctx: ctx.clone() })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes owned by self (initialized by whoever filled
        // them: the input loader, or poison before a run's copies).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// The bytes as `T` (page-aligned memory suits every element type).
    pub(crate) fn view<T: Element>(&self) -> &[T] {
        let n = self.len / std::mem::size_of::<T>().max(1);
        // SAFETY: page-aligned, n * size_of::<T>() <= len bytes owned by
        // self, and any bytes are a valid T.
        unsafe { std::slice::from_raw_parts(self.ptr as *const T, n) }
    }

    /// The first byte, for slot-wise access by a protocol that keeps
    /// each slot's users exclusive (streams).
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: allocated by `pinned::alloc` in `new`, freed once; the owner
        // (the pipeline) synchronized every stream that copied to or from it.
        let _ = unsafe { pinned::free(self.ptr) };
    }
}
