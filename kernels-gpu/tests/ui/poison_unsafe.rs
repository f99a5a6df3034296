//! `poison` writes a buffer on a stream with no tracking: `unsafe`.
#![forbid(unsafe_code)]
use cudarc::driver::{CudaSlice, CudaStream};

fn clear(stream: &CudaStream, buf: &mut CudaSlice<f32>) {
    let _ = pc_runtime::gpu::poison(stream, buf);
}

fn main() {}
