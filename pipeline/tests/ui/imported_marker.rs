//! A kernel crate that imports another crate's marker instead of declaring
//! its own would load its launchers from that crate's PTX: refused at
//! compile time.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
pub use ptx_kernels::KernelCrate;

#[kernel(same_len(input, output))]
pub fn double_f64_kernel(input: &[u8], mut output: Out<u8>) {
    for (i, o) in output.iter_mut() {
        *o = input[i];
    }
}

fn main() {}
