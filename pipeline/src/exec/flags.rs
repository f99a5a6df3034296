//! The flags grain on one GPU: every stage's flag form launched once per
//! run, on its own stream, all at once, over the part's rings; the slots
//! pass between them through the counters of `nvptx_std::ring`, which
//! carry the event graph's filled and freed edges per slot. The host
//! enqueues: reset the counters, fork, one launch per stage, join.
//!
//! All blocks must be resident at once (a block waiting for a block that
//! cannot start would wait for ever): each stage gets G groups of P blocks,
//! G = min(K, chunks, what fits) and P what else fits (each block one piece
//! of a chunk), from the kernels' occupancy; a pipeline of which not even
//! one block per stage fits is refused before anything runs. Every function is loaded before
//! the first launch (loading one lazily can need the context idle). A wait
//! that still fails has the device-side watchdog: the run ends with
//! [`PipelineError::RingStuck`] naming the stage, ring, slot and chunk.
use super::error::{Result, err};
use super::part::Part;
use crate::PipelineError;
use crate::flags::{FlagLaunch, FlagOnGpu};
use crate::spec::PipelineSpec;
use crate::stage::Setup;
use cudarc::driver::{CudaSlice, LaunchConfig};
use kernel_math::ring::{MAX_RING_SLOTS, RingControl, RingFlags, RingPlan, RingStatus, stop, waiting};

/// Smallest piece of a chunk one block takes (elements).
const PIECE_ELEMENTS: u64 = 8192;

/// One part's flags-grain state, made at its first flags run.
pub(crate) struct FlagsPart {
    stages: Vec<Box<dyn FlagOnGpu>>,
    /// The plan (one RingPlan) and control (one RingControl), as bytes.
    plan: CudaSlice<u8>,
    ctl: CudaSlice<u8>,
    /// One RingFlags per ring.
    flags: Vec<CudaSlice<u8>>,
    blocks: u32,
    timeout_ms: u64,
    /// Three u64 timestamps per (stage, chunk).
    stamps: CudaSlice<u64>,
}

impl super::part::GrainState for FlagsPart {}

/// Refuses what the flags grain cannot run, before anything is allocated;
/// `with_form` names the stages that have a flags form (for the error).
pub(crate) fn check(spec: &PipelineSpec, with_form: fn() -> Vec<String>) -> Result<()> {
    for s in &spec.stages {
        if s.flag_form().is_none() {
            let with = with_form();
            return Err(PipelineError::BadStages(format!(
                "stage {} has no flags form, so the flags grain cannot run it (stages with one: {}; a map stage of yours gets one with Stage::with_flags_map)",
                s.name(),
                with.join(", ")
            )));
        }
        if s.halo() > 0 {
            return Err(PipelineError::BadStages(format!("stage {} reads a halo, which the flags grain does not carry", s.name())));
        }
    }
    if spec.slots > MAX_RING_SLOTS {
        return Err(PipelineError::BadStages(format!("the flags grain has at most {MAX_RING_SLOTS} slots per ring; K is {}", spec.slots)));
    }
    Ok(())
}

/// The flags grain ([`crate::Launch::Flags`]).
pub(crate) struct FlagsGrain {
    /// The names of the stages with a flags form (the catalog's), for
    /// the error that refuses a stage without one.
    pub with_form: fn() -> Vec<String>,
}

impl super::Grain for FlagsGrain {
    fn name(&self) -> &'static str {
        "flags"
    }

    fn check(&self, spec: &PipelineSpec) -> Result<()> {
        check(spec, self.with_form)
    }

    fn check_run(&self, spec: &PipelineSpec) -> Result<()> {
        check(spec, self.with_form)
    }

    fn enqueue_run(&self, part: &mut Part<'_>, run: &mut super::RunCtx<'_>) -> Result<()> {
        part.enqueue_flags(run.spec, run.flag_faults)
    }

    fn status(&self, part: &mut Part<'_>) -> Result<()> {
        part.flags_status()
    }

    fn records(&self, part: &mut Part<'_>) -> Result<Vec<kernel_math::Reduction>> {
        part.flags_records()
    }

    fn stamps(&self, part: &mut Part<'_>, stages: usize) -> Result<Option<crate::flags::FlagStamps>> {
        part.flag_stamps(stages).map(Some)
    }
}

