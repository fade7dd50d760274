//! The shape of the code, held (docs/architecture.md, "Rules of the parts"):
//! - no file in the protocol core (src/proto) is longer than 1,200 lines
//!   before its tests;
//! - `Sender` and `Receiver` have at most 15 fields each: what they hold
//!   lives in named parts;
//! - no function in the core (src/proto) or the drivers (src/io) is longer
//!   than 80 lines;
//! - no two files of a crate import each other, directly or round a longer
//!   circle (the crates: groupcast, groupcast-fec, groupcast-sim and the
//!   CLI);
//! - the CLI's `send` and `recv` use nothing of the simulator crate.
//!
//! The sources are read as rustfmt leaves them: a function's body ends at
//! the first line that is its opening line's indentation and `}`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_CORE_FILE_LINES: usize = 1_200;
const MAX_FIELDS: usize = 15;
const MAX_FN_LINES: usize = 80;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// Every .rs file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A file's lines before its `#[cfg(test)]` module.
fn code_lines(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .map(str::to_owned)
        .collect()
}

/// The name of the function a line opens, if it opens one.
fn opens_fn(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    if rest.starts_with("//") {
        return None;
    }
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
        "extern \"C\" ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

/// Each function of `lines` with a body: (name, first line, length in
/// lines, from its opening line to its closing brace).
fn functions(lines: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = opens_fn(line) else { continue };
        let indent = &line[..line.len() - line.trim_start().len()];
        // The signature ends at the first line ending in `{` (a body), `;`
        // (none) or `}` (a body on one line).
        let Some(sig_end) = (i..lines.len()).find(|&j| {
            let t = lines[j].trim_end();
            t.ends_with('{') || t.ends_with(';') || t.ends_with('}')
        }) else {
            continue;
        };
        let t = lines[sig_end].trim_end();
        if !t.ends_with('{') {
            continue;
        }
        let close = format!("{indent}}}");
        let end = (sig_end + 1..lines.len())
            .find(|&j| lines[j].trim_end() == close)
            .unwrap_or_else(|| panic!("fn {name} at line {} has no closing brace", i + 1));
        out.push((name.to_owned(), i + 1, end - i + 1));
    }
    out
}

#[test]
fn core_files_are_at_most_1200_lines_before_their_tests() {
    let mut long = Vec::new();
    for path in rust_files(&workspace().join("transport/src/proto")) {
        let n = code_lines(&path).len();
        if n > MAX_CORE_FILE_LINES {
            long.push(format!("{}: {n} lines", path.display()));
        }
    }
    assert!(long.is_empty(), "core files too long:\n{}", long.join("\n"));
}

