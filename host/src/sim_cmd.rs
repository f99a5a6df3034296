//! `--device sim`: the demo and `host pipeline` (a batch, or a stream with
//! `--input`) on the simulated device (`pc_pipeline::sim`), with no GPU
//! or driver. The same banner and verification lines as a GPU run; every
//! time is reported as simulated (the simulated device has none); the
//! scheduler's seed is printed so a run replays (`--sim-seed`). What the
//! simulated device does not run is refused with one line before anything
//! runs ([`check_pipeline`], [`refuse_flags`]).
use crate::common::{check_writable, fresh_interrupt_flag, gpu_indices, is_dash, launch_words, parse_place, staged_output, stdout_file, stream_banner};
use crate::pipeline_args::PipelineArgs;
use anyhow::{Context, Result, anyhow, bail};
use pc_pipeline::sim::{SIM_LAUNCHES, SimError, SimPipeline};
use pc_pipeline::{EdgeKind, HostInput, Launch, PipelineSpec, StageRegistry, Workload};
use pc_runtime::error::bytes;
use ptx_kernels::demo::{DemoConfig, DemoReport};
use std::io::{Read, Write};
use std::path::Path;

/// What every simulated time is printed as.
pub const SIMULATED: &str = "time: simulated (no GPU time)";

/// Refuses the first flag of `flags` that was given (`true`), with its
/// reason: "--device sim: <reason>".
pub fn refuse_flags(flags: &[(bool, &str)]) -> Result<()> {
    match flags.iter().find(|(given, _)| *given) {
        Some((_, why)) => bail!("--device sim: {why}"),
        None => Ok(()),
    }
}

/// Everything `host pipeline --device sim` cannot run, refused before
/// anything runs: grains the simulated device lacks (it runs
/// [`SIM_LAUNCHES`]; a grain it gains runs here with no change), the sync
/// checker, timelines of a stream or of the flags and PDL models, PTX,
/// ranks, and a stream's host-side
/// knobs (it simulates the GPU side of each chunk).
pub fn check_pipeline(a: &PipelineArgs, launch: Launch) -> Result<()> {
    let stream = a.stream.input.is_some();
    // A stream runs with stream launches only, on the GPU as here.
    if stream && launch != Launch::Streams {
        bail!("--grain {} is not available for a stream (--input): streams run with stream launches", launch.name());
    }
    if !SIM_LAUNCHES.contains(&launch) {
        let runs: Vec<&str> = SIM_LAUNCHES.iter().map(|l| l.name()).collect();
        bail!("--device sim: --grain {} does not run on the simulated device yet (it runs --grain {}); use a GPU", launch.name(), runs.join(", "));
    }
    refuse_flags(&[
        (a.ptx.is_some(), "--ptx loads kernels for a GPU; the simulated device runs each stage's CPU reference"),
        (a.batch.gpus.trim() == "all", "--gpus all counts a driver's GPUs; name the simulated GPUs instead (e.g. --gpus 0,1,2)"),
        (a.batch.place.is_some() && a.batch.compare_serial, "--compare-serial runs the serial baseline on one stream, so not with --place"),
        (
            a.batch.check_sync,
            "--check-sync slows stages on a GPU to show corruption; the simulated device's race detector checks every hand-off of every run instead",
        ),
        (stream && (a.trace.is_some() || a.svg.is_some()), "--trace/--svg: a stream on the simulated device has no timeline (a batch has, in simulated time)"),
        (
            (a.trace.is_some() || a.svg.is_some()) && matches!(launch, Launch::Flags | Launch::Pdl { .. }),
            "--trace/--svg: the simulated flags and PDL models have no streams to time; use --grain streams, graph or warps",
        ),
        (a.stream.host_only, "--host-only runs no device at all; leave --device sim out"),
        (a.stream.rate.is_some(), "--rate paces a stream in time, and the simulated device has none"),
        (a.stream.drop_oldest, "--drop-oldest drops chunks the GPU is too slow for, and the simulated device has no time"),
        (a.stream.host_slots.is_some(), "--host-slots sizes a stream's host staging, which the simulated device does not simulate"),
        (a.stream.readers.is_some(), "--readers sizes a stream's host readers, which the simulated device does not simulate"),
        (a.stream.json.is_some(), "--json writes a stream's throughput and latency, which the simulated device does not have"),
    ])?;
    Ok(())
}

