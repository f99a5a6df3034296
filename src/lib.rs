//! The kernels of `kernels-gpu`, compiled to PTX by `build.rs` and embedded
//! here as text (the candle-kernels pattern). The host runtime loads
//! [`KERNELS`] as a module and launches its entries by name.
//!
//! ```
//! assert!(ptx_kernels::KERNELS.contains(".visible .entry producer_kernel("));
//! assert!(ptx_kernels::ENTRIES.contains(&ptx_kernels::CONSUMER));
//! ```

/// The PTX module built from `kernels-gpu`.
pub const KERNELS: &str = include_str!(env!("KERNELS_PTX_PATH"));

/// The architecture the PTX was built for (`NVPTX_ARCH`, default `sm_70`).
pub const ARCH: &str = env!("KERNELS_PTX_ARCH");

/// Entry point names, as they appear in the PTX.
pub const PRODUCER: &str = "producer_kernel";
pub const CONSUMER: &str = "consumer_kernel";
pub const REDUCE: &str = "reduce_kernel";
pub const MOVING_AVERAGE: &str = "moving_average_kernel";
/// `consume(produce(i))` in one pass, no intermediate buffer.
pub const FUSED: &str = "fused_kernel";
/// The same three with 16-byte loads and stores (what the pipeline uses).
pub const PRODUCER_VEC: &str = "producer_vec_kernel";
pub const CONSUMER_VEC: &str = "consumer_vec_kernel";
pub const FUSED_VEC: &str = "fused_vec_kernel";
/// Spins for a given time; slows a stream down on purpose.
pub const DELAY: &str = "delay_kernel";
/// Panics (so traps) when its argument is non-zero; for fault-handling tests.
pub const PANIC: &str = "panic_kernel";

/// Every entry `build.rs` checks for.
pub const ENTRIES: &[&str] = &[PRODUCER, CONSUMER, REDUCE, MOVING_AVERAGE, FUSED, PRODUCER_VEC, CONSUMER_VEC, FUSED_VEC, DELAY, PANIC];
