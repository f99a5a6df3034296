//! The PDL grains (`Launch::Pdl`): the generate pipeline (producer ->
//! consumer -> reduce) on one stream, chunk after chunk, every kernel a
//! `#[kernel(pdl)]` of kernels-hopper launched with programmatic dependent
//! launch, either enqueued each run or captured once as a CUDA graph (whose
//! edges are then programmatic) and replayed.
//!
//! Why it is correct with no event at all: each kernel's entry waits
//! (`griddepcontrol.wait`) for the kernel ahead of it on the stream to
//! complete before touching memory, so every kernel's memory effects follow
//! the previous kernel's: the filled edge (stage s+1 after stage s on chunk
//! c) and the freed edge (stage s on chunk c+K after stage s+1 on chunk c)
//! of the event graph both hold, by the stream's order. What PDL removes
//! is the gap between kernels: the next kernel is scheduled while this one
//! runs (each calls `launch_dependents` first) and waits on the GPU.
//!
//! The sync checker's fault knob ([`Pipeline::set_pdl_faults`]) makes the
//! consumer skip its wait; with the producer slowed, it then reads slots
//! before they are written.
use super::error::{Result, err};
use super::part::Part;
use crate::records::{RECORD_WORDS, reduction_from_words, reduction_words};
use crate::spec::PipelineSpec;
use crate::{Pipeline, PipelineError};
use cudarc::driver::{CudaGraph, CudaSlice, DevicePtr, DevicePtrMut};
use kernel_math::{AtomicReduction, Reduction};
use pc_runtime::launch::Kernel;
use pc_runtime::{copy, stream};
use ptx_kernels::hopper::{PdlConsumerKernel, PdlProducerKernel, PdlReduceKernel};

/// The stages the PDL grains run, in order: the generate pipeline.
pub const PDL_STAGES: [&str; 3] = ["producer", "consumer", "reduce"];

/// One part's PDL kernels, records and captured graph.
pub(crate) struct PdlChain {
    producer: Kernel<PdlProducerKernel>,
    consumer: Kernel<PdlConsumerKernel>,
    reduce: Kernel<PdlReduceKernel>,
    /// One reduction record per local chunk (8-byte words), reset each run
    /// from `empty`.
    records: CudaSlice<u64>,
    empty: CudaSlice<u64>,
    /// The run captured as a graph (`Launch::Pdl { graph: true }`).
    pub graph: Option<CudaGraph>,
    /// The sync checker's fault bits for the consumer (0: the protocol).
    pub faults: u32,
}

impl super::part::GrainState for PdlChain {
    /// The captured graph holds the old delays.
    fn delays_changed(&mut self) {
        self.graph = None;
    }
}

/// Refuses, in one line, a pipeline the PDL grains cannot run.
pub fn check_pdl_spec(spec: &PipelineSpec) -> Result<()> {
    let names: Vec<&str> = spec.stages.iter().map(|s| s.name()).collect();
    if names != PDL_STAGES {
        return Err(PipelineError::GrainUnsupported {
            grain: "pdl",
            why: format!("it runs the generate pipeline {} only, not {}", PDL_STAGES.join(","), names.join(",")),
        });
    }
    if spec.serial {
        return Err(PipelineError::GrainUnsupported { grain: "pdl", why: "it runs on one stream already; drop the serial baseline".into() });
    }
    Ok(())
}

/// The PDL grains ([`crate::Launch::Pdl`], plain or captured as a graph).
pub(crate) struct PdlGrain {
    /// Captured once as a CUDA graph and replayed.
    pub graph: bool,
}

impl super::Grain for PdlGrain {
    fn name(&self) -> &'static str {
        if self.graph { "pdl-graph" } else { "pdl" }
    }

    fn check(&self, spec: &PipelineSpec) -> Result<()> {
        check_pdl_spec(spec)
    }

    /// The chain prepared (once), and captured (once) for the graph grain.
    fn before_runs(&self, part: &mut Part<'_>, run: &mut super::RunCtx<'_>) -> Result<()> {
        part.prepare_pdl(run.spec)?;
        if self.graph && part.pdl_uncaptured() {
            part.capture_pdl(run.spec)?;
        }
        Ok(())
    }

    fn enqueue_run(&self, part: &mut Part<'_>, run: &mut super::RunCtx<'_>) -> Result<()> {
        if self.graph { part.launch_pdl_graph() } else { part.enqueue_pdl(run.spec) }
    }

    fn records(&self, part: &mut Part<'_>) -> Result<Vec<Reduction>> {
        part.pdl_records()
    }
}

