//! The `host` binary from the outside: exit codes and one-line errors.
//! Tests marked "needs a CUDA device" run on a GPU machine with
//! `--include-ignored`; the rest run anywhere.
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

/// Usage errors: clap's one line, exit 2 (docs/guide.md says so), for the demo
/// and each subcommand.
#[test]
fn usage_errors_are_one_line_and_exit_2() {
    for args in [&["--bogus"][..], &["pipeline", "-k", "x"], &["pipeline", "--chunk", "12 parsecs"], &["bench", "--reps", "-1"], &["new"]] {
        let out = host(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
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
    assert_one_line_error(&host(&["--gpu", "99"]), "device index 99 does not exist");
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

// ---- host pipeline ----

#[test]
fn pipeline_help_lists_the_knobs() {
    let text = stdout(&host(&["pipeline", "--help"]));
    for flag in
        ["--workload", "--stages", "--slots", "--chunk", "--total", "--graph", "--grain", "--gpus", "--trace", "--svg", "--compare-serial", "--input", "--runs"]
    {
        assert!(text.contains(flag), "{flag} missing:\n{text}");
    }
}

#[test]
fn pipeline_refuses_bad_shapes_before_touching_a_gpu() {
    assert_one_line_error(&host(&["pipeline", "-k", "0"]), "K (slots per ring) must be at least 1");
    assert_one_line_error(&host(&["pipeline", "--stages", "h2d,blur,d2h"]), "unknown stage \"blur\"");
    assert_one_line_error(&host(&["pipeline", "--stages", "consumer,d2h"]), "must start with a source");
    assert_one_line_error(&host(&["pipeline", "--chunk", "4097"]), "not a whole number of f32 (4 bytes each)");
    // Sizes follow the source's element type: 8-byte f64 here.
    assert_one_line_error(&host(&["pipeline", "--stages", "h2d,double-f64,d2h", "--chunk", "4100"]), "not a whole number of f64 (8 bytes each)");
    assert_one_line_error(&host(&["pipeline", "--stages", "producer,,reduce"]), "stage 2 is empty");
    assert_one_line_error(&host(&["pipeline", "--stages", "producer,u8-to-f32,reduce"]), "producer writes f32 but u8-to-f32 reads u8");
    assert_one_line_error(&host(&["pipeline", "--chunk", "0"]), "chunk size must be at least one element");
    assert_one_line_error(&host(&["pipeline", "--total", "0"]), "element count must be at least 1");
    assert_one_line_error(&host(&["pipeline", "--runs", "0"]), "--runs must be at least 1");
    assert_one_line_error(&host(&["pipeline", "--svg", "/nonexistent-dir/t.svg"]), "does not exist");
    assert_one_line_error(&host(&["pipeline", "--gpus", "0,x"]), "is not a device index");
    assert_one_line_error(&host(&["pipeline", "--input", "/tmp/x.bin"]), "--input needs a pipeline that starts with h2d");
}

/// Every refusal that needs no GPU comes before the driver is opened: on a
/// machine without one (CI) the refusal, not "no NVIDIA driver".
#[test]
fn refusals_that_need_no_gpu_come_before_the_driver() {
    for (args, want) in [
        (&["--stages", "h2d,consumer,d2h", "--grain", "flags"][..], "stage h2d has no flags form"),
        (&["-w", "stream", "--grain", "flags", "--gpus", "all"], "stage h2d has no flags form"),
        (&["--grain", "flags", "-k", "300"], "at most 256 slots per ring"),
        (&["--place", "0,1,1", "--grain", "flags"], "placed on several GPUs runs with stream launches or graph replay"),
        (&["--grain", "graph", "--trace", "/tmp/t.json"], "only --grain streams, warps and flags have"),
        (&["--grain", "graph", "--check-sync"], "which a captured graph cannot"),
        (&["--check-sync", "--gpus", "0,1"], "--check-sync runs on one GPU"),
        (&["--check-sync", "--place", "0,1,1", "--grain", "warps"], "placed on several GPUs"),
        (&["--place", "0,1,1", "--compare-serial"], "--compare-serial runs the serial baseline on one stream"),
        (&["--stages", "h2d,moving-average,d2h", "--gpus", "0,1"], "cannot run split over 2 GPUs"),
        (&["-w", "stream", "--stages", "h2d,consumer,reduce", "--input", "/dev/null"], "needs a pipeline that ends with d2h"),
    ] {
        let out = host(&[&["pipeline"][..], args].concat());
        assert_one_line_error(&out, want);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("driver"), "{args:?}");
    }
}

/// A source element whose size does not divide the default `--chunk` (or
/// `--total`): the error names the flag that takes elements. Run in a
/// child (this test binary again) with a 3-byte stage registered, so that
/// its standard error can be read.
#[test]
fn sizes_that_are_not_whole_elements_name_the_elements_flag() {
    if std::env::var_os("HOST_CLI_THREE_BYTES").is_some() {
        return;
    }
    let run = |args: &str| {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "three_byte_child", "--nocapture", "--include-ignored", "--test-threads=1"])
            .env("HOST_CLI_THREE_BYTES", args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args}: {stderr}");
        lines[0].to_string()
    };
    let e = run("");
    assert!(e.starts_with("error: --chunk 4194304 bytes is not a whole number of [u8; 3] (3 bytes each)") && e.contains("--chunk-elements"), "{e}");
    let e = run("--chunk-elements 1000");
    assert!(e.starts_with("error: --total 268435456 bytes is not a whole number of [u8; 3]") && e.contains("--total-elements"), "{e}");
    let e = run("--chunk 3MiB --total 3001");
    assert!(e.contains("--total 3001 bytes") && e.contains("--total-elements"), "{e}");
}

/// The child of the test above: `host pipeline --stages h2d,rgb,d2h` with
/// a map stage on 3-byte elements and the arguments it was given.
#[test]
#[ignore = "run by sizes_that_are_not_whole_elements_name_the_elements_flag"]
fn three_byte_child() {
    use pc_pipeline::stage::{Kind, MapStage, OnGpu, Setup};
    use pc_pipeline::{ElemType, HostChunk, PipelineError, Stage};
    let Some(extra) = std::env::var_os("HOST_CLI_THREE_BYTES") else { return };
    struct Rgb;
    impl MapStage for Rgb {
        fn input(&self) -> ElemType {
            ElemType::of::<[u8; 3]>()
        }
        fn output(&self) -> ElemType {
            ElemType::of::<[u8; 3]>()
        }
        fn prepare(&self, _: &mut Setup<'_>) -> Result<Box<dyn OnGpu>, PipelineError> {
            Err(PipelineError::BadStages("rgb: not run in this test".into()))
        }
        fn reference(&self, _: &HostChunk, input: &HostChunk) -> Result<HostChunk, String> {
            Ok(input.clone())
        }
    }
    let mut registry = pc_pipeline::StageRegistry::builtin();
    registry.register(Stage::new("rgb", "map: [u8; 3] as it is", Kind::Map(std::sync::Arc::new(Rgb)))).unwrap();
    let extra = extra.to_string_lossy().into_owned();
    let args = ["host", "pipeline", "-w", "stream", "--stages", "h2d,rgb,d2h"].into_iter().chain(extra.split_whitespace());
    let code = host::main_with_args(registry, args);
    std::process::exit(if code == std::process::ExitCode::SUCCESS { 0 } else { 1 });
}

