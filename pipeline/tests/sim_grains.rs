//! The flags, PDL and warps grains on the simulated device, at the level of
//! their protocols: the built-in pipelines each grain runs verify over many
//! scheduler seeds and geometries, and each weakened protocol
//! (`SimProtocol`) is found, by the race detector, the watchdog
//! (`SimError::Stuck`) or verification, for every seed tried.
mod splitmix;
use pc_pipeline::sim::{self, Hazard, Place, SimError, SimPipeline, SimProtocol};
use pc_pipeline::{HostInput, Launch, PipelineSpec, StageRegistry, Workload};
use splitmix::Rng;

/// Seeds every check runs with.
const SEEDS: std::ops::Range<u64> = 0..16;

fn spec(list: &str, k: usize, chunk: u64, total: u64) -> PipelineSpec {
    let stages = StageRegistry::builtin().parse(list).unwrap();
    PipelineSpec::new(Workload::Generate).stages(stages).slots(k).chunk_elements(chunk).total_elements(total)
}

/// Every built-in pipeline of `tests/sim.rs`'s list and a few more.
const PIPELINES: [&str; 14] = [
    "producer,consumer,reduce",
    "producer,consumer,consumer,reduce",
    "h2d,consumer,d2h",
    "h2d,moving-average,d2h",
    "h2d,fir,d2h",
    "producer,moving-average,fir,consumer,reduce",
    "producer,fir,reduce",
    "h2d,u8-to-f32,consumer,d2h",
    "h2d,stereo-to-mono,d2h",
    "h2d,mix-u32,d2h",
    "h2d,abs-i32,d2h",
    "h2d,double-f64,d2h",
    "h2d,d2h",
    "producer,d2h",
];

/// Runs `spec` with `launch` and `proto` at `seed` for `runs` runs, and verifies.
fn verifies(spec: PipelineSpec, launch: Launch, proto: SimProtocol, seed: u64, runs: usize) {
    let what = format!("{} K={} {launch:?} seed={seed} {proto:?}", spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(","), spec.slots);
    let mut p = SimPipeline::new(spec, HostInput::Generated).unwrap().scheduler_seed(seed).protocol(proto);
    let report = p.run(launch, runs).unwrap_or_else(|e| panic!("{what}: {e}"));
    let v = p.verify(&report);
    assert!(v.passed(), "{what}: {}", v.summary());
}

/// Each grain runs the pipelines its own check accepts, and those verify;
/// every grain runs at least one.
#[test]
fn every_grain_runs_what_it_supports_and_verifies() {
    for launch in [Launch::Flags, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps] {
        let mut ran = 0;
        for list in PIPELINES {
            for k in [1, 2, 3, 5] {
                let s = spec(list, k, 37, 300);
                if s.check_launch(launch).is_err() {
                    continue;
                }
                ran += 1;
                for seed in 0..4 {
                    verifies(s.clone(), launch, SimProtocol::default(), seed, 2);
                }
            }
        }
        assert!(ran > 0, "{launch:?} ran nothing");
    }
    // The grains the simulated device runs are all of them.
    assert_eq!(sim::SIM_LAUNCHES.len(), pc_pipeline::LAUNCHES.len());
    assert!(pc_pipeline::LAUNCHES.iter().all(|l| sim::SIM_LAUNCHES.contains(l)));
}

/// The flags grain over its geometries: K, pieces P, groups G (fewer
/// than K: a block's chunks cycle through the slots), chunk sizes that
/// leave empty pieces, and many seeds.
#[test]
fn flags_geometries_verify() {
    for list in ["producer,consumer,reduce", "producer,consumer,consumer,reduce"] {
        for k in [1, 2, 4] {
            for (chunk, total) in [(8, 100), (3, 40), (50, 60)] {
                for pieces in [1, 2, 3] {
                    for groups in [0, 1] {
                        for seed in 0..4 {
                            let proto = SimProtocol { flags_pieces: pieces, flags_groups: groups, ..SimProtocol::default() };
                            verifies(spec(list, k, chunk, total), Launch::Flags, proto, seed, 1);
                        }
                    }
                }
            }
        }
    }
}

