//! A `&T` parameter is element 0 of a device buffer: `T` must be sized.
#![forbid(unsafe_code)]
use nvptx_std::kernel;
nvptx_std::kernel_crate!();

#[kernel]
pub fn name_kernel(name: &str) {
    let _ = name;
}

#[kernel]
pub fn any_kernel(value: &dyn Sync) {
    let _ = value;
}

fn main() {}
