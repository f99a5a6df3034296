//! Only a `#[kernel(pdl)]` kernel, whose entry waits for the kernel ahead of
//! it, may be launched with the PDL attribute: a plain kernel has no
//! `launch_pdl`, and `Args::launch_pdl` wants `PdlKernel`.
use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use kernels_gpu::ConsumerKernel;
use pc_runtime::launch::{Args, Kernel};

fn run(kernel: &Kernel<ConsumerKernel>, stream: &CudaStream, cfg: LaunchConfig, buffer: &CudaSlice<f32>, output: &mut CudaSlice<f32>) {
    // SAFETY: never runs; the point is that it does not compile.
    let _ = unsafe { ConsumerKernel::launch_pdl(kernel, stream, cfg, buffer, output, 0) };
    let args = Args::new(kernel, stream, cfg).unwrap();
    let _ = unsafe { args.launch_pdl() };
}

fn main() {}
