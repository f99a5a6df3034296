//! `host`: the seed's producer/consumer demo on a GPU, with every element
//! checked against the CPU reference, multi-stage pipelines and benchmarks.
//! Run `host --help`.
//!
//! The command line is a library too, so a program with stages of its own
//! gets the same CLI with them in `pipeline --stages` (what `host new`
//! writes):
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut stages = pc_pipeline::StageRegistry::builtin();
//!     // stages.register(pc_pipeline::Stage::map::<MyKernel>("mine", MY_PTX, |i, o| ...))?;
//!     host::main_with(stages)
//! }
//! ```
// Commands: a module each, none importing another (tests/layering.rs).
mod bench;
mod gen_cmd;
mod launch_cmd;
mod new_project;
mod pipeline_cmd;
mod rank_cmd;
mod sim_cmd;
mod stream_cmd;
// What the commands share; none of these imports a command.
mod common;
mod device_args;
mod pipeline_args;
mod rank_env;
mod units;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use pc_runtime::error::bytes;
use pc_runtime::gpu::Gpu;
use ptx_kernels::demo::{DemoConfig, DemoReport, run_demo_unsynchronized, run_demo_with};
use std::process::ExitCode;

/// Producer kernel on stream A, an event, consumer kernel on stream B waiting
/// on it; then every output element is checked against the CPU reference.
///
/// With no subcommand: the seed's demo. `host pipeline --help`: multi-stage
/// pipelines over ring buffers.
///
/// `--device sim` runs it (and `host pipeline --device sim`) on the
/// simulated device: no GPU or driver needed.
///
/// Exit status: 0 when every element matches, 1 on a mismatch or an error.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    demo: DemoArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream chunks through a multi-stage pipeline: one stream per stage,
    /// rings of K slots, every hand-off ordered by filled/freed events.
    Pipeline(Box<pipeline_args::PipelineArgs>),
    /// Measure the GPU's ceilings (copies, memset, host transfers) and the
    /// kernels and pipelines against them; write JSON, markdown and SVG plots.
    Bench(bench::BenchArgs),
    /// Write a new project outside this repository: a kernel crate of your
    /// own (a u32 map stage) and an app that runs it in a pipeline with this
    /// CLI. `cargo build` there works with no other step.
    New(new_project::NewArgs),
    /// Write a deterministic stream of elements (the pipeline's generated
    /// input) to standard output, for `host gen ... | host pipeline --input - ...`.
    Gen(gen_cmd::GenArgs),
    /// Start a job of ranks, one process per GPU, this program each time:
    /// `host launch --nprocs 2 -- pipeline --place producer:0,consumer:1,reduce:1`.
    /// The stage hand-offs between ranks go through NCCL; each rank's output
    /// is printed prefixed `[rank r]`; a rank that fails stops the others.
    Launch(launch_cmd::LaunchArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Number of f32 elements (also 2^20 or 1e6 style).
    #[arg(short = 'n', long, default_value = "1048576", value_parser = units::parse_count)]
    elements: u64,
    /// Threads per block.
    #[arg(short, long, default_value_t = 256)]
    block_size: u32,
    /// Blocks per grid (default: enough for the elements, at most half the GPU's resident capacity).
    #[arg(short, long)]
    grid_size: Option<u32>,
    /// CUDA device index (the GPU the demo runs on).
    #[arg(short = 'd', long, default_value_t = 0)]
    gpu: usize,
    #[command(flatten)]
    on: device_args::DeviceArgs,
    /// Skip stream B's wait on the producer's event (the seed's pitfall): shows wrong elements.
    #[arg(long)]
    no_sync: bool,
    /// Microseconds each producer thread spins before writing [default: 0, or 2000 with --no-sync].
    #[arg(long)]
    spin_us: Option<u64>,
    /// Seed of the producer's values.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u32,
    /// Load the kernels from this PTX file instead of the embedded module:
    /// for toolchain experiments, it must be a build of kernels-gpu's own
    /// source (entries and parameter sizes are checked, the code is not).
    #[arg(long)]
    ptx: Option<std::path::PathBuf>,
}

