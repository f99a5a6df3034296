//! `#[derive(Element)]` accepts repr hints beside `C` (`align(n)`,
//! `packed`): the padding check still decides (a 16-byte struct aligned
//! to 16 has none).
use nvptx_std::Element;

#[repr(C, align(16))]
#[derive(Clone, Copy, Element)]
pub struct Vec4([f32; 4]);

#[repr(C, packed)]
#[derive(Clone, Copy, Element)]
pub struct Packed {
    pub tag: u8,
    pub value: u32,
}

fn main() {
    fn element<T: Element>() {}
    element::<Vec4>();
    element::<Packed>();
}
