//! Ranks on the simulated device: a pipeline placed over R ranks
//! ([`crate::ranks`]), each rank its own stages as a [`SimPipeline`]
//! (`ranks::local_spec`: a `recv-from-rankA` source first, a
//! `send-to-rankB` sink last), the NCCL transfers through an in-process
//! wire that keeps NCCL's matching: the n-th send from A to B meets the
//! n-th receive of B from A, with the same byte count, or the job stops.
//!
//! The ranks run one after the other, in the order of their stages: a
//! rank's receives all come after the sends they match (the join of
//! NCCL's send -> recv ordering, by construction), and inside each rank
//! the race detector checks every hand-off of its rings, the receive's
//! write into its ring slot and the send's read of its slot included
//! (they are operations like any other). Not modelled: ranks running at
//! the same time (a slow receiver holding back a sender), NCCL's own
//! buffering.
use super::device::{OpModel, SimDevice};
use super::pipeline::{SimError, SimPipeline};
use crate::PipelineError;
use crate::exec::{HostInput, RunReport};
use crate::ranks::{RankLayout, local_spec, transfer_digest};
use crate::reference::Verification;
use crate::spec::{Launch, PipelineSpec};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What the ranks of a simulated job did.
pub struct SimRanks {
    /// Each rank's report, by rank.
    pub reports: Vec<RunReport>,
    /// The last rank's verification (where the pipeline's sink is).
    pub verification: Verification,
    /// Transfers made (sends matched by receives).
    pub transfers: usize,
}

/// One transfer on the wire: the chunk the sender sent, its bytes. (A
/// stage's operations run in its stream's order, chunk-major run after
/// run, so the n-th send and the n-th receive are the same run's.)
type Sent = (usize, Vec<u8>);

/// NCCL's send/recv between ranks, in process: per (from, to), the sends
/// not yet received, in order.
#[derive(Default)]
struct Wire {
    queues: Mutex<HashMap<(usize, usize), VecDeque<Sent>>>,
    transfers: Mutex<usize>,
}

/// A rank's send and recv stages on its simulated device.
struct Link {
    rank: usize,
    wire: Arc<Wire>,
    /// Stage 0 receives from this rank.
    from: Option<usize>,
    /// The last stage (`stages - 1`) sends to this rank.
    to: Option<(usize, usize)>,
}

impl OpModel for Link {
    fn takes(&self, stage: usize) -> bool {
        (stage == 0 && self.from.is_some()) || self.to.is_some_and(|(s, _)| s == stage)
    }

    fn run_op(&self, device: &mut SimDevice, stage: usize, chunk: usize, slot: usize, len: usize) -> Result<(), String> {
        let mut queues = self.wire.queues.lock().map_err(|_| "the wire's lock is poisoned")?;
        match (stage, self.from, self.to) {
            (0, Some(peer), _) => {
                let want = len * device.ring_type(0).size();
                let Some((c, bytes)) = queues.get_mut(&(peer, self.rank)).and_then(VecDeque::pop_front) else {
                    return Err(format!("rank {}'s receive of chunk {chunk} from rank {peer} has no send to meet: NCCL would wait for ever", self.rank));
                };
                if c != chunk || bytes.len() != want {
                    return Err(format!(
                        "rank {}'s receive of chunk {chunk} ({want} bytes) met rank {peer}'s send of chunk {c} ({} bytes)",
                        self.rank,
                        bytes.len()
                    ));
                }
                device.write_slot(0, slot, &bytes)?;
                *self.wire.transfers.lock().map_err(|_| "the wire's lock is poisoned")? += 1;
            }
            (s, _, Some((_, peer))) => {
                let bytes = device.slot_chunk(s - 1, slot, len)?.bytes().to_vec();
                queues.entry((self.rank, peer)).or_default().push_back((chunk, bytes));
            }
            _ => return Err(format!("stage {stage} is neither rank {}'s receive nor its send", self.rank)),
        }
        Ok(())
    }
}

/// Runs a job of `specs.len()` ranks on the simulated device, rank `r`
/// given `specs[r]` (a launcher gives every rank the same): each joins
/// with [`transfer_digest`] of its spec, and a rank whose digest differs
/// from rank 0's is refused before anything runs, as `nccl::Comm::init`
/// refuses it. Each rank runs `runs` runs with stream launches (ranks run
/// no captured graph), scheduler seed `seed + r`; every race and every
/// unmatched transfer is an error.
pub fn run_ranks(specs: &[PipelineSpec], input: HostInput, runs: usize, seed: u64) -> Result<SimRanks, SimError> {
    let n = specs.len();
    if n == 0 {
        return Err(PipelineError::BadRanks("a job of no ranks".into()).into());
    }
    let digest = transfer_digest(&specs[0], n)?;
    for (r, spec) in specs.iter().enumerate().skip(1) {
        if transfer_digest(spec, n)? != digest {
            return Err(PipelineError::BadRanks(format!(
                "rank {r} was given another pipeline than rank 0 (its transfer digest differs): every rank must run the same"
            ))
            .into());
        }
    }
    let layouts = specs.iter().enumerate().map(|(r, s)| RankLayout::new(s, r, n)).collect::<Result<Vec<_>, _>>()?;
    // In the order of their stages: each receive after the send it meets.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&r| layouts[r].stages.start);
    let wire = Arc::new(Wire::default());
    let mut reports: Vec<Option<RunReport>> = (0..n).map(|_| None).collect();
    let mut verification = None;
    for r in order {
        let layout = &layouts[r];
        let local = local_spec(&specs[r], layout, None, &input)?;
        let last = local.stages.len() - 1;
        let mut sim = SimPipeline::new(local, input.clone())?.scheduler_seed(seed.wrapping_add(r as u64));
        sim.set_link(Arc::new(Link { rank: r, wire: wire.clone(), from: layout.from, to: layout.to.map(|p| (last, p)) }));
        let report = sim.run(Launch::Streams, runs).map_err(|e| rank_error(r, e))?;
        if layout.verifies() {
            verification = Some(sim.verify(&report));
        }
        reports[r] = Some(report);
    }
    let left: usize = wire.queues.lock().map(|q| q.values().map(VecDeque::len).sum()).unwrap_or(0);
    if left > 0 {
        return Err(SimError::Stuck(format!("{left} send(s) met no receive: NCCL would wait for ever")));
    }
    let transfers = wire.transfers.lock().map(|t| *t).unwrap_or(0);
    let verification = verification.ok_or_else(|| PipelineError::BadRanks("no rank has the pipeline's sink".into()))?;
    Ok(SimRanks { reports: reports.into_iter().flatten().collect(), verification, transfers })
}

/// A rank's error, saying which rank; an unmatched receive is the hang NCCL
/// would have (stuck).
fn rank_error(rank: usize, e: SimError) -> SimError {
    match e {
        SimError::Reference(why) if why.contains("NCCL would wait") => SimError::Stuck(format!("rank {rank}: {why}")),
        SimError::Reference(why) => SimError::Reference(format!("rank {rank}: {why}")),
        SimError::Stuck(why) => SimError::Stuck(format!("rank {rank}: {why}")),
        other => other,
    }
}
