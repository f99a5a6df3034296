//! Device memory may hold any bits; a `bool` may not: not an `Element`.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(same_len(flags, output))]
pub fn count_kernel(flags: &[bool], mut output: Out<u32>) {
    for (i, o) in output.iter_mut() {
        *o = flags[i] as u32;
    }
}

fn main() {}
