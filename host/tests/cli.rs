//! The `host` binary from the outside: exit codes and one-line errors.
//! Tests marked "needs a CUDA device" run on a GPU machine with
//! `--include-ignored`; the rest run anywhere.
use std::process::{Command, Output};

/// The binary under test: `HOST_BIN` when set (gathered test binaries run on
/// a machine without the build tree), else cargo's.
fn host(args: &[&str]) -> Output {
    let bin = std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string());
    Command::new(bin).args(args).output().expect("running host")
}

fn with_env(args: &[&str], key: &str, value: &str) -> Output {
    let bin = std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string());
    Command::new(bin).args(args).env(key, value).output().expect("running host")
}

/// Exit code 1 and exactly one line on stderr, starting `error: ` and
/// containing `needle`; nothing that looks like a panic.
fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "want {needle:?} in: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_names_every_flag() {
    let out = host(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for flag in ["--elements", "--block-size", "--grid-size", "--device", "--no-sync", "--spin-us", "--seed"] {
        assert!(text.contains(flag), "{flag} missing from help:\n{text}");
    }
}

#[test]
fn zero_elements_is_refused_before_touching_a_gpu() {
    assert_one_line_error(&host(&["--elements", "0"]), "element count must be at least 1");
}

#[test]
fn zero_block_or_grid_is_refused_before_touching_a_gpu() {
    assert_one_line_error(&host(&["--block-size", "0"]), "block size 0");
    assert_one_line_error(&host(&["--grid-size", "0"]), "grid size must be at least 1");
}

#[test]
fn bad_numbers_are_usage_errors() {
    let out = host(&["--elements", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a count"));
}

/// Without a usable GPU (CI: no driver at all; a GPU machine: every device
/// hidden by CUDA_VISIBLE_DEVICES) the demo fails with one line, exit 1.
#[test]
fn no_driver_or_no_gpu_is_one_line() {
    let out = with_env(&[], "CUDA_VISIBLE_DEVICES", "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let needle = if pc_runtime::gpu::driver_present() { "no CUDA device available" } else { "no NVIDIA driver found" };
    assert_one_line_error(&out, needle);
    assert!(stdout(&out).is_empty(), "printed output although it failed: {stderr}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn default_run_passes_for_2_pow_20() {
    let out = host(&[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("verification: PASS: all 1048576 elements match"), "{text}");
    assert!(text.contains("GB/s"), "{text}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn no_sync_shows_wrong_elements_and_exits_1() {
    let out = host(&["--no-sync", "--spin-us", "2000"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("verification: FAIL:"), "{text}");
    let synced = host(&["--spin-us", "2000"]);
    assert!(synced.status.success(), "{}", stdout(&synced));
}

#[test]
#[ignore = "needs a CUDA device"]
fn bad_device_index_is_one_line() {
    assert_one_line_error(&host(&["--device", "99"]), "device index 99 does not exist");
}

#[test]
#[ignore = "needs a CUDA device"]
fn too_many_elements_is_one_line() {
    assert_one_line_error(&host(&["--elements", "1e12"]), "of device memory, more than");
}

#[test]
#[ignore = "needs a CUDA device"]
fn refused_block_size_is_one_line() {
    assert_one_line_error(&host(&["--block-size", "2048"]), "block size 2048 is not accepted");
}
