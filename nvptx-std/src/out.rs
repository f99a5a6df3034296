//! Written kernel parameters. Every thread of the grid holds the same
//! `Out`, so none may hand out `&mut [T]`; each hands a thread only the
//! elements that thread owns, and the owners are fixed by the type (the same
//! rule in every thread), so no two threads ever write the same element.
use crate::param::OutParam;
use crate::{global_index, grid_size};
use core::marker::PhantomData;
use kernel_math::{Element, Word};

/// The launcher never passes a null address (an empty buffer comes as a
/// dangling, aligned one): saying so spares every loop a null test, which
/// the `Option` of `&mut T` that the iterators return would otherwise make.
#[inline(always)]
unsafe fn non_null<T>(ptr: *mut T) -> *mut T {
    // SAFETY: `OutParam::from_raw`'s contract.
    unsafe { core::hint::assert_unchecked(!ptr.is_null()) };
    ptr
}

/// A device slice a kernel writes, element `i` owned by the thread whose
/// grid-stride loop visits `i` (`i % grid_size() == global_index()`).
///
/// ```
/// # use nvptx_std::Out;
/// fn fill(mut out: Out<u32>) {
///     for (i, o) in out.iter_mut() {
///         *o = i as u32;
///     }
/// }
/// ```
pub struct Out<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: PhantomData<&'a mut [T]>,
}

impl<T: Element> OutParam for Out<'_, T> {
    type Elem = T;
    #[inline(always)]
    unsafe fn from_raw(ptr: *mut T, len: usize) -> Self {
        Out { ptr: unsafe { non_null(ptr) }, len, _slice: PhantomData }
    }
}

impl<'a, T: Element> Out<'a, T> {
    /// Elements in the whole slice (all threads').
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// This thread's elements: `(i, &mut out[i])` for `i = global_index()`,
    /// `+ grid_size()`, ... below `len()`.
    #[inline(always)]
    pub fn iter_mut(&mut self) -> OutIter<'_, T> {
        OutIter::new(self.ptr, global_index() as usize, self.len)
    }
}

/// `(index, &mut element)` over one thread's share; see [`Out::iter_mut`].
pub struct OutIter<'b, T> {
    ptr: *mut T,
    next: usize,
    end: usize,
    step: usize,
    _elems: PhantomData<&'b mut T>,
}

impl<T> OutIter<'_, T> {
    #[inline(always)]
    fn new(ptr: *mut T, first: usize, end: usize) -> Self {
        OutIter { ptr, next: first, end, step: grid_size() as usize, _elems: PhantomData }
    }
}

impl<'b, T> Iterator for OutIter<'b, T> {
    type Item = (usize, &'b mut T);
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next < self.end {
            let i = self.next;
            // A plain add cannot wrap: `end` <= isize::MAX and a grid has at
            // most 2^41 threads. (A saturating add cost the ALU-bound
            // producer 9% against nvcc.)
            self.next += self.step;
            // SAFETY: i < len; this iterator yields each index once and only
            // indices this thread owns (distinct threads own distinct ones).
            Some((i, unsafe { &mut *self.ptr.add(i) }))
        } else {
            None
        }
    }
}

/// A device slice a kernel writes `R` consecutive elements at a time: group
/// `g` (elements `R*g .. R*g + R`, the last group shorter when `R` does not
/// divide the length) is owned by the thread whose grid-stride loop over
/// groups visits `g` (`g % grid_size() == global_index()`). A type of its
/// own, not a method of [`Out`]: one slice has one ownership rule for every
/// thread, so two threads can never own one element by two rules.
///
/// For kernels whose thread computes neighbouring outputs together (a filter
/// that slides a window over its inputs in registers).
///
/// ```
/// # use nvptx_std::OutGroups;
/// fn fill(mut out: OutGroups<u32, 4>) {
///     for (first, group) in out.groups() {
///         group.write([0, 1, 2, 3].map(|k| (first + k) as u32));
///     }
/// }
/// ```
pub struct OutGroups<'a, T, const R: usize> {
    ptr: *mut T,
    len: usize,
    _slice: PhantomData<&'a mut [T]>,
}

impl<T: Element, const R: usize> OutParam for OutGroups<'_, T, R> {
    type Elem = T;
    #[inline(always)]
    unsafe fn from_raw(ptr: *mut T, len: usize) -> Self {
        const { assert!(R > 0, "OutGroups<T, R> needs R >= 1") };
        OutGroups { ptr: unsafe { non_null(ptr) }, len, _slice: PhantomData }
    }
}

