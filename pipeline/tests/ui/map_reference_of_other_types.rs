//! A map stage's CPU reference has the kernel's element types: consumer_kernel maps f32 to f32.
#![forbid(unsafe_code)]
fn main() {
    let reference: fn(&[u32], &mut [u32]) = |i, o| o.copy_from_slice(i);
    let _ = pc_pipeline::Stage::map::<ptx_kernels::ConsumerKernel>("consumer", ptx_kernels::PTX, reference);
}
