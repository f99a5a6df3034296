//! A `&bool` parameter: the device would read whatever bits the buffer holds.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel]
pub fn flag_kernel(flag: &bool, mut output: Out<u32>) {
    for (_, o) in output.iter_mut() {
        *o = *flag as u32;
    }
}

fn main() {}