impl Part<'_> {
    /// Loads the PDL kernels (refusing GPUs older than sm_90) and allocates
    /// the records, once.
    pub(crate) fn prepare_pdl(&mut self, spec: &PipelineSpec) -> Result<()> {
        check_pdl_spec(spec)?;
        if self.state::<PdlChain>().is_some() {
            return Ok(());
        }
        let module = ptx_kernels::hopper::load(self.gpu)?;
        let (producer, consumer, reduce) = (module.kernel::<PdlProducerKernel>()?, module.kernel::<PdlConsumerKernel>()?, module.kernel::<PdlReduceKernel>()?);
        for b in [producer.check_block(spec.block_size), consumer.check_block(spec.block_size), reduce.check_block(spec.block_size)] {
            b?;
        }
        let s0 = self.streams[0].clone();
        let template: Vec<u64> = (0..self.chunks.len()).flat_map(|_| reduction_words(&Reduction::EMPTY)).collect();
        let empty = s0.clone_htod(&template).map_err(err("allocating the PDL records"))?;
        let records = s0.clone_htod(&template).map_err(err("allocating the PDL records"))?;
        s0.synchronize().map_err(err("allocating the PDL records"))?;
        self.set_state(PdlChain { producer, consumer, reduce, records, empty, graph: None, faults: 0 });
        Ok(())
    }

    /// Enqueues one run on stream 0: the records reset, then per chunk the
    /// producer, consumer and reduce, each launched with PDL (the first
    /// producer plainly: ahead of it is a copy, not a kernel).
    pub(crate) fn enqueue_pdl(&mut self, spec: &PipelineSpec) -> Result<()> {
        self.with_state(|p, chain: &mut PdlChain| p.enqueue_pdl_with(chain, spec)).unwrap_or(Err(PipelineError::EmptyCapture))
    }

    /// [`Part::enqueue_pdl`] once the chain is there.
    fn enqueue_pdl_with(&mut self, chain: &mut PdlChain, spec: &PipelineSpec) -> Result<()> {
        let s0 = self.streams[0].clone();
        let bytes = chain.records.len() * 8;
        // Raw driver calls act on the current context (another part's, on several GPUs).
        s0.context().bind_to_thread().map_err(err("binding the GPU"))?;
        {
            let (dst, _) = chain.records.device_ptr_mut(&s0);
            let (src, _) = chain.empty.device_ptr(&s0);
            // SAFETY: both buffers hold `bytes`; stream 0 is the only one
            // that touches them.
            unsafe { copy::dtod_async(dst, src, bytes, &s0) }.map_err(err("resetting the PDL records"))?;
        }
        let slots = self.rings.first().map_or(1, |r| r.buf.len() / r.slot_bytes.max(1)).max(1);
        let spin = spec.spin_of(0);
        for lc in 0..self.chunks.len() {
            let range = spec.chunk_range(self.chunks.start + lc);
            let len = (range.end - range.start) as usize;
            let cfg = self.gpu.launch_config(len as u64, spec.block_size, None)?;
            let slot = lc % slots;
            let [a, b] = &mut self.rings[..] else {
                return Err(PipelineError::BadStages("the PDL grain needs the generate pipeline's two rings".into()));
            };
            let (sa, sb) = (a.slot_bytes, b.slot_bytes);
            let mut produced = a.buf.slice_mut(slot * sa..(slot + 1) * sa);
            // SAFETY: the slot holds `len` f32 (ring 0 is the producer's f32
            // ring, each slot sized for a chunk and 256-byte aligned).
            let mut produced = unsafe { produced.transmute_mut::<f32>(len) }.ok_or(PipelineError::BadStages("ring 0 slot too small".into()))?;
            let mut consumed = b.buf.slice_mut(slot * sb..(slot + 1) * sb);
            // SAFETY: as above, ring 1.
            let mut consumed = unsafe { consumed.transmute_mut::<f32>(len) }.ok_or(PipelineError::BadStages("ring 1 slot too small".into()))?;
            let words = chain.records.slice(lc * RECORD_WORDS..(lc + 1) * RECORD_WORDS);
            // SAFETY: 80 bytes of u64 words, 8-byte aligned, viewed as the
            // AtomicReduction of the same layout (checked in kernel-math).
            let record = unsafe { words.transmute::<AtomicReduction>(1) }.ok_or(PipelineError::BadStages("PDL record too small".into()))?;
            // SAFETY (all three): one stream; every kernel is a PdlKernel,
            // which waits for the kernel ahead of it before touching memory,
            // so stream order holds for memory (see the module docs). The
            // consumer's fault bits, when set, are the sync checker's race,
            // accepted by `Pipeline::set_pdl_faults`'s caller.
            unsafe {
                if lc == 0 {
                    PdlProducerKernel::launch(&chain.producer, &s0, cfg, &mut produced, range.start, spec.seed, spin)?;
                } else {
                    PdlProducerKernel::launch_pdl(&chain.producer, &s0, cfg, &mut produced, range.start, spec.seed, spin)?;
                }
                let produced = produced.slice(..);
                PdlConsumerKernel::launch_with_faults(&chain.consumer, &s0, cfg, true, &produced, &mut consumed, chain.faults)?;
                let consumed = consumed.slice(..);
                let rcfg = cudarc::driver::LaunchConfig { shared_mem_bytes: nvptx_std::REDUCE_SHARED_BYTES, ..cfg };
                PdlReduceKernel::launch_pdl(&chain.reduce, &s0, rcfg, &consumed, &record)?;
            }
        }
        Ok(())
    }

    /// Whether the chain is prepared and not yet captured.
    pub(crate) fn pdl_uncaptured(&self) -> bool {
        self.state::<PdlChain>().is_some_and(|c| c.graph.is_none())
    }

    /// Replays the captured PDL run.
    pub(crate) fn launch_pdl_graph(&self) -> Result<()> {
        match self.state::<PdlChain>().and_then(|c| c.graph.as_ref()) {
            Some(g) => g.launch().map_err(err("launching the captured PDL graph")),
            None => Err(PipelineError::EmptyCapture),
        }
    }

    /// Captures one PDL run as a CUDA graph (programmatic edges), once.
    pub(crate) fn capture_pdl(&mut self, spec: &PipelineSpec) -> Result<()> {
        let s0 = self.streams[0].clone();
        stream::begin_capture(&s0).map_err(err("starting the PDL graph capture"))?;
        let enqueued = self.enqueue_pdl(spec);
        let ended = stream::end_capture(&s0).map_err(err("ending the PDL graph capture"));
        enqueued?;
        let graph = ended?.ok_or(PipelineError::EmptyCapture)?;
        graph.upload().map_err(err("uploading the PDL graph"))?;
        if let Some(chain) = self.state_mut::<PdlChain>() {
            chain.graph = Some(graph);
        }
        Ok(())
    }

    /// The PDL run's per-chunk records, after the run synchronized.
    pub(crate) fn pdl_records(&mut self) -> Result<Vec<Reduction>> {
        let s0 = self.streams[0].clone();
        let chain = self.state::<PdlChain>().ok_or(PipelineError::EmptyCapture)?;
        let words = s0.clone_dtoh(&chain.records).map_err(err("copying the PDL reductions back"))?;
        s0.synchronize().map_err(err("copying the PDL reductions back"))?;
        Ok(words.chunks_exact(RECORD_WORDS).map(reduction_from_words).collect())
    }
}

