//! NCCL, loaded at run time: the library probe, the unique id that joins
//! the ranks of a job (as 256 hex digits, for an environment variable or a
//! file), and a communicator.
//!
//! NCCL is opened here with `libloading`, not through cudarc's loader:
//! cudarc's looks for `libnccl.so`, `libnccl.so.12` and the like but not
//! `libnccl.so.2`, the name NCCL's runtime package installs (the plain
//! `.so` comes only with the development package), and it panics where no
//! candidate loads. Here a missing library or symbol is one line,
//! [`PipelineError::NcclMissing`]. The types (`ncclUniqueId`, `ncclComm_t`)
//! are cudarc's (its `nccl` feature).
use crate::PipelineError;
use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut};
use cudarc::nccl::sys::{ncclComm_t, ncclUniqueId};
use pc_runtime::gpu::Gpu;
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Mutex, OnceLock};

type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// `ncclResult_t`, as the integer NCCL returns: a value that a newer NCCL
/// adds is then a number to report, not an invalid enum.
type NcclResult = c_int;
/// `ncclUint8`: every transfer is counted in bytes, whatever the element type.
const NCCL_UINT8: c_int = 1;
/// `ncclSuccess` (`ncclInProgress` comes only from nonblocking
/// communicators, which these are not).
const NCCL_SUCCESS: NcclResult = 0;
/// `ncclSum`.
const NCCL_SUM: c_int = 0;

/// The functions this crate calls, resolved once.
struct Lib {
    /// Kept loaded for the life of the process: the pointers below are into it.
    _lib: libloading::Library,
    name: String,
    get_version: unsafe extern "C" fn(*mut c_int) -> NcclResult,
    get_unique_id: unsafe extern "C" fn(*mut ncclUniqueId) -> NcclResult,
    comm_init_rank: unsafe extern "C" fn(*mut ncclComm_t, c_int, ncclUniqueId, c_int) -> NcclResult,
    comm_destroy: unsafe extern "C" fn(ncclComm_t) -> NcclResult,
    comm_abort: unsafe extern "C" fn(ncclComm_t) -> NcclResult,
    send: unsafe extern "C" fn(*const c_void, usize, c_int, c_int, ncclComm_t, *mut c_void) -> NcclResult,
    recv: unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, ncclComm_t, *mut c_void) -> NcclResult,
    all_reduce: unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, ncclComm_t, *mut c_void) -> NcclResult,
    all_gather: unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, ncclComm_t, *mut c_void) -> NcclResult,
    error_string: unsafe extern "C" fn(NcclResult) -> *const c_char,
}

/// The names tried, in order: the runtime package's soname first, then
/// cudarc's list (`libnccl.so`, ...).
pub fn library_names() -> Vec<String> {
    let mut names = vec!["libnccl.so.2".to_string()];
    names.extend(cudarc::get_lib_name_candidates("nccl").into_iter().filter(|n| n != "libnccl.so.2"));
    names
}

fn lib() -> Result<&'static Lib> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(|e| PipelineError::NcclMissing(e.clone()))
}

fn load() -> Result<Lib, String> {
    let mut first_error = None;
    for name in library_names() {
        // SAFETY: loading runs NCCL's initializers, which make no demands on
        // the caller; any library of this name is NCCL.
        let lib = match unsafe { libloading::Library::new(&name) } {
            Ok(lib) => lib,
            Err(e) => {
                // libloading's Display is "dlopen failed"; dlerror's text is its source.
                first_error.get_or_insert_with(|| std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string()));
                continue;
            }
        };
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the type is the symbol's C signature in nccl.h
                // (results as int, data types as int, streams as void*).
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| format!("{name} has no {}: {e} (NCCL 2.7 or newer is needed)", $name))?
            };
        }
        return Ok(Lib {
            get_version: sym!("ncclGetVersion"),
            get_unique_id: sym!("ncclGetUniqueId"),
            comm_init_rank: sym!("ncclCommInitRank"),
            comm_destroy: sym!("ncclCommDestroy"),
            comm_abort: sym!("ncclCommAbort"),
            send: sym!("ncclSend"),
            recv: sym!("ncclRecv"),
            all_reduce: sym!("ncclAllReduce"),
            all_gather: sym!("ncclAllGather"),
            error_string: sym!("ncclGetErrorString"),
            name,
            _lib: lib,
        });
    }
    Err(first_error.unwrap_or_else(|| "no library name to try".into()))
}

