//! The pipeline's kernels, each written once with `#[kernel]`: on nvptx64
//! it is a PTX `.entry` with the function's name; on the host the same
//! source gives a typed launcher (`ProducerKernel::launch`, ...), so the
//! host cannot pass the wrong buffers or argument count.
//!
//! Kernels only move data and loop; what each element becomes is defined in
//! `kernel-math`, which the host's CPU reference calls too.
//!
//! Every kernel uses a grid-stride loop, so any element count works with any
//! launch shape. A panic (say, an index out of bounds) traps.
#![no_std]
#![cfg_attr(target_arch = "nvptx64", feature(abi_ptx))]

use core::sync::atomic::AtomicU64;
use kernel_math::ring::{RingControl, RingFlags, RingPlan};
use kernel_math::{AtomicReduction, Reduction, consume, produce};
use nvptx_std::ring::{RingSlots, StageCtx};
use nvptx_std::{Out, OutGroups, OutQuads, Quads, kernel, quad_at, spin_ns};

nvptx_std::kernel_crate!();

/// Dynamic shared memory `reduce_kernel` combines a block's warps in.
pub use nvptx_std::REDUCE_SHARED_BYTES;

/// Fills `buffer` with `produce(first + i, seed)`: element `i` of a chunk
/// that starts at global index `first`.
///
/// Every thread first spins for `spin` nanoseconds: a slow producer on
/// purpose, which makes a missing synchronization show up reliably.
#[kernel]
pub fn producer_kernel(mut buffer: Out<f32>, first: u64, seed: u32, spin: u64) {
    spin_ns(spin);
    for (i, x) in buffer.iter_mut() {
        *x = produce(first.wrapping_add(i as u64), seed);
    }
}

/// Writes `output[i] = consume(buffer[i])`, after a spin of `spin`
/// nanoseconds (0: none).
#[kernel(same_len(buffer, output))]
pub fn consumer_kernel(buffer: &[f32], mut output: Out<f32>, spin: u64) {
    spin_ns(spin);
    for (i, o) in output.iter_mut() {
        *o = consume(buffer[i]);
    }
}

/// `producer_kernel` with 16-byte stores: each loop trip writes four
/// elements with one `st.global.v4.f32`, so fewer, wider transactions keep
/// more bytes in flight. A buffer that is not 16-byte aligned, and the last
/// `n % 4` elements, take the scalar path. Same results as `producer_kernel`.
#[kernel]
pub fn producer_vec_kernel(mut buffer: OutQuads<f32>, first: u64, seed: u32, spin: u64) {
    spin_ns(spin);
    for (q, quad) in buffer.quads() {
        let i = first.wrapping_add(4 * q as u64);
        quad.write([produce(i, seed), produce(i + 1, seed), produce(i + 2, seed), produce(i + 3, seed)]);
    }
    for (i, x) in buffer.tail() {
        *x = produce(first.wrapping_add(i as u64), seed);
    }
}

/// `consumer_kernel` with 16-byte loads and stores (see `producer_vec_kernel`).
#[kernel(same_len(buffer, output))]
pub fn consumer_vec_kernel(buffer: &[f32], mut output: OutQuads<f32>, spin: u64) {
    spin_ns(spin);
    match Quads::new(buffer) {
        Some(input) => output.quads().for_each(|(q, quad)| quad.write(input.get(q).map(consume))),
        None => output.quads().for_each(|(q, quad)| quad.write(quad_at(buffer, q).map(consume))),
    }
    for (i, o) in output.tail() {
        *o = consume(buffer[i]);
    }
}

/// `fused_kernel` with 16-byte stores.
#[kernel]
pub fn fused_vec_kernel(mut output: OutQuads<f32>, first: u64, seed: u32) {
    let f = |i: u64| consume(produce(i, seed));
    for (q, quad) in output.quads() {
        let i = first.wrapping_add(4 * q as u64);
        quad.write([f(i), f(i + 1), f(i + 2), f(i + 3)]);
    }
    for (i, o) in output.tail() {
        *o = f(first.wrapping_add(i as u64));
    }
}

