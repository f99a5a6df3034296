//! The device rings' hand-off protocols, model-checked with loom over every
//! interleaving (up to a preemption bound) of small configurations; see
//! `docs/loom.md`. Built only with `RUSTFLAGS="--cfg loom"`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p kernel-math --test loom_rings --release
//! ```
//!
//! What runs here is a model: one loom thread per block (flag ring) or per
//! ring side (warp ring), loom atomics with the orderings the device code
//! uses (`ld.acquire.gpu` / `red.release.gpu.add`; `mbarrier.arrive`'s
//! release, `mbarrier.try_wait`'s acquire), and slots of
//! `loom::cell::UnsafeCell`, so that loom itself reports a read of a slot
//! that is not ordered after its write (or a write not ordered after the
//! previous read). Every decision of which slot, which use, which counter
//! value or which barrier parity is the device code's own:
//! `kernel_math::ring`'s `slot_use`, `filled_target`, `freed_target`,
//! `piece`, `group_chunks` and `RingState`.
//!
//! Each weakened variant (an ordering made relaxed, a wait removed, a
//! parity flipped, a wrong slot or target) is a test that asserts loom
//! finds it, and how.
#![cfg(loom)]

use kernel_math::ring::{self, RingState};
use loom::cell::UnsafeCell;
// std's Arc, not loom's: a model that panics (a weakened variant) drops its
// unstarted threads after loom's state is gone, where loom's Arc would panic
// again and abort the test binary.
use loom::sync::atomic::AtomicU32;
use loom::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};
use loom::thread;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

/// The preemption bound unless `LOOM_MAX_PREEMPTIONS` sets one: every
/// interleaving with at most this many preemptions is explored.
const PREEMPTIONS: usize = 3;

/// Scheduling decisions in one execution before loom calls it stuck,
/// unless `LOOM_MAX_BRANCHES` sets it.
const MAX_BRANCHES: usize = 20_000;

/// Failed polls of one wait after which loom stops branching (see `spin`).
const FUTILE_POLLS: u32 = 2;

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(PREEMPTIONS, f)
}

/// [`model`] with a preemption bound of `preemptions` (unless
/// `LOOM_MAX_PREEMPTIONS` sets one), for the configurations of four
/// threads that each pass several chunks.
fn model_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    // Three or four threads spinning on each other take more than loom's
    // default 1,000 branches in one execution; a ring that is stuck for
    // good (every thread spinning) still ends there.
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        builder.max_branches = MAX_BRANCHES;
    }
    builder.check(f);
}

/// What loom found in a weakened protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A data race on a slot: loom's causality check.
    Race,
    /// A reader saw a value its writer did not write for that chunk.
    WrongData,
    /// No thread can make progress: every one spins on a wait forever
    /// (loom's branch limit).
    Stuck,
}

/// Runs the model and says what failed, `None` when it passed.
fn find(f: impl Fn() + Sync + Send + 'static) -> Option<Found> {
    let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| model(f))) else { return None };
    let msg = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("");
    if msg.contains("Causality violation") {
        Some(Found::Race)
    } else if msg.contains("wrong data") {
        Some(Found::WrongData)
    } else if msg.contains("maximum number of branches") {
        Some(Found::Stuck)
    } else {
        panic!("the model failed for another reason: {msg}")
    }
}

/// Asserts that the model failed, in one of the `expected` ways. A reader
/// not ordered after its writer either reads before the write (the slot's
/// old value: wrong data) or while it happens (a race), whichever loom's
/// search meets first.
#[track_caller]
fn assert_found(found: Option<Found>, expected: &[Found]) {
    assert!(found.is_some_and(|f| expected.contains(&f)), "found {found:?}, expected one of {expected:?}");
}

/// The value element `i` of chunk (or tile) `c` holds: distinct per chunk,
/// never 0 (what a slot holds before its first write).
fn value(c: u64, i: u64) -> u32 {
    (c * 16 + i + 1) as u32
}

