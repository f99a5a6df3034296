//! The flags, PDL and warps grains on the simulated device, at the level
//! of their protocols: each as actors of a [`Machine`] whose waits and
//! hand-offs are the device code's, decided by the same functions of
//! `kernel_math::ring` (`slot_use`, `filled_target`, `freed_target`,
//! `piece`, `group_chunks`; `RingState` and its parities).
use super::device::{OpModel, OpRef, Rng, SimDevice};
use super::machine::{Actor, Cond, Machine, Mem, Step, Stuck, Touch};
use crate::elem::HostChunk;
use crate::exec::warps::RingShape;
use crate::spec::PipelineSpec;
use kernel_math::POISON_BITS;
use kernel_math::ring::{RingState, filled_target, freed_target, group_chunks, piece, slot_use};
use nvptx_std::hopper::ring::Tiles;

/// The protocol grains' geometry and weakenings, for tests: each `skip_*`,
/// `wrong_*` or `*_flipped` removes or breaks one part of a protocol, to
/// show that the simulator finds it. [`SimProtocol::default`] is the
/// device's protocol. Never reaches the device code.
#[doc(hidden)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimProtocol {
    /// Flags: blocks per chunk (P; 0: 2) and groups (G; 0: min(K, chunks)).
    pub flags_pieces: u64,
    pub flags_groups: u64,
    /// Flags: stage `s`'s reader does not wait for *filled*.
    pub skip_filled_wait: Option<usize>,
    /// Flags: stage `s`'s writer does not wait for *freed*.
    pub skip_freed_wait: Option<usize>,
    /// Flags: stage `s`'s reader reads slot `(c + 1) % K`, not `c % K`.
    pub wrong_slot: Option<usize>,
    /// Flags: readers wait for `P u + 1` (one piece), not `P (u + 1)`.
    pub filled_one_piece: bool,
    /// Flags: readers wait for use `u + 1`'s target, not use `u`'s: the
    /// last use never comes (a deadlock, for the watchdog).
    pub filled_one_use_late: bool,
    /// PDL: stage `s`'s kernel skips its `griddepcontrol.wait`.
    pub pdl_skip_wait: Option<usize>,
    /// Warps: tile elements (0: 4), blocks per operation (0: 2) and
    /// consumer threads per block (0: 2).
    pub warps_tile: usize,
    pub warps_blocks: usize,
    pub warps_consumers: usize,
    /// Warps: the consumers skip the *full* wait.
    pub skip_full_wait: bool,
    /// Warps: the producer skips the *empty* wait.
    pub skip_empty_wait: bool,
    /// Warps: the consumers wait for `phase ^ 1`; the producer for `phase`.
    pub consumer_parity_flipped: bool,
    pub producer_parity_flipped: bool,
}

impl SimProtocol {
    fn pieces(&self) -> u64 {
        if self.flags_pieces == 0 { 2 } else { self.flags_pieces }
    }
}

/// What an access step does to the data.
#[derive(Debug, Clone, Copy)]
enum Effect {
    /// `run_piece` of a flags block or a PDL kernel.
    Piece { stage: usize, chunk: usize, slots: (usize, usize), piece: (usize, usize) },
}

fn counter_names(names: &[String], k: usize) -> Vec<String> {
    let mut v = Vec::new();
    for r in 0..names.len().saturating_sub(1) {
        for s in 0..k {
            for what in ["filled", "freed"] {
                v.push(format!("{what}[{s}] of ring {r} ({} -> {})", names[r], names[r + 1]));
            }
        }
    }
    v
}

