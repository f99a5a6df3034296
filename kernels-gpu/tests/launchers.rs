//! The host side of `#[kernel]`, without a GPU: launcher names, PTX parameter
//! sizes, and the device buffer types each launcher takes. (That the
//! project's launchers match the PTX itself is checked in the root package's
//! `tests/launchers.rs`, which embeds the PTX.)
use core::sync::atomic::{AtomicU32, Ordering};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, LaunchConfig};
use kernel_math::AtomicReduction;
use nvptx_std::host::{Error, Kernel, KernelEntry};
use nvptx_std::{Out, OutQuads, kernel};

nvptx_std::kernel_crate!();

/// One parameter of each kind.
#[kernel(same_len(input, bytes))]
pub fn every_param_kernel(input: &[f32], mut bytes: Out<u8>, total: &AtomicReduction, a: u32, b: u64, c: f64) {
    for (i, o) in bytes.iter_mut() {
        *o = (input[i] as f64 * c) as u8;
    }
    total.min_key.fetch_min(a, Ordering::Relaxed);
    total.sum_fixed.fetch_add(b as i64, Ordering::Relaxed);
}

/// Small scalars keep their own size; `OutQuads` is a slice like `Out`.
#[kernel]
pub fn small_scalars_kernel(mut words: OutQuads<u32>, byte: u8, half: i16, counter: &AtomicU32) {
    for (_, q) in words.quads() {
        q.write([byte as u32; 4]);
    }
    for (_, w) in words.tail() {
        *w = half as u32;
    }
    counter.fetch_add(1, Ordering::Relaxed);
}

#[kernel]
pub fn no_params_kernel() {}

/// A launcher's name is the CamelCase of the kernel's, char by char.
#[kernel]
#[allow(non_snake_case)]
pub fn écart__2_kernel(n: u32) {
    let _ = n;
}

/// A `#[cfg]` below `#[kernel]` removes the launcher with the kernel: this
/// one names a type that does not exist.
#[kernel]
#[cfg(any())]
pub fn compiled_out_kernel(input: &[NoSuchType]) {
    let _ = input;
}

/// Parameters named like the launchers' own (`kernel`, `stream`, `cfg`,
/// `launch_with_faults`' `pdl`, the argument list `__args`): the launchers
/// take them under these names and rename their own.
#[kernel(pdl, faults = faults)]
#[allow(clippy::too_many_arguments)]
pub fn named_like_the_launcher_kernel(kernel: &[f32], mut stream: Out<f32>, cfg: u32, pdl: u64, __args: u8, kernel_: u32, faults: u32) {
    for (i, o) in stream.iter_mut() {
        *o = kernel[i] + (cfg as u64 + pdl + __args as u64 + kernel_ as u64 + faults as u64) as f32;
    }
}

/// The launchers of `named_like_the_launcher_kernel`, called with its
/// parameters by their names (compiled, never run).
#[allow(dead_code, clippy::too_many_arguments)]
unsafe fn launch_named_like_the_launcher(
    k: &Kernel<NamedLikeTheLauncherKernel>,
    s: &CudaStream,
    c: LaunchConfig,
    kernel: &CudaSlice<f32>,
    stream: &mut CudaSlice<f32>,
    cfg: u32,
    pdl: u64,
    __args: u8,
    kernel_: u32,
) -> Result<(), Error> {
    unsafe {
        NamedLikeTheLauncherKernel::launch(k, s, c, kernel, stream, cfg, pdl, __args, kernel_)?;
        NamedLikeTheLauncherKernel::launch_pdl(k, s, c, kernel, stream, cfg, pdl, __args, kernel_)?;
        NamedLikeTheLauncherKernel::launch_with_faults(k, s, c, true, kernel, stream, cfg, pdl, __args, kernel_, 0)
    }
}

#[test]
fn parameters_may_have_the_launchers_names() {
    assert_eq!(NamedLikeTheLauncherKernel::PARAM_BYTES, &[8, 8, 8, 8, 4, 8, 1, 4, 4]);
    let names: Vec<&str> = NamedLikeTheLauncherKernel::PARAM_LAYOUT.iter().map(|p| p.name).collect();
    assert_eq!(names, ["kernel", "stream", "cfg", "pdl", "__args", "kernel_", "faults"]);
}

