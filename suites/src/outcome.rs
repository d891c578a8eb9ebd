//! What judging a claim produces: checks, figures, evidence and the verdict they decide
//! ([`Outcome`]), and the facts of the run it is judged in ([`Ctx`]). A leaf: it imports
//! nothing of the crate, so the rooms (measure, judge, models) and the claims import it
//! without reaching back into [`crate::claim`], which calls them.

use std::fmt;
use std::time::Duration;

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
        if let Some(v) = self.value.as_ref().filter(|v| !v.trim().is_empty()) {
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

    /// Whether the measurement lies within the window stretched by `factor` (its end
    /// times it, its start over it), give or take the measured error: what a lab whose
    /// round trip was `factor` times its wire's could have made of a time that counts
    /// round trips, at most (every part of it a round trip).
    pub fn within_stretch(&self, factor: f64) -> bool {
        let [min, max] = self.window_ms;
        // Outside the stretched window is outside the window on the same side.
        let outside = (min / factor - self.observed_ms)
            .max(self.observed_ms - max * factor)
            .max(0.0);
        outside <= self.error_on_its_side_ms()
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
    /// Why the lab did not provide what the statement's times assume (a wire whose round
    /// trip the machine or an emulator stretched): a timing check the statement fails is
    /// then no observation of the behaviour, and the verdict is inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premise_unmet: Option<String>,
    /// How many times its wire's round trip the lab's was, when [`Self::premise_unmet`]:
    /// a timing missed by more than that explains is still observed (absent in reports
    /// from before it was kept, where any missed timing was excused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premise_stretch: Option<f64>,
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
            None if self.fails_only_for_want_of_its_premise() => Verdict::Inconclusive,
            None if any(CheckState::Fail) => Verdict::Refuted,
            None if any(CheckState::Inconclusive) => Verdict::Inconclusive,
            None => Verdict::Holds,
        }
    }

    /// Whether the statement checks that fail are all timings and the lab missed the
    /// premise they rest on ([`Self::premise_unmet`]) by enough to explain each miss: a
    /// round trip 1.13 times the wire's does not explain a repair 3.6 times later than
    /// stated.
    fn fails_only_for_want_of_its_premise(&self) -> bool {
        let mut failing = self
            .claim_checks
            .iter()
            .filter(|c| c.state() == CheckState::Fail)
            .peekable();
        self.premise_unmet.is_some()
            && failing.peek().is_some()
            && failing.all(|c| {
                c.timing
                    .as_ref()
                    .is_some_and(|t| self.premise_stretch.is_none_or(|f| t.within_stretch(f)))
            })
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
            (None, Verdict::Inconclusive) if self.fails_only_for_want_of_its_premise() => {
                format!(
                    "{}: {}",
                    self.premise_unmet.as_deref().unwrap_or_default(),
                    of(CheckState::Fail)
                )
            }
            (None, Verdict::Inconclusive) => of(CheckState::Inconclusive),
            // Refuted by a timing the unmet premise does not explain: say why it counts.
            (None, Verdict::Refuted) => match (&self.premise_unmet, self.premise_stretch) {
                (Some(why), Some(factor))
                    if self.claim_checks.iter().any(|c| {
                        c.state() == CheckState::Fail
                            && c.timing.as_ref().is_some_and(|t| !t.within_stretch(factor))
                    }) =>
                {
                    format!(
                        "{} ({why}: {factor:.2} times the wire's, which does not explain the miss)",
                        of(CheckState::Fail)
                    )
                }
                _ => of(CheckState::Fail),
            },
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

/// Shared facts for claims of one run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `CONFIG_HZ` used for timer-slack bounds.
    pub hz: u32,
    /// `uname -r`.
    pub kernel: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command that printed nothing leaves no dangling comma ("8.00 s, 1 SYN, ").
    #[test]
    fn an_empty_value_is_left_out_of_the_summary() {
        let f = Figures {
            duration_ms: Some(8000),
            syn_count: Some(1),
            value: Some(String::new()),
            ..Figures::default()
        };
        assert_eq!(f.summary(), "8.00 s, 1 SYN");
    }

    #[test]
    fn a_claim_without_checks_is_an_error_not_a_pass() {
        assert_eq!(Outcome::default().verdict(), Verdict::Error);
    }

    /// A stated time the lab could not give (its wire's round trip stretched) is no
    /// observation: inconclusive with the reason; a failed check that is not a timing
    /// still refutes.
    #[test]
    fn a_timing_failed_for_want_of_its_premise_is_inconclusive_not_refuted() {
        let late = Check {
            what: "first retransmission".into(),
            expected: "0.600 s within [0.540, 0.660] s".into(),
            observed: "1.000 s".into(),
            ok: false,
            timing: Some(Timing {
                window_ms: [540.0, 660.0],
                observed_ms: 1000.0,
                error_ms: 1.0,
                early_error_ms: 0.0,
                error_from: "probe".into(),
            }),
        };
        let mut o = Outcome {
            claim_checks: vec![late.clone()],
            ..Outcome::default()
        };
        assert_eq!(o.verdict(), Verdict::Refuted);
        o.premise_unmet = Some("the lab's round trip was 334.4 ms, not the 200.0 ms".into());
        assert_eq!(o.verdict(), Verdict::Inconclusive);
        assert!(
            o.reason().starts_with("the lab's round trip was 334.4 ms"),
            "{}",
            o.reason()
        );
        // The same with how much the round trip stretched: 1.672 times 660 ms is 1104 ms,
        // which explains 1000 ms ...
        o.premise_stretch = Some(334.4 / 200.0);
        assert_eq!(o.verdict(), Verdict::Inconclusive, "{}", o.reason());
        // ... but not 2000 ms, nor an RTO 210 ms early of a stated 1 s minimum on a 10 ms
        // wire at 13.3 ms (net.rto.rfc6298-one-second-minimum, once inconclusive here).
        let mut far = o.clone();
        far.claim_checks[0].timing.as_mut().unwrap().observed_ms = 2000.0;
        assert_eq!(far.verdict(), Verdict::Refuted, "{}", far.reason());
        assert!(
            far.reason()
                .ends_with("1.67 times the wire's, which does not explain the miss)"),
            "{}",
            far.reason()
        );
        let early = Timing {
            window_ms: [1000.0, f64::INFINITY],
            observed_ms: 210.0,
            error_ms: 1.0,
            early_error_ms: 1.0,
            error_from: "probe".into(),
        };
        assert!(!early.within_stretch(1.33));
        assert!(Timing {
            observed_ms: 760.0,
            ..early
        }
        .within_stretch(1.33));
        // A claim that holds under an unmet premise has no reason to give.
        let mut holds = o.clone();
        holds.claim_checks[0].ok = true;
        assert_eq!(holds.verdict(), Verdict::Holds);
        assert_eq!(holds.reason(), "");
        o.claim_checks.push(Check {
            what: "errno".into(),
            expected: "ETIMEDOUT".into(),
            observed: "none".into(),
            ok: false,
            timing: None,
        });
        assert_eq!(o.verdict(), Verdict::Refuted);
        // Refuted by the errno, not by the timing the stretch explains.
        assert!(!o.reason().contains("does not explain"), "{}", o.reason());
    }
}
