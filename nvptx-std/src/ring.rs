//! Flag rings: the `flags` grain, where every stage of a pipeline is one
//! kernel running for the whole stream, all of them at once, and slots
//! pass from stage to stage through counters in device memory instead of
//! CUDA events.
//!
//! The blocks of each stage kernel form `G` groups of `P` (the plan's
//! `pieces`); group `g` takes the chunks `g, g + G, g + 2G, ...`, each of
//! its blocks one piece of each; chunk `c` uses slot `c % K`. Per slot, the
//! counters of [`RingFlags`] carry exactly the event graph's two edges, each
//! block adding 1 when it is done with its piece: the writer of use `u` of a
//! slot waits until `freed >= P u` (*freed*: every piece of use `u - 1`
//! read), the reader until `filled >= P (u + 1)` (*filled*: every piece of
//! use `u` written). A wait is one thread's `ld.acquire.gpu` loop followed
//! by a barrier; a hand-off is a barrier followed by one thread's
//! `red.release.gpu.add`: the standard pattern by which the whole block's
//! accesses are ordered with the other kernel's.
//!
//! The kernels never touch the protocol: they call a stage runner
//! ([`source`], [`map`], [`sink`]) with a per-element function, and the
//! runner waits, hands the thread its elements, and publishes, in that
//! order, for every chunk. A missing wait or release is not writable: the
//! counters of [`RingFlags`] are private (only this module reaches them,
//! through `unsafe` accessors); of [`RingControl`], safe code can only read
//! the status and record a stop, which ends the run early with an error
//! (never a race on a slot); and the fault bits of
//! [`StageCtx::with_faults`], for the sync checker, are behind `unsafe`.
//!
//! The protocol holds only when the kernel runs as a stage of the flags
//! grain, launched by its executor beside the other stages: in any other
//! launch every block would take every chunk of the ring at once. So the
//! runners need a [`StageCtx`], which only the `unsafe` [`StageCtx::new`]
//! makes (its contract is that launch), and `#[kernel]` takes
//! [`RingSlots`] only in the flag shapes (a source, a map, a sink; see
//! `nvptx_std::kernel`) and never makes such a kernel a `MapKernel` or
//! `HaloKernel` of the default grain. Every wait has a watchdog: past
//! [`RingPlan::timeout_ns`] it records the stage, ring, slot and chunk in
//! [`RingControl`] and every block of every stage leaves, so a stuck ring
//! becomes an error on the host, never a hang.
//!
//! ```
//! use nvptx_std::ring::{RingSlots, StageCtx};
//! use kernel_math::ring::{RingControl, RingFlags, RingPlan};
//! // The body of a map stage of the flags grain: out = 2 * in.
//! fn double(plan: &RingPlan, ctl: &RingControl, input: RingSlots<f32>, in_flags: &RingFlags, output: RingSlots<f32>, out_flags: &RingFlags) {
//!     // SAFETY: the kernel is launched only as stage 1 of a flag pipeline
//!     // (`pc_pipeline::Stage::with_flags_map`).
//!     let ctx = unsafe { StageCtx::new(plan, ctl, 1) };
//!     nvptx_std::ring::map(&ctx, (input, in_flags), (output, out_flags), 0, |x| 2.0 * x);
//! }
//! ```
use crate::param::RingParam;
use crate::{globaltimer_ns, spin_ns, sreg};
use core::marker::PhantomData;
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel_math::Element;
use kernel_math::ring::{self, StopAt};
pub use kernel_math::ring::{MAX_RING_SLOTS, RingControl, RingFlags, RingPlan, fault, stop, waiting};

/// Loads (of 16 bytes, or single elements) each thread issues before it
/// uses the first: several in flight per thread, since a chunk in L2 is
/// latency-bound, not bandwidth-bound.
const BATCH: usize = 4;

/// The K slots of one flag ring as a kernel parameter. The kernel at the
/// ring's other end runs at the same time, so no `&[T]` of it is ever
/// made beyond the slot a stage runner holds, between its wait
/// and its release. A kernel can do nothing with it but hand it to a
/// runner; `#[kernel]` takes it only in the flag shapes.
pub struct RingSlots<'a, T> {
    ptr: *mut T,
    len: usize,
    _slots: PhantomData<&'a [T]>,
}

impl<T: Element> RingParam for RingSlots<'_, T> {
    type Elem = T;
    #[inline(always)]
    unsafe fn from_raw(ptr: *mut T, len: usize) -> Self {
        RingSlots { ptr, len, _slots: PhantomData }
    }
}

