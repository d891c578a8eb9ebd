//! Writing to stdout and stderr without dying of a closed pipe.
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader has gone (`netclaim run | head`)
//! fails with EPIPE, and `println!` turns that into a panic: the labs of a named run
//! stayed mounted and `--out` was never written. Everything netclaim prints goes through
//! here instead (clippy's `print_stdout`/`print_stderr` lints keep it so): a closed pipe
//! silences that stream for the rest of the process and the run goes on to its end —
//! labs torn down, `--out` written, the documented exit code. Any other failure to write
//! stdout (a full disk behind a redirect) is remembered and ends the run with exit 1.
//!
//! Everything printed here is also made safe for a terminal ([`escape_controls`]): claim
//! files, tool output, reports and recordings are untrusted, and an escape sequence in
//! them (ANSI cursor movement, an OSC 52 clipboard write, a carriage return over a
//! verdict) would act on the reader's terminal. Files written with `--out` keep the raw
//! data (JSON escapes control characters itself; junit.xml drops what XML forbids).

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);
static STDOUT_FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Whether `c` acts on a terminal instead of being shown: a C0 control character other
/// than newline and tab (ESC starts ANSI and OSC sequences, CR returns over a line), DEL,
/// a C1 control (U+009B is CSI, U+009D is OSC on terminals that read them), or a Unicode
/// bidirectional override or isolate, which reorders what is shown.
fn acts_on_terminal(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text` with every character that would act on a terminal shown as `\u001b` (its code
/// point, as JSON writes it: so JSON printed on stdout stays valid JSON and means the
/// same). Unchanged, and not copied, when there is none.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if acts_on_terminal(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes to stdout (flushed), unless its reader is gone; escaped ([`escape_controls`]).
pub fn stdout(args: fmt::Arguments<'_>) {
    write_stdout(&escape_controls(&fmt::format(args)));
}

/// Prints a table that colors some cells on a terminal: `render(color)` renders it. The
/// colored rendering is printed only when the plain one has nothing to escape (then the
/// colors are its only control sequences); otherwise the plain one, escaped as
/// everything else, so data in a cell can never pass for the table's own colors.
pub fn table(tty: bool, render: impl Fn(bool) -> String) {
    let plain = render(false);
    if tty && matches!(escape_controls(&plain), Cow::Borrowed(_)) {
        write_stdout(&format!("{}\n", render(true)));
    } else {
        write_stdout(&format!("{}\n", escape_controls(&plain)));
    }
}

/// Writes `text` to stdout as it is (flushed), unless its reader is gone.
fn write_stdout(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut failed = STDOUT_FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Writes to stderr, unless its reader is gone (other failures: nowhere left to say so);
/// escaped ([`escape_controls`]).
pub fn stderr(args: fmt::Arguments<'_>) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let text = fmt::format(args);
    let mut err = std::io::stderr().lock();
    if err
        .write_all(escape_controls(&text).as_bytes())
        .and_then(|()| err.flush())
        .is_err()
    {
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Why writing stdout failed, other than its reader going away.
pub fn stdout_failure() -> Option<String> {
    STDOUT_FAILED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Like `print!`, through [`stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*)) };
}

/// Like `println!`, through [`stdout`].
macro_rules! outln {
    () => { $crate::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Like `eprintln!`, through [`stderr`].
macro_rules! errln {
    () => { $crate::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_are_shown_not_acted_on() {
        // CSI (colors, cursor up), OSC 52 (clipboard) ended by BEL, a CR over a line, C1 CSI,
        // DEL and a right-to-left override; newline and tab stay.
        let hostile = "a\x1b[31mred\x1b[1A\x1b]52;c;aGk=\x07\rholds\u{9b}2J\x7f\u{202e}x\n\tb";
        assert_eq!(
            escape_controls(hostile),
            "a\\u001b[31mred\\u001b[1A\\u001b]52;c;aGk=\\u0007\\u000dholds\\u009b2J\\u007f\\u202ex\n\tb"
        );
        assert!(matches!(
            escape_controls("plain ✓ text\n"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn escaped_json_stays_the_same_json() {
        // serde_json escapes C0 itself; DEL and C1 it leaves raw: escaped as JSON would.
        let v = serde_json::json!({"out": "\x1b[2J\u{9b}\x7f\u{202e}"});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let shown = escape_controls(&text);
        assert!(!shown.chars().any(acts_on_terminal), "{shown}");
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, v);
    }
}
