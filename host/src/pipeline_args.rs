//! The flags of `host pipeline` and what they make: the stage registry
//! (`--ptx`, `--fir-taps`), the pipeline's spec and its launch (`--grain`).
//! Shared by the batch, stream and rank modes (`pipeline_cmd`,
//! `stream_cmd`, `rank_cmd`), which `lib.rs` chooses between.
use crate::units::parse_bytes;
use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use pc_pipeline::{Launch, PipelineSpec, StageRegistry, Workload};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WorkloadArg {
    /// producer -> consumer -> reduce: only per-chunk sum/min/max/histogram come back.
    Generate,
    /// h2d -> consumer -> d2h: pinned host input through the GPU to pinned host output.
    Stream,
}

/// `--grain`'s parser: the names of the pipeline's table of grains
/// (`pc_pipeline::LAUNCHES`, each [`Launch::name`]), read back with
/// `Launch`'s `FromStr`, so a grain's name is spelled once, by its grain.
/// clap lists them in `--help` and refuses any other (a usage error).
fn grain_parser() -> impl clap::builder::TypedValueParser<Value = Launch> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(pc_pipeline::LAUNCHES.map(Launch::name)).try_map(|name| name.parse::<Launch>())
}

/// The launch a `--grain` (or the older `--graph`) asks for.
pub(crate) fn launch_of(grain: Option<Launch>, graph: bool) -> Result<Launch> {
    Ok(match (grain, graph) {
        (None, false) => Launch::Streams,
        (None, true) | (Some(Launch::Graph), _) => Launch::Graph,
        (Some(g), true) => bail!("--graph is --grain graph; it does not combine with --grain {}", g.name()),
        (Some(g), false) => g,
    })
}

/// The ids of [`BatchArgs`]' flags, which `--input` conflicts with. One
/// by one, not the `batch` group: clap's error for a conflict with a group
/// lists all of its flags, not the one given. A test holds this list to
/// the group's members.
const BATCH: [&str; 9] = ["total", "total_elements", "graph", "runs", "gpus", "place", "compare_serial", "check_sync", "delay_us"];

/// The flags of `host pipeline`, by mode: those every mode takes, then
/// a batch's on generated input, then a stream's (`--input`). clap refuses
/// a flag of the other mode at parse time (a usage error, exit 2, that
/// names it); the rank mode (`PC_RANK` set) is chosen by the environment,
/// which clap does not see, so `rank_cmd` refuses what it cannot run.
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
    /// Chunk size in elements (instead of --chunk).
    #[arg(long, value_parser = crate::units::parse_count, conflicts_with = "chunk")]
    pub(crate) chunk_elements: Option<u64>,
    /// Threads per block of every kernel stage.
    #[arg(short, long, default_value_t = 256)]
    pub(crate) block_size: u32,
    /// How stages hand chunks over: streams (events between per-stage
    /// streams), graph (that, as a replayed CUDA graph), pdl / pdl-graph
    /// (programmatic dependent launch on one stream, sm_90, stages with a
    /// PDL form: producer, consumer, reduce), warps (consumer, reduce and
    /// fir on the warp-specialized mbarrier ring, sm_90), flags (every stage one kernel for the whole
    /// run, all at once, slots handed over through counters in device
    /// memory; stages with a flags form, K <= 256; use a deep ring, e.g.
    /// -k 128, for small chunks) [default: streams].
    #[arg(long, value_parser = grain_parser())]
    pub(crate) grain: Option<Launch>,
    /// Flags and warps grains: a wait on a ring counter or a warp ring's
    /// barrier longer than this (ms) stops the run with an error naming the
    /// stage and slot, instead of hanging.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) watchdog_ms: u64,
    /// Write a Chrome trace (open in Perfetto) of the last run; for a
    /// stream, each chunk's GPU operations and its latency (own row).
    #[arg(long)]
    pub(crate) trace: Option<PathBuf>,
    /// Write an SVG Gantt chart (one row per stream) of the last run.
    #[arg(long)]
    pub(crate) svg: Option<PathBuf>,
    /// Seed of the producer's values and of generated input.
    #[arg(long, default_value_t = 0x5eed)]
    pub(crate) seed: u32,
    /// Taps of the `fir` stage from this text file (numbers separated by
    /// spaces, commas or newlines; `#` comments) instead of the default
    /// 63-tap low-pass.
    #[arg(long)]
    pub(crate) fir_taps: Option<PathBuf>,
    /// Load the kernels from this PTX file instead of the embedded module.
    #[arg(long)]
    pub(crate) ptx: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) on: crate::device_args::DeviceArgs,
    #[command(flatten, next_help_heading = "Batch (generated input)")]
    pub(crate) batch: BatchArgs,
    #[command(flatten, next_help_heading = "Stream (--input)")]
    pub(crate) stream: StreamArgs,
}

