//! A `&T` parameter is shared by every thread of the grid: `T: Sync`.
#![forbid(unsafe_code)]
use core::cell::Cell;
use nvptx_std::kernel;
nvptx_std::kernel_crate!();

#[kernel]
pub fn count_kernel(counter: &Cell<u32>) {
    counter.set(counter.get() + 1);
}

fn main() {}
