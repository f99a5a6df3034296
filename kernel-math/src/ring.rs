//! The device-memory records of a flag ring (the `flags` grain): kernels of
//! a pipeline run at the same time, each stage's blocks handing ring slots
//! to the next stage's through per-slot counters. Laid out here, once, for
//! the kernels (`nvptx_std::ring` implements the protocol over them) and
//! for the host, which allocates, zeroes and reads them.
//!
//! The counters are the event graph's edges, per slot: `filled[s]` counts
//! the pieces of slot `s` written so far (the *filled* edge: the reader of
//! use `u` waits for `filled[s] >= P (u + 1)`, P pieces a chunk), `freed[s]`
//! the pieces read so far (the *freed* edge: the writer of use `u` waits
//! for `freed[s] >= P u`).
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Most slots a flag ring has (the counters are a fixed array, so that a
/// ring's flags are one `&RingFlags` kernel parameter).
pub const MAX_RING_SLOTS: usize = 256;

/// One ring's per-slot counters. Zeroed by the host before each run.
///
/// The fields are private: a kernel that takes `&RingFlags` cannot add to a
/// counter itself (say, *filled* before it wrote the slot, which lets the
/// reader read while it writes). Only the protocol (`nvptx_std::ring`)
/// reaches them, through the `unsafe` accessors.
#[repr(C)]
pub struct RingFlags {
    /// `filled[s]`: pieces of slot `s` whose writing finished, over all uses.
    filled: [AtomicU32; MAX_RING_SLOTS],
    /// `freed[s]`: pieces of slot `s` whose reading finished, over all uses.
    freed: [AtomicU32; MAX_RING_SLOTS],
}

impl RingFlags {
    /// Slot `slot`'s *filled* counter (panics past [`MAX_RING_SLOTS`]).
    ///
    /// # Safety
    /// Only the flag ring protocol (`nvptx_std::ring`) may use it: it adds
    /// to a counter exactly when every thread of the block is done with its
    /// piece of the slot (with release ordering), and waits on it with
    /// acquire ordering. An add at any other time hands the slot to the
    /// other kernel while this one still uses it: a data race on the slot.
    #[doc(hidden)]
    #[inline(always)]
    pub unsafe fn filled(&self, slot: usize) -> &AtomicU32 {
        &self.filled[slot]
    }

    /// Slot `slot`'s *freed* counter (panics past [`MAX_RING_SLOTS`]).
    ///
    /// # Safety
    /// As [`RingFlags::filled`].
    #[doc(hidden)]
    #[inline(always)]
    pub unsafe fn freed(&self, slot: usize) -> &AtomicU32 {
        &self.freed[slot]
    }
}

/// Slot and use of local chunk `chunk` in a ring of `slots` (K) slots:
/// chunk `c` is use `c / K` of slot `c % K`. The flag ring's stage runners
/// and its loom model (`tests/loom_rings.rs`) both decide with it.
#[inline(always)]
pub fn slot_use(chunk: u64, slots: u64) -> (usize, u32) {
    ((chunk % slots) as usize, (chunk / slots) as u32)
}

/// The *filled* value the reader of use `u` of a slot waits for: every one
/// of the `pieces` (P) pieces of use `u` written, `P (u + 1)`.
#[inline(always)]
pub fn filled_target(u: u32, pieces: u64) -> u32 {
    (u + 1).wrapping_mul(pieces as u32)
}

/// The *freed* value the writer of use `u` of a slot waits for: every
/// piece of use `u - 1` read, `P u` (0 for the first use: no wait).
#[inline(always)]
pub fn freed_target(u: u32, pieces: u64) -> u32 {
    u.wrapping_mul(pieces as u32)
}

/// Piece `j` of `pieces` (P) of a chunk of `n` elements: `(start, end)`.
/// Block `j` of a chunk's group writes (or reads) exactly this part.
#[inline(always)]
pub fn piece(n: u64, pieces: u64, j: u64) -> (u64, u64) {
    (n * j / pieces, n * (j + 1) / pieces)
}

/// The chunks group `group` of `groups` takes, in order: `group, group +
/// groups, ...` below `chunks`.
#[inline(always)]
pub fn group_chunks(group: u64, groups: u64, chunks: u64) -> core::iter::StepBy<core::ops::Range<u64>> {
    (group..chunks).step_by(groups as usize)
}

/// Why a flag pipeline stopped early ([`RingStatus::status`]).
pub mod stop {
    /// Still running, or finished normally.
    pub const NONE: u32 = 0;
    /// A wait outlived the watchdog's timeout.
    pub const TIMEOUT: u32 = 1;
    /// A kernel's ring does not hold K slots of a chunk.
    pub const BAD_RING: u32 = 2;
    /// A sink's records hold fewer than one per chunk.
    pub const BAD_RECORDS: u32 = 3;
}

/// What a waiting block waited for ([`RingStatus::waiting_for`]).
pub mod waiting {
    /// A slot's *filled* counter (the reader's wait).
    pub const FILLED: u32 = 0;
    /// A slot's *freed* counter (the writer's wait).
    pub const FREED: u32 = 1;
}

/// Shared by every kernel of one flag pipeline: the first kernel to stop
/// (a watchdog that fired, a bad ring) records why here, and every waiting
/// block sees `status != 0` and leaves, so a stuck ring ends as an error
/// naming the stage and slot, never as a hang. Zeroed by the host before
/// each run and read after it as a [`RingStatus`] (same layout).
///
/// The fields are private: kernels reach it only through the protocol
/// (`nvptx_std::ring`), which reads [`RingControl::status`] and records a
/// stop with [`RingControl::record_stop`].
#[repr(C)]
pub struct RingControl {
    status: AtomicU32,
    stage: AtomicU32,
    ring: AtomicU32,
    slot: AtomicU32,
    chunk: AtomicU64,
    waiting_for: AtomicU32,
    /// The counter's value when the watchdog fired, and the value waited for.
    have: AtomicU32,
    want: AtomicU32,
    _pad: AtomicU32,
}

/// Where a flag ring stopped, as [`RingControl::record_stop`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopAt {
    /// One of [`stop`] (not [`stop::NONE`]).
    pub status: u32,
    pub stage: u32,
    pub ring: u32,
    pub slot: u32,
    pub chunk: u64,
    /// One of [`waiting`].
    pub waiting_for: u32,
    pub have: u32,
    pub want: u32,
}

