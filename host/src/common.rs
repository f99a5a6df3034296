//! Helpers the commands share; this module imports no command module, so
//! the commands never import each other (see `tests/layering.rs`).
use anyhow::{Context, Result, bail};
use pc_pipeline::{Launch, PipelineSpec, RunReport};
use pc_runtime::error::bytes;
use pc_runtime::gpu::device_count;
use pc_runtime::launch::Ptx;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Whether a file argument is `-` (standard input or output).
pub(crate) fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// A stream's first line (`host pipeline --input`): its stages and ring
/// types, K, the chunk, from where to where, and `on` what it runs.
pub(crate) fn stream_banner(spec: &PipelineSpec, input: &Path, output: Option<&Path>, on: &str) -> Result<String> {
    Ok(format!(
        "stream: {} ({}), K={}, chunk {} ({} elements), from {} to {}, {on}",
        spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(" -> "),
        spec.ring_types()?.iter().map(|t| t.name()).collect::<Vec<_>>().join(" -> "),
        spec.slots,
        bytes(spec.chunk_elements as u128 * spec.input_type()?.size() as u128),
        spec.chunk_elements,
        if is_dash(input) { "standard input".to_string() } else { input.display().to_string() },
        match output {
            None => "nowhere (checked, then dropped)".to_string(),
            Some(p) if is_dash(p) => "standard output".to_string(),
            Some(p) => p.display().to_string(),
        },
    ))
}

/// The kernels' PTX: the embedded module, or the file given with `--ptx`
/// (kept for the rest of the process, as the embedded one is).
pub(crate) fn kernels_ptx(ptx: &Option<PathBuf>) -> Result<(Ptx<ptx_kernels::KernelCrate>, String)> {
    Ok(match ptx {
        None => (ptx_kernels::PTX, format!("the kernels' PTX (embedded, {})", ptx_kernels::ARCH)),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("PTX file {}: {e}", path.display()))?;
            // SAFETY: `--ptx` is documented as taking a build of
            // kernels-gpu's own source (a toolchain experiment); the person
            // who passes the file vouches for that. Names and parameter
            // sizes are still checked at load.
            (unsafe { Ptx::new(Box::leak(text.into_boxed_str())) }, format!("the kernels' PTX ({})", path.display()))
        }
    })
}

/// Set by the first SIGINT (Ctrl-C): the running pipeline stops queueing,
/// lets the queued GPU work finish, frees its memory and reports; a second
/// SIGINT exits at once (status 130).
fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // Where the program already set a handler, Ctrl-C keeps the
        // program's: this flag is then never set.
        let _ = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
        flag
    })
    .clone()
}

/// The interrupt flag, cleared: each command starts uninterrupted.
pub(crate) fn fresh_interrupt_flag() -> Arc<AtomicBool> {
    let flag = interrupt_flag();
    flag.store(false, Ordering::SeqCst);
    flag
}

/// `--place`: "name:gpu,..." (or "gpu,...") in stage order, to the GPUs
/// used (distinct, in order of first use) and each stage's index among them.
pub(crate) fn parse_place(text: &str, stages: &[&str]) -> Result<(Vec<usize>, Vec<usize>)> {
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.len() != stages.len() {
        bail!("--place names {} stage(s) but the pipeline has {} ({}); give one GPU per stage, in order", items.len(), stages.len(), stages.join(","));
    }
    let (mut devices, mut placement) = (Vec::new(), Vec::new());
    for (i, (item, stage)) in items.iter().zip(stages).enumerate() {
        let dev = match item.rsplit_once(':') {
            Some((name, dev)) if name.trim() == *stage => dev,
            Some((name, _)) => bail!("--place item {} names stage {:?}, but stage {} is {stage}", i + 1, name.trim(), i + 1),
            None => item,
        };
        let dev: usize = dev.trim().parse().map_err(|_| anyhow::anyhow!("--place item {} ({item:?}): the GPU must be an index like 0 or 1", i + 1))?;
        let at = match devices.iter().position(|&d| d == dev) {
            Some(at) => at,
            None => {
                devices.push(dev);
                devices.len() - 1
            }
        };
        placement.push(at);
    }
    Ok((devices, placement))
}

pub(crate) fn gpu_indices(list: &str) -> Result<Vec<usize>> {
    if list.trim() == "all" {
        return Ok((0..device_count()?).collect());
    }
    let mut v = Vec::new();
    for part in list.split(',').filter(|p| !p.trim().is_empty()) {
        let i: usize = part.trim().parse().map_err(|_| anyhow::anyhow!("--gpus {list:?}: {part:?} is not a device index (use \"all\" or e.g. \"0,1\")"))?;
        if v.contains(&i) {
            bail!("--gpus {list:?}: device {i} is listed twice");
        }
        v.push(i);
    }
    if v.is_empty() {
        bail!("--gpus {list:?} names no device");
    }
    Ok(v)
}

/// Refuses an output path before any GPU work, so a bad path costs nothing.
pub(crate) fn check_writable(path: &Option<PathBuf>, flag: &str) -> Result<()> {
    if let Some(p) = path {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            bail!("{flag} {}: directory {} does not exist", p.display(), dir.display());
        }
        if p.is_dir() {
            bail!("{flag} {}: is a directory", p.display());
        }
    }
    Ok(())
}

