//! Stage lists, element types, sizes and verification, without a GPU. The
//! expected values here are computed in the test itself from the
//! definitions (`produce`, doubling, the reduction's fields), not by the
//! reference code under test.
use kernel_math::{Reduction, order_key, produce};
use pc_pipeline::elem::{ElemType, HostChunk};
use pc_pipeline::reference::verify;
use pc_pipeline::stage::{Kind, MapStage, OnGpu, Setup};
use pc_pipeline::{PipelineError, PipelineSpec, Stage, StageRegistry, Workload, parse_stages};
use std::sync::Arc;

// Only kernels of the map shape can be map stages (issue: any entry ran
// with the map argument list, e.g. reduce_kernel doing atomics at `n`).
static_assertions::assert_not_impl_any!(ptx_kernels::ReduceKernel: pc_runtime::launch::MapKernel);
static_assertions::assert_not_impl_any!(ptx_kernels::ProducerVecKernel: pc_runtime::launch::MapKernel);
static_assertions::assert_impl_all!(ptx_kernels::ConsumerVecKernel: pc_runtime::launch::MapKernel);
// Halo stages: only kernels of the halo shape, whose first slice is named
// `history` (the byte shift has the shape but other names; fir takes taps too).
static_assertions::assert_impl_all!(ptx_kernels::MovingAverageKernel: pc_runtime::launch::HaloKernel);
static_assertions::assert_not_impl_any!(ptx_kernels::MovingAverageKernel: pc_runtime::launch::MapKernel);
static_assertions::assert_not_impl_any!(ptx_kernels::HaloShiftKernel: pc_runtime::launch::HaloKernel, pc_runtime::launch::MapKernel);
// fir_kernel's `taps: &[f32]` after `output` is a run-time parameter.
static_assertions::assert_impl_all!(ptx_kernels::FirKernel: pc_runtime::launch::HaloKernel);
static_assertions::assert_not_impl_any!(ptx_kernels::FirKernel: pc_runtime::launch::MapKernel);
static_assertions::assert_not_impl_any!(ptx_kernels::ConsumerVecKernel: pc_runtime::launch::HaloKernel);

#[test]
fn workloads_have_their_default_stages() {
    let names = |w| PipelineSpec::new(w).stages.iter().map(|s: &Stage| s.name().to_string()).collect::<Vec<_>>().join(",");
    assert_eq!(names(Workload::Generate), "producer,consumer,reduce");
    assert_eq!(names(Workload::Stream), "h2d,consumer,d2h");
}

#[test]
fn stage_lists_are_checked() {
    assert!(parse_stages("h2d,consumer,consumer,d2h").is_ok());
    let e = parse_stages("h2d,blur,d2h").unwrap_err().to_string();
    assert!(e.contains("unknown stage \"blur\"") && e.contains("consumer"), "{e}");
    assert!(parse_stages("producer,,reduce").unwrap_err().to_string().contains("empty"));
    let bad = |list: &str| PipelineSpec::new(Workload::Stream).stages(parse_stages(list).unwrap()).validate().unwrap_err().to_string();
    assert!(bad("consumer,d2h").contains("must start with a source"));
    assert!(bad("producer,consumer").contains("must end with a sink"));
    assert!(bad("producer,reduce,reduce").contains("can only be the first or last"));
    assert!(bad("d2h").contains("needs a source and a sink"));
    assert!(PipelineSpec::new(Workload::Generate).stages(parse_stages("producer,reduce").unwrap()).validate().is_ok());
}

#[test]
fn zero_sizes_are_refused() {
    let spec = PipelineSpec::new(Workload::Generate);
    assert!(matches!(spec.clone().slots(0).validate(), Err(PipelineError::ZeroSlots)));
    assert!(matches!(spec.clone().chunk_elements(0).validate(), Err(PipelineError::ZeroChunk)));
    assert!(spec.clone().total_elements(0).validate().unwrap_err().to_string().contains("at least 1"));
}

#[test]
fn chunks_cover_the_total_with_a_short_last_chunk() {
    let spec = PipelineSpec::new(Workload::Generate).chunk_elements(1000).total_elements(2500);
    assert_eq!(spec.chunks(), 3);
    assert_eq!(spec.chunk_range(0), 0..1000);
    assert_eq!(spec.chunk_range(2), 2000..2500);
}

/// A map stage of other element types, for type checking without a GPU.
struct Widen;
impl MapStage for Widen {
    fn input(&self) -> ElemType {
        ElemType::of::<u8>()
    }
    fn output(&self) -> ElemType {
        ElemType::of::<f32>()
    }
    fn prepare(&self, _: &mut Setup<'_>) -> Result<Box<dyn OnGpu>, PipelineError> {
        Err(PipelineError::NoGpus)
    }
    fn reference(&self, _history: &HostChunk, input: &HostChunk) -> Result<HostChunk, String> {
        let v: Vec<f32> = input.view::<u8>().ok_or("not u8")?.iter().map(|&b| b as f32).collect();
        Ok(HostChunk::from_slice(&v))
    }
}

