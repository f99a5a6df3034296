//! How chunks are spread over GPUs: contiguous ranges in order, as even as
//! possible, at most one part per chunk. Pure, so it is tested without a GPU.
use std::ops::Range;

/// `chunks` split into at most `gpus` contiguous, non-empty ranges covering
/// `0..chunks` in order; their sizes differ by at most one.
pub fn split_chunks(chunks: usize, gpus: usize) -> Vec<Range<usize>> {
    let n = gpus.min(chunks);
    (0..n).map(|g| (g * chunks / n)..((g + 1) * chunks / n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_in_order() {
        for chunks in 0..40 {
            for gpus in 1..9 {
                let r = split_chunks(chunks, gpus);
                assert_eq!(r.len(), gpus.min(chunks));
                assert_eq!(r.iter().map(|x| x.len()).sum::<usize>(), chunks);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                assert!(r.iter().all(|x| !x.is_empty()));
                let (lo, hi) = (r.iter().map(|x| x.len()).min(), r.iter().map(|x| x.len()).max());
                assert!(hi.unwrap_or(0) - lo.unwrap_or(0) <= 1);
            }
        }
    }
}
