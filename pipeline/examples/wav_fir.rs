//! A real file, end to end: read a WAV file, low-pass it with the `fir`
//! stage on the GPU (`h2d,fir,d2h`, one pass per channel), write the result
//! as a 32-bit float WAV; run the same filter on the CPU on every core, and
//! check the two agree bit for bit.
//!
//! Run: `cargo run --release -p pc-pipeline --example wav_fir -- IN.wav
//! OUT.wav [--taps FILE] [--device N] [--cpu-out CPU.wav] [--runs N]
//! [--make-test-wav SECONDS]`. `--make-test-wav` first writes IN.wav, so
//! the example needs no download. Besides OUT.wav it writes
//! `OUT.wav.taps.txt`, the taps used, so that peers
//! (`bench/peers/fir_peers.py`) filter with exactly the same ones.
//!
//! Exit status: 0 when GPU and CPU agree on every sample, 1 when they do
//! not or on any error (one line on stderr), 2 for a command line that does
//! not parse.
use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use hound::{SampleFormat, WavSpec};
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, Workload, builtin, fir};
use pc_runtime::gpu::Gpu;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Low-pass a WAV file on the GPU and check it against the CPU bit for bit.
#[derive(Parser)]
struct Args {
    /// WAV to read: PCM of 8, 16, 24 or 32-bit integers or 32-bit floats, any channels.
    input: PathBuf,
    /// WAV to write: the GPU's output as 32-bit floats, same rate and channels.
    output: PathBuf,
    /// Taps, one text file (numbers separated by whitespace or commas, `#`
    /// comments); default: the 63-tap low-pass at 0.1 of the sample rate.
    #[arg(long)]
    taps: Option<PathBuf>,
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Also write the CPU's output here, the same way.
    #[arg(long, value_name = "CPU.wav")]
    cpu_out: Option<PathBuf>,
    /// Timed runs of each channel's pipeline, back to back, after one
    /// untimed warm-up run; times are per run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// First write IN.wav: SECONDS of a 48 kHz stereo 16-bit test signal.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    make_test_wav: Option<f64>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<bool> {
    if let Some(seconds) = args.make_test_wav {
        ensure!(seconds > 0.0 && seconds <= 3600.0, "--make-test-wav takes 0 < SECONDS <= 3600, got {seconds}");
        write_test_wav(&args.input, seconds)?;
        println!("wrote {}: {seconds} s of 48 kHz stereo 16-bit PCM (test signal)", args.input.display());
    }
    let (spec, channels) = read_wav(&args.input)?;
    let taps = match &args.taps {
        Some(path) => fir::parse_taps(&std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("{}", path.display()))?,
        None => fir::default_taps(),
    };
    let samples: usize = channels.iter().map(Vec::len).sum();
    println!(
        "{}: {} channel(s) x {} samples at {} Hz ({}-bit {:?}), {} taps",
        args.input.display(),
        spec.channels,
        channels[0].len(),
        spec.sample_rate,
        spec.bits_per_sample,
        spec.sample_format,
        taps.len()
    );

    let gpu = Gpu::open(args.device)?;
    let (gpu_out, timing) = fir_gpu(&gpu, &taps, &channels, args.runs)?;
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let start = Instant::now();
    let cpu_out = fir_cpu(&taps, &channels, threads);
    let cpu_s = start.elapsed().as_secs_f64();

    let rate = |what: &str, s: f64| {
        println!("{what:<62} {:>9.3} ms {:>8.1} Msamples/s {:>7.2} GB/s", s * 1e3, samples as f64 / s / 1e6, samples as f64 * 4.0 / s / 1e9)
    };
    println!("{samples} samples in all; throughput of f32 input, all channels together:");
    rate(&format!("GPU {} (h2d+fir+d2h, CUDA events, per run)", gpu.info().name), timing.gpu_s);
    rate("GPU wall (host clock, enqueue to synchronize, per run)", timing.wall_s);
    rate(&format!("CPU ({threads} threads, kernel_math::fir, host clock)"), cpu_s);
    println!("(GPU: h2d from and d2h into pinned host memory; the pipelines' setup, staging the input there, took {:.1} ms)", timing.setup_s * 1e3);

