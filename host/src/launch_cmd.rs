//! `host launch --nprocs N -- pipeline ...`: a job of N ranks, one process
//! per GPU, this binary each time. The launcher makes the job's NCCL id
//! (rank 0's role) or reads it, starts the ranks it owns with their
//! environment (`PC_RANK`, `PC_NPROCS`, `PC_NCCL_ID`, `PC_DEVICE`), prints
//! their output line by line prefixed `[rank r]`, and waits. A rank that
//! exits non-zero gets the others killed at once (a peer waiting in NCCL for
//! a dead rank would wait for ever) and the launcher fails with one line.
//!
//! A rank reads the same variables (`rank_env`), so a job can be started
//! without the launcher too (another machine, Slurm, mpirun).
use crate::rank_env::{DEVICE, ID_FILE_WAIT, NCCL_ID, NCCL_ID_FILE, NPROCS, RANK, read_id_file, write_id_file};
use anyhow::{Context, Result, bail};
use clap::Args;
use pc_pipeline::nccl::NcclId;
use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Ranks in the job, over every machine (one process, one GPU each).
    #[arg(long)]
    pub(crate) nprocs: usize,
    /// The ranks to start on this machine: "0-1", "0", "2,3" [default: all].
    /// Rank i of this list gets GPU i of this machine (PC_DEVICE).
    #[arg(long)]
    pub(crate) ranks: Option<String>,
    /// The job's NCCL id file. Where this machine starts rank 0 the id is
    /// made here and written to it; elsewhere it is read from it (waiting
    /// up to 120 s for it to appear, say on a shared file system), or from
    /// PC_NCCL_ID when not given.
    #[arg(long)]
    pub(crate) id_file: Option<PathBuf>,
    /// What each rank runs: this program's arguments, after `--`, e.g.
    /// `-- pipeline --place producer:0,consumer:1,reduce:1`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub(crate) command: Vec<OsString>,
}

/// `--ranks`: "0-3", "1", "0,2" to distinct ranks below `nprocs`, in order.
pub fn parse_ranks(text: Option<&str>, nprocs: usize) -> Result<Vec<usize>> {
    let Some(text) = text else { return Ok((0..nprocs).collect()) };
    let mut out: Vec<usize> = Vec::new();
    for item in text.split(',').map(str::trim) {
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| anyhow::anyhow!("--ranks {text:?}: {item:?} is not a rank or a range like 0-3"));
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(item)?, num(item)?),
        };
        if a > b {
            bail!("--ranks {text:?}: the range {item} is empty");
        }
        for r in a..=b {
            if r >= nprocs {
                bail!("--ranks {text:?}: rank {r}, but --nprocs {nprocs} has ranks 0..{}", nprocs - 1);
            }
            if out.contains(&r) {
                bail!("--ranks {text:?}: rank {r} is listed twice");
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// The command of each rank started here: `exe` with `args`, and the
/// rank's environment; the i-th rank started here gets GPU i.
pub fn rank_commands(exe: &Path, args: &[OsString], nprocs: usize, ranks: &[usize], id: Option<&NcclId>) -> Vec<(usize, Command)> {
    ranks
        .iter()
        .enumerate()
        .map(|(local, &rank)| {
            let mut c = Command::new(exe);
            c.args(args).env(RANK, rank.to_string()).env(NPROCS, nprocs.to_string()).env(DEVICE, local.to_string()).env_remove(NCCL_ID_FILE);
            match id {
                Some(id) => c.env(NCCL_ID, id.to_hex()),
                None => c.env_remove(NCCL_ID),
            };
            (rank, c)
        })
        .collect()
}

/// Where [`supervise`] passes each line.
pub type LineSink = Arc<dyn Fn(Line) + Send + Sync>;

/// One line a rank wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub rank: usize,
    pub stderr: bool,
    pub text: String,
}

/// How a job ended.
#[derive(Debug)]
pub enum Ended {
    /// Every rank exited 0.
    Passed,
    /// This rank exited so (the first seen); `stopped` others were still
    /// running and were killed.
    Failed { rank: usize, status: ExitStatus, stopped: usize },
    /// `stop` was set; every rank was killed.
    Stopped,
}

/// "exit 1", "killed by signal 9".
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => status.to_string(),
    }
}

