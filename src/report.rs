//! The run report: what was run where, and every claim's verdict with its figures and
//! evidence; rendered as a terminal table, JSON, JUnit XML or Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use serde::{Deserialize, Serialize};

use netclaim_suites::{CheckState, Outcome, Verdict};

use crate::provenance::Provenance;
use crate::runner::Finished;

/// The tools whose versions a report records.
pub const TOOLS: &[&str] = &[
    "curl", "wget", "nc", "telnet", "mysql", "rsync", "nginx", "iptables", "strace",
];

/// The whole report (`report.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The netclaim version that wrote it.
    pub netclaim: String,
    /// `uname -r`.
    pub kernel: String,
    /// CONFIG_HZ used for timer-slack tolerances.
    pub hz: u32,
    /// How the labs were built: `root`, or `user namespace (uid N as root)` (absent in
    /// reports from before rootless labs: those ran as root).
    #[serde(default = "root_mode")]
    pub mode: String,
    /// The net sysctls a fresh network namespace starts with on this kernel.
    pub sysctl_defaults: BTreeMap<String, String>,
    /// Tool name -> first line of its version output (`null`: not installed).
    pub tools: BTreeMap<String, Option<String>>,
    /// Wall time of the whole run.
    pub wall_ms: u64,
    /// The longest single claim's duration.
    pub longest_claim_ms: u64,
    /// Its id.
    pub longest_claim: Option<String>,
    /// `wall_ms / longest_claim_ms`.
    pub wall_over_longest: Option<f64>,
    /// How closely the measured SYN timers followed the model (issue: timing fidelity).
    #[serde(default)]
    pub timing: Option<TimingFidelity>,
    /// How late this machine ran timers during the run (the probe behind every timing
    /// check's measured error); absent in reports from before it existed.
    #[serde(default)]
    pub slowness: Option<Slowness>,
    /// The machine's memory, build options, boot parameters and sysctl files: where its
    /// defaults come from (absent in older reports).
    #[serde(default)]
    pub provenance: Provenance,
    /// Every claim that ran.
    pub claims: Vec<ClaimReport>,
}

/// What the slowness probe saw over the whole run (see `netclaim_harness::slowness`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slowness {
    /// Probe wake-ups.
    pub samples: usize,
    /// Median lateness of a timer, ms.
    pub median_late_ms: f64,
    /// Worst lateness of a timer, ms.
    pub worst_late_ms: f64,
    /// Timing checks (statement and model) judged inconclusive, over all claims.
    pub inconclusive_checks: usize,
}

/// The worst disagreement between a measured and a predicted SYN retransmission interval
/// across every timeline of the run. Intervals, not absolute send times, because timer
/// lateness accumulates: each retransmission timer is armed when the previous one fired.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimingFidelity {
    /// Intervals compared.
    pub intervals: usize,
    /// The largest |measured − predicted| interval, in ms.
    pub worst_error_ms: f64,
    /// What that interval was allowed: the harness's interval slack (max(4 ms, the
    /// timer-wheel slack of its timer), plus 1 ms between a SYN's capture and the arming
    /// of its timer), as the claims judge it.
    pub worst_allowed_ms: f64,
    /// The claim and interval (1-based) where it happened.
    pub worst_at: String,
    /// The largest error / allowed ratio (≤ 1 means every interval was within bounds).
    pub worst_ratio: f64,
    /// Intervals outside their allowance.
    pub outside: usize,
}

