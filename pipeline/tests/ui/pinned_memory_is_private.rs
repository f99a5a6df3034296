//! The pinned host buffers that async copies target are the pipeline's own:
//! no safe code outside it can free or read them while a copy may run.
#![forbid(unsafe_code)]
use pc_pipeline::host_mem::PinnedBuffer;
fn main() {}
