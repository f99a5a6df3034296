//! `host bench`'s per-kernel-boundary figures (sm_90): a chain of N tiny
//! dependent kernels on one stream (`pdl_chain_kernel`: each link reads the
//! output of the one before), launched four ways: stream launches, stream
//! launches with PDL, one CUDA graph replay, one graph replay whose kernels
//! were captured with PDL (programmatic edges). The chain's GPU time over N
//! is the cost of one kernel boundary.
use anyhow::{Result, bail};
use cudarc::driver::{CudaSlice, CudaStream};
use pc_runtime::gpu::Gpu;
use pc_runtime::launch::{Kernel, LaunchConfig};
use ptx_kernels::hopper::PdlChainKernel;
use serde_json::{Value, json};
use std::sync::Arc;

/// Elements each link touches: one block's worth, so a link is all launch
/// and dependency, no bandwidth.
const LINK_ELEMENTS: usize = 256;

/// How the chain is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Streams,
    StreamsPdl,
    Graph,
    GraphPdl,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Streams => "stream launches",
            Mode::StreamsPdl => "stream launches, PDL",
            Mode::Graph => "graph replay",
            Mode::GraphPdl => "graph replay, PDL",
        }
    }
}

/// One mode's figure.
#[derive(Debug, Clone)]
pub struct Boundary {
    pub mode: &'static str,
    pub links: usize,
    /// Median GPU time of one chain, in ms.
    pub chain_ms: f64,
    /// `chain_ms / links`, in microseconds.
    pub us_per_boundary: f64,
    /// Every element of the last output counted every link of every chain.
    pub verified: bool,
}

/// Enqueues `links` links over `a` and `b` in turn (a -> b -> a ...).
///
/// # Safety
/// `a` and `b` are used by `stream` only, until it is synchronized.
unsafe fn enqueue_chain(
    k: &Kernel<PdlChainKernel>,
    s: &CudaStream,
    cfg: LaunchConfig,
    a: &mut CudaSlice<u32>,
    b: &mut CudaSlice<u32>,
    links: usize,
    pdl: bool,
) -> Result<()> {
    for i in 0..links {
        let (src, dst) = if i % 2 == 0 { (&*a, &mut *b) } else { (&*b, &mut *a) };
        // SAFETY: one stream; every link is a PdlKernel, which waits for
        // the link before it to complete before touching memory.
        unsafe {
            if pdl && i > 0 {
                PdlChainKernel::launch_pdl(k, s, cfg, src, dst)?;
            } else {
                PdlChainKernel::launch(k, s, cfg, src, dst)?;
            }
        }
    }
    Ok(())
}

/// The four modes, `reps` chains of `links` kernels each (median), after
/// one warm-up chain. `links` must be even (the last output is then `a`).
pub fn boundaries(gpu: &Gpu, links: usize, reps: usize) -> Result<Vec<Boundary>> {
    if links < 2 || !links.is_multiple_of(2) {
        bail!("--chain-links {links}: give an even number of at least 2");
    }
    let module = ptx_kernels::hopper::load(gpu)?;
    let k = module.kernel::<PdlChainKernel>()?;
    // SAFETY: one stream, synchronized before the buffers are dropped (end
    // of each mode).
    let s: Arc<CudaStream> = unsafe { gpu.stream()? };
    let cfg = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (LINK_ELEMENTS as u32, 1, 1), shared_mem_bytes: 0 };
    let timing = pc_runtime::stream::TIMING;
    let mut out = Vec::new();
    for mode in [Mode::Streams, Mode::StreamsPdl, Mode::Graph, Mode::GraphPdl] {
        let mut a: CudaSlice<u32> = s.alloc_zeros(LINK_ELEMENTS)?;
        let mut b: CudaSlice<u32> = s.alloc_zeros(LINK_ELEMENTS)?;
        let pdl = matches!(mode, Mode::StreamsPdl | Mode::GraphPdl);
        let graph = if matches!(mode, Mode::Graph | Mode::GraphPdl) {
            pc_runtime::stream::begin_capture(&s)?;
            // SAFETY: as in `enqueue_chain`, captured on `s`.
            let enqueued = unsafe { enqueue_chain(&k, &s, cfg, &mut a, &mut b, links, pdl) };
            let g = pc_runtime::stream::end_capture(&s);
            enqueued?;
            let Some(g) = g? else { bail!("capturing the chain produced no graph") };
            g.upload()?;
            Some(g)
        } else {
            None
        };
        let mut run = || -> Result<()> {
            match &graph {
                Some(g) => g.launch()?,
                // SAFETY: as in `enqueue_chain`.
                None => unsafe { enqueue_chain(&k, &s, cfg, &mut a, &mut b, links, pdl)? },
            }
            Ok(())
        };
        run()?;
        s.synchronize()?;
        let mut t = Vec::with_capacity(reps.max(1));
        for _ in 0..reps.max(1) {
            let start = s.record_event(timing)?;
            run()?;
            let end = s.record_event(timing)?;
            end.synchronize()?;
            t.push(start.elapsed_ms(&end)? as f64);
        }
        t.sort_by(|x, y| x.total_cmp(y));
        let chain_ms = t[t.len() / 2];
        let got = s.clone_dtoh(&a)?;
        s.synchronize()?;
        let want = (links as u64 * (1 + t.len() as u64)) as u32;
        let verified = got.iter().all(|&v| v == want);
        out.push(Boundary { mode: mode.name(), links, chain_ms, us_per_boundary: chain_ms * 1e3 / links as f64, verified });
    }
    Ok(out)
}