impl TimingFidelity {
    fn of(claims: &[ClaimReport], hz: u32) -> Option<Self> {
        let mut best: Option<Self> = None;
        let (mut n, mut outside) = (0, 0);
        for c in claims {
            for t in &c.timelines {
                // Measured times in ms as f64: from the µs figures, or, in reports that
                // predate them, whole ms, whose truncation can move an interval by up to
                // 1 ms, which the allowance then includes.
                let (observed, resolution): (Vec<f64>, f64) =
                    if t.observed_us.len() == t.predicted_ms.len() {
                        (
                            t.observed_us.iter().map(|&us| us as f64 / 1000.0).collect(),
                            0.0,
                        )
                    } else if t.observed_ms.len() == t.predicted_ms.len() {
                        (t.observed_ms.iter().map(|&ms| ms as f64).collect(), 1.0)
                    } else {
                        continue;
                    };
                for i in 1..observed.len() {
                    let predicted = t.predicted_ms[i] - t.predicted_ms[i - 1];
                    let measured = (observed[i] - observed[i - 1]).max(0.0);
                    let error = (measured - predicted as f64).abs();
                    // The same bound the claims judge each interval by (the harness's
                    // tolerance policy), plus the resolution of older reports.
                    let slack = netclaim_harness::tolerance::interval_slack(
                        std::time::Duration::from_millis(predicted),
                        hz,
                    );
                    let allowed = slack.as_secs_f64() * 1000.0 + resolution;
                    let ratio = error / allowed;
                    n += 1;
                    if ratio > 1.0 {
                        outside += 1;
                    }
                    if best.as_ref().is_none_or(|b| ratio > b.worst_ratio) {
                        best = Some(Self {
                            intervals: 0,
                            worst_error_ms: error,
                            worst_allowed_ms: allowed,
                            worst_at: format!("{} interval {i}", c.id),
                            worst_ratio: ratio,
                            outside: 0,
                        });
                    }
                }
            }
        }
        best.map(|b| Self {
            intervals: n,
            outside,
            ..b
        })
    }
}

fn root_mode() -> String {
    "root".into()
}

/// One claim's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimReport {
    /// Stable id.
    pub id: String,
    /// Seed file.
    pub source: String,
    /// Where the claim comes from: `built-in` (Rust), `built-in (syn.toml)`, or the path
    /// of the user's claim file (absent in reports from before claim files).
    #[serde(default)]
    pub origin: String,
    /// The statement in our words.
    pub statement: String,
    /// The lab it built.
    pub lab: String,
    /// What it ran.
    pub action: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why (forced verdicts, refuting checks); empty when it holds.
    pub reason: String,
    /// How long the claim took.
    pub duration_ms: u64,
    /// Whether every prediction check passed.
    pub model_agrees: bool,
    /// What the claim produced, as it produced it: figures claimed, expected and observed,
    /// the statement and prediction checks (with each timing check's window), evidence,
    /// SYN timelines and the measurement, for judging again.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl std::ops::Deref for ClaimReport {
    type Target = Outcome;

    fn deref(&self) -> &Outcome {
        &self.outcome
    }
}

impl std::ops::DerefMut for ClaimReport {
    fn deref_mut(&mut self) -> &mut Outcome {
        &mut self.outcome
    }
}

impl ClaimReport {
    fn new(f: &Finished) -> Self {
        let o = &f.outcome;
        let verdict = o.verdict();
        Self {
            id: f.claim.id.into(),
            source: f.claim.source.into(),
            origin: f.claim.origin(),
            statement: f.claim.statement.into(),
            lab: f.claim.lab.into(),
            action: f.claim.action.into(),
            verdict,
            reason: if verdict == Verdict::Holds {
                String::new()
            } else {
                o.reason()
            },
            duration_ms: f.took.as_millis() as u64,
            model_agrees: o.model_agrees(),
            outcome: o.clone(),
        }
    }

    /// A recorded claim judged again (`netclaim judge`): `outcome` for the claim `id`, with
    /// its description from the catalog's `claim`, else from the recorded report's entry
    /// `before` (a claim the catalog no longer has), and the recorded duration.
    pub fn judged(
        id: &str,
        claim: Option<&netclaim_suites::Claim>,
        before: Option<&ClaimReport>,
        outcome: Outcome,
    ) -> Self {
        let took = std::time::Duration::from_millis(before.map_or(0, |b| b.duration_ms));
        if let Some(claim) = claim {
            return Self::new(&Finished {
                claim: *claim,
                outcome,
                took,
            });
        }
        let text = |f: fn(&ClaimReport) -> &String| before.map(f).cloned().unwrap_or_default();
        let verdict = outcome.verdict();
        Self {
            id: id.to_owned(),
            source: text(|b| &b.source),
            origin: text(|b| &b.origin),
            statement: text(|b| &b.statement),
            lab: text(|b| &b.lab),
            action: text(|b| &b.action),
            verdict,
            reason: if verdict == Verdict::Holds {
                String::new()
            } else {
                outcome.reason()
            },
            duration_ms: took.as_millis() as u64,
            model_agrees: outcome.model_agrees(),
            outcome,
        }
    }

