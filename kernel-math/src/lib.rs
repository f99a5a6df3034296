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

// `#[derive(Element)]` names the trait as `::kernel_math::Element`, here too.
extern crate self as kernel_math;

pub mod ring;
pub mod types;
/// `#[derive(Element)]`: see [`types::Element`] and `kernel_macros::Element`.
pub use kernel_macros::Element;
pub use types::{Element, Scalar, Shared, SliceElement, Word};

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

/// 3-point moving average: `(a + b + c) / 3`, added left to right, then
/// divided: the same IEEE operations on GPU and CPU. The `moving-average`
/// stage is causal: `y[i] = moving_average3(x[i-2], x[i-1], x[i])`, with
/// elements before the stream's start taken as 0.
#[inline(always)]
pub fn moving_average3(a: f32, b: f32, c: f32) -> f32 {
    (a + b + c) / 3.0
}

/// One tap of a FIR filter: `acc + tap * x`, a multiply then an add, each
/// rounded. The same two IEEE operations on GPU and CPU: rustc emits them
/// as `mul.rn.f32` and `add.rn.f32`, whose explicit rounding forbids ptxas
/// from fusing them into an FMA (it fuses only plain `mul`/`add`), and
/// never contracts them on the host. So every output matches bit for bit.
#[inline(always)]
pub fn fir_step(acc: f32, tap: f32, x: f32) -> f32 {
    acc + tap * x
}

/// A causal FIR filter over `input`, with `history` the elements just
/// before it: `output[i] = sum_{j=0}^{T-1} taps[j] * x[i-j]` (`T =
/// taps.len()`, `x[k]` for `k < 0` read from the end of `history`),
/// accumulated for `j = 0, 1, ..` with [`fir_step`] from 0.0. The kernel
/// (`fir_kernel`) adds in the same order.
///
/// # Panics
/// When `history` has fewer than `T - 1` elements or `output` is shorter
/// than `input`.
pub fn fir(taps: &[f32], history: &[f32], input: &[f32], output: &mut [f32]) {
    let h = history.len();
    assert!(h + 1 >= taps.len(), "a FIR of {} taps needs {} elements of history, got {h}", taps.len(), taps.len().saturating_sub(1));
    for (i, o) in output[..input.len()].iter_mut().enumerate() {
        let mut acc = 0.0;
        for (j, &t) in taps.iter().enumerate() {
            let x = if j <= i { input[i - j] } else { history[h + i - j] };
            acc = fir_step(acc, t, x);
        }
        *o = acc;
    }
}

/// A u8 sample as f32 in [0, 1]: `x / 255`, one IEEE division, the same on
/// GPU and CPU.
#[inline(always)]
pub fn unit_from_u8(x: u8) -> f32 {
    x as f32 / 255.0
}

/// A mixing step on u32 (the hash), for the integer stage.
#[inline(always)]
pub fn mix_u32(x: u32) -> u32 {
    hash32(x)
}

/// Doubling in f64 (exact).
#[inline(always)]
pub fn double_f64(x: f64) -> f64 {
    x * 2.0
}

/// A stereo sample of two 16-bit channels: a user-style `#[repr(C)]`
/// element, its `Element` derived (layout, fields and padding checked).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Element)]
pub struct Stereo {
    pub left: i16,
    pub right: i16,
}

/// A u8 sample times a run-time `scale`, as f32: one IEEE multiply, the
/// same on GPU and CPU (the `scale_u8_kernel` stage's value).
#[inline(always)]
pub fn scale_u8(x: u8, scale: f32) -> f32 {
    x as f32 * scale
}

/// Per-channel gains of a stereo sample: a derived struct element, passed to
/// a kernel as a `&Gain` run-time parameter (`stereo_gain_kernel`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default, Element)]
pub struct Gain {
    pub left: f32,
    pub right: f32,
}

/// A stereo sample mixed to mono with per-channel gains: `left * g.left`,
/// plus `right * g.right`; two rounded multiplies, then a rounded add (no
/// FMA: see [`fir_step`]).
#[inline(always)]
pub fn stereo_gain(s: Stereo, g: Gain) -> f32 {
    s.left as f32 * g.left + s.right as f32 * g.right
}

/// The mean of a stereo sample's channels, as f32 (exact: integers below 2^24, halved).
#[inline(always)]
pub fn mono(s: Stereo) -> f32 {
    (s.left as i32 + s.right as i32) as f32 * 0.5
}

/// `x * x`: the example `square` stage's math (every form of it, and its
/// CPU reference; see `pc_pipeline`'s `tests/every_form.rs`).
#[inline(always)]
pub fn square(x: f32) -> f32 {
    x * x
}

/// `(x + offset) * scale` (an add, then a multiply: nothing a compiler may
/// fuse into an fma, so GPU and CPU round alike): the math of the test
/// stage with run-time parameters and a fault knob (`pdl_affine_kernel`).
#[inline(always)]
pub fn affine(x: f32, scale: f32, offset: f32) -> f32 {
    (x + offset) * scale
}

