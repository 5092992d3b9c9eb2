//! The habits of ARCHITECTURE.md, checked on the source: imports go one way only (no circle
//! between files, nor between the folders of one parent), the engine knows nothing of
//! terminals, HTTP servers, reports or commands, the contract types import nothing of the
//! engine, and a function over 80 lines in `src/` says why it must be one piece.
//!
//! `cargo test --test architecture -- --nocapture` prints the module graph.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// Module path ("engine::live::store") → its file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The text of a file without comments and without its `#[cfg(test)] mod tests` block (tests
/// may reach anywhere).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    let tests = Regex::new(r"#\[cfg\(test\)\]\s*mod tests \{").expect("regex");
    let text = match tests.find(&text) {
        Some(m) => &text[..m.start()],
        None => &text[..],
    };
    let comment = Regex::new(r"(?m)//.*$").expect("regex");
    comment.replace_all(text, "").into_owned()
}

/// The longest module path that `path` (absolute, as segments) starts with.
fn resolve(path: &[&str], mods: &BTreeMap<String, PathBuf>) -> Option<String> {
    (0..=path.len())
        .rev()
        .map(|k| path[..k].join("::"))
        .find(|m| mods.contains_key(m))
}

/// Which modules each module imports (`crate::…`, `super::…`, `self::…` paths, grouped uses
/// included).
fn graph(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let path_re = Regex::new(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)").expect("regex");
    let group_re = Regex::new(r"(?s)use crate::\{(.*?)\};").expect("regex");
    let mut edges = BTreeMap::new();
    for (m, file) in mods {
        let here: Vec<&str> = if m.is_empty() {
            vec![]
        } else {
            m.split("::").collect()
        };
        let text = code(file);
        let mut out = BTreeSet::new();
        for c in path_re.captures_iter(&text) {
            let rest: Vec<&str> = c[2].split("::").filter(|s| !s.is_empty()).collect();
            let mut full: Vec<&str> = match &c[1] {
                "crate" => vec![],
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => here.clone(),
            };
            full.extend(rest);
            if let Some(target) = resolve(&full, mods) {
                out.insert(target);
            }
        }
        for c in group_re.captures_iter(&text) {
            for item in c[1].split(',') {
                let segs: Vec<&str> = item
                    .split("::")
                    .map(|s| s.trim().trim_start_matches('{'))
                    .filter(|s| s.chars().next().is_some_and(|ch| ch.is_alphabetic()))
                    .collect();
                if let Some(target) = resolve(&segs, mods) {
                    out.insert(target);
                }
            }
        }
        out.remove(m);
        edges.insert(m.clone(), out);
    }
    edges
}

/// The strongly connected components with more than one node (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// For each parent module, the graph among its children, where a child stands for itself and
/// everything under it.
fn folder_graphs(
    edges: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<(String, BTreeMap<String, BTreeSet<String>>)> {
    let child_of = |node: &str, parent: &str| -> Option<String> {
        let rest = if parent.is_empty() {
            node
        } else {
            node.strip_prefix(parent)?.strip_prefix("::")?
        };
        let first = rest.split("::").next().filter(|s| !s.is_empty())?;
        Some(if parent.is_empty() {
            first.to_string()
        } else {
            format!("{parent}::{first}")
        })
    };
    // Every module and every ancestor of one (the crate root "" included) is a parent.
    let parents: BTreeSet<String> = edges
        .keys()
        .flat_map(|m| {
            let parts: Vec<&str> = m.split("::").collect();
            (0..=parts.len()).map(move |k| parts[..k].join("::"))
        })
        .collect();
    let mut out = Vec::new();
    for parent in &parents {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, targets) in edges {
            let Some(ca) = child_of(a, parent) else { continue };
            g.entry(ca.clone()).or_default();
            for b in targets {
                if let Some(cb) = child_of(b, parent) {
                    if cb != ca {
                        g.entry(ca.clone()).or_default().insert(cb);
                    }
                }
            }
        }
        if g.len() > 1 {
            out.push((parent.clone(), g));
        }
    }
    out
}

/// The modules compiled only for tests: declared `#[cfg(test)] mod name;` by their parent,
/// and everything under them.
fn test_only(mods: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let decl = Regex::new(
        r"#\[cfg\(test\)\]\s*(?:#\[path = [^\]]*\]\s*)?(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_0-9]+)\s*;",
    )
    .expect("regex");
    let mut roots = BTreeSet::new();
    for (m, file) in mods {
        let text = std::fs::read_to_string(file).expect("read source");
        for c in decl.captures_iter(&text) {
            roots.insert(if m.is_empty() {
                c[1].to_string()
            } else {
                format!("{m}::{}", &c[1])
            });
        }
    }
    mods.keys()
        .filter(|m| roots.iter().any(|r| *m == r || m.starts_with(&format!("{r}::"))))
        .cloned()
        .collect()
}

