//! What may cross between host and device: the element types of device
//! slices and the scalar kernel parameters. Shared by the kernels (through
//! `nvptx-std`) and the host runtime, so both sides agree by construction.

/// A type whose values may live in a device buffer that a kernel reads as
/// `&[T]` or writes through `Out<T>`, and that rings carry between stages.
///
/// # Safety
/// Every bit pattern of `size_of::<T>()` bytes is a valid `T` (device memory
/// may hold anything: poison, a partial write), `T` has no padding bytes and
/// no pointers or references. `#[repr(C)]` structs of `Element` fields with
/// no padding qualify:
///
/// ```
/// #[repr(C)]
/// #[derive(Clone, Copy)]
/// struct Sample { left: i16, right: i16 }
/// // SAFETY: two i16, no padding, any bits valid.
/// unsafe impl kernel_math::Element for Sample {}
/// ```
pub unsafe trait Element: Copy + Send + Sync + 'static {}

/// A kernel parameter passed by value: at most 8 bytes, no padding, any
/// bits valid (the host copies its bytes into the launch's parameter buffer).
///
/// # Safety
/// As [`Element`], and `size_of::<T>() <= 8`.
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
