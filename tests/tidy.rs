//! Tidiness rules over the workspace's own source, checked in the suite:
//!
//! - every module of a crate or tool (`crates/*/src`, `tools/*/src`) opens with a `//!` header
//!   that says what it is for;
//! - no function there is longer than [`FN_LINES_MAX`] lines (from the line of `fn` to its
//!   closing brace);
//! - no `pub` item of a crate is without a user: its name appears somewhere besides its own
//!   definition (in the workspace's code, tests, tools or fuzz targets);
//! - no import circles: within a crate, the top-level modules' references to each other
//!   (`crate::module`, outside tests) form no cycle.
//!
//! The function lengths come from a small lexer that skips comments, strings and character
//! literals, so braces inside them do not count.
#![allow(clippy::unwrap_used)] // a test: a file that cannot be read is a failure

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The longest function allowed, in lines.
const FN_LINES_MAX: usize = 70;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every `.rs` file under `dir`, recursively, in a stable order.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source files of the crates and tools (`crates/*/src`, `tools/*/src`).
fn source_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for group in ["crates", "tools"] {
        let mut members: Vec<_> = std::fs::read_dir(root().join(group)).unwrap().map(|e| e.unwrap().path()).collect();
        members.sort();
        for member in members {
            rust_files(&member.join("src"), &mut out);
        }
    }
    assert!(out.len() > 50, "found only {} source files under {}", out.len(), root().display());
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// The source with comments, strings and character literals blanked out (newlines kept, so
/// line numbers stay), leaving the code's braces and identifiers.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let end = if c == '/' && next == Some('/') {
            chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |n| i + n)
        } else if c == '/' && next == Some('*') {
            block_comment_end(&chars, i)
        } else if c == '"' || (c == 'r' && matches!(next, Some('"' | '#')) && raw_string_start(&chars, i)) {
            string_end(&chars, i)
        } else if c == '\'' {
            char_literal_end(&chars, i).unwrap_or(i + 1)
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        out.extend(chars[i..end].iter().map(|&c| blank(c)));
        i = end;
    }
    out
}

fn block_comment_end(chars: &[char], start: usize) -> usize {
    let (mut depth, mut i) = (0, start);
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') => (depth, i) = (depth + 1, i + 2),
            ('*', '/') => {
                (depth, i) = (depth - 1, i + 2);
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// Whether `r` at `i` starts a raw string (`r"`, `r#"`), not an identifier ending in `r`.
fn raw_string_start(chars: &[char], i: usize) -> bool {
    let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
    !after_ident && chars.get(i + 1 + hashes) == Some(&'"')
}

/// The index after the string starting at `start` (`"…"` with escapes, or `r#"…"#`).
fn string_end(chars: &[char], start: usize) -> usize {
    if chars[start] == 'r' {
        let hashes = chars[start + 1..].iter().take_while(|&&c| c == '#').count();
        let mut i = start + 2 + hashes;
        while i < chars.len() {
            if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes {
                return i + 1 + hashes;
            }
            i += 1;
        }
        return chars.len();
    }
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The index after a character literal at `start` (`'x'`, `'\n'`, `'\u{…}'`); `None` for a
/// lifetime or a label (`'a`).
fn char_literal_end(chars: &[char], start: usize) -> Option<usize> {
    match chars.get(start + 1)? {
        '\\' => chars[start + 2..].iter().position(|&c| c == '\'').map(|n| start + 3 + n),
        _ => (chars.get(start + 2) == Some(&'\'')).then_some(start + 3),
    }
}

/// `(line, name, length in lines)` of every function with a body in `source`.
fn functions(source: &str) -> Vec<(usize, String, usize)> {
    let code = code_only(source);
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(at) = fn_keyword(line) else { continue };
        let name: String =
            line[at + 3..].trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if let Some(end) = body_end(&lines, n) {
            out.push((n + 1, name, end - n + 1));
        }
    }
    out
}

/// Where `fn ` starts an item on this line (not inside a word like `Fn` or `my_fn`).
fn fn_keyword(line: &str) -> Option<usize> {
    let at = line.find("fn ")?;
    let before = line[..at].chars().last();
    let item = before.is_none_or(|c| c == ' ' || c == '\t');
    let prefix = line[..at].trim();
    let modifiers = prefix
        .split_whitespace()
        .all(|w| matches!(w, "pub" | "async" | "const" | "unsafe" | "extern" | "default") || w.starts_with("pub("));
    (item && modifiers).then_some(at)
}

/// The line of the brace closing the body that starts on or after line `start`; `None` for a
/// declaration without a body (a trait method, `fn f();`).
fn body_end(lines: &[&str], start: usize) -> Option<usize> {
    let mut depth = 0i32;
    let mut opened = false;
    for (n, line) in lines.iter().enumerate().skip(start) {
        for c in line.chars() {
            match c {
                '{' => (depth, opened) = (depth + 1, true),
                '}' => depth -= 1,
                ';' if !opened && depth == 0 => return None,
                _ => {}
            }
            if opened && depth == 0 {
                return Some(n);
            }
        }
    }
    None
}

#[test]
fn every_module_opens_with_a_header() {
    let missing: Vec<String> = source_files()
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().trim_start().starts_with("//!"))
        .map(|f| relative(f))
        .collect();
    assert!(missing.is_empty(), "modules without a `//!` header: {missing:#?}");
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let mut long = Vec::new();
    for file in source_files() {
        for (line, name, len) in functions(&std::fs::read_to_string(&file).unwrap()) {
            if len > FN_LINES_MAX {
                long.push(format!("{}:{line} fn {name}: {len} lines", relative(&file)));
            }
        }
    }
    assert!(long.is_empty(), "functions over {FN_LINES_MAX} lines: {long:#?}");
}

#[test]
fn every_pub_item_has_a_user() {
    let mut everything = Vec::new();
    for dir in ["crates", "tools", "tests", "fuzz"] {
        rust_files(&root().join(dir), &mut everything);
    }
    let mut uses: HashMap<String, usize> = HashMap::new();
    for file in &everything {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()) {
            *uses.entry(word.to_string()).or_default() += 1;
        }
    }
    let mut unused = Vec::new();
    for file in source_files().iter().filter(|f| relative(f).starts_with("crates")) {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for (n, line) in code.lines().enumerate() {
            let Some((kind, name)) = pub_item(line) else { continue };
            if uses.get(&name).copied().unwrap_or(0) <= 1 {
                unused.push(format!("{}:{} pub {kind} {name}", relative(file), n + 1));
            }
        }
    }
    assert!(unused.is_empty(), "pub items nothing uses: {unused:#?}");
}

