//! Saying which crate a PTX text was built from is a promise the loader
//! cannot check: `Ptx::new` is unsafe.
#![forbid(unsafe_code)]
fn main() {
    let _ = pc_runtime::launch::Ptx::<ptx_kernels::KernelCrate>::new(".version 7.0");
}
