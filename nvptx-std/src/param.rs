//! How a `#[kernel]` entry turns its PTX parameters back into the types its
//! body was written with. Called only from code the macro generates.
use kernel_math::{Element, Scalar, Shared, SliceElement};

/// Rebuilds a `&[T]` parameter (elements, or atomics such as per-chunk records).
///
/// # Safety
/// `ptr` addresses `len` initialized `T` of one live device allocation,
/// aligned for `T`, that nothing writes while the kernel runs but through
/// `T`'s own atomics.
#[inline(always)]
pub unsafe fn slice<'a, T: SliceElement>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

/// Rebuilds a `&T` parameter.
///
/// # Safety
/// `ptr` addresses a live, aligned `T` that is changed only through its own
/// interior mutability (atomics) while the kernel runs.
#[inline(always)]
pub unsafe fn shared<'a, T: Shared>(ptr: *const T) -> &'a T {
    // SAFETY: the caller's contract.
    unsafe { &*ptr }
}

/// A written slice parameter (`Out<T>`, `OutQuads<T>`).
pub trait OutParam: Sized {
    type Elem: Element;
    /// # Safety
    /// `ptr` is not null and addresses `len` `Self::Elem` of one live device
    /// allocation, aligned, that no other work reads or writes while the
    /// kernel runs; every thread of a one-dimensional grid gets the same
    /// `ptr` and `len`.
    unsafe fn from_raw(ptr: *mut Self::Elem, len: usize) -> Self;
}

/// A flag ring's slots parameter (`nvptx_std::ring::RingSlots<T>`): not an
/// [`OutParam`], so a ring cannot pass for an output the kernel owns (say,
/// under `use RingSlots as Out`), and `#[kernel]` takes it only in the flag
/// shapes.
pub trait RingParam: Sized {
    type Elem: Element;
    /// # Safety
    /// `ptr` addresses `len` `Self::Elem` of one live device allocation,
    /// aligned, that only the kernels of one flag pipeline use while this
    /// kernel runs, each through `nvptx_std::ring`'s protocol; every thread
    /// of a one-dimensional grid gets the same `ptr` and `len`.
    unsafe fn from_raw(ptr: *mut Self::Elem, len: usize) -> Self;
}

/// Compile-time check that a slice's element type is an [`Element`].
pub fn assert_element<T: Element>() {}
/// Compile-time check that a `&[T]` parameter's type may be read as a slice
/// (an [`Element`], or atomics).
pub fn assert_slice_element<T: SliceElement>() {}
/// Compile-time check that a by-value parameter is a [`Scalar`].
pub fn assert_scalar<T: Scalar>() {}
/// Compile-time check that a `&T` parameter may be shared by every thread
/// (any bits valid; changed only through atomics).
pub fn assert_shared<T: Shared>() {}
