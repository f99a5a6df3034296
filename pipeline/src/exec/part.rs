//! One GPU's share of a pipeline: its streams, rings, prepared stages and
//! events, the device memory budget they are checked against before
//! anything is allocated, and a teardown that waits for the GPU.
use super::error::{Result, err};
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
use std::any::{Any, TypeId};
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

/// One GPU's share of a pipeline, as a [`super::Grain`]'s hooks see it:
/// its chunks and the grains' states ([`Part::state`]). Its streams, rings
/// and stages stay the executor's: what runs on them is the event graph's
/// (or a grain's of this crate, under its contract).
pub struct Part<'g> {
    /// The GPU of stage 0 (of every stage, unless the pipeline is placed).
    pub(crate) gpu: &'g Gpu,
    /// Each stage's GPU (placement: see [`PipelineSpec::placement`]).
    pub(crate) stage_gpus: Vec<&'g Gpu>,
    /// Global chunk indices of this part.
    pub(crate) chunks: Range<usize>,
    pub(crate) streams: Vec<Arc<CudaStream>>,
    pub(crate) rings: Vec<Ring>,
    pub(crate) stages: Vec<Box<dyn OnGpu>>,
    /// The stages' names (errors).
    pub(crate) names: Vec<String>,
    /// The delay kernel on each stage's GPU.
    pub(crate) delay: Vec<Kernel<DelayKernel>>,
    /// `events[stage][c % pool]`: the "done" event of (stage, c).
    pub(crate) events: Vec<Vec<CudaEvent>>,
    pub(crate) fork: CudaEvent,
    pub(crate) joins: Vec<CudaEvent>,
    pub(crate) graph: EventGraph,
    pub(crate) cuda_graph: Option<CudaGraph>,
    /// Each grain's own state on this part (kernels, counters, records,
    /// replacement stages), made by the grain at its first run and kept
    /// for the next, keyed by the state's type: the part names no grain.
    grain_state: GrainStates,
}

/// A part's prepared stages, lent to [`GrainState::select`]. Opaque
/// outside this crate: a swapped stage would leave a captured CUDA graph
/// or another grain's swap pointing at freed device memory, so only the
/// built-in grains, whose swaps keep those invariants, may touch them.
pub struct PartStages<'a>(pub(crate) &'a mut [Box<dyn OnGpu>]);

/// A grain's state on one part, which only that grain reads (through
/// [`Part::state`]); the part reaches it through these hooks alone.
pub trait GrainState: Any {
    /// Before every run, nothing running: put this grain's replacement
    /// stages into `stages` when `on` (the run is this grain's), the
    /// part's own back otherwise. Host work only; a grain of another
    /// crate cannot swap stages (see [`PartStages`]).
    fn select(&mut self, _stages: PartStages<'_>, _on: bool) {}
    /// The per-stage delays changed: drop what captured them (a graph).
    fn delays_changed(&mut self) {}
}

/// What stands in for a state while [`Part::with_state`] lends it out.
struct Taken;

impl GrainState for Taken {}

/// The grains' states of a part, at most one per type.
#[derive(Default)]
struct GrainStates(Vec<(TypeId, Box<dyn GrainState>)>);

impl GrainStates {
    fn get<T: GrainState>(&self) -> Option<&T> {
        let (_, s) = self.0.iter().find(|(id, _)| *id == TypeId::of::<T>())?;
        (&**s as &dyn Any).downcast_ref()
    }

    fn get_mut<T: GrainState>(&mut self) -> Option<&mut T> {
        let (_, s) = self.0.iter_mut().find(|(id, _)| *id == TypeId::of::<T>())?;
        (&mut **s as &mut dyn Any).downcast_mut()
    }

    fn set<T: GrainState>(&mut self, state: T) {
        let id = TypeId::of::<T>();
        self.0.retain(|(k, _)| *k != id);
        self.0.push((id, Box::new(state)));
    }

    /// The state of type `T`, a placeholder left in its place.
    fn take<T: GrainState>(&mut self) -> Option<Box<dyn GrainState>> {
        let i = self.0.iter().position(|(id, _)| *id == TypeId::of::<T>())?;
        Some(std::mem::replace(&mut self.0[i].1, Box::new(Taken)))
    }

