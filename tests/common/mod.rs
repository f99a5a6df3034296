//! Helpers shared by the GPU tests.
#![allow(dead_code)]

/// A fresh seed per run (clock-based), printed so a failure can be replayed
/// with `PC_TEST_SEED=<seed>`.
pub fn seed() -> u32 {
    let seed = match std::env::var("PC_TEST_SEED") {
        Ok(s) => s.parse().expect("PC_TEST_SEED must be a u32"),
        Err(_) => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            kernel_math::hash32(t.subsec_nanos() ^ t.as_secs() as u32)
        }
    };
    eprintln!("seed {seed} (replay with PC_TEST_SEED={seed})");
    seed
}

/// The independent oracles of the kernels' math (shared with the pipeline's
/// tests, where `tests/oracle.rs` proves them against kernel_math).
#[path = "../../pipeline/tests/common/oracle.rs"]
pub mod oracle;
