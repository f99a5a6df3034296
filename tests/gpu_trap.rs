//! A device panic traps: the host gets an error, promptly, instead of a hang.
//! Its own test binary, because a trap leaves the CUDA context unusable for
//! the rest of the process.
use cudarc::driver::LaunchConfig;
use pc_runtime::gpu::Gpu;
use ptx_kernels::PanicKernel;
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs a CUDA device"]
fn a_device_panic_is_a_launch_error() {
    let gpu = Gpu::open(0).unwrap_or_else(|e| panic!("{e}"));
    let k = ptx_kernels::load(&gpu).unwrap().kernel::<PanicKernel>().unwrap();
    // SAFETY: one stream, no buffers.
    let stream = unsafe { gpu.stream() }.unwrap();
    let cfg = LaunchConfig { grid_dim: (4, 1, 1), block_dim: (64, 1, 1), shared_mem_bytes: 0 };
    // Not triggered: runs clean.
    // SAFETY: panic_kernel touches no memory.
    unsafe { PanicKernel::launch(&k, &stream, cfg, 0) }.unwrap();
    stream.synchronize().unwrap();
    // Triggered: the launch or the next synchronize fails, within seconds.
    let start = Instant::now();
    // SAFETY: as above.
    let result =
        unsafe { PanicKernel::launch(&k, &stream, cfg, 1) }.and_then(|_| stream.synchronize().map_err(pc_runtime::Error::cuda("running panic_kernel")));
    let err = result.expect_err("a panicking kernel must not report success");
    let text = err.to_string();
    eprintln!("device panic reported as: {text}");
    assert!(text.contains("CUDA_ERROR_"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(10));
}
