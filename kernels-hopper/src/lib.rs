//! Kernels that need Hopper (sm_90): the pipeline's stages as programmatic
//! dependent launch (PDL) kernels, and the chain the per-kernel-boundary
//! benchmark launches. Built for sm_90 with PTX 8.0 by the root build.rs
//! (`ptx_kernels::hopper`); the host loads them only on devices of compute
//! capability 9.0 or newer.
//!
//! The `ring_*` kernels run a stage on the warp-specialized mbarrier ring
//! (`nvptx_std::hopper::ring`): warp 0's lane 0 copies tiles of the input
//! into `slots` shared-memory slots of `slot_bytes` with bulk copies, the
//! other warps compute on them. They need `shared_bytes(slots, slot_bytes)`
//! of dynamic shared memory and whole warps, at least two, a block. Their
//! watchdog (`Ring::watched`): a ring wait longer than `timeout_ns` (0: 10
//! s) writes where it waited to `watch` and traps. `watch` is 0 or the
//! device address of a `kernel_math::ring::WarpWatch` that stays valid for
//! the kernel's life and that nothing else uses meanwhile (host memory the
//! GPU maps, which outlives a trap): a contract of their launchers, beside
//! the `# Safety` of `launch`.
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

use kernel_math::{AtomicReduction, Reduction, consume, produce};
use nvptx_std::hopper::pdl::launch_dependents;
use nvptx_std::hopper::ring::fault::{SKIP_FULL_WAIT, STALL_PRODUCER};
use nvptx_std::hopper::ring::{GroupMap, Ring, Role, StageRing, map_stage};
use nvptx_std::{Out, OutQuads, OutTiles, Quads, kernel, quad_at, spin_ns};

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
    // SAFETY: every thread of the grid gets here; none returned before.
    unsafe { nvptx_std::reduce_f32(input, out) };
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

/// The example `square` stage's PDL form (see kernels-gpu's
/// `square_kernel`): `output[i] = square(input[i])`, waiting for the kernel
/// ahead (`#[kernel(pdl)]`), so `Stage::with_pdl_map` can run it.
#[kernel(pdl, same_len(input, output))]
pub fn pdl_square_kernel(input: &[f32], mut output: Out<f32>) {
    launch_dependents();
    for (i, o) in output.iter_mut() {
        *o = kernel_math::square(input[i]);
    }
}

/// The example `square` stage's warps form: `map_stage` on the
/// warp-specialized ring, so `Stage::with_warps_map` can run it.
#[kernel(pdl, faults = faults, same_len(input, output))]
pub fn ring_square_kernel(input: &[f32], mut output: OutTiles<f32>, slots: u32, slot_bytes: u32, timeout_ns: u64, watch: u64, spin: u64, faults: u32) {
    launch_dependents();
    let ring = StageRing { slots, slot_bytes, timeout_ns, watch, spin, faults };
    // SAFETY: first thing, in every thread; launched only through its
    // `WarpMapKernel` launcher (the warps form), which passes these values.
    unsafe { map_stage(input, &mut output, ring, kernel_math::square) }
}

/// A test stage of the PDL grains with run-time parameters around a fault
/// knob and a spin: `output[i] = affine(input[i], scale, offset)`. Its
/// launchers must pass each value in its place (`Stage::with_pdl_map_with`,
/// `PdlMapKernel`); a value in the wrong one changes the output.
#[kernel(pdl, faults = faults, same_len(input, output))]
pub fn pdl_affine_kernel(input: &[f32], mut output: Out<f32>, scale: f32, faults: u32, spin: u64, offset: f32) {
    let _ = faults;
    launch_dependents();
    spin_ns(spin);
    for (i, o) in output.iter_mut() {
        *o = kernel_math::affine(input[i], scale, offset);
    }
}

