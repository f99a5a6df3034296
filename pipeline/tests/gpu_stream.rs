//! Streams on a GPU: sources and sinks from Rust (iterators, channels,
//! readers, callbacks), partial last chunks, truncation, drop-oldest.
//! Every output element is compared with a value computed here from the
//! stage's definition (`2x`, `u8 / 255`), not with the pipeline's own
//! verification alone.
mod common;

use common::{Rng, seed_from_env};
use pc_pipeline::stream::{self, Backpressure, ReadSource, StreamOptions};
use pc_pipeline::{PipelineError, PipelineSpec, StageRegistry, Workload};
use pc_runtime::gpu::Gpu;
use std::sync::{Arc, Mutex};

fn spec(list: &str, k: usize, chunk: u64) -> PipelineSpec {
    PipelineSpec::new(Workload::Stream).stages(StageRegistry::builtin().parse(list).unwrap()).slots(k).chunk_elements(chunk)
}

/// A sink that keeps everything, for the test to read afterwards.
fn collect<T: kernel_math::Element>() -> (Arc<Mutex<Vec<T>>>, impl pc_pipeline::stream::StreamSink) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    (got, stream::to_fn(move |v: &[T]| g.lock().unwrap().extend_from_slice(v)))
}

#[test]
#[ignore = "needs a CUDA device"]
fn iterator_to_callback_every_k_and_chunk() {
    let gpu = Gpu::open(0).unwrap();
    let seed = seed_from_env();
    eprintln!("seed {seed} (replay with PC_TEST_SEED={seed})");
    let mut rng = Rng(seed);
    for k in 1..=4 {
        for chunk in [1u64, 7, 4096, 65536 + 3] {
            let n = rng.size(300_000) as usize + chunk as usize; // several chunks, usually a partial last one
            let input: Vec<f32> = (0..n).map(|_| (rng.next() >> 40) as f32 * 0.25 - 1000.0).collect();
            // Vectors of random lengths: the source regroups them into chunks.
            let mut pieces = Vec::new();
            let mut at = 0;
            while at < n {
                let len = (rng.size(100_000) as usize).min(n - at);
                pieces.push(input[at..at + len].to_vec());
                at += len;
            }
            let (got, sink) = collect::<f32>();
            let opts = StreamOptions { verify: true, ..Default::default() };
            let r = stream::run(&gpu, &spec("h2d,consumer,d2h", k, chunk), stream::from_iter(pieces), sink, opts).unwrap();
            let label = format!("K={k} chunk={chunk} n={n}");
            assert_eq!(r.chunks, (n as u64).div_ceil(chunk), "{label}");
            assert_eq!(r.bytes_in, n as u64 * 4, "{label}");
            assert!(r.verification.as_ref().is_some_and(|v| v.passed()), "{label}: {:?}", r.verification.map(|v| v.summary()));
            let got = got.lock().unwrap();
            assert_eq!(got.len(), n, "{label}");
            if let Some(i) = (0..n).find(|&i| got[i].to_bits() != (input[i] * 2.0).to_bits()) {
                panic!("{label}: element {i} = {}, want {}", got[i], input[i] * 2.0);
            }
            assert_eq!(r.latency.chunks, r.chunks, "{label}");
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn channel_of_u8_to_channel_of_f32() {
    let gpu = Gpu::open(0).unwrap();
    let mut rng = Rng(seed_from_env());
    let n = 1_000_003usize;
    let input: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let feed = {
        let input = input.clone();
        std::thread::spawn(move || {
            for piece in input.chunks(77_777) {
                tx.send(piece.to_vec()).unwrap();
            }
        })
    };
    let (otx, orx) = std::sync::mpsc::sync_channel::<Vec<f32>>(1 << 20);
    let r = stream::run(&gpu, &spec("h2d,u8-to-f32,d2h", 3, 65536), stream::from_channel(rx), stream::to_channel(otx), StreamOptions::default()).unwrap();
    feed.join().unwrap();
    let got: Vec<f32> = orx.try_iter().flatten().collect();
    assert_eq!(r.chunks, (n as u64).div_ceil(65536));
    assert_eq!(got.len(), n);
    for i in 0..n {
        assert_eq!(got[i].to_bits(), (input[i] as f32 / 255.0).to_bits(), "element {i}");
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_stream_that_ends_mid_element_is_an_error_naming_the_bytes() {
    let gpu = Gpu::open(0).unwrap();
    let bytes = vec![0u8; 4 * 10_000 + 3];
    let (got, sink) = collect::<f32>();
    let e = stream::run(&gpu, &spec("h2d,consumer,d2h", 2, 4096), ReadSource(std::io::Cursor::new(bytes)), sink, StreamOptions::default()).unwrap_err();
    assert!(matches!(e, PipelineError::StreamEndsMidElement { bytes: 40003, size: 4, partial: 3 }), "{e}");
    assert!(!e.to_string().contains('\n'));
    // The whole elements before the cut went through.
    assert_eq!(got.lock().unwrap().len(), 10_000);
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_type_mismatch_is_refused() {
    let gpu = Gpu::open(0).unwrap();
    let (_, sink) = collect::<f32>();
    let e = stream::run(&gpu, &spec("h2d,consumer,d2h", 2, 4096), stream::from_iter(vec![vec![1u32]]), sink, StreamOptions::default()).unwrap_err();
    assert!(e.to_string().contains("holds u32"), "{e}");
}

/// A fast source and a slow sink under drop-oldest: chunks are dropped and
/// counted; what arrives is, chunk for chunk, the right output of input
/// chunks in increasing order, and delivered + dropped = all chunks.
#[test]
#[ignore = "needs a CUDA device"]
fn drop_oldest_counts_what_it_drops() {
    let gpu = Gpu::open(0).unwrap();
    let chunk = 1024usize;
    let chunks = 400usize;
    // Chunk i holds i * chunk + e: each output chunk names its input chunk.
    let pieces: Vec<Vec<f32>> = (0..chunks).map(|i| (0..chunk).map(|e| (i * chunk + e) as f32).collect()).collect();
    let seen = Arc::new(Mutex::new(Vec::<Vec<f32>>::new()));
    let s = seen.clone();
    let sink = stream::to_fn(move |v: &[f32]| {
        std::thread::sleep(std::time::Duration::from_millis(2));
        s.lock().unwrap().push(v.to_vec());
    });
    let opts = StreamOptions { backpressure: Backpressure::DropOldest, host_slots: Some(3), ..Default::default() };
    let r = stream::run(&gpu, &spec("h2d,consumer,d2h", 2, chunk as u64), stream::from_iter(pieces), sink, opts).unwrap();
    let seen = seen.lock().unwrap();
    assert!(r.dropped_chunks > 0, "nothing dropped: {r:?}");
    assert_eq!(r.chunks + r.dropped_chunks, chunks as u64, "{r:?}");
    assert_eq!(r.dropped_bytes, r.dropped_chunks * chunk as u64 * 4);
    assert_eq!(seen.len() as u64, r.chunks);
    let mut last = None;
    for (j, out) in seen.iter().enumerate() {
        let i = (out[0] / 2.0) as usize / chunk;
        assert!(last.is_none_or(|l| i > l), "output chunk {j} is input chunk {i}, not after {last:?}");
        for (e, x) in out.iter().enumerate() {
            assert_eq!(*x, ((i * chunk + e) as f32) * 2.0, "output chunk {j} (input {i}) element {e}");
        }
        last = Some(i);
    }
}

/// The FIR's definition over the whole stream, written here: zeros before
/// the start, taps in order.
fn fir_oracle(taps: &[f32], x: &[f32]) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let mut acc = 0.0f32;
            for (j, t) in taps.iter().enumerate() {
                let v = if i >= j { x[i - j] } else { 0.0 };
                acc += t * v;
            }
            acc
        })
        .collect()
}

/// A halo stage in a stream equals the whole-stream computation at every
/// chunk boundary: chunk sizes below, at and above the tap count, every K.
#[test]
#[ignore = "needs a CUDA device"]
fn fir_in_a_stream_equals_the_whole_stream_filter() {
    let gpu = Gpu::open(0).unwrap();
    let seed = seed_from_env();
    eprintln!("seed {seed} (replay with PC_TEST_SEED={seed})");
    let mut rng = Rng(seed);
    let taps = pc_pipeline::fir::default_taps();
    for k in 1..=4 {
        for chunk in [7u64, 62, 63, 64, 4099] {
            let n = 20_000 + rng.below(5000) as usize;
            let input: Vec<f32> = (0..n).map(|_| (rng.next() >> 41) as f32 / 8388608.0 - 1.0).collect();
            let want = fir_oracle(&taps, &input);
            let (got, sink) = collect::<f32>();
            let opts = StreamOptions { verify: true, ..Default::default() };
            let pieces: Vec<Vec<f32>> = input.chunks(1000 + rng.below(3000) as usize).map(|p| p.to_vec()).collect();
            let r = stream::run(&gpu, &spec("h2d,fir,d2h", k, chunk), stream::from_iter(pieces), sink, opts).unwrap();
            let label = format!("fir K={k} chunk={chunk} n={n}");
            assert!(r.verification.as_ref().is_some_and(|v| v.passed()), "{label}: {:?}", r.verification.map(|v| v.summary()));
            let got = got.lock().unwrap();
            assert_eq!(got.len(), n, "{label}");
            if let Some(i) = (0..n).find(|&i| got[i].to_bits() != want[i].to_bits()) {
                panic!("{label}: element {i} = {}, want {}", got[i], want[i]);
            }
        }
    }
    // Two halo stages after a type change, u8 in: moving-average then fir.
    let n = 100_003usize;
    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    let x: Vec<f32> = bytes.iter().map(|&b| b as f32 / 255.0).collect();
    let avg: Vec<f32> = (0..n)
        .map(|i| {
            let at = |j: usize| if i >= j { x[i - j] } else { 0.0 };
            kernel_math::moving_average3(at(2), at(1), at(0))
        })
        .collect();
    let want = fir_oracle(&taps, &avg);
    let (got, sink) = collect::<f32>();
    let opts = StreamOptions { verify: true, ..Default::default() };
    let r = stream::run(&gpu, &spec("h2d,u8-to-f32,moving-average,fir,d2h", 3, 4099), ReadSource(std::io::Cursor::new(bytes)), sink, opts).unwrap();
    assert!(r.verification.as_ref().is_some_and(|v| v.passed()));
    let got = got.lock().unwrap();
    assert_eq!(got.len(), n);
    for i in 0..n {
        assert_eq!(got[i].to_bits(), want[i].to_bits(), "u8 -> moving-average -> fir: element {i}");
    }
}

/// A traced stream: every chunk's operations, in their order on the GPU
/// clock, and every chunk's read and latency spans on the rows after the
/// stages.
#[test]
#[ignore = "needs a CUDA device"]
fn a_traced_stream_has_every_chunk_and_its_latency() {
    let gpu = Gpu::open(0).unwrap();
    let (n, chunk) = (100_000usize, 4096u64);
    let input: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let (got, sink) = collect::<f32>();
    let opts = StreamOptions { trace: true, ..Default::default() };
    let r = stream::run(&gpu, &spec("h2d,consumer,d2h", 3, chunk), stream::from_iter(vec![input]), sink, opts).unwrap();
    assert_eq!(got.lock().unwrap().len(), n);
    let tl = r.timeline.expect("a timeline");
    let chunks = r.chunks as usize;
    assert_eq!(tl.stages, ["h2d", "consumer", "d2h", "read", "latency"]);
    assert_eq!(tl.gpu_rows, 3);
    assert_eq!(tl.spans.len(), chunks * 5);
    for c in 0..chunks {
        let span = |stage: usize| tl.spans.iter().find(|s| s.chunk == c && s.stage == stage).unwrap_or_else(|| panic!("chunk {c} stage {stage}"));
        let (h2d, consumer, d2h, read, latency) = (span(0), span(1), span(2), span(3), span(4));
        for s in [h2d, consumer, d2h, read, latency] {
            assert!(s.start_ms <= s.end_ms && s.start_ms >= 0.0, "{s:?}");
        }
        // On the GPU clock: each stage starts after the previous one ended.
        assert!(h2d.end_ms <= consumer.start_ms && consumer.end_ms <= d2h.start_ms, "chunk {c}: {h2d:?} {consumer:?} {d2h:?}");
        // On the host clock: the latency counts from the read's end.
        assert!(read.end_ms <= latency.start_ms, "chunk {c}: {read:?} {latency:?}");
        // The latency span (host clock) covers the GPU work, up to the
        // clocks' alignment (the origin event's wake-up): 1 ms is plenty.
        assert!(latency.start_ms <= h2d.start_ms + 1.0 && d2h.end_ms <= latency.end_ms + 1.0, "chunk {c}: {latency:?} {h2d:?} {d2h:?}");
    }
}

/// A source read at any offset whose reads finish out of order (each
/// sleeps a pseudo-random time): several chunks are read at once, and the
/// GPU still sees them, and the sink gets them, in stream order.
#[test]
#[ignore = "needs a CUDA device"]
fn chunks_read_out_of_order_reach_the_sink_in_order() {
    struct Jittery(Vec<u8>);
    impl stream::ReadAt for Jittery {
        fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
            let x = (at / 4096).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54;
            std::thread::sleep(std::time::Duration::from_micros(x));
            let a = (at as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - a);
            buf[..n].copy_from_slice(&self.0[a..a + n]);
            Ok(n)
        }
    }
    struct Positional(Arc<Jittery>);
    impl stream::StreamReader for Positional {
        fn fill(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("read through positional()"))
        }
        fn positional(&self) -> Option<Arc<dyn stream::ReadAt>> {
            Some(self.0.clone())
        }
    }
    let gpu = Gpu::open(0).unwrap();
    let n = 300_001usize;
    let input: Vec<f32> = (0..n).map(|i| i as f32 - 1000.0).collect();
    let bytes: Vec<u8> = input.iter().flat_map(|x| x.to_le_bytes()).collect();
    for (k, readers) in [(1, 2), (2, 5), (3, 16)] {
        let (got, sink) = collect::<f32>();
        let opts = StreamOptions { verify: true, readers: Some(readers), ..Default::default() };
        let r = stream::run(&gpu, &spec("h2d,consumer,d2h", k, 4096), Positional(Arc::new(Jittery(bytes.clone()))), sink, opts).unwrap();
        assert!(r.verification.as_ref().is_some_and(|v| v.passed()), "K={k} readers={readers}");
        assert_eq!(r.chunks, (n as u64).div_ceil(4096));
        let got = got.lock().unwrap();
        assert_eq!(got.len(), n);
        if let Some(i) = (0..n).find(|&i| got[i].to_bits() != (input[i] * 2.0).to_bits()) {
            panic!("K={k} readers={readers}: element {i} = {}, want {}", got[i], input[i] * 2.0);
        }
    }
}
