//! Tells the build scripts that compile this crate to PTX (the root
//! `ptx-kernels` build.rs) where its source is: they read
//! `DEP_KERNELS_HOPPER_SOURCE`, cargo's `links` metadata, which names this
//! directory in the workspace and the unpacked copy of a packaged crate alike
//! (a dependent's own directory does not hold this crate once packaged).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        println!("cargo::metadata=source={}", dir.display());
    }
}
