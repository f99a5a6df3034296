//! `OutQuads<T>` moves four 4-byte words at a time: `[u8; 4]` is an
//! `Element` but not a `Word`. Refused by the host build, not only by the
//! PTX build.
#![forbid(unsafe_code)]
use nvptx_std::{OutQuads, kernel};
nvptx_std::kernel_crate!();

#[kernel]
pub fn pack_kernel(output: OutQuads<[u8; 4]>) {
    let _ = output;
}

fn main() {}
