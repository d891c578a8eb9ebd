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

/// The exit code from the claims' verdicts (`run`, `kernels`; `judge` passes a `skipped`
/// for each claim it could not judge again): [`ERROR`] when a claim ended in `error` or
/// the harness failed otherwise (`harness_failed`: an output not written, a VM that
/// brought no report), else [`DRIFT`] when verdicts drifted (from a baseline, or from the
/// recording), else [`SKIPPED`], else [`INCONCLUSIVE`], else [`OK`].
pub fn of_run(
    verdicts: impl IntoIterator<Item = netclaim_suites::Verdict>,
    harness_failed: bool,
    drifted: bool,
) -> u8 {
    use netclaim_suites::Verdict;
    let verdicts: Vec<Verdict> = verdicts.into_iter().collect();
    if harness_failed || verdicts.contains(&Verdict::Error) {
        ERROR
    } else if drifted {
        DRIFT
    } else if verdicts.contains(&Verdict::Skipped) {
        SKIPPED
    } else if verdicts.contains(&Verdict::Inconclusive) {
        INCONCLUSIVE
    } else {
        OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netclaim_suites::Verdict::{self, *};

    /// Every verdict that alone leaves the run at exit 0.
    const REACHED: [Verdict; 3] = [Holds, Refuted, NotApplicable];

    fn with(v: Verdict) -> Vec<Verdict> {
        let mut all = REACHED.to_vec();
        all.push(v);
        all
    }

    #[test]
    fn every_claim_reached_a_verdict_is_ok() {
        assert_eq!(of_run(REACHED, false, false), OK);
        assert_eq!(of_run([Refuted], false, false), OK);
    }

    #[test]
    fn an_error_verdict_or_a_harness_failure_is_error_whatever_else() {
        assert_eq!(of_run(with(Error), false, false), ERROR);
        assert_eq!(of_run([Error, Skipped, Inconclusive], false, true), ERROR);
        assert_eq!(of_run(REACHED, true, false), ERROR);
        assert_eq!(of_run([], true, true), ERROR);
    }

    #[test]
    fn drift_comes_before_skipped_and_inconclusive() {
        assert_eq!(of_run(REACHED, false, true), DRIFT);
        assert_eq!(of_run([Skipped, Inconclusive], false, true), DRIFT);
    }

    #[test]
    fn skipped_comes_before_inconclusive() {
        assert_eq!(of_run(with(Skipped), false, false), SKIPPED);
        assert_eq!(of_run([Inconclusive, Skipped], false, false), SKIPPED);
    }

    #[test]
    fn inconclusive_is_the_last_rung_before_ok() {
        assert_eq!(of_run(with(Inconclusive), false, false), INCONCLUSIVE);
    }
}
