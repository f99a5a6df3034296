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

use core::sync::atomic::{AtomicI64, AtomicU32, Ordering::Relaxed};
use kernel_math::{HIST_BINS, Reduction, consume, produce};
use nvptx_std::{F32x4, aligned16, grid_stride, grid_stride_from, lane, shfl_xor, spin_ns, warps_are_full};

/// Fills `buffer[0..n]` with `produce(first + i, seed)`: element `i` of a
/// chunk that starts at global index `first`.
///
/// Every thread first spins for `spin` nanoseconds: a slow producer on
/// purpose, which makes a missing synchronization show up reliably.
///
/// # Safety
/// `buffer` must point to `n` writable `f32` in device memory.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn producer_kernel(buffer: *mut f32, n: u64, first: u64, seed: u32, spin: u64) {
    spin_ns(spin);
    for i in grid_stride(n) {
        // SAFETY: i < n, and the caller gave n elements.
        unsafe { buffer.add(i as usize).write(produce(first.wrapping_add(i), seed)) };
    }
}

/// Writes `output[i] = consume(buffer[i])` for `i < n`, after a spin of
/// `spin` nanoseconds (0: none).
///
/// # Safety
/// `buffer` must point to `n` readable and `output` to `n` writable `f32` in
/// device memory; the two must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn consumer_kernel(buffer: *const f32, output: *mut f32, n: u64, spin: u64) {
    spin_ns(spin);
    for i in grid_stride(n) {
        // SAFETY: i < n for both buffers.
        unsafe { output.add(i as usize).write(consume(buffer.add(i as usize).read())) };
    }
}

/// `producer_kernel` with 16-byte stores: each loop trip writes four
/// elements with one `st.global.v4.f32`, so fewer, wider transactions keep
/// more bytes in flight. A buffer that is not 16-byte aligned, and the last
/// `n % 4` elements, take the scalar path. Same results as `producer_kernel`.
///
/// # Safety
/// As `producer_kernel`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn producer_vec_kernel(buffer: *mut f32, n: u64, first: u64, seed: u32, spin: u64) {
    spin_ns(spin);
    let quads = if aligned16(buffer) { n / 4 } else { 0 };
    let out = buffer as *mut F32x4;
    for q in grid_stride(quads) {
        let i = first.wrapping_add(4 * q);
        let v = F32x4([produce(i, seed), produce(i + 1, seed), produce(i + 2, seed), produce(i + 3, seed)]);
        // SAFETY: 4q + 3 < n, and `out` is 16-byte aligned.
        unsafe { out.add(q as usize).write(v) };
    }
    for i in grid_stride_from(quads * 4, n) {
        // SAFETY: i < n.
        unsafe { buffer.add(i as usize).write(produce(first.wrapping_add(i), seed)) };
    }
}

/// `consumer_kernel` with 16-byte loads and stores (see `producer_vec_kernel`).
///
/// # Safety
/// As `consumer_kernel`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn consumer_vec_kernel(buffer: *const f32, output: *mut f32, n: u64, spin: u64) {
    spin_ns(spin);
    let quads = if aligned16(buffer) && aligned16(output) { n / 4 } else { 0 };
    let (inp, out) = (buffer as *const F32x4, output as *mut F32x4);
    for q in grid_stride(quads) {
        // SAFETY: 4q + 3 < n, both 16-byte aligned.
        let F32x4([a, b, c, d]) = unsafe { inp.add(q as usize).read() };
        unsafe { out.add(q as usize).write(F32x4([consume(a), consume(b), consume(c), consume(d)])) };
    }
    for i in grid_stride_from(quads * 4, n) {
        // SAFETY: i < n.
        unsafe { output.add(i as usize).write(consume(buffer.add(i as usize).read())) };
    }
}

/// `fused_kernel` with 16-byte stores.
///
/// # Safety
/// As `fused_kernel`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn fused_vec_kernel(output: *mut f32, n: u64, first: u64, seed: u32) {
    let quads = if aligned16(output) { n / 4 } else { 0 };
    let out = output as *mut F32x4;
    let f = |i: u64| consume(produce(i, seed));
    for q in grid_stride(quads) {
        let i = first.wrapping_add(4 * q);
        // SAFETY: 4q + 3 < n, 16-byte aligned.
        unsafe { out.add(q as usize).write(F32x4([f(i), f(i + 1), f(i + 2), f(i + 3)])) };
    }
    for i in grid_stride_from(quads * 4, n) {
        // SAFETY: i < n.
        unsafe { output.add(i as usize).write(f(first.wrapping_add(i))) };
    }
}