/// The 12-byte test stage's warps form (see kernels-gpu's
/// `reverse3_kernel`): bulk copies of whole 16-byte units only.
#[kernel(pdl, faults = faults, same_len(input, output))]
pub fn ring_reverse3_kernel(
    input: &[[f32; 3]],
    mut output: OutTiles<[f32; 3]>,
    slots: u32,
    slot_bytes: u32,
    timeout_ns: u64,
    watch: u64,
    spin: u64,
    faults: u32,
) {
    launch_dependents();
    let ring = StageRing { slots, slot_bytes, timeout_ns, watch, spin, faults };
    // SAFETY: as in ring_square_kernel.
    unsafe { map_stage(input, &mut output, ring, kernel_math::reverse3) }
}

/// Consumer's map on the warp-specialized ring: `output[i] =
/// consume(input[i])`. The producer lane spins `spin` nanoseconds before
/// each copy (a slow producer on purpose, for the sync checker). `faults`:
/// `pdl::fault::SKIP_WAIT` skips the PDL wait, `ring::fault::SKIP_FULL_WAIT`
/// makes consumers read slots without waiting for them to fill,
/// `ring::fault::STALL_PRODUCER` leaves the first slot unfilled (a stuck
/// ring, for the watchdog).
#[kernel(pdl, faults = faults, same_len(input, output))]
pub fn ring_consumer_kernel(input: &[f32], mut output: OutTiles<f32>, slots: u32, slot_bytes: u32, timeout_ns: u64, watch: u64, spin: u64, faults: u32) {
    launch_dependents();
    // SAFETY: every thread calls it once, first thing; nothing else uses
    // the dynamic shared memory; `watch` is the launcher's to get right
    // (see the module docs).
    let ring = unsafe { Ring::<f32>::init(input.len(), slots, slot_bytes).watched(timeout_ns, watch) };
    match ring.role() {
        Role::Producer(mut producer) => {
            while let Some(slot) = producer.acquire() {
                spin_ns(spin);
                if faults & STALL_PRODUCER != 0 {
                    // The fault: no copy, no arrival (forgotten, not dropped: a drop traps at once).
                    core::mem::forget(slot);
                    break;
                }
                producer = slot.commit_copy(input);
            }
        }
        Role::Consumer(mut consumer) => loop {
            // SAFETY (the fault): only `launch_with_faults` passes it, whose contract is this race.
            let next = if faults & SKIP_FULL_WAIT != 0 { unsafe { consumer.wait_skipped() } } else { consumer.wait() };
            let Some(slot) = next else { break };
            slot.map_words_into(input, &mut output, consume);
            consumer = slot.release();
        },
        Role::Idle => {}
    }
}

/// The reduce on the warp-specialized ring: adds `input` into `*out` (the
/// same record as `reduce_kernel`'s; `*out` starts as `Reduction::EMPTY`).
/// `spin` and `faults` as `ring_consumer_kernel`'s.
#[kernel(pdl, faults = faults)]
pub fn ring_reduce_kernel(input: &[f32], out: &AtomicReduction, slots: u32, slot_bytes: u32, timeout_ns: u64, watch: u64, spin: u64, faults: u32) {
    launch_dependents();
    // SAFETY: as in ring_consumer_kernel.
    let ring = unsafe { Ring::<f32>::init(input.len(), slots, slot_bytes).watched(timeout_ns, watch) };
    match ring.role() {
        Role::Producer(mut producer) => {
            while let Some(slot) = producer.acquire() {
                spin_ns(spin);
                producer = slot.commit_copy(input);
            }
        }
        Role::Consumer(mut consumer) => {
            let mut r = Reduction::EMPTY;
            loop {
                // SAFETY (the fault): as in ring_consumer_kernel.
                let next = if faults & SKIP_FULL_WAIT != 0 { unsafe { consumer.wait_skipped() } } else { consumer.wait() };
                let Some(slot) = next else { break };
                for i in slot.mine() {
                    r.add(slot.get(input, i));
                }
                consumer = slot.release();
            }
            // SAFETY: consumer warps are whole (Ring::init traps otherwise)
            // and every consumer thread walks the same tiles, so each warp
            // arrives here converged.
            unsafe { nvptx_std::add_warp_totals(r, out) };
        }
        Role::Idle => {}
    }
}

/// Outputs each consumer thread of `ring_fir_kernel` computes at a time:
/// consecutive, so each tap costs one shared-memory load per thread, not
/// one per output; odd, so a warp's loads fall in distinct banks.
pub const FIR_RING_OUTPUTS: usize = 9;

