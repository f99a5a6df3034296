//! The warps grain on a GPU (sm_90 or newer; an older GPU must be refused in
//! one line): the consumer, reduce and fir stages on the warp-specialized
//! mbarrier ring, every chunk verified (every element for d2h sinks, the
//! reductions exactly, the fir against the whole stream's CPU filter, bit
//! for bit), K = 1..4, sizes that do not divide and tails that are not
//! whole 16-byte units; the sync checker's fault; the ring kernel alone on
//! a misaligned input. Run with --include-ignored.
use cudarc::driver::CudaSlice;
use pc_pipeline::exec::warps::RingShape;
use pc_pipeline::sync_check::check_warps;
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload, builtin, parse_stages};
use pc_runtime::gpu::Gpu;
use ptx_kernels::hopper::RingConsumerKernel;

mod common;
use common::{seed, skipped};

/// The GPU, or `None` (after checking the one-line refusal, and saying
/// SKIPPED for `test`) when it is older than sm_90.
fn hopper(test: &str) -> Option<Gpu> {
    let gpu = Gpu::open(0).unwrap();
    if gpu.info().compute_capability >= (9, 0) {
        return Some(gpu);
    }
    let spec = PipelineSpec::new(Workload::Generate).chunk_elements(1024).total_elements(4096);
    let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
    let e = p.run(Launch::Warps, 1, false).unwrap_err().to_string();
    assert!(e.contains("needs a GPU of compute capability 9.0") && !e.contains('\n'), "{e}");
    skipped!(test, "{e}");
    None
}

