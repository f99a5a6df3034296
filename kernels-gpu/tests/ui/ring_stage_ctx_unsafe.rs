//! The ring runners take a `StageCtx`, and only the `unsafe`
//! `StageCtx::new` makes one: its contract is the flags grain's launch (in
//! any other, every block would take every chunk of the ring at once).
use core::sync::atomic::AtomicU64;
use kernel_math::ring::{RingControl, RingFlags, RingPlan};
use nvptx_std::kernel;
use nvptx_std::ring::{RingSlots, StageCtx};
nvptx_std::kernel_crate!();

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn double_flags_kernel(
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
    let _ = (stamps, faults);
    let ctx = StageCtx::new(plan, ctl, stage);
    nvptx_std::ring::map(&ctx, (input, in_flags), (output, out_flags), spin, |x: f32| 2.0 * x);
}

fn main() {}
