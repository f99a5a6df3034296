//! The Hopper-only module: `kernels-hopper` compiled to PTX for sm_90 with
//! PTX 8.0 by `build.rs`, embedded as text beside [`crate::KERNELS`], with
//! its typed launchers. The driver cannot load it on older GPUs, so
//! [`load`] refuses them in one line first.
//!
//! ```
//! assert!(ptx_kernels::hopper::KERNELS.contains(".target sm_90"));
//! assert!(ptx_kernels::hopper::entries().any(|e| e == "pdl_consumer_kernel"));
//! ```
pub use kernels_hopper::*;

/// The PTX module built from `kernels-hopper`, as text.
pub const KERNELS: &str = include_str!(env!("HOPPER_PTX_PATH"));

/// The same PTX, typed as kernels-hopper's: what its launchers load.
// SAFETY: build.rs built KERNELS from kernels-hopper, the crate whose host
// build defines these launchers, from the same source.
pub const PTX: pc_runtime::launch::Ptx<KernelCrate> = unsafe { pc_runtime::launch::Ptx::new(KERNELS) };

/// The architecture the PTX was built for (`sm_90`).
pub const ARCH: &str = env!("HOPPER_PTX_ARCH");

/// The compute capability the module needs.
pub const COMPUTE_CAPABILITY: (i32, i32) = (9, 0);

/// Every `.entry` of [`KERNELS`], as the builder found them in the PTX.
pub fn entries() -> impl Iterator<Item = &'static str> {
    env!("HOPPER_PTX_ENTRIES").split(',').filter(|e| !e.is_empty())
}

/// Loads [`PTX`] on `gpu`; a GPU older than compute capability 9.0 is
/// refused with one line ([`pc_runtime::Error::NeedsComputeCapability`]).
pub fn load(gpu: &pc_runtime::gpu::Gpu) -> pc_runtime::Result<pc_runtime::launch::Module<KernelCrate>> {
    gpu.require_compute_capability(COMPUTE_CAPABILITY, "the Hopper kernels (PDL, mbarrier rings)")?;
    gpu.load(PTX, &format!("the Hopper kernels' PTX (embedded, {ARCH})"))
}
