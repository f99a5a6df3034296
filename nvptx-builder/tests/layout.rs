//! The loading check against a kernel whose element type has another size
//! on the device than on the host (issue 18, F1), on real PTX and without a
//! GPU: `tests/fixtures/layout_kernels.rs` is compiled here for the host
//! (its launchers' `PARAM_LAYOUT`) and, as a kernel crate, to PTX by the
//! builder (its layout records); `pc_runtime::launch::check_layout`, what
//! `Module::kernel` runs before it hands out a kernel, must refuse the one
//! and accept the other. Needs the pinned nightly with rust-src, as the
//! real build does.
use nvptx_builder::{Arch, Builder, Ptxas};
use nvptx_std::host::{KernelEntry, check_layout, entry_param_bytes};
use std::path::{Path, PathBuf};

nvptx_std::kernel_crate!();
include!("fixtures/layout_kernels.rs");

/// The fixture as a kernel crate of its own, depending on this
/// workspace's nvptx-std, with this workspace's lockfile (nothing to
/// resolve anew).
fn fixture_crate() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-crates").join("layout_kernels");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"layout_kernels\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\nnvptx-std = {{ path = {:?} }}\n\n[workspace]\n",
        root.join("nvptx-std")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let src = format!(
        "#![no_std]\n#![cfg_attr(target_arch = \"nvptx64\", feature(abi_ptx))]\nnvptx_std::kernel_crate!();\n{}",
        include_str!("fixtures/layout_kernels.rs")
    );
    std::fs::write(dir.join("src/lib.rs"), src).unwrap();
    dir
}

#[test]
fn a_kernel_whose_element_type_depends_on_the_target_is_refused_at_load() {
    let result = Builder::new(fixture_crate())
        .arch(Arch::Sm70)
        .out_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join("builder-out"))
        .ptxas(Ptxas::Skip)
        .print_metadata(false)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ptx = std::fs::read_to_string(&result.ptx_path).unwrap();
    assert_eq!(result.entries, ["plain_kernel", "wide_kernel"]);

    // The PTX parameters match (an address and a length per slice): the
    // size check alone would load it.
    assert_eq!(entry_param_bytes(&ptx, WideKernel::NAME).as_deref(), Some(WideKernel::PARAM_BYTES));
    assert_eq!(WideKernel::PARAM_LAYOUT.iter().map(|p| (p.name, p.size, p.align)).collect::<Vec<_>>(), [("input", 4, 1), ("output", 4, 1)]);
    let err = check_layout(&ptx, "layout_kernels.ptx", WideKernel::NAME, WideKernel::SIGNATURE, WideKernel::PARAM_LAYOUT).unwrap_err().to_string();
    assert!(
        err.contains("wide_kernel")
            && err.contains("parameter input's element type is 8 bytes aligned to 1 on the device but 4 bytes aligned to 1 on the host"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    assert_eq!(entry_param_bytes(&ptx, PlainKernel::NAME).as_deref(), Some(PlainKernel::PARAM_BYTES));
    check_layout(&ptx, "layout_kernels.ptx", PlainKernel::NAME, PlainKernel::SIGNATURE, PlainKernel::PARAM_LAYOUT).unwrap_or_else(|e| panic!("{e}"));
}