/// Starts every command (stdout and stderr piped, each line passed to
/// `line`), and waits: the first that exits non-zero has every other killed
/// and waited for; so does `stop`, once set.
pub fn supervise(procs: Vec<(usize, Command)>, line: LineSink, stop: &AtomicBool) -> Result<Ended> {
    let mut children: Vec<(usize, Child)> = Vec::new();
    let mut readers = Vec::new();
    for (rank, mut cmd) in procs {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                kill_all(&mut children);
                bail!("starting rank {rank} ({}): {e}", cmd.get_program().to_string_lossy());
            }
        };
        let pipes: [(Option<Box<dyn std::io::Read + Send>>, bool); 2] =
            [(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>), false), (child.stderr.take().map(|p| Box::new(p) as _), true)];
        for (pipe, stderr) in pipes {
            let Some(pipe) = pipe else { continue };
            let line = line.clone();
            readers.push(std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(pipe);
                let mut buf = Vec::new();
                // Bytes, not String lines: a rank's output need not be UTF-8.
                while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                    let text = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                    line(Line { rank, stderr, text });
                    buf.clear();
                }
            }));
        }
        children.push((rank, child));
    }
    let mut running: Vec<bool> = vec![true; children.len()];
    let ended = loop {
        if stop.load(Ordering::SeqCst) {
            kill_all(&mut children);
            break Ended::Stopped;
        }
        let mut failed = None;
        let mut wait_error = None;
        for (i, (rank, child)) in children.iter_mut().enumerate() {
            if !running[i] {
                continue;
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    running[i] = false;
                    if !status.success() && failed.is_none() {
                        failed = Some((*rank, status));
                    }
                }
                Ok(None) => {}
                Err(e) => wait_error = Some(format!("waiting for rank {rank}: {e}")),
            }
        }
        if let Some(e) = wait_error {
            kill_all(&mut children);
            bail!("{e}");
        }
        if let Some((rank, status)) = failed {
            let stopped = kill_all(&mut children);
            break Ended::Failed { rank, status, stopped };
        }
        if running.iter().all(|r| !r) {
            break Ended::Passed;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // The pipes close when the ranks are gone: every line is passed on.
    for r in readers {
        let _ = r.join();
    }
    Ok(ended)
}

/// Kills every child still running and reaps all of them; returns how
/// many were running.
fn kill_all(children: &mut [(usize, Child)]) -> usize {
    let mut killed = 0;
    for (_, c) in children.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
            killed += 1;
        }
    }
    for (_, c) in children.iter_mut() {
        let _ = c.wait();
    }
    killed
}

/// Set by SIGINT while the launcher waits: every rank is killed.
fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
    flag
}

