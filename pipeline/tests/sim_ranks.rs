//! Ranks on the simulated device: a pipeline placed over 2 and 3 ranks,
//! each rank its own stages, the NCCL transfers through the in-process
//! wire; the last rank verifies against the whole pipeline's CPU
//! reference, and a rank given another pipeline is refused.
use pc_pipeline::sim::{SimError, run_ranks};
use pc_pipeline::{HostInput, PipelineSpec, StageRegistry, Workload};

fn spec(list: &str, place: &[usize], k: usize, chunks: u64) -> PipelineSpec {
    let stages = StageRegistry::builtin().parse(list).unwrap();
    PipelineSpec::new(Workload::Generate).stages(stages).slots(k).chunk_elements(7).total_elements(7 * chunks - 3).placement(place.to_vec())
}

#[test]
fn two_and_three_ranks_verify() {
    for (list, place) in [
        ("producer,consumer,reduce", &[0, 1, 1][..]),
        ("producer,consumer,reduce", &[0, 0, 1]),
        ("h2d,consumer,d2h", &[0, 1, 2]),
        ("h2d,consumer,moving-average,consumer,d2h", &[0, 0, 1, 2, 2]),
        ("h2d,u8-to-f32,consumer,d2h", &[0, 1, 1, 1]),
    ] {
        let ranks = place.iter().max().unwrap() + 1;
        for k in [1, 2, 3] {
            for seed in 0..3 {
                let what = format!("{list} on ranks {place:?}, K={k}, seed {seed}");
                let s = spec(list, place, k, 9);
                let job = run_ranks(&vec![s.clone(); ranks], HostInput::Generated, 2, seed).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(job.verification.passed(), "{what}: {:?}", job.verification);
                assert_eq!(job.reports.len(), ranks, "{what}");
                // Each boundary carries every chunk, each run.
                assert_eq!(job.transfers, (ranks - 1) * s.chunks() * 2, "{what}");
            }
        }
    }
}

#[test]
fn a_rank_given_another_pipeline_is_refused() {
    let s = spec("producer,consumer,reduce", &[0, 1, 1], 2, 5);
    let other = s.clone().total_elements(s.total_elements + 1);
    let e = run_ranks(&[s.clone(), other], HostInput::Generated, 1, 0).err().expect("another pipeline");
    assert!(e.to_string().contains("rank 1 was given another pipeline"), "{e}");
    // K is no part of the transfers: ranks may differ in it.
    run_ranks(&[s.clone(), s.clone().slots(3)], HostInput::Generated, 1, 0).unwrap();
}

#[test]
fn a_bad_placement_is_refused() {
    let s = spec("producer,consumer,reduce", &[0, 1, 0], 2, 5);
    let e = run_ranks(&[s.clone(), s], HostInput::Generated, 1, 0).err().expect("rank 0's stages are not neighbours");
    assert!(matches!(e, SimError::Failed(_)), "{e}");
    assert!(e.to_string().contains("not neighbours"), "{e}");
}
