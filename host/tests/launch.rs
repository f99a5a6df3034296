//! `host launch` and `host pipeline` as a rank, from the outside. The tests
//! marked "needs a CUDA device" need two GPUs and NCCL (libnccl.so.2), and
//! say SKIPPED (one line, counted by scripts/run-gpu-tests.sh) where either is missing; every run has a deadline, so a
//! hang is a failure, not a stuck test.
use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> String {
    std::env::var("HOST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_host").to_string())
}

/// Runs host with `args` and `envs`, killed (and the test failed) past `limit`.
fn host_within(args: &[&str], envs: &[(&str, &str)], limit: Duration) -> Output {
    let mut child = Command::new(bin()).args(args).envs(envs.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running host");
    let start = Instant::now();
    while child.try_wait().expect("waiting for host").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reaping host");
            panic!("host {args:?} ran past {limit:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("reading host's output")
}

/// Whether this machine has `gpus` GPUs and NCCL; if not, says why in the
/// machine-readable line `SKIPPED: launch::<test>: <reason>` that
/// scripts/run-gpu-tests.sh counts (and fails on unless allowed).
fn ready(test: &str, gpus: usize) -> bool {
    let have = pc_runtime::gpu::device_count().unwrap_or(0);
    if have < gpus {
        println!("SKIPPED: launch::{test}: needs {gpus} GPU(s), this machine has {have}");
        return false;
    }
    if let Err(e) = pc_pipeline::nccl::version() {
        println!("SKIPPED: launch::{test}: {e}");
        return false;
    }
    true
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The launcher passes a rank's failure on: the rank's own line, prefixed,
/// then the launcher's one line, exit 1 (no GPU or NCCL needed: one rank,
/// a spec refused before any GPU work).
#[test]
fn a_failing_rank_is_reported_in_one_line() {
    let out = host_within(&["launch", "--nprocs", "1", "--", "pipeline", "--chunk", "0"], &[], Duration::from_secs(60));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines, ["[rank 0] error: chunk size must be at least one element (4 bytes)", "error: rank 0 failed (exit 1)"], "{err}");
}

#[test]
fn rank_arguments_are_checked_in_one_line() {
    let limit = Duration::from_secs(60);
    for (args, envs, want) in [
        (&["pipeline", "--place", "0,2,2"][..], &[("PC_RANK", "0"), ("PC_NPROCS", "2")][..], "stage consumer is placed on rank 2, but the job has 2 rank(s)"),
        (&["pipeline", "--place", "0,1,0"], &[("PC_RANK", "1"), ("PC_NPROCS", "2")], "rank 0 has stages producer,reduce that are not neighbours"),
        (&["pipeline"], &[("PC_RANK", "0"), ("PC_NPROCS", "2")], "give --place with a rank per stage"),
        (&["pipeline", "--place", "0,1,1", "--grain", "flags"], &[("PC_RANK", "0"), ("PC_NPROCS", "2")], "stream launches, not --grain flags"),
        (&["pipeline", "--place", "0,1,1"], &[("PC_RANK", "0")], "PC_RANK is set but PC_NPROCS is not"),
        (&["pipeline", "--place", "0,1,1"], &[("PC_RANK", "1"), ("PC_NPROCS", "2"), ("PC_NCCL_ID", "00")], "PC_NCCL_ID"),
        (&["launch", "--nprocs", "2", "--ranks", "1", "--", "pipeline"], &[], "give --id-file or set PC_NCCL_ID"),
        (&["launch", "--nprocs", "2", "--ranks", "2", "--", "pipeline"], &[], "rank 2, but --nprocs 2 has ranks 0..1"),
        (&["launch", "--nprocs", "0", "--", "pipeline"], &[], "--nprocs must be at least 1"),
    ] {
        let out = host_within(args, envs, limit);
        let err = text(&out.stderr);
        // PC_NCCL_ID is read only where NCCL loads and a GPU opens: elsewhere
        // the rank stops at the first of those, with its own one line.
        let alt = ["NCCL is not installed", "no NVIDIA driver found", "no CUDA device"];
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: ") && (err.contains(want) || (want == "PC_NCCL_ID" && alt.iter().any(|a| err.contains(a)))), "{args:?}: {err}");
    }
}

/// `host launch -- pipeline --place ...` with `extra` arguments: exit 0,
/// every rank's header, the last rank's PASS against the whole pipeline.
fn two_ranks(place: &str, extra: &[&str]) {
    let mut args = vec!["launch", "--nprocs", "2", "--", "pipeline", "--place", place];
    args.extend_from_slice(extra);
    let out = host_within(&args, &[], Duration::from_secs(180));
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{args:?}:\n{o}{e}");
    assert!(o.contains("[rank 0] rank 0 of 2") && o.contains("[rank 1] rank 1 of 2"), "{args:?}:\n{o}");
    assert!(o.contains("[rank 0] verification: none on this rank"), "{args:?}:\n{o}");
    assert!(o.contains("[rank 1] verification: PASS: all") && o.contains("the whole pipeline's CPU reference"), "{args:?}:\n{o}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn two_ranks_through_nccl_verify_every_chunk() {
    if !ready("two_ranks_through_nccl_verify_every_chunk", 2) {
        return;
    }
    for k in ["1", "2", "3"] {
        let common = ["-k", k, "--chunk", "1MiB", "--total", "13MiB", "--runs", "2"];
        two_ranks("producer:0,consumer:1,reduce:1", &common);
        two_ranks("producer:0,consumer:0,reduce:1", &common);
        let mut stream = vec!["-w", "stream"];
        stream.extend_from_slice(&common);
        two_ranks("h2d:0,consumer:1,d2h:1", &stream);
        let mut halo = vec!["--stages", "h2d,u8-to-f32,moving-average,d2h"];
        halo.extend_from_slice(&common);
        two_ranks("0,0,1,1", &halo);
    }
    // Odd sizes: a last chunk shorter than the others.
    two_ranks("0,1,1", &["-k", "2", "--chunk-elements", "100003", "--total-elements", "1000037"]);
}

/// Rank 1 cannot open its GPU (only GPU 0 is visible) while rank 0 waits
/// for it in ncclCommInitRank: the launcher kills rank 0 and fails in one
/// line, with no hang.
#[test]
#[ignore = "needs a CUDA device"]
fn a_rank_that_fails_stops_the_others() {
    if !ready("a_rank_that_fails_stops_the_others", 1) {
        return;
    }
    let args = ["launch", "--nprocs", "2", "--", "pipeline", "--place", "0,1,1"];
    let out = host_within(&args, &[("CUDA_VISIBLE_DEVICES", "0")], Duration::from_secs(120));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().last().is_some_and(|l| l.starts_with("error: rank 1 failed (exit 1)")), "{err}");
    assert!(err.contains("[rank 1] error: "), "{err}");
}

/// A rank killed mid-run: the launcher stops the other (which would wait
/// for ever in NCCL) and fails in one line.
#[test]
#[ignore = "needs a CUDA device"]
fn a_killed_rank_stops_the_others() {
    if !ready("a_killed_rank_stops_the_others", 2) {
        return;
    }
    let mut child = Command::new(bin())
        .args(["launch", "--nprocs", "2", "--", "pipeline", "--place", "0,1,1", "--chunk", "1MiB", "--total", "1GiB", "--runs", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running host");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // "[rank 1] rank 1 of 2 (pid N): ..."
    let pid = loop {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("rank 1's header within 120 s");
        if let Some(rest) = line.strip_prefix("[rank 1] rank 1 of 2 (pid ") {
            break rest.split(')').next().and_then(|p| p.parse::<i32>().ok()).expect("a pid");
        }
    };
    std::thread::sleep(Duration::from_secs(2));
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill").success());
    let start = Instant::now();
    while child.try_wait().expect("waiting").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the launcher did not stop within 60 s of rank 1's death");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Rank 0 may see its peer vanish (NCCL reports the closed connection)
    // and fail on its own in the same instant: either is one line.
    let last = err.lines().last().unwrap_or_default();
    assert!(last == "error: rank 1 failed (killed by signal 9); stopped the other 1 rank(s)" || last.starts_with("error: rank 0 failed (exit 1)"), "{err}");
}
