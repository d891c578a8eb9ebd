//! The judge and models rooms are pure: no file under suites/src/judge/ or
//! suites/src/models/ names anything that builds a lab, starts a process, reads a clock or
//! captures packets, nor the measuring room or claim.rs (which calls both rooms: a
//! cycle). A recording made on another machine is then judged here exactly as at the
//! end of its run. The check reads the files' `use` trees (expanded, so a grouped import
//! is seen) and every path and name in their code.

use std::path::{Path, PathBuf};

/// Paths no judge or model file may name, each with why (a path matches itself and
/// everything below it).
const FORBIDDEN_PATHS: &[(&str, &str)] = &[
    ("crate::measure", "the measuring room builds labs and acts"),
    ("crate::claim", "claim.rs calls measure and judge (a cycle)"),
    ("crate::claims", "the Rust claims measure"),
    ("crate::catalog", "gathers the claims, which measure"),
    ("std::process", "starts processes"),
    ("std::thread::sleep", "waits on the clock"),
    ("std::time::SystemTime", "reads the clock"),
    ("tokio", "an async runtime: sockets and timers"),
    ("netclaim_harness::NetNs", "a network namespace"),
    ("netclaim_harness::netns", "network namespaces"),
    ("netclaim_harness::userns", "user namespaces"),
    ("netclaim_harness::command", "starts processes"),
    ("netclaim_harness::firewall", "iptables rules"),
    ("netclaim_harness::link", "veth links"),
    (
        "netclaim_harness::capture::Capture",
        "a packet capture socket",
    ),
    (
        "netclaim_harness::wire::Wire",
        "the relay between namespaces",
    ),
    ("netclaim_fixtures", "servers and clients inside a lab"),
    ("netclaim_lab", "the lab builder"),
];

/// Names no judge or model file may use in its code, however imported.
const FORBIDDEN_NAMES: &[(&str, &str)] = &[
    ("NetNs", "a network namespace"),
    ("Command", "starts a process"),
    ("ToolCommand", "starts a process"),
    ("Instant::now", "reads the clock"),
    ("SystemTime", "reads the clock"),
    ("thread::sleep", "waits on the clock"),
    ("tokio", "an async runtime"),
];

/// One forbidden thing found: file, line, what, why.
#[derive(Debug, PartialEq)]
struct Finding {
    line: usize,
    what: String,
    why: &'static str,
}

/// The text without comments (line and block) and string literals, line numbers kept.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push('"');
            }
            // A char literal ('"'); a lifetime ('a) has no closing quote.
            '\'' => {
                out.push('\'');
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') || rest.chars().nth(1) == Some('\'') {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The full paths a `use` tree names: `a::{b, c::{d as e, self}}` is `a::b`, `a::c::d`,
/// `a::c`.
fn expand_use(tree: &str) -> Vec<String> {
    fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        let join = |rest: &str| match (prefix.is_empty(), rest) {
            (true, r) => r.to_owned(),
            (false, "self") => prefix.to_owned(),
            (false, r) => format!("{prefix}::{r}"),
        };
        match tree.find('{') {
            Some(open) => {
                let head = tree[..open].trim_end_matches(':');
                let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
                let prefix = if head.is_empty() {
                    prefix.to_owned()
                } else {
                    join(head)
                };
                let mut depth = 0;
                let mut start = 0;
                for (i, c) in inner.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            expand(&prefix, &inner[start..i], out);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                expand(&prefix, &inner[start..], out);
            }
            None if tree.is_empty() => {}
            None => {
                let path = tree.split(" as ").next().unwrap_or(tree).trim();
                out.push(join(path));
            }
        }
    }
    let mut out = Vec::new();
    expand("", tree, &mut out);
    out
}

/// Whether `path` is `forbidden` or below it.
fn under(path: &str, forbidden: &str) -> bool {
    path == forbidden || path.starts_with(&format!("{forbidden}::"))
}

