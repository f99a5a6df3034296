//! One GPU's share of a pipeline: its streams, rings, prepared stages and
//! events, the device memory budget they are checked against before
//! anything is allocated, and a teardown that waits for the GPU.
use super::{Result, err};
use crate::PipelineError;
use crate::elem::ElemType;
use crate::graph::EventGraph;
use crate::spec::PipelineSpec;
use crate::stage::{OnGpu, Setup};
use cudarc::driver::{CudaEvent, CudaGraph, CudaSlice, CudaStream};
use kernel_math::Reduction;
use pc_runtime::Error;
use pc_runtime::gpu::Gpu;
use pc_runtime::launch::Kernel;
use ptx_kernels::DelayKernel;
use std::ops::Range;
use std::sync::Arc;

/// Each slot starts on this boundary, so every element type is aligned and
/// 16-byte (vectorized) accesses are possible in every slot.
pub(super) const SLOT_ALIGN: usize = 256;

/// The ring between stage `r` and `r + 1`: K slots of one element type.
pub(crate) struct Ring {
    pub elem: ElemType,
    pub buf: CudaSlice<u8>,
    pub slot_bytes: usize,
}

pub(crate) struct Part<'g> {
    pub gpu: &'g Gpu,
    /// Global chunk indices of this part.
    pub chunks: Range<usize>,
    pub streams: Vec<Arc<CudaStream>>,
    pub rings: Vec<Ring>,
    pub stages: Vec<Box<dyn OnGpu>>,
    /// The stages' names (errors).
    pub names: Vec<String>,
    pub delay: Kernel<DelayKernel>,
    /// `events[stage][c % pool]`: the "done" event of (stage, c).
    pub events: Vec<Vec<CudaEvent>>,
    pub fork: CudaEvent,
    pub joins: Vec<CudaEvent>,
    pub graph: EventGraph,
    pub cuda_graph: Option<CudaGraph>,
    /// The flags grain's kernels and counters, from its first run.
    pub flags: Option<super::flags::FlagsPart>,
    /// The PDL grains' kernels and records, loaded at their first run.
    pub pdl: Option<super::pdl::PdlChain>,
    /// The warps grain's ring stages, prepared at its first run.
    pub warps: Option<super::warps::WarpStages>,
}

/// Device bytes a part needs for its rings: per ring, K slots of the chunk's
/// elements, each slot rounded up to [`SLOT_ALIGN`].
pub fn ring_bytes(ring_types: &[ElemType], slot_elements: u64, slots: usize) -> u128 {
    ring_types.iter().map(|t| slot_bytes(*t, slot_elements) as u128 * slots as u128).sum()
}

fn slot_bytes(t: ElemType, elements: u64) -> usize {
    (elements as usize * t.size()).next_multiple_of(SLOT_ALIGN)
}