impl<'a, T: Element, const R: usize> OutGroups<'a, T, R> {
    /// Elements in the whole slice (all threads').
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// This thread's groups: `(first, group)` for the group starting at
    /// element `first` (a multiple of `R`).
    #[inline(always)]
    pub fn groups(&mut self) -> GroupIter<'_, T, R> {
        GroupIter { ptr: self.ptr, next: global_index() as usize, end: self.len.div_ceil(R), len: self.len, step: grid_size() as usize, _elems: PhantomData }
    }
}

/// Iterator of [`OutGroups::groups`].
pub struct GroupIter<'b, T, const R: usize> {
    ptr: *mut T,
    /// Next group index, and one past the last.
    next: usize,
    end: usize,
    len: usize,
    step: usize,
    _elems: PhantomData<&'b mut T>,
}

impl<'b, T: Element, const R: usize> Iterator for GroupIter<'b, T, R> {
    type Item = (usize, GroupMut<'b, T, R>);
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next < self.end {
            let g = self.next;
            // No wrap: as `OutIter` (end <= len, a grid has at most 2^41 threads).
            self.next += self.step;
            let first = g * R;
            let count = if self.len - first < R { self.len - first } else { R };
            // SAFETY: first + count <= len; this iterator yields each group
            // once and only groups this thread owns (distinct threads own
            // distinct groups, and groups do not overlap).
            let elems = unsafe { core::slice::from_raw_parts_mut(self.ptr.add(first), count) };
            Some((first, GroupMut { elems }))
        } else {
            None
        }
    }
}

/// One group this thread owns: `R` elements, fewer for the slice's last
/// group; see [`OutGroups::groups`].
pub struct GroupMut<'b, T, const R: usize> {
    elems: &'b mut [T],
}

impl<T: Element, const R: usize> GroupMut<'_, T, R> {
    /// Elements in this group: `R`, or fewer for the slice's last group.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// Writes the group: element `first + k` gets `v[k]`; values past a short
    /// last group are dropped.
    #[inline(always)]
    pub fn write(self, v: [T; R]) {
        if self.elems.len() == R {
            // A full group: R stores with constant offsets.
            for (o, x) in self.elems.iter_mut().zip(v) {
                *o = x;
            }
        } else {
            for (o, &x) in self.elems.iter_mut().zip(v.iter()) {
                *o = x;
            }
        }
    }
}

/// Four [`Word`]s moved as one 16-byte access (`ld/st.global.v4`).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quad<T>(pub [T; 4]);

/// A device slice of 4-byte elements a kernel writes four at a time: quad
/// `q` (elements `4q..4q+4`) is owned by the thread whose grid-stride loop
/// over quads visits `q`; the last `len % 4` elements (all of them when the
/// slice is not 16-byte aligned) by a grid-stride loop of their own.
pub struct OutQuads<'a, T> {
    ptr: *mut T,
    len: usize,
    quads: usize,
    _slice: PhantomData<&'a mut [T]>,
}

impl<T: Word> OutParam for OutQuads<'_, T> {
    type Elem = T;
    #[inline(always)]
    unsafe fn from_raw(ptr: *mut T, len: usize) -> Self {
        let ptr = unsafe { non_null(ptr) };
        let quads = if (ptr as usize).is_multiple_of(16) { len / 4 } else { 0 };
        OutQuads { ptr, len, quads, _slice: PhantomData }
    }
}

impl<'a, T: Word> OutQuads<'a, T> {
    /// Elements in the whole slice.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// This thread's quads: `(q, quad)`, the quad holding elements `4q..4q+4`.
    #[inline(always)]
    pub fn quads(&mut self) -> QuadIter<'_, T> {
        QuadIter { ptr: self.ptr as *mut Quad<T>, next: global_index() as usize, end: self.quads, step: grid_size() as usize, _q: PhantomData }
    }

    /// This thread's elements after the quads: `(i, &mut out[i])`.
    #[inline(always)]
    pub fn tail(&mut self) -> OutIter<'_, T> {
        // The same start as the hand-written kernels had (saturating): with
        // a plain add, ptxas scheduled the ALU-bound producer's quad loop
        // worse (the same instructions, less interleaved: 3-5% slower on an
        // H200, 2026-11-26); this add runs once per thread.
        OutIter::new(self.ptr, (self.quads * 4).saturating_add(global_index() as usize), self.len)
    }
}

/// One quad this thread owns; see [`OutQuads::quads`].
pub struct QuadMut<'b, T>(&'b mut Quad<T>);

impl<T: Word> QuadMut<'_, T> {
    /// Writes the four elements with one 16-byte store.
    #[inline(always)]
    pub fn write(self, v: [T; 4]) {
        *self.0 = Quad(v);
    }
}

/// Iterator of [`OutQuads::quads`].
pub struct QuadIter<'b, T> {
    ptr: *mut Quad<T>,
    next: usize,
    end: usize,
    step: usize,
    _q: PhantomData<&'b mut Quad<T>>,
}