/// Prints the figures and the target (PDL inside graph replay at
/// least 20% below graph replay without it); returns them as JSON rows.
pub fn report(rows: &[Boundary]) -> Value {
    for r in rows {
        println!(
            "boundary   chain of {} kernels, {:<22} {:>9.3} ms {:>7.3} us per kernel boundary{}",
            r.links,
            r.mode,
            r.chain_ms,
            r.us_per_boundary,
            if r.verified { "" } else { "  VERIFICATION FAILED" }
        );
    }
    let per = |name: &str| rows.iter().find(|r| r.mode == name).map(|r| r.us_per_boundary);
    let gain = match (per(Mode::Graph.name()), per(Mode::GraphPdl.name())) {
        (Some(g), Some(p)) if g > 0.0 => Some(100.0 * (g - p) / g),
        _ => None,
    };
    if let Some(gain) = gain {
        println!(
            "boundary   PDL inside graph replay: {gain:.1}% below graph replay per boundary (issue 11's target: at least 20%): {}",
            if gain >= 20.0 { "met" } else { "missed" }
        );
    }
    json!({
        "rows": rows.iter().map(|r| json!({"mode": r.mode, "links": r.links, "chain_ms": r.chain_ms, "us_per_boundary": r.us_per_boundary, "verified": r.verified})).collect::<Vec<_>>(),
        "pdl_graph_gain_percent": gain,
    })
}

/// The markdown table of [`report`]'s JSON.
pub fn markdown(v: &Value) -> String {
    let Some(rows) = v["rows"].as_array().filter(|r| !r.is_empty()) else { return String::new() };
    let mut m = String::from("\n| kernel boundary | links | ms per chain | us per boundary | verified |\n|---|---|---|---|---|\n");
    for r in rows {
        m += &format!(
            "| {} | {} | {:.3} | {:.3} | {} |\n",
            r["mode"].as_str().unwrap_or(""),
            r["links"],
            r["chain_ms"].as_f64().unwrap_or(f64::NAN),
            r["us_per_boundary"].as_f64().unwrap_or(f64::NAN),
            r["verified"]
        );
    }
    if let Some(g) = v["pdl_graph_gain_percent"].as_f64() {
        m += &format!("\nPDL inside graph replay: {g:.1}% below graph replay per boundary (target: at least 20%).\n");
    }
    m
}

/// One figure of [`ring_map`]: (name, bytes moved, ms, note).
pub type Figure = (String, u64, f64, String);

/// The bench's timer: the median ms of running the closure on the stream.
pub type Timer<'t> = dyn FnMut(&Arc<CudaStream>, &mut dyn FnMut() -> Result<()>) -> Result<f64> + 't;

