//! One run's operations: fork every stream from stream 0, let each stage
//! set up its run, then every (stage, chunk) with exactly its graph waits,
//! then join every stream back into stream 0.
use super::part::Part;
use super::{Result, err};
use crate::spec::PipelineSpec;
use crate::stage::{ChunkInfo, Op};
use crate::timeline::PendingSpan;
use cudarc::driver::{CudaStream, LaunchConfig, sys};
use ptx_kernels::DelayKernel;
use std::sync::Arc;

/// The pinned host buffers of copy stages (base addresses and element sizes).
pub(super) struct HostBuffers {
    pub input: Option<*const u8>,
    pub input_size: usize,
    pub output: Option<*mut u8>,
    pub output_size: usize,
}

impl Part<'_> {
    fn stream(&self, stage: usize) -> &Arc<CudaStream> {
        &self.streams[stage.min(self.streams.len() - 1)]
    }

    pub fn enqueue(&mut self, spec: &PipelineSpec, part: usize, host: &HostBuffers, mut timeline: Option<&mut Vec<PendingSpan>>) -> Result<()> {
        let s0 = self.streams[0].clone();
        self.fork.record(&s0).map_err(err("recording the fork event"))?;
        for s in &self.streams[1..] {
            s.wait(&self.fork).map_err(err("waiting on the fork event"))?;
        }
        for s in 0..self.stages.len() {
            let st = self.stream(s).clone();
            self.stages[s].begin_run(&st)?;
        }
        let pool = self.graph.event_pool_size();
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let order: Vec<(usize, usize)> = self.graph.enqueue_order().collect();
        for (s, lc) in order {
            let st = self.streams[s.min(self.streams.len() - 1)].clone();
            for e in self.graph.waits_of(s, lc) {
                st.wait(&self.events[e.from.0][e.from.1 % pool]).map_err(err("waiting on a filled/freed event"))?;
            }
            let start = match timeline {
                Some(_) => Some(st.record_event(timing).map_err(err("recording a timeline event"))?),
                None => None,
            };
            self.op(spec, s, lc, &st, host)?;
            // The end timestamp before the done event: a waiter released
            // by the done event then never appears to start before it.
            if let (Some(tl), Some(start)) = (timeline.as_deref_mut(), start) {
                let end = st.record_event(timing).map_err(err("recording a timeline event"))?;
                tl.push(PendingSpan { part, gpu: part, stage: s, chunk: self.chunks.start + lc, start, end });
            }
            if self.graph.signals(s, lc) {
                self.events[s][lc % pool].record(&st).map_err(err("recording a stage's done event"))?;
            }
        }
        for (s, j) in self.streams.iter().zip(&self.joins).skip(1) {
            j.record(s).map_err(err("recording a join event"))?;
            s0.wait(j).map_err(err("joining a stream"))?;
        }
        Ok(())
    }

    /// Stage `s` on local chunk `lc`, enqueued on `st`: an optional delay
    /// (the sync checker's slowed stage), then the stage's own work.
    fn op(&mut self, spec: &PipelineSpec, s: usize, lc: usize, st: &Arc<CudaStream>, host: &HostBuffers) -> Result<()> {
        let index = self.chunks.start + lc;
        let range = spec.chunk_range(index);
        let len = range.end - range.start;
        let spin = spec.spin_of(s);
        if spin > 0 {
            let one = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: the delay kernel touches no memory.
            unsafe { DelayKernel::launch(&self.delay, st, one, spin) }?;
        }
        let cfg = self.gpu.launch_config(len, spec.block_size, None)?;
        let slot = lc % self.graph.slots();
        let stages = self.stages.len();
        // The rings either side of stage s: ring s-1 is read, ring s written.
        let (before, after) = self.rings.split_at_mut(s);
        let input = before.last().map(|r| (r.elem, r.buf.slice(slot * r.slot_bytes..(slot + 1) * r.slot_bytes)));
        let output = if s + 1 < stages { after.first_mut().map(|r| (r.elem, r.buf.slice_mut(slot * r.slot_bytes..(slot + 1) * r.slot_bytes))) } else { None };
        let at = |base: usize, size: usize| base + range.start as usize * size;
        let host_in = if s == 0 { host.input.map(|p| at(p as usize, host.input_size) as *const u8) } else { None };
        let host_out = if s + 1 == stages { host.output.map(|p| at(p as usize, host.output_size) as *mut u8) } else { None };
        let name = spec.stages[s].name();
        let mut op = Op { stream: st, cfg, chunk: ChunkInfo { index, range, seed: spec.seed }, local_chunk: lc, input, output, host_in, host_out, stage: name };
        self.stages[s].enqueue(&mut op)
    }
}
