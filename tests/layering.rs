//! The module layering of the workspace's library crates, read from their
//! source text (issue 19):
//! - `host/src`, "commands that stand alone": each command is a module of
//!   its own (`*_cmd`, `bench*`, `new_project`), no command refers to
//!   another, the helpers they share import no command, and the modules'
//!   references form no cycle. Only the crate root (`lib.rs`) dispatches to
//!   the commands. Modules are the top-level ones (a folder `m/` with
//!   everything in it).
//! - `pipeline/src`, "layers that point one way": model < exec < grains <
//!   catalog ([`PIPELINE_LAYERS`]); no module refers to one of a higher
//!   layer, no grain refers to another grain, and the modules form no
//!   cycle, except the edges listed in [`KNOWN_VIOLATIONS`] (none now).
//!   Modules are nested (`exec/flags.rs` is `exec::flags`).
//!
//! The reader: every path that starts at `crate::`, at `super::` or
//! `self::`, or at the name of a child module of the current one, is
//! followed to the deepest module it names (`use crate::{a::{b, c}, d}`
//! groups expanded; `super::` climbs inline `mod` blocks too). A path to an
//! item of the crate root is an edge to `lib`, unless `lib.rs` re-exports
//! that name (`pub use m::X`): then it is an edge to `m`. Comments and
//! literals are left out (host's `new_project` writes Rust source from
//! string templates). A public re-export (`pub use ...;`) keeps an old path
//! working and is not an edge. For `pipeline/src`, `#[cfg(test)]` items
//! are left out too: unit tests may build their fixtures from any layer.
//! References inside one module are not edges.
//!
//! And "driver calls in `pc_runtime` only" (issue 19, item 4): no file of
//! `host/src` names cudarc's `driver::sys` or `driver::result`, nor does
//! one of `pipeline/src` outside [`KNOWN_DRIVER_CALLERS`] (now empty).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate root's node.
const ROOT: &str = "lib";

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Source text with comments, string, byte-string, raw-string and char
/// literals blanked out (lifetimes kept), so only code is left.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
            continue;
        }
        let starts_word = i == 0 || !ident(c[i - 1]);
        // Raw strings: r"..", r#".."#, br#".."#.
        let r = if starts_word && c[i] == 'b' && at(i + 1) == 'r' { i + 1 } else { i };
        if starts_word && c[r] == 'r' && (at(r + 1) == '"' || at(r + 1) == '#') {
            let mut j = r + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) == '"' {
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str(" \"\" ");
                i = j;
                continue;
            }
        }
        let q = if starts_word && c[i] == 'b' && at(i + 1) == '"' { i + 1 } else { i };
        if c[q] == '"' {
            let mut j = q + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            out.push_str(" \"\" ");
            i = j + 1;
            continue;
        }
        if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            let end = if at(i + 1) == '\\' {
                (i + 2..c.len()).find(|&j| c[j] == '\'')
            } else if at(i + 2) == '\'' {
                Some(i + 2)
            } else {
                None
            };
            if let Some(end) = end {
                out.push_str(" ' ' ");
                i = end + 1;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

fn tokens(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let mut t = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphabetic() || c[i] == '_' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            t.push(c[s..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            t.push("::".into());
            i += 2;
        } else if c[i].is_whitespace() {
            i += 1;
        } else {
            t.push(c[i].to_string());
            i += 1;
        }
    }
    t
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// The paths of one path expression or `use` tree starting at token `k`
/// (`a::b::{c, d::{e, *}}` gives `a::b::c`, `a::b::d::e`, `a::b::d::*`),
/// and the token after it.
fn path_tree(t: &[String], mut k: usize) -> (Vec<Vec<String>>, usize) {
    let tok = |k: usize| t.get(k).map_or("", String::as_str);
    let mut segs: Vec<String> = Vec::new();
    loop {
        if tok(k) == "{" {
            let mut out = Vec::new();
            k += 1;
            while k < t.len() && tok(k) != "}" {
                if tok(k) == "," {
                    k += 1;
                    continue;
                }
                let (paths, next) = path_tree(t, k);
                out.extend(paths.into_iter().map(|p| [segs.clone(), p].concat()));
                // Skip what a path does not take (`as name`).
                k = if next == k { k + 1 } else { next };
                while k < t.len() && !matches!(tok(k), "," | "}") {
                    k += 1;
                }
            }
            return (out, k + 1);
        }
        if !(is_ident(tok(k)) || tok(k) == "*") {
            return (if segs.is_empty() { vec![] } else { vec![segs] }, k);
        }
        segs.push(tok(k).to_string());
        k += 1;
        if tok(k) == "::" && (is_ident(tok(k + 1)) || matches!(tok(k + 1), "{" | "*")) {
            k += 1;
        } else {
            return (vec![segs], k);
        }
    }
}

/// What the reader knows of one crate: its modules (paths below the root,
/// `a::b`) and the names `lib.rs` re-exports (name -> module).
struct Crate {
    modules: BTreeSet<String>,
    aliases: BTreeMap<String, String>,
    /// Leave `#[cfg(test)]` items out.
    skip_tests: bool,
}

impl Crate {
    /// The module an absolute path (segments below the root) names: its
    /// deepest prefix that is a module; the root's re-export of its first
    /// segment; or the root.
    fn resolve(&self, full: &[String]) -> String {
        let full: Vec<&str> = full.iter().map(String::as_str).filter(|s| !matches!(*s, "self" | "*")).collect();
        (1..=full.len())
            .rev()
            .map(|i| full[..i].join("::"))
            .find(|m| self.modules.contains(m))
            .or_else(|| full.first().and_then(|f| self.aliases.get(*f).cloned()))
            .unwrap_or_else(|| ROOT.to_string())
    }

    /// The modules one file refers to; `here` is the file's module
    /// (empty for the crate root).
    fn references(&self, src: &str, here: &[&str]) -> BTreeSet<String> {
        let t = tokens(&code_only(src));
        let tok = |k: usize| t.get(k).map_or("", String::as_str);
        let node = |m: &[String]| if m.is_empty() { ROOT.to_string() } else { self.resolve(m) };
        let own = if here.is_empty() { ROOT.to_string() } else { here.join("::") };
        let mut found = BTreeSet::new();
        // For each open brace: the inline module it opens, if it does.
        let mut braces: Vec<Option<String>> = Vec::new();
        let mut k = 0;
        while k < t.len() {
            if self.skip_tests && t[k..].starts_with(&["#", "[", "cfg", "(", "test", ")", "]"].map(String::from)) {
                k = item_end(&t, k + 7);
                continue;
            }
            if tok(k) == "pub" && tok(k + 1) == "use" {
                k = item_end(&t, k);
                continue;
            }
            match tok(k) {
                "{" => braces.push((k >= 2 && tok(k - 2) == "mod").then(|| tok(k - 1).to_string())),
                "}" => {
                    braces.pop();
                }
                _ => {}
            }
            let path_start = (k == 0 || tok(k - 1) != "::") && is_ident(tok(k)) && tok(k + 1) == "::";
            if !path_start {
                k += 1;
                continue;
            }
            // The module this code is in, inline modules included.
            let cur: Vec<String> = here.iter().map(|s| s.to_string()).chain(braces.iter().flatten().cloned()).collect();
            let (paths, next) = path_tree(&t, k);
            for p in paths {
                let full = match p[0].as_str() {
                    "crate" => p[1..].to_vec(),
                    "self" => [cur.clone(), p[1..].to_vec()].concat(),
                    "super" => {
                        let ups = p.iter().take_while(|s| *s == "super").count();
                        if ups > cur.len() {
                            continue;
                        }
                        [cur[..cur.len() - ups].to_vec(), p[ups..].to_vec()].concat()
                    }
                    // A child module's name starts a path to it.
                    name if self.modules.contains(&[cur.clone(), vec![name.to_string()]].concat().join("::")) => [cur.clone(), p].concat(),
                    _ => continue,
                };
                let to = node(&full);
                if to != own {
                    found.insert(to);
                }
            }
            k = next.max(k + 1);
        }
        found
    }
}

/// The token after the item starting at `k`: after its `;` or its first
/// `{ ... }` block.
fn item_end(t: &[String], mut k: usize) -> usize {
    let mut depth = 0;
    while k < t.len() {
        match t[k].as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            ";" if depth == 0 => return k + 1,
            _ => {}
        }
        k += 1;
    }
    k
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("reading a source folder") {
        let p = e.expect("reading a source folder").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file's module below the root: `lib.rs` [], `m.rs` and `m/mod.rs`
/// [m], `m/x.rs` [m, x].
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|l| l == "mod" || (parts.len() == 1 && l == "lib")) {
        parts.pop();
    }
    parts
}

/// A library crate's module graph: each node and the nodes it refers to.
/// With `nested` false, a module is a top-level one with everything in it.
fn graph(src: &Path, nested: bool, skip_tests: bool) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // main.rs is the binary's own crate: it uses the library by name.
    files.retain(|p| p.file_name().is_none_or(|n| n != "main.rs" || p.parent() != Some(src)));
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f).join("::")).filter(|m| !m.is_empty()).collect();
    let mut krate = Crate { modules, aliases: BTreeMap::new(), skip_tests };
    // The root's re-exports, `pub use m::{X, Y}`: X and Y stand for m.
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("reading lib.rs");
    let t = tokens(&code_only(&lib));
    for k in (0..t.len()).filter(|&k| t[k] == "pub" && t.get(k + 1).is_some_and(|u| u == "use")) {
        for p in path_tree(&t, k + 2).0 {
            let first = if p[0] == "crate" { p.get(1) } else { p.first() };
            if first.is_some_and(|f| krate.modules.contains(f)) {
                let rel = if p[0] == "crate" { &p[1..] } else { &p[..] };
                krate.aliases.insert(p[p.len() - 1].clone(), krate.resolve(rel));
            }
        }
    }
    let top = |m: String| if nested { m } else { m.split("::").next().unwrap_or(ROOT).to_string() };
    let mut g = Graph::new();
    for f in &files {
        let here = module_of(src, f);
        let here: Vec<&str> = here.iter().map(String::as_str).collect();
        let node = top(if here.is_empty() { ROOT.to_string() } else { here.join("::") });
        let text = std::fs::read_to_string(f).expect("reading a source file");
        let refs = krate.references(&text, &here).into_iter().map(top);
        let to = g.entry(node.clone()).or_default();
        to.extend(refs.filter(|r| *r != node));
    }
    g
}

