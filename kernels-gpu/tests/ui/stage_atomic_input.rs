//! `(counts: &[AtomicU32], out: Out<u32>)` is a kernel (it compiles: see
//! tests/ui/pass/stage_atomic_input_compiles.rs) but not a stage: a ring
//! carries Elements, and an atomic is none. Used as one, the error names
//! the missing bound.
use core::sync::atomic::{AtomicU32, Ordering};
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel]
pub fn read_counts_kernel(counts: &[AtomicU32], mut out: Out<u32>) {
    for (i, o) in out.iter_mut() {
        *o = counts[i].load(Ordering::Relaxed);
    }
}

fn as_map_stage<K: nvptx_std::host::MapKernel>() {}

fn main() {
    as_map_stage::<ReadCountsKernel>();
}
