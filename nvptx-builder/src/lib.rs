//! Builds a `#![no_std]` kernel crate to one PTX module with rustc's own NVPTX
//! backend. Called from a build script, it plays the part of rust-cuda's
//! `cuda_builder`:
//!
//! ```no_run
//! // build.rs, inside `fn main`
//! let result = nvptx_builder::Builder::new("kernels-gpu")
//!     .arch(nvptx_builder::Arch::Sm70)
//!     .arch_env("NVPTX_ARCH")
//!     .entries(["producer_kernel", "consumer_kernel"])
//!     .build()
//!     .unwrap_or_else(|e| nvptx_builder::fail(&e));
//! println!("cargo:rustc-env=KERNELS_PTX_PATH={}", result.ptx_path.display());
//! ```
//!
//! The kernel crate needs nothing special in its manifest: no profile, no
//! `crate-type` (a plain rlib, so the host can build the same crate as an
//! ordinary dependency), no `rust-toolchain.toml`, and it may live anywhere.
//! Its source needs `#![no_std]`, a `#[panic_handler]` (one that traps), and
//! kernels as `#[unsafe(no_mangle)] pub unsafe extern "ptx-kernel" fn`.
//!
//! What `build()` does:
//! 1. checks that the toolchain is an installed nightly with its `rust-src`
//!    component (`rustup run <toolchain> rustc ...`), failing in one line with
//!    the `rustup toolchain install` command that fixes it. The toolchain
//!    is `$NVPTX_TOOLCHAIN`, else [`Builder::toolchain`], else
//!    [`PINNED_TOOLCHAIN`];
//! 2. runs `cargo rustc --lib --crate-type staticlib --release --target
//!    nvptx64-nvidia-cuda -Zbuild-std=core` on the crate with
//!    `RUSTUP_TOOLCHAIN` set to that toolchain, and forces the release profile
//!    from the command line (`--config`, which wins over any manifest):
//!    `lto = "fat"`, `codegen-units = 1`, `panic = "abort"`, `opt-level = 3`,
//!    `debug = false`. Fat LTO into one codegen unit makes
//!    `--emit asm=<out_dir>/<name>.ptx` (with `-C target-cpu=<arch>`) one
//!    complete PTX module, with no linker. Every crate of the build (`core`,
//!    the device support crate, the kernel crate) gets `-C target-cpu=<arch>`
//!    and the [`Builder::target_feature`]s through `CARGO_ENCODED_RUSTFLAGS`,
//!    so `cfg(target_feature = "sm_90")` holds in dependencies too. The
//!    nested cargo gets its own target directory per module under the output
//!    directory (so it never waits on the outer build's lock, and two
//!    modules built with other flags do not rebuild `core` in turn) and an
//!    environment without the outer cargo's variables;
//! 3. prints `cargo:rerun-if-changed` for every source file the nested build
//!    read (from its dep-info) and every manifest involved;
//! 4. checks that each expected kernel is a `.entry` in the PTX, and refuses a
//!    module with an unresolved `.extern .func` (the driver could not load it);
//! 5. assembles the PTX with ptxas (see [`find_ptxas`]) for each requested
//!    architecture and writes `<out_dir>/<name>.resources.txt`: registers,
//!    stack and spills, one line per kernel and architecture
//!    ([`CompileResult::report_path`]; without ptxas the file says why nothing
//!    was assembled). A cargo warning appears only for a kernel that spills or
//!    goes over [`Builder::max_registers`] / [`Builder::max_stack_bytes`], so
//!    a clean build prints none.
//!
//! Environment variables read ([`ENV_VARS`], each printed as
//! `cargo:rerun-if-env-changed` when [`Builder::print_metadata`] is on, with
//! the one [`Builder::arch_env`] names):
//! - `NVPTX_TOOLCHAIN`: the rustup toolchain, overriding the builder's;
//! - `NVPTX_BUILDER_CARGO`: the cargo to run instead of `cargo` on PATH (the
//!   toolchain check is then skipped: that cargo picks its own compiler);
//! - `PTXAS`: the ptxas to use; set, it must exist;
//! - `NVPTX_PTXAS_DEFAULT`: a repository's own ptxas install, used only if it
//!   exists (this repository's `.cargo/config.toml` points it at
//!   `scripts/install-ptxas.sh`'s);
//! - `PATH`, `CUDA_HOME`, `CUDA_PATH`: where else ptxas is looked for (and
//!   PATH also finds `rustup` and `cargo`).
//!
//! Errors are one [`BuildError`]; when the compiler fails, it holds the
//! compiler's output as printed.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// The NVPTX target triple.
pub const TARGET: &str = "nvptx64-nvidia-cuda";