    /// `s` back in the placeholder [`GrainStates::take`] left; if a state
    /// of type `T` was set meanwhile, that one stays.
    fn put_back<T: GrainState>(&mut self, s: Box<dyn GrainState>) {
        let id = TypeId::of::<T>();
        match self.0.iter().position(|(k, _)| *k == id) {
            Some(j) if (&*self.0[j].1 as &dyn Any).is::<Taken>() => self.0[j].1 = s,
            Some(_) => {}
            None => self.0.push((id, s)),
        }
    }
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
    pub(crate) fn new(gpu: &'g Gpu, spec: &PipelineSpec, ring_types: &[ElemType], chunks: Range<usize>) -> Result<Part<'g>> {
        Part::placed(&vec![gpu; spec.stages.len()], spec, ring_types, chunks)
    }

    /// A part whose stage `s` runs on `stage_gpus[s]`: its stream, its
    /// kernels and the ring it writes live there (a stage reading a ring on
    /// another GPU is a peer copy, see `copy::peer_copy`).
    pub(crate) fn placed(stage_gpus: &[&'g Gpu], spec: &PipelineSpec, ring_types: &[ElemType], chunks: Range<usize>) -> Result<Part<'g>> {
        let stages = spec.stages.len();
        let gpu = stage_gpus[0];
        let local = chunks.len();
        let slots = spec.slots.min(local).max(1);
        let slot_elems = spec.chunk_elements.min(spec.total_elements);
        // The budget, per GPU: the rings its stages write, the sink's records.
        let mut seen: Vec<usize> = Vec::new();
        for g in stage_gpus {
            let dev = g.info().index;
            if seen.contains(&dev) {
                continue;
            }
            seen.push(dev);
            let on = |s: usize| stage_gpus[s].info().index == dev;
            let rings: Vec<ElemType> = ring_types.iter().enumerate().filter(|(r, _)| on(*r)).map(|(_, t)| *t).collect();
            let records = if spec.reduces() && on(stages - 1) { local as u128 * std::mem::size_of::<Reduction>() as u128 * 2 } else { 0 };
            let needed = ring_bytes(&rings, slot_elems, slots) + records;
            let (free, total) = g.memory()?;
            if needed > free as u128 {
                return Err(Error::TooLarge { elements: spec.total_elements, needed, free: free as u128, total: total as u128, device: dev }.into());
            }
        }

        // SAFETY: this part orders its streams only by the event graph's
        // events, and synchronizes every stream before its memory is freed
        // (Drop, and every error path of a run).
        let streams: Vec<Arc<CudaStream>> = (0..if spec.serial { 1 } else { stages }).map(|s| unsafe { stage_gpus[s].stream() }).collect::<Result<_, _>>()?;
        let mut rings = Vec::new();
        for (r, &elem) in ring_types.iter().enumerate() {
            let slot_bytes = slot_bytes(elem, slot_elems);
            // On the writer's GPU, through the writer's stream.
            let st = &streams[r.min(streams.len() - 1)];
            // SAFETY: poisoned right below, on the same stream, before any use.
            let mut buf = unsafe { st.alloc::<u8>(slot_bytes * slots) }.map_err(err(&format!("allocating ring {r}")))?;
            // SAFETY: only this stream has touched the ring; every stream is synchronized below.
            unsafe { pc_runtime::gpu::poison(st, &mut buf) }?;
            rings.push(Ring { elem, buf, slot_bytes });
        }
        let mut modules = Vec::new();
        let mut prepared = Vec::new();
        let mut delay = Vec::new();
        for (s, st) in spec.stages.iter().enumerate() {
            let mut setup = Setup {
                gpu: stage_gpus[s],
                block_size: spec.block_size,
                local_chunks: local,
                stream: &streams[s.min(streams.len() - 1)],
                modules: &mut modules,
            };
            prepared.push(st.prepare(&mut setup)?);
            delay.push(setup.module(ptx_kernels::PTX, "the embedded kernels")?.kernel::<DelayKernel>()?);
        }
        let graph = if spec.serial { EventGraph::unordered(stages, local, slots) } else { EventGraph::new(stages, local, slots) };
        // Each event on the GPU of the stream that records it.
        // SAFETY: events only; no memory is touched through the contexts.
        let event = |g: &Gpu| unsafe { g.context() }.new_event(None).map_err(err("creating an event"));
        let events = (0..stages).map(|s| (0..graph.event_pool_size()).map(|_| event(stage_gpus[s])).collect::<Result<Vec<_>>>()).collect::<Result<Vec<_>>>()?;
        let fork = event(gpu)?;
        let joins = (0..streams.len()).map(|s| event(stage_gpus[s])).collect::<Result<Vec<_>>>()?;
        for st in &streams {
            st.synchronize().map_err(err("setting up the pipeline"))?;
        }
        let names = spec.stages.iter().map(|s| s.name().to_string()).collect();
        Ok(Part {
            gpu,
            stage_gpus: stage_gpus.to_vec(),
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
            grain_state: GrainStates::default(),
        })
    }

    /// Poison in every ring slot, then wait for it.
    pub(crate) fn poison_rings(&mut self) -> Result<()> {
        let n = self.streams.len();
        for (r, ring) in self.rings.iter_mut().enumerate() {
            // The writer's stream: the ring lives on its GPU.
            let st = self.streams[r.min(n - 1)].clone();
            // SAFETY: no run is in flight (runs synchronize before they
            // return); every stream is synchronized right after.
            unsafe { pc_runtime::gpu::poison(&st, &mut ring.buf) }?;
        }
        for st in &self.streams {
            st.synchronize().map_err(err("poisoning the rings"))?;
        }
        Ok(())
    }

    /// Global indices of the chunks this part runs.
    pub fn chunks(&self) -> Range<usize> {
        self.chunks.clone()
    }

    /// The state of type `T` (one grain's), if that grain made it.
    pub fn state<T: GrainState>(&self) -> Option<&T> {
        self.grain_state.get()
    }

    /// [`Part::state`], mutable.
    pub fn state_mut<T: GrainState>(&mut self) -> Option<&mut T> {
        self.grain_state.get_mut()
    }

    /// Keeps `state`, replacing one of its type.
    pub fn set_state<T: GrainState>(&mut self, state: T) {
        self.grain_state.set(state)
    }

    /// `f` with the part and its state of type `T` both borrowed (`None`:
    /// no such state). The state is out of the part while `f` runs; a
    /// state of that type `f` sets stays in its place.
    pub fn with_state<T: GrainState, R>(&mut self, f: impl FnOnce(&mut Self, &mut T) -> R) -> Option<R> {
        let mut s = self.grain_state.take::<T>()?;
        let r = (&mut *s as &mut dyn Any).downcast_mut::<T>().map(|t| f(self, t));
        self.grain_state.put_back::<T>(s);
        r
    }

    /// Before a run: the stages of the state of type `active` in, every
    /// other state's out (see [`GrainState::select`]).
    pub(crate) fn select_stages(&mut self, active: Option<TypeId>) {
        for (id, s) in &mut self.grain_state.0 {
            s.select(PartStages(&mut self.stages), Some(*id) == active);
        }
    }

    /// The per-stage delays changed (see [`GrainState::delays_changed`]).
    pub(crate) fn delays_changed(&mut self) {
        self.cuda_graph = None;
        self.grain_state.0.iter_mut().for_each(|(_, s)| s.delays_changed());
    }

    /// The sink's per-chunk records (reduce), after the run synchronized.
    pub(crate) fn records(&mut self) -> Result<Vec<Reduction>> {
        let s0 = self.streams[0].clone();
        match self.stages.last_mut() {
            Some(sink) => sink.records(&s0),
            None => Err(PipelineError::BadStages("no stages".into())),
        }
    }

    /// Waits for every stream, ignoring errors (which the caller already has).
    pub(crate) fn synchronize_quietly(&self) {
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

    /// A state taken out and put back is found again, by its type, even
    /// when one of its type was set meanwhile (the newer stays) or another
    /// type's state was set or replaced in between.
    #[test]
    fn states_are_found_by_type_after_take_and_put_back() {
        struct A(u32);
        impl GrainState for A {}
        struct B(u32);
        impl GrainState for B {}
        let mut g = GrainStates::default();
        g.set(A(1));
        g.set(B(2));
        let a = g.take::<A>().unwrap();
        assert!(g.get::<A>().is_none() && g.get::<B>().unwrap().0 == 2);
        g.set(B(3));
        g.put_back::<A>(a);
        assert_eq!((g.get::<A>().unwrap().0, g.get::<B>().unwrap().0), (1, 3));
        let old = g.take::<A>().unwrap();
        g.set(A(4));
        g.put_back::<A>(old);
        assert_eq!((g.get::<A>().unwrap().0, g.get::<B>().unwrap().0), (4, 3));
        g.get_mut::<B>().unwrap().0 = 5;
        assert_eq!(g.get::<B>().unwrap().0, 5);
        assert_eq!(g.0.len(), 2);
    }

    #[test]
    fn slots_are_aligned_and_budgeted_per_type() {
        let (f32t, u8t, f64t) = (ElemType::of::<f32>(), ElemType::of::<u8>(), ElemType::of::<f64>());
        assert_eq!(slot_bytes(u8t, 1), 256);
        assert_eq!(slot_bytes(f32t, 64), 256);
        assert_eq!(slot_bytes(f32t, 65), 512);
        assert_eq!(ring_bytes(&[u8t, f32t, f64t], 1000, 3), 3 * (1024 + 4096 + 8192));
    }
}
