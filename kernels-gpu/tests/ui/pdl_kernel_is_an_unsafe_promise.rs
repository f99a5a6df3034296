//! `PdlKernel` promises a wait in the kernel's entry, which nothing can
//! check: implementing it by hand takes `unsafe`.
#![forbid(unsafe_code)]
use pc_runtime::launch::{KernelCrateMarker, KernelEntry, PdlKernel};

struct Mine;
impl KernelCrateMarker for Mine {
    const PACKAGE: &'static str = "mine";
}

struct NoWaitKernel;
impl KernelEntry for NoWaitKernel {
    type Crate = Mine;
    const NAME: &'static str = "no_wait_kernel";
    const PARAM_BYTES: &'static [usize] = &[];
    const PARAM_LAYOUT: &'static [pc_runtime::launch::ParamLayout] = &[];
    const SIGNATURE: u64 = 0;
}

impl PdlKernel for NoWaitKernel {}

fn main() {}
