//! `host new DIR`: a ready project of your own outside this repository: a
//! kernel crate (map kernels written once with `#[kernel]`: u32 -> u32, u8
//! -> f32 with a run-time `scale`, and one over a derived struct element;
//! their per-element math shared with the CPU references) and an app that
//! builds it to PTX, registers the stages and runs this CLI. `cargo build`
//! in DIR works with no other step and is clippy-clean; `cargo run` there
//! (on a GPU) runs and verifies a pipeline through the `scale` stage.
//!
//! With path dependencies (the default) the project also gets a `Cargo.lock`
//! pinning every crates.io dependency to the version this repository's own
//! lockfile has, so its first `cargo build` (even `--locked`) builds what
//! CI built. It is `host/new-project.Cargo.lock`, written for a project
//! named `my-pipeline` and renamed here; a test regenerates it with cargo
//! and fails when it is stale.
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Directory to create (must not exist, or be empty). Its name names the crates.
    dir: PathBuf,
    /// This repository, for path dependencies [default: the one this binary was built from].
    #[arg(long, conflicts_with = "git")]
    repo: Option<PathBuf>,
    /// Depend on this repository by git URL instead of by path.
    #[arg(long)]
    git: Option<String>,
}

/// The repository this binary was built from.
fn built_from() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A crate name from a directory name: lowercase letters, digits, '-'.
fn crate_name(dir: &Path) -> Result<String> {
    let raw = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        bail!("{}: the directory's name must start with a letter (it names the crates)", dir.display());
    }
    // The app is named after the directory; it must not clash with a crate it depends on.
    // The app and its kernel crate (`<name>-kernels`) must not clash with a
    // crate they depend on, nor take a name Cargo keeps for itself.
    const TAKEN: [&str; 9] = ["host", "nvptx-std", "nvptx-builder", "pc-pipeline", "pc-runtime", "kernel-math", "kernel-macros", "kernels-gpu", "ptx-kernels"];
    const CARGO_RESERVED: [&str; 4] = ["build", "deps", "examples", "incremental"];
    let kernels = format!("{name}-kernels");
    if TAKEN.contains(&name.as_str()) || TAKEN.contains(&kernels.as_str()) || CARGO_RESERVED.contains(&name.as_str()) {
        bail!("{}: the name {name:?} clashes with one of this project's crates or a name Cargo reserves; choose another directory name", dir.display());
    }
    Ok(name)
}

fn dep(source: &Source, package: &str) -> String {
    match source {
        Source::Path(repo) => {
            let dir = if package == "ptx-kernels" { repo.clone() } else { repo.join(package_dir(package)) };
            // A TOML literal string: the path as it is, no escapes.
            format!("{{ path = '{}' }}", dir.display())
        }
        Source::Git(url) => format!("{{ git = {url:?}, package = {package:?} }}"),
    }
}

fn package_dir(package: &str) -> &str {
    match package {
        "pc-pipeline" => "pipeline",
        "pc-runtime" => "runtime",
        other => other,
    }
}

enum Source {
    Path(PathBuf),
    Git(String),
}

pub fn run(a: &NewArgs) -> Result<bool> {
    let name = crate_name(&a.dir)?;
    let source = match (&a.git, &a.repo) {
        (Some(url), _) => Source::Git(url.clone()),
        (None, Some(repo)) => Source::Path(repo.canonicalize().with_context(|| format!("--repo {}", repo.display()))?),
        (None, None) => {
            let repo = built_from();
            if !repo.join("nvptx-std/Cargo.toml").is_file() {
                bail!("this binary's repository ({}) is not here; give --repo PATH or --git URL", repo.display());
            }
            Source::Path(repo)
        }
    };
    if let Source::Path(repo) = &source {
        if !repo.join("nvptx-std/Cargo.toml").is_file() {
            bail!("{} is not this project's repository (no nvptx-std/Cargo.toml)", repo.display());
        }
        let text = repo.to_str().ok_or_else(|| anyhow::anyhow!("{}: a repository path that is not UTF-8 cannot be written into Cargo.toml", repo.display()))?;
        if text.contains('\'') || text.chars().any(char::is_control) {
            bail!("{text}: a repository path with ' or a control character cannot be written into Cargo.toml; use --git or another path");
        }
    }
    if a.dir.exists() && std::fs::read_dir(&a.dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} already exists and is not empty", a.dir.display());
    }
    let kernels = format!("{name}-kernels");
    let kernels_rs = kernels.replace('-', "_");
    let mut files = template(&name, &kernels, &kernels_rs, &source);
    // A lockfile names path dependencies without their place, so it serves
    // any --repo; a git dependency is locked to a commit it cannot know.
    if let Source::Path(_) = source {
        files.push(("Cargo.lock", lockfile(&name, &kernels)));
    }
    for (path, text) in &files {
        let p = a.dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("created {} ({} files): crates {kernels} (kernels) and {name} (app)", a.dir.display(), files.len());
    println!("next: cd {} && cargo build && cargo run    # the run needs an NVIDIA GPU", a.dir.display());
    Ok(true)
}