/// Whether NCCL loads: its version (e.g. 22703 for 2.27.3) and the library
/// name that loaded, or [`PipelineError::NcclMissing`].
pub fn version() -> Result<(i32, String)> {
    let lib = lib()?;
    let mut v: c_int = 0;
    // SAFETY: writes one int.
    check(lib, unsafe { (lib.get_version)(&mut v) }, "ncclGetVersion")?;
    Ok((v, lib.name.clone()))
}

fn check(lib: &Lib, r: NcclResult, what: &str) -> Result<()> {
    if r == NCCL_SUCCESS {
        return Ok(());
    }
    // SAFETY: ncclGetErrorString returns a static string for any code.
    let text = unsafe { (lib.error_string)(r) };
    // SAFETY: a NUL-terminated static string, when not null.
    let text = if text.is_null() { String::new() } else { unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy().into_owned() };
    Err(PipelineError::Nccl(format!("{what} failed: {text} (ncclResult {r})")))
}

/// The id that joins the ranks of one job: made once (by rank 0's side),
/// handed to every rank.
#[derive(Clone, PartialEq, Eq)]
pub struct NcclId(pub [u8; 128]);

impl std::fmt::Debug for NcclId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NcclId({}...)", &self.to_hex()[..16])
    }
}

impl NcclId {
    /// A new id from NCCL (`ncclGetUniqueId`; it also opens the bootstrap
    /// socket the ranks connect to, so make it on the machine of rank 0).
    pub fn new() -> Result<NcclId> {
        let lib = lib()?;
        let mut id = ncclUniqueId { internal: [0; 128] };
        // SAFETY: writes the 128-byte id.
        check(lib, unsafe { (lib.get_unique_id)(&mut id) }, "ncclGetUniqueId")?;
        Ok(NcclId(id.internal.map(|c| c as u8)))
    }

    /// 256 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From [`NcclId::to_hex`]'s form (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<NcclId> {
        let t = text.trim();
        let bad = PipelineError::BadNcclId;
        if t.len() != 256 {
            return Err(bad(format!("{} characters, want 256 hex digits", t.len())));
        }
        let mut out = [0u8; 128];
        for (i, pair) in t.as_bytes().chunks_exact(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| bad("not hex".into()))?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| bad(format!("{s:?} at {} is not hex", 2 * i)))?;
        }
        Ok(NcclId(out))
    }

    fn raw(&self) -> ncclUniqueId {
        ncclUniqueId { internal: self.0.map(|b| b as c_char) }
    }
}

/// Bytes of the digest the ranks of a job agree on when they join (see
/// [`Comm::init`]).
pub const DIGEST_BYTES: usize = 16;

/// One rank's communicator, on one GPU.
pub struct Comm {
    raw: ncclComm_t,
    rank: usize,
    nranks: usize,
    /// The CUDA device the communicator was made on.
    device: usize,
    /// What every rank of the job passed to [`Comm::init`] (checked equal).
    digest: [u8; DIGEST_BYTES],
    /// Taken for every call on the communicator (NCCL forbids concurrent
    /// ones); holds the number of the next transfer each way.
    calls: Mutex<Cursor>,
    /// Set when a run failed: dropping aborts (a destroy would wait for
    /// transfers whose peer may never come).
    failed: std::sync::atomic::AtomicBool,
}

/// The number of the next send and of the next receive, in the order every
/// rank makes them (see [`Comm::send_nth`]).
#[derive(Debug, Default)]
struct Cursor {
    send: usize,
    recv: usize,
}

// SAFETY: NCCL forbids concurrent calls on one communicator; every call
// here is made with `calls` locked, so calls from several threads (or
// several pipelines sharing the handle) are serialized.
unsafe impl Send for Comm {}
// SAFETY: as for Send: every NCCL call through `&self` holds the lock.
unsafe impl Sync for Comm {}