/// Spins until `ok(load(order))`, yielding to loom (the device's spin
/// loop). After [`FUTILE_POLLS`] polls that failed, the rest of this
/// execution runs on loom's default schedule instead of branching further
/// (`loom::skip_branch`): loom is not fair, and with two threads spinning
/// it would otherwise follow schedules in which they poll in turn forever
/// while the thread they wait for never runs. A failed poll changes
/// nothing, so the interleavings cut off here are reached by the
/// executions in which the waiter polled less often.
fn spin(counter: &AtomicU32, order: Ordering, ok: impl Fn(u32) -> bool) {
    let mut polls = 0;
    while !ok(counter.load(order)) {
        polls += 1;
        if polls == FUTILE_POLLS {
            loom::skip_branch();
        }
        thread::yield_now();
    }
}

/// One element of a slot, shared by the stages as on the device.
struct Cell(UnsafeCell<u32>);

// SAFETY: loom's `UnsafeCell` checks every access (all go through `write`
// and `read`) against the others and panics on two that are not ordered:
// the race the protocol must rule out is what the model reports.
unsafe impl Sync for Cell {}

fn write(cell: &Cell, v: u32) {
    // SAFETY: loom checks that no other access is concurrent with this one.
    cell.0.with_mut(|p| unsafe { *p = v });
}

fn read(cell: &Cell) -> u32 {
    // SAFETY: as in `write`.
    cell.0.with(|p| unsafe { *p })
}

fn slots(k: u64, n: u64) -> Vec<Vec<Cell>> {
    (0..k).map(|_| (0..n).map(|_| Cell(UnsafeCell::new(0))).collect()).collect()
}

// ---------------------------------------------------------------------------
// The flag ring (`nvptx_std::ring`): per-slot counters in device memory.
// ---------------------------------------------------------------------------

/// A flag pipeline's geometry: `k` slots, `chunks` chunks of `n` elements,
/// `groups` groups of `pieces` blocks per stage.
#[derive(Debug, Clone, Copy)]
struct Flags {
    k: u64,
    chunks: u64,
    n: u64,
    pieces: u64,
    groups: u64,
}

impl Flags {
    fn blocks(&self) -> u64 {
        self.groups * self.pieces
    }
}

/// The flag protocol's orderings and waits, each of which a variant weakens.
#[derive(Debug, Clone, Copy)]
struct FlagProtocol {
    /// The writer's `red.release.gpu.add` to *filled*.
    filled_add: Ordering,
    /// The reader's `ld.acquire.gpu` of *filled*.
    filled_load: Ordering,
    /// The reader's release add to *freed*.
    freed_add: Ordering,
    /// The writer's acquire load of *freed*.
    freed_load: Ordering,
    /// The reader's wait for *filled*.
    filled_wait: bool,
    /// The writer's wait for *freed*.
    freed_wait: bool,
    /// The reader waits for one piece of the use, not all P.
    one_piece: bool,
    /// The reader takes slot `(c % K + 1) % K`.
    reader_slot_off: usize,
}

const FLAGS: FlagProtocol = FlagProtocol {
    filled_add: Release,
    filled_load: Acquire,
    freed_add: Release,
    freed_load: Acquire,
    filled_wait: true,
    freed_wait: true,
    one_piece: false,
    reader_slot_off: 0,
};

/// One ring: K slots and their *filled* and *freed* counters.
struct FlagRing {
    slots: Vec<Vec<Cell>>,
    filled: Vec<AtomicU32>,
    freed: Vec<AtomicU32>,
}

impl FlagRing {
    fn new(g: Flags) -> Self {
        let counters = || (0..g.k).map(|_| AtomicU32::new(0)).collect();
        FlagRing { slots: slots(g.k, g.n), filled: counters(), freed: counters() }
    }
}

/// Block `b`'s group and piece.
fn group_piece(g: Flags, b: u64) -> (u64, u64) {
    (b / g.pieces, b % g.pieces)
}

/// The writer's wait: *freed* of slot `s` at `freed_target(u)`.
fn wait_freed(r: &FlagRing, g: Flags, p: FlagProtocol, s: usize, u: u32) {
    if p.freed_wait {
        let want = ring::freed_target(u, g.pieces);
        spin(&r.freed[s], p.freed_load, |have| have >= want);
    }
}

