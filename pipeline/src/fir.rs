//! The `fir` stage: a causal FIR filter over f32, `y[i] = sum_{j<T}
//! taps[j] * x[i-j]`, a halo stage of `T - 1` elements (see `crate::halo`).
//! Its taps: the default low-pass ([`default_taps`]), or any list
//! ([`crate::builtin::fir`]), e.g. from a text file ([`parse_taps`]).
//!
//! The GPU (`fir_kernel`) and the CPU reference (`kernel_math::fir`) add
//! the taps in the same order with the same rounded operations, so every
//! output matches bit for bit.
use crate::PipelineError;
use crate::elem::{ElemType, HostChunk};
use crate::halo::History;
use crate::stage::{Kind, MapStage, OnGpu, Op, Setup, Stage};
use cudarc::driver::CudaStream;
use pc_runtime::launch::{HaloKernel, Kernel, KernelParams, Ptx};
use ptx_kernels::{FIR_OUTPUTS_PER_THREAD, FirKernel, FirKernelParams, KernelCrate};
use std::sync::Arc;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// Taps of the default filter.
pub const DEFAULT_TAPS: usize = 63;
/// Cutoff of the default low-pass, as a fraction of the sample rate.
pub const DEFAULT_CUTOFF: f64 = 0.1;
/// Most taps a `fir` stage takes: each output costs a multiply and an add
/// per tap, and the stage keeps `taps - 1` elements of history; past this a
/// filter belongs in the frequency domain, not here.
pub const MAX_TAPS: usize = 4096;

/// The default taps: a windowed-sinc low-pass of [`DEFAULT_TAPS`] taps at
/// [`DEFAULT_CUTOFF`] (see [`lowpass_taps`]).
pub fn default_taps() -> Vec<f32> {
    lowpass_taps(DEFAULT_TAPS, DEFAULT_CUTOFF)
}

/// A windowed-sinc low-pass of `count` taps with cutoff `cutoff` (a
/// fraction of the sample rate, below 0.5): `2 fc sinc(2 fc (n - M/2))`
/// times the Hamming window `0.54 - 0.46 cos(2 pi n / M)`, `M = count - 1`,
/// normalized to sum 1; computed in f64, then rounded to f32. Deterministic:
/// the same taps on every machine (IEEE f64 sin and cos as std computes them).
pub fn lowpass_taps(count: usize, cutoff: f64) -> Vec<f32> {
    use std::f64::consts::PI;
    let m = count.saturating_sub(1) as f64;
    let sinc = |x: f64| if x == 0.0 { 1.0 } else { (PI * x).sin() / (PI * x) };
    let window = |n: f64| if m == 0.0 { 1.0 } else { 0.54 - 0.46 * (2.0 * PI * n / m).cos() };
    let raw: Vec<f64> = (0..count).map(|n| n as f64).map(|n| 2.0 * cutoff * sinc(2.0 * cutoff * (n - m / 2.0)) * window(n)).collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|&t| (t / sum) as f32).collect()
}

/// Taps from text: numbers separated by whitespace, commas or newlines; `#`
/// starts a comment to the end of the line. Errors name the line, in one
/// line. The count and values are checked by [`check_taps`].
pub fn parse_taps(text: &str) -> Result<Vec<f32>> {
    let mut taps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for word in line.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()) {
            let t: f32 = word.parse().map_err(|_| PipelineError::BadFirTaps(format!("line {}: {word:?} is not a number", n + 1)))?;
            if !t.is_finite() {
                return Err(PipelineError::BadFirTaps(format!("line {}: {word} is not a finite number", n + 1)));
            }
            taps.push(t);
        }
    }
    check_taps(&taps)?;
    Ok(taps)
}

/// Refuses a tap list a `fir` stage cannot run: none, more than
/// [`MAX_TAPS`], or a tap that is NaN or infinite (its NaN outputs would
/// differ in bits between GPU and CPU).
pub fn check_taps(taps: &[f32]) -> Result<()> {
    if taps.is_empty() {
        return Err(PipelineError::BadFirTaps("no taps; a FIR filter needs at least one".into()));
    }
    if taps.len() > MAX_TAPS {
        return Err(PipelineError::BadFirTaps(format!("{} taps; at most {MAX_TAPS} are supported", taps.len())));
    }
    if let Some(i) = taps.iter().position(|t| !t.is_finite()) {
        return Err(PipelineError::BadFirTaps(format!("tap {i} is {}; taps must be finite", taps[i])));
    }
    Ok(())
}

/// The `fir` stage with `taps`, its kernel from `ptx` (a build of kernels-gpu).
pub(crate) fn stage_in(ptx: Ptx<KernelCrate>, taps: Vec<f32>) -> Result<Stage> {
    check_taps(&taps)?;
    Ok(checked_stage_in(ptx, taps))
}

/// The `fir` stage with the default taps.
pub(crate) fn default_stage_in(ptx: Ptx<KernelCrate>) -> Stage {
    // Known good (tested): no check to fail.
    checked_stage_in(ptx, default_taps())
}

/// `taps` passed [`check_taps`].
fn checked_stage_in(ptx: Ptx<KernelCrate>, taps: Vec<f32>) -> Stage {
    let about = format!("f32 -> f32: causal FIR filter of {} taps (halo {}), kernel fir_kernel", taps.len(), taps.len() - 1);
    let ring_taps: Arc<[f32]> = taps.as_slice().into();
    let fir = Fir { ptx, params: FirKernelParams { taps } };
    Stage::new("fir", about, Kind::Map(Arc::new(fir))).with_warp_form(Arc::new(crate::exec::warps::FirRing { taps: ring_taps }))
}