impl<'b, T: Word> Iterator for QuadIter<'b, T> {
    type Item = (usize, QuadMut<'b, T>);
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next < self.end {
            let q = self.next;
            self.next += self.step;
            // SAFETY: the slice is 16-byte aligned (else `end` is 0) and
            // 4q + 3 < len; each quad is yielded to one thread, once.
            Some((q, QuadMut(unsafe { &mut *self.ptr.add(q) })))
        } else {
            None
        }
    }
}

/// A read-only, 16-byte aligned slice of 4-byte elements seen four at a
/// time: one 16-byte load per quad. Made only for aligned slices, so the
/// alignment test sits outside the caller's loop (a test inside it lets the
/// compiler merge both paths into four scalar loads).
#[derive(Clone, Copy)]
pub struct Quads<'a, T> {
    elems: &'a [T],
}

impl<'a, T: Word> Quads<'a, T> {
    /// `Some` when `elems` starts 16-byte aligned.
    #[inline(always)]
    pub fn new(elems: &'a [T]) -> Option<Self> {
        (elems.as_ptr() as usize).is_multiple_of(16).then_some(Quads { elems })
    }

    /// Whole quads in the slice.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.elems.len() / 4
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements `4q..4q+4`, one 16-byte load. Panics (traps) past the end.
    #[inline(always)]
    pub fn get(&self, q: usize) -> [T; 4] {
        assert!(q < self.len(), "quad index out of bounds");
        // SAFETY: quad q lies inside the slice (checked), at a 16-byte
        // aligned address (the slice start is aligned and 4q elements are
        // 16q bytes); any bits of four Words are a valid Quad.
        unsafe { (self.elems.as_ptr() as *const Quad<T>).add(q).read().0 }
    }
}

/// Elements `4q..4q+4` of `elems` with four loads (any alignment). Panics
/// (traps) past the end.
#[inline(always)]
pub fn quad_at<T: Word>(elems: &[T], q: usize) -> [T; 4] {
    let e = &elems[4 * q..4 * q + 4];
    [e[0], e[1], e[2], e[3]]
}

/// A device slice a warp-specialized ring kernel writes
/// (`nvptx_std::hopper::ring`): element `i` is owned by the consumer thread
/// whose share of the ring's tile schedule holds `i` (one tile of one
/// block, one consumer rank within it). It has no public way to write:
/// only `ConsumerSlot::map_into` writes it, at the indices of the slot it
/// holds, so the ownership rule is the ring's, fixed for every thread.
pub struct OutTiles<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: PhantomData<&'a mut [T]>,
}

impl<T: Element> OutParam for OutTiles<'_, T> {
    type Elem = T;
    #[inline(always)]
    unsafe fn from_raw(ptr: *mut T, len: usize) -> Self {
        OutTiles { ptr: unsafe { non_null(ptr) }, len, _slice: PhantomData }
    }
}

impl<T: Element> OutTiles<'_, T> {
    /// Elements in the whole slice.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes elements `i..i + 4` with one 16-byte store (traps past the
    /// end or where `i` is not 16-byte aligned in the slice). Crate-private,
    /// as [`OutTiles::write`].
    #[cfg_attr(not(any(not(target_arch = "nvptx64"), target_feature = "ptx80")), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn write_quad(&mut self, i: usize, v: [T; 4])
    where
        T: Word,
    {
        assert!(i.checked_add(4).is_some_and(|e| e <= self.len), "index out of bounds");
        // SAFETY: in bounds (checked); aligned (checked: a misaligned
        // address traps); any bits of four Words are a valid Quad.
        unsafe {
            let p = self.ptr.add(i) as *mut Quad<T>;
            assert!((p as usize).is_multiple_of(16), "misaligned quad");
            p.write(Quad(v))
        }
    }

    /// Whether element `i` sits on a 16-byte boundary.
    #[cfg_attr(not(any(not(target_arch = "nvptx64"), target_feature = "ptx80")), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn aligned_at(&self, i: usize) -> bool {
        (self.ptr.wrapping_add(i) as usize).is_multiple_of(16)
    }

    /// Writes element `i` (traps past the end). Crate-private: the ring's
    /// consumer slot calls it only for indices its thread owns.
    #[cfg_attr(not(any(not(target_arch = "nvptx64"), target_feature = "ptx80")), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn write(&mut self, i: usize, v: T) {
        assert!(i < self.len, "index out of bounds");
        // SAFETY: in bounds (checked); the slice is this kernel's to write
        // (OutParam's contract) and index `i` this thread's (the caller's).
        unsafe { self.ptr.add(i).write(v) }
    }
}
