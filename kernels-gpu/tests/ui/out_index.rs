//! `Out` has no `IndexMut`: a thread writes only the elements `iter_mut`
//! gives it, so `out[i]` (any `i`) does not compile.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel]
pub fn fill_kernel(mut output: Out<f32>, value: f32) {
    output[0] = value;
}

fn main() {}
