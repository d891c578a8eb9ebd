//! Recording a check in the statement's list or the model's, and exact comparisons.

use crate::outcome::{Check, Outcome};
use crate::text::Shown;

/// Which comparison list a schedule check goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// The source's statement: decides the verdict.
    Statement,
    /// The model's prediction for this kernel: asserted by the tests.
    Model,
}

impl Against {
    /// Records a check in `outcome`'s list for this comparison: its claim checks or its
    /// model checks.
    pub fn record(
        self,
        outcome: &mut Outcome,
        what: &str,
        expected: impl std::fmt::Display,
        observed: impl std::fmt::Display,
        ok: bool,
    ) {
        match self {
            Against::Statement => outcome.claim_check(what, expected, observed, ok),
            Against::Model => outcome.model_check(what, expected, observed, ok),
        }
    }

    /// Records a complete check (one that carries its timing) in `outcome`'s list.
    pub fn record_check(self, outcome: &mut Outcome, check: Check) {
        match self {
            Against::Statement => outcome.claim_checks.push(check),
            Against::Model => outcome.model_checks.push(check),
        }
    }
}

/// Checks an exact value against the statement or the model.
pub fn check_eq<T: PartialEq + Shown>(
    outcome: &mut Outcome,
    against: Against,
    what: &str,
    expected: T,
    observed: T,
) {
    let ok = expected == observed;
    against.record(outcome, what, expected.shown(), observed.shown(), ok);
}
