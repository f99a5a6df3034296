//! The layering of `host/src` (issue 19, "commands that stand alone"): each
//! command is a module of its own (`*_cmd`, `bench*`, `new_project`), no
//! command refers to another, the helpers they share import no command,
//! and the modules' references form no cycle. Only the crate root
//! (`lib.rs`) dispatches to the commands.
//!
//! The graph is read from the source text: every `crate::m...` path (also
//! inside `use crate::{m, ...}` groups), every `super::` chain that climbs
//! to the crate root, and in `lib.rs` every `m::` path, with comments and
//! string literals left out (`new_project` writes Rust source from string
//! templates). A reference to an item of `lib.rs` itself (say
//! `crate::main_with`) is an edge to `lib`. A module is a file `m.rs` or a
//! folder `m/` with everything in it; references inside one module are not
//! edges.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate root's node.
const ROOT: &str = "lib";

fn is_command(module: &str) -> bool {
    module.ends_with("_cmd") || module.starts_with("bench") || module == "new_project"
}

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

/// The top-level modules (nodes) one file of the crate refers to, for a
/// file `depth` modules below the root (`lib.rs` 0, `m.rs` and `m/mod.rs`
/// 1, `m/x.rs` 2); `modules` are the crate root's modules.
fn references(src: &str, depth: usize, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let t = tokens(&code_only(src));
    let tok = |k: usize| t.get(k).map_or("", String::as_str);
    let mut found = BTreeSet::new();
    // The first segment after the crate root: a module, or an item of lib.rs.
    let from_root = |k: usize, found: &mut BTreeSet<String>| {
        let name = |s: &str| if modules.contains(s) { s.to_string() } else { ROOT.to_string() };
        if tok(k) != "{" {
            if !tok(k).is_empty() && tok(k) != "*" {
                found.insert(name(tok(k)));
            }
            return;
        }
        // `crate::{a::b, c}`: the first segment of each element.
        let (mut level, mut j, mut head) = (0, k, true);
        while j < t.len() {
            match tok(j) {
                "{" => {
                    level += 1;
                    head = level == 1;
                }
                "}" => {
                    level -= 1;
                    if level == 0 {
                        break;
                    }
                }
                "," => head = level == 1,
                s if head && level == 1 => {
                    if s != "self" && s != "*" {
                        found.insert(name(s));
                    }
                    head = false;
                }
                _ => {}
            }
            j += 1;
        }
    };
    // Inline `mod m { ... }` blocks open at this point.
    let mut braces: Vec<bool> = Vec::new();
    for k in 0..t.len() {
        match tok(k) {
            "{" => braces.push(k >= 2 && tok(k - 2) == "mod"),
            "}" => {
                braces.pop();
            }
            _ => {}
        }
        let path_start = k == 0 || tok(k - 1) != "::";
        if !path_start || tok(k + 1) != "::" {
            continue;
        }
        match tok(k) {
            "crate" => from_root(k + 2, &mut found),
            "super" => {
                let mut ups = 0;
                let mut j = k;
                while tok(j) == "super" && tok(j + 1) == "::" {
                    ups += 1;
                    j += 2;
                }
                if ups == depth + braces.iter().filter(|&&m| m).count() {
                    from_root(j, &mut found);
                }
            }
            // In the crate root, a module's name starts a path to it.
            m if depth == 0 && braces.iter().all(|&m| !m) && modules.contains(m) => {
                found.insert(m.to_string());
            }
            _ => {}
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("reading host/src") {
        let p = e.expect("reading host/src").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// host/src's module graph: each node and the nodes it refers to.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let node_of = |p: &Path| -> (String, usize) {
        let rel = p.strip_prefix(src).expect("a file under src");
        let parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let first = parts[0].trim_end_matches(".rs").to_string();
        let depth = parts.len() - usize::from(parts.last().is_some_and(|l| l == "mod.rs"));
        if first == "lib" { (ROOT.to_string(), 0) } else { (first, depth) }
    };
    // main.rs is the binary's own crate: it uses the library by name.
    files.retain(|p| p.file_name().is_none_or(|n| n != "main.rs" || p.parent() != Some(src)));
    let modules: BTreeSet<String> = files.iter().map(|p| node_of(p).0).filter(|n| n != ROOT).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let (node, depth) = node_of(f);
        let text = std::fs::read_to_string(f).expect("reading a source file");
        let refs = references(&text, depth, &modules);
        g.entry(node.clone()).or_default().extend(refs.into_iter().filter(|r| *r != node));
    }
    g
}

/// A cycle of `g`, as the path around it, if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, state: &mut BTreeMap<String, u8>, path: &mut Vec<String>) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = path.iter().position(|p| p == m).unwrap_or(0);
                    let mut c = path[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, g, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// Every breach of the layering, one line each.
fn breaches(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in g {
        for to in tos.iter().filter(|to| is_command(to)) {
            if is_command(from) {
                out.push(format!("command module {from} refers to command module {to}"));
            } else if from != ROOT {
                out.push(format!("shared module {from} refers to command module {to} (only lib.rs dispatches to commands)"));
            }
        }
    }
    if let Some(c) = cycle(g) {
        out.push(format!("the modules refer to each other in a cycle: {}", c.join(" -> ")));
    }
    out
}

#[test]
fn commands_stand_alone_and_the_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    for (from, tos) in &g {
        eprintln!("{from} -> {}", tos.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    // The reader sees the graph at all: the root dispatches to the
    // commands, and the commands use the shared helpers.
    for (from, to) in [(ROOT, "pipeline_cmd"), (ROOT, "stream_cmd"), (ROOT, "launch_cmd"), (ROOT, "bench"), ("stream_cmd", "common"), ("gen_cmd", "common")] {
        assert!(g.get(from).is_some_and(|t| t.contains(to)), "no edge {from} -> {to} found: the reader is broken");
    }
    let b = breaches(&g);
    assert!(b.is_empty(), "host/src's layering is broken:\n{}", b.join("\n"));
}

#[test]
fn the_reader_skips_comments_and_literals_and_follows_groups_and_supers() {
    let modules: BTreeSet<String> = ["a_cmd", "b_cmd", "common"].iter().map(|s| s.to_string()).collect();
    let refs = |src: &str, depth| references(src, depth, &modules).into_iter().collect::<Vec<_>>();
    // Code in strings, raw strings, chars and comments is not code.
    let quoted = "// crate::a_cmd\n/* crate::b_cmd /* nested */ crate::a_cmd */\nconst T: &str = r#\"use crate::a_cmd; \"#;\nconst U: &str = \"crate::b_cmd \\\" crate::a_cmd\";\nfn f<'a>(x: &'a u8) -> char { '\"' }\nfn g() { crate::common::x(); }";
    assert_eq!(refs(quoted, 1), ["common"]);
    // Groups, items of the root, and supers that climb to it.
    assert_eq!(refs("use crate::{a_cmd::X, common::{y, z}, main_with};", 1), ["a_cmd", "common", "lib"]);
    assert_eq!(refs("mod tests { use super::*; fn f() { super::super::b_cmd::run(); } }", 1), ["b_cmd"]);
    assert_eq!(refs("use super::helper;", 1), ["lib"]);
    assert_eq!(refs("use super::helper;", 2), Vec::<String>::new());
    assert_eq!(refs("pub(crate) fn f() { a_cmd::run(); std::a_cmd::x(); }", 0), ["a_cmd"]);
    // A command that refers to another, and a cycle, are breaches.
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (f, t) in edges {
            g.entry(f.to_string()).or_default().insert(t.to_string());
        }
        g
    };
    assert!(breaches(&g(&[("lib", "a_cmd"), ("a_cmd", "common")])).is_empty());
    assert_eq!(breaches(&g(&[("a_cmd", "bench")])), ["command module a_cmd refers to command module bench"]);
    assert_eq!(
        breaches(&g(&[("lib", "common"), ("common", "units"), ("units", "lib")])),
        ["the modules refer to each other in a cycle: common -> units -> lib -> common"]
    );
}
