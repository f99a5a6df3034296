//! `host pipeline`: builds a pipeline from flags, runs it, verifies every
//! chunk, prints throughput, optionally against the serial baseline, and
//! writes the timeline.
use crate::units::parse_bytes;
use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pc_pipeline::{Input, Launch, Pipeline, PipelineSpec, RunReport, StageRegistry, Workload};
use pc_runtime::error::bytes;
use pc_runtime::gpu::{Gpu, device_count};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WorkloadArg {
    /// producer -> consumer -> reduce: only per-chunk sum/min/max/histogram come back.
    Generate,
    /// h2d -> consumer -> d2h: pinned host input through the GPU to pinned host output.
    Stream,
}

/// The grain of the hand-offs between stages (issue 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GrainArg {
    /// One stream per stage, filled/freed events between them (the default).
    Streams,
    /// The same launch sequence captured once as a CUDA graph and replayed (= --graph).
    Graph,
    /// Programmatic dependent launch (sm_90): the generate pipeline on one
    /// stream, each kernel waiting on the GPU for the one before.
    Pdl,
    /// The pdl grain captured once as a CUDA graph and replayed.
    PdlGraph,
    /// Stream launches with the consumer, reduce and fir stages on the
    /// warp-specialized mbarrier ring inside each kernel (sm_90).
    Warps,
    /// Every stage one kernel for the whole run, all running at once, slots
    /// handed over through counters in device memory (stages with a flags
    /// form: producer, consumer, reduce; K <= 256; use a deep ring, e.g.
    /// -k 128, for small chunks).
    Flags,
}

impl GrainArg {
    fn name(self) -> &'static str {
        match self {
            GrainArg::Streams => "streams",
            GrainArg::Graph => "graph",
            GrainArg::Pdl => "pdl",
            GrainArg::PdlGraph => "pdl-graph",
            GrainArg::Warps => "warps",
            GrainArg::Flags => "flags",
        }
    }
}