/// The toolchain the nested cargo runs with unless [`Builder::toolchain`] or
/// `$NVPTX_TOOLCHAIN` names another: a dated nightly (the build needs
/// `-Zbuild-std` and the `abi_ptx` feature), so every machine emits the same
/// PTX. Kept equal to the repository's `rust-toolchain.toml` by a test.
pub const PINNED_TOOLCHAIN: &str = "nightly-2026-05-20";

/// Release-profile settings the nested cargo gets as `--config` overrides,
/// which take precedence over the kernel crate's (or its workspace's)
/// manifest: fat LTO into one codegen unit makes `--emit asm` one complete PTX
/// module with no linker; unwinding does not exist on the GPU.
const FORCED_PROFILE: [&str; 5] = [
    "profile.release.lto=\"fat\"",
    "profile.release.codegen-units=1",
    "profile.release.panic=\"abort\"",
    "profile.release.opt-level=3",
    "profile.release.debug=false",
];

/// The environment variable that overrides both [`PINNED_TOOLCHAIN`] and
/// [`Builder::toolchain`].
pub const TOOLCHAIN_ENV: &str = "NVPTX_TOOLCHAIN";

/// A ptxas that a repository installs for itself (this one sets it in
/// `.cargo/config.toml`): [`find_ptxas`] takes it only when the file exists,
/// so a repository can name the place before anything is installed there.
pub const PTXAS_DEFAULT_ENV: &str = "NVPTX_PTXAS_DEFAULT";

/// Every environment variable the builder reads, besides cargo's own
/// (`OUT_DIR`, `CARGO_MANIFEST_DIR`) and the one [`Builder::arch_env`] names.
/// `build()` prints `cargo:rerun-if-env-changed` for each.
pub const ENV_VARS: [&str; 7] = [TOOLCHAIN_ENV, "NVPTX_BUILDER_CARGO", "PTXAS", PTXAS_DEFAULT_ENV, "PATH", "CUDA_HOME", "CUDA_PATH"];

/// A GPU architecture, passed to rustc as `-C target-cpu` and to ptxas as `-arch`.
///
/// PTX built for an older architecture is JIT-compiled by the driver for newer
/// GPUs; PTX built for a newer one does not load on older GPUs. [`Arch::Sm70`]
/// (Volta) is the default: it loads on every GPU from Volta on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Arch {
    #[default]
    Sm70,
    Sm75,
    Sm80,
    Sm86,
    Sm89,
    Sm90,
}

impl Arch {
    /// Every architecture this builder accepts, oldest first.
    pub const ALL: [Arch; 6] = [Arch::Sm70, Arch::Sm75, Arch::Sm80, Arch::Sm86, Arch::Sm89, Arch::Sm90];

    /// The name rustc and ptxas use, e.g. `"sm_90"`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Sm70 => "sm_70",
            Arch::Sm75 => "sm_75",
            Arch::Sm80 => "sm_80",
            Arch::Sm86 => "sm_86",
            Arch::Sm89 => "sm_89",
            Arch::Sm90 => "sm_90",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = BuildError;
    fn from_str(s: &str) -> Result<Self, BuildError> {
        let want = s.trim().to_ascii_lowercase();
        Arch::ALL.into_iter().find(|a| a.name() == want || a.name().replace('_', "") == want).ok_or_else(|| BuildError::UnknownArch(s.to_string()))
    }
}

/// Everything that can go wrong in [`Builder::build`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("unknown GPU architecture {0:?}; expected one of sm_70, sm_75, sm_80, sm_86, sm_89, sm_90")]
    UnknownArch(String),
    #[error("kernel crate not found: {0} has no Cargo.toml")]
    NoCrate(PathBuf),
    #[error("no output directory: call .out_dir(..) or run from a build script (OUT_DIR)")]
    NoOutDir,
    #[error("could not start `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("the Rust toolchain {toolchain} is not installed; run `rustup toolchain install {toolchain} --component rust-src`")]
    ToolchainMissing { toolchain: String },
    #[error(
        "the Rust toolchain {toolchain} lacks the rust-src component (-Zbuild-std=core needs it); run `rustup toolchain install {toolchain} --component rust-src`"
    )]
    RustSrcMissing { toolchain: String },
    #[error(
        "the Rust toolchain {toolchain} is not a nightly (the NVPTX build needs -Zbuild-std); use {PINNED_TOOLCHAIN}, the default (check {TOOLCHAIN_ENV} and Builder::toolchain)"
    )]
    NotNightly { toolchain: String },
    #[error("`rustup run {toolchain} {command}` failed:\n{output}")]
    Toolchain { toolchain: String, command: String, output: String },
    #[error("building the kernel crate for {TARGET} failed ({status}):\n{output}")]
    Compile { status: String, output: String },
    #[error("the kernel build succeeded but wrote no PTX at {path}; its output was:\n{output}")]
    NoPtx { path: PathBuf, output: String },
    #[error("the PTX lacks expected kernel entries {missing:?} (it has {found:?}); are they `#[unsafe(no_mangle)] extern \"ptx-kernel\"`?")]
    MissingEntries { missing: Vec<String>, found: Vec<String> },
    #[error(
        "the PTX calls functions it does not define, which no driver can resolve when loading it: {functions:?}; \
         a foreign function (`extern \"C\"`) that no dependency of the kernel crate defines, or an operation with no NVPTX lowering (e.g. a libm call)"
    )]
    UnresolvedFunctions { functions: Vec<String> },
    #[error("{origin} names {path}, which is not a file; point it at a ptxas binary")]
    BadPtxas { origin: &'static str, path: PathBuf },
    #[error(
        "no ptxas found (looked at $PTXAS, ${PTXAS_DEFAULT_ENV}, PATH, $CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin); \
         install CUDA's ptxas (PyPI's nvidia-cuda-nvcc-cu12 has one) or set PTXAS"
    )]
    NoPtxas,
    #[error("ptxas -arch={arch} rejected the PTX:\n{output}")]
    Ptxas { arch: Arch, output: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Which `ptxas` to assemble with.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Ptxas {
    /// [`find_ptxas`]; no assembly when it finds none ([`BuildError::NoPtxas`]),
    /// an error when `$PTXAS` is set but not a file.
    #[default]
    Find,
    /// This binary; a missing file is an error.
    Path(PathBuf),
    /// Do not assemble.
    Skip,
}

/// What ptxas said about one kernel for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelResources {
    pub kernel: String,
    pub arch: Arch,
    pub registers: u32,
    pub stack_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
}

