//! A ring is not an output the kernel owns: `RingSlots` under the name
//! `Out` (which would make a `MapKernel` of the default grain) does not
//! convert as an `Out` parameter.
#![forbid(unsafe_code)]
use nvptx_std::kernel;
use nvptx_std::ring::RingSlots as Out;
nvptx_std::kernel_crate!();

#[kernel]
pub fn ring_map_kernel(input: &[f32], output: Out<f32>) {
    let _ = (input, output);
}

fn main() {}
