//! End-to-end on a GPU: the two-stream demo, every element checked against the
//! CPU reference, for awkward sizes and launch shapes. Fresh poisoned buffers
//! every run. Run with `cargo test -- --include-ignored` on a GPU machine.
mod common;

use pc_runtime::Error;
use pc_runtime::gpu::Gpu;
use ptx_kernels::demo::{DemoConfig, run_demo};

const ELEMENT_COUNTS: [u64; 6] = [1, 31, 256, 257, 1 << 20, 10_000_003];

/// `PC_TEST_MAX_ELEMENTS` caps the sizes (for runs under compute-sanitizer,
/// which makes kernels far slower); unset, every size runs.
fn within_cap(n: u64) -> bool {
    std::env::var("PC_TEST_MAX_ELEMENTS").ok().and_then(|v| v.parse().ok()).is_none_or(|cap: u64| n <= cap)
}

fn gpu() -> Gpu {
    Gpu::open(0).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "needs a CUDA device"]
fn every_element_matches_for_all_sizes_and_block_sizes() {
    let gpu = gpu();
    let seed = common::seed();
    let mut runs = 0;
    for elements in ELEMENT_COUNTS.into_iter().filter(|&n| within_cap(n)) {
        for block_size in [32, 96, 256, 1024] {
            let cfg = DemoConfig { elements, block_size, seed: seed.wrapping_add(runs), ..DemoConfig::default() };
            let r = run_demo(&gpu, &cfg).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
            assert_eq!(r.check.checked, elements, "{cfg:?}");
            assert!(r.check.passed(), "{cfg:?}: {:?} ({} wrong)", r.check.first, r.check.mismatches);
            runs += 1;
        }
    }
    eprintln!("{runs} runs, all elements matched");
}

