//! One run's launch sequence captured as a CUDA graph on stream 0, then
//! replayed: the same operations and waits, launched with one call.
use super::enqueue::HostBuffers;
use super::error::{Result, err};
use super::part::Part;
use crate::spec::PipelineSpec;
use pc_runtime::stream;

impl Part<'_> {
    pub(crate) fn capture(&mut self, spec: &PipelineSpec, host: &HostBuffers) -> Result<()> {
        let s0 = self.streams[0].clone();
        stream::begin_capture(&s0).map_err(err("starting the graph capture"))?;
        let enqueued = self.enqueue(spec, 0, host, None);
        let ended = stream::end_capture(&s0).map_err(err("ending the graph capture"));
        enqueued?;
        self.cuda_graph = ended?;
        if let Some(g) = &self.cuda_graph {
            g.upload().map_err(err("uploading the graph"))?;
        }
        Ok(())
    }
}

/// Graph replay ([`crate::Launch::Graph`]): a run captured once as a CUDA
/// graph and replayed; any spec.
pub(crate) struct GraphGrain;

impl super::Grain for GraphGrain {
    fn name(&self) -> &'static str {
        "graph"
    }

    fn check(&self, _spec: &PipelineSpec) -> Result<()> {
        Ok(())
    }

    fn runs_placed(&self) -> bool {
        true
    }

    /// Captures the run once (again after the graph was dropped).
    fn before_runs(&self, part: &mut Part<'_>, run: &mut super::RunCtx<'_>) -> Result<()> {
        if part.cuda_graph.is_none() {
            part.capture(run.spec, run.host)?;
        }
        Ok(())
    }

    fn enqueue_run(&self, part: &mut Part<'_>, _run: &mut super::RunCtx<'_>) -> Result<()> {
        match &part.cuda_graph {
            Some(g) => g.launch().map_err(err("launching the captured graph")),
            None => Err(crate::PipelineError::EmptyCapture),
        }
    }
}
