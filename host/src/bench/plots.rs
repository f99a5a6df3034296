//! SVG plots of `host bench` results, drawn with the svg crate.
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;
use svg::Document;
use svg::node::element::{Circle, Line, Polyline, Rectangle, Text};

const PALETTE: [&str; 10] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f", "#ff9da7", "#bab0ac"];

/// Writes `pipelines-<workload>.svg` (throughput against chunk size, one line
/// per mode and peer) and `kernels.svg` (each kernel's GB/s per
/// implementation) into `dir`.
/// Named lines of (x, y) points.
type Series = Vec<(String, Vec<(f64, f64)>)>;

pub fn write_plots(all: &Value, dir: &Path) -> Result<()> {
    let mut series_by_workload: std::collections::BTreeMap<String, Series> = Default::default();
    let mut add = |rows: &Value, prefix: &str| {
        for r in rows.as_array().into_iter().flatten() {
            let w = r["workload"].as_str().unwrap_or("?").to_string();
            let label = format!("{prefix}{}", r["mode"].as_str().unwrap_or("?"));
            let pt = (r["chunk_bytes"].as_f64().unwrap_or(1.0), r["gbps"].as_f64().unwrap_or(0.0));
            let series = series_by_workload.entry(w).or_default();
            match series.iter_mut().find(|(l, _)| *l == label) {
                Some((_, pts)) => pts.push(pt),
                None => series.push((label, vec![pt])),
            }
        }
    };
    add(&all["pipelines"], "rust: ");
    add(&all["peers"]["pipelines"], "");
    for (workload, series) in &series_by_workload {
        let doc = line_chart(&format!("{workload} pipeline on {}: GB/s of input against chunk size", all["device"].as_str().unwrap_or("?")), series);
        let path = dir.join(format!("pipelines-{workload}.svg"));
        svg::save(&path, &doc).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut bars: Vec<(String, String, f64)> = Vec::new();
    for rows in [&all["rows"], &all["peers"]["rows"]] {
        for r in rows.as_array().into_iter().flatten().filter(|r| r["group"] == "kernel" || r["group"] == "handoff") {
            let size = r["size_bytes"].as_u64().unwrap_or(0) >> 20;
            bars.push((
                format!("{} {} MiB", r["name"].as_str().unwrap_or("?"), size),
                r["impl"].as_str().unwrap_or("?").to_string(),
                r["gbps"].as_f64().unwrap_or(0.0),
            ));
        }
    }
    let path = dir.join("kernels.svg");
    svg::save(&path, &bar_chart(&format!("kernels on {}: GB/s moved", all["device"].as_str().unwrap_or("?")), &bars))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn line_chart(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Document {
    let (left, top, w, h) = (70.0, 40.0, 640.0, 360.0);
    let xs: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0.log2())).collect();
    let (x0, x1) = (xs.iter().copied().fold(f64::INFINITY, f64::min), xs.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(1.0));
    let ymax = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)).fold(1.0, f64::max) * 1.1;
    let px = |b: f64| left + (b.log2() - x0) / (x1 - x0).max(1e-9) * w;
    let py = |g: f64| top + h - g / ymax * h;
    let mut doc = Document::new()
        .set("viewBox", (0, 0, left + w + 300.0, top + h + 60.0))
        .set("font-family", "sans-serif")
        .set("font-size", 12)
        .add(Rectangle::new().set("width", "100%").set("height", "100%").set("fill", "white"))
        .add(Text::new(title).set("x", 10).set("y", 20).set("font-size", 14))
        .add(Line::new().set("x1", left).set("y1", top + h).set("x2", left + w).set("y2", top + h).set("stroke", "black"))
        .add(Line::new().set("x1", left).set("y1", top).set("x2", left).set("y2", top + h).set("stroke", "black"));
    for i in 0..=5 {
        let g = ymax * i as f64 / 5.0;
        doc = doc
            .add(Line::new().set("x1", left).set("x2", left + w).set("y1", py(g)).set("y2", py(g)).set("stroke", "#ddd"))
            .add(Text::new(format!("{g:.0}")).set("x", left - 40.0).set("y", py(g) + 4.0));
    }
    let mut b = x0;
    while b <= x1 + 1e-9 {
        let bytes = 2f64.powf(b);
        let label = if bytes >= (1u64 << 20) as f64 { format!("{} MiB", bytes / (1u64 << 20) as f64) } else { format!("{} KiB", bytes / 1024.0) };
        doc = doc.add(Text::new(label).set("x", px(bytes) - 20.0).set("y", top + h + 18.0));
        b += 2.0;
    }
    doc = doc.add(Text::new("chunk size (log scale)").set("x", left + w / 2.0 - 60.0).set("y", top + h + 40.0));
    doc = doc.add(Text::new("GB/s").set("x", 10).set("y", top + 10.0));
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts = pts.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        doc = doc.add(Polyline::new().set("points", path.join(" ")).set("fill", "none").set("stroke", color).set("stroke-width", 2));
        for (x, y) in &pts {
            doc = doc.add(Circle::new().set("cx", px(*x)).set("cy", py(*y)).set("r", 3).set("fill", color));
        }
        let ly = top + 14.0 * i as f64;
        doc = doc
            .add(Rectangle::new().set("x", left + w + 15.0).set("y", ly).set("width", 12).set("height", 10).set("fill", color))
            .add(Text::new(label.clone()).set("x", left + w + 32.0).set("y", ly + 9.0));
    }
    doc
}

