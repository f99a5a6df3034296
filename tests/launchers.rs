//! Every launcher that `#[kernel]` generates in kernels-gpu against the PTX
//! that build.rs compiled from the same source, without a GPU: its `NAME` is
//! an entry of the PTX, its `PARAM_BYTES` are that entry's parameter sizes,
//! and the PTX has no entry without a launcher listed here (so a kernel
//! added to kernels-gpu must be added to `LAUNCHERS`).
//!
//! kernels-gpu's own tests cannot do this: the PTX is embedded by this
//! package, which depends on kernels-gpu.
use pc_runtime::launch::{KernelEntry, entry_param_bytes};
use std::collections::BTreeSet;

/// `(NAME, PARAM_BYTES)` of each listed launcher type.
macro_rules! launchers {
    ($($k:ident),* $(,)?) => {
        &[$((<kernels_gpu::$k as KernelEntry>::NAME, <kernels_gpu::$k as KernelEntry>::PARAM_BYTES)),*]
    };
}

/// Every launcher of kernels-gpu, once.
const LAUNCHERS: &[(&str, &[usize])] = launchers![
    ProducerKernel,
    ConsumerKernel,
    ProducerVecKernel,
    ConsumerVecKernel,
    FusedVecKernel,
    FusedKernel,
    MovingAverageKernel,
    U8ToF32Kernel,
    StereoToMonoKernel,
    MixU32Kernel,
    AbsI32Kernel,
    DoubleF64Kernel,
    ReduceKernel,
    DelayKernel,
    PanicKernel,
];

#[test]
fn every_launcher_has_its_ptx_entrys_parameters() {
    for &(name, bytes) in LAUNCHERS {
        let found = entry_param_bytes(ptx_kernels::KERNELS, name).unwrap_or_else(|| panic!("the PTX has no entry {name}"));
        assert_eq!(found, bytes, "{name}: PTX parameter sizes (left) against the launcher's PARAM_BYTES (right)");
    }
}

#[test]
fn the_ptx_entries_are_exactly_the_listed_launchers() {
    let listed: BTreeSet<&str> = LAUNCHERS.iter().map(|&(name, _)| name).collect();
    assert_eq!(listed.len(), LAUNCHERS.len(), "a launcher is listed twice");
    let in_ptx: BTreeSet<&str> = ptx_kernels::entries().collect();
    let unlisted: Vec<_> = in_ptx.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&in_ptx).collect();
    assert!(unlisted.is_empty() && missing.is_empty(), "PTX entries without a listed launcher: {unlisted:?}; listed launchers not in the PTX: {missing:?}");
}

#[test]
fn the_builders_entry_list_is_the_ptxs() {
    let from_builder: Vec<&str> = {
        let mut v: Vec<&str> = ptx_kernels::entries().collect();
        v.sort();
        v
    };
    assert_eq!(from_builder, pc_runtime::launch::entries(ptx_kernels::KERNELS));
}
