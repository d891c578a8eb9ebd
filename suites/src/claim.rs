//! What a claim is, and what running one produces.
//!
//! A claim compares two things with one observation:
//!
//! * the **statement** (what the source document says: 127 s, 7 SYNs, exit 7) decides the
//!   [`Verdict`]: `holds` when every statement check passes, `refuted` otherwise;
//! * the **prediction** (what the kernel timing model and the tool's options say must
//!   happen on *this* kernel) is checked separately. `cargo test` fails when a prediction
//!   check fails, so a kernel or tool upgrade that changes behaviour is caught even when
//!   the verdict was already `refuted`.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use netclaim_harness::resource::{self, Exhausted};
use serde::{Deserialize, Serialize};

/// The verdict on a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The measurement agrees with the statement.
    Holds,
    /// The measurement contradicts the statement (a finding, not a failure).
    Refuted,
    /// Every semantic check agrees with the statement, but a timing check fell outside its
    /// window by less than the measured error of this machine (emulation, load): the run
    /// cannot tell whether the statement holds. Rerun on a faster or idler machine.
    Inconclusive,
    /// The kernel rejects the setting or lacks the knob the claim is about.
    NotApplicable,
    /// A tool or privilege is missing.
    Skipped,
    /// The harness itself failed.
    Error,
}

impl Verdict {
    /// The kebab-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Holds => "holds",
            Self::Refuted => "refuted",
            Self::Inconclusive => "inconclusive",
            Self::NotApplicable => "not-applicable",
            Self::Skipped => "skipped",
            Self::Error => "error",
        }
    }
}

impl Verdict {
    /// Whether the checks decided it (holds, refuted, inconclusive), rather than a reason
    /// that kept the claim from being measured (skipped, not-applicable, error).
    pub fn decided_by_checks(self) -> bool {
        matches!(self, Self::Holds | Self::Refuted | Self::Inconclusive)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Numbers that describe one connection attempt or tool run. Every field is optional:
/// a claim fills what it is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Wall duration in milliseconds.
    pub duration_ms: Option<u64>,
    /// A tool's exit code.
    pub exit_code: Option<i32>,
    /// The errno of the failing system call.
    pub errno: Option<i32>,
    /// SYNs (without ACK) seen on the wire.
    pub syn_count: Option<usize>,
    /// Send time of each SYN relative to the first, in milliseconds.
    pub syn_times_ms: Option<Vec<u64>>,
    /// A message or other value the claim is about (a sysctl value, an error line).
    pub value: Option<String>,
}

impl Figures {
    /// Sets the duration.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration_ms = Some(d.as_millis() as u64);
        self
    }

    /// Sets SYN times (and the count) from durations.
    pub fn syn_times(mut self, times: &[Duration]) -> Self {
        self.syn_count = Some(times.len());
        self.syn_times_ms = Some(times.iter().map(|t| t.as_millis() as u64).collect());
        self
    }

    /// A one-line summary for tables.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ms) = self.duration_ms {
            parts.push(format!("{:.2} s", ms as f64 / 1000.0));
        }
        if let Some(n) = self.syn_count {
            parts.push(format!("{n} SYN"));
        }
        if let Some(e) = self.errno {
            parts.push(format!("errno {e} ({})", errno_name(e)));
        }
        if let Some(c) = self.exit_code {
            parts.push(format!("exit {c}"));
        }
        if let Some(v) = &self.value {
            parts.push(v.clone());
        }
        parts.join(", ")
    }
}

/// The symbolic name of an errno value (`ETIMEDOUT`).
pub fn errno_name(errno: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}

/// One comparison between an expectation and a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What is compared ("give-up time", "SYN count").
    pub what: String,
    /// The expectation, with its tolerance.
    pub expected: String,
    /// The measurement.
    pub observed: String,
    /// Whether the measurement meets the expectation.
    pub ok: bool,
    /// For a timing check: the window, the measured value and the measured error (absent
    /// for semantic checks, and in reports from before timing checks carried it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// What a timing check compared, in milliseconds, and how far its measurement may be off
