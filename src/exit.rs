//! Exit codes (also in `--help` and the README).

/// Every claim reached a verdict (holds, refuted or not-applicable); no drift.
pub const OK: u8 = 0;
/// At least one claim ended in `error`: the harness failed.
pub const ERROR: u8 = 1;
/// Bad input: an unknown or empty filter, a selection of only long-tier claims
/// without --long, `--jobs 0`, a claim file `check` refuses, an input file that is
/// not a regular file or is over its size cap, an unreadable or malformed report, a
/// baseline that shares no claim with the run, an unwritable --out directory (clap's
/// own usage errors also exit 2).
pub const USAGE: u8 = 2;
/// Verdicts drifted from --baseline, or `compare` found differences.
pub const DRIFT: u8 = 3;
/// Some claims were skipped (missing tool or privilege); the rest reached a verdict.
pub const SKIPPED: u8 = 4;
/// Some claims were inconclusive: a timing check missed its window by less than the
/// measured slowness of the machine (emulation, load); nothing else went wrong.
pub const INCONCLUSIVE: u8 = 5;