/// Every path (`a::b::c`) in `code`, with where it starts.
fn paths(code: &str) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1]) && bytes[i - 1] != b':') {
            let start = i;
            let mut end = i;
            loop {
                while end < bytes.len() && ident(bytes[end]) {
                    end += 1;
                }
                if code[end..].starts_with("::") && bytes.get(end + 2).copied().is_some_and(ident) {
                    end += 2;
                } else {
                    break;
                }
            }
            out.push((start, code[start..end].to_owned()));
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// What in `text` (a Rust file of the judge or models room) is forbidden.
fn forbidden_in(text: &str) -> Vec<Finding> {
    let code = code_only(text);
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    // `use` trees, expanded: `use netclaim_harness::{command::ToolCommand, model}`.
    let mut at = 0;
    while let Some(i) = code[at..].find("use ") {
        let start = at + i;
        at = start + 4;
        let before = code[..start].trim_end();
        let statement_start = before.is_empty()
            || before.ends_with([';', '}', '{', ']'])
            || before.ends_with("pub")
            || before.ends_with(')');
        if !statement_start || code[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(len) = code[start..].find(';') else {
            break;
        };
        let tree: String = code[start + 4..start + len]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for path in expand_use(&tree) {
            for (bad, why) in FORBIDDEN_PATHS {
                if under(&path, bad) {
                    found.push(Finding {
                        line: line_of(start),
                        what: path.clone(),
                        why,
                    });
                }
            }
        }
    }
    // Paths and names in the code itself: `netclaim_harness::command::OUTPUT_KEEP`,
    // `std::time::Instant::now()`, `NetNs::new()`.
    for (start, path) in paths(&code) {
        for (bad, why) in FORBIDDEN_PATHS {
            if under(&path, bad) {
                found.push(Finding {
                    line: line_of(start),
                    what: path.clone(),
                    why,
                });
            }
        }
        for (name, why) in FORBIDDEN_NAMES {
            let segments: Vec<&str> = path.split("::").collect();
            let wanted: Vec<&str> = name.split("::").collect();
            if segments
                .windows(wanted.len())
                .any(|w| w == wanted.as_slice())
            {
                found.push(Finding {
                    line: line_of(start),
                    what: path.clone(),
                    why,
                });
            }
        }
    }
    found.sort_by(|a, b| (a.line, &a.what).cmp(&(b.line, &b.what)));
    found.dedup_by(|a, b| a.line == b.line && a.what == b.what);
    found
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn judge_and_models_import_nothing_that_builds_a_lab_starts_a_process_or_reads_a_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    let mut files = 0;
    for room in ["judge", "models"] {
        for file in rust_files(&src.join(room)) {
            files += 1;
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            for f in forbidden_in(&text) {
                problems.push(format!(
                    "{}:{}: {} ({})",
                    file.strip_prefix(&src).unwrap_or(&file).display(),
                    f.line,
                    f.what,
                    f.why
                ));
            }
        }
    }
    assert!(
        files >= 8,
        "only {files} files found under judge/ and models/"
    );
    assert!(
        problems.is_empty(),
        "the judge and models rooms must stay pure; move these to measure/ (or a record):\n{}",
        problems.join("\n")
    );
}

/// The check itself: each way of naming something forbidden is found, and what the rooms
/// may use is not.
#[test]
fn the_check_finds_forbidden_imports_however_written() {
    let whats =
        |text: &str| -> Vec<String> { forbidden_in(text).into_iter().map(|f| f.what).collect() };
    for (text, expected) in [
        ("use crate::measure::measure;\n", "crate::measure::measure"),
        (
            "use netclaim_harness::{\n    model::SynSchedule,\n    command::ToolCommand,\n};\n",
            "netclaim_harness::command::ToolCommand",
        ),
        (
            "use netclaim_harness::{NetNs, tolerance::Window};\n",
            "netclaim_harness::NetNs",
        ),
        ("use crate::claim::{self, Claim};\n", "crate::claim"),
        (
            "pub(crate) use crate::claims::port;\n",
            "crate::claims::port",
        ),
        (
            "#[cfg(test)]\nuse netclaim_fixtures::server;\n",
            "netclaim_fixtures::server",
        ),
        (
            "fn f() { let t = std::time::Instant::now(); }\n",
            "std::time::Instant::now",
        ),
        ("fn f() { let t = Instant::now(); }\n", "Instant::now"),
        (
            "fn f() -> usize { netclaim_harness::command::OUTPUT_KEEP }\n",
            "netclaim_harness::command::OUTPUT_KEEP",
        ),
        ("fn f() { std::thread::sleep(D); }\n", "std::thread::sleep"),
        ("fn f() { thread::sleep(D); }\n", "thread::sleep"),
        ("use std::process::Command;\n", "std::process::Command"),
        ("use std::time::SystemTime;\n", "std::time::SystemTime"),
        (
            "use netclaim_harness::wire::Wire;\n",
            "netclaim_harness::wire::Wire",
        ),
        (
            "use netclaim_harness::capture::Capture;\n",
            "netclaim_harness::capture::Capture",
        ),
        ("fn f(ns: &NetNs) {}\n", "NetNs"),
    ] {
        let found = whats(text);
        assert!(
            found.iter().any(|w| w == expected),
            "{expected:?} not found in {text:?}: {found:?}"
        );
    }
    assert_eq!(forbidden_in("\n\nuse tokio::net::TcpStream;\n")[0].line, 3);
    // What the rooms use: pure models, records, outcome, the wire's spec and report.
    for ok in [
        "use crate::outcome::{Check, Outcome};\n",
        "use crate::record::{attempt::Measured, RunRecord};\n",
        "use netclaim_harness::wire::{WireReport, WireSpec};\n",
        "use netclaim_harness::capture::{self, TcpEvent};\n",
        "use std::time::{Duration, Instant};\n",
        "/// Not [`crate::claim::Claim::judge`]: a doc comment.\nfn f() { let s = \"NetNs\"; }\n",
        "fn f(command: &str, netns: u8) -> bool { command.is_empty() }\n",
        "use crate::claimed::X;\n",
    ] {
        assert_eq!(whats(ok), Vec::<String>::new(), "{ok}");
    }
}
