//! Helpers shared by the GPU tests.
#![allow(dead_code)]

/// splitmix64: a small, seedable generator (no dependency needed).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Log-uniform in 1..=max: small and large sizes alike.
    pub fn size(&mut self, max: u64) -> u64 {
        let bits = 64 - max.leading_zeros() as u64;
        let k = self.below(bits + 1).min(63);
        (1 + self.below(1 << k)).min(max)
    }
}

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