/// A rank of a job (`PC_RANK` set) runs on GPUs; refused on the simulated
/// device.
pub fn rank_refused() -> anyhow::Error {
    anyhow!("--device sim: a rank of a job (PC_RANK set) hands chunks to other GPUs through NCCL; the simulated device is one GPU in one process")
}

/// A simulation's error as one line: a race names the ring, slot, both
/// operations and the missing edge.
fn sim_error(e: SimError) -> anyhow::Error {
    match e {
        SimError::Failed(e) => e.into(),
        e @ SimError::Race { .. } => anyhow!("the simulated device found a {e}"),
        // Every other kind (a failed operation, a stuck protocol, a bad
        // capture, any added later) is one line already.
        e => anyhow!("{e}"),
    }
}

/// Refuses a simulation whose buffers (`need` bytes of host memory in
/// all) this machine cannot give, instead of aborting when it allocates.
fn check_host_memory(need: u128) -> Result<()> {
    let fits = usize::try_from(need).ok().is_some_and(|n| Vec::<u8>::new().try_reserve_exact(n).is_ok());
    if !fits {
        bail!("the simulated device keeps every buffer in host memory: {} needed, more than this machine gives", bytes(need));
    }
    Ok(())
}

fn seed_line(seed: u64) -> String {
    format!("scheduler seed {seed} (replay: --sim-seed {seed})")
}

/// The demo on the simulated device: the seed's producer and consumer as
/// the pipeline producer -> consumer -> d2h in one chunk of one slot
/// (producer on stream A, its filled event, the consumer on stream B
/// waiting on it, then the copy back), checked element by element against
/// the demo's own CPU check. Without the wait (`cfg.sync` off) the filled
/// edge is removed, and the race detector names the race.
pub fn demo(cfg: &DemoConfig, seed: u64) -> Result<DemoReport> {
    cfg.validate()?;
    let n = cfg.elements;
    // The producer's slot, the consumer's, and the host output.
    check_host_memory(n as u128 * 4 * 3)?;
    let stages = StageRegistry::builtin().parse("producer,consumer,d2h")?;
    let spec = PipelineSpec::new(Workload::Generate).stages(stages).slots(1).chunk_elements(n).total_elements(n).seed(cfg.seed).block_size(cfg.block_size);
    println!("device sim: the simulated device (each kernel its CPU reference, no GPU), {}", seed_line(seed));
    let mut sim = SimPipeline::new(spec, HostInput::Generated)?.scheduler_seed(seed);
    if !cfg.sync {
        let wait =
            *sim.event_graph().edges().iter().find(|e| e.kind == EdgeKind::Filled && e.ring == 0).context("the demo's event graph has no filled edge")?;
        sim.set_event_graph(|g| g.without(&wait))?;
    }
    sim.run(Launch::Streams, 1).map_err(sim_error)?;
    let out: Vec<f32> = sim.output_bytes().unwrap_or_default().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let check = ptx_kernels::verify::check_consumed(&out, 0, cfg.seed);
    let samples = out.iter().take(10).copied().collect();
    // No GPU picks a grid: the one that covers the elements.
    let grid = cfg.grid_size.unwrap_or_else(|| u32::try_from(n.div_ceil(u64::from(cfg.block_size))).unwrap_or(u32::MAX));
    Ok(DemoReport { config: cfg.clone(), grid_size: grid, producer_ms: 0.0, consumer_ms: 0.0, samples, check })
}

