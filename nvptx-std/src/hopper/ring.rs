//! A warp-specialized ring inside one block (sm_90, PTX 8.0): warp 0's
//! lane 0 is the producer, issuing `cp.async.bulk` copies from global memory
//! into K shared-memory slots; the other warps are consumers, computing on
//! each slot and writing out. Every slot has two mbarriers: *full* (the
//! producer's `arrive.expect_tx` plus the copy's bytes complete it) and
//! *empty* (every consumer thread arrives after reading). They are the
//! event graph's filled and freed edges, one block's worth.
//!
//! The four verbs are CUTLASS's, named for who calls them, and the protocol
//! lives in the types, not in each kernel:
//! - [`Producer::acquire`] (`producer_acquire`): waits until the next slot
//!   is empty, returns a [`ProducerSlot`];
//! - [`ProducerSlot::commit_copy`] (`producer_commit`): the slot fills from
//!   global memory; gives the [`Producer`] back, one slot further;
//! - [`Consumer::wait`] (`consumer_wait`): waits until the next slot is
//!   full, returns a [`ConsumerSlot`] whose data borrows it;
//! - [`ConsumerSlot::release`] (`consumer_release`): the slot is empty
//!   again; gives the [`Consumer`] back, one slot further.
//!
//! Slot index and phase live in a [`RingState`] that only these verbs
//! advance, and each verb takes its side by value: the next slot cannot be
//! taken before the current one is committed or released, a phase cannot be
//! picked by hand, and a slot dropped without its commit or release traps
//! (a launch error on the host) instead of leaving the other side waiting
//! forever; a wait that still has not completed after [`WAIT_TIMEOUT_NS`]
//! traps too. Which tile each slot holds is the ring's too: producer and
//! consumers walk the same [`Tiles`] schedule, so they cannot disagree.
//!
//! On the host the device operations are stand-ins that panic: `#[kernel]`
//! bodies type check there, and [`RingState`] and [`Tiles`] are tested there.
use crate::sreg;
use core::marker::PhantomData;
use kernel_math::ring::{WarpWatch, warp_wait};
use kernel_math::{Element, Word};

/// Most slots a ring has (its barriers fit [`HEADER_BYTES`]).
pub const MAX_SLOTS: u32 = 8;

/// Dynamic shared memory before slot 0: the 2 x [`MAX_SLOTS`] barriers
/// (8 bytes each), padded so that slot 0 starts 128-byte aligned.
pub const HEADER_BYTES: u32 = 128;

/// Threads of the producer warp (warp 0); the rest of the block consumes.
pub const PRODUCER_WARP: u32 = 32;

/// How long a ring wait spins before it traps: far longer than any tile
/// takes (even with the sync checker's slowed producer), so only a ring
/// that cannot move (a lost arrival, a fault) reaches it.
pub const WAIT_TIMEOUT_NS: u64 = 10_000_000_000;

/// Dynamic shared memory a ring of `slots` slots of `slot_bytes` bytes needs.
pub const fn shared_bytes(slots: u32, slot_bytes: u32) -> u32 {
    HEADER_BYTES + slots * slot_bytes
}

/// Fault knob bits the ring kernels read (the sync checker's, through the
/// unsafe `launch_with_faults`). Bit 0 is `pdl::fault::SKIP_WAIT`.
pub mod fault {
    /// Consumers skip the full barrier's wait: they read a slot before the
    /// producer's copy has landed in it.
    pub const SKIP_FULL_WAIT: u32 = 2;
    /// The producer lane drops its first slot without the copy (and stops):
    /// the consumers wait for it until the watchdog fires. A stuck ring on
    /// purpose, to test the watchdog's report.
    pub const STALL_PRODUCER: u32 = 4;
}

/// Where one side of a ring stands (slot, phase, count): shared with the
/// ring's loom model, which drives the same state (see `docs/loom.md`).
pub use kernel_math::ring::RingState;

/// One tile of the schedule: elements `start..start + len` of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub start: usize,
    pub len: usize,
}

/// The tiles of `0..len`, `tile` elements each (the last one shorter), that
/// block `block` of `blocks` handles: `block`, `block + blocks`, ...
#[derive(Debug, Clone, Copy)]
pub struct Tiles {
    len: usize,
    tile: usize,
    next: usize,
    step: usize,
}

impl Tiles {
    /// The schedule of block `block` of `blocks` (`tile` at least 1).
    pub fn new(len: usize, tile: usize, block: usize, blocks: usize) -> Self {
        Tiles { len, tile: tile.max(1), next: block, step: blocks.max(1) }
    }
}

impl Iterator for Tiles {
    type Item = Tile;
    fn next(&mut self) -> Option<Tile> {
        let start = self.next.checked_mul(self.tile)?;
        if start >= self.len {
            return None;
        }
        self.next += self.step;
        Some(Tile { start, len: (self.len - start).min(self.tile) })
    }
}

/// Elements of a tile that the bulk copy moves: the whole tile when its
/// first element is 16-byte aligned in global memory, less the elements
/// past the last whole [`bulk_unit`] (bulk copies move multiples of 16
/// bytes, so for a 12-byte element whole groups of 4); none when it is not
/// aligned. The rest is read from global memory directly.
pub fn bulk_elements<T>(tile_address: usize, len: usize) -> usize {
    let size = core::mem::size_of::<T>();
    if size == 0 || !tile_address.is_multiple_of(16) {
        return 0;
    }
    let unit = bulk_unit(size);
    len / unit * unit
}

/// The fewest elements of `size` bytes (> 0) whose bytes are a multiple of
/// 16: 16 over the largest power of two (at most 16) dividing `size`.
pub const fn bulk_unit(size: usize) -> usize {
    16 >> if size.trailing_zeros() > 4 { 4 } else { size.trailing_zeros() }
}