/// One stage kernel's place in a flag pipeline: the shared plan and
/// control records, and the stage's index (errors name it).
pub struct StageCtx<'a> {
    /// A copy: the kernels read it once, not after every wait (the
    /// acquires and barriers would make the compiler reload a reference).
    plan: RingPlan,
    ctl: &'a RingControl,
    stage: u32,
    faults: u32,
    stamps: &'a [AtomicU64],
}

impl<'a> StageCtx<'a> {
    /// The context the stage runners ([`source`], [`map`], [`sink`]) and
    /// [`check_records`] take.
    ///
    /// # Safety
    /// The kernel calling it is launched only as stage `stage` of a flag
    /// pipeline, by the flags grain's executor (`pc_pipeline`'s
    /// `Launch::Flags`; its launcher's contract): `plan` and `ctl` are that
    /// run's, every ring handed to a runner with this context is a ring of
    /// that run (ring `stage - 1` read, ring `stage` written) whose other end
    /// is the neighbouring stage's kernel, launched with the same plan and
    /// K, every block of every stage resident at once, the flags and control
    /// zeroed before the run. The runners' waits and hand-offs keep the
    /// stages off each other's slots only then. In any other launch (say,
    /// the default grain's launch per chunk, where each of the grid's blocks
    /// runs the whole ring) blocks and kernels write the same slots at once:
    /// a data race.
    pub unsafe fn new(plan: &'a RingPlan, ctl: &'a RingControl, stage: u32) -> Self {
        StageCtx { plan: *plan, ctl, stage, faults: 0, stamps: &[] }
    }

    /// The same stage, recording `%globaltimer` per chunk into `stamps`:
    /// `stamps[(stage * chunks + c) * 3 + k]` with k = 0 when the block
    /// starts waiting for chunk `c`, 1 when its input is there (*filled*
    /// seen; for a source, its slot *freed*), 2 when it published the chunk
    /// (block 0 of the chunk's group only). Shorter `stamps` (say empty)
    /// record nothing.
    pub fn with_stamps(self, stamps: &'a [AtomicU64]) -> Self {
        StageCtx { stamps, ..self }
    }

    #[inline(always)]
    fn stamp(&self, c: u64, k: u64) {
        if self.stamps.is_empty() || sreg::tid() != 0 || !(sreg::ctaid() as u64).is_multiple_of(self.pieces()) {
            return;
        }
        let i = (self.stage as u64 * self.plan.chunks + c) * 3 + k;
        if let Some(cell) = self.stamps.get(i as usize) {
            cell.store(globaltimer_ns(), Ordering::Relaxed);
        }
    }

    /// The same stage with parts of the protocol removed ([`fault`] bits),
    /// to show what each part prevents.
    ///
    /// # Safety
    /// Without them the stages race on ring slots: a slot is read while it
    /// is written. Only for demonstrations whose results are compared, never
    /// trusted; the element types (any bits valid) keep the values defined
    /// on the GPU, not in Rust's model.
    pub unsafe fn with_faults(self, faults: u32) -> Self {
        StageCtx { faults, ..self }
    }

    pub fn plan(&self) -> &RingPlan {
        &self.plan
    }

    fn stopped(&self) -> bool {
        self.ctl.status() != stop::NONE
    }

    /// Records why the pipeline stops (the first reason wins).
    fn stop(&self, status: u32, at: At, (have, want): (u32, u32)) {
        self.ctl.record_stop(StopAt { status, stage: self.stage, ring: at.ring, slot: at.slot, chunk: at.chunk, waiting_for: at.what, have, want });
    }

    /// Blocks per chunk (P): each takes one piece of it.
    fn pieces(&self) -> u64 {
        self.plan.pieces.max(1)
    }

    /// This block's chunks, in order: its group `ctaid / P` of the
    /// `nctaid / P` groups takes chunks `group, group + groups, ...`.
    fn my_chunks(&self) -> impl Iterator<Item = u64> {
        let p = self.pieces();
        let groups = (sreg::nctaid() as u64 / p).max(1);
        ring::group_chunks(sreg::ctaid() as u64 / p, groups, self.plan.chunks)
    }

    /// This block's piece of a chunk of `n` elements: `(start, end)`.
    fn my_piece(&self, n: u64) -> (u64, u64) {
        ring::piece(n, self.pieces(), sreg::ctaid() as u64 % self.pieces())
    }

