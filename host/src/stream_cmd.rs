//! `host pipeline --input FILE|- [--output FILE|-]`: a stream through the
//! GPU stages, as long as its input, with latency and drops reported.
use crate::common::{check_writable, is_dash, staged_output, stdout_file, stream_banner, widen_pipe};
use crate::pipeline_args::PipelineArgs;
use anyhow::{Context, Result, bail};
use pc_pipeline::PipelineSpec;
use pc_pipeline::stream::{self, Backpressure, Discard, FileSink, FileSource, ReadSource, StreamOptions, StreamReader, StreamReport, StreamSink, WriteSink};
use pc_runtime::error::bytes;
use pc_runtime::gpu::Gpu;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Positional reads or writes per chunk of a regular file: one per core.
fn readers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get())
}

pub fn run(a: &PipelineArgs, spec: &PipelineSpec, input: &Path, interrupt: Arc<AtomicBool>) -> Result<bool> {
    // A batch's flags conflict with --input at parse time (pipeline_args);
    // --grain is taken by every mode, so a stream refuses it by its value
    // here (clap has no conflict on a value).
    if let Some(g) = a.grain.filter(|&g| g != pc_pipeline::Launch::Streams) {
        bail!("--grain {} is not available for a stream (--input): streams run with stream launches", g.name());
    }
    if let Some(r) = a.stream.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate {r}: give a positive rate in GB/s");
    }
    if a.stream.host_slots == Some(0) || a.stream.host_slots == Some(1) {
        bail!("--host-slots must be at least 2 (one being read, one on the GPU)");
    }
    if a.stream.readers == Some(0) {
        bail!("--readers must be at least 1");
    }
    let tracing = a.trace.is_some() || a.svg.is_some();
    if a.stream.host_only && tracing {
        bail!("--trace/--svg show the GPU's operations: not available with --host-only");
    }
    check_writable(&a.trace, "--trace")?;
    check_writable(&a.svg, "--svg")?;
    let to_stdout = a.stream.output.as_deref().is_some_and(is_dash);
    let say = crate::common::say_to(to_stdout);
    let source: Box<dyn StreamReader> = if is_dash(input) {
        widen_pipe(&std::io::stdin());
        Box::new(ReadSource(std::io::stdin()))
    } else {
        let f = std::fs::File::open(input).with_context(|| format!("input file {}", input.display()))?;
        let regular = f.metadata().is_ok_and(|m| m.is_file());
        // A regular file: positional reads in parallel; anything else (a
        // named pipe, a device) in order.
        if regular { Box::new(FileSource::new(f, readers())) } else { Box::new(ReadSource(f)) }
    };
    let opts = StreamOptions {
        host_slots: a.stream.host_slots,
        readers: a.stream.readers,
        backpressure: if a.stream.drop_oldest { Backpressure::DropOldest } else { Backpressure::Block },
        rate_bytes_per_s: a.stream.rate.map(|g| g * 1e9),
        verify: !a.stream.no_verify,
        interrupt: Some(interrupt),
        trace: tracing,
    };
    let mut staged = None;
    // An existing file that is not a regular one (a device such as
    // /dev/null, a named pipe) is written in place, never replaced.
    let special = |p: &Path| std::fs::metadata(p).is_ok_and(|m| !m.is_file());
    let sink: Box<dyn StreamSink> = match &a.stream.output {
        None => Box::new(Discard),
        Some(p) if is_dash(p) => Box::new(WriteSink(std::io::BufWriter::with_capacity(1 << 20, stdout_file()?))),
        Some(p) if special(p) => {
            let f = std::fs::OpenOptions::new().write(true).open(p).with_context(|| format!("cannot write {}", p.display()))?;
            Box::new(WriteSink(f))
        }
        Some(p) => {
            let t = staged_output(p)?;
            let f = t.as_file().try_clone().with_context(|| format!("cannot write {}", p.display()))?;
            staged = Some((t, p.clone()));
            Box::new(FileSink::new(f, readers()))
        }
    };
    if a.stream.host_only {
        let report = host_only(a, spec, input, source, sink, opts, &say)?;
        if let Some((t, path)) = staged {
            t.persist(&path).with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(p) = &a.stream.json {
            write_json(p, spec, &report)?;
            say(format!("report: wrote {}", p.display()));
        }
        return Ok(true);
    }
    let gpu = Gpu::open(0)?;
    say(stream_banner(spec, input, a.stream.output.as_deref(), &format!("GPU 0 ({})", gpu.info().name))?);
    let report = stream::run(&gpu, spec, source, sink, opts)?;
    let passed = report.verification.as_ref().is_none_or(|v| v.passed());
    // Only a complete, verified stream gets the final name.
    if let Some((t, path)) = staged {
        if passed {
            t.persist(&path).with_context(|| format!("cannot write {}", path.display()))?;
        } else {
            say(format!("output: not written to {} (verification failed)", path.display()));
        }
    }
    print_report(&report, &say);
    if let Some(tl) = &report.timeline {
        if let Some(p) = &a.trace {
            let l = &report.latency;
            let figures = serde_json::json!({
                "latency_us": {"p50": l.p50_us, "p99": l.p99_us, "max": l.max_us, "mean": l.mean_us, "chunks": l.chunks},
                "dropped_chunks": report.dropped_chunks,
                "input_gbps": report.input_gbps(),
            });
            tl.write_chrome_trace_with(p, figures)?;
            say(format!("timeline: wrote Chrome trace {} (a row per stage, and each chunk's latency on a row of its own)", p.display()));
        }
        if let Some(p) = &a.svg {
            tl.write_svg(p, &format!("stream: {} chunks, latency p50 {:.0} us, p99 {:.0} us", report.chunks, report.latency.p50_us, report.latency.p99_us))?;
            say(format!("timeline: wrote SVG {}", p.display()));
        }
    }
    if let Some(p) = &a.stream.json {
        write_json(p, spec, &report)?;
        say(format!("report: wrote {}", p.display()));
    }
    Ok(passed)
}

