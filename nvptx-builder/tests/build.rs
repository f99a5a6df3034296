//! The builder end to end on throwaway kernel crates (needs the pinned
//! nightly with rust-src, as the real build does; no GPU).
use nvptx_builder::{Arch, BuildError, Builder, Ptxas};
use std::path::{Path, PathBuf};

/// Writes a kernel crate under the target directory (inside this workspace, so
/// the nested cargo picks the pinned toolchain from rust-toolchain.toml).
fn kernel_crate(name: &str, body: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-crates").join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n[workspace]\n[lib]\ncrate-type = [\"staticlib\"]\n\
             [profile.release]\nlto = \"fat\"\ncodegen-units = 1\npanic = \"abort\"\n"
        ),
    )
    .unwrap();
    let src = format!(
        "#![no_std]\n#![feature(abi_ptx, stdarch_nvptx)]\n\
         #[panic_handler]\nfn panic(_: &core::panic::PanicInfo) -> ! {{ unsafe {{ core::arch::nvptx::trap() }} }}\n{body}\n"
    );
    std::fs::write(dir.join("src/lib.rs"), src).unwrap();
    dir
}

fn out_dir() -> PathBuf {
    // One output directory for all cases: they share the built `core`.
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("builder-out")
}

#[test]
fn builds_checks_entries_and_passes_compiler_errors_through() {
    let good = kernel_crate("good_kernels", "#[unsafe(no_mangle)]\npub unsafe extern \"ptx-kernel\" fn fill_kernel(p: *mut u32, v: u32) { unsafe { *p = v } }");
    let result = Builder::new(&good)
        .arch(Arch::Sm90)
        .entries(["fill_kernel"])
        .out_dir(out_dir())
        .ptxas(Ptxas::Skip)
        .print_metadata(false)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.entries, vec!["fill_kernel"]);
    assert_eq!(result.arch, Arch::Sm90);
    let ptx = std::fs::read_to_string(&result.ptx_path).unwrap();
    assert!(ptx.contains(".target sm_90"), "{ptx}");

    // An expected kernel that is not there is named.
    let err = Builder::new(&good).entries(["fill_kernel", "drain_kernel"]).out_dir(out_dir()).ptxas(Ptxas::Skip).print_metadata(false).build().unwrap_err();
    match &err {
        BuildError::MissingEntries { missing, found } => {
            assert_eq!(missing, &vec!["drain_kernel".to_string()]);
            assert_eq!(found, &vec!["fill_kernel".to_string()]);
        }
        e => panic!("wrong error: {e}"),
    }

    // A type error comes back with rustc's own message and location.
    let bad = kernel_crate(
        "bad_kernels",
        "#[unsafe(no_mangle)]\npub unsafe extern \"ptx-kernel\" fn broken_kernel(p: *mut u32) { let x: u32 = \"text\"; unsafe { *p = x } }",
    );
    let err = Builder::new(&bad).out_dir(out_dir()).ptxas(Ptxas::Skip).print_metadata(false).build().unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BuildError::Compile { .. }), "{text}");
    assert!(text.contains("error[E0308]: mismatched types"), "{text}");
    assert!(text.contains("src/lib.rs"), "{text}");
}

#[test]
fn missing_crate_and_bad_arch_are_errors() {
    let err = Builder::new("/nonexistent/kernels").out_dir(out_dir()).print_metadata(false).build().unwrap_err();
    assert!(matches!(err, BuildError::NoCrate(_)), "{err}");
    assert!("sm_42".parse::<Arch>().is_err());
}
