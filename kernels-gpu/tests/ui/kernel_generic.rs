//! A PTX entry has one signature.
#![forbid(unsafe_code)]
use nvptx_std::{Element, Out, kernel};
nvptx_std::kernel_crate!();

#[kernel]
pub fn copy_kernel<T: Element>(input: &[T], mut output: Out<T>) {
    for (i, o) in output.iter_mut() {
        *o = input[i];
    }
}

fn main() {}
