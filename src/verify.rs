//! The CPU reference: the same `kernel-math` functions the kernels call.
use kernel_math::{consume, produce};

/// The first element that differs from the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mismatch {
    pub index: u64,
    pub got: f32,
    pub want: f32,
}

/// The outcome of checking every element.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Check {
    /// Elements compared.
    pub checked: u64,
    /// Elements there were to compare.
    pub expected: u64,
    pub mismatches: u64,
    pub first: Option<Mismatch>,
}

impl Check {
    /// Every element compared, none different, and there were some: a
    /// checker that stopped early (a panic) or an empty output fails.
    pub fn passed(&self) -> bool {
        self.mismatches == 0 && self.expected > 0 && self.checked == self.expected
    }

    fn merge(mut self, other: Check) -> Check {
        self.checked += other.checked;
        self.expected += other.expected;
        self.mismatches += other.mismatches;
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(if a.index <= b.index { a } else { b }),
            (a, b) => a.or(b),
        };
        self
    }
}

/// Checks `output[i] == consume(produce(first_index + i, seed))` bit for bit,
/// for every element, on all CPU cores.
pub fn check_consumed(output: &[f32], first_index: u64, seed: u32) -> Check {
    check_with(output, first_index, |i| consume(produce(i, seed)))
}

/// Checks `output[i] == produce(first_index + i, seed)` bit for bit.
pub fn check_produced(output: &[f32], first_index: u64, seed: u32) -> Check {
    check_with(output, first_index, |i| produce(i, seed))
}

fn check_with(output: &[f32], first_index: u64, want: impl Fn(u64) -> f32 + Sync) -> Check {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let part = output.len().div_ceil(threads).max(1 << 16);
    std::thread::scope(|s| {
        let handles: Vec<_> = output
            .chunks(part)
            .enumerate()
            .map(|(k, chunk)| {
                let want = &want;
                s.spawn(move || {
                    let base = first_index + (k * part) as u64;
                    let mut c = Check { checked: chunk.len() as u64, ..Check::default() };
                    for (j, &got) in chunk.iter().enumerate() {
                        let w = want(base + j as u64);
                        if got.to_bits() != w.to_bits() {
                            c.mismatches += 1;
                            c.first.get_or_insert(Mismatch { index: base + j as u64, got, want: w });
                        }
                    }
                    c
                })
            })
            .collect();
        // A checker thread that panicked counts nothing as checked: the
        // result then fails (fail closed) instead of passing what it skipped.
        let mut c = handles.into_iter().map(|h| h.join().unwrap_or_default()).fold(Check::default(), Check::merge);
        c.expected = output.len() as u64;
        c
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_math::POISON_BITS;

    #[test]
    fn a_checker_that_panics_fails_closed() {
        let out = vec![1.0f32; 300_000];
        // A reference that panics on one element: its thread's elements are not checked.
        let c = check_with(&out, 0, |i| if i == 200_000 { panic!("reference bug") } else { 1.0 });
        assert!(!c.passed() && c.checked < c.expected, "{c:?}");
        assert!(!check_consumed(&[], 0, 1).passed(), "nothing to check must not pass");
    }

    #[test]
    fn reference_passes_and_poison_fails() {
        let seed = 11;
        let mut out: Vec<f32> = (0..300_000u64).map(|i| consume(produce(i + 5, seed))).collect();
        let c = check_consumed(&out, 5, seed);
        assert!(c.passed());
        assert_eq!(c.checked, 300_000);
        out[70_000] = f32::from_bits(POISON_BITS);
        out[250_000] = 0.0;
        let c = check_consumed(&out, 5, seed);
        assert_eq!(c.mismatches, 2);
        assert_eq!(c.first.unwrap().index, 70_005);
        // The wrong seed fails everywhere.
        assert_eq!(check_consumed(&out, 5, seed + 1).mismatches, 300_000);
    }

    #[test]
    fn produced_check() {
        let out: Vec<f32> = (0..1000u64).map(|i| produce(i, 3)).collect();
        assert!(check_produced(&out, 0, 3).passed());
        assert!(!check_consumed(&out, 0, 3).passed());
    }
}
