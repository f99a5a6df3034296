//! Every thread of the grid would hold the same `&mut`.
#![forbid(unsafe_code)]
use nvptx_std::kernel;
nvptx_std::kernel_crate!();

#[kernel]
pub fn scale_kernel(data: &mut [f32], factor: f32) {
    for x in data {
        *x *= factor;
    }
}

fn main() {}
