//! Claims as data: the claim file format (TOML, one or more `[[claim]]`), its parsing
//! and its validation.
//!
//! The format is small and strict: unknown keys are errors that list the valid ones,
//! missing keys are named, and every error carries `file:line:column`. Nothing here
//! touches the machine, so `netclaim check` validates files without root. What a file
//! means — the lab to build, the action, the statement's figures — is executed by
//! [`crate::engine`]; the README's "Write your own claims" documents every key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// The lab a claim builds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// `net.*` sysctls set in the lab's namespace before anything runs; a knob the
    /// kernel lacks or a value it rejects makes the claim `not-applicable`.
    #[serde(default)]
    pub sysctls: BTreeMap<String, Value>,
    /// Sysctls set only where the kernel has them (their absence is noted).
    #[serde(default)]
    pub sysctls_if_present: BTreeMap<String, Value>,
    /// What is at `{target}`.
    #[serde(default)]
    pub server: Server,
    /// The target's port (default per server: drop-syn 7, blackhole 80, others 8080).
    #[serde(default)]
    pub port: Option<u16>,
    /// listen() backlog of a never-accept server (default 16; capped by somaxconn).
    #[serde(default)]
    pub backlog: Option<u32>,
    /// Host names the command resolves inside the lab (`/etc/hosts`), each to `target`.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// `ipv4` (default) or `ipv6` (the target is ::1; drop-syn, refuse and none only).
    #[serde(default)]
    pub family: Family,
    /// For `server = "reject"`: what iptables' REJECT sends (`tcp-reset`,
    /// `icmp-port-unreachable`, `icmp-host-unreachable`, `icmp-net-unreachable`,
    /// `icmp-admin-prohibited`, …).
    #[serde(default)]
    pub reject_with: Option<String>,
    /// A wire of netclaim's own between the client and a peer namespace that holds the
    /// server, instead of loopback or a veth: delay, jitter, loss, … ([`crate::link`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::link::LinkSpec>,
    /// Packet rules on that wire (a scripted peer): drop the first SYN-ACK, a zero
    /// window, a reset after N bytes ([`crate::link::RuleSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<crate::link::RuleSpec>,
}

/// What a lab puts at `{target}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    /// Nothing: the target is 127.0.0.1:port and nothing listens there (RST).
    #[default]
    None,
    /// An iptables rule drops SYNs to 127.0.0.1:port: no answer at all.
    DropSyn,
    /// A peer namespace over veth (192.0.2.2) that drops every packet.
    Blackhole,
    /// Nothing listens on 127.0.0.1:port: the kernel answers SYN with RST.
    Refuse,
    /// A listener that accepts connections and never sends a byte.
    Silent,
    /// A listener that never calls accept(): the kernel completes handshakes until
    /// the accept queue is full.
    NeverAccept,
    /// A unix stream listener (`{target}` is its path) that never calls accept().
    NeverAcceptUnix,
    /// An HTTP server answering `200 OK` with a short body.
    Http,
    /// A peer namespace over veth (192.0.2.2) whose iptables rejects connections to the
    /// port with `lab.reject_with`.
    Reject,
    /// An address (203.0.113.1) the client's lab has no route to.
    Unroutable,
    /// A peer namespace over veth (192.0.2.2) that accepts the connection and then drops
    /// every packet: a host that died after the handshake.
    DiesAfterHandshake,
}

/// A unit variant's name as the file writes it (`"dies-after-handshake"`).
fn serde_kebab<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Server {
    /// Every kind's name, for messages.
    pub const NAMES: &'static str = "none | drop-syn | blackhole | refuse | silent | never-accept | never-accept-unix | http | reject | unroutable | dies-after-handshake";

    /// The port of `{target}` when the file names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::DropSyn => 7,
            Self::Blackhole | Self::Reject | Self::Unroutable | Self::DiesAfterHandshake => 80,
            _ => 8080,
        }
    }

    /// Whether SYNs to the target are never answered (the kernel retransmits them).
    pub fn drops_syns(self) -> bool {
        matches!(self, Self::DropSyn | Self::Blackhole)
    }

    /// Whether the kernel completes the handshake and then nothing is ever sent.
    pub fn answers_nothing(self) -> bool {
        matches!(
            self,
            Self::Silent | Self::NeverAccept | Self::NeverAcceptUnix
        )
    }
}

/// The action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// A program and its arguments, with `{target}`, `{ip}` and `{port}` replaced.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// An in-repo client instead of a command.
    #[serde(default)]
    pub client: Option<Client>,
    /// The harness's hard deadline for the command (default: twice what the model
    /// predicts, plus 30 s). A command still running then is killed.
    #[serde(default)]
    pub timeout: Option<Span>,
    /// Environment variables for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Bytes fed on the command's stdin (otherwise /dev/null).
    #[serde(default)]
    pub stdin: Option<String>,
    /// The program's own deadline (a connect or read timeout it is configured with), for
    /// a program the tool model does not know: the model then predicts it ends there.
    #[serde(default)]
    pub deadline: Option<Span>,
    /// Run the command under `strace -f -e trace=connect`, so the errno and the number of
    /// its connect() calls to the target are observed (`expect.errno`,
    /// `expect.connect_calls`). Needs strace.
    #[serde(default)]
    pub trace_connect: bool,
    /// Socket options the in-repo client sets before connect().
    #[serde(default)]
    pub socket: SocketSpec,
}

/// Socket options of the in-repo client (tcp(7), socket(7)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketSpec {
    /// `TCP_SYNCNT`: SYN retransmissions of this connect.
    #[serde(default)]
    pub syncnt: Option<u32>,
    /// `TCP_USER_TIMEOUT` (`"3s"`).
    #[serde(default)]
    pub user_timeout: Option<Span>,
    /// `SO_KEEPALIVE`.
    #[serde(default)]
    pub keepalive: bool,
    /// `TCP_KEEPIDLE`, seconds.
    #[serde(default)]
    pub keepidle: Option<u32>,
    /// `TCP_KEEPINTVL`, seconds.
    #[serde(default)]
    pub keepintvl: Option<u32>,
    /// `TCP_KEEPCNT`.
    #[serde(default)]
    pub keepcnt: Option<u32>,
    /// `SO_LINGER` on, with this timeout (`"0s"`: close() resets the connection).
    #[serde(default)]
    pub linger: Option<Span>,
    /// `TCP_LINGER2`, seconds: the orphaned FIN_WAIT_2 lifetime of this socket.
    #[serde(default)]
    pub linger2: Option<i32>,
}

impl SocketSpec {
    /// Whether any option is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The in-repo clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    /// One blocking connect() to the target: its errno and duration.
    Connect,
    /// Nonblocking connects held open until one fails or does not complete: how many
    /// were queued, and the errno of the one that failed (a backlog).
    Fill,
    /// Blocking connects held open until one fails: how many, and the errno (ports).
    Exhaust,
    /// Connects, waits until the peer drops everything, sends 100 bytes and waits for the
    /// connection's error: the data retransmissions and the give-up.
    Send,
    /// Connects and leaves the connection idle until it fails (keepalive).
    Idle,
    /// Connects, then close()s: what goes on the wire (FIN or RST) and how long the
    /// socket stays in the kernel's table (FIN_WAIT_2).
    Close,
    /// Sends one SYN from a raw socket and never answers the SYN-ACK: the passive side's
    /// SYN-ACK retransmissions and when the server drops the request.
    SynOnly,
}