    /// The evidence as one text, items apart by a blank line.
    pub fn evidence_text(&self) -> String {
        self.outcome.evidence.join("\n\n")
    }
}

/// Facts about the machine, gathered before the claims run.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `uname -r`.
    pub kernel: String,
    /// CONFIG_HZ.
    pub hz: u32,
    /// Root or a user namespace.
    pub mode: String,
    /// Fresh-namespace net sysctls (empty without privilege).
    pub sysctl_defaults: BTreeMap<String, String>,
    /// Tool versions.
    pub tools: BTreeMap<String, Option<String>>,
    /// Memory, build options, boot parameters, sysctl files.
    pub provenance: Provenance,
}

impl Machine {
    /// Reads the kernel, HZ, tool versions and (with privilege) the defaults of a fresh
    /// network namespace.
    pub fn detect(ctx: &netclaim_suites::Ctx) -> Self {
        let sysctl_defaults = match netclaim_harness::privilege::check() {
            Ok(()) => netclaim_harness::NetNs::new()
                .and_then(|ns| ns.run(netclaim_harness::hostcheck::net_sysctls))
                .unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        let tools = TOOLS
            .iter()
            .map(|t| ((*t).to_owned(), netclaim_harness::command::tool_version(t)))
            .collect();
        // This thread's namespace is the initial one: read, never written.
        let initial = if sysctl_defaults.is_empty() {
            BTreeMap::new()
        } else {
            netclaim_harness::hostcheck::net_sysctls()
        };
        Self {
            kernel: ctx.kernel.clone(),
            hz: ctx.hz,
            provenance: Provenance::detect(&sysctl_defaults, &initial),
            mode: netclaim_harness::userns::mode().describe(),
            sysctl_defaults,
            tools,
        }
    }
}

impl Report {
    /// Assembles the report of a run.
    pub fn new(machine: Machine, finished: &[Finished], wall: std::time::Duration) -> Self {
        let longest = finished.iter().max_by_key(|f| f.took);
        let longest_ms = longest.map(|f| f.took.as_millis() as u64).unwrap_or(0);
        let wall_ms = wall.as_millis() as u64;
        let claims: Vec<ClaimReport> = finished.iter().map(ClaimReport::new).collect();
        let now = std::time::Instant::now();
        let probe =
            netclaim_harness::slowness::summary_between(now.checked_sub(wall).unwrap_or(now), now);
        let slowness = Slowness {
            samples: probe.samples,
            median_late_ms: probe.median.as_secs_f64() * 1000.0,
            worst_late_ms: probe.worst.as_secs_f64() * 1000.0,
            inconclusive_checks: claims
                .iter()
                .flat_map(|c| c.claim_checks.iter().chain(&c.model_checks))
                .filter(|k| k.state() == CheckState::Inconclusive)
                .count(),
        };
        Self {
            timing: TimingFidelity::of(&claims, machine.hz),
            slowness: Some(slowness),
            provenance: machine.provenance,
            netclaim: env!("CARGO_PKG_VERSION").into(),
            kernel: machine.kernel,
            hz: machine.hz,
            mode: machine.mode,
            sysctl_defaults: machine.sysctl_defaults,
            tools: machine.tools,
            wall_ms,
            longest_claim_ms: longest_ms,
            longest_claim: longest.map(|f| f.claim.id.to_owned()),
            wall_over_longest: (longest_ms > 0).then(|| wall_ms as f64 / longest_ms as f64),
            claims,
        }
    }