/// The outcome of a successful [`Builder::build`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompileResult {
    /// Where the PTX module was written.
    pub ptx_path: PathBuf,
    /// The architecture it was built for.
    pub arch: Arch,
    /// Every `.entry` in the module, sorted.
    pub entries: Vec<String>,
    /// ptxas's report, empty when ptxas was skipped or not found.
    pub resources: Vec<KernelResources>,
    /// The ptxas that assembled it, if any.
    pub ptxas: Option<PathBuf>,
    /// `<out_dir>/<name>.resources.txt`: one line per kernel and architecture
    /// (registers, stack, spills; flagged where it spills or is over a limit
    /// set on the builder), after a header line, or one line
    /// saying why nothing was assembled. Always written.
    pub report_path: PathBuf,
    /// The rustup toolchain the kernel crate was compiled with.
    pub toolchain: String,
}

/// Builds one kernel crate to PTX. See the crate docs.
#[derive(Debug, Clone)]
pub struct Builder {
    crate_path: PathBuf,
    arch: Arch,
    arch_env: Option<String>,
    entries: Vec<String>,
    out_dir: Option<PathBuf>,
    name: Option<String>,
    ptxas: Ptxas,
    ptxas_archs: Vec<Arch>,
    print_metadata: bool,
    toolchain: Option<String>,
    max_registers: Option<u32>,
    max_stack_bytes: Option<u32>,
    target_features: Vec<String>,
}

impl Builder {
    /// A builder for the kernel crate at `crate_path` (relative paths are taken
    /// from `CARGO_MANIFEST_DIR` when set, as in a build script).
    pub fn new(crate_path: impl AsRef<Path>) -> Self {
        let p = crate_path.as_ref();
        let crate_path = match std::env::var_os("CARGO_MANIFEST_DIR") {
            Some(dir) if p.is_relative() => PathBuf::from(dir).join(p),
            _ => p.to_path_buf(),
        };
        Builder {
            crate_path,
            arch: Arch::default(),
            arch_env: None,
            entries: Vec::new(),
            out_dir: None,
            name: None,
            ptxas: Ptxas::default(),
            ptxas_archs: Vec::new(),
            print_metadata: true,
            toolchain: None,
            max_registers: None,
            max_stack_bytes: None,
            target_features: Vec::new(),
        }
    }

    /// The architecture to build for (default [`Arch::Sm70`]). Newer ones let
    /// the compiler use newer instructions; the PTX then loads only on GPUs of
    /// that architecture or newer.
    pub fn arch(mut self, arch: Arch) -> Self {
        self.arch = arch;
        self
    }

    /// An environment variable (e.g. `NVPTX_ARCH=sm_90`) that, when set,
    /// overrides [`Builder::arch`]. Its changes rerun the build script.
    pub fn arch_env(mut self, var: impl Into<String>) -> Self {
        self.arch_env = Some(var.into());
        self
    }

