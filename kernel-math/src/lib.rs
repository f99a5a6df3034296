//! Per-element math, written once and used twice: the kernels in `kernels-gpu`
//! call these functions on the GPU, and the host calls the same functions for
//! its CPU reference. Whatever they compute is, by definition, correct.
//!
//! Everything here is `no_std`, branch-light and exact: the producer builds its
//! floats from integer bits and the consumer's doubling is exact, so the GPU's
//! result must equal the CPU's bit for bit.
//!
//! ```
//! use kernel_math::{consume, produce};
//! let x = produce(7, 42);
//! assert!((-1.0..1.0).contains(&x));
//! assert_eq!(consume(x), 2.0 * x);
//! ```
#![no_std]

/// Bit pattern the host writes into buffers before a run (a quiet NaN with a
/// recognisable payload). No producer or consumer output is ever NaN, so an
/// element still holding it was never written.
pub const POISON_BITS: u32 = 0x7fc0_dead;

/// A 32-bit integer hash with good avalanche ("lowbias32", C. Wellons).
#[inline(always)]
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The producer's value for element `index`: a counter-based pseudo-random
/// float in `[-1, 1)`, a pure function of `(index, seed)`.
///
/// 23 hash bits become the mantissa of a float in `[1, 2)`; `2u - 3` maps that
/// to `[-1, 1)` exactly (every result is a multiple of 2^-22), so there is no
/// rounding for a compiler's FMA contraction to change.
#[inline(always)]
pub fn produce(index: u64, seed: u32) -> f32 {
    let hi = hash32((index >> 32) as u32 ^ seed);
    let h = hash32(index as u32 ^ hi);
    let unit = f32::from_bits(0x3f80_0000 | (h >> 9));
    unit * 2.0 - 3.0
}

/// The consumer's operation on one produced value: the seed's doubling.
#[inline(always)]
pub fn consume(x: f32) -> f32 {
    x * 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_known_values() {
        // Computed independently (Python, arbitrary-precision ints masked to 32 bits).
        assert_eq!(hash32(0), 0);
        assert_eq!(hash32(1), 0x6889_90c0);
        assert_eq!(hash32(0xdead_beef), 0xe628_c683);
    }

    #[test]
    fn produce_known_values() {
        let got: [u32; 4] = [
            produce(0, 0).to_bits(),
            produce(1, 0).to_bits(),
            produce(1 << 32, 0).to_bits(),
            produce(12345, 7).to_bits(),
        ];
        // Computed independently in Python with the same recipe.
        assert_eq!(got, [0xbf80_0000, 0xbe3b_b380, 0xbe9c_2ae0, 0xbeec_9338]);
    }

    #[test]
    fn produce_is_in_range_and_exact() {
        for i in 0..100_000u64 {
            let x = produce(i * 7919, 3);
            assert!((-1.0..1.0).contains(&x), "{i}: {x}");
            // A multiple of 2^-22: scaling up gives an integer.
            let scaled = x * (1u32 << 22) as f32;
            assert_eq!(scaled, scaled.trunc());
        }
    }

    #[test]
    fn produce_depends_on_seed_and_index() {
        assert_ne!(produce(5, 1), produce(5, 2));
        assert_ne!(produce(5, 1), produce(6, 1));
        assert_ne!(produce(5, 1), produce(5 | 1 << 32, 1));
    }

    #[test]
    fn produce_is_roughly_uniform() {
        let n = 1 << 16;
        let mean: f64 = (0..n).map(|i| produce(i, 9) as f64).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn consume_doubles() {
        assert_eq!(consume(1.5), 3.0);
        assert_eq!(consume(-0.25), -0.5);
        assert!(consume(f32::from_bits(POISON_BITS)).is_nan());
    }
}