impl<'g> Part<'g> {
    pub fn new(gpu: &'g Gpu, spec: &PipelineSpec, ring_types: &[ElemType], chunks: Range<usize>) -> Result<Part<'g>> {
        let stages = spec.stages.len();
        let local = chunks.len();
        let slots = spec.slots.min(local).max(1);
        let slot_elems = spec.chunk_elements.min(spec.total_elements);
        let records = if spec.reduces() { local as u128 * std::mem::size_of::<Reduction>() as u128 * 2 } else { 0 };
        let needed = ring_bytes(ring_types, slot_elems, slots) + records;
        let (free, total) = gpu.memory()?;
        if needed > free as u128 {
            return Err(Error::TooLarge { elements: spec.total_elements, needed, free: free as u128, total: total as u128, device: gpu.info().index }.into());
        }

        // SAFETY: this part orders its streams only by the event graph's
        // events, and synchronizes every stream before its memory is freed
        // (Drop, and every error path of a run).
        let streams: Vec<Arc<CudaStream>> = (0..if spec.serial { 1 } else { stages }).map(|_| unsafe { gpu.stream() }).collect::<Result<_, _>>()?;
        let s0 = streams[0].clone();
        let mut rings = Vec::new();
        for (r, &elem) in ring_types.iter().enumerate() {
            let slot_bytes = slot_bytes(elem, slot_elems);
            // SAFETY: poisoned right below, on the same stream, before any use.
            let mut buf = unsafe { s0.alloc::<u8>(slot_bytes * slots) }.map_err(err(&format!("allocating ring {r}")))?;
            // SAFETY: only stream 0 has touched the ring; it is synchronized below.
            unsafe { pc_runtime::gpu::poison(&s0, &mut buf) }?;
            rings.push(Ring { elem, buf, slot_bytes });
        }
        let mut modules = Vec::new();
        let mut setup = Setup { gpu, block_size: spec.block_size, local_chunks: local, stream: &s0, modules: &mut modules };
        let prepared = spec.stages.iter().map(|st| st.prepare(&mut setup)).collect::<Result<Vec<_>>>()?;
        let delay = setup.module(ptx_kernels::PTX, "the embedded kernels")?.kernel::<DelayKernel>()?;
        let graph = if spec.serial { EventGraph::unordered(stages, local, slots) } else { EventGraph::new(stages, local, slots) };
        // SAFETY: events only; no memory is touched through the context.
        let ctx = unsafe { gpu.context() };
        let event = || ctx.new_event(None).map_err(err("creating an event"));
        let events = (0..stages).map(|_| (0..graph.event_pool_size()).map(|_| event()).collect::<Result<Vec<_>>>()).collect::<Result<Vec<_>>>()?;
        let fork = event()?;
        let joins = (0..streams.len()).map(|_| event()).collect::<Result<Vec<_>>>()?;
        s0.synchronize().map_err(err("setting up the pipeline"))?;
        let names = spec.stages.iter().map(|s| s.name().to_string()).collect();
        Ok(Part {
            gpu,
            chunks,
            streams,
            rings,
            stages: prepared,
            names,
            delay,
            events,
            fork,
            joins,
            graph,
            cuda_graph: None,
            flags: None,
            pdl: None,
            warps: None,
        })
    }

    /// Poison in every ring slot, then wait for it.
    pub fn poison_rings(&mut self) -> Result<()> {
        let s0 = self.streams[0].clone();
        for ring in &mut self.rings {
            // SAFETY: no run is in flight (runs synchronize before they
            // return); stream 0 is synchronized right after.
            unsafe { pc_runtime::gpu::poison(&s0, &mut ring.buf) }?;
        }
        s0.synchronize().map_err(err("poisoning the rings"))
    }

    /// The sink's per-chunk records (reduce), after the run synchronized;
    /// from its flag form after a flags run.
    pub fn records(&mut self, launch: super::Launch) -> Result<Vec<Reduction>> {
        let s0 = self.streams[0].clone();
        if launch == super::Launch::Flags {
            return match self.flags.as_mut().and_then(|f| f.sink()) {
                Some(sink) => sink.records(&s0),
                None => Err(PipelineError::BadStages("no flags run".into())),
            };
        }
        match self.stages.last_mut() {
            Some(sink) => sink.records(&s0),
            None => Err(PipelineError::BadStages("no stages".into())),
        }
    }

    /// Waits for every stream, ignoring errors (which the caller already has).
    pub fn synchronize_quietly(&self) {
        for s in &self.streams {
            let _ = s.synchronize();
        }
    }
}

impl Drop for Part<'_> {
    /// Rings, records and the host buffers the copies target are freed
    /// after this: nothing may still run on them.
    fn drop(&mut self) {
        self.synchronize_quietly();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_budgeted_per_type() {
        let (f32t, u8t, f64t) = (ElemType::of::<f32>(), ElemType::of::<u8>(), ElemType::of::<f64>());
        assert_eq!(slot_bytes(u8t, 1), 256);
        assert_eq!(slot_bytes(f32t, 64), 256);
        assert_eq!(slot_bytes(f32t, 65), 512);
        assert_eq!(ring_bytes(&[u8t, f32t, f64t], 1000, 3), 3 * (1024 + 4096 + 8192));
    }
}
