//! The README's Layout section names the tree as it is: every path it names exists.
//!
//! Each entry of the Layout block starts with a top-level folder (`suites/`); a name in
//! its text is looked up from the repository's root, from that folder, from its `src/`
//! (so `netns.rs` under `harness/` is harness/src/netns.rs) and from each folder named
//! before it in the entry (`spec/ ... lab.rs` is suites/src/spec/lab.rs). The `scripts/`
//! entry lists file names of scripts/. A name that is nowhere fails, with the entry it
//! is in.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The Layout section's code block: (top-level folder, the entry's text).
fn layout_entries(readme: &str) -> Vec<(String, String)> {
    let section = readme
        .split("\n## Layout")
        .nth(1)
        .expect("README.md has a Layout section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the Layout section opens with a code block");
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with(' ') {
            let last = entries
                .last_mut()
                .expect("an entry before its continuation");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (folder, text) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            entries.push((folder.to_owned(), text.trim().to_owned()));
        }
    }
    entries
}

/// The path-like words of `text`: with a `/`, or a file name with an extension.
fn named_paths(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || ",;()`:".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| !w.is_empty() && !w.starts_with('#') && !w.starts_with("netclaim"))
        .filter(|w| {
            w.contains('/')
                || [".rs", ".toml", ".json", ".md", ".yml"]
                    .iter()
                    .any(|x| w.ends_with(x))
        })
        .map(str::to_owned)
        .collect()
}

/// Where `name` is from each of `bases` it is found from (a `*` in its last part matches
/// any file).
fn resolve(bases: &[PathBuf], name: &str) -> Vec<PathBuf> {
    let found = bases
        .iter()
        .map(|base| base.join(name.trim_end_matches('/')));
    found
        .filter(|path| match path.file_name().and_then(|f| f.to_str()) {
            Some(file) if file.contains('*') => {
                let (head, tail) = file.split_once('*').expect("a star");
                path.parent()
                    .and_then(|dir| std::fs::read_dir(dir).ok())
                    .is_some_and(|mut entries| {
                        entries.any(|e| {
                            e.ok()
                                .and_then(|e| e.file_name().into_string().ok())
                                .is_some_and(|f| f.starts_with(head) && f.ends_with(tail))
                        })
                    })
            }
            _ => path.exists(),
        })
        .collect()
}

fn missing_in(root: &Path, readme: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for (folder, text) in layout_entries(readme) {
        let top = root.join(&folder);
        if !top.is_dir() {
            missing.push(format!("{folder} (a top-level entry)"));
            continue;
        }
        // A folder the entry names becomes a place to look for the names after it
        // (`spec/ ... lab.rs` is spec/lab.rs).
        let mut bases = vec![root.to_path_buf(), top.clone(), top.join("src")];
        let mut names = named_paths(&text);
        if folder == "scripts/" {
            names.extend(
                text.split([',', ' '])
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned),
            );
        }
        for name in names {
            let found = resolve(&bases, &name);
            if found.is_empty() {
                missing.push(format!("{name} (under {folder})"));
            }
            bases.extend(found.into_iter().filter(|p| p.is_dir()));
        }
    }
    missing
}

#[test]
fn every_path_the_layout_names_exists() {
    let root = Path::new(ROOT);
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let entries = layout_entries(&readme);
    assert!(
        entries.len() >= 8,
        "the Layout block has {} entries",
        entries.len()
    );
    let missing = missing_in(root, &readme);
    assert!(
        missing.is_empty(),
        "the README's Layout names paths the tree does not have:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_name_the_tree_lacks_is_caught() {
    let readme = "# x\n\n## Layout\n\n```\nsuites/     the engine (src/engine_gone.rs, gone/), src/claims/*.rs,\n            recordings/6.1.json\nscripts/    test, no-such-script\nnowhere/    x\n```\n";
    let missing = missing_in(Path::new(ROOT), readme);
    assert_eq!(
        missing,
        [
            "src/engine_gone.rs (under suites/)",
            "gone/ (under suites/)",
            "no-such-script (under scripts/)",
            "nowhere/ (a top-level entry)",
        ]
    );
}
