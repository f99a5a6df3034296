//! A stream's input side: reader threads fill staging slots, and the
//! filled chunks are handed on in stream order.
//!
//! A source that can only be read in order (a pipe, an iterator) has one
//! reader. A source that can be read at any offset ([`ReadAt`]: a regular
//! file) has several, each claiming the next chunk index and a free slot,
//! so several chunks' reads run at once and no chunk's fixed costs (a read
//! call's start, the pool's hand-off, a wakeup) hold up the next one. The
//! chunks complete in any order; [`Input::pop`] returns them in chunk
//! order. Memory stays at the slots: a reader claims a chunk only holding
//! a free slot.
//!
//! The end of the stream (a short read), a read error and a chunk that
//! ends mid-element are *events at a chunk index*: the one at the lowest
//! index wins, so the outcome is the one a single reader reading in order
//! would have met, and every chunk before it is delivered.
//!
//! This part needs no GPU: the slots may be pinned memory (the GPU copies
//! from them) or ordinary memory (tests, [`super::host_only`]).
use super::io::{ReadAt, StreamReader};
use crate::PipelineError;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the reader does when every input slot is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backpressure {
    /// Wait for a slot (nothing is lost; a live source falls behind).
    #[default]
    Block,
    /// Drop the oldest chunk read but not yet on the GPU, and count it.
    /// A paced source read at any offset with a known length (a regular
    /// file with [`StreamOptions::rate_bytes_per_s`](super::StreamOptions::rate_bytes_per_s)) also drops, unread,
    /// every whole chunk that more than the staging slots' worth of newer
    /// chunks has overtaken before a reader took it: a rate above what the
    /// readers sustain then shows as drops, as for a live source whose
    /// oldest data is overwritten, not as latency growing with the run. The
    /// last chunk is always read (the end is exact); a read error inside a
    /// chunk dropped unread goes unseen.
    DropOldest,
}

/// A filled input slot.
pub(crate) struct Filled {
    pub(crate) slot: usize,
    pub(crate) bytes: usize,
    /// When the source had the chunk: its read done, or its due time
    /// when paced (latency counts from here).
    pub(crate) ready: Instant,
    /// When its read began and ended (the trace's read row).
    pub(crate) read: (Instant, Instant),
}

/// Asks Linux to end this thread's sleeps within 1 us of their due time.
/// The default slack (50 us) would add up to 50 us to chunks' latency: the
/// writer waits for the GPU in sleeps of 20 us, and a paced reader sleeps
/// until its chunk is due. Elsewhere, or if refused, nothing changes.
pub(crate) fn tight_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer and changes only this
    // thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
    }
}

/// Memory holding the slots: `base()` points at `slots x slot_bytes` bytes
/// that live as long as the value.
pub(crate) trait SlotMemory: Send + Sync {
    fn base(&self) -> *mut u8;
}

impl SlotMemory for crate::host_mem::PinnedBuffer {
    fn base(&self) -> *mut u8 {
        crate::host_mem::PinnedBuffer::base(self)
    }
}

