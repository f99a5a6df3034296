//! The README's example: a map stage of your own (a `#[kernel]` and its CPU
//! reference) between a copy in and a copy out, run with stream launches
//! and checked chunk by chunk against the reference. The lines between the
//! `README` markers are quoted in README.md verbatim (`tests/readme.rs`
//! checks).
//!
//! Run: `cargo run -p pc-pipeline --example quick_start`.
// README begin
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Stage, Workload};
use pc_runtime::gpu::Gpu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stage: a #[kernel] of the map shape (here kernels-gpu's consumer,
    // which doubles each f32) and the same computation on the CPU.
    let double = Stage::map::<ptx_kernels::ConsumerKernel>("double", ptx_kernels::PTX, |input: &[f32], output: &mut [f32]| {
        output.iter_mut().zip(input).for_each(|(o, x)| *o = 2.0 * x)
    });
    // Host memory -> double -> host memory, in 1 Mi-element chunks over a
    // ring of 3 slots per hand-off.
    let spec = PipelineSpec::new(Workload::Stream).stages(vec![Stage::h2d(), double, Stage::d2h()]).slots(3).chunk_elements(1 << 20).total_elements(1 << 24);
    let gpu = Gpu::open(0)?;
    let mut pipeline = Pipeline::new(&[&gpu], spec, HostInput::Generated)?;
    let report = pipeline.run(Launch::Streams, 1, false)?;
    let check = pipeline.verify(&report);
    println!("{:.1} GB/s, {}", report.input_gbps(pipeline.spec()), if check.passed() { "PASS" } else { "FAIL" });
    Ok(())
}
// README end
