//! The warps grain on a GPU (sm_90 or newer; an older GPU must be refused in
//! one line): the consumer and reduce stages on the warp-specialized
//! mbarrier ring, every chunk verified (every element for d2h sinks, the
//! reductions exactly), K = 1..4, sizes that do not divide and tails that
//! are not whole 16-byte units; the sync checker's fault; the ring kernel
//! alone on a misaligned input. Run with --include-ignored.
use cudarc::driver::CudaSlice;
use pc_pipeline::exec::warps::RingShape;
use pc_pipeline::sync_check::check_warps;
use pc_pipeline::{Input, Launch, Pipeline, PipelineSpec, Workload, parse_stages};
use pc_runtime::gpu::Gpu;
use ptx_kernels::hopper::RingConsumerKernel;

mod common;
use common::seed;

/// The GPU, or `None` (after checking the one-line refusal) when it is older than sm_90.
fn hopper() -> Option<Gpu> {
    let gpu = Gpu::open(0).unwrap();
    if gpu.info().compute_capability >= (9, 0) {
        return Some(gpu);
    }
    let spec = PipelineSpec::new(Workload::Generate).chunk_elements(1024).total_elements(4096);
    let mut p = Pipeline::new(&[&gpu], spec, Input::Generated).unwrap();
    let e = p.run(Launch::Warps, 1, false).unwrap_err().to_string();
    assert!(e.contains("needs a GPU of compute capability 9.0") && !e.contains('\n'), "{e}");
    eprintln!("skipped: {e}");
    None
}

#[test]
#[ignore = "needs a CUDA device"]
fn warps_grain_verifies_every_chunk_for_every_k_and_odd_sizes() {
    let Some(gpu) = hopper() else { return };
    let seed = seed();
    // (chunk, total) in elements: tiles of 4096 f32 whole and not, tails of
    // 1 to 3 elements past a 16-byte unit, one-element chunks.
    let sizes: [(u64, u64); 6] =
        [(1024, 1024 * 37 + 3), (4096 * 3 + 1, (4096 * 3 + 1) * 5 + 2), (1 << 18, (1 << 20) + 7), (1, 5), (4099, 4099 * 3), (1 << 22, 1 << 24)];
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h", "producer,consumer,consumer,reduce", "h2d,consumer,moving-average,consumer,d2h"] {
        let workload = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
        for (chunk, total) in sizes {
            for k in 1..=4 {
                let label = format!("{list} chunk {chunk} total {total} K={k}");
                let spec = PipelineSpec::new(workload).stages(parse_stages(list).unwrap()).slots(k).chunk_elements(chunk).total_elements(total).seed(seed);
                let mut p = Pipeline::new(&[&gpu], spec, Input::Generated).unwrap_or_else(|e| panic!("{label}: {e}"));
                for runs in [1, 2] {
                    let r = p.run(Launch::Warps, runs, false).unwrap_or_else(|e| panic!("{label}: {e}"));
                    let v = p.verify(&r);
                    assert!(v.passed(), "{label} runs={runs}: {v:?}");
                    assert_eq!(v.chunks_checked, p.spec().chunks(), "{label}");
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn warps_gives_the_results_of_streams_and_the_stages_swap_back() {
    let Some(gpu) = hopper() else { return };
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h"] {
        let workload = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
        let spec = PipelineSpec::new(workload).slots(3).chunk_elements(1 << 16).total_elements((1 << 21) + 3).seed(seed());
        let mut p = Pipeline::new(&[&gpu], spec, Input::Generated).unwrap();
        let want = p.run(Launch::Streams, 1, false).unwrap();
        assert!(p.verify(&want).passed());
        for launch in [Launch::Warps, Launch::Streams, Launch::Graph, Launch::Warps, Launch::Graph] {
            p.poison_rings().unwrap();
            let r = p.run(launch, 3, launch == Launch::Warps).unwrap();
            assert!(p.verify(&r).passed(), "{list} {launch:?}");
            assert_eq!(r.reductions, want.reductions, "{list} {launch:?}");
            if launch == Launch::Warps {
                assert!(r.timeline.is_some(), "a warps run records its timeline like stream launches");
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn the_sync_checker_shows_the_full_wait_is_needed() {
    let Some(gpu) = hopper() else { return };
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h"] {
        let workload = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
        let spec = PipelineSpec::new(workload).slots(2).chunk_elements(1 << 18).total_elements(6 << 18).seed(seed());
        // SAFETY: the faulted run races on purpose; its results are only verified.
        let runs = unsafe { check_warps(&gpu, &spec, Input::Generated, 200_000) }.unwrap();
        assert_eq!(runs.len(), 2);
        for r in &runs {
            eprintln!("{list} faults={} passed={} chunks_wrong={}", r.faults, r.check.passed(), r.check.chunks_wrong);
            assert!(r.as_expected(), "{list} faults={}: {:?}", r.faults, r.check);
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn the_ring_kernel_alone_handles_misaligned_and_tiny_inputs() {
    let Some(gpu) = hopper() else { return };
    let module = ptx_kernels::hopper::load(&gpu).unwrap();
    let k = module.kernel::<RingConsumerKernel>().unwrap();
    // SAFETY: one stream, synchronized before the buffers are dropped.
    let s = unsafe { gpu.stream() }.unwrap();
    let seed = seed();
    for n in [1usize, 3, 4, 5, 4095, 4096, 4097, 100_003] {
        let host: Vec<f32> = (0..n as u64 + 1).map(|i| kernel_math::produce(i, seed)).collect();
        let input: CudaSlice<f32> = s.clone_htod(&host).unwrap();
        // (input offset, output offset, K, consumer warps): aligned or not,
        // each way (a misaligned output takes the one-by-one path).
        for (offset, out_offset, k_slots, warps) in [(0usize, 0usize, 1usize, 1u32), (1, 0, 2, 3), (0, 0, 4, 8), (1, 1, 8, 2), (0, 1, 3, 4)] {
            let mut shape = RingShape::new(k_slots);
            shape.consumer_warps = warps;
            k.allow_dynamic_shared_bytes(shape.shared_bytes()).unwrap();
            // SAFETY: filled with poison right below, on the same stream.
            let mut whole: CudaSlice<f32> = unsafe { s.alloc(n + 1) }.unwrap();
            unsafe { pc_runtime::gpu::poison(&s, &mut whole) }.unwrap();
            let mut out = whole.slice_mut(out_offset..out_offset + n);
            let cfg = shape.config(gpu.info(), 4 * n as u64, 1.0);
            let view = input.slice(offset..offset + n);
            // SAFETY: one stream.
            unsafe { RingConsumerKernel::launch(&k, &s, cfg, &view, &mut out, shape.slots, shape.slot_bytes, 0) }.unwrap();
            let got = s.clone_dtoh(&out).unwrap();
            s.synchronize().unwrap();
            let wrong: Vec<usize> = (0..n).filter(|&i| got[i].to_bits() != kernel_math::consume(host[offset + i]).to_bits()).collect();
            assert!(
                wrong.is_empty(),
                "n={n} offset={offset} out_offset={out_offset} K={k_slots} warps={warps}: {} wrong, first at {:?}",
                wrong.len(),
                wrong.first()
            );
        }
    }
}