/// A ring in the block's dynamic shared memory, over an input of `len`
/// elements of `T`. Made by [`Ring::init`]; each thread takes its [`Role`]
/// once: [`Ring::role`] consumes the ring, so no thread can be two
/// producers (or consumers) of it, each with a state of its own.
pub struct Ring<T> {
    core: RingCore<T>,
}

/// What a [`Ring`] is, copied into its [`Producer`] or [`Consumer`].
struct RingCore<T> {
    /// Shared-window addresses (`cvta.to.shared`) of full barrier 0 (empty
    /// barrier `i` is `full + 8 * (MAX_SLOTS + i)`) and of slot 0.
    full: u32,
    slot0: u32,
    /// Slot 0 as a generic pointer, for the consumers' reads.
    slot_ptr: *const u8,
    slots: u32,
    slot_bytes: u32,
    consumers: u32,
    len: usize,
    /// Elements each slot keeps before its tile for a halo (see
    /// [`Ring::init_with_halo`]; 0 otherwise): a multiple of 16 bytes.
    halo: usize,
    /// The watchdog: its timeout, and where a wait that outlives it
    /// reports (null: nowhere; see [`Ring::watched`]).
    timeout_ns: u64,
    watch: *mut WarpWatch,
    _t: PhantomData<*const T>,
}

impl<T> Clone for RingCore<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for RingCore<T> {}

/// What this thread does in the ring.
pub enum Role<T> {
    /// Warp 0, lane 0.
    Producer(Producer<T>),
    /// Every thread of warps 1 and up.
    Consumer(Consumer<T>),
    /// Warp 0's other lanes.
    Idle,
}

/// The producer side: see the module docs.
pub struct Producer<T> {
    ring: RingCore<T>,
    state: RingState,
    tiles: Tiles,
}

/// A slot the producer holds: empty, to be filled by [`ProducerSlot::commit_copy`].
#[must_use = "a slot not committed leaves the consumers waiting; commit_copy gives the producer back"]
pub struct ProducerSlot<T> {
    producer: Producer<T>,
    tile: Tile,
}

/// The consumer side: see the module docs.
pub struct Consumer<T> {
    ring: RingCore<T>,
    state: RingState,
    tiles: Tiles,
    rank: u32,
}

/// A full slot a consumer holds; [`ConsumerSlot::release`] gives the consumer back.
#[must_use = "a slot not released leaves the producer waiting; release gives the consumer back"]
pub struct ConsumerSlot<T> {
    consumer: Consumer<T>,
    tile: Tile,
    /// Taken by the sync checker's fault without the full wait: `release`
    /// waits first (see [`Consumer::wait_skipped`]).
    skipped: bool,
}

impl<T: Element> Ring<T> {
    /// Sets up a ring of `slots` slots of `slot_bytes` bytes over an input
    /// of `len` elements: thread 0 initializes the barriers (full: one
    /// arrival plus the copy's bytes; empty: one arrival per consumer
    /// thread), then the block synchronizes. Traps unless `1 <= slots <=
    /// MAX_SLOTS`, `slot_bytes` is a non-zero multiple of 16 holding at least
    /// one `T`, the launch gave at least [`shared_bytes`] of dynamic shared
    /// memory, and the block is whole warps, at least two.
    ///
    /// # Safety
    /// Every thread of the block calls it exactly once, before any other use
    /// of the block's dynamic shared memory, which the ring then owns for
    /// the rest of the kernel.
    pub unsafe fn init(len: usize, slots: u32, slot_bytes: u32) -> Ring<T> {
        // SAFETY: the caller's contract.
        unsafe { Ring::init_with_halo(len, slots, slot_bytes, 0) }
    }

    /// [`Ring::init`] for a halo map: each slot keeps `halo` elements
    /// (rounded up to 16 bytes) before its tile, which
    /// [`ProducerSlot::commit_halo_copy`] brings in with the tile, so the
    /// tile's window `x[start - halo .. start + len]` is in shared memory
    /// (see [`ConsumerSlot::halo_groups_into`]). Tiles are then that much
    /// shorter than a slot. Traps also unless a slot holds the halo and at
    /// least as many elements again.
    ///
    /// # Safety
    /// As [`Ring::init`].
    pub unsafe fn init_with_halo(len: usize, slots: u32, slot_bytes: u32, halo: usize) -> Ring<T> {
        // SAFETY: the caller's contract.
        Ring { core: unsafe { RingCore::init_with_halo(len, slots, slot_bytes, halo) } }
    }

    /// This ring with its watchdog's timeout (0: [`WAIT_TIMEOUT_NS`]) and
    /// report: a wait that outlives the timeout writes a [`WarpWatch`] at
    /// `watch` (unless 0), then traps, so the host can say which stage,
    /// slot and side was stuck.
    ///
    /// # Safety
    /// `watch` is 0 or the device address of a `WarpWatch` that stays
    /// valid for the kernel's life and that nothing else uses meanwhile
    /// (host memory mapped for the device: it must outlive a trap).
    pub unsafe fn watched(self, timeout_ns: u64, watch: u64) -> Ring<T> {
        // SAFETY: the caller's contract.
        Ring { core: unsafe { self.core.watched(timeout_ns, watch) } }
    }

    /// Elements of `T` one tile has: what a slot holds less the halo.
    pub fn tile_elements(&self) -> usize {
        self.core.tile_elements()
    }

    /// Consumer threads (the block less warp 0).
    pub fn consumers(&self) -> u32 {
        self.core.consumers()
    }

