//! `consumer_kernel(buffer, output, spin)`: the launcher wants all three.
use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use kernels_gpu::ConsumerKernel;
use pc_runtime::launch::Kernel;

fn run(kernel: &Kernel<ConsumerKernel>, stream: &CudaStream, cfg: LaunchConfig, buffer: &CudaSlice<f32>, output: &mut CudaSlice<f32>) {
    // SAFETY: never runs; the point is the argument count.
    let _ = unsafe { ConsumerKernel::launch(kernel, stream, cfg, buffer, output) };
}

fn main() {}
