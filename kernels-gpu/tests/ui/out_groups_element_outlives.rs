//! A group from `OutGroups::groups` is borrowed from the `OutGroups` itself:
//! it cannot outlive it, or a second `groups()` would hand out the same
//! elements again.
#![forbid(unsafe_code)]
use nvptx_std::{GroupMut, OutGroups};

fn first<'a>(mut out: OutGroups<'a, f32, 8>) -> GroupMut<'a, f32, 8> {
    out.groups().next().unwrap().1
}

fn kept(mut out: OutGroups<'_, f32, 8>) {
    let (_, g) = out.groups().next().unwrap();
    drop(out);
    g.write([0.0; 8]);
}

fn main() {}
