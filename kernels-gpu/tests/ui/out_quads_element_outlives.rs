//! As for `Out`: a quad from `OutQuads::quads` and an element from
//! `OutQuads::tail` are borrowed from the `OutQuads` itself.
#![forbid(unsafe_code)]
use nvptx_std::{OutQuads, QuadMut};

fn first_quad<'a>(mut out: OutQuads<'a, f32>) -> QuadMut<'a, f32> {
    out.quads().next().unwrap().1
}

fn kept_tail(mut out: OutQuads<'_, u32>) {
    let (_, x) = out.tail().next().unwrap();
    drop(out);
    *x = 1;
}

fn main() {}
