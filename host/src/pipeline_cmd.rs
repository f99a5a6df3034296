//! `host pipeline` in one process on generated input: builds the pipeline,
//! runs it, verifies every chunk, prints throughput, optionally against the
//! serial baseline, and writes the timeline; or, with `--check-sync`, checks
//! that every synchronization it has is needed.
use crate::common::{check_writable, fresh_interrupt_flag, gpu_indices, launch_words, parse_place, print_run};
use crate::pipeline_args::PipelineArgs;
use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec};
use pc_runtime::error::bytes;
use pc_runtime::gpu::Gpu;
use std::io::IsTerminal;

/// The batch mode: `spec` (from `pipeline_args::spec_of`) run
/// with `launch` on the GPUs of `--gpus` or `--place`.
pub fn run(a: &PipelineArgs, spec: PipelineSpec, launch: Launch) -> Result<bool> {
    check_writable(&a.trace, "--trace")?;
    check_writable(&a.svg, "--svg")?;
    // The GPU list, without the driver where it is a list of indices.
    let (indices, spec) = match &a.batch.place {
        Some(text) => {
            let (devices, placement) = parse_place(text, &spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>())?;
            (Some(devices), spec.placement(placement))
        }
        None if a.batch.gpus.trim() == "all" => (None, spec),
        None => (Some(gpu_indices(&a.batch.gpus)?), spec),
    };
    check_before_the_driver(a, &spec, launch, indices.as_ref().map(Vec::len))?;
    let indices = match indices {
        Some(i) => i,
        None => gpu_indices(&a.batch.gpus)?,
    };
    check_before_the_driver(a, &spec, launch, Some(indices.len()))?;
    let gpus: Vec<Gpu> = indices.iter().map(|&i| Gpu::open(i)).collect::<Result<_, _>>()?;
    let refs: Vec<&Gpu> = gpus.iter().collect();
    let input = HostInput::Generated;
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
        launch_words(launch),
        names.join(", ")
    );
    // Checked before the driver was opened (check_before_the_driver).
    if a.batch.check_sync && !spec.placement.is_empty() {
        return check_sync(&refs, &spec, input, a.batch.delay_us);
    }
    if a.batch.check_sync {
        return match launch {
            Launch::Streams => check_sync(&refs[..1], &spec, input, a.batch.delay_us),
            Launch::Pdl { .. } => check_sync_pdl(&gpus[0], &spec, input, a.batch.delay_us),
            Launch::Warps => check_sync_warps(&gpus[0], &spec, input, a.batch.delay_us),
            Launch::Flags => check_sync_flags(&gpus[0], &spec, a.batch.delay_us),
            Launch::Graph => bail!("--check-sync removes one event at a time, which a captured graph cannot; use --grain streams, pdl or pdl-graph"),
            Launch::Grain(g) => bail!("--check-sync has no faults to inject into the {} grain; use --grain streams, pdl, pdl-graph, warps or flags", g.name()),
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
    let bar = progress_bar(a.batch.runs);
    // Memory after the first run (setup and warm-up done) and at the end.
    let mut first: Option<(Option<u64>, usize)> = None;
    let report = pipeline.run_with_progress(launch, a.batch.runs, want_timeline, |done| {
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
    if a.batch.runs > 1 {
        let (rss0, dev0) = first.unwrap_or((None, 0));
        let (rss1, dev1) = (host_rss_bytes(), device_used(&gpus));
        let show = |v: Option<u64>| v.map_or("unknown".to_string(), |b| bytes(b as u128));
        let growth = match (rss0, rss1) {
            (Some(a), Some(b)) => (b as i64 - a as i64).to_string(),
            _ => "unknown".to_string(),
        };
        println!(
            "memory over {} runs: host RSS {} -> {} (growth {growth} bytes), device memory in use {} -> {}",
            a.batch.runs,
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

    if a.batch.compare_serial {
        let serial_spec = spec.clone().slots(1).serial(true);
        drop(pipeline);
        let mut serial = Pipeline::new(&refs, serial_spec.clone(), input)?;
        serial.set_interrupt(interrupt);
        let bar = progress_bar(a.batch.runs);
        let s = serial.run_with_progress(Launch::Streams, a.batch.runs, false, |done| bar.set_position(done as u64))?;
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
    if a.batch.check_sync {
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
    if a.batch.compare_serial && placed {
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

fn check_sync_pdl(gpu: &Gpu, spec: &PipelineSpec, input: HostInput, delay_us: u64) -> Result<bool> {
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
fn check_sync_warps(gpu: &Gpu, spec: &PipelineSpec, input: HostInput, delay_us: u64) -> Result<bool> {
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

fn check_sync(gpus: &[&Gpu], spec: &PipelineSpec, input: HostInput, delay_us: u64) -> Result<bool> {
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
