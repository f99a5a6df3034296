//! A raw pointer carries no length and no ownership.
#![forbid(unsafe_code)]
use nvptx_std::kernel;
nvptx_std::kernel_crate!();

#[kernel]
pub fn fill_kernel(data: *mut f32, n: u64) {
    let _ = (data, n);
}

fn main() {}