/// The warps grain's block ring over tiles, blocks and consumer threads.
#[test]
fn warps_geometries_verify() {
    for list in ["producer,consumer,reduce", "h2d,fir,d2h", "producer,moving-average,fir,consumer,reduce"] {
        for k in [1, 2, 3, 9] {
            for (tile, blocks, consumers) in [(4, 2, 2), (1, 1, 1), (5, 3, 3), (64, 1, 2)] {
                for seed in 0..3 {
                    let proto = SimProtocol { warps_tile: tile, warps_blocks: blocks, warps_consumers: consumers, ..SimProtocol::default() };
                    verifies(spec(list, k, 37, 300), Launch::Warps, proto, seed, 2);
                }
            }
        }
    }
}

/// What a weakened run must end in.
#[derive(Debug, Clone, Copy)]
enum Found {
    /// A race (on a ring slot, or in a block's shared memory).
    Race,
    /// The watchdog: actors waiting for ever.
    Stuck,
}

/// Runs `spec` with `launch` and the weakened `proto` for every seed: each
/// must be found as `found`. Returns the races of the first seed.
fn weakened_is_found(spec: &PipelineSpec, launch: Launch, proto: SimProtocol, found: Found) -> Vec<pc_pipeline::sim::Race> {
    let mut first = None;
    for seed in SEEDS {
        let mut p = SimPipeline::new(spec.clone(), HostInput::Generated).unwrap().scheduler_seed(seed).protocol(proto.clone());
        let what = format!("{launch:?} seed={seed} {proto:?}");
        match (p.run(launch, 2), found) {
            (Err(e @ SimError::Race { .. }), Found::Race) => {
                first.get_or_insert_with(|| e.races().to_vec());
            }
            (Err(SimError::Stuck(why)), Found::Stuck) => assert!(why.contains("waits for"), "{what}: {why}"),
            (Err(e), _) => panic!("{what}: found, but as {e}"),
            (Ok(r), _) => panic!("{what}: not found (verification {})", if p.verify(&r).passed() { "passed" } else { "failed" }),
        }
    }
    first.unwrap_or_default()
}

#[test]
fn flags_weakened_protocols_are_found() {
    let s = spec("producer,consumer,reduce", 2, 8, 100);
    let p = SimProtocol::default;
    // The consumer (stage 1) and the sink (stage 2) without their filled wait.
    for stage in [1, 2] {
        let races = weakened_is_found(&s, Launch::Flags, SimProtocol { skip_filled_wait: Some(stage), ..p() }, Found::Race);
        assert!(races.iter().all(|r| r.place == Place::Ring) && races.iter().any(|r| r.ring == stage - 1), "{races:#?}");
    }
    // The producer and the consumer without their freed wait.
    for stage in [0, 1] {
        let races = weakened_is_found(&s, Launch::Flags, SimProtocol { skip_freed_wait: Some(stage), ..p() }, Found::Race);
        assert!(races.iter().any(|r| r.ring == stage && matches!(r.hazard, Hazard::Freed | Hazard::WrongSlot)), "{races:#?}");
    }
    // A reader on the wrong slot: always another chunk's data.
    for stage in [1, 2] {
        let races = weakened_is_found(&s, Launch::Flags, SimProtocol { wrong_slot: Some(stage), ..p() }, Found::Race);
        assert!(races.iter().any(|r| r.hazard == Hazard::WrongSlot), "{races:#?}");
        assert!(races[0].to_string().contains("wrong slot"), "{}", races[0]);
    }
    // Waiting for one piece of P = 2: many chunks, so that some reader
    // overtakes the second piece's writer in every schedule tried.
    let many = spec("producer,consumer,reduce", 2, 8, 400);
    weakened_is_found(&many, Launch::Flags, SimProtocol { filled_one_piece: true, flags_pieces: 2, ..p() }, Found::Race);
    // Waiting a use too late: the last use never comes.
    weakened_is_found(&s, Launch::Flags, SimProtocol { filled_one_use_late: true, ..p() }, Found::Stuck);
}

#[test]
fn pdl_weakened_protocols_are_found() {
    let s = spec("producer,consumer,reduce", 3, 8, 100);
    for graph in [false, true] {
        for stage in [1, 2] {
            let proto = SimProtocol { pdl_skip_wait: Some(stage), ..SimProtocol::default() };
            let races = weakened_is_found(&s, Launch::Pdl { graph }, proto, Found::Race);
            assert!(races.iter().any(|r| r.ring == stage - 1 && r.to.0.stage == stage), "{races:#?}");
        }
        // The producer's wait is what orders it after the reduce of the
        // chunk K before: without it, the refill races that read.
        let proto = SimProtocol { pdl_skip_wait: Some(0), ..SimProtocol::default() };
        weakened_is_found(&s, Launch::Pdl { graph }, proto, Found::Race);
    }
}