    /// This thread's role: see [`Role`].
    ///
    /// Taken once per thread: it consumes the ring, so a second call (a
    /// second producer or consumer with a fresh state, waiting on phases
    /// the first one already passed) does not compile.
    pub fn role(self) -> Role<T> {
        self.core.role()
    }
}

impl<T: Element> RingCore<T> {
    /// See [`Ring::init_with_halo`].
    ///
    /// # Safety
    /// As [`Ring::init`].
    unsafe fn init_with_halo(len: usize, slots: u32, slot_bytes: u32, halo: usize) -> RingCore<T> {
        let threads = sreg::ntid();
        let elem = core::mem::size_of::<T>() as u32;
        if slots == 0 || slots > MAX_SLOTS || slot_bytes == 0 || !slot_bytes.is_multiple_of(16) || elem == 0 || slot_bytes < elem {
            crate::trap();
        }
        // The halo in whole 16-byte units (bulk copies move multiples of 16).
        let unit = bulk_unit(elem as usize);
        let halo = halo.div_ceil(unit) * unit;
        if halo > 0 && 2 * halo > (slot_bytes / elem) as usize {
            crate::trap();
        }
        if !threads.is_multiple_of(32) || threads < 2 * PRODUCER_WARP || dev::dynamic_smem_bytes() < shared_bytes(slots, slot_bytes) {
            crate::trap();
        }
        let consumers = threads - PRODUCER_WARP;
        let base = dev::dynamic_smem();
        let full = dev::shared_address(base);
        if sreg::tid() == 0 {
            for i in 0..slots {
                // SAFETY: inside the header, which this ring owns (the caller's contract).
                unsafe {
                    dev::mbarrier_init(full + 8 * i, 1);
                    dev::mbarrier_init(full + 8 * (MAX_SLOTS + i), consumers);
                }
            }
            dev::fence_mbarrier_init();
        }
        dev::sync_block();
        RingCore {
            full,
            slot0: full + HEADER_BYTES,
            slot_ptr: base.wrapping_add(HEADER_BYTES as usize),
            slots,
            slot_bytes,
            consumers,
            len,
            halo,
            timeout_ns: WAIT_TIMEOUT_NS,
            watch: core::ptr::null_mut(),
            _t: PhantomData,
        }
    }

    /// See [`Ring::watched`].
    ///
    /// # Safety
    /// As [`Ring::watched`].
    unsafe fn watched(mut self, timeout_ns: u64, watch: u64) -> RingCore<T> {
        if timeout_ns > 0 {
            self.timeout_ns = timeout_ns;
        }
        self.watch = watch as *mut WarpWatch;
        self
    }

    /// Waits for the phase of parity `parity` of barrier `bar` (slot
    /// `slot`'s), or reports to the watchdog record and traps once the
    /// timeout passes (a ring that can no longer move becomes a launch
    /// error naming the slot, not a hang).
    #[inline(always)]
    fn wait(&self, bar: u32, parity: u32, what: u32, slot: u32, tile_start: usize) {
        let waited = dev::wait_parity(bar, parity, self.timeout_ns);
        if waited == 0 {
            return;
        }
        if !self.watch.is_null() {
            let w = WarpWatch { fired: 0, what, slot, parity, block: sreg::ctaid(), _pad: 0, tile_start: tile_start as u64, waited_ns: waited };
            // SAFETY: `watch` is a WarpWatch for the kernel's life
            // (`watched`'s contract). Volatile: host memory, read by the
            // host after the trap; `fired` goes last, after a system fence.
            // Blocks that time out together may each write it: the host
            // reads one whole report only if they wrote the same fields,
            // which is why `fired` is written last (a torn report still
            // names a stuck slot).
            unsafe {
                core::ptr::write_volatile(self.watch, w);
                dev::fence_system();
                core::ptr::write_volatile(core::ptr::addr_of_mut!((*self.watch).fired), 1);
                dev::fence_system();
            }
        }
        crate::trap();
    }

    fn tile_elements(&self) -> usize {
        (self.slot_bytes as usize) / core::mem::size_of::<T>() - self.halo
    }

    /// Slot `index`'s tile (after its halo), as a generic pointer.
    fn tile_ptr(&self, index: u32) -> *const T {
        self.slot_ptr.wrapping_add((index * self.slot_bytes) as usize + self.halo * core::mem::size_of::<T>()) as *const T
    }

    fn consumers(&self) -> u32 {
        self.consumers
    }

    fn tiles(&self) -> Tiles {
        Tiles::new(self.len, self.tile_elements(), sreg::ctaid() as usize, sreg::nctaid() as usize)
    }

    fn role(self) -> Role<T> {
        let tid = sreg::tid();
        if tid == 0 {
            Role::Producer(Producer { ring: self, state: RingState::new(self.slots), tiles: self.tiles() })
        } else if tid >= PRODUCER_WARP {
            Role::Consumer(Consumer { ring: self, state: RingState::new(self.slots), tiles: self.tiles(), rank: tid - PRODUCER_WARP })
        } else {
            Role::Idle
        }
    }

    fn full_barrier(&self, slot: u32) -> u32 {
        self.full + 8 * slot
    }

    fn empty_barrier(&self, slot: u32) -> u32 {
        self.full + 8 * (MAX_SLOTS + slot)
    }
}

impl<T: Element> Producer<T> {
    /// `producer_acquire`: the next tile's slot once every consumer has
    /// released it (at once for each slot's first use: a fresh barrier's
    /// previous phase counts as complete). `None` when this block has no
    /// tile left; the producer has then waited for every copy it issued to
    /// land, so the block never exits with a copy still writing its shared
    /// memory.
    pub fn acquire(mut self) -> Option<ProducerSlot<T>> {
        let Some(tile) = self.tiles.next() else {
            self.tail();
            return None;
        };
        let s = self.state;
        self.ring.wait(self.ring.empty_barrier(s.index()), s.producer_parity(), warp_wait::RELEASED, s.index(), tile.start);
        // The slot's previous copy has landed: always so when the consumers
        // waited for it before releasing; with the sync checker's
        // SKIP_FULL_WAIT it keeps two copies (and two expect_tx arrivals)
        // from being in flight on one slot and its barrier.
        self.ring.wait(self.ring.full_barrier(s.index()), s.producer_parity(), warp_wait::LANDED, s.index(), tile.start);
        Some(ProducerSlot { producer: self, tile })
    }