    /// The report of a recorded run judged again (`netclaim judge`): the claims as judged
    /// now, the recording's kernel, and the machine's facts and timings from the report
    /// it was recorded in (`before`; none from a recording.json).
    pub fn judged(
        before: Option<&Report>,
        recording: &netclaim_suites::recording::Recording,
        claims: Vec<ClaimReport>,
    ) -> Self {
        let inconclusive_checks = claims
            .iter()
            .flat_map(|c| c.claim_checks.iter().chain(&c.model_checks))
            .filter(|k| k.state() == CheckState::Inconclusive)
            .count();
        Self {
            netclaim: env!("CARGO_PKG_VERSION").into(),
            kernel: recording.kernel.clone(),
            hz: recording.hz,
            mode: recording.mode.clone(),
            sysctl_defaults: before
                .map(|b| b.sysctl_defaults.clone())
                .unwrap_or_default(),
            tools: before.map(|b| b.tools.clone()).unwrap_or_default(),
            wall_ms: before.map_or(0, |b| b.wall_ms),
            longest_claim_ms: before.map_or(0, |b| b.longest_claim_ms),
            longest_claim: before.and_then(|b| b.longest_claim.clone()),
            wall_over_longest: before.and_then(|b| b.wall_over_longest),
            timing: TimingFidelity::of(&claims, recording.hz),
            slowness: before.and_then(|b| b.slowness.clone()).map(|s| Slowness {
                inconclusive_checks,
                ..s
            }),
            provenance: before.map(|b| b.provenance.clone()).unwrap_or_default(),
            claims,
        }
    }

    /// Reads a report written by `netclaim run --out` or `--format json`: a regular file
    /// of at most [`REPORT_CAP`](netclaim_suites::input::REPORT_CAP).
    pub fn load(path: &Path) -> Result<Self> {
        let text = netclaim_suites::input::read_text(path, netclaim_suites::input::REPORT_CAP)
            .map_err(|e| anyhow::anyhow!("cannot read report: {e}"))?;
        Self::parse(path, &text)
    }

