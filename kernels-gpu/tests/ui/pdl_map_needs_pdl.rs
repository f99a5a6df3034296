//! Only a `#[kernel(pdl)]` map kernel, which waits for the kernel ahead
//! before touching memory, is a `PdlMapKernel`; a plain one is a
//! `MapKernel` only, and a ring-map-shaped kernel without `pdl, faults =
//! faults` is no `WarpMapKernel`.
use nvptx_std::host::{PdlMapKernel, WarpMapKernel};
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(same_len(input, output))]
pub fn double_kernel(input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = 2.0 * input[i];
    }
}

fn pdl_map<K: PdlMapKernel>() {}
fn warp_map<K: WarpMapKernel>() {}

fn main() {
    pdl_map::<DoubleKernel>();
    warp_map::<DoubleKernel>();
}
