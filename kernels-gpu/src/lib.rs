//! The pipeline's kernels. Each is `extern "ptx-kernel"` and `#[no_mangle]`, so
//! its PTX `.entry` has the Rust name; the host launches it by that name.
//!
//! Kernels only move data and loop; what each element becomes is defined in
//! `kernel-math`, which the host's CPU reference calls too.
//!
//! Every kernel uses a grid-stride loop, so any element count works with any
//! launch shape. A panic (say, an arithmetic overflow) traps.
#![no_std]
#![feature(abi_ptx)]

use kernel_math::{consume, produce};
use nvptx_std::{grid_stride, spin_ns};

/// Fills `buffer[0..n]` with `produce(i, seed)`.
///
/// Every thread first spins for `spin_ns` nanoseconds: a slow producer on
/// purpose, which makes a missing synchronization show up reliably.
///
/// # Safety
/// `buffer` must point to `n` writable `f32` in device memory.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn producer_kernel(buffer: *mut f32, n: u64, seed: u32, spin: u64) {
    spin_ns(spin);
    for i in grid_stride(n) {
        // SAFETY: i < n, and the caller gave n elements.
        unsafe { buffer.add(i as usize).write(produce(i, seed)) };
    }
}

/// Writes `output[i] = consume(buffer[i])` for `i < n`.
///
/// # Safety
/// `buffer` must point to `n` readable and `output` to `n` writable `f32` in
/// device memory; the two must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn consumer_kernel(buffer: *const f32, output: *mut f32, n: u64) {
    for i in grid_stride(n) {
        // SAFETY: i < n for both buffers.
        unsafe { output.add(i as usize).write(consume(buffer.add(i as usize).read())) };
    }
}

/// Panics when `trigger` is non-zero. A device panic executes `trap`
/// (nvptx-std's panic handler), so the host's next CUDA call fails with a
/// launch error instead of the GPU hanging; the tests check exactly that.
#[unsafe(no_mangle)]
pub extern "ptx-kernel" fn panic_kernel(trigger: u32) {
    if trigger != 0 {
        panic!("panic_kernel triggered");
    }
}