/// Producer and consumer fused: `output[i] = consume(produce(first + i,
/// seed))`, with no intermediate buffer. The bound for any two-kernel
/// producer/consumer pipeline: it moves only the output's bytes.
#[kernel]
pub fn fused_kernel(mut output: Out<f32>, first: u64, seed: u32) {
    for (i, o) in output.iter_mut() {
        *o = consume(produce(first.wrapping_add(i as u64), seed));
    }
}

/// Causal 3-point moving average: `output[i] = moving_average3(x[i-2],
/// x[i-1], x[i])` over the whole stream, where `x` is `input` and the two
/// elements before it come from `history` (the end of the previous chunk,
/// zeros before the stream's start): a halo stage. The example stage of the
/// "Adding a stage" in docs/guide.md.
#[kernel(same_len(input, output))]
pub fn moving_average_kernel(history: &[f32], input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = kernel_math::moving_average3(halo_at(history, input, i, 2), halo_at(history, input, i, 1), input[i]);
    }
}

/// Outputs each thread of `fir_kernel` computes: one group of consecutive
/// outputs, so that each tap costs one new load per thread, not one per output.
pub const FIR_OUTPUTS_PER_THREAD: usize = 8;

/// Causal FIR filter: `output[i] = sum_{j<T} taps[j] * x[i-j]` (see
/// `kernel_math::fir`, the CPU reference, which adds in the same order), `x`
/// being `input` with `history` (at least `T - 1` elements, the end of the
/// previous chunk) before it: a halo stage.
///
/// Each thread owns [`FIR_OUTPUTS_PER_THREAD`] consecutive outputs and keeps
/// the inputs they need for the current tap in registers (`window[r] =
/// x[first + r - j]`); moving to tap `j + 1` shifts the window by one, so it
/// loads one new element per tap.
#[kernel(same_len(input, output))]
pub fn fir_kernel(history: &[f32], input: &[f32], mut output: OutGroups<f32, FIR_OUTPUTS_PER_THREAD>, taps: &[f32]) {
    const R: usize = FIR_OUTPUTS_PER_THREAD;
    for (first, group) in output.groups() {
        let mut window = [0.0f32; R];
        for (r, w) in window.iter_mut().enumerate() {
            // Past the end of a short last group: never written out.
            *w = input.get(first + r).copied().unwrap_or(0.0);
        }
        let mut acc = [0.0f32; R];
        for (j, &tap) in taps.iter().enumerate() {
            for r in 0..R {
                acc[r] = kernel_math::fir_step(acc[r], tap, window[r]);
            }
            for r in (1..R).rev() {
                window[r] = window[r - 1];
            }
            if j + 1 < taps.len() {
                window[0] = halo_at(history, input, first, j + 1);
            }
        }
        group.write(acc);
    }
}

/// `x[i - back]` of the stream whose elements `input` holds from index 0 on,
/// with `history` holding those just before (`history[h - 1]` is `x[-1]`).
/// Past the start of `history` the index wraps and the bounds check traps.
#[inline(always)]
fn halo_at<T: Copy>(history: &[T], input: &[T], i: usize, back: usize) -> T {
    if back <= i { input[i - back] } else { history[(history.len() + i).wrapping_sub(back)] }
}

/// `next` = the last `next.len()` bytes of `old ++ new`: the history a halo
/// stage keeps for its next chunk, from its history and this chunk's input
/// (a chunk shorter than the history keeps part of the old one). Bytes, so
/// one kernel serves every element type.
#[kernel(same_len(old, next))]
pub fn halo_shift_kernel(old: &[u8], new: &[u8], mut next: Out<u8>) {
    let h = old.len();
    for (b, o) in next.iter_mut() {
        // Byte b of `next` is byte new.len() + b of old ++ new.
        let k = new.len() + b;
        *o = if k < h { old[k] } else { new[k - h] };
    }
}

/// u8 samples to f32 in [0, 1] (`kernel_math::unit_from_u8`): a stage
/// that changes the element type.
#[kernel(same_len(input, output))]
pub fn u8_to_f32_kernel(input: &[u8], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = kernel_math::unit_from_u8(input[i]);
    }
}

/// Stereo 16-bit samples to their mono mean as f32 (`kernel_math::mono`):
/// a `#[repr(C)]` struct element.
#[kernel(same_len(input, output))]
pub fn stereo_to_mono_kernel(input: &[kernel_math::Stereo], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = kernel_math::mono(input[i]);
    }
}

