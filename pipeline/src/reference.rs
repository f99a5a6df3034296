//! The CPU reference of a pipeline, chunk by chunk, from each stage's own
//! reference, and verification that fails closed: a chunk not checked, a
//! checker that panics or a missing result is a failure, never a pass.
use crate::elem::HostChunk;
use crate::spec::PipelineSpec;
use crate::stage::{ChunkInfo, Kind, Sink};
use kernel_math::Reduction;
use std::ops::Range;

/// What reaches the sink for chunk `c`: the source's values run through
/// every map stage's reference. `input` is the whole host input (h2d).
pub fn expected_chunk(spec: &PipelineSpec, c: usize, input: Option<&[u8]>) -> Result<HostChunk, String> {
    let size = spec.input_type().map_err(|e| e.to_string())?.size();
    let host_at = |r: Range<u64>| -> Result<&[u8], String> {
        let bytes = input.ok_or("no host input")?;
        let (a, b) = (r.start as usize * size, r.end as usize * size);
        bytes.get(a..b).ok_or_else(|| format!("host input has {} bytes, chunk {c} needs {a}..{b}", bytes.len()))
    };
    expected_chunk_from(spec, c, spec.chunk_range(c), &host_at)
}

/// [`expected_chunk`] for chunk `c` over the global element range `range`,
/// with the host input (h2d sources) given by `host_at`: the bytes of the
/// input elements of a global range. With halo stages the range asked for
/// starts up to [`PipelineSpec::halo`] elements before the chunk.
///
/// Halo stages are computed as over the whole stream: the source's values
/// are computed from `H` elements before the chunk on (`H` the sum of the
/// halos, from 0 near the start), each map stage runs over all of them,
/// and a halo stage of halo `h` takes the first `h` values as its history
/// (zeros when the values start at the stream's start, which then keeps
/// them all as input), so the window shrinks by `h`. The result is trimmed
/// to the chunk.
pub fn expected_chunk_from<'i>(
    spec: &PipelineSpec,
    c: usize,
    range: Range<u64>,
    host_at: &dyn Fn(Range<u64>) -> Result<&'i [u8], String>,
) -> Result<HostChunk, String> {
    let types = spec.ring_types().map_err(|e| e.to_string())?;
    let Kind::Source(source) = spec.stages[0].kind() else { return Err("the first stage is not a source".into()) };
    // `first`: the global index of values[0].
    let mut first = range.start.saturating_sub(spec.halo());
    let extended = first..range.end;
    let host = if source.reads_host() { Some(host_at(extended.clone())?) } else { None };
    let chunk = ChunkInfo { index: c, range: extended, seed: spec.seed };
    let mut values = source.reference(&chunk, types[0], host)?;
    let maps = &spec.stages[1..spec.stages.len() - 1];
    for (stage, &elem) in maps.iter().zip(&types) {
        let Kind::Map(m) = stage.kind() else { return Err(format!("{} is not a map stage", stage.name())) };
        let h = m.halo();
        let (history, input) = if h == 0 || first == 0 {
            (HostChunk::zeroed(elem, h), values)
        } else if values.len() >= h {
            first += h as u64;
            (values.sub(0..h), values.sub(h..values.len()))
        } else {
            return Err(format!("{}: {} values for a halo of {h}", stage.name(), values.len()));
        };
        values = m.reference(&history, &input).map_err(|e| format!("{}: {e}", stage.name()))?;
    }
    match range.start.checked_sub(first).map(|s| s as usize) {
        Some(0) => Ok(values),
        Some(skip) if skip <= values.len() => Ok(values.sub(skip..values.len())),
        _ => Err(format!("the reference of chunk {c} does not cover its range {range:?}")),
    }
}

/// The outcome of checking every chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verification {
    /// Chunks the pipeline has.
    pub chunks_expected: usize,
    /// Chunks whose check ran to the end.
    pub chunks_checked: usize,
    pub chunks_wrong: usize,
    /// Elements that differ (host output) or records that differ (reduce).
    pub items_wrong: u64,
    /// The first wrong chunk and what was wrong, in words.
    pub first_wrong: Option<(usize, String)>,
}

impl Verification {
    /// Every chunk checked, none wrong, and there was something to check.
    pub fn passed(&self) -> bool {
        self.chunks_wrong == 0 && self.chunks_expected > 0 && self.chunks_checked == self.chunks_expected
    }

    /// One line: PASS or FAIL and why.
    pub fn summary(&self) -> String {
        if self.passed() {
            return format!("PASS: all {} chunks match the CPU reference", self.chunks_checked);
        }
        match &self.first_wrong {
            Some((c, what)) => format!("FAIL: {} of {} chunks wrong; first: chunk {c}: {what}", self.chunks_wrong, self.chunks_expected),
            None if self.chunks_expected == 0 => "FAIL: nothing to check (no chunks)".to_string(),
            None => format!("FAIL: only {} of {} chunks were checked", self.chunks_checked, self.chunks_expected),
        }
    }

