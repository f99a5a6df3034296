//! `consumer_kernel(buffer: &[f32], ..)`: its launcher takes a device slice
//! of `f32`, not of `u32`. Inside `unsafe` so the error is the type.
use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use kernels_gpu::ConsumerKernel;
use pc_runtime::launch::Kernel;

fn run(kernel: &Kernel<ConsumerKernel>, stream: &CudaStream, cfg: LaunchConfig, buffer: &CudaSlice<u32>, output: &mut CudaSlice<f32>) {
    // SAFETY: never runs; the point is the type error.
    let _ = unsafe { ConsumerKernel::launch(kernel, stream, cfg, buffer, output, 0) };
}

fn main() {}