#[test]
fn pipeline_input_file_must_exist_and_be_long_enough() {
    assert_one_line_error(&host(&["pipeline", "-w", "stream", "--input", "/nonexistent/in.bin"]), "No such file");
    let short = tmp_dir("short").join("short-input.bin");
    std::fs::write(&short, [0u8; 100]).unwrap();
    assert_one_line_error(&host(&["pipeline", "-w", "stream", "--input", "-", "--rate=-1"]), "--rate -1: give a positive rate");
    assert_one_line_error(&host(&["pipeline", "-w", "stream", "--input", "-", "--host-slots", "1"]), "--host-slots must be at least 2");
}

/// A usage error: exit 2, one line starting `error: ` with every needle.
fn assert_usage_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{needles:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{needles:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{needles:?}: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "want {needle:?} in: {stderr}");
    }
}

/// The stream mode (`--input`) refuses every batch flag at parse time, a
/// value equal to the default included: a usage error naming the flag.
#[test]
fn a_stream_refuses_a_batchs_flags_at_parse_time() {
    let short = tmp_dir("stream-mode").join("in.bin");
    std::fs::write(&short, [0u8; 64]).unwrap();
    for flag in [
        &["--total", "4KiB"][..],
        &["--total-elements", "16"],
        &["--graph"],
        &["--runs", "2"],
        &["--runs", "1"],
        &["--gpus", "0"],
        &["--place", "0,0,0"],
        &["--compare-serial"],
        &["--check-sync"],
        &["--delay-us", "5"],
    ] {
        let mut args = vec!["pipeline", "-w", "stream", "--input", short.to_str().unwrap()];
        args.extend_from_slice(flag);
        let out = host(&args);
        assert_usage_error(&out, &["cannot be used with", "--input", flag[0]]);
        // That flag alone, not every flag of the batch.
        assert_eq!(String::from_utf8_lossy(&out.stderr).matches("'--").count(), 2, "{flag:?}");
    }
}

/// The batch mode (no `--input`) refuses every stream flag at parse time:
/// a usage error naming the missing `--input`.
#[test]
fn a_batch_refuses_a_streams_flags_at_parse_time() {
    for flag in [
        &["--output", "x.bin"][..],
        &["--host-slots", "4"],
        &["--readers", "2"],
        &["--host-only"],
        &["--drop-oldest"],
        &["--rate", "1"],
        &["--no-verify"],
        &["--json", "r.json"],
    ] {
        let args = [&["pipeline", "-w", "stream"][..], flag].concat();
        assert_usage_error(&host(&args), &["not provided", "--input"]);
    }
}

/// The rank mode (`PC_RANK` set) is chosen by the environment, after
/// parsing: what it cannot run is one line, exit 1, before any GPU.
#[test]
fn a_rank_refuses_a_stream_and_the_single_process_checks() {
    let bin = std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string());
    let rank = |args: &[&str]| Command::new(&bin).args(args).env("PC_RANK", "0").env("PC_NPROCS", "1").output().expect("running host");
    assert_one_line_error(&rank(&["pipeline", "-w", "stream", "--input", "/dev/null"]), "--input streams through one process");
    assert_one_line_error(&rank(&["pipeline", "--check-sync"]), "run in one process");
    assert_one_line_error(&rank(&["pipeline", "--compare-serial"]), "run in one process");
}

/// `--help` lists the flags by mode: those of every mode, then a batch's,
/// then a stream's, each under its heading.
#[test]
fn pipeline_help_groups_the_flags_by_mode() {
    let text = stdout(&host(&["pipeline", "--help"]));
    let lines: Vec<&str> = text.lines().collect();
    // The line where a heading, or a flag's entry ("-r, --runs <RUNS>"), is.
    let at = |name: &str| {
        lines
            .iter()
            .position(|l| {
                let l = l.trim_start();
                let entry = l.split_once(", ").filter(|(short, _)| short.len() == 2).map_or(l, |(_, long)| long);
                l == name || entry.split([' ', '=']).next() == Some(name)
            })
            .unwrap_or_else(|| panic!("{name:?} missing:\n{text}"))
    };
    let (batch, stream) = (at("Batch (generated input):"), at("Stream (--input):"));
    assert!(batch < stream, "{text}");
    for flag in [
        "--workload",
        "--stages",
        "--slots",
        "--chunk",
        "--chunk-elements",
        "--block-size",
        "--grain",
        "--watchdog-ms",
        "--trace",
        "--svg",
        "--seed",
        "--fir-taps",
        "--ptx",
    ] {
        assert!(at(flag) < batch, "{flag} not before the batch flags:\n{text}");
    }
    for flag in ["--total", "--total-elements", "--graph", "--runs", "--gpus", "--place", "--compare-serial", "--check-sync", "--delay-us"] {
        assert!((batch..stream).contains(&at(flag)), "{flag} not under the batch heading:\n{text}");
    }
    for flag in ["--input", "--output", "--host-slots", "--readers", "--host-only", "--drop-oldest", "--rate", "--no-verify", "--json"] {
        assert!(at(flag) > stream, "{flag} not under the stream heading:\n{text}");
    }
}

#[test]
fn fir_taps_files_are_checked_before_touching_a_gpu() {
    let d = tmp_dir("taps");
    let bad = d.join("bad.txt");
    std::fs::write(&bad, "0.5, 0.25\n# a comment\n0.25 x\n").unwrap();
    assert_one_line_error(&host(&["pipeline", "-s", "producer,fir,reduce", "--fir-taps", bad.to_str().unwrap()]), "line 3: \"x\" is not a number");
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "# nothing\n").unwrap();
    assert_one_line_error(&host(&["pipeline", "-s", "producer,fir,reduce", "--fir-taps", empty.to_str().unwrap()]), "no taps");
    assert_one_line_error(&host(&["pipeline", "--fir-taps", "/nonexistent/taps.txt"]), "taps file /nonexistent/taps.txt");
}

// ---- host gen ----

#[test]
fn gen_writes_the_generated_input() {
    let out = host(&["gen", "--total", "16"]);
    assert!(out.status.success());
    let want: Vec<u8> = (0..4).flat_map(|i| kernel_math::produce(i, 0x5eed).to_le_bytes()).collect();
    assert_eq!(out.stdout, want);
    assert_one_line_error(&host(&["gen", "--total", "6"]), "not a whole number of f32");
    assert_one_line_error(&host(&["gen", "--type", "f16", "--total", "6"]), "not one of");
    let out = host(&["gen", "--type", "u8", "--total", "5"]);
    assert_eq!(out.stdout.len(), 5);
}