/// because the machine ran slow while it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// The window applied: `[min, max]`.
    pub window_ms: [f64; 2],
    /// The measured value (for a list of values, the one farthest outside its window).
    pub observed_ms: f64,
    /// The measured error on the late side: how much later than asked this machine fired
    /// timers, and how much longer than the window allows its processes took, during this
    /// measurement.
    pub error_ms: f64,
    /// The measured error on the early side: how much of the timed span the measurement
    /// may have missed (a tool arms its timer somewhere between its spawn and its first
    /// packet, which is where the measurement starts: its measured start-up).
    #[serde(default)]
    pub early_error_ms: f64,
    /// Where the errors come from, in words.
    pub error_from: String,
}

impl Timing {
    /// How far the measurement lies outside the window, in ms (0 inside).
    pub fn outside_ms(&self) -> f64 {
        let [min, max] = self.window_ms;
        (min - self.observed_ms)
            .max(self.observed_ms - max)
            .max(0.0)
    }

    /// The measured error on the side where the measurement lies outside the window.
    pub fn error_on_its_side_ms(&self) -> f64 {
        if self.observed_ms < self.window_ms[0] {
            self.early_error_ms
        } else {
            self.error_ms
        }
    }
}

/// Where a check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    /// The measurement meets the expectation.
    Pass,
    /// A timing check outside its window by no more than its measured error.
    Inconclusive,
    /// The measurement contradicts the expectation.
    Fail,
}

impl Check {
    /// Pass, fail, or inconclusive (a timing miss within the measured error).
    pub fn state(&self) -> CheckState {
        match &self.timing {
            _ if self.ok => CheckState::Pass,
            Some(t)
                if t.error_on_its_side_ms() > 0.0 && t.outside_ms() <= t.error_on_its_side_ms() =>
            {
                CheckState::Inconclusive
            }
            _ => CheckState::Fail,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.state() {
            CheckState::Pass => "ok ",
            CheckState::Inconclusive => "INCONCLUSIVE",
            CheckState::Fail => "MISMATCH",
        };
        write!(
            f,
            "[{mark}] {}: expected {}, observed {}",
            self.what, self.expected, self.observed
        )?;
        if let Some(t) = self
            .timing
            .as_ref()
            .filter(|t| t.error_ms > 0.0 || t.early_error_ms > 0.0)
        {
            write!(
                f,
                " (measured error -{:.0}/+{:.0} ms: {})",
                t.early_error_ms, t.error_ms, t.error_from
            )?;
        }
        Ok(())
    }
}

/// Everything one run of a claim produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outcome {
    /// Set for skipped / not-applicable / error; `None` means "decided by the checks".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced: Option<(Verdict, String)>,
    /// What the statement says, in figures.
    pub claimed: Figures,
    /// What the model and the tool options predict on this kernel.
    pub expected: Figures,
    /// What was measured.
    pub observed: Figures,
    /// Statement vs observation: decides holds / refuted.
    pub claim_checks: Vec<Check>,
    /// Prediction vs observation: `cargo test` asserts all of them.
    pub model_checks: Vec<Check>,
    /// Evidence: command lines and output, packet timelines, sysctl values. (Reports from
    /// before the report was built from this type hold it as one text: read as one item.)
    #[serde(deserialize_with = "one_or_many")]
    pub evidence: Vec<String>,
    /// Captured SYN times per attempt (for timeline charts), in ms.
    pub timelines: Vec<Timeline>,
    /// What was measured, as recorded for judging again (claim files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<serde_json::Value>,
}

/// A list of texts, or one text (an empty text is no item).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Texts {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Texts::deserialize(d)? {
        Texts::One(t) if t.is_empty() => Vec::new(),
        Texts::One(t) => vec![t],
        Texts::Many(v) => v,
    })
}

/// A labelled SYN timeline with the model's prediction beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// What was run.
    pub label: String,
    /// Measured SYN send times, ms from the first.
    pub observed_ms: Vec<u64>,
    /// The same in µs, for timer-fidelity figures finer than the ms above (absent in
    /// reports from before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed_us: Vec<u64>,
    /// Predicted SYN send times, ms from the first.
    pub predicted_ms: Vec<u64>,
    /// Predicted give-up time, ms.
    pub predicted_give_up_ms: Option<u64>,
    /// Measured give-up time, ms from the first SYN.
    pub observed_give_up_ms: Option<u64>,
}

impl Outcome {
    /// An outcome whose verdict is fixed with a reason (skipped, not-applicable, error).
    pub fn forced(verdict: Verdict, reason: impl Into<String>) -> Self {
        Self {
            forced: Some((verdict, reason.into())),
            ..Self::default()
        }
    }