/// Top-level module → the top-level modules it names as `crate::module`, for one crate's `src`
/// (test code, from a file's first `#[cfg(test)]` on, and `tests.rs` files left out).
fn module_graph(src: &Path) -> HashMap<String, Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: HashMap<String, Vec<String>> = HashMap::new();
    for file in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        let module = if matches!(first.as_str(), "lib" | "main") { "(root)".to_string() } else { first };
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let code = code.split("#[cfg(test)]").next().unwrap_or("");
        let deps = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() && name != module && !deps.contains(&name) {
                deps.push(name);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &HashMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &HashMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            return Some(path[at..].iter().cloned().chain([node.to_string()]).collect());
        }
        if done.iter().any(|n| n == node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten().filter(|n| graph.contains_key(*n)) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.push(node.to_string());
        None
    }
    let mut nodes: Vec<&String> = graph.keys().collect();
    nodes.sort();
    let mut done = Vec::new();
    nodes.into_iter().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_circles() {
    let mut cycles = Vec::new();
    for group in ["crates", "tools"] {
        for member in std::fs::read_dir(root().join(group)).unwrap() {
            let src = member.unwrap().path().join("src");
            if let Some(cycle) = find_cycle(&module_graph(&src)) {
                cycles.push(format!("{}: {}", relative(&src), cycle.join(" → ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import circles: {cycles:#?}");
    let circle: HashMap<String, Vec<String>> = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
        .map(|(k, v)| (k.into(), v.into_iter().map(Into::into).collect()))
        .into();
    assert_eq!(find_cycle(&circle).map(|c| c.len()), Some(4));
}

/// The kind and name of a plain `pub` item declared on `line` (not `pub(crate)`).
fn pub_item(line: &str) -> Option<(&str, String)> {
    let mut words = line.trim_start().strip_prefix("pub ")?.split_whitespace().peekable();
    let mut kind = words.next()?;
    while matches!(kind, "async" | "unsafe" | "extern") || (kind == "const" && words.peek() == Some(&"fn")) {
        kind = words.next()?;
    }
    if !["fn", "struct", "enum", "trait", "type", "const", "static", "mod"].contains(&kind) {
        return None;
    }
    let name: String = words.next()?.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some((kind, name))
}

#[test]
fn the_lexer_skips_what_is_not_code() {
    let source = "fn a() {\n    let s = \"}}\"; // }\n    let c = '}';\n    /* { */ let r = r#\"{\"#;\n}\n";
    assert_eq!(functions(source), [(1, "a".to_string(), 5)]);
    let lifetimes = "fn b<'a>(x: &'a str) -> &'a str {\n    x\n}\ntrait T {\n    fn c(&self);\n}\n";
    assert_eq!(functions(lifetimes), [(1, "b".to_string(), 3)]);
    let long = format!("pub fn long() {{\n{}}}\n", "    f();\n".repeat(FN_LINES_MAX));
    assert_eq!(functions(&long)[0].2, FN_LINES_MAX + 2);
    assert_eq!(pub_item("    pub async fn serve(x: u8) {"), Some(("fn", "serve".to_string())));
    assert_eq!(pub_item("pub const fn id() -> u8 {"), Some(("fn", "id".to_string())));
    assert_eq!(pub_item("pub const LIMIT: usize = 1;"), Some(("const", "LIMIT".to_string())));
    assert_eq!(pub_item("pub struct Ledger<'a> {"), Some(("struct", "Ledger".to_string())));
    assert_eq!(pub_item("pub(crate) fn hidden() {"), None);
    assert_eq!(pub_item("pub use x::y;"), None);
}