    /// Waits for the full phase of each of the last `min(count, slots)`
    /// tiles issued: their copies have landed.
    fn tail(&self) {
        let mut s = self.state;
        let outstanding = s.count().min(s.slots());
        // Back to the oldest outstanding tile, then forward over each.
        for _ in 0..(s.slots() - outstanding) {
            s.advance();
        }
        for _ in 0..outstanding {
            // The state `slots` steps back has the same index and the other phase.
            self.ring.wait(self.ring.full_barrier(s.index()), s.producer_parity(), warp_wait::LANDED, s.index(), usize::MAX);
            s.advance();
        }
    }
}

impl<T: Element> ProducerSlot<T> {
    /// The tile this slot takes.
    pub fn tile(&self) -> Tile {
        self.tile
    }

    /// `producer_commit`: fills the slot with the tile's elements of
    /// `input` (the ring's input: `len` elements) by one bulk copy; the full
    /// barrier completes when its bytes land. Elements past the copy's
    /// 16-byte multiple ([`bulk_elements`]) stay in global memory, where
    /// consumers read them. Traps if `input` is shorter than the ring's
    /// length.
    pub fn commit_copy(self, input: &[T]) -> Producer<T> {
        let this = core::mem::ManuallyDrop::new(self);
        let (tile, ring, s) = (this.tile, this.producer.ring, this.producer.state);
        if input.len() < ring.len || ring.halo != 0 {
            crate::trap();
        }
        let src = input[tile.start..].as_ptr();
        let n = bulk_elements::<T>(src as usize, tile.len);
        let bytes = (n * core::mem::size_of::<T>()) as u32;
        let full = ring.full_barrier(s.index());
        // SAFETY: the slot is this producer's (its empty phase completed in
        // `acquire`), `bytes` <= slot_bytes (n <= tile.len <= tile_elements),
        // `src` is 16-byte aligned with `bytes` readable (n > 0 only then).
        unsafe {
            dev::arrive_expect_tx(full, bytes);
            if bytes > 0 {
                dev::bulk_copy(ring.slot0 + s.index() * ring.slot_bytes, src as *const u8, bytes, full);
            }
        }
        // SAFETY: read once out of the ManuallyDrop, which is never used again.
        let mut producer = unsafe { core::ptr::read(&this.producer) };
        producer.state.advance();
        producer
    }
}

impl<T: Element> ProducerSlot<T> {
    /// `producer_commit` on a halo ring ([`Ring::init_with_halo`]): fills
    /// the slot with the tile and, before it, the ring's halo of `x` (the
    /// `input` with `history`, the stream just before it, in front): from
    /// `input` for a later tile, from the end of `history` for the first.
    /// Where that part is not 16-byte aligned in global memory (or
    /// `history` is too short) the halo is left out and consumers read it
    /// from global memory. Traps if `input` is shorter than the ring's length.
    pub fn commit_halo_copy(self, history: &[T], input: &[T]) -> Producer<T> {
        let this = core::mem::ManuallyDrop::new(self);
        let (tile, ring, s) = (this.tile, this.producer.ring, this.producer.state);
        if input.len() < ring.len {
            crate::trap();
        }
        let src = input[tile.start..].as_ptr();
        let n = bulk_elements::<T>(src as usize, tile.len);
        let size = core::mem::size_of::<T>();
        let halo = halo_source(history, input, tile.start, ring.halo);
        let (tile_bytes, halo_bytes) = ((n * size) as u32, if halo.is_some() { (ring.halo * size) as u32 } else { 0 });
        let full = ring.full_barrier(s.index());
        let slot = ring.slot0 + s.index() * ring.slot_bytes;
        // SAFETY: the slot is this producer's (its empty phase completed in
        // `acquire`); the halo fills its first `halo` elements and the tile
        // the `n <= tile_elements` after them, within slot_bytes; both
        // sources are 16-byte aligned with their bytes readable.
        unsafe {
            dev::arrive_expect_tx(full, tile_bytes + halo_bytes);
            if let Some(h) = halo {
                dev::bulk_copy(slot, h as *const u8, halo_bytes, full);
            }
            if tile_bytes > 0 {
                dev::bulk_copy(slot + (ring.halo * size) as u32, src as *const u8, tile_bytes, full);
            }
        }
        // SAFETY: read once out of the ManuallyDrop, which is never used again.
        let mut producer = unsafe { core::ptr::read(&this.producer) };
        producer.state.advance();
        producer
    }
}

/// Where the `halo` elements before the tile at `start` of `x` (`input`
/// with `history` in front) are in global memory as one 16-byte aligned
/// run, if they are: producer and consumers decide alike from this.
fn halo_source<T>(history: &[T], input: &[T], start: usize, halo: usize) -> Option<*const T> {
    let p = if halo == 0 {
        return None;
    } else if start >= halo {
        input[start - halo..].as_ptr()
    } else if start == 0 && history.len() >= halo {
        history[history.len() - halo..].as_ptr()
    } else {
        return None;
    };
    (p as usize).is_multiple_of(16).then_some(p)
}