/// u8 samples times `scale`, a run-time value (`kernel_math::scale_u8`): a
/// stage with a parameter (`Stage::map_with` and `ScaleU8KernelParams`).
#[kernel(same_len(input, output))]
pub fn scale_u8_kernel(input: &[u8], mut output: Out<f32>, scale: f32) {
    for (i, o) in output.iter_mut() {
        *o = kernel_math::scale_u8(input[i], scale);
    }
}

/// Stereo samples mixed to mono with per-channel gains
/// (`kernel_math::stereo_gain`): a `&T` run-time parameter of a derived
/// struct element, which the stage copies to the GPU once.
#[kernel(same_len(input, output))]
pub fn stereo_gain_kernel(input: &[kernel_math::Stereo], mut output: Out<f32>, gain: &kernel_math::Gain) {
    let g = *gain;
    for (i, o) in output.iter_mut() {
        *o = kernel_math::stereo_gain(input[i], g);
    }
}

/// `hash32` of each u32.
#[kernel(same_len(input, output))]
pub fn mix_u32_kernel(input: &[u32], mut output: OutQuads<u32>) {
    match Quads::new(input) {
        Some(q) => output.quads().for_each(|(k, quad)| quad.write(q.get(k).map(kernel_math::mix_u32))),
        None => output.quads().for_each(|(k, quad)| quad.write(quad_at(input, k).map(kernel_math::mix_u32))),
    }
    for (i, o) in output.tail() {
        *o = kernel_math::mix_u32(input[i]);
    }
}

/// Absolute value of each i32 (wrapping).
#[kernel(same_len(input, output))]
pub fn abs_i32_kernel(input: &[i32], mut output: Out<i32>) {
    for (i, o) in output.iter_mut() {
        *o = kernel_math::abs_i32(input[i]);
    }
}

/// Doubles each f64.
#[kernel(same_len(input, output))]
pub fn double_f64_kernel(input: &[f64], mut output: Out<f64>) {
    for (i, o) in output.iter_mut() {
        *o = kernel_math::double_f64(input[i]);
    }
}

/// Adds `input` into `*out` (sum, min, max, histogram; see
/// `kernel_math::Reduction`), after a spin of `spin` nanoseconds. `*out` must
/// start as `Reduction::EMPTY`. The body is `nvptx_std::reduce_f32`
/// (shared with kernels-hopper's PDL reduce): per-thread shares, warp
/// shuffles, then one atomic add per block when launched with
/// [`REDUCE_SHARED_BYTES`] of dynamic shared memory (per warp without), so
/// the record is the same whatever the order.
#[kernel]
pub fn reduce_kernel(input: &[f32], out: &AtomicReduction, spin: u64) {
    spin_ns(spin);
    // SAFETY: every thread of the grid gets here; none returned before.
    unsafe { nvptx_std::reduce_f32(input, out) };
}

/// Spins for `ns` nanoseconds and does nothing else: launched (one thread)
/// ahead of a copy stage to slow that stream down on purpose.
#[kernel]
pub fn delay_kernel(ns: u64) {
    spin_ns(ns);
}

/// Panics when `trigger` is non-zero. A device panic executes `trap`
/// (nvptx-std's panic handler), so the host's next CUDA call fails with a
/// launch error instead of the GPU hanging; the tests check exactly that.
#[kernel]
pub fn panic_kernel(trigger: u32) {
    if trigger != 0 {
        panic!("panic_kernel triggered");
    }
}

// The flags grain (`nvptx_std::ring`): each stage one kernel for the whole
// stream, all running at once, slots handed over through counters. The
// per-element work is the same function as the stream kernels'. `faults`
// is 0 but for the sync checker (see `StageCtx::with_faults`). The pipeline
// launches them only in that grain (`StageCtx::new`'s contract).