/// The reader's wait: *filled* of slot `s` at `filled_target(u)`.
fn wait_filled(r: &FlagRing, g: Flags, p: FlagProtocol, s: usize, u: u32) {
    if p.filled_wait {
        let want = if p.one_piece { ring::freed_target(u, g.pieces) + 1 } else { ring::filled_target(u, g.pieces) };
        spin(&r.filled[s], p.filled_load, |have| have >= want);
    }
}

/// `ring::source`, block `b`: per chunk, wait *freed*, write its piece, add
/// to *filled*.
fn source(r: &FlagRing, g: Flags, p: FlagProtocol, b: u64) {
    let (group, j) = group_piece(g, b);
    for c in ring::group_chunks(group, g.groups, g.chunks) {
        let (s, u) = ring::slot_use(c, g.k);
        wait_freed(r, g, p, s, u);
        let (lo, hi) = ring::piece(g.n, g.pieces, j);
        for i in lo..hi {
            write(&r.slots[s][i as usize], value(c, i));
        }
        r.filled[s].fetch_add(1, p.filled_add);
    }
}

/// `ring::map`, block `b`: per chunk, wait *filled* of the input and
/// *freed* of the output, move its piece (+1000), then both adds.
fn map(inp: &FlagRing, out: &FlagRing, g: Flags, p: FlagProtocol, b: u64) {
    let (group, j) = group_piece(g, b);
    for c in ring::group_chunks(group, g.groups, g.chunks) {
        let (s, u) = ring::slot_use(c, g.k);
        wait_filled(inp, g, p, s, u);
        wait_freed(out, g, p, s, u);
        let (lo, hi) = ring::piece(g.n, g.pieces, j);
        for i in lo..hi {
            let v = read(&inp.slots[s][i as usize]);
            assert_eq!(v, value(c, i), "wrong data: map, chunk {c} element {i}");
            write(&out.slots[s][i as usize], v + 1000);
        }
        out.filled[s].fetch_add(1, p.filled_add);
        inp.freed[s].fetch_add(1, p.freed_add);
    }
}

/// `ring::sink`, block `b`: per chunk, wait *filled*, check its piece
/// (`shift` added per map stage before it), add to *freed*.
fn sink(r: &FlagRing, g: Flags, p: FlagProtocol, b: u64, shift: u32) {
    let (group, j) = group_piece(g, b);
    for c in ring::group_chunks(group, g.groups, g.chunks) {
        let (s, u) = ring::slot_use(c, g.k);
        let s = (s + p.reader_slot_off) % g.k as usize;
        wait_filled(r, g, p, s, u);
        let (lo, hi) = ring::piece(g.n, g.pieces, j);
        for i in lo..hi {
            assert_eq!(read(&r.slots[s][i as usize]), value(c, i) + shift, "wrong data: sink, chunk {c} element {i}");
        }
        r.freed[s].fetch_add(1, p.freed_add);
    }
}

/// Runs `f(block)` for every block on its own thread (the last on this one).
fn blocks(n: u64, f: impl Fn(u64) + Send + Sync + 'static) {
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n - 1)
        .map(|b| {
            let f = f.clone();
            thread::spawn(move || f(b))
        })
        .collect();
    f(n - 1);
    for h in handles {
        h.join().unwrap();
    }
}

/// A source stage and a sink stage over one ring, `g.blocks()` blocks each.
fn source_sink(g: Flags, p: FlagProtocol) -> impl Fn() + Send + Sync + 'static {
    move || {
        let r = Arc::new(FlagRing::new(g));
        blocks(2 * g.blocks(), move |b| if b < g.blocks() { source(&r, g, p, b) } else { sink(&r, g, p, b - g.blocks(), 0) });
    }
}

/// K = 1, two chunks: the slot's second use waits for its first read.
const F_K1: Flags = Flags { k: 1, chunks: 2, n: 2, pieces: 1, groups: 1 };
/// K = 2, three chunks: slot 0 wraps once, slot 1 does not.
const F_K2: Flags = Flags { k: 2, chunks: 3, n: 2, pieces: 1, groups: 1 };
/// Two pieces per chunk (two blocks per stage, one element each).
const F_P2: Flags = Flags { k: 1, chunks: 2, n: 2, pieces: 2, groups: 1 };
/// Two groups of one block per stage: chunk 0 and chunk 1, both of slot 0,
/// written and read by different blocks.
const F_G2: Flags = Flags { k: 1, chunks: 2, n: 2, pieces: 1, groups: 2 };