fn bar_chart(title: &str, bars: &[(String, String, f64)]) -> Document {
    let impls: Vec<String> = bars.iter().fold(Vec::new(), |mut v, b| {
        if !v.contains(&b.1) {
            v.push(b.1.clone());
        }
        v
    });
    let groups: Vec<String> = bars.iter().fold(Vec::new(), |mut v, b| {
        if !v.contains(&b.0) {
            v.push(b.0.clone());
        }
        v
    });
    let (left, top, bar_h, w) = (330.0, 40.0, 12.0, 520.0);
    let gmax = bars.iter().map(|b| b.2).fold(1.0, f64::max) * 1.05;
    let group_h = bar_h * impls.len() as f64 + 8.0;
    let height = top + group_h * groups.len() as f64 + 40.0;
    let mut doc = Document::new()
        .set("viewBox", (0, 0, left + w + 150.0, height))
        .set("font-family", "sans-serif")
        .set("font-size", 11)
        .add(Rectangle::new().set("width", "100%").set("height", "100%").set("fill", "white"))
        .add(Text::new(title).set("x", 10).set("y", 20).set("font-size", 14));
    for (gi, g) in groups.iter().enumerate() {
        let y0 = top + gi as f64 * group_h;
        doc = doc.add(Text::new(g.clone()).set("x", 10).set("y", y0 + group_h / 2.0));
        for (ii, imp) in impls.iter().enumerate() {
            if let Some(b) = bars.iter().find(|b| &b.0 == g && &b.1 == imp) {
                let y = y0 + ii as f64 * bar_h;
                let bw = b.2 / gmax * w;
                doc = doc
                    .add(Rectangle::new().set("x", left).set("y", y).set("width", bw).set("height", bar_h - 2.0).set("fill", PALETTE[ii % PALETTE.len()]))
                    .add(Text::new(format!("{:.0}", b.2)).set("x", left + bw + 4.0).set("y", y + bar_h - 3.0).set("font-size", 9));
            }
        }
    }
    for (ii, imp) in impls.iter().enumerate() {
        let y = top + 14.0 * ii as f64;
        doc = doc
            .add(Rectangle::new().set("x", left + w + 40.0).set("y", y).set("width", 12).set("height", 10).set("fill", PALETTE[ii % PALETTE.len()]))
            .add(Text::new(imp.clone()).set("x", left + w + 56.0).set("y", y + 9.0));
    }
    doc
}
