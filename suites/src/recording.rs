//! Recorded measurements, judged again.
//!
//! Measuring needs a lab and privilege; judging is a pure function of a measurement, the
//! claim's statement and the models. A [`Recording`] keeps what a run measured (and the
//! verdicts it reached), so that an old run can be judged again with today's catalog
//! and models (`netclaim judge`), and so that the judges are unit-tested on real
//! measurements from real kernels without root — the way nextest keeps the expected
//! outcomes of its fixtures as data. A model or tolerance change that would flip a
//! recorded verdict fails an ordinary `cargo test`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::claim::{Claim, Ctx, JudgeError, Outcome, Verdict};

/// What a run measured: per claim, its measurement and the verdict it reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// The netclaim version that measured.
    pub netclaim: String,
    /// `uname -r` of the kernel measured.
    pub kernel: String,
    /// Its `CONFIG_HZ`.
    pub hz: u32,
    /// `root` or the user namespace the labs ran in.
    #[serde(default = "root")]
    pub mode: String,
    /// The claims that recorded a measurement.
    pub claims: Vec<Recorded>,
}

fn root() -> String {
    "root".into()
}

/// One claim's measurement and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// The claim's id.
    pub id: String,
    /// The verdict the run reached.
    pub verdict: Verdict,
    /// What was measured.
    pub measurement: serde_json::Value,
}

impl Recording {
    /// The context the measurements were judged in (the recorded kernel and HZ).
    pub fn ctx(&self) -> Ctx {
        Ctx {
            hz: self.hz,
            kernel: self.kernel.clone(),
        }
    }
}

impl Recording {
    /// What is wrong with the recording's own facts, whatever its claims: a CONFIG_HZ
    /// Linux does not offer (it sets every timer-slack window), no kernel, a claim
    /// recorded twice.
    pub fn check_consistency(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !HZ_VALUES.contains(&self.hz) {
            problems.push(format!(
                "hz {} is not a CONFIG_HZ Linux offers ({HZ_VALUES:?})",
                self.hz
            ));
        }
        if self.kernel.trim().is_empty() {
            problems.push("no kernel release".into());
        }
        let mut ids: Vec<&str> = self.claims.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        for w in ids.windows(2).filter(|w| w[0] == w[1]) {
            problems.push(format!("claim {} is recorded more than once", w[0]));
        }
        problems.dedup();
        problems
    }
}

impl Recording {
    /// The claims of `catalog`'s default tier this recording holds no measurement of:
    /// claims added since it was made. They are not recorded yet, which is not a fault of
    /// the claim nor of the recording; `scripts/record ID...` adds just them. (Long-tier
    /// claims are never recorded: they are not part of the run that records.)
    pub fn not_recorded<'c>(&self, catalog: &'c [Claim]) -> Vec<&'c str> {
        catalog
            .iter()
            .filter(|c| c.tier() == crate::spec::Tier::Default)
            .map(|c| c.id)
            .filter(|id| !self.claims.iter().any(|r| r.id == *id))
            .collect()
    }
}

/// Why a recorded claim could not be judged again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotJudged {
    /// The catalog has no claim with that id any more.
    Unknown,
    /// The measurement does not fit the claim's judge (a different format).
    Unreadable(String),
    /// The record contradicts itself, the claim or the recording it is in (each
    /// inconsistency named): judging it would turn a broken or forged record into a
    /// verdict.
    Inconsistent(Vec<String>),
}

impl std::fmt::Display for NotJudged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown => f.write_str(
                "no claim with this id in the catalog: a claim from a claim file is judged \
                 with `netclaim judge --claims PATH` (the files the run was given)",
            ),
            Self::Unreadable(e) => write!(f, "the recorded measurement does not fit: {e}"),
            Self::Inconsistent(why) => {
                write!(f, "the record contradicts itself: {}", why.join("; "))
            }
        }
    }
}

impl From<JudgeError> for NotJudged {
    fn from(e: JudgeError) -> Self {
        match e {
            JudgeError::Unreadable(e) => Self::Unreadable(e.to_string()),
            JudgeError::Inconsistent(why) => Self::Inconsistent(why),
        }
    }
}

/// Judges `measurement` again for `claim` in `ctx`, with the current statement and models,
/// once it is found consistent ([`Claim::judge`]).
pub fn rejudge(
    claim: &Claim,
    measurement: &serde_json::Value,
    ctx: &Ctx,
) -> Result<Outcome, NotJudged> {
    claim.judge(measurement, ctx).map_err(NotJudged::from)
}