/// The launch a `--grain` (or the older `--graph`) asks for.
pub(crate) fn launch_of(grain: Option<GrainArg>, graph: bool) -> Result<Launch> {
    Ok(match (grain, graph) {
        (None, false) | (Some(GrainArg::Streams), false) => Launch::Streams,
        (None, true) | (Some(GrainArg::Graph), _) => Launch::Graph,
        (Some(g), true) => bail!("--graph is --grain graph; it does not combine with --grain {}", g.name()),
        (Some(GrainArg::Pdl), false) => Launch::Pdl { graph: false },
        (Some(GrainArg::PdlGraph), false) => Launch::Pdl { graph: true },
        (Some(GrainArg::Warps), false) => Launch::Warps,
        (Some(GrainArg::Flags), false) => Launch::Flags,
    })
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Built-in workload (its default stage list).
    #[arg(short, long, value_enum, default_value = "generate")]
    pub(crate) workload: WorkloadArg,
    /// Stage list instead of the workload's, e.g. "h2d,consumer,consumer,d2h".
    /// Sources: producer, h2d. Sinks: reduce, d2h. Middle: consumer,
    /// moving-average, fir, u8-to-f32, stereo-to-mono, mix-u32, abs-i32,
    /// double-f64, and any stage the program registered.
    #[arg(short, long)]
    pub(crate) stages: Option<String>,
    /// Slots per ring (K): 1 serial-safe, 2 double buffering, 3 or more.
    #[arg(short = 'k', long, default_value_t = 3)]
    pub(crate) slots: usize,
    /// Chunk size in bytes of the source's element type (4KiB, 4MiB,
    /// 256MiB...); need not divide the total.
    #[arg(short, long, default_value = "4MiB", value_parser = parse_bytes)]
    pub(crate) chunk: u64,
    /// Total size in bytes of the source's element type [default: 256MiB].
    /// A stream (--input) has no declared total: it is what arrives.
    #[arg(short, long, value_parser = parse_bytes)]
    pub(crate) total: Option<u64>,
    /// Chunk size in elements (instead of --chunk).
    #[arg(long, value_parser = crate::units::parse_count, conflicts_with = "chunk")]
    pub(crate) chunk_elements: Option<u64>,
    /// Total size in elements (instead of --total).
    #[arg(long, value_parser = crate::units::parse_count, conflicts_with = "total")]
    pub(crate) total_elements: Option<u64>,
    /// Threads per block of every kernel stage.
    #[arg(short, long, default_value_t = 256)]
    pub(crate) block_size: u32,
    /// Capture the launch sequence once as a CUDA graph and replay it
    /// (the same as --grain graph).
    #[arg(long)]
    pub(crate) graph: bool,
    /// How stages hand chunks over: streams (events between per-stage
    /// streams), graph (that, as a replayed CUDA graph), pdl / pdl-graph
    /// (programmatic dependent launch on one stream, sm_90, the generate
    /// pipeline only), warps (consumer, reduce and fir on the warp-specialized
    /// mbarrier ring, sm_90) [default: streams].
    #[arg(long, value_enum)]
    pub(crate) grain: Option<GrainArg>,
    /// Flags and warps grains: a wait on a ring counter or a warp ring's
    /// barrier longer than this (ms) stops the run with an error naming the
    /// stage and slot, instead of hanging.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) watchdog_ms: u64,
    /// Runs of the same pipeline, back to back (frames of a stream).
    #[arg(short, long, default_value_t = 1)]
    pub(crate) runs: usize,
    /// GPUs to spread chunks over: "all", or indices like "0,1".
    #[arg(long, default_value = "0")]
    pub(crate) gpus: String,
    /// Each stage on a GPU of its own, in stage order: "producer:0,consumer:1,reduce:1"
    /// (or "0,1,1"). Where neighbours sit on different GPUs a peer copy goes
    /// between them (over NVLink where the GPUs have it). Instead of --gpus.
    /// In a rank of `host launch` (PC_RANK set) the numbers are ranks, one
    /// process each, the hand-offs between them NCCL send/recv.
    #[arg(long, conflicts_with = "gpus")]
    pub(crate) place: Option<String>,
    /// Stream from this file, or standard input with "-": little-endian
    /// elements of the source's type, as many as arrive (a last partial
    /// chunk is fine; a partial element is an error). Needs a pipeline from
    /// h2d to d2h (--workload stream). Without it, input is generated.
    #[arg(long)]
    pub(crate) input: Option<PathBuf>,
    /// Where a stream's output goes: a file (written under a temporary
    /// name, renamed when the stream completed) or standard output with
    /// "-" (then every message goes to standard error). Default: checked,
    /// then dropped.
    #[arg(long, requires = "input")]
    pub(crate) output: Option<PathBuf>,
    /// Streams: pinned staging slots per direction (default: what the GPU
    /// rings hold at once, plus one per reader and one for the writer).
    #[arg(long)]
    pub(crate) host_slots: Option<usize>,
    /// Streams from a regular file: chunks read at once, each by its own
    /// reader thread, in pieces of at least 256 KiB on a pool of one
    /// thread per core (default: a piece per core, from 4 to 16 chunks).
    #[arg(long, requires = "input")]
    pub(crate) readers: Option<usize>,
    /// Streams: only the host side, with no GPU and no stage: the input
    /// through the readers and staging slots (ordinary memory) to the
    /// output as it is; the ceiling the host side puts on a stream from
    /// this input to this output (throughput, latency, drops).
    #[arg(long, requires = "input")]
    pub(crate) host_only: bool,
    /// Streams: when every staging slot is busy, drop the oldest chunk not
    /// yet on the GPU (counted and reported) instead of waiting.
    #[arg(long, requires = "input")]
    pub(crate) drop_oldest: bool,
    /// Streams: pace the input to this rate in GB/s (decimal), as a live
    /// source; latency is measured from each chunk's due time.
    #[arg(long, requires = "input")]
    pub(crate) rate: Option<f64>,
    /// Streams: skip checking each chunk against the CPU reference.
    #[arg(long, requires = "input")]
    pub(crate) no_verify: bool,
    /// Streams: write the run report (throughput, latency, drops) as JSON.
    #[arg(long, requires = "input")]
    pub(crate) json: Option<PathBuf>,
    /// Write a Chrome trace (open in Perfetto) of the last run; for a
    /// stream, each chunk's GPU operations and its latency (own row).
    #[arg(long)]
    pub(crate) trace: Option<PathBuf>,
    /// Write an SVG Gantt chart (one row per stream) of the last run.
    #[arg(long)]
    pub(crate) svg: Option<PathBuf>,
    /// Also run the serial baseline (K=1, every stage on one stream, no events)
    /// on the same data, and print the speed-up.
    #[arg(long)]
    pub(crate) compare_serial: bool,
    /// Seed of the producer's values and of generated input.
    #[arg(long, default_value_t = 0x5eed)]
    pub(crate) seed: u32,
    /// Sync checker: run once per event-graph edge with only that edge
    /// removed and its source stage slowed; report whether the corruption
    /// it prevents was detected. Use few chunks (e.g. --chunk 1MiB --total 6MiB).
    #[arg(long)]
    pub(crate) check_sync: bool,
    /// How long the slowed stage waits before each operation (sync checker).
    #[arg(long, default_value_t = 2000)]
    pub(crate) delay_us: u64,
    /// Taps of the `fir` stage from this text file (numbers separated by
    /// spaces, commas or newlines; `#` comments) instead of the default
    /// 63-tap low-pass.
    #[arg(long)]
    pub(crate) fir_taps: Option<PathBuf>,
    /// Load the kernels from this PTX file instead of the embedded module.
    #[arg(long)]
    pub(crate) ptx: Option<PathBuf>,
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
fn fresh_interrupt_flag() -> Arc<AtomicBool> {
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

fn spec_of(a: &PipelineArgs, registry: &StageRegistry) -> Result<PipelineSpec> {
    let (workload, default_list) = match a.workload {
        WorkloadArg::Generate => (Workload::Generate, "producer,consumer,reduce"),
        WorkloadArg::Stream => (Workload::Stream, "h2d,consumer,d2h"),
    };
    let list = a.stages.as_deref().unwrap_or(default_list);
    let spec = PipelineSpec::new(workload).stages(registry.parse(list)?).slots(a.slots).block_size(a.block_size).seed(a.seed).watchdog_ms(a.watchdog_ms);
    spec.validate()?;
    // Sizes are in elements of what the source writes: bytes of that type.
    let elem = spec.input_type()?;
    let size = elem.size() as u64;
    let elements = |flag: &str, bytes: u64, given: Option<u64>| -> Result<u64> {
        if let Some(n) = given {
            return Ok(n);
        }
        if !bytes.is_multiple_of(size) {
            bail!(
                "{flag} {bytes} bytes is not a whole number of {elem} ({size} bytes each): give the size in elements with {flag}-elements, or a multiple of {size} bytes"
            );
        }
        Ok(bytes / size)
    };
    let chunk = elements("--chunk", a.chunk, a.chunk_elements)?;
    let declared = a.total.is_some() || a.total_elements.is_some();
    let total = match (a.input.is_some(), declared) {
        (true, true) => bail!("--total: a stream (--input) is as long as its input; drop --total"),
        (true, false) => chunk,
        (false, _) => elements("--total", a.total.unwrap_or(256 << 20), a.total_elements)?,
    };
    let spec = spec.chunk_elements(chunk).total_elements(total);
    spec.validate()?;
    if a.input.is_some() && !spec.reads_host() {
        bail!("--input needs a pipeline that starts with h2d (use --workload stream)");
    }
    if a.input.is_some() && !spec.writes_host() {
        bail!("--input needs a pipeline that ends with d2h: a stream's output goes to the host (use --workload stream)");
    }
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(spec)
}

/// Refuses an output path before any GPU work, so a bad path costs nothing.
pub(crate) fn check_writable(path: &Option<PathBuf>, flag: &str) -> Result<()> {
    if let Some(p) = path {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            bail!("{flag} {}: directory {} does not exist", p.display(), dir.display());
        }
        if p.is_dir() {
            bail!("{flag} {}: is a directory", p.display());
        }
    }
    Ok(())
}

pub fn run(a: &PipelineArgs, registry: &StageRegistry) -> Result<bool> {
    let mut registry = match &a.ptx {
        None => registry.clone(),
        Some(_) => registry.with_builtins_in(crate::kernels_ptx(&a.ptx)?.0),
    };
    if let Some(path) = &a.fir_taps {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("taps file {}: {e}", path.display()))?;
        let taps = pc_pipeline::fir::parse_taps(&text).map_err(|e| anyhow::anyhow!("taps file {}: {e}", path.display()))?;
        registry.replace(pc_pipeline::builtin::fir_in(crate::kernels_ptx(&a.ptx)?.0, taps)?)?;
    }
    let spec = spec_of(a, &registry)?;
    let launch = launch_of(a.grain, a.graph)?;
    // A stream refuses every grain but streams itself (stream_cmd).
    if a.input.is_none() {
        spec.check_launch(launch)?;
    }
    if let Some(env) = crate::launch_cmd::RankEnv::from_env()? {
        return run_rank(a, spec, launch, env);
    }
    if let Some(input) = &a.input {
        return crate::stream_cmd::run(a, &spec, input, fresh_interrupt_flag());
    }
    check_writable(&a.trace, "--trace")?;
    check_writable(&a.svg, "--svg")?;
    // The GPU list, without the driver where it is a list of indices.
    let (indices, spec) = match &a.place {
        Some(text) => {
            let (devices, placement) = parse_place(text, &spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>())?;
            (Some(devices), spec.placement(placement))
        }
        None if a.gpus.trim() == "all" => (None, spec),
        None => (Some(gpu_indices(&a.gpus)?), spec),
    };
    check_before_the_driver(a, &spec, launch, indices.as_ref().map(Vec::len))?;
    let indices = match indices {
        Some(i) => i,
        None => gpu_indices(&a.gpus)?,
    };
    check_before_the_driver(a, &spec, launch, Some(indices.len()))?;
    let gpus: Vec<Gpu> = indices.iter().map(|&i| Gpu::open(i)).collect::<Result<_, _>>()?;
    let refs: Vec<&Gpu> = gpus.iter().collect();
    let input = Input::Generated;
    let stage_list = spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(" -> ");
    let names: Vec<String> = gpus.iter().map(|g| format!("{} ({})", g.info().index, g.info().name)).collect();
    let size = spec.input_type()?.size() as u128;
    println!(
        "pipeline: {stage_list} ({}), K={}, chunk {} ({} elements), total {} in {} chunks, {}, GPU {}",
        spec.ring_types()?.iter().map(|t| t.name()).collect::<Vec<_>>().join(" -> "),
        spec.slots,
        bytes(spec.chunk_elements as u128 * size),
        spec.chunk_elements,
        bytes(spec.total_elements as u128 * size),
        spec.chunks(),
        match launch {
            Launch::Streams => "stream launches",
            Launch::Graph => "CUDA graph replay",
            Launch::Pdl { graph: false } => "programmatic dependent launches (one stream)",
            Launch::Pdl { graph: true } => "programmatic dependent launches, CUDA graph replay",
            Launch::Warps => "stream launches, consumer, reduce and fir on the warp-specialized mbarrier ring",
            Launch::Flags => "flags grain (one kernel per stage, counters in device memory)",
        },
        names.join(", ")
    );
    // Checked before the driver was opened (check_before_the_driver).
    if a.check_sync && !spec.placement.is_empty() {
        return check_sync(&refs, &spec, input, a.delay_us);
    }
    if a.check_sync {
        return match launch {
            Launch::Streams => check_sync(&refs[..1], &spec, input, a.delay_us),
            Launch::Pdl { .. } => check_sync_pdl(&gpus[0], &spec, input, a.delay_us),
            Launch::Warps => check_sync_warps(&gpus[0], &spec, input, a.delay_us),
            Launch::Flags => check_sync_flags(&gpus[0], &spec, a.delay_us),
            Launch::Graph => bail!("--check-sync removes one event at a time, which a captured graph cannot; use --grain streams, pdl or pdl-graph"),
        };
    }
    let want_timeline = a.trace.is_some() || a.svg.is_some();
    // The flags grain always records its device timestamps for the report.
    let want_timeline = want_timeline || launch == Launch::Flags;

    let mut pipeline = Pipeline::new(&refs, spec.clone(), input.clone())?;
    let interrupt = fresh_interrupt_flag();
    pipeline.set_interrupt(interrupt.clone());
    if pipeline.gpus() < gpus.len() {
        println!("note: {} chunk(s) spread over {} of the {} GPUs given", spec.chunks(), pipeline.gpus(), gpus.len());
    }
    let bar = progress_bar(a.runs);
    // Memory after the first run (setup and warm-up done) and at the end.
    let mut first: Option<(Option<u64>, usize)> = None;
    let report = pipeline.run_with_progress(launch, a.runs, want_timeline, |done| {
        bar.set_position(done as u64);
        if first.is_none() {
            first = Some((host_rss_bytes(), device_used(&gpus)));
        }
    })?;
    bar.finish_and_clear();
    print_run("pipelined", &spec, &report);
    for st in &report.flag_stamps {
        let (mut h, mut l) = (st.handoffs_ns(), st.latencies_ns());
        let us = |v: u64| v as f64 / 1e3;
        println!(
            "flags (device timestamps, last run): hand-off p50 {:.2} us p99 {:.2} us ({} hand-offs with the reader waiting); chunk latency p50 {:.1} us p99 {:.1} us",
            us(pc_pipeline::flags::percentile(&mut h, 50.0)),
            us(pc_pipeline::flags::percentile(&mut h, 99.0)),
            h.len(),
            us(pc_pipeline::flags::percentile(&mut l, 50.0)),
            us(pc_pipeline::flags::percentile(&mut l, 99.0)),
        );
    }
    if a.runs > 1 {
        let (rss0, dev0) = first.unwrap_or((None, 0));
        let (rss1, dev1) = (host_rss_bytes(), device_used(&gpus));
        let show = |v: Option<u64>| v.map_or("unknown".to_string(), |b| bytes(b as u128));
        let growth = match (rss0, rss1) {
            (Some(a), Some(b)) => (b as i64 - a as i64).to_string(),
            _ => "unknown".to_string(),
        };
        println!(
            "memory over {} runs: host RSS {} -> {} (growth {growth} bytes), device memory in use {} -> {}",
            a.runs,
            show(rss0),
            show(rss1),
            bytes(dev0 as u128),
            bytes(dev1 as u128)
        );
    }
    let check = pipeline.verify(&report);
    let how = if !check.passed() {
        ""
    } else if spec.reduces() {
        " (reductions exact)"
    } else {
        " (every element)"
    };
    println!("verification: {}{how}", check.summary());
    let mut passed = check.passed();

    if let Some(tl) = &report.timeline {
        let title =
            format!("{stage_list}, K={}, chunk {}, {} chunks: {:.3} ms", spec.slots, bytes(spec.chunk_elements as u128 * size), spec.chunks(), report.gpu_ms);
        if let Some(p) = &a.trace {
            tl.write_chrome_trace(p)?;
            println!("timeline: wrote Chrome trace {}", p.display());
        }
        if let Some(p) = &a.svg {
            tl.write_svg(p, &title)?;
            println!("timeline: wrote SVG {}", p.display());
        }
        println!(
            "timeline: overlap factor {:.2} (stage busy time / elapsed; 1 = fully serial, {} = every stage busy all the time)",
            tl.overlap_factor(),
            spec.stages.len()
        );
    }

    if a.compare_serial {
        let serial_spec = spec.clone().slots(1).serial(true);
        drop(pipeline);
        let mut serial = Pipeline::new(&refs, serial_spec.clone(), input)?;
        serial.set_interrupt(interrupt);
        let bar = progress_bar(a.runs);
        let s = serial.run_with_progress(Launch::Streams, a.runs, false, |done| bar.set_position(done as u64))?;
        bar.finish_and_clear();
        print_run("serial (K=1, one stream)", &serial_spec, &s);
        let ok = serial.verify(&s).passed();
        passed &= ok;
        println!("speed-up: pipelined / serial = {:.2}x (serial run verification: {})", s.gpu_ms / report.gpu_ms, if ok { "PASS" } else { "FAIL" });
    }
    Ok(passed)
}

