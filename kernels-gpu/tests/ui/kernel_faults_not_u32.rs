//! The fault knob is a `u32` parameter of the kernel.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(pdl, faults = faults)]
pub fn copy_kernel(input: &[f32], mut output: Out<f32>, faults: u64) {
    let _ = faults;
    for (i, o) in output.iter_mut() {
        *o = input[i];
    }
}

#[kernel(pdl, faults = missing)]
pub fn other_kernel(input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = input[i];
    }
}

fn main() {}
