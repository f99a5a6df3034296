//! `RingSlots` is a ring of the flags grain, shared with another kernel
//! running at the same time: only a flag shape (source, map, sink) may take
//! it, so a ring kernel never becomes a `MapKernel` of the default grain.
#![forbid(unsafe_code)]
use nvptx_std::kernel;
use nvptx_std::ring::RingSlots;
nvptx_std::kernel_crate!();

#[kernel]
pub fn ring_map_kernel(input: &[f32], output: RingSlots<f32>) {
    let _ = (input, output);
}

fn main() {}