/// Every refusal of a one-process pipeline that needs no GPU, so that it
/// comes before the driver is opened (and on a machine without one): the
/// grain against the stages and the placement, the sync checker's and the
/// timeline's grains, the serial baseline against a placement, and a halo
/// stage against chunks split over `gpus` GPUs (`None`: not known without
/// the driver, `--gpus all`).
fn check_before_the_driver(a: &PipelineArgs, spec: &PipelineSpec, launch: Launch, gpus: Option<usize>) -> Result<()> {
    spec.check_launch(launch)?;
    let placed = !spec.placement.is_empty();
    if a.check_sync {
        if placed && launch != Launch::Streams {
            bail!("--check-sync with --place runs with stream launches");
        }
        if !placed && gpus.is_some_and(|n| n != 1) {
            bail!("--check-sync runs on one GPU (give one --gpus index, or --place)");
        }
        if launch == Launch::Graph {
            bail!("--check-sync removes one event at a time, which a captured graph cannot; use --grain streams, pdl or pdl-graph");
        }
    }
    if (a.trace.is_some() || a.svg.is_some()) && !matches!(launch, Launch::Streams | Launch::Warps | Launch::Flags) {
        bail!(
            "--trace/--svg record events around every operation on each stage's stream (or, for flags, device timestamps), which only --grain streams, warps and flags have; drop --graph/--grain"
        );
    }
    if a.compare_serial && placed {
        bail!("--compare-serial runs the serial baseline on one stream, which cannot span the GPUs of --place; drop one of them");
    }
    let parts = match (placed, gpus) {
        (true, _) => Some(1),
        (false, Some(n)) => Some(pc_pipeline::exec::split::split_chunks(spec.chunks(), n).len()),
        (false, None) => None,
    };
    if let Some(parts) = parts {
        spec.check_split(parts)?;
    }
    Ok(())
}

