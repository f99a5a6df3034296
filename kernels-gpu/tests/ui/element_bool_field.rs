//! A field that is not an Element (here `bool`: only 0 and 1 are valid, and
//! device memory may hold any byte) makes the struct no Element.
use nvptx_std::Element;

#[repr(C)]
#[derive(Clone, Copy, Element)]
pub struct Flagged {
    pub valid: bool,
    pub pad: [u8; 3],
    pub value: f32,
}

fn main() {}
