//! Without `#[repr(C)]` the compiler may reorder fields, and the host and the
//! device builds must agree on the layout.
use nvptx_std::Element;

#[derive(Clone, Copy, Element)]
pub struct Pair {
    pub a: f32,
    pub b: f32,
}

#[derive(Clone, Copy, Element)]
#[repr(u8)]
pub enum Mode {
    A,
    B,
}

fn main() {}