    /// The verdict: forced, else refuted when a statement check fails, inconclusive when
    /// none fails but a timing check missed by no more than its measured error, holds when
    /// every statement check passed.
    pub fn verdict(&self) -> Verdict {
        let any = |state| self.claim_checks.iter().any(|c| c.state() == state);
        match &self.forced {
            Some((v, _)) => *v,
            None if self.claim_checks.is_empty() => Verdict::Error,
            None if any(CheckState::Fail) => Verdict::Refuted,
            None if any(CheckState::Inconclusive) => Verdict::Inconclusive,
            None => Verdict::Holds,
        }
    }

    /// The reason of a forced verdict, the failed statement checks of a refuted one, or
    /// the timing checks that make one inconclusive (with their measured error).
    pub fn reason(&self) -> String {
        let of = |state: CheckState| {
            self.claim_checks
                .iter()
                .filter(|c| c.state() == state)
                .map(|c| {
                    let mut text = format!(
                        "{}: claimed {}, observed {}",
                        c.what, c.expected, c.observed
                    );
                    if let (CheckState::Inconclusive, Some(t)) = (state, &c.timing) {
                        text += &format!(
                            ", {} by {:.0} ms, within the measured error of {:.0} ms ({})",
                            if t.observed_ms < t.window_ms[0] {
                                "early"
                            } else {
                                "late"
                            },
                            t.outside_ms(),
                            t.error_on_its_side_ms(),
                            t.error_from
                        );
                    }
                    text
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        match (&self.forced, self.verdict()) {
            (Some((_, r)), _) => r.clone(),
            (None, _) if self.claim_checks.is_empty() => "the claim recorded no check".into(),
            (None, Verdict::Inconclusive) => of(CheckState::Inconclusive),
            (None, _) => of(CheckState::Fail),
        }
    }

    /// Records a statement check.
    pub fn claim_check(
        &mut self,
        what: &str,
        expected: impl fmt::Display,
        observed: impl fmt::Display,
        ok: bool,
    ) {
        self.claim_checks.push(Check {
            what: what.into(),
            expected: expected.to_string(),
            observed: observed.to_string(),
            ok,
            timing: None,
        });
    }

    /// Records a prediction check.
    pub fn model_check(
        &mut self,
        what: &str,
        expected: impl fmt::Display,
        observed: impl fmt::Display,
        ok: bool,
    ) {
        self.model_checks.push(Check {
            what: what.into(),
            expected: expected.to_string(),
            observed: observed.to_string(),
            ok,
            timing: None,
        });
    }

    /// Appends a piece of evidence.
    pub fn evidence(&mut self, text: impl Into<String>) {
        self.evidence.push(text.into());
    }

    /// Whether no prediction check failed (what `cargo test` asserts): each passed, or
    /// missed its timing window by no more than the measured error.
    pub fn model_agrees(&self) -> bool {
        self.model_checks
            .iter()
            .all(|c| c.state() != CheckState::Fail)
    }

    /// Prediction checks that were inconclusive (a timing miss within the measured error).
    pub fn model_inconclusive(&self) -> usize {
        self.model_checks
            .iter()
            .filter(|c| c.state() == CheckState::Inconclusive)
            .count()
    }
}

/// What a claim needs from the machine before it can run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Programs that must be on PATH.
    pub tools: &'static [&'static str],
}

/// Shared facts for claims of one run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `CONFIG_HZ` used for timer-slack bounds.
    pub hz: u32,
    /// `uname -r`.
    pub kernel: String,
}

impl Ctx {
    /// Reads the facts of this machine.
    pub fn detect() -> Self {
        Self {
            hz: netclaim_harness::kernel::hz_for_slack(),
            kernel: netclaim_harness::kernel::release(),
        }
    }
}

/// How a claim runs: measured in a lab, then judged from the measurement alone.
#[derive(Clone, Copy)]
pub enum Procedure {
    /// Written in Rust: a measuring step and a judging step ([`Steps`]).
    Rust(&'static dyn TwoSteps),
    /// A claim file's claim, measured and judged by [`crate::measure`] and [`crate::judge`].
    Data(&'static DataClaim),
}

impl fmt::Debug for Procedure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rust(_) => f.write_str("Rust(..)"),
            Self::Data(d) => f.debug_tuple("Data").field(&d.spec.id).finish(),
        }
    }
}