impl Pipeline<'_> {
    /// Sets the consumer's fault bits for the PDL grains
    /// (`nvptx_std::hopper::pdl::fault`; 0 restores the protocol). Drops
    /// any captured PDL graph.
    ///
    /// # Safety
    /// A fault bit breaks the protocol on purpose: with `SKIP_WAIT` the
    /// consumer kernel reads ring slots while the producer may still write
    /// them, a data race on device memory (on the GPU: wrong `f32` values,
    /// any bits valid, which verification reports). Set it only to show
    /// that race, and judge the results only through [`Pipeline::verify`].
    pub unsafe fn set_pdl_faults(&mut self, spec_faults: u32) -> Result<()> {
        self.settle();
        for p in &mut self.parts {
            p.prepare_pdl(&self.spec)?;
            if let Some(chain) = p.state_mut::<PdlChain>() {
                chain.faults = spec_faults;
                chain.graph = None;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PipelineSpec, Workload, builtin};

    #[test]
    fn only_the_generate_pipeline_runs_as_pdl() {
        assert!(check_pdl_spec(&PipelineSpec::new(Workload::Generate)).is_ok());
        let e = check_pdl_spec(&PipelineSpec::new(Workload::Stream)).unwrap_err().to_string();
        assert!(e.contains("h2d,consumer,d2h") && e.contains("producer,consumer,reduce") && !e.contains('\n'), "{e}");
        let two = PipelineSpec::new(Workload::Generate).stages(vec![builtin::producer(), builtin::consumer(), builtin::consumer(), builtin::reduce()]);
        assert!(check_pdl_spec(&two).is_err());
        assert!(check_pdl_spec(&PipelineSpec::new(Workload::Generate).serial(true)).is_err());
    }
}