    /// The report in `text` (read from `path`). Another of netclaim's files given instead
    /// (a recording, a vm.json, `list --json`) is named as what it is.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            let other = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| other_kind(&v));
            match other {
                Some(kind) => anyhow::anyhow!(
                    "{} is {kind}, not a report: give the report.json that the same `netclaim \
                     run --out DIR` wrote beside it (or the output of `netclaim run --format json`)",
                    path.display()
                ),
                None => anyhow::Error::new(e).context(format!(
                    "{} is not a netclaim report (malformed JSON or missing fields): \
                     regenerate it with `netclaim run --format json > FILE` or `--out DIR`",
                    path.display()
                )),
            }
        })
    }

    /// What the run measured, for judging again: the claims that recorded a
    /// measurement, with their verdicts.
    pub fn recording(&self) -> netclaim_suites::recording::Recording {
        netclaim_suites::recording::Recording {
            netclaim: self.netclaim.clone(),
            kernel: self.kernel.clone(),
            hz: self.hz,
            mode: self.mode.clone(),
            claims: self
                .claims
                .iter()
                .filter_map(|c| {
                    Some(netclaim_suites::recording::Recorded {
                        id: c.id.clone(),
                        verdict: c.verdict,
                        measurement: c.measurement.clone()?,
                    })
                })
                .collect(),
        }
    }

    /// Counts per verdict, in a fixed order.
    pub fn counts(&self) -> Vec<(Verdict, usize)> {
        [
            Verdict::Holds,
            Verdict::Refuted,
            Verdict::Inconclusive,
            Verdict::NotApplicable,
            Verdict::Skipped,
            Verdict::Error,
        ]
        .into_iter()
        .map(|v| (v, self.claims.iter().filter(|c| c.verdict == v).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    /// "45 claims on 6.18.44: 20 holds, 15 refuted … in 134.2 s (longest …)".
    pub fn summary(&self) -> String {
        let counts: Vec<String> = self
            .counts()
            .iter()
            .map(|(v, n)| format!("{n} {v}"))
            .collect();
        let mut s = format!(
            "{} claims on Linux {}{}: {} in {:.1} s",
            self.claims.len(),
            self.kernel,
            match self.mode.as_str() {
                "root" => String::new(),
                "none" => ", no labs (no privilege for them here)".into(),
                mode => format!(", labs in a {mode}"),
            },
            counts.join(", "),
            self.wall_ms as f64 / 1000.0
        );
        if let (Some(id), Some(ratio)) = (&self.longest_claim, self.wall_over_longest) {
            let _ = write!(
                s,
                " (longest claim {id} {:.1} s; wall/longest {ratio:.3})",
                self.longest_claim_ms as f64 / 1000.0
            );
        }
        if let Some(t) = &self.timing {
            let _ = write!(
                s,
                "; SYN timers: worst interval error {:.1} ms of {:.1} ms allowed ({}), {} of {} outside",
                t.worst_error_ms, t.worst_allowed_ms, t.worst_at, t.outside, t.intervals
            );
        }
        let disagree = self
            .claims
            .iter()
            .filter(|c| c.verdict.decided_by_checks() && !c.model_agrees)
            .count();
        if disagree > 0 {
            let _ = write!(
                s,
                "; {disagree} measured outside the model's prediction (see model_checks)"
            );
        }
        s
    }

    /// The terminal table.
    pub fn table(&self, color: bool) -> String {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec![
                "claim",
                "verdict",
                "claimed",
                "expected here",
                "observed",
            ]);
        if !color {
            t.force_no_tty();
        }
        for c in &self.claims {
            let mut verdict = Cell::new(c.verdict.as_str());
            if color {
                verdict = verdict.fg(verdict_color(c.verdict));
            }
            let observed = match c.verdict {
                Verdict::Skipped | Verdict::NotApplicable | Verdict::Error => c.reason.clone(),
                Verdict::Inconclusive => format!("{} ({})", c.observed.summary(), c.reason),
                _ => c.observed.summary(),
            };
            t.add_row(vec![
                Cell::new(&c.id),
                verdict,
                Cell::new(c.claimed.summary()),
                Cell::new(c.expected.summary()),
                Cell::new(observed),
            ]);
        }
        format!("{t}\n{}", self.summary())
    }

    /// Each claim's checks (statement and model, with the windows applied) and its
    /// evidence (command output, the SYN timeline on the wire), for the claims `pick`
    /// selects.
    pub fn details(&self, pick: impl Fn(&ClaimReport) -> bool) -> String {
        let mut s = String::new();
        for c in self.claims.iter().filter(|c| pick(c)) {
            let _ = writeln!(s, "── {} ({}) from {}", c.id, c.verdict, c.origin);
            let _ = writeln!(s, "   {}", c.statement);
            if !c.reason.is_empty() {
                let _ = writeln!(s, "   why: {}", c.reason);
            }
            for (list, check) in c
                .claim_checks
                .iter()
                .map(|k| ("statement", k))
                .chain(c.model_checks.iter().map(|k| ("model", k)))
            {
                let _ = writeln!(s, "   {list:<9} {check}");
            }
            if !c.evidence.is_empty() {
                let _ = writeln!(
                    s,
                    "   evidence:\n      {}",
                    c.evidence_text().replace('\n', "\n      ")
                );
            }
            s.push('\n');
        }
        s
    }

    /// GitHub-flavoured Markdown: summary, table, and the reasons of non-holding claims.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# netclaim report: Linux {}\n", self.kernel);
        let _ = writeln!(s, "{}\n", self.summary());
        let _ = writeln!(
            s,
            "| claim | verdict | claimed | expected here | observed |\n|---|---|---|---|---|"
        );
        for c in &self.claims {
            let observed = match c.verdict {
                Verdict::Skipped | Verdict::NotApplicable | Verdict::Error => c.reason.clone(),
                Verdict::Inconclusive => format!("{} ({})", c.observed.summary(), c.reason),
                _ => c.observed.summary(),
            };
            let _ = writeln!(
                s,
                "| `{}` | **{}** | {} | {} | {} |",
                c.id,
                c.verdict,
                md_cell(&c.claimed.summary()),
                md_cell(&c.expected.summary()),
                md_cell(&observed)
            );
        }
        let refuted: Vec<&ClaimReport> = self
            .claims
            .iter()
            .filter(|c| c.verdict != Verdict::Holds)
            .collect();
        if !refuted.is_empty() {
            let _ = writeln!(s, "\n## Why the other claims do not hold here\n");
            for c in refuted {
                let _ = writeln!(s, "- `{}` ({}): {}", c.id, c.verdict, md_cell(&c.reason));
            }
        }
        s
    }

    /// JUnit XML: one test case per claim. A claim fails when the measurement disagrees
    /// with the model's prediction, errors when the harness failed, and is skipped when
    /// not applicable or skipped; a refuted claim passes (it is a finding) and says so.
    pub fn junit(&self) -> String {
        let failures = self
            .claims
            .iter()
            .filter(|c| c.verdict.decided_by_checks() && !c.model_agrees)
            .count();
        let errors = self
            .claims
            .iter()
            .filter(|c| c.verdict == Verdict::Error)
            .count();
        let skipped = self
            .claims
            .iter()
            .filter(|c| {
                matches!(c.verdict, Verdict::Skipped | Verdict::NotApplicable)
                    || (c.verdict == Verdict::Inconclusive && c.model_agrees)
            })
            .count();
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<testsuites name=\"netclaim\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            self.claims.len(),
            self.wall_ms as f64 / 1000.0
        );
        let _ = writeln!(
            s,
            "  <testsuite name=\"netclaim on Linux {}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            xml(&self.kernel),
            self.claims.len(),
            self.wall_ms as f64 / 1000.0
        );
        for c in &self.claims {
            let _ = writeln!(
                s,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
                xml(&c.source),
                xml(&c.id),
                c.duration_ms as f64 / 1000.0
            );
            let checks: String = c
                .claim_checks
                .iter()
                .map(|k| format!("statement {k}\n"))
                .chain(c.model_checks.iter().map(|k| format!("model     {k}\n")))
                .collect();
            match c.verdict {
                Verdict::Error => {
                    let _ = writeln!(
                        s,
                        "      <error message=\"{}\">{}</error>",
                        xml(&c.reason),
                        xml(&c.evidence_text())
                    );
                }
                // Not decided on this machine (inconclusive): skipped, with why, so that
                // a dashboard shows it was not a pass.
                Verdict::Skipped | Verdict::NotApplicable => {
                    let _ = writeln!(
                        s,
                        "      <skipped message=\"{}: {}\"/>",
                        c.verdict,
                        xml(&c.reason)
                    );
                }
                Verdict::Inconclusive if c.model_agrees => {
                    let _ = writeln!(
                        s,
                        "      <skipped message=\"{}: {}\"/>",
                        c.verdict,
                        xml(&c.reason)
                    );
                }
                _ if !c.model_agrees => {
                    let _ = writeln!(
                        s,
                        "      <failure message=\"measured outside the model's prediction for this kernel\">{}</failure>",
                        xml(&checks)
                    );
                }
                _ => {}
            }
            let _ = writeln!(
                s,
                "      <system-out>verdict: {}\n{}{}\n{}</system-out>",
                c.verdict,
                if c.reason.is_empty() {
                    String::new()
                } else {
                    format!("reason: {}\n", xml(&c.reason))
                },
                xml(&checks),
                xml(&c.evidence_text())
            );
            let _ = writeln!(s, "    </testcase>");
        }
        s.push_str("  </testsuite>\n</testsuites>\n");
        s
    }

    /// Pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }
}