/// What measuring produced: a measurement to judge, or a verdict that needs no
/// judging (the kernel rejects or lacks a setting the claim needs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measured<T> {
    /// What was observed.
    Observed(T),
    /// No observation to judge, with the verdict and why (not-applicable, skipped).
    Forced(Verdict, String),
}

/// A built-in claim's two steps. `measure` builds the lab, acts and records what it saw
/// (durations, errnos, exit codes, output, packets, the sysctls in force, tool versions)
/// in a serialisable `T`; `judge` is a pure function of that record and the run's
/// facts, so a recorded measurement is judged again without root (`netclaim judge`,
/// and the recordings the unit tests judge).
#[derive(Debug)]
pub struct Steps<T> {
    /// Builds the lab and measures.
    pub measure: fn(&Ctx) -> anyhow::Result<Measured<T>>,
    /// Turns a measurement into checks, figures and evidence. No I/O.
    pub judge: fn(&T, &Ctx) -> Outcome,
}

/// [`Steps`] with its measurement type erased to JSON, so claims of different types sit
/// in one catalog and a recorded measurement reaches the judge that reads it.
pub trait TwoSteps: Sync {
    /// Measures; the value is a serialised [`Measured`].
    fn measure(&self, ctx: &Ctx) -> anyhow::Result<serde_json::Value>;
    /// Judges a serialised [`Measured`].
    fn judge(&self, measured: &serde_json::Value, ctx: &Ctx) -> serde_json::Result<Outcome>;
    /// What in a serialised [`Measured`] contradicts the claim's own settings or itself,
    /// beyond what [`crate::recording::check_quantities`] finds in every record: nothing,
    /// unless the claim says ([`Checked`]).
    fn inconsistencies(
        &self,
        _measured: &serde_json::Value,
        _ctx: &Ctx,
    ) -> serde_json::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// [`Steps`] with a consistency check of its own record: the sysctls the claim sets are
/// the ones the record shows in force, its counts agree with each other.
#[derive(Debug)]
pub struct Checked<T> {
    /// The two steps.
    pub steps: Steps<T>,
    /// What in an observation contradicts the claim or itself (each problem in words).
    pub check: fn(&T, &Ctx) -> Vec<String>,
}

impl<T: Serialize + serde::de::DeserializeOwned + Sync> TwoSteps for Checked<T> {
    fn measure(&self, ctx: &Ctx) -> anyhow::Result<serde_json::Value> {
        self.steps.measure(ctx)
    }

    fn judge(&self, measured: &serde_json::Value, ctx: &Ctx) -> serde_json::Result<Outcome> {
        self.steps.judge(measured, ctx)
    }

    fn inconsistencies(
        &self,
        measured: &serde_json::Value,
        ctx: &Ctx,
    ) -> serde_json::Result<Vec<String>> {
        Ok(match Measured::<T>::deserialize(measured)? {
            Measured::Observed(m) => (self.check)(&m, ctx),
            Measured::Forced(..) => Vec::new(),
        })
    }
}

/// Why a measurement was not judged.
#[derive(Debug)]
pub enum JudgeError {
    /// It does not read as this claim's measurement (another format).
    Unreadable(serde_json::Error),
    /// It contradicts itself or the claim (each inconsistency named).
    Inconsistent(Vec<String>),
}

impl fmt::Display for JudgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "the measurement does not read: {e}"),
            Self::Inconsistent(why) => {
                write!(f, "the measurement contradicts itself: {}", why.join("; "))
            }
        }
    }
}

impl std::error::Error for JudgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreadable(e) => Some(e),
            Self::Inconsistent(_) => None,
        }
    }
}

impl From<serde_json::Error> for JudgeError {
    fn from(e: serde_json::Error) -> Self {
        Self::Unreadable(e)
    }
}

impl<T: Serialize + serde::de::DeserializeOwned + Sync> TwoSteps for Steps<T> {
    fn measure(&self, ctx: &Ctx) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::to_value((self.measure)(ctx)?)?)
    }

    fn judge(&self, measured: &serde_json::Value, ctx: &Ctx) -> serde_json::Result<Outcome> {
        Ok(match Measured::<T>::deserialize(measured)? {
            Measured::Observed(m) => {
                let mut o = (self.judge)(&m, ctx);
                if o.forced.is_none() {
                    if let Some(why) = cut_short(measured) {
                        o.forced = Some((Verdict::Error, why));
                    }
                }
                o
            }
            Measured::Forced(verdict, reason) => Outcome::forced(verdict, reason),
        })
    }
}

