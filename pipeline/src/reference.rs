//! The CPU reference of a pipeline, chunk by chunk, from the same functions
//! the kernels run.
use crate::spec::{PipelineSpec, Stage};
use kernel_math::{Reduction, produce};

/// What the sink of chunk `c` must hold: the transformed values (d2h) or
/// their reduction (reduce). `input` is the whole host input (h2d sources).
pub fn expected_chunk(spec: &PipelineSpec, c: usize, input: Option<&[f32]>) -> (Vec<f32>, Option<Reduction>) {
    let range = spec.chunk_range(c);
    let mut values: Vec<f32> = match spec.stages[0] {
        Stage::H2d => input.map(|i| i[range.start as usize..range.end as usize].to_vec()).unwrap_or_default(),
        _ => range.clone().map(|i| produce(i, spec.seed)).collect(),
    };
    let mut scratch = vec![0.0f32; values.len()];
    for stage in &spec.stages[1..spec.stages.len() - 1] {
        if let Stage::Map(k) = stage {
            (k.reference)(&values, &mut scratch);
            std::mem::swap(&mut values, &mut scratch);
        }
    }
    if spec.reduces() {
        let mut r = Reduction::EMPTY;
        values.iter().for_each(|&v| r.add(v));
        (Vec::new(), Some(r))
    } else {
        (values, None)
    }
}

/// The outcome of checking every chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verification {
    pub chunks_checked: usize,
    pub chunks_wrong: usize,
    /// Elements that differ (d2h sinks) or reduction records that differ (reduce).
    pub items_wrong: u64,
    /// The first wrong chunk and what was wrong, in words.
    pub first_wrong: Option<(usize, String)>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.chunks_wrong == 0 && self.chunks_checked > 0
    }
}

/// Checks every chunk's result against [`expected_chunk`], on all CPU cores.
/// `output` is the host output (d2h), `reductions` one record per chunk (reduce).
pub fn verify(spec: &PipelineSpec, input: Option<&[f32]>, output: Option<&[f32]>, reductions: &[Reduction]) -> Verification {
    let chunks = spec.chunks();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.max(1));
    let per = chunks.div_ceil(threads.max(1));
    let parts: Vec<Verification> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut v = Verification::default();
                    for c in (t * per)..((t + 1) * per).min(chunks) {
                        check_chunk(spec, c, input, output, reductions, &mut v);
                    }
                    v
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    parts.into_iter().fold(Verification::default(), |mut a, b| {
        a.chunks_checked += b.chunks_checked;
        a.chunks_wrong += b.chunks_wrong;
        a.items_wrong += b.items_wrong;
        a.first_wrong = match (a.first_wrong, b.first_wrong) {
            (Some(x), Some(y)) => Some(if x.0 <= y.0 { x } else { y }),
            (x, y) => x.or(y),
        };
        a
    })
}

fn check_chunk(spec: &PipelineSpec, c: usize, input: Option<&[f32]>, output: Option<&[f32]>, reductions: &[Reduction], v: &mut Verification) {
    v.chunks_checked += 1;
    let (want, want_r) = expected_chunk(spec, c, input);
    let problem = if let Some(want_r) = want_r {
        match reductions.get(c) {
            Some(got) if *got == want_r => None,
            Some(got) => Some((
                1,
                format!(
                    "reduction differs: got sum {} min {} max {} count {}, want sum {} min {} max {} count {}",
                    got.sum(),
                    got.min(),
                    got.max(),
                    got.count(),
                    want_r.sum(),
                    want_r.min(),
                    want_r.max(),
                    want_r.count()
                ),
            )),
            None => Some((1, "no reduction came back".to_string())),
        }
    } else {
        let range = spec.chunk_range(c);
        let got = output.map(|o| &o[range.start as usize..range.end as usize]).unwrap_or(&[]);
        let wrong: Vec<usize> = (0..want.len()).filter(|&i| got.get(i).map(|g| g.to_bits()) != Some(want[i].to_bits())).collect();
        match wrong.first() {
            None => None,
            Some(&i) => Some((
                wrong.len() as u64,
                format!(
                    "{} of {} elements differ; first [{}] = {}, want {}",
                    wrong.len(),
                    want.len(),
                    range.start + i as u64,
                    got.get(i).map_or("missing".to_string(), |g| g.to_string()),
                    want[i]
                ),
            )),
        }
    };
    if let Some((n, what)) = problem {
        v.chunks_wrong += 1;
        v.items_wrong += n;
        if v.first_wrong.is_none() {
            v.first_wrong = Some((c, what));
        }
    }
}
