// A grain's state of another crate gets the part's stages as an opaque
// handle: swapping one would leave a captured CUDA graph pointing at freed
// device memory.
use pc_pipeline::exec::{GrainState, PartStages};

struct Mine;

impl GrainState for Mine {
    fn select(&mut self, stages: PartStages<'_>, _on: bool) {
        stages.0.swap(0, 1);
    }
}

fn main() {}
