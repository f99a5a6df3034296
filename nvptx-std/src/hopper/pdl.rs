//! Programmatic dependent launch (PDL, sm_90): a kernel launched with the
//! programmatic stream serialization attribute may start before the kernel
//! ahead of it on the stream has finished. It must then execute
//! [`wait`] (`griddepcontrol.wait`) before it touches any memory that
//! kernel writes or reads: `wait` returns once the primary grid has
//! completed and its memory operations are visible.
//!
//! Kernels do not call [`wait`] themselves: `#[kernel(pdl)]` puts it before
//! the body, so a PDL kernel without it cannot be written, and only such
//! kernels get the launcher that sets the attribute (`launch_pdl`).
//! What a kernel does choose is where it calls [`launch_dependents`]: from
//! there on, the next kernel on the stream may be scheduled (early, so its
//! launch overlaps this kernel's work; it still waits before reading).

/// `griddepcontrol.wait`: blocks until every prerequisite grid has completed
/// and its memory operations are performed and visible to this grid. A no-op
/// in a kernel launched without the PDL attribute.
///
/// Emitted by `#[kernel(pdl)]` before the body; kernels have no reason to
/// call it.
#[inline(always)]
pub fn wait() {
    #[cfg(target_arch = "nvptx64")]
    // SAFETY: waits; no operands. Not `nomem`: the compiler must not move
    // memory accesses of the body above it.
    unsafe {
        core::arch::asm!("griddepcontrol.wait;", options(nostack))
    };
}

/// `griddepcontrol.launch_dependents`: once every block of this grid has
/// executed it (or exited), the dependent grid (launched with the PDL
/// attribute) may be scheduled. It orders nothing by itself: the dependent's
/// `griddepcontrol.wait` still waits for this whole grid to complete.
#[inline(always)]
pub fn launch_dependents() {
    #[cfg(target_arch = "nvptx64")]
    // SAFETY: a scheduling hint; no operands.
    unsafe {
        core::arch::asm!("griddepcontrol.launch_dependents;", options(nostack))
    };
}

/// Fault knob bits of a `#[kernel(pdl, faults = f)]` kernel, for the sync
/// checker only (see the launcher's `launch_with_faults`).
pub mod fault {
    /// Skip the `griddepcontrol.wait` that `#[kernel(pdl)]` puts before the
    /// body: the kernel may read its input before the kernel ahead of it on
    /// the stream has written it.
    pub const SKIP_WAIT: u32 = 1;
}

/// What `#[kernel(pdl, faults = f)]` runs before the body: the wait, unless
/// the sync checker's fault bit says to skip it.
#[doc(hidden)]
#[inline(always)]
pub fn wait_unless_faulted(faults: u32) {
    if faults & fault::SKIP_WAIT == 0 {
        wait();
    }
}