/// Runs a claim once per value of one sysctl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The `net.*` sysctl.
    pub sysctl: String,
    /// Its values; each gets its own lab.
    pub values: Vec<Value>,
}

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
    /// `run.timeout`.
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
    /// `client = "send"`: retransmissions of the unacknowledged segment on the wire.
    #[serde(default)]
    pub retransmissions: Option<usize>,
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

/// A duration written as `"15s"`, `"2.5s"`, `"1500ms"`, `"2m"`: from zero to [`Span::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    /// The longest duration a claim file may give: a day. The longest claim of the
    /// catalog takes about 15 minutes; the bound keeps every sum and product of spans
    /// (deadlines, windows, tolerances) far from overflowing.
    pub const MAX: Duration = Duration::from_secs(24 * 60 * 60);

    /// Parses `"2.5s"`, `"1500ms"`, `"2m"`, `"100us"`; refuses what is not a finite,
    /// non-negative duration of at most [`Span::MAX`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let (number, unit) = number_and_unit(text);
        let n: f64 = number.parse().map_err(|_| {
            format!(
                "{text:?} is not a duration: write it as \"15s\", \"2.5s\", \"1500ms\" or \"2m\""
            )
        })?;
        let scale = match unit.trim() {
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "m" | "min" => 60.0,
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?} (use s, ms, us or m)"
                ))
            }
        };
        let secs = n * scale;
        // Only digits and '.' reach the number: it is never negative or NaN, but may be
        // too large for an f64 ("1" and 400 zeros is infinite).
        if !secs.is_finite() || secs > Self::MAX.as_secs_f64() {
            return Err(format!(
                "{text:?} is longer than a day, the longest duration a claim may give"
            ));
        }
        Duration::try_from_secs_f64(secs)
            .map(Span)
            .map_err(|e| format!("{text:?}: {e}"))
    }
}

