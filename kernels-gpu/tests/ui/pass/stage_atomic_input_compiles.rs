//! A kernel reading `&[AtomicU32]` into an `Out<u32>` has the map shape but
//! is no stage (an atomic is not an Element): it must still compile, as a
//! kernel with its own launcher.
use core::sync::atomic::{AtomicU32, Ordering};
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel]
pub fn read_counts_kernel(counts: &[AtomicU32], mut out: Out<u32>) {
    for (i, o) in out.iter_mut() {
        *o = counts[i].load(Ordering::Relaxed);
    }
}

/// After the output, an atomic counter: still a kernel, not a stage.
#[kernel]
pub fn count_kernel(input: &[u32], mut out: Out<u32>, seen: &AtomicU32) {
    for (i, o) in out.iter_mut() {
        seen.fetch_add(1, Ordering::Relaxed);
        *o = input[i];
    }
}

fn main() {
    let _ = (ReadCountsKernel, CountKernel);
}
