//! A launch is `unsafe`: cross-stream ordering is the caller's.
#![forbid(unsafe_code)]
use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use kernels_gpu::ConsumerKernel;
use pc_runtime::launch::Kernel;

fn run(kernel: &Kernel<ConsumerKernel>, stream: &CudaStream, cfg: LaunchConfig, buffer: &CudaSlice<f32>, output: &mut CudaSlice<f32>) {
    let _ = ConsumerKernel::launch(kernel, stream, cfg, buffer, output, 0);
}

fn main() {}