/// `producer_kernel` as a flag-ring source: stage `stage`, writing ring `stage`.
#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn producer_flags_kernel(
    plan: &RingPlan,
    ctl: &RingControl,
    output: RingSlots<f32>,
    out_flags: &RingFlags,
    stamps: &[AtomicU64],
    stage: u32,
    seed: u32,
    spin: u64,
    faults: u32,
) {
    // SAFETY: launched only as a stage of the flags grain, by the pipeline's
    // flags executor (`pc_pipeline::builtin`'s flag forms; the launcher's
    // contract); `faults` is 0 but in the sync checker's demonstrations
    // (launched through the pipeline's unsafe fault API).
    let ctx = unsafe { StageCtx::new(plan, ctl, stage).with_faults(faults) }.with_stamps(stamps);
    nvptx_std::ring::source(&ctx, (output, out_flags), spin, |i| produce(i, seed));
}

/// `consumer_kernel` as a flag-ring map stage: ring `stage - 1` to ring `stage`.
#[kernel]
pub fn consumer_flags_kernel(
    plan: &RingPlan,
    ctl: &RingControl,
    input: RingSlots<f32>,
    in_flags: &RingFlags,
    output: RingSlots<f32>,
    out_flags: &RingFlags,
    stamps: &[AtomicU64],
    stage: u32,
    spin: u64,
    faults: u32,
) {
    // SAFETY: as in producer_flags_kernel.
    let ctx = unsafe { StageCtx::new(plan, ctl, stage).with_faults(faults) }.with_stamps(stamps);
    nvptx_std::ring::map(&ctx, (input, in_flags), (output, out_flags), spin, consume);
}

/// The example `square` stage, a map of yours with every form a built-in
/// has (its other two, `pdl_square_kernel` and `ring_square_kernel`, are
/// in kernels-hopper; `pc_pipeline`'s `tests/every_form.rs` registers
/// them): `output[i] = square(input[i])`.
#[kernel(same_len(input, output))]
pub fn square_kernel(input: &[f32], mut output: Out<f32>) {
    for (i, o) in output.iter_mut() {
        *o = kernel_math::square(input[i]);
    }
}

/// `square_kernel` as a flag-ring map stage: ring `stage - 1` to ring `stage`.
#[kernel]
pub fn square_flags_kernel(
    plan: &RingPlan,
    ctl: &RingControl,
    input: RingSlots<f32>,
    in_flags: &RingFlags,
    output: RingSlots<f32>,
    out_flags: &RingFlags,
    stamps: &[AtomicU64],
    stage: u32,
    spin: u64,
    faults: u32,
) {
    // SAFETY: launched only as a stage of the flags grain, by its flag form
    // (`Stage::with_flags_map`, the launcher's contract); `faults` is 0 but
    // in the sync checker's demonstrations.
    let ctx = unsafe { StageCtx::new(plan, ctl, stage).with_faults(faults) }.with_stamps(stamps);
    nvptx_std::ring::map(&ctx, (input, in_flags), (output, out_flags), spin, kernel_math::square);
}

/// The test stage of a 12-byte element (see kernels-hopper's
/// `ring_reverse3_kernel`): `output[i] = reverse3(input[i])`.
#[kernel(same_len(input, output))]
pub fn reverse3_kernel(input: &[[f32; 3]], mut output: Out<[f32; 3]>) {
    for (i, o) in output.iter_mut() {
        *o = kernel_math::reverse3(input[i]);
    }
}

/// `reduce_kernel` as a flag-ring sink: `records[c]` (local chunk `c`, one
/// per chunk, starting as `Reduction::EMPTY`) gets chunk `c`'s record.
#[kernel]
pub fn reduce_flags_kernel(
    plan: &RingPlan,
    ctl: &RingControl,
    input: RingSlots<f32>,
    in_flags: &RingFlags,
    records: &[AtomicReduction],
    stamps: &[AtomicU64],
    stage: u32,
    spin: u64,
    faults: u32,
) {
    // SAFETY: as in producer_flags_kernel.
    let ctx = unsafe { StageCtx::new(plan, ctl, stage).with_faults(faults) }.with_stamps(stamps);
    if !nvptx_std::ring::check_records(&ctx, records.len()) {
        return;
    }
    nvptx_std::ring::sink(&ctx, (input, in_flags), spin, |c, share| {
        let mut r = Reduction::EMPTY;
        share.for_each(|x| r.add(x));
        // SAFETY: the sink runner calls this closure in every thread of the
        // block at the same point (converged warps).
        unsafe { nvptx_std::add_warp_totals(r, &records[c as usize]) };
    });
}
