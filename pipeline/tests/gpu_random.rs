//! Randomized pipelines on a GPU: `PC_RANDOM_CONFIGS` (default 1000)
//! configurations drawn from a printed seed (`PC_TEST_SEED` replays it):
//! element counts, chunk sizes, K, stage lists, block sizes, workloads,
//! graph on/off. Every result verified; the count run and the count wrong
//! are reported, and the first wrong configurations printed in full.
mod common;
use common::Rng;
use pc_pipeline::builtin::{consumer, d2h, h2d, moving_average, producer, reduce};
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload};
use pc_runtime::gpu::Gpu;

fn random_spec(rng: &mut Rng) -> (PipelineSpec, Launch) {
    let stream = rng.below(2) == 0;
    let mut stages = vec![if stream { h2d() } else { producer() }];
    for _ in 0..rng.below(3) {
        stages.push(if rng.below(2) == 0 { consumer() } else { moving_average() });
    }
    stages.push(if rng.below(2) == 0 { d2h() } else { reduce() });
    let total = rng.size(4 << 20);
    let chunk = rng.size(total.min(1 << 20)).max(total / 512); // at most ~512 chunks
    let block = [32, 64, 96, 128, 256, 512, 1024, 1 + rng.below(1024) as u32][rng.below(8) as usize];
    let spec = PipelineSpec::new(if stream { Workload::Stream } else { Workload::Generate })
        .stages(stages)
        .slots(1 + rng.below(5) as usize)
        .total_elements(total)
        .chunk_elements(chunk)
        .block_size(block)
        .seed(rng.next() as u32);
    (spec, if rng.below(2) == 0 { Launch::Graph } else { Launch::Streams })
}

#[test]
#[ignore = "needs a CUDA device"]
fn random_configurations_all_verify() {
    let count: usize = std::env::var("PC_RANDOM_CONFIGS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let seed = common::seed_from_env();
    eprintln!("random pipelines: seed {seed} (replay with PC_TEST_SEED={seed}), {count} configurations");
    let gpu = Gpu::open(0).unwrap();
    let mut rng = Rng(seed);
    let mut wrong = Vec::new();
    for i in 0..count {
        let (spec, launch) = random_spec(&mut rng);
        let label = format!(
            "#{i}: stages={} K={} total={} chunk={} block={} seed={} {launch:?}",
            spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
            spec.slots,
            spec.total_elements,
            spec.chunk_elements,
            spec.block_size,
            spec.seed
        );
        let outcome = Pipeline::new(&[&gpu], spec, HostInput::Generated).and_then(|mut p| {
            let r = p.run(launch, 1 + (i % 2), false)?;
            Ok(p.verify(&r))
        });
        match outcome {
            Ok(v) if v.passed() => {}
            Ok(v) => wrong.push(format!("{label}: {:?}", v.first_wrong)),
            Err(e) => wrong.push(format!("{label}: error: {e}")),
        }
    }
    eprintln!("random pipelines: {count} run, {} wrong", wrong.len());
    for w in wrong.iter().take(10) {
        eprintln!("  {w}");
    }
    assert!(wrong.is_empty(), "{} of {count} configurations wrong", wrong.len());
}
