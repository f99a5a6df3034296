//! The simulated device: the executor's stream launches and graph replay
//! on the CPU, with a race detector, so the executor's protocol and every
//! edge of the event graph are checked with no GPU.
//!
//! The executor walks one action list per run ([`crate::exec::plan::plan`])
//! or per stream chunk ([`crate::exec::plan::stream_chunk`]) with one walker
//! ([`crate::exec::device::enqueue_actions`]) into a device
//! ([`crate::exec::device::EnqueueTo`]). CUDA is one device; [`SimDevice`]
//! is the other: streams as ordered queues, events with CUDA's capture
//! semantics (a wait takes the event's latest record at enqueue time; none:
//! no wait), each ring `K` slots of host bytes, each operation its stage's
//! CPU reference on the slot's bytes, a seeded scheduler running ready
//! stream heads in random order, and a vector-clock race detector that
//! names the ring, slot, both operations and the missing edge.
//!
//! The flags, PDL and warps grains run as models of their protocols: actors
//! (a flags block, a PDL kernel, a block ring's producer lane and consumer
//! threads) whose waits and hand-offs are the device code's, decided by
//! `kernel_math::ring`'s functions, each counter add a release and each
//! satisfied wait an acquire of the same race detector; a protocol whose
//! actors all wait for ever is [`SimError::Stuck`] (the watchdog).
//!
//! Several simulated GPUs: a split pipeline is one device a part (its
//! chunks, streams, rings); a placed one is one device whose stages' streams
//! sit on several GPUs, a peer copy stage between them, its events across
//! GPUs (events all the same to the race detector).
//!
//! Ranks ([`run_ranks`]): each rank its stages as a [`SimPipeline`], the
//! NCCL transfers through an in-process wire with NCCL's matching.
//!
//! Not modeled: GPU timing and memory model (operations run one at a time,
//! whole), ranks running at the same time. See `docs/sim.md`.
mod device;
mod grains;
mod machine;
mod pipeline;
mod ranks;

pub use device::{Hazard, OpRef, Place, Race, SIM_GBPS, SIM_LAUNCH_MS, SimDevice};
#[doc(hidden)]
pub use grains::SimProtocol;
pub use pipeline::{SIM_LAUNCHES, SimError, SimPipeline, stream, stream_interruptible};
pub use ranks::{SimRanks, run_ranks};
