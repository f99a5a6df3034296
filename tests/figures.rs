//! Every measured figure in the docs cites a raw log a script wrote, and is in
//! it. The convention (stated at the top of BENCHMARKS.md):
//!
//! - A *block* is a paragraph, a top-level list item, a table, or a fenced
//!   block with no info string (the output of a run); headings and fences
//!   with an info string (`sh`, `rust`, `text`: commands, code) are not
//!   checked.
//! - `(log: docs/a.txt)` or `(logs: docs/a.txt, docs/b.txt)` in a block cites
//!   those files; a table or an output block also takes the citations of the
//!   block just before it (its caption). Every cited file must exist.
//! - In a block with a citation, every number outside inline code must occur
//!   in one of the cited files (the same value: `256` matches `256.0`,
//!   `100,000` matches `100000`), except dates, dotted versions (`2.28.3`) and
//!   digits glued to letters (`H100`, `sm_90`, `f32`, commit hashes), and a
//!   number right after a name in `VERSION_WORDS` (`CUDA 13.0`). A
//!   log's full-precision values (5 decimals or more; any value of a `.json`
//!   log) also match their roundings (`0.5375465526346682` backs `0.54`).
//! - A number computed from logged ones is written with its computation,
//!   `80.8% (= 299.2 / 370.2)` (a `%` figure is the value times 100): the
//!   operands with a decimal point are checked against the logs (integers
//!   are constants: counts, bytes per element), the result against the
//!   computation, to the digits shown. A unit may stand between the figure
//!   and its computation (`1.01 us (= 12.429 * 1000 / 4096 / 3)`).
//! - A number right after `>=` or `<=` is a goal (`Rust/nvcc <= 1.02`), not
//!   a figure.
//! - A block without a citation may hold configuration (sizes, counts, flag
//!   values) but no measured-looking number: none with a decimal point, a
//!   `%` or an `x` (a ratio), a unit of time, rate or frequency, or a count
//!   a run reports (`runs`, `errors`, `samples`, `passed`, `failed`, ...).
//! - `(to re-measure: REASON)` in a block (or its caption) marks its figures
//!   as not backed by a log; the block is not checked, and REASON must be
//!   given.

use std::path::{Path, PathBuf};

/// The documents under the rule. `docs/ceilings-fir-h200.md` is not one of
/// them: it is a raw log (`host bench`'s bench.md output under a two-line
/// header), cited by BENCHMARKS.md.
const DOCS: &[&str] = &["README.md", "BENCHMARKS.md", "docs/guide.md", "docs/stream-readers-cpu.md"];

/// Units after a number that make it a measurement rather than a setting.
const MEASURED_UNITS: &[&str] = &[
    "ms",
    "us",
    "ns",
    "s",
    "GB/s",
    "TB/s",
    "MB/s",
    "T/s",
    "k/s",
    "GHz",
    "Msamples/s",
    // Counts a run reports.
    "runs",
    "errors",
    "samples",
    "passed",
    "failed",
    "wrong",
    "hazards",
];

/// A number right after one of these words is a version or a name
/// (`CUDA 13.0`, `issue 12`).
const VERSION_WORDS: &[&str] = &["Issue", "issue", "CUDA", "NCCL", "PTX", "PyTorch", "torch", "driver", "cudarc", "LLVM", "cuda_builder", "cuda_std", "cust"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Table,
    Output,
    /// A heading: never checked, and no caption for what follows.
    Heading,
}

#[derive(Debug)]
struct Block {
    kind: Kind,
    line: usize,
    text: String,
}

