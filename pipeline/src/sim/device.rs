//! The simulated device: streams, events, rings and stage operations on the
//! CPU, behind the executor's seam ([`EnqueueTo`]), with a race detector.
use crate::PipelineError;
use crate::elem::{ElemType, HostChunk};
use crate::exec::device::EnqueueTo;
use crate::exec::plan::EventId;
use crate::spec::PipelineSpec;
use crate::stage::{ChunkInfo, Kind};
use crate::timeline::Span;
use kernel_math::{POISON_BITS, Reduction};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

/// splitmix64: a small, seeded, reproducible generator for the scheduler.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One operation: stage `stage` on chunk `chunk` of run `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpRef {
    pub run: usize,
    pub stage: usize,
    pub chunk: usize,
}

/// What a [`Race`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hazard {
    /// `to` reads the slot `from` wrote, and nothing orders the write
    /// first: a missing *filled* edge from `from` to `to`.
    Filled,
    /// `to` overwrites the slot `from` reads, and nothing orders the read
    /// first: a missing *freed* edge from `from` to `to`.
    Freed,
    /// `to` overwrites the slot `from` wrote, and nothing orders the two writes.
    Overwrite,
    /// `to` reads a slot whose last write (in enqueue order) is another
    /// chunk's (`from`), or that was never written (`from` is `None`): a wrong slot.
    WrongSlot,
}

/// An access to a ring slot that nothing orders against an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Race {
    pub hazard: Hazard,
    /// The ring (between stage `ring` and `ring + 1`) and its slot.
    pub ring: usize,
    pub slot: usize,
    /// The ring's writer and reader, by name.
    pub ring_stages: (String, String),
    /// The earlier access and its stage's name (`None`: the slot was never written).
    pub from: Option<(OpRef, String)>,
    /// The later access and its stage's name.
    pub to: (OpRef, String),
    /// Where the slot is: a ring between stages, or a block's shared memory.
    pub place: Place,
}

/// Where a raced slot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Slot `slot` of ring `ring` (global memory, between two stages).
    Ring,
    /// Shared-memory slot `slot` of block `block` of the warps grain's ring
    /// inside stage `to`'s operation (which reads ring `ring`): the two
    /// accesses are the block's actors (producer lane, consumer threads).
    Shared { block: usize, from: Option<String>, to: String },
}

impl fmt::Display for Race {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, r) = &self.ring_stages;
        if let Place::Shared { block, from, to } = &self.place {
            let (op, name) = &self.to;
            write!(f, "{name} chunk {} (run {}), block {block}'s shared slot {}: ", op.chunk, op.run, self.slot)?;
            let from = from.as_deref().unwrap_or("nothing (never written)");
            return match self.hazard {
                Hazard::Filled => write!(f, "{to} reads what {from} wrote, and nothing orders the write first (a missing full-barrier wait)"),
                Hazard::Freed => write!(f, "{to} overwrites what {from} reads, and nothing orders the read first (a missing empty-barrier wait)"),
                Hazard::Overwrite => write!(f, "{from} and {to} both write it, unordered"),
                Hazard::WrongSlot => write!(f, "{to} reads a slot last written by {from} (another tile)"),
            };
        }
        write!(f, "ring {} ({w} -> {r}), slot {}: ", self.ring, self.slot)?;
        let (to, to_name) = &self.to;
        let op = |o: &OpRef, name: &str| format!("{name} chunk {} (run {})", o.chunk, o.run);
        let edge = |kind: &str, from: &OpRef| format!("missing {kind} edge from ({}, {}) to ({}, {})", from.stage, from.chunk, to.stage, to.chunk);
        match (&self.hazard, &self.from) {
            (Hazard::Filled, Some((from, n))) => {
                write!(f, "{} reads what {} wrote, and nothing orders the write first: {}", op(to, to_name), op(from, n), edge("filled", from))
            }
            (Hazard::Freed, Some((from, n))) => {
                write!(f, "{} overwrites what {} reads, and nothing orders the read first: {}", op(to, to_name), op(from, n), edge("freed", from))
            }
            (Hazard::Overwrite, Some((from, n))) => write!(f, "{} and {} both write it, unordered", op(from, n), op(to, to_name)),
            (Hazard::WrongSlot, Some((from, n))) => write!(f, "{} reads a slot last written by {} (a wrong slot)", op(to, to_name), op(from, n)),
            (_, None) => write!(f, "{} reads a slot never written (a wrong slot)", op(to, to_name)),
        }
    }
}