/// One flags run (run `run`): every stage a kernel of G groups of P
/// blocks, each block an actor walking its chunks in order, as
/// `nvptx_std::ring`'s `source`, `map` and `sink` do. Races go to the
/// device; a ring that cannot move is [`Stuck`].
pub(crate) fn flags_run(device: &mut SimDevice, spec: &PipelineSpec, slots: usize, p: &SimProtocol, rng: &mut Rng) -> Result<(), Stuck> {
    let names = device.names().to_vec();
    let n = names.len();
    let chunks = spec.chunks();
    let run = device.run_number();
    let (k, pieces) = (slots as u64, p.pieces());
    let groups = if p.flags_groups == 0 { k.min(chunks as u64).max(1) } else { p.flags_groups };
    let filled = |ring: usize, s: usize| 2 * (ring * slots + s);
    let freed = |ring: usize, s: usize| 2 * (ring * slots + s) + 1;
    let mut actors = Vec::new();
    let mut effects = Vec::new();
    for (stage, name) in names.iter().enumerate() {
        for g in 0..groups {
            for j in 0..pieces {
                let mut steps = Vec::new();
                for c in group_chunks(g, groups, chunks as u64) {
                    let (s, u) = slot_use(c, k);
                    let c = c as usize;
                    let range = spec.chunk_range(c);
                    let (lo, hi) = piece(range.end - range.start, pieces, j);
                    let op = OpRef { run, stage, chunk: c };
                    let mut touches = Vec::new();
                    let mut read_slot = s;
                    if stage > 0 {
                        if p.wrong_slot == Some(stage) {
                            read_slot = (s + 1) % slots;
                        }
                        if p.skip_filled_wait != Some(stage) {
                            let want = match (p.filled_one_piece, p.filled_one_use_late) {
                                (true, _) => pieces * u as u64 + 1,
                                (_, true) => filled_target(u + 1, pieces) as u64,
                                _ => filled_target(u, pieces) as u64,
                            };
                            steps.push(Step::Wait { cond: Cond::AtLeast { counter: filled(stage - 1, s), want }, acquire: true });
                        }
                        touches.push(Touch { mem: Mem::Ring(stage - 1), slot: read_slot, part: j as usize, write: false, op, tag: (run, c, 0) });
                    }
                    if stage + 1 < n {
                        if p.skip_freed_wait != Some(stage) {
                            let want = freed_target(u, pieces) as u64;
                            steps.push(Step::Wait { cond: Cond::AtLeast { counter: freed(stage, s), want }, acquire: true });
                        }
                        touches.push(Touch { mem: Mem::Ring(stage), slot: s, part: j as usize, write: true, op, tag: (run, c, 0) });
                    }
                    steps.push(Step::Access { touches, effect: effects.len() });
                    effects.push(Effect::Piece { stage, chunk: c, slots: (read_slot, s), piece: (lo as usize, hi as usize) });
                    // Both hand-offs after the block's work (map: filled, then freed).
                    if stage + 1 < n {
                        steps.push(Step::Add { counter: filled(stage, s), n: 1 });
                    }
                    if stage > 0 {
                        steps.push(Step::Add { counter: freed(stage - 1, s), n: 1 });
                    }
                }
                actors.push(Actor { name: format!("stage {name}'s block {} (group {g}, piece {j})", g * pieces + j), steps });
            }
        }
    }
    run_machine(device, actors, counter_names(&names, slots), &effects, rng)
}

/// One PDL run: per chunk, each stage's kernel on the one stream, in
/// order. Kernel `i + 1` launches once kernel `i` has triggered its
/// dependents (every PDL kernel does so first; the run's first kernel is a
/// plain launch, after the records' reset), and is ordered after kernel
/// `i`'s completion only from its `griddepcontrol.wait` on: what comes
/// before the wait is concurrent with kernel `i`.
pub(crate) fn pdl_run(device: &mut SimDevice, spec: &PipelineSpec, slots: usize, p: &SimProtocol, rng: &mut Rng) -> Result<(), Stuck> {
    let names = device.names().to_vec();
    let n = names.len();
    let run = device.run_number();
    let mut actors: Vec<Actor> = Vec::new();
    let mut effects = Vec::new();
    for c in 0..spec.chunks() {
        for (stage, name) in names.iter().enumerate() {
            let i = actors.len();
            let s = c % slots;
            let op = OpRef { run, stage, chunk: c };
            let mut steps = Vec::new();
            if i > 0 {
                // The launch: once the kernel ahead triggered (its step 1 or 2).
                let trigger = if i == 1 { 1 } else { 2 };
                steps.push(Step::Wait { cond: Cond::Reached { actor: i - 1, steps: trigger }, acquire: false });
            }
            // `griddepcontrol.launch_dependents`, first thing.
            steps.push(Step::Add { counter: i, n: 1 });
            if i > 0 && p.pdl_skip_wait != Some(stage) {
                steps.push(Step::Wait { cond: Cond::Done { actor: i - 1 }, acquire: true });
            }
            let mut touches = Vec::new();
            if stage > 0 {
                touches.push(Touch { mem: Mem::Ring(stage - 1), slot: s, part: 0, write: false, op, tag: (run, c, 0) });
            }
            if stage + 1 < n {
                touches.push(Touch { mem: Mem::Ring(stage), slot: s, part: 0, write: true, op, tag: (run, c, 0) });
            }
            let range = spec.chunk_range(c);
            steps.push(Step::Access { touches, effect: effects.len() });
            effects.push(Effect::Piece { stage, chunk: c, slots: (s, s), piece: (0, (range.end - range.start) as usize) });
            actors.push(Actor { name: format!("kernel {i} ({name}, chunk {c})"), steps });
        }
    }
    let counters = (0..actors.len()).map(|i| format!("kernel {i}'s trigger")).collect();
    run_machine(device, actors, counters, &effects, rng)
}