/// The lockfile of a project named [`LOCK_NAME`], as cargo writes it (see
/// `lockfile_is_current`).
const TEMPLATE_LOCK: &str = include_str!("../new-project.Cargo.lock");
const LOCK_NAME: &str = "my-pipeline";

/// [`TEMPLATE_LOCK`] for the project `name` (kernel crate `kernels`): the
/// two names replaced, and put back in cargo's order (packages and each
/// one's dependencies sorted by name), which `cargo build --locked` checks
/// byte for byte.
fn lockfile(name: &str, kernels: &str) -> String {
    let rename = |n: &str| -> String {
        if n == LOCK_NAME {
            name.to_string()
        } else if n == format!("{LOCK_NAME}-kernels") {
            kernels.to_string()
        } else {
            n.to_string()
        }
    };
    let mut blocks = TEMPLATE_LOCK.split("\n[[package]]\n");
    let header = blocks.next().unwrap_or_default();
    let mut packages: Vec<(String, String)> = blocks
        .map(|block| {
            let mut package_name = String::new();
            let mut deps: Vec<String> = Vec::new();
            let mut out: Vec<String> = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("name = \"").and_then(|l| l.strip_suffix('"')) {
                    package_name = rename(n);
                    out.push(format!("name = \"{package_name}\""));
                } else if let Some(d) = line.strip_prefix(" \"").and_then(|l| l.strip_suffix("\",")) {
                    // A dependency: "name" or "name version (source)".
                    let (n, rest) = d.split_once(' ').map_or((d, ""), |(n, r)| (n, r));
                    deps.push(if rest.is_empty() { rename(n) } else { format!("{} {rest}", rename(n)) });
                } else {
                    if line == "]" {
                        // Cargo sorts by name, then version and source, in
                        // the order already here: a stable sort on the name.
                        deps.sort_by(|a, b| a.split(' ').next().cmp(&b.split(' ').next()));
                        out.extend(deps.drain(..).map(|d| format!(" \"{d}\",")));
                    }
                    out.push(line.to_string());
                }
            }
            (package_name, out.join("\n"))
        })
        .collect();
    packages.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = header.to_string();
    for (_, block) in packages {
        text.push_str("\n[[package]]\n");
        text.push_str(&block);
        text.push('\n');
    }
    text
}