/// `--host-only`: the input through the readers and staging slots to the
/// output as it is, no GPU.
fn host_only(
    a: &PipelineArgs,
    spec: &PipelineSpec,
    input: &Path,
    source: Box<dyn StreamReader>,
    sink: Box<dyn StreamSink>,
    opts: StreamOptions,
    say: &dyn Fn(String),
) -> Result<StreamReport> {
    let size = spec.input_type()?.size();
    let chunk_bytes = usize::try_from(spec.chunk_elements).ok().and_then(|c| c.checked_mul(size)).context("--chunk: too large for this machine")?;
    say(format!(
        "host only (no GPU, no stage): {} in chunks of {} ({} elements of {}) through staging slots of ordinary memory to {}",
        if is_dash(input) { "standard input".to_string() } else { input.display().to_string() },
        bytes(chunk_bytes as u128),
        spec.chunk_elements,
        spec.input_type()?.name(),
        match &a.stream.output {
            None => "nowhere".to_string(),
            Some(p) if is_dash(p) => "standard output".to_string(),
            Some(p) => p.display().to_string(),
        },
    ));
    let report = stream::host_only(source, sink, chunk_bytes, size, opts)?;
    say(format!(
        "host only: {} chunks, {} in {:.3} s: {:.2} GB/s; {} staging slots",
        report.chunks,
        bytes(report.bytes_in as u128),
        report.wall_s,
        report.input_gbps(),
        report.host_slots
    ));
    let l = &report.latency;
    say(format!("latency per chunk (read done -> sink took it): p50 {:.0} us, p99 {:.0} us, max {:.0} us", l.p50_us, l.p99_us, l.max_us));
    if report.dropped_chunks > 0 {
        say(format!("dropped (drop-oldest): {} chunk(s), {}", report.dropped_chunks, bytes(report.dropped_bytes as u128)));
    }
    Ok(report)
}

fn print_report(r: &StreamReport, say: &dyn Fn(String)) {
    say(format!(
        "stream: {} chunks, {} in, {} out in {:.3} s: {:.2} GB/s of input; {} pinned staging slots per direction",
        r.chunks,
        bytes(r.bytes_in as u128),
        bytes(r.bytes_out as u128),
        r.wall_s,
        r.input_gbps(),
        r.host_slots
    ));
    let l = &r.latency;
    say(format!(
        "latency per chunk (source had it -> sink took it): p50 {:.0} us, p99 {:.0} us, max {:.0} us, mean {:.0} us",
        l.p50_us, l.p99_us, l.max_us, l.mean_us
    ));
    if r.dropped_chunks > 0 {
        say(format!("dropped (drop-oldest): {} chunk(s), {}", r.dropped_chunks, bytes(r.dropped_bytes as u128)));
    }
    match &r.verification {
        Some(v) => say(format!("verification: {}{}", v.summary(), if v.passed() { " (every element)" } else { "" })),
        None => say("verification: skipped (--no-verify)".into()),
    }
}

fn write_json(path: &PathBuf, spec: &PipelineSpec, r: &StreamReport) -> Result<()> {
    let l = &r.latency;
    let v = serde_json::json!({
        "stages": spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "slots": spec.slots,
        "chunk_elements": spec.chunk_elements,
        "chunks": r.chunks,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "wall_s": r.wall_s,
        "input_gbps": r.input_gbps(),
        "host_slots": r.host_slots,
        "dropped_chunks": r.dropped_chunks,
        "dropped_bytes": r.dropped_bytes,
        "latency_us": {"p50": l.p50_us, "p99": l.p99_us, "max": l.max_us, "mean": l.mean_us, "chunks": l.chunks},
        "verified": r.verification.as_ref().map(|v| v.passed()),
    });
    let mut f = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string_pretty(&v)?).with_context(|| format!("cannot write {}", path.display()))
}
