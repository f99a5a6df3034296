//! Kernels that need Hopper (sm_90): the pipeline's stages as programmatic
//! dependent launch (PDL) kernels, and the chain the per-kernel-boundary
//! benchmark launches. Built for sm_90 with PTX 8.0 by the root build.rs
//! (`ptx_kernels::hopper`); the host loads them only on devices of compute
//! capability 9.0 or newer.
//!
//! Every kernel here is `#[kernel(pdl)]`: its entry executes
//! `griddepcontrol.wait` before the body, so it may be launched with the
//! PDL attribute (`launch_pdl`) and start while the kernel ahead of it on
//! the stream still runs. Each body calls `launch_dependents` first: the
//! next kernel can then be scheduled at once and sit in its own wait, which
//! is the launch latency PDL hides. Per-element math is kernel-math's, the
//! same functions kernels-gpu and the CPU reference call.
#![no_std]
#![cfg_attr(target_arch = "nvptx64", feature(abi_ptx))]

use kernel_math::{AtomicReduction, consume, produce};
use nvptx_std::hopper::pdl::launch_dependents;
use nvptx_std::{Out, OutQuads, Quads, kernel, quad_at, spin_ns};

nvptx_std::kernel_crate!();

/// kernels-gpu's `producer_vec_kernel` as a PDL kernel: `buffer[i] =
/// produce(first + i, seed)` with 16-byte stores, after a spin of `spin`
/// nanoseconds (a slow producer on purpose, for the sync checker). The next
/// kernel may be scheduled before the spin: without its wait it would read
/// the slot before this kernel writes it.
#[kernel(pdl)]
pub fn pdl_producer_kernel(mut buffer: OutQuads<f32>, first: u64, seed: u32, spin: u64) {
    launch_dependents();
    spin_ns(spin);
    for (q, quad) in buffer.quads() {
        let i = first.wrapping_add(4 * q as u64);
        quad.write([produce(i, seed), produce(i + 1, seed), produce(i + 2, seed), produce(i + 3, seed)]);
    }
    for (i, x) in buffer.tail() {
        *x = produce(first.wrapping_add(i as u64), seed);
    }
}

/// kernels-gpu's `consumer_vec_kernel` as a PDL kernel: `output[i] =
/// consume(buffer[i])`. `faults` is the sync checker's knob
/// (`nvptx_std::hopper::pdl::fault`); every launcher but the unsafe
/// `launch_with_faults` passes 0.
#[kernel(pdl, faults = faults, same_len(buffer, output))]
pub fn pdl_consumer_kernel(buffer: &[f32], mut output: OutQuads<f32>, faults: u32) {
    let _ = faults;
    launch_dependents();
    match Quads::new(buffer) {
        Some(input) => output.quads().for_each(|(q, quad)| quad.write(input.get(q).map(consume))),
        None => output.quads().for_each(|(q, quad)| quad.write(quad_at(buffer, q).map(consume))),
    }
    for (i, o) in output.tail() {
        *o = consume(buffer[i]);
    }
}

/// kernels-gpu's `reduce_kernel` as a PDL kernel: adds `input` into `*out`
/// (`nvptx_std::reduce_f32`); `*out` must start as `Reduction::EMPTY`.
#[kernel(pdl)]
pub fn pdl_reduce_kernel(input: &[f32], out: &AtomicReduction) {
    launch_dependents();
    nvptx_std::reduce_f32(input, out);
}

/// One link of a chain of dependent kernels: `output[i] = input[i] + 1`.
/// Launched N times over two buffers in turn, the last output is N
/// everywhere (from zeros); each launch depends on the one before, so the
/// chain's time over N is the cost of one kernel boundary.
#[kernel(pdl, same_len(input, output))]
pub fn pdl_chain_kernel(input: &[u32], mut output: Out<u32>) {
    launch_dependents();
    for (i, o) in output.iter_mut() {
        *o = input[i].wrapping_add(1);
    }
}