fn run_machine(device: &mut SimDevice, actors: Vec<Actor>, counters: Vec<String>, effects: &[Effect], rng: &mut Rng) -> Result<(), Stuck> {
    let mut m = Machine::new(actors, counters, device.names().to_vec());
    let result = m.run(rng, |id| match effects[id] {
        Effect::Piece { stage, chunk, slots, piece } => {
            // The one piece that starts the chunk (pieces before it are empty).
            if piece.0 == 0 && piece.1 > 0 {
                device.ran(stage, chunk);
            }
            if let Err(why) = device.run_piece(stage, chunk, slots, piece.0..piece.1, None) {
                let name = device.names()[stage].clone();
                device.fail(format!("stage {name} on chunk {chunk}: {why}"));
            }
        }
    });
    device.add_races(&m.races, m.race_count);
    result
}

/// The warps grain's model: which stages run on the block ring, and how.
#[derive(Debug, Clone)]
pub(crate) struct WarpsSim {
    /// Per stage: its ring's shared-memory slots, if it is a ring stage.
    ring: Vec<Option<u32>>,
    proto: SimProtocol,
}

impl WarpsSim {
    /// The ring stages of `spec` as `exec::warps` picks them: the stages
    /// with a warps form, the halo one (the `fir`) on `RingShape::FIR`,
    /// the others (`consumer`, `reduce`) as `RingShape::new`.
    pub(crate) fn new(spec: &PipelineSpec, proto: SimProtocol) -> WarpsSim {
        let ring = spec
            .stages
            .iter()
            .map(|s| {
                // A warps form's ring: the fir's (the one halo stage with
                // one) or the shape of the consumer's and reduce's.
                s.warp_form().map(|_| if s.halo() > 0 { RingShape::FIR.slots } else { RingShape::new(spec.slots).slots })
            })
            .collect();
        WarpsSim { ring, proto }
    }
}

impl OpModel for WarpsSim {
    fn takes(&self, stage: usize) -> bool {
        self.ring.get(stage).is_some_and(Option::is_some)
    }

