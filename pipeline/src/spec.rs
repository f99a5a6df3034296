//! What a pipeline is: its stages, ring size, chunking and launch shape.
use crate::PipelineError;
use kernel_math::consume;

/// A kernel that maps one slot to another, element by element or chunk by
/// chunk, with the CPU reference that defines what it must compute.
/// Its PTX signature is `(input: *const f32, output: *mut f32, n: u64, spin: u64)`.
#[derive(Debug, Clone, Copy)]
pub struct MapKernel {
    /// Stage name on the command line.
    pub name: &'static str,
    /// PTX entry in `ptx_kernels::KERNELS`.
    pub entry: &'static str,
    /// What the kernel computes on one chunk, on the CPU.
    pub reference: fn(&[f32], &mut [f32]),
    /// One line for `--help` and errors.
    pub about: &'static str,
    /// The PTX module holding `entry`: `None` for the embedded
    /// `ptx_kernels::KERNELS`, or a module of your own (see [`MapKernel::custom`]).
    pub module: Option<&'static str>,
}

impl MapKernel {
    /// A map stage from a kernel crate of your own: build it to PTX with
    /// `nvptx-builder` in your build script, embed the PTX
    /// (`include_str!(env!(...))`), and give the entry and the CPU reference.
    /// The entry must have the map signature
    /// `(input: *const f32, output: *mut f32, n: u64, spin: u64)`.
    ///
    /// ```
    /// use pc_pipeline::spec::{MapKernel, Stage};
    /// const MY_PTX: &str = ".version 7.0\n.target sm_70\n.address_size 64\n// ...";
    /// const NEGATE: MapKernel = MapKernel::custom("negate", MY_PTX, "negate_kernel", |i, o| {
    ///     o.iter_mut().zip(i).for_each(|(o, x)| *o = -x)
    /// });
    /// let stages = vec![Stage::H2d, Stage::Map(NEGATE), Stage::D2h];
    /// # assert_eq!(stages[1].name(), "negate");
    /// ```
    pub const fn custom(name: &'static str, ptx: &'static str, entry: &'static str, reference: fn(&[f32], &mut [f32])) -> MapKernel {
        MapKernel { name, entry, reference, about: "a user's kernel", module: Some(ptx) }
    }
}

impl PartialEq for MapKernel {
    fn eq(&self, other: &Self) -> bool {
        self.entry == other.entry && self.name == other.name
    }
}
impl Eq for MapKernel {}

/// The map kernels a pipeline can name. To add one, see the README
/// ("Adding a stage").
pub const MAP_KERNELS: &[MapKernel] = &[
    MapKernel {
        name: "consumer",
        entry: ptx_kernels::CONSUMER_VEC,
        reference: |input, output| output.iter_mut().zip(input).for_each(|(o, &x)| *o = consume(x)),
        about: "doubles each element (the seed's consumer)",
        module: None,
    },
    MapKernel {
        name: "moving-average",
        entry: ptx_kernels::MOVING_AVERAGE,
        reference: moving_average_reference,
        about: "3-point moving average within each chunk (edges repeat their element)",
        module: None,
    },
];

/// CPU reference of `moving_average_kernel` over one chunk.
fn moving_average_reference(input: &[f32], output: &mut [f32]) {
    let n = input.len();
    for i in 0..n {
        let x = input[i];
        let left = if i > 0 { input[i - 1] } else { x };
        let right = if i + 1 < n { input[i + 1] } else { x };
        output[i] = kernel_math::moving_average3(left, x, right);
    }
}

/// One stage of a pipeline. Each runs on its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Source: `producer_vec_kernel` writes `produce(i, seed)` for the chunk's indices.
    Producer,
    /// Source: copies the chunk from pinned host input to the device.
    H2d,
    /// Middle: a map kernel, slot to slot.
    Map(MapKernel),
    /// Sink: `reduce_kernel` reduces the chunk to a `Reduction` (sum, min, max,
    /// histogram), the only data that comes back.
    Reduce,
    /// Sink: copies the chunk to pinned host output.
    D2h,
}

impl Stage {
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Producer => "producer",
            Stage::H2d => "h2d",
            Stage::Map(k) => k.name,
            Stage::Reduce => "reduce",
            Stage::D2h => "d2h",
        }
    }

    /// Every stage name that [`Stage::parse`] accepts.
    pub fn names() -> Vec<&'static str> {
        let mut v = vec!["producer", "h2d"];
        v.extend(MAP_KERNELS.iter().map(|k| k.name));
        v.extend(["reduce", "d2h"]);
        v
    }

    pub fn parse(name: &str) -> Result<Stage, PipelineError> {
        Ok(match name.trim() {
            "producer" => Stage::Producer,
            "h2d" => Stage::H2d,
            "reduce" => Stage::Reduce,
            "d2h" => Stage::D2h,
            other => Stage::Map(
                *MAP_KERNELS
                    .iter()
                    .find(|k| k.name == other)
                    .ok_or_else(|| PipelineError::UnknownStage { name: other.to_string(), known: Stage::names().join(", ") })?,
            ),
        })
    }

    fn is_source(&self) -> bool {
        matches!(self, Stage::Producer | Stage::H2d)
    }
    fn is_sink(&self) -> bool {
        matches!(self, Stage::Reduce | Stage::D2h)
    }
}

/// The two built-in workloads, as default stage lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// producer -> consumer -> reduce: only the reductions come back.
    Generate,
    /// h2d -> consumer -> d2h: pinned host input through the GPU to pinned host output.
    Stream,
}

impl Workload {
    pub fn default_stages(self) -> Vec<Stage> {
        let consumer = Stage::Map(MAP_KERNELS[0]);
        match self {
            Workload::Generate => vec![Stage::Producer, consumer, Stage::Reduce],
            Workload::Stream => vec![Stage::H2d, consumer, Stage::D2h],
        }
    }
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
    /// purpose: a kernel stage's threads spin before touching data; a copy
    /// stage gets a one-thread spin kernel on its stream before the copy.
    pub spin_ns: Vec<u64>,
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

    /// Whether the sink is `reduce` (else `d2h`).
    pub fn reduces(&self) -> bool {
        self.stages.last() == Some(&Stage::Reduce)
    }

    /// Whether the source is `h2d` (host input needed).
    pub fn reads_host(&self) -> bool {
        self.stages.first() == Some(&Stage::H2d)
    }

    /// Spin of stage `s`, in nanoseconds.
    pub fn spin_of(&self, s: usize) -> u64 {
        self.spin_ns.get(s).copied().unwrap_or(0)
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
            return Err(BadStages(format!("{:?} must start with a source stage (producer or h2d)", names())));
        }
        if !self.stages[self.stages.len() - 1].is_sink() {
            return Err(BadStages(format!("{:?} must end with a sink stage (reduce or d2h)", names())));
        }
        if let Some(s) = self.stages[1..self.stages.len() - 1].iter().find(|s| !matches!(s, Stage::Map(_))) {
            return Err(BadStages(format!(
                "{:?}: {} can only be the first or last stage; middle stages are map kernels ({})",
                names(),
                s.name(),
                MAP_KERNELS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(())
    }
}

/// Parses a comma-separated stage list, e.g. `"h2d,consumer,d2h"`.
pub fn parse_stages(list: &str) -> Result<Vec<Stage>, PipelineError> {
    list.split(',').filter(|s| !s.trim().is_empty()).map(Stage::parse).collect()
}