impl Part<'_> {
    /// Prepares the flag forms and the counters (once), and checks that
    /// every block fits on the GPU at once.
    fn flags_setup(&mut self, spec: &PipelineSpec) -> Result<()> {
        if self.state::<FlagsPart>().is_none() {
            let s0 = self.streams[0].clone();
            let mut modules = Vec::new();
            let mut setup = Setup { gpu: self.gpu, block_size: spec.block_size, local_chunks: self.chunks.len(), stream: &s0, modules: &mut modules };
            let mut stages = Vec::new();
            for st in &spec.stages {
                let form = st.flag_form().ok_or_else(|| PipelineError::BadStages(format!("stage {} has no flags form", st.name())))?;
                stages.push(form.prepare(&mut setup)?);
            }
            let slots = self.rings.first().map_or(1, |r| r.buf.len() / r.slot_bytes) as u64;
            // Every block of every stage resident at once: G blocks per
            // stage, G = min(K, chunks, what fits). Block b takes chunks b,
            // b + G, ...; with G < K a block's chunks cycle through slots.
            let info = self.gpu.info();
            let mut per_sm = u32::MAX;
            for (st, name) in stages.iter().zip(&self.names) {
                let n = st.max_active_blocks_per_sm(spec.block_size)?;
                if n == 0 {
                    return Err(PipelineError::BadStages(format!(
                        "stage {name}: {} cannot run a block of {} threads on this GPU",
                        st.kernel_name(),
                        spec.block_size
                    )));
                }
                per_sm = per_sm.min(n);
            }
            let room = per_sm as u64 * info.sm_count as u64;
            let fit = room / stages.len() as u64;
            if fit == 0 {
                return Err(PipelineError::BadStages(format!(
                    "the flags grain needs a block of every stage resident at once ({} blocks), and {} holds {room} of {} threads: use a smaller block or fewer stages",
                    stages.len(),
                    info.name,
                    spec.block_size
                )));
            }
            let groups = slots.min(self.chunks.len() as u64).min(fit).max(1);
            // Blocks left over split each chunk into pieces, down to pieces
            // of 8 Ki elements (a small chunk gains nothing from more).
            let pieces = (fit / groups).min(spec.chunk_elements.div_ceil(PIECE_ELEMENTS)).max(1);
            let blocks = (groups * pieces) as u32;
            let zeros = |bytes: usize, what: &str| s0.alloc_zeros::<u8>(bytes).map_err(err(what));
            let plan_bytes = zeros(std::mem::size_of::<RingPlan>(), "allocating the flags plan")?;
            let ctl = zeros(std::mem::size_of::<RingControl>(), "allocating the flags control")?;
            let flags = (0..self.rings.len()).map(|_| zeros(std::mem::size_of::<RingFlags>(), "allocating ring flags")).collect::<Result<Vec<_>>>()?;
            let plan = RingPlan {
                first_chunk: self.chunks.start as u64,
                chunks: self.chunks.len() as u64,
                chunk_elements: spec.chunk_elements,
                total_elements: spec.total_elements,
                slots,
                timeout_ns: spec.watchdog_ms.saturating_mul(1_000_000),
                pieces,
            };
            let mut plan_dev = plan_bytes;
            // SAFETY: RingPlan is repr(C) integers, no padding (an Element).
            let bytes = unsafe { std::slice::from_raw_parts(&plan as *const RingPlan as *const u8, std::mem::size_of::<RingPlan>()) };
            s0.memcpy_htod(bytes, &mut plan_dev).map_err(err("uploading the flags plan"))?;
            let stamps = s0.alloc_zeros::<u64>(3 * stages.len() * self.chunks.len()).map_err(err("allocating the flags timestamps"))?;
            s0.synchronize().map_err(err("setting up the flags grain"))?;
            self.set_state(FlagsPart { stages, plan: plan_dev, ctl, flags, blocks, timeout_ms: spec.watchdog_ms, stamps });
        }
        Ok(())
    }

    /// Enqueues one flags-grain run: reset, fork, one launch per stage, join.
    pub(crate) fn enqueue_flags(&mut self, spec: &PipelineSpec, faults: &[u32]) -> Result<()> {
        self.flags_setup(spec)?;
        let s0 = self.streams[0].clone();
        if self.streams.len() != spec.stages.len() {
            return Err(PipelineError::BadStages("the flags grain runs each stage on its own stream (not --serial)".into()));
        }
        self.with_state(|p, fp: &mut FlagsPart| p.enqueue_flags_with(fp, &s0, spec, faults)).unwrap_or(Err(PipelineError::EmptyCapture))
    }

    /// [`Part::enqueue_flags`] once the state is there.
    fn enqueue_flags_with(&mut self, fp: &mut FlagsPart, s0: &std::sync::Arc<cudarc::driver::CudaStream>, spec: &PipelineSpec, faults: &[u32]) -> Result<()> {
        // Counters and control back to zero, stages reset, on stream 0.
        for buf in fp.flags.iter_mut().chain(std::iter::once(&mut fp.ctl)) {
            s0.memset_zeros(buf).map_err(err("resetting the ring flags"))?;
        }
        s0.memset_zeros(&mut fp.stamps).map_err(err("resetting the flags timestamps"))?;
        for st in &mut fp.stages {
            st.begin_run(s0)?;
        }
        self.fork.record(s0).map_err(err("recording an event"))?;
        for st in &self.streams[1..] {
            st.wait(&self.fork).map_err(err("waiting on an event"))?;
        }
        let cfg = LaunchConfig { grid_dim: (fp.blocks, 1, 1), block_dim: (spec.block_size, 1, 1), shared_mem_bytes: 0 };
        let n = spec.stages.len();
        let FlagsPart { stages, plan, ctl, flags, stamps, .. } = fp;
        let bad = || PipelineError::BadStages("the flags grain's records are too small".into());
        for (s, stage) in stages.iter_mut().enumerate() {
            let stream = &self.streams[s];
            // SAFETY (views): the plan, control and flags are one record
            // each, of the layouts the kernels read (kernel-math), in
            // 256-byte aligned buffers.
            fn view(f: &CudaSlice<u8>) -> Option<cudarc::driver::CudaView<'_, RingFlags>> {
                // SAFETY: see above.
                unsafe { f.transmute::<RingFlags>(1) }
            }
            // Ring s-1 is read, ring s written (the part's rings, K slots each).
            let (before, after) = self.rings.split_at_mut(s);
            let input = match before.last_mut() {
                Some(r) => Some((r.elem, r.buf.as_view_mut(), view(&flags[s - 1]).ok_or_else(bad)?)),
                None => None,
            };
            let output = match after.first_mut() {
                Some(r) if s + 1 < n => Some((r.elem, r.buf.as_view_mut(), view(&flags[s]).ok_or_else(bad)?)),
                _ => None,
            };
            let mut l = FlagLaunch {
                stream,
                cfg,
                plan: unsafe { plan.transmute::<RingPlan>(1) }.ok_or_else(bad)?,
                ctl: unsafe { ctl.transmute::<RingControl>(1) }.ok_or_else(bad)?,
                // SAFETY: u64 words viewed as AtomicU64 of the same layout.
                stamps: unsafe { stamps.transmute::<std::sync::atomic::AtomicU64>(stamps.len()) }.ok_or_else(bad)?,
                input,
                output,
                stage: s as u32,
                spin: spec.spin_of(s),
                faults: faults.get(s).copied().unwrap_or(0),
                seed: spec.seed,
                stage_name: &self.names[s],
            };
            stage.launch(&mut l)?;
        }
        for (st, join) in self.streams.iter().zip(&self.joins) {
            join.record(st).map_err(err("recording an event"))?;
        }
        for join in &self.joins[1..] {
            s0.wait(join).map_err(err("waiting on an event"))?;
        }
        Ok(())
    }

    /// The sink's per-chunk records from its flags form, after a flags
    /// run synchronized.
    pub(crate) fn flags_records(&mut self) -> Result<Vec<kernel_math::Reduction>> {
        let s0 = self.streams[0].clone();
        match self.state_mut::<FlagsPart>().and_then(|f| f.stages.last_mut()) {
            Some(sink) => sink.records(&s0),
            None => Err(PipelineError::BadStages("no flags run".into())),
        }
    }

    /// The last flags run's timestamps (after it synchronized).
    pub(crate) fn flag_stamps(&mut self, stages: usize) -> Result<crate::flags::FlagStamps> {
        let s0 = self.streams[0].clone();
        let Some(fp) = self.state::<FlagsPart>() else { return Err(PipelineError::BadStages("no flags run".into())) };
        let words = s0.clone_dtoh(&fp.stamps).map_err(err("reading the flags timestamps"))?;
        s0.synchronize().map_err(err("reading the flags timestamps"))?;
        let ns = words.chunks_exact(3).map(|w| [w[0], w[1], w[2]]).collect();
        Ok(crate::flags::FlagStamps { stages, chunks: self.chunks.len(), ns })
    }

    /// After a synchronized flags run: the error the device recorded, if any.
    pub(crate) fn flags_status(&mut self) -> Result<()> {
        let s0 = self.streams[0].clone();
        let Some(fp) = self.state::<FlagsPart>() else { return Ok(()) };
        let bytes = s0.clone_dtoh(&fp.ctl).map_err(err("reading the flags control"))?;
        s0.synchronize().map_err(err("reading the flags control"))?;
        let mut st = RingStatus::default();
        // SAFETY: RingStatus is repr(C) integers of RingControl's size (checked in kernel-math).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), &mut st as *mut RingStatus as *mut u8, std::mem::size_of::<RingStatus>()) };
        let name = |i: u32| self.names.get(i as usize).cloned().unwrap_or_else(|| format!("#{i}"));
        match st.status {
            stop::NONE => Ok(()),
            stop::TIMEOUT => Err(PipelineError::RingStuck {
                stage: name(st.stage),
                waited_for: if st.waiting_for == waiting::FILLED { "filled" } else { "freed" },
                ring: format!("{} -> {}", name(st.ring), name(st.ring + 1)),
                slot: st.slot,
                chunk: self.chunks.start as u64 + st.chunk,
                have: st.have,
                want: st.want,
                ms: fp.timeout_ms,
            }),
            stop::BAD_RING => Err(PipelineError::BadStages(format!("stage {}: its ring does not hold K slots of a chunk", name(st.stage)))),
            stop::BAD_RECORDS => Err(PipelineError::BadStages(format!("stage {}: {} records for {} chunks", name(st.stage), st.have, st.want))),
            other => Err(PipelineError::BadStages(format!("the flags grain stopped with status {other}"))),
        }
    }
}
