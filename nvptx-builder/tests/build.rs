//! The builder end to end on throwaway kernel crates (needs the pinned
//! nightly with rust-src, as the real build does; no GPU). The crates have
//! minimal manifests: no profile, no crate-type, no rust-toolchain.toml.
use nvptx_builder::{Arch, BuildError, Builder, PINNED_TOOLCHAIN, Ptxas, find_ptxas};
use std::path::{Path, PathBuf};

/// Writes a kernel crate `name` into `parent`: its own `[workspace]`, and a
/// panic handler that traps, as every kernel crate needs.
fn kernel_crate(parent: &Path, name: &str, body: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!("[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[workspace]\n");
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let src = format!(
        "#![no_std]\n#![feature(abi_ptx, stdarch_nvptx)]\n\
         #[panic_handler]\nfn panic(_: &core::panic::PanicInfo) -> ! {{ unsafe {{ core::arch::nvptx::trap() }} }}\n{body}\n"
    );
    std::fs::write(dir.join("src/lib.rs"), src).unwrap();
    dir
}

/// A directory under the system's temporary directory, outside this
/// repository (so no rust-toolchain.toml above it), removed on drop.
struct OutsideDir(PathBuf);

impl OutsideDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("nvptx-builder-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toolchain_file = dir.ancestors().find(|d| d.join("rust-toolchain.toml").exists() || d.join("rust-toolchain").exists());
        assert!(toolchain_file.is_none(), "{} is under a rust-toolchain file at {toolchain_file:?}", dir.display());
        OutsideDir(dir)
    }
}

impl Drop for OutsideDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn out_dir() -> PathBuf {
    // One output directory for all cases: they share the built `core`.
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("builder-out")
}

const FILL: &str = "#[unsafe(no_mangle)]\npub unsafe extern \"ptx-kernel\" fn fill_kernel(p: *mut u32, v: u32) { unsafe { *p = v } }\n\
#[unsafe(no_mangle)]\npub unsafe extern \"ptx-kernel\" fn copy_kernel(p: *mut u32, q: *const u32) { unsafe { *p = *q } }";

/// Tests that name a toolchain or a cargo cannot hold when the environment
/// overrides them.
fn toolchain_overridden() -> bool {
    std::env::var_os("NVPTX_TOOLCHAIN").is_some_and(|v| !v.is_empty()) || std::env::var_os("NVPTX_BUILDER_CARGO").is_some()
}

