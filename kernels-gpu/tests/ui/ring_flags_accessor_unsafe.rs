//! The counters' accessors are for the ring protocol only: `unsafe`.
use core::sync::atomic::Ordering;
use kernel_math::ring::RingFlags;

pub fn publish_early(flags: &RingFlags) {
    flags.filled(0).fetch_add(1, Ordering::Release);
}

fn main() {}