/// Producer and consumer fused: `output[i] = consume(produce(first + i,
/// seed))`, with no intermediate buffer. The bound for any two-kernel
/// producer/consumer pipeline: it moves only the output's bytes.
///
/// # Safety
/// `output` must point to `n` writable `f32` in device memory.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn fused_kernel(output: *mut f32, n: u64, first: u64, seed: u32) {
    for i in grid_stride(n) {
        // SAFETY: i < n.
        unsafe { output.add(i as usize).write(consume(produce(first.wrapping_add(i), seed))) };
    }
}

/// 3-point moving average over one chunk: `output[i] =
/// moving_average3(input[i - 1], input[i], input[i + 1])`, the chunk's edges
/// repeating their own element. The example stage of the README's
/// "Adding a stage" guide.
///
/// # Safety
/// `input` must point to `n` readable and `output` to `n` writable `f32`,
/// not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn moving_average_kernel(input: *const f32, output: *mut f32, n: u64, spin: u64) {
    spin_ns(spin);
    for i in grid_stride(n) {
        // SAFETY: every index read is clamped into 0..n.
        let at = |j: u64| unsafe { input.add(j as usize).read() };
        let x = at(i);
        let left = if i > 0 { at(i - 1) } else { x };
        let right = if i + 1 < n { at(i + 1) } else { x };
        unsafe { output.add(i as usize).write(kernel_math::moving_average3(left, x, right)) };
    }
}

/// Adds `input[0..n]` into `*out` (sum, min, max, histogram; see
/// `kernel_math::Reduction`), after a spin of `spin` nanoseconds. `*out` must
/// start as `Reduction::EMPTY`. Each thread reduces its grid-stride share,
/// full warps combine lanes with shuffles, and one lane per warp adds the
/// result with atomics, so the record is the same whatever the order.
///
/// # Safety
/// `input` must point to `n` readable `f32`; `out` to a `Reduction` in device
/// memory, 8-byte aligned.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn reduce_kernel(input: *const f32, n: u64, out: *mut Reduction, spin: u64) {
    spin_ns(spin);
    let mut r = Reduction::EMPTY;
    let quads = if aligned16(input) { n / 4 } else { 0 };
    for q in grid_stride(quads) {
        // SAFETY: 4q + 3 < n, 16-byte aligned.
        let F32x4(v) = unsafe { (input as *const F32x4).add(q as usize).read() };
        v.into_iter().for_each(|x| r.add(x));
    }
    for i in grid_stride_from(quads * 4, n) {
        // SAFETY: i < n.
        r.add(unsafe { input.add(i as usize).read() });
    }
    let mut leader = true;
    if warps_are_full() {
        // Butterfly: afterwards every lane holds the warp's totals.
        let mut m = 16;
        while m > 0 {
            let lo = shfl_xor(r.sum_fixed as u64 as u32, m);
            let hi = shfl_xor((r.sum_fixed as u64 >> 32) as u32, m);
            r.sum_fixed = r.sum_fixed.wrapping_add(((hi as u64) << 32 | lo as u64) as i64);
            r.min_key = r.min_key.min(shfl_xor(r.min_key, m));
            r.max_key = r.max_key.max(shfl_xor(r.max_key, m));
            for b in 0..HIST_BINS {
                r.hist[b] += shfl_xor(r.hist[b], m);
            }
            m /= 2;
        }
        leader = lane() == 0;
    }
    if !leader || r.hist.iter().all(|&c| c == 0) {
        return;
    }
    // SAFETY: `out` is a valid, aligned Reduction (caller); fields are
    // accessed only through atomics by every thread of every block.
    unsafe {
        AtomicI64::from_ptr(&raw mut (*out).sum_fixed).fetch_add(r.sum_fixed, Relaxed);
        AtomicU32::from_ptr(&raw mut (*out).min_key).fetch_min(r.min_key, Relaxed);
        AtomicU32::from_ptr(&raw mut (*out).max_key).fetch_max(r.max_key, Relaxed);
        for b in 0..HIST_BINS {
            if r.hist[b] != 0 {
                AtomicU32::from_ptr(&raw mut (*out).hist[b]).fetch_add(r.hist[b], Relaxed);
            }
        }
    }
}

/// Spins for `ns` nanoseconds and does nothing else: launched (one thread)
/// ahead of a copy stage to slow that stream down on purpose.
#[unsafe(no_mangle)]
pub extern "ptx-kernel" fn delay_kernel(ns: u64) {
    spin_ns(ns);
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
