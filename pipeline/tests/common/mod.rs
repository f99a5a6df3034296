//! Helpers shared by the GPU tests.
#![allow(dead_code)]

/// splitmix64: a small, seedable generator (no dependency needed), the
/// one the simulator's tests use too.
#[path = "../splitmix/mod.rs"]
mod splitmix;
#[allow(unused_imports)] // not every test binary draws random numbers
pub use splitmix::Rng;

/// The seed from `PC_TEST_SEED`, or a fresh one from the clock.
pub fn seed_from_env() -> u64 {
    std::env::var("PC_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64))
}

/// A 32-bit seed for one test's inputs: `PC_TEST_SEED`, or one from the
/// clock; printed so a failure can be replayed.
pub fn seed() -> u32 {
    let s = std::env::var("PC_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        kernel_math::hash32(t.subsec_nanos())
    });
    eprintln!("seed {s} (replay with PC_TEST_SEED={s})");
    s
}

pub mod oracle;

/// Says that `$test` (a name in this test binary) checked nothing, and
/// why, in one machine-readable line on stdout: `SKIPPED: <binary>::<test>:
/// <reason>`. scripts/run-gpu-tests.sh counts these lines and fails on any
/// skip the run did not allow (ALLOW_SKIP), so a missing GPU is never a pass.
#[allow(unused_macros)]
macro_rules! skipped {
    ($test:expr, $($why:tt)+) => {
        println!("SKIPPED: {}::{}: {}", module_path!(), $test, format!($($why)+))
    };
}
#[allow(unused_imports)]
pub(crate) use skipped;