#[test]
fn flag_ring_protocol_holds_k1() {
    model(source_sink(F_K1, FLAGS));
}

#[test]
fn flag_ring_protocol_holds_k2() {
    model(source_sink(F_K2, FLAGS));
}

#[test]
fn flag_ring_protocol_holds_with_two_pieces() {
    // Four threads of two chunks each: bound 3 takes minutes, bound 2 seconds.
    model_bounded(2, source_sink(F_P2, FLAGS));
}

#[test]
fn flag_ring_protocol_holds_with_two_groups() {
    model(source_sink(F_G2, FLAGS));
}

#[test]
fn flag_ring_protocol_holds_through_a_map_stage() {
    let g = F_K1;
    model(move || {
        let (a, b) = (Arc::new(FlagRing::new(g)), Arc::new(FlagRing::new(g)));
        blocks(3, move |stage| match stage {
            0 => source(&a, g, FLAGS, 0),
            1 => map(&a, &b, g, FLAGS, 0),
            _ => sink(&b, g, FLAGS, 0, 1000),
        });
    });
}

#[test]
fn flag_ring_filled_add_relaxed_is_a_race() {
    assert_found(find(source_sink(F_K1, FlagProtocol { filled_add: Relaxed, ..FLAGS })), &[Found::Race]);
}

#[test]
fn flag_ring_filled_load_relaxed_is_a_race() {
    assert_found(find(source_sink(F_K1, FlagProtocol { filled_load: Relaxed, ..FLAGS })), &[Found::Race]);
}

#[test]
fn flag_ring_freed_add_relaxed_is_a_race() {
    assert_found(find(source_sink(F_K1, FlagProtocol { freed_add: Relaxed, ..FLAGS })), &[Found::Race]);
}

#[test]
fn flag_ring_freed_load_relaxed_is_a_race() {
    assert_found(find(source_sink(F_K1, FlagProtocol { freed_load: Relaxed, ..FLAGS })), &[Found::Race]);
}

#[test]
fn flag_ring_without_the_filled_wait_is_found() {
    assert_found(find(source_sink(F_K1, FlagProtocol { filled_wait: false, ..FLAGS })), &[Found::Race, Found::WrongData]);
}

#[test]
fn flag_ring_without_the_freed_wait_is_a_race() {
    assert_found(find(source_sink(F_K1, FlagProtocol { freed_wait: false, ..FLAGS })), &[Found::Race]);
}

#[test]
fn flag_ring_waiting_for_one_piece_of_p_is_a_race() {
    assert_found(find(source_sink(F_P2, FlagProtocol { one_piece: true, ..FLAGS })), &[Found::Race]);
}

#[test]
fn flag_ring_reader_on_the_wrong_slot_is_found() {
    assert_found(find(source_sink(F_K2, FlagProtocol { reader_slot_off: 1, ..FLAGS })), &[Found::Race, Found::WrongData, Found::Stuck]);
}

// ---------------------------------------------------------------------------
// The warp ring (`nvptx_std::hopper::ring`): full/empty mbarriers per slot.
// ---------------------------------------------------------------------------

/// An mbarrier of `count` arrivals per phase: `arrivals / count` phases
/// have completed, the current one's parity is that count's lowest bit.
struct MBarrier {
    count: u32,
    arrivals: AtomicU32,
}

impl MBarrier {
    fn new(count: u32) -> Self {
        MBarrier { count, arrivals: AtomicU32::new(0) }
    }

    /// `mbarrier.arrive` (release, unless weakened).
    fn arrive(&self, order: Ordering) {
        self.arrivals.fetch_add(1, order);
    }

    /// Spins on `mbarrier.try_wait.parity` (acquire, unless weakened): done
    /// once the phase of parity `parity` has completed, that is while the
    /// current phase has the other parity (a fresh barrier, in phase 0,
    /// counts phase "-1", parity 1, as completed).
    fn wait_parity(&self, parity: u32, order: Ordering) {
        spin(&self.arrivals, order, |n| (n / self.count) & 1 != parity);
    }
}