/// An access: the operation, its stream and its time on that stream.
#[derive(Debug, Clone, Copy)]
struct Access {
    op: OpRef,
    stream: usize,
    time: u64,
}

impl Access {
    /// Whether this access is ordered before work whose vector clock is `clock`.
    fn before(&self, clock: &[u64]) -> bool {
        clock[self.stream] >= self.time
    }
}

#[derive(Debug, Clone, Default)]
struct SlotState {
    write: Option<Access>,
    reads: Vec<Access>,
}

/// An event's latest record: the recording stream's clock then, and the
/// record's position in that stream's queue.
#[derive(Debug, Clone)]
struct Capture {
    clock: Vec<u64>,
    stream: usize,
    seq: u64,
}

/// Work in a stream's queue.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// Wait until stream `stream` has completed its item `seq` (a record).
    Wait {
        stream: usize,
        seq: u64,
    },
    Record,
    BeginRun(usize),
    Op {
        stage: usize,
        chunk: usize,
        slot: usize,
    },
}

/// How a grain runs some stages' operations in place of their plain
/// reference (the warps grain: through its block ring), so that the
/// device names no grain.
pub(crate) trait OpModel {
    /// Whether it runs stage `stage`'s operations.
    fn takes(&self, stage: usize) -> bool;
    /// Operation `(stage, chunk)` (`len` elements) from slot `slot` of ring
    /// `stage - 1` to slot `slot` of ring `stage`, run on `device`.
    fn run_op(&self, device: &mut SimDevice, stage: usize, chunk: usize, slot: usize, len: usize) -> Result<(), String>;
}

/// Races kept at most (the first ones, in enqueue order).
const MAX_RACES: usize = 64;

/// A simulated device running one pipeline part: each stream an ordered
/// queue, events with CUDA's capture semantics, each ring `K` slots of host
/// bytes laid out as on the device, each operation its stage's CPU
/// reference on the slot's bytes. A seeded scheduler completes ready stream
/// heads in random order (also while work is being enqueued), so any order
/// CUDA allows can happen, reproducibly.
///
/// The race detector works at enqueue time, when CUDA fixes the order: a
/// vector clock per stream (stream order), joined through record -> wait.
/// Each slot keeps its last write and the reads since; an access not
/// ordered after them is a [`Race`]. Enqueue order is one order the device
/// may run, and an unordered pair of accesses leaves at least one race in
/// the report whatever order is checked; checking in enqueue order makes
/// the report independent of the scheduler's seed.
pub struct SimDevice {
    spec: PipelineSpec,
    names: Vec<String>,
    types: Vec<ElemType>,
    slots: usize,
    slot_bytes: Vec<usize>,
    rings: Vec<Vec<u8>>,
    host_in: Option<Vec<u8>>,
    host_out: Option<Vec<u8>>,
    records: Vec<Option<Reduction>>,
    history: Vec<HostChunk>,
    queues: Vec<VecDeque<Item>>,
    /// Items completed, and enqueued, per stream.
    done: Vec<u64>,
    enqueued: Vec<u64>,
    clocks: Vec<Vec<u64>>,
    captures: HashMap<EventId, Capture>,
    slot_state: Vec<Vec<SlotState>>,
    races: Vec<Race>,
    races_seen: usize,
    run: usize,
    rng: Rng,
    /// Operations in the order the scheduler ran them.
    order: Vec<OpRef>,
    /// The first stage failure while running (a reference error).
    failure: Option<String>,
    /// How some stages' operations run instead (the warps grain's block
    /// ring), while such a run is enqueued and run.
    op_model: Option<Arc<dyn OpModel>>,
    /// The first block ring that could not go on (warps grain).
    stuck: Option<String>,
    /// The global index of this part's local chunk 0 (a pipeline split
    /// over several simulated GPUs: each part its own device).
    first_chunk: usize,
    /// The simulated GPU of a split part (a placed spec names each stage's).
    gpu: usize,
    /// Simulated times (`record_times`): each stream's clock in ms, each
    /// record's time by (stream, position), the operations' spans.
    timing: bool,
    now: Vec<f64>,
    record_at: HashMap<(usize, u64), f64>,
    spans: Vec<Span>,
    /// An injected fault (tests): the operation of this (stage, chunk)
    /// fails, once, as a kernel that traps would.
    fault: Option<(usize, usize)>,
}

