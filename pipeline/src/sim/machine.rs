//! Actors over shared memory, for the grains whose hand-offs happen on the
//! device (flags, PDL, the warps grain's block ring): each actor (a stage
//! kernel's block, a PDL kernel, a producer lane, a consumer thread) is a
//! list of steps, a seeded scheduler runs a ready actor's next step at a
//! time, and a vector-clock race detector judges every slot access.
//!
//! Synchronization is by counters: an add is a *release* (the counter's
//! clock joins the actor's), a wait that is satisfied an *acquire* (the
//! actor's clock joins the counter's). A counter's clock is the join of
//! every add so far: an acquire load that reads the latest value of a
//! chain of release read-modify-writes synchronizes with all of them, as
//! in the C++/Rust and PTX memory models. An mbarrier is such a counter of
//! arrivals (phase = arrivals / count). An actor's completion is a release
//! too (for a wait on another actor's end, `griddepcontrol.wait`).
//!
//! Races are judged when the access runs: the access's epoch against the
//! slot's last write and the reads since. Two accesses that nothing orders
//! are reported whichever runs first (a read before the write sees another
//! chunk's data: a wrong slot; the write after it then overwrites an
//! unordered read), so a missing wait is found for every schedule.
use super::device::{Hazard, OpRef, Place, Race, Rng};
use std::collections::HashMap;

/// Where an access goes: a ring between stages (global memory), or one
/// block's shared memory (the warps grain's ring, of stage `stage`'s
/// operation on chunk `chunk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Mem {
    Ring(usize),
    Shared { block: usize },
}

/// What a write leaves in a cell, and what a read expects to find there:
/// `(run, chunk, tile)` (tile 0 for a ring slot's piece).
pub(crate) type Tag = (usize, usize, usize);

/// One access of a step: `part` is the piece of a ring slot (flags) or 0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Touch {
    pub mem: Mem,
    pub slot: usize,
    pub part: usize,
    pub write: bool,
    pub op: OpRef,
    pub tag: Tag,
}

/// When a waiting actor may go on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cond {
    /// `counter >= want` (a flag ring's wait).
    AtLeast { counter: usize, want: u64 },
    /// `mbarrier.try_wait.parity(parity)` on a barrier of `count` arrivals a
    /// phase: true while the current phase's parity is not `parity` (so a
    /// fresh barrier's phase "-1", parity 1, counts as complete).
    Parity { counter: usize, count: u64, parity: u32 },
    /// Actor `actor` has finished (`griddepcontrol.wait` on the kernel ahead).
    Done { actor: usize },
    /// Actor `actor` has run its first `steps` steps (PDL: the kernel ahead
    /// has triggered its dependents, so this one may launch).
    Reached { actor: usize, steps: usize },
}

#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Waits for `cond`; an acquire when `acquire` (a launch is not).
    Wait { cond: Cond, acquire: bool },
    /// Adds `n` to a counter, with release ordering.
    Add { counter: usize, n: u64 },
    /// Accesses slots and runs effect `effect` (the caller's).
    Access { touches: Vec<Touch>, effect: usize },
}

pub(crate) struct Actor {
    pub name: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy)]
struct Epoch {
    actor: usize,
    time: u64,
    op: OpRef,
    tag: Tag,
}

impl Epoch {
    fn before(&self, clock: &[u64]) -> bool {
        clock[self.actor] >= self.time
    }
}

#[derive(Debug, Default, Clone)]
struct Cell {
    write: Option<Epoch>,
    reads: Vec<Epoch>,
}

/// Races kept at most.
const MAX_RACES: usize = 64;

/// Why a machine stopped early: every actor left waits for something that
/// can no longer happen (the watchdog's report, one line per waiting actor).
#[derive(Debug, Clone)]
pub(crate) struct Stuck(pub String);

pub(crate) struct Machine {
    actors: Vec<Actor>,
    pc: Vec<usize>,
    clocks: Vec<Vec<u64>>,
    /// Each counter's value, clock (the join of its releases) and name.
    counters: Vec<(u64, Vec<u64>, String)>,
    cells: HashMap<(Mem, usize, usize), Cell>,
    /// Stage names (for races): ring `r` joins `names[r]` and `names[r + 1]`.
    names: Vec<String>,
    pub races: Vec<Race>,
    pub race_count: usize,
}

impl Machine {
    /// A machine of `actors` over `counters` (named, all zero).
    pub(crate) fn new(actors: Vec<Actor>, counters: Vec<String>, names: Vec<String>) -> Machine {
        let n = actors.len();
        Machine {
            pc: vec![0; n],
            clocks: (0..n).map(|a| (0..n).map(|b| u64::from(a == b)).collect()).collect(),
            counters: counters.into_iter().map(|name| (0, vec![0; n], name)).collect(),
            actors,
            cells: HashMap::new(),
            names,
            races: Vec::new(),
            race_count: 0,
        }
    }

    fn done(&self, a: usize) -> bool {
        self.pc[a] >= self.actors[a].steps.len()
    }

    fn holds(&self, cond: Cond) -> bool {
        match cond {
            Cond::AtLeast { counter, want } => self.counters[counter].0 >= want,
            Cond::Parity { counter, count, parity } => (self.counters[counter].0 / count.max(1)) % 2 != u64::from(parity & 1),
            Cond::Done { actor } => self.done(actor),
            Cond::Reached { actor, steps } => self.pc[actor] >= steps,
        }
    }

    fn ready(&self, a: usize) -> bool {
        match self.actors[a].steps.get(self.pc[a]) {
            None => false,
            Some(Step::Wait { cond, .. }) => self.holds(*cond),
            Some(_) => true,
        }
    }