fn template(name: &str, kernels: &str, kernels_rs: &str, source: &Source) -> Vec<(&'static str, String)> {
    let workspace = format!(
        r#"# Written by `host new`: a kernel crate of your own and an app that runs it.
[workspace]
resolver = "3"
members = ["kernels", "app"]

[workspace.package]
edition = "2024"
publish = false

[workspace.dependencies]
nvptx-std = {nvptx_std}
nvptx-builder = {nvptx_builder}
pc-pipeline = {pipeline}
host = {host}
"#,
        nvptx_std = dep(source, "nvptx-std"),
        nvptx_builder = dep(source, "nvptx-builder"),
        pipeline = dep(source, "pc-pipeline"),
        host = dep(source, "host"),
    );
    let kernels_toml = format!(
        r#"[package]
name = "{kernels}"
version = "0.1.0"
edition.workspace = true
publish.workspace = true
description = "My kernels: built to PTX by nvptx-builder (app/build.rs), and for the host as their typed launchers"

# No crate-type, profile or toolchain here: nvptx-builder sets what the
# PTX build needs (staticlib, fat LTO, one codegen unit, panic = abort, the
# pinned nightly) and this crate stays an ordinary library for the host.
[dependencies]
nvptx-std.workspace = true
"#
    );
    let kernels_lib = r#"//! My kernels. Each is written once with `#[kernel]`: the PTX build gets
//! the entry, the host build a typed launcher (`ScrambleKernel::launch`).
#![no_std]
#![cfg_attr(target_arch = "nvptx64", feature(abi_ptx))]

use nvptx_std::{Element, Out, kernel};

// This crate, as a type: its launchers load only PTX built from it.
nvptx_std::kernel_crate!();

/// The per-element math: the kernel and the CPU reference both call it.
pub fn scramble(x: u32) -> u32 {
    (x ^ 0x9e37_79b9).rotate_left(7).wrapping_mul(0x2545_f491)
}

/// `output[i] = scramble(input[i])`, each thread writing the elements it owns.
#[kernel(same_len(input, output))]
pub fn scramble_kernel(input: &[u32], mut output: Out<u32>) {
    for (i, o) in output.iter_mut() {
        *o = scramble(input[i]);
    }
}

/// A u8 sample times `factor`: one rounded multiply, the same on GPU and CPU.
pub fn scale(x: u8, factor: f32) -> f32 {
    x as f32 * factor
}

/// u8 -> f32 with a run-time parameter: `scale` comes after `output`, so it
/// is the stage's value (`ScaleKernelParams { scale }`, made by `#[kernel]`),
/// passed at every launch and to the CPU reference.
#[kernel(same_len(input, output))]
pub fn scale_kernel(input: &[u8], mut output: Out<f32>, scale: f32) {
    for (i, o) in output.iter_mut() {
        *o = crate::scale(input[i], scale);
    }
}

/// A struct element: `#[repr(C)]`, every field an `Element`, no padding;
/// `#[derive(Element)]` checks all three at compile time.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Element)]
pub struct Sample {
    pub left: i16,
    pub right: i16,
}

/// The mean of a sample's two channels (exact: small integers, halved).
pub fn mono(s: Sample) -> f32 {
    (s.left as i32 + s.right as i32) as f32 * 0.5
}

/// `Sample` -> f32: a stage over the struct element.
#[kernel(same_len(input, output))]
pub fn mono_kernel(input: &[Sample], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = mono(input[i]);
    }
}
"#
    .to_string();
    let app_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition.workspace = true
publish.workspace = true

[dependencies]
{kernels} = {{ path = "../kernels" }}
pc-pipeline.workspace = true
host.workspace = true

[build-dependencies]
nvptx-builder.workspace = true
"#
    );
    let app_build = r#"//! Builds ../kernels to PTX (the builder pins the toolchain and forces the
