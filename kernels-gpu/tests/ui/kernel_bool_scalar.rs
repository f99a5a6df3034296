//! A by-value parameter must be a `Scalar` (any bits valid): not `bool`.
//! One error, at the type.
#![forbid(unsafe_code)]
use nvptx_std::kernel;
nvptx_std::kernel_crate!();

#[kernel]
pub fn flag_kernel(flag: bool) {
    let _ = flag;
}

fn main() {}
