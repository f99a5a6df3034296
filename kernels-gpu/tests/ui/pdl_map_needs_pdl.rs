//! Only a `#[kernel(pdl)]` map kernel, which waits for the kernel ahead
//! before touching memory, is a `PdlMapKernel`; a plain one is a
//! `MapKernel` only; a plain map kernel is no `WarpMapKernel`, nor is one
//! of the ring map shape without `pdl, faults = faults`.
use nvptx_std::host::{PdlMapKernel, WarpMapKernel};
use nvptx_std::{Out, OutTiles, kernel};
nvptx_std::kernel_crate!();

#[kernel(same_len(input, output))]
pub fn double_kernel(input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = 2.0 * input[i];
    }
}

#[kernel(same_len(input, output))]
#[allow(clippy::too_many_arguments)]
pub fn plain_ring_kernel(input: &[f32], output: OutTiles<f32>, slots: u32, slot_bytes: u32, timeout_ns: u64, watch: u64, spin: u64, faults: u32) {
    let _ = (input, output, slots, slot_bytes, timeout_ns, watch, spin, faults);
}

fn pdl_map<K: PdlMapKernel>() {}
fn warp_map<K: WarpMapKernel>() {}

fn main() {
    pdl_map::<DoubleKernel>();
    warp_map::<DoubleKernel>();
    warp_map::<PlainRingKernel>();
}
