//! Element types of rings, and chunks of them on the host (the CPU
//! reference's values), with the type kept alongside the bytes so a stage
//! can only view them as what they are.
use kernel_math::Element;
use std::any::TypeId;
use std::fmt;

/// The element type of a ring, a host input or a host output.
#[derive(Clone, Copy)]
pub struct ElemType {
    name: &'static str,
    size: usize,
    align: usize,
    id: TypeId,
}

impl ElemType {
    pub fn of<T: Element>() -> ElemType {
        let full = std::any::type_name::<T>();
        // `f32`, `u8`, or the last path segment of a user's type.
        let name = full.rsplit("::").next().unwrap_or(full);
        ElemType { name, size: std::mem::size_of::<T>(), align: std::mem::align_of::<T>(), id: TypeId::of::<T>() }
    }
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// Bytes per element.
    pub fn size(&self) -> usize {
        self.size
    }
    pub fn align(&self) -> usize {
        self.align
    }
    pub fn is<T: Element>(&self) -> bool {
        self.id == TypeId::of::<T>()
    }
}

impl PartialEq for ElemType {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for ElemType {}

impl fmt::Debug for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}
impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// One chunk of elements on the host: what the CPU reference computes.
/// Stored as 16-byte words, so any element type of alignment up to 16 can
/// be viewed in place.
#[derive(Clone)]
pub struct HostChunk {
    elem: ElemType,
    len: usize,
    words: Vec<u128>,
}

impl HostChunk {
    pub fn from_slice<T: Element>(v: &[T]) -> HostChunk {
        let mut c = HostChunk::zeroed(ElemType::of::<T>(), v.len());
        c.bytes_mut().copy_from_slice(as_bytes(v));
        c
    }

    /// `len` elements of `elem`, all bytes 0.
    ///
    /// # Panics
    /// When `elem` is aligned to more than 16 bytes (pipelines refuse such
    /// types first) or `len` elements do not fit in memory.
    pub fn zeroed(elem: ElemType, len: usize) -> HostChunk {
        assert!(elem.align <= std::mem::align_of::<u128>(), "element types aligned to more than 16 bytes are not supported");
        let bytes = len.checked_mul(elem.size).filter(|&b| b <= isize::MAX as usize).expect("a host chunk larger than the address space");
        HostChunk { elem, len, words: vec![0; bytes.div_ceil(16)] }
    }

    /// From raw bytes of `elem` (a whole number of elements; a zero-sized
    /// type gives an empty chunk).
    pub fn from_bytes(elem: ElemType, bytes: &[u8]) -> HostChunk {
        let mut c = HostChunk::zeroed(elem, bytes.len().checked_div(elem.size).unwrap_or(0));
        let n = c.len * elem.size;
        c.bytes_mut().copy_from_slice(&bytes[..n]);
        c
    }

    /// Elements `range` of this chunk, copied.
    ///
    /// # Panics
    /// When `range` is not within `0..len()`.
    pub fn sub(&self, range: std::ops::Range<usize>) -> HostChunk {
        let size = self.elem.size;
        HostChunk::from_bytes(self.elem, &self.bytes()[range.start * size..range.end * size])
    }

    pub fn elem(&self) -> ElemType {
        self.elem
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least len * size initialized bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len * self.elem.size) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.len * self.elem.size) }
    }

    /// The elements as `T`, when they are `T`.
    pub fn view<T: Element>(&self) -> Option<&[T]> {
        // SAFETY: the chunk holds `len` T (same TypeId), the storage's
        // alignment covers T's (checked when made), and T: Element accepts
        // any bytes.
        self.elem.is::<T>().then(|| unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const T, self.len) })
    }

    /// The elements as `&mut [T]`, when they are `T`.
    pub fn view_mut<T: Element>(&mut self) -> Option<&mut [T]> {
        // SAFETY: as `view`, and &mut self is exclusive.
        self.elem.is::<T>().then(|| unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut T, self.len) })
    }
}

impl fmt::Debug for HostChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostChunk({} x {})", self.len, self.elem)
    }
}

/// The bytes of a slice of elements (no padding: every byte is initialized).
pub fn as_bytes<T: Element>(v: &[T]) -> &[u8] {
    // SAFETY: T: Element has no padding, so all size_of_val bytes are initialized.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// Element `i` of `bytes` (of type `elem`) as text, for error messages.
pub fn show_elem(elem: ElemType, bytes: &[u8]) -> String {
    macro_rules! try_as {
        ($($t:ty),*) => { $(
            if elem.is::<$t>() && bytes.len() == std::mem::size_of::<$t>() {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                return <$t>::from_ne_bytes(a).to_string();
            }
        )* };
    }
    try_as!(f32, f64, u8, i8, u16, i16, u32, i32, u64, i64);
    format!("0x{}", bytes.iter().rev().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_their_type() {
        let c = HostChunk::from_slice(&[1.5f32, -2.0, 3.25]);
        assert_eq!(c.elem(), ElemType::of::<f32>());
        assert_eq!(c.view::<f32>(), Some(&[1.5f32, -2.0, 3.25][..]));
        assert_eq!(c.view::<u32>(), None);
        assert_eq!(c.bytes().len(), 12);
        let b = HostChunk::from_slice(&[7u8; 5]);
        assert_eq!(b.view::<u8>().map(|v| v.len()), Some(5));
        assert_eq!(ElemType::of::<f64>().name(), "f64");
        assert_eq!(show_elem(ElemType::of::<f32>(), &2.5f32.to_ne_bytes()), "2.5");
    }
}