/// Whether a JSON document has the shape of a recording.json (the claims' measurements
/// without the report around them).
pub(crate) fn looks_like_recording(v: &serde_json::Value) -> bool {
    let claims = v.get("claims").and_then(serde_json::Value::as_array);
    v.get("hz").is_some()
        && v.get("wall_ms").is_none()
        && claims.is_some_and(|c| c.iter().all(|c| c.get("measurement").is_some()))
}

/// What a JSON document that is not a report is, when it is another of netclaim's files.
fn other_kind(v: &serde_json::Value) -> Option<&'static str> {
    if looks_like_recording(v) {
        return Some(
            "a recording (recording.json: the measurements `netclaim judge` judges again)",
        );
    }
    if v.get("kernel_image").is_some() {
        return Some("a vm.json (how `netclaim vm` ran its guest)");
    }
    let first = v.as_array().and_then(|a| a.first());
    if first.is_some_and(|c| c.get("statement").is_some() && c.get("verdict").is_none()) {
        return Some("a claim list (`netclaim list --json`)");
    }
    None
}

fn verdict_color(v: Verdict) -> Color {
    match v {
        Verdict::Holds => Color::Green,
        Verdict::Refuted => Color::Yellow,
        Verdict::Inconclusive => Color::Magenta,
        Verdict::NotApplicable | Verdict::Skipped => Color::DarkGrey,
        Verdict::Error => Color::Red,
    }
}

