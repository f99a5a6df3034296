//! Stage::map takes only kernels of the map shape (`MapKernel`, which
//! #[kernel] implements for `fn(input: &[I], output: Out<O>)`): any other
//! kernel would run with the map argument list. (That reduce_kernel is not
//! a MapKernel is asserted in tests/spec.rs.)
#![forbid(unsafe_code)]
fn as_map<K: pc_runtime::launch::KernelEntry>() -> pc_pipeline::Stage {
    pc_pipeline::Stage::map::<K>("any-kernel", ptx_kernels::PTX, |_, _| ())
}
fn main() {}
