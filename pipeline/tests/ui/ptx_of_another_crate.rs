//! A launcher runs only PTX built from its own kernel crate: kernels-gpu's
//! PTX is not this crate's, even where an entry of the same name and
//! parameter sizes exists in it.
#![forbid(unsafe_code)]
use nvptx_std::{Out, kernel};
nvptx_std::kernel_crate!();

#[kernel(same_len(input, output))]
pub fn consumer_kernel(input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = input[i] * 3.0;
    }
}

fn main() {
    let _ = pc_pipeline::Stage::map::<ConsumerKernel>("triple", ptx_kernels::PTX, |i, o| o.iter_mut().zip(i).for_each(|(o, x)| *o = x * 3.0));
}