impl<T> Drop for ProducerSlot<T> {
    /// A slot dropped without its commit: the consumers would wait for it
    /// forever; trap instead (the host sees a launch error).
    fn drop(&mut self) {
        crate::trap();
    }
}

impl<T: Element> Consumer<T> {
    /// This thread's rank among the consumers (`0..consumers`).
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// `consumer_wait`: the next tile's slot once its copy has landed;
    /// `None` when this block has no tile left.
    pub fn wait(mut self) -> Option<ConsumerSlot<T>> {
        let tile = self.tiles.next()?;
        self.ring.wait(self.ring.full_barrier(self.state.index()), self.state.consumer_parity(), warp_wait::FILLED, self.state.index(), tile.start);
        Some(ConsumerSlot { consumer: self, tile, skipped: false })
    }

    /// The sync checker's fault: [`Consumer::wait`] without the wait (the
    /// slot's release still waits for the copy, so the ring stays in step).
    ///
    /// # Safety
    /// The slot's shared memory may still be written by the bulk copy while
    /// this thread reads it: a data race, on purpose, to show what the wait
    /// prevents. Read only `Element`s (any bits valid) and judge the results
    /// only by verification.
    pub unsafe fn wait_skipped(mut self) -> Option<ConsumerSlot<T>> {
        let tile = self.tiles.next()?;
        Some(ConsumerSlot { consumer: self, tile, skipped: true })
    }
}

impl<T: Element> ConsumerSlot<T> {
    /// The tile this slot holds.
    pub fn tile(&self) -> Tile {
        self.tile
    }

    /// Element `i` of the tile (`i < tile().len`): from the slot where the
    /// bulk copy brought it, else from `input` (the ring's input) in
    /// global memory.
    #[inline(always)]
    pub fn get(&self, input: &[T], i: usize) -> T {
        let ring = self.consumer.ring;
        let start = self.tile.start;
        let n = bulk_elements::<T>(input[start..].as_ptr() as usize, self.tile.len);
        if i < n {
            let base = ring.tile_ptr(self.consumer.state.index());
            // SAFETY: i < n <= tile_elements: inside this slot, which holds
            // the copy's `n` elements (full phase completed in `wait`) and
            // which no copy writes until this slot is released.
            unsafe { base.add(i).read() }
        } else {
            input[start + i]
        }
    }

    /// This thread's indices in the tile: `rank, rank + consumers, ...`.
    pub fn mine(&self) -> impl Iterator<Item = usize> + use<T> {
        (self.consumer.rank as usize..self.tile.len).step_by(self.consumer.ring.consumers.max(1) as usize)
    }

    /// Writes `f(element)` for each of this thread's indices of the tile
    /// into `out` at the same global index: every element of the input is
    /// in exactly one tile of one block and one consumer's share, so no two
    /// threads write one element.
    pub fn map_into<U: Element>(&self, input: &[T], out: &mut crate::OutTiles<'_, U>, f: impl Fn(T) -> U) {
        for i in self.mine() {
            out.write(self.tile.start + i, f(self.get(input, i)));
        }
    }

