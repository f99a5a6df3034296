//! What a pipeline is: its stages, ring size, chunking and launch shape.
use crate::PipelineError;
use crate::elem::ElemType;
use crate::stage::{Kind, Port, Stage};

/// The two built-in workloads, as default stage lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// producer -> consumer -> reduce: only the reductions come back.
    Generate,
    /// h2d -> consumer -> d2h: pinned host input through the GPU to pinned host output.
    Stream,
}

/// A pipeline's shape. Build with [`PipelineSpec::new`] and the setters;
/// [`PipelineSpec::validate`] runs before anything is allocated.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    pub stages: Vec<Stage>,
    /// Slots per ring (K): 1 serial-safe, 2 double buffering, 3 or more.
    pub slots: usize,
    /// Elements per chunk (the last chunk may be shorter).
    pub chunk_elements: u64,
    /// Elements in all.
    pub total_elements: u64,
    /// Threads per block of every kernel stage.
    pub block_size: u32,
    /// Seed of the producer's values (and of generated stream input).
    pub seed: u32,
    /// Run every stage on one stream with no events: the serial baseline.
    pub serial: bool,
    /// Delay per stage, in nanoseconds (empty: none), to slow stages on
    /// purpose: a one-thread spin kernel goes on the stage's stream ahead of
    /// each of its operations.
    pub spin_ns: Vec<u64>,
    /// The flags and warps grains' watchdog: a wait on a ring counter (or a
    /// warp ring's barrier) longer than this stops the run with an error
    /// naming the stage and slot.
    pub watchdog_ms: u64,
    /// Each stage's GPU, as an index into the GPUs given to
    /// [`crate::Pipeline::new`] (empty: every stage on every GPU, chunks
    /// split between them). Where two neighbouring stages sit on different
    /// GPUs the pipeline puts a peer copy between them.
    pub placement: Vec<usize>,
}

impl PipelineSpec {
    /// A spec with the workload's default stages, K = 2, 1 Mi-element chunks,
    /// 16 Mi elements in all, 256 threads a block.
    pub fn new(workload: Workload) -> PipelineSpec {
        PipelineSpec {
            stages: workload.default_stages(),
            slots: 2,
            chunk_elements: 1 << 20,
            total_elements: 1 << 24,
            block_size: 256,
            seed: 0x5eed,
            serial: false,
            spin_ns: Vec::new(),
            watchdog_ms: 10_000,
            placement: Vec::new(),
        }
    }
    pub fn stages(mut self, stages: Vec<Stage>) -> Self {
        self.stages = stages;
        self
    }
    pub fn slots(mut self, k: usize) -> Self {
        self.slots = k;
        self
    }
    pub fn chunk_elements(mut self, n: u64) -> Self {
        self.chunk_elements = n;
        self
    }
    pub fn total_elements(mut self, n: u64) -> Self {
        self.total_elements = n;
        self
    }
    pub fn block_size(mut self, b: u32) -> Self {
        self.block_size = b;
        self
    }
    pub fn seed(mut self, s: u32) -> Self {
        self.seed = s;
        self
    }
    /// Delays per stage in nanoseconds (see [`PipelineSpec::spin_ns`]).
    pub fn delays(mut self, ns: Vec<u64>) -> Self {
        self.spin_ns = ns;
        self
    }
    /// The flags and warps grains' watchdog (see [`PipelineSpec::watchdog_ms`]).
    pub fn watchdog_ms(mut self, ms: u64) -> Self {
        self.watchdog_ms = ms;
        self
    }
    /// Places stage `s` on GPU `gpus[placement[s]]` (see [`PipelineSpec::placement`]).
    pub fn placement(mut self, placement: Vec<usize>) -> Self {
        self.placement = placement;
        self
    }
    pub fn serial(mut self, on: bool) -> Self {
        self.serial = on;
        self
    }

    /// Number of chunks: `ceil(total / chunk)`.
    pub fn chunks(&self) -> usize {
        self.total_elements.div_ceil(self.chunk_elements.max(1)) as usize
    }

    /// Global element range of chunk `c`.
    pub fn chunk_range(&self, c: usize) -> std::ops::Range<u64> {
        let start = c as u64 * self.chunk_elements;
        start..(start + self.chunk_elements).min(self.total_elements)
    }

    /// Whether the sink returns records (reduce) rather than host output.
    pub fn reduces(&self) -> bool {
        matches!(self.stages.last().map(Stage::kind), Some(Kind::Sink(s)) if !s.writes_host())
    }

    /// Whether the sink copies to pinned host output.
    pub fn writes_host(&self) -> bool {
        matches!(self.stages.last().map(Stage::kind), Some(Kind::Sink(s)) if s.writes_host())
    }

    /// Whether the source reads pinned host input (h2d).
    pub fn reads_host(&self) -> bool {
        matches!(self.stages.first().map(Stage::kind), Some(Kind::Source(s)) if s.reads_host())
    }

    /// Spin of stage `s`, in nanoseconds.
    pub fn spin_of(&self, s: usize) -> u64 {
        self.spin_ns.get(s).copied().unwrap_or(0)
    }