/// Splits markdown into blocks (headings and code fences with an info string
/// are dropped).
fn blocks(md: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut cur: Option<Block> = None;
    let mut fence: Option<Kind> = None; // Some(Output) or Some(Text) for a code fence
    let flush = |cur: &mut Option<Block>, out: &mut Vec<Block>| {
        if let Some(b) = cur.take() {
            out.push(b);
        }
    };
    for (i, line) in md.lines().enumerate() {
        let n = i + 1;
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            match fence {
                Some(_) => {
                    fence = None;
                    flush(&mut cur, &mut out);
                }
                None => {
                    flush(&mut cur, &mut out);
                    if info.trim().is_empty() {
                        fence = Some(Kind::Output);
                        cur = Some(Block { kind: Kind::Output, line: n, text: String::new() });
                    } else {
                        fence = Some(Kind::Text);
                    }
                }
            }
            continue;
        }
        match fence {
            Some(Kind::Output) => {
                if let Some(b) = cur.as_mut() {
                    b.text.push_str(line);
                    b.text.push('\n');
                }
                continue;
            }
            Some(_) => continue,
            None => {}
        }
        if t.is_empty() {
            flush(&mut cur, &mut out);
            continue;
        }
        if t.starts_with('#') {
            flush(&mut cur, &mut out);
            out.push(Block { kind: Kind::Heading, line: n, text: String::new() });
            continue;
        }
        let is_table = t.starts_with('|');
        let indented = line.starts_with(' ');
        let item = !indented && (t.starts_with("- ") || t.starts_with("* ") || numbered(t));
        let kind = if is_table { Kind::Table } else { Kind::Text };
        let cont = match &cur {
            Some(b) => b.kind == kind && !item,
            None => false,
        };
        if !cont {
            flush(&mut cur, &mut out);
            cur = Some(Block { kind, line: n, text: String::new() });
        }
        let b = cur.as_mut().expect("a block was just started");
        b.text.push_str(line);
        b.text.push('\n');
    }
    flush(&mut cur, &mut out);
    out
}

fn numbered(t: &str) -> bool {
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    digits > 0 && t[digits..].starts_with(". ")
}

/// The paths of every `(log: ...)` / `(logs: ...)` in `text`.
fn citations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for open in ["(log: ", "(logs: "] {
        let mut rest = text;
        while let Some(at) = rest.find(open) {
            let after = &rest[at + open.len()..];
            let end = after.find(')').unwrap_or(after.len());
            for p in after[..end].split(',') {
                out.push(p.split_whitespace().collect::<Vec<_>>().join(""));
            }
            rest = &after[end..];
        }
    }
    out
}

/// The reason of a `(to re-measure: REASON)` marker, if any ("" when empty).
fn re_measure(text: &str) -> Option<String> {
    let at = text.find("(to re-measure")?;
    let after = &text[at + "(to re-measure".len()..];
    let reason = after.strip_prefix(':').unwrap_or("");
    let end = reason.find(')').unwrap_or(reason.len());
    Some(reason[..end].trim().to_string())
}