#[test]
#[ignore = "needs a CUDA device"]
fn grid_stride_covers_everything_with_tiny_grids() {
    let gpu = gpu();
    let seed = common::seed();
    for (elements, block_size, grid) in [(10_000_003, 128, 1), (1 << 20, 1, 7), (257, 32, 3), (31, 1024, 1000)] {
        if !within_cap(elements) {
            continue;
        }
        let cfg = DemoConfig { elements, block_size, grid_size: Some(grid), seed, ..DemoConfig::default() };
        let r = run_demo(&gpu, &cfg).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        assert_eq!(r.grid_size, grid);
        assert!(r.check.passed(), "{cfg:?}: {:?}", r.check.first);
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn without_the_event_wait_elements_come_out_wrong() {
    let gpu = gpu();
    let seed = common::seed();
    let racy = DemoConfig { elements: 1 << 20, sync: false, producer_spin_us: 2000, seed, ..DemoConfig::default() };
    // The safe entry point refuses the race...
    let refused = run_demo(&gpu, &racy).expect_err("run_demo must refuse sync: false").to_string();
    assert!(refused.contains("run_demo_unsynchronized"), "{refused}");
    // ...which the unsafe one runs, to show it.
    let module = ptx_kernels::load(&gpu).unwrap();
    // SAFETY: the seed's race on purpose; the output is only checked.
    let r = unsafe { ptx_kernels::demo::run_demo_unsynchronized(&gpu, &module, &racy) }.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("no-sync: {} of {} wrong", r.check.mismatches, r.check.checked);
    assert!(r.check.mismatches > 0, "the race did not show: {r:?}");
    // The same slow producer with the wait: nothing wrong.
    let synced = DemoConfig { sync: true, ..racy };
    let r = run_demo(&gpu, &synced).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.check.passed(), "{:?}", r.check.first);
    // The consumer waited for the whole spin.
    assert!(r.producer_ms >= 2.0, "producer took {} ms", r.producer_ms);
}

#[test]
#[ignore = "needs a CUDA device"]
fn refused_inputs_are_errors_not_launches() {
    let gpu = gpu();
    let run = |cfg: DemoConfig| run_demo(&gpu, &cfg).unwrap_err();
    assert!(matches!(run(DemoConfig { elements: 0, ..Default::default() }), Error::EmptyInput));
    let e = run(DemoConfig { block_size: 2048, ..Default::default() });
    assert!(matches!(e, Error::BadBlockSize { block: 2048, max: 1024, .. }), "{e}");
    let e = run(DemoConfig { elements: u64::MAX / 16, ..Default::default() });
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    // One past what fits: free memory / 8 bytes per element, plus one.
    let (free, _) = gpu.memory().unwrap();
    let e = run(DemoConfig { elements: free as u64 / 8 + 1, ..Default::default() });
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    let count = pc_runtime::gpu::device_count().unwrap();
    assert!(matches!(Gpu::open(count), Err(Error::BadDevice { .. })));
    // The device still works after the refusals.
    let r = run_demo(&gpu, &DemoConfig { elements: 1000, ..Default::default() }).unwrap();
    assert!(r.check.passed());
}

/// The producer, consumer and fused kernels (plain and 16-byte stores)
/// launched alone, each output poisoned first, every element against the
/// independent oracle (`oracle::consume(oracle::produce(first + i))`,
/// plain f64 from the definitions, not kernel_math), at an offset past
/// 2^32 and lengths that are not whole quads.
#[test]
#[ignore = "needs a CUDA device"]
fn producer_consumer_and_fused_kernels_match_the_independent_oracle() {
    use common::oracle;
    use cudarc::driver::CudaSlice;
    use pc_runtime::launch::LaunchConfig;
    use ptx_kernels::{ConsumerKernel, ConsumerVecKernel, FusedKernel, FusedVecKernel, ProducerKernel, ProducerVecKernel};
    let gpu = gpu();
    let seed = common::seed();
    let module = ptx_kernels::load(&gpu).unwrap();
    // SAFETY: one stream; synchronized (by the copies back) before the buffers are dropped.
    let s = unsafe { gpu.stream() }.unwrap();
    for (n, first) in [(1usize, 0u64), (1003, 7), ((1 << 20) + 3, (1 << 32) - 5)] {
        let want: Vec<f64> = (0..n as u64).map(|i| oracle::consume(oracle::produce(first + i, seed))).collect();
        let cfg = LaunchConfig { grid_dim: (13, 1, 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
        let fresh = || {
            let mut b: CudaSlice<f32> = s.alloc_zeros(n).unwrap();
            // SAFETY: one stream: the poison lands before any kernel below.
            unsafe { pc_runtime::gpu::poison(&s, &mut b) }.unwrap();
            b
        };
        let check = |what: &str, b: &CudaSlice<f32>| {
            let got = s.clone_dtoh(b).unwrap();
            let wrong: Vec<usize> = (0..n).filter(|&i| got[i] as f64 != want[i]).collect();
            assert!(wrong.is_empty(), "{what} n={n} first={first}: {} wrong; first [{}] = {}, want {}", wrong.len(), wrong[0], got[wrong[0]], want[wrong[0]]);
        };
        let (mut mid, mut out) = (fresh(), fresh());
        // SAFETY: one stream orders the producer before the consumer; each writes only its output.
        unsafe {
            ProducerKernel::launch(&module.kernel::<ProducerKernel>().unwrap(), &s, cfg, &mut mid, first, seed, 0).unwrap();
            ConsumerKernel::launch(&module.kernel::<ConsumerKernel>().unwrap(), &s, cfg, &mid, &mut out, 0).unwrap();
        }
        check("producer_kernel + consumer_kernel", &out);
        let (mut mid, mut out) = (fresh(), fresh());
        // SAFETY: as above.
        unsafe {
            ProducerVecKernel::launch(&module.kernel::<ProducerVecKernel>().unwrap(), &s, cfg, &mut mid, first, seed, 0).unwrap();
            ConsumerVecKernel::launch(&module.kernel::<ConsumerVecKernel>().unwrap(), &s, cfg, &mid, &mut out, 0).unwrap();
        }
        check("producer_vec_kernel + consumer_vec_kernel", &out);
        let mut out = fresh();
        // SAFETY: one kernel writing its own output.
        unsafe { FusedKernel::launch(&module.kernel::<FusedKernel>().unwrap(), &s, cfg, &mut out, first, seed) }.unwrap();
        check("fused_kernel", &out);
        let mut out = fresh();
        // SAFETY: as above.
        unsafe { FusedVecKernel::launch(&module.kernel::<FusedVecKernel>().unwrap(), &s, cfg, &mut out, first, seed) }.unwrap();
        check("fused_vec_kernel", &out);
    }
}