/// `path` with `.rankR` before its extension: every rank gets the same
/// arguments, and each writes its own timeline.
pub(crate) fn rank_path(path: &std::path::Path, rank: usize) -> PathBuf {
    let stem = path.file_stem().map_or_else(Default::default, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}.rank{rank}.{}", ext.to_string_lossy()),
        None => format!("{stem}.rank{rank}"),
    };
    path.with_file_name(name)
}

/// `host pipeline` as rank `env.rank` of a job (`PC_RANK` set, say by
/// `host launch`): `--place` names a rank per stage; this process runs its
/// own stages on GPU `PC_DEVICE`, the chunks crossing to the next rank by
/// NCCL; the last rank checks every chunk.
fn run_rank(a: &PipelineArgs, spec: PipelineSpec, launch: Launch, env: crate::launch_cmd::RankEnv) -> Result<bool> {
    use pc_pipeline::ranks::{RankLayout, RankedPipeline};
    let (rank, n) = (env.rank, env.nprocs);
    if a.input.is_some() {
        bail!("--input streams through one process; the ranks of a job run generated input");
    }
    if a.check_sync || a.compare_serial {
        bail!("--check-sync and --compare-serial run in one process; drop them in a job of ranks");
    }
    if launch != Launch::Streams {
        bail!("the ranks of a job run with stream launches, not --grain {}", launch.name());
    }
    let Some(text) = &a.place else {
        bail!("this is rank {rank} of {n} (PC_RANK is set): give --place with a rank per stage, e.g. producer:0,consumer:1,reduce:1")
    };
    let (used, index) = parse_place(text, &spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>())?;
    let spec = spec.placement(index.iter().map(|&i| used[i]).collect());
    // Checked alike on every rank, before any joins NCCL.
    let layout = RankLayout::new(&spec, rank, n)?;
    pc_pipeline::ranks::local_spec(&spec, &layout, None, &Input::Generated)?;
    let nccl = if layout.exchanges() { Some(pc_pipeline::nccl::version()?) } else { None };
    let trace = a.trace.as_deref().map(|p| rank_path(p, rank));
    let svg = a.svg.as_deref().map(|p| rank_path(p, rank));
    check_writable(&trace, "--trace")?;
    check_writable(&svg, "--svg")?;
    let gpu = Gpu::open(env.device)?;
    let id = if layout.exchanges() { Some(env.nccl_id()?) } else { None };
    let mine: Vec<&str> = layout.stages.clone().map(|s| spec.stages[s].name()).collect();
    let size = spec.input_type()?.size() as u128;
    println!(
        "rank {rank} of {n} (pid {}): stages {} on GPU {} ({}){}{}; K={}, chunk {}, total {} in {} chunks{}",
        std::process::id(),
        mine.join(" -> "),
        gpu.info().index,
        gpu.info().name,
        layout.from.map_or(String::new(), |r| format!(", chunks from rank {r}")),
        layout.to.map_or(String::new(), |r| format!(", chunks to rank {r}")),
        spec.slots,
        bytes(spec.chunk_elements as u128 * size),
        bytes(spec.total_elements as u128 * size),
        spec.chunks(),
        // NCCL's code: major * 10000 + minor * 100 + patch (2.9 on).
        nccl.map_or(String::new(), |(v, lib)| format!(", NCCL {}.{}.{} ({lib})", v / 10000, v % 10000 / 100, v % 100))
    );
    // Ranks given other arguments are refused here, on every rank.
    let mut p = RankedPipeline::new(&gpu, spec.clone(), Input::Generated, rank, n, id.as_ref())?;
    p.set_interrupt(fresh_interrupt_flag());
    let want_timeline = trace.is_some() || svg.is_some();
    // The host clock when the run starts, next to the origin event it
    // records first: what lines the ranks' traces up when the launcher
    // merges them (to within the launch latency, microseconds).
    let origin_unix_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let report = p.run(a.runs, want_timeline, |_| {})?;
    print_run(&format!("rank {rank}"), p.pipeline().spec(), &report);
    let passed = match p.verify(&report) {
        Some(check) => {
            let how = if !check.passed() {
                ""
            } else if spec.reduces() {
                " (reductions exact, against the whole pipeline's CPU reference)"
            } else {
                " (every element, against the whole pipeline's CPU reference)"
            };
            println!("verification: {}{how}", check.summary());
            check.passed()
        }
        None => {
            println!("verification: none on this rank: its chunks leave for rank {} and are checked on the last rank", layout.to.unwrap_or(0));
            true
        }
    };
    if let Some(tl) = &report.timeline {
        let title = format!("rank {rank}: {}, K={}, {} chunks: {:.3} ms", mine.join(","), spec.slots, spec.chunks(), report.gpu_ms);
        if let Some(path) = &trace {
            tl.write_chrome_trace_with(path, serde_json::json!({"rank": rank, "nprocs": n, "device": gpu.info().index, "origin_unix_ns": origin_unix_ns}))?;
            println!("timeline: wrote Chrome trace {}", path.display());
        }
        if let Some(path) = &svg {
            tl.write_svg(path, &title)?;
            println!("timeline: wrote SVG {}", path.display());
        }
    }
    Ok(passed)
}