    /// Kernels that must be `.entry` points of the module; `build()` fails
    /// naming any that is missing.
    pub fn entries<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entries.extend(names.into_iter().map(Into::into));
        self
    }

    /// Where to write the PTX, its report and the nested build's target
    /// directory (default: `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// The stem of the PTX and report files (default: the crate directory's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Which ptxas to check the PTX with (default [`Ptxas::Find`]).
    pub fn ptxas(mut self, ptxas: Ptxas) -> Self {
        self.ptxas = ptxas;
        self
    }

    /// Also assemble for these architectures (the build's own is always checked).
    pub fn also_assemble_for(mut self, archs: impl IntoIterator<Item = Arch>) -> Self {
        self.ptxas_archs.extend(archs);
        self
    }

    /// Warn (a cargo warning, and a mark in the report file) for a kernel that
    /// ptxas gives more than `n` registers. Spills are always warned about.
    pub fn max_registers(mut self, n: u32) -> Self {
        self.max_registers = Some(n);
        self
    }

    /// Warn for a kernel whose stack frame is over `bytes`.
    pub fn max_stack_bytes(mut self, bytes: u32) -> Self {
        self.max_stack_bytes = Some(bytes);
        self
    }

    /// A target feature for every crate of the build (`-C target-feature`),
    /// e.g. `"+ptx80"`: rustc emits `.version 7.8` for sm_90, and
    /// `mbarrier.arrive.expect_tx` and bulk copies need PTX 8.0. Can be
    /// called more than once. Device code may test the feature with
    /// `cfg(target_feature = "ptx80")`, in dependencies (the device support
    /// crate) too: see [`Builder::build`] for how the flags reach them.
    pub fn target_feature(mut self, feature: impl Into<String>) -> Self {
        self.target_features.push(feature.into());
        self
    }

    /// The flags every crate of the nested build gets (core, the device
    /// support crate, the kernel crate), as `CARGO_ENCODED_RUSTFLAGS`
    /// (separated by `0x1f`): the architecture and the target features.
    /// Flags after `cargo rustc --` reach only the kernel crate, so a
    /// dependency would not see `cfg(target_feature = "sm_90")`.
    pub fn encoded_rustflags(&self, arch: Arch) -> String {
        let mut flags = vec![format!("-Ctarget-cpu={}", arch.name())];
        flags.extend(self.target_features.iter().map(|f| format!("-Ctarget-feature={f}")));
        flags.join("\u{1f}")
    }

    /// The rustup toolchain to compile the kernel crate with (default
    /// [`PINNED_TOOLCHAIN`]); `$NVPTX_TOOLCHAIN` overrides it. The kernel
    /// crate's own `rust-toolchain.toml`, if any, is not consulted.
    pub fn toolchain(mut self, name: impl Into<String>) -> Self {
        self.toolchain = Some(name.into());
        self
    }

    /// Whether to print `cargo:` lines (rerun-if-changed, rerun-if-env-changed,
    /// warnings). On by default; turn off when calling from outside a build
    /// script.
    pub fn print_metadata(mut self, on: bool) -> Self {
        self.print_metadata = on;
        self
    }

    /// Builds the PTX. See the crate docs for the steps.
    pub fn build(self) -> Result<CompileResult, BuildError> {
        if self.print_metadata {
            for var in ENV_VARS.iter().copied().chain(self.arch_env.as_deref()) {
                println!("cargo:rerun-if-env-changed={var}");
            }
        }
        let arch = self.resolve_arch()?;
        let toolchain = self.resolve_toolchain();
        let manifest = self.crate_path.join("Cargo.toml");
        if !manifest.is_file() {
            return Err(BuildError::NoCrate(self.crate_path.clone()));
        }
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or(BuildError::NoOutDir)?,
        };
        std::fs::create_dir_all(&out_dir).map_err(|source| BuildError::Io { path: out_dir.clone(), source })?;
        let stem =
            self.name.clone().unwrap_or_else(|| self.crate_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "kernels".into()));
        let ptx_path = out_dir.join(format!("{stem}.ptx"));
        let dep_path = out_dir.join(format!("{stem}.d"));
        let report_path = out_dir.join(format!("{stem}.resources.txt"));
        // A stale PTX or report must not pass for a fresh one.
        let _ = std::fs::remove_file(&ptx_path);
        let _ = std::fs::remove_file(&report_path);

        let mut emit = OsString::from("--emit=asm=");
        emit.push(&ptx_path);
        emit.push(",dep-info=");
        emit.push(&dep_path);

        let cargo = std::env::var_os("NVPTX_BUILDER_CARGO");
        // A cargo of the caller's choosing picks its own compiler; otherwise
        // fail early, in one line, when the toolchain cannot do the build.
        if cargo.is_none() {
            check_toolchain(&toolchain)?;
        }
        let mut cmd = Command::new(cargo.unwrap_or_else(|| "cargo".into()));
        clean_env(&mut cmd);
        // Set, not inherited: a rustup proxy then ignores both the outer
        // build's toolchain and any rust-toolchain.toml near the kernel crate.
        cmd.env("RUSTUP_TOOLCHAIN", &toolchain);
        // The architecture and features for every crate, so `cfg(target_feature
        // = "sm_90")` holds in the device support crate too, not only in the
        // kernel crate (which also gets them after `--`, as before).
        cmd.env("CARGO_ENCODED_RUSTFLAGS", self.encoded_rustflags(arch));
        // One target directory per module: two modules of one build script
        // built with other flags would otherwise rebuild `core` in turn.
        let target_dir = out_dir.join(format!("nvptx-target-{stem}"));
        cmd.current_dir(&self.crate_path)
            .arg("rustc")
            .arg("--manifest-path")
            .arg(&manifest)
            // The lib target only, whatever else the package has, as a
            // staticlib: the manifest may say rlib, since the host builds the
            // same crate as an ordinary dependency.
            .args(["--lib", "--crate-type", "staticlib"])
            .args(["--release", "--target", TARGET, "-Zbuild-std=core", "--color=never"])
            .args(FORCED_PROFILE.iter().flat_map(|kv| ["--config", kv]))
            .arg("--target-dir")
            .arg(&target_dir)
            .arg("--")
            .arg(format!("-Ctarget-cpu={}", arch.name()))
            .args(self.target_features.iter().map(|f| format!("-Ctarget-feature={f}")))
            .arg(emit);
        let program = format!("{:?}", cmd.get_program());
        let out = cmd.output().map_err(|source| BuildError::Spawn { program, source })?;
        let output = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            if output.contains("only accepted on the nightly channel") {
                return Err(BuildError::NotNightly { toolchain });
            }
            return Err(BuildError::Compile { status: out.status.to_string(), output });
        }
        let ptx = std::fs::read_to_string(&ptx_path).map_err(|_| BuildError::NoPtx { path: ptx_path.clone(), output: output.clone() })?;

        if self.print_metadata {
            // Device dependencies, and host ones (proc macros such as #[kernel]).
            let deps_dirs = [target_dir.join(TARGET).join("release").join("deps"), target_dir.join("release").join("deps")];
            for path in rerun_paths(&dep_path, &deps_dirs, &self.crate_path) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }

        let entries = ptx_entries(&ptx);
        let missing: Vec<String> = self.entries.iter().filter(|e| !entries.contains(e)).cloned().collect();
        if !missing.is_empty() {
            return Err(BuildError::MissingEntries { missing, found: entries });
        }

        let unresolved = ptx_unresolved_functions(&ptx);
        if !unresolved.is_empty() {
            return Err(BuildError::UnresolvedFunctions { functions: unresolved });
        }

        // Err: why nothing is assembled, for the report.
        let ptxas = match &self.ptxas {
            Ptxas::Skip => Err("Ptxas::Skip".to_string()),
            Ptxas::Path(p) if p.is_file() => Ok(p.clone()),
            Ptxas::Path(p) => return Err(BuildError::BadPtxas { origin: "Ptxas::Path", path: p.clone() }),
            Ptxas::Find => match find_ptxas() {
                Ok(p) => Ok(p),
                Err(e @ BuildError::NoPtxas) => Err(e.to_string()),
                Err(e) => return Err(e),
            },
        };
        let mut resources = Vec::new();
        let mut report = Vec::new();
        match &ptxas {
            Ok(ptxas) => {
                report.push(format!("# ptxas -v ({}) on {}", ptxas.display(), ptx_path.display()));
                let mut archs: BTreeSet<Arch> = self.ptxas_archs.iter().copied().collect();
                archs.insert(arch);
                // PTX for `arch` does not assemble for an older one.
                for a in archs.into_iter().filter(|a| *a >= arch) {
                    resources.extend(assemble(ptxas, &ptx_path, a)?);
                }
                for r in &resources {
                    let problems = self.problems(r);
                    if problems.is_empty() {
                        report.push(r.to_string());
                    } else {
                        let problems = problems.join("; ");
                        report.push(format!("{r}  <-- {problems}"));
                        if self.print_metadata {
                            println!("cargo:warning={} ({}): {problems}; see {}", r.kernel, r.arch, report_path.display());
                        }
                    }
                }
            }
            Err(why) => report.push(format!("# not assembled: {why}")),
        }
        report.push(String::new());
        std::fs::write(&report_path, report.join("\n")).map_err(|source| BuildError::Io { path: report_path.clone(), source })?;
        Ok(CompileResult { ptx_path, arch, entries, resources, ptxas: ptxas.ok(), report_path, toolchain })
    }

    /// Why `r` deserves a warning: spills, or a limit the caller set.
    fn problems(&self, r: &KernelResources) -> Vec<String> {
        let mut out = Vec::new();
        if r.spill_store_bytes > 0 || r.spill_load_bytes > 0 {
            out.push(format!("spills ({} B stores, {} B loads)", r.spill_store_bytes, r.spill_load_bytes));
        }
        if let Some(max) = self.max_registers.filter(|max| r.registers > *max) {
            out.push(format!("{} registers, over max_registers({max})", r.registers));
        }
        if let Some(max) = self.max_stack_bytes.filter(|max| r.stack_bytes > *max) {
            out.push(format!("{} B stack, over max_stack_bytes({max})", r.stack_bytes));
        }
        out
    }

    fn resolve_toolchain(&self) -> String {
        match std::env::var(TOOLCHAIN_ENV) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => self.toolchain.clone().unwrap_or_else(|| PINNED_TOOLCHAIN.to_string()),
        }
    }

    fn resolve_arch(&self) -> Result<Arch, BuildError> {
        match self.arch_env.as_ref().and_then(|var| std::env::var(var).ok()) {
            Some(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(self.arch),
        }
    }
}