    // NaN bits may differ (the GPU writes a canonical NaN): any NaN matches a NaN.
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    let differ: usize = gpu_out.iter().zip(&cpu_out).map(|(g, c)| g.iter().zip(c).filter(|&(&g, &c)| !same(g, c)).count()).sum();
    write_f32_wav(&args.output, &spec, &gpu_out)?;
    let mut taps_path = args.output.clone().into_os_string();
    taps_path.push(".taps.txt");
    let taps_path = PathBuf::from(taps_path);
    // `{:e}` prints each f32 in the shortest form that parses back to the same bits.
    let text: String = taps.iter().map(|t| format!("{t:e}\n")).collect();
    std::fs::write(&taps_path, format!("# {} taps of wav_fir's filter, y[i] = sum_j taps[j] x[i-j]\n{text}", taps.len()))
        .with_context(|| format!("writing {}", taps_path.display()))?;
    println!("wrote {} (GPU output, 32-bit float) and {}", args.output.display(), taps_path.display());
    if let Some(path) = &args.cpu_out {
        write_f32_wav(path, &spec, &cpu_out)?;
        println!("wrote {} (CPU output, 32-bit float)", path.display());
    }
    if differ == 0 {
        println!("GPU vs CPU: PASS: all {samples} samples identical bit for bit");
    } else {
        println!("GPU vs CPU: FAIL: {differ} of {samples} samples differ");
    }
    Ok(differ == 0)
}

/// Sums over channels.
struct Timing {
    /// The pipeline's GPU time (CUDA events) per run.
    gpu_s: f64,
    /// Host time from the first enqueue to the final synchronize, per run.
    wall_s: f64,
    /// `Pipeline::new`: allocation, the input copied into pinned memory.
    setup_s: f64,
}

/// Each channel, as one stream, through `h2d,fir,d2h`: the halo stage keeps
/// the T-1 samples before each chunk, so the output is the FIR over the
/// whole channel. Each pipeline is also checked chunk by chunk against the
/// CPU reference ([`Pipeline::verify`]).
fn fir_gpu(gpu: &Gpu, taps: &[f32], channels: &[Vec<f32>], runs: u32) -> Result<(Vec<Vec<f32>>, Timing)> {
    let (mut out, mut t) = (Vec::new(), Timing { gpu_s: 0.0, wall_s: 0.0, setup_s: 0.0 });
    for (c, x) in channels.iter().enumerate() {
        let setup = Instant::now();
        let spec = PipelineSpec::new(Workload::Stream)
            .stages(vec![builtin::h2d(), builtin::fir(taps.to_vec())?, builtin::d2h()])
            .slots(3)
            .chunk_elements(1 << 20)
            .total_elements(x.len() as u64);
        let mut pipeline = Pipeline::new(&[gpu], spec, HostInput::from_slice(x))?;
        t.setup_s += setup.elapsed().as_secs_f64();
        // The first run loads the kernel and warms the caches: not timed.
        pipeline.run(Launch::Streams, 1, false)?;
        let report = pipeline.run(Launch::Streams, runs as usize, false)?;
        t.gpu_s += report.gpu_ms as f64 * 1e-3 / runs as f64;
        t.wall_s += report.wall_ms * 1e-3 / runs as f64;
        out.push(pipeline.output::<f32>().context("the pipeline wrote no f32 output")?.to_vec());
        let check = pipeline.verify(&report);
        ensure!(check.passed(), "channel {c}: pipeline verification: {}", check.summary());
    }
    Ok((out, t))
}

/// The same filter on every core: each channel cut into segments, each
/// segment given the T-1 samples before it (zeros before the start), so
/// every output is computed exactly as over the whole channel.
fn fir_cpu(taps: &[f32], channels: &[Vec<f32>], threads: usize) -> Vec<Vec<f32>> {
    let halo = taps.len() - 1;
    let mut out: Vec<Vec<f32>> = channels.iter().map(|x| vec![0.0; x.len()]).collect();
    let per_channel = threads.div_ceil(channels.len());
    std::thread::scope(|s| {
        for (x, y) in channels.iter().zip(&mut out) {
            let segment = x.len().div_ceil(per_channel).max(1);
            for (k, y) in y.chunks_mut(segment).enumerate() {
                s.spawn(move || {
                    let start = k * segment;
                    let mut history = vec![0.0; halo];
                    let have = start.min(halo);
                    history[halo - have..].copy_from_slice(&x[start - have..start]);
                    kernel_math::fir(taps, &history, &x[start..start + y.len()], y);
                });
            }
        }
    });
    out
}