/// `path` with `.rankR` before its extension: every rank gets the same
/// arguments, and each writes its own timeline.
pub(crate) fn rank_path(path: &Path, rank: usize) -> PathBuf {
    let stem = path.file_stem().map_or_else(Default::default, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}.rank{rank}.{}", ext.to_string_lossy()),
        None => format!("{stem}.rank{rank}"),
    };
    path.with_file_name(name)
}

/// An output file written under a temporary name in its directory and
/// renamed over the final name only when complete: an error or an
/// interrupt leaves no partial file under the final name.
pub(crate) fn staged_output(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if path.is_dir() {
        bail!("{}: is a directory", path.display());
    }
    tempfile::Builder::new().prefix(".partial-").tempfile_in(dir).with_context(|| format!("cannot write {}", path.display()))
}

/// How a run with `launch` hands chunks over, in words (the banner).
pub(crate) fn launch_words(launch: Launch) -> &'static str {
    match launch {
        Launch::Streams => "stream launches",
        Launch::Graph => "CUDA graph replay",
        Launch::Pdl { graph: false } => "programmatic dependent launches (one stream)",
        Launch::Pdl { graph: true } => "programmatic dependent launches, CUDA graph replay",
        Launch::Warps => "stream launches, consumer, reduce and fir on the warp-specialized mbarrier ring",
        Launch::Flags => "flags grain (one kernel per stage, counters in device memory)",
        Launch::Grain(g) => g.name(),
    }
}

pub(crate) fn print_run(label: &str, spec: &PipelineSpec, r: &RunReport) {
    println!(
        "{label}: {} run(s) in {:.3} ms GPU time ({:.3} ms wall): {:.1} GB/s of input ({} per run)",
        r.runs,
        r.gpu_ms,
        r.wall_ms,
        r.input_gbps(spec),
        bytes(spec.total_elements as u128 * spec.input_type().map_or(4, |t| t.size()) as u128)
    );
    if r.part_ms.len() > 1 {
        let parts: Vec<String> = r.part_ms.iter().enumerate().map(|(i, ms)| format!("GPU part {i}: {ms:.3} ms")).collect();
        println!("  {}", parts.join(", "));
    }
}

/// Standard output as a plain file: no line buffering in the way of
/// binary chunks.
pub(crate) fn stdout_file() -> Result<std::fs::File> {
    use std::os::fd::AsFd;
    let fd = std::io::stdout().as_fd().try_clone_to_owned().context("standard output")?;
    widen_pipe(&fd);
    Ok(std::fs::File::from(fd))
}

/// Grows a pipe's kernel buffer to 1 MiB (Linux; the default 64 KiB
/// costs a system call per 64 KiB moved). Anything but a pipe, or a
/// refusal, leaves it as it was.
pub(crate) fn widen_pipe(fd: &impl std::os::fd::AsRawFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a descriptor we hold; F_SETPIPE_SZ fails harmlessly
    // (EBADF/EINVAL/EPERM) on non-pipes or above the system's limit.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// Where a stream's messages go: standard output, or standard error when
/// the data itself goes to standard output (`--output -`).
pub(crate) fn say_to(to_stdout: bool) -> impl Fn(String) {
    move |line: String| {
        if to_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::gpu_indices;

    proptest::proptest! {
        /// Any GPU list but "all" (which asks the driver): a list of distinct
        /// indices or a one-line error, never a panic.
        #[test]
        fn gpu_lists_never_panic(s in "[0-9, a-z]{0,12}") {
            proptest::prop_assume!(s.trim() != "all");
            match gpu_indices(&s) {
                Ok(v) => {
                    let mut d = v.clone();
                    d.sort();
                    d.dedup();
                    proptest::prop_assert!(!v.is_empty() && d.len() == v.len());
                }
                Err(e) => proptest::prop_assert!(!e.to_string().contains('\n')),
            }
        }
    }

    #[test]
    fn gpu_lists() {
        assert_eq!(gpu_indices("0,1").unwrap(), vec![0, 1]);
        assert!(gpu_indices("0,0").unwrap_err().to_string().contains("listed twice"));
        assert!(gpu_indices(",").unwrap_err().to_string().contains("names no device"));
    }
}

#[cfg(test)]
mod place_tests {
    use super::{parse_place, rank_path};

    #[test]
    fn each_rank_writes_its_own_timeline() {
        use std::path::Path;
        assert_eq!(rank_path(Path::new("out/t.json"), 1), Path::new("out/t.rank1.json"));
        assert_eq!(rank_path(Path::new("trace"), 0), Path::new("trace.rank0"));
    }

    #[test]
    fn place_lists_parse_to_devices_and_indices() {
        let st = ["producer", "consumer", "reduce"];
        assert_eq!(parse_place("producer:0,consumer:1,reduce:1", &st).unwrap(), (vec![0, 1], vec![0, 1, 1]));
        assert_eq!(parse_place("3, 1, 3", &st).unwrap(), (vec![3, 1], vec![0, 1, 0]));
        for (bad, want) in [("0,1", "names 2 stage(s)"), ("producer:0,reduce:1,consumer:1", "names stage \"reduce\""), ("0,x,1", "must be an index")] {
            let e = parse_place(bad, &st).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{bad}: {e}");
        }
    }
}
