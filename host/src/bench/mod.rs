//! `host bench`: what the GPU can do and how close the Rust kernels and
//! pipelines come, measured in one process with CUDA events (median of
//! repeated runs after a warm-up). Optionally merges the peers' figures
//! (CUDA C++, CuPy, PyTorch: `bench/peers/`) measured in the same session.
mod grains;
mod multi;
mod plots;

use anyhow::{Context, Result};
use clap::Args;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, LaunchConfig};
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload};
use pc_runtime::copy;
use pc_runtime::error::bytes;
use pc_runtime::gpu::Gpu;
use ptx_kernels::{
    ConsumerKernel, ConsumerVecKernel, FIR_OUTPUTS_PER_THREAD, FirKernel, FusedKernel, FusedVecKernel, ProducerKernel, ProducerVecKernel, ReduceKernel,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// CUDA device index.
    #[arg(short = 'd', long, default_value_t = 0)]
    gpu: usize,
    /// Benchmarks measure GPU time: --device cuda only (sim is refused).
    #[command(flatten)]
    on: crate::device_args::DeviceArgs,
    /// Large size for ceilings and kernels (bytes).
    #[arg(long, default_value = "256MiB", value_parser = crate::units::parse_bytes)]
    large: u64,
    /// Small size for kernels (bytes).
    #[arg(long, default_value = "4MiB", value_parser = crate::units::parse_bytes)]
    small: u64,
    /// Timed repetitions per figure (the median is reported).
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Total size of each pipeline run (bytes).
    #[arg(long, default_value = "256MiB", value_parser = crate::units::parse_bytes)]
    pipeline_total: u64,
    /// Chunk sizes of the pipeline sweep.
    #[arg(long, value_delimiter = ',', default_value = "64KiB,256KiB,1MiB,4MiB,16MiB,64MiB,256MiB", value_parser = crate::units::parse_bytes)]
    chunks: Vec<u64>,
    /// Skip the pipeline sweep (ceilings and kernels only).
    #[arg(long)]
    no_pipelines: bool,
    /// Kernels in the per-kernel-boundary chain (sm_90 only; even).
    #[arg(long, default_value_t = 1000)]
    chain_links: usize,
    /// Peers' results (JSON from bench/peers/run_peers.py) to merge.
    #[arg(long)]
    peers: Option<PathBuf>,
    /// Write every figure here as JSON.
    #[arg(long, default_value = "bench.json")]
    json: PathBuf,
    /// Write the markdown table here.
    #[arg(long, default_value = "bench.md")]
    markdown: PathBuf,
    /// Write the SVG plots into this directory.
    #[arg(long, default_value = ".")]
    plots: PathBuf,
    /// Several GPUs instead ("0,1" or "all"): the host link with every GPU
    /// copying both ways at once, peer copies between each pair, and the
    /// split pipelines against one GPU (written to --json).
    #[arg(long)]
    gpus: Option<String>,
}

/// Launches per timed repetition: enough to fill ~64 MiB of traffic, so a
/// 4 MiB kernel of a few microseconds is timed over 16 back-to-back launches
/// instead of at the events' resolution. The peers use the same rule.
fn batch_for(size: u64) -> usize {
    ((64u64 << 20) / size.max(1)).clamp(1, 1024) as usize
}

/// Median over `reps` of the event-timed time of `f`, run `batch_for(size)`
/// times back to back and divided, after one warm-up.
fn time_ms(stream: &Arc<CudaStream>, reps: usize, size: u64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let timing = pc_runtime::stream::TIMING;
    let batch = batch_for(size);
    f()?;
    stream.synchronize()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let a = stream.record_event(timing)?;
        for _ in 0..batch {
            f()?;
        }
        let b = stream.record_event(timing)?;
        b.synchronize()?;
        t.push(a.elapsed_ms(&b)? as f64 / batch as f64);
    }
    t.sort_by(|x, y| x.total_cmp(y));
    Ok(t[t.len() / 2])
}

fn gbps(bytes: u64, ms: f64) -> f64 {
    bytes as f64 / (ms * 1e-3) / 1e9
}