/// The modules of `src/` that the shipped library and binary compile, and their imports.
fn src_modules() -> (BTreeMap<String, PathBuf>, BTreeMap<String, BTreeSet<String>>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut mods = modules(&src);
    for m in test_only(&mods) {
        mods.remove(&m);
    }
    let edges = graph(&mods);
    (mods, edges)
}

#[test]
fn imports_go_one_way() {
    let (_, edges) = src_modules();
    println!("module graph of src/ (module -> modules it imports):");
    for (m, targets) in &edges {
        let name = if m.is_empty() { "crate" } else { m.as_str() };
        println!(
            "  {name} -> {}",
            targets.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let files = circles(&edges);
    assert!(files.is_empty(), "import circles between files: {files:?}");
    for (parent, g) in folder_graphs(&edges) {
        let folders = circles(&g);
        let parent = if parent.is_empty() {
            "crate"
        } else {
            parent.as_str()
        };
        assert!(
            folders.is_empty(),
            "import circles between the parts of {parent}: {folders:?}"
        );
    }
}

#[test]
fn the_graph_checker_finds_circles() {
    // The checker itself: a circle of files, and one between two folders of a parent.
    fn link(edges: &mut BTreeMap<String, BTreeSet<String>>, a: &str, b: &str) {
        edges.entry(a.into()).or_default().insert(b.into());
        edges.entry(b.into()).or_default();
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    link(&mut edges, "x::a", "x::b");
    link(&mut edges, "x::b", "y::c");
    link(&mut edges, "y::d", "x::a");
    assert!(circles(&edges).is_empty(), "no file circle yet");
    let folders = folder_graphs(&edges);
    let (_, root) = folders
        .iter()
        .find(|(p, _)| p.is_empty())
        .expect("the crate's folders");
    assert_eq!(circles(root), vec![vec!["x".to_string(), "y".to_string()]]);
    link(&mut edges, "y::c", "x::a");
    assert_eq!(circles(&edges).len(), 1);
}

#[test]
fn the_engine_knows_no_terminal_server_report_or_command() {
    let (mods, edges) = src_modules();
    let forbidden_crates =
        Regex::new(r"\b(ratatui|crossterm|reqwest)::|hyper::server|hyper_util::server").expect("regex");
    let mut bad = Vec::new();
    for (m, targets) in edges.iter().filter(|(m, _)| m.starts_with("engine")) {
        for t in targets {
            let outside = [
                "tui", "serve", "report", "commands", "cli", "lab", "testing", "remote",
            ];
            if outside.iter().any(|o| t == o || t.starts_with(&format!("{o}::"))) {
                bad.push(format!("{m} imports {t}"));
            }
        }
        if forbidden_crates.is_match(&code(&mods[m])) {
            bad.push(format!("{m} uses a terminal or HTTP-server crate"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn the_contract_types_are_the_leaf() {
    let (_, edges) = src_modules();
    for (m, targets) in edges.iter().filter(|(m, _)| m.starts_with("engine::snapshot")) {
        let outside: Vec<&String> = targets
            .iter()
            .filter(|t| !t.starts_with("engine::snapshot"))
            .collect();
        assert!(outside.is_empty(), "{m} imports {outside:?}");
    }
}

/// Functions in `src/` longer than this carry a comment saying why they are one piece.
const LONG: usize = 80;

#[test]
fn long_functions_say_why_they_are_one_piece() {
    // Test-only modules too: the rule is about every function under src/.
    let mods = modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let fn_re =
        Regex::new(r"^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?fn\s+([A-Za-z0-9_]+)").expect("regex");
    let mut long = Vec::new();
    for file in mods.values() {
        let text = std::fs::read_to_string(file).expect("read source");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(c) = fn_re.captures(line) else { continue };
            if line.trim_start().starts_with("//") {
                continue;
            }
            let length = body_length(&lines[i..]);
            if length <= LONG {
                continue;
            }
            let doc: String = lines[..i]
                .iter()
                .rev()
                .take_while(|l| {
                    let t = l.trim_start();
                    t.starts_with("//") || t.starts_with("#[")
                })
                .map(|l| l.to_lowercase())
                .collect();
            if !doc.contains("one piece") {
                long.push(format!("{}:{} {} ({length} lines)", file.display(), i + 1, &c[5]));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {LONG} lines without a comment saying why they are one piece:\n{}",
        long.join("\n")
    );
}

/// Lines from a `fn` line to the line closing its body (braces in strings and comments not
/// counted); 1 for a declaration without a body.
fn body_length(lines: &[&str]) -> usize {
    let strings = Regex::new(r#""(\\.|[^"\\])*"|'(\\.|[^'\\])'"#).expect("regex");
    let mut depth = 0i64;
    let mut started = false;
    for (n, line) in lines.iter().enumerate() {
        let code = strings.replace_all(line, "\"\"");
        let code = code.split("//").next().unwrap_or("");
        for ch in code.chars() {
            match ch {
                '{' => {
                    depth += 1;
                    started = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        if started && depth <= 0 {
            return n + 1;
        }
        if !started && code.trim_end().ends_with(';') {
            return 1;
        }
    }
    lines.len()
}