#[test]
fn builds_checks_entries_and_passes_compiler_errors_through() {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-crates");
    let good = kernel_crate(&parent, "good_kernels", FILL);
    let result = Builder::new(&good)
        .arch(Arch::Sm90)
        .entries(["fill_kernel"])
        .out_dir(out_dir())
        .ptxas(Ptxas::Skip)
        .print_metadata(false)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.entries, vec!["copy_kernel", "fill_kernel"]);
    assert_eq!(result.arch, Arch::Sm90);
    let ptx = std::fs::read_to_string(&result.ptx_path).unwrap();
    assert!(ptx.contains(".target sm_90"), "{ptx}");
    let report = std::fs::read_to_string(&result.report_path).unwrap();
    assert!(report.contains("not assembled: Ptxas::Skip"), "{report}");
    assert!(result.ptxas.is_none() && result.resources.is_empty());

    // An expected kernel that is not there is named.
    let err = Builder::new(&good).entries(["fill_kernel", "drain_kernel"]).out_dir(out_dir()).ptxas(Ptxas::Skip).print_metadata(false).build().unwrap_err();
    match &err {
        BuildError::MissingEntries { missing, found } => {
            assert_eq!(missing, &vec!["drain_kernel".to_string()]);
            assert_eq!(found, &vec!["copy_kernel".to_string(), "fill_kernel".to_string()]);
        }
        e => panic!("wrong error: {e}"),
    }

    // A type error comes back with rustc's own message and location.
    let bad = kernel_crate(
        &parent,
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
fn a_crate_outside_the_repository_builds_and_is_reported() {
    let dir = OutsideDir::new("outside");
    let krate = kernel_crate(&dir.0, "outside_kernels", FILL);
    let result = Builder::new(&krate)
        .entries(["fill_kernel", "copy_kernel"])
        .also_assemble_for([Arch::Sm90])
        .max_registers(1)
        .out_dir(out_dir())
        .print_metadata(false)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.entries, vec!["copy_kernel", "fill_kernel"]);
    assert!(std::fs::read_to_string(&result.ptx_path).unwrap().contains(".target sm_70"));
    if !toolchain_overridden() {
        assert_eq!(result.toolchain, PINNED_TOOLCHAIN);
    }

    // The report lists every kernel for both architectures where ptxas exists
    // (the same lookup the build used), and says why not where it does not.
    let report = std::fs::read_to_string(&result.report_path).unwrap_or_else(|e| panic!("{}: {e}", result.report_path.display()));
    match find_ptxas() {
        Ok(ptxas) => {
            assert_eq!(result.ptxas.as_deref(), Some(ptxas.as_path()));
            assert_eq!(result.resources.len(), 4, "{report}");
            for kernel in ["fill_kernel", "copy_kernel"] {
                for arch in ["sm_70", "sm_90"] {
                    let line = report.lines().find(|l| l.starts_with(&format!("{kernel} ({arch}):"))).unwrap_or_else(|| panic!("{kernel} {arch}:\n{report}"));
                    assert!(line.contains("registers") && line.contains("over max_registers(1)"), "{line}");
                }
            }
        }
        Err(BuildError::NoPtxas) => assert!(report.contains("not assembled: no ptxas found"), "{report}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_call_the_ptx_cannot_resolve_is_refused() {
    let dir = OutsideDir::new("extern");
    let krate = kernel_crate(
        &dir.0,
        "extern_kernels",
        "unsafe extern \"C\" { fn never_defined(x: u32) -> u32; }\n\
         #[unsafe(no_mangle)]\npub unsafe extern \"ptx-kernel\" fn call_kernel(p: *mut u32) { unsafe { *p = never_defined(*p) } }",
    );
    let err = Builder::new(&krate).out_dir(out_dir()).ptxas(Ptxas::Skip).print_metadata(false).build().unwrap_err();
    match &err {
        BuildError::UnresolvedFunctions { functions } => assert_eq!(functions, &vec!["never_defined".to_string()]),
        e => panic!("wrong error: {e}"),
    }
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn a_missing_toolchain_is_one_line_with_the_fix() {
    if toolchain_overridden() {
        eprintln!("skipped: NVPTX_TOOLCHAIN or NVPTX_BUILDER_CARGO overrides Builder::toolchain");
        return;
    }
    let krate = kernel_crate(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-crates"), "toolchain_kernels", FILL);
    let err = Builder::new(&krate).toolchain("nightly-1999-01-01").out_dir(out_dir()).print_metadata(false).build().unwrap_err();
    assert!(matches!(err, BuildError::ToolchainMissing { .. }), "{err}");
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains("`rustup toolchain install nightly-1999-01-01 --component rust-src`"), "{text}");

    // A stable toolchain cannot build (-Zbuild-std), and says so.
    match Builder::new(&krate).toolchain("stable").out_dir(out_dir()).print_metadata(false).build() {
        Err(BuildError::NotNightly { toolchain }) => assert_eq!(toolchain, "stable"),
        Err(BuildError::ToolchainMissing { .. }) => eprintln!("no stable toolchain here: not-nightly case skipped"),
        other => panic!("stable toolchain: {other:?}"),
    }
}

#[test]
fn missing_crate_and_bad_arch_are_errors() {
    let err = Builder::new("/nonexistent/kernels").out_dir(out_dir()).print_metadata(false).build().unwrap_err();
    assert!(matches!(err, BuildError::NoCrate(_)), "{err}");
    assert!("sm_42".parse::<Arch>().is_err());
}