#[test]
#[ignore = "needs a CUDA device"]
fn warps_grain_verifies_every_chunk_for_every_k_and_odd_sizes() {
    let Some(gpu) = hopper("warps_grain_verifies_every_chunk_for_every_k_and_odd_sizes") else { return };
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
                let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap_or_else(|e| panic!("{label}: {e}"));
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

/// The fir stage on the ring (tile and halo in shared memory): every
/// output against the whole stream's CPU filter (the pipeline's verification
/// extends each chunk's reference over the halo before it), for taps of 1,
/// 5, 63 (the default) and 300, chunks shorter than the taps, equal to
/// them, around one tile (4032) and larger, totals that do not divide,
/// K = 1..4, one and two runs (the history restarts each run).
#[test]
#[ignore = "needs a CUDA device"]
fn fir_on_the_ring_matches_the_whole_stream_filter() {
    let Some(gpu) = hopper("fir_on_the_ring_matches_the_whole_stream_filter") else { return };
    let seed = seed();
    let taps_sets: [Vec<f32>; 4] =
        [vec![1.5], vec![0.25, -0.5, 1.0, 0.125, 2.0], pc_pipeline::fir::default_taps(), (0..300).map(|i| ((i as f32) * 0.37).sin() / 300.0).collect()];
    let sizes: [(u64, u64); 7] =
        [(1, 9), (50, 50 * 7 + 3), (63, 63 * 5), (4032, 4032 * 3 + 1), (4096 * 3 + 1, (4096 * 3 + 1) * 4 + 2), (1 << 18, (1 << 20) + 7), (300, 301 * 3)];
    for taps in &taps_sets {
        for workload in [Workload::Stream, Workload::Generate] {
            let fir = builtin::fir(taps.clone()).unwrap();
            let stages = match workload {
                Workload::Stream => vec![builtin::h2d(), fir, builtin::d2h()],
                _ => vec![builtin::producer(), fir, builtin::reduce()],
            };
            for (chunk, total) in sizes {
                for k in 1..=4 {
                    let label = format!("{} taps, {workload:?}, chunk {chunk} total {total} K={k}", taps.len());
                    let spec = PipelineSpec::new(workload).stages(stages.clone()).slots(k).chunk_elements(chunk).total_elements(total).seed(seed);
                    let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap_or_else(|e| panic!("{label}: {e}"));
                    for runs in [1, 2] {
                        p.poison_rings().unwrap();
                        let r = p.run(Launch::Warps, runs, false).unwrap_or_else(|e| panic!("{label}: {e}"));
                        let v = p.verify(&r);
                        assert!(v.passed(), "{label} runs={runs}: {v:?}");
                        assert_eq!(v.chunks_checked, p.spec().chunks(), "{label}");
                    }
                }
            }
        }
    }
    // Taps the ring's slots cannot hold: refused in one line.
    let spec = PipelineSpec::new(Workload::Stream)
        .stages(vec![builtin::h2d(), builtin::fir(vec![0.001; 3000]).unwrap(), builtin::d2h()])
        .chunk_elements(1 << 16)
        .total_elements(1 << 18);
    let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
    let e = p.run(Launch::Warps, 1, false).unwrap_err().to_string();
    assert!(e.contains("3000 taps") && !e.contains('\n'), "{e}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn warps_gives_the_results_of_streams_and_the_stages_swap_back() {
    let Some(gpu) = hopper("warps_gives_the_results_of_streams_and_the_stages_swap_back") else { return };
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h"] {
        let workload = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
        let spec = PipelineSpec::new(workload).slots(3).chunk_elements(1 << 16).total_elements((1 << 21) + 3).seed(seed());
        let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
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
    let Some(gpu) = hopper("the_sync_checker_shows_the_full_wait_is_needed") else { return };
    // The fir's tiles (4032 elements) leave two to some blocks: consumers
    // that skip the wait must still not lap the slowed producer.
    for list in ["producer,consumer,reduce", "h2d,consumer,d2h", "h2d,fir,d2h"] {
        let workload = if list.starts_with("h2d") { Workload::Stream } else { Workload::Generate };
        let spec = PipelineSpec::new(workload).slots(2).chunk_elements(1 << 18).total_elements(6 << 18).seed(seed());
        // SAFETY: the faulted run races on purpose; its results are only verified.
        let runs = unsafe { check_warps(&gpu, &spec, HostInput::Generated, 200_000) }.unwrap();
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
    let Some(gpu) = hopper("the_ring_kernel_alone_handles_misaligned_and_tiny_inputs") else { return };
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
            unsafe { RingConsumerKernel::launch(&k, &s, cfg, &view, &mut out, shape.slots, shape.slot_bytes, 0, 0, 0) }.unwrap();
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

/// A slow producer lane (a spin before each copy) with several tiles per
/// block and 1 to 4 slots: the ring kernels finish, with every element right.
#[test]
#[ignore = "needs a CUDA device"]
fn ring_kernels_survive_a_slow_producer_with_several_tiles_per_block() {
    use ptx_kernels::hopper::RingFirKernel;
    let Some(gpu) = hopper("ring_kernels_survive_a_slow_producer_with_several_tiles_per_block") else { return };
    let module = ptx_kernels::hopper::load(&gpu).unwrap();
    let (kc, kf) = (module.kernel::<RingConsumerKernel>().unwrap(), module.kernel::<RingFirKernel>().unwrap());
    // SAFETY: one stream, synchronized before the buffers are dropped.
    let s = unsafe { gpu.stream() }.unwrap();
    let seed = seed();
    let n = 100_003usize;
    let host: Vec<f32> = (0..n as u64).map(|i| kernel_math::produce(i, seed)).collect();
    let input: CudaSlice<f32> = s.clone_htod(&host).unwrap();
    let taps = pc_pipeline::fir::default_taps();
    let taps_d = s.clone_htod(&taps).unwrap();
    let history: CudaSlice<f32> = s.alloc_zeros(64).unwrap();
    let mut want = vec![0.0f32; n];
    kernel_math::fir(&taps, &[0.0; 62], &host, &mut want);
    for slots in 1..=4usize {
        for fir in [false, true] {
            let shape = RingShape { slots: slots as u32, slot_bytes: 16 << 10, consumer_warps: 4 };
            if fir {
                kf.allow_dynamic_shared_bytes(shape.shared_bytes()).unwrap()
            } else {
                kc.allow_dynamic_shared_bytes(shape.shared_bytes()).unwrap()
            };
            // 25 tiles over 3 blocks.
            let mut cfg = shape.config(gpu.info(), 4 * n as u64, 1.0);
            cfg.grid_dim.0 = 3;
            // SAFETY: filled with poison right below, on the same stream.
            let mut out: CudaSlice<f32> = unsafe { s.alloc(n) }.unwrap();
            unsafe { pc_runtime::gpu::poison(&s, &mut out) }.unwrap();
            let label = format!("slots {slots} fir {fir}");
            // SAFETY: one stream; the spin only slows the producer lane.
            let r = if fir {
                unsafe {
                    RingFirKernel::launch_with_faults(&kf, &s, cfg, false, &history, &input, &mut out, &taps_d, shape.slots, shape.slot_bytes, 0, 0, 100_000, 0)
                }
            } else {
                unsafe { RingConsumerKernel::launch_with_faults(&kc, &s, cfg, false, &input, &mut out, shape.slots, shape.slot_bytes, 0, 0, 100_000, 0) }
            };
            r.unwrap_or_else(|e| panic!("{label}: {e}"));
            let got = s.clone_dtoh(&out).unwrap_or_else(|e| panic!("{label}: {e}"));
            s.synchronize().unwrap_or_else(|e| panic!("{label}: {e}"));
            let wrong = (0..n).filter(|&i| got[i].to_bits() != if fir { want[i] } else { kernel_math::consume(host[i]) }.to_bits()).count();
            assert_eq!(wrong, 0, "{label}");
            eprintln!("{label}: ok");
        }
    }
}
