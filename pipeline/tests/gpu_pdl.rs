//! The PDL grains on a GPU (sm_90 or newer; an older GPU must be refused in
//! one line): the generate pipeline's chunks, every reduction compared
//! exactly with the CPU reference, K = 1..4, sizes that do not divide, plain
//! and graph-replayed; the sync checker's fault; a chain of dependent
//! kernels. Run with --include-ignored.
use cudarc::driver::CudaSlice;
use pc_pipeline::sync_check::check_pdl;
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload};
use pc_runtime::gpu::Gpu;
use pc_runtime::launch::LaunchConfig;
use ptx_kernels::hopper::PdlChainKernel;

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
    let e = p.run(Launch::Pdl { graph: false }, 1, false).unwrap_err().to_string();
    assert!(e.contains("needs a GPU of compute capability 9.0") && !e.contains('\n'), "{e}");
    skipped!(test, "{e}");
    None
}

const GRAINS: [Launch; 2] = [Launch::Pdl { graph: false }, Launch::Pdl { graph: true }];

#[test]
#[ignore = "needs a CUDA device"]
fn pdl_grains_verify_every_chunk_for_every_k_and_odd_sizes() {
    let Some(gpu) = hopper("pdl_grains_verify_every_chunk_for_every_k_and_odd_sizes") else { return };
    let seed = seed();
    // (chunk, total) in elements: dividing, not dividing, one chunk, chunks of odd lengths.
    let sizes: [(u64, u64); 5] = [(1024, 1024 * 37 + 3), (1 << 14, 1 << 20), (1001, 100_003), (5, 5), (1 << 22, (1 << 24) + 7)];
    for (chunk, total) in sizes {
        for k in 1..=4 {
            for launch in GRAINS {
                let label = format!("chunk {chunk} total {total} K={k} {launch:?}");
                let spec = PipelineSpec::new(Workload::Generate).slots(k).chunk_elements(chunk).total_elements(total).seed(seed);
                let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap_or_else(|e| panic!("{label}: {e}"));
                for runs in [1, 3] {
                    let r = p.run(launch, runs, false).unwrap_or_else(|e| panic!("{label}: {e}"));
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
fn pdl_gives_the_records_of_streams_and_graphs() {
    let Some(gpu) = hopper("pdl_gives_the_records_of_streams_and_graphs") else { return };
    let spec = PipelineSpec::new(Workload::Generate).slots(3).chunk_elements(1 << 14).total_elements((1 << 20) + 11).seed(seed());
    let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
    let want = p.run(Launch::Streams, 2, false).unwrap();
    assert!(p.verify(&want).passed());
    for launch in [Launch::Graph, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Streams, Launch::Pdl { graph: true }] {
        let r = p.run(launch, 4, false).unwrap();
        assert!(p.verify(&r).passed(), "{launch:?}");
        assert_eq!(r.reductions, want.reductions, "{launch:?}");
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn the_sync_checker_shows_the_pdl_wait_is_needed() {
    let Some(gpu) = hopper("the_sync_checker_shows_the_pdl_wait_is_needed") else { return };
    // 6 chunks of 1 MiB, K=2, the producer slowed by 1 ms per chunk.
    let spec = PipelineSpec::new(Workload::Generate).slots(2).chunk_elements(1 << 18).total_elements(6 << 18).seed(seed());
    // SAFETY: the faulted runs race on purpose; their results are only verified.
    let runs = unsafe { check_pdl(&gpu, &spec, HostInput::Generated, 1_000_000) }.unwrap();
    assert_eq!(runs.len(), 4);
    for r in &runs {
        eprintln!("{:?} faults={} passed={} chunks_wrong={}", r.launch, r.faults, r.check.passed(), r.check.chunks_wrong);
        assert!(r.as_expected(), "{:?} faults={}: {:?}", r.launch, r.faults, r.check);
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_chain_of_pdl_kernels_counts_every_link() {
    let Some(gpu) = hopper("a_chain_of_pdl_kernels_counts_every_link") else { return };
    let module = ptx_kernels::hopper::load(&gpu).unwrap();
    let k = module.kernel::<PdlChainKernel>().unwrap();
    // SAFETY: one stream; synchronized before the buffers are dropped.
    let s = unsafe { gpu.stream() }.unwrap();
    let n = 1000 + 3;
    let mut a: CudaSlice<u32> = s.alloc_zeros(n).unwrap();
    let mut b: CudaSlice<u32> = s.alloc_zeros(n).unwrap();
    // SAFETY: one stream: the poison is in place before the first link.
    unsafe { pc_runtime::gpu::poison(&s, &mut b) }.unwrap();
    let cfg = LaunchConfig { grid_dim: (3, 1, 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
    let links = 200;
    for i in 0..links {
        let (src, dst) = if i % 2 == 0 { (&a, &mut b) } else { (&b, &mut a) };
        // SAFETY: one stream; each link waits for the one before (PdlKernel).
        unsafe { if i == 0 { PdlChainKernel::launch(&k, &s, cfg, src, dst) } else { PdlChainKernel::launch_pdl(&k, &s, cfg, src, dst) } }.unwrap();
    }
    let got = s.clone_dtoh(&a).unwrap();
    s.synchronize().unwrap();
    let wrong = got.iter().filter(|&&v| v != links).count();
    assert_eq!(wrong, 0, "{wrong} of {n} elements are not {links}: first {:?}", got.iter().position(|&v| v != links));
}
