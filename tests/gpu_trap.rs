//! A device panic traps: the host gets an error, promptly, instead of a hang.
//! Its own test binary, because a trap leaves the CUDA context unusable for
//! the rest of the process.
use cudarc::driver::{LaunchConfig, PushKernelArg};
use pc_runtime::gpu::Gpu;
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs a CUDA device"]
fn a_device_panic_is_a_launch_error() {
    let gpu = Gpu::open(0).unwrap_or_else(|e| panic!("{e}"));
    let k = gpu.kernel(ptx_kernels::PANIC).unwrap();
    let stream = gpu.stream().unwrap();
    let cfg = LaunchConfig { grid_dim: (4, 1, 1), block_dim: (64, 1, 1), shared_mem_bytes: 0 };
    // Not triggered: runs clean.
    unsafe { stream.launch_builder(&k.func).arg(&0u32).launch(cfg) }.unwrap();
    stream.synchronize().unwrap();
    // Triggered: the launch or the next synchronize fails, within seconds.
    let start = Instant::now();
    let result = unsafe { stream.launch_builder(&k.func).arg(&1u32).launch(cfg) }.and_then(|_| stream.synchronize());
    let err = result.expect_err("a panicking kernel must not report success");
    let text = pc_runtime::error::describe(&err);
    eprintln!("device panic reported as: {text}");
    assert!(text.starts_with("CUDA_ERROR_"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(10));
}