/// Judges every recorded claim that `catalog` can judge again: (id, recorded verdict,
/// the outcome now or why not). A recording whose own facts are inconsistent
/// ([`Recording::check_consistency`]) has none of its claims judged.
pub fn rejudge_all<'a>(
    recording: &'a Recording,
    catalog: &[Claim],
) -> Vec<(&'a Recorded, Result<Outcome, NotJudged>)> {
    let ctx = recording.ctx();
    let broken = recording.check_consistency();
    recording
        .claims
        .iter()
        .map(|r| {
            let now = match catalog.iter().find(|c| c.id == r.id) {
                _ if !broken.is_empty() => Err(NotJudged::Inconsistent(
                    broken
                        .iter()
                        .map(|p| format!("the recording: {p}"))
                        .collect(),
                )),
                Some(claim) => rejudge(claim, &r.measurement, &ctx),
                None => Err(NotJudged::Unknown),
            };
            (r, now)
        })
        .collect()
}

/// SYNs (without ACK) to `port` among captured `events`, counted without their times (a
/// record whose packets go back in time is counted, not subtracted).
pub fn syns_to(events: &[netclaim_harness::capture::TcpEvent], port: u16) -> usize {
    events
        .iter()
        .filter(|e| e.flags.is_syn() && e.icmp.is_none() && e.dst.port() == port)
        .count()
}

/// The most SYNs one connection sends under `model` before the kernel gives up: the
/// first and `syn_retries + syn_linear_timeouts` retransmissions (tcp_write_timeout).
pub fn syns_allowed(model: &netclaim_harness::model::SynModel) -> usize {
    let retransmits = model
        .syn_retries
        .saturating_add(model.syn_linear_timeouts.unwrap_or(0));
    usize::try_from(retransmits)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
}

/// The problem with `observed` SYNs on one connection under `model`, if they are more than
/// it allows ([`syns_allowed`]).
pub fn too_many_syns(
    what: &str,
    model: &netclaim_harness::model::SynModel,
    observed: usize,
) -> Option<String> {
    let most = syns_allowed(model);
    (observed > most).then(|| {
        format!(
            "{what}: {observed} SYNs, where tcp_syn_retries={} and tcp_syn_linear_timeouts={} in \
             force allow at most {most}",
            model.syn_retries,
            model.syn_linear_timeouts.unwrap_or(0)
        )
    })
}

/// `CONFIG_HZ` values Linux offers.
pub const HZ_VALUES: [u32; 4] = [100, 250, 300, 1000];

/// The longest any recorded duration may be: no claim runs for a day (the longest runs
/// about 16 minutes, and `run.timeout` is the harness's own deadline).
pub const MAX_RECORDED: Duration = Duration::from_secs(24 * 3600);

/// How far a SYN may seem to lie beyond the end of its attempt: the capture's timestamps
/// and the monotonic clock the attempt is timed on are read apart.
const CLOCKS_APART_US: u64 = 100_000;

/// What is physically impossible in a measurement, whatever its claim, found by the
/// shapes netclaim's records share (each problem with its JSON path):
///
/// * a duration (`{secs, nanos}`, or a field in `_us`, `_ms` or `_ticks`) beyond
///   [`MAX_RECORDED`], or nanoseconds of a second beyond 999 999 999;
/// * things listed with their time (`at` or `after`: packets, DNS queries) out of the
///   order they were seen in;
/// * an `hz` Linux does not offer ([`HZ_VALUES`]);
/// * a SYN model (`syn_retries`, `initial_rto`) with inputs the kernel does not accept;
/// * a command's output (`status`, `timed_out`) killed at the harness's deadline but
///   exiting by itself: the deadline kills with SIGKILL;
/// * a timed attempt (`syn_times_us`, `first_packet_us`, `duration_us`): SYN times that
///   do not start at 0 or go back in time, SYNs after the attempt ended, a timer
///   lateness per SYN (`syn_late_us`) for another number of SYNs.
pub fn check_quantities(measurement: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(measurement, "measurement", &mut problems);
    problems
}