    /// [`ConsumerSlot::map_into`] for 4-byte elements, four at a time: the
    /// copied part of the tile read from the slot and written out with
    /// 16-byte accesses (quad `q`, elements `4q..4q+4`, is consumer `q %
    /// consumers`'s) where the output is 16-byte aligned there, the rest
    /// one by one (element `n + j` of the tile consumer `j % consumers`'s,
    /// `n` the copied elements). Same results as `map_into`.
    pub fn map_words_into<U: Word>(&self, input: &[T], out: &mut crate::OutTiles<'_, U>, f: impl Fn(T) -> U)
    where
        T: Word,
    {
        let start = self.tile.start;
        let n = bulk_elements::<T>(input[start..].as_ptr() as usize, self.tile.len);
        if n == 0 || !out.aligned_at(start) {
            return self.map_into(input, out, f);
        }
        let ring = self.consumer.ring;
        let quads = ring.tile_ptr(self.consumer.state.index()) as *const crate::Quad<T>;
        let (rank, step) = (self.consumer.rank as usize, ring.consumers.max(1) as usize);
        for q in (rank..n / 4).step_by(step) {
            // SAFETY: 4q + 4 <= n: inside the copied part of this slot,
            // 16-byte aligned (the slot is; n is whole 16-byte units),
            // landed (full phase completed in `wait`), not rewritten before
            // the release; any bits of four Words are a valid Quad.
            let x = unsafe { quads.add(q).read() }.0;
            out.write_quad(start + 4 * q, [f(x[0]), f(x[1]), f(x[2]), f(x[3])]);
        }
        for i in (n + rank..self.tile.len).step_by(step) {
            out.write(start + i, f(input[start + i]));
        }
    }

    /// `consumer_release`: this thread is done with the slot; once every
    /// consumer thread is, the producer may refill it.
    pub fn release(self) -> Consumer<T> {
        let this = core::mem::ManuallyDrop::new(self);
        let ring = this.consumer.ring;
        if this.skipped {
            // The fault skipped the wait before the reads, not before the
            // release: a slot released before its copy landed would let
            // the consumers run a phase ahead of the producer, whose
            // `acquire` would then wait for a phase that never completes.
            ring.wait(
                ring.full_barrier(this.consumer.state.index()),
                this.consumer.state.consumer_parity(),
                warp_wait::FILLED,
                this.consumer.state.index(),
                this.tile.start,
            );
        }
        // SAFETY: an arrival on this slot's empty barrier, counted once per
        // consumer thread per phase.
        unsafe { dev::arrive(ring.empty_barrier(this.consumer.state.index())) };
        // SAFETY: read once out of the ManuallyDrop, which is never used again.
        let mut consumer = unsafe { core::ptr::read(&this.consumer) };
        consumer.state.advance();
        consumer
    }
}

impl<T: Element> ConsumerSlot<T> {
    /// A halo map over the tile: each group of `R` consecutive outputs this
    /// thread owns (groups `rank, rank + consumers, ...` of the tile) from
    /// `g`, written into `out` at the same global indices. `x` is the ring's
    /// `input` with `history` (at least `g.halo()` elements: the stream just
    /// before the input) in front. A group whose window lies in the slot
    /// reads it from shared memory, loaded once by the bulk copy; the few
    /// that reach before the tile (or past what the copy moved) read the
    /// rest from global memory. The tile plus its halo is thus read from
    /// global memory once, the halo twice (it is the tile before's end).
    /// Every output of the tile belongs to one group and each group to one
    /// thread, so no two threads write one element. Traps if `history` is
    /// shorter than the halo.
    ///
    /// With `R` odd, the threads of a warp start their groups `R` elements
    /// apart and so read distinct shared-memory banks at every step.
    pub fn halo_groups_into<U: Element, const R: usize, G: GroupMap<T, U, R>>(&self, history: &[T], input: &[T], out: &mut crate::OutTiles<'_, U>, g: &G) {
        let halo = g.halo();
        if history.len() < halo || R == 0 {
            crate::trap();
        }
        let ring = self.consumer.ring;
        let Tile { start, len } = self.tile;
        let n = bulk_elements::<T>(input[start..].as_ptr() as usize, len);
        // The slot's halo part holds x[start - ring.halo .. start] when the
        // producer could copy it (the same test as its own).
        let kept = if halo <= ring.halo && halo_source(history, input, start, ring.halo).is_some() { ring.halo } else { 0 };
        let tile = ring.tile_ptr(self.consumer.state.index());
        // SAFETY: the slot holds the copy's n elements after its halo part,
        // and the halo part `kept` elements before them (full phase
        // completed in `wait`); nothing writes the slot until it is
        // released, and `release` takes `self`, so this borrow ends first.
        let x = unsafe { core::slice::from_raw_parts(tile.wrapping_sub(kept), kept + n) };
        let slot = &x[kept..];
        let (rank, step) = (self.consumer.rank as usize, ring.consumers.max(1) as usize);
        for gi in (rank..len.div_ceil(R)).step_by(step) {
            let off = gi * R;
            if off + kept >= halo && off + R <= n {
                let v = g.group(&x[off + kept - halo..off + kept + R]);
                for (r, &y) in v.iter().enumerate() {
                    out.write(start + off + r, y);
                }
            } else {
                // Rare (a tile's first groups where its halo is not in the
                // slot, its last group, what the copy did not move): one
                // output at a time, so this path adds few registers.
                let edge = EdgeWindow { slot, start, input, history };
                for r in 0..R.min(len - off) {
                    let i = start + off + r;
                    out.write(i, g.one(|back| edge.at(i, back)));
                }
            }
        }
    }
}

/// A halo map computed in groups of `R` consecutive outputs, on the ring
/// by [`ConsumerSlot::halo_groups_into`]: output `i` from `x[i - halo ..=
/// i]`. `group` and `one` must give the same outputs.
pub trait GroupMap<T, U, const R: usize> {
    /// Elements before each output the map reads.
    fn halo(&self) -> usize;
    /// Outputs `first .. first + R` from `w`, which is `x[first - halo ..
    /// first + R]` (so `x[first + r - back]` is `w[halo + r - back]`).
    fn group(&self, w: &[T]) -> [U; R];
    /// Output `i` from `x`, where `x(back)` is `x[i - back]`, `back <= halo`.
    fn one(&self, x: impl Fn(usize) -> T) -> U;
}

/// Elements around a tile that reach before it or past what the copy
/// moved: each from the slot, from the input in global memory, or (before
/// the input's start) from the history.
struct EdgeWindow<'a, T> {
    slot: &'a [T],
    start: usize,
    input: &'a [T],
    history: &'a [T],
}

impl<T: Copy> EdgeWindow<'_, T> {
    /// `x[i - back]`.
    #[inline(always)]
    fn at(&self, i: usize, back: usize) -> T {
        if back > i {
            // x[-m] is history[len - m]; m <= halo <= len (checked).
            return self.history[(self.history.len() + i).wrapping_sub(back)];
        }
        let k = i - back;
        if k >= self.start && k - self.start < self.slot.len() { self.slot[k - self.start] } else { self.input[k] }
    }
}

impl<T> Drop for ConsumerSlot<T> {
    /// A slot dropped without its release: the producer would wait for it
    /// forever; trap instead.
    fn drop(&mut self) {
        crate::trap();
    }
}

/// The ring parameters of a warp-ring map kernel, as its launcher passes
/// them (see [`map_stage`]).
#[derive(Debug, Clone, Copy)]
pub struct StageRing {
    pub slots: u32,
    pub slot_bytes: u32,
    pub timeout_ns: u64,
    pub watch: u64,
    pub spin: u64,
    pub faults: u32,
}

