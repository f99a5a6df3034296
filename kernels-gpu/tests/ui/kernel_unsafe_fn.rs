//! The body of a kernel is safe Rust.
use nvptx_std::kernel;
nvptx_std::kernel_crate!();

#[kernel]
pub unsafe fn noop_kernel(n: u64) {
    let _ = n;
}

fn main() {}
