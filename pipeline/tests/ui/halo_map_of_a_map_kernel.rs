//! Stage::halo_map takes only kernels of the halo shape (`HaloKernel`, which
//! #[kernel] implements for `fn(history: &[I], input: &[I], output: Out<O>)`),
//! and its reference has the kernel's element types.
#![forbid(unsafe_code)]
fn main() {
    let _ = pc_pipeline::Stage::halo_map::<ptx_kernels::ConsumerKernel>("consumer", ptx_kernels::PTX, 2, |_, _, _| ());
    let reference: fn(&[u32], &[u32], &mut [u32]) = |_, i, o| o.copy_from_slice(i);
    let _ = pc_pipeline::Stage::halo_map::<ptx_kernels::MovingAverageKernel>("moving-average", ptx_kernels::PTX, 2, reference);
}