#[test]
fn warps_weakened_protocols_are_found() {
    let p = SimProtocol::default;
    for list in ["producer,consumer,reduce", "h2d,fir,d2h"] {
        // 37 elements a chunk, tiles of 4, 2 blocks: 5 tiles a block, more than K.
        let s = spec(list, 2, 37, 300);
        for proto in
            [SimProtocol { skip_full_wait: true, ..p() }, SimProtocol { skip_empty_wait: true, ..p() }, SimProtocol { consumer_parity_flipped: true, ..p() }]
        {
            let races = weakened_is_found(&s, Launch::Warps, proto, Found::Race);
            assert!(races.iter().all(|r| matches!(r.place, Place::Shared { .. })), "{races:#?}");
            assert!(races[0].to_string().contains("shared slot"), "{}", races[0]);
        }
        weakened_is_found(&s, Launch::Warps, SimProtocol { producer_parity_flipped: true, ..p() }, Found::Stuck);
    }
}

/// Random configurations of the protocol grains (pipeline, K, chunk and
/// total sizes, P, G, tiles, blocks, consumers, runs, scheduler seed)
/// verify, and a weakening that must always be found (a reader without
/// its wait, a wrong slot or parity) is, in each. `PC_SIM_SEED` picks
/// another set (the default is fixed); `PC_SIM_CONFIGS` sets how many
/// (default 300).
#[test]
fn random_protocol_configurations() {
    // A fixed default, as tests/sim.rs': CI runs the same configurations
    // every time (a failure there is replayed by the seed it prints).
    let seed: u64 = std::env::var("PC_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x9a_u64 << 32 | 2026);
    let configs = std::env::var("PC_SIM_CONFIGS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    println!("PC_SIM_SEED={seed}");
    let mut rng = Rng(seed);
    let lists =
        ["producer,consumer,reduce", "producer,consumer,consumer,reduce", "h2d,consumer,d2h", "h2d,fir,d2h", "producer,moving-average,fir,consumer,reduce"];
    for i in 0..configs {
        let launch = [Launch::Flags, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }, Launch::Warps][rng.below(4) as usize];
        let list = lists[rng.below(lists.len() as u64) as usize];
        let k = 1 + rng.below(5) as usize;
        let chunk = 1 + rng.below(40);
        let total = 1 + rng.below(300);
        let s = spec(list, k, chunk, total);
        if s.check_launch(launch).is_err() {
            continue;
        }
        let proto = SimProtocol {
            flags_pieces: 1 + rng.below(4),
            flags_groups: rng.below(k as u64 + 1),
            warps_tile: 1 + rng.below(16) as usize,
            warps_blocks: 1 + rng.below(3) as usize,
            warps_consumers: 1 + rng.below(3) as usize,
            ..SimProtocol::default()
        };
        let (sched, runs) = (rng.next(), 1 + rng.below(2) as usize);
        let what = format!("config {i} of PC_SIM_SEED={seed}: {list} K={k} chunk={chunk} total={total} {launch:?} sched={sched} runs={runs} {proto:?}");
        let mut p = SimPipeline::new(s.clone(), HostInput::Generated).unwrap().scheduler_seed(sched).protocol(proto.clone());
        let report = p.run(launch, runs).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(p.verify(&report).passed(), "{what}: {}", p.verify(&report).summary());
        // One weakening that every configuration must reveal.
        let n = s.stages.len();
        let weak = match launch {
            Launch::Flags => SimProtocol { skip_filled_wait: Some(1 + rng.below(n as u64 - 1) as usize), ..proto },
            Launch::Warps if rng.below(2) == 0 => SimProtocol { skip_full_wait: true, ..proto },
            Launch::Warps => SimProtocol { consumer_parity_flipped: true, ..proto },
            _ => SimProtocol { pdl_skip_wait: Some(1 + rng.below(n as u64 - 1) as usize), ..proto },
        };
        let mut p = SimPipeline::new(s, HostInput::Generated).unwrap().scheduler_seed(sched).protocol(weak.clone());
        match p.run(launch, runs) {
            Err(SimError::Race { .. }) => {}
            other => panic!("{what}: weakened to {weak:?}: {:?}", other.map(|_| "no race")),
        }
    }
}