/// The fir stage: `fir_kernel`'s `taps: &[f32]` is a run-time parameter
/// like any stage kernel's (`FirKernel: HaloKernel`, its values in
/// `FirKernelParams`), uploaded once per GPU and read by the CPU reference
/// from the same struct. Not `Stage::halo_map_with` only because a thread
/// computes a group of outputs, so the grid is sized by groups.
struct Fir {
    ptx: Ptx<KernelCrate>,
    params: FirKernelParams,
}

impl MapStage for Fir {
    fn input(&self) -> ElemType {
        ElemType::of::<f32>()
    }
    fn output(&self) -> ElemType {
        ElemType::of::<f32>()
    }
    fn halo(&self) -> usize {
        self.params.taps.len() - 1
    }
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        let kernel = setup.module(self.ptx, "the kernels' PTX")?.kernel::<FirKernel>()?;
        kernel.check_block(setup.block_size())?;
        // On the setup stream, which the pipeline synchronizes before running.
        let params = self.params.upload(setup.stream)?;
        let history = History::new(setup, ElemType::of::<f32>(), self.halo())?;
        Ok(Box::new(FirOnGpu { kernel, params, history }))
    }
    fn reference(&self, history: &HostChunk, input: &HostChunk) -> Result<HostChunk, String> {
        let x = input.view::<f32>().ok_or_else(|| format!("fir reads f32 but got {}", input.elem()))?;
        let h = history.view::<f32>().ok_or_else(|| format!("fir reads f32 but got history of {}", history.elem()))?;
        if h.len() != self.halo() {
            return Err(format!("fir has a halo of {} elements but was given {}", self.halo(), h.len()));
        }
        let mut out = vec![0.0f32; x.len()];
        kernel_math::fir(&self.params.taps, h, x, &mut out);
        Ok(HostChunk::from_slice(&out))
    }
}

struct FirOnGpu {
    kernel: Kernel<FirKernel>,
    /// The taps on this GPU, uploaded once.
    params: <FirKernelParams as KernelParams>::OnDevice,
    history: History,
}

// SAFETY: the kernel and the history shift run on the op's stream, over the
// op's slots and this stage's own taps and history.
unsafe impl OnGpu for FirOnGpu {
    fn begin_run(&mut self, stream: &CudaStream) -> Result<()> {
        self.history.begin_run(stream)
    }

    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let (mut cfg, stream) = (op.cfg, op.stream);
        // One thread per group of outputs, not per output: no more blocks
        // than the groups fill (the grid-stride loop covers any count).
        let groups = op.len().div_ceil(FIR_OUTPUTS_PER_THREAD) as u64;
        cfg.grid_dim.0 = cfg.grid_dim.0.min(groups.div_ceil(cfg.block_dim.0 as u64).max(1) as u32);
        {
            let history = self.history.current::<f32>()?;
            let (input, mut output) = op.slots::<f32, f32>()?;
            // SAFETY: the pipeline orders this stream against every other
            // access to the slots; taps and history are this stage's own.
            unsafe { FirKernel::launch_halo(&self.kernel, stream, cfg, &history, &input, &mut output, &self.params) }?;
        }
        self.history.advance(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_taps_are_a_normalized_symmetric_lowpass() {
        let t = default_taps();
        assert_eq!(t.len(), DEFAULT_TAPS);
        let sum: f64 = t.iter().map(|&x| x as f64).sum();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        assert!((0..t.len()).all(|i| t[i] == t[t.len() - 1 - i]), "linear phase: symmetric");
        // The centre tap is the largest: 2 fc = 0.2 before normalization.
        let centre = t[DEFAULT_TAPS / 2];
        assert!(t.iter().all(|&x| x <= centre) && (0.15..0.25).contains(&centre), "{centre}");
        assert_eq!(default_taps(), t, "deterministic");
        assert_eq!(lowpass_taps(1, 0.1), vec![1.0]);
    }

    #[test]
    fn taps_parse_from_text() {
        let text = "# low-pass\n0.25, 0.5  0.25 # centre\n\n-1e-3,\t2\n";
        assert_eq!(parse_taps(text).unwrap(), vec![0.25, 0.5, 0.25, -1e-3, 2.0]);
        assert_eq!(parse_taps("1").unwrap(), vec![1.0]);
    }

    #[test]
    fn bad_taps_are_refused_with_their_line() {
        let e = |t: &str| parse_taps(t).unwrap_err().to_string();
        assert_eq!(e("0.5\n0.25 x1 # c\n"), "bad FIR taps: line 2: \"x1\" is not a number");
        assert_eq!(e("# only a comment\n"), "bad FIR taps: no taps; a FIR filter needs at least one");
        assert_eq!(e(""), "bad FIR taps: no taps; a FIR filter needs at least one");
        assert_eq!(e("1\n2\nnan"), "bad FIR taps: line 3: nan is not a finite number");
        assert!(e("1e39").contains("line 1: 1e39 is not a finite number"));
        assert!(e(&"1 ".repeat(MAX_TAPS + 1)).contains("4097 taps; at most 4096"));
        assert!(e("1;2").contains("line 1: \"1;2\""));
        assert!(!e("1\n2\nnan").contains('\n'), "one line");
    }

    #[test]
    fn fir_stages_refuse_bad_taps_and_have_their_halo() {
        assert!(crate::builtin::fir(vec![]).unwrap_err().to_string().contains("no taps"));
        assert!(crate::builtin::fir(vec![1.0, f32::INFINITY]).unwrap_err().to_string().contains("tap 1 is inf"));
        assert!(crate::builtin::fir(vec![0.0; MAX_TAPS + 1]).is_err());
        assert_eq!(crate::builtin::fir(vec![0.5; 5]).unwrap().halo(), 4);
        let d = crate::builtin::fir_default();
        assert_eq!((d.name(), d.halo()), ("fir", DEFAULT_TAPS - 1));
    }
}