impl fmt::Display for KernelResources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} registers, {} B stack, {} B spill stores, {} B spill loads",
            self.kernel, self.arch, self.registers, self.stack_bytes, self.spill_store_bytes, self.spill_load_bytes
        )
    }
}

/// Prints a build error the way cargo shows build-script failures, and exits 1.
/// Use in build scripts: `build().unwrap_or_else(|e| nvptx_builder::fail(&e))`.
pub fn fail(e: &BuildError) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1)
}

/// The kernel names of every `.entry` in a PTX module, sorted.
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    let mut names: Vec<String> = ptx
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix(".visible .entry ").or_else(|| l.trim_start().strip_prefix(".entry "))?;
            let name: String = rest.chars().take_while(|c| is_ptx_ident_char(*c)).collect();
            (!name.is_empty()).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Functions the PTX declares `.extern .func` (called, never defined): the
/// driver loads a module whole, with nothing to link them against, so such a
/// module cannot load. The PTX system calls, which ptxas and the driver provide,
/// are left out. `.extern .shared` (dynamic shared memory) is not a function.
pub fn ptx_unresolved_functions(ptx: &str) -> Vec<String> {
    let mut names: Vec<String> = ptx
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix(".extern")?.trim_start().strip_prefix(".func")?.trim_start();
            // A return value comes first: `.extern .func (.param .b32 func_retval0) name`.
            let rest = if rest.starts_with('(') { &rest[rest.find(')')? + 1..] } else { rest };
            let name: String = rest.trim_start().chars().take_while(|c| is_ptx_ident_char(*c)).collect();
            (!name.is_empty() && !PTX_SYSTEM_CALLS.contains(&name.as_str())).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Functions PTX may call without defining (the PTX ISA's system calls, and
/// the assert hook nvcc's code calls); ptxas resolves them itself.
const PTX_SYSTEM_CALLS: [&str; 4] = ["vprintf", "malloc", "free", "__assertfail"];

fn is_ptx_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '%'
}

/// Finds ptxas, the one rule for build scripts and tests alike:
/// 1. `$PTXAS`, when set and not empty: it must be a file
///    ([`BuildError::BadPtxas`] otherwise), since a name the user gave that
///    points nowhere is a mistake to report, not to route around;
/// 2. `$NVPTX_PTXAS_DEFAULT` ([`PTXAS_DEFAULT_ENV`]), when that file exists;
/// 3. `ptxas` in each `PATH` directory;
/// 4. `$CUDA_HOME/bin/ptxas`, `$CUDA_PATH/bin/ptxas`, `/usr/local/cuda/bin/ptxas`.
///
/// [`BuildError::NoPtxas`] when none of them exists.
pub fn find_ptxas() -> Result<PathBuf, BuildError> {
    if let Some(p) = env_path("PTXAS") {
        return if p.is_file() { Ok(p) } else { Err(BuildError::BadPtxas { origin: "$PTXAS", path: p }) };
    }
    let on_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join("ptxas")).collect::<Vec<_>>()).unwrap_or_default();
    let roots = ["CUDA_HOME", "CUDA_PATH"].into_iter().filter_map(env_path).map(|r| r.join("bin/ptxas")).chain([PathBuf::from("/usr/local/cuda/bin/ptxas")]);
    env_path(PTXAS_DEFAULT_ENV).into_iter().chain(on_path).chain(roots).find(|p| p.is_file()).ok_or(BuildError::NoPtxas)
}