/// A warp ring's geometry: `k` slots, `tiles` tiles of `n` elements,
/// `consumers` consumer threads (each reads elements `rank, rank +
/// consumers, ...` of a tile, as `ConsumerSlot::mine`).
#[derive(Debug, Clone, Copy)]
struct Warps {
    k: u32,
    tiles: u64,
    n: u64,
    consumers: u32,
}

/// The warp ring's orderings, waits and parities, each of which a variant
/// weakens.
#[derive(Debug, Clone, Copy)]
struct WarpProtocol {
    /// The copy's completion on *full* (`complete_tx`; modelled as the
    /// producer's arrival after its writes).
    commit: Ordering,
    /// The consumers' arrival on *empty* (`consumer_release`).
    release: Ordering,
    /// The consumers' wait on *full*.
    full_load: Ordering,
    /// The producer's wait on *empty*.
    empty_load: Ordering,
    full_wait: bool,
    empty_wait: bool,
    /// XORed into the consumers' / the producer's parity.
    consumer_flip: u32,
    producer_flip: u32,
    /// The phase never flips when the index wraps (parities of phase 0).
    stuck_phase: bool,
    /// The consumers take slot `(index + 1) % K`.
    consumer_slot_off: u32,
}

const WARPS: WarpProtocol = WarpProtocol {
    commit: Release,
    release: Release,
    full_load: Acquire,
    empty_load: Acquire,
    full_wait: true,
    empty_wait: true,
    consumer_flip: 0,
    producer_flip: 0,
    stuck_phase: false,
    consumer_slot_off: 0,
};

struct WarpRing {
    slots: Vec<Vec<Cell>>,
    full: Vec<MBarrier>,
    empty: Vec<MBarrier>,
}

impl WarpRing {
    fn new(w: Warps) -> Self {
        WarpRing {
            slots: slots(w.k as u64, w.n),
            // Full: the producer's one arrival (its bytes land with it);
            // empty: one arrival per consumer thread (`RingCore::init_with_halo`).
            full: (0..w.k).map(|_| MBarrier::new(1)).collect(),
            empty: (0..w.k).map(|_| MBarrier::new(w.consumers)).collect(),
        }
    }
}

impl WarpProtocol {
    fn producer_parity(&self, s: &RingState) -> u32 {
        if self.stuck_phase { 1 } else { s.producer_parity() ^ self.producer_flip }
    }
    fn consumer_parity(&self, s: &RingState) -> u32 {
        if self.stuck_phase { 0 } else { s.consumer_parity() ^ self.consumer_flip }
    }
}

/// `Producer::acquire` then `ProducerSlot::commit_copy`, per tile.
fn producer(r: &WarpRing, w: Warps, p: WarpProtocol) {
    let mut st = RingState::new(w.k);
    for t in 0..w.tiles {
        let i = st.index() as usize;
        if p.empty_wait {
            r.empty[i].wait_parity(p.producer_parity(&st), p.empty_load);
        }
        // The slot's previous copy has landed (already so here: the model's
        // copy is synchronous).
        r.full[i].wait_parity(p.producer_parity(&st), Acquire);
        for e in 0..w.n {
            write(&r.slots[i][e as usize], value(t, e));
        }
        r.full[i].arrive(p.commit);
        st.advance();
    }
}

/// `Consumer::wait`, this rank's reads, then `ConsumerSlot::release`, per tile.
fn consumer(r: &WarpRing, w: Warps, p: WarpProtocol, rank: u32) {
    let mut st = RingState::new(w.k);
    for t in 0..w.tiles {
        let i = ((st.index() + p.consumer_slot_off) % w.k) as usize;
        if p.full_wait {
            r.full[i].wait_parity(p.consumer_parity(&st), p.full_load);
        }
        for e in (rank as u64..w.n).step_by(w.consumers as usize) {
            assert_eq!(read(&r.slots[i][e as usize]), value(t, e), "wrong data: consumer {rank}, tile {t} element {e}");
        }
        r.empty[i].arrive(p.release);
        st.advance();
    }
}

