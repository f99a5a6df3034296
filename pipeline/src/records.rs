//! A reduce sink's per-chunk records on the GPU and their layout as 8-byte
//! words: the model's, so that every grain and the catalog's `reduce`
//! stage share one definition.
use crate::PipelineError;
use crate::stage::Setup;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use kernel_math::{AtomicReduction, Reduction};
use std::sync::Arc;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

fn cuda(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> PipelineError + '_ {
    move |e| PipelineError::Runtime(pc_runtime::Error::cuda(what)(e))
}

pub(crate) const RECORD_WORDS: usize = std::mem::size_of::<Reduction>() / 8;
const _: () = assert!(std::mem::size_of::<Reduction>() == 80, "Reduction is 80 bytes, no padding");

/// A reduce sink's records on the GPU: one per local chunk, as 8-byte
/// words, and the `Reduction::EMPTY` template they are reset from each run
/// (shared by the stream, flags and warps forms of `reduce`).
pub(crate) struct Records {
    words: CudaSlice<u64>,
    empty: CudaSlice<u64>,
}

impl Records {
    pub(crate) fn new(setup: &mut Setup<'_>) -> Result<Records> {
        Records::on(setup.stream, setup.local_chunks())
    }

    /// `chunks` records, uploaded on `stream` (synchronize it before use).
    pub(crate) fn on(stream: &Arc<CudaStream>, chunks: usize) -> Result<Records> {
        let template: Vec<u64> = (0..chunks).flat_map(|_| reduction_words(&Reduction::EMPTY)).collect();
        let upload = || stream.clone_htod(&template).map_err(cuda("allocating a reduce stage's records"));
        Ok(Records { empty: upload()?, words: upload()? })
    }

    /// Back to `EMPTY`, on `stream`.
    pub(crate) fn reset(&mut self, stream: &CudaStream) -> Result<()> {
        let bytes = self.words.len() * 8;
        let (dst, _) = self.words.device_ptr_mut(stream);
        let (src, _) = self.empty.device_ptr(stream);
        // SAFETY: both buffers hold `bytes`.
        unsafe { pc_runtime::copy::dtod_async(dst, src, bytes, stream) }.map_err(cuda("resetting the reductions"))
    }

    pub(crate) fn chunks(&self) -> usize {
        self.words.len() / RECORD_WORDS
    }

    /// The records from `first`, `n` of them, as the kernels' `AtomicReduction`s.
    pub(crate) fn atomic(&self, first: usize, n: usize) -> Result<cudarc::driver::CudaView<'_, AtomicReduction>> {
        let words = self.words.slice(first * RECORD_WORDS..(first + n) * RECORD_WORDS);
        // SAFETY: 80 bytes of u64 words per record, 8-byte aligned, viewed
        // as the AtomicReduction of the same layout (checked in kernel-math).
        unsafe { words.transmute::<AtomicReduction>(n) }.ok_or_else(|| PipelineError::BadStages("reduce: record slots too small".into()))
    }

    /// Every record, after the streams that wrote them synchronized.
    pub(crate) fn read(&self, stream: &Arc<CudaStream>) -> Result<Vec<Reduction>> {
        let words = stream.clone_dtoh(&self.words).map_err(cuda("copying the reductions back"))?;
        stream.synchronize().map_err(cuda("copying the reductions back"))?;
        Ok(words.chunks_exact(RECORD_WORDS).map(reduction_from_words).collect())
    }
}

pub(crate) fn reduction_words(r: &Reduction) -> [u64; RECORD_WORDS] {
    // SAFETY: Reduction is repr(C), 80 bytes without padding (checked above).
    unsafe { std::mem::transmute_copy(r) }
}

pub(crate) fn reduction_from_words(w: &[u64]) -> Reduction {
    let mut a = [0u64; RECORD_WORDS];
    a.copy_from_slice(w);
    // SAFETY: as above; every bit pattern is a valid Reduction (integers only).
    unsafe { std::mem::transmute::<[u64; RECORD_WORDS], Reduction>(a) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_words_round_trip() {
        let mut r = Reduction::EMPTY;
        [0.5f32, -1.0, 0.25].iter().for_each(|&v| r.add(v));
        assert_eq!(reduction_from_words(&reduction_words(&r)), r);
    }
}
