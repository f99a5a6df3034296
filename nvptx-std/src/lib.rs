//! Device-side support for kernels compiled by rustc's own NVPTX backend: the
//! part `cuda_std` plays in rust-cuda, kept small.
//!
//! - thread and grid indices as `u64`, and a grid-stride iterator, so a kernel
//!   handles any element count with any launch shape;
//! - `%globaltimer` and a spin for a given number of nanoseconds (used to make
//!   a stage slow on purpose, so that a missing synchronization shows);
//! - the panic handler: it executes `trap`, which aborts the kernel and makes
//!   the host's next CUDA call fail with a launch error. A handler that looped
//!   would hang the GPU instead.
#![no_std]
#![feature(stdarch_nvptx, asm_experimental_arch)]

use core::arch::nvptx;

/// This thread's index in the whole grid (x dimension).
#[inline(always)]
pub fn global_index() -> u64 {
    // SAFETY: reading special registers has no preconditions.
    unsafe { nvptx::_block_idx_x() as u64 * nvptx::_block_dim_x() as u64 + nvptx::_thread_idx_x() as u64 }
}

/// Number of threads in the grid (x dimension): the stride of a grid-stride loop.
#[inline(always)]
pub fn grid_size() -> u64 {
    // SAFETY: as above.
    unsafe { nvptx::_grid_dim_x() as u64 * nvptx::_block_dim_x() as u64 }
}

/// The indices `global_index(), + grid_size(), ...` below `n`: this thread's
/// share of `0..n` in a grid-stride loop.
#[inline(always)]
pub fn grid_stride(n: u64) -> GridStride {
    GridStride { next: global_index(), end: n, step: grid_size() }
}

/// The indices `start + global_index(), + grid_size(), ...` below `n`: the
/// scalar tail after a vectorized grid-stride loop over `0..start`.
#[inline(always)]
pub fn grid_stride_from(start: u64, n: u64) -> GridStride {
    GridStride { next: start.saturating_add(global_index()), end: n, step: grid_size() }
}

/// Four `f32` moved as one 16-byte access (`ld/st.global.v4.f32`): the
/// alignment tells the compiler it may.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct F32x4(pub [f32; 4]);

/// Whether `p` may be accessed as [`F32x4`].
#[inline(always)]
pub fn aligned16<T>(p: *const T) -> bool {
    (p as usize) % 16 == 0
}

/// Iterator returned by [`grid_stride`].
pub struct GridStride {
    next: u64,
    end: u64,
    step: u64,
}

impl Iterator for GridStride {
    type Item = u64;
    #[inline(always)]
    fn next(&mut self) -> Option<u64> {
        if self.next < self.end {
            let i = self.next;
            // A plain add: `end + step` cannot wrap for any buffer that fits
            // in device memory (2^40 elements plus a grid of at most 2^41
            // threads). A saturating add cost a `min` per element, which
            // made the ALU-heavy producer 9% slower than nvcc's build.
            self.next = self.next.wrapping_add(self.step);
            Some(i)
        } else {
            None
        }
    }
}

/// This thread's lane in its warp (0..32).
#[inline(always)]
pub fn lane() -> u32 {
    // SAFETY: reads a special register.
    unsafe { nvptx::_thread_idx_x() % 32 }
}

/// Whether every warp of the block is complete (block size a multiple of 32),
/// the condition for full-mask warp shuffles.
#[inline(always)]
pub fn warps_are_full() -> bool {
    // SAFETY: reads a special register.
    unsafe { nvptx::_block_dim_x() % 32 == 0 }
}

/// `shfl.sync.bfly`: the value of lane `lane() ^ mask`, all 32 lanes taking
/// part. Call only when [`warps_are_full`] and every lane of the warp gets here.
#[inline(always)]
pub fn shfl_xor(v: u32, mask: u32) -> u32 {
    let r: u32;
    // SAFETY: a register-only warp shuffle; the caller keeps all lanes converged.
    unsafe {
        core::arch::asm!("shfl.sync.bfly.b32 {r}, {v}, {m}, 0x1f, 0xffffffff;",
            r = out(reg32) r, v = in(reg32) v, m = in(reg32) mask, options(nomem, nostack))
    };
    r
}

/// The GPU's global nanosecond timer (`%globaltimer`).
#[inline(always)]
pub fn globaltimer_ns() -> u64 {
    let t: u64;
    // SAFETY: reads a special register; no memory is touched.
    unsafe { core::arch::asm!("mov.u64 {}, %globaltimer;", out(reg64) t, options(nomem, nostack)) };
    t
}

/// Busy-waits for at least `ns` nanoseconds (returns at once for 0).
#[inline(always)]
pub fn spin_ns(ns: u64) {
    if ns == 0 {
        return;
    }
    let start = globaltimer_ns();
    while globaltimer_ns().wrapping_sub(start) < ns {}
}

/// Aborts the kernel; the host sees `CUDA_ERROR_LAUNCH_FAILED` (or similar).
#[inline(always)]
pub fn trap() -> ! {
    // SAFETY: `trap` ends the kernel; nothing after it runs.
    unsafe { nvptx::trap() }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    trap()
}
