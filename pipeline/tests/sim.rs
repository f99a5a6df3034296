//! The executor on the simulated device, no GPU: every workload and stage
//! verifies at stream launches and graph replay, and random pipelines
//! (from a printed seed) verify, then lose each edge of their event graph
//! in turn, which the race detector must name every time.
//!
//! `PC_SIM_SEED=<u64>` replays a random run; `PC_SIM_CONFIGS=<n>` sets how
//! many random pipelines (default [`DEFAULT_CONFIGS`]).
mod splitmix;
use pc_pipeline::graph::{Edge, EdgeKind, EventGraph};
use pc_pipeline::sim::{self, Hazard, Race, SimError, SimPipeline};
use pc_pipeline::{HostInput, Launch, PipelineError, PipelineSpec, Stage, StageRegistry, Workload};
use splitmix::Rng;

/// Random pipelines by default: about 3 s in a debug build on a 2-core
/// machine (each is run, verified, then run once per edge removed; about
/// 12 edges each); 5000 take about 20 s.
const DEFAULT_CONFIGS: usize = 1000;

fn stages(list: &str) -> Vec<Stage> {
    StageRegistry::builtin().parse(list).unwrap()
}

fn spec(list: &str, k: usize, chunk: u64, total: u64) -> PipelineSpec {
    PipelineSpec::new(Workload::Generate).stages(stages(list)).slots(k).chunk_elements(chunk).total_elements(total)
}

/// The grains that run the executor's own action lists (the others are
/// models of their protocols: `tests/sim_grains.rs`).
const EVENT_LAUNCHES: [Launch; 2] = [Launch::Streams, Launch::Graph];

const PIPELINES: [&str; 12] = [
    "producer,consumer,reduce",
    "h2d,consumer,d2h",
    "h2d,moving-average,d2h",
    "h2d,fir,d2h",
    "producer,moving-average,fir,consumer,reduce",
    "h2d,u8-to-f32,consumer,d2h",
    "h2d,stereo-to-mono,d2h",
    "h2d,mix-u32,d2h",
    "h2d,abs-i32,d2h",
    "h2d,double-f64,d2h",
    "h2d,d2h",
    "producer,d2h",
];

/// Every workload, typed stage and halo stage verifies on the simulated
/// device, at stream launches and graph replay, several K, seeds, runs, and
/// on the serial baseline.
#[test]
fn every_workload_and_stage_verifies() {
    for list in PIPELINES {
        for k in [1, 2, 3, 5] {
            for seed in 0..3u64 {
                for launch in EVENT_LAUNCHES {
                    for serial in [false, true] {
                        let spec = spec(list, k, 37, 300).serial(serial);
                        let mut p = SimPipeline::new(spec, HostInput::Generated).unwrap().scheduler_seed(seed);
                        let what = format!("{list} K={k} seed={seed} {launch:?} serial={serial}");
                        let report = p.run(launch, 2).unwrap_or_else(|e| panic!("{what}: {e}"));
                        let v = p.verify(&report);
                        assert!(v.passed(), "{what}: {}", v.summary());
                    }
                }
            }
        }
    }
    // The workloads' own stage lists too.
    for w in [Workload::Generate, Workload::Stream] {
        let spec = PipelineSpec::new(w).chunk_elements(100).total_elements(1000).slots(3);
        let mut p = SimPipeline::new(spec, HostInput::Generated).unwrap();
        let r = p.run(Launch::Streams, 1).unwrap();
        assert!(p.verify(&r).passed(), "{w:?}");
    }
}

/// Verification of a simulated run is a real check: a wrong record fails it.
#[test]
fn a_corrupted_output_fails_verification() {
    let mut p = SimPipeline::new(spec("h2d,consumer,d2h", 2, 10, 95), HostInput::Generated).unwrap();
    let r = p.run(Launch::Streams, 1).unwrap();
    assert!(p.verify(&r).passed());
    // A reduce pipeline whose records are dropped fails.
    let mut q = SimPipeline::new(spec("producer,consumer,reduce", 2, 10, 95), HostInput::Generated).unwrap();
    let mut rr = q.run(Launch::Graph, 1).unwrap();
    assert!(q.verify(&rr).passed());
    rr.reductions[3] = kernel_math::Reduction::EMPTY;
    assert!(!q.verify(&rr).passed());
}