pub fn run(a: &LaunchArgs) -> Result<bool> {
    if a.nprocs == 0 {
        bail!("--nprocs must be at least 1");
    }
    // The ranks would refuse it each (rank mode); refused here, before any starts.
    let arg = |i: usize| a.command.get(i).and_then(|s| s.to_str());
    if (0..a.command.len()).any(|i| arg(i) == Some("--device=sim") || (arg(i) == Some("--device") && arg(i + 1) == Some("sim"))) {
        bail!(
            "--device sim: a job's ranks hand chunks to other GPUs through NCCL; the simulated device is one GPU in one process (run `host pipeline --device sim` without launch)"
        );
    }
    let ranks = parse_ranks(a.ranks.as_deref(), a.nprocs)?;
    // One rank needs no NCCL: it runs every stage itself.
    let id = if a.nprocs == 1 {
        None
    } else if ranks.contains(&0) {
        let id = NcclId::new()?;
        if let Some(path) = &a.id_file {
            write_id_file(path, &id)?;
            // The id holds this process's address: NCCL's bootstrap root
            // runs here, so this launcher must live until every rank joined.
            println!("launch: wrote the job's NCCL id to {} (start the other machines' ranks with it)", path.display());
        }
        Some(id)
    } else {
        Some(match (&a.id_file, std::env::var(NCCL_ID)) {
            (Some(path), _) => read_id_file(path, ID_FILE_WAIT)?,
            (None, Ok(hex)) => NcclId::from_hex(&hex).with_context(|| NCCL_ID.to_string())?,
            // NCCL_COMM_ID: the id is the address itself (see `rank_env::IdSource`).
            (None, Err(_)) if std::env::var_os("NCCL_COMM_ID").is_some() => NcclId::new()?,
            (None, Err(_)) => {
                bail!("ranks {ranks:?} do not include rank 0, so the job's id comes from rank 0's machine: give --id-file or set {NCCL_ID} (or NCCL_COMM_ID)")
            }
        })
    };
    let exe = std::env::current_exe().context("finding this program to start the ranks")?;
    let procs = rank_commands(&exe, &a.command, a.nprocs, &ranks, id.as_ref());
    let print = Arc::new(|l: Line| {
        if l.stderr {
            eprintln!("[rank {}] {}", l.rank, l.text);
        } else {
            println!("[rank {}] {}", l.rank, l.text);
        }
    });
    match supervise(procs, print, &stop_flag())? {
        Ended::Passed => {
            // The ranks' traces (`--trace T` writes T.rank0, T.rank1, ...)
            // merged into T, one process row per rank and GPU.
            if let Some(path) = trace_arg(&a.command) {
                merge_traces(&path, &ranks)?;
                println!("launch: merged the ranks' traces into {}", path.display());
            }
            Ok(true)
        }
        Ended::Failed { rank, status, stopped } => {
            bail!("rank {rank} failed ({}){}", describe(&status), if stopped > 0 { format!("; stopped the other {stopped} rank(s)") } else { String::new() })
        }
        Ended::Stopped => {
            // As any interrupted command: one line, exit 130.
            eprintln!("error: interrupted: every rank was killed");
            std::process::exit(130)
        }
    }
}

/// The value of `--trace` in a rank's command line, if any.
fn trace_arg(command: &[OsString]) -> Option<std::path::PathBuf> {
    let args: Vec<String> = command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--trace=") {
        Some(v) => Some(v.into()),
        None if a == "--trace" => args.get(i + 1).map(Into::into),
        None => None,
    })
}