/// For a program's `main`: a panic on the main thread ends as one line and
/// exit 1, not a backtrace. Panics on other threads (say a CPU reference
/// in a verification thread) are left to the code that joins them, which
/// reports a failed check instead.
pub fn install_panic_hook() {
    let main = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let msg = msg.replace('\n', " ");
        if std::thread::current().id() != main {
            // The joining code fails its result (fail closed) and reports.
            eprintln!("warning: a worker thread panicked: {msg}");
            return;
        }
        eprintln!("error: internal error: {msg}");
        std::process::exit(1);
    }));
}

/// Runs the command line with the stages of `registry` available to
/// `pipeline --stages` (the built-in ones, and any a program registers).
/// The arguments are the process's own, so the flags that vouch for
/// something the program cannot check are the person's to give: `--ptx`
/// (the file is a build of kernels-gpu), `--no-sync` and `--check-sync`
/// (races on purpose, to show them). `host pipeline` installs a SIGINT
/// handler (Ctrl-C stops a run cleanly; see docs/guide.md).
pub fn main_with(registry: pc_pipeline::StageRegistry) -> ExitCode {
    run_cli(registry, std::env::args_os(), true)
}

/// [`main_with`] on arguments a program supplies (the first is the program
/// name). `--ptx`, `--no-sync` and `--check-sync` are refused here: a
/// program's arguments cannot vouch for what they promise.
pub fn main_with_args<I, T>(registry: pc_pipeline::StageRegistry, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run_cli(registry, args, false)
}

fn run_cli<I, T>(registry: pc_pipeline::StageRegistry, args: I, from_the_command_line: bool) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    if !from_the_command_line {
        let vouching = ["--ptx", "--no-sync", "--check-sync"];
        if let Some(flag) = args.iter().skip(1).filter_map(|a| a.to_str()).find(|a| vouching.iter().any(|v| a == v || a.starts_with(&format!("{v}=")))) {
            eprintln!("error: {flag} is taken only from the command line (main_with), not from arguments a program supplies");
            return ExitCode::from(2);
        }
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => e.exit(),
        // A usage error: clap's first paragraph (it already starts
        // "error: ") on one line, exit 2. One line, not the first: a
        // missing argument is named on the lines after "not provided:".
        Err(e) => {
            let text = e.render().to_string();
            let first: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            eprintln!("{}", if first.is_empty() { "error: bad arguments".to_string() } else { first.join(" ") });
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Some(Command::Pipeline(args)) => pipeline(args, &registry),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::New(args)) => new_project::run(args),
        Some(Command::Gen(args)) => gen_cmd::run(args),
        Some(Command::Launch(args)) => launch_cmd::run(args),
        None => run(&cli.demo),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e)
            if matches!(
                e.downcast_ref::<pc_pipeline::PipelineError>(),
                Some(pc_pipeline::PipelineError::Interrupted { .. } | pc_pipeline::PipelineError::StreamInterrupted { .. })
            ) =>
        {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// `host pipeline`: the stages, the spec and the launch from the flags,
/// then one of three modes: a rank of a job (`PC_RANK` set), a stream
/// (`--input`), or a batch on generated input.
fn pipeline(a: &pipeline_args::PipelineArgs, registry: &pc_pipeline::StageRegistry) -> Result<bool> {
    let sim_seed = a.on.sim_seed()?;
    let launch = pipeline_args::launch_of(a.grain, a.batch.graph)?;
    if sim_seed.is_some() {
        sim_cmd::check_pipeline(a, launch)?;
        if rank_env::RankEnv::from_env()?.is_some() {
            return Err(sim_cmd::rank_refused());
        }
    }
    let registry = pipeline_args::registry_of(a, registry)?;
    let spec = pipeline_args::spec_of(a, &registry)?;
    // A stream refuses every grain but streams itself (stream_cmd).
    if a.stream.input.is_none() {
        spec.check_launch(launch)?;
    }
    if let Some(seed) = sim_seed {
        return match &a.stream.input {
            Some(input) => sim_cmd::stream(a, &spec, input, seed),
            None => sim_cmd::batch(a, spec, launch, seed),
        };
    }
    if let Some(env) = rank_env::RankEnv::from_env()? {
        return rank_cmd::run(a, spec, launch, env);
    }
    if let Some(input) = &a.stream.input {
        return stream_cmd::run(a, &spec, input, common::fresh_interrupt_flag());
    }
    pipeline_cmd::run(a, spec, launch)
}

/// An error and its causes as one line: each cause once (typed errors that
/// print their cause already would otherwise repeat it), no line breaks.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(cli: &DemoArgs) -> Result<bool> {
    let cfg = DemoConfig {
        elements: cli.elements,
        block_size: cli.block_size,
        grid_size: cli.grid_size,
        seed: cli.seed,
        sync: !cli.no_sync,
        producer_spin_us: cli.spin_us.unwrap_or(if cli.no_sync { 2000 } else { 0 }),
    };
    cfg.validate()?;
    if let Some(seed) = cli.on.sim_seed()? {
        sim_cmd::refuse_flags(&[
            (cli.ptx.is_some(), "--ptx loads kernels for a GPU; the simulated device runs each kernel's CPU reference"),
            (cli.spin_us.is_some_and(|us| us > 0), "--spin-us delays the producer in time, and the simulated device has none"),
            (cli.gpu != 0, "--gpu picks a CUDA device; the simulated device is one device"),
        ])?;
        let report = sim_cmd::demo(&cfg, seed)?;
        print_report(&report, true);
        return Ok(report.check.passed());
    }
    let (ptx, origin) = common::kernels_ptx(&cli.ptx)?;
    let gpu = Gpu::open(cli.gpu)?;
    let info = gpu.info();
    println!(
        "device {}: {} (sm_{}{}, {} SMs, {}), PTX built for {}",
        info.index,
        info.name,
        info.compute_capability.0,
        info.compute_capability.1,
        info.sm_count,
        bytes(info.total_memory as u128),
        ptx_kernels::ARCH
    );
    let module = gpu.load(ptx, &origin)?;
    let report = if cfg.sync {
        run_demo_with(&gpu, &module, &cfg)?
    } else {
        // SAFETY: `--no-sync` asks for the seed's race, to show it: the
        // consumer reads f32 the producer may be writing; the output is read
        // after both streams synchronized and only checked and printed.
        unsafe { run_demo_unsynchronized(&gpu, &module, &cfg)? }
    };
    print_report(&report, false);
    Ok(report.check.passed())
}

