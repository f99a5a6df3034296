//! The "Adding a stage" example (docs/guide.md): a moving-average stage written in
//! Rust (`kernels-gpu`'s `moving_average_kernel`), put into a stream pipeline
//! between the seed's consumer and the copy back, and checked chunk by chunk
//! against its CPU reference. It is a halo stage: `y[i] = (x[i-2] + x[i-1] +
//! x[i]) / 3` over the whole stream, the two elements before each chunk kept
//! on the GPU by the stage (zeros before the stream's start), so every
//! chunk boundary gives what one pass over the whole input would.
//!
//! Run: `cargo run -p pc-pipeline --example moving_average [-- <device>]`.
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload, parse_stages};
use pc_runtime::gpu::Gpu;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let device = std::env::args().nth(1).map(|d| d.parse()).transpose()?.unwrap_or(0);
    let gpu = Gpu::open(device)?;
    let spec = PipelineSpec::new(Workload::Stream)
        .stages(parse_stages("h2d,consumer,moving-average,d2h")?)
        .slots(3)
        .chunk_elements(1 << 20)
        .total_elements((16 << 20) + 123);
    let mut pipeline = Pipeline::new(&[&gpu], spec, HostInput::Generated)?;
    let report = pipeline.run(Launch::Streams, 1, false)?;
    let check = pipeline.verify(&report);
    let out = pipeline.output::<f32>().unwrap_or_default();
    println!("h2d -> consumer -> moving-average -> d2h on {}: {:.3} ms, {:.1} GB/s", gpu.info().name, report.gpu_ms, report.input_gbps(pipeline.spec()));
    println!("first outputs: {:?}", &out[..4.min(out.len())]);
    match &check.first_wrong {
        None => println!("verification: PASS: all {} chunks match the CPU reference", check.chunks_checked),
        Some((c, what)) => println!("verification: FAIL: chunk {c}: {what}"),
    }
    Ok(check.passed())
}