/// Merges the Chrome traces the ranks wrote (`T.rankR`, see
/// `common::rank_path`) into `path`: each rank's GPUs become process
/// rows "rank R · GPU G", and its times are shifted by its run's start on
/// the host clock (`otherData.origin_unix_ns`) against the earliest rank's,
/// so they line up to within the launch latency (microseconds on one
/// machine; across machines, to within their clocks' agreement).
pub(crate) fn merge_traces(path: &std::path::Path, ranks: &[usize]) -> Result<()> {
    let mut traces = Vec::new();
    for &r in ranks {
        let p = crate::common::rank_path(path, r);
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading rank {r}'s trace {}", p.display()))?;
        let t: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing rank {r}'s trace {}", p.display()))?;
        let origin = t["otherData"]["origin_unix_ns"].as_u64().with_context(|| format!("rank {r}'s trace {} has no origin time", p.display()))?;
        traces.push((r, origin, t));
    }
    let t0 = traces.iter().map(|(_, o, _)| *o).min().unwrap_or(0);
    let mut events = Vec::new();
    for (r, origin, t) in &traces {
        let shift_us = (origin - t0) as f64 / 1e3;
        for e in t["traceEvents"].as_array().into_iter().flatten() {
            let mut e = e.clone();
            let pid = e["pid"].as_u64().unwrap_or(0);
            e["pid"] = serde_json::json!(*r as u64 * 1000 + pid);
            if e["ph"] == "M" && e["name"] == "process_name" {
                // A rank's trace numbers its one GPU 0: name the device.
                let name = match t["otherData"]["device"].as_u64() {
                    Some(d) => format!("GPU {d}"),
                    None => e["args"]["name"].as_str().unwrap_or("").to_string(),
                };
                e["args"]["name"] = serde_json::json!(format!("rank {r} · {name}"));
            }
            if let Some(ts) = e["ts"].as_f64() {
                e["ts"] = serde_json::json!(ts + shift_us);
            }
            events.push(e);
        }
    }
    let merged = serde_json::json!({
        "traceEvents": events,
        "otherData": {"ranks": ranks, "aligned_by": "each rank's host clock at its run's start (origin_unix_ns)", "origin_unix_ns": t0},
    });
    let tmp = path.with_extension("merging");
    std::fs::write(&tmp, serde_json::to_vec(&merged)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn the_ranks_traces_merge_into_one_aligned_by_their_origins() {
        let d = std::env::temp_dir().join(format!("pc-merge-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("t.json");
        let trace = |rank: u64, origin: u64| {
            serde_json::json!({
                "traceEvents": [
                    {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": "GPU 0"}},
                    {"ph": "X", "pid": 0, "tid": 0, "name": "x chunk 0", "ts": 10.0, "dur": 5.0},
                ],
                "otherData": {"rank": rank, "device": rank + 4, "origin_unix_ns": origin},
            })
        };
        for (r, origin) in [(0u64, 1_000_000u64), (1, 1_003_000)] {
            std::fs::write(crate::common::rank_path(&path, r as usize), trace(r, origin).to_string()).unwrap();
        }
        merge_traces(&path, &[0, 1]).unwrap();
        let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let ev = m["traceEvents"].as_array().unwrap();
        let xs: Vec<(u64, f64)> = ev.iter().filter(|e| e["ph"] == "X").map(|e| (e["pid"].as_u64().unwrap(), e["ts"].as_f64().unwrap())).collect();
        // Rank 1 started 3 us later: its span moves 3 us on; pids differ.
        assert_eq!(xs, vec![(0, 10.0), (1000, 13.0)]);
        assert!(ev.iter().any(|e| e["args"]["name"] == "rank 1 · GPU 5"), "{ev:?}");
        assert_eq!(trace_arg(&["pipeline".into(), "--trace".into(), "a.json".into()]), Some("a.json".into()));
        assert_eq!(trace_arg(&["--trace=b.json".into()]), Some("b.json".into()));
        assert_eq!(trace_arg(&["pipeline".into()]), None);
        // A rank's trace missing: one line naming it.
        let e = merge_traces(&d.join("none.json"), &[0]).unwrap_err().to_string();
        assert!(e.contains("rank 0's trace") && !e.contains('\n'), "{e}");
        std::fs::remove_dir_all(&d).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;

    #[test]
    fn rank_lists() {
        assert_eq!(parse_ranks(None, 3).unwrap(), [0, 1, 2]);
        assert_eq!(parse_ranks(Some("0-1,3"), 4).unwrap(), [0, 1, 3]);
        assert_eq!(parse_ranks(Some("2"), 4).unwrap(), [2]);
        for (bad, want) in [("4", "rank 4, but --nprocs 4"), ("1,1", "listed twice"), ("x", "is not a rank"), ("3-1", "is empty")] {
            let e = parse_ranks(Some(bad), 4).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn each_rank_gets_its_environment() {
        let id = NcclId([0xab; 128]);
        let args: Vec<OsString> = ["pipeline", "--place", "0,1,1"].iter().map(OsString::from).collect();
        let cmds = rank_commands(Path::new("/bin/host"), &args, 4, &[2, 3], Some(&id));
        for (local, (rank, c)) in cmds.iter().enumerate() {
            let envs: HashMap<String, Option<String>> =
                c.get_envs().map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_string_lossy().into_owned()))).collect();
            assert_eq!(c.get_program(), "/bin/host");
            assert_eq!(c.get_args().collect::<Vec<_>>(), ["pipeline", "--place", "0,1,1"]);
            assert_eq!(envs[RANK].as_deref(), Some(rank.to_string().as_str()));
            assert_eq!(envs[NPROCS].as_deref(), Some("4"));
            assert_eq!(envs[DEVICE].as_deref(), Some(local.to_string().as_str()));
            assert_eq!(envs[NCCL_ID].as_deref(), Some(id.to_hex().as_str()));
            // The launcher's own id file setting does not reach the ranks.
            assert_eq!(envs[NCCL_ID_FILE], None);
        }
        assert_eq!(cmds.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [2, 3]);
    }

    fn collect() -> (Arc<Mutex<Vec<Line>>>, LineSink) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        (lines, Arc::new(move |l| l2.lock().unwrap().push(l)))
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    /// A rank that fails gets the others killed at once: the launcher does
    /// not wait out a rank that would wait for ever on the dead one.
    #[test]
    fn a_failing_rank_kills_the_others_promptly() {
        let (lines, sink) = collect();
        let mut sleeper = Command::new("sleep");
        sleeper.arg("60");
        let start = Instant::now();
        let procs = vec![(0, sleeper), (1, sh("echo going down >&2; exit 3")), (2, Command::new("true"))];
        let ended = supervise(procs, sink, &AtomicBool::new(false)).unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
        match ended {
            // The sleeper was killed; `true` had ended by itself (or was killed too).
            Ended::Failed { rank, status, stopped } => {
                assert_eq!((rank, describe(&status)), (1, "exit 3".to_string()));
                assert!((1..=2).contains(&stopped), "{stopped}");
            }
            other => panic!("{other:?}"),
        }
        assert!(lines.lock().unwrap().contains(&Line { rank: 1, stderr: true, text: "going down".into() }));
    }

    #[test]
    fn every_line_of_every_rank_is_passed_on() {
        let (lines, sink) = collect();
        let procs = vec![(0, sh("echo a; echo b >&2; printf 'no newline'")), (1, sh("sleep 0.2; echo c"))];
        assert!(matches!(supervise(procs, sink, &AtomicBool::new(false)).unwrap(), Ended::Passed));
        let mut got: Vec<(usize, bool, String)> = lines.lock().unwrap().iter().map(|l| (l.rank, l.stderr, l.text.clone())).collect();
        got.sort();
        assert_eq!(got, [(0, false, "a".into()), (0, false, "no newline".into()), (0, true, "b".into()), (1, false, "c".into())]);
    }

    #[test]
    fn killed_ranks_and_stops_are_reported() {
        let (_, sink) = collect();
        let ended = supervise(vec![(0, sh("kill -9 $$"))], sink.clone(), &AtomicBool::new(false)).unwrap();
        let Ended::Failed { rank: 0, status, stopped: 0 } = ended else { panic!("{ended:?}") };
        assert_eq!(describe(&status), "killed by signal 9");
        let mut sleeper = Command::new("sleep");
        sleeper.arg("60");
        let start = Instant::now();
        assert!(matches!(supervise(vec![(0, sleeper)], sink.clone(), &AtomicBool::new(true)).unwrap(), Ended::Stopped));
        assert!(start.elapsed() < Duration::from_secs(10));
        let e = supervise(vec![(0, Command::new("/nonexistent/rank"))], sink, &AtomicBool::new(false)).unwrap_err().to_string();
        assert!(e.contains("starting rank 0") && !e.contains('\n'), "{e}");
    }
}
