//! `impl Trait` parameters make a generic fn; a PTX entry has one signature.
#![forbid(unsafe_code)]
use nvptx_std::kernel;
nvptx_std::kernel_crate!();

#[kernel]
pub fn add_kernel(value: impl Copy) {
    let _ = value;
}

#[kernel]
pub fn count_kernel(counter: &impl Sync) {
    let _ = counter;
}

fn main() {}