/// `--check-sync --grain pdl|pdl-graph`: the complete protocol and the
/// consumer without its `griddepcontrol.wait`, the producer slowed, plain and
/// as a graph.
fn check_sync_flags(gpu: &Gpu, spec: &PipelineSpec, delay_us: u64) -> Result<bool> {
    let n = spec.stages.len();
    println!(
        "sync check (flags grain): on each of {} rings, each part of the protocol removed in turn, the stage it orders against slowed by {delay_us} us per chunk",
        n - 1
    );
    let bar = progress_bar(n + 4 * (n - 1));
    // SAFETY: `--check-sync` asks for exactly this: races on purpose,
    // whose results are only verified and reported.
    let report = unsafe { pc_pipeline::sync_check::check_flags(gpu, spec, delay_us.saturating_mul(1000), |done, _| bar.set_position(done as u64)) }?;
    bar.finish_and_clear();
    for (stage, v) in &report.baseline {
        println!(
            "complete protocol, stage {stage} ({}) slowed: {} ({} of {} chunks wrong)",
            spec.stages[*stage].name(),
            if v.passed() { "no corruption" } else { "CORRUPTION" },
            v.chunks_wrong,
            v.chunks_checked
        );
    }
    for r in &report.faults {
        let verdict = match &r.check.first_wrong {
            Some((c, what)) => format!("corruption detected ({} of {} chunks wrong; chunk {c}: {what})", r.check.chunks_wrong, r.check.chunks_checked),
            None => "not detected".to_string(),
        };
        println!(
            "ring {} ({} -> {}), without the {}, {} slowed: {verdict}",
            r.ring,
            spec.stages[r.ring].name(),
            spec.stages[r.ring + 1].name(),
            r.removed,
            spec.stages[r.slowed_stage].name()
        );
    }
    let detected = report.faults.iter().filter(|r| r.detected()).count();
    let clean = report.baseline.iter().all(|(_, v)| v.passed());
    println!(
        "summary: {detected} of {} removals detected; {} with the complete protocol",
        report.faults.len(),
        if clean { "zero corruption" } else { "CORRUPTION" }
    );
    Ok(clean && detected == report.faults.len())
}