    /// Operation `(stage, chunk)` of a ring stage: its `len` input elements
    /// pass from slot `slot` of ring `stage - 1` through each block's ring
    /// (a producer lane copying tiles into shared slots, consumer threads
    /// reading them), and the stage's reference runs on the chunk as the
    /// consumers read it.
    fn run_op(&self, device: &mut SimDevice, stage: usize, chunk: usize, slot: usize, len: usize) -> Result<(), String> {
        let input = device.slot_chunk(stage - 1, slot, len)?;
        let size = input.elem().size();
        let p = &self.proto;
        let k = self.ring[stage].unwrap_or(1).max(1);
        let tile = if p.warps_tile == 0 { 4 } else { p.warps_tile };
        let blocks = if p.warps_blocks == 0 { 2 } else { p.warps_blocks };
        let consumers = if p.warps_consumers == 0 { 2 } else { p.warps_consumers };
        let run = device.run_number();
        let op = OpRef { run, stage, chunk };
        let full = |b: usize, s: u32| 2 * (b * k as usize + s as usize);
        let empty = |b: usize, s: u32| 2 * (b * k as usize + s as usize) + 1;
        let mut actors = Vec::new();
        // (block, slot, tile start, tile len, consumer rank or None for the copy)
        let mut effects: Vec<(usize, u32, usize, usize, Option<usize>)> = Vec::new();
        let mut counters = Vec::new();
        for b in 0..blocks {
            for s in 0..k {
                counters.push(format!("block {b}'s full[{s}]"));
                counters.push(format!("block {b}'s empty[{s}]"));
            }
            let touch =
                |s: u32, t: usize, write: bool| Touch { mem: Mem::Shared { block: b }, slot: s as usize, part: 0, write, op, tag: (run, chunk, t / tile) };
            // The producer lane: `Producer::acquire`, `commit_copy`, `tail`.
            let mut state = RingState::new(k);
            let mut steps = Vec::new();
            for t in Tiles::new(len, tile, b, blocks) {
                let i = state.index();
                let parity = if p.producer_parity_flipped { state.phase() } else { state.producer_parity() };
                if !p.skip_empty_wait {
                    steps.push(Step::Wait { cond: Cond::Parity { counter: empty(b, i), count: consumers as u64, parity }, acquire: true });
                }
                steps.push(Step::Wait { cond: Cond::Parity { counter: full(b, i), count: 1, parity }, acquire: true });
                steps.push(Step::Access { touches: vec![touch(i, t.start, true)], effect: effects.len() });
                effects.push((b, i, t.start, t.len, None));
                // The copy's bytes landing complete the full phase (the
                // copy is modelled as the lane's write and its arrival).
                steps.push(Step::Add { counter: full(b, i), n: 1 });
                state.advance();
            }
            let mut s = state;
            let outstanding = s.count().min(s.slots());
            for _ in 0..(s.slots() - outstanding) {
                s.advance();
            }
            for _ in 0..outstanding {
                steps.push(Step::Wait { cond: Cond::Parity { counter: full(b, s.index()), count: 1, parity: s.producer_parity() }, acquire: true });
                s.advance();
            }
            actors.push(Actor { name: format!("block {b}'s producer lane"), steps });
            // Each consumer thread: `Consumer::wait`, its reads, `release`.
            for r in 0..consumers {
                let mut state = RingState::new(k);
                let mut steps = Vec::new();
                for t in Tiles::new(len, tile, b, blocks) {
                    let i = state.index();
                    let parity = if p.consumer_parity_flipped { state.producer_parity() } else { state.consumer_parity() };
                    let wait = Step::Wait { cond: Cond::Parity { counter: full(b, i), count: 1, parity }, acquire: true };
                    if !p.skip_full_wait {
                        steps.push(wait.clone());
                    }
                    steps.push(Step::Access { touches: vec![touch(i, t.start, false)], effect: effects.len() });
                    effects.push((b, i, t.start, t.len, Some(r)));
                    if p.skip_full_wait {
                        // As `ConsumerSlot::release` after `wait_skipped`: the
                        // release still waits for the copy.
                        steps.push(wait);
                    }
                    steps.push(Step::Add { counter: empty(b, i), n: 1 });
                    state.advance();
                }
                actors.push(Actor { name: format!("block {b}'s consumer thread {r}"), steps });
            }
        }
        let poison: Vec<u8> = POISON_BITS.to_ne_bytes().into_iter().cycle().take(len * size).collect();
        let mut seen = poison.clone();
        let mut shared: Vec<Vec<u8>> = (0..blocks * k as usize).map(|_| poison[..(tile * size).min(poison.len())].to_vec()).collect();
        let mut m = Machine::new(actors, counters, device.names().to_vec());
        let result = m.run(device.rng(), |id| {
            let (b, s, start, n, rank) = effects[id];
            let slot = &mut shared[b * k as usize + s as usize];
            match rank {
                None => slot[..n * size].copy_from_slice(&input.bytes()[start * size..(start + n) * size]),
                Some(r) => {
                    for e in (r..n).step_by(consumers) {
                        seen[(start + e) * size..(start + e + 1) * size].copy_from_slice(&slot[e * size..(e + 1) * size]);
                    }
                }
            }
        });
        device.add_races(&m.races, m.race_count);
        if let Err(Stuck(why)) = result {
            let name = device.names()[stage].clone();
            device.set_stuck(format!("stage {name}'s block ring on chunk {chunk} (run {run}): {why}"));
        }
        let seen = HostChunk::from_bytes(input.elem(), &seen);
        device.run_piece(stage, chunk, (slot, slot), 0..len, Some(seen))
    }
}