fn walk(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            object(map, path, out);
            for (k, x) in map {
                walk(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                walk(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The numbers of a field: itself, or the items of a list (nulls skipped); `None` for a
/// value that is neither a non-negative integer nor a list of them.
fn integers(v: &Value) -> Option<Vec<u64>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Number(n) => n.as_u64().map(|n| vec![n]),
        Value::Array(items) => items.iter().try_fold(Vec::new(), |mut all, x| {
            all.extend(integers(x)?);
            Some(all)
        }),
        _ => None,
    }
}

fn object(map: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    let max_us = MAX_RECORDED.as_micros() as u64;
    // A Duration, as serde writes it.
    if let (2, Some(secs), Some(nanos)) = (
        map.len(),
        map.get("secs").and_then(Value::as_u64),
        map.get("nanos").and_then(Value::as_u64),
    ) {
        if nanos >= 1_000_000_000 || secs > MAX_RECORDED.as_secs() {
            out.push(format!(
                "{path}: a duration of {secs} s and {nanos} ns is out of range (at most {} s)",
                MAX_RECORDED.as_secs()
            ));
        }
    }
    for (k, x) in map {
        let unit = if k.ends_with("_us") {
            Some(("µs", max_us))
        } else if k.ends_with("_ms") {
            Some(("ms", max_us / 1000))
        } else if k.ends_with("_ticks") {
            // USER_HZ (100) ticks, as /proc/net/tcp counts them.
            Some(("ticks", max_us / 10_000))
        } else {
            None
        };
        if let Some((unit, max)) = unit {
            match integers(x) {
                Some(all) => {
                    if let Some(big) = all.into_iter().find(|n| *n > max) {
                        out.push(format!(
                            "{path}.{k}: {big} {unit} is beyond any run (at most {max} {unit})"
                        ));
                    }
                }
                None if x.is_number() || x.is_array() => out.push(format!(
                    "{path}.{k}: {x} is not a whole, non-negative number of {unit}"
                )),
                None => {}
            }
        }
    }
    if let Some(hz) = map.get("hz") {
        if !hz
            .as_u64()
            .is_some_and(|h| HZ_VALUES.iter().any(|v| u64::from(*v) == h))
        {
            out.push(format!(
                "{path}.hz: {hz} is not a CONFIG_HZ Linux offers ({HZ_VALUES:?})"
            ));
        }
    }
    // The SYN model's inputs, as the kernel accepts them (tcp_syn_retries or TCP_SYNCNT
    // 1..=127, tcp_syn_linear_timeouts 0..=127, an RTO cap up to 120 s).
    if let (Some(retries), true) = (map.get("syn_retries"), map.contains_key("initial_rto")) {
        let within = |v: Option<&Value>, lo: u64, hi: u64| {
            v.is_none_or(|v| v.is_null() || v.as_u64().is_some_and(|n| (lo..=hi).contains(&n)))
        };
        if !within(Some(retries), 1, 127) || !within(map.get("syn_linear_timeouts"), 0, 127) {
            out.push(format!(
                "{path}: a SYN model with tcp_syn_retries {retries} and tcp_syn_linear_timeouts {}, \
                 which the kernel does not accept (1..=127, 0..=127)",
                map.get("syn_linear_timeouts").unwrap_or(&Value::Null)
            ));
        }
        let secs = |k: &str| {
            map.get(k)
                .and_then(|d| d.get("secs"))
                .and_then(Value::as_u64)
        };
        if secs("rto_max").is_some_and(|s| s > 120) || secs("initial_rto").is_some_and(|s| s > 120)
        {
            out.push(format!(
                "{path}: a SYN model with an RTO beyond the kernel's 120 s"
            ));
        }
    }
    // A command's output: the harness's deadline kills the process group with SIGKILL.
    if let (Some(Value::Bool(true)), Some(status)) = (
        map.get("timed_out"),
        map.get("status").and_then(Value::as_i64),
    ) {
        let signal = status & 0x7f;
        if signal == 0 {
            out.push(format!(
                "{path}: killed at the harness's deadline (timed_out) yet it exited by itself \
                 with code {}",
                (status >> 8) & 0xff
            ));
        }
    }
    // Captured packets, DNS queries: anything listed with its time (`at`, or `after` the
    // start) is listed in the order it was seen.
    for (k, x) in map {
        let Value::Array(items) = x else { continue };
        let at = |e: &Value| {
            let d = e.get("at").or_else(|| e.get("after"))?;
            Some((d.get("secs")?.as_u64()?, d.get("nanos")?.as_u64()?))
        };
        let times: Vec<(u64, u64)> = items.iter().filter_map(at).collect();
        if times.windows(2).any(|w| w[1] < w[0]) {
            out.push(format!(
                "{path}.{k}: listed out of the order they were seen in"
            ));
        }
    }
    // A timed attempt: SYN times from the first SYN, within the attempt.
    if let (Some(times), Some(duration), true) = (
        map.get("syn_times_us").and_then(integers),
        map.get("duration_us").and_then(Value::as_u64),
        map.contains_key("first_packet_us"),
    ) {
        if times.first().is_some_and(|t| *t != 0) {
            out.push(format!(
                "{path}.syn_times_us: counted from the first SYN, yet it starts at {} µs",
                times[0]
            ));
        }
        if times.windows(2).any(|w| w[1] < w[0]) {
            out.push(format!("{path}.syn_times_us: SYN times go back in time"));
        }
        let first = map
            .get("first_packet_us")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if let Some(last) = times.last() {
            if first.saturating_add(*last) > duration.saturating_add(CLOCKS_APART_US) {
                out.push(format!(
                    "{path}: a SYN {} µs after the start, but the attempt ended after {duration} µs",
                    first.saturating_add(*last)
                ));
            }
        }
        if let Some(late) = map.get("syn_late_us").and_then(integers) {
            if !late.is_empty() && late.len() != times.len() {
                out.push(format!(
                    "{path}: {} SYN times but a timer lateness for {} SYNs",
                    times.len(),
                    late.len()
                ));
            }
        }
    }
}