    /// The element type of each ring (ring `r` between stage `r` and
    /// `r + 1`): what stage `r` writes and stage `r + 1` reads. Copy stages
    /// take their neighbour's type; a ring between two copies holds f32.
    pub fn ring_types(&self) -> Result<Vec<ElemType>, PipelineError> {
        self.stages
            .windows(2)
            .map(|w| match (w[0].output(), w[1].input()) {
                (Some(Port::Elem(a)), Some(Port::Elem(b))) if a == b => Ok(a),
                (Some(Port::Elem(a)), Some(Port::Elem(b))) => Err(PipelineError::BadStages(format!(
                    "{} writes {a} but {} reads {b}; put a stage between that converts {a} to {b}",
                    w[0].name(),
                    w[1].name()
                ))),
                (Some(Port::Elem(a)), Some(Port::Any)) | (Some(Port::Any), Some(Port::Elem(a))) => Ok(a),
                (Some(Port::Any), Some(Port::Any)) => Ok(ElemType::of::<f32>()),
                _ => Err(PipelineError::BadStages(format!("{} cannot feed {}", w[0].name(), w[1].name()))),
            })
            .collect()
    }

    /// The element type of the host input (the source's output).
    pub fn input_type(&self) -> Result<ElemType, PipelineError> {
        Ok(self.ring_types()?[0])
    }

    /// The element type of the host output (what the sink reads).
    pub fn output_type(&self) -> Result<ElemType, PipelineError> {
        self.ring_types()?.last().copied().ok_or_else(|| PipelineError::BadStages("no rings".into()))
    }

    /// Elements before a chunk that the pipeline's output at the chunk
    /// depends on: the sum of its halo stages' halos.
    pub fn halo(&self) -> u64 {
        self.stages.iter().map(|s| s.halo() as u64).sum()
    }

    /// Refuses to run a pipeline with a halo stage as `parts` parts (one
    /// per GPU): each part's first chunk would need the history that only
    /// the part before it has.
    pub fn check_split(&self, parts: usize) -> Result<(), PipelineError> {
        match self.stages.iter().find(|s| s.halo() > 0) {
            Some(s) if parts > 1 => Err(PipelineError::HaloSplit { stage: s.name().to_string(), halo: s.halo(), parts }),
            _ => Ok(()),
        }
    }

    /// Refuses shapes that cannot run, with a message naming the problem.
    pub fn validate(&self) -> Result<(), PipelineError> {
        use PipelineError::*;
        if self.slots == 0 {
            return Err(ZeroSlots);
        }
        if self.chunk_elements == 0 {
            return Err(ZeroChunk);
        }
        if self.total_elements == 0 {
            return Err(Runtime(pc_runtime::Error::EmptyInput));
        }
        if self.block_size == 0 {
            return Err(Runtime(pc_runtime::Error::BadBlockSize { block: 0, kernel: "every kernel stage", max: 1024 }));
        }
        let names = || self.stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(",");
        if self.stages.len() < 2 {
            return Err(BadStages(format!("{:?} has {} stage(s); a pipeline needs a source and a sink", names(), self.stages.len())));
        }
        if !self.stages[0].is_source() {
            return Err(BadStages(format!("{:?} must start with a source stage (e.g. producer or h2d)", names())));
        }
        if !self.stages[self.stages.len() - 1].is_sink() {
            return Err(BadStages(format!("{:?} must end with a sink stage (e.g. reduce or d2h)", names())));
        }
        if let Some(s) = self.stages[1..self.stages.len() - 1].iter().find(|s| !matches!(s.kind(), Kind::Map(_))) {
            return Err(BadStages(format!("{:?}: {} can only be the first or last stage; middle stages are map stages", names(), s.name())));
        }
        for t in self.ring_types()? {
            if t.size() == 0 || t.align() > 16 {
                return Err(BadStages(format!(
                    "element type {t} ({} bytes, aligned to {}) is not supported: elements need 1 byte or more and alignment of at most 16",
                    t.size(),
                    t.align()
                )));
            }
            // Every size in bytes must fit the address space (what is too
            // large for the device is refused later, against its memory).
            let slot = (self.chunk_elements.min(self.total_elements) as u128 * t.size() as u128).next_multiple_of(256);
            let (ring, total) = (slot * self.slots as u128, self.total_elements as u128 * t.size() as u128);
            if ring.max(total) > isize::MAX as u128 {
                return Err(BadStages(format!(
                    "{} elements of {t} in chunks of {} with K={} do not fit in memory at all",
                    self.total_elements, self.chunk_elements, self.slots
                )));
            }
        }
        Ok(())
    }
}

pub use crate::builtin::parse_stages;

// Launches name grains, which the executor defines; the old path stays.
pub use crate::exec::Launch;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    /// Every grain's refusal comes from the spec alone (no GPU), one line.
    #[test]
    fn launches_a_spec_cannot_run_are_refused_from_the_spec() {
        let stream = PipelineSpec::new(Workload::Stream);
        let generate = PipelineSpec::new(Workload::Generate);
        for (spec, launch, want) in [
            (&stream, Launch::Flags, "stage h2d has no flags form"),
            (&stream, Launch::Pdl { graph: false }, "the pdl grain cannot run this pipeline"),
            (&generate.clone().slots(1000), Launch::Flags, "at most"),
            (&generate.clone().placement(vec![0, 1, 1]), Launch::Warps, "placed on several GPUs"),
            (&stream.clone().stages(vec![builtin::h2d(), builtin::d2h()]), Launch::Warps, "the warps grain cannot run this pipeline"),
        ] {
            let e = spec.check_launch(launch).unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{launch:?}: {e}");
        }
        for launch in [Launch::Streams, Launch::Graph, Launch::Flags, Launch::Warps, Launch::Pdl { graph: true }] {
            generate.check_launch(launch).unwrap();
        }
        generate.clone().placement(vec![0, 1, 1]).check_launch(Launch::Graph).unwrap();
    }
}