fn widen() -> Stage {
    Stage::new("widen", "u8 -> f32", Kind::Map(Arc::new(Widen)))
}

#[test]
fn ring_types_follow_the_stages_and_mismatches_are_refused() {
    let reg = StageRegistry::builtin();
    let s = |list: &str| reg.parse(list).unwrap();
    let mut stages = vec![Stage::h2d(), widen()];
    stages.extend(s("consumer,d2h"));
    let spec = PipelineSpec::new(Workload::Stream).stages(stages);
    spec.validate().unwrap();
    let names: Vec<&str> = spec.ring_types().unwrap().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["u8", "f32", "f32"]);
    assert_eq!(spec.input_type().unwrap(), ElemType::of::<u8>());
    // f32 from the producer into a stage that reads u8.
    let e = PipelineSpec::new(Workload::Generate).stages(vec![s("producer").remove(0), widen(), s("reduce").remove(0)]).validate().unwrap_err().to_string();
    assert!(e.contains("producer writes f32 but widen reads u8"), "{e}");
    // Two copies: f32 by default.
    assert_eq!(PipelineSpec::new(Workload::Stream).stages(s("h2d,d2h")).ring_types().unwrap(), [ElemType::of::<f32>()]);
}

/// The reduce sink's record of `values`, from the definition of each field
/// in plain f64 loops (not with `Reduction::add`, the code under test): the
/// sum in 2^-22 units (exact: every value is a multiple of 2^-22 below 4 in
/// magnitude), the smallest and largest value (as `order_key`s, the record's
/// encoding), and counts in 16 bins of width 0.5 over [-4, 4), the outer
/// bins open.
fn oracle_reduction(values: impl Iterator<Item = f32>) -> Reduction {
    let (mut sum, mut min, mut max, mut hist) = (0f64, f64::INFINITY, f64::NEG_INFINITY, [0u32; 16]);
    for v in values.map(f64::from) {
        sum += v;
        min = min.min(v);
        max = max.max(v);
        hist[((v + 4.0) / 0.5).floor().clamp(0.0, 15.0) as usize] += 1;
    }
    Reduction { sum_fixed: (sum * 4_194_304.0) as i64, min_key: order_key(min as f32), max_key: order_key(max as f32), hist }
}

/// The generate pipeline's record of chunk `range`: the producer's values doubled.
fn generated_record(range: std::ops::Range<u64>, seed: u32) -> Reduction {
    oracle_reduction(range.map(|i| 2.0 * produce(i, seed)))
}

#[test]
fn the_oracle_record_agrees_with_the_reduction() {
    // Guards the oracle (and `Reduction::add`) both ways: equal on the
    // producer's values, and each field is what its definition says.
    let values: Vec<f32> = (0..5000).map(|i| 2.0 * produce(i, 9)).collect();
    let mut r = Reduction::EMPTY;
    values.iter().for_each(|&v| r.add(v));
    assert_eq!(oracle_reduction(values.iter().copied()), r);
    let o = oracle_reduction([-4.5f32, -0.25, 0.0, 0.75, 3.5, 9.0].into_iter());
    assert_eq!(o.hist.iter().sum::<u32>(), 6);
    assert_eq!((o.hist[0], o.hist[7], o.hist[8], o.hist[9], o.hist[15]), (1, 1, 1, 1, 2));
    assert_eq!((o.min(), o.max(), o.sum()), (-4.5, 9.0, 8.5));
}

#[test]
fn verification_compares_records_and_elements() {
    let spec = PipelineSpec::new(Workload::Generate).chunk_elements(1000).total_elements(2500).seed(4);
    let reds: Vec<Reduction> = [0..1000, 1000..2000, 2000..2500].into_iter().map(|r| generated_record(r, 4)).collect();
    assert!(verify(&spec, None, None, &reds).passed());
    let mut wrong = reds.clone();
    wrong[1].hist[3] += 1;
    let v = verify(&spec, None, None, &wrong);
    assert_eq!((v.chunks_wrong, v.first_wrong.as_ref().map(|w| w.0)), (1, Some(1)));
    // A record that never came back is a failure, not a skip.
    let v = verify(&spec, None, None, &reds[..2]);
    assert!(!v.passed() && v.first_wrong.as_ref().is_some_and(|(c, w)| *c == 2 && w.contains("no reduction")), "{v:?}");

    let spec = PipelineSpec::new(Workload::Stream).chunk_elements(1000).total_elements(2500);
    let input: Vec<f32> = (0..2500).map(|i| i as f32).collect();
    let mut output: Vec<f32> = input.iter().map(|x| x * 2.0).collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
    assert!(verify(&spec, Some(&bytes(&input)), Some(&bytes(&output)), &[]).passed());
    output[2499] = f32::NAN;
    let v = verify(&spec, Some(&bytes(&input)), Some(&bytes(&output)), &[]);
    assert_eq!((v.chunks_wrong, v.items_wrong), (1, 1));
    // No output at all, or no input: FAIL with the reason.
    let v = verify(&spec, Some(&bytes(&input)), None, &[]);
    assert!(!v.passed() && v.chunks_wrong == 3, "{v:?}");
    let v = verify(&spec, None, Some(&bytes(&output)), &[]);
    assert!(!v.passed() && v.first_wrong.as_ref().is_some_and(|(_, w)| w.contains("no host input")), "{v:?}");
}

