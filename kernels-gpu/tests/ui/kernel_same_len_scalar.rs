//! `same_len` compares slice lengths; `n` is a scalar.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(same_len(output, n))]
pub fn iota_kernel(mut output: Out<u64>, n: u64) {
    for (i, o) in output.iter_mut() {
        *o = n + i as u64;
    }
}

fn main() {}