impl Comm {
    /// Joins the job as `rank` of `nranks` on `gpu` (`ncclCommInitRank`,
    /// which blocks until every rank has joined), then checks that every
    /// rank passed the same `digest` (an all-gather of it): where one
    /// differs, every rank gets the same error and the communicator is
    /// aborted. `digest` says what the ranks will transfer (for a pipeline,
    /// [`crate::ranks::transfer_digest`]); the stages that transfer check
    /// their plan against [`Comm::digest`] before they use the communicator.
    pub fn init(gpu: &Gpu, id: &NcclId, rank: usize, nranks: usize, digest: [u8; DIGEST_BYTES]) -> Result<Comm> {
        let lib = lib()?;
        if rank >= nranks {
            return Err(PipelineError::BadRanks(format!("rank {rank} of {nranks}: ranks are 0..{}", nranks.saturating_sub(1))));
        }
        let (r, n) = (c_int::try_from(rank), c_int::try_from(nranks));
        let (Ok(r), Ok(n)) = (r, n) else { return Err(PipelineError::BadRanks(format!("{nranks} ranks are too many"))) };
        // NCCL takes the device from the thread's current context.
        // SAFETY: the context is only made current.
        unsafe { gpu.context() }.bind_to_thread().map_err(|e| PipelineError::Runtime(pc_runtime::Error::cuda("binding the GPU for NCCL")(e)))?;
        let mut raw: ncclComm_t = std::ptr::null_mut();
        // SAFETY: writes the communicator handle; the id is passed by value.
        check(lib, unsafe { (lib.comm_init_rank)(&mut raw, n, id.raw(), r) }, "ncclCommInitRank")?;
        let comm = Comm { raw, rank, nranks, device: gpu.info().index, digest, calls: Mutex::new(Cursor::default()), failed: false.into() };
        // SAFETY: the stream runs only the all-gather below, on buffers of
        // its own, and is synchronized before they are freed.
        let stream = unsafe { gpu.stream() }.map_err(PipelineError::Runtime)?;
        let all = comm.all_gather_digest(&stream).inspect_err(|_| comm.mark_failed())?;
        if let Some((r, _)) = all.chunks_exact(DIGEST_BYTES).enumerate().find(|(_, d)| *d != &all[..DIGEST_BYTES]) {
            comm.mark_failed();
            return Err(PipelineError::BadRanks(format!(
                "rank {r} was given another pipeline than rank 0 (the stage list, chunk or total size, or placement differ), so their NCCL transfers would not match; give every rank the same arguments"
            )));
        }
        Ok(comm)
    }

    /// Every rank's digest, in rank order (`ncclAllGather` of
    /// [`DIGEST_BYTES`] from each: the same count on every rank, whatever
    /// the digests hold).
    fn all_gather_digest(&self, stream: &std::sync::Arc<CudaStream>) -> Result<Vec<u8>> {
        let lib = lib()?;
        let cuda = |what: &'static str| move |e| PipelineError::Runtime(pc_runtime::Error::cuda(what)(e));
        let _calls = self.lock();
        stream.context().bind_to_thread().map_err(cuda("binding the GPU for NCCL"))?;
        let mine = stream.clone_htod(&self.digest).map_err(cuda("uploading the spec digest"))?;
        let mut all = stream.alloc_zeros::<u8>(DIGEST_BYTES * self.nranks).map_err(cuda("allocating the ranks' digests"))?;
        let (src, _) = mine.device_ptr(stream);
        let (dst, _) = all.device_ptr_mut(stream);
        // SAFETY: `src` holds DIGEST_BYTES and `dst` nranks times that, on
        // this GPU, used by nothing else; both are ordered on `stream`,
        // which is synchronized (by the copy back) before they are freed.
        let r = unsafe { (lib.all_gather)(src as *const c_void, dst as *mut c_void, DIGEST_BYTES, NCCL_UINT8, self.raw, stream.cu_stream().cast()) };
        check(lib, r, "ncclAllGather (the ranks' spec digests)")?;
        stream.clone_dtoh(&all).map_err(cuda("waiting for the other ranks' spec digests"))
    }

