//! One run's operations on the GPU: the actions of [`super::plan`] (fork,
//! per-stage setup, every (stage, chunk) with exactly its graph waits, join),
//! each turned into its CUDA call.
use super::device::{EnqueueTo, enqueue_actions};
use super::error::{Result, err};
use super::part::Part;
use super::plan::{EventId, plan};
use crate::spec::PipelineSpec;
use crate::stage::{ChunkInfo, Op};
use crate::timeline::PendingSpan;
use cudarc::driver::{CudaEvent, CudaStream, LaunchConfig};
use ptx_kernels::DelayKernel;
use std::sync::Arc;

/// The pinned host buffers of copy stages (base addresses and element sizes).
pub(crate) struct HostBuffers {
    pub input: Option<*const u8>,
    pub input_size: usize,
    pub output: Option<*mut u8>,
    pub output_size: usize,
}

impl Part<'_> {
    /// Enqueues one run: exactly the actions of [`plan`] (the tested seam),
    /// walked by [`enqueue_actions`], plus timeline events around each
    /// operation when asked for.
    pub(crate) fn enqueue(&mut self, spec: &PipelineSpec, part: usize, host: &HostBuffers, timeline: Option<&mut Vec<PendingSpan>>) -> Result<()> {
        let local_origins: Vec<Option<Arc<CudaEvent>>> = vec![None; self.streams.len()];
        let actions = plan(&self.graph, self.streams.len());
        let mut on = OnPart { part: self, spec, index: part, host, timeline, local_origins };
        enqueue_actions(actions, &mut on)
    }

    pub(crate) fn event(&self, id: EventId) -> &CudaEvent {
        match id {
            EventId::Fork => &self.fork,
            EventId::Join(s) => &self.joins[s],
            EventId::Done { stage, index } => &self.events[stage][index],
        }
    }

    /// Stage `s` on local chunk `lc`, enqueued on `st`: an optional delay
    /// (the sync checker's slowed stage), then the stage's own work.
    fn op(&mut self, spec: &PipelineSpec, s: usize, lc: usize, slot: usize, st: &Arc<CudaStream>, host: &HostBuffers) -> Result<()> {
        let index = self.chunks.start + lc;
        let range = spec.chunk_range(index);
        let stages = self.stages.len();
        let at = |base: usize, size: usize| base + range.start as usize * size;
        let host_in = if s == 0 { host.input.map(|p| at(p as usize, host.input_size) as *const u8) } else { None };
        let host_out = if s + 1 == stages { host.output.map(|p| at(p as usize, host.output_size) as *mut u8) } else { None };
        let chunk = ChunkInfo { index, range, seed: spec.seed };
        self.op_at(s, chunk, lc, slot, st, (host_in, host_out), (spec.spin_of(s), spec.block_size))
    }

    /// Stage `s` on `chunk` (ring slot `slot`), enqueued on `st`, with the
    /// chunk's host input/output addresses (copy stages) and the (delay,
    /// block size) to use. Shared by runs and streams.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn op_at(
        &mut self,
        s: usize,
        chunk: ChunkInfo,
        lc: usize,
        slot: usize,
        st: &Arc<CudaStream>,
        (host_in, host_out): (Option<*const u8>, Option<*mut u8>),
        (spin, block_size): (u64, u32),
    ) -> Result<()> {
        let len = chunk.range.end - chunk.range.start;
        // Stages' raw driver calls (copies) act on the current context: the
        // stream's, which on a pipeline over several GPUs changes per stage.
        st.context().bind_to_thread().map_err(err("binding the stage's GPU"))?;
        if spin > 0 {
            let one = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: the delay kernel touches no memory.
            unsafe { DelayKernel::launch(&self.delay[s], st, one, spin) }?;
        }
        let cfg = self.stage_gpus[s].launch_config(len, block_size, None)?;
        let stages = self.stages.len();
        // The rings either side of stage s: ring s-1 is read, ring s written.
        let (before, after) = self.rings.split_at_mut(s);
        let input = before.last().map(|r| (r.elem, r.buf.slice(slot * r.slot_bytes..(slot + 1) * r.slot_bytes)));
        let output = if s + 1 < stages { after.first_mut().map(|r| (r.elem, r.buf.slice_mut(slot * r.slot_bytes..(slot + 1) * r.slot_bytes))) } else { None };
        let name = self.names[s].clone();
        let mut op = Op { stream: st, cfg, chunk, local_chunk: lc, input, output, host_in, host_out, stage: &name };
        self.stages[s].enqueue(&mut op)
    }
}

/// One run's actions as CUDA calls on a part's streams (the CUDA side of
/// the seam), with timeline events when `timeline` is given.
struct OnPart<'a, 'p> {
    part: &'a mut Part<'p>,
    spec: &'a PipelineSpec,
    /// The part's index (timeline spans).
    index: usize,
    host: &'a HostBuffers,
    timeline: Option<&'a mut Vec<PendingSpan>>,
    local_origins: Vec<Option<Arc<CudaEvent>>>,
}

impl EnqueueTo for OnPart<'_, '_> {
    fn wait(&mut self, stream: usize, event: EventId) -> Result<()> {
        let st = &self.part.streams[stream];
        st.wait(self.part.event(event)).map_err(err("waiting on an event"))?;
        // Stages on another GPU than stream 0 time against an origin of
        // their own, recorded right after the fork (see PendingSpan).
        if self.timeline.is_some() && event == EventId::Fork && st.context().cu_ctx() != self.part.streams[0].context().cu_ctx() {
            self.local_origins[stream] = Some(Arc::new(st.record_event(pc_runtime::stream::TIMING).map_err(err("recording a timeline origin"))?));
        }
        Ok(())
    }

    fn record(&mut self, stream: usize, event: EventId) -> Result<()> {
        self.part.event(event).record(&self.part.streams[stream]).map_err(err("recording an event"))
    }

    fn begin_run(&mut self, stream: usize, stage: usize) -> Result<()> {
        let st = self.part.streams[stream].clone();
        st.context().bind_to_thread().map_err(err("binding the stage's GPU"))?;
        self.part.stages[stage].begin_run(&st)
    }

    fn op(&mut self, stream: usize, stage: usize, chunk: usize, slot: usize) -> Result<()> {
        let timing = pc_runtime::stream::TIMING;
        let st = self.part.streams[stream].clone();
        let start = match self.timeline {
            Some(_) => Some(st.record_event(timing).map_err(err("recording a timeline event"))?),
            None => None,
        };
        self.part.op(self.spec, stage, chunk, slot, &st, self.host)?;
        // The end timestamp before the done event (the next action): a
        // waiter released by the done event then never appears to start
        // before it.
        if let (Some(tl), Some(start)) = (self.timeline.as_deref_mut(), start) {
            let end = st.record_event(timing).map_err(err("recording a timeline event"))?;
            let local_origin = self.local_origins[stream].clone();
            tl.push(PendingSpan { part: self.index, gpu: self.index, stage, chunk: self.part.chunks.start + chunk, start, end, local_origin });
        }
        Ok(())
    }
}