/// A grain is refused where its own check refuses the spec, with its line.
#[test]
fn grains_refuse_what_they_cannot_run() {
    let mut p = SimPipeline::new(spec("h2d,consumer,d2h", 2, 10, 95), HostInput::Generated).unwrap();
    for launch in [Launch::Flags, Launch::Pdl { graph: false }, Launch::Pdl { graph: true }] {
        let e = p.run(launch, 1).unwrap_err();
        let want = p.spec().check_launch(launch).unwrap_err().to_string();
        assert_eq!(e.to_string(), want);
    }
    let mut serial = SimPipeline::new(spec("producer,consumer,reduce", 2, 10, 95).serial(true), HostInput::Generated).unwrap();
    for launch in [Launch::Flags, Launch::Warps, Launch::Pdl { graph: false }] {
        assert!(matches!(serial.run(launch, 1), Err(SimError::Failed(_))), "{launch:?}");
    }
}

/// The scheduler's seed changes the order the device runs operations in
/// (several orders happen), the same seed gives the same order, and the
/// results are the same whatever the order.
#[test]
fn seeds_give_different_orders_and_the_same_results() {
    let run = |seed: u64| {
        let mut p = SimPipeline::new(spec("h2d,consumer,moving-average,d2h", 3, 8, 200), HostInput::Generated).unwrap().scheduler_seed(seed);
        let r = p.run(Launch::Streams, 1).unwrap();
        assert!(p.verify(&r).passed());
        (p.device().order().to_vec(), p.output_bytes().unwrap().to_vec())
    };
    let (o1, b1) = run(1);
    assert_eq!(run(1).0, o1, "a seed replays its order");
    let others: Vec<_> = (2..10).map(run).collect();
    assert!(others.iter().any(|(o, _)| *o != o1), "every seed ran the same order");
    assert!(others.iter().all(|(_, b)| *b == b1), "the output depends on the order");
}

/// Whether `races` names the missing edge `e`.
fn names_edge(races: &[Race], e: &Edge) -> bool {
    let hazard = match e.kind {
        EdgeKind::Filled => Hazard::Filled,
        EdgeKind::Freed => Hazard::Freed,
    };
    races.iter().any(|r| {
        r.hazard == hazard
            && r.ring == e.ring
            && r.slot == e.slot
            && r.from.as_ref().is_some_and(|(f, _)| (f.stage, f.chunk) == e.from)
            && (r.to.0.stage, r.to.0.chunk) == e.to
    })
}

/// Runs `p` with edge `e` removed: the race detector must report it,
/// naming the ring, slot, both operations and the edge.
fn assert_edge_caught(p: &mut SimPipeline, full: &EventGraph, e: &Edge, launch: Launch, runs: usize, what: &str) {
    p.set_event_graph(|_| full.without(e)).unwrap();
    match p.run(launch, runs) {
        Err(err @ SimError::Race { .. }) => {
            assert!(names_edge(err.races(), e), "{what}: without {e:?} the races reported were {:#?}", err.races());
            let kind = match e.kind {
                EdgeKind::Filled => "filled",
                EdgeKind::Freed => "freed",
            };
            let line = format!("missing {kind} edge from ({}, {}) to ({}, {})", e.from.0, e.from.1, e.to.0, e.to.1);
            assert!(err.races().iter().any(|r| r.to_string().contains(&line)), "{what}: no race says {line:?}: {err}");
        }
        Err(other) => panic!("{what}: without {e:?}: {other}"),
        Ok(_) => panic!("{what}: removing {e:?} went unreported"),
    }
    p.set_event_graph(|_| full.clone()).unwrap();
}

/// Every edge of a few fixed shapes is needed, and the report names it.
#[test]
fn every_edge_removed_is_reported() {
    for (list, k, chunks) in
        [("producer,consumer,reduce", 2, 7), ("h2d,consumer,fir,d2h", 3, 8), ("h2d,d2h", 1, 4), ("producer,consumer,consumer,reduce", 4, 9)]
    {
        for launch in EVENT_LAUNCHES {
            let mut p = SimPipeline::new(spec(list, k, 5, 5 * chunks), HostInput::Generated).unwrap();
            let full = p.event_graph().clone();
            assert!(!full.edges().is_empty());
            for e in full.edges() {
                assert_edge_caught(&mut p, &full, e, launch, 2, &format!("{list} K={k} {launch:?}"));
            }
            // And the full graph is clean again.
            let r = p.run(launch, 1).unwrap();
            assert!(p.verify(&r).passed());
        }
    }
    // No events at all, one stream per stage: unordered.
    let mut p = SimPipeline::new(spec("producer,consumer,reduce", 2, 5, 20), HostInput::Generated).unwrap();
    p.set_event_graph(|g| EventGraph::unordered(g.stages(), g.chunks(), g.slots())).unwrap();
    assert!(matches!(p.run(Launch::Streams, 1), Err(SimError::Race { .. })));
}