    /// The counter values that mean use `u` of a slot was written by all
    /// P blocks (*filled*) and that use `u - 1` was read by all (*freed*).
    fn filled_target(&self, u: u32) -> u32 {
        ring::filled_target(u, self.pieces())
    }
    fn freed_target(&self, u: u32) -> u32 {
        ring::freed_target(u, self.pieces())
    }

    fn k(&self) -> u64 {
        self.plan.slots
    }
}

/// Where a block waits: ring, slot, chunk, and which counter ([`waiting`]).
#[derive(Clone, Copy)]
struct At {
    ring: u32,
    slot: u32,
    chunk: u64,
    what: u32,
}

/// A ring as one stage sees it, its geometry checked.
struct Ring<'a, T> {
    base: *mut T,
    stride: usize,
    flags: &'a RingFlags,
    /// Ring `r` joins stages `r` and `r + 1`.
    index: u32,
}

impl<'a, T: Element> Ring<'a, T> {
    /// `None` (and the pipeline stopped with [`stop::BAD_RING`]) unless the
    /// slots hold K slots of at least a chunk each.
    fn new(ctx: &StageCtx<'_>, (slots, flags): (RingSlots<'a, T>, &'a RingFlags), index: u32) -> Option<Self> {
        let k = ctx.k();
        let stride = if k == 0 { 0 } else { slots.len / k as usize };
        let grid_ok = (sreg::nctaid() as u64).is_multiple_of(ctx.pieces());
        if k == 0 || k > MAX_RING_SLOTS as u64 || (stride as u64) < ctx.plan.chunk_elements || slots.ptr.is_null() || !grid_ok {
            ctx.stop(stop::BAD_RING, At { ring: index, slot: 0, chunk: 0, what: 0 }, (0, 0));
            return None;
        }
        Some(Ring { base: slots.ptr, stride, flags, index })
    }

    /// Slot `s`'s counters.
    fn filled(&self, s: usize) -> &'a AtomicU32 {
        // SAFETY: this module is the protocol the accessor is for.
        unsafe { self.flags.filled(s) }
    }
    fn freed(&self, s: usize) -> &'a AtomicU32 {
        // SAFETY: as in `filled`.
        unsafe { self.flags.freed(s) }
    }

    fn slot(&self, ctx: &StageCtx<'_>, chunk: u64) -> (usize, u32) {
        ring::slot_use(chunk, ctx.k())
    }
}

/// Thread 0 waits until `counter >= want` (or the pipeline stops, or the
/// watchdog fires), then the whole block synchronizes; `false` in every
/// thread when the block must leave.
#[inline(always)]
fn block_wait(ctx: &StageCtx<'_>, counter: &AtomicU32, want: u32, at: At) -> bool {
    let mut ok = true;
    if sreg::tid() == 0 {
        let start = globaltimer_ns();
        let mut spins = 0u32;
        loop {
            let have = load_acquire(counter);
            if have >= want {
                break;
            }
            // The other kernels' stop and the clock, every 16th poll only:
            // each costs a round trip the hand-off would wait for.
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(16) {
                if ctx.stopped() {
                    ok = false;
                    break;
                }
                if globaltimer_ns().wrapping_sub(start) > ctx.plan.timeout_ns {
                    ctx.stop(stop::TIMEOUT, at, (have, want));
                    ok = false;
                    break;
                }
            }
        }
    }
    // One barrier: it orders the block's accesses after thread 0's acquire,
    // and tells every thread whether to go on.
    !barrier_any(!ok)
}

