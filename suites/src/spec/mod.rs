//! Claims as data: the claim file format (TOML, one or more `[[claim]]`), its parsing
//! and its validation.
//!
//! The format is small and strict: unknown keys are errors that list the valid ones,
//! missing keys are named, and every error carries `file:line:column`. Nothing here
//! touches the machine, so `netclaim check` validates files without root. What a file
//! means — the lab to build, the action, the statement's figures — is measured by
//! [`crate::measure`] and judged by [`crate::judge`]; the README's "Write your own claims"
//! documents every key.

use serde::{Deserialize, Serialize};

/// A claim file: `[[claim]]` tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    claim: Vec<toml::Spanned<ClaimSpec>>,
}

/// One claim of a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSpec {
    /// Stable id, `topic.name` (lowercase letters, digits, `.` and `-`).
    pub id: String,
    /// Where the statement comes from (a document, a runbook, a URL).
    pub source: String,
    /// The statement, in words.
    pub statement: String,
    /// Rough run time, for scheduling and the hard deadline; computed when absent.
    #[serde(default)]
    pub estimate: Option<Span>,
    /// `default` (every run) or `long` (only with `--long`: claims that take minutes).
    #[serde(default)]
    pub tier: Tier,
    /// The lab.
    #[serde(default)]
    pub lab: LabSpec,
    /// The action; absent for claims about a fresh namespace's sysctls.
    #[serde(default)]
    pub run: Option<RunSpec>,
    /// Run the lab and action once per value of a sysctl, concurrently.
    #[serde(default)]
    pub sweep: Option<SweepSpec>,
    /// What the statement says, in figures: decides the verdict.
    #[serde(default)]
    pub expect: ExpectSpec,
    /// Predictions the kernel timing and tool models cannot make (documented defaults).
    #[serde(default)]
    pub model: ModelSpec,
}

/// When a claim runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// In every run and in `cargo test`.
    #[default]
    Default,
    /// Only with `netclaim run --long` (or the claim's exact id as a filter) and
    /// `cargo test -- --ignored`: it takes minutes.
    Long,
}

impl Tier {
    /// `default` / `long`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Long => "long",
        }
    }
}

/// The address family of the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// 127.0.0.1, or 192.0.2.2 over veth.
    #[default]
    Ipv4,
    /// ::1 (ip6tables rules for drop-syn).
    Ipv6,
}

mod check;
mod duration;
mod expect;
mod lab;
pub mod link;
mod parse;
mod run;
#[cfg(test)]
mod tests;

pub use check::{parse_release, validate, ID_MAX, MAX_SWEEP_VALUES, PLACEHOLDERS};
pub(crate) use duration::number_and_unit;
pub use duration::{Span, ToleranceSpec};
pub use expect::{
    errno_by_name, CountSpec, ErrnoSpec, ExpectSpec, ModelSpec, Repair, Texts, Value,
};
use lab::serde_kebab;
pub use lab::{LabSpec, Server, TrickleSpec};
#[cfg(test)]
pub(crate) use parse::parse_unvalidated;
pub use parse::{files_at, load, parse, Located, Origin, SpecError};
pub use run::{Client, RunSpec, SocketSpec, SweepSpec};
