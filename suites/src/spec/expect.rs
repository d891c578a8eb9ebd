//! `[claim.expect]` and `[claim.model]`: the statement's figures, and the values they
//! are written with (sysctl values, errnos, texts).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Span, ToleranceSpec};

/// What the statement says, in figures. Every key is optional; each given one is a
/// check that decides the verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// The command's exit code.
    #[serde(default)]
    pub exit: Option<i32>,
    /// The client's errno: a name (`ETIMEDOUT`) or a number.
    #[serde(default)]
    pub errno: Option<ErrnoSpec>,
    /// The give-up time: how long the action took.
    #[serde(default)]
    pub duration: Option<Span>,
    /// The tolerance for `duration`, replacing the built-in windows: `"500ms"`, `"10%"`,
    /// or both (`["500ms", "10%"]`: the larger).
    #[serde(default)]
    pub tolerance: Option<ToleranceSpec>,
    /// SYNs seen on the wire.
    #[serde(default)]
    pub syns: Option<usize>,
    /// SYN send times from the first, as the source lists them (`["0s", "1s", "3s"]`).
    #[serde(default)]
    pub syn_times: Option<Vec<Span>>,
    /// Text the command prints on stdout (a substring, or all of a list).
    #[serde(default)]
    pub stdout: Option<Texts>,
    /// Text on stderr.
    #[serde(default)]
    pub stderr: Option<Texts>,
    /// Text on either.
    #[serde(default)]
    pub output: Option<Texts>,
    /// A whole line of output, exactly.
    #[serde(default)]
    pub output_line: Option<String>,
    /// Match `stdout`, `stderr` and `output` without regard to case.
    #[serde(default)]
    pub ignore_case: bool,
    /// How many times texts appear in the output:
    /// `output_count = [{ text = "Retrying.", count = 2 }]`.
    #[serde(default)]
    pub output_count: Vec<CountSpec>,
    /// For a tool that retries (wget `--tries`): how long each try lasts.
    #[serde(default)]
    pub per_try: Option<Span>,
    /// connect() calls to the target strace sees (`run.trace_connect`).
    #[serde(default)]
    pub connect_calls: Option<usize>,
    /// Whether the command is still running (blocked) when the harness kills it at
    /// `run.timeout`; for `client = "idle"`, whether the connection is still up when the
    /// harness stops waiting at `run.timeout`.
    #[serde(default)]
    pub killed: Option<bool>,
    /// For `client = "fill"` / `"exhaust"`: connections made before the first failure.
    #[serde(default)]
    pub connections: Option<usize>,
    /// Values a fresh namespace starts with (no `run` needed); `"absent"` for a knob
    /// the kernel should not have.
    #[serde(default)]
    pub sysctls: BTreeMap<String, Value>,
    /// Per sweep value (its text as key), the figures of that run.
    #[serde(default)]
    pub each: BTreeMap<String, ExpectSpec>,
    /// The duration is at least this (a lower bound the source states).
    #[serde(default)]
    pub duration_at_least: Option<Span>,
    /// The duration is at most this.
    #[serde(default)]
    pub duration_at_most: Option<Span>,
    /// `client = "send"`: retransmissions of the unacknowledged segment on the wire;
    /// `client = "bulk"`: segments sent again (`TCP_INFO`'s `tcpi_total_retrans`).
    #[serde(default)]
    pub retransmissions: Option<usize>,
    /// `client = "bulk"`: retransmission timeouts during the transfer (the client
    /// namespace's TcpExt TCPTimeouts).
    #[serde(default)]
    pub timeouts: Option<u64>,
    /// `client = "bulk"`: what repaired the lost segment, as the client namespace's
    /// counters record it.
    #[serde(default)]
    pub repair: Option<Repair>,
    /// `client = "bulk"`: the lost segment is sent again within this many round trips
    /// (the kernel's first RTT sample, `TCP_INFO` after the handshake) of its first
    /// transmission.
    #[serde(default)]
    pub repaired_within_rtts: Option<u32>,
    /// `client = "send"`: when the segment is first sent again (a tail loss probe or the
    /// RTO's retransmission), from when it was sent.
    #[serde(default)]
    pub first_retransmission: Option<Span>,
    /// `client = "idle"`: keepalive probes on the wire.
    #[serde(default)]
    pub probes: Option<usize>,
    /// `client = "syn-only"`: SYN-ACKs the server sends (the first and its
    /// retransmissions).
    #[serde(default)]
    pub synacks: Option<usize>,
    /// `client = "close"`: whether close() sends an RST.
    #[serde(default)]
    pub rst: Option<bool>,
    /// `client = "close"`: whether close() sends a FIN.
    #[serde(default)]
    pub fin: Option<bool>,
    /// `client = "exchange"`: how long one request/reply exchange takes, from the first
    /// write() to the whole reply read (the median of the exchanges after the warm-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Span>,
}

