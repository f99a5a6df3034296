//! A stage cannot touch its ring's counters: publishing *filled* before the
//! slot is written would let the reader read while it writes. The fields
//! are private, and the protocol's accessors are `unsafe`.
#![forbid(unsafe_code)]
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_math::ring::{RingControl, RingFlags, RingPlan};
use nvptx_std::kernel;
use nvptx_std::ring::RingSlots;
nvptx_std::kernel_crate!();

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn early_filled_kernel(
    plan: &RingPlan,
    ctl: &RingControl,
    input: RingSlots<f32>,
    in_flags: &RingFlags,
    output: RingSlots<f32>,
    out_flags: &RingFlags,
    stamps: &[AtomicU64],
    stage: u32,
    spin: u64,
    faults: u32,
) {
    let _ = (plan, ctl, input, in_flags, output, stamps, stage, spin, faults);
    out_flags.filled[0].fetch_add(1, Ordering::Release);
    ctl.status.store(0, Ordering::Relaxed);
}

fn main() {}