    fn join(&mut self, a: usize, clock: &[u64]) {
        for (m, t) in self.clocks[a].iter_mut().zip(clock) {
            *m = (*m).max(*t);
        }
    }

    /// Runs every actor to its end in an order drawn from `rng`, calling
    /// `effect(id)` for each access step after its race checks. `Err` when
    /// actors are left that can never go on.
    pub(crate) fn run(&mut self, rng: &mut Rng, mut effect: impl FnMut(usize)) -> Result<(), Stuck> {
        loop {
            let ready: Vec<usize> = (0..self.actors.len()).filter(|&a| self.ready(a)).collect();
            if ready.is_empty() {
                break;
            }
            let a = ready[rng.below(ready.len())];
            let step = self.actors[a].steps[self.pc[a]].clone();
            match step {
                Step::Wait { cond, acquire } => {
                    if acquire {
                        let clock = match cond {
                            Cond::AtLeast { counter, .. } | Cond::Parity { counter, .. } => self.counters[counter].1.clone(),
                            Cond::Done { actor } | Cond::Reached { actor, .. } => self.clocks[actor].clone(),
                        };
                        self.join(a, &clock);
                    }
                }
                Step::Add { counter, n } => {
                    let clock = self.clocks[a].clone();
                    let c = &mut self.counters[counter];
                    c.0 += n;
                    c.1.iter_mut().zip(&clock).for_each(|(m, t)| *m = (*m).max(*t));
                    // Later accesses are not covered by this release.
                    self.clocks[a][a] += 1;
                }
                Step::Access { touches, effect: id } => {
                    for t in &touches {
                        self.check(a, t);
                    }
                    effect(id);
                }
            }
            self.pc[a] += 1;
            if self.done(a) {
                // The end is a release (others wait for it with `Cond::Done`).
                self.clocks[a][a] += 1;
            }
        }
        let waiting: Vec<String> = (0..self.actors.len()).filter(|&a| !self.done(a)).map(|a| self.waiting(a)).collect();
        if waiting.is_empty() { Ok(()) } else { Err(Stuck(waiting.join("; "))) }
    }

    /// What actor `a` waits for, in words.
    fn waiting(&self, a: usize) -> String {
        let name = &self.actors[a].name;
        match self.actors[a].steps.get(self.pc[a]) {
            Some(Step::Wait { cond: Cond::AtLeast { counter, want }, .. }) => {
                let (have, _, what) = &self.counters[*counter];
                format!("{name} waits for {what} >= {want} (it is {have})")
            }
            Some(Step::Wait { cond: Cond::Parity { counter, count, parity }, .. }) => {
                let (have, _, what) = &self.counters[*counter];
                format!("{name} waits for {what} to complete a phase of parity {parity} (phase {}, {have} arrivals of {count} a phase)", have / count.max(&1))
            }
            Some(Step::Wait { cond: Cond::Done { actor } | Cond::Reached { actor, .. }, .. }) => {
                format!("{name} waits for {}", self.actors[*actor].name)
            }
            _ => format!("{name} is stuck"),
        }
    }

    fn race(&mut self, hazard: Hazard, t: &Touch, from: Option<(Epoch, usize)>, to_actor: usize) {
        self.race_count += 1;
        if self.races.len() >= MAX_RACES {
            return;
        }
        let stage_name = |o: &OpRef| self.names.get(o.stage).cloned().unwrap_or_default();
        let (ring, place) = match t.mem {
            Mem::Ring(r) => (r, Place::Ring),
            Mem::Shared { block } => (
                t.op.stage.saturating_sub(1),
                Place::Shared {
                    block,
                    from: from.map(|(e, a)| format!("{} (tile {})", self.actors[a].name, e.tag.2)),
                    to: format!("{} (tile {})", self.actors[to_actor].name, t.tag.2),
                },
            ),
        };
        let names = (self.names.get(ring).cloned().unwrap_or_default(), self.names.get(ring + 1).cloned().unwrap_or_default());
        let race =
            Race { hazard, ring, slot: t.slot, ring_stages: names, from: from.map(|(e, _)| (e.op, stage_name(&e.op))), to: (t.op, stage_name(&t.op)), place };
        self.races.push(race);
    }

    /// The race checks of actor `a`'s access `t`, at its current clock.
    fn check(&mut self, a: usize, t: &Touch) {
        let me = Epoch { actor: a, time: self.clocks[a][a], op: t.op, tag: t.tag };
        let clock = self.clocks[a].clone();
        let key = (t.mem, t.slot, t.part);
        let cell = self.cells.get(&key).cloned().unwrap_or_default();
        if t.write {
            if let Some(w) = cell.write.filter(|w| w.actor != a && !w.before(&clock)) {
                self.race(Hazard::Overwrite, t, Some((w, w.actor)), a);
            }
            for r in cell.reads.iter().filter(|r| r.actor != a && !r.before(&clock)) {
                self.race(Hazard::Freed, t, Some((*r, r.actor)), a);
            }
            self.cells.insert(key, Cell { write: Some(me), reads: Vec::new() });
        } else {
            match cell.write {
                None => self.race(Hazard::WrongSlot, t, None, a),
                Some(w) if w.tag != t.tag => self.race(Hazard::WrongSlot, t, Some((w, w.actor)), a),
                Some(w) if w.actor != a && !w.before(&clock) => self.race(Hazard::Filled, t, Some((w, w.actor)), a),
                Some(_) => {}
            }
            self.cells.entry(key).or_default().reads.push(me);
        }
    }
}
