//! Reading claim files: TOML to [`ClaimSpec`]s placed in their file, every problem with
//! its `file:line:column`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::check::shown_id;
use super::{validate, ClaimSpec, File};

/// Where a claim comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Shipped with netclaim (the file's name within the built-in catalog).
    BuiltIn(&'static str),
    /// A user's file.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BuiltIn(name) => write!(f, "built-in ({name})"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A claim read from a file, with where it stands there.
#[derive(Debug, Clone)]
pub struct Located {
    /// The claim.
    pub spec: ClaimSpec,
    /// The file.
    pub origin: Origin,
    /// 1-based line and column of its `[[claim]]` table.
    pub line: usize,
    /// Column.
    pub column: usize,
}

/// A problem in a claim file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when the problem is the file as a whole).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for SpecError {}

/// Where each line of a text starts, to turn byte offsets into places without scanning
/// the text from its start for each one (10,000 claims in one file took 13 to 26 s so).
struct Lines<'a> {
    text: &'a str,
    /// Byte offset of each line's first byte.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    /// 1-based (line, column) of byte `offset`; the column counts bytes, as toml's do.
    fn place(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        (line, offset - self.starts[line - 1] + 1)
    }
}

/// Parses and validates the claims of one file's `text`. Every problem found is
/// returned, each with its place.
pub fn parse(text: &str, origin: &Origin) -> Result<Vec<Located>, Vec<SpecError>> {
    let file = origin.to_string();
    let lines = Lines::new(text);
    let at = |offset: usize, message: String| {
        let (line, column) = lines.place(offset);
        SpecError {
            file: file.clone(),
            line,
            column,
            message,
        }
    };
    let parsed: File = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        // toml's message repeats the place and quotes the line; keep its first line.
        let message = e.message().trim().to_owned();
        vec![at(offset, explain(&message))]
    })?;
    if parsed.claim.is_empty() {
        return Err(vec![at(
            0,
            "no claim in this file: give at least one [[claim]] table".into(),
        )]);
    }
    let mut errors = Vec::new();
    let mut claims = Vec::new();
    for spanned in parsed.claim {
        let offset = spanned.span().start;
        let spec = spanned.into_inner();
        for problem in validate(&spec) {
            errors.push(at(
                offset,
                format!("claim {}: {problem}", shown_id(&spec.id)),
            ));
        }
        let (line, column) = lines.place(offset);
        claims.push(Located {
            spec,
            origin: origin.clone(),
            line,
            column,
        });
    }
    if errors.is_empty() {
        Ok(claims)
    } else {
        Err(errors)
    }
}

/// The claims of `text` as written, without [`validate`]: for unit tests of the models,
/// which need a lab and an action but no statement to check.
#[cfg(test)]
pub(crate) fn parse_unvalidated(text: &str) -> Vec<ClaimSpec> {
    let file: File = toml::from_str(text).expect("a claim file's TOML");
    file.claim
        .into_iter()
        .map(toml::Spanned::into_inner)
        .collect()
}

/// serde's messages made to name the fix: where a key is missing, say it is required.
fn explain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("missing required key {rest}");
    }
    if message.starts_with("unknown field") {
        return message
            .replacen("unknown field", "unknown key", 1)
            .replacen(", expected one of", "; valid keys here:", 1)
            .replacen(", expected", "; valid keys here:", 1);
    }
    // A number out of its type's range or of the wrong sign: name the range in words, not
    // the Rust type (`expected u32`).
    const RANGES: &[(&str, &str)] = &[
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number from 0 to 18446744073709551615"),
        ("usize", "a whole number from 0 to 18446744073709551615"),
        ("i32", "a whole number from -2147483648 to 2147483647"),
        (
            "i64",
            "a whole number from -9223372036854775808 to 9223372036854775807",
        ),
        ("f64", "a number"),
    ];
    for (rust, words) in RANGES {
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            return format!("{head}expected {words}");
        }
    }
    message.to_owned()
}

/// Reads and parses a claim file: a regular file of at most
/// [`CLAIM_FILE_CAP`](crate::input::CLAIM_FILE_CAP) (see [`crate::input`]).
pub fn load(path: &Path) -> Result<Vec<Located>, Vec<SpecError>> {
    let text = crate::input::read_text(path, crate::input::CLAIM_FILE_CAP).map_err(|e| {
        vec![SpecError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the claim file: {e}"),
        }]
    })?;
    parse(&text, &Origin::File(path.to_owned()))
}

/// The claim files a `--claims` path names: the file itself, or the `*.toml` entries of a
/// directory (not recursive), sorted. Whether each is a regular file is [`load`]'s to
/// check, on the file it opens.
pub fn files_at(path: &Path) -> Result<Vec<PathBuf>, SpecError> {
    let err = |message: String| SpecError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message,
    };
    // stat(2) never blocks, whatever the path is (a FIFO blocks only in open).
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| err(format!("cannot list the directory: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(err("no *.toml claim file in this directory".into()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_found_without_rescanning() {
        let lines = Lines::new("ab\ncd\n\nef");
        assert_eq!(lines.place(0), (1, 1));
        assert_eq!(lines.place(1), (1, 2));
        assert_eq!(lines.place(2), (1, 3));
        assert_eq!(lines.place(3), (2, 1));
        assert_eq!(lines.place(6), (3, 1));
        assert_eq!(lines.place(8), (4, 2));
        assert_eq!(lines.place(100), (4, 3));
    }

    #[test]
    fn a_number_out_of_range_names_the_range_not_the_rust_type() {
        let claim = |backlog: &str| {
            format!(
                "[[claim]]\nid = \"mine.b\"\nsource = \"x\"\nstatement = \"x\"\n\
                 lab = {{ server = \"never-accept\", backlog = {backlog} }}\n\
                 run = {{ client = \"fill\" }}\nexpect = {{ connections = 2 }}\n"
            )
        };
        for (backlog, said) in [
            (
                "-1",
                "invalid value: integer `-1`, expected a whole number from 0 to 4294967295",
            ),
            (
                "\"x\"",
                "invalid type: string \"x\", expected a whole number from 0 to 4294967295",
            ),
        ] {
            let errors = parse(&claim(backlog), &Origin::BuiltIn("t.toml"))
                .expect_err("a backlog out of range");
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].message, said);
        }
    }
}
