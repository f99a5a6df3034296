//! Builds `kernels-gpu` to PTX with nvptx-builder and tells `src/lib.rs` where
//! it is. `NVPTX_ARCH=sm_90 cargo build` picks another architecture.
use nvptx_builder::{Arch, Builder, Ptxas};
use std::path::Path;

/// Kept in step with `ptx_kernels::ENTRIES` (src/lib.rs); a build script
/// cannot use the crate it builds.
fn ptx_entries() -> [&'static str; 10] {
    [
        "producer_kernel",
        "consumer_kernel",
        "reduce_kernel",
        "moving_average_kernel",
        "fused_kernel",
        "producer_vec_kernel",
        "consumer_vec_kernel",
        "fused_vec_kernel",
        "delay_kernel",
        "panic_kernel",
    ]
}

fn main() {
    // ptxas from `scripts/install-ptxas.sh` (PyPI's nvidia-cuda-nvcc-cu12), if
    // present and PTXAS is unset; otherwise the builder searches PATH and CUDA.
    println!("cargo:rerun-if-env-changed=PTXAS");
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/cuda-nvcc/nvidia/cuda_nvcc/bin/ptxas");
    let ptxas = if std::env::var_os("PTXAS").is_none() && local.is_file() { Ptxas::Path(local) } else { Ptxas::Find };

    let result = Builder::new("kernels-gpu")
        .name("kernels")
        .arch(Arch::Sm70)
        .arch_env("NVPTX_ARCH")
        .entries(ptx_entries())
        .ptxas(ptxas)
        .also_assemble_for([Arch::Sm90])
        .build()
        .unwrap_or_else(|e| nvptx_builder::fail(&e));

    println!("cargo:rustc-env=KERNELS_PTX_PATH={}", result.ptx_path.display());
    println!("cargo:rustc-env=KERNELS_PTX_ARCH={}", result.arch);
}