/// Why a measurement is no observation when the harness killed one of its commands at
/// the command's deadline (a recorded command output with `timed_out`): whatever the
/// checks make of what it shows (no exit code, no output yet), the tool did not end by
/// itself, so its verdict is `error`, never `refuted` or `holds`. No built-in claim is
/// about a tool being killed; their deadlines are their tools' own plus a margin
/// stretched by this machine's measured slowness.
pub fn cut_short(measured: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, found: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let (Some(serde_json::Value::String(cmd)), Some(serde_json::Value::Bool(true))) =
                    (map.get("command_line"), map.get("timed_out"))
                {
                    let after = map
                        .get("duration")
                        .and_then(|d| Duration::deserialize(d).ok())
                        .map(|d| format!(" after {:.3} s", d.as_secs_f64()))
                        .unwrap_or_default();
                    found.push(format!("`{cmd}`{after}"));
                }
                map.values().for_each(|v| walk(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(measured, &mut found);
    (!found.is_empty()).then(|| {
        format!(
            "the harness killed {} at its deadline, before it ended by itself: a run cut \
             short by the harness is not an observation (on a machine this slow, rerun \
             with fewer --jobs or less beside it)",
            found.join(" and ")
        )
    })
}

/// A claim read from a claim file, with where it came from.
#[derive(Debug, Clone)]
pub struct DataClaim {
    /// The claim.
    pub spec: crate::spec::ClaimSpec,
    /// The file (built-in or a user's).
    pub origin: crate::spec::Origin,
    /// The file's directory, for `{dir}` in commands (user files only).
    pub dir: Option<std::path::PathBuf>,
}

/// A short claim: one that ends long before the two-minute SYN claims.
const SHORT: Duration = Duration::from_secs(30);

/// A documented claim made executable.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// Stable id, e.g. `syn.default-timeout`.
    pub id: &'static str,
    /// The seed file the claim comes from.
    pub source: &'static str,
    /// The statement in our own words.
    pub statement: &'static str,
    /// The lab it builds.
    pub lab: &'static str,
    /// What it runs.
    pub action: &'static str,
    /// What the machine must have.
    pub needs: Needs,
    /// Rough run time on a current kernel, for scheduling and the hard deadline.
    pub estimate: Duration,
    /// How it runs.
    pub run: Procedure,
}

impl Claim {
    /// Claims estimated at least this long spend nearly all of it waiting on kernel
    /// timers (the two-minute SYN timeouts, TIME_WAIT), not on the CPU.
    pub const WAITS_FROM: Duration = Duration::from_secs(60);

    /// Whether the claim mostly waits on kernel timers (see [`Self::WAITS_FROM`]).
    pub fn mostly_waits(&self) -> bool {
        self.estimate >= Self::WAITS_FROM
    }

    /// Where the claim comes from: `built-in` (Rust), `built-in (syn.toml)`, or a file.
    pub fn origin(&self) -> String {
        match self.run {
            Procedure::Rust(_) => "built-in".into(),
            Procedure::Data(d) => d.origin.to_string(),
        }
    }

    /// The user's claim file this claim comes from (`--claims PATH`); `None` for a
    /// built-in claim, Rust or TOML. The one test of "is this claim from a user's file?".
    pub fn user_file(&self) -> Option<&'static std::path::Path> {
        match self.run {
            Procedure::Data(DataClaim {
                origin: crate::spec::Origin::File(path),
                ..
            }) => Some(path),
            _ => None,
        }
    }

    /// `default`, or `long` for a claim that runs only when asked for (`--long`).
    pub fn tier(&self) -> crate::spec::Tier {
        match self.run {
            Procedure::Rust(_) => crate::spec::Tier::Default,
            Procedure::Data(d) => d.spec.tier,
        }
    }

    /// Which catalog the claim belongs to: `seeds` (the five write-ups), `kernel docs`
    /// (ip-sysctl.rst and the man pages), or `file` (a user's claim file).
    pub fn catalog(&self) -> &'static str {
        match self.run {
            Procedure::Rust(_) => "seeds",
            Procedure::Data(d) => match &d.origin {
                crate::spec::Origin::BuiltIn(name) if name.starts_with("docs") => "kernel docs",
                crate::spec::Origin::BuiltIn(_) => "seeds",
                crate::spec::Origin::File(_) => "file",
            },
        }
    }

    /// Whether the claim waits to start until the short claims that time a tool's own
    /// deadline have finished: the short kernel-docs claims use in-repo clients only,
    /// and starting their labs (peer namespaces, veth pairs, iptables) in the same
    /// instant as those tools delayed the tools' start-up past its allowance. They
    /// finish long before the longest claim, so a run takes no longer.
    pub fn deferred(&self) -> bool {
        self.catalog() == "kernel docs" && self.estimate < SHORT
    }

    /// Whether a claim that is not deferred is one the deferred ones wait for: short.
    pub fn deferred_ones_wait_for(&self) -> bool {
        !self.deferred() && self.estimate < SHORT
    }

    /// Why the claim cannot run here (a missing tool or privilege), if so.
    pub fn unmet_needs(&self) -> Option<String> {
        netclaim_harness::privilege::check()
            .err()
            .or_else(|| self.missing_tools())
            .or_else(|| self.missing_wire())
    }

    /// Why a claim over a wire (`lab.link`) cannot have one here, if it cannot: the TUN
    /// device is missing or closed to this user.
    fn missing_wire(&self) -> Option<String> {
        let linked = matches!(self.run, Procedure::Data(d) if d.spec.lab.link.is_some());
        linked
            .then(netclaim_harness::wire::tun::available)
            .and_then(Result::err)
            .map(|e| e.to_string())
    }

    /// The tools the claim needs that are not installed, in words, if any.
    fn missing_tools(&self) -> Option<String> {
        let missing: Vec<&str> = self
            .needs
            .tools
            .iter()
            .copied()
            .filter(|t| netclaim_harness::command::which(t).is_none())
            .collect();
        (!missing.is_empty()).then(|| missing_tools(&missing))
    }

    /// Runs the claim: measures, then [`Claim::judge`]s the measurement. Unmet needs are
    /// `skipped`, harness errors `error`.
    pub fn execute(&self, ctx: &Ctx) -> Outcome {
        // The timing checks' measured error comes from this probe: running before the
        // claim's first measurement.
        netclaim_harness::slowness::start();
        // Not knowing the privilege because the harness is out of descriptors is the
        // harness failing, not a reason to skip.
        match netclaim_harness::privilege::status() {
            Err(e) => return Outcome::forced(Verdict::Error, error_reason(&anyhow::Error::new(e))),
            Ok(Err(reason)) => return Outcome::forced(Verdict::Skipped, reason),
            Ok(Ok(())) => {}
        }
        if let Some(reason) = self.missing_tools() {
            return Outcome::forced(Verdict::Skipped, reason);
        }
        let measured = match self.run {
            Procedure::Rust(steps) => steps.measure(ctx),
            Procedure::Data(d) => crate::measure::measure(&d.spec, ctx, d.dir.as_deref())
                .and_then(|m| Ok(serde_json::to_value(m)?)),
        };
        let result = measured.and_then(|m| {
            self.judge(&m, ctx)
                .context("judging the measurement just made")
        });
        match result {
            Ok(o) => o,
            // A program a claim file names but the catalog could not check for up
            // front (its path is built from {dir}): skipped, like any missing tool.
            Err(e) => match e
                .chain()
                .find_map(|c| c.downcast_ref::<netclaim_harness::Error>())
            {
                Some(netclaim_harness::Error::ToolMissing { program, .. }) => {
                    Outcome::forced(Verdict::Skipped, missing_tools(&[program]))
                }
                Some(netclaim_harness::Error::Rootless { reason }) => {
                    Outcome::forced(Verdict::Skipped, reason.clone())
                }
                // What this machine (or container) cannot offer, such as /dev/net/tun
                // for a lab's wire: the message names the setting that gives it.
                Some(e @ netclaim_harness::Error::Unavailable { .. }) => {
                    Outcome::forced(Verdict::Skipped, e.to_string())
                }
                _ => Outcome::forced(Verdict::Error, error_reason(&e)),
            },
        }
    }

    /// What in a measurement of this claim contradicts itself, the claim's settings or
    /// `ctx` (the run it is recorded in): physical quantities out of range
    /// ([`crate::recording::check_quantities`]), and for a claim file the sysctls it sets
    /// against those in force, the SYNs the model allows, the run's own figures
    /// ([`crate::judge::inconsistencies`]); for a Rust claim, its own check
    /// ([`Checked`]). Empty when it is consistent.
    pub fn inconsistencies(
        &self,
        measurement: &serde_json::Value,
        ctx: &Ctx,
    ) -> serde_json::Result<Vec<String>> {
        let mut problems = crate::recording::check_quantities(measurement);
        match self.run {
            Procedure::Rust(steps) => problems.extend(steps.inconsistencies(measurement, ctx)?),
            Procedure::Data(d) => {
                let m: crate::record::Measurement = serde_json::from_value(measurement.clone())?;
                problems.extend(crate::judge::inconsistencies(&d.spec, &m, ctx));
            }
        }
        Ok(problems)
    }

    /// Judges a measurement of this claim (just made, or recorded by an earlier run)
    /// with the current statement and models, once it is found consistent
    /// ([`Self::inconsistencies`]: a record that contradicts itself is no observation).
    /// Pure: no lab, no privilege. An outcome whose observation shows the harness running
    /// out of something (an EMFILE, a tool's "Too many open files") is an `error`: such a
    /// measurement is not about the behaviour the claim is about.
    pub fn judge(&self, measurement: &serde_json::Value, ctx: &Ctx) -> Result<Outcome, JudgeError> {
        let problems = self.inconsistencies(measurement, ctx)?;
        if !problems.is_empty() {
            return Err(JudgeError::Inconsistent(problems));
        }
        let mut o = match self.run {
            Procedure::Rust(steps) => steps.judge(measurement, ctx)?,
            Procedure::Data(d) => {
                let m: crate::record::Measurement = serde_json::from_value(measurement.clone())?;
                crate::judge::judge(&d.spec, &m)
            }
        };
        if let Some(why) = exhaustion_in(&o) {
            o.forced = Some((Verdict::Error, why));
        }
        o.measurement = Some(measurement.clone());
        Ok(o)
    }
}

