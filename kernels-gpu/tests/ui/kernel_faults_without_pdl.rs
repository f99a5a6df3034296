//! `faults = f` is the fault knob of the wait `pdl` inserts: without `pdl`
//! it has nothing to skip.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(faults = faults)]
pub fn copy_kernel(input: &[f32], mut output: Out<f32>, faults: u32) {
    let _ = faults;
    for (i, o) in output.iter_mut() {
        *o = input[i];
    }
}

fn main() {}