/// Ordinary zeroed heap memory, for runs without a GPU.
pub(crate) struct HeapMemory {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain memory owned by this value; the slot protocol keeps each
// slot's users exclusive.
unsafe impl Send for HeapMemory {}
unsafe impl Sync for HeapMemory {}

impl HeapMemory {
    pub(crate) fn new(len: usize) -> HeapMemory {
        let b: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let ptr = Box::into_raw(b) as *mut u8;
        // Touch every page now, as pinned memory is: a zeroed allocation
        // may be mapped lazily, and first-touch faults would count as reads.
        for i in (0..len).step_by(4096) {
            // SAFETY: in bounds of the `len` bytes just allocated.
            unsafe { ptr.add(i).write_volatile(0) };
        }
        HeapMemory { len, ptr }
    }
}

impl SlotMemory for HeapMemory {
    fn base(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for HeapMemory {
    fn drop(&mut self) {
        // SAFETY: from Box::into_raw of a boxed slice of `len` bytes, freed once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

/// How the source is read.
pub(crate) enum Reading {
    /// In order, by one reader.
    Sequential(Box<dyn StreamReader>),
    /// At any offset, by this many readers at once.
    Positional(Arc<dyn ReadAt>, usize),
}

impl Reading {
    /// The source's own way: positional with `readers` readers where it can.
    pub(crate) fn of(source: Box<dyn StreamReader>, readers: usize) -> Reading {
        match source.positional() {
            Some(r) => Reading::Positional(r, readers.max(1)),
            None => Reading::Sequential(source),
        }
    }
    pub(crate) fn readers(&self) -> usize {
        match self {
            Reading::Sequential(_) => 1,
            Reading::Positional(_, n) => *n,
        }
    }
    /// At most `max` readers (a reader holds a slot while it reads).
    pub(crate) fn limit_readers(&mut self, max: usize) {
        if let Reading::Positional(_, n) = self {
            *n = (*n).min(max).max(1);
        }
    }
}

/// What ended the stream, at chunk `at`.
struct End {
    at: u64,
    /// The first chunk not delivered: `at + 1` after a short read with
    /// whole elements (they are delivered), else `at`.
    first_undelivered: u64,
    error: Option<PipelineError>,
}

struct State {
    free: Vec<usize>,
    /// The next chunk index a reader claims.
    claim: u64,
    /// The next chunk index handed on.
    next: u64,
    /// Read, not yet handed on; at most one entry per slot.
    done: BTreeMap<u64, Filled>,
    /// Chunk index ranges a live source dropped unread, in order.
    skipped: VecDeque<Range<u64>>,
    end: Option<End>,
    /// Stopped from outside: readers end, `pop` returns `None`.
    closed: bool,
    dropped_chunks: u64,
    dropped_bytes: u64,
}

impl State {
    fn past_end(&self, c: u64) -> bool {
        self.end.as_ref().is_some_and(|e| c >= e.first_undelivered)
    }
    /// Moves `next` past the chunks dropped unread.
    fn pass_skipped(&mut self) {
        while let Some(r) = self.skipped.front() {
            if r.start > self.next {
                break;
            }
            self.next = self.next.max(r.end);
            self.skipped.pop_front();
        }
    }
}

/// A paced source read at any offset, under drop-oldest, whose whole
/// chunks are known (a file of known length): chunk `c` arrives at
/// `start + (c + 1) x chunk / rate`, and a chunk that the newest `slots`
/// arrived chunks have overtaken before a reader took it is dropped
/// unread, as a live source's oldest data is when the ring is full. Without
/// it a rate above what the readers sustain would show as latency growing
/// with the run's length, not as drops.
#[derive(Clone, Copy)]
pub(crate) struct Live {
    pub start: Instant,
    pub rate: f64,
    /// Chunks before the source's last one: only these are dropped unread,
    /// so the last chunk (whole or partial) is always read and the stream's
    /// end and its errors are exactly those of an unpaced run.
    pub whole_chunks: u64,
}

/// The input slots and the reorder queue between the readers and the
/// thread that takes the chunks (the enqueuing thread).
pub(crate) struct Input {
    mem: Box<dyn SlotMemory>,
    slots: usize,
    slot_bytes: usize,
    /// Bytes a reader asks for per chunk (at most `slot_bytes`).
    chunk_bytes: usize,
    elem_size: usize,
    state: Mutex<State>,
    /// Readers wait here for a slot: one is woken per slot freed (or per
    /// chunk read while every slot is busy, which drop-oldest may take),
    /// all at the end or when closed. Waking one, not all, per chunk keeps
    /// many readers from all waking for each slot.
    slot_cv: Condvar,
    /// The taker waits here for the next chunk, the end or the close.
    next_cv: Condvar,
    stop: AtomicBool,
}

/// Pacing of a live source: chunk bytes count as arrived at
/// `start + bytes / rate`.
#[derive(Clone, Copy)]
pub(crate) struct Pace {
    pub start: Instant,
    pub rate: Option<f64>,
}

impl Input {
    /// `slots` slots of `slot_bytes` in `mem`; readers read `chunk_bytes`
    /// (whole elements of `elem_size` bytes) per chunk.
    pub(crate) fn new(mem: Box<dyn SlotMemory>, slots: usize, slot_bytes: usize, chunk_bytes: usize, elem_size: usize) -> Input {
        assert!(chunk_bytes <= slot_bytes && elem_size > 0, "a chunk fits its slot");
        Input {
            mem,
            slots,
            slot_bytes,
            chunk_bytes,
            elem_size,
            // Popped from the back: slot 0 first.
            state: Mutex::new(State {
                free: (0..slots).rev().collect(),
                claim: 0,
                next: 0,
                done: BTreeMap::new(),
                skipped: VecDeque::new(),
                end: None,
                closed: false,
                dropped_chunks: 0,
                dropped_bytes: 0,
            }),
            slot_cv: Condvar::new(),
            next_cv: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked holding the lock left the state consistent
        // (every update is a few assignments with no call that can panic).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first byte of slot `i`.
    pub(crate) fn ptr(&self, i: usize) -> *mut u8 {
        self.mem.base().wrapping_add(i * self.slot_bytes)
    }

    /// # Safety
    /// The caller holds slot `i`'s token (it took it from the free list, or
    /// from `pop`) and no GPU copy uses the slot: nobody else reads or writes it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot_mut(&self, i: usize) -> &mut [u8] {
        debug_assert!(i < self.slots);
        // SAFETY: in bounds (i < slots); exclusive by the caller's token.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(i), self.slot_bytes) }
    }

    /// # Safety
    /// The caller holds slot `i`'s token and no copy writes into it.
    pub(crate) unsafe fn view(&self, i: usize, len: usize) -> &[u8] {
        debug_assert!(i < self.slots);
        // SAFETY: in bounds; no writer while the caller holds the token.
        unsafe { std::slice::from_raw_parts(self.ptr(i), len.min(self.slot_bytes)) }
    }

    /// Gives slot `i` back (its chunk is done with).
    pub(crate) fn free(&self, i: usize) {
        self.lock().free.push(i);
        self.slot_cv.notify_one();
    }

    /// Stops: readers end after the read they are in, `pop` returns `None`.
    pub(crate) fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.lock().closed = true;
        self.slot_cv.notify_all();
        self.next_cv.notify_all();
    }

    /// The next chunk in stream order; `None` at the stream's end or once
    /// closed. Waits at most `tick` at a time, calling `poll` between waits
    /// (`poll` false: give up).
    pub(crate) fn pop(&self, tick: Duration, mut poll: impl FnMut() -> bool) -> Option<Filled> {
        let mut g = self.lock();
        loop {
            if g.closed {
                return None;
            }
            g.pass_skipped();
            let next = g.next;
            if let Some(f) = g.done.remove(&next) {
                g.next += 1;
                return Some(f);
            }
            if g.past_end(next) || !poll() {
                return None;
            }
            g = self.next_cv.wait_timeout(g, tick).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// What ended the stream, once [`Input::pop`] returned `None` at its end:
    /// the error, if it was one.
    pub(crate) fn take_error(&self) -> Option<PipelineError> {
        self.lock().end.as_mut().and_then(|e| e.error.take())
    }

    /// Chunks and bytes dropped under drop-oldest.
    pub(crate) fn dropped(&self) -> (u64, u64) {
        let g = self.lock();
        (g.dropped_chunks, g.dropped_bytes)
    }

    /// A slot and the chunk index to read into it; `None`: nothing more to read.
    fn claim(&self, policy: Backpressure, live: Option<Live>) -> Option<(u64, usize)> {
        let mut g = self.lock();
        loop {
            if g.closed || g.past_end(g.claim) {
                return None;
            }
            g.pass_skipped();
            let slot = match g.free.pop() {
                Some(s) => Some(s),
                // Every slot busy: drop the oldest chunk read but not yet
                // taken. Only the head (the next to be taken) counts as
                // the oldest: while it is still being read, wait.
                None if policy == Backpressure::DropOldest => {
                    g.pass_skipped();
                    let next = g.next;
                    match g.done.remove(&next) {
                        Some(old) => {
                            g.next += 1;
                            g.dropped_chunks += 1;
                            g.dropped_bytes += old.bytes as u64;
                            Some(old.slot)
                        }
                        None => None,
                    }
                }
                None => None,
            };
            if let Some(slot) = slot {
                if let Some(l) = live {
                    self.skip_overtaken(&mut g, l);
                }
                let c = g.claim;
                g.claim += 1;
                drop(g);
                // A drop or a skip moved the next chunk on: the taker may
                // have one to take, or the end.
                self.next_cv.notify_one();
                return Some((c, slot));
            }
            g = self.slot_cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Drops the chunks from `claim` on that the newest `slots` arrived
    /// chunks have overtaken (see [`Live`]).
    fn skip_overtaken(&self, g: &mut State, l: Live) {
        let arrived = (l.start.elapsed().as_secs_f64() * l.rate / self.chunk_bytes as f64) as u64;
        let to = arrived.saturating_sub(self.slots as u64).min(l.whole_chunks);
        if to > g.claim {
            let n = to - g.claim;
            g.dropped_chunks += n;
            g.dropped_bytes += n * self.chunk_bytes as u64;
            g.skipped.push_back(g.claim..to);
            g.claim = to;
        }
    }

    /// Chunk `c` (in `slot`) was read: `got` bytes or an error.
    fn complete(&self, c: u64, slot: usize, got: std::io::Result<usize>, began: Instant, pace: Pace) {
        let read_done = Instant::now();
        let at = c * self.chunk_bytes as u64;
        let (whole, end) = match got {
            Ok(n) if n >= self.chunk_bytes => (self.chunk_bytes, None),
            Ok(n) => {
                let partial = n % self.elem_size;
                let error = (partial != 0).then_some(PipelineError::StreamEndsMidElement { bytes: at + n as u64, size: self.elem_size, partial });
                let whole = n - partial;
                // Nothing of chunk c to deliver: the stream ends before it.
                (whole, Some(End { at: c, first_undelivered: if whole > 0 { c + 1 } else { c }, error }))
            }
            Err(e) => (0, Some(End { at: c, first_undelivered: c, error: Some(PipelineError::StreamInput { at, source: e }) })),
        };
        // A live source's chunk arrives when its last byte is due, not
        // earlier, however fast it was read.
        let ready = match pace.rate {
            Some(r) if r > 0.0 => {
                let due = pace.start + Duration::from_secs_f64((at + whole as u64) as f64 / r);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                due
            }
            _ => Instant::now(),
        };
        let mut g = self.lock();
        let ended = end.is_some();
        if let Some(end) = end
            && g.end.as_ref().is_none_or(|e| end.at < e.at)
        {
            // An earlier end: chunks read past it are not delivered.
            let cut = end.first_undelivered;
            let past: Vec<u64> = g.done.range(cut..).map(|(k, _)| *k).collect();
            for k in past {
                if let Some(f) = g.done.remove(&k) {
                    g.free.push(f.slot);
                }
            }
            g.end = Some(end);
        }
        let kept = whole > 0 && !g.past_end(c) && !g.closed && c >= g.next;
        if kept {
            g.done.insert(c, Filled { slot, bytes: whole, ready, read: (began, read_done) });
        } else {
            g.free.push(slot);
        }
        // With every slot busy, a reader under drop-oldest may take this
        // chunk's slot (a reader that blocks just waits again).
        let wake_reader = !kept || g.free.is_empty();
        let head = c == g.next;
        drop(g);
        if ended {
            // Readers past the end stop; the taker may be at the end.
            self.slot_cv.notify_all();
            self.next_cv.notify_all();
        } else {
            if wake_reader {
                self.slot_cv.notify_one();
            }
            if head {
                self.next_cv.notify_one();
            }
        }
    }

    /// Starts the readers; each ends when the stream ended, failed or was
    /// closed. They hold the input (and its memory) while they run.
    pub(crate) fn spawn_readers(self: &Arc<Self>, reading: Reading, policy: Backpressure, pace: Pace) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
        match reading {
            Reading::Sequential(mut source) => {
                let input = self.clone();
                let h = std::thread::Builder::new().name("stream-reader".into()).spawn(move || {
                    tight_timer_slack();
                    while let Some((c, slot)) = input.claim(policy, None) {
                        // SAFETY: the slot's token was just claimed.
                        let buf = &mut unsafe { input.slot_mut(slot) }[..input.chunk_bytes];
                        let began = Instant::now();
                        let got = source.fill(buf);
                        // A short read is the end: nothing more is asked of the source.
                        let last = !matches!(got, Ok(n) if n >= input.chunk_bytes);
                        input.complete(c, slot, got, began, pace);
                        if last || input.stop.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                })?;
                Ok(vec![h])
            }
            Reading::Positional(reader, n) => {
                // A source read in order must be read to skip a chunk: only
                // one read at any offset drops unread.
                let live = match (policy, pace.rate, reader.known_len()) {
                    (Backpressure::DropOldest, Some(rate), Some(len)) if rate > 0.0 => {
                        // The last chunk is never dropped unread, whole or
                        // partial: it carries the stream's end (and a
                        // stream of one chunk delivers it).
                        Some(Live { start: pace.start, rate, whole_chunks: len.saturating_sub(1) / self.chunk_bytes as u64 })
                    }
                    _ => None,
                };
                (0..n)
                    .map(|i| {
                        let (input, reader) = (self.clone(), reader.clone());
                        std::thread::Builder::new().name(format!("stream-reader-{i}")).spawn(move || {
                            tight_timer_slack();
                            while let Some((c, slot)) = input.claim(policy, live) {
                                // SAFETY: the slot's token was just claimed.
                                let buf = &mut unsafe { input.slot_mut(slot) }[..input.chunk_bytes];
                                let began = Instant::now();
                                let got = match c.checked_mul(input.chunk_bytes as u64) {
                                    Some(at) => reader.read_at(buf, at),
                                    None => Err(std::io::Error::other("the stream is longer than 2^64 bytes")),
                                };
                                input.complete(c, slot, got, began, pace);
                            }
                        })
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// A positional source over `data` whose reads take a pseudo-random
    /// time, so chunks complete out of order; `fail_at`: an error for the
    /// read starting at that offset.
    struct Jittery {
        data: Vec<u8>,
        fail_at: Option<u64>,
        seed: u64,
    }

    impl ReadAt for Jittery {
        fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
            let mut x = (at ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 29;
            std::thread::sleep(Duration::from_micros(x % 3000));
            if self.fail_at == Some(at) {
                return Err(io::Error::other("disk on fire"));
            }
            let a = (at as usize).min(self.data.len());
            let n = buf.len().min(self.data.len() - a);
            buf[..n].copy_from_slice(&self.data[a..a + n]);
            Ok(n)
        }
        fn known_len(&self) -> Option<u64> {
            Some(self.data.len() as u64)
        }
    }

    fn input(slots: usize, chunk: usize, elem: usize) -> Arc<Input> {
        Arc::new(Input::new(Box::new(HeapMemory::new(slots * chunk)), slots, chunk, chunk, elem))
    }

    /// Takes every chunk (optionally slowly), checks it against `data` in
    /// order, frees its slot; returns the chunks taken (their first byte's
    /// offset in `data`).
    fn drain(inp: &Input, data: &[u8], chunk: usize, delay: Duration) -> Vec<usize> {
        let mut seen = Vec::new();
        let mut at = 0usize;
        while let Some(f) = inp.pop(Duration::from_millis(5), || true) {
            // SAFETY: `pop` handed us the slot.
            let got = unsafe { inp.view(f.slot, f.bytes) };
            // Find which chunk this is (drop-oldest may have skipped some).
            while at < data.len() && data[at..(at + f.bytes).min(data.len())] != *got {
                at += chunk;
            }
            assert!(at < data.len(), "a chunk that is no chunk of the input, after {seen:?}");
            seen.push(at);
            at += chunk;
            std::thread::sleep(delay);
            inp.free(f.slot);
        }
        seen
    }

    fn data(n: usize) -> Vec<u8> {
        // Every 4-byte word distinct, so no chunk equals another.
        (0..n as u32 / 4 + 1).flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes()).take(n).collect()
    }

    fn pace() -> Pace {
        Pace { start: Instant::now(), rate: None }
    }

    #[test]
    fn chunks_read_out_of_order_come_out_in_order() {
        for (n, readers, slots) in [(100 * 64, 4, 6), (100 * 64 + 12, 8, 9), (64, 3, 4), (0, 2, 2), (5 * 64 - 4, 1, 2)] {
            let d = data(n);
            let inp = input(slots, 64, 4);
            let src = Arc::new(Jittery { data: d.clone(), fail_at: None, seed: n as u64 });
            let hs = inp.spawn_readers(Reading::Positional(src, readers), Backpressure::Block, pace()).unwrap();
            let seen = drain(&inp, &d, 64, Duration::ZERO);
            assert_eq!(seen, (0..n).step_by(64).collect::<Vec<_>>(), "n={n} readers={readers}");
            assert!(inp.take_error().is_none());
            for h in hs {
                h.join().unwrap();
            }
            // Every slot came back.
            assert_eq!(inp.lock().free.len(), slots);
        }
    }

    #[test]
    fn a_read_error_delivers_the_chunks_before_it_and_names_the_offset() {
        let d = data(50 * 64);
        let inp = input(5, 64, 4);
        let src = Arc::new(Jittery { data: d.clone(), fail_at: Some(17 * 64), seed: 3 });
        let hs = inp.spawn_readers(Reading::Positional(src, 4), Backpressure::Block, pace()).unwrap();
        let seen = drain(&inp, &d, 64, Duration::ZERO);
        assert_eq!(seen, (0..17 * 64).step_by(64).collect::<Vec<_>>());
        let e = inp.take_error().expect("the read error");
        assert!(matches!(e, PipelineError::StreamInput { at: 1088, .. }), "{e}");
        assert_eq!(e.to_string(), "reading the stream after 1088 bytes: disk on fire");
        for h in hs {
            h.join().unwrap();
        }
    }

    #[test]
    fn a_stream_ending_mid_element_names_the_bytes_and_keeps_the_whole_elements() {
        let d = data(10 * 64 + 7);
        let inp = input(4, 64, 4);
        let src = Arc::new(Jittery { data: d.clone(), fail_at: None, seed: 9 });
        let hs = inp.spawn_readers(Reading::Positional(src, 3), Backpressure::Block, pace()).unwrap();
        let mut total = 0;
        while let Some(f) = inp.pop(Duration::from_millis(5), || true) {
            total += f.bytes;
            inp.free(f.slot);
        }
        assert_eq!(total, 10 * 64 + 4);
        let e = inp.take_error().expect("mid-element");
        assert!(matches!(e, PipelineError::StreamEndsMidElement { bytes: 647, size: 4, partial: 3 }), "{e}");
        for h in hs {
            h.join().unwrap();
        }
    }

    #[test]
    fn a_sequential_source_reads_in_order() {
        let d = data(33 * 64 + 8);
        let inp = input(3, 64, 4);
        let src = super::super::io::ReadSource(io::Cursor::new(d.clone()));
        let hs = inp.spawn_readers(Reading::of(Box::new(src), 4), Backpressure::Block, pace()).unwrap();
        assert_eq!(hs.len(), 1);
        let seen = drain(&inp, &d, 64, Duration::ZERO);
        assert_eq!(seen, (0..d.len()).step_by(64).collect::<Vec<_>>());
        assert!(inp.take_error().is_none());
    }

    /// A slow taker under drop-oldest: chunks are dropped and counted, what
    /// arrives is in increasing order and right, and taken + dropped = all.
    #[test]
    fn drop_oldest_counts_what_it_drops() {
        for readers in [1, 4] {
            let chunks = 200;
            let d = data(chunks * 64);
            let inp = input(4, 64, 4);
            let reading = if readers == 1 {
                Reading::Sequential(Box::new(super::super::io::ReadSource(io::Cursor::new(d.clone()))))
            } else {
                Reading::Positional(Arc::new(Jittery { data: d.clone(), fail_at: None, seed: 1 }), readers)
            };
            let hs = inp.spawn_readers(reading, Backpressure::DropOldest, pace()).unwrap();
            let seen = drain(&inp, &d, 64, Duration::from_millis(1));
            let (dropped, bytes) = inp.dropped();
            assert!(dropped > 0, "readers={readers}: nothing dropped");
            assert_eq!(seen.len() as u64 + dropped, chunks as u64, "readers={readers}");
            assert_eq!(bytes, dropped * 64);
            assert!(seen.windows(2).all(|w| w[0] < w[1]));
            for h in hs {
                h.join().unwrap();
            }
        }
    }

    /// A live source (paced, drop-oldest) faster than its taker: the
    /// chunks the ring could not hold are dropped unread and counted, the
    /// delivered ones are right and in order, every byte is either
    /// delivered or counted as dropped, and latency stays bounded.
    #[test]
    fn a_live_source_drops_what_it_cannot_hold_unread() {
        let chunks = 300;
        let d = data(chunks * 64 + 8);
        let inp = input(4, 64, 4);
        let start = Instant::now();
        // A chunk every 50 us; the taker takes one per ms.
        let p = Pace { start, rate: Some(64.0 / 50e-6) };
        let src = Arc::new(Jittery { data: d.clone(), fail_at: None, seed: 4 });
        let hs = inp.spawn_readers(Reading::Positional(src, 3), Backpressure::DropOldest, p).unwrap();
        let (mut seen, mut at, mut bytes, mut worst) = (Vec::new(), 0usize, 0u64, Duration::ZERO);
        while let Some(f) = inp.pop(Duration::from_millis(5), || true) {
            worst = worst.max(f.ready.elapsed());
            // SAFETY: `pop` handed us the slot.
            let got = unsafe { inp.view(f.slot, f.bytes) };
            while at < d.len() && d[at..(at + f.bytes).min(d.len())] != *got {
                at += 64;
            }
            assert!(at < d.len(), "a chunk that is no chunk of the input");
            seen.push(at);
            bytes += f.bytes as u64;
            at += 64;
            std::thread::sleep(Duration::from_millis(1));
            inp.free(f.slot);
        }
        assert!(inp.take_error().is_none());
        let (dropped, dropped_bytes) = inp.dropped();
        assert!(dropped > chunks as u64 / 2, "dropped {dropped} of {chunks}");
        assert_eq!(seen.len() as u64 + dropped, chunks as u64 + 1);
        assert_eq!(bytes + dropped_bytes, d.len() as u64);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        // Bounded by the ring (4 chunks of a 1 ms taker) and the reads
        // (3 ms at most), not by the run's length (about 300 chunks x 1 ms
        // offered in 15 ms).
        assert!(worst < Duration::from_millis(100), "latency {worst:?}");
        for h in hs {
            h.join().unwrap();
        }
    }

    /// A live source of whole chunks only (no partial last one): the last
    /// chunk, which carries the stream's end, is read and delivered however
    /// far behind the readers are, and only chunks before it are dropped.
    #[test]
    fn a_live_source_always_delivers_its_last_whole_chunk() {
        for seed in 0..3 {
            let chunks = 120;
            let d = data(chunks * 64);
            let inp = input(4, 64, 4);
            // A chunk every 20 us; the taker takes one per ms: by the end
            // the readers are far behind, so every chunk that may be
            // dropped unread is.
            let p = Pace { start: Instant::now(), rate: Some(64.0 / 20e-6) };
            let src = Arc::new(Jittery { data: d.clone(), fail_at: None, seed });
            let hs = inp.spawn_readers(Reading::Positional(src, 2), Backpressure::DropOldest, p).unwrap();
            let seen = drain(&inp, &d, 64, Duration::from_millis(1));
            assert!(inp.take_error().is_none());
            let (dropped, _) = inp.dropped();
            assert!(dropped > 0, "seed {seed}: nothing dropped");
            assert_eq!(seen.last(), Some(&((chunks - 1) * 64)), "seed {seed}: the last chunk was dropped; seen {seen:?}");
            assert_eq!(seen.len() as u64 + dropped, chunks as u64);
            for h in hs {
                h.join().unwrap();
            }
        }
    }

    /// The hand-off's own cost: a source that copies nothing, so the chunk
    /// rate is that of claiming, completing and taking chunks in order.
    /// `cargo test --release -p pc-pipeline --lib handoff_rate -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn handoff_rate() {
        struct Nothing(u64);
        impl ReadAt for Nothing {
            fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
                Ok(buf.len().min(self.0.saturating_sub(at) as usize))
            }
        }
        let chunks = 200_000u64;
        for readers in [1, 2, 4, 8, 16] {
            let inp = input(readers + 2, 64, 4);
            let start = Instant::now();
            let hs = inp.spawn_readers(Reading::Positional(Arc::new(Nothing(chunks * 64)), readers), Backpressure::Block, pace()).unwrap();
            let mut n = 0u64;
            while let Some(f) = inp.pop(Duration::from_millis(5), || true) {
                n += 1;
                inp.free(f.slot);
            }
            let dt = start.elapsed().as_secs_f64();
            assert_eq!(n, chunks);
            println!("readers {readers:2}: {:.0} k chunks/s ({:.2} us per chunk)", n as f64 / dt / 1e3, dt / n as f64 * 1e6);
            for h in hs {
                h.join().unwrap();
            }
        }
    }

    #[test]
    fn closing_stops_the_readers() {
        let d = data(1000 * 64);
        let inp = input(4, 64, 4);
        let src = Arc::new(Jittery { data: d, fail_at: None, seed: 5 });
        let hs = inp.spawn_readers(Reading::Positional(src, 3), Backpressure::Block, pace()).unwrap();
        let f = inp.pop(Duration::from_millis(5), || true).unwrap();
        inp.free(f.slot);
        inp.close();
        assert!(inp.pop(Duration::from_millis(5), || true).is_none());
        for h in hs {
            h.join().unwrap();
        }
    }

    #[test]
    fn a_paced_source_is_ready_at_its_due_time() {
        let d = data(20 * 64);
        let inp = input(4, 64, 4);
        let start = Instant::now();
        // 64 bytes per 2 ms.
        let p = Pace { start, rate: Some(32_000.0) };
        let src = Arc::new(Jittery { data: d.clone(), fail_at: None, seed: 2 });
        let hs = inp.spawn_readers(Reading::Positional(src, 2), Backpressure::Block, p).unwrap();
        let mut i = 0u32;
        while let Some(f) = inp.pop(Duration::from_millis(5), || true) {
            i += 1;
            let want = start + Duration::from_millis(2) * i;
            let off = f.ready.max(want) - f.ready.min(want);
            assert!(off < Duration::from_micros(1), "chunk {i}: ready {off:?} away from its due time");
            inp.free(f.slot);
        }
        assert_eq!(i, 20);
        for h in hs {
            h.join().unwrap();
        }
    }
}
