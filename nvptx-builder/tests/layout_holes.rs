//! Host/device disagreements in a `#[kernel]` signature that sizes and
//! layouts alone do not show (found by a review of issue 18): each kernel
//! of `tests/fixtures/layout_holes.rs` has another signature under
//! `#[cfg(target_arch = "nvptx64")]` than on the host, with equal PTX
//! parameter sizes and equal element layouts. The signature digest in the
//! layout record (`KernelEntry::SIGNATURE`) refuses every one at load.
use nvptx_builder::{Arch, Builder, Ptxas};
use nvptx_std::host::{KernelEntry, check_layout, entry_param_bytes};
use std::path::{Path, PathBuf};

nvptx_std::kernel_crate!();
include!("fixtures/layout_holes.rs");

fn fixture_crate() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-crates").join("layout_holes");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"layout_holes\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\nnvptx-std = {{ path = {:?} }}\n\n[workspace]\n",
        root.join("nvptx-std")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let src = format!(
        "#![no_std]\n#![cfg_attr(target_arch = \"nvptx64\", feature(abi_ptx))]\nnvptx_std::kernel_crate!();\n{}",
        include_str!("fixtures/layout_holes.rs")
    );
    std::fs::write(dir.join("src/lib.rs"), src).unwrap();
    dir
}

/// Each is a map stage on the host, so the safe `Stage::map_with` runs it
/// (with `ValueAsAddressKernelParams { x }` of any value, or
/// `SameLenOnDeviceOnlyKernelParams { taps }` of any length).
const _: () = {
    fn map_stage<K: nvptx_std::host::MapKernel>() {}
    let _ = map_stage::<ValueAsAddressKernel>;
    let _ = map_stage::<SameLenOnDeviceOnlyKernel>;
    let _ = map_stage::<KindsSwappedKernel>;
};

fn loads<K: KernelEntry>(ptx: &str) -> bool {
    assert_eq!(entry_param_bytes(ptx, K::NAME).as_deref(), Some(K::PARAM_BYTES), "{}: the size check alone already differs", K::NAME);
    check_layout(ptx, "layout_holes.ptx", K::NAME, K::SIGNATURE, K::PARAM_LAYOUT).is_ok()
}

#[test]
fn signatures_that_differ_between_host_and_device_are_refused_at_load() {
    let result = Builder::new(fixture_crate())
        .arch(Arch::Sm70)
        .out_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join("builder-out-holes"))
        .ptxas(Ptxas::Skip)
        .print_metadata(false)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ptx = std::fs::read_to_string(&result.ptx_path).unwrap();
    let loaded: Vec<&str> = [
        ("value_as_address_kernel", loads::<ValueAsAddressKernel>(&ptx)),
        ("same_len_on_device_only_kernel", loads::<SameLenOnDeviceOnlyKernel>(&ptx)),
        ("kinds_swapped_kernel", loads::<KindsSwappedKernel>(&ptx)),
    ]
    .into_iter()
    .filter_map(|(n, ok)| ok.then_some(n))
    .collect();
    assert!(loaded.is_empty(), "loaded although host and device disagree: {loaded:?}");
}