#[test]
fn functions_of_the_core_and_the_drivers_are_at_most_80_lines() {
    let ws = workspace();
    let mut long = Vec::new();
    for dir in ["transport/src/proto", "transport/src/io"] {
        for path in rust_files(&ws.join(dir)) {
            for (name, at, len) in functions(&code_lines(&path)) {
                if len > MAX_FN_LINES {
                    long.push(format!("{}:{at}: fn {name}, {len} lines", path.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "functions too long:\n{}", long.join("\n"));
}

/// The fields of `pub struct NAME { .. }` in the files under `dir`.
fn fields_of(dir: &Path, name: &str) -> usize {
    let open = format!("pub struct {name} {{");
    for path in rust_files(dir) {
        let lines = code_lines(&path);
        let Some(start) = lines.iter().position(|l| l == &open) else {
            continue;
        };
        return lines[start + 1..]
            .iter()
            .take_while(|l| l.as_str() != "}")
            .filter(|l| {
                // A field starts at the struct's indentation plus four.
                let t = l.trim_start();
                l.len() - t.len() == 4 && !t.starts_with("//") && !t.starts_with('#')
            })
            .count();
    }
    panic!("no `{open}` under {}", dir.display());
}

#[test]
fn sender_and_receiver_have_at_most_15_fields() {
    let proto = workspace().join("transport/src/proto");
    for name in ["Sender", "Receiver"] {
        let n = fields_of(&proto, name);
        assert!(n <= MAX_FIELDS, "{name} has {n} fields");
        assert!(n > 0, "{name}'s fields were not found");
    }
}

/// The module path of a source file under `src` (`proto/sender/mod.rs`:
/// `["proto", "sender"]`).
fn module_of(src: &Path, path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The paths a use tree names, expanded (`a::{b, c::d}`: `a::b`, `a::c::d`).
fn expand_use(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&inner[start..], &base, out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap().trim();
        out.push(join(prefix, path));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty() || b == "self") {
        (true, _) => b.to_owned(),
        (false, true) => a.to_owned(),
        (false, false) => format!("{a}::{b}"),
    }
}

/// The paths starting with `crate`, `super` or `self` that a file's code
/// names, in `use` trees and inline.
fn named_paths(lines: &[String]) -> Vec<String> {
    let code: String = lines
        .iter()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l.as_str(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    // `use` statements, their trees expanded.
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        expand_use(&rest[..end], "", &mut out);
    }
    // Paths inline: `super::rate::x(..)`; a tree's head (`super::{`) is
    // not one.
    let bytes = code.as_bytes();
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(root) {
            let at = from + i;
            from = at + root.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let len = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - at);
            let path = code[at..at + len].trim_end_matches(':');
            if !code[at + len..].starts_with('{') {
                out.push(path.to_owned());
            }
        }
    }
    out.retain(|p| p.starts_with("crate") || p.starts_with("super") || p.starts_with("self"));
    out
}

/// The file module a path starting with `crate`, `super` or `self` names,
/// seen from module `from`: its longest prefix that is a file's module.
fn resolve(path: &str, from: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut parts = path.split("::");
    let mut base: Vec<String> = match parts.next()? {
        "crate" => Vec::new(),
        "self" => from.to_vec(),
        "super" => from[..from.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let mut best = modules.contains(&base).then(|| base.clone());
    for part in parts {
        if part == "super" {
            base.pop();
            best = modules.contains(&base).then(|| base.clone());
            continue;
        }
        base.push(part.to_owned());
        if modules.contains(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

/// The circles of `src`'s files: each a list of module names.
fn import_circles(src: &Path) -> Vec<Vec<String>> {
    let files = rust_files(src);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(src, file);
        let to: BTreeSet<_> = named_paths(&code_lines(file))
            .iter()
            .filter_map(|p| resolve(p, &from, &modules))
            .filter(|m| *m != from)
            .collect();
        edges.insert(from, to);
    }
    // A circle: a module that reaches itself.
    let mut circles = Vec::new();
    let mut seen = BTreeSet::new();
    for start in edges.keys() {
        let mut path = vec![start.clone()];
        if let Some(circle) = reach(start, start, &edges, &mut path, &mut BTreeSet::new()) {
            let names: BTreeSet<String> = circle.iter().map(|m| m.join("/")).collect();
            if seen.insert(names.clone()) {
                circles.push(names.into_iter().collect());
            }
        }
    }
    circles
}

/// A path of imports from `at` back to `goal`, if there is one.
fn reach(
    at: &Vec<String>,
    goal: &Vec<String>,
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    path: &mut Vec<Vec<String>>,
    visited: &mut BTreeSet<Vec<String>>,
) -> Option<Vec<Vec<String>>> {
    for next in edges.get(at).into_iter().flatten() {
        if next == goal {
            return Some(path.clone());
        }
        if visited.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = reach(next, goal, edges, path, visited) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_two_files_import_each_other() {
    let ws = workspace();
    let mut all = Vec::new();
    for src in ["transport/src", "fec/src", "sim/src", "cli/src"] {
        for circle in import_circles(&ws.join(src)) {
            all.push(format!("{src}: {}", circle.join(" ↔ ")));
        }
    }
    assert!(all.is_empty(), "import circles:\n{}", all.join("\n"));
}

/// The checker finds a circle where there is one, and none between a parent
/// and the child it declares.
#[test]
fn the_circle_check_finds_circles() {
    let dir = std::env::temp_dir().join(format!("groupcast-structure-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("a")).unwrap();
    fs::write(dir.join("lib.rs"), "mod a;\npub use a::X;\n").unwrap();
    fs::write(dir.join("a/mod.rs"), "mod b;\nmod c;\nuse crate::d;\n").unwrap();
    fs::write(dir.join("a/b.rs"), "use super::{c::{Y, Z}, W};\n").unwrap();
    fs::write(dir.join("a/c.rs"), "fn f() { super::b::g(); }\n").unwrap();
    fs::write(dir.join("d.rs"), "pub fn h() {}\n").unwrap();
    let circles = import_circles(&dir);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(circles, vec![vec!["a/b".to_owned(), "a/c".to_owned()]]);
}

#[test]
fn the_length_check_measures_bodies() {
    let src: Vec<String> = "impl X {\n    pub fn a(\n        x: u8,\n    ) -> u8 {\n        x\n    }\n    fn b();\n    fn c() {}\n}\nfn d() {\n    let f = || {\n    };\n}\n"
        .lines()
        .map(str::to_owned)
        .collect();
    let found: Vec<(String, usize)> = functions(&src)
        .into_iter()
        .map(|(n, _, len)| (n, len))
        .collect();
    assert_eq!(found, vec![("a".into(), 5), ("d".into(), 4)]);
}

/// `send` and `recv` (and what they use: the argument types, the output)
/// name nothing of the simulator crate.
#[test]
fn the_cli_sends_and_receives_without_the_simulator() {
    let cli = workspace().join("cli/src");
    for file in ["main.rs", "args.rs", "net.rs", "stream.rs", "output.rs"] {
        let lines = code_lines(&cli.join(file));
        let uses = lines.iter().filter(|l| l.contains("groupcast_sim")).count();
        assert_eq!(uses, 0, "cli/src/{file} names groupcast_sim");
    }
}