/// The simulated cost model: an operation moves its chunk's bytes (read
/// and written) at this nominal rate, plus a fixed launch cost. Nothing
/// is measured; the times only place operations as their order allows.
pub const SIM_GBPS: f64 = 100.0;
/// The fixed cost of each simulated operation, in ms.
pub const SIM_LAUNCH_MS: f64 = 0.005;

impl SimDevice {
    /// A device for `spec` (validated) over `streams` streams with `slots`
    /// slots per ring, the host input `host_in` (h2d sources) and the
    /// scheduler's `seed`.
    pub fn new(spec: &PipelineSpec, streams: usize, slots: usize, host_in: Option<Vec<u8>>, seed: u64) -> Result<SimDevice, PipelineError> {
        spec.validate()?;
        let types = spec.ring_types()?;
        let slot_elems = spec.chunk_elements.min(spec.total_elements) as usize;
        let slot_bytes: Vec<usize> = types.iter().map(|t| (slot_elems * t.size()).next_multiple_of(256)).collect();
        let poison = |n: usize| POISON_BITS.to_ne_bytes().into_iter().cycle().take(n).collect::<Vec<u8>>();
        let rings = slot_bytes.iter().map(|b| poison(b * slots)).collect();
        let out_bytes = spec.total_elements as usize * types[types.len() - 1].size();
        let host_out = spec.writes_host().then(|| poison(out_bytes));
        let stages = spec.stages.len();
        let streams = streams.max(1);
        Ok(SimDevice {
            names: spec.stages.iter().map(|s| s.name().to_string()).collect(),
            spec: spec.clone(),
            slots,
            slot_bytes,
            rings,
            host_in,
            host_out,
            records: vec![None; spec.chunks()],
            history: (0..stages).map(|s| HostChunk::zeroed(types[s.saturating_sub(1)], spec.stages[s].halo())).collect(),
            types,
            queues: vec![VecDeque::new(); streams],
            done: vec![0; streams],
            enqueued: vec![0; streams],
            clocks: vec![vec![0; streams]; streams],
            captures: HashMap::new(),
            slot_state: vec![vec![SlotState::default(); slots]; stages.saturating_sub(1)],
            races: Vec::new(),
            races_seen: 0,
            run: 0,
            rng: Rng::new(seed),
            order: Vec::new(),
            failure: None,
            op_model: None,
            stuck: None,
            first_chunk: 0,
            gpu: 0,
            timing: false,
            now: vec![0.0; streams],
            record_at: HashMap::new(),
            spans: Vec::new(),
            fault: None,
        })
    }

    /// This device runs a part of a split pipeline whose local chunk `c`
    /// is the pipeline's chunk `first + c` (its host range, its generated
    /// data, its record), as `exec`'s parts do.
    pub(crate) fn set_first_chunk(&mut self, first: usize) {
        self.first_chunk = first;
    }

    /// This device is simulated GPU `gpu` (a split pipeline's part).
    pub(crate) fn set_gpu(&mut self, gpu: usize) {
        self.gpu = gpu;
    }

    /// Gives each operation run from now on a simulated time (see
    /// [`SIM_GBPS`]): a stream's operations one after the other, a wait
    /// holding its stream until the record it waits for.
    pub fn record_times(&mut self, on: bool) {
        self.timing = on;
    }

    /// The operations' simulated spans since the last [`SimDevice::clear_reports`].
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Operation `(stage, chunk)`'s simulated duration, in ms.
    fn op_ms(&self, stage: usize, chunk: usize) -> f64 {
        let r = self.spec.chunk_range(self.first_chunk + chunk);
        let last = self.types.len() - 1;
        let bytes = (r.end - r.start) as f64 * (self.types[stage.saturating_sub(1).min(last)].size() + self.types[stage.min(last)].size()) as f64;
        SIM_LAUNCH_MS + bytes / (SIM_GBPS * 1e9) * 1e3
    }

