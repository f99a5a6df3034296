//! When each (stage, chunk) ran: event pairs recorded around every operation
//! against one origin event per GPU, read after the run's final
//! synchronization (recording adds none). Written as a Chrome trace (opens
//! in Perfetto) or an SVG Gantt chart, one row per stream.
use crate::PipelineError;
use cudarc::driver::CudaEvent;
use std::io::Write;
use std::path::Path;

/// One operation's interval, in milliseconds since its GPU's origin event.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub gpu: usize,
    pub stage: usize,
    pub chunk: usize,
    pub start_ms: f64,
    pub end_ms: f64,
}

/// A span whose events are recorded but not yet read.
pub(crate) struct PendingSpan {
    pub part: usize,
    pub gpu: usize,
    pub stage: usize,
    pub chunk: usize,
    pub start: CudaEvent,
    pub end: CudaEvent,
    /// An origin on the span's own GPU (a stage placed on another GPU than
    /// the run's origin event: events time only against their own context),
    /// recorded on its stream right after the run's fork.
    pub local_origin: Option<std::sync::Arc<CudaEvent>>,
}

impl PendingSpan {
    /// Reads the recorded times (after the run has synchronized).
    pub(crate) fn resolve(&self, origin: &CudaEvent) -> Result<Span, PipelineError> {
        let origin = self.local_origin.as_deref().unwrap_or(origin);
        let t =
            |ev: &CudaEvent| origin.elapsed_ms(ev).map(f64::from).map_err(|e| PipelineError::Runtime(pc_runtime::Error::cuda("reading timeline events")(e)));
        Ok(Span { gpu: self.gpu, stage: self.stage, chunk: self.chunk, start_ms: t(&self.start)?, end_ms: t(&self.end)? })
    }
}

/// Every span of a run, with the stage names. Rows past the stages (added
/// by [`Timeline::push_row`], such as a stream's per-chunk latency) are not
/// GPU work: they count in the extent but not in the overlap factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// One name per row: the stages, then any rows pushed.
    pub stages: Vec<String>,
    pub gpus: usize,
    pub spans: Vec<Span>,
    /// Each row's label in the trace and the chart.
    pub labels: Vec<String>,
    /// Rows that are GPU stages (the first ones).
    pub gpu_rows: usize,
}

impl Timeline {
    pub fn new(stages: Vec<String>, gpus: usize, spans: Vec<Span>) -> Timeline {
        let labels = stages.iter().enumerate().map(|(s, name)| format!("stream {s}: {name}")).collect();
        Timeline { gpu_rows: stages.len(), stages, gpus, spans, labels }
    }

    /// Adds a row named `name` (span names: "NAME chunk C"), labelled
    /// `label`; returns its index, the `stage` of its spans.
    pub fn push_row(&mut self, name: &str, label: &str) -> usize {
        self.stages.push(name.to_string());
        self.labels.push(label.to_string());
        self.stages.len() - 1
    }

    /// Time from the first start to the last end.
    pub fn extent_ms(&self) -> f64 {
        self.spans.iter().map(|s| s.end_ms).fold(0.0, f64::max)
    }

    /// Sum over stages of their busy time divided by the extent: 1.0 means no
    /// overlap at all, the stage count means perfect overlap.
    pub fn overlap_factor(&self) -> f64 {
        let busy: f64 = self.spans.iter().filter(|s| s.stage < self.gpu_rows).map(|s| s.end_ms - s.start_ms).sum();
        busy / self.extent_ms().max(f64::MIN_POSITIVE) / self.gpus.max(1) as f64
    }

    /// Chrome trace JSON: one process per GPU, one thread per stage (stream).
    pub fn chrome_trace(&self) -> serde_json::Value {
        use serde_json::json;
        let mut events = Vec::new();
        for g in 0..self.gpus {
            events.push(json!({"ph": "M", "name": "process_name", "pid": g, "args": {"name": format!("GPU {g}")}}));
            for (s, label) in self.labels.iter().enumerate() {
                events.push(json!({"ph": "M", "name": "thread_name", "pid": g, "tid": s, "args": {"name": label}}));
            }
        }
        for sp in &self.spans {
            events.push(json!({
                "ph": "X", "pid": sp.gpu, "tid": sp.stage,
                "name": format!("{} chunk {}", self.stages[sp.stage], sp.chunk),
                "ts": sp.start_ms * 1e3, "dur": (sp.end_ms - sp.start_ms) * 1e3,
                "args": {"chunk": sp.chunk, "stage": self.stages[sp.stage]},
            }));
        }
        json!({"traceEvents": events, "displayTimeUnit": "ms"})
    }