    /// The lock every NCCL call holds (a panic while it was held leaves
    /// nothing half-done on the host side: the cursor is plain numbers).
    fn lock(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What every rank passed to [`Comm::init`].
    pub fn digest(&self) -> [u8; DIGEST_BYTES] {
        self.digest
    }

    /// The CUDA device (its index) the communicator runs on.
    pub fn device(&self) -> usize {
        self.device
    }

    pub fn rank(&self) -> usize {
        self.rank
    }
    pub fn nranks(&self) -> usize {
        self.nranks
    }

    /// Makes Drop abort the communicator instead of destroying it.
    pub(crate) fn mark_failed(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `ncclSend` of `bytes` at `buf` to `peer`, on `stream`, as transfer
    /// `n` of a cycle of `period` (a run's chunks): refused unless `n` is
    /// the next in the order 0, 1, .., period - 1, 0, .. that every user of
    /// this communicator shares, so that the sends leave in the order the
    /// peer's receives are made in, whatever pipelines share the handle.
    ///
    /// # Safety
    /// `buf` addresses `bytes` of device memory on this communicator's GPU
    /// that nothing writes until the send completes on `stream`, and
    /// `bytes` is what the peer's receive numbered `n` takes (the digest
    /// the ranks agreed on fixes both sides' plan).
    pub(crate) unsafe fn send_nth(&self, n: usize, period: usize, buf: u64, bytes: usize, peer: usize, stream: *mut c_void) -> Result<()> {
        let mut calls = self.lock();
        next_in_order(&mut calls.send, n, period, "send")?;
        // SAFETY: per the caller's contract; the lock is held.
        unsafe { self.send(buf, bytes, peer, stream) }
    }

    /// `ncclRecv` of `bytes` into `buf` from `peer`, on `stream`, as
    /// transfer `n` of a cycle of `period`; see [`Comm::send_nth`].
    ///
    /// # Safety
    /// `buf` addresses `bytes` of device memory on this communicator's GPU
    /// that nothing else reads or writes until the receive completes on
    /// `stream`, and `bytes` is what the peer's send numbered `n` carries.
    pub(crate) unsafe fn recv_nth(&self, n: usize, period: usize, buf: u64, bytes: usize, peer: usize, stream: *mut c_void) -> Result<()> {
        let mut calls = self.lock();
        next_in_order(&mut calls.recv, n, period, "receive")?;
        // SAFETY: per the caller's contract; the lock is held.
        unsafe { self.recv(buf, bytes, peer, stream) }
    }

    /// `ncclSend` of `bytes` at `buf` to `peer`, on `stream`.
    ///
    /// # Safety
    /// As [`Comm::send_nth`], and the caller holds the lock.
    unsafe fn send(&self, buf: u64, bytes: usize, peer: usize, stream: *mut c_void) -> Result<()> {
        let lib = lib()?;
        // SAFETY: per the caller's contract; the communicator is live.
        check(lib, unsafe { (lib.send)(buf as *const c_void, bytes, NCCL_UINT8, peer as c_int, self.raw, stream) }, "ncclSend")
    }

    /// `ncclRecv` of `bytes` into `buf` from `peer`, on `stream`.
    ///
    /// # Safety
    /// As [`Comm::recv_nth`], and the caller holds the lock.
    unsafe fn recv(&self, buf: u64, bytes: usize, peer: usize, stream: *mut c_void) -> Result<()> {
        let lib = lib()?;
        // SAFETY: per the caller's contract; the communicator is live.
        check(lib, unsafe { (lib.recv)(buf as *mut c_void, bytes, NCCL_UINT8, peer as c_int, self.raw, stream) }, "ncclRecv")
    }

    /// Opens NCCL's connections to `from` and `to` before the first run:
    /// one transfer of `bytes` from `from` and one to `to`, on `stream`,
    /// then a synchronize. NCCL connects a peer at the first transfer with
    /// it (about 100 ms on two H200s), which would otherwise land in the
    /// first run's time and trace. A transfer of a whole chunk (up to 64
    /// MiB, which spreads over every channel) opens every channel the
    /// chunks will use.
    ///
    /// # Safety
    /// `from` and `to` (peer, bytes) pair with the peers' own calls: `to`'s
    /// rank names this rank as its `from`, with the same bytes; and no
    /// transfer of a pipeline has been made yet (these come before the
    /// numbered ones on both sides).
    pub(crate) unsafe fn connect(&self, stream: &std::sync::Arc<CudaStream>, from: Option<(usize, usize)>, to: Option<(usize, usize)>) -> Result<()> {
        let cuda = |what: &'static str| move |e| PipelineError::Runtime(pc_runtime::Error::cuda(what)(e));
        let _calls = self.lock();
        stream.context().bind_to_thread().map_err(cuda("binding the GPU for NCCL"))?;
        let (from, to) = (from.map(|(p, b)| (p, b.clamp(1, 64 << 20))), to.map(|(p, b)| (p, b.clamp(1, 64 << 20))));
        let bytes = from.iter().chain(&to).map(|&(_, b)| b).max().unwrap_or(1);
        let mut buf = stream.alloc_zeros::<u8>(bytes).map_err(cuda("allocating the connection warm-up buffer"))?;
        let (p, _) = buf.device_ptr_mut(stream);
        // SAFETY: `bytes` of device memory on this GPU, used only by these
        // two transfers, which are ordered on `stream`; the stream is
        // synchronized before the buffer is freed. The receive comes first:
        // in a chain of ranks, each rank's send meets the next rank's
        // receive, which is queued before that rank's own send.
        unsafe {
            if let Some((peer, b)) = from {
                self.recv(p, b, peer, stream.cu_stream().cast())?;
            }
            if let Some((peer, b)) = to {
                self.send(p, b, peer, stream.cu_stream().cast())?;
            }
        }
        stream.synchronize().map_err(cuda("waiting for NCCL's connections to the neighbour ranks"))
    }

    /// Returns once every rank has called it (a one-byte all-reduce on
    /// `stream`, then a synchronize). Called after a run has synchronized,
    /// so that no rank tears down buffers a peer's transfer may still use.
    pub(crate) fn barrier(&self, stream: &std::sync::Arc<CudaStream>) -> Result<()> {
        let lib = lib()?;
        let _calls = self.lock();
        let cuda = |what: &'static str| move |e| PipelineError::Runtime(pc_runtime::Error::cuda(what)(e));
        stream.context().bind_to_thread().map_err(cuda("binding the GPU for NCCL"))?;
        let mut word = stream.alloc_zeros::<u8>(1).map_err(cuda("allocating the barrier's byte"))?;
        let (p, _) = word.device_ptr_mut(stream);
        // SAFETY: one byte of device memory on this GPU, summed in place
        // (NCCL allows in-place all-reduce); the stream is synchronized
        // before the byte is freed.
        let r = unsafe { (lib.all_reduce)(p as *const c_void, p as *mut c_void, 1, NCCL_UINT8, NCCL_SUM, self.raw, stream.cu_stream().cast()) };
        check(lib, r, "ncclAllReduce (the barrier at the end of a run)")?;
        stream.synchronize().map_err(cuda("waiting for the other ranks"))
    }
}

/// Moves `next` on past transfer `n` of a cycle of `period`, or refuses
/// (one line) where `n` is not the next one.
fn next_in_order(next: &mut usize, n: usize, period: usize, what: &str) -> Result<()> {
    if period == 0 || n != *next {
        return Err(PipelineError::BadRanks(format!(
            "NCCL {what} number {n} (of {period} a run) refused: the next one must be number {next}, or the peer's transfers would not match these"
        )));
    }
    *next = (n + 1) % period;
    Ok(())
}

impl Drop for Comm {
    fn drop(&mut self) {
        let Ok(lib) = lib() else { return };
        let failed = self.failed.load(std::sync::atomic::Ordering::SeqCst) || std::thread::panicking();
        // SAFETY: the handle came from ncclCommInitRank and is released once.
        // Errors are ignored: nothing is left to do with the communicator.
        unsafe {
            if failed {
                let _ = (lib.comm_abort)(self.raw);
            } else {
                let _ = (lib.comm_destroy)(self.raw);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex() {
        let mut b = [0u8; 128];
        b.iter_mut().enumerate().for_each(|(i, x)| *x = (i * 37 + 5) as u8);
        let id = NcclId(b);
        let hex = id.to_hex();
        assert_eq!(hex.len(), 256);
        assert_eq!(NcclId::from_hex(&format!("  {hex}\n")).unwrap(), id);
        assert_eq!(NcclId::from_hex(&hex.to_uppercase()).unwrap(), id);
        assert_eq!(id.raw().internal.map(|c| c as u8), b);
        for (bad, want) in [("abc", "3 characters"), (&"zz".repeat(128)[..], "is not hex")] {
            let e = NcclId::from_hex(bad).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        }
        // A multi-byte character in the middle is refused, not a panic.
        let odd = format!("é{}", &hex[2..]);
        assert!(NcclId::from_hex(&odd).is_err());
    }

    /// Transfers are numbered 0..period in a cycle, shared by every user of
    /// a communicator: one out of turn is refused, and leaves the count as
    /// it was.
    #[test]
    fn transfers_go_in_order() {
        let mut next = 0;
        for n in [0, 1, 2, 0, 1] {
            next_in_order(&mut next, n, 3, "send").unwrap();
        }
        assert_eq!(next, 2);
        for (n, period) in [(0, 3), (1, 3), (2, 0)] {
            let e = next_in_order(&mut next, n, period, "send").unwrap_err().to_string();
            assert!(e.contains(&format!("send number {n}")) && e.contains("must be number 2") && !e.contains('\n'), "{e}");
        }
        next_in_order(&mut next, 2, 3, "send").unwrap();
        assert_eq!(next, 0);
    }

    #[test]
    fn the_runtime_soname_is_tried_first() {
        let names = library_names();
        assert_eq!(names[0], "libnccl.so.2");
        assert!(names.iter().any(|n| n == "libnccl.so"));
        assert_eq!(names.iter().filter(|n| *n == "libnccl.so.2").count(), 1);
    }

    /// Where NCCL is missing (CI), every entry point is one line, no panic;
    /// where it is installed, the version reads.
    #[test]
    fn a_missing_library_is_one_line() {
        match version() {
            Ok((v, name)) => assert!(v > 0, "{name}"),
            Err(e) => {
                let e = e.to_string();
                assert!(e.starts_with("NCCL is not installed (libnccl.so.2 could not be loaded): ") && !e.contains('\n'), "{e}");
                assert_eq!(NcclId::new().unwrap_err().to_string(), e);
            }
        }
    }
}
