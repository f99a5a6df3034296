//! Builds `kernels-gpu` and `kernels-hopper` to PTX with nvptx-builder and
//! tells `src/lib.rs` where each is and which entries it has (from the PTX
//! itself, so no list of kernel names is kept by hand). `NVPTX_ARCH=sm_90
//! cargo build` picks another architecture for kernels-gpu; kernels-hopper
//! is always sm_90 with PTX 8.0 (its instructions exist nowhere older).
use nvptx_builder::{Arch, Builder};

/// Where the kernel crate behind `links` is: its build script says (see
/// kernels-gpu/build.rs), since a packaged ptx-kernels has no sibling
/// directories to look in.
fn source_of(links: &str) -> std::path::PathBuf {
    let var = format!("DEP_{}_SOURCE", links.to_uppercase().replace('-', "_"));
    std::env::var_os(&var).unwrap_or_else(|| panic!("{var} is not set: {links}'s build script names its source directory")).into()
}

fn main() {
    let result = Builder::new(source_of("kernels-gpu"))
        .name("kernels")
        .arch(Arch::Sm70)
        .arch_env("NVPTX_ARCH")
        .also_assemble_for([Arch::Sm90])
        .build()
        .unwrap_or_else(|e| nvptx_builder::fail(&e));

    println!("cargo:rustc-env=KERNELS_PTX_PATH={}", result.ptx_path.display());
    println!("cargo:rustc-env=KERNELS_PTX_ARCH={}", result.arch);
    println!("cargo:rustc-env=KERNELS_PTX_ENTRIES={}", result.entries.join(","));

    // rustc says `.version 7.8` for sm_90; mbarrier expect_tx and bulk
    // copies need 8.0. (`ptx80` is an unstable target feature: rustc warns.)
    let hopper =
        Builder::new(source_of("kernels-hopper")).name("hopper").arch(Arch::Sm90).target_feature("+ptx80").build().unwrap_or_else(|e| nvptx_builder::fail(&e));
    println!("cargo:rustc-env=HOPPER_PTX_PATH={}", hopper.ptx_path.display());
    println!("cargo:rustc-env=HOPPER_PTX_ARCH={}", hopper.arch);
    println!("cargo:rustc-env=HOPPER_PTX_ENTRIES={}", hopper.entries.join(","));
}