/// A variable's value as a path; unset and empty are the same (`VAR=` clears).
fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Assembles `ptx` with `ptxas -arch=<arch> -v` and parses its resource report.
pub fn assemble(ptxas: &Path, ptx: &Path, arch: Arch) -> Result<Vec<KernelResources>, BuildError> {
    let cubin = ptx.with_extension(format!("{}.cubin", arch.name()));
    let out = Command::new(ptxas)
        .arg(format!("-arch={}", arch.name()))
        .arg("-v")
        .arg("-o")
        .arg(&cubin)
        .arg(ptx)
        .output()
        .map_err(|source| BuildError::Spawn { program: ptxas.display().to_string(), source })?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BuildError::Ptxas { arch, output: text });
    }
    Ok(parse_ptxas_report(&text, arch))
}

/// Parses `ptxas -v` output into one record per kernel.
pub fn parse_ptxas_report(text: &str, arch: Arch) -> Vec<KernelResources> {
    let mut out: Vec<KernelResources> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let kernel = rest.split('\'').next().unwrap_or_default().to_string();
            out.push(KernelResources { kernel, arch, registers: 0, stack_bytes: 0, spill_store_bytes: 0, spill_load_bytes: 0 });
        } else if let Some(cur) = out.last_mut() {
            if let Some(n) = number_before(line, " registers") {
                cur.registers = n;
            }
            if let Some(n) = number_before(line, " bytes stack frame") {
                cur.stack_bytes = n;
            }
            if let Some(n) = number_before(line, " bytes spill stores") {
                cur.spill_store_bytes = n;
            }
            if let Some(n) = number_before(line, " bytes spill loads") {
                cur.spill_load_bytes = n;
            }
        }
    }
    out
}

