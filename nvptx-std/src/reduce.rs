//! The reduce stage's device body, shared by the kernel crates (kernels-gpu's
//! `reduce_kernel`, kernels-hopper's PDL one), so it is written once.
use crate::{Quads, grid_stride, grid_stride_from, lane, shfl_xor, warps_are_full};
#[cfg(target_arch = "nvptx64")]
use core::arch::nvptx;
use kernel_math::{AtomicReduction, HIST_BINS, Reduction};

/// Adds `input` into `*out` (sum, min, max, histogram; see
/// `kernel_math::Reduction`). Each thread reduces its grid-stride share,
/// full warps combine lanes with shuffles, and one lane per warp adds the
/// result with atomics, so the record is the same whatever the order.
///
/// # Safety
/// Every thread of the grid calls it at the same point (none returned or
/// branched away before): the warp shuffles need whole, converged warps.
#[inline(always)]
pub unsafe fn reduce_f32(input: &[f32], out: &AtomicReduction) {
    let mut r = Reduction::EMPTY;
    let quads = Quads::new(input);
    let whole = quads.map_or(0, |q| q.len());
    if let Some(quads) = quads {
        for q in grid_stride(whole as u64) {
            quads.get(q as usize).into_iter().for_each(|x| r.add(x));
        }
    }
    for i in grid_stride_from(4 * whole as u64, input.len() as u64) {
        r.add(input[i as usize]);
    }
    // SAFETY: every thread of the grid calls this function (the caller's
    // contract): full warps are converged here, and every thread of the
    // block reaches the block's barrier.
    unsafe { add_block_totals(r, out) }
}

/// Dynamic shared memory for `reduce_f32` to combine a block's warps before
/// its atomics (one partial record per warp, up to 32 warps): launch with
/// it and the block adds its record once; without it each warp adds its own
/// (many more atomics on the same few addresses: at 4 MiB over 528 blocks of
/// 256 threads, 25 us on an H100 for a read of 4 us).
pub const REDUCE_SHARED_BYTES: u32 = 32 * core::mem::size_of::<Reduction>() as u32;

/// [`add_warp_totals`], with the block's warps combined first through
/// dynamic shared memory when the launch gave [`REDUCE_SHARED_BYTES`] and
/// the block is whole warps (one atomic addition a block, not a warp).
///
/// # Safety
/// Every thread of the block calls it at the same point (a block barrier
/// follows), converged within its warp.
#[inline(always)]
unsafe fn add_block_totals(r: Reduction, out: &AtomicReduction) {
    #[cfg(target_arch = "nvptx64")]
    if warps_are_full() && crate::dynamic_smem_bytes() >= REDUCE_SHARED_BYTES && crate::sreg::ntid() <= 1024 {
        let slots = core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<u128>() as *mut Reduction;
        let (warp, warps) = (crate::sreg::tid() / 32, crate::sreg::ntid() / 32);
        // SAFETY: converged full warps (the caller's contract).
        let w = unsafe { warp_total(r) };
        if lane() == 0 {
            // SAFETY: slot `warp` < 32 of the launch's REDUCE_SHARED_BYTES
            // (checked), this warp's alone until the barrier.
            unsafe { slots.add(warp as usize).write(w) };
        }
        // SAFETY: every thread of the block gets here (the caller's contract).
        unsafe { nvptx::_syncthreads() };
        if warp == 0 {
            // SAFETY: written before the barrier; read only after it.
            let p = if lane() < warps { unsafe { slots.add(lane() as usize).read() } } else { Reduction::EMPTY };
            // SAFETY: warp 0 is whole and converged here.
            let t = unsafe { warp_total(p) };
            if lane() == 0 && t.hist.iter().any(|&c| c != 0) {
                out.add(&t);
            }
        }
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { add_warp_totals(r, out) }
}

/// The totals of a full, converged warp's partial records, in every lane
/// (a butterfly of shuffles).
///
/// # Safety
/// Every lane of the calling thread's full warp calls this at the same point.
#[inline(always)]
unsafe fn warp_total(mut r: Reduction) -> Reduction {
    let mut m = 16;
    while m > 0 {
        // SAFETY: every lane runs the same loop with the same masks (the caller's contract).
        unsafe {
            let lo = shfl_xor(r.sum_fixed as u64 as u32, m);
            let hi = shfl_xor((r.sum_fixed as u64 >> 32) as u32, m);
            r.sum_fixed = r.sum_fixed.wrapping_add(((hi as u64) << 32 | lo as u64) as i64);
            r.min_key = r.min_key.min(shfl_xor(r.min_key, m));
            r.max_key = r.max_key.max(shfl_xor(r.max_key, m));
            for b in 0..HIST_BINS {
                r.hist[b] += shfl_xor(r.hist[b], m);
            }
        }
        m /= 2;
    }
    r
}

/// Adds one thread's partial reduction `r` into `*out`: in a full warp the
/// lanes combine by shuffles and lane 0 adds (one atomic add per warp);
/// otherwise every thread adds its own.
///
/// # Safety
/// When the block is whole warps ([`warps_are_full`]), every lane of the
/// calling thread's warp calls this at the same point (converged): the
/// shuffles are `shfl.sync` with a full mask.
#[inline(always)]
pub unsafe fn add_warp_totals(mut r: Reduction, out: &AtomicReduction) {
    let mut leader = true;
    if warps_are_full() {
        // SAFETY: a full warp, converged (the caller's contract).
        r = unsafe { warp_total(r) };
        leader = lane() == 0;
    }
    if leader && r.hist.iter().any(|&c| c != 0) {
        out.add(&r);
    }
}
