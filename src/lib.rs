//! The project's kernels: `kernels-gpu` compiled to PTX by `build.rs` and
//! embedded here as text (the candle-kernels pattern), with the typed
//! launchers the same source gives on the host, and the seed's demo.
//!
//! ```no_run
//! use ptx_kernels::{ConsumerKernel, load};
//! let gpu = pc_runtime::gpu::Gpu::open(0)?;
//! let module = load(&gpu)?;
//! let consumer = module.kernel::<ConsumerKernel>()?; // checked against the PTX's parameters
//! # Ok::<(), pc_runtime::Error>(())
//! ```
//!
//! ```
//! assert!(ptx_kernels::KERNELS.contains(".visible .entry producer_kernel("));
//! assert!(ptx_kernels::entries().any(|e| e == "consumer_vec_kernel"));
//! ```
pub mod demo;
pub mod hopper;
pub mod verify;

pub use kernels_gpu::*;

/// The PTX module built from `kernels-gpu`, as text.
pub const KERNELS: &str = include_str!(env!("KERNELS_PTX_PATH"));

/// The same PTX, typed as kernels-gpu's: what its launchers load.
// SAFETY: build.rs built KERNELS from kernels-gpu, the crate whose host
// build defines these launchers, from the same source.
pub const PTX: pc_runtime::launch::Ptx<KernelCrate> = unsafe { pc_runtime::launch::Ptx::new(KERNELS) };

/// The architecture the PTX was built for (`NVPTX_ARCH`, default `sm_70`).
pub const ARCH: &str = env!("KERNELS_PTX_ARCH");

/// Every `.entry` of [`KERNELS`], as the builder found them in the PTX.
pub fn entries() -> impl Iterator<Item = &'static str> {
    env!("KERNELS_PTX_ENTRIES").split(',').filter(|e| !e.is_empty())
}

/// Loads [`PTX`] on `gpu`.
pub fn load(gpu: &pc_runtime::gpu::Gpu) -> pc_runtime::Result<pc_runtime::launch::Module<KernelCrate>> {
    gpu.load(PTX, &format!("the kernels' PTX (embedded, {ARCH})"))
}