/// Escapes text for a Markdown table cell: pipes, line breaks, and what a Markdown
/// renderer would take as HTML or a link (claim files and tool output are untrusted).
pub fn md_cell(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// Escapes text for XML content and attributes (and drops characters XML 1.0 forbids).
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            // XML 1.0 forbids the other C0 controls and U+FFFE/U+FFFF (its Char production).
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Junit,
    Markdown,
}

/// Checks that `dir` can take the report files before any claim runs.
pub fn prepare_out(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("timelines")).with_context(|| {
        format!(
            "cannot create --out directory {}: choose a writable directory",
            dir.display()
        )
    })?;
    let probe = dir.join(".netclaim-write-test");
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "--out directory {} is not writable: choose a writable directory",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

pub fn write_out(dir: &Path, report: &Report) -> Result<()> {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("report.json", &report.json())?;
    write(
        "recording.json",
        &serde_json::to_string_pretty(&report.recording())?,
    )?;
    write("junit.xml", &report.junit())?;
    write("report.md", &report.markdown())?;
    for c in report.claims.iter().filter(|c| !c.timelines.is_empty()) {
        write(
            &format!("timelines/{}.svg", c.id),
            &crate::svg::document(&c.id, &c.timelines),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_markup_and_drops_control_characters() {
        assert_eq!(xml("a<b>&\"c\"\x07"), "a&lt;b&gt;&amp;&quot;c&quot;");
        assert_eq!(xml("\x1b[2J\u{fffe}\u{ffff}ok"), "[2Jok");
    }

    fn claim_with(timeline: serde_json::Value) -> ClaimReport {
        serde_json::from_value(serde_json::json!({
            "id": "syn.x", "source": "s", "statement": "s", "lab": "l", "action": "a",
            "verdict": "holds", "reason": "", "duration_ms": 0,
            "claimed": {}, "expected": {}, "observed": {},
            "claim_checks": [], "model_checks": [], "model_agrees": true, "evidence": "",
            "timelines": [timeline]
        }))
        .expect("a claim report")
    }

    // HZ=250: a 4 s timer sits in wheel level 2 and may fire 64 + 1 jiffies = 260 ms late;
    // 1 ms more for the gap between a SYN's capture and the arming of its timer.
    #[test]
    fn timer_fidelity_uses_microseconds_when_the_report_has_them() {
        let late = claim_with(serde_json::json!({
            "label": "t", "observed_ms": [0, 4261], "observed_us": [0, 4_261_400],
            "predicted_ms": [0, 4000]
        }));
        let t = TimingFidelity::of(&[late], 250).expect("one interval");
        assert_eq!((t.intervals, t.outside), (1, 1));
        assert!((t.worst_error_ms - 261.4).abs() < 1e-9);
        assert!((t.worst_allowed_ms - 261.0).abs() < 1e-9);

        let within = claim_with(serde_json::json!({
            "label": "t", "observed_ms": [0, 4260], "observed_us": [0, 4_260_900],
            "predicted_ms": [0, 4000]
        }));
        assert_eq!(
            TimingFidelity::of(&[within], 250).map(|t| t.outside),
            Some(0)
        );
    }

    #[test]
    fn timer_fidelity_allows_whole_ms_truncation_in_older_reports() {
        let old = claim_with(serde_json::json!({
            "label": "t", "observed_ms": [0, 4262], "predicted_ms": [0, 4000]
        }));
        let t = TimingFidelity::of(&[old], 250).expect("one interval");
        assert_eq!(t.outside, 0);
        assert!((t.worst_allowed_ms - 262.0).abs() < 1e-9);
        let too_late = claim_with(serde_json::json!({
            "label": "t", "observed_ms": [0, 4263], "predicted_ms": [0, 4000]
        }));
        assert_eq!(
            TimingFidelity::of(&[too_late], 250).map(|t| t.outside),
            Some(1)
        );
    }

    #[test]
    fn md_cells_keep_pipes_literal() {
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
        assert_eq!(
            md_cell("<script>x</script> & y"),
            "&lt;script&gt;x&lt;/script&gt; &amp; y"
        );
    }
}