/// `text` with inline code blanked out.
fn uncode(text: &str) -> String {
    let mut in_code = false;
    text.chars()
        .map(|c| {
            if c == '`' {
                in_code = !in_code;
                ' '
            } else if in_code {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// `text` with inline code, citations, markers and link targets blanked out.
fn prose(text: &str) -> String {
    let mut s = uncode(text);
    for open in ["(log: ", "(logs: ", "(to re-measure", "]("] {
        while let Some(at) = s.find(open) {
            let end = s[at..].find(')').map_or(s.len(), |e| at + e + 1);
            s.replace_range(at..end, &" ".repeat(end - at));
        }
    }
    s
}

#[derive(Debug, Clone)]
struct Num {
    /// As written, thousands separators included.
    text: String,
    start: usize,
    end: usize,
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The numbers of doc prose: not dates, dotted versions, or digits glued to
/// letters; an `x` right after a number (a ratio, `1.46x`) belongs to it.
fn numbers(s: &str) -> Vec<Num> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (is_word(b[i - 1]) || b[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i;
        // Digits, with `,ddd` groups and `.`-separated parts.
        let mut dots = 0;
        loop {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j + 3 < b.len() && b[j] == b',' && b[j + 1..j + 4].iter().all(u8::is_ascii_digit) && (j + 4 == b.len() || !b[j + 4].is_ascii_digit()) {
                j += 1;
                continue;
            }
            if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_digit() {
                dots += 1;
                j += 1;
                continue;
            }
            break;
        }
        let date = j + 6 <= b.len() && b[j] == b'-' && b[j + 1..j + 3].iter().all(u8::is_ascii_digit) && b[j + 3] == b'-' && j - start == 4;
        let glued = j < b.len() && is_word(b[j]) && !(b[j] == b'x' && (j + 1 == b.len() || !is_word(b[j + 1])));
        let version = VERSION_WORDS.iter().any(|w| s[..start].ends_with(&format!("{w} ")));
        if date {
            j += 6;
        } else if dots < 2 && !glued && !version {
            out.push(Num { text: s[start..j].to_string(), start, end: j });
        }
        i = j.max(i + 1);
    }
    out
}

/// A number's value as a canonical decimal string: `1,000.50` -> `1000.5`.
fn canon(t: &str) -> String {
    let t: String = t.chars().filter(|&c| c != ',').collect();
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") }
}

/// Every number in a log, loosely: any run of digits with an optional
/// fraction, whatever surrounds it.
fn log_numbers(text: &str) -> std::collections::HashSet<String> {
    let b = text.as_bytes();
    let mut out = std::collections::HashSet::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        out.insert(canon(&text[i..j]));
        if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_digit() {
            let mut k = j + 1;
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            out.insert(canon(&text[i..k]));
            j = k;
        }
        i = j;
    }
    out
}

/// A log's full-precision values (`0.5375465526346682`, every value of a
/// JSON log) that the docs show rounded: each also stands for its roundings
/// to fewer decimals.
fn with_roundings(nums: std::collections::HashSet<String>, json: bool) -> std::collections::HashSet<String> {
    let mut out = nums.clone();
    for n in &nums {
        let Some((_, frac)) = n.split_once('.') else { continue };
        if !json && frac.len() < 5 {
            continue;
        }
        let v: f64 = n.parse().expect("a canonical number");
        for d in 0..frac.len() {
            out.insert(canon(&format!("{v:.d$}")));
        }
    }
    out
}

/// What follows a number: `%`, `x`, or the next word (a unit).
fn suffix(s: &str, n: &Num) -> String {
    let rest = &s[n.end..];
    if rest.starts_with('%') || rest.starts_with('x') {
        return rest[..1].to_string();
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    rest.split(|c: char| c.is_whitespace() || ",;:()|*".contains(c)).next().unwrap_or("").trim_end_matches('.').to_string()
}

/// A number right after `>=` or `<=` is a goal a figure is held against
/// (`Rust/nvcc <= 1.02`, `>= 90%`), not a figure.
fn is_goal(s: &str, n: &Num) -> bool {
    let before = s[..n.start].trim_end();
    before.ends_with(">=") || before.ends_with("<=")
}

fn measured_looking(s: &str, n: &Num) -> bool {
    let suf = suffix(s, n);
    n.text.contains('.') || suf == "%" || suf == "x" || MEASURED_UNITS.contains(&suf.as_str())
}

/// Evaluates `a op b op c ...` with `*` and `/` before `+` and `-`, and
/// parentheses. Returns the value and the numbers it used.
fn eval(expr: &str) -> Result<(f64, Vec<String>), String> {
    struct P<'a> {
        s: &'a [u8],
        i: usize,
        used: Vec<String>,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i] == b' ' {
                self.i += 1;
            }
        }
        fn sum(&mut self) -> Result<f64, String> {
            let mut v = self.product()?;
            loop {
                self.ws();
                match self.s.get(self.i) {
                    Some(b'+') => {
                        self.i += 1;
                        v += self.product()?;
                    }
                    Some(b'-') => {
                        self.i += 1;
                        v -= self.product()?;
                    }
                    _ => return Ok(v),
                }
            }
        }
        fn product(&mut self) -> Result<f64, String> {
            let mut v = self.atom()?;
            loop {
                self.ws();
                match self.s.get(self.i) {
                    Some(b'*') => {
                        self.i += 1;
                        v *= self.atom()?;
                    }
                    Some(b'/') => {
                        self.i += 1;
                        v /= self.atom()?;
                    }
                    _ => return Ok(v),
                }
            }
        }
        fn atom(&mut self) -> Result<f64, String> {
            self.ws();
            if self.s.get(self.i) == Some(&b'(') {
                self.i += 1;
                let v = self.sum()?;
                self.ws();
                if self.s.get(self.i) != Some(&b')') {
                    return Err("unbalanced parenthesis".into());
                }
                self.i += 1;
                return Ok(v);
            }
            let start = self.i;
            while self.i < self.s.len() && (self.s[self.i].is_ascii_digit() || b".,".contains(&self.s[self.i])) {
                self.i += 1;
            }
            let t = std::str::from_utf8(&self.s[start..self.i]).expect("ascii");
            if t.is_empty() {
                return Err(format!("expected a number at {:?}", std::str::from_utf8(&self.s[start..]).unwrap_or("")));
            }
            self.used.push(t.to_string());
            canon(t).parse::<f64>().map_err(|e| format!("{t}: {e}"))
        }
    }
    let mut p = P { s: expr.as_bytes(), i: 0, used: Vec::new() };
    let v = p.sum()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text in `{expr}`"));
    }
    Ok((v, p.used))
}

/// One document's problems, each `file:line: what`.
fn check(name: &str, md: &str, read_log: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let bs = blocks(md);
    for (k, b) in bs.iter().enumerate() {
        let caption = match b.kind {
            Kind::Table | Kind::Output if k > 0 && bs[k - 1].kind == Kind::Text => Some(&bs[k - 1].text),
            _ => None,
        };
        // Markers and citations may wrap over lines.
        let text = b.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let b = &Block { kind: b.kind, line: b.line, text };
        let caption = caption.map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "));
        let caption = caption.as_ref();
        let mut cites = citations(&uncode(&b.text));
        let mut marker = re_measure(&uncode(&b.text));
        if let Some(c) = caption {
            cites.extend(citations(&uncode(c)));
            marker = marker.or_else(|| re_measure(&uncode(c)));
        }
        if b.kind == Kind::Heading {
            continue;
        }
        let at = format!("{name}:{}", b.line);
        let mut logs = Vec::new();
        for c in &cites {
            match read_log(c) {
                Some(text) if c.starts_with("docs/") => {
                    let mut nums = log_numbers(&text);
                    nums = with_roundings(nums, c.ends_with(".json"));
                    logs.push(nums);
                }
                Some(_) => problems.push(format!("{at}: cites {c}, which is not under docs/")),
                None => problems.push(format!("{at}: cites {c}, which does not exist")),
            }
        }
        if let Some(reason) = &marker {
            if reason.is_empty() {
                problems.push(format!("{at}: `(to re-measure)` without a reason"));
            }
            continue;
        }
        let mut s = prose(&b.text);
        // Computed figures: `N (= expr)`.
        let mut derived = Vec::new();
        while let Some(open) = s.find("(= ") {
            let close = s[open..].find(')').map(|e| open + e);
            // The expression may hold parentheses: find the matching one.
            let mut depth = 0;
            let mut end = None;
            for (off, c) in s[open..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(open + off);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end.or(close) else {
                problems.push(format!("{at}: unclosed `(= `"));
                break;
            };
            let expr = s[open + 3..end].to_string();
            let before = s[..open].trim_end();
            // A unit may stand between the figure and its computation
            // (`1.01 us (= ...)`); the computation is in that unit.
            let before = MEASURED_UNITS.iter().find_map(|u| before.strip_suffix(u).filter(|b| b.ends_with(' '))).map_or(before, str::trim_end);
            let percent = before.ends_with('%');
            let before = before.strip_suffix('%').or_else(|| before.strip_suffix('x')).unwrap_or(before);
            let shown = numbers(before).into_iter().last().filter(|n| n.end == before.len());
            match (shown, eval(&expr)) {
                (Some(n), Ok((v, used))) => {
                    let v = if percent { v * 100.0 } else { v };
                    let decimals = n.text.split_once('.').map_or(0, |(_, f)| f.len());
                    let want: f64 = canon(&n.text).parse().expect("a number");
                    if (v - want).abs() > 0.5 * 10f64.powi(-(decimals as i32)) + 1e-9 {
                        problems.push(format!("{at}: {} is not {expr} (= {v})", n.text));
                    }
                    derived.push(n.start);
                    // Integer operands are constants (counts, bytes per
                    // element), taken as written.
                    for u in used.into_iter().filter(|u| u.contains('.')) {
                        if !logs.iter().any(|l| l.contains(&canon(&u))) {
                            problems.push(format!("{at}: {u} (in `= {expr}`) is in none of {cites:?}"));
                        }
                    }
                }
                (None, _) => problems.push(format!("{at}: `(= {expr})` follows no number")),
                (_, Err(e)) => problems.push(format!("{at}: `(= {expr})`: {e}")),
            }
            s.replace_range(open..=end, &" ".repeat(end + 1 - open));
        }
        for n in numbers(&s) {
            if derived.contains(&n.start) || is_goal(&s, &n) {
                continue;
            }
            if cites.is_empty() {
                if measured_looking(&s, &n) {
                    problems.push(format!("{at}: {}{} looks measured but the block cites no log", n.text, suffix(&s, &n)));
                }
            } else if !logs.iter().any(|l| l.contains(&canon(&n.text))) {
                problems.push(format!("{at}: {} is in none of {cites:?}", n.text));
            }
        }
    }
    problems
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_under(root: &Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |p: &str| {
        if p.contains("..") {
            return None;
        }
        std::fs::read_to_string(root.join(p)).ok()
    }
}

#[test]
fn every_figure_in_the_docs_is_in_the_log_it_cites() {
    let root = root();
    let mut problems = Vec::new();
    for d in DOCS {
        let md = std::fs::read_to_string(root.join(d)).unwrap_or_else(|e| panic!("{d}: {e}"));
        problems.extend(check(d, &md, &read_under(&root)));
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---- the checker against small documents: each rule can fail ----

fn fake_logs(p: &str) -> Option<String> {
    match p {
        "docs/run.txt" => Some("pipelined: 10 run(s) in 58.009 ms: 370.2 GB/s; ranks: 299.2 GB/s; 100000 runs".into()),
        _ => None,
    }
}

fn problems(md: &str) -> Vec<String> {
    check("t.md", md, &fake_logs)
}

#[test]
fn a_cited_figure_in_its_log_passes() {
    let md = "One process: 370.2 GB/s in 58.009 ms over 100,000 runs (log: docs/run.txt).\n\n\
              | a | b |\n|---|---|\n| 299.2 | 370.2 |\n\n\
              Two ranks reach 80.8% (= 299.2 / 370.2) of one (log: docs/run.txt).\n";
    assert_eq!(problems(md), Vec::<String>::new());
}

#[test]
fn a_figure_changed_by_one_digit_fails() {
    let p = problems("One process: 370.3 GB/s (log: docs/run.txt).\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("370.3 is in none"), "{p:?}");
}

#[test]
fn a_wrong_computation_fails() {
    let p = problems("Two ranks reach 80.9% (= 299.2 / 370.2) (log: docs/run.txt).\n");
    assert_eq!(p.len(), 1, "{p:?}");
    let p = problems("Two ranks reach 80.8% (= 299.3 / 370.2) (log: docs/run.txt).\n");
    assert!(p.iter().any(|p| p.contains("299.3")), "{p:?}");
}

#[test]
fn a_computation_may_follow_a_unit_and_goals_are_not_figures() {
    let md = "Per stage: 0.19 ms (= 58.009 / 100 / 3), 1.24x (= 370.2 / 299.2); goal >= 95.5% and <= 1.02 us (log: docs/run.txt).\n";
    assert_eq!(problems(md), Vec::<String>::new());
    // The unit does not hide a wrong result, and a goal is only what follows `>=`/`<=`.
    assert_eq!(problems("Per stage: 0.20 ms (= 58.009 / 100 / 3) (log: docs/run.txt).\n").len(), 1);
    assert_eq!(problems("Goal 95.5% (log: docs/run.txt).\n").len(), 1);
}

#[test]
fn a_citation_of_a_missing_file_fails() {
    let p = problems("One process: 370.2 GB/s (log: docs/gone.txt).\n");
    assert!(p.iter().any(|p| p.contains("does not exist")), "{p:?}");
}

#[test]
fn a_measured_figure_without_a_citation_fails() {
    for md in ["It ran at 370.2 GB/s.\n", "It took 58 ms.\n", "Two ranks reach 81% of one.\n", "1.46x the plain kernel\n"] {
        assert_eq!(problems(md).len(), 1, "{md}");
    }
    // A table takes its caption's citation, and only that.
    let p = problems("Caption.\n\n| a |\n|---|\n| 370.2 |\n");
    assert_eq!(p.len(), 1, "{p:?}");
    // Output of a run (a fence without an info string) is checked too.
    let p = problems("It printed:\n\n```\n370.2 GB/s\n```\n");
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn configuration_needs_no_citation() {
    let md = "## Run of 2026-11-24 on an H100 (driver 580.159.04)\n\n\
              `--chunk 16MiB`, K=3, 64 KiB chunks, 1,000 configurations on sm_90, commit 65fa230.\n\n\
              ```sh\nhost pipeline --total 1.5GiB\n```\n";
    assert_eq!(problems(md), Vec::<String>::new());
}

#[test]
fn a_marked_block_needs_a_reason() {
    assert_eq!(problems("16 GiB in 13.3 s (to re-measure: the only log shows the test failing).\n"), Vec::<String>::new());
    assert_eq!(problems("16 GiB in 13.3 s (to re-measure).\n").len(), 1);
}