fn tmp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pc-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `--host-only` needs no GPU: the file through the readers (several
/// chunks at once) into ordinary memory; every chunk counted once, a
/// mid-element end is one line naming the bytes, a read-side error too.
#[test]
fn host_only_reads_a_file_through_the_readers_without_a_gpu() {
    let d = tmp_dir("host-only");
    let input = d.join("in.bin");
    std::fs::write(&input, vec![7u8; (3 << 20) + 4 * 1000]).unwrap();
    for readers in ["1", "3", "8"] {
        let json = d.join(format!("r{readers}.json"));
        let args = [
            "pipeline",
            "-w",
            "stream",
            "--chunk",
            "64KiB",
            "--input",
            input.to_str().unwrap(),
            "--host-only",
            "--readers",
            readers,
            "--json",
            json.to_str().unwrap(),
        ];
        let out = host(&args);
        assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["bytes_in"], (3 << 20) + 4 * 1000, "--readers {readers}");
        assert_eq!(report["chunks"], 49, "--readers {readers}");
        assert_eq!(report["dropped_chunks"], 0);
    }
    std::fs::write(&input, vec![0u8; (1 << 20) + 3]).unwrap();
    let out = host(&["pipeline", "-w", "stream", "--chunk", "64KiB", "--input", input.to_str().unwrap(), "--host-only"]);
    assert_one_line_error(&out, "the stream ended mid-element: 1048579 bytes");
    assert_one_line_error(
        &host(&["pipeline", "-w", "stream", "--input", input.to_str().unwrap(), "--host-only", "--readers", "0"]),
        "--readers must be at least 1",
    );
    // With an output: the input as it is, and no file left when it fails.
    let output = d.join("out.bin");
    assert_one_line_error(
        &host(&["pipeline", "-w", "stream", "--chunk", "64KiB", "--input", input.to_str().unwrap(), "--host-only", "--output", output.to_str().unwrap()]),
        "the stream ended mid-element",
    );
    assert!(!output.exists());
    let data: Vec<u8> = (0..(1u32 << 20) + 12_345).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let out = host(&[
        "pipeline",
        "-w",
        "stream",
        "-s",
        "h2d,u8-to-f32,d2h",
        "--chunk",
        "64KiB",
        "--input",
        input.to_str().unwrap(),
        "--host-only",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&output).unwrap() == data, "the output is not the input");
    let trace = d.join("t.json");
    assert_one_line_error(
        &host(&["pipeline", "-w", "stream", "--input", input.to_str().unwrap(), "--host-only", "--trace", trace.to_str().unwrap()]),
        "not available with --host-only",
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
#[ignore = "needs a CUDA device"]
fn pipeline_stream_run_writes_timeline_and_beats_serial() {
    let d = tmp_dir("timeline");
    let (svg, trace) = (d.join("t.svg"), d.join("t.json"));
    let out = host(&[
        "pipeline",
        "-w",
        "stream",
        "-k",
        "3",
        "--chunk",
        "4MiB",
        "--total",
        "64MiB",
        "--svg",
        svg.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--compare-serial",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("verification: PASS: all 16 chunks"), "{text}");
    assert!(text.contains("speed-up: pipelined / serial ="), "{text}");
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg") && svg_text.matches("<rect").count() > 3 * 16, "{}", &svg_text[..200.min(svg_text.len())]);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert_eq!(json["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").count(), 3 * 16);
}

#[test]
#[ignore = "needs a CUDA device"]
fn pipeline_generate_with_graph_and_input_file() {
    let out = host(&["pipeline", "-w", "generate", "-k", "2", "--chunk", "1MiB", "--total", "10MiB", "--graph", "--runs", "4"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("verification: PASS: all 10 chunks match the CPU reference (reductions exact)"));
    let d = tmp_dir("input");
    let input = d.join("in.bin");
    let data: Vec<u8> = (0..(1u32 << 18)).flat_map(|i| ((i as f32) * 0.25 - 7.0).to_le_bytes()).collect();
    std::fs::write(&input, data).unwrap();
    let out = host(&["pipeline", "-w", "stream", "--chunk", "100KiB", "--input", input.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("verification: PASS: all 11 chunks"), "{}", stdout(&out));
}

#[test]
#[ignore = "needs a CUDA device"]
fn pipeline_bad_gpu_index_is_one_line() {
    assert_one_line_error(&host(&["pipeline", "--gpus", "0,42"]), "device index 42 does not exist");
}

#[test]
#[ignore = "needs a CUDA device"]
fn pipeline_sync_checker_finds_every_edge_needed() {
    for w in ["generate", "stream"] {
        let out = host(&["pipeline", "-w", w, "--check-sync", "-k", "2", "--chunk", "1MiB", "--total", "6MiB", "--delay-us", "1000"]);
        let text = stdout(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("summary: 20 of 20 edges needed and detected; zero corruption without mutations"), "{text}");
    }
}

// ---- bad kernels and PTX ----

#[test]
fn missing_ptx_file_is_one_line() {
    assert_one_line_error(&host(&["--ptx", "/nonexistent/kernels.ptx"]), "PTX file /nonexistent/kernels.ptx");
    assert_one_line_error(&host(&["pipeline", "--ptx", "/nonexistent/kernels.ptx"]), "PTX file /nonexistent/kernels.ptx");
}

/// The embedded PTX with `body` inserted at the start of both consumer
/// kernels (the demo's seed-style one and the pipeline's vectorized one).
fn ptx_with(body: &str, name: &str) -> std::path::PathBuf {
    let mut ptx = ptx_kernels::KERNELS.to_string();
    use pc_runtime::launch::KernelEntry;
    for kernel in [ptx_kernels::ConsumerKernel::NAME, ptx_kernels::ConsumerVecKernel::NAME] {
        let at = ptx.find(&format!(".visible .entry {kernel}(")).expect("entry");
        let open = at + ptx[at..].find("\n{").expect("body") + 2;
        ptx.insert_str(open, &format!("{body}\n"));
    }
    let path = tmp_dir("ptx").join(name);
    std::fs::write(&path, ptx).unwrap();
    path
}

#[test]
#[ignore = "needs a CUDA device"]
fn ptx_that_does_not_parse_is_one_line() {
    let path = tmp_dir("ptx").join("garbage.ptx");
    std::fs::write(&path, "this is not PTX\n").unwrap();
    assert_one_line_error(&host(&["--ptx", path.to_str().unwrap()]), "loading the kernels' PTX");
    assert_one_line_error(&host(&["pipeline", "--ptx", path.to_str().unwrap()]), "loading the kernels' PTX");
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_trapping_kernel_is_reported_and_leaves_no_output_file() {
    let ptx = ptx_with("\ttrap;", "trap.ptx");
    let start = std::time::Instant::now();
    assert_one_line_error(&host(&["--ptx", ptx.to_str().unwrap()]), "CUDA_ERROR_");
    let svg = tmp_dir("trap").join("t.svg");
    let out = host(&["pipeline", "-w", "stream", "--chunk", "1MiB", "--total", "4MiB", "--ptx", ptx.to_str().unwrap(), "--svg", svg.to_str().unwrap()]);
    assert_one_line_error(&out, "CUDA_ERROR_");
    assert!(!svg.exists(), "a timeline was written for a failed run");
    assert!(start.elapsed() < std::time::Duration::from_secs(60), "took {:?}", start.elapsed());
}

#[test]
#[ignore = "needs a CUDA device"]
fn an_out_of_bounds_access_is_reported() {
    let oob = "\t{\n\t.reg .b64 %oobp;\n\t.reg .b32 %oobv;\n\tmov.u64 %oobp, 64;\n\tld.global.b32 %oobv, [%oobp];\n\tst.global.b32 [%oobp], %oobv;\n\t}";
    let ptx = ptx_with(oob, "oob.ptx");
    assert_one_line_error(&host(&["--ptx", ptx.to_str().unwrap()]), "CUDA_ERROR_");
    assert_one_line_error(&host(&["pipeline", "--ptx", ptx.to_str().unwrap(), "--chunk", "1MiB", "--total", "4MiB"]), "CUDA_ERROR_");
}

#[test]
#[ignore = "needs a CUDA device"]
fn long_runs_report_memory() {
    // 20,000 runs of each launch mode; the host must not grow with the run
    // count (a leak of one event per run was ~0.8 KiB a run: 15 MiB here).
    for mode in ["--graph", "--runs"] {
        let mut args = vec!["pipeline", "-w", "generate", "--chunk", "64KiB", "--total", "256KiB", "--runs", "20000"];
        if mode == "--graph" {
            args.push("--graph");
        }
        let out = host(&args);
        let text = stdout(&out);
        assert!(out.status.success(), "{text}");
        let growth: i64 =
            text.split("(growth ").nth(1).and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no memory line in {text}"));
        assert!(growth < 4 << 20, "host RSS grew {growth} bytes over 20000 runs: {text}");
    }
}

/// Ctrl-C during a long run: one line, exit 130, promptly, no timeline file
/// (the GPU work already queued finishes before the memory is freed).
#[test]
#[ignore = "needs a CUDA device"]
fn sigint_stops_a_long_run_cleanly() {
    let bin = std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string());
    let svg = tmp_dir("sigint").join("t.svg");
    let child = Command::new(bin)
        .args(["pipeline", "-w", "generate", "--chunk", "1MiB", "--total", "64MiB", "--runs", "1000000", "--svg"])
        .arg(&svg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running host");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let sent = Instant::now();
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("waiting for host");
    let waited = sent.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: interrupted:"), "{stderr}");
    assert!(waited < Duration::from_secs(5), "took {waited:?} to stop");
    assert!(!svg.exists(), "a timeline was written for an interrupted run");
    eprintln!("stopped {waited:?} after SIGINT: {}", stderr.trim_end());
}

/// A program's own arguments cannot vouch for `--ptx`, `--no-sync` or
/// `--check-sync`: `main_with_args` refuses them (one line, exit 2).
#[test]
fn supplied_arguments_cannot_vouch() {
    for args in [&["x", "--no-sync"][..], &["x", "pipeline", "--ptx", "/tmp/a.ptx"], &["x", "pipeline", "--check-sync"], &["x", "--ptx=/tmp/a.ptx"]] {
        let code = host::main_with_args(pc_pipeline::StageRegistry::builtin(), args);
        assert_eq!(code, std::process::ExitCode::from(2), "{args:?}");
    }
}

// ---- streams through standard input and output ----

/// `host gen | host pipeline --input - --output -`, every output element
/// checked here against `2 * produce(i, seed)`; the host's resident set
/// sampled while it runs. Returns (bytes checked, RSS samples in bytes).
fn stream_through_pipes(total: u64, chunk: &str, extra: &[&str]) -> (u64, Vec<u64>) {
    use std::io::Read;
    use std::process::Stdio;
    let bin = std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string());
    let total_s = total.to_string();
    let mut generator = Command::new(&bin).args(["gen", "--total", &total_s, "--seed", "77"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut args = vec!["pipeline", "-w", "stream", "--input", "-", "--output", "-", "--chunk", chunk, "--seed", "77"];
    args.extend_from_slice(extra);
    let mut pipe = Command::new(&bin).args(&args).stdin(generator.stdout.take().unwrap()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = pipe.id();
    let rss = || -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: u64 = s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    let mut out = pipe.stdout.take().unwrap();
    let mut buf = vec![0u8; 64 << 20];
    let (mut at, mut samples, mut last_sample) = (0u64, Vec::new(), Instant::now());
    loop {
        let mut n = 0;
        while n < buf.len() {
            match out.read(&mut buf[n..]).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        if n == 0 {
            break;
        }
        assert_eq!(n % 4, 0, "output ends mid-element at {}", at + n as u64);
        // Check on every core: element i is 2 * produce(i, 77).
        let first = at / 4;
        std::thread::scope(|s| {
            for (p, piece) in buf[..n].chunks(n.div_ceil(8).next_multiple_of(4)).enumerate() {
                let base = first + (p * n.div_ceil(8).next_multiple_of(4) / 4) as u64;
                s.spawn(move || {
                    for (j, w) in piece.chunks_exact(4).enumerate() {
                        let i = base + j as u64;
                        let want = kernel_math::produce(i, 77) * 2.0;
                        let got = f32::from_le_bytes(w.try_into().unwrap());
                        assert_eq!(got.to_bits(), want.to_bits(), "element {i}: {got}, want {want}");
                    }
                });
            }
        });
        at += n as u64;
        if last_sample.elapsed() > Duration::from_millis(200) {
            samples.extend(rss());
            last_sample = Instant::now();
        }
    }
    let status = pipe.wait().unwrap();
    let mut err = String::new();
    pipe.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(generator.wait().unwrap().success());
    assert!(status.success(), "{err}");
    assert!(err.contains("verification: PASS") || err.contains("verification: skipped"), "{err}");
    eprintln!("{err}");
    (at, samples)
}

#[test]
#[ignore = "needs a CUDA device"]
fn stream_stdin_to_stdout_with_a_partial_last_chunk() {
    let total = (64 << 20) + 4 * 1000; // 16 chunks and a partial one
    let (checked, _) = stream_through_pipes(total, "4MiB", &["-k", "2"]);
    assert_eq!(checked, total);
}

/// The long test: at least 16 GiB (PC_STREAM_TEST_BYTES to change)
/// through pipes, every element checked, the host's RSS flat.
#[test]
#[ignore = "needs a CUDA device"]
fn stream_16_gib_through_pipes_with_flat_rss() {
    let total: u64 = std::env::var("PC_STREAM_TEST_BYTES").ok().and_then(|s| s.parse().ok()).unwrap_or(16 << 30);
    let t = Instant::now();
    let (checked, rss) = stream_through_pipes(total, "4MiB", &["--no-verify"]);
    assert_eq!(checked, total);
    assert!(rss.len() >= 4, "too few RSS samples: {rss:?}");
    // Flat: after warm-up it does not grow (the last sample may be taken
    // while the process frees its buffers at the end, so lower is fine).
    let (first, last, max) = (rss[rss.len() / 4], rss[rss.len() - 1], rss.iter().copied().max().unwrap());
    eprintln!(
        "streamed {} GiB in {:.1} s, every element checked; host RSS (MiB) after warm-up {}, last {}, max {} over {} samples",
        total >> 30,
        t.elapsed().as_secs_f64(),
        first >> 20,
        last >> 20,
        max >> 20,
        rss.len()
    );
    assert!(last < first + (16 << 20) && max < first + (64 << 20), "RSS not flat: {rss:?}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_truncated_stream_leaves_no_output_file() {
    let d = tmp_dir("truncated");
    let input = d.join("in.bin");
    std::fs::write(&input, vec![0u8; (1 << 20) + 3]).unwrap();
    let output = d.join("out.bin");
    let out = host(&["pipeline", "-w", "stream", "--chunk", "64KiB", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    assert_one_line_error(&out, "the stream ended mid-element: 1048579 bytes");
    assert!(!output.exists(), "a partial output was left under the final name");
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n != "in.bin").collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    // The same input, whole: the file appears, with every element right.
    std::fs::write(&input, (0..(1u32 << 18)).flat_map(|i| (i as f32).to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let json = d.join("report.json");
    let out = host(&[
        "pipeline",
        "-w",
        "stream",
        "--chunk",
        "64KiB",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let got = std::fs::read(&output).unwrap();
    assert_eq!(got.len(), 1 << 20);
    for (i, w) in got.chunks_exact(4).enumerate() {
        assert_eq!(f32::from_le_bytes(w.try_into().unwrap()), i as f32 * 2.0, "element {i}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["chunks"], 16);
    assert!(report["latency_us"]["p99"].as_f64().unwrap() > 0.0);
}

/// `--trace` and `--svg` on a stream: a span per (stage, chunk), each
/// chunk's latency on its own row, and the latency figures in the trace.
#[test]
#[ignore = "needs a CUDA device"]
fn a_stream_writes_its_trace_with_latency() {
    let d = tmp_dir("stream-trace");
    let input = d.join("in.bin");
    std::fs::write(&input, vec![0u8; 1 << 20]).unwrap();
    let (trace, svg) = (d.join("t.json"), d.join("t.svg"));
    let args = [
        "pipeline",
        "-w",
        "stream",
        "--chunk",
        "64KiB",
        "--input",
        input.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ];
    let out = host(&args);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    let spans = |prefix: &str| events.iter().filter(|e| e["ph"] == "X" && e["name"].as_str().unwrap().starts_with(prefix)).count();
    assert_eq!((spans("h2d chunk"), spans("consumer chunk"), spans("d2h chunk"), spans("read chunk"), spans("latency chunk")), (16, 16, 16, 16, 16));
    assert!(events.iter().any(|e| e["args"]["name"] == "host: chunk latency"));
    assert!(events.iter().any(|e| e["args"]["name"] == "host: chunk read"));
    assert!(t["otherData"]["latency_us"]["p99"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("host: chunk latency"));
}

/// A file paced far above what any stream sustains, under --drop-oldest:
/// chunks are dropped (unread, or overtaken in the ring) and counted,
/// delivered + dropped = every chunk, what is delivered verifies, and the
/// last partial chunk's mid-element end is still reported.
#[test]
#[ignore = "needs a CUDA device"]
fn a_paced_file_under_drop_oldest_counts_its_drops() {
    let d = tmp_dir("live-drop");
    let input = d.join("in.bin");
    let chunks = 512u64;
    std::fs::write(&input, (0..(chunks * 16384) as u32).flat_map(|i| (i as f32).to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let json = d.join("r.json");
    let args = [
        "pipeline",
        "-w",
        "stream",
        "--chunk",
        "64KiB",
        "--input",
        input.to_str().unwrap(),
        "--rate",
        "1000",
        "--drop-oldest",
        "--json",
        json.to_str().unwrap(),
    ];
    let out = host(&args);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let (got, dropped) = (r["chunks"].as_u64().unwrap(), r["dropped_chunks"].as_u64().unwrap());
    assert!(dropped > 0, "{r}");
    assert_eq!(got + dropped, chunks, "{r}");
    assert_eq!(r["dropped_bytes"].as_u64().unwrap(), dropped * 65536);
    assert_eq!(r["verified"], true);
    // Two bytes more: the end is read whatever was dropped before it.
    let mut f = std::fs::OpenOptions::new().append(true).open(&input).unwrap();
    std::io::Write::write_all(&mut f, &[1, 2]).unwrap();
    assert_one_line_error(&host(&args), &format!("the stream ended mid-element: {} bytes", chunks * 65536 + 2));
}

// ---- grains (issue 11) ----

#[test]
fn grains_a_pipeline_cannot_run_are_one_line_before_touching_a_gpu() {
    assert_one_line_error(&host(&["pipeline", "-w", "stream", "--grain", "pdl"]), "the pdl grain cannot run this pipeline");
    assert_one_line_error(
        &host(&["pipeline", "--stages", "producer,moving-average,reduce", "--grain", "pdl-graph"]),
        "moving-average of producer,moving-average,reduce has none",
    );
    assert_one_line_error(&host(&["pipeline", "-w", "stream", "--stages", "h2d,d2h", "--grain", "warps"]), "the warps grain cannot run this pipeline");
    assert_one_line_error(&host(&["pipeline", "--grain", "pdl", "--graph"]), "--graph is --grain graph");
    let short = tmp_dir("grain").join("in.bin");
    std::fs::write(&short, [0u8; 64]).unwrap();
    assert_one_line_error(&host(&["pipeline", "-w", "stream", "--grain", "pdl", "--input", short.to_str().unwrap()]), "is not available for a stream");
    // Unknown grains are usage errors.
    assert_eq!(host(&["pipeline", "--grain", "threads"]).status.code(), Some(2));
}

#[test]
#[ignore = "needs a CUDA device"]
fn pipeline_pdl_grains_verify_or_refuse_old_gpus() {
    for grain in ["pdl", "pdl-graph"] {
        let out = host(&["pipeline", "--grain", grain, "-k", "3", "--chunk", "64KiB", "--total", "4100KiB", "--runs", "3"]);
        let (text, err) = (stdout(&out), String::from_utf8_lossy(&out.stderr).into_owned());
        if err.contains("needs a GPU of compute capability 9.0") {
            assert_one_line_error(&out, "needs a GPU of compute capability 9.0");
            continue;
        }
        assert!(out.status.success(), "{text}{err}");
        assert!(text.contains("programmatic dependent launches"), "{text}");
        assert!(text.contains("verification: PASS: all 65 chunks match the CPU reference (reductions exact)"), "{text}");
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn pipeline_pdl_sync_checker_shows_the_wait_is_needed() {
    let out = host(&["pipeline", "--grain", "pdl", "--check-sync", "-k", "2", "--chunk", "1MiB", "--total", "6MiB", "--delay-us", "1000"]);
    let (text, err) = (stdout(&out), String::from_utf8_lossy(&out.stderr).into_owned());
    if err.contains("needs a GPU of compute capability 9.0") {
        return;
    }
    assert!(out.status.success(), "{text}{err}");
    assert!(text.contains("sync check (pdl): PASS"), "{text}");
    assert_eq!(text.matches("as expected").count() - text.matches("NOT AS EXPECTED").count(), 4, "{text}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn pipeline_warps_grain_verifies_and_its_sync_checker_shows_the_full_wait_is_needed() {
    for w in ["generate", "stream"] {
        let out = host(&["pipeline", "-w", w, "--grain", "warps", "-k", "3", "--chunk", "1MiB", "--total", "13MiB", "--runs", "2"]);
        let (text, err) = (stdout(&out), String::from_utf8_lossy(&out.stderr).into_owned());
        if err.contains("needs a GPU of compute capability 9.0") {
            assert_one_line_error(&out, "needs a GPU of compute capability 9.0");
            return;
        }
        assert!(out.status.success(), "{text}{err}");
        assert!(text.contains("warp-specialized mbarrier ring") && text.contains("verification: PASS: all 13 chunks"), "{text}");
        let out = host(&["pipeline", "-w", w, "--grain", "warps", "--check-sync", "-k", "2", "--chunk", "1MiB", "--total", "6MiB", "--delay-us", "200"]);
        let text = stdout(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("sync check (warps): PASS"), "{text}");
    }
}

// ---- --device sim (no GPU, no driver: these run in CI) ----

/// `host ARGS` with `input` on standard input.
fn host_with_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let bin = std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string());
    let mut child = Command::new(bin).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running host");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("running host");
    writer.join().unwrap().unwrap();
    out
}

/// Exit 0, the verification line, every time simulated (no figure that
/// would pass for a measured one).
fn assert_sim_passed(out: &Output, pass: &str) -> String {
    let text = stdout(out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{stderr}");
    assert!(text.contains(pass), "want {pass:?} in:\n{text}");
    assert!(text.contains("time: simulated (no GPU time)"), "{text}");
    for measured in ["GB/s", " ms", "speed-up: pipelined"] {
        assert!(!text.contains(measured), "{measured:?} in a simulated run:\n{text}");
    }
    text
}

#[test]
fn sim_demo_passes_with_no_gpu() {
    let text = assert_sim_passed(&host(&["--device", "sim"]), "verification: PASS: all 1048576 elements match the CPU reference");
    assert!(text.starts_with("device sim: the simulated device"), "{text}");
    assert!(text.contains("stream B waits on the producer's event"), "{text}");
    // The demo's first values (README): the producer's and consumer's math.
    assert!(text.contains("output[0..10]: 1.009537 -1.249995 1.851828"), "{text}");
}

/// Without the event wait the simulated device finds the seed's race
/// every time (not only when the timing shows it) and names it.
#[test]
fn sim_demo_without_the_wait_is_a_race_named_in_one_line() {
    for seed in ["1", "2"] {
        let out = host(&["--device", "sim", "--no-sync", "-n", "1000", "--sim-seed", seed]);
        assert_one_line_error(&out, "found a race: ring 0 (producer -> consumer), slot 0: consumer chunk 0 (run 0) reads what producer chunk 0 (run 0) wrote");
        assert!(String::from_utf8_lossy(&out.stderr).contains("missing filled edge from (0, 0) to (1, 0)"));
    }
}

/// Every workload, stage list and grain the simulated device runs
/// ([`pc_pipeline::sim::SIM_LAUNCHES`]) verifies, with several runs, a
/// partial last chunk, K from 1 to 3, and the serial baseline.
#[test]
fn sim_pipelines_verify_for_every_workload_and_grain() {
    let lists = [
        ("generate", None, " (reductions exact)"),
        ("stream", None, " (every element)"),
        ("generate", Some("producer,consumer,moving-average,fir,reduce"), " (reductions exact)"),
        ("stream", Some("h2d,u8-to-f32,consumer,fir,d2h"), " (every element)"),
        ("stream", Some("h2d,stereo-to-mono,d2h"), " (every element)"),
        ("stream", Some("h2d,mix-u32,d2h"), " (every element)"),
        ("stream", Some("h2d,abs-i32,d2h"), " (every element)"),
        ("stream", Some("h2d,double-f64,d2h"), " (every element)"),
        ("stream", Some("h2d,moving-average,d2h"), " (every element)"),
    ];
    for launch in pc_pipeline::sim::SIM_LAUNCHES {
        let mut ran = 0;
        for (i, (workload, stages, how)) in lists.iter().enumerate() {
            let k = (1 + i % 3).to_string();
            let mut args = vec!["pipeline", "--device", "sim", "--sim-seed", "9", "-w", workload, "--grain", launch.name(), "-k", &k];
            args.extend(["--total-elements", "50000", "--chunk-elements", "3000", "--runs", "2"]);
            if let Some(s) = stages {
                args.extend(["--stages", s]);
            }
            let out = host(&args);
            // What the grain cannot run (its own check, the same as on a
            // GPU) is its one-line refusal; everything else verifies.
            let w = if *workload == "stream" { pc_pipeline::Workload::Stream } else { pc_pipeline::Workload::Generate };
            let spec = match stages {
                Some(s) => pc_pipeline::PipelineSpec::new(w).stages(pc_pipeline::parse_stages(s).unwrap()),
                None => pc_pipeline::PipelineSpec::new(w),
            };
            if let Err(e) = spec.slots(k.parse().unwrap()).check_launch(launch) {
                assert_one_line_error(&out, &e.to_string());
                continue;
            }
            let text = assert_sim_passed(&out, &format!("verification: PASS: all 17 chunks match the CPU reference{how}"));
            assert!(text.contains("pipelined: 2 run(s), time: simulated (no GPU time)"), "{args:?}:\n{text}");
            assert!(text.contains("scheduler seed 9"), "{args:?}:\n{text}");
            ran += 1;
        }
        // Each grain runs at least its default pipeline on the sim.
        assert!(ran >= 1, "--grain {} ran none of the lists", launch.name());
    }
    let out = host(&["pipeline", "--device", "sim", "--total-elements", "20000", "--chunk-elements", "3000", "--compare-serial"]);
    let text = assert_sim_passed(&out, "serial run verification: PASS");
    assert!(text.contains("serial (K=1, one stream): 1 run(s), time: simulated (no GPU time)"), "{text}");
}

/// Finite pseudo-random f32, as little-endian bytes.
fn random_f32_bytes(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 200.0;
            v.to_le_bytes()
        })
        .collect()
}

/// The stream mode on the simulated device, from a file to a file and
/// from standard input to standard output, with a partial last chunk:
/// every output byte is `consume` (the per-element math, not the
/// simulator) of the input's, applied once per consumer stage.
#[test]
fn sim_stream_through_files_and_pipes_matches_the_reference() {
    let dir = tmp_dir("sim-stream");
    let (input, output) = (dir.join("in.bin"), dir.join("out.bin"));
    let data = random_f32_bytes(10_007, 3);
    std::fs::write(&input, &data).unwrap();
    let want = |times: usize| -> Vec<u8> {
        data.chunks_exact(4)
            .flat_map(|b| {
                let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                (0..times).fold(x, |v, _| kernel_math::consume(v)).to_le_bytes()
            })
            .collect()
    };
    for (stages, times) in [("h2d,consumer,d2h", 1), ("h2d,consumer,consumer,d2h", 2)] {
        let _ = std::fs::remove_file(&output);
        let args = ["pipeline", "--device", "sim", "-w", "stream", "-s", stages, "--chunk-elements", "1000", "-k", "2"];
        let out = host(&[&args[..], &["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]].concat());
        let text = assert_sim_passed(&out, "verification: PASS: all 11 chunks match the CPU reference (every element)");
        assert!(text.contains("stream: 11 chunks, 39.1 KiB in, 39.1 KiB out, time: simulated (no GPU time)"), "{text}");
        assert!(std::fs::read(&output).unwrap() == want(times), "{stages}: the output file differs from the reference");
        let out = host_with_stdin(&[&args[..], &["--input", "-", "--output", "-"]].concat(), &data);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == want(times), "{stages}: standard output differs from the reference");
        assert!(String::from_utf8_lossy(&out.stderr).contains("verification: PASS"), "messages go to standard error");
    }
    // A mid-element end is the same one line as on a GPU.
    std::fs::write(&input, &data[..401]).unwrap();
    assert_one_line_error(&host(&["pipeline", "--device", "sim", "-w", "stream", "--input", input.to_str().unwrap()]), "mid-element");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Several simulated GPUs: `--gpus` splits the chunks (a part each),
/// `--place` puts the stages on them with a peer copy between; both verify
/// at stream launches and graph replay, with the serial baseline where it
/// runs, and the named GPUs are simulated (no driver is opened).
#[test]
fn sim_several_gpus_split_and_placed_verify() {
    let base = ["pipeline", "--device", "sim", "--sim-seed", "4", "--total-elements", "50000", "--chunk-elements", "3000", "--runs", "2"];
    for grain in ["streams", "graph"] {
        for (extra, banner) in [
            (&["--gpus", "0,1,2"][..], "simulated GPUs: 3, the chunks split over 3 of them (a part each)"),
            (&["--gpus", "5,7", "--compare-serial"], "simulated GPUs: 2, the chunks split over 2 of them (a part each)"),
            (&["-w", "stream", "--gpus", "0,1"], "simulated GPUs: 2, the chunks split over 2 of them (a part each)"),
            (&["--place", "producer:0,consumer:1,reduce:1"], "simulated GPUs: 2, stages placed [0, 1, 1, 1] (peer copies between)"),
            (&["-w", "stream", "--place", "0,1,0"], "simulated GPUs: 2, stages placed [0, 1, 1, 0, 0] (peer copies between)"),
        ] {
            let args = [&base[..], &["--grain", grain], extra].concat();
            let out = host(&args);
            let text = assert_sim_passed(&out, "verification: PASS: all 17 chunks match the CPU reference");
            assert!(text.contains(banner), "{args:?}:\n{text}");
            assert!(text.contains("pipelined: 2 run(s), time: simulated (no GPU time)"), "{args:?}:\n{text}");
            if extra.contains(&"--place") {
                assert!(text.contains("-> copy-gpu0-gpu1 ->"), "{args:?}: no peer copy in the banner:\n{text}");
            }
            if extra.contains(&"--compare-serial") {
                assert!(text.contains("serial run verification: PASS"), "{args:?}:\n{text}");
            }
        }
    }
}

/// `--trace`/`--svg` on the simulated device: a Chrome trace and an SVG of
/// simulated time, every row marked simulated, one span per operation.
#[test]
fn sim_trace_and_svg_write_simulated_time() {
    let dir = tmp_dir("sim-trace");
    let (trace, svg) = (dir.join("t.json"), dir.join("t.svg"));
    for extra in [&["--grain", "graph"][..], &["--gpus", "0,1"], &["--place", "0,1,1"]] {
        let _ = (std::fs::remove_file(&trace), std::fs::remove_file(&svg));
        let args = ["pipeline", "--device", "sim", "--sim-seed", "3", "--total-elements", "20000", "--chunk-elements", "3000"];
        let args = [&args[..], extra, &["--trace", trace.to_str().unwrap(), "--svg", svg.to_str().unwrap()]].concat();
        let text = assert_sim_passed(&host(&args), "verification: PASS");
        assert!(text.contains("timeline: wrote Chrome trace") && text.contains("(simulated time)"), "{args:?}:\n{text}");
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
        let events = json["traceEvents"].as_array().unwrap();
        let ops = events.iter().filter(|e| e["ph"] == "X").count();
        let stages = if extra.contains(&"--place") { 4 } else { 3 };
        assert_eq!(ops, stages * 7, "{args:?}: one span per operation");
        assert!(events.iter().filter(|e| e["name"] == "thread_name").all(|e| e["args"]["name"].as_str().unwrap().ends_with("(simulated time)")), "{args:?}");
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the simulated device does not run is one line and exit 1, before
/// anything runs (no banner); a device that is not a kind, exit 2.
#[test]
fn sim_refusals_are_one_line_before_anything_runs() {
    let mut cases: Vec<(Vec<String>, String)> = Vec::new();
    let own = |v: &[&str], want: &str| (v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), want.to_string());
    for launch in pc_pipeline::LAUNCHES.into_iter().filter(|l| !pc_pipeline::sim::SIM_LAUNCHES.contains(l)) {
        let want = format!("--grain {} does not run on the simulated device yet", launch.name());
        cases.push(own(&["pipeline", "--device", "sim", "--grain", launch.name()], &want));
    }
    for (args, want) in [
        (&["pipeline", "--device", "sim", "--gpus", "all"][..], "--gpus all counts a driver's GPUs"),
        (&["pipeline", "--device", "sim", "--place", "0,1,1", "--compare-serial"], "--compare-serial runs the serial baseline on one stream"),
        (&["pipeline", "--device", "sim", "--place", "0,1,1", "--grain", "flags"], "placed on several GPUs runs with stream launches or graph replay"),
        (&["pipeline", "--device", "sim", "--gpus", "0,1", "--grain", "pdl"], "--grain pdl runs on one simulated GPU"),
        (&["pipeline", "--device", "sim", "-w", "stream", "-s", "h2d,moving-average,d2h", "--gpus", "0,1"], "cannot run split over 2 GPUs"),
        (&["pipeline", "--device", "sim", "--place", "0,1"], "--place names 2 stage(s) but the pipeline has 3"),
        (&["pipeline", "--device", "sim", "--check-sync"], "--check-sync slows stages on a GPU"),
        (&["pipeline", "--device", "sim", "--grain", "flags", "--svg", "/tmp/x.svg"], "the simulated flags and PDL models have no streams to time"),
        (&["pipeline", "--device", "sim", "-w", "stream", "--input", "-", "--trace", "/tmp/x.json"], "a stream on the simulated device has no timeline"),
        (&["pipeline", "--device", "sim", "--ptx", "/nonexistent.ptx"], "--ptx loads kernels for a GPU"),
        (&["pipeline", "--device", "sim", "-w", "stream", "--input", "-", "--grain", "graph"], "--grain graph is not available for a stream"),
        (&["pipeline", "--device", "sim", "-w", "stream", "--input", "-", "--rate", "1"], "--rate paces a stream in time"),
        (&["pipeline", "--device", "sim", "-w", "stream", "--input", "-", "--drop-oldest"], "--drop-oldest drops chunks"),
        (&["pipeline", "--device", "sim", "-w", "stream", "--input", "-", "--host-only"], "--host-only runs no device"),
        (&["pipeline", "--device", "sim", "-w", "stream", "--input", "-", "--host-slots", "4"], "--host-slots sizes a stream's host staging"),
        (&["pipeline", "--device", "sim", "-w", "stream", "--input", "-", "--readers", "2"], "--readers sizes a stream's host readers"),
        (&["pipeline", "--device", "sim", "-w", "stream", "--input", "-", "--json", "/tmp/r.json"], "--json writes a stream's throughput"),
        (&["--device", "sim", "--ptx", "/nonexistent.ptx"], "--ptx loads kernels for a GPU"),
        (&["--device", "sim", "--spin-us", "100"], "--spin-us delays the producer in time"),
        (&["--device", "sim", "--gpu", "1"], "--gpu picks a CUDA device"),
        (&["bench", "--device", "sim"], "bench measures GPU time"),
        (&["launch", "--nprocs", "2", "--", "pipeline", "--device", "sim"], "a job's ranks hand chunks to other GPUs"),
        (&["launch", "--nprocs", "2", "--", "pipeline", "--device=sim"], "a job's ranks hand chunks to other GPUs"),
        (&["--sim-seed", "1"], "--sim-seed is the simulated device's scheduler seed: give it with --device sim"),
        (&["pipeline", "--sim-seed", "1"], "give it with --device sim"),
    ] {
        cases.push(own(args, want));
    }
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = host(&args);
        assert_one_line_error(&out, want);
        assert!(stdout(&out).is_empty(), "{args:?} ran before refusing: {}", stdout(&out));
    }
    let bin = std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string());
    let out = Command::new(bin).args(["pipeline", "--device", "sim"]).env("PC_RANK", "0").env("PC_NPROCS", "2").output().unwrap();
    assert_one_line_error(&out, "a rank of a job (PC_RANK set)");
    assert_usage_error(&host(&["--device", "1"]), &["--device takes cuda or sim", "--gpu 1"]);
    assert_usage_error(&host(&["pipeline", "--device", "0"]), &["--device takes cuda or sim", "--gpus 0"]);
    assert_usage_error(&host(&["--device", "gpu"]), &["invalid value 'gpu'", "[possible values: cuda, sim]"]);
}

/// `--sim-seed` replays a run: the same seed, the same output (the
/// schedule's digest included); another seed, another schedule, the same
/// results. A run without it prints the seed it drew, which replays it.
#[test]
fn sim_seed_replays_a_run() {
    let run = |seed: Option<&str>| {
        let mut args = vec!["pipeline", "--device", "sim", "--total-elements", "40000", "--chunk-elements", "1000", "-k", "2"];
        if let Some(s) = seed {
            args.extend(["--sim-seed", s]);
        }
        let text = assert_sim_passed(&host(&args), "verification: PASS");
        let schedule = text.lines().find(|l| l.starts_with("schedule: ")).expect("a schedule line").to_string();
        (text, schedule)
    };
    let (a, schedule_a) = run(Some("42"));
    assert_eq!(a, run(Some("42")).0);
    assert!(schedule_a.contains("scheduler seed 42 picks"), "{schedule_a}");
    let (b, schedule_b) = run(Some("43"));
    assert_ne!(schedule_a.replace("seed 42", ""), schedule_b.replace("seed 43", ""), "two seeds ran the same order");
    let verdict = |t: &str| t.lines().find(|l| l.starts_with("verification: ")).map(str::to_string);
    assert_eq!(verdict(&a), verdict(&b));
    let (drawn, _) = run(None);
    let seed = drawn.split("replay: --sim-seed ").nth(1).and_then(|s| s.split(')').next()).expect("the drawn seed is printed");
    assert_eq!(drawn, run(Some(seed)).0);
    let demo = |seed: &str| stdout(&host(&["--device", "sim", "-n", "5000", "--sim-seed", seed]));
    assert_eq!(demo("7"), demo("7"));
}

/// A stream on the simulated device whose input ends mid-element: one line
/// naming the bytes (as on a GPU), exit 1, and no output file, neither
/// under its final name nor as a temporary one; whole, the file appears.
#[test]
fn sim_a_truncated_stream_leaves_no_output_file() {
    let d = tmp_dir("sim-truncated");
    let (input, output) = (d.join("in.bin"), d.join("out.bin"));
    let data = random_f32_bytes(10_000, 11);
    std::fs::write(&input, &data[..40_003 - 4 * 10]).unwrap();
    let args = |i: &std::path::Path| {
        let v = ["pipeline", "--device", "sim", "--sim-seed", "2", "-w", "stream", "--chunk-elements", "1000", "--input", i.to_str().unwrap()];
        host(&[&v[..], &["--output", output.to_str().unwrap()]].concat())
    };
    assert_one_line_error(&args(&input), "the stream ended mid-element: 39963 bytes, 3 byte(s) past the last whole element of 4 bytes");
    assert!(!output.exists(), "an output was left under the final name");
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n != "in.bin").collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    std::fs::write(&input, &data).unwrap();
    assert_sim_passed(&args(&input), "verification: PASS: all 10 chunks match the CPU reference (every element)");
    assert_eq!(std::fs::read(&output).unwrap().len(), data.len());
    let _ = std::fs::remove_dir_all(&d);
}

/// Ctrl-C during a long run on the simulated device: as on a GPU, one line
/// (`error: interrupted: ...`), exit 130, promptly, and no verification
/// line (nothing reported as a result).
#[test]
fn sim_sigint_stops_a_long_run_cleanly() {
    let bin = std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string());
    let mut child = Command::new(bin)
        .args(["pipeline", "--device", "sim", "--sim-seed", "1", "--chunk", "8KiB", "--total", "64KiB", "--runs", "100000000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running host");
    // Past its start (the handler is set before the first run).
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    // Not stopped in 5 s: killed, and a failure (never a hang).
    while child.try_wait().expect("waiting for host").is_none() {
        if sent.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("still running 5 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("waiting for host");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: interrupted:"), "{stderr}");
    let text = stdout(&out);
    assert!(text.contains("the simulated device") && !text.contains("verification:"), "{text}");
}
