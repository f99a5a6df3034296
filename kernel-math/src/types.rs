//! What may cross between host and device: the element types of device
//! slices and the scalar kernel parameters. Shared by the kernels (through
//! `nvptx-std`) and the host runtime, so both sides agree by construction.

/// A type whose values may live in a device buffer that a kernel reads as
/// `&[T]` or writes through `Out<T>`, and that rings carry between stages.
///
/// A `#[repr(C)]` struct of `Element` fields with no padding is one:
/// derive it (`kernel_math::Element` and `nvptx_std::Element` name both the
/// trait and the derive), which checks all three at compile time:
///
/// ```
/// use kernel_math::Element;
///
/// #[repr(C)]
/// #[derive(Clone, Copy, Element)]
/// struct Sample { left: i16, right: i16 }
/// ```
///
/// # Safety
/// Every bit pattern of `size_of::<T>()` bytes is a valid `T` (device memory
/// may hold anything: poison, a partial write), `T` has no padding bytes and
/// no pointers or references. A hand-written `unsafe impl` promises that
/// with nothing to check it; prefer the derive.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an `Element`: device buffers may hold any bits, so elements must accept every bit pattern and have no padding",
    label = "not an Element",
    note = "primitive numbers and arrays of them are Elements; a #[repr(C)] struct of them without padding is one with `#[derive(Element)]`"
)]
pub unsafe trait Element: Copy + Send + Sync + 'static {}

/// A kernel parameter passed by value: at most 8 bytes, no padding, any
/// bits valid (the host copies its bytes into the launch's parameter buffer).
///
/// # Safety
/// As [`Element`], and `size_of::<T>() <= 8`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a by-value kernel parameter: a `Scalar` is a primitive number (at most 8 bytes, any bits valid)",
    label = "not a Scalar"
)]
pub unsafe trait Scalar: Copy + 'static {}

macro_rules! impl_both {
    ($($t:ty),*) => { $(
        // SAFETY: a primitive number: no padding, every bit pattern valid.
        unsafe impl Element for $t {}
        // SAFETY: as above, and at most 8 bytes.
        unsafe impl Scalar for $t {}
    )* };
}
impl_both!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, usize, isize);

// SAFETY: an array of elements has no padding between them and any bits valid.
unsafe impl<T: Element, const N: usize> Element for [T; N] {}
// SAFETY: 80 bytes of integers, no padding (checked below); any bits valid.
unsafe impl Element for crate::Reduction {}
const _: () = assert!(core::mem::size_of::<crate::Reduction>() == 80);

/// What a kernel may read as `&[T]`: any [`Element`], and integer atomics
/// and records of them (per-chunk records that a kernel adds into).
///
/// # Safety
/// As [`Shared`], for every element of the slice.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an `Element`: device buffers may hold any bits, so elements must accept every bit pattern and have no padding",
    label = "not an Element",
    note = "primitive numbers and arrays of them are Elements; a #[repr(C)] struct of them without padding is one with `#[derive(Element)]`"
)]
pub unsafe trait SliceElement: Shared {}
// SAFETY: Elements are Shared (read-only, any bits valid).
unsafe impl<T: Element> SliceElement for T {}
// SAFETY: integer atomics and a record of them.
unsafe impl SliceElement for core::sync::atomic::AtomicU32 {}
unsafe impl SliceElement for core::sync::atomic::AtomicU64 {}
unsafe impl SliceElement for crate::AtomicReduction {}

/// A four-byte element that may be moved four at a time as one 16-byte
/// access (see `nvptx_std::OutQuads`).
///
/// # Safety
/// `T: Element` and `size_of::<T>() == 4`.
pub unsafe trait Word: Element {}
// SAFETY: four-byte primitives.
unsafe impl Word for f32 {}
unsafe impl Word for u32 {}
unsafe impl Word for i32 {}

/// A type a kernel may take as `&T` (one value in device memory, shared by
/// every thread): any bits valid, and changed while shared only through
/// its own atomics. Every [`Element`] (read-only values) and the atomics.
///
/// # Safety
/// Every bit pattern is a valid `T`, and `T: Sync` mutates only through
/// atomic operations.
#[diagnostic::on_unimplemented(
    message = "`&{Self}` cannot be a kernel parameter: a shared value must accept any bits and change only through atomics",
    label = "not Shared",
    note = "Elements (read-only) and integer atomics are Shared"
)]
pub unsafe trait Shared: Sync {}

// SAFETY: an Element has any bits valid and no interior mutability.
unsafe impl<T: Element> Shared for T {}
// SAFETY: atomics of integers: any bits valid, mutation is atomic.
unsafe impl Shared for core::sync::atomic::AtomicU32 {}
unsafe impl Shared for core::sync::atomic::AtomicI32 {}
unsafe impl Shared for core::sync::atomic::AtomicU64 {}
unsafe impl Shared for core::sync::atomic::AtomicI64 {}
// SAFETY: a repr(C) record of integer atomics.
unsafe impl Shared for crate::AtomicReduction {}
// SAFETY: repr(C) records of integer atomics.
unsafe impl Shared for crate::ring::RingFlags {}
unsafe impl Shared for crate::ring::RingControl {}
// SAFETY: seven u64, no padding, any bits valid.
unsafe impl Element for crate::ring::RingPlan {}
