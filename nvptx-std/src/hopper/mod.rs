//! Hopper (sm_90) device support: programmatic dependent launch ([`pdl`])
//! and the warp-specialized mbarrier ring ([`ring`], PTX 8.0).
//!
//! This module exists in device builds only for `sm_90` and newer
//! (`cfg(target_feature = "sm_90")`, which nvptx-builder passes to every crate
//! of the build): a kernel crate built for sm_70 that names it does not
//! compile, instead of emitting PTX that ptxas refuses. On the host its
//! functions are stand-ins, so `#[kernel]` bodies type check.
pub mod pdl;
// mbarrier expect_tx and bulk copies need PTX 8.0 (`+ptx80`).
#[cfg(any(not(target_arch = "nvptx64"), target_feature = "ptx80"))]
pub mod ring;
