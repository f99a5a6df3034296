//! A flag-map kernel is a stage of the flags grain only (`FlagMapKernel`):
//! never a `MapKernel`, which the default grain launches once per chunk over
//! the whole grid (every block would then run the whole ring at once).
use core::sync::atomic::AtomicU64;
use kernel_math::ring::{RingControl, RingFlags, RingPlan};
use nvptx_std::host::{FlagMapKernel, MapKernel};
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
    // SAFETY: launched only as a stage of the flags grain.
    let ctx = unsafe { StageCtx::new(plan, ctl, stage) };
    nvptx_std::ring::map(&ctx, (input, in_flags), (output, out_flags), spin, |x: f32| 2.0 * x);
}

fn flag_map<K: FlagMapKernel>() {}
fn map<K: MapKernel>() {}

fn main() {
    flag_map::<DoubleFlagsKernel>();
    map::<DoubleFlagsKernel>();
}