pub fn run(a: &BenchArgs) -> Result<bool> {
    if a.on.sim_seed()?.is_some() {
        anyhow::bail!("--device sim: bench measures GPU time (copies, kernels, pipelines), and the simulated device has none; run it on a GPU");
    }
    if let Some(list) = &a.gpus {
        return multi::run(a.large, a.reps.min(5), list, &a.json);
    }
    let gpu = Gpu::open(a.gpu)?;
    let info = gpu.info().clone();
    println!("bench on device {}: {} ({} SMs), {} reps per figure, median", info.index, info.name, info.sm_count, a.reps);
    // SAFETY: the bench orders its two streams with events where they
    // share buffers (the hand-off and both-directions figures), and
    // synchronizes before anything is freed (time_ms ends synchronized).
    let (ctx, s, s2) = unsafe { (gpu.context().clone(), gpu.stream()?, gpu.stream()?) };
    let module = ptx_kernels::load(&gpu)?;
    let large = (a.large / 4 * 4) as usize;
    let n_large = large / 4;
    let mut rows: Vec<Value> = Vec::new();
    let mut add = |group: &str, name: &str, size: u64, bytes_moved: u64, ms: f64, note: &str| {
        let g = gbps(bytes_moved, ms);
        println!("{group:<10} {name:<34} {:>10} {:>10.4} ms {:>9.1} GB/s  {note}", bytes(size as u128), ms, g);
        rows.push(json!({"group": group, "name": name, "size_bytes": size, "bytes_moved": bytes_moved, "ms": ms, "gbps": g, "impl": "rust", "note": note}));
    };

    // ---- ceilings ----
    let src: CudaSlice<u8> = s.alloc_zeros(large)?;
    let dst: CudaSlice<u8> = s.alloc_zeros(large)?;
    let (sp, _) = src.device_ptr(&s);
    let (dp, _) = dst.device_ptr(&s);
    // SAFETY (the copies and fills below): `large` bytes in each device
    // and pinned buffer, alive until `run` ends synchronized; two streams
    // only where ordered by `fork` and `join`.
    let d2d = time_ms(&s, a.reps, large as u64, || Ok(unsafe { copy::dtod_async(dp, sp, large, &s) }?))?;
    add("ceiling", "device-to-device copy (read+write)", large as u64, 2 * large as u64, d2d, "");
    let memset = time_ms(&s, a.reps, large as u64, || Ok(unsafe { copy::memset_d32_async(dp, 0x3f80_0000, n_large, &s) }?))?;
    add("ceiling", "write-only (driver memset)", large as u64, large as u64, memset, "");
    // Pinned buffers, every page touched so first-use costs stay out of the timings.
    // SAFETY: filled right away; freed (at the end of `run`) after every stream synchronized.
    let (mut h_in_buf, mut h_out_buf) = unsafe { (ctx.alloc_pinned::<f32>(n_large)?, ctx.alloc_pinned::<f32>(n_large)?) };
    h_in_buf.as_mut_slice()?.fill(1.0);
    h_out_buf.as_mut_slice()?.fill(1.0);
    let (h_in, h_out) = (h_in_buf.as_ptr()?, h_out_buf.as_mut_ptr()?);
    let h2d = time_ms(&s, a.reps, large as u64, || Ok(unsafe { copy::htod_async(dp, h_in, large, &s) }?))?;
    add("ceiling", "pinned host-to-device", large as u64, large as u64, h2d, "");
    let d2h = time_ms(&s, a.reps, large as u64, || Ok(unsafe { copy::dtoh_async(h_out, sp, large, &s) }?))?;
    add("ceiling", "pinned device-to-host", large as u64, large as u64, d2h, "");
    let (fork, join) = (ctx.new_event(None)?, ctx.new_event(None)?);
    let both = time_ms(&s, a.reps, large as u64, || {
        fork.record(&s)?;
        s2.wait(&fork)?;
        unsafe {
            copy::htod_async(dp, h_in, large, &s)?;
            copy::dtoh_async(h_out, sp, large, &s2)?;
        }
        join.record(&s2)?;
        s.wait(&join)?;
        Ok(())
    })?;
    add("ceiling", "both directions at once (in+out)", large as u64, 2 * large as u64, both, "");
    drop((src, dst));
    // Each pipeline's physical bound in GB/s of input, from the ceilings of
    // this run: generate moves 4 bytes of device memory per input byte
    // (producer writes, consumer reads and writes, reduce reads) at the
    // device copy's rate; stream moves each byte in and out over the host
    // link at once, half the both-directions rate each way.
    let bound = |w: Workload| match w {
        Workload::Generate => gbps(2 * large as u64, d2d) / 4.0,
        Workload::Stream => gbps(2 * large as u64, both) / 2.0,
    };

    // ---- kernels ----
    let block = 256u32;
    for size in [a.large, a.small] {
        let n = size / 4;
        let mut buf: CudaSlice<f32> = s.alloc_zeros(n as usize)?;
        let mut out: CudaSlice<f32> = s.alloc_zeros(n as usize)?;
        let cfg = gpu.launch_config(n, block, None)?;
        let per_elem = LaunchConfig { grid_dim: (n.div_ceil(block as u64).min(i32::MAX as u64) as u32, 1, 1), ..cfg };
        let resident = (info.max_threads_per_sm / block * info.sm_count).max(1);
        let full = LaunchConfig { grid_dim: ((n / 4).div_ceil(block as u64).min(resident as u64) as u32, 1, 1), ..cfg };
        let (seed, first, spin) = (7u32, 0u64, 0u64);
        // One style's three kernels, timed on one launch shape: the same
        // lines for the seed-style and the vectorized kernels.
        macro_rules! time_style {
            ($label:expr, $lc:expr, $P:ty, $C:ty, $F:ty) => {{
                let (label, lc) = ($label, $lc);
                let (kp, kc, kf) = (module.kernel::<$P>()?, module.kernel::<$C>()?, module.kernel::<$F>()?);
                // SAFETY (all three): one stream, and time_ms synchronizes it.
                let p = time_ms(&s, a.reps, size, || Ok(unsafe { <$P>::launch(&kp, &s, lc, &mut buf, first, seed, spin) }?))?;
                add("kernel", &format!("producer ({label})"), size, 4 * n, p, &format!("grid {}", lc.grid_dim.0));
                let c = time_ms(&s, a.reps, size, || Ok(unsafe { <$C>::launch(&kc, &s, lc, &buf, &mut out, spin) }?))?;
                add("kernel", &format!("consumer ({label})"), size, 8 * n, c, &format!("grid {}", lc.grid_dim.0));
                let f = time_ms(&s, a.reps, size, || Ok(unsafe { <$F>::launch(&kf, &s, lc, &mut out, first, seed) }?))?;
                add("kernel", &format!("fused producer+consumer ({label})"), size, 4 * n, f, &format!("grid {}", lc.grid_dim.0));
            }};
        }
        time_style!("seed-style, default grid", cfg, ProducerKernel, ConsumerKernel, FusedKernel);
        time_style!("seed-style, one thread per element", per_elem, ProducerKernel, ConsumerKernel, FusedKernel);
        time_style!("vec16, default grid", cfg, ProducerVecKernel, ConsumerVecKernel, FusedVecKernel);
        time_style!("vec16, resident grid", full, ProducerVecKernel, ConsumerVecKernel, FusedVecKernel);
        // The seed's hand-off: producer on A, event, consumer on B waiting.
        // Events created once, as the CUDA C++ peer does: creating one per
        // launch is host work that the 4 MiB figure would otherwise measure.
        let (producer, consumer) = (module.kernel::<ProducerVecKernel>()?, module.kernel::<ConsumerVecKernel>()?);
        let (produced, consumed) = (ctx.new_event(None)?, ctx.new_event(None)?);
        let handoff = time_ms(&s, a.reps, size, || {
            // SAFETY: B waits for the producer's event before reading `buf`;
            // A waits for the consumer before the next producer writes it.
            unsafe { ProducerVecKernel::launch(&producer, &s, cfg, &mut buf, first, seed, spin) }?;
            produced.record(&s)?;
            s2.wait(&produced)?;
            unsafe { ConsumerVecKernel::launch(&consumer, &s2, cfg, &buf, &mut out, spin) }?;
            consumed.record(&s2)?;
            s.wait(&consumed)?;
            Ok(())
        })?;
        add("handoff", "producer -> event -> consumer (two streams)", size, 12 * n, handoff, "vec16 kernels, default grid");

        // The fir stage's kernel, default 63 taps: reads the input once
        // and writes the output once (8 bytes per element), like the consumer.
        let taps = pc_pipeline::fir::default_taps();
        let (fir, taps_d) = (module.kernel::<FirKernel>()?, s.clone_htod(&taps)?);
        let history: CudaSlice<f32> = s.alloc_zeros(taps.len() - 1)?;
        let mut fcfg = cfg;
        fcfg.grid_dim.0 = fcfg.grid_dim.0.min(n.div_ceil(FIR_OUTPUTS_PER_THREAD as u64).div_ceil(block as u64).max(1) as u32);
        // SAFETY: one stream, and time_ms synchronizes it.
        let f = time_ms(&s, a.reps, size, || Ok(unsafe { FirKernel::launch(&fir, &s, fcfg, &history, &buf, &mut out, &taps_d) }?))?;
        // The reduce stage's kernel: reads the input once into one record
        // (sum, min, max, 16-bin histogram), as in the generate pipeline.
        let words: CudaSlice<u64> = s.alloc_zeros(std::mem::size_of::<kernel_math::Reduction>() / 8)?;
        let words = words.slice(..);
        // SAFETY: u64 words of the Reduction's size, 8-byte aligned, viewed
        // as the AtomicReduction of the same layout (checked in kernel-math).
        let record = unsafe { words.transmute::<kernel_math::AtomicReduction>(1) }.ok_or_else(|| anyhow::anyhow!("the reduce record is too small"))?;
        let reduce = module.kernel::<ReduceKernel>()?;
        // SAFETY: one stream, and time_ms synchronizes it.
        let r = time_ms(&s, a.reps, size, || Ok(unsafe { ReduceKernel::launch(&reduce, &s, cfg, &buf, &record, 0) }?))?;
        add("kernel", "reduce (sum, min, max, 16-bin histogram), an atomic add a warp", size, 4 * n, r, &format!("grid {}", cfg.grid_dim.0));
        let bcfg = LaunchConfig { shared_mem_bytes: ptx_kernels::REDUCE_SHARED_BYTES, ..cfg };
        // SAFETY: as above.
        let r = time_ms(&s, a.reps, size, || Ok(unsafe { ReduceKernel::launch(&reduce, &s, bcfg, &buf, &record, 0) }?))?;
        add("kernel", "reduce (sum, min, max, 16-bin histogram), an atomic add a block", size, 4 * n, r, &format!("grid {}", cfg.grid_dim.0));
        add(
            "kernel",
            &format!("fir, {} taps ({} outputs per thread)", taps.len(), FIR_OUTPUTS_PER_THREAD),
            size,
            8 * n,
            f,
            &format!("grid {}", fcfg.grid_dim.0),
        );
    }

    // ---- kernel boundaries (sm_90: PDL) ----
    let hopper = gpu.require_compute_capability(ptx_kernels::hopper::COMPUTE_CAPABILITY, "the PDL figures");
    let boundaries = match &hopper {
        Ok(()) => grains::report(&grains::boundaries(&gpu, a.chain_links, a.reps)?),
        Err(e) => {
            println!("boundary   skipped: {e}");
            Value::Null
        }
    };

    // ---- the warp-specialized ring on a memory-bound map (sm_90) ----
    if hopper.is_ok() {
        let mut time = |st: &Arc<CudaStream>, f: &mut dyn FnMut() -> Result<()>| time_ms(st, a.reps, a.large, f);
        for (name, moved, ms, note) in grains::ring_map(&gpu, a.large / 16 * 16, &mut time)? {
            add("ring", &name, a.large, moved, ms, &note);
        }
        for (name, moved, ms, note) in grains::ring_fir(&gpu, a.large / 16 * 16, &mut time)? {
            add("ring", &name, a.large, moved, ms, &note);
        }
    }

    // ---- pipelines ----
    let mut sweep: Vec<Value> = Vec::new();
    if !a.no_pipelines {
        let mut modes: Vec<(&str, usize, bool, Launch)> = vec![
            ("serial (one stream)", 1, true, Launch::Streams),
            ("two streams per chunk (K=1)", 1, false, Launch::Streams),
            ("ring K=2", 2, false, Launch::Streams),
            ("ring K=3", 3, false, Launch::Streams),
            ("ring K=4", 4, false, Launch::Streams),
            ("graph replay (K=3)", 3, false, Launch::Graph),
        ];
        if hopper.is_ok() {
            modes.push(("pdl, one stream (K=3)", 3, false, Launch::Pdl { graph: false }));
            modes.push(("pdl graph replay (K=3)", 3, false, Launch::Pdl { graph: true }));
            modes.push(("warps: mbarrier ring stages (K=3)", 3, false, Launch::Warps));
        }
        for workload in [Workload::Generate, Workload::Stream] {
            for &chunk in &a.chunks {
                for &(mode, k, serial, launch) in &modes {
                    // The PDL grains run the generate pipeline only.
                    if matches!(launch, Launch::Pdl { .. }) && workload != Workload::Generate {
                        continue;
                    }
                    let graph = !matches!(launch, Launch::Streams | Launch::Warps);
                    let spec = PipelineSpec::new(workload).slots(k).serial(serial).chunk_elements(chunk / 4).total_elements(a.pipeline_total / 4);
                    let mut p = Pipeline::new(&[&gpu], spec.clone(), HostInput::Generated)?;
                    p.run(launch, 1, false)?; // warm-up (and graph capture)
                    let runs = 3;
                    let r = p.run(launch, runs, false)?;
                    let ok = p.verify(&r).passed();
                    let ms = r.gpu_ms as f64 / runs as f64;
                    let g = gbps(a.pipeline_total, ms);
                    // The ideal from a timeline of one run with stream launches.
                    let ideal = if !graph {
                        let t = p.run(launch, 1, true)?;
                        t.timeline.map(|tl| ideal_ms(&tl, spec.stages.len()))
                    } else {
                        None
                    };
                    let wl = format!("{workload:?}").to_lowercase();
                    println!(
                        "pipeline   {wl:<8} chunk {:>9} {mode:<28} {ms:>9.3} ms {g:>8.1} GB/s ({:>4.1}% of bound){}{}",
                        bytes(chunk as u128),
                        100.0 * g / bound(workload),
                        ideal.map_or(String::new(), |i| format!("  ideal {i:.3} ms ({:.0}%)", 100.0 * i / ms)),
                        if ok { "" } else { "  VERIFICATION FAILED" }
                    );
                    sweep.push(
                        json!({"workload": wl, "chunk_bytes": chunk, "mode": mode, "ms": ms, "gbps": g, "bound_gbps": bound(workload), "ideal_ms": ideal, "verified": ok, "impl": "rust"}),
                    );
                }
                // The flags grain (generate only: copies have no flag form),
                // with the hand-off and chunk latency from device timestamps;
                // up to 4 MiB chunks (a ring of 128 larger slots is large).
                if workload == Workload::Generate && chunk <= 4 << 20 {
                    for k in [16usize, 128] {
                        let mode = format!("flags grain (K={k})");
                        let spec = PipelineSpec::new(workload).slots(k).chunk_elements(chunk / 4).total_elements(a.pipeline_total / 4);
                        let mut p = Pipeline::new(&[&gpu], spec.clone(), HostInput::Generated)?;
                        p.run(Launch::Flags, 1, false)?; // warm-up (kernels loaded, counters allocated)
                        let runs = 3;
                        let r = p.run(Launch::Flags, runs, false)?;
                        let ok = p.verify(&r).passed();
                        let ms = r.gpu_ms as f64 / runs as f64;
                        let g = gbps(a.pipeline_total, ms);
                        let t = p.run(Launch::Flags, 1, true)?;
                        let (mut h, mut l) = t.flag_stamps.first().map(|s| (s.handoffs_ns(), s.latencies_ns())).unwrap_or_default();
                        let pct = |v: &mut Vec<u64>, q: f64| pc_pipeline::flags::percentile(v, q) as f64 / 1e3;
                        let (h50, h99, l50, l99) = (pct(&mut h, 50.0), pct(&mut h, 99.0), pct(&mut l, 50.0), pct(&mut l, 99.0));
                        println!(
                            "pipeline   generate chunk {:>9} {mode:<28} {ms:>9.3} ms {g:>8.1} GB/s ({:>4.1}% of bound)  hand-off p50 {h50:.2} us p99 {h99:.2} us, chunk latency p50 {l50:.1} us p99 {l99:.1} us{}",
                            bytes(chunk as u128),
                            100.0 * g / bound(workload),
                            if ok { "" } else { "  VERIFICATION FAILED" }
                        );
                        sweep.push(json!({"workload": "generate", "chunk_bytes": chunk, "mode": mode, "ms": ms, "gbps": g, "bound_gbps": bound(workload), "ideal_ms": null, "verified": ok, "impl": "rust",
                            "handoff_p50_us": h50, "handoff_p99_us": h99, "latency_p50_us": l50, "latency_p99_us": l99}));
                    }
                }
            }
        }
    }

    let peers: Value = match &a.peers {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("parsing {}", p.display()))?,
        None => Value::Null,
    };
    let all =
        json!({"device": info.name, "sm_count": info.sm_count, "reps": a.reps, "rows": rows, "boundaries": boundaries, "pipelines": sweep, "peers": peers});
    std::fs::write(&a.json, serde_json::to_string_pretty(&all)?).with_context(|| format!("writing {}", a.json.display()))?;
    std::fs::write(&a.markdown, markdown(&all)).with_context(|| format!("writing {}", a.markdown.display()))?;
    std::fs::create_dir_all(&a.plots).ok();
    plots::write_plots(&all, &a.plots)?;
    println!("wrote {}, {} and plots in {}", a.json.display(), a.markdown.display(), a.plots.display());
    let verified = all["pipelines"].as_array().is_none_or(|v| v.iter().all(|r| r["verified"] == true))
        && all["boundaries"]["rows"].as_array().is_none_or(|v| v.iter().all(|r| r["verified"] == true));
    Ok(verified)
}