/// What repairs a lost segment, by the counter of the client's namespace that records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Repair {
    /// Fast recovery with SACK (RACK or three duplicate ACKs): TcpExt TCPSackRecovery.
    Sack,
    /// Fast recovery without SACK (NewReno, three duplicate ACKs): TcpExt TCPRenoRecovery.
    Reno,
    /// A tail loss probe (RFC 8985): TcpExt TCPLossProbes, no timeout.
    Probe,
    /// The retransmission timer: TcpExt TCPTimeouts.
    Timeout,
}

impl Repair {
    /// Its name as a claim file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sack => "sack",
            Self::Reno => "reno",
            Self::Probe => "probe",
            Self::Timeout => "timeout",
        }
    }

    /// The counter that records it.
    pub fn counter(self) -> &'static str {
        match self {
            Self::Sack => "TCPSackRecovery",
            Self::Reno => "TCPRenoRecovery",
            Self::Probe => "TCPLossProbes",
            Self::Timeout => "TCPTimeouts",
        }
    }
}

/// `output_count = { text = "Retrying.", count = 2 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountSpec {
    /// The text counted.
    pub text: String,
    /// How many times it appears.
    pub count: usize,
}

/// Predictions given as data: what the kernel documents, by release.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Per sysctl, its default from each release on: `{ "0" = "128", "5.4" = "4096" }`
    /// (`"absent"`: the knob does not exist from that release on).
    #[serde(default)]
    pub defaults: BTreeMap<String, BTreeMap<String, Value>>,
    /// Where those figures come from (a header, a commit), shown with the check.
    #[serde(default)]
    pub reference: Option<String>,
}

/// A sysctl value: written as a string or a number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a sysctl value is a number (4096) or a string (\"32768 60999\")"
)]
pub enum Value {
    /// A number.
    Int(i64),
    /// Text (`"40000 40003"`).
    Text(String),
}

impl Value {
    /// The text written to or read from `/proc/sys` (whitespace normalised).
    pub fn text(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Text(s) => s.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// An errno by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "an errno is a name (\"ETIMEDOUT\") or a number (110)"
)]
pub enum ErrnoSpec {
    /// `110`.
    Number(i32),
    /// `"ETIMEDOUT"`.
    Name(String),
}

impl ErrnoSpec {
    /// The errno value, if the name is known.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            Self::Number(n) => Some(nix::errno::Errno::from_raw(*n)),
            Self::Name(name) => errno_by_name(name),
        }
    }
}

/// The errno whose symbolic name is `name` (`ETIMEDOUT`).
pub fn errno_by_name(name: &str) -> Option<nix::errno::Errno> {
    (1..200)
        .map(nix::errno::Errno::from_raw)
        .find(|e| format!("{e:?}") == name)
}

/// One text or several, each of which must appear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a text to look for is a string (\"Failed to connect\") or a list of strings that must all appear"
)]
pub enum Texts {
    /// One substring.
    One(String),
    /// Several.
    All(Vec<String>),
}

impl Texts {
    /// The substrings.
    pub fn items(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::All(v) => v.iter().map(String::as_str).collect(),
        }
    }
}
