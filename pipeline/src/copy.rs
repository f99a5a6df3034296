//! The copy stages, which the model and the executor need without the
//! catalog: `h2d` (a source from pinned host input), `d2h` (a sink into
//! pinned host output) and the peer copy the pipeline inserts between two
//! GPUs. [`crate::builtin`] lists them with the other built-in stages.
use crate::PipelineError;
use crate::elem::{ElemType, HostChunk, show_elem};
use crate::stage::{ChunkInfo, Kind, MapStage, OnGpu, Op, Port, Setup, Sink, SinkStage, SourceStage, Stage};
use cudarc::driver::{DevicePtr, DevicePtrMut};
use pc_runtime::copy;
use std::sync::Arc;

type Result<T, E = PipelineError> = std::result::Result<T, E>;

fn cuda(what: &str) -> impl FnOnce(cudarc::driver::DriverError) -> PipelineError + '_ {
    move |e| PipelineError::Runtime(pc_runtime::Error::cuda(what)(e))
}

impl Stage {
    /// Source: a copy of each chunk from pinned host input (the source's
    /// element type is the next stage's).
    pub fn h2d() -> Stage {
        self::h2d()
    }

    /// Sink: a copy of each chunk into pinned host output.
    pub fn d2h() -> Stage {
        self::d2h()
    }
}

/// `h2d`: source copying each chunk from pinned host input.
pub fn h2d() -> Stage {
    Stage::new("h2d", "source: copy from pinned host input (the next stage's element type)", Kind::Source(Arc::new(H2d)))
}

/// `d2h`: sink copying each chunk into pinned host output.
pub fn d2h() -> Stage {
    Stage::new("d2h", "sink: copy into pinned host output (the stage before's element type)", Kind::Sink(Arc::new(D2h)))
}

struct H2d;

impl SourceStage for H2d {
    fn output(&self) -> Port {
        Port::Any
    }
    fn reads_host(&self) -> bool {
        true
    }
    fn prepare(&self, _setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        Ok(Box::new(HostCopy))
    }
    fn reference(&self, _chunk: &ChunkInfo, elem: ElemType, host: Option<&[u8]>) -> Result<HostChunk, String> {
        let host = host.ok_or("h2d has no host input")?;
        Ok(HostChunk::from_bytes(elem, host))
    }
}

struct D2h;

impl SinkStage for D2h {
    fn input(&self) -> Port {
        Port::Any
    }
    fn writes_host(&self) -> bool {
        true
    }
    fn prepare(&self, _setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        Ok(Box::new(HostCopy))
    }
    fn check(&self, expected: &HostChunk, got: Sink<'_>) -> Option<(u64, String)> {
        let Sink::Host(got) = got else { return Some((1, "d2h: no host output".into())) };
        let size = expected.elem().size();
        let want = expected.bytes();
        if got.len() != want.len() {
            return Some((expected.len() as u64, format!("{} bytes came back, {} expected", got.len(), want.len())));
        }
        let wrong: Vec<usize> = (0..expected.len()).filter(|&i| got[i * size..(i + 1) * size] != want[i * size..(i + 1) * size]).collect();
        let &i = wrong.first()?;
        let show = |b: &[u8]| show_elem(expected.elem(), &b[i * size..(i + 1) * size]);
        Some((wrong.len() as u64, format!("{} of {} elements differ; first [+{i}] = {}, want {}", wrong.len(), expected.len(), show(got), show(want))))
    }
}

/// A stage that copies each chunk from a ring on one GPU into a ring on
/// another (placement: `PipelineSpec::placement`), inserted by the pipeline
/// where two neighbouring stages run on different GPUs. It runs on the
/// reading GPU's stream; with peer access enabled the copy goes over the link
/// between the GPUs (NVLink or PCIe), otherwise the driver stages it through
/// the host. Its reference is the identity.
/// `direct`: the GPUs reach each other's memory (peer access enabled).
pub fn peer_copy(elem: ElemType, from: usize, to: usize, direct: bool) -> Stage {
    Stage::new(
        format!("copy-gpu{from}-gpu{to}"),
        format!("{elem} -> {elem}: peer copy from GPU {from} to GPU {to}"),
        Kind::Map(Arc::new(PeerCopy { elem, direct })),
    )
}

