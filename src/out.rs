//! Writing to stdout and stderr without dying of a closed pipe.
//!
//! Rust ignores SIGPIPE, so a write to a pipe whose reader has gone (`netclaim run | head`)
//! fails with EPIPE, and `println!` turns that into a panic: the labs of a named run
//! stayed mounted and `--out` was never written. Everything netclaim prints goes through
//! here instead (clippy's `print_stdout`/`print_stderr` lints keep it so): a closed pipe
//! silences that stream for the rest of the process and the run goes on to its end —
//! labs torn down, `--out` written, the documented exit code. Any other failure to write
//! stdout (a full disk behind a redirect) is remembered and ends the run with exit 1.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);
static STDOUT_FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Writes to stdout (flushed), unless its reader is gone.
pub fn stdout(args: fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut failed = STDOUT_FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Writes to stderr, unless its reader is gone (other failures: nowhere left to say so).
pub fn stderr(args: fmt::Arguments<'_>) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut err = std::io::stderr().lock();
    if err.write_fmt(args).and_then(|()| err.flush()).is_err() {
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