impl RingControl {
    /// One of [`stop`]: [`stop::NONE`] while the pipeline runs (a relaxed
    /// load: waiting blocks poll it).
    #[inline(always)]
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::Relaxed)
    }

    /// Records why the pipeline stops, unless a stop is recorded already
    /// (the first reason wins); every waiting block then leaves. For the
    /// protocol (`nvptx_std::ring`): not unsafe, a stop only ends the run
    /// early with an error on the host.
    #[doc(hidden)]
    pub fn record_stop(&self, at: StopAt) {
        if self.status.compare_exchange(stop::NONE, at.status, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.stage.store(at.stage, Ordering::Relaxed);
            self.ring.store(at.ring, Ordering::Relaxed);
            self.slot.store(at.slot, Ordering::Relaxed);
            self.chunk.store(at.chunk, Ordering::Relaxed);
            self.waiting_for.store(at.waiting_for, Ordering::Relaxed);
            self.have.store(at.have, Ordering::Relaxed);
            self.want.store(at.want, Ordering::Relaxed);
        }
    }
}

/// [`RingControl`] as the host reads it after a run.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStatus {
    /// One of [`stop`].
    pub status: u32,
    /// The stage (index in the pipeline) that stopped.
    pub stage: u32,
    /// The ring it waited on (ring `r` joins stages `r` and `r + 1`).
    pub ring: u32,
    pub slot: u32,
    /// The chunk (local index) it was at.
    pub chunk: u64,
    /// One of [`waiting`].
    pub waiting_for: u32,
    pub have: u32,
    pub want: u32,
    pub _pad: u32,
}

const _: () = assert!(
    core::mem::size_of::<RingControl>() == core::mem::size_of::<RingStatus>()
        && core::mem::align_of::<RingControl>() == core::mem::align_of::<RingStatus>()
        && core::mem::size_of::<RingStatus>() == 40
);

/// A flag pipeline's geometry, the same for all its kernels (one GPU's share).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingPlan {
    /// Global index of local chunk 0 (sources use it for their values).
    pub first_chunk: u64,
    /// Chunks this GPU runs: local chunk `c` uses slot `c % slots`.
    pub chunks: u64,
    /// Elements per chunk (the last may be shorter).
    pub chunk_elements: u64,
    /// Elements in the whole stream.
    pub total_elements: u64,
    /// K, slots per ring (at most [`MAX_RING_SLOTS`]).
    pub slots: u64,
    /// The watchdog: a wait longer than this stops the pipeline.
    pub timeout_ns: u64,
    /// P, blocks per chunk: each writes or reads one piece of it (the
    /// grid is a multiple of P).
    pub pieces: u64,
}

