//! `same_len` names a parameter the kernel lacks (a typo).
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(same_len(input, ouptut))]
pub fn copy_kernel(input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = input[i];
    }
}

fn main() {}