fn number_before(line: &str, suffix: &str) -> Option<u32> {
    let head = &line[..line.find(suffix)?];
    head.rsplit(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Checks that rustup has `toolchain`, that it is a nightly, and that it has
/// its rust-src component, so each is reported in one line with its fix rather
/// than as a cargo failure deep in `-Zbuild-std`. `rustup run` never installs
/// (unlike a proxy with auto-install on), so the answer does not depend on
/// `RUSTUP_AUTO_INSTALL`. Without rustup there is nothing to check: `cargo` on
/// PATH is then the only toolchain.
fn check_toolchain(toolchain: &str) -> Result<(), BuildError> {
    let Some(version) = rustup_rustc(toolchain, &["--version"])? else { return Ok(()) };
    // `rustc 1.97.0-nightly (...)`; a toolchain built from source says `-dev`.
    if !version.contains("-nightly") && !version.contains("-dev") {
        return Err(BuildError::NotNightly { toolchain: toolchain.to_string() });
    }
    let sysroot = PathBuf::from(rustup_rustc(toolchain, &["--print", "sysroot"])?.unwrap_or_default().trim());
    if !sysroot.join("lib/rustlib/src/rust/library/core/src/lib.rs").is_file() {
        return Err(BuildError::RustSrcMissing { toolchain: toolchain.to_string() });
    }
    Ok(())
}

/// `rustup run <toolchain> rustc <args>`'s standard output; `None` when there
/// is no rustup.
fn rustup_rustc(toolchain: &str, args: &[&str]) -> Result<Option<String>, BuildError> {
    let mut cmd = Command::new("rustup");
    clean_env(&mut cmd);
    cmd.args(["run", toolchain, "rustc"]).args(args);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(BuildError::Spawn { program: "rustup".into(), source }),
    };
    if !out.status.success() {
        let output = String::from_utf8_lossy(&out.stderr).into_owned();
        if output.contains("is not installed") {
            return Err(BuildError::ToolchainMissing { toolchain: toolchain.to_string() });
        }
        return Err(BuildError::Toolchain { toolchain: toolchain.to_string(), command: format!("rustc {}", args.join(" ")), output });
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Removes the outer cargo's variables, which would otherwise point the nested
/// build at the outer target directory, rustc wrapper, flags and toolchain
/// (the caller sets `RUSTUP_TOOLCHAIN` again, explicitly).
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let keep = k == "CARGO_HOME" || k == "CARGO_NET_OFFLINE" || k.starts_with("CARGO_REGISTRIES") || k.starts_with("CARGO_HTTP");
        let outer = k.starts_with("CARGO")
            || k.starts_with("RUSTC")
            || k.starts_with("RUSTDOC")
            || k.starts_with("__CARGO")
            || k == "RUSTFLAGS"
            || k == "RUSTUP_TOOLCHAIN"
            || k == "TARGET"
            || k == "HOST"
            || k == "OUT_DIR"
            || k == "PROFILE"
            || k == "OPT_LEVEL"
            || k == "DEBUG"
            || k == "NUM_JOBS";
        if outer && !keep {
            cmd.env_remove(&key);
        }
    }
}

/// Source files from the nested build's dep-info (the kernel crate's own, and
/// cargo's for each dependency in `deps_dir`), less the toolchain's own
/// (rust-src), plus the manifests and lockfile that shape the build.
fn rerun_paths(dep_info: &Path, deps_dirs: &[PathBuf], crate_path: &Path) -> BTreeSet<PathBuf> {
    let mut paths = BTreeSet::new();
    for f in ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml"] {
        if crate_path.join(f).exists() {
            paths.insert(crate_path.join(f));
        }
    }
    let mut files = vec![dep_info.to_path_buf()];
    for deps_dir in deps_dirs {
        if let Ok(dir) = std::fs::read_dir(deps_dir) {
            files.extend(dir.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "d")));
        }
    }
    let text: String = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect::<Vec<_>>().join("\n");
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else { continue };
        for dep in split_escaped(deps) {
            // rustc writes paths relative to the directory cargo ran it in:
            // the crate's own for a lone crate, the workspace root's for a
            // workspace member. Take the nearest ancestor that has the file.
            let Some(p) = crate_path.ancestors().map(|d| d.join(&dep)).find(|p| p.is_file()) else { continue };
            // The toolchain's own sources, and registry crates (immutable once downloaded).
            let s = p.to_string_lossy();
            if p.components().any(|c| c.as_os_str() == "rustlib") || s.contains("/registry/src/") || s.contains("/git/checkouts/") {
                continue;
            }
            // The manifest of the package each source file belongs to.
            if let Some(m) = p.ancestors().skip(1).map(|d| d.join("Cargo.toml")).find(|m| m.is_file()) {
                paths.insert(m);
            }
            paths.insert(p);
        }
    }
    paths
}