/// Whether `stage` is a peer copy that [`peer_copy`] made.
pub fn is_peer_copy(stage: &Stage) -> bool {
    // By its name and description, which only `peer_copy` writes together.
    stage.name().starts_with("copy-gpu") && stage.about().contains(": peer copy from GPU ")
}

struct PeerCopy {
    elem: ElemType,
    direct: bool,
}

impl MapStage for PeerCopy {
    fn input(&self) -> ElemType {
        self.elem
    }
    fn output(&self) -> ElemType {
        self.elem
    }
    fn prepare(&self, _setup: &mut Setup<'_>) -> Result<Box<dyn OnGpu>> {
        Ok(Box::new(PeerCopyOnGpu { direct: self.direct }))
    }
    fn reference(&self, _history: &HostChunk, input: &HostChunk) -> Result<HostChunk, String> {
        Ok(input.clone())
    }
}

struct PeerCopyOnGpu {
    direct: bool,
}

// SAFETY: one copy on the op's stream, from the op's input slot to its
// output slot (on two GPUs; unified addressing names both).
unsafe impl OnGpu for PeerCopyOnGpu {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let stream = op.stream;
        let len = op.len();
        let (Some((elem, input)), Some((_, output))) = (op.input.as_ref(), op.output.as_mut()) else {
            return Err(PipelineError::BadStages(format!("copy stage {} has no input or output slot", op.stage)));
        };
        let bytes = len * elem.size();
        if bytes > input.len() || bytes > output.len() {
            return Err(PipelineError::BadStages(format!("copy stage {}: slot too small", op.stage)));
        }
        let (src_ctx, dst_ctx) = (cudarc::driver::DeviceSlice::stream(input).context(), stream.context());
        let (src, _) = input.device_ptr(stream);
        let (dst, _) = output.device_ptr_mut(stream);
        // SAFETY: both slots hold `bytes`, each in its own GPU's context.
        // With peer access a plain copy (unified addresses name both GPUs;
        // it also goes into a captured graph); without it the driver stages
        // the copy through the host (not capturable).
        let r = if self.direct {
            unsafe { copy::unified_async(dst, src, bytes, stream) }
        } else {
            unsafe { copy::peer_async(dst, dst_ctx, src, src_ctx, bytes, stream) }
        };
        r.map_err(cuda("enqueuing a copy between GPUs"))?;
        Ok(())
    }
}

/// The copy stages' work: one async copy between the slot and the chunk's
/// place in pinned host memory.
struct HostCopy;

// SAFETY: one copy on the op's stream, between the op's slot and the
// chunk's bytes of the pinned host buffer (which the pipeline keeps alive
// and untouched by the host until every stream has synchronized).
unsafe impl OnGpu for HostCopy {
    fn enqueue(&mut self, op: &mut Op<'_>) -> Result<()> {
        let stream = op.stream;
        if let (Some(src), Some((elem, slot))) = (op.host_in, op.output.as_mut()) {
            let bytes = op.chunk.range.clone().count() * elem.size();
            let (dst, _) = slot.device_ptr_mut(stream);
            // SAFETY: `src` addresses the chunk's `bytes` in pinned input; the slot holds as many.
            unsafe { copy::htod_async(dst, src, bytes, stream) }.map_err(cuda("enqueuing a host-to-device copy"))?;
        } else if let (Some(dst), Some((elem, slot))) = (op.host_out, op.input.as_ref()) {
            let bytes = op.chunk.range.clone().count() * elem.size();
            let (src, _) = slot.device_ptr(stream);
            // SAFETY: `dst` addresses the chunk's `bytes` in pinned output.
            unsafe { copy::dtoh_async(dst, src, bytes, stream) }.map_err(cuda("enqueuing a device-to-host copy"))?;
        } else {
            return Err(PipelineError::BadStages(format!("copy stage {} has no host buffer", op.stage)));
        }
        Ok(())
    }
}
