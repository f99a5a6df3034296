//! cudarc's event tracking is off, so its safe API would race across
//! streams: the cudarc handles of a `Gpu` are `unsafe` to take.
#![forbid(unsafe_code)]
use pc_runtime::gpu::Gpu;

fn handles(gpu: &Gpu) {
    let _context = gpu.context();
    let _stream = gpu.stream();
}

fn main() {}
