//! Stage lists, sizes and the CPU reference, without a GPU.
use pc_pipeline::reference::{expected_chunk, verify};
use pc_pipeline::{PipelineError, PipelineSpec, Stage, Workload, parse_stages};

#[test]
fn workloads_have_their_default_stages() {
    let names = |w| PipelineSpec::new(w).stages.iter().map(|s: &Stage| s.name()).collect::<Vec<_>>().join(",");
    assert_eq!(names(Workload::Generate), "producer,consumer,reduce");
    assert_eq!(names(Workload::Stream), "h2d,consumer,d2h");
}

#[test]
fn stage_lists_are_checked() {
    assert!(parse_stages("h2d,consumer,consumer,d2h").is_ok());
    let e = parse_stages("h2d,blur,d2h").unwrap_err().to_string();
    assert!(e.contains("unknown stage \"blur\"") && e.contains("consumer"), "{e}");
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

#[test]
fn reference_reductions_and_outputs_verify() {
    let spec = PipelineSpec::new(Workload::Generate).chunk_elements(1000).total_elements(2500).seed(4);
    let reds: Vec<_> = (0..3).map(|c| expected_chunk(&spec, c, None).1.unwrap()).collect();
    assert_eq!(reds.iter().map(|r| r.count()).sum::<u64>(), 2500);
    assert!(verify(&spec, None, None, &reds).passed());
    let mut wrong = reds.clone();
    wrong[1].hist[3] += 1;
    let v = verify(&spec, None, None, &wrong);
    assert_eq!((v.chunks_wrong, v.first_wrong.as_ref().map(|w| w.0)), (1, Some(1)));

    let spec = PipelineSpec::new(Workload::Stream).chunk_elements(1000).total_elements(2500);
    let input: Vec<f32> = (0..2500).map(|i| i as f32).collect();
    let mut output: Vec<f32> = input.iter().map(|x| x * 2.0).collect();
    assert!(verify(&spec, Some(&input), Some(&output), &[]).passed());
    output[2499] = f32::NAN;
    let v = verify(&spec, Some(&input), Some(&output), &[]);
    assert_eq!((v.chunks_wrong, v.items_wrong), (1, 1));
}