#[test]
fn param_layouts_are_the_element_types_on_the_host() {
    let layout: Vec<(&str, usize, usize)> = EveryParamKernel::PARAM_LAYOUT.iter().map(|p| (p.name, p.size, p.align)).collect();
    let total = (size_of::<AtomicReduction>(), align_of::<AtomicReduction>());
    assert_eq!(layout, [("input", 4, 4), ("bytes", 1, 1), ("total", total.0, total.1), ("a", 4, 4), ("b", 8, 8), ("c", 8, 8)]);
    assert!(NoParamsKernel::PARAM_LAYOUT.is_empty());
}

#[test]
fn names_are_the_kernel_functions() {
    assert_eq!(EveryParamKernel::NAME, "every_param_kernel");
    assert_eq!(SmallScalarsKernel::NAME, "small_scalars_kernel");
    assert_eq!(NoParamsKernel::NAME, "no_params_kernel");
    assert_eq!(Écart2Kernel::NAME, "écart__2_kernel");
}

#[test]
fn param_bytes_follow_the_signature() {
    // input: address, length; bytes: address, length; total: address; a; b; c.
    assert_eq!(EveryParamKernel::PARAM_BYTES, &[8, 8, 8, 8, 8, 4, 8, 8]);
    assert_eq!(SmallScalarsKernel::PARAM_BYTES, &[8, 8, 1, 2, 8]);
    assert_eq!(NoParamsKernel::PARAM_BYTES, &[] as &[usize]);
    assert_eq!(Écart2Kernel::PARAM_BYTES, &[4]);
}

#[test]
fn the_projects_launchers_have_their_kernels_names() {
    assert_eq!(kernels_gpu::ProducerKernel::NAME, "producer_kernel");
    assert_eq!(kernels_gpu::ConsumerKernel::NAME, "consumer_kernel");
    assert_eq!(kernels_gpu::ProducerVecKernel::NAME, "producer_vec_kernel");
    assert_eq!(kernels_gpu::ConsumerVecKernel::NAME, "consumer_vec_kernel");
    assert_eq!(kernels_gpu::FusedKernel::NAME, "fused_kernel");
    assert_eq!(kernels_gpu::FusedVecKernel::NAME, "fused_vec_kernel");
    assert_eq!(kernels_gpu::MovingAverageKernel::NAME, "moving_average_kernel");
    assert_eq!(kernels_gpu::ReduceKernel::NAME, "reduce_kernel");
    assert_eq!(kernels_gpu::DelayKernel::NAME, "delay_kernel");
    assert_eq!(kernels_gpu::PanicKernel::NAME, "panic_kernel");
    // buffer, output, spin
    assert_eq!(kernels_gpu::ConsumerKernel::PARAM_BYTES, &[8, 8, 8, 8, 8]);
    // buffer, first, seed, spin
    assert_eq!(kernels_gpu::ProducerKernel::PARAM_BYTES, &[8, 8, 8, 4, 8]);
}

/// Compiles, never runs: which device buffers each parameter takes (cudarc's
/// slices and views of the element type). The refusals are in `tests/ui/`.
#[allow(dead_code, clippy::too_many_arguments)]
unsafe fn launcher_parameter_types(
    stream: &CudaStream,
    cfg: LaunchConfig,
    every: &Kernel<EveryParamKernel>,
    small: &Kernel<SmallScalarsKernel>,
    none: &Kernel<NoParamsKernel>,
    input: &CudaSlice<f32>,
    bytes: &mut CudaSlice<u8>,
    total: CudaView<'_, AtomicReduction>,
    words: CudaViewMut<'_, u32>,
    counter: &CudaSlice<AtomicU32>,
) -> Result<(), Error> {
    let mut words = words;
    // SAFETY: never called.
    unsafe {
        EveryParamKernel::launch(every, stream, cfg, input, bytes, &total, 1u32, 2u64, 3.0f64)?;
        EveryParamKernel::launch(every, stream, cfg, &input.slice(1..), &mut bytes.slice_mut(1..), &total, 1, 2, 3.0)?;
        SmallScalarsKernel::launch(small, stream, cfg, &mut words, 7u8, -1i16, counter)?;
        NoParamsKernel::launch(none, stream, cfg)
    }
}
