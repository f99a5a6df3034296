//! `host gen`: a deterministic stream of elements on standard output (or a
//! file), the same bytes as the pipeline's generated input, so that
//! `host gen | host pipeline --input - ...` can be checked end to end.
use crate::units::parse_bytes;
use anyhow::{Context, Result, bail};
use clap::Args;
use pc_pipeline::ElemType;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Element type: f32 (the producer's values, `produce(i, seed)`), or
    /// u8, u32, i32, f64, stereo (hashed bytes).
    #[arg(long = "type", default_value = "f32")]
    elem: String,
    /// Bytes to write (a whole number of elements unless --allow-partial).
    #[arg(short, long, value_parser = parse_bytes)]
    total: u64,
    /// Seed (the pipeline's --seed gives the same values).
    #[arg(long, default_value_t = 0x5eed)]
    seed: u32,
    /// Write here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Allow a total that ends mid-element (to test how readers refuse it).
    #[arg(long)]
    allow_partial: bool,
}

/// The element types `host gen` knows, by name.
pub fn elem_by_name(name: &str) -> Option<ElemType> {
    [ElemType::of::<f32>(), ElemType::of::<f64>(), ElemType::of::<u8>(), ElemType::of::<u32>(), ElemType::of::<i32>(), ElemType::of::<kernel_math::Stereo>()]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
}

pub fn run(a: &GenArgs) -> Result<bool> {
    let Some(elem) = elem_by_name(&a.elem) else { bail!("--type {:?}: not one of f32, f64, u8, u32, i32, stereo", a.elem) };
    if !a.allow_partial && !a.total.is_multiple_of(elem.size() as u64) {
        bail!("--total {} bytes is not a whole number of {elem} ({} bytes each); --allow-partial writes it anyway", a.total, elem.size());
    }
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) if p.as_os_str() != "-" => Box::new(std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?),
        _ => Box::new(crate::common::stdout_file()?),
    };
    // Blocks generated on every core while the previous block is written:
    // two buffers go round between the generating thread and this one.
    const BLOCK: usize = 16 << 20;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let (total, seed) = (a.total, a.seed);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..2 {
        let _ = empty_tx.send(vec![0u8; BLOCK]);
    }
    let generator = std::thread::spawn(move || {
        let mut at = 0u64;
        while at < total {
            let Ok(mut buf) = empty_rx.recv() else { return };
            let n = (total - at).min(BLOCK as u64) as usize;
            let piece = n.div_ceil(threads).next_multiple_of(4);
            std::thread::scope(|s| {
                for (k, part) in buf[..n].chunks_mut(piece).enumerate() {
                    s.spawn(move || pc_pipeline::exec::generated_bytes(elem, seed, at + (k * piece) as u64, part));
                }
            });
            if full_tx.send((buf, n)).is_err() {
                return;
            }
            at += n as u64;
        }
    });
    for (buf, n) in full_rx {
        match out.write_all(&buf[..n]) {
            Ok(()) => {}
            // The reader went away (`| head`): not an error of ours.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(true),
            Err(e) => return Err(e).context("writing the stream"),
        }
        let _ = empty_tx.send(buf);
    }
    let _ = generator.join();
    out.flush().context("writing the stream")?;
    Ok(true)
}
