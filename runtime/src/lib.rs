//! Host runtime for the producer/consumer kernels.
//!
//! - [`gpu`]: opens a device through cudarc (libcuda loaded at run time),
//!   turns cudarc's implicit event tracking off, loads the embedded PTX;
//! - [`demo`]: the seed's program: producer on stream A, an event, consumer on
//!   stream B waiting on it, then every element checked;
//! - [`verify`]: the CPU reference, from the same `kernel-math` functions the
//!   kernels call;
//! - [`error`]: one error type; each variant prints as one line.
//!
//! ```no_run
//! use pc_runtime::{demo::{run_demo, DemoConfig}, gpu::Gpu};
//! let gpu = Gpu::open(0)?;
//! let report = run_demo(&gpu, &DemoConfig { elements: 1 << 20, ..DemoConfig::default() })?;
//! assert_eq!(report.check.mismatches, 0);
//! # Ok::<(), pc_runtime::Error>(())
//! ```
pub mod demo;
pub mod error;
pub mod gpu;
pub mod verify;

pub use error::{Error, Result};