//! settings a PTX build needs) and tells main.rs where it is.
fn main() {
    let result = nvptx_builder::Builder::new("../kernels").name("kernels").build().unwrap_or_else(|e| nvptx_builder::fail(&e));
    println!("cargo:rustc-env=MY_KERNELS_PTX={}", result.ptx_path.display());
}
"#
    .to_string();
    let app_main = format!(
        r#"//! This project's command line: the project's own CLI (`host`) with my
//! stages registered. With no arguments it runs and verifies a pipeline
//! through them: h2d -> scale -> d2h over u8 samples.
use pc_pipeline::{{Ptx, Stage, StageRegistry}};
use std::process::ExitCode;
use {kernels_rs}::{{MonoKernel, ScaleKernel, ScaleKernelParams, ScrambleKernel}};

/// My kernels' PTX, built by build.rs.
// SAFETY: build.rs built this file from ../kernels, the crate whose host
// build gives the launchers used below, from the same source.
const MY_PTX: Ptx<{kernels_rs}::KernelCrate> = unsafe {{ Ptx::new(include_str!(env!("MY_KERNELS_PTX"))) }};

/// The `scale` stage's factor unless `--scale X` says otherwise.
const DEFAULT_SCALE: f32 = 1.0 / 255.0;

/// Takes this app's own option, `--scale X`, out of `args`: `Ok(None)`
/// when it is not there.
fn take_scale(args: &mut Vec<String>) -> Result<Option<f32>, String> {{
    let Some(at) = args.iter().position(|a| a == "--scale") else {{ return Ok(None) }};
    let value = args.get(at + 1).ok_or("--scale needs a value")?;
    let scale: f32 = value.parse().map_err(|_| format!("--scale {{value}}: not a number"))?;
    if !scale.is_finite() {{
        return Err(format!("--scale {{value}}: not a finite number"));
    }}
    args.drain(at..at + 2);
    Ok(Some(scale))
}}

fn main() -> ExitCode {{
    host::install_panic_hook();
    let mut args: Vec<String> = std::env::args().collect();
    let given = match take_scale(&mut args) {{
        Ok(given) => given,
        Err(e) => {{
            eprintln!("error: {{e}}");
            return ExitCode::from(2);
        }}
    }};
    let mut stages = StageRegistry::builtin();
    // Each stage: its name, its kernel (typed by #[kernel]), its module, and
    // its CPU reference from the same per-element function.
    let scramble = Stage::map::<ScrambleKernel>("scramble", MY_PTX, |input, output| {{
        output.iter_mut().zip(input).for_each(|(o, &x)| *o = {kernels_rs}::scramble(x))
    }});
    // A run-time value: the stage owns `ScaleKernelParams`, passes it to the
    // kernel at every launch and to the reference as `p`.
    let params = ScaleKernelParams {{ scale: given.unwrap_or(DEFAULT_SCALE) }};
    let scale = Stage::map_with::<ScaleKernel>("scale", MY_PTX, params, |p, input, output| {{
        output.iter_mut().zip(input).for_each(|(o, &x)| *o = {kernels_rs}::scale(x, p.scale))
    }});
    // A struct element: rings and host input carry `Sample`s.
    let mono = Stage::map::<MonoKernel>("mono", MY_PTX, |input, output| {{
        output.iter_mut().zip(input).for_each(|(o, &s)| *o = {kernels_rs}::mono(s))
    }});
    for stage in [scramble, scale, mono] {{
        if let Err(e) = stages.register(stage) {{
            eprintln!("error: {{e}}");
            return ExitCode::from(1);
        }}
    }}
    if args.len() > 1 {{
        // With `--scale` taken out these are no longer the process's own
        // arguments, which `main_with` would read.
        return if given.is_some() {{ host::main_with_args(stages, args) }} else {{ host::main_with(stages) }};
    }}
    let demo = ["{name}", "pipeline", "--stages", "h2d,scale,d2h", "-k", "3", "--chunk", "4MiB", "--total", "64MiB"];
    host::main_with_args(stages, demo)
}}
"#
    );
    let readme = format!(
        r#"# {name}

Written by `host new`. Two crates:

- `kernels/` ({kernels}): kernels in Rust, each written once with
  `#[kernel]`, and the per-element functions the CPU references call too:
  `scramble_kernel` (u32 -> u32), `scale_kernel` (u8 -> f32 times a
  run-time `scale`) and `mono_kernel` (`Sample`, a struct element, -> f32).
- `app/` ({name}): `build.rs` builds `kernels/` to PTX with nvptx-builder;
  `main.rs` registers the stages `scramble`, `scale` and `mono` and runs
  the project's CLI.

```sh
cargo build                 # any machine (the PTX build needs the pinned nightly with rust-src)
cargo run                   # on an NVIDIA GPU: h2d -> scale -> d2h, every chunk verified
cargo run -- --scale 0.5 pipeline --stages h2d,scale,d2h --total 1GiB -k 3
cargo run -- pipeline --stages h2d,mono,d2h
cargo run -- pipeline --stages h2d,scramble,mix-u32,d2h
cargo run -- pipeline --help
```

## Adding a stage

Write the kernel in `kernels/src/lib.rs` with `#[kernel]`, in the map shape
`fn(input: &[I], output: Out<O>)`, and register a stage for it in
`app/src/main.rs` with its CPU reference: `Stage::map::<MyKernel>("name",
MY_PTX, |input, output| ..)`. Verification compares the two bit for bit.

**A parameter.** Add it after `output`: `fn(input: &[u8], output:
Out<f32>, scale: f32)`. A scalar, a `&T` (one value) or a `&[T]` (a
table) may follow. `#[kernel]` then generates `MyKernelParams` with one
public field per parameter (`&T` as a `T`, `&[T]` as a `Vec<T>`); make the
stage with `Stage::map_with::<MyKernel>("name", MY_PTX, MyKernelParams {{
scale }}, |p, input, output| ..)`. The stage owns the value: every launch
passes it (a `&T`/`&[T]` is copied to the GPU once) and the reference gets
it as `p`, so the two cannot disagree. `scale` here takes its value from
`--scale`.

**A struct element.** Write it `#[repr(C)]` and derive `Element`
(`use nvptx_std::Element;`) beside `Clone, Copy`, as `Sample`. The derive
refuses a struct without `#[repr(C)]`, a field that is not an `Element`
(`bool`, `char`, an enum, a reference: device memory may hold any bits),
and padding (reorder the fields largest first, or add explicit ones).
"#
    );
    vec![
        ("Cargo.toml", workspace),
        ("kernels/Cargo.toml", kernels_toml),
        ("kernels/src/lib.rs", kernels_lib),
        ("app/Cargo.toml", app_toml),
        ("app/build.rs", app_build),
        ("app/src/main.rs", app_main),
        ("README.md", readme),
        (".gitignore", "/target\n".to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the project `dir` with path dependencies on this repository
    /// and lets cargo write its lockfile, starting from this repository's
    /// own (so every version is the one CI builds; offline, nothing new is
    /// resolved). `cargo update --workspace` writes the lock from the index
    /// alone: `cargo metadata` would also download every platform's crates
    /// (a Windows-only one), which a fresh CI machine has not cached.
    fn cargo_lockfile(dir: &Path) -> String {
        let repo = built_from();
        assert!(run(&NewArgs { dir: dir.to_path_buf(), repo: Some(repo.clone()), git: None }).unwrap());
        std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out =
            std::process::Command::new(cargo).args(["update", "--offline", "--workspace", "--manifest-path"]).arg(dir.join("Cargo.toml")).output().unwrap();
        assert!(out.status.success(), "cargo update: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(dir.join("Cargo.lock")).unwrap()
    }

    /// `host/new-project.Cargo.lock` is what cargo writes for the template
    /// today; `HOST_NEW_LOCK=overwrite` rewrites it after a dependency or
    /// template change.
    #[test]
    fn lockfile_is_current() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = cargo_lockfile(&tmp.path().join(LOCK_NAME));
        if fresh != TEMPLATE_LOCK {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("new-project.Cargo.lock");
            if std::env::var_os("HOST_NEW_LOCK").is_some_and(|v| v == "overwrite") {
                std::fs::write(&path, &fresh).unwrap();
            } else {
                panic!("{} is stale: rerun this test with HOST_NEW_LOCK=overwrite", path.display());
            }
        }
    }

    /// Renamed, the lockfile is byte for byte what cargo writes for that
    /// name, for names sorted before, among and after the dependencies.
    #[test]
    fn lockfile_is_cargo_s_for_any_name() {
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["aa", "pipes", "zz"] {
            let fresh = cargo_lockfile(&tmp.path().join(dir));
            assert_eq!(lockfile(dir, &format!("{dir}-kernels")), fresh, "{dir}");
        }
    }

    #[test]
    fn names_come_from_the_directory() {
        assert_eq!(crate_name(Path::new("/tmp/My Pipeline")).unwrap(), "my-pipeline");
        assert!(crate_name(Path::new("/tmp/host")).is_err());
        assert!(crate_name(Path::new("/tmp/nvptx-std")).is_err());
        assert!(crate_name(Path::new("/tmp/ptx")).is_err(), "ptx-kernels is taken");
        assert!(crate_name(Path::new("/tmp/deps")).is_err());
        assert!(crate_name(Path::new("/tmp/host-kernels")).is_ok());
        assert!(crate_name(Path::new("/tmp/9lives")).is_err());
        assert!(crate_name(Path::new("/")).is_err());
    }
}