fn check_sync_pdl(gpu: &Gpu, spec: &PipelineSpec, input: Input, delay_us: u64) -> Result<bool> {
    println!("sync check (pdl): the producer slowed by {delay_us} us; the complete protocol, then the consumer without its griddepcontrol.wait");
    // SAFETY: `--check-sync` asks for exactly this: the consumer's wait
    // dropped, a race on purpose, whose results are only verified and reported.
    let runs = unsafe { pc_pipeline::sync_check::check_pdl(gpu, spec, input, delay_us.saturating_mul(1000)) }?;
    let mut ok = true;
    for r in &runs {
        let what = if r.faults == 0 { "complete protocol" } else { "consumer without griddepcontrol.wait" };
        let seen =
            if r.check.passed() { "no corruption".to_string() } else { format!("CORRUPTION ({} of {} chunks wrong)", r.check.chunks_wrong, spec.chunks()) };
        let verdict = if r.as_expected() { "as expected" } else { "NOT AS EXPECTED" };
        println!("{:<9} {what:<38} {seen}: {verdict}", r.launch.name());
        ok &= r.as_expected();
    }
    println!("sync check (pdl): {}", if ok { "PASS: the wait is needed, and the complete protocol shows no corruption" } else { "FAIL" });
    Ok(ok)
}