    /// Numbers the operations enqueued from now on as run `run`.
    pub fn set_run(&mut self, run: usize) {
        self.run = run;
    }

    /// Every race found so far (the first 64), in enqueue order.
    pub fn races(&self) -> &[Race] {
        &self.races
    }
    /// Forgets the races and failure reported so far (a new run call);
    /// the slots' accesses and the clocks are kept.
    pub fn clear_reports(&mut self) {
        self.races.clear();
        self.races_seen = 0;
        self.failure = None;
        self.stuck = None;
        self.order.clear();
        self.spans.clear();
    }

    /// The first warps-grain block ring that stopped with its actors
    /// waiting for ever (the watchdog's report), if any.
    pub fn stuck(&self) -> Option<&str> {
        self.stuck.as_deref()
    }

    /// Runs the operations from now on of the stages `model` takes with it
    /// (the warps grain's block ring; `None`: all plainly).
    pub(crate) fn set_op_model(&mut self, model: Option<Arc<dyn OpModel>>) {
        self.op_model = model;
    }

    /// The stage names, in order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The scheduler's generator (the protocol grains draw their orders from it).
    pub(crate) fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Keeps the protocol grains' races with the device's.
    pub(crate) fn add_races(&mut self, races: &[Race], count: usize) {
        let room = MAX_RACES.saturating_sub(self.races.len());
        self.races.extend(races.iter().take(room).cloned());
        self.races_seen += count;
    }

    /// Makes the next operation of (`stage`, `chunk`) fail, once (a trap),
    /// or, with `None`, none.
    pub(crate) fn set_fault(&mut self, fault: Option<(usize, usize)>) {
        self.fault = fault;
    }

