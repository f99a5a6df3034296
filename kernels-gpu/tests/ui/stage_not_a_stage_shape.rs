//! A kernel that is not of a stage shape (two input slices, the first not
//! named `history`), used as a map stage: the error says which shapes are
//! stages.
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(same_len(a, b, out))]
pub fn add_kernel(a: &[f32], b: &[f32], mut out: Out<f32>) {
    for (i, o) in out.iter_mut() {
        *o = a[i] + b[i];
    }
}

fn as_map_stage<K: nvptx_std::host::MapKernel>() {}
fn as_halo_stage<K: nvptx_std::host::HaloKernel>() {}

fn main() {
    as_map_stage::<AddKernel>();
    as_halo_stage::<AddKernel>();
}