/// A batch on generated input: its size, launches, runs and GPUs. A stream
/// runs once, on GPU 0, with stream launches, as long as its input: none
/// of these with `--input` ([`BATCH`]).
#[derive(Debug, Args)]
#[group(id = "batch", multiple = true)]
pub struct BatchArgs {
    /// Total size in bytes of the source's element type [default: 256MiB].
    /// A stream (--input) has no declared total: it is what arrives.
    #[arg(short, long, value_parser = parse_bytes)]
    pub(crate) total: Option<u64>,
    /// Total size in elements (instead of --total).
    #[arg(long, value_parser = crate::units::parse_count, conflicts_with = "total")]
    pub(crate) total_elements: Option<u64>,
    /// Capture the launch sequence once as a CUDA graph and replay it
    /// (the same as --grain graph).
    #[arg(long)]
    pub(crate) graph: bool,
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
    /// Also run the serial baseline (K=1, every stage on one stream, no events)
    /// on the same data, and print the speed-up.
    #[arg(long)]
    pub(crate) compare_serial: bool,
    /// Sync checker: run once per event-graph edge with only that edge
    /// removed and its source stage slowed; report whether the corruption
    /// it prevents was detected. Use few chunks (e.g. --chunk 1MiB --total 6MiB).
    #[arg(long)]
    pub(crate) check_sync: bool,
    /// How long the slowed stage waits before each operation (sync checker).
    #[arg(long, default_value_t = 2000)]
    pub(crate) delay_us: u64,
}

/// A stream (`--input`): its source, sink, staging and report; each needs
/// `--input`.
#[derive(Debug, Args)]
#[group(id = "stream", multiple = true, requires = "input")]
pub struct StreamArgs {
    /// Stream from this file, or standard input with "-": little-endian
    /// elements of the source's type, as many as arrive (a last partial
    /// chunk is fine; a partial element is an error). Needs a pipeline from
    /// h2d to d2h (--workload stream). Without it, input is generated. A
    /// stream runs once, on GPU 0, with stream launches, as long as its
    /// input: not with a batch's flags (--total, --total-elements, --graph,
    /// --runs, --gpus, --place, --compare-serial, --check-sync, --delay-us).
    #[arg(long, conflicts_with_all = BATCH)]
    pub(crate) input: Option<PathBuf>,
    /// Where a stream's output goes: a file (written under a temporary
    /// name, renamed when the stream completed) or standard output with
    /// "-" (then every message goes to standard error). Default: checked,
    /// then dropped.
    #[arg(long)]
    pub(crate) output: Option<PathBuf>,
    /// Streams: pinned staging slots per direction (default: what the GPU
    /// rings hold at once, plus one per reader and one for the writer).
    #[arg(long)]
    pub(crate) host_slots: Option<usize>,
    /// Streams from a regular file: chunks read at once, each by its own
    /// reader thread, in pieces of at least 256 KiB on a pool of one
    /// thread per core (default: a piece per core, from 4 to 16 chunks).
    #[arg(long)]
    pub(crate) readers: Option<usize>,
    /// Streams: only the host side, with no GPU and no stage: the input
    /// through the readers and staging slots (ordinary memory) to the
    /// output as it is; the ceiling the host side puts on a stream from
    /// this input to this output (throughput, latency, drops).
    #[arg(long)]
    pub(crate) host_only: bool,
    /// Streams: when every staging slot is busy, drop the oldest chunk not
    /// yet on the GPU (counted and reported) instead of waiting.
    #[arg(long)]
    pub(crate) drop_oldest: bool,
    /// Streams: pace the input to this rate in GB/s (decimal), as a live
    /// source; latency is measured from each chunk's due time.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Streams: skip checking each chunk against the CPU reference.
    #[arg(long)]
    pub(crate) no_verify: bool,
    /// Streams: write the run report (throughput, latency, drops) as JSON.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
}

