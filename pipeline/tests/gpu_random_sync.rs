//! The sync checker on random pipelines, on a GPU: `PC_RANDOM_CONFIGS`
//! (default 1000) configurations from a printed seed (`PC_TEST_SEED`
//! replays): random stage lists of every element type, K, chunk sizes and
//! counts. For each: the full graph with a random stage slowed must show no
//! corruption; then a random edge is removed, the stage the checker slows
//! for it is slowed, and the corruption the edge prevents must be detected.
//! A summary line is printed (kept in docs/).
mod common;
use common::Rng;
use pc_pipeline::sync_check::{run_slowed, run_without_edge};
use pc_pipeline::{HostInput, Pipeline, PipelineSpec, Stage, StageRegistry, Workload};
use pc_runtime::gpu::Gpu;

/// A random valid stage list: maps chosen so that element types meet.
fn random_stages(rng: &mut Rng, reg: &StageRegistry) -> Vec<Stage> {
    let get = |n: &str| reg.parse_one(n).expect("built-in stage");
    // (source, maps that keep the type, sink) per element type family.
    let family = rng.below(4);
    let (mut stages, maps, sink): (Vec<Stage>, Vec<&str>, Stage) = match family {
        0 => (
            vec![get(if rng.below(2) == 0 { "producer" } else { "h2d" })],
            vec!["consumer", "moving-average"],
            get(if rng.below(2) == 0 { "reduce" } else { "d2h" }),
        ),
        1 => (vec![get("h2d"), get("u8-to-f32")], vec!["consumer", "moving-average"], get("d2h")),
        2 => (vec![get("h2d")], vec!["mix-u32"], get("d2h")),
        _ => (vec![get("h2d")], vec!["double-f64"], get("d2h")),
    };
    for _ in 0..rng.below(3) {
        stages.push(get(maps[rng.below(maps.len() as u64) as usize]));
    }
    stages.push(sink);
    stages
}

#[test]
#[ignore = "needs a CUDA device"]
fn random_pipelines_random_delays_random_edges() {
    let count: usize = std::env::var("PC_RANDOM_CONFIGS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let seed = common::seed_from_env();
    eprintln!("random sync check: seed {seed} (replay with PC_TEST_SEED={seed}), {count} configurations");
    let gpu = Gpu::open(0).unwrap();
    let reg = StageRegistry::builtin();
    let mut rng = Rng(seed);
    let (mut clean, mut detected, mut problems) = (0, 0, Vec::new());
    let delay_ns = 300_000;
    for i in 0..count {
        let stages = random_stages(&mut rng, &reg);
        let chunks = 2 + rng.below(6);
        let chunk = 1024 + rng.below(1 << 16);
        let k = 1 + rng.below(3) as usize;
        let names = stages.iter().map(|s| s.name().to_string()).collect::<Vec<_>>().join(",");
        let spec = PipelineSpec::new(Workload::Stream)
            .stages(stages)
            .slots(k)
            .chunk_elements(chunk)
            .total_elements(chunk * chunks - rng.below(chunk))
            .seed(rng.next() as u32);
        let label = format!("#{i}: {names} K={k} chunk={chunk} total={}", spec.total_elements);
        let mut p = match Pipeline::new(&[&gpu], spec, HostInput::Generated) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{label}: {e}"));
                continue;
            }
        };
        let slowed = rng.below(p.spec().stages.len() as u64) as usize;
        match run_slowed(&mut p, Some(slowed), delay_ns) {
            Ok(v) if v.passed() => clean += 1,
            Ok(v) => problems.push(format!("{label}: full graph, stage {slowed} slowed: CORRUPTION: {}", v.summary())),
            Err(e) => problems.push(format!("{label}: {e}")),
        }
        let edges = p.event_graph(0).expect("one GPU").edges().to_vec();
        if edges.is_empty() {
            continue;
        }
        let edge = edges[rng.below(edges.len() as u64) as usize];
        // SAFETY: the race on purpose that this test shows is caught.
        match unsafe { run_without_edge(&mut p, &edge, delay_ns) } {
            Ok(r) if r.detected() => detected += 1,
            Ok(r) => problems.push(format!("{label}: edge {:?} removed, stage {} slowed: corruption NOT detected", r.edge, r.slowed_stage)),
            Err(e) => problems.push(format!("{label}: {e}")),
        }
    }
    eprintln!("random sync check: {count} configurations; full graph clean in {clean}; removed edge detected in {detected}; problems {}", problems.len());
    for p in problems.iter().take(10) {
        eprintln!("  {p}");
    }
    assert!(problems.is_empty(), "{} problem(s); first: {}", problems.len(), problems[0]);
}