/// The slowest stage's busy time over all chunks, plus one chunk of every
/// other stage (the fill and the drain).
fn ideal_ms(tl: &pc_pipeline::timeline::Timeline, stages: usize) -> f64 {
    let mut busy = vec![0.0; stages];
    let mut count = vec![0usize; stages];
    for s in &tl.spans {
        busy[s.stage] += s.end_ms - s.start_ms;
        count[s.stage] += 1;
    }
    let slowest = (0..stages).max_by(|&a, &b| busy[a].total_cmp(&busy[b])).unwrap_or(0);
    busy[slowest] + (0..stages).filter(|&s| s != slowest).map(|s| busy[s] / count[s].max(1) as f64).sum::<f64>()
}

/// The markdown table of every figure.
pub fn markdown(all: &Value) -> String {
    let mut m = format!("Device: {}\n\n| group | measurement | size | ms | GB/s | note |\n|---|---|---|---|---|---|\n", all["device"].as_str().unwrap_or("?"));
    for r in all["rows"].as_array().into_iter().flatten() {
        m += &format!(
            "| {} | {} | {} | {:.4} | {:.1} | {} |\n",
            r["group"].as_str().unwrap_or(""),
            r["name"].as_str().unwrap_or(""),
            bytes(r["size_bytes"].as_u64().unwrap_or(0) as u128),
            r["ms"].as_f64().unwrap_or(f64::NAN),
            r["gbps"].as_f64().unwrap_or(f64::NAN),
            r["note"].as_str().unwrap_or("")
        );
    }
    if let Some(peers) = all["peers"]["rows"].as_array() {
        m += "\n| peer | measurement | size | ms | GB/s |\n|---|---|---|---|---|\n";
        for r in peers {
            m += &format!(
                "| {} | {} | {} | {:.4} | {:.1} |\n",
                r["impl"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                bytes(r["size_bytes"].as_u64().unwrap_or(0) as u128),
                r["ms"].as_f64().unwrap_or(f64::NAN),
                r["gbps"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    m += &grains::markdown(&all["boundaries"]);
    let sweep = all["pipelines"].as_array().cloned().unwrap_or_default();
    if !sweep.is_empty() {
        m += "\n| workload | chunk | mode | ms per run | GB/s of input | of the physical bound | ideal | hand-off p50/p99 (us) | chunk latency p50/p99 (us) | verified |\n|---|---|---|---|---|---|---|---|---|---|\n";
        for r in &sweep {
            let pair = |a: &str, b: &str| match (r[a].as_f64(), r[b].as_f64()) {
                (Some(x), Some(y)) => format!("{x:.2} / {y:.2}"),
                _ => String::new(),
            };
            m += &format!(
                "| {} | {} | {} | {:.3} | {:.1} | {} | {} | {} | {} | {} |\n",
                r["workload"].as_str().unwrap_or(""),
                bytes(r["chunk_bytes"].as_u64().unwrap_or(0) as u128),
                r["mode"].as_str().unwrap_or(""),
                r["ms"].as_f64().unwrap_or(f64::NAN),
                r["gbps"].as_f64().unwrap_or(f64::NAN),
                r["bound_gbps"].as_f64().map_or(String::new(), |b| format!("{:.1}% of {b:.0}", 100.0 * r["gbps"].as_f64().unwrap_or(f64::NAN) / b)),
                r["ideal_ms"].as_f64().map_or("".to_string(), |i| format!("{:.3} ms ({:.0}%)", i, 100.0 * i / r["ms"].as_f64().unwrap_or(f64::NAN))),
                pair("handoff_p50_us", "handoff_p99_us"),
                pair("latency_p50_us", "latency_p99_us"),
                r["verified"]
            );
        }
    }
    m
}
