//! Builds `kernels-gpu` to PTX with nvptx-builder and tells `src/lib.rs`
//! where it is and which entries it has (from the PTX itself, so no list of
//! kernel names is kept by hand). `NVPTX_ARCH=sm_90 cargo build` picks
//! another architecture.
use nvptx_builder::{Arch, Builder};

fn main() {
    let result = Builder::new("kernels-gpu")
        .name("kernels")
        .arch(Arch::Sm70)
        .arch_env("NVPTX_ARCH")
        .also_assemble_for([Arch::Sm90])
        .build()
        .unwrap_or_else(|e| nvptx_builder::fail(&e));

    println!("cargo:rustc-env=KERNELS_PTX_PATH={}", result.ptx_path.display());
    println!("cargo:rustc-env=KERNELS_PTX_ARCH={}", result.arch);
    println!("cargo:rustc-env=KERNELS_PTX_ENTRIES={}", result.entries.join(","));
}