    /// Records a failure (a reference error), unless one is recorded.
    pub(crate) fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }

    /// Records that a protocol could not go on, unless one is recorded.
    pub(crate) fn set_stuck(&mut self, why: String) {
        self.stuck.get_or_insert(why);
    }

    /// The current run's number.
    pub(crate) fn run_number(&self) -> usize {
        self.run
    }

    /// Bytes of slot `slot` of ring `ring`, `len` elements of its type.
    pub(crate) fn slot_chunk(&self, ring: usize, slot: usize, len: usize) -> Result<HostChunk, String> {
        let elem = self.types[ring];
        let r = self.slot_range(ring, slot, len * elem.size())?;
        Ok(HostChunk::from_bytes(elem, &self.rings[ring][r]))
    }

    /// Writes `bytes` at the start of slot `slot` of ring `ring` (a
    /// rank's receive landing in its ring).
    pub(crate) fn write_slot(&mut self, ring: usize, slot: usize, bytes: &[u8]) -> Result<(), String> {
        let r = self.slot_range(ring, slot, bytes.len())?;
        self.rings[ring][r].copy_from_slice(bytes);
        Ok(())
    }

    /// The type of ring `ring`'s elements.
    pub(crate) fn ring_type(&self, ring: usize) -> ElemType {
        self.types[ring]
    }

    /// Records operation `(stage, chunk)` of the current run as run now.
    pub(crate) fn ran(&mut self, stage: usize, chunk: usize) {
        self.order.push(OpRef { run: self.run, stage, chunk });
    }

    /// How many races were found, kept or not.
    pub fn race_count(&self) -> usize {
        self.races_seen
    }

    /// The operations in the order they ran.
    pub fn order(&self) -> &[OpRef] {
        &self.order
    }

    /// The first stage failure (a CPU reference's error), if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn output_bytes(&self) -> Option<&[u8]> {
        self.host_out.as_deref()
    }
    pub fn input_bytes(&self) -> Option<&[u8]> {
        self.host_in.as_deref()
    }
    /// One record per chunk (record sinks), as of the last run; `None`
    /// where no operation wrote it.
    pub fn records(&self) -> &[Option<Reduction>] {
        &self.records
    }

    /// Poisons the host output, as the executor does before each run call.
    pub fn poison_output(&mut self) {
        if let Some(out) = &mut self.host_out {
            let mut words = out.chunks_exact_mut(4);
            words.by_ref().for_each(|w| w.copy_from_slice(&POISON_BITS.to_ne_bytes()));
            words.into_remainder().fill(0xAD);
        }
    }

    /// Runs every queued item to the end (`cuCtxSynchronize`).
    pub fn synchronize(&mut self) -> Result<(), PipelineError> {
        while self.step() {}
        if self.queues.iter().any(|q| !q.is_empty()) {
            // CUDA's capture semantics cannot deadlock: a bug of the simulator.
            return Err(PipelineError::BadStages("the simulated device stalled with work queued and none ready".into()));
        }
        Ok(())
    }

    /// Runs one ready stream head, picked at random; false when none is ready.
    fn step(&mut self) -> bool {
        let ready: Vec<usize> = (0..self.queues.len())
            .filter(|&s| match self.queues[s].front() {
                Some(Item::Wait { stream, seq }) => self.done[*stream] > *seq,
                Some(_) => true,
                None => false,
            })
            .collect();
        if ready.is_empty() {
            return false;
        }
        let s = ready[self.rng.below(ready.len())];
        let Some(item) = self.queues[s].pop_front() else { return false };
        match item {
            Item::Wait { stream, seq } => {
                if let Some(&t) = self.record_at.get(&(stream, seq)) {
                    self.now[s] = self.now[s].max(t);
                }
            }
            Item::Record => {
                if self.timing {
                    // This record is item `done[s]` of its stream (its seq).
                    self.record_at.insert((s, self.done[s]), self.now[s]);
                }
            }
            Item::BeginRun(stage) => self.run_begin(stage),
            Item::Op { stage, chunk, slot } => {
                if self.timing {
                    let start = self.now[s];
                    self.now[s] = start + self.op_ms(stage, chunk);
                    let gpu = self.spec.placement.get(stage).copied().unwrap_or(self.gpu);
                    self.spans.push(Span { gpu, stage, chunk: self.first_chunk + chunk, start_ms: start, end_ms: self.now[s] });
                }
                if let Err(why) = self.run_op(stage, chunk, slot) {
                    self.failure.get_or_insert(format!("stage {} on chunk {chunk}: {why}", self.names[stage]));
                }
            }
        }
        self.done[s] += 1;
        true
    }

    /// Queues `item` on `stream`; the device may run some ready work meanwhile.
    fn push(&mut self, stream: usize, item: Item) {
        self.queues[stream].push_back(item);
        self.enqueued[stream] += 1;
        for _ in 0..self.rng.below(3) {
            self.step();
        }
    }

    fn stream_index(&self, stream: usize) -> Result<usize, PipelineError> {
        if stream < self.queues.len() {
            Ok(stream)
        } else {
            Err(PipelineError::BadStages(format!("stream {stream} of a simulated device with {} streams", self.queues.len())))
        }
    }

    fn race(&mut self, hazard: Hazard, ring: usize, slot: usize, from: Option<OpRef>, to: OpRef) {
        self.races_seen += 1;
        if self.races.len() < MAX_RACES {
            let name = |o: OpRef| (o, self.names[o.stage].clone());
            let race = Race {
                hazard,
                ring,
                slot,
                ring_stages: (self.names[ring].clone(), self.names[ring + 1].clone()),
                from: from.map(name),
                to: name(to),
                place: Place::Ring,
            };
            self.races.push(race);
        }
    }

    /// The race checks of an operation enqueued on `stream` (its clock now
    /// includes every wait enqueued before it).
    fn check_op(&mut self, stream: usize, stage: usize, chunk: usize, slot: usize) {
        let stages = self.names.len();
        let me = Access { op: OpRef { run: self.run, stage, chunk }, stream, time: self.clocks[stream][stream] };
        let clock = self.clocks[stream].clone();
        if stage > 0 {
            let ring = stage - 1;
            let st = &self.slot_state[ring][slot];
            match st.write {
                None => self.race(Hazard::WrongSlot, ring, slot, None, me.op),
                Some(w) => {
                    if (w.op.run, w.op.chunk) != (me.op.run, chunk) {
                        self.race(Hazard::WrongSlot, ring, slot, Some(w.op), me.op);
                    } else if !w.before(&clock) {
                        self.race(Hazard::Filled, ring, slot, Some(w.op), me.op);
                    }
                }
            }
            self.slot_state[ring][slot].reads.push(me);
        }
        if stage + 1 < stages {
            let st = std::mem::take(&mut self.slot_state[stage][slot]);
            if let Some(w) = st.write.filter(|w| !w.before(&clock)) {
                self.race(Hazard::Overwrite, stage, slot, Some(w.op), me.op);
            }
            for r in st.reads.iter().filter(|r| !r.before(&clock)) {
                self.race(Hazard::Freed, stage, slot, Some(r.op), me.op);
            }
            self.slot_state[stage][slot] = SlotState { write: Some(me), reads: Vec::new() };
        }
    }

    /// A stage's `begin_run`: a halo's history zeroed, a record sink's records dropped.
    pub(crate) fn run_begin(&mut self, stage: usize) {
        match self.spec.stages[stage].kind() {
            Kind::Map(m) => self.history[stage] = HostChunk::zeroed(self.types[stage - 1], m.halo()),
            // A record sink resets its records each run.
            Kind::Sink(s) if !s.writes_host() => self.records.iter_mut().for_each(|r| *r = None),
            _ => {}
        }
    }

    fn slot_range(&self, ring: usize, slot: usize, bytes: usize) -> Result<std::ops::Range<usize>, String> {
        if slot >= self.slots || bytes > self.slot_bytes[ring] {
            return Err(format!("slot {slot} ({bytes} bytes) of ring {ring}: {} slots of {} bytes", self.slots, self.slot_bytes[ring]));
        }
        let at = slot * self.slot_bytes[ring];
        Ok(at..at + bytes)
    }

    /// What the GPU operation would do, with the stage's CPU reference (on
    /// the warps grain's block ring for its ring stages): reads slot `slot`
    /// of ring `stage - 1`, writes slot `slot` of ring
    /// `stage` (or the host output, or the chunk's record).
    fn run_op(&mut self, stage: usize, chunk: usize, slot: usize) -> Result<(), String> {
        self.order.push(OpRef { run: self.run, stage, chunk });
        let range = self.spec.chunk_range(self.first_chunk + chunk);
        let len = (range.end - range.start) as usize;
        match self.op_model.clone().filter(|m| m.takes(stage)) {
            Some(m) => m.run_op(self, stage, chunk, slot, len),
            None => self.run_piece(stage, chunk, (slot, slot), 0..len, None),
        }
    }

    /// Operation `(stage, chunk)` on elements `piece` of the chunk only
    /// (a flags block's piece; the whole chunk for a stage with a halo):
    /// reads them from slot `in_slot` of ring `stage - 1` (or takes `input`,
    /// the chunk as the warps grain's consumers saw it), writes them to slot
    /// `slot` of ring `stage` (or the host output, or adds them to the
    /// chunk's record).
    pub(crate) fn run_piece(
        &mut self,
        stage: usize,
        chunk: usize,
        (in_slot, slot): (usize, usize),
        piece: std::ops::Range<usize>,
        input: Option<HostChunk>,
    ) -> Result<(), String> {
        // The pipeline's chunk (a split part's local chunk is offset).
        let global = self.first_chunk + chunk;
        if self.fault == Some((stage, global)) {
            // Its output is left as it was (poison, or an earlier run's),
            // as a trapped kernel leaves it.
            self.fault = None;
            return Err("the kernel trapped (an injected fault)".into());
        }
        let range = self.spec.chunk_range(global);
        let len = (range.end - range.start) as usize;
        if piece.start > piece.end || piece.end > len {
            return Err(format!("piece {piece:?} of a chunk of {len}"));
        }
        let take = |d: &SimDevice| -> Result<HostChunk, String> {
            if let Some(i) = &input {
                let size = i.elem().size();
                return Ok(HostChunk::from_bytes(i.elem(), &i.bytes()[piece.start * size..piece.end * size]));
            }
            let elem = d.types[stage - 1];
            let r = d.slot_range(stage - 1, in_slot, len * elem.size())?;
            let bytes = &d.rings[stage - 1][r][piece.start * elem.size()..piece.end * elem.size()];
            Ok(HostChunk::from_bytes(elem, bytes))
        };
        let out = match self.spec.stages[stage].kind().clone() {
            Kind::Source(src) => {
                let size = self.types[0].size();
                let host = match (&self.host_in, src.reads_host()) {
                    (Some(h), true) => Some(h.get(range.start as usize * size..range.end as usize * size).ok_or("the host input is too short")?),
                    (None, true) => return Err("no host input".into()),
                    _ => None,
                };
                let whole = src.reference(&ChunkInfo { index: global, range: range.clone(), seed: self.spec.seed }, self.types[0], host)?;
                let size = whole.elem().size();
                if whole.len() != len {
                    return Err(format!("the source's reference gave {} elements, not {len}", whole.len()));
                }
                HostChunk::from_bytes(whole.elem(), &whole.bytes()[piece.start * size..piece.end * size])
            }
            Kind::Map(m) => {
                let input = take(self)?;
                let h = m.halo();
                if h > 0 && piece != (0..len) {
                    return Err(format!("a halo stage runs whole chunks, not piece {piece:?}"));
                }
                let out = m.reference(&self.history[stage], &input)?;
                if h > 0 {
                    let joined = [self.history[stage].bytes(), input.bytes()].concat();
                    let size = input.elem().size();
                    self.history[stage] = HostChunk::from_bytes(input.elem(), &joined[joined.len() - h * size..]);
                }
                out
            }
            Kind::Sink(sink) => {
                let input = take(self)?;
                if sink.writes_host() {
                    let size = input.elem().size();
                    let at = range.start as usize + piece.start;
                    let out = self.host_out.as_mut().ok_or("no host output")?;
                    let dst = out.get_mut(at * size..(at + piece.len()) * size).ok_or("the host output is too short")?;
                    dst.copy_from_slice(input.bytes());
                } else {
                    // A record sink's record is a Reduction (`Sink::Record`):
                    // the reduce kernel's, computed exactly on the CPU (in
                    // any order: a piece adds to what the others added).
                    let values = input.view::<f32>().ok_or_else(|| format!("a record sink reads f32 here, not {}", input.elem()))?;
                    let record = self.records.get_mut(global).ok_or("a chunk past the records")?;
                    let r = record.get_or_insert(Reduction::EMPTY);
                    values.iter().for_each(|&v| r.add(v));
                }
                return Ok(());
            }
        };
        if out.elem() != self.types[stage] || out.len() != piece.len() {
            return Err(format!("the reference gave {} elements of {}, not {} of {}", out.len(), out.elem(), piece.len(), self.types[stage]));
        }
        let size = self.types[stage].size();
        let r = self.slot_range(stage, slot, len * size)?;
        let at = r.start + piece.start * size;
        self.rings[stage][at..at + out.bytes().len()].copy_from_slice(out.bytes());
        Ok(())
    }
}