/// The warp-specialized ring on a memory-bound map (`out = consume(in)`,
/// 8 bytes moved per element) over `bytes` of f32: `ring_consumer_kernel`
/// with K slots of 16, 32 or 64 KiB and 4 to 16 consumer warps, against the plain 16-byte kernel
/// (`consumer_vec_kernel`, resident grid) and the device copy (the
/// ceiling), each timed by `time` (median of repetitions). Every element of
/// each output is checked against the CPU reference; a mismatch is an error.
pub fn ring_map(gpu: &Gpu, bytes: u64, time: &mut Timer<'_>) -> Result<Vec<Figure>> {
    use cudarc::driver::DevicePtr;
    use pc_pipeline::exec::warps::RingShape;
    use ptx_kernels::hopper::RingConsumerKernel;
    use ptx_kernels::{ConsumerVecKernel, ProducerVecKernel};
    let n = (bytes / 4) as usize;
    let seed = 0x5eed;
    let plain = ptx_kernels::load(gpu)?;
    let hopper = ptx_kernels::hopper::load(gpu)?;
    // SAFETY: one stream, synchronized (by `time` and the checks) before
    // the buffers are dropped.
    let s: Arc<CudaStream> = unsafe { gpu.stream()? };
    // SAFETY: filled by the producer right below, on the same stream.
    let mut input: CudaSlice<f32> = unsafe { s.alloc(n)? };
    let mut output: CudaSlice<f32> = unsafe { s.alloc(n)? };
    let cfg = gpu.launch_config(n as u64, 256, None)?;
    // SAFETY: one stream.
    unsafe { ProducerVecKernel::launch(&plain.kernel::<ProducerVecKernel>()?, &s, cfg, &mut input, 0, seed, 0)? };
    let info = gpu.info();
    let resident = (info.max_threads_per_sm / 256 * info.sm_count).max(1);
    let full = LaunchConfig { grid_dim: ((n as u64 / 4).div_ceil(256).min(resident as u64).max(1) as u32, 1, 1), ..cfg };
    let check = |what: &str, output: &mut CudaSlice<f32>| -> Result<()> {
        let host = s.clone_dtoh(&*output)?;
        s.synchronize()?;
        let c = ptx_kernels::verify::check_consumed(&host, 0, seed);
        if !c.passed() {
            bail!("{what}: {} of {} elements differ from the CPU reference (first: {:?})", c.mismatches, c.expected, c.first);
        }
        // SAFETY: one stream; the next kernel rewrites every element.
        unsafe { pc_runtime::gpu::poison(&s, output)? };
        Ok(())
    };
    let mut out = Vec::new();

    let (ip, _) = input.device_ptr(&s);
    let (op, _) = output.device_ptr(&s);
    // SAFETY: both buffers hold `4n` bytes; one stream.
    let copy = time(&s, &mut || Ok(unsafe { pc_runtime::copy::dtod_async(op, ip, 4 * n, &s) }?))?;
    out.push(("device-to-device copy (the ceiling)".to_string(), 8 * n as u64, copy, String::new()));

    let vec = plain.kernel::<ConsumerVecKernel>()?;
    // SAFETY: one stream.
    let plain_ms = time(&s, &mut || Ok(unsafe { ConsumerVecKernel::launch(&vec, &s, full, &input, &mut output, 0) }?))?;
    check("consumer_vec_kernel", &mut output)?;
    out.push(("plain 16-byte map (consumer_vec_kernel, resident grid)".to_string(), 8 * n as u64, plain_ms, format!("grid {}", full.grid_dim.0)));

    let ring = hopper.kernel::<RingConsumerKernel>()?;
    // 16 KiB slots (the old default), 8 consumer warps, K = 2..4, then
    // larger slots and other consumer counts: the kernel takes its slot
    // size and derives its consumers from the block.
    let shapes = [(2usize, 16u32, 8u32), (3, 16, 8), (4, 16, 8), (4, 16, 16), (3, 32, 8), (4, 32, 8), (4, 32, 16), (2, 64, 8), (3, 64, 16)];
    for (k, kib, warps) in shapes {
        let shape = RingShape { slot_bytes: kib << 10, consumer_warps: warps, ..RingShape::new(k) };
        ring.allow_dynamic_shared_bytes(shape.shared_bytes())?;
        let rcfg = shape.config(info, 4 * n as u64, 1.0);
        // SAFETY: one stream.
        let ms = time(&s, &mut || Ok(unsafe { RingConsumerKernel::launch(&ring, &s, rcfg, &input, &mut output, shape.slots, shape.slot_bytes, 0, 0, 0) }?))?;
        check("ring_consumer_kernel", &mut output)?;
        out.push((
            format!("warp-specialized ring map (K={k}, {kib} KiB slots, {warps} consumer warps)"),
            8 * n as u64,
            ms,
            format!("grid {} x {} threads; {:.1}% of the plain kernel's bandwidth (target >= 95%)", rcfg.grid_dim.0, rcfg.block_dim.0, 100.0 * plain_ms / ms),
        ));
    }
    Ok(out)
}