/// A digest of the order the operations ran in (FNV-1a), to show which
/// of the orders CUDA allows a seed picked.
fn order_digest(sim: &SimPipeline) -> (usize, u64) {
    // Every part's operations, part by part.
    let order: Vec<_> = (0..sim.parts()).filter_map(|p| sim.device_of(p)).flat_map(|d| d.order().iter().copied()).collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for op in &order {
        for v in [op.run, op.stage, op.chunk] {
            for b in (v as u64).to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    (order.len(), h)
}

/// `host pipeline --device sim` on generated input: `a.batch.runs` runs
/// with `launch`, the schedule's digest, every chunk verified; with
/// `--compare-serial` the serial baseline too (verified; no speed-up, no
/// time), on the simulated GPUs of `--gpus` (chunks split over them) or
/// `--place` (stages on them, peer copies between). [`check_pipeline`]
/// ran first.
pub fn batch(a: &PipelineArgs, spec: PipelineSpec, launch: Launch, seed: u64) -> Result<bool> {
    let size = spec.input_type()?.size() as u128;
    let total = spec.total_elements as u128;
    let out_size = spec.output_type()?.size() as u128;
    let ring_bytes: u128 = spec.ring_types()?.iter().map(|t| (spec.slots as u128) * (spec.chunk_elements as u128) * t.size() as u128).sum();
    check_host_memory(ring_bytes + if spec.reads_host() { total * size } else { 0 } + if spec.writes_host() { total * out_size } else { 0 })?;
    // The GPUs named are simulated: only how many, and which stage on which.
    let (gpus, spec) = match &a.batch.place {
        Some(text) => {
            let (devices, placement) = parse_place(text, &spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>())?;
            (devices.len(), spec.placement(placement))
        }
        None => (gpu_indices(&a.batch.gpus)?.len(), spec),
    };
    // Refused before the banner, as on a GPU.
    spec.check_launch(launch)?;
    if gpus > 1 && matches!(launch, Launch::Flags | Launch::Pdl { .. } | Launch::Warps) {
        bail!("--device sim: --grain {} runs on one simulated GPU (its protocol model); use --grain streams or graph over several", launch.name());
    }
    check_writable(&a.trace, "--trace")?;
    check_writable(&a.svg, "--svg")?;
    let want_timeline = a.trace.is_some() || a.svg.is_some();
    let mut sim = SimPipeline::on_gpus(gpus, spec, HostInput::Generated)?.scheduler_seed(seed).record_timeline(want_timeline);
    let spec = sim.spec().clone();
    let stage_list = spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(" -> ");
    println!(
        "pipeline: {stage_list} ({}), K={}, chunk {} ({} elements), total {} in {} chunks, {}, the simulated device, {}",
        spec.ring_types()?.iter().map(|t| t.name()).collect::<Vec<_>>().join(" -> "),
        spec.slots,
        bytes(spec.chunk_elements as u128 * size),
        spec.chunk_elements,
        bytes(total * size),
        spec.chunks(),
        launch_words(launch),
        seed_line(seed)
    );
    match (gpus, spec.placement.is_empty()) {
        (1, _) => {}
        (n, true) => println!("simulated GPUs: {n}, the chunks split over {} of them (a part each)", sim.parts()),
        (n, false) => println!("simulated GPUs: {n}, stages placed {:?} (peer copies between)", spec.placement),
    }
    // Ctrl-C stops between runs: the interrupted error, exit 130, as on a GPU.
    let interrupt = fresh_interrupt_flag();
    sim.set_interrupt(interrupt.clone());
    let report = sim.run(launch, a.batch.runs).map_err(sim_error)?;
    println!("pipelined: {} run(s), {SIMULATED}", report.runs);
    let (ops, digest) = order_digest(&sim);
    println!("schedule: {ops} operations, in the order scheduler seed {seed} picks (digest {digest:016x})");
    let check = sim.verify(&report);
    let how = match (check.passed(), spec.reduces()) {
        (false, _) => "",
        (true, true) => " (reductions exact)",
        (true, false) => " (every element)",
    };
    println!("verification: {}{how}", check.summary());
    let mut passed = check.passed();
    if let Some(tl) = &report.timeline {
        // Times from the simulator's nominal cost model, not measured.
        let title = format!("{stage_list}, K={}, {} chunks: simulated time (no GPU)", spec.slots, spec.chunks());
        if let Some(p) = &a.trace {
            tl.write_chrome_trace(p)?;
            println!("timeline: wrote Chrome trace {} (simulated time)", p.display());
        }
        if let Some(p) = &a.svg {
            tl.write_svg(p, &title)?;
            println!("timeline: wrote SVG {} (simulated time)", p.display());
        }
        println!(
            "timeline: overlap factor {:.2} in simulated time (each operation its bytes at a nominal rate, not measured; 1 = fully serial, {} = every stage busy all the time)",
            tl.overlap_factor(),
            spec.stages.len()
        );
    }
    if a.batch.compare_serial {
        let serial_spec = spec.slots(1).serial(true);
        drop(sim);
        let mut serial = SimPipeline::on_gpus(gpus, serial_spec, HostInput::Generated)?.scheduler_seed(seed);
        serial.set_interrupt(interrupt);
        let s = serial.run(Launch::Streams, a.batch.runs).map_err(sim_error)?;
        let ok = serial.verify(&s).passed();
        passed &= ok;
        println!("serial (K=1, one stream): {} run(s), {SIMULATED}", s.runs);
        println!("speed-up: none to show, no GPU time (serial run verification: {})", if ok { "PASS" } else { "FAIL" });
    }
    Ok(passed)
}

/// `host pipeline --device sim --input FILE|- [--output FILE|-]`: the
/// whole input through the stages with `pc_pipeline::sim::stream` (the
/// executor's per-chunk action lists), checked against the CPU
/// reference, then written out; an output file gets its final name only
/// when the stream verified. [`check_pipeline`] ran first.
pub fn stream(a: &PipelineArgs, spec: &PipelineSpec, input: &Path, seed: u64) -> Result<bool> {
    check_writable(&a.stream.output.clone().filter(|p| !is_dash(p)), "--output")?;
    let interrupt = fresh_interrupt_flag();
    let to_stdout = a.stream.output.as_deref().is_some_and(is_dash);
    let say = crate::common::say_to(to_stdout);
    let mut data = Vec::new();
    if is_dash(input) {
        std::io::stdin().lock().read_to_end(&mut data).context("standard input")?;
    } else {
        std::fs::File::open(input).and_then(|mut f| f.read_to_end(&mut data)).with_context(|| format!("input file {}", input.display()))?;
    }
    let size = spec.input_type()?.size();
    say(stream_banner(spec, input, a.stream.output.as_deref(), &format!("the simulated device, {}", seed_line(seed)))?);
    // An error (a race, input ending mid-element, Ctrl-C between chunks)
    // returns before anything is written.
    let out = pc_pipeline::sim::stream_interruptible(spec, &data, seed, &interrupt).map_err(sim_error)?;
    let elements = (data.len() / size) as u64;
    let whole = spec.clone().total_elements(elements.max(1));
    let chunks = if elements == 0 { 0 } else { whole.chunks() };
    let verification = match (a.stream.no_verify, elements) {
        (true, _) | (_, 0) => None,
        (false, _) => Some(pc_pipeline::reference::verify(&whole, Some(&data), Some(&out), &[])),
    };
    let passed = verification.as_ref().is_none_or(|v| v.passed());
    match &a.stream.output {
        None => {}
        Some(p) if !passed => say(format!("output: not written to {} (verification failed)", p.display())),
        Some(p) if is_dash(p) => {
            let mut w = stdout_file()?;
            w.write_all(&out).and_then(|()| w.flush()).context("standard output")?;
        }
        // An existing file that is not a regular one (/dev/null, a named
        // pipe) is written in place, never replaced.
        Some(p) if std::fs::metadata(p).is_ok_and(|m| !m.is_file()) => {
            std::fs::OpenOptions::new().write(true).open(p).and_then(|mut f| f.write_all(&out)).with_context(|| format!("cannot write {}", p.display()))?;
        }
        Some(p) => {
            let mut t = staged_output(p)?;
            t.write_all(&out).with_context(|| format!("cannot write {}", p.display()))?;
            t.persist(p).with_context(|| format!("cannot write {}", p.display()))?;
        }
    }
    say(format!("stream: {chunks} chunks, {} in, {} out, {SIMULATED}", bytes(data.len() as u128), bytes(out.len() as u128)));
    match (&verification, a.stream.no_verify) {
        (Some(v), _) => say(format!("verification: {}{}", v.summary(), if v.passed() { " (every element)" } else { "" })),
        (None, true) => say("verification: skipped (--no-verify)".into()),
        (None, false) => say("verification: nothing to check (the input is empty)".into()),
    }
    Ok(passed)
}
