//! A struct with padding is not an Element: its padding bytes are
//! uninitialized, and a kernel would read (or the host copy) them.
use nvptx_std::Element;

#[repr(C)]
#[derive(Clone, Copy, Element)]
pub struct Padded {
    pub tag: u8,
    pub value: u32,
}

fn main() {}