/// Adds this block's 1 to `counter` once every thread of the block is done
/// with the slot (a barrier, then one thread's release add); `early` (a
/// fault) skips the barrier and adds relaxed.
#[inline(always)]
fn block_publish(counter: &AtomicU32, early: bool) {
    if early {
        if sreg::tid() == 0 {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    barrier();
    if sreg::tid() == 0 {
        add_release(counter);
    }
}

/// A writing stage's delay of `spin` ns before it writes a chunk. Under
/// the early-filled fault only warps other than warp 0 wait: thread 0's
/// early release then comes while they have yet to write, which is the
/// race that fault leaves open (with every warp delayed alike, they would
/// all be done by the time it shows).
#[inline(always)]
fn spin_writer(ctx: &StageCtx<'_>, spin: u64) {
    if ctx.faults & fault::EARLY_FILLED == 0 || sreg::tid() >= 32 {
        spin_ns(spin);
    }
}

/// A source stage: element `i` (its index in the whole stream) of each of
/// this block's chunks becomes `f(i)`; `spin` ns of delay before each chunk.
#[inline(always)]
pub fn source<T: Element>(ctx: &StageCtx<'_>, out: (RingSlots<'_, T>, &RingFlags), spin: u64, f: impl Fn(u64) -> T) {
    let Some(out) = Ring::new(ctx, out, ctx.stage) else { return };
    for c in ctx.my_chunks() {
        let (s, u) = out.slot(ctx, c);
        ctx.stamp(c, 0);
        if ctx.faults & fault::SKIP_FREED_WAIT == 0
            && !block_wait(ctx, out.freed(s), ctx.freed_target(u), At { ring: out.index, slot: s as u32, chunk: c, what: waiting::FREED })
        {
            return;
        }
        ctx.stamp(c, 1);
        spin_writer(ctx, spin);
        let (first, n) = ctx.plan.chunk(c);
        let w = work(ctx, n, size_of::<T>() == 4);
        // SAFETY: slot s of chunk c is this block's until it publishes
        // *filled* (the protocol), in bounds (Ring::new checked K slots of
        // a chunk), and each index goes to one thread.
        let slot = unsafe { out.base.add(s * out.stride) };
        for g in w.quads {
            let i = first + 4 * g;
            unsafe { (slot as *mut Q<T>).add(g as usize).write(Q([f(i), f(i + 1), f(i + 2), f(i + 3)])) };
        }
        for i in w.singles {
            unsafe { slot.add(i as usize).write(f(first + i)) };
        }
        block_publish(out.filled(s), ctx.faults & fault::EARLY_FILLED != 0);
        ctx.stamp(c, 2);
    }
}

/// A map stage: each element of each chunk from `input` goes through `f`
/// into `output` (same index); `spin` ns of delay after each chunk's input
/// is acquired and before it is read.
#[inline(always)]
pub fn map<I: Element, O: Element>(
    ctx: &StageCtx<'_>,
    input: (RingSlots<'_, I>, &RingFlags),
    output: (RingSlots<'_, O>, &RingFlags),
    spin: u64,
    f: impl Fn(I) -> O,
) {
    let (Some(inp), Some(out)) = (Ring::new(ctx, input, ctx.stage.wrapping_sub(1)), Ring::new(ctx, output, ctx.stage)) else { return };
    for c in ctx.my_chunks() {
        let (s, _) = inp.slot(ctx, c);
        ctx.stamp(c, 0);
        if !acquire_read(ctx, &inp, c) {
            return;
        }
        if ctx.faults & fault::EARLY_FREED != 0 && sreg::tid() == 0 {
            inp.freed(s).fetch_add(1, Ordering::Relaxed);
        }
        ctx.stamp(c, 1);
        let (so, uo) = out.slot(ctx, c);
        if ctx.faults & fault::SKIP_FREED_WAIT == 0
            && !block_wait(ctx, out.freed(so), ctx.freed_target(uo), At { ring: out.index, slot: so as u32, chunk: c, what: waiting::FREED })
        {
            return;
        }
        spin_writer(ctx, spin);
        let w = work(ctx, ctx.plan.chunk(c).1, size_of::<I>() == 4 && size_of::<O>() == 4);
        // SAFETY: both slots are this block's now (the protocol), in bounds,
        // and each index goes to one thread.
        let (src, dst) = unsafe { (inp.base.add(s * inp.stride) as *const I, out.base.add(so * out.stride)) };
        // Groups of 4 (16-byte loads and stores), BATCH groups in flight.
        let mut qs = w.quads;
        loop {
            let mut idx = [u64::MAX; BATCH];
            let mut vals: [Option<Q<I>>; BATCH] = [None; BATCH];
            for j in 0..BATCH {
                if let Some(g) = qs.next() {
                    idx[j] = g;
                    vals[j] = Some(unsafe { (src as *const Q<I>).add(g as usize).read() });
                }
            }
            if idx[0] == u64::MAX {
                break;
            }
            for j in 0..BATCH {
                if let Some(v) = vals[j] {
                    unsafe { (dst as *mut Q<O>).add(idx[j] as usize).write(Q(v.0.map(&f))) };
                }
            }
        }
        let mut it = w.singles;
        loop {
            // BATCH loads in flight, then BATCH stores.
            let mut idx = [u64::MAX; BATCH];
            let mut vals: [Option<I>; BATCH] = [None; BATCH];
            for j in 0..BATCH {
                if let Some(i) = it.next() {
                    idx[j] = i;
                    vals[j] = Some(unsafe { src.add(i as usize).read() });
                }
            }
            if idx[0] == u64::MAX {
                break;
            }
            for j in 0..BATCH {
                if let Some(v) = vals[j] {
                    unsafe { dst.add(idx[j] as usize).write(f(v)) };
                }
            }
        }
        // Both hand-offs behind one barrier: the output slot is filled and
        // the input slot freed (every thread's reads and writes are done).
        let (early_filled, early_freed) = (ctx.faults & fault::EARLY_FILLED != 0, ctx.faults & fault::EARLY_FREED != 0);
        if early_filled && sreg::tid() == 0 {
            out.filled(so).fetch_add(1, Ordering::Relaxed);
        }
        barrier();
        if sreg::tid() == 0 {
            if !early_filled {
                add_release(out.filled(so));
            }
            if !early_freed {
                add_release(inp.freed(s));
            }
        }
        ctx.stamp(c, 2);
    }
}

/// A sink stage: `f(c, share)` once per chunk `c` (local index) in every
/// thread, `share` being this thread's elements of the chunk; `f` must
/// leave its result where the host reads it (atomics into records).
#[inline(always)]
pub fn sink<I: Element>(ctx: &StageCtx<'_>, input: (RingSlots<'_, I>, &RingFlags), spin: u64, mut f: impl FnMut(u64, Share<'_, I>)) {
    let Some(inp) = Ring::new(ctx, input, ctx.stage.wrapping_sub(1)) else { return };
    for c in ctx.my_chunks() {
        let (s, _) = inp.slot(ctx, c);
        ctx.stamp(c, 0);
        if !acquire_read(ctx, &inp, c) {
            return;
        }
        ctx.stamp(c, 1);
        let early = ctx.faults & fault::EARLY_FREED != 0;
        if early && sreg::tid() == 0 {
            inp.freed(s).fetch_add(1, Ordering::Relaxed);
        }
        spin_ns(spin);
        let w = work(ctx, ctx.plan.chunk(c).1, size_of::<I>() == 4);
        // SAFETY: the slot is this block's to read until it publishes *freed*.
        let src = unsafe { inp.base.add(s * inp.stride) as *const I };
        f(c, Share { src, work: w, cur: None, pos: 0, _slot: PhantomData });
        if !early {
            block_publish(inp.freed(s), false);
        }
        ctx.stamp(c, 2);
    }
}

/// Checks that a sink's `records` hold one record per chunk; otherwise
/// stops the pipeline ([`stop::BAD_RECORDS`]) and returns `false`.
pub fn check_records(ctx: &StageCtx<'_>, records: usize) -> bool {
    if (records as u64) < ctx.plan.chunks {
        ctx.stop(stop::BAD_RECORDS, At { ring: ctx.stage, slot: 0, chunk: 0, what: 0 }, (records as u32, ctx.plan.chunks as u32));
        return false;
    }
    true
}

fn acquire_read<T: Element>(ctx: &StageCtx<'_>, inp: &Ring<'_, T>, c: u64) -> bool {
    let (s, u) = inp.slot(ctx, c);
    ctx.faults & fault::SKIP_FILLED_WAIT != 0
        || block_wait(ctx, inp.filled(s), ctx.filled_target(u), At { ring: inp.index, slot: s as u32, chunk: c, what: waiting::FILLED })
}

/// Four elements moved as one 16-byte access (slots are 256-byte aligned).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Q<T>([T; 4]);

/// One thread's part of a block's piece of a chunk: whole groups of 4
/// elements moved 16 bytes at a time (4-byte types: `quads`, group
/// indices), then single elements (`singles`: the piece itself for other
/// types, the chunk's last `n % 4` elements, in the last piece, for 4-byte
/// ones). Each block-stride: `tid, tid + ntid, ...`.
struct Work {
    quads: core::iter::StepBy<core::ops::Range<u64>>,
    singles: core::iter::StepBy<core::ops::Range<u64>>,
}

#[inline(always)]
fn work(ctx: &StageCtx<'_>, n: u64, vec: bool) -> Work {
    if !vec {
        let (lo, hi) = ctx.my_piece(n);
        return Work { quads: share(0, 0), singles: share(lo, hi) };
    }
    let quads = n / 4;
    let (qlo, qhi) = ctx.my_piece(quads);
    let last = sreg::ctaid() as u64 % ctx.pieces() == ctx.pieces() - 1;
    let (slo, shi) = if last { (4 * quads, n) } else { (0, 0) };
    Work { quads: share(qlo, qhi), singles: share(slo, shi) }
}

/// One thread's elements of a chunk being read (see `Work`).
pub struct Share<'s, T> {
    src: *const T,
    work: Work,
    cur: Option<Q<T>>,
    pos: usize,
    _slot: PhantomData<&'s [T]>,
}

impl<T: Element> Iterator for Share<'_, T> {
    type Item = T;
    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        if let Some(q) = self.cur
            && self.pos < 4
        {
            self.pos += 1;
            return Some(q.0[self.pos - 1]);
        }
        // SAFETY: groups and indices below the chunk's length, in a slot
        // this block holds; groups only for 4-byte types (16 bytes each).
        if let Some(g) = self.work.quads.next() {
            let q = unsafe { (self.src as *const Q<T>).add(g as usize).read() };
            self.cur = Some(q);
            self.pos = 1;
            return Some(q.0[0]);
        }
        self.work.singles.next().map(|i| unsafe { self.src.add(i as usize).read() })
    }

    /// `for_each` and friends: 16-byte loads kept whole (`next` keeps a
    /// group between calls, which the compiler splits into 4-byte loads).
    #[inline(always)]
    fn fold<B, F: FnMut(B, T) -> B>(self, init: B, mut f: F) -> B {
        let mut acc = init;
        if let Some(q) = self.cur {
            for &x in &q.0[self.pos.min(4)..] {
                acc = f(acc, x);
            }
        }
        for g in self.work.quads {
            // SAFETY: as in `next`.
            let q = unsafe { (self.src as *const Q<T>).add(g as usize).read() };
            for x in q.0 {
                acc = f(acc, x);
            }
        }
        for i in self.work.singles {
            acc = f(acc, unsafe { self.src.add(i as usize).read() });
        }
        acc
    }
}

