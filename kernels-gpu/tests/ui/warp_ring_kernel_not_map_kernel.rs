//! A warp-ring map kernel is a stage of the warps grain only
//! (`WarpMapKernel`): never a `MapKernel`, whose launch would give it no
//! ring shared memory and whose parameters (`watch`, a device address the
//! watchdog writes) a safe stage would then set; nor is a ring kernel of
//! the halo shape a `HaloKernel`. A `#[kernel(pdl)]` map kernel is a
//! `PdlMapKernel` as well as a `MapKernel`.
use nvptx_std::host::{HaloKernel, MapKernel, PdlMapKernel, WarpMapKernel};
use nvptx_std::hopper::ring::{StageRing, map_stage};
use nvptx_std::{Out, OutTiles, kernel};
nvptx_std::kernel_crate!();

#[kernel(pdl, faults = faults, same_len(input, output))]
#[allow(clippy::too_many_arguments)]
pub fn double_ring_kernel(input: &[f32], mut output: OutTiles<f32>, slots: u32, slot_bytes: u32, timeout_ns: u64, watch: u64, spin: u64, faults: u32) {
    let ring = StageRing { slots, slot_bytes, timeout_ns, watch, spin, faults };
    // SAFETY: launched only through its WarpMapKernel launcher.
    unsafe { map_stage(input, &mut output, ring, |x: f32| 2.0 * x) }
}

#[kernel(pdl, same_len(input, output))]
pub fn double_pdl_kernel(input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = 2.0 * input[i];
    }
}

#[kernel(pdl, faults = faults, same_len(input, output))]
#[allow(clippy::too_many_arguments)]
pub fn fir_ring_kernel(history: &[f32], input: &[f32], output: OutTiles<f32>, taps: &[f32], slots: u32, slot_bytes: u32, timeout_ns: u64, watch: u64, spin: u64, faults: u32) {
    let _ = (history, input, output, taps, slots, slot_bytes, timeout_ns, watch, spin, faults);
}

fn warp_map<K: WarpMapKernel>() {}
fn halo<K: HaloKernel>() {}
fn pdl_map<K: PdlMapKernel>() {}
fn map<K: MapKernel>() {}

fn main() {
    warp_map::<DoubleRingKernel>();
    pdl_map::<DoublePdlKernel>();
    map::<DoublePdlKernel>();
    map::<DoubleRingKernel>();
    halo::<FirRingKernel>();
}