/// The graph's strongly connected components of more than one node
/// (Tarjan), each sorted: the groups of modules that refer to each other
/// in a cycle.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut T<'a>, n: &'a str) {
        let i = s.index.len();
        s.index.insert(n, i);
        s.low.insert(n, i);
        s.stack.push(n);
        s.on.insert(n);
        for m in s.g.get(n).into_iter().flatten() {
            if !s.index.contains_key(m.as_str()) {
                visit(s, m);
                let l = s.low[n].min(s.low[m.as_str()]);
                s.low.insert(n, l);
            } else if s.on.contains(m.as_str()) {
                let l = s.low[n].min(s.index[m.as_str()]);
                s.low.insert(n, l);
            }
        }
        if s.low[n] == s.index[n] {
            let mut c = Vec::new();
            while let Some(m) = s.stack.pop() {
                s.on.remove(m);
                c.push(m.to_string());
                if m == n {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                s.out.push(c);
            }
        }
    }
    let mut s = T { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    let nodes: BTreeSet<&str> = g.iter().flat_map(|(f, t)| std::iter::once(f.as_str()).chain(t.iter().map(String::as_str))).collect();
    for n in nodes {
        if !s.index.contains_key(n) {
            visit(&mut s, n);
        }
    }
    s.out.sort();
    s.out
}