/// The body of a map stage's kernel on this ring, the stage's form in the
/// warps grain: the producer lane bulk-copies `input` tile by tile into
/// the slots (spinning `ring.spin` ns before each copy), the consumer warps
/// write `f(x)` of each element to `output` at its index. The fault bits
/// are [`fault`]'s. A kernel of the warp-ring map shape is this call (and
/// `launch_dependents`, as every `pdl` kernel of the project):
///
/// ```ignore
/// #[kernel(pdl, faults = faults, same_len(input, output))]
/// pub fn ring_square_kernel(input: &[f32], mut output: OutTiles<f32>, slots: u32, slot_bytes: u32, timeout_ns: u64, watch: u64, spin: u64, faults: u32) {
///     nvptx_std::hopper::pdl::launch_dependents();
///     let ring = StageRing { slots, slot_bytes, timeout_ns, watch, spin, faults };
///     // SAFETY: first thing, in every thread; launched only through its
///     // `WarpMapKernel` launcher (the warps grain's form).
///     unsafe { nvptx_std::hopper::ring::map_stage(input, &mut output, ring, |x| x * x) }
/// }
/// ```
///
/// # Safety
/// Every thread of the block calls it exactly once, before any other use
/// of the block's dynamic shared memory, and `ring` holds the launch's
/// values as `nvptx_std::host::WarpMapKernel::launch_warp_map`'s contract
/// has them (`watch` 0 or a live record, the shared memory given).
pub unsafe fn map_stage<I: Element, O: Element>(input: &[I], output: &mut crate::OutTiles<'_, O>, ring: StageRing, f: impl Fn(I) -> O) {
    // SAFETY: the caller's contract.
    let r = unsafe { Ring::<I>::init(input.len(), ring.slots, ring.slot_bytes).watched(ring.timeout_ns, ring.watch) };
    match r.role() {
        Role::Producer(mut producer) => {
            while let Some(slot) = producer.acquire() {
                crate::spin_ns(ring.spin);
                if ring.faults & fault::STALL_PRODUCER != 0 {
                    // The fault: no copy, no arrival (forgotten, not dropped: a drop traps at once).
                    core::mem::forget(slot);
                    break;
                }
                producer = slot.commit_copy(input);
            }
        }
        Role::Consumer(mut consumer) => loop {
            // SAFETY (the fault): only `launch_with_faults` passes it, whose contract is this race.
            let next = if ring.faults & fault::SKIP_FULL_WAIT != 0 { unsafe { consumer.wait_skipped() } } else { consumer.wait() };
            let Some(slot) = next else { break };
            slot.map_into(input, output, &f);
            consumer = slot.release();
        },
        Role::Idle => {}
    }
}

/// The PTX, or host stand-ins that panic (device only).
#[cfg(target_arch = "nvptx64")]
mod dev {
    use core::arch::asm;

    /// The block's dynamic shared memory (16-byte aligned at least).
    #[inline(always)]
    pub fn dynamic_smem() -> *mut u8 {
        core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<u128>() as *mut u8
    }

    /// `%dynamic_smem_size`: the dynamic shared memory the launch gave.
    #[inline(always)]
    pub fn dynamic_smem_bytes() -> u32 {
        let n: u32;
        // SAFETY: reads a special register.
        unsafe { asm!("mov.u32 {}, %dynamic_smem_size;", out(reg32) n, options(nomem, nostack)) };
        n
    }

    /// The shared-window address of a generic pointer into shared memory.
    #[inline(always)]
    pub fn shared_address(p: *mut u8) -> u32 {
        let a: u32;
        // SAFETY: address arithmetic only.
        unsafe { asm!("{{ .reg .u64 t; cvta.to.shared.u64 t, {p}; cvt.u32.u64 {a}, t; }}", p = in(reg64) p, a = out(reg32) a, options(nomem, nostack)) };
        a
    }

    /// # Safety
    /// `bar` is an 8-byte aligned shared address no thread uses yet.
    #[inline(always)]
    pub unsafe fn mbarrier_init(bar: u32, count: u32) {
        unsafe { asm!("mbarrier.init.shared::cta.b64 [{b}], {n};", b = in(reg32) bar, n = in(reg32) count, options(nostack)) };
    }

    #[inline(always)]
    pub fn fence_mbarrier_init() {
        // SAFETY: a fence.
        unsafe { asm!("fence.mbarrier_init.release.cluster;", options(nostack)) };
    }

    #[inline(always)]
    pub fn sync_block() {
        // SAFETY: every thread of the block reaches it (Ring::init's contract).
        unsafe { core::arch::nvptx::_syncthreads() };
    }

    /// Spins until the phase of parity `parity` of barrier `bar` has
    /// completed (0), or until `timeout_ns` passed (how long it waited).
    #[inline(always)]
    pub fn wait_parity(bar: u32, parity: u32, timeout_ns: u64) -> u64 {
        let mut start = 0u64;
        loop {
            let done: u32;
            // SAFETY: a wait on an initialized barrier of this ring. Not
            // `nomem`: the reads after it must stay after it (acquire).
            unsafe {
                asm!(
                    "{{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [{b}], {ph}; selp.u32 {d}, 1, 0, p; }}",
                    b = in(reg32) bar, ph = in(reg32) parity, d = out(reg32) done, options(nostack)
                )
            };
            if done != 0 {
                return 0;
            }
            // The clock is read only once the first try failed.
            let now = crate::globaltimer_ns();
            if start == 0 {
                start = now;
            } else if now.wrapping_sub(start) > timeout_ns {
                return now.wrapping_sub(start);
            }
        }
    }

    /// `fence.sc.sys`: writes before it are seen by the host before those after.
    #[inline(always)]
    pub fn fence_system() {
        // SAFETY: a fence.
        unsafe { asm!("fence.sc.sys;", options(nostack)) };
    }

    /// # Safety
    /// `bar` is an initialized barrier that expects this arrival.
    #[inline(always)]
    pub unsafe fn arrive(bar: u32) {
        unsafe { asm!("{{ .reg .b64 st; mbarrier.arrive.shared::cta.b64 st, [{b}]; }}", b = in(reg32) bar, options(nostack)) };
    }

    /// # Safety
    /// `bar` is a full barrier (count 1) that expects this arrival.
    #[inline(always)]
    pub unsafe fn arrive_expect_tx(bar: u32, bytes: u32) {
        unsafe {
            asm!("{{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [{b}], {n}; }}", b = in(reg32) bar, n = in(reg32) bytes, options(nostack))
        };
    }