/// The samples as f32, one Vec per channel. Integers of `b` bits are
/// divided by 2^(b-1), exact, into [-1, 1) (32-bit ones first lose their 8
/// low bits: f32 holds 24); floats are taken as they are, and must be finite.
fn read_wav(path: &Path) -> Result<(WavSpec, Vec<Vec<f32>>)> {
    let mut reader = hound::WavReader::open(path).with_context(|| format!("reading {}", path.display()))?;
    let spec = reader.spec();
    let mut interleaved: Vec<f32> = match spec.sample_format {
        SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
        SampleFormat::Int => {
            ensure!((8..=32).contains(&spec.bits_per_sample), "{}: {}-bit integer samples are not supported", path.display(), spec.bits_per_sample);
            let shift = spec.bits_per_sample.saturating_sub(24);
            let scale = (1u32 << (spec.bits_per_sample - 1 - shift)) as f32;
            reader.samples::<i32>().map(|s| s.map(|s| (s >> shift) as f32 / scale)).collect()
        }
    }
    .with_context(|| format!("reading {}", path.display()))?;
    let n = spec.channels as usize;
    ensure!(n > 0 && interleaved.len() >= n, "{}: no samples", path.display());
    // A last frame cut short (a truncated file) is dropped: every channel the same length.
    interleaved.truncate(interleaved.len() / n * n);
    if let Some(i) = interleaved.iter().position(|s| !s.is_finite()) {
        bail!("{}: sample {} of channel {} is {}; only finite samples can be compared bit for bit", path.display(), i / n, i % n, interleaved[i]);
    }
    // De-interleave: frame f holds one sample of each channel.
    let channels = (0..n).map(|c| interleaved.iter().skip(c).step_by(n).copied().collect()).collect();
    Ok((spec, channels))
}

fn write_f32_wav(path: &Path, like: &WavSpec, channels: &[Vec<f32>]) -> Result<()> {
    let spec = WavSpec { channels: like.channels, sample_rate: like.sample_rate, bits_per_sample: 32, sample_format: SampleFormat::Float };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("writing {}", path.display()))?;
    for f in 0..channels[0].len() {
        for ch in channels {
            w.write_sample(ch[f]).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    w.finalize().with_context(|| format!("writing {}", path.display()))
}

/// A deterministic test signal, 48 kHz stereo 16-bit: left a chirp from 20
/// Hz to 20 kHz, right a 440 Hz tone; both with a 15 kHz tone (above the
/// default low-pass's 4.8 kHz cutoff: the filter removes it) and seeded
/// noise.
fn write_test_wav(path: &Path, seconds: f64) -> Result<()> {
    use std::f64::consts::TAU;
    let rate = 48_000u32;
    let spec = WavSpec { channels: 2, sample_rate: rate, bits_per_sample: 16, sample_format: SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("writing {}", path.display()))?;
    let frames = (seconds * rate as f64).round() as u64;
    let (f0, f1) = (20.0, 20_000.0);
    for i in 0..frames {
        let t = i as f64 / rate as f64;
        // Noise in [-1, 1) from the kernels' hash: the same on every machine.
        let noise = |seed: u32| kernel_math::hash32(i as u32 ^ kernel_math::hash32(seed)) as f64 / 2f64.powi(31) - 1.0;
        let high = 0.2 * (TAU * 15_000.0 * t).sin();
        let chirp = 0.4 * (TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * seconds))).sin();
        let left = chirp + high + 0.05 * noise(1);
        let right = 0.4 * (TAU * 440.0 * t).sin() + high + 0.05 * noise(2);
        for v in [left, right] {
            w.write_sample((v * 32767.0).round().clamp(-32768.0, 32767.0) as i16).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    w.finalize().with_context(|| format!("writing {}", path.display()))
}
