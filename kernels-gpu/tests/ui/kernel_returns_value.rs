//! A PTX entry returns nothing.
#![forbid(unsafe_code)]
use nvptx_std::kernel;
nvptx_std::kernel_crate!();

#[kernel]
pub fn sum_kernel(input: &[f32]) -> f32 {
    input.iter().sum()
}

fn main() {}