/// This thread's indices of `lo..hi` in a block-stride loop.
#[inline(always)]
fn share(lo: u64, hi: u64) -> core::iter::StepBy<core::ops::Range<u64>> {
    (lo + sreg::tid() as u64..hi).step_by(sreg::ntid().max(1) as usize)
}

#[cfg(target_arch = "nvptx64")]
#[inline(always)]
fn load_acquire(a: &AtomicU32) -> u32 {
    let v: u32;
    // SAFETY: an aligned u32 in global memory, read atomically.
    unsafe { core::arch::asm!("ld.acquire.gpu.u32 {v}, [{a}];", v = out(reg32) v, a = in(reg64) a.as_ptr(), options(nostack)) };
    v
}
#[cfg(not(target_arch = "nvptx64"))]
fn load_acquire(a: &AtomicU32) -> u32 {
    a.load(Ordering::Acquire)
}

#[cfg(target_arch = "nvptx64")]
#[inline(always)]
fn add_release(a: &AtomicU32) {
    // SAFETY: an aligned u32 in global memory, added to atomically.
    unsafe { core::arch::asm!("red.release.gpu.add.u32 [{a}], 1;", a = in(reg64) a.as_ptr(), options(nostack)) };
}
#[cfg(not(target_arch = "nvptx64"))]
fn add_release(a: &AtomicU32) {
    a.fetch_add(1, Ordering::Release);
}

/// `bar.sync 0`: every thread of the block. The runners call it from code
/// every thread of the block runs (the same loop over the same chunks).
#[inline(always)]
fn barrier() {
    #[cfg(target_arch = "nvptx64")]
    // SAFETY: reached by every thread of the block (see above).
    unsafe {
        core::arch::nvptx::_syncthreads()
    }
}

/// `bar.red.or.pred`: a barrier that returns whether any thread passed `true`.
#[inline(always)]
fn barrier_any(p: bool) -> bool {
    #[cfg(target_arch = "nvptx64")]
    {
        let r: u32;
        // SAFETY: a block-wide barrier reached by every thread (see `barrier`).
        unsafe {
            core::arch::asm!(
                "{{ .reg .pred p; .reg .pred q; setp.ne.u32 p, {x}, 0; bar.red.or.pred q, 0, p; selp.u32 {r}, 1, 0, q; }}",
                x = in(reg32) p as u32, r = out(reg32) r, options(nostack)
            )
        };
        r != 0
    }
    #[cfg(not(target_arch = "nvptx64"))]
    p
}
