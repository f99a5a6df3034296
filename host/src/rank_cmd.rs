//! `host pipeline` as a rank of a job (`PC_RANK` set, say by `host
//! launch`): this process's own stages of the pipeline, the chunks crossing
//! between ranks by NCCL.
use crate::common::{check_writable, fresh_interrupt_flag, parse_place, print_run, rank_path};
use crate::pipeline_args::PipelineArgs;
use crate::rank_env::RankEnv;
use anyhow::{Result, bail};
use pc_pipeline::{HostInput, Launch, PipelineSpec};
use pc_runtime::error::bytes;
use pc_runtime::gpu::Gpu;

/// `host pipeline` as rank `env.rank` of a job (`PC_RANK` set, say by
/// `host launch`): `--place` names a rank per stage; this process runs its
/// own stages on GPU `PC_DEVICE`, the chunks crossing to the next rank by
/// NCCL; the last rank checks every chunk.
pub fn run(a: &PipelineArgs, spec: PipelineSpec, launch: Launch, env: RankEnv) -> Result<bool> {
    use pc_pipeline::ranks::{RankLayout, RankedPipeline};
    let (rank, n) = (env.rank, env.nprocs);
    if a.stream.input.is_some() {
        bail!("--input streams through one process; the ranks of a job run generated input");
    }
    if a.batch.check_sync || a.batch.compare_serial {
        bail!("--check-sync and --compare-serial run in one process; drop them in a job of ranks");
    }
    if launch != Launch::Streams {
        bail!("the ranks of a job run with stream launches, not --grain {}", launch.name());
    }
    let Some(text) = &a.batch.place else {
        bail!("this is rank {rank} of {n} (PC_RANK is set): give --place with a rank per stage, e.g. producer:0,consumer:1,reduce:1")
    };
    let (used, index) = parse_place(text, &spec.stages.iter().map(|s| s.name()).collect::<Vec<_>>())?;
    let spec = spec.placement(index.iter().map(|&i| used[i]).collect());
    // Checked alike on every rank, before any joins NCCL.
    let layout = RankLayout::new(&spec, rank, n)?;
    pc_pipeline::ranks::local_spec(&spec, &layout, None, &HostInput::Generated)?;
    let nccl = if layout.exchanges() { Some(pc_pipeline::nccl::version()?) } else { None };
    let trace = a.trace.as_deref().map(|p| rank_path(p, rank));
    let svg = a.svg.as_deref().map(|p| rank_path(p, rank));
    check_writable(&trace, "--trace")?;
    check_writable(&svg, "--svg")?;
    let gpu = Gpu::open(env.device)?;
    let id = if layout.exchanges() { Some(env.nccl_id()?) } else { None };
    let mine: Vec<&str> = layout.stages.clone().map(|s| spec.stages[s].name()).collect();
    let size = spec.input_type()?.size() as u128;
    println!(
        "rank {rank} of {n} (pid {}): stages {} on GPU {} ({}){}{}; K={}, chunk {}, total {} in {} chunks{}",
        std::process::id(),
        mine.join(" -> "),
        gpu.info().index,
        gpu.info().name,
        layout.from.map_or(String::new(), |r| format!(", chunks from rank {r}")),
        layout.to.map_or(String::new(), |r| format!(", chunks to rank {r}")),
        spec.slots,
        bytes(spec.chunk_elements as u128 * size),
        bytes(spec.total_elements as u128 * size),
        spec.chunks(),
        // NCCL's code: major * 10000 + minor * 100 + patch (2.9 on).
        nccl.map_or(String::new(), |(v, lib)| format!(", NCCL {}.{}.{} ({lib})", v / 10000, v % 10000 / 100, v % 100))
    );
    // Ranks given other arguments are refused here, on every rank.
    let mut p = RankedPipeline::new(&gpu, spec.clone(), HostInput::Generated, rank, n, id.as_ref())?;
    p.set_interrupt(fresh_interrupt_flag());
    let want_timeline = trace.is_some() || svg.is_some();
    // The host clock when the run starts, next to the origin event it
    // records first: what lines the ranks' traces up when the launcher
    // merges them (to within the launch latency, microseconds).
    let origin_unix_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let report = p.run(a.batch.runs, want_timeline, |_| {})?;
    print_run(&format!("rank {rank}"), p.pipeline().spec(), &report);
    let passed = match p.verify(&report) {
        Some(check) => {
            let how = if !check.passed() {
                ""
            } else if spec.reduces() {
                " (reductions exact, against the whole pipeline's CPU reference)"
            } else {
                " (every element, against the whole pipeline's CPU reference)"
            };
            println!("verification: {}{how}", check.summary());
            check.passed()
        }
        None => {
            println!("verification: none on this rank: its chunks leave for rank {} and are checked on the last rank", layout.to.unwrap_or(0));
            true
        }
    };
    if let Some(tl) = &report.timeline {
        let title = format!("rank {rank}: {}, K={}, {} chunks: {:.3} ms", mine.join(","), spec.slots, spec.chunks(), report.gpu_ms);
        if let Some(path) = &trace {
            tl.write_chrome_trace_with(path, serde_json::json!({"rank": rank, "nprocs": n, "device": gpu.info().index, "origin_unix_ns": origin_unix_ns}))?;
            println!("timeline: wrote Chrome trace {}", path.display());
        }
        if let Some(path) = &svg {
            tl.write_svg(path, &title)?;
            println!("timeline: wrote SVG {}", path.display());
        }
    }
    Ok(passed)
}