/// kernels-gpu's `fir_kernel` on the warp-specialized ring: `output[i] =
/// sum_{j<T} taps[j] * x[i-j]`, `x` being `input` with `history` (at least
/// `T - 1` elements) before it, added in the order of `kernel_math::fir`
/// (the CPU reference) so every output matches it bit for bit. The
/// producer lane brings each tile with the `T - 1` elements before it into
/// a shared-memory slot (`Ring::init_with_halo`, `commit_halo_copy`; the
/// first tile's from the end of `history`, which takes them from shared
/// memory too when it holds `T - 1` rounded up to 4 elements); the
/// consumers compute groups of [`FIR_RING_OUTPUTS`] outputs from the slot
/// (`ConsumerSlot::halo_groups_into`). `spin` and `faults` as
/// `ring_consumer_kernel`'s.
#[kernel(pdl, faults = faults, same_len(input, output))]
pub fn ring_fir_kernel(
    history: &[f32],
    input: &[f32],
    mut output: OutTiles<f32>,
    taps: &[f32],
    slots: u32,
    slot_bytes: u32,
    timeout_ns: u64,
    watch: u64,
    spin: u64,
    faults: u32,
) {
    launch_dependents();
    // SAFETY: as in ring_consumer_kernel.
    let ring = unsafe { Ring::<f32>::init_with_halo(input.len(), slots, slot_bytes, taps.len().saturating_sub(1)).watched(timeout_ns, watch) };
    match ring.role() {
        Role::Producer(mut producer) => {
            while let Some(slot) = producer.acquire() {
                spin_ns(spin);
                producer = slot.commit_halo_copy(history, input);
            }
        }
        Role::Consumer(mut consumer) => loop {
            // SAFETY (the fault): as in ring_consumer_kernel.
            let next = if faults & SKIP_FULL_WAIT != 0 { unsafe { consumer.wait_skipped() } } else { consumer.wait() };
            let Some(slot) = next else { break };
            slot.halo_groups_into(history, input, &mut output, &Fir { taps });
            consumer = slot.release();
        },
        Role::Idle => {}
    }
}

/// The FIR as a group map: `R` consecutive outputs, the inputs of the
/// current tap in `R` registers used as a circular buffer (`c[(r - j) %
/// R]` holds `x[first + r - j]`), so that moving to the next tap loads one
/// element into the register the oldest one leaves, and nothing moves.
struct Fir<'a> {
    taps: &'a [f32],
}

impl GroupMap<f32, f32, FIR_RING_OUTPUTS> for Fir<'_> {
    fn halo(&self) -> usize {
        self.taps.len().saturating_sub(1)
    }

    #[inline(always)]
    fn group(&self, w: &[f32]) -> [f32; FIR_RING_OUTPUTS] {
        const R: usize = FIR_RING_OUTPUTS;
        let (t, h) = (self.taps, self.halo());
        let mut c = [0.0f32; R];
        for (r, x) in c.iter_mut().enumerate() {
            *x = w[h + r];
        }
        let mut acc = [0.0f32; R];
        // Taps in blocks of R: within a block the tap's offset u is known
        // at compile time, so every register index is.
        let mut j0 = 0;
        while j0 < t.len() {
            for u in 0..R {
                let j = j0 + u;
                if j >= t.len() {
                    break;
                }
                let tap = t[j];
                for r in 0..R {
                    acc[r] = kernel_math::fir_step(acc[r], tap, c[(r + R - u) % R]);
                }
                if j + 1 < t.len() {
                    // x[first - (j + 1)] replaces x[first + R - 1 - j].
                    c[(R - 1 - u) % R] = w[h - (j + 1)];
                }
            }
            j0 += R;
        }
        acc
    }

    fn one(&self, x: impl Fn(usize) -> f32) -> f32 {
        let mut acc = 0.0f32;
        for (j, &tap) in self.taps.iter().enumerate() {
            acc = kernel_math::fir_step(acc, tap, x(j));
        }
        acc
    }
}