    /// # Safety
    /// `dst` (shared) and `src` (global) are 16-byte aligned, `bytes` a
    /// multiple of 16 that both hold; nothing else touches `dst` until
    /// `bar`'s phase completes.
    #[inline(always)]
    pub unsafe fn bulk_copy(dst: u32, src: *const u8, bytes: u32, bar: u32) {
        unsafe {
            asm!(
                "{{ .reg .u64 g; cvta.to.global.u64 g, {s}; cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [{d}], [g], {n}, [{b}]; }}",
                d = in(reg32) dst, s = in(reg64) src, n = in(reg32) bytes, b = in(reg32) bar, options(nostack)
            )
        };
    }
}

#[cfg(not(target_arch = "nvptx64"))]
mod dev {
    const DEVICE_ONLY: &str = "the mbarrier ring runs on the GPU only";
    pub fn dynamic_smem() -> *mut u8 {
        panic!("{DEVICE_ONLY}")
    }
    pub fn dynamic_smem_bytes() -> u32 {
        panic!("{DEVICE_ONLY}")
    }
    pub fn shared_address(_: *mut u8) -> u32 {
        panic!("{DEVICE_ONLY}")
    }
    pub unsafe fn mbarrier_init(_: u32, _: u32) {
        panic!("{DEVICE_ONLY}")
    }
    pub fn fence_mbarrier_init() {
        panic!("{DEVICE_ONLY}")
    }
    pub fn sync_block() {
        panic!("{DEVICE_ONLY}")
    }
    pub fn wait_parity(_: u32, _: u32, _: u64) -> u64 {
        panic!("{DEVICE_ONLY}")
    }
    pub fn fence_system() {
        panic!("{DEVICE_ONLY}")
    }
    pub unsafe fn arrive(_: u32) {
        panic!("{DEVICE_ONLY}")
    }
    pub unsafe fn arrive_expect_tx(_: u32, _: u32) {
        panic!("{DEVICE_ONLY}")
    }
    pub unsafe fn bulk_copy(_: u32, _: *const u8, _: u32, _: u32) {
        panic!("{DEVICE_ONLY}")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn the_phase_flips_each_time_the_index_wraps() {
        for slots in 1..=MAX_SLOTS {
            let mut s = RingState::new(slots);
            for step in 0..(3 * slots + 1) {
                assert_eq!(s.index(), step % slots, "K={slots} step {step}");
                assert_eq!(s.phase(), (step / slots) % 2, "K={slots} step {step}");
                assert_eq!(s.count(), step);
                s.advance();
            }
        }
        // K=1: every step wraps.
        let mut s = RingState::new(1);
        s.advance();
        assert_eq!((s.index(), s.phase()), (0, 1));
        s.advance();
        assert_eq!((s.index(), s.phase()), (0, 0));
    }

    #[test]
    fn a_state_k_steps_back_has_the_same_slot_and_the_other_phase() {
        // What Producer::tail relies on: stepping forward (slots - n) then n
        // visits the last n issued tiles' slots, each in its own phase.
        let slots = 3;
        let mut issued = RingState::new(slots);
        let mut history = [(0u32, 0u32); 7];
        for h in history.iter_mut() {
            *h = (issued.index(), issued.phase());
            issued.advance();
        }
        let outstanding = issued.count().min(slots);
        let mut s = issued;
        for _ in 0..(slots - outstanding) {
            s.advance();
        }
        for k in 0..outstanding as usize {
            let (index, phase) = history[history.len() - outstanding as usize + k];
            assert_eq!((s.index(), s.phase() ^ 1), (index, phase));
            s.advance();
        }
    }

    #[test]
    fn tiles_cover_every_element_once_over_the_blocks() {
        for (len, tile, blocks) in [(0usize, 4usize, 3usize), (1, 4, 3), (10, 4, 3), (4096 * 5 + 3, 4096, 2), (17, 1, 5), (100, 100, 7)] {
            let mut seen = std::vec![0u8; len];
            for b in 0..blocks {
                for t in Tiles::new(len, tile, b, blocks) {
                    assert!(t.len >= 1 && t.len <= tile && t.start % tile == 0, "{t:?}");
                    seen[t.start..t.start + t.len].iter_mut().for_each(|c| *c += 1);
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "len {len} tile {tile} blocks {blocks}");
        }
    }

    #[test]
    fn bulk_copies_move_whole_16_byte_units_from_aligned_addresses() {
        assert_eq!(bulk_elements::<f32>(256, 4096), 4096);
        assert_eq!(bulk_elements::<f32>(256, 7), 4);
        assert_eq!(bulk_elements::<f32>(256, 3), 0);
        assert_eq!(bulk_elements::<f32>(260, 4096), 0);
        assert_eq!(bulk_elements::<u8>(16, 33), 32);
        assert_eq!(bulk_elements::<f64>(32, 3), 2);
        // Sizes that do not divide 16: whole units of 16 bytes, never a part.
        assert_eq!(bulk_elements::<[f32; 3]>(256, 3), 0);
        assert_eq!(bulk_elements::<[f32; 3]>(256, 9), 8);
        assert_eq!(bulk_elements::<[u16; 3]>(256, 9), 8);
        assert_eq!(bulk_elements::<[u8; 32]>(256, 3), 3);
        for size in 1..=64 {
            let unit = bulk_unit(size);
            assert!((unit * size).is_multiple_of(16) && (1..unit).all(|u| !(u * size).is_multiple_of(16)), "size {size}");
        }
        assert_eq!(shared_bytes(4, 16 << 10), 128 + (64 << 10));
        const { assert!(16 * MAX_SLOTS <= HEADER_BYTES) };
    }
}