/// The FIR (default 63 taps) on the warp-specialized ring against the
/// plain `fir_kernel` over `bytes` of f32 from zero history, each timed by
/// `time`: every output of each kernel is checked bit for bit against the
/// CPU reference (`kernel_math::fir`, on every core). Bytes moved: the
/// input read and the output written once (8 per element).
pub fn ring_fir(gpu: &Gpu, bytes: u64, time: &mut Timer<'_>) -> Result<Vec<Figure>> {
    use pc_pipeline::exec::warps::RingShape;
    use ptx_kernels::hopper::{FIR_RING_OUTPUTS, RingFirKernel};
    use ptx_kernels::{FIR_OUTPUTS_PER_THREAD, FirKernel, ProducerVecKernel};
    let n = (bytes / 4) as usize;
    let plain = ptx_kernels::load(gpu)?;
    let hopper = ptx_kernels::hopper::load(gpu)?;
    // SAFETY: one stream, synchronized (by `time` and the checks) before
    // the buffers are dropped.
    let s: Arc<CudaStream> = unsafe { gpu.stream()? };
    // SAFETY: filled by the producer right below, on the same stream.
    let mut input: CudaSlice<f32> = unsafe { s.alloc(n)? };
    let mut output: CudaSlice<f32> = unsafe { s.alloc(n)? };
    let cfg = gpu.launch_config(n as u64, 256, None)?;
    // SAFETY: one stream.
    unsafe { ProducerVecKernel::launch(&plain.kernel::<ProducerVecKernel>()?, &s, cfg, &mut input, 0, 0x5eed, 0)? };
    let taps = pc_pipeline::fir::default_taps();
    let taps_d = s.clone_htod(&taps)?;
    let history: CudaSlice<f32> = s.alloc_zeros(taps.len() - 1)?;
    // The ring kernel's: the halo rounded up to 4 elements, as the ring keeps it.
    let ring_history: CudaSlice<f32> = s.alloc_zeros((taps.len() - 1).div_ceil(4) * 4)?;
    let x = s.clone_dtoh(&input)?;
    s.synchronize()?;
    let want = cpu_fir(&taps, &x);
    let check = |what: &str, output: &mut CudaSlice<f32>| -> Result<()> {
        let got = s.clone_dtoh(&*output)?;
        s.synchronize()?;
        if let Some(i) = (0..n).find(|&i| got[i].to_bits() != want[i].to_bits()) {
            let wrong = (0..n).filter(|&i| got[i].to_bits() != want[i].to_bits()).count();
            bail!("{what}: {wrong} of {n} outputs differ from the CPU reference (first: [{i}] = {}, want {})", got[i], want[i]);
        }
        // SAFETY: one stream; the next kernel rewrites every element.
        unsafe { pc_runtime::gpu::poison(&s, output)? };
        Ok(())
    };
    let mut out = Vec::new();
    let fir = plain.kernel::<FirKernel>()?;
    let mut fcfg = cfg;
    fcfg.grid_dim.0 = fcfg.grid_dim.0.min((n as u64).div_ceil(FIR_OUTPUTS_PER_THREAD as u64).div_ceil(256).max(1) as u32);
    // SAFETY: one stream.
    let plain_ms = time(&s, &mut || Ok(unsafe { FirKernel::launch(&fir, &s, fcfg, &history, &input, &mut output, &taps_d) }?))?;
    check("fir_kernel", &mut output)?;
    out.push((
        format!("plain fir_kernel, {} taps ({FIR_OUTPUTS_PER_THREAD} outputs per thread)", taps.len()),
        8 * n as u64,
        plain_ms,
        format!("grid {}", fcfg.grid_dim.0),
    ));
    let ring = hopper.kernel::<RingFirKernel>()?;
    let info = gpu.info();
    for (k, kib, warps) in [(3usize, 16u32, 4u32), (2, 16, 4), (4, 16, 4), (3, 16, 7), (3, 16, 14), (3, 32, 7), (2, 8, 4)] {
        let shape = RingShape { slot_bytes: kib << 10, consumer_warps: warps, ..RingShape::new(k) };
        ring.allow_dynamic_shared_bytes(shape.shared_bytes())?;
        let rcfg = shape.config(info, 4 * n as u64, 1.0);
        // SAFETY: one stream.
        let ms = time(&s, &mut || {
            Ok(unsafe { RingFirKernel::launch(&ring, &s, rcfg, &ring_history, &input, &mut output, &taps_d, shape.slots, shape.slot_bytes, 0, 0, 0) }?)
        })?;
        check("ring_fir_kernel", &mut output)?;
        out.push((
            format!("fir on the warp-specialized ring (K={k}, {kib} KiB slots, {warps} consumer warps, {FIR_RING_OUTPUTS} outputs per thread)"),
            8 * n as u64,
            ms,
            format!("grid {} x {} threads; {:.2}x the plain fir_kernel", rcfg.grid_dim.0, rcfg.block_dim.0, plain_ms / ms),
        ));
    }
    Ok(out)
}

/// `kernel_math::fir` over `x` from zero history, split over every core
/// (each part's history is the `T - 1` inputs before it).
fn cpu_fir(taps: &[f32], x: &[f32]) -> Vec<f32> {
    let h = taps.len() - 1;
    let mut y = vec![0.0f32; x.len()];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let part = x.len().div_ceil(threads).max(1);
    std::thread::scope(|sc| {
        for (p, out) in y.chunks_mut(part).enumerate() {
            sc.spawn(move || {
                let a = p * part;
                let mut hist = vec![0.0f32; h];
                let from = a.saturating_sub(h);
                hist[h - (a - from)..].copy_from_slice(&x[from..a]);
                kernel_math::fir(taps, &hist, &x[a..a + out.len()], out);
            });
        }
    });
    y
}
