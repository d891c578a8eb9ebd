//! One set of rules for running a claim, the same behind `netclaim run`, `cargo test`'s
//! claim cases and the `run_claim` example: the claim runs on a thread of its own named
//! `claim:<id>`; a panic is an `error` verdict naming it; a thread that cannot be started
//! is the harness's `error` (out of threads or processes); a claim that outlives its hard
//! deadline is reported as `error` and abandoned (its tools carry their own deadlines and
//! die with the process through their parent-death signal; its labs are swept when the
//! process exits). Unmet needs (a missing tool, no privilege) are `skipped` by
//! [`Claim::execute`] itself.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::claim::{error_reason, Claim, Ctx, Outcome, Procedure, Verdict};

/// The hard deadline of a claim: its estimate with generous headroom, and never shorter
/// than the harness's own deadlines for what it runs (a claim file's `run.timeout`, or
/// the default one, for every value of a sweep in the turns it runs them:
/// [`crate::models::limit`]) plus the same minute, so a claim whose tools are still within their
/// deadlines is not abandoned. Tools have their own shorter deadlines; this only catches
/// a harness that hangs. On a machine that starts processes slowly (emulation, load) the
/// estimate's part is stretched by the measured slowness
/// ([`netclaim_harness::slowness::stretch`]), as the built-in claims' tool deadlines are:
/// under TCG two wget claims of 6 s each were abandoned at 72 s while still working.
pub fn deadline(claim: &Claim) -> Duration {
    let headroom = Duration::from_secs(60);
    let from_estimate = netclaim_harness::slowness::stretch(
        claim.estimate.saturating_mul(2).saturating_add(headroom),
    );
    match claim.run {
        Procedure::Data(d) => {
            from_estimate.max(crate::models::limit(&d.spec).saturating_add(headroom))
        }
        Procedure::Rust(_) => from_estimate,
    }
}

/// Runs `claim` on the calling thread; a panic becomes an `error` outcome.
pub fn execute(claim: &Claim, ctx: &Ctx) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| claim.execute(ctx))).unwrap_or_else(|payload| {
        Outcome::forced(
            Verdict::Error,
            format!("the claim panicked: {}", panic_text(&payload)),
        )
    })
}

/// Starts `claim` on a thread of its own and calls `done` there with its outcome and how
/// long it took. When no thread can be started, returns the harness's `error` outcome
/// instead (and `done` is not called).
pub fn spawn(
    claim: Claim,
    ctx: Ctx,
    done: impl FnOnce(Outcome, Duration) + Send + 'static,
) -> Result<(), Box<Outcome>> {
    let name = format!("claim:{}", claim.id);
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let start = Instant::now();
            let outcome = execute(&claim, &ctx);
            done(outcome, start.elapsed());
        })
        .map(drop)
        .map_err(|e| {
            let e = netclaim_harness::Error::thread_spawn(name, e);
            Box::new(Outcome::forced(Verdict::Error, error_reason(&e.into())))
        })
}

/// The outcome of a claim that is still running `limit` after it started.
pub fn abandoned(claim: &Claim, limit: Duration) -> Outcome {
    Outcome::forced(
        Verdict::Error,
        format!(
            "no result after its hard deadline of {} s (estimate {} s); abandoned",
            limit.as_secs(),
            claim.estimate.as_secs()
        ),
    )
}

/// Runs one claim under every rule above and waits for its outcome (at most its
/// [`deadline`]); returns the outcome and how long it took.
pub fn run_one(claim: &Claim, ctx: &Ctx) -> (Outcome, Duration) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    if let Err(outcome) = spawn(*claim, ctx.clone(), move |o, took| {
        let _ = tx.send((o, took));
    }) {
        return (*outcome, Duration::ZERO);
    }
    let limit = deadline(claim);
    match rx.recv_timeout(limit) {
        Ok(done) => done,
        Err(_) => (abandoned(claim, limit), start.elapsed()),
    }
}

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim::{Needs, Observation, Steps};

    fn unjudged(_: &(), _: &Ctx) -> Outcome {
        Outcome::default()
    }

    const PANICS: Steps<()> = Steps {
        measure: |_| panic!("boom"),
        judge: unjudged,
    };

    const NOT_HERE: Steps<()> = Steps {
        measure: |_| {
            Ok(Observation::Forced(
                Verdict::NotApplicable,
                "not here".into(),
            ))
        },
        judge: unjudged,
    };

    fn claim(steps: &'static Steps<()>) -> Claim {
        Claim {
            id: "t.executor",
            source: "test.txt",
            statement: "test",
            lab: "none",
            action: "none",
            needs: Needs::default(),
            estimate: Duration::from_secs(1),
            run: Procedure::Rust(steps),
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            hz: 250,
            kernel: "test".into(),
        }
    }

    #[test]
    fn a_panic_is_an_error_naming_it_and_a_forced_verdict_passes_through() {
        let (panicked, _) = run_one(&claim(&PANICS), &ctx());
        let (forced, _) = run_one(&claim(&NOT_HERE), &ctx());
        if netclaim_harness::privilege::check().is_err() {
            // Without privilege (and no user namespace entered) both are skipped first.
            assert_eq!(panicked.verdict(), Verdict::Skipped);
            return;
        }
        assert_eq!(panicked.verdict(), Verdict::Error);
        assert_eq!(panicked.reason(), "the claim panicked: boom");
        assert_eq!(forced.verdict(), Verdict::NotApplicable);
        assert_eq!(forced.reason(), "not here");
    }

    #[test]
    fn the_deadline_leaves_headroom_over_the_estimate() {
        let c = claim(&NOT_HERE);
        // Twice the 1 s estimate plus 60 s, stretched by how slowly this machine starts
        // processes right now (×1 on an idle machine, at most ×30).
        let d = deadline(&c);
        assert!(
            d >= Duration::from_secs(62) && d <= Duration::from_secs(62 * 30),
            "{d:?}"
        );
        let abandoned = abandoned(&c, d);
        assert_eq!(abandoned.verdict(), Verdict::Error);
        assert!(
            abandoned
                .reason()
                .contains(&format!("hard deadline of {} s", d.as_secs())),
            "{}",
            abandoned.reason()
        );
    }

    // `setsid sh -c 'sleep 322 &'`-like commands with a run.timeout of minutes were
    // abandoned at 62 s (twice a 1 s estimate plus 60 s), long before their own deadline.
    #[test]
    fn a_claim_files_deadline_is_never_shorter_than_its_tools_own() {
        let spec = crate::spec::parse(
            "[[claim]]\nid = \"t.slow\"\nsource = \"s\"\nstatement = \"s\"\n\
             lab = { server = \"refuse\" }\n\
             run = { command = [\"sh\", \"-c\", \"sleep 100\"], timeout = \"200s\" }\n\
             expect = { exit = 0 }\n",
            &crate::spec::Origin::BuiltIn("t.toml"),
        )
        .expect("valid")
        .remove(0);
        let data: &'static crate::claim::DataClaim = Box::leak(Box::new(crate::claim::DataClaim {
            spec: spec.spec,
            origin: spec.origin,
            dir: None,
        }));
        let c = Claim {
            estimate: crate::models::estimate(&data.spec),
            run: Procedure::Data(data),
            ..claim(&NOT_HERE)
        };
        assert_eq!(c.estimate, Duration::from_secs(1));
        // 200 s for the command, 1 s for its lab, 60 s of headroom.
        assert_eq!(deadline(&c), Duration::from_secs(261));
    }
}
