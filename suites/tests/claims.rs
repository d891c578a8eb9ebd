//! Every claim of the catalog as its own test case.
//!
//! A case passes when the claim produced a verdict and every *prediction* check passed:
//! the measurement agrees with what the kernel timing model and the tool options predict
//! for this kernel and these tool versions. A `refuted` verdict is a finding and passes;
//! a changed behaviour (a kernel or tool upgrade) fails. Without root, or without a tool,
//! the case is reported as ignored with the reason.
//!
//! All cases run at once (they mostly sleep on kernel timers), so the binary takes about
//! as long as its longest claim. A last case, `host.untouched`, waits for the others and
//! proves the host's own network state is byte-identical to before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netclaim_harness::hostcheck::HostSnapshot;
use netclaim_suites::claim::Procedure;
use netclaim_suites::spec::Origin;
use netclaim_suites::{catalog, Claim, Ctx, Outcome, Verdict};

/// Whether a claim comes from the user's files (`NETCLAIM_CLAIMS`): those are
/// requirements, so a refuted one fails its case.
fn from_user_file(claim: &Claim) -> bool {
    matches!(claim.run, Procedure::Data(d) if matches!(d.origin, Origin::File(_)))
}

fn judge(claim: &Claim, o: &Outcome) -> Result<(), Failed> {
    let report = || {
        let mut text = format!("{}: verdict {} ({})\n", claim.id, o.verdict(), o.reason());
        for c in o
            .claim_checks
            .iter()
            .map(|c| ("statement", c))
            .chain(o.model_checks.iter().map(|c| ("model", c)))
        {
            text.push_str(&format!("  {:<9} {}\n", c.0, c.1));
        }
        for e in &o.evidence {
            text.push_str(&format!("  evidence:\n    {}\n", e.replace('\n', "\n    ")));
        }
        text
    };
    match o.verdict() {
        Verdict::Error => Err(format!("the harness failed\n{}", report()).into()),
        Verdict::Skipped => Err(format!("skipped after its needs were met\n{}", report()).into()),
        Verdict::NotApplicable if !o.model_agrees() => {
            Err(format!("not-applicable, but the model disagrees\n{}", report()).into())
        }
        Verdict::NotApplicable => Ok(()),
        Verdict::Refuted if from_user_file(claim) => Err(format!(
            "refuted: your claim does not hold on this kernel\n{}",
            report()
        )
        .into()),
        Verdict::Holds | Verdict::Inconclusive if from_user_file(claim) && o.model_agrees() => {
            Ok(())
        }
        Verdict::Holds | Verdict::Refuted | Verdict::Inconclusive if o.model_checks.is_empty() => {
            Err(format!(
                "no prediction was checked: this case could not fail\n{}",
                report()
            )
            .into())
        }
        // A timing miss within the measured error of this machine (emulation, load) is no
        // disagreement; every other prediction check must pass.
        Verdict::Holds | Verdict::Refuted | Verdict::Inconclusive if o.model_agrees() => {
            eprintln!(
                "{}: {} ({} prediction checks ok, {} inconclusive)",
                claim.id,
                o.verdict(),
                o.model_checks.len() - o.model_inconclusive(),
                o.model_inconclusive()
            );
            Ok(())
        }
        Verdict::Holds | Verdict::Refuted | Verdict::Inconclusive => Err(format!(
            "the measurement disagrees with the model's prediction for this kernel\n{}",
            report()
        )
        .into()),
    }
}

fn main() {
    // Without root, labs run in a user namespace of this process's own: entered first,
    // while the process is single-threaded (see netclaim_harness::userns).
    let _ = netclaim_harness::userns::enter_if_unprivileged();
    let mut args = Arguments::from_args();
    // NETCLAIM_CLAIMS=path[:path…] adds claim files as cases of their own.
    let claims = match catalog::with_files(&catalog::env_paths()) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("netclaim: NETCLAIM_CLAIMS: {e}");
            }
            std::process::exit(2);
        }
    };
    // The cases sleep on kernel timers, so run them all at once instead of at the default
    // of one per core (2 here), which would serialise the two-minute cases.
    args.test_threads.get_or_insert(claims.len() + 1);

    let privileged = netclaim_harness::privilege::check();
    if let Err(reason) = &privileged {
        eprintln!("netclaim: lab tests will be ignored: {reason}");
    }
    let ctx = Arc::new(Ctx::detect());
    let running = Arc::new(AtomicUsize::new(0));
    // Short claims the deferred ones wait for (as `netclaim run` schedules them), still
    // to finish; counted below once the selection is known.
    let waited_for = Arc::new(AtomicUsize::new(0));
    let mut waited_ids: Vec<&'static str> = Vec::new();

    let mut trials: Vec<Trial> = claims
        .into_iter()
        .map(|claim| {
            let ctx = Arc::clone(&ctx);
            let running = Arc::clone(&running);
            let long = claim.tier() == netclaim_suites::spec::Tier::Long;
            let waited_for = Arc::clone(&waited_for);
            if claim.deferred_ones_wait_for() {
                waited_ids.push(claim.id);
            }
            Trial::ignorable_test(claim.id, move || {
                let _guard = Running::enter(&running);
                let _done = claim
                    .deferred_ones_wait_for()
                    .then(|| Finished(&waited_for));
                if claim.deferred() {
                    // Wait for a condition, with a deadline: the short claims are done.
                    let since = std::time::Instant::now();
                    while waited_for.load(Ordering::SeqCst) > 0
                        && since.elapsed() < Duration::from_secs(300)
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                if let Some(reason) = claim.unmet_needs() {
                    return Ok(Completion::ignored_with(reason));
                }
                // The rules `netclaim run` runs a claim by: its own thread, a panic or a
                // harness failure is `error`, a hard deadline.
                let (outcome, _) = netclaim_suites::executor::run_one(&claim, &ctx);
                judge(&claim, &outcome).map(|()| Completion::Completed)
            })
            .with_kind("claim")
            // Long-tier claims (minutes) run with `-- --ignored` / `--include-ignored`.
            .with_ignored_flag(long)
        })
        .collect();

    waited_for.store(
        trials
            .iter()
            .filter(|t| {
                waited_ids.contains(&t.name()) && !args.is_ignored(t) && !args.is_filtered_out(t)
            })
            .count(),
        Ordering::SeqCst,
    );

    // The host check runs last and only when every lab case it follows is selected, so
    // that it compares the state before and after all of them.
    let lab_cases = trials
        .iter()
        .filter(|t| !args.is_ignored(t) && !args.is_filtered_out(t))
        .count();
    let host = Trial::ignorable_test("host.untouched", {
        let running = Arc::clone(&running);
        let before = privileged.is_ok().then(HostSnapshot::take);
        move || {
            let Some(before) = before else {
                return Ok(Completion::ignored_with("needs root to build labs"));
            };
            // Wait until the lab cases have started and all have finished.
            let started = std::time::Instant::now();
            while STARTED.load(Ordering::SeqCst) < lab_cases || running.load(Ordering::SeqCst) > 0 {
                if started.elapsed() > Duration::from_secs(900) {
                    return Err("lab cases still running after 900 s".into());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let diff = HostSnapshot::take().diff(&before);
            if diff.is_empty() {
                Ok(Completion::Completed)
            } else {
                Err(format!("the host's network state changed:\n{}", diff.join("\n")).into())
            }
        }
    })
    .with_kind("host");
    trials.push(host);
    libtest_mimic::run(&args, trials).exit();
}

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// Counts a lab case as running while alive.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        STARTED.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

/// Counts a short claim the deferred ones wait for down when it finishes.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