/// The stream mode: input bytes through `stream_chunk`'s actions to output
/// bytes, checked against the CPU reference.
#[test]
fn streams_verify() {
    for list in ["h2d,consumer,d2h", "h2d,fir,d2h", "h2d,moving-average,consumer,d2h", "h2d,u8-to-f32,d2h", "h2d,double-f64,d2h", "h2d,d2h"] {
        for k in [1, 2, 4] {
            for n in [0u64, 1, 37, 300] {
                let spec = spec(list, k, 16, 1);
                let size = spec.input_type().unwrap().size();
                let mut input = vec![0u8; n as usize * size];
                pc_pipeline::exec::generated_bytes(spec.input_type().unwrap(), 99, 0, &mut input);
                let out = sim::stream(&spec, &input, 5).unwrap_or_else(|e| panic!("{list} K={k} n={n}: {e}"));
                if n == 0 {
                    assert!(out.is_empty());
                    continue;
                }
                let whole = spec.clone().total_elements(n);
                let v = pc_pipeline::reference::verify(&whole, Some(&input), Some(&out), &[]);
                assert!(v.passed(), "{list} K={k} n={n}: {}", v.summary());
            }
        }
    }
    let spec = spec("h2d,consumer,d2h", 2, 16, 1);
    assert!(matches!(sim::stream(&spec, &[0u8; 7], 0), Err(SimError::Failed(PipelineError::StreamEndsMidElement { .. }))));
}

/// A random stage list from the registry whose types fit: a source, up to
/// three maps, a sink.
fn random_stages(rng: &mut Rng, reg: &StageRegistry) -> Vec<Stage> {
    let all = reg.stages();
    let sources: Vec<&Stage> = all.iter().filter(|s| s.is_source()).collect();
    // A user's stage too: a map of its own reference (the sim runs the
    // reference; the kernel named is one of the map shape, f32 -> f32).
    let user = Stage::map::<ptx_kernels::ConsumerKernel>("user-affine", ptx_kernels::PTX, |i: &[f32], o: &mut [f32]| {
        o.iter_mut().zip(i).for_each(|(o, x)| *o = 0.5 - 3.0 * x)
    });
    let maps: Vec<&Stage> = all.iter().filter(|s| !s.is_source() && !s.is_sink()).chain([&user]).collect();
    let sinks: Vec<&Stage> = all.iter().filter(|s| s.is_sink()).collect();
    loop {
        let mut list = vec![sources[rng.below(sources.len() as u64) as usize].clone()];
        for _ in 0..rng.below(4) {
            list.push(maps[rng.below(maps.len() as u64) as usize].clone());
        }
        list.push(sinks[rng.below(sinks.len() as u64) as usize].clone());
        let spec = PipelineSpec::new(Workload::Generate).stages(list.clone());
        if spec.ring_types().is_ok() {
            return list;
        }
    }
}

