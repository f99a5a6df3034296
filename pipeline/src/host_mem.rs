//! Pinned (page-locked) host memory, so host/device copies run on the copy
//! engines asynchronously, at full speed, overlapped with kernels.
use cudarc::driver::{CudaContext, result, sys};
use pc_runtime::Error;
use std::sync::Arc;

/// `len` `f32` of pinned host memory, freed on drop. Allocated PORTABLE, so
/// every GPU's context can copy to and from it (the multi-GPU pipeline shares
/// one input and one output buffer).
pub struct PinnedBuffer {
    ptr: *mut f32,
    len: usize,
    ctx: Arc<CudaContext>,
}

// SAFETY: plain memory owned by this value; access goes through &/&mut.
unsafe impl Send for PinnedBuffer {}
unsafe impl Sync for PinnedBuffer {}

impl PinnedBuffer {
    pub fn new(ctx: &Arc<CudaContext>, len: usize) -> Result<PinnedBuffer, Error> {
        ctx.bind_to_thread().map_err(Error::cuda("binding the context"))?;
        let bytes = len.checked_mul(4).ok_or(Error::HostMemory { elements: len as u64, needed: len as u128 * 4 })?;
        // SAFETY: a fresh allocation of `bytes`; freed in Drop.
        let ptr = unsafe { result::malloc_host(bytes.max(4), sys::CU_MEMHOSTALLOC_PORTABLE) }
            .map_err(|_| Error::HostMemory { elements: len as u64, needed: bytes as u128 })? as *mut f32;
        Ok(PinnedBuffer { ptr, len, ctx: ctx.clone() })
    }

    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `len` f32 owned by self; f32 has no invalid bit patterns.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above, and &mut self is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub fn as_ptr(&self) -> *const f32 {
        self.ptr
    }

    pub fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: allocated by malloc_host in `new`, freed once.
        let _ = unsafe { result::free_host(self.ptr as *mut _) };
    }
}
