//! An element from `Out::iter_mut` is borrowed from the `Out` itself (not
//! from the buffer's lifetime): it cannot outlive the `Out`, or a second
//! `iter_mut` would hand out the same element again.
#![forbid(unsafe_code)]
use nvptx_std::Out;

fn first<'a>(mut out: Out<'a, f32>) -> &'a mut f32 {
    out.iter_mut().next().unwrap().1
}

fn kept(mut out: Out<'_, f32>) {
    let (_, x) = out.iter_mut().next().unwrap();
    drop(out);
    *x = 1.0;
}

fn main() {}