/// `"2.5ms"` as (`"2.5"`, `"ms"`): the leading digits and dots, then the rest (trimmed).
pub(crate) fn number_and_unit(text: &str) -> (&str, &str) {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    t.split_at(split)
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} s", self.0.as_secs_f64())
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_secs_f64() * 1000.0))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `"500ms"`, `"10%"`, or `["500ms", "10%"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a tolerance is a duration (\"500ms\"), a percentage of expect.duration (\"10%\"), or both ([\"500ms\", \"10%\"]: the larger applies)"
)]
pub enum ToleranceSpec {
    /// One part.
    One(String),
    /// The larger of several.
    Max(Vec<String>),
}

impl ToleranceSpec {
    /// The tolerance around `expected`: the largest of the parts. A part is a duration
    /// (at most [`Span::MAX`]) or a percentage from 0 % to 100 %; anything else is an
    /// error that says so.
    pub fn around(&self, expected: Duration) -> Result<Duration, String> {
        let parts: Vec<&str> = match self {
            Self::One(s) => vec![s.as_str()],
            Self::Max(v) => v.iter().map(String::as_str).collect(),
        };
        if parts.is_empty() {
            return Err("an empty list gives no tolerance: give \"500ms\", \"10%\" or both".into());
        }
        parts.iter().try_fold(Duration::ZERO, |acc, p| {
            let part = match p.trim().strip_suffix('%') {
                Some(pct) => {
                    let pct: f64 = pct
                        .trim()
                        .parse()
                        .map_err(|_| format!("tolerance {p:?}: not a percentage"))?;
                    if !(0.0..=100.0).contains(&pct) {
                        return Err(format!("tolerance {p:?}: a percentage is from 0% to 100%"));
                    }
                    Duration::try_from_secs_f64(expected.as_secs_f64() * pct / 100.0)
                        .map_err(|e| format!("tolerance {p:?}: {e}"))?
                }
                None => Span::parse(p).map_err(|e| format!("tolerance {e}"))?.0,
            };
            Ok(acc.max(part))
        })
    }
}

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
    message.to_owned()
}

/// The most values a sweep may have.
pub const MAX_SWEEP_VALUES: usize = 1000;

/// The placeholders a command may use.
pub const PLACEHOLDERS: &[&str] = &["{target}", "{ip}", "{port}", "{dir}"];

/// Everything wrong with one claim that parsing alone cannot see.
pub fn validate(spec: &ClaimSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(why) = check_id(&spec.id) {
        problems.push(format!("id {} {why}", shown_id(&spec.id)));
    }
    for (what, value) in [("source", &spec.source), ("statement", &spec.statement)] {
        if value.trim().is_empty() {
            problems.push(format!("{what} is empty"));
        }
    }
    let sysctl_names = spec
        .lab
        .sysctls
        .keys()
        .chain(spec.lab.sysctls_if_present.keys())
        .chain(spec.expect.sysctls.keys())
        .chain(spec.model.defaults.keys())
        .chain(spec.sweep.iter().map(|s| &s.sysctl));
    for name in sysctl_names {
        if name.contains('\0') {
            problems.push(format!("sysctl name {name:?} contains a NUL byte"));
            continue;
        }
        if let Err(e) = netclaim_harness::sysctl::proc_path(name) {
            problems.push(format!(
                "{e}: a lab may only change its own namespace, and anything else would change the host"
            ));
        }
    }
    if let Some(link) = &spec.lab.link {
        if let Err(errors) = link.wire_spec(&spec.lab.rules) {
            problems.extend(errors);
        }
        if !crate::link::LINKED_SERVERS.contains(&spec.lab.server) {
            problems.push(format!(
                "lab.link: server {} cannot stand behind a link (a unix socket, or no address at all); these can: {}",
                serde_kebab(&spec.lab.server),
                crate::link::LINKED_SERVERS.iter().map(serde_kebab).collect::<Vec<_>>().join(", ")
            ));
        }
        if spec.lab.family == Family::Ipv6 {
            problems
                .push("lab.link carries IPv4 (192.0.2.0/24): family = \"ipv6\" has no link".into());
        }
    } else if !spec.lab.rules.is_empty() {
        problems.push("lab.rules act on a wire: add lab.link (an empty one, lab.link = {}, is a perfect wire)".into());
    }
    // Written (not only read): none whose write would act beyond the lab.
    let written = spec
        .lab
        .sysctls
        .keys()
        .chain(spec.lab.sysctls_if_present.keys())
        .chain(spec.sweep.iter().map(|s| &s.sysctl));
    for name in written {
        if let Some(why) = netclaim_harness::sysctl::refusal(name) {
            problems.push(format!(
                "sysctl {name} may not be written by a lab: {why}; a lab may only write sysctls the kernel keeps per network namespace"
            ));
        }
    }
    match &spec.run {
        None if spec.expect.sysctls.is_empty() && spec.lab.sysctls.is_empty() => problems.push(
            "no [claim.run] and no expect.sysctls: give an action (run.command or run.client) or the defaults to read".into(),
        ),
        None => {}
        Some(run) => validate_run(spec, run, &mut problems),
    }
    if spec.lab.server == Server::NeverAcceptUnix && spec.lab.port.is_some() {
        problems.push("lab.port does not apply to a unix server".into());
    }
    if spec.lab.port == Some(0) {
        problems.push("lab.port = 0 is not a port: give 1 to 65535".into());
    }
    if let Some(b) = spec.lab.backlog.filter(|b| i32::try_from(*b).is_err()) {
        problems.push(format!(
            "lab.backlog {b} is above what listen() takes (an int: at most {}); the kernel caps \
             the backlog at net.core.somaxconn anyway",
            i32::MAX
        ));
    }
    if spec.lab.backlog.is_some() && !spec.lab.server.answers_nothing() {
        problems.push(format!(
            "lab.backlog only applies to a listening server (silent, never-accept), not {:?}",
            spec.lab.server
        ));
    }
    for (name, to) in &spec.lab.hosts {
        if to != "target" {
            problems.push(format!(
                "lab.hosts.{name} = {to:?}: a name can only resolve to \"target\" (the lab's server)"
            ));
        }
        // Written into the lab's /etc/hosts: a newline or a '#' would add lines of its own.
        let host_name = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
        if !host_name {
            problems.push(format!(
                "lab.hosts: {name:?} is not a host name (letters, digits, '.', '-', '_')"
            ));
        }
    }
    validate_docs_keys(spec, &mut problems);
    validate_values(spec, &mut problems);
    validate_expect(&spec.expect, "expect", &mut problems);
    for (value, each) in &spec.expect.each {
        validate_expect(each, &format!("expect.each.{value:?}"), &mut problems);
        if !each.each.is_empty() {
            problems.push(format!(
                "expect.each.{value:?}.each: a sweep value has no values of its own"
            ));
        }
        if !each.sysctls.is_empty() {
            problems.push(format!(
                "expect.each.{value:?}.sysctls: a fresh namespace's defaults are read once per claim: give them in expect.sysctls"
            ));
        }
    }
    validate_checks(spec, &mut problems);
    match &spec.sweep {
        Some(sweep) => {
            if sweep.values.is_empty() {
                problems.push("sweep.values is empty".into());
            }
            if sweep.values.len() > MAX_SWEEP_VALUES {
                problems.push(format!(
                    "sweep.values has {} values: at most {MAX_SWEEP_VALUES} (each is a lab of its own)",
                    sweep.values.len()
                ));
            }
            let keys: Vec<String> = sweep.values.iter().map(Value::text).collect();
            for k in spec.expect.each.keys() {
                if !keys.contains(k) {
                    problems.push(format!(
                        "expect.each.{k:?} is not one of sweep.values {keys:?}"
                    ));
                }
            }
            if spec.run.is_none() {
                problems.push("a sweep needs a [claim.run]".into());
            }
        }
        None if !spec.expect.each.is_empty() => {
            problems.push("expect.each needs a [claim.sweep]".into())
        }
        None => {}
    }
    for (name, by_release) in &spec.model.defaults {
        for release in by_release.keys() {
            if parse_release(release).is_none() {
                problems.push(format!(
                    "model.defaults.{name:?}: {release:?} is not a release such as \"5.4\""
                ));
            }
        }
    }
    problems
}

/// The longest claim id. An id names the file `timelines/<id>.svg` that `--out` writes,
/// and a file name has at most 255 bytes (NAME_MAX); 128 leaves room and stays readable.
pub const ID_MAX: usize = 128;

/// Why `id` is not a claim id: `topic.name`, lowercase letters, digits, `-`, parts
/// separated by single dots, at most [`ID_MAX`] characters.
fn check_id(id: &str) -> Result<(), String> {
    let length = id.chars().count();
    if length > ID_MAX {
        return Err(format!(
            "is {length} characters long: an id has at most {ID_MAX} (it names the file timelines/<id>.svg)"
        ));
    }
    if !id.contains('.')
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c))
    {
        return Err(
            "must look like topic.name: lowercase letters, digits, '.' and '-', with at least one '.'"
                .into(),
        );
    }
    if id.split('.').any(str::is_empty) {
        return Err(
            "has an empty part: no '.' at its start or end and no \"..\" (topic.name)".into(),
        );
    }
    Ok(())
}

/// An id as messages show it: escaped, and cut after 60 characters.
fn shown_id(id: &str) -> String {
    match id.char_indices().nth(60) {
        Some((cut, _)) => format!("{:?}…", &id[..cut]),
        None => format!("{id:?}"),
    }
}

/// The tcp(7) socket options the kernel accepts only in a range (`do_tcp_setsockopt`,
/// include/net/tcp.h): name, key, value, highest valid value (the lowest is 1).
fn socket_ranges(s: &SocketSpec) -> [(&'static str, &'static str, Option<u32>, u32); 4] {
    [
        ("syncnt", "TCP_SYNCNT (MAX_TCP_SYNCNT)", s.syncnt, 127),
        (
            "keepidle",
            "TCP_KEEPIDLE (MAX_TCP_KEEPIDLE)",
            s.keepidle,
            32767,
        ),
        (
            "keepintvl",
            "TCP_KEEPINTVL (MAX_TCP_KEEPINTVL)",
            s.keepintvl,
            32767,
        ),
        ("keepcnt", "TCP_KEEPCNT (MAX_TCP_KEEPCNT)", s.keepcnt, 127),
    ]
}

/// Sysctl values with a NUL or another control character: the kernel parses none of
/// them (a value is written as text to /proc/sys).
fn validate_values(spec: &ClaimSpec, problems: &mut Vec<String>) {
    let lab = &spec.lab;
    let mut values: Vec<(String, &Value)> = lab
        .sysctls
        .iter()
        .chain(&lab.sysctls_if_present)
        .chain(&spec.expect.sysctls)
        .map(|(k, v)| (k.clone(), v))
        .collect();
    for (name, by_release) in &spec.model.defaults {
        values.extend(by_release.values().map(|v| (name.clone(), v)));
    }
    if let Some(sweep) = &spec.sweep {
        values.extend(sweep.values.iter().map(|v| (sweep.sysctl.clone(), v)));
    }
    for (name, value) in values {
        if let Value::Text(t) = value {
            if t.chars().any(|c| c.is_control() && !c.is_whitespace()) {
                problems.push(format!(
                    "sysctl value {name:?} = {t:?} contains a NUL or another control character"
                ));
            }
        }
    }
}

/// The keys of `e` that are checks of the statement (each one can decide the verdict),
/// beside `expect.sysctls`. `ignore_case`, `per_try` and `tolerance` only qualify them.
fn figures(e: &ExpectSpec) -> Vec<&'static str> {
    let texts = |t: &Option<Texts>| t.as_ref().is_some_and(|t| !t.items().is_empty());
    [
        ("exit", e.exit.is_some()),
        ("errno", e.errno.is_some()),
        ("duration", e.duration.is_some()),
        ("syns", e.syns.is_some()),
        ("syn_times", e.syn_times.is_some()),
        ("stdout", texts(&e.stdout)),
        ("stderr", texts(&e.stderr)),
        ("output", texts(&e.output)),
        ("output_line", e.output_line.is_some()),
        ("output_count", !e.output_count.is_empty()),
        ("connect_calls", e.connect_calls.is_some()),
        ("killed", e.killed.is_some()),
        ("connections", e.connections.is_some()),
        ("duration_at_least", e.duration_at_least.is_some()),
        ("duration_at_most", e.duration_at_most.is_some()),
        ("retransmissions", e.retransmissions.is_some()),
        ("probes", e.probes.is_some()),
        ("synacks", e.synacks.is_some()),
        ("rst", e.rst.is_some()),
        ("fin", e.fin.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect()
}

/// What is wrong with one expectation (`expect`, or a sweep value's `expect.each."1"`),
/// named under `key`.
fn validate_expect(e: &ExpectSpec, key: &str, problems: &mut Vec<String>) {
    match &e.errno {
        Some(ErrnoSpec::Name(name)) if errno_by_name(name).is_none() => problems.push(format!(
            "{key}.errno {name:?} is not an errno name such as \"ETIMEDOUT\""
        )),
        Some(ErrnoSpec::Number(n))
            if !(1..=4095).contains(n)
                || nix::errno::Errno::from_raw(*n) == nix::errno::Errno::UnknownErrno =>
        {
            problems.push(format!(
                "{key}.errno = {n} is not an errno: give a name such as \"ETIMEDOUT\", or a number from 1 to 4095 that names one"
            ))
        }
        _ => {}
    }
    if let Some(code) = e.exit {
        if !(0..=255).contains(&code) {
            problems.push(format!(
                "{key}.exit = {code}: an exit code is 0 to 255 (a command killed by a signal has none: see expect.killed)"
            ));
        }
    }
    match (&e.tolerance, e.duration) {
        (Some(t), Some(d)) => {
            if let Err(why) = t.around(d.0) {
                problems.push(format!("{key}.tolerance: {why}"));
            }
        }
        (Some(_), None) => problems.push(format!("{key}.tolerance needs {key}.duration")),
        _ => {}
    }
    if let Some(times) = &e.syn_times {
        if times.windows(2).any(|w| w[1] <= w[0]) {
            problems.push(format!("{key}.syn_times must increase"));
        }
        if e.syns.is_some_and(|n| n != times.len()) {
            problems.push(format!(
                "{key}.syns disagrees with the length of {key}.syn_times"
            ));
        }
    }
    if let (Some(least), Some(most)) = (e.duration_at_least, e.duration_at_most) {
        if least > most {
            problems.push(format!(
                "{key}.duration_at_least ({least}) is above {key}.duration_at_most ({most}): no duration fits both"
            ));
        }
    }
    for (name, texts) in [
        ("stdout", &e.stdout),
        ("stderr", &e.stderr),
        ("output", &e.output),
    ] {
        match texts {
            Some(t) if t.items().is_empty() => problems.push(format!(
                "{key}.{name} = [] checks nothing: give the texts to look for"
            )),
            Some(t) if t.items().iter().any(|i| i.is_empty()) => problems.push(format!(
                "{key}.{name}: an empty text is in every output: give the text to look for"
            )),
            _ => {}
        }
    }
    if e.output_count.iter().any(|c| c.text.is_empty()) {
        problems.push(format!(
            "{key}.output_count: an empty text cannot be counted: give the text to count"
        ));
    }
}

/// A claim must check something: every lab it runs has a figure of the statement to
/// check, or it reads a fresh namespace's defaults. A claim with nothing to check would
/// end in `error` after building its lab.
fn validate_checks(spec: &ClaimSpec, problems: &mut Vec<String>) {
    const NOTHING: &str = "nothing to check: [claim.expect] gives no figure of the statement \
        (exit, errno, duration, syns, syn_times, stdout, stderr, output, output_line, \
        output_count, killed, connections, connect_calls, duration_at_least, duration_at_most, \
        retransmissions, probes, synacks, rst, fin, or sysctls without a run); ignore_case, \
        per_try and tolerance only qualify those";
    let Some(_) = &spec.run else {
        let on_a_run = figures(&spec.expect);
        if !on_a_run.is_empty() {
            problems.push(format!(
                "expect.{} {} observed on a run: add [claim.run] (run.command or run.client), or keep only expect.sysctls",
                on_a_run.join(", expect."),
                if on_a_run.len() == 1 { "is" } else { "are" }
            ));
        } else if spec.expect.sysctls.is_empty()
            && spec.model.defaults.is_empty()
            && !spec.lab.sysctls.is_empty()
        {
            // (With model.defaults, a lab of sysctls alone states that the kernel takes
            // them: port.tw-recycle is not-applicable where the knob is gone.)
            problems.push(format!("{NOTHING} (a lab without a run observes nothing)"));
        }
        return;
    };
    match &spec.sweep {
        None => {
            if figures(&spec.expect).is_empty() {
                problems.push(NOTHING.into());
            }
        }
        Some(sweep) => {
            let mut bare = Vec::new();
            for value in sweep.values.iter().map(Value::text) {
                match spec.expect.each.get(&value) {
                    Some(each) if figures(each).is_empty() => problems.push(format!(
                        "expect.each.{value:?} checks nothing: give it a figure (duration, syns, exit, …)"
                    )),
                    None if figures(&spec.expect).is_empty() => bare.push(value),
                    _ => {}
                }
            }
            if !bare.is_empty() {
                problems.push(format!(
                    "{NOTHING}: sweep value(s) {} have no expect.each entry either",
                    bare.join(", ")
                ));
            }
        }
    }
}

/// The keys the kernel-documentation catalog added: families, rejections, the clients
/// after the SYN and what they observe.
fn validate_docs_keys(spec: &ClaimSpec, problems: &mut Vec<String>) {
    let lab = &spec.lab;
    let client = spec.run.as_ref().and_then(|r| r.client);
    if lab.family == Family::Ipv6
        && !matches!(lab.server, Server::DropSyn | Server::Refuse | Server::None)
    {
        problems.push(format!(
            "lab.family = \"ipv6\" works with drop-syn, refuse and none, not {:?}",
            lab.server
        ));
    }
    if lab.family == Family::Ipv6 && spec.run.as_ref().is_some_and(|r| r.command.is_some()) {
        problems.push("lab.family = \"ipv6\" works with run.client = \"connect\"".into());
    }
    match (&lab.reject_with, lab.server) {
        (None, Server::Reject) => problems.push(
            "lab.server = \"reject\" needs lab.reject_with (tcp-reset, icmp-port-unreachable, icmp-host-unreachable, icmp-net-unreachable, icmp-admin-prohibited, …)".into(),
        ),
        (Some(_), s) if s != Server::Reject => {
            problems.push("lab.reject_with applies to lab.server = \"reject\"".into())
        }
        (Some(w), _)
            if w != "tcp-reset" && netclaim_harness::timers::reject_code(w).is_none() =>
        {
            problems.push(format!(
                "lab.reject_with {w:?} is not one of tcp-reset, icmp-net-unreachable, icmp-host-unreachable, icmp-proto-unreachable, icmp-port-unreachable, icmp-net-prohibited, icmp-host-prohibited, icmp-admin-prohibited"
            ))
        }
        _ => {}
    }
    if let Some(run) = &spec.run {
        if !run.socket.is_empty() && run.client.is_none() {
            problems.push("run.socket applies to the in-repo clients (run.client)".into());
        }
    }
    let needs = |key: &str, ok: bool, what: &str, problems: &mut Vec<String>| {
        if !ok {
            problems.push(format!("{key} is observed on {what}"));
        }
    };
    let e = &spec.expect;
    if e.retransmissions.is_some() {
        needs(
            "expect.retransmissions",
            client == Some(Client::Send),
            "run.client = \"send\"",
            problems,
        );
    }
    if e.probes.is_some() {
        needs(
            "expect.probes",
            client == Some(Client::Idle),
            "run.client = \"idle\"",
            problems,
        );
    }
    if e.synacks.is_some() {
        needs(
            "expect.synacks",
            client == Some(Client::SynOnly),
            "run.client = \"syn-only\"",
            problems,
        );
    }
    if e.rst.is_some() || e.fin.is_some() {
        needs(
            "expect.rst and expect.fin",
            client == Some(Client::Close),
            "run.client = \"close\"",
            problems,
        );
    }
}

fn validate_run(spec: &ClaimSpec, run: &RunSpec, problems: &mut Vec<String>) {
    if run.timeout.is_some_and(|t| t.0.is_zero()) {
        problems.push(
            "run.timeout is 0: the harness would kill the action before it starts; give it longer than the behaviour the claim is about".into(),
        );
    }
    match (&run.command, run.client) {
        (Some(_), Some(_)) => problems.push("run.command and run.client exclude each other".into()),
        (None, None) => problems.push("[claim.run] needs run.command or run.client".into()),
        (Some(cmd), None) => {
            if cmd.is_empty() || cmd[0].trim().is_empty() {
                problems.push("run.command is empty: give the program first".into());
            }
            for arg in cmd {
                if arg.contains('\0') {
                    problems.push(format!(
                        "run.command argument {arg:?} contains a NUL byte, which no program can be given"
                    ));
                }
            }
            // Placeholders are replaced in the arguments and in the environment's values.
            for text in cmd.iter().chain(run.env.values()) {
                for p in placeholders_in(text) {
                    if !PLACEHOLDERS.contains(&p.as_str()) {
                        problems.push(format!(
                            "unknown placeholder {p} in {text:?}: use {}",
                            PLACEHOLDERS.join(", ")
                        ));
                    }
                }
            }
            if spec.lab.server == Server::NeverAcceptUnix
                && cmd
                    .iter()
                    .chain(run.env.values())
                    .any(|a| a.contains("{ip}") || a.contains("{port}"))
            {
                problems.push("{ip} and {port} do not apply to a unix server: use {target}".into());
            }
            for (key, value) in &run.env {
                if key.is_empty() || key.contains(['=', '\0']) {
                    problems.push(format!(
                        "run.env: {key:?} is not a variable name (not empty, no '=' and no NUL)"
                    ));
                }
                if value.contains('\0') {
                    problems.push(format!(
                        "run.env.{key:?} = {value:?} contains a NUL byte, which no environment can hold"
                    ));
                }
            }
        }
        (None, Some(client)) => {
            if !run.env.is_empty() || run.stdin.is_some() {
                problems.push("run.env and run.stdin apply to run.command, not run.client".into());
            }
            if !spec.lab.hosts.is_empty() {
                problems.push("lab.hosts applies to run.command, not run.client".into());
            }
            let fits = match client {
                Client::Connect => !matches!(
                    spec.lab.server,
                    Server::NeverAcceptUnix | Server::None | Server::DiesAfterHandshake
                ),
                Client::Fill => spec.lab.server.answers_nothing(),
                // Ports run out on TCP only.
                Client::Exhaust => {
                    matches!(spec.lab.server, Server::Silent | Server::NeverAccept)
                }
                Client::Send | Client::Idle => spec.lab.server == Server::DiesAfterHandshake,
                Client::Close => spec.lab.server == Server::Silent,
                Client::SynOnly => {
                    matches!(spec.lab.server, Server::NeverAccept | Server::Silent)
                }
            };
            if !fits {
                problems.push(format!(
                    "run.client = {client:?} does not fit lab.server = {:?}",
                    spec.lab.server
                ));
            }
        }
    }
    for (name, option, value, max) in socket_ranges(&run.socket) {
        if let Some(v) = value {
            if !(1..=max).contains(&v) {
                problems.push(format!(
                    "run.socket.{name} = {v}: the kernel accepts {option} from 1 to {max} (EINVAL otherwise)"
                ));
            }
        }
    }
    if run.command.is_some() && spec.expect.connections.is_some() {
        problems.push(
            "expect.connections is observed on a fill or exhaust client, not on a command".into(),
        );
    }
    if run.command.is_some() && !run.trace_connect && spec.expect.errno.is_some() {
        problems.push(
            "expect.errno on a command needs run.trace_connect = true (strace observes the errno); or use expect.exit and expect.output".into(),
        );
    }
    if run.trace_connect && run.command.is_none() {
        problems.push("run.trace_connect applies to run.command".into());
    }
    if spec.expect.connect_calls.is_some() && !run.trace_connect {
        problems.push("expect.connect_calls needs run.trace_connect = true".into());
    }
    if run.client.is_some()
        && (spec.expect.exit.is_some()
            || spec.expect.stdout.is_some()
            || spec.expect.stderr.is_some()
            || spec.expect.output.is_some()
            || spec.expect.output_line.is_some()
            || !spec.expect.output_count.is_empty()
            || spec.expect.killed.is_some())
    {
        problems.push(
            "expect.exit, the output keys and expect.killed are observed on run.command, not on a client".into(),
        );
    }
}

/// The `{...}` tokens of `arg`.
fn placeholders_in(arg: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        found.push(rest[start..=start + len].to_owned());
        rest = &rest[start + len + 1..];
    }
    found
}

/// `(major, minor)` of `"5.4"` or a kernel release `"6.18.44-foo"`.
pub fn parse_release(text: &str) -> Option<(u32, u32)> {
    let mut it = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
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

    const EXAMPLE: &str = r#"
[[claim]]
id = "mine.curl-retries-3"
source = "runbooks/kernel-upgrade.md"
statement = "With tcp_syn_retries=3, curl against a host that drops SYNs gives up after 15 s with exit 28."

[claim.lab]
sysctls = { "net.ipv4.tcp_syn_retries" = "3" }
server = "drop-syn"

[claim.run]
command = ["curl", "-sS", "http://{target}/"]
timeout = "60s"

[claim.expect]
exit = 28
duration = "15s"
stderr = "Failed to connect"
syns = 4
"#;

    fn origin() -> Origin {
        Origin::File("mine.toml".into())
    }

    #[test]
    fn the_issue_example_parses() {
        let claims = parse(EXAMPLE, &origin()).expect("valid");
        let c = &claims[0].spec;
        assert_eq!(claims[0].line, 2);
        assert_eq!(c.lab.server, Server::DropSyn);
        assert_eq!(c.lab.sysctls["net.ipv4.tcp_syn_retries"].text(), "3");
        assert_eq!(c.expect.duration, Some(Span(Duration::from_secs(15))));
        assert_eq!(c.expect.syns, Some(4));
        assert_eq!(
            c.run.as_ref().unwrap().timeout,
            Some(Span(Duration::from_secs(60)))
        );
    }

    fn one_error(text: &str) -> SpecError {
        let errors = parse(text, &origin()).expect_err("invalid");
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn a_syntax_error_has_its_line_and_column() {
        let e = one_error("[[claim]]\nid = \"a.b\"\nsource = \"s\nstatement = \"x\"\n");
        assert_eq!((e.line, e.file.as_str()), (3, "mine.toml"), "{e}");
        assert!(e.to_string().starts_with("mine.toml:3:"), "{e}");
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let text = EXAMPLE.replace("exit = 28", "exit = 28\nexitcode = 7");
        let e = one_error(&text);
        assert!(e.message.contains("unknown key `exitcode`"), "{e}");
        assert!(
            e.message.contains("valid keys here:") && e.message.contains("`duration`"),
            "{e}"
        );
        // toml places it at the table the key is in.
        assert_eq!(e.line, 17, "{e}");
    }

    #[test]
    fn missing_required_keys_are_named() {
        let e = one_error("[[claim]]\nid = \"a.b\"\nsource = \"s\"\n");
        assert!(
            e.message.contains("missing required key `statement`"),
            "{e}"
        );
    }

    #[test]
    fn the_example_lists_every_server_kind() {
        // The kinds as serde names them in its error, against the example's comment.
        let e = one_error(
            "[[claim]]\nid = \"a.b\"\nsource = \"s\"\nstatement = \"s\"\nlab = { server = \"zzz\" }\n",
        );
        let (_, kinds) = e.message.split_once("expected one of ").expect("a list");
        let kinds: std::collections::BTreeSet<&str> = kinds
            .split(", ")
            .map(|k| k.trim_matches(['`', ' ', '.']))
            .collect();
        let example = include_str!("../../../examples/claims/curl-retries-3.toml");
        let (_, listed) = example
            .split_once("what is at {target}:")
            .expect("the comment");
        let listed: std::collections::BTreeSet<&str> = listed
            .lines()
            .take(2)
            .flat_map(|l| l.trim_start_matches([' ', '#']).split('|'))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        assert_eq!(listed, kinds);
    }

    #[test]
    fn semantic_problems_are_found_and_placed() {
        let text = EXAMPLE
            .replace("\"net.ipv4.tcp_syn_retries\"", "\"kernel.panic\"")
            .replace("{target}/", "{host}/")
            .replace("\"drop-syn\"", "\"drop-syn\"\nbacklog = 4");
        let errors = parse(&text, &origin()).expect_err("invalid");
        let all = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(all.contains("only net.* sysctls"), "{all}");
        assert!(all.contains("unknown placeholder {host}"), "{all}");
        assert!(all.contains("lab.backlog only applies"), "{all}");
        assert!(errors.iter().all(|e| e.line == 2), "{all}");
    }

    #[test]
    fn the_docs_keys_are_checked() {
        let claim = |body: &str| {
            format!("[[claim]]\nid = \"a.b\"\nsource = \"s\"\nstatement = \"s\"\n{body}")
        };
        let all = |text: &str| {
            parse(text, &origin())
                .expect_err("invalid")
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let e = all(&claim(
            "lab = { server = \"reject\" }\nrun = { client = \"connect\" }\n",
        ));
        assert!(e.contains("needs lab.reject_with"), "{e}");
        let e = all(&claim(
            "lab = { server = \"reject\", reject_with = \"icmp-bogus\" }\nrun = { client = \"connect\" }\n",
        ));
        assert!(e.contains("is not one of tcp-reset"), "{e}");
        let e = all(&claim(
            "lab = { server = \"blackhole\", family = \"ipv6\" }\nrun = { client = \"connect\" }\n",
        ));
        assert!(e.contains("works with drop-syn, refuse and none"), "{e}");
        let e = all(&claim(
            "lab = { server = \"dies-after-handshake\" }\nrun = { client = \"send\" }\nexpect = { probes = 3 }\n",
        ));
        assert!(
            e.contains("expect.probes is observed on run.client = \"idle\""),
            "{e}"
        );
        let e = all(&claim(
            "lab = { server = \"drop-syn\" }\nrun = { command = [\"nc\", \"{ip}\"], socket = { syncnt = 2 } }\n",
        ));
        assert!(
            e.contains("run.socket applies to the in-repo clients"),
            "{e}"
        );
        let e = all(&claim(
            "lab = { server = \"silent\" }\nrun = { client = \"send\" }\n",
        ));
        assert!(e.contains("does not fit lab.server"), "{e}");
        let ok = claim("tier = \"long\"\nlab = { server = \"dies-after-handshake\" }\nrun = { client = \"send\", socket = { user_timeout = \"3s\" } }\nexpect = { duration_at_most = \"3s\" }\n");
        let c = parse(&ok, &origin()).expect("valid");
        assert_eq!(c[0].spec.tier, Tier::Long);
    }

    #[test]
    fn unknown_server_kinds_name_the_valid_ones() {
        let e = one_error(&EXAMPLE.replace("\"drop-syn\"", "\"dropsyn\""));
        assert!(
            e.message.contains("drop-syn") && e.message.contains("never-accept"),
            "{e}"
        );
    }

    #[test]
    fn spans_and_tolerances_read_as_written() {
        assert_eq!(Span::parse("2.5s").unwrap().0, Duration::from_millis(2500));
        assert_eq!(
            Span::parse("1500ms").unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!(Span::parse("2m").unwrap().0, Duration::from_secs(120));
        assert!(Span::parse("15").unwrap_err().contains("unknown unit"));
        let t = ToleranceSpec::Max(vec!["500ms".into(), "10%".into()]);
        assert_eq!(
            t.around(Duration::from_secs(15)).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            t.around(Duration::from_secs(2)).unwrap(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn errnos_by_name_and_releases() {
        assert_eq!(
            errno_by_name("ETIMEDOUT"),
            Some(nix::errno::Errno::ETIMEDOUT)
        );
        assert_eq!(errno_by_name("ENOTANERRNO"), None);
        assert_eq!(parse_release("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(parse_release("5.4"), Some((5, 4)));
        assert_eq!(parse_release("0"), Some((0, 0)));
    }

    /// A valid claim that the cases below change one key of.
    const BASE: &str = r#"
[[claim]]
id = "t.case"
source = "s"
statement = "s"

[claim.lab]
server = "drop-syn"

[claim.run]
client = "connect"

[claim.expect]
errno = "ETIMEDOUT"
"#;

    /// BASE with a command instead of the client (and its exit code as the check).
    fn command_base() -> String {
        BASE.replace(
            "client = \"connect\"",
            "command = [\"sh\", \"-c\", \"true\"]",
        )
        .replace("errno = \"ETIMEDOUT\"", "exit = 0")
    }

    /// Every problem `parse` finds in `text`, one per line ("" when it is valid).
    fn problems(text: &str) -> String {
        match parse(text, &origin()) {
            Ok(_) => String::new(),
            Err(errors) => errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// `text` is refused with a message containing each of `needles`.
    #[track_caller]
    fn refused(text: &str, needles: &[&str]) {
        let all = problems(text);
        assert!(!all.is_empty(), "accepted:\n{text}");
        for n in needles {
            assert!(all.contains(n), "no {n:?} in:\n{all}");
        }
    }

    #[test]
    fn the_bases_are_valid() {
        assert_eq!(problems(BASE), "");
        assert_eq!(problems(&command_base()), "");
    }

    #[test]
    fn tolerances_out_of_range_are_refused_not_a_panic() {
        for t in ["-50%", "-1%", "NaN%", "inf%", "1e30%", "101%"] {
            let text = BASE.replace(
                "errno = \"ETIMEDOUT\"",
                &format!("duration = \"3s\"\ntolerance = {t:?}"),
            );
            refused(
                &text,
                &[&format!(
                    "expect.tolerance: tolerance {t:?}: a percentage is from 0% to 100%"
                )],
            );
        }
        let empty = BASE.replace("errno = \"ETIMEDOUT\"", "duration = \"3s\"\ntolerance = []");
        refused(&empty, &["an empty list gives no tolerance"]);
        let ok = BASE.replace(
            "errno = \"ETIMEDOUT\"",
            "duration = \"3s\"\ntolerance = [\"0%\", \"100%\", \"1s\"]",
        );
        assert_eq!(problems(&ok), "");
        assert_eq!(
            ToleranceSpec::One("100%".into()).around(Span::MAX),
            Ok(Span::MAX)
        );
    }

    #[test]
    fn a_tolerance_of_the_wrong_shape_says_which_shapes_are_right() {
        let e =
            one_error(&BASE.replace("errno = \"ETIMEDOUT\"", "duration = \"3s\"\ntolerance = 5"));
        assert!(!e.message.contains("untagged"), "{e}");
        assert!(
            e.message.contains(r#"a tolerance is a duration ("500ms"), a percentage of expect.duration ("10%"), or both (["500ms", "10%"]"#),
            "{e}"
        );
        let e = one_error(&BASE.replace("errno = \"ETIMEDOUT\"", "errno = 1.5"));
        assert!(
            !e.message.contains("untagged") && e.message.contains("an errno is a name"),
            "{e}"
        );
        let e = one_error(&BASE.replace(
            "server = \"drop-syn\"",
            "server = \"drop-syn\"\nsysctls = { \"net.core.somaxconn\" = 1.5 }",
        ));
        assert!(e.message.contains("a sysctl value is a number"), "{e}");
        let e = one_error(&command_base().replace("exit = 0", "stdout = 3"));
        assert!(e.message.contains("a text to look for is a string"), "{e}");
    }

    #[test]
    fn spans_are_bounded_to_a_day() {
        for t in ["300000000000000000m", "25h", "86401s", "1441m"] {
            let e = Span::parse(t).unwrap_err();
            assert!(
                e.contains("longer than a day") || e.contains("unknown unit"),
                "{t}: {e}"
            );
        }
        let huge = format!("1{}s", "0".repeat(400));
        assert!(Span::parse(&huge)
            .unwrap_err()
            .contains("longer than a day"));
        assert_eq!(Span::parse("1440m").unwrap().0, Span::MAX);
        assert!(Span::parse("-1s")
            .unwrap_err()
            .contains("is not a duration"));
        assert!(Span::parse("NaNs")
            .unwrap_err()
            .contains("is not a duration"));
        // In every key that takes a duration.
        for (from, to) in [
            (
                "errno = \"ETIMEDOUT\"",
                "duration = \"300000000000000000m\"",
            ),
            (
                "client = \"connect\"",
                "client = \"connect\"\ntimeout = \"300000000000000000m\"",
            ),
            (
                "statement = \"s\"",
                "statement = \"s\"\nestimate = \"300000000000000000m\"",
            ),
        ] {
            refused(
                &BASE.replace(from, to),
                &["\"300000000000000000m\" is longer than a day"],
            );
        }
    }

    #[test]
    fn a_claim_with_nothing_to_check_is_refused() {
        for expect in [
            "",
            "ignore_case = true",
            "per_try = \"1s\"",
            "output_count = []",
            "ignore_case = true\nper_try = \"1s\"\noutput_count = []",
        ] {
            let text = command_base().replace("exit = 0", expect);
            refused(&text, &["nothing to check: [claim.expect] gives no figure"]);
        }
        let no_table = command_base().replace("[claim.expect]\nexit = 0\n", "");
        refused(&no_table, &["nothing to check"]);
        // Empty texts check nothing either.
        refused(
            &command_base().replace("exit = 0", "stdout = []"),
            &["expect.stdout = [] checks nothing"],
        );
        refused(
            &command_base().replace("exit = 0", "stderr = \"\""),
            &["expect.stderr: an empty text is in every output"],
        );
        refused(
            &command_base().replace("exit = 0", "output_count = [{ text = \"\", count = 1 }]"),
            &["an empty text cannot be counted"],
        );
        // Without a run, only a fresh namespace's defaults are observed.
        let no_run = "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\n\
                      lab = { sysctls = { \"net.core.somaxconn\" = 1 } }\n\
                      expect = { exit = 3, sysctls = { \"net.core.somaxconn\" = 4096 } }\n";
        refused(
            no_run,
            &["expect.exit is observed on a run: add [claim.run]"],
        );
        let lab_only = "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\n\
                        lab = { sysctls = { \"net.core.somaxconn\" = 1 } }\n";
        refused(
            lab_only,
            &["nothing to check", "a lab without a run observes nothing"],
        );
    }

    #[test]
    fn every_sweep_value_has_something_to_check() {
        let sweep = |expect: &str| {
            format!(
                "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\n\
                 lab = {{ server = \"drop-syn\" }}\nrun = {{ client = \"connect\" }}\n\
                 sweep = {{ sysctl = \"net.ipv4.tcp_syn_retries\", values = [1, 2] }}\n\
                 [claim.expect]\n{expect}"
            )
        };
        assert_eq!(problems(&sweep("errno = \"ETIMEDOUT\"\n")), "");
        assert_eq!(
            problems(&sweep(
                "each.\"1\" = { duration = \"3s\" }\neach.\"2\" = { duration = \"7s\" }\n"
            )),
            ""
        );
        refused(
            &sweep("each.\"1\" = { duration = \"3s\" }\n"),
            &[
                "nothing to check",
                "sweep value(s) 2 have no expect.each entry",
            ],
        );
        refused(
            &sweep("errno = \"ETIMEDOUT\"\neach.\"1\" = { ignore_case = true }\n"),
            &["expect.each.\"1\" checks nothing"],
        );
        refused(
            &sweep("errno = \"ETIMEDOUT\"\neach.\"1\" = { exit = 300, errno = 0, duration = \"3s\", tolerance = \"-5%\" }\n"),
            &[
                "expect.each.\"1\".exit = 300",
                "expect.each.\"1\".errno = 0 is not an errno",
                "expect.each.\"1\".tolerance: tolerance \"-5%\"",
            ],
        );
        refused(
            &sweep("errno = \"ETIMEDOUT\"\neach.\"1\" = { duration = \"3s\", each = { \"1\" = { duration = \"1s\" } } }\n"),
            &["expect.each.\"1\".each: a sweep value has no values of its own"],
        );
        refused(
            &sweep("errno = \"ETIMEDOUT\"\neach.\"1\" = { duration = \"3s\", sysctls = { \"net.core.somaxconn\" = 1 } }\n"),
            &["expect.each.\"1\".sysctls: a fresh namespace's defaults are read once per claim"],
        );
    }

    #[test]
    fn nul_bytes_are_refused_and_shown_escaped() {
        let name = BASE.replace(
            "server = \"drop-syn\"",
            "server = \"drop-syn\"\nsysctls = { \"net.ipv4.tcp_syn_retries\\u0000x\" = 1 }",
        );
        refused(
            &name,
            &[r#"sysctl name "net.ipv4.tcp_syn_retries\0x" contains a NUL byte"#],
        );
        let value = BASE.replace(
            "server = \"drop-syn\"",
            "server = \"drop-syn\"\nsysctls = { \"net.ipv4.tcp_syn_retries\" = \"1\\u0000\\u001b[2J\" }",
        );
        refused(
            &value,
            &[r#"sysctl value "net.ipv4.tcp_syn_retries" = "1\0\u{1b}[2J" contains a NUL"#],
        );
        let env = command_base().replace("command = [", "env = { A = \"x\\u0000y\" }\ncommand = [");
        refused(&env, &[r#"run.env."A" = "x\0y" contains a NUL byte"#]);
        let arg = command_base().replace("\"true\"", "\"tr\\u0000ue\"");
        refused(
            &arg,
            &[r#"run.command argument "tr\0ue" contains a NUL byte"#],
        );
    }

    #[test]
    fn environment_keys_are_variable_names_and_values_take_placeholders() {
        for key in ["\"A=B\"", "\"\"", "\"A\\u0000\""] {
            let text = command_base().replace(
                "command = [",
                &format!("env = {{ {key} = \"1\" }}\ncommand = ["),
            );
            refused(
                &text,
                &["is not a variable name (not empty, no '=' and no NUL)"],
            );
        }
        let ok = command_base().replace(
            "command = [",
            "env = { URL = \"http://{target}/\", HOST = \"{ip}\", PORT = \"{port}\", HERE = \"{dir}\" }\ncommand = [",
        );
        assert_eq!(problems(&ok), "");
        let unknown =
            command_base().replace("command = [", "env = { URL = \"{host}\" }\ncommand = [");
        refused(&unknown, &["unknown placeholder {host} in \"{host}\""]);
    }

    #[test]
    fn socket_options_are_in_the_kernels_ranges() {
        for (opt, value, max) in [
            ("keepcnt", 0, 127),
            ("keepcnt", 128, 127),
            ("syncnt", 300, 127),
            ("syncnt", 0, 127),
            ("keepidle", 0, 32767),
            ("keepidle", 32768, 32767),
            ("keepintvl", 0, 32767),
            ("keepintvl", 40000, 32767),
        ] {
            let text = BASE.replace(
                "client = \"connect\"",
                &format!("client = \"connect\"\nsocket = {{ {opt} = {value} }}"),
            );
            refused(
                &text,
                &[
                    &format!("run.socket.{opt} = {value}: the kernel accepts"),
                    &format!("from 1 to {max}"),
                ],
            );
        }
        let ok = BASE.replace(
            "client = \"connect\"",
            "client = \"connect\"\nsocket = { syncnt = 127, keepidle = 32767, keepintvl = 1, keepcnt = 127 }",
        );
        assert_eq!(problems(&ok), "");
    }

    #[test]
    fn ids_fit_a_file_name_and_have_no_empty_parts() {
        for id in ["..", "probe..x", "probe.x.", ".probe.x", "a."] {
            refused(&BASE.replace("t.case", id), &["has an empty part"]);
        }
        let long = format!("t.{}", "x".repeat(127));
        refused(
            &BASE.replace("t.case", &long),
            &["is 129 characters long: an id has at most 128"],
        );
        let fits = format!("t.{}", "x".repeat(126));
        assert_eq!(problems(&BASE.replace("t.case", &fits)), "");
        // The message shows a long id cut short.
        assert!(problems(&BASE.replace("t.case", &long)).contains("xx\"…"));
    }

    #[test]
    fn exit_codes_and_errnos_are_ones_a_run_can_observe() {
        for code in ["-1", "256"] {
            refused(
                &command_base().replace("exit = 0", &format!("exit = {code}")),
                &[&format!("expect.exit = {code}: an exit code is 0 to 255")],
            );
        }
        assert_eq!(
            problems(&command_base().replace("exit = 0", "exit = 255")),
            ""
        );
        for n in ["0", "-5", "4096", "4000"] {
            refused(
                &BASE.replace("errno = \"ETIMEDOUT\"", &format!("errno = {n}")),
                &[&format!("expect.errno = {n} is not an errno")],
            );
        }
        assert_eq!(
            problems(&BASE.replace("errno = \"ETIMEDOUT\"", "errno = 110")),
            ""
        );
        refused(
            &BASE.replace("\"ETIMEDOUT\"", "\"ETIMEOUT\""),
            &["is not an errno name"],
        );
    }

    #[test]
    fn duration_bounds_must_leave_room() {
        refused(
            &BASE.replace(
                "errno = \"ETIMEDOUT\"",
                "duration_at_least = \"10s\"\nduration_at_most = \"5s\"",
            ),
            &["expect.duration_at_least (10.000 s) is above expect.duration_at_most (5.000 s)"],
        );
        assert_eq!(
            problems(&BASE.replace(
                "errno = \"ETIMEDOUT\"",
                "duration_at_least = \"5s\"\nduration_at_most = \"5s\""
            )),
            ""
        );
    }

    #[test]
    fn what_the_engine_cannot_build_is_refused() {
        // Ports run out only on TCP: exhaust against a unix listener errs at run time.
        refused(
            &BASE
                .replace("\"drop-syn\"", "\"never-accept-unix\"")
                .replace("\"connect\"", "\"exhaust\"")
                .replace("errno = \"ETIMEDOUT\"", "connections = 3"),
            &["run.client = Exhaust does not fit lab.server = NeverAcceptUnix"],
        );
        refused(
            &BASE.replace("server = \"drop-syn\"", "server = \"drop-syn\"\nport = 0"),
            &["lab.port = 0 is not a port"],
        );
        refused(
            &command_base().replace(
                "server = \"drop-syn\"",
                "server = \"drop-syn\"\nhosts = { \"db\\n1.2.3.4 evil\" = \"target\" }",
            ),
            &["is not a host name"],
        );
        // A file without a claim.
        refused("claim = []\n", &["no claim in this file"]);
    }

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
}
