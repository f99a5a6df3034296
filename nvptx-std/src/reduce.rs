//! The reduce stage's device body, shared by the kernel crates (kernels-gpu's
//! `reduce_kernel`, kernels-hopper's PDL one), so it is written once.
use crate::{Quads, grid_stride, grid_stride_from, lane, shfl_xor, warps_are_full};
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
    // contract), so full warps are converged here.
    unsafe { add_warp_totals(r, out) }
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
        // Butterfly: afterwards every lane holds the warp's totals.
        let mut m = 16;
        while m > 0 {
            // SAFETY: every lane of this full warp runs the same loop with
            // the same masks (the caller's contract: converged).
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
        leader = lane() == 0;
    }
    if leader && r.hist.iter().any(|&c| c != 0) {
        out.add(&r);
    }
}