/// Why a claim is skipped for `missing` programs, with how to get each: the Debian
/// package netclaim installs (scripts/install-tools), or, for a program of the user's
/// own, that it is not on PATH.
pub fn missing_tools(missing: &[&str]) -> String {
    let known: Vec<String> = missing
        .iter()
        .filter_map(|t| {
            let package = netclaim_harness::command::package_of(t);
            (!package.starts_with('(')).then(|| format!("{t} (Debian package {package})"))
        })
        .collect();
    let other: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|t| netclaim_harness::command::package_of(t).starts_with('('))
        .collect();
    let mut parts = Vec::new();
    if !known.is_empty() {
        parts.push(format!(
            "missing {}: run scripts/install-tools (as root) to install it",
            known.join(", ")
        ));
    }
    if !other.is_empty() {
        parts.push(format!(
            "{} not found on PATH (nor in /usr/sbin, /sbin): install it or give its path",
            other.join(", ")
        ));
    }
    parts.join("; ")
}

/// The reason of an `error` verdict: the error chain, led by the resource the harness
/// ran out of when that is the cause.
pub fn error_reason(e: &anyhow::Error) -> String {
    let exhausted = e
        .chain()
        .find_map(|cause| {
            if let Some(h) = cause.downcast_ref::<netclaim_harness::Error>() {
                h.exhausted()
            } else {
                cause
                    .downcast_ref::<std::io::Error>()
                    .and_then(Exhausted::of_io)
            }
        })
        // A tool the harness ran for itself (iptables) says it in words.
        .or_else(|| resource::in_tool_output(&format!("{e:#}")));
    match exhausted {
        Some(r) => format!("{} (the harness failed, not the kernel: {e:#})", ran_out(r)),
        None => format!("{e:#}"),
    }
}

