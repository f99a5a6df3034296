//! `host bench --gpus 0,1`: what bounds a pipeline split over several GPUs,
//! measured in one run: every GPU copying both ways over its host link at
//! once, peer copies between each pair each way and both ways, and the
//! split pipelines (`--gpus`) beside one GPU, against those ceilings.
//!
//! Copies on several devices are timed by the host clock around a batch
//! that every stream finishes (events time one context's stream only).
use anyhow::{Result, bail};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload};
use pc_runtime::copy;
use pc_runtime::error::bytes;
use pc_runtime::gpu::Gpu;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Median wall time in ms of `reps` batches of `batch` calls of `f`, every
/// stream synchronized after each batch (after one warm-up batch).
fn wall_ms(streams: &[Arc<CudaStream>], reps: usize, batch: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut once = |n: usize| -> Result<f64> {
        let t = Instant::now();
        for _ in 0..n {
            f()?;
        }
        for s in streams {
            s.synchronize()?;
        }
        Ok(t.elapsed().as_secs_f64() * 1e3 / n as f64)
    };
    once(1)?;
    let mut t: Vec<f64> = (0..reps.max(1)).map(|_| once(batch)).collect::<Result<_>>()?;
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

fn gbps(bytes: u64, ms: f64) -> f64 {
    bytes as f64 / (ms * 1e-3) / 1e9
}

/// One GPU's buffers for the copies: device source and destination, pinned
/// input and output, and two streams (one per direction).
struct Side {
    src: CudaSlice<u8>,
    dst: CudaSlice<u8>,
    h_in: *const u8,
    h_out: *mut u8,
    s_in: Arc<CudaStream>,
    s_out: Arc<CudaStream>,
    _pinned: (cudarc::driver::PinnedHostSlice<u8>, cudarc::driver::PinnedHostSlice<u8>),
}

pub fn run(large: u64, reps: usize, list: &str, json_path: &std::path::Path) -> Result<bool> {
    let indices = crate::common::gpu_indices(list)?;
    if indices.len() < 2 {
        bail!("--gpus for the several-GPU bench needs at least two GPUs (got {list:?})");
    }
    let gpus: Vec<Gpu> = indices.iter().map(|&i| Gpu::open(i)).collect::<Result<_, _>>()?;
    let large = (large / 4 * 4) as usize;
    println!(
        "bench on {} GPUs: {}; {} per copy, median of {reps} batches, host clock",
        gpus.len(),
        gpus.iter().map(|g| format!("{} ({})", g.info().index, g.info().name)).collect::<Vec<_>>().join(", "),
        bytes(large as u128)
    );
    let mut rows: Vec<Value> = Vec::new();
    let mut add = |name: String, moved: u64, ms: f64| -> f64 {
        let g = gbps(moved, ms);
        println!("multi      {name:<52} {ms:>9.3} ms {g:>8.1} GB/s");
        rows.push(json!({"group": "multi", "name": name, "bytes_moved": moved, "ms": ms, "gbps": g}));
        g
    };
    let mut sides = Vec::new();
    for g in &gpus {
        // SAFETY: the bench's copies on these streams touch only these
        // buffers, and every batch ends with every stream synchronized.
        let (ctx, s_in, s_out) = unsafe { (g.context().clone(), g.stream()?, g.stream()?) };
        let src = s_in.alloc_zeros::<u8>(large)?;
        let dst = s_in.alloc_zeros::<u8>(large)?;
        // SAFETY: filled right away; freed after every stream synchronized (Side drops last).
        let (mut pin_in, mut pin_out) = unsafe { (ctx.alloc_pinned::<u8>(large)?, ctx.alloc_pinned::<u8>(large)?) };
        pin_in.as_mut_slice()?.fill(1);
        pin_out.as_mut_slice()?.fill(1);
        let (h_in, h_out) = (pin_in.as_ptr()?, pin_out.as_mut_ptr()?);
        s_in.synchronize()?;
        sides.push(Side { src, dst, h_in, h_out, s_in, s_out, _pinned: (pin_in, pin_out) });
    }
    let batch = ((1u64 << 30) / large as u64).clamp(2, 64) as usize;
    let both = |sides: &[&Side]| -> Result<()> {
        for sd in sides {
            // Raw driver calls act on the current context: this GPU's.
            sd.s_in.context().bind_to_thread()?;
            let (dp, _) = sd.dst.device_ptr(&sd.s_in);
            let (sp, _) = sd.src.device_ptr(&sd.s_out);
            // SAFETY: pinned and device buffers of `large` bytes each, alive until the batch is synchronized.
            unsafe {
                copy::htod_async(dp, sd.h_in, large, &sd.s_in)?;
                copy::dtoh_async(sd.h_out, sp, large, &sd.s_out)?;
            }
        }
        Ok(())
    };
    let mut per_gpu_both = Vec::new();
    for (i, sd) in sides.iter().enumerate() {
        let streams = [sd.s_in.clone(), sd.s_out.clone()];
        let ms = wall_ms(&streams, reps, batch, || both(&[sd]))?;
        per_gpu_both.push(add(format!("host link both ways, GPU {} alone", indices[i]), 2 * large as u64, ms));
    }
    let all: Vec<&Side> = sides.iter().collect();
    let streams: Vec<Arc<CudaStream>> = sides.iter().flat_map(|s| [s.s_in.clone(), s.s_out.clone()]).collect();
    let ms = wall_ms(&streams, reps, batch, || both(&all))?;
    let all_both = add(format!("host link both ways, all {} GPUs at once", sides.len()), 2 * large as u64 * sides.len() as u64, ms);

    // Peer copies: each ordered pair, then both ways at once.
    let mut peer = Vec::new();
    for a in 0..gpus.len() {
        for b in a + 1..gpus.len() {
            let (ga, gb) = (&gpus[a], &gpus[b]);
            let can = enable_peer(ga, gb)? && enable_peer(gb, ga)?;
            let note = if can { "" } else { " (no peer access: staged by the driver)" };
            let copy_n = |from: &Side, to: &Side, on: &Arc<CudaStream>, n: usize| -> Result<()> {
                on.context().bind_to_thread()?;
                let (sp, _) = from.src.device_ptr(on);
                let (dp, _) = to.dst.device_ptr(on);
                // SAFETY: device buffers of `large >= n` bytes, each in its
                // own GPU's context (its streams'), alive until synchronized.
                unsafe { copy::peer_async(dp, to.s_in.context(), sp, from.s_in.context(), n, on) }?;
                Ok(())
            };
            let copy = |from: &Side, to: &Side, on: &Arc<CudaStream>| copy_n(from, to, on, large);
            let (sa, sb) = (&sides[a], &sides[b]);
            let ms = wall_ms(std::slice::from_ref(&sa.s_out), reps, batch, || copy(sa, sb, &sa.s_out))?;
            let ab = add(format!("peer copy GPU {} -> GPU {}{note}", indices[a], indices[b]), large as u64, ms);
            let ms = wall_ms(std::slice::from_ref(&sb.s_out), reps, batch, || copy(sb, sa, &sb.s_out))?;
            let ba = add(format!("peer copy GPU {} -> GPU {}{note}", indices[b], indices[a]), large as u64, ms);
            let ss = [sa.s_out.clone(), sb.s_out.clone()];
            let ms = wall_ms(&ss, reps, batch, || {
                copy(sa, sb, &sa.s_out)?;
                copy(sb, sa, &sb.s_out)
            })?;
            let bb = add(format!("peer copy both ways, GPU {} <-> GPU {}{note}", indices[a], indices[b]), 2 * large as u64, ms);
            // At the placement figure's chunk size: 16 MiB copies back to back.
            let chunk = (16usize << 20).min(large);
            let ms = wall_ms(std::slice::from_ref(&sa.s_out), reps, 64, || copy_n(sa, sb, &sa.s_out, chunk))?;
            let ab16 = add(format!("peer copy GPU {} -> GPU {}, {} copies{note}", indices[a], indices[b], bytes(chunk as u128)), chunk as u64, ms);
            peer.push(json!({"a": indices[a], "b": indices[b], "peer_access": can, "a_to_b": ab, "b_to_a": ba, "both": bb, "a_to_b_16mib": ab16}));
        }
    }
    drop(sides);

    // The split pipelines against one GPU, 16 MiB chunks, K = 3.
    let mut splits = Vec::new();
    let refs: Vec<&Gpu> = gpus.iter().collect();
    let mut ok = true;
    for workload in [Workload::Generate, Workload::Stream] {
        let spec = PipelineSpec::new(workload).slots(3).chunk_elements(4 << 20).total_elements(1 << 28);
        let mut rate = |on: &[&Gpu]| -> Result<f64> {
            let mut p = Pipeline::new(on, spec.clone(), HostInput::Generated)?;
            p.run(Launch::Streams, 1, false)?;
            let r = p.run(Launch::Streams, 3, false)?;
            ok &= p.verify(&r).passed();
            Ok(r.input_gbps(p.spec()))
        };
        let one = rate(&refs[..1])?;
        let split = rate(&refs)?;
        let wl = format!("{workload:?}").to_lowercase();
        let bound = match workload {
            Workload::Generate => None,
            // Each input byte crosses the host link in and out: half the
            // all-GPUs both-ways rate.
            Workload::Stream => Some(all_both / 2.0),
        };
        println!(
            "split      {wl:<8} 1 GPU {one:>7.1} GB/s, {} GPUs {split:>7.1} GB/s ({:.2}x){}",
            gpus.len(),
            split / one,
            bound.map_or(String::new(), |b| format!(", {:.1}% of the all-GPUs host-link bound ({b:.1} GB/s of input)", 100.0 * split / b))
        );
        splits.push(json!({"workload": wl, "one_gpu_gbps": one, "split_gbps": split, "speedup": split / one, "bound_gbps": bound}));
    }
    // Placement: producer on the first GPU, consumer and reduce on the
    // second; every chunk crosses between them once (a peer copy), so the
    // bound is the peer copy at the chunk size.
    let mut placed = Vec::new();
    let ceiling16 = peer.first().and_then(|p| p["a_to_b_16mib"].as_f64());
    for chunk in [16u64 << 20, 64 << 20] {
        let spec = PipelineSpec::new(Workload::Generate).slots(3).chunk_elements(chunk / 4).total_elements(1 << 30).placement(vec![0, 1, 1]);
        let mut p = Pipeline::new(&refs[..2], spec, HostInput::Generated)?;
        p.run(Launch::Streams, 1, false)?;
        let r = p.run(Launch::Streams, 3, false)?;
        ok &= p.verify(&r).passed();
        let g = r.input_gbps(p.spec());
        let of = ceiling16.map_or(String::new(), |c| format!(", {:.1}% of the 16 MiB peer copy ({c:.1} GB/s)", 100.0 * g / c));
        println!(
            "placed     generate producer:{},consumer:{},reduce:{} chunk {} K=3: {g:.1} GB/s{of}",
            indices[0],
            indices[1],
            indices[1],
            bytes(chunk as u128)
        );
        placed.push(json!({"chunk_bytes": chunk, "gbps": g, "peer_copy_16mib_gbps": ceiling16}));
    }
    let out = json!({"gpus": indices, "copy_bytes": large, "rows": rows, "per_gpu_both": per_gpu_both, "all_both": all_both, "peer": peer, "splits": splits, "placed": placed, "verified": ok});
    std::fs::write(json_path, serde_json::to_string_pretty(&out)?)?;
    println!("wrote {}{}", json_path.display(), if ok { "" } else { " (VERIFICATION FAILED)" });
    Ok(ok)
}

fn enable_peer(from: &Gpu, to: &Gpu) -> Result<bool> {
    Ok(from.enable_peer_access(to)?)
}
