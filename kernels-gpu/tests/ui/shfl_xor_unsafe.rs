//! A full-mask warp shuffle needs every lane converged: `unsafe`.
#![forbid(unsafe_code)]

fn butterfly(v: u32) -> u32 {
    nvptx_std::shfl_xor(v, 16)
}

fn main() {}