/// Splits a dep-info dependency list on unescaped spaces.
fn split_escaped(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ' ' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_parses_both_spellings_and_rejects_others() {
        assert_eq!("sm_90".parse::<Arch>().unwrap(), Arch::Sm90);
        assert_eq!("SM70".parse::<Arch>().unwrap(), Arch::Sm70);
        let err = "sm_91".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("sm_91") && err.contains("sm_70"), "{err}");
        assert_eq!(Arch::default(), Arch::Sm70);
    }

    #[test]
    fn entries_are_found() {
        let ptx = ".version 7.0\n.visible .entry b_kernel(\n.param .u64 x\n)\n.func helper(\n.visible .entry a_kernel(\n";
        assert_eq!(ptx_entries(ptx), vec!["a_kernel", "b_kernel"]);
    }

    #[test]
    fn unresolved_functions_are_found_but_not_system_calls_or_shared_memory() {
        let ptx = ".version 7.0\n\
.extern .func  (.param .b32 func_retval0) never_defined\n(\n\t.param .b32 never_defined_param_0\n)\n;\n\
.extern .func  (.param .b32 func_retval0) vprintf\n(\n\t.param .b64 vprintf_param_0\n)\n;\n\
.extern .func sinf(\n\
.extern .shared .align 16 .b8 gpu_launch_sized_workgroup_mem[];\n\
.func helper(\n\
.visible .entry k(\n";
        assert_eq!(ptx_unresolved_functions(ptx), vec!["never_defined", "sinf"]);
        assert!(ptx_unresolved_functions(".extern .shared .align 1 .b8 smem[];\n").is_empty());
    }

    #[test]
    fn ptxas_report_is_parsed() {
        let text = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'producer_kernel' for 'sm_90'\n\
ptxas info    : Function properties for producer_kernel\n\
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
ptxas info    : Used 14 registers, used 0 barriers, 376 bytes cmem[0]\n\
ptxas info    : Compiling entry function 'consumer_kernel' for 'sm_90'\n\
ptxas info    : Used 10 registers\n";
        let r = parse_ptxas_report(text, Arch::Sm90);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            KernelResources { kernel: "producer_kernel".into(), arch: Arch::Sm90, registers: 14, stack_bytes: 8, spill_store_bytes: 4, spill_load_bytes: 12 }
        );
        assert_eq!(r[1].registers, 10);
    }

    #[test]
    fn pinned_toolchain_is_the_repository_s() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rust-toolchain.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let channel = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == "channel")
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("no channel in {}", path.display()));
        assert_eq!(PINNED_TOOLCHAIN, channel);
    }

    #[test]
    fn only_spills_and_limits_are_problems() {
        let r = KernelResources { kernel: "k".into(), arch: Arch::Sm90, registers: 40, stack_bytes: 16, spill_store_bytes: 0, spill_load_bytes: 0 };
        assert!(Builder::new("k").problems(&r).is_empty());
        assert!(Builder::new("k").max_registers(40).max_stack_bytes(16).problems(&r).is_empty());
        assert_eq!(
            Builder::new("k").max_registers(32).max_stack_bytes(8).problems(&r),
            vec!["40 registers, over max_registers(32)", "16 B stack, over max_stack_bytes(8)"]
        );
        let spilling = KernelResources { spill_load_bytes: 4, ..r };
        assert_eq!(Builder::new("k").problems(&spilling), vec!["spills (0 B stores, 4 B loads)"]);
    }

    #[test]
    fn target_features_reach_every_crate_of_the_build() {
        let b = Builder::new("k").target_feature("+ptx80");
        assert_eq!(b.encoded_rustflags(Arch::Sm90), "-Ctarget-cpu=sm_90\u{1f}-Ctarget-feature=+ptx80");
        assert_eq!(Builder::new("k").encoded_rustflags(Arch::Sm70), "-Ctarget-cpu=sm_70");
    }

    #[test]
    fn dep_info_escapes() {
        assert_eq!(split_escaped("/a/b\\ c.rs /d.rs"), vec!["/a/b c.rs", "/d.rs"]);
    }
}