/// The demo's report; `simulated`: from the simulated device, which has
/// no time.
fn print_report(r: &DemoReport, simulated: bool) {
    let c = &r.config;
    println!(
        "elements {}, block {}, grid {}, producer spin {} us, stream B {} the producer's event",
        c.elements,
        c.block_size,
        r.grid_size,
        c.producer_spin_us,
        if c.sync { "waits on" } else { "does NOT wait on" }
    );
    let samples: Vec<String> = r.samples.iter().map(|x| format!("{x:.6}")).collect();
    println!("output[0..{}]: {}", samples.len(), samples.join(" "));
    let (produced, consumed) = (bytes(r.producer_bytes() as u128), bytes(r.consumer_bytes() as u128));
    if simulated {
        println!("producer {}  (writes {produced})", sim_cmd::SIMULATED);
        println!("consumer {}  (reads and writes {consumed})", sim_cmd::SIMULATED);
    } else {
        println!("producer {:9.3} ms  {:8.1} GB/s  (writes {produced})", r.producer_ms, r.producer_gbps());
        println!("consumer {:9.3} ms  {:8.1} GB/s  (reads and writes {consumed})", r.consumer_ms, r.consumer_gbps());
    }
    let n = r.check.checked;
    if r.check.first.is_none() && !r.check.passed() {
        println!("verification: FAIL: only {n} of {} elements were checked", r.check.expected);
        return;
    }
    match (&r.check.first, c.sync) {
        (None, true) => println!("verification: PASS: all {n} elements match the CPU reference"),
        (None, false) => {
            println!("verification: PASS: all {n} elements match, although stream B did not wait: the race did not show this time (try a larger --spin-us)")
        }
        (Some(m), sync) => {
            println!(
                "verification: FAIL: {} of {n} elements differ from the CPU reference (first: [{}] = {}, want {})",
                r.check.mismatches, m.index, m.got, m.want
            );
            if !sync {
                println!("(expected without the event wait: the consumer read the buffer before the producer wrote it)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
