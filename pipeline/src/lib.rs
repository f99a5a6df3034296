//! Multi-stage producer/consumer pipelines on one or more GPUs.
//!
//! A pipeline is an ordered list of [`Stage`]s: a source (`producer` kernel,
//! `h2d` copy from pinned host memory, or one of yours), map stages (any
//! `#[kernel]` of the map shape, of any element types), and a sink (`reduce`
//! kernel, `d2h` copy into pinned host memory). Each stage has its own
//! stream; between two stages sits a ring of K device slots of the element
//! type they exchange, and chunk `c` uses slot `c % K`. Every hand-off is
//! ordered by two events, listed by [`graph::EventGraph`]: *filled*
//! (downstream waits for upstream to finish writing the slot) and *freed*
//! (upstream waits for downstream to finish reading it before writing chunk
//! `c + K` there). Nothing else orders the streams: cudarc's implicit
//! tracking is off.
//!
//! - [`stage`]: stages as values, and the traits to write new kinds;
//! - [`builtin`]: the built-in stages and the registry of stage names;
//! - [`flags`]: the flags grain's stage forms (every stage one kernel, all
//!   running at once, slots handed over through counters in device memory);
//! - [`fir`]: the `fir` stage's taps (default low-pass, text files); halo
//!   stages (reading elements before each chunk) keep their own device history;
//! - [`spec`]: a pipeline's shape, validation, ring element types;
//! - [`graph`]: the event graph as a value;
//! - [`exec`]: allocation, enqueueing, CUDA graph capture and replay, several GPUs;
//! - [`reference`](mod@reference): the CPU reference and chunk-by-chunk verification;
//! - [`timeline`]: per-(stage, chunk) times, Chrome trace and SVG Gantt chart;
//! - [`sync_check`]: removes each edge in turn and shows the corruption it prevents;
//! - [`sim`]: the simulated device: stream launches, graph replay and streams
//!   on the CPU through the executor's own walk, with a race detector;
//! - [`ranks`]: one pipeline over several processes (one GPU each), stage
//!   hand-offs between them through NCCL ([`nccl`], loaded at run time).
//!
//! See [`Pipeline`] for an example.
pub mod builtin;
mod copy;
pub mod elem;
pub mod exec;
pub mod fir;
pub mod flags;
mod grains;
pub mod graph;
mod halo;
mod host_mem;
pub mod nccl;
pub mod ranks;
mod records;
pub mod reference;
pub mod sim;
pub mod spec;
pub mod stage;
pub mod stream;
pub mod sync_check;
pub mod timeline;

pub use builtin::{StageRegistry, parse_stages};
pub use elem::{ElemType, HostChunk};
#[allow(deprecated)]
pub use exec::Input;
pub use exec::{HostInput, Launch, Pipeline, RunReport};
pub use grains::LAUNCHES;
pub use graph::{Edge, EdgeKind, EventGraph};
pub use pc_runtime::launch::Ptx;
pub use spec::{PipelineSpec, Workload};
pub use stage::{Port, Stage};

use std::path::PathBuf;

/// Everything a pipeline can refuse or hit. Each message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Runtime(#[from] pc_runtime::Error),
    #[error("K (slots per ring) must be at least 1")]
    ZeroSlots,
    #[error("chunk size must be at least one element (4 bytes)")]
    ZeroChunk,
    #[error("unknown stage {name:?}; known stages: {known}")]
    UnknownStage { name: String, known: String },
    #[error("bad stage list: {0}")]
    BadStages(String),
    #[error("bad input: {0}")]
    BadInput(String),
    #[error(
        "stage {stage} reads {halo} element(s) before each chunk (a halo), which only its own GPU keeps; it cannot run split over {parts} GPUs: use one GPU"
    )]
    HaloSplit { stage: String, halo: usize, parts: usize },
    #[error("bad FIR taps: {0}")]
    BadFirTaps(String),
    #[error("no GPU given")]
    NoGpus,
    #[error("the {grain} grain cannot run this pipeline: {why}")]
    GrainUnsupported { grain: &'static str, why: String },
    #[error("capturing the pipeline as a CUDA graph produced no graph")]
    EmptyCapture,
    #[error("input file {path}: {source}")]
    Input { path: PathBuf, source: std::io::Error },
    #[error("input file {path} has {have} bytes, shorter than the {want} declared ({elements} elements of {elem})")]
    InputTooShort { path: PathBuf, have: u64, want: u64, elements: u64, elem: &'static str },
    #[error("interrupted: {runs_done} of {runs} run(s) had finished; the GPU work already queued was let finish, nothing was written")]
    Interrupted { runs_done: usize, runs: usize },
    #[error("reading the stream after {at} bytes: {source}")]
    StreamInput { at: u64, source: std::io::Error },
    #[error("the stream ended mid-element: {bytes} bytes, {partial} byte(s) past the last whole element of {size} bytes")]
    StreamEndsMidElement { bytes: u64, size: usize, partial: usize },
    #[error("writing the stream's output: {0}")]
    StreamOutput(std::io::Error),
    #[error("interrupted: {chunks} chunk(s) had been delivered; the GPU work already queued was let finish")]
    StreamInterrupted { chunks: u64 },
    #[error(
        "the flags grain stopped: stage {stage} waited more than {ms} ms for slot {slot} of ring {ring} to be {waited_for} (chunk {chunk}; counter {have}, waiting for {want})"
    )]
    RingStuck { stage: String, waited_for: &'static str, ring: String, slot: u32, chunk: u64, have: u32, want: u32, ms: u64 },
    #[error(
        "the warps grain stopped: in stage {stage}'s ring, {what} slot {slot} (phase parity {parity}) for {ms} ms, past the watchdog's {timeout_ms} ms (block {block}, {tile})"
    )]
    WarpRingStuck { stage: String, what: &'static str, slot: u32, parity: u32, block: u32, tile: String, ms: u64, timeout_ms: u64 },
    #[error("NCCL is not installed (libnccl.so.2 could not be loaded): {0}")]
    NcclMissing(String),
    #[error("NCCL: {0}")]
    Nccl(String),
    #[error("bad rank placement: {0}")]
    BadRanks(String),
    #[error("bad NCCL id: {0}")]
    BadNcclId(String),
    #[error("cannot write {path}: {source}")]
    Output { path: PathBuf, source: std::io::Error },
}