/// Random pipelines from a printed seed (built-in stages, typed ones among
/// them, and a user's stage): each verifies (streams or graph, 1-2 runs, a
/// random scheduler seed; split over 2-3 simulated GPUs where it splits;
/// the stream mode too where it runs from h2d to d2h), then loses each edge of its event graph in turn, and
/// the race detector names the missing edge every time.
#[test]
fn random_pipelines_verify_and_every_edge_is_needed() {
    let seed: u64 = std::env::var("PC_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x51_u64 << 32 | 2024);
    let configs: usize = std::env::var("PC_SIM_CONFIGS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_CONFIGS);
    println!("random pipelines: PC_SIM_SEED={seed} PC_SIM_CONFIGS={configs}");
    let reg = StageRegistry::builtin();
    let mut rng = Rng(seed);
    let start = std::time::Instant::now();
    let (mut edges_checked, mut split) = (0, 0);
    for i in 0..configs {
        let list = random_stages(&mut rng, &reg);
        let k = 1 + rng.below(5) as usize;
        let chunk = 1 + rng.below(16);
        let chunks = 1 + rng.below(10);
        let total = chunk * (chunks - 1) + 1 + rng.below(chunk);
        let serial = rng.below(8) == 0;
        let launch = EVENT_LAUNCHES[rng.below(2) as usize];
        let runs = 1 + rng.below(2) as usize;
        let sched = rng.next();
        let names: Vec<&str> = list.iter().map(|s| s.name()).collect();
        let what = format!(
            "config {i} (PC_SIM_SEED={seed}): {} K={k} chunk={chunk} total={total} serial={serial} {launch:?} runs={runs} scheduler seed {sched}",
            names.join(",")
        );
        let spec = PipelineSpec::new(Workload::Generate).stages(list).slots(k).chunk_elements(chunk).total_elements(total).serial(serial);
        let mut p = SimPipeline::new(spec.clone(), HostInput::Generated).unwrap_or_else(|e| panic!("{what}: {e}")).scheduler_seed(sched);
        let report = p.run(launch, runs).unwrap_or_else(|e| panic!("{what}: {e}"));
        let v = p.verify(&report);
        assert!(v.passed(), "{what}: {}", v.summary());
        // The same pipeline split over 2-3 simulated GPUs (a halo stage is
        // not split, as on a GPU).
        let gpus = 2 + rng.below(2) as usize;
        if !serial && spec.check_split(gpus.min(spec.chunks())).is_ok() {
            let mut q =
                SimPipeline::on_gpus(gpus, spec.clone(), HostInput::Generated).unwrap_or_else(|e| panic!("{what} on {gpus} GPUs: {e}")).scheduler_seed(sched);
            let r = q.run(launch, runs).unwrap_or_else(|e| panic!("{what} on {gpus} GPUs: {e}"));
            let v = q.verify(&r);
            assert!(v.passed(), "{what} on {gpus} GPUs: {}", v.summary());
            split += 1;
        }
        if spec.reads_host() && spec.writes_host() {
            let size = spec.input_type().unwrap().size();
            let mut input = vec![0u8; total as usize * size];
            pc_pipeline::exec::generated_bytes(spec.input_type().unwrap(), 3, 0, &mut input);
            let out = sim::stream(&spec, &input, sched).unwrap_or_else(|e| panic!("{what}: stream: {e}"));
            let v = pc_pipeline::reference::verify(&spec, Some(&input), Some(&out), &[]);
            assert!(v.passed(), "{what}: stream: {}", v.summary());
        }
        let full = p.event_graph().clone();
        for e in full.edges() {
            assert_edge_caught(&mut p, &full, e, launch, runs, &what);
            edges_checked += 1;
        }
    }
    println!(
        "{configs} random pipelines verified ({split} also split over 2-3 simulated GPUs), {edges_checked} edges removed and reported, in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(split > 0, "no random pipeline was split over several GPUs");
}

/// CUDA's event semantics on the simulated device, action by action: a
/// wait enqueued before any record is no wait; a wait takes the latest
/// record at enqueue time, and a re-record does not move it.
#[test]
fn events_capture_at_enqueue_time() {
    use pc_pipeline::exec::device::EnqueueTo;
    use pc_pipeline::exec::plan::EventId;
    let spec = spec("producer,reduce", 2, 4, 8);
    let e = EventId::Done { stage: 0, index: 0 };
    let device = || sim::SimDevice::new(&spec, 2, 2, None, 1).unwrap();
    let ready = |d: &mut sim::SimDevice| -> Vec<Race> {
        d.synchronize().unwrap();
        d.races().to_vec()
    };

    // Record, then wait, then read: ordered.
    let mut d = device();
    d.op(0, 0, 0, 0).unwrap();
    d.record(0, e).unwrap();
    d.wait(1, e).unwrap();
    d.op(1, 1, 0, 0).unwrap();
    assert_eq!(ready(&mut d), vec![]);

    // The wait before the record waits for nothing.
    let mut d = device();
    d.op(0, 0, 0, 0).unwrap();
    d.wait(1, e).unwrap();
    d.record(0, e).unwrap();
    d.op(1, 1, 0, 0).unwrap();
    let races = ready(&mut d);
    assert_eq!(races.len(), 1, "{races:?}");
    assert_eq!(races[0].hazard, Hazard::Filled);
    assert!(races[0].to_string().contains("missing filled edge from (0, 0) to (1, 0)"), "{}", races[0]);

    // A wait keeps the record it saw: chunk 1's record comes later.
    let mut d = device();
    d.op(0, 0, 0, 0).unwrap();
    d.record(0, e).unwrap();
    d.wait(1, e).unwrap();
    d.op(0, 0, 1, 1).unwrap();
    d.record(0, e).unwrap();
    d.op(1, 1, 0, 0).unwrap();
    d.op(1, 1, 1, 1).unwrap();
    let races = ready(&mut d);
    assert_eq!(races.iter().map(|r| (r.hazard, r.slot)).collect::<Vec<_>>(), vec![(Hazard::Filled, 1)], "{races:?}");

    // Reading a slot another chunk wrote (or none did) is a wrong slot.
    let mut d = device();
    d.op(0, 0, 0, 0).unwrap();
    d.record(0, e).unwrap();
    d.wait(1, e).unwrap();
    d.op(1, 1, 1, 0).unwrap();
    d.op(1, 1, 0, 1).unwrap();
    let races = ready(&mut d);
    assert_eq!(races.iter().map(|r| r.hazard).collect::<Vec<_>>(), vec![Hazard::WrongSlot, Hazard::WrongSlot], "{races:?}");
    assert!(races[0].to_string().contains("reads a slot last written by producer chunk 0"), "{}", races[0]);
    assert!(races[1].to_string().contains("never written"), "{}", races[1]);
}