impl EnqueueTo for SimDevice {
    fn wait(&mut self, stream: usize, event: EventId) -> Result<(), PipelineError> {
        let s = self.stream_index(stream)?;
        // No record yet: the wait is a no-op, as in CUDA.
        if let Some(c) = self.captures.get(&event).cloned() {
            for (mine, theirs) in self.clocks[s].iter_mut().zip(&c.clock) {
                *mine = (*mine).max(*theirs);
            }
            self.push(s, Item::Wait { stream: c.stream, seq: c.seq });
        }
        Ok(())
    }

    fn record(&mut self, stream: usize, event: EventId) -> Result<(), PipelineError> {
        let s = self.stream_index(stream)?;
        // A re-record is a new capture; earlier waits keep theirs.
        self.captures.insert(event, Capture { clock: self.clocks[s].clone(), stream: s, seq: self.enqueued[s] });
        self.push(s, Item::Record);
        Ok(())
    }

    fn begin_run(&mut self, stream: usize, stage: usize) -> Result<(), PipelineError> {
        let s = self.stream_index(stream)?;
        self.push(s, Item::BeginRun(stage));
        Ok(())
    }

    fn op(&mut self, stream: usize, stage: usize, chunk: usize, slot: usize) -> Result<(), PipelineError> {
        let s = self.stream_index(stream)?;
        if stage >= self.names.len() {
            return Err(PipelineError::BadStages(format!("stage {stage} of a {}-stage pipeline", self.names.len())));
        }
        if slot >= self.slots {
            return Err(PipelineError::BadStages(format!("stage {} on chunk {chunk} uses slot {slot} of a {}-slot ring", self.names[stage], self.slots)));
        }
        self.clocks[s][s] += 1;
        self.check_op(s, stage, chunk, slot);
        self.push(s, Item::Op { stage, chunk, slot });
        Ok(())
    }
}