impl RingPlan {
    /// Elements of local chunk `c`: `(global first element, count)`.
    #[inline(always)]
    pub fn chunk(&self, c: u64) -> (u64, u64) {
        let start = (self.first_chunk + c) * self.chunk_elements;
        let end = start + self.chunk_elements;
        let end = if end < self.total_elements { end } else { self.total_elements };
        (start, end.saturating_sub(start))
    }
}

/// Fault injection bits for the sync checker (see `nvptx_std::ring`): each
/// removes one part of the protocol.
pub mod fault {
    /// The reader does not wait for *filled*.
    pub const SKIP_FILLED_WAIT: u32 = 1;
    /// The writer does not wait for *freed*.
    pub const SKIP_FREED_WAIT: u32 = 2;
    /// *filled* is published before the block's writes are done (no
    /// barrier, a relaxed store): the release is gone.
    pub const EARLY_FILLED: u32 = 4;
    /// *freed* is published before the block's reads are done.
    pub const EARLY_FREED: u32 = 8;
}

/// Where one side of a warp ring (`nvptx_std::hopper::ring`) of `slots`
/// slots stands: the slot it works on next, the phase bit that slot's
/// barriers are in for this side, and how many slots it has passed. The
/// phase flips each time the index wraps. In the ring, only its verbs
/// advance their side's state (a copy advanced elsewhere changes nothing);
/// the ring's loom model (`tests/loom_rings.rs`) drives it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingState {
    index: u32,
    phase: u32,
    count: u32,
    slots: u32,
}

impl RingState {
    /// Slot 0, phase 0, nothing passed.
    pub const fn new(slots: u32) -> Self {
        RingState { index: 0, phase: 0, count: 0, slots }
    }

    #[inline(always)]
    pub fn index(&self) -> u32 {
        self.index
    }

    #[inline(always)]
    pub fn phase(&self) -> u32 {
        self.phase
    }

    #[inline(always)]
    pub fn count(&self) -> u32 {
        self.count
    }

    #[inline(always)]
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The parity the consumers wait for on the slot's *full* barrier: the
    /// phase this side is in, completed once the producer's copy landed.
    #[inline(always)]
    pub fn consumer_parity(&self) -> u32 {
        self.phase
    }

    /// The parity the producer waits for on the slot's *empty* barrier (and
    /// on its *full* barrier, for the slot's previous copy): the phase
    /// before this side's. A fresh barrier's phase before phase 0 counts as
    /// complete, so each slot's first use does not wait.
    #[inline(always)]
    pub fn producer_parity(&self) -> u32 {
        self.phase ^ 1
    }

    /// One slot further; past the last slot, slot 0 with the phase flipped.
    #[inline(always)]
    pub fn advance(&mut self) {
        self.index += 1;
        self.count += 1;
        if self.index >= self.slots {
            self.index = 0;
            self.phase ^= 1;
        }
    }
}

/// The warps grain's watchdog record, one per ring stage, in host memory
/// the GPU maps (`nvptx_std::hopper::ring`): a ring wait that outlives its
/// timeout writes where it waited, `fired` last, then traps; the host
/// reads it after the launch error and names the stage and slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarpWatch {
    /// Non-zero once a wait fired.
    pub fired: u32,
    /// What it waited for ([`warp_wait`]).
    pub what: u32,
    /// The slot, and the barrier phase parity it waited for.
    pub slot: u32,
    pub parity: u32,
    /// The block, and the first element of its tile (of the chunk).
    pub block: u32,
    pub _pad: u32,
    pub tile_start: u64,
    /// How long it had waited, in ns.
    pub waited_ns: u64,
}

/// [`WarpWatch::what`]: who waited for what.
pub mod warp_wait {
    /// The producer lane, for the consumers to release a slot (empty barrier).
    pub const RELEASED: u32 = 1;
    /// The producer lane, for a slot's earlier copy to land (full barrier).
    pub const LANDED: u32 = 2;
    /// A consumer thread, for a slot to fill (full barrier).
    pub const FILLED: u32 = 3;

    /// In words, for the host's error.
    pub fn describe(what: u32) -> &'static str {
        match what {
            RELEASED => "the producer lane waited for the consumers to release",
            LANDED => "the producer lane waited for the bulk copy into",
            FILLED => "a consumer thread waited for the bulk copy to fill",
            _ => "a thread waited on",
        }
    }
}