/// The three channels in reverse order: the math of the test stage of a
/// 12-byte element (`reverse3_kernel`, `ring_reverse3_kernel`), whose
/// size does not divide 16.
#[inline(always)]
pub fn reverse3(x: [f32; 3]) -> [f32; 3] {
    [x[2], x[1], x[0]]
}

/// i32 to its absolute value, wrapping at `i32::MIN`.
#[inline(always)]
pub fn abs_i32(x: i32) -> i32 {
    x.wrapping_abs()
}

/// Histogram bins of a [`Reduction`].
pub const HIST_BINS: usize = 16;

/// Fixed-point scale of [`Reduction::sum_fixed`]: 2^22, so the producer's
/// values (multiples of 2^-22) and their doublings convert exactly, and the
/// GPU's sum, added in any order, equals the CPU's bit for bit.
pub const FIXED_ONE: f32 = 4_194_304.0;

/// One chunk's reduction: sum, min, max and a histogram, in a form that
/// atomics can build in any order with the same result.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduction {
    /// Sum of `to_fixed(v)`.
    pub sum_fixed: i64,
    /// Smallest [`order_key`] seen (`u32::MAX` when empty).
    pub min_key: u32,
    /// Largest [`order_key`] seen (0 when empty).
    pub max_key: u32,
    /// Counts per [`hist_bin`].
    pub hist: [u32; HIST_BINS],
}

impl Reduction {
    /// The identity: what a chunk's record holds before any element is added.
    pub const EMPTY: Reduction = Reduction { sum_fixed: 0, min_key: u32::MAX, max_key: 0, hist: [0; HIST_BINS] };

    /// Adds one element.
    #[inline(always)]
    pub fn add(&mut self, v: f32) {
        self.sum_fixed = self.sum_fixed.wrapping_add(to_fixed(v));
        let k = order_key(v);
        self.min_key = if k < self.min_key { k } else { self.min_key };
        self.max_key = if k > self.max_key { k } else { self.max_key };
        // Every bin compared with a constant index: on the GPU the counts stay
        // in registers (an indexed `hist[bin] += 1` put them in local memory
        // and made the reduce kernel 7x slower than its memory traffic).
        let bin = hist_bin(v);
        for (b, count) in self.hist.iter_mut().enumerate() {
            *count += (b == bin) as u32;
        }
    }

    /// Elements counted.
    pub fn count(&self) -> u64 {
        self.hist.iter().map(|&c| c as u64).sum()
    }

    /// The sum as a float (exact up to f64 rounding of the fixed-point total).
    pub fn sum(&self) -> f64 {
        self.sum_fixed as f64 / FIXED_ONE as f64
    }

    pub fn min(&self) -> f32 {
        from_order_key(self.min_key)
    }

    pub fn max(&self) -> f32 {
        from_order_key(self.max_key)
    }
}

/// A [`Reduction`] that every thread of a kernel adds into at once, through
/// atomics: the same layout, so the host allocates and reads plain
/// `Reduction` records and the kernel takes `&AtomicReduction`.
#[repr(C)]
pub struct AtomicReduction {
    pub sum_fixed: core::sync::atomic::AtomicI64,
    pub min_key: core::sync::atomic::AtomicU32,
    pub max_key: core::sync::atomic::AtomicU32,
    pub hist: [core::sync::atomic::AtomicU32; HIST_BINS],
}

const _: () = assert!(
    core::mem::size_of::<AtomicReduction>() == core::mem::size_of::<Reduction>()
        && core::mem::align_of::<AtomicReduction>() == core::mem::align_of::<Reduction>()
);

impl AtomicReduction {
    /// Adds a partial record (relaxed: the record is read only after the kernel ends).
    #[inline(always)]
    pub fn add(&self, r: &Reduction) {
        use core::sync::atomic::Ordering::Relaxed;
        self.sum_fixed.fetch_add(r.sum_fixed, Relaxed);
        self.min_key.fetch_min(r.min_key, Relaxed);
        self.max_key.fetch_max(r.max_key, Relaxed);
        for (cell, &c) in self.hist.iter().zip(&r.hist) {
            if c != 0 {
                cell.fetch_add(c, Relaxed);
            }
        }
    }
}

/// `v` in fixed point (2^-22 units), truncated toward zero; saturating, NaN is 0.
#[inline(always)]
pub fn to_fixed(v: f32) -> i64 {
    (v * FIXED_ONE) as i64
}

/// A `u32` whose unsigned order is the float order of `v` (NaNs sort past
/// the infinities), so min and max become integer atomics.
#[inline(always)]
pub fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 { !b } else { b | 0x8000_0000 }
}

/// Inverse of [`order_key`].
#[inline(always)]
pub fn from_order_key(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7fff_ffff } else { !k })
}