    /// An SVG Gantt chart: one row per (GPU, stream), one bar per chunk.
    pub fn svg(&self, title: &str) -> svg::Document {
        use svg::node::element::{Line, Rectangle, Text, Title};
        const PALETTE: [&str; 6] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1"];
        let (left, top, row_h, width) = (150.0, 40.0, 28.0, 1000.0);
        let rows = self.gpus * self.stages.len();
        let height = top + rows as f64 * row_h + 40.0;
        let extent = self.extent_ms().max(1e-9);
        let x = |ms: f64| left + ms / extent * width;
        let mut doc = svg::Document::new()
            .set("viewBox", (0, 0, left + width + 60.0, height))
            .set("font-family", "sans-serif")
            .set("font-size", 12)
            .add(Rectangle::new().set("width", "100%").set("height", "100%").set("fill", "white"))
            .add(Text::new(title).set("x", 10).set("y", 20).set("font-size", 14));
        for g in 0..self.gpus {
            for (s, name) in self.stages.iter().enumerate() {
                let y = top + (g * self.stages.len() + s) as f64 * row_h;
                let label = if self.gpus > 1 { format!("GPU {g} · {name}") } else { self.labels[s].clone() };
                doc = doc.add(Text::new(label).set("x", 10).set("y", y + row_h * 0.65));
            }
        }
        for sp in &self.spans {
            let row = sp.gpu.min(self.gpus - 1) * self.stages.len() + sp.stage;
            let y = top + row as f64 * row_h;
            let w = (x(sp.end_ms) - x(sp.start_ms)).max(0.5);
            let bar = Rectangle::new()
                .set("x", x(sp.start_ms))
                .set("y", y + 3.0)
                .set("width", w)
                .set("height", row_h - 6.0)
                .set("fill", PALETTE[sp.stage % PALETTE.len()])
                .set("stroke", "white")
                .set("stroke-width", 0.5)
                .add(Title::new(format!("{} chunk {}: {:.3}–{:.3} ms", self.stages[sp.stage], sp.chunk, sp.start_ms, sp.end_ms)));
            doc = doc.add(bar);
            if w > 18.0 {
                doc = doc
                    .add(Text::new(sp.chunk.to_string()).set("x", x(sp.start_ms) + 3.0).set("y", y + row_h * 0.65).set("fill", "white").set("font-size", 10));
            }
        }
        let axis_y = top + rows as f64 * row_h + 5.0;
        doc = doc.add(Line::new().set("x1", left).set("x2", left + width).set("y1", axis_y).set("y2", axis_y).set("stroke", "black"));
        for i in 0..=5 {
            let ms = extent * i as f64 / 5.0;
            doc = doc
                .add(Line::new().set("x1", x(ms)).set("x2", x(ms)).set("y1", axis_y).set("y2", axis_y + 5.0).set("stroke", "black"))
                .add(Text::new(format!("{ms:.2} ms")).set("x", x(ms) - 20.0).set("y", axis_y + 20.0));
        }
        doc
    }

    /// Writes the Chrome trace to `path` (via a temporary file, renamed when
    /// complete, so a failed write leaves no partial file).
    pub fn write_chrome_trace(&self, path: &Path) -> Result<(), PipelineError> {
        self.write_chrome_trace_with(path, serde_json::Value::Null)
    }

    /// As [`Timeline::write_chrome_trace`], with `other` (unless null) as
    /// the trace's `otherData` (the run's figures, shown by trace viewers
    /// as metadata).
    pub fn write_chrome_trace_with(&self, path: &Path, other: serde_json::Value) -> Result<(), PipelineError> {
        let mut trace = self.chrome_trace();
        if !other.is_null() {
            trace["otherData"] = other;
        }
        write_atomically(path, |f| serde_json::to_writer(f, &trace).map_err(std::io::Error::other))
    }

    /// Writes the SVG to `path`, likewise atomically.
    pub fn write_svg(&self, path: &Path, title: &str) -> Result<(), PipelineError> {
        let doc = self.svg(title);
        write_atomically(path, |f| svg::write(f, &doc))
    }
}

fn write_atomically(path: &Path, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<(), PipelineError> {
    let io = |source| PipelineError::Output { path: path.to_path_buf(), source };
    let tmp = path.with_extension(format!("{}.partial", path.extension().and_then(|e| e.to_str()).unwrap_or("out")));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// The device timestamps of a flags run (`%globaltimer`, ns): per stage
/// and chunk, when the block started waiting, when its input was there
/// (*filled* seen; a source: its slot *freed*), and when it published the
/// chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagStamps {
    pub stages: usize,
    pub chunks: usize,
    /// `ns[stage * chunks + c] = [wait begins, input there, published]`.
    pub ns: Vec<[u64; 3]>,
}

impl FlagStamps {
    fn at(&self, stage: usize, c: usize) -> [u64; 3] {
        self.ns[stage * self.chunks + c]
    }

    /// Hand-off times: for each (stage r, chunk c) whose reader (the next
    /// stage) was already waiting when stage r published it, the time from
    /// that publication to the reader seeing it (ns). A reader that arrived
    /// later measures its own lateness, not the hand-off, and is left out.
    pub fn handoffs_ns(&self) -> Vec<u64> {
        let mut v = Vec::new();
        for r in 0..self.stages.saturating_sub(1) {
            for c in 0..self.chunks {
                let (w, rd) = (self.at(r, c), self.at(r + 1, c));
                if rd[0] != 0 && rd[0] < w[2] && rd[1] >= w[2] {
                    v.push(rd[1] - w[2]);
                }
            }
        }
        v
    }

    /// Per chunk: from the source starting it (its slot free) to the sink
    /// publishing it (ns).
    pub fn latencies_ns(&self) -> Vec<u64> {
        let last = self.stages.saturating_sub(1);
        (0..self.chunks).map(|c| self.at(last, c)[2].saturating_sub(self.at(0, c)[1])).collect()
    }

    /// The run as a timeline: each (stage, chunk) from its input being
    /// there to its publication, in ms since the first stamp.
    pub fn timeline(&self, stage_names: Vec<String>, gpu: usize) -> Timeline {
        let t0 = self.ns.iter().map(|t| t[0].min(t[1])).filter(|&t| t != 0).min().unwrap_or(0);
        let ms = |t: u64| t.saturating_sub(t0) as f64 / 1e6;
        let mut spans = Vec::new();
        for s in 0..self.stages {
            for c in 0..self.chunks {
                let t = self.at(s, c);
                spans.push(Span { gpu, stage: s, chunk: c, start_ms: ms(t[1]), end_ms: ms(t[2]) });
            }
        }
        Timeline::new(stage_names, 1, spans)
    }
}
