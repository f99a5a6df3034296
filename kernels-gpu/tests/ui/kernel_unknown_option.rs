//! `#[kernel]` takes only `same_len(..)`, `pdl` and `faults = name`.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(same_length(input, output))]
pub fn copy_kernel(input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = input[i];
    }
}

fn main() {}