    pub(crate) fn wrong(&mut self, c: usize, items: u64, what: String) {
        self.chunks_wrong += 1;
        self.items_wrong += items;
        if self.first_wrong.as_ref().is_none_or(|(f, _)| c < *f) {
            self.first_wrong = Some((c, what));
        }
    }

    fn merge(mut self, b: Verification) -> Verification {
        self.chunks_checked += b.chunks_checked;
        self.chunks_wrong += b.chunks_wrong;
        self.items_wrong += b.items_wrong;
        self.first_wrong = match (self.first_wrong, b.first_wrong) {
            (Some(x), Some(y)) => Some(if x.0 <= y.0 { x } else { y }),
            (x, y) => x.or(y),
        };
        self
    }
}

/// Checks every chunk's result against [`expected_chunk`], on all CPU
/// cores. `output` is the host output (d2h), `reductions` one record per
/// chunk (reduce).
pub fn verify(spec: &PipelineSpec, input: Option<&[u8]>, output: Option<&[u8]>, reductions: &[Reduction]) -> Verification {
    let chunks = spec.chunks();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.max(1));
    let per = chunks.div_ceil(threads.max(1));
    let parts: Vec<Verification> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per)..((t + 1) * per).min(chunks);
                let handle = s.spawn({
                    let range = range.clone();
                    move || {
                        let mut v = Verification::default();
                        for c in range {
                            check_chunk(spec, c, input, output, reductions, &mut v);
                        }
                        v
                    }
                });
                (range, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(range, h)| {
                h.join().unwrap_or_else(|panic| {
                    // Fail closed: a checker that panicked checked nothing.
                    let why = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    let mut v = Verification::default();
                    if let Some(first) = range.clone().next() {
                        v.wrong(first, 0, format!("the CPU reference panicked for chunks {range:?}: {why}"));
                        v.chunks_wrong = range.len();
                    }
                    v
                })
            })
            .collect()
    });
    let mut v = parts.into_iter().fold(Verification::default(), Verification::merge);
    v.chunks_expected = chunks;
    check_extras(spec, output, reductions, &mut v);
    v
}

/// Fails the run when more came back than the pipeline has: a record past
/// its last chunk (or any record from a sink that writes the host), or host
/// output past its total. Either means the run wrote where it should not,
/// or the caller compared the wrong buffers; the per-chunk checks only
/// look at what each chunk owns, so they cannot see it.
fn check_extras(spec: &PipelineSpec, output: Option<&[u8]>, reductions: &[Reduction], v: &mut Verification) {
    let chunks = spec.chunks();
    let last = chunks.saturating_sub(1);
    let Some(Kind::Sink(sink)) = spec.stages.last().map(|s| s.kind()) else { return };
    let records = if sink.writes_host() { 0 } else { chunks };
    if reductions.len() > records {
        let extra = reductions.len() - records;
        v.wrong(last, extra as u64, format!("{} reduction records came back, {records} expected ({extra} extra)", reductions.len()));
    }
    let size = match spec.ring_types() {
        Ok(types) => types.last().map_or(1, |t| t.size()) as u64,
        Err(_) => return,
    };
    let want = spec.total_elements.saturating_mul(size);
    if let Some(out) = output.filter(|o| o.len() as u64 > want) {
        let extra = (out.len() as u64 - want).div_ceil(size);
        v.wrong(last, extra, format!("{} bytes of host output for {} elements ({extra} elements past the total)", out.len(), spec.total_elements));
    }
}

fn check_chunk(spec: &PipelineSpec, c: usize, input: Option<&[u8]>, output: Option<&[u8]>, reductions: &[Reduction], v: &mut Verification) {
    let expected = match expected_chunk(spec, c, input) {
        Ok(e) => e,
        Err(why) => return v.wrong(c, 0, format!("no CPU reference: {why}")),
    };
    let Some(Kind::Sink(sink)) = spec.stages.last().map(|s| s.kind()) else { return v.wrong(c, 0, "the last stage is not a sink".into()) };
    let got = if sink.writes_host() {
        let size = expected.elem().size();
        let range = spec.chunk_range(c);
        let bytes = output.and_then(|o| o.get(range.start as usize * size..range.end as usize * size));
        match bytes {
            Some(b) => Sink::Host(b),
            None => return v.wrong(c, expected.len() as u64, "no host output for this chunk".into()),
        }
    } else {
        Sink::Record(reductions.get(c))
    };
    if let Some((items, what)) = sink.check(&expected, got) {
        v.wrong(c, items, what);
    }
    v.chunks_checked += 1;
}
