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

pub use crate::outcome::{
    errno_name, Check, CheckState, Ctx, Figures, Outcome, Timeline, Timing, Verdict,
};

/// What a claim needs from the machine before it can run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Programs that must be on PATH.
    pub tools: &'static [&'static str],
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
pub enum Observation<T> {
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
    pub measure: fn(&Ctx) -> anyhow::Result<Observation<T>>,
    /// Turns a measurement into checks, figures and evidence. No I/O.
    pub judge: fn(&T, &Ctx) -> Outcome,
}

/// [`Steps`] with its measurement type erased to JSON, so claims of different types sit
/// in one catalog and a recorded measurement reaches the judge that reads it.
pub trait TwoSteps: Sync {
    /// Measures; the value is a serialised [`Observation`].
    fn measure(&self, ctx: &Ctx) -> anyhow::Result<serde_json::Value>;
    /// Judges a serialised [`Observation`].
    fn judge(&self, measured: &serde_json::Value, ctx: &Ctx) -> serde_json::Result<Outcome>;
    /// What in a serialised [`Observation`] contradicts the claim's own settings or itself,
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
        Ok(match Observation::<T>::deserialize(measured)? {
            Observation::Observed(m) => (self.check)(&m, ctx),
            Observation::Forced(..) => Vec::new(),
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
        Ok(match Observation::<T>::deserialize(measured)? {
            Observation::Observed(m) => {
                let mut o = (self.judge)(&m, ctx);
                if o.forced.is_none() {
                    if let Some(why) = cut_short(measured) {
                        o.forced = Some((Verdict::Error, why));
                    }
                }
                o
            }
            Observation::Forced(verdict, reason) => Outcome::forced(verdict, reason),
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

    /// Which catalog the claim belongs to: the seeds (Rust claims and the seeds' claim
    /// files), the kernel docs or the network catalog (by the built-in file it is in), or
    /// a user's file.
    pub fn catalog(&self) -> crate::catalog::Catalog {
        use crate::catalog::Catalog;
        match self.run {
            Procedure::Rust(_) => Catalog::Seeds,
            Procedure::Data(d) => match &d.origin {
                crate::spec::Origin::BuiltIn(name) => Catalog::of_built_in(name),
                crate::spec::Origin::File(_) => Catalog::File,
            },
        }
    }

    /// Whether the claim waits to start until the short claims that time a tool's own
    /// deadline have finished: the short kernel-docs claims use in-repo clients only,
    /// and starting their labs (peer namespaces, veth pairs, iptables) in the same
    /// instant as those tools delayed the tools' start-up past its allowance. They
    /// finish long before the longest claim, so a run takes no longer.
    pub fn deferred(&self) -> bool {
        self.catalog() == crate::catalog::Catalog::KernelDocs && self.estimate < SHORT
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

    fn never_runs(_: &Ctx) -> anyhow::Result<Observation<()>> {
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
}
