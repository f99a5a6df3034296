//! `Out<T>` writes device memory that may hold any bits: `T: Element`.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel]
pub fn flag_kernel(mut output: Out<bool>) {
    for (_, o) in output.iter_mut() {
        *o = true;
    }
}

fn main() {}