fn warp_ring(w: Warps, p: WarpProtocol) -> impl Fn() + Send + Sync + 'static {
    move || {
        let r = Arc::new(WarpRing::new(w));
        blocks(1 + w.consumers as u64, move |b| if b == 0 { producer(&r, w, p) } else { consumer(&r, w, p, b as u32 - 1) });
    }
}

/// K = 1, two tiles: the slot's phase flips between them.
const W_K1: Warps = Warps { k: 1, tiles: 2, n: 2, consumers: 1 };
/// K = 2, three tiles: slot 0 wraps once, slot 1 does not.
const W_K2: Warps = Warps { k: 2, tiles: 3, n: 2, consumers: 1 };
/// Two consumer threads: the empty barrier completes on the second arrival.
const W_C2: Warps = Warps { k: 1, tiles: 2, n: 2, consumers: 2 };

#[test]
fn warp_ring_protocol_holds_k1() {
    model(warp_ring(W_K1, WARPS));
}

#[test]
fn warp_ring_protocol_holds_k2() {
    model(warp_ring(W_K2, WARPS));
}

#[test]
fn warp_ring_protocol_holds_with_two_consumers() {
    model(warp_ring(W_C2, WARPS));
}

#[test]
fn warp_ring_commit_relaxed_is_a_race() {
    assert_found(find(warp_ring(W_K1, WarpProtocol { commit: Relaxed, ..WARPS })), &[Found::Race]);
}

#[test]
fn warp_ring_release_relaxed_is_a_race() {
    assert_found(find(warp_ring(W_K1, WarpProtocol { release: Relaxed, ..WARPS })), &[Found::Race]);
}

#[test]
fn warp_ring_one_consumers_release_relaxed_is_a_race() {
    // The other consumer's release is not enough: each one's reads must be
    // ordered before the refill.
    assert_found(find(warp_ring(W_C2, WarpProtocol { release: Relaxed, ..WARPS })), &[Found::Race]);
}

#[test]
fn warp_ring_full_wait_relaxed_is_a_race() {
    assert_found(find(warp_ring(W_K1, WarpProtocol { full_load: Relaxed, ..WARPS })), &[Found::Race]);
}

#[test]
fn warp_ring_empty_wait_relaxed_is_a_race() {
    assert_found(find(warp_ring(W_K1, WarpProtocol { empty_load: Relaxed, ..WARPS })), &[Found::Race]);
}

#[test]
fn warp_ring_without_the_full_wait_is_found() {
    assert_found(find(warp_ring(W_K1, WarpProtocol { full_wait: false, ..WARPS })), &[Found::Race, Found::WrongData]);
}

#[test]
fn warp_ring_without_the_empty_wait_is_a_race() {
    assert_found(find(warp_ring(W_K1, WarpProtocol { empty_wait: false, ..WARPS })), &[Found::Race]);
}

#[test]
fn warp_ring_consumer_parity_flipped_is_found() {
    assert_found(find(warp_ring(W_K1, WarpProtocol { consumer_flip: 1, ..WARPS })), &[Found::Race, Found::WrongData]);
}

#[test]
fn warp_ring_producer_parity_flipped_is_stuck() {
    // The producer waits for phase 0 of a fresh empty barrier, which only
    // the consumers' release of the tile it never copies would complete.
    assert_found(find(warp_ring(W_K1, WarpProtocol { producer_flip: 1, ..WARPS })), &[Found::Stuck]);
}

#[test]
fn warp_ring_phase_not_flipped_on_wrap_is_found() {
    // The second use of the slot: the producer waits for a phase that has
    // not completed, the consumer takes one that completed a use ago.
    assert_found(find(warp_ring(W_K1, WarpProtocol { stuck_phase: true, ..WARPS })), &[Found::Race, Found::WrongData, Found::Stuck]);
}

#[test]
fn warp_ring_consumer_on_the_wrong_slot_is_found() {
    assert_found(find(warp_ring(W_K2, WarpProtocol { consumer_slot_off: 1, ..WARPS })), &[Found::Race, Found::WrongData, Found::Stuck]);
}
