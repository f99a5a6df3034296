//! A thread takes its role in a warp ring once: `role` consumes the ring, so
//! a second producer (or consumer) with a fresh state cannot be made.
use nvptx_std::hopper::ring::{Ring, Role};

pub fn two_producers(len: usize) {
    // SAFETY: (would be) every thread, once, first thing.
    let ring = unsafe { Ring::<f32>::init(len, 2, 1024) };
    let first = ring.role();
    let second = ring.role();
    if let (Role::Producer(a), Role::Producer(b)) = (first, second) {
        let _ = (a.acquire(), b.acquire());
    }
}

fn main() {}