/// Histogram bin of `v`: 16 bins of width 0.5 over [-4, 4), the outer bins
/// also taking what lies beyond (NaN lands in bin 8, the bin of 0).
#[inline(always)]
// Written out rather than `clamp`, whose max < min panic path would reach
// the kernels (the reduce kernel's hot loop), though never taken here.
#[allow(clippy::manual_clamp)]
pub fn hist_bin(v: f32) -> usize {
    let b = ((v + 4.0) * 2.0) as i32;
    (if b < 0 {
        0
    } else if b > 15 {
        15
    } else {
        b
    }) as usize
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
        let got: [u32; 4] = [produce(0, 0).to_bits(), produce(1, 0).to_bits(), produce(1 << 32, 0).to_bits(), produce(12345, 7).to_bits()];
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
    fn order_keys_sort_like_floats() {
        let xs = [f32::NEG_INFINITY, -3.5, -1.0, -0.0, 0.0, 1e-30, 0.5, 2.0, f32::INFINITY];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) <= order_key(w[1]), "{w:?}");
        }
        for x in xs {
            assert_eq!(from_order_key(order_key(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn histogram_bins() {
        assert_eq!(hist_bin(-100.0), 0);
        assert_eq!(hist_bin(-4.0), 0);
        assert_eq!(hist_bin(-0.1), 7);
        assert_eq!(hist_bin(0.0), 8);
        assert_eq!(hist_bin(3.99), 15);
        assert_eq!(hist_bin(1e9), 15);
    }

    #[test]
    fn reduction_adds_in_any_order_to_the_same_record() {
        let xs: [f32; 5] = [produce(1, 2), produce(2, 2), -0.5, 1.75, consume(produce(9, 2))];
        let mut a = Reduction::EMPTY;
        xs.iter().for_each(|&x| a.add(x));
        let mut b = Reduction::EMPTY;
        xs.iter().rev().for_each(|&x| b.add(x));
        assert_eq!(a, b);
        assert_eq!(a.count(), 5);
        assert_eq!(a.min(), xs.iter().copied().fold(f32::INFINITY, f32::min));
        assert_eq!(a.max(), xs.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        let exact: f64 = xs.iter().map(|&x| x as f64).sum();
        assert_eq!(a.sum(), exact, "multiples of 2^-22 sum exactly");
    }

    #[test]
    fn fir_of_an_impulse_is_the_taps() {
        let taps = [0.5f32, 0.25, -0.125];
        let mut out = [0.0f32; 5];
        fir(&taps, &[0.0, 0.0], &[1.0, 0.0, 0.0, 0.0, 0.0], &mut out);
        assert_eq!(out, [0.5, 0.25, -0.125, 0.0, 0.0]);
        // History is the input's past: an impulse two elements before the
        // input (x[-2]), then one (x[-1]).
        fir(&taps, &[1.0, 0.0], &[0.0; 5], &mut out);
        assert_eq!(out, [-0.125, 0.0, 0.0, 0.0, 0.0]);
        fir(&taps, &[0.0, 1.0], &[0.0; 5], &mut out);
        assert_eq!(out, [0.25, -0.125, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn fir_adds_taps_in_order_with_rounding() {
        // acc = 0 + 1e8 * 1 = 1e8; + 1 * 1 rounds back to 1e8 (f32);
        // + (-1e8) * 1 = 0. Adding 1 first or last would give 1.
        let mut out = [0.0f32];
        fir(&[1e8, 1.0, -1e8], &[1.0, 1.0], &[1.0], &mut out);
        assert_eq!(out, [0.0]);
        // Taps that are not a palindrome in magnitude, so adding them in
        // reverse (j = T-1 down to 0) differs too: in order 1e8 - 1e8 = 0,
        // then + 1 = 1; reversed 1 - 1e8 rounds to -1e8, then + 1e8 = 0.
        fir(&[1e8, -1e8, 1.0], &[1.0, 1.0], &[1.0], &mut out);
        assert_eq!(out, [1.0]);
    }

    #[test]
    #[should_panic(expected = "needs 2 elements of history")]
    fn fir_needs_its_history() {
        fir(&[1.0, 2.0, 3.0], &[0.0], &[1.0], &mut [0.0]);
    }

    #[test]
    fn moving_average_of_a_constant_is_the_constant() {
        assert_eq!(moving_average3(0.5, 0.5, 0.5), 0.5);
        assert_eq!(moving_average3(0.0, 3.0, 6.0), 3.0);
        assert_eq!(moving_average3(-1.0, 0.0, 1.0), 0.0);
    }

    #[test]
    fn consume_doubles() {
        assert_eq!(consume(1.5), 3.0);
        assert_eq!(consume(-0.25), -0.5);
        assert!(consume(f32::from_bits(POISON_BITS)).is_nan());
    }
}