/// `--check-sync --grain warps`: the ring's producer lane slowed; the
/// complete protocol, then consumers that skip the full barrier's wait.
fn check_sync_warps(gpu: &Gpu, spec: &PipelineSpec, input: Input, delay_us: u64) -> Result<bool> {
    println!(
        "sync check (warps): the ring's producer lane slowed by {delay_us} us before each copy; the complete protocol, then consumers without the full barrier's wait"
    );
    // SAFETY: `--check-sync` asks for exactly this: the full wait dropped, a
    // race on purpose, whose results are only verified and reported.
    let runs = unsafe { pc_pipeline::sync_check::check_warps(gpu, spec, input, delay_us.saturating_mul(1000)) }?;
    let mut ok = true;
    for r in &runs {
        let what = if r.faults == 0 { "complete protocol" } else { "consumers without the full wait" };
        let seen =
            if r.check.passed() { "no corruption".to_string() } else { format!("CORRUPTION ({} of {} chunks wrong)", r.check.chunks_wrong, spec.chunks()) };
        let verdict = if r.as_expected() { "as expected" } else { "NOT AS EXPECTED" };
        println!("warps     {what:<38} {seen}: {verdict}");
        ok &= r.as_expected();
    }
    println!("sync check (warps): {}", if ok { "PASS: the full wait is needed, and the complete protocol shows no corruption" } else { "FAIL" });
    Ok(ok)
}