fn ran_out(r: Exhausted) -> String {
    format!("the harness ran out of {}", r.describe())
}

/// Whether an outcome's observation is the harness running out of a resource: an
/// observed errno, an errno named in a check's observation, or a tool's message.
pub fn exhaustion_in(o: &Outcome) -> Option<String> {
    if matches!(o.forced, Some((Verdict::Skipped | Verdict::Error, _))) {
        return None;
    }
    let from_errno = o
        .observed
        .errno
        .and_then(|e| Exhausted::of_errno(nix::errno::Errno::from_raw(e)));
    let from_checks = || {
        o.claim_checks
            .iter()
            .chain(&o.model_checks)
            .find_map(|c| named_errno(&c.observed))
    };
    let from_tools = || o.evidence.iter().find_map(|e| resource::in_tool_output(e));
    from_errno
        .or_else(from_checks)
        .or_else(from_tools)
        .map(|r| format!("{}; the measurement is void", ran_out(r)))
}

/// A resource errno named as a word in `text` ("EMFILE", "Some(EMFILE)").
fn named_errno(text: &str) -> Option<Exhausted> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|word| match word {
            "EMFILE" => Some(Exhausted::FileDescriptors),
            "ENFILE" => Some(Exhausted::SystemFiles),
            "ENOMEM" => Some(Exhausted::Memory),
            "ENOSPC" => Some(Exhausted::Disk),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_runs(_: &Ctx) -> anyhow::Result<Measured<()>> {
        panic!("a claim with unmet needs must not run")
    }

    fn never_judged(_: &(), _: &Ctx) -> Outcome {
        panic!("a claim with unmet needs has nothing to judge")
    }

    const NEVER: Steps<()> = Steps {
        measure: never_runs,
        judge: never_judged,
    };

    #[test]
    fn a_missing_tool_skips_the_claim_and_says_how_to_install_it() {
        let claim = Claim {
            id: "t.missing-tool",
            source: "t.txt",
            statement: "t",
            lab: "t",
            action: "t",
            needs: Needs {
                tools: &["netclaim-no-such-tool"],
            },
            estimate: Duration::from_secs(1),
            run: Procedure::Rust(&NEVER),
        };
        let o = claim.execute(&Ctx {
            hz: 250,
            kernel: "t".into(),
        });
        assert_eq!(o.verdict(), Verdict::Skipped);
        if netclaim_harness::privilege::check().is_ok() {
            assert_eq!(
                o.reason(),
                "netclaim-no-such-tool not found on PATH (nor in /usr/sbin, /sbin): install it \
                 or give its path"
            );
            assert_eq!(
                missing_tools(&["nc", "myapp"]),
                "missing nc (Debian package netcat-openbsd): run scripts/install-tools (as root) \
                 to install it; myapp not found on PATH (nor in /usr/sbin, /sbin): install it or \
                 give its path"
            );
        } else {
            assert!(o.reason().contains("CAP_NET_ADMIN"), "{}", o.reason());
        }
    }

    #[test]
    fn an_observed_resource_errno_voids_the_measurement() {
        let mut o = Outcome::default();
        o.claim_check("errno", "EAGAIN", "EMFILE", false);
        let why = exhaustion_in(&o).expect("EMFILE is the harness's");
        assert!(why.contains("file descriptors (EMFILE)"), "{why}");
        assert!(why.contains("RLIMIT_NOFILE"), "{why}");

        let mut o = Outcome::default();
        o.observed.errno = Some(libc::ENOSPC);
        assert!(exhaustion_in(&o).unwrap().contains("disk space"));

        let mut o = Outcome::default();
        o.evidence("curl: (7) Failed to create socket: Too many open files");
        assert!(exhaustion_in(&o).unwrap().contains("EMFILE"));

        // Observations about the behaviour under test stay observations.
        let mut o = Outcome::default();
        o.observed.errno = Some(libc::EAGAIN);
        o.claim_check("errno", "EAGAIN", "EAGAIN", true);
        o.evidence("connect() to unix:/x failed (11: Resource temporarily unavailable)");
        assert_eq!(exhaustion_in(&o), None);
    }

    #[test]
    fn a_harness_error_from_a_resource_names_it() {
        let e = anyhow::Error::new(netclaim_harness::Error::os(
            "socket(AF_UNIX, SOCK_STREAM)",
            std::io::Error::from_raw_os_error(libc::EMFILE),
        ))
        .context("filling the queue");
        let reason = error_reason(&e);
        assert!(
            reason.starts_with("the harness ran out of file descriptors (EMFILE)"),
            "{reason}"
        );
        assert!(
            reason.contains("socket(AF_UNIX, SOCK_STREAM) failed"),
            "{reason}"
        );
        let plain = anyhow::anyhow!("something else");
        assert_eq!(error_reason(&plain), "something else");
    }

    #[test]
    fn a_claim_without_checks_is_an_error_not_a_pass() {
        assert_eq!(Outcome::default().verdict(), Verdict::Error);
    }
}