#[test]
fn verification_fails_on_anything_past_the_end() {
    // A record past the last chunk: the run wrote a record it does not have.
    let spec = PipelineSpec::new(Workload::Generate).chunk_elements(1000).total_elements(2500).seed(4);
    let mut reds: Vec<Reduction> = [0..1000, 1000..2000, 2000..2500].into_iter().map(|r| generated_record(r, 4)).collect();
    assert!(verify(&spec, None, None, &reds).passed());
    reds.push(Reduction::EMPTY);
    let v = verify(&spec, None, None, &reds);
    assert!(!v.passed() && v.first_wrong.as_ref().is_some_and(|(_, w)| w.contains("1 extra")), "{v:?}");

    // Host output past the total; and any record from a sink that writes the host.
    let spec = PipelineSpec::new(Workload::Stream).chunk_elements(1000).total_elements(2500);
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
    let input: Vec<f32> = (0..2500).map(|i| i as f32).collect();
    let mut output: Vec<f32> = input.iter().map(|x| x * 2.0).collect();
    assert!(verify(&spec, Some(&bytes(&input)), Some(&bytes(&output)), &[]).passed());
    let v = verify(&spec, Some(&bytes(&input)), Some(&bytes(&output)), &[Reduction::EMPTY]);
    assert!(!v.passed(), "a record from a d2h pipeline: {v:?}");
    output.extend([0.0, 0.0]);
    let v = verify(&spec, Some(&bytes(&input)), Some(&bytes(&output)), &[]);
    assert!(!v.passed() && v.items_wrong == 2 && v.first_wrong.as_ref().is_some_and(|(_, w)| w.contains("2 elements past the total")), "{v:?}");
}

#[test]
fn a_chunk_left_unchecked_fails() {
    // Nothing wrong, but one chunk of three never checked: not a pass.
    let v = pc_pipeline::reference::Verification { chunks_expected: 3, chunks_checked: 2, ..Default::default() };
    assert!(!v.passed(), "{v:?}");
    assert!(v.summary().contains("only 2 of 3"), "{}", v.summary());
    let all = pc_pipeline::reference::Verification { chunks_checked: 3, ..v };
    assert!(all.passed());
}

/// A reference that panics on one chunk fails verification (fail closed).
struct Panicky;
impl MapStage for Panicky {
    fn input(&self) -> ElemType {
        ElemType::of::<f32>()
    }
    fn output(&self) -> ElemType {
        ElemType::of::<f32>()
    }
    fn prepare(&self, _: &mut Setup<'_>) -> Result<Box<dyn OnGpu>, PipelineError> {
        Err(PipelineError::NoGpus)
    }
    fn reference(&self, _history: &HostChunk, input: &HostChunk) -> Result<HostChunk, String> {
        let v = input.view::<f32>().ok_or("not f32")?;
        assert!(v[0] != produce(5000, 4), "reference bug on chunk 5");
        Ok(input.clone())
    }
}

#[test]
fn a_panicking_reference_fails_closed() {
    let reg = StageRegistry::builtin();
    let stages = vec![reg.parse_one("producer").unwrap(), Stage::new("panicky", "", Kind::Map(Arc::new(Panicky))), reg.parse_one("reduce").unwrap()];
    let spec = PipelineSpec::new(Workload::Generate).stages(stages).chunk_elements(1000).total_elements(8000).seed(4);
    let reds: Vec<Reduction> = (0..8).map(|c| oracle_reduction((c * 1000..(c + 1) * 1000).map(|i| produce(i, 4)))).collect();
    let v = verify(&spec, None, None, &reds);
    assert!(!v.passed(), "{v:?}");
    assert!(v.summary().starts_with("FAIL"), "{}", v.summary());
}

#[test]
fn nothing_to_check_is_a_failure() {
    let v = pc_pipeline::reference::Verification::default();
    assert!(!v.passed());
    assert!(v.summary().contains("nothing to check"));
}