/// The stages `--stages` may name: `registry`, its built-ins loaded from
/// `--ptx` where given, and the `fir` stage with `--fir-taps`' taps.
pub(crate) fn registry_of(a: &PipelineArgs, registry: &StageRegistry) -> Result<StageRegistry> {
    let mut registry = match &a.ptx {
        None => registry.clone(),
        Some(_) => registry.with_builtins_in(crate::common::kernels_ptx(&a.ptx)?.0),
    };
    if let Some(path) = &a.fir_taps {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("taps file {}: {e}", path.display()))?;
        let taps = pc_pipeline::fir::parse_taps(&text).map_err(|e| anyhow::anyhow!("taps file {}: {e}", path.display()))?;
        registry.replace(pc_pipeline::builtin::fir_in(crate::common::kernels_ptx(&a.ptx)?.0, taps)?)?;
    }
    Ok(registry)
}

pub(crate) fn spec_of(a: &PipelineArgs, registry: &StageRegistry) -> Result<PipelineSpec> {
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
    // A stream is as long as its input (clap refuses --total with --input).
    let total = match a.stream.input {
        Some(_) => chunk,
        None => elements("--total", a.batch.total.unwrap_or(256 << 20), a.batch.total_elements)?,
    };
    let spec = spec.chunk_elements(chunk).total_elements(total);
    spec.validate()?;
    if a.stream.input.is_some() && !spec.reads_host() {
        bail!("--input needs a pipeline that starts with h2d (use --workload stream)");
    }
    if a.stream.input.is_some() && !spec.writes_host() {
        bail!("--input needs a pipeline that ends with d2h: a stream's output goes to the host (use --workload stream)");
    }
    if a.batch.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    /// `BATCH`, what `--input` conflicts with, is every flag of the batch
    /// group and nothing else.
    #[test]
    fn input_conflicts_with_exactly_the_batch_flags() {
        let cmd = PipelineArgs::augment_args(Command::new("pipeline"));
        let group = cmd.get_groups().find(|g| g.get_id() == "batch").expect("the batch group");
        let mut members: Vec<&str> = group.get_args().map(|id| id.as_str()).collect();
        let mut listed = BATCH.to_vec();
        members.sort_unstable();
        listed.sort_unstable();
        assert_eq!(members, listed);
    }

    /// `--grain` takes each name of the pipeline's table, as that launch,
    /// lists them all in `--help`, and refuses any other name.
    #[test]
    fn grain_takes_the_names_of_the_table_of_grains() {
        let mut cmd = PipelineArgs::augment_args(Command::new("pipeline"));
        for launch in pc_pipeline::LAUNCHES {
            let m = cmd.clone().try_get_matches_from(["pipeline", "--grain", launch.name()]).unwrap();
            assert_eq!(m.get_one::<Launch>("grain"), Some(&launch));
            assert_eq!(launch_of(Some(launch), false).unwrap(), launch);
        }
        let e = cmd.clone().try_get_matches_from(["pipeline", "--grain", "threads"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("[possible values: streams, graph, pdl, pdl-graph, warps, flags]"), "{help}");
        assert_eq!(launch_of(None, false).unwrap(), Launch::Streams);
        assert_eq!(launch_of(None, true).unwrap(), Launch::Graph);
        assert!(launch_of(Some(Launch::Warps), true).unwrap_err().to_string().contains("--graph is --grain graph"));
    }
}