fn check_sync(gpus: &[&Gpu], spec: &PipelineSpec, input: Input, delay_us: u64) -> Result<bool> {
    use pc_pipeline::sync_check::check_edges_on;
    println!("sync check: each edge removed in turn, with the stage it comes from slowed by {delay_us} us before each operation");
    let bar = progress_bar(0);
    // SAFETY: `--check-sync` asks for exactly this: each edge removed in
    // turn, a race on purpose, whose results are only verified and reported.
    let report = unsafe {
        check_edges_on(gpus, spec, input, delay_us.saturating_mul(1000), |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64)
        })
    }?;
    bar.finish_and_clear();
    let name = |s: usize| report.stage_names.get(s).map_or("?", |n| n.as_str());
    for (stage, v) in &report.baseline {
        println!(
            "all edges, stage {stage} ({}) slowed: {} ({} of {} chunks wrong)",
            name(*stage),
            if v.passed() { "no corruption" } else { "CORRUPTION" },
            v.chunks_wrong,
            v.chunks_checked
        );
    }
    for r in &report.edges {
        let e = &r.edge;
        let kind = match e.kind {
            pc_pipeline::EdgeKind::Filled => "filled",
            pc_pipeline::EdgeKind::Freed => "freed ",
        };
        let verdict = match &r.check.first_wrong {
            Some((c, what)) => format!("needed: corruption detected ({} chunk(s) wrong; chunk {c}: {what})", r.check.chunks_wrong),
            None => "not detected".to_string(),
        };
        println!("ring {} {kind} slot {} ({} chunk {} -> {} chunk {}): {verdict}", e.ring, e.slot, name(e.from.0), e.from.1, name(e.to.0), e.to.1);
    }
    let detected = report.edges.iter().filter(|r| r.detected()).count();
    let clean = report.baseline.iter().all(|(_, v)| v.passed());
    println!(
        "summary: {detected} of {} edges needed and detected; {} without mutations",
        report.edges.len(),
        if clean { "zero corruption" } else { "CORRUPTION" }
    );
    Ok(report.all_needed_and_clean())
}

/// Resident set size of this process (Linux: /proc/self/statm).
fn host_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Device memory in use, summed over the GPUs (0 where it cannot be read).
fn device_used(gpus: &[Gpu]) -> usize {
    gpus.iter().filter_map(|g| g.memory().ok()).map(|(free, total)| total - free).sum()
}

fn print_run(label: &str, spec: &PipelineSpec, r: &RunReport) {
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

/// A bar over runs; drawn only on a terminal and only for several runs.
fn progress_bar(runs: usize) -> ProgressBar {
    let bar = ProgressBar::new(runs as u64);
    if runs < 2 || !std::io::stdout().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else {
        bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed} (eta {eta})").unwrap_or_else(|_| ProgressStyle::default_bar()));
    }
    bar
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