fn edges(g: &Graph) -> impl Iterator<Item = (&str, &str)> {
    g.iter().flat_map(|(f, ts)| ts.iter().map(move |t| (f.as_str(), t.as_str())))
}

fn print_graph(name: &str, g: &Graph) {
    eprintln!("{name}'s module graph:");
    for (from, tos) in g {
        eprintln!("  {from} -> {}", tos.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    for c in cycles(g) {
        eprintln!("  cycle (strongly connected): {}", c.join(", "));
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ----- host/src: commands that stand alone ---------------------------------

fn is_command(module: &str) -> bool {
    module.ends_with("_cmd") || module.starts_with("bench") || module == "new_project"
}

/// Every breach of host's layering, one line each.
fn host_breaches(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to) in edges(g).filter(|(_, to)| is_command(to)) {
        if is_command(from) {
            out.push(format!("command module {from} refers to command module {to}"));
        } else if from != ROOT {
            out.push(format!("shared module {from} refers to command module {to} (only lib.rs dispatches to commands)"));
        }
    }
    for c in cycles(g) {
        out.push(format!("the modules refer to each other in a cycle: {}", c.join(", ")));
    }
    out
}

#[test]
fn host_commands_stand_alone_and_the_modules_form_no_cycle() {
    let g = graph(&manifest_dir().join("host/src"), false, false);
    print_graph("host/src", &g);
    // The reader sees the graph at all: the root dispatches to the
    // commands, and the commands use the shared helpers.
    for (from, to) in [(ROOT, "pipeline_cmd"), (ROOT, "stream_cmd"), (ROOT, "launch_cmd"), (ROOT, "bench"), ("stream_cmd", "common"), ("gen_cmd", "common")] {
        assert!(g.get(from).is_some_and(|t| t.contains(to)), "no edge {from} -> {to} found: the reader is broken");
    }
    let b = host_breaches(&g);
    assert!(b.is_empty(), "host/src's layering is broken:\n{}", b.join("\n"));
}

// ----- pipeline/src: layers that point one way -----------------------------

/// A layer of `pipeline/src`; a module may refer to its own layer and the
/// ones below it, a grain to no other grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// Stages and element types, specs, the event graph, a run's plan,
    /// references, halo history, the copy stages, the crate's error type.
    Model,
    /// Running a spec: the pipeline, its parts, the grain-neutral enqueue,
    /// and what drives pipelines (streams of chunks, ranks, the sync check).
    Exec,
    /// One way of launching (the name says which); grains import no other.
    Grain(&'static str),
    /// The built-in stages, workloads, the registry of stage names and the
    /// table of grains.
    Catalog,
}

impl Layer {
    fn rank(self) -> u8 {
        match self {
            Layer::Model => 0,
            Layer::Exec => 1,
            Layer::Grain(_) => 2,
            Layer::Catalog => 3,
        }
    }
}

/// Every module of `pipeline/src` and its layer (a new module must be
/// placed here, except a grain's: see [`layer_of`]).
const PIPELINE_LAYERS: &[(&str, Layer)] = &[
    (ROOT, Layer::Model),
    ("elem", Layer::Model),
    ("stage", Layer::Model),
    ("spec", Layer::Model),
    ("graph", Layer::Model),
    ("exec::plan", Layer::Model),
    ("reference", Layer::Model),
    ("halo", Layer::Model),
    ("copy", Layer::Model),
    ("host_mem", Layer::Model),
    ("records", Layer::Model),
    ("timeline", Layer::Model),
    ("exec", Layer::Exec),
    ("exec::error", Layer::Exec),
    ("exec::part", Layer::Exec),
    ("exec::enqueue", Layer::Exec),
    ("exec::device", Layer::Exec),
    ("exec::split", Layer::Exec),
    ("stream", Layer::Exec),
    ("stream::input", Layer::Exec),
    ("stream::io", Layer::Exec),
    ("nccl", Layer::Exec),
    ("ranks", Layer::Exec),
    ("sync_check", Layer::Exec),
    ("sim::device", Layer::Exec),
    ("sim::machine", Layer::Exec),
    ("exec::capture", Layer::Grain("graph")),
    ("exec::flags", Layer::Grain("flags")),
    ("flags", Layer::Grain("flags")),
    ("exec::pdl", Layer::Grain("pdl")),
    ("exec::warps", Layer::Grain("warps")),
    ("builtin", Layer::Catalog),
    ("grains", Layer::Catalog),
    // The simulated device's pipeline runs every grain (the protocol
    // grains as models that name their grain's shapes, `sim::grains`).
    ("sim", Layer::Catalog),
    ("sim::pipeline", Layer::Catalog),
    ("sim::grains", Layer::Catalog),
    // Ranks on the simulated device: each rank a `sim::pipeline` of `ranks`' local spec.
    ("sim::ranks", Layer::Catalog),
    ("fir", Layer::Catalog),
];

/// Edges of `pipeline/src` that break the layers or close a cycle today,
/// each with why it is there: none since issue 19's grain trait. An entry
/// added here (a breach accepted for a while) must say why; an entry whose
/// edge is gone fails the test (remove it then).
const KNOWN_VIOLATIONS: &[(&str, &str, &str)] = &[];

/// A module's layer: its place in [`PIPELINE_LAYERS`], or, for a module
/// placed nowhere that the table of grains (`grains`) imports, a grain of
/// its own. So a grain added to this repository is its module and its
/// line in `GRAINS`, as docs/guide.md says: the table's import places it.
fn layer_of(g: &Graph, module: &str) -> Option<Layer> {
    if let Some(&(_, l)) = PIPELINE_LAYERS.iter().find(|(m, _)| *m == module) {
        return Some(l);
    }
    let in_table = g.get("grains").is_some_and(|t| t.contains(module));
    // Leaked: a test's few module names, for `Layer`'s `&'static str`.
    in_table.then(|| Layer::Grain(Box::leak(module.to_string().into_boxed_str())))
}

/// Why an edge breaks the layers, if it does.
fn layer_breach(g: &Graph, from: &str, to: &str) -> Option<String> {
    let (Some(f), Some(t)) = (layer_of(g, from), layer_of(g, to)) else {
        return Some(format!("{from} -> {to}: a module with no layer (place it in PIPELINE_LAYERS)"));
    };
    if t.rank() > f.rank() {
        return Some(format!("{from} ({f:?}) -> {to} ({t:?}): points up"));
    }
    match (f, t) {
        (Layer::Grain(a), Layer::Grain(b)) if a != b => Some(format!("{from} ({f:?}) -> {to} ({t:?}): one grain imports another")),
        _ => None,
    }
}

/// Every breach of the pipeline's layering not in `known`, one line each:
/// edges that point up or between grains, cycles left once the known edges
/// are taken out, modules with no layer, and known edges that are gone.
fn pipeline_breaches(g: &Graph, known: &[(&str, &str, &str)]) -> Vec<String> {
    let is_known = |f: &str, t: &str| known.iter().any(|&(kf, kt, _)| kf == f && kt == t);
    let mut out: Vec<String> = edges(g).filter(|&(f, t)| !is_known(f, t)).filter_map(|(f, t)| layer_breach(g, f, t)).collect();
    for m in g.keys().filter(|m| layer_of(g, m).is_none()) {
        out.push(format!("module {m} has no layer (place it in PIPELINE_LAYERS)"));
    }
    let mut rest = g.clone();
    for (f, t, _) in known {
        if !rest.get_mut(*f).is_some_and(|ts| ts.remove(*t)) {
            out.push(format!("known violation {f} -> {t} is gone: remove it from KNOWN_VIOLATIONS"));
        }
    }
    for c in cycles(&rest) {
        out.push(format!("the modules refer to each other in a cycle: {}", c.join(", ")));
    }
    out
}

#[test]
fn pipeline_layers_point_one_way() {
    let g = graph(&manifest_dir().join("pipeline/src"), true, true);
    print_graph("pipeline/src", &g);
    eprintln!("layer violations (known ones included):");
    for (f, t) in edges(&g) {
        if let Some(b) = layer_breach(&g, f, t) {
            eprintln!("  {b}");
        }
    }
    // The reader sees nested modules, supers, groups and re-exports.
    for (from, to) in [
        ("exec::enqueue", "exec::plan"),
        ("exec::capture", "exec::enqueue"),
        ("stream", "exec::part"),
        ("spec", ROOT),
        ("sync_check", "exec"),
        ("stream", "stream::input"),
        ("exec::pdl", "exec::error"),
    ] {
        assert!(g.get(from).is_some_and(|t| t.contains(to)), "no edge {from} -> {to} found: the reader is broken");
    }
    for (m, _) in PIPELINE_LAYERS {
        assert!(g.contains_key(*m), "PIPELINE_LAYERS names {m}, which is no module of pipeline/src");
    }
    let b = pipeline_breaches(&g, KNOWN_VIOLATIONS);
    assert!(b.is_empty(), "pipeline/src's layering is broken:\n{}", b.join("\n"));
}

// ----- driver calls in pc_runtime only ------------------------------------

/// The raw driver paths one file's code names, in order: a `sys::` path
/// (cudarc's bindings, imported or spelled out), a `result::` path other
/// than `std::result::`/`core::result::` (cudarc's `driver::result` layer,
/// whatever it was imported as is caught at the import), and a `use` of
/// `cudarc::driver::sys` or `cudarc::driver::result` (`result as cu`
/// included). NCCL's bindings (`nccl::sys`, types only: `nccl.rs` loads the
/// library itself) are not the driver.
fn driver_paths(src: &str) -> Vec<String> {
    let t = tokens(&code_only(src));
    let tok = |k: usize| t.get(k).map_or("", String::as_str);
    let before = |k: usize| if k >= 2 && tok(k - 1) == "::" { tok(k - 2) } else { "" };
    let mut out = Vec::new();
    for k in 0..t.len() {
        if tok(k) == "use" {
            let (paths, _) = path_tree(&t, k + 1);
            for p in paths {
                if p.len() >= 3 && p[0] == "cudarc" && p[1] == "driver" && matches!(p[2].as_str(), "sys" | "result") {
                    out.push(format!("use {}", p.join("::")));
                }
            }
        }
        let driver_sys = tok(k) == "sys" && before(k) != "nccl";
        let driver_result = tok(k) == "result" && !matches!(before(k), "std" | "core");
        if (driver_sys || driver_result) && tok(k + 1) == "::" {
            out.push(format!("{}::{}", tok(k), tok(k + 2)));
        }
    }
    out
}

/// Each Rust file under `dir` (path relative to the package root) that
/// names a raw driver path, with those paths.
fn driver_callers(dir: &str) -> BTreeMap<String, Vec<String>> {
    let mut files = Vec::new();
    rust_files(&manifest_dir().join(dir), &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let src = std::fs::read_to_string(&f).expect("reading a source file");
        let found = driver_paths(&src);
        if !found.is_empty() {
            let name = f.strip_prefix(manifest_dir()).expect("a file under the package").to_string_lossy().replace('\\', "/");
            out.insert(name, found);
        }
    }
    out
}

/// Files of `pipeline/src` allowed to make raw driver calls or name the
/// driver's types, each with the `pc_runtime` wrapper to move to: none
/// since issue 19, item 4 moved them all to `pc_runtime`'s `copy`, `pinned`
/// and `stream` modules. A file that gains one fails the test, and so does
/// a listed file that no longer has any (remove it then).
const KNOWN_DRIVER_CALLERS: &[(&str, &str)] = &[];

/// What breaks "driver calls in pc_runtime only", one line each: a file
/// with driver paths that is not `known`, and a `known` file without any.
fn driver_breaches(found: &BTreeMap<String, Vec<String>>, known: &[(&str, &str)]) -> Vec<String> {
    let mut out: Vec<String> = found
        .iter()
        .filter(|(f, _)| !known.iter().any(|(k, _)| k == f))
        .map(|(f, paths)| format!("{f} makes raw driver calls ({}): use pc_runtime's copy, pinned and stream modules", paths.join(", ")))
        .collect();
    for (k, _) in known.iter().filter(|(k, _)| !found.contains_key(*k)) {
        out.push(format!("{k} makes no raw driver call any more: remove it from KNOWN_DRIVER_CALLERS"));
    }
    out
}

#[test]
fn driver_calls_live_in_pc_runtime() {
    let host = driver_callers("host/src");
    let b = driver_breaches(&host, &[]);
    assert!(b.is_empty(), "host/src reaches the CUDA driver directly:\n{}", b.join("\n"));
    let pipeline = driver_callers("pipeline/src");
    for (f, paths) in &pipeline {
        eprintln!("{f}: {}", paths.join(", "));
    }
    let b = driver_breaches(&pipeline, KNOWN_DRIVER_CALLERS);
    assert!(b.is_empty(), "pipeline/src's raw driver calls changed:\n{}", b.join("\n"));
}

#[test]
fn the_driver_reader_finds_calls_imports_and_aliases_but_not_comments() {
    assert_eq!(driver_paths("fn f() { unsafe { sys::cuMemsetD32Async(p, 0, n, s) }.result()?; }"), ["sys::cuMemsetD32Async"]);
    assert_eq!(driver_paths("use cudarc::driver::{CudaSlice, result as cu, sys};"), ["use cudarc::driver::result", "use cudarc::driver::sys"]);
    assert_eq!(driver_paths("let _ = unsafe { cudarc::driver::result::free_host(p) };"), ["result::free_host"]);
    assert_eq!(driver_paths("const T: Option<cudarc::driver::sys::CUevent_flags> = None;"), ["sys::CUevent_flags"]);
    // Not the driver: std's Result, NCCL's types, comments, strings.
    assert!(driver_paths("type R<T> = std::result::Result<T, E>;\nuse cudarc::nccl::sys::{ncclComm_t};").is_empty());
    assert!(driver_paths("// sys::cuMemcpyAsync\nconst S: &str = \"result::free_host\";\n/* use cudarc::driver::sys; */").is_empty());
    let found = BTreeMap::from([("a.rs".to_string(), vec!["sys::x".to_string()])]);
    assert_eq!(driver_breaches(&found, &[("a.rs", "why")]), Vec::<String>::new());
    assert_eq!(
        driver_breaches(&found, &[("b.rs", "why")]),
        [
            "a.rs makes raw driver calls (sys::x): use pc_runtime's copy, pinned and stream modules",
            "b.rs makes no raw driver call any more: remove it from KNOWN_DRIVER_CALLERS"
        ]
    );
}

// ----- the reader itself ---------------------------------------------------

fn test_crate(modules: &[&str], aliases: &[(&str, &str)], skip_tests: bool) -> Crate {
    Crate {
        modules: modules.iter().map(|s| s.to_string()).collect(),
        aliases: aliases.iter().map(|(a, m)| (a.to_string(), m.to_string())).collect(),
        skip_tests,
    }
}

fn test_graph(edges: &[(&str, &str)]) -> Graph {
    let mut g = Graph::new();
    for (f, t) in edges {
        g.entry(f.to_string()).or_default().insert(t.to_string());
    }
    g
}

#[test]
fn the_reader_skips_comments_and_literals_and_follows_groups_and_supers() {
    let host = test_crate(&["a_cmd", "a_cmd::x", "b_cmd", "common"], &[], false);
    let refs = |src: &str, here: &[&str]| host.references(src, here).into_iter().collect::<Vec<_>>();
    // Code in strings, raw strings, chars and comments is not code.
    let quoted = "// crate::a_cmd\n/* crate::b_cmd /* nested */ crate::a_cmd */\nconst T: &str = r#\"use crate::a_cmd; \"#;\nconst U: &str = \"crate::b_cmd \\\" crate::a_cmd\";\nfn f<'a>(x: &'a u8) -> char { '\"' }\nfn g() { crate::common::x(); }";
    assert_eq!(refs(quoted, &["x"]), ["common"]);
    // Groups, items of the root, and supers that climb to it.
    assert_eq!(refs("use crate::{a_cmd::X, common::{y, z}, main_with};", &["x"]), ["a_cmd", "common", "lib"]);
    assert_eq!(refs("mod tests { use super::*; fn f() { super::super::b_cmd::run(); } }", &["a_cmd"]), ["b_cmd"]);
    assert_eq!(refs("use super::helper;", &["x"]), ["lib"]);
    // A nested module's edge to its parent (host's graph of top-level
    // modules leaves it out: it is inside one module).
    assert_eq!(refs("use super::helper;", &["a_cmd", "x"]), ["a_cmd"]);
    assert_eq!(refs("pub(crate) fn f() { a_cmd::run(); std::a_cmd::x(); }", &[]), ["a_cmd"]);
    // A command that refers to another, and a cycle, are breaches.
    assert!(host_breaches(&test_graph(&[("lib", "a_cmd"), ("a_cmd", "common")])).is_empty());
    assert_eq!(host_breaches(&test_graph(&[("a_cmd", "bench")])), ["command module a_cmd refers to command module bench"]);
    assert_eq!(
        host_breaches(&test_graph(&[("lib", "common"), ("common", "units"), ("units", "lib")])),
        ["the modules refer to each other in a cycle: common, lib, units"]
    );
}

#[test]
fn the_reader_follows_nested_modules_and_leaves_tests_and_reexports_out() {
    let pipe = test_crate(&["exec", "exec::part", "exec::flags", "stage", "stream", "stream::io"], &[("Pipeline", "exec")], true);
    let refs = |src: &str, here: &[&str]| pipe.references(src, here).into_iter().collect::<Vec<_>>();
    // Nested modules by crate path, by super, by a child's name, in groups.
    assert_eq!(refs("use super::part::Part; use super::{Result, err};", &["exec", "flags"]), ["exec", "exec::part"]);
    assert_eq!(refs("use crate::{exec::{flags::X, part}, stage::{self, Stage}};", &["stream"]), ["exec::flags", "exec::part", "stage"]);
    assert_eq!(refs("use part::Part; fn f() { flags::go(); io::x(); }", &["exec"]), ["exec::flags", "exec::part"]);
    assert_eq!(refs("mod inner { fn f() { super::super::io::x(); self::y(); } }", &["stream", "io"]), Vec::<String>::new());
    assert_eq!(refs("mod inner { fn f() { super::super::exec::x(); } }", &["stream"]), ["exec"]);
    // The root's items, and the root's re-exports.
    assert_eq!(refs("use crate::{Pipeline, PipelineError};", &["stage"]), ["exec", "lib"]);
    // Test code and public re-exports are not edges; other items are.
    assert_eq!(refs("#[cfg(test)]\nmod tests { use crate::stage::Stage; }\nfn f() -> crate::exec::X {}", &["stream"]), ["exec"]);
    assert_eq!(refs("#[cfg(test)]\nuse crate::stage::Stage;\npub use crate::exec::X;\npub(crate) use crate::exec::part::Y;", &["stream"]), ["exec::part"]);
    let keep = test_crate(&["stage"], &[], false);
    assert_eq!(keep.references("#[cfg(test)]\nmod tests { use crate::stage::Stage; }", &["x"]).into_iter().collect::<Vec<_>>(), ["stage"]);
}

#[test]
fn the_layers_refuse_edges_up_and_between_grains_and_cycles() {
    let ok = test_graph(&[("builtin", "exec::flags"), ("exec::flags", "flags"), ("exec::flags", "exec::part"), ("exec::part", "stage"), ("stage", ROOT)]);
    assert_eq!(pipeline_breaches(&ok, &[]), Vec::<String>::new());
    let up = test_graph(&[("stage", "builtin")]);
    assert_eq!(pipeline_breaches(&up, &[]), ["stage (Model) -> builtin (Catalog): points up"]);
    assert_eq!(pipeline_breaches(&up, &[("stage", "builtin", "why")]), Vec::<String>::new());
    let sideways = test_graph(&[("exec::warps", "exec::pdl")]);
    assert_eq!(pipeline_breaches(&sideways, &[]), [r#"exec::warps (Grain("warps")) -> exec::pdl (Grain("pdl")): one grain imports another"#]);
    let cycle = test_graph(&[("exec", "exec::part"), ("exec::part", "exec")]);
    assert_eq!(pipeline_breaches(&cycle, &[]), ["the modules refer to each other in a cycle: exec, exec::part"]);
    assert_eq!(pipeline_breaches(&cycle, &[("exec::part", "exec", "why")]), Vec::<String>::new());
    assert_eq!(pipeline_breaches(&ok, &[("stage", "exec", "why")]), ["known violation stage -> exec is gone: remove it from KNOWN_VIOLATIONS"]);
    assert_eq!(
        pipeline_breaches(&test_graph(&[("newmod", "stage")]), &[]),
        ["newmod -> stage: a module with no layer (place it in PIPELINE_LAYERS)", "module newmod has no layer (place it in PIPELINE_LAYERS)"]
    );
    // A new grain's module needs no place: the table of grains imports it.
    let new_grain = test_graph(&[("grains", "exec::serial"), ("exec::serial", "exec::part"), ("exec::serial", "stage")]);
    assert_eq!(pipeline_breaches(&new_grain, &[]), Vec::<String>::new());
    // It is a grain like the others: it may import no other grain, nothing above it.
    let sideways = test_graph(&[("grains", "exec::serial"), ("exec::serial", "exec::pdl")]);
    assert_eq!(pipeline_breaches(&sideways, &[]), [r#"exec::serial (Grain("exec::serial")) -> exec::pdl (Grain("pdl")): one grain imports another"#]);
    let up = test_graph(&[("grains", "exec::serial"), ("exec::serial", "builtin")]);
    assert_eq!(pipeline_breaches(&up, &[]), [r#"exec::serial (Grain("exec::serial")) -> builtin (Catalog): points up"#]);
}
