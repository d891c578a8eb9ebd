//! Runs claims concurrently, each in its own labs, with progress.
//!
//! Claims mostly sleep on kernel timers, so they all start at once (bounded by `--jobs`):
//! the run takes about as long as its longest claim. Each claim runs under the rules of
//! [`netclaim_suites::executor`] (its own thread, a panic or a harness failure is `error`,
//! a hard deadline), the same as `cargo test`'s claim cases.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use netclaim_suites::{executor, Claim, Ctx, Outcome, Verdict};

use crate::channel::{Parent, RunEvent};

/// One finished claim.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The claim.
    pub claim: Claim,
    /// What it produced.
    pub outcome: Outcome,
    /// How long it took.
    pub took: Duration,
}

/// Runs `claims`, at most `jobs` at a time, reporting progress on stderr. Claims that
/// mostly wait on kernel timers ([`Claim::mostly_waits`]) start at once and do not count
/// against `jobs`: the limit is for claims whose work (lab set-up, tool start-up) needs
/// the CPU. Behind the `parent`'s busy gate, those other claims wait until the gate's file
/// exists (`netclaim kernels` lets several VMs start their long claims at once, then one
/// VM at a time do its CPU-heavy part); the parent is told when the waiting claims are
/// under way and when only they are left. Returns the outcomes in catalog order.
pub fn run(
    claims: &[Claim],
    ctx: &Ctx,
    jobs: usize,
    quiet: bool,
    parent: &Parent,
) -> Vec<Finished> {
    run_with(claims, ctx, jobs, quiet, executor::deadline, parent)
}

/// [`run`] with a chosen deadline per claim.
fn run_with(
    claims: &[Claim],
    ctx: &Ctx,
    jobs: usize,
    quiet: bool,
    deadline: fn(&Claim) -> Duration,
    parent: &Parent,
) -> Vec<Finished> {
    let gate = parent.gate.as_deref();
    let total = claims.len();
    let bar = progress_bar(total, quiet);
    let (tx, rx) = mpsc::channel::<(usize, Outcome, Duration)>();
    let mut started: Vec<Option<Instant>> = vec![None; total];
    let mut results: Vec<Option<(Outcome, Duration)>> = vec![None; total];
    // Longest first, so the two-minute claims start at once and short ones fill around
    // them when --jobs is limited.
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(claims[i].estimate));
    let mut queue = order.into_iter();
    // Claims running that count against `jobs`.
    let mut running = 0usize;
    let mut done = 0usize;

    let launch = |i: usize, started: &mut Vec<Option<Instant>>| {
        let claim = claims[i];
        let ctx = ctx.clone();
        let thread_tx = tx.clone();
        started[i] = Some(Instant::now());
        if let Err(outcome) = executor::spawn(claim, ctx, move |outcome, took| {
            let _ = thread_tx.send((i, outcome, took));
        }) {
            let _ = tx.send((i, *outcome, Duration::ZERO));
        }
    };

    // Deferred claims start once the short claims they wait for have finished.
    let mut deferred: Vec<usize> = Vec::new();
    // The next claim to start, taken from the queue while it waits for a slot or the gate.
    let mut held: Option<usize> = None;
    // Behind a gate: says when the claims that wait on kernel timers are under way.
    let mut settle = gate.map(|_| crate::settle::Settle::new());
    // Whether the parent knows that only claims waiting on kernel timers are left.
    let mut only_waiting_told = false;
    let waited_for = |results: &[Option<(Outcome, Duration)>]| {
        claims
            .iter()
            .zip(results)
            .any(|(c, r)| c.deferred_ones_wait_for() && r.is_none())
    };
    while done < total {
        loop {
            if held.is_none() {
                held = if waited_for(&results) {
                    queue.by_ref().find(|&i| {
                        if claims[i].deferred() {
                            deferred.push(i);
                            false
                        } else {
                            true
                        }
                    })
                } else {
                    deferred.pop().or_else(|| queue.next())
                };
            }
            let Some(i) = held else { break };
            let counts = !claims[i].mostly_waits();
            let gated = gate.is_some_and(|g| !g.exists());
            if counts && (gated || running >= jobs.max(1)) {
                break;
            }
            held = None;
            launch(i, &mut started);
            running += usize::from(counts);
        }
        if settle.as_mut().is_some_and(|s| s.poll()) {
            parent.send(RunEvent::Settled);
        }
        bar.set_message(status_line(claims, &started, &results));
        bar.tick();
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok((i, outcome, took)) => {
                if results[i].is_some() {
                    continue; // already reported as past its deadline
                }
                report_line(&bar, quiet, &claims[i], &outcome, took, done + 1, total);
                results[i] = Some((outcome, took));
                running -= usize::from(!claims[i].mostly_waits());
                done += 1;
                bar.inc(1);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                for i in 0..total {
                    let (Some(t0), None) = (started[i], &results[i]) else {
                        continue;
                    };
                    let limit = deadline(&claims[i]);
                    if t0.elapsed() > limit {
                        let outcome = executor::abandoned(&claims[i], limit);
                        report_line(
                            &bar,
                            quiet,
                            &claims[i],
                            &outcome,
                            t0.elapsed(),
                            done + 1,
                            total,
                        );
                        results[i] = Some((outcome, t0.elapsed()));
                        running -= usize::from(!claims[i].mostly_waits());
                        done += 1;
                        bar.inc(1);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !only_waiting_told
            && claims
                .iter()
                .zip(&results)
                .all(|(c, r)| c.mostly_waits() || r.is_some())
            && results.iter().any(Option::is_some)
        {
            only_waiting_told = true;
            parent.send(RunEvent::OnlyWaitingLeft);
        }
    }
    bar.finish_and_clear();
    claims
        .iter()
        .zip(results)
        .map(|(claim, r)| {
            let (outcome, took) = r.unwrap_or_else(|| {
                (
                    Outcome::forced(Verdict::Error, "the runner lost this claim's result"),
                    Duration::ZERO,
                )
            });
            Finished {
                claim: *claim,
                outcome,
                took,
            }
        })
        .collect()
}

fn progress_bar(total: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // No steady tick: its thread is spawned with a panic on failure (under a pids limit);
    // the run loop below wakes twice a second and ticks the bar itself.
    bar
}

/// "running 12 (longest: syn.default-timeout, ~95 s left)".
fn status_line(
    claims: &[Claim],
    started: &[Option<Instant>],
    results: &[Option<(Outcome, Duration)>],
) -> String {
    let running: Vec<(usize, Duration)> = started
        .iter()
        .enumerate()
        .filter(|(i, s)| s.is_some() && results[*i].is_none())
        .map(|(i, s)| {
            let elapsed = s.map(|s| s.elapsed()).unwrap_or_default();
            (i, claims[i].estimate.saturating_sub(elapsed))
        })
        .collect();
    match running.iter().max_by_key(|(_, left)| *left) {
        Some((i, left)) => format!(
            "running {} (longest: {}, ~{} s left)",
            running.len(),
            claims[*i].id,
            left.as_secs()
        ),
        None => String::new(),
    }
}

/// One line per finished claim: above the bar on a terminal, plain on stderr otherwise.
fn report_line(
    bar: &ProgressBar,
    quiet: bool,
    claim: &Claim,
    o: &Outcome,
    took: Duration,
    n: usize,
    total: usize,
) {
    let verdict = o.verdict();
    let mut line = format!(
        "[{n:>2}/{total}] {:<14} {} ({:.2} s)",
        verdict.as_str(),
        claim.id,
        took.as_secs_f64()
    );
    if matches!(
        verdict,
        Verdict::Skipped | Verdict::NotApplicable | Verdict::Error | Verdict::Inconclusive
    ) {
        line.push_str(&format!(": {}", o.reason()));
    }
    if quiet {
        return;
    }
    if bar.is_hidden() {
        crate::out::errln!("{line}");
    } else {
        // indicatif writes to the terminal itself: escaped as everything else printed.
        bar.println(crate::out::escape_controls(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netclaim_suites::claim::{Needs, Observation, Steps, TwoSteps};

    fn unjudged(_: &(), _: &Ctx) -> Outcome {
        Outcome::default()
    }

    fn claim(id: &'static str, steps: &'static dyn TwoSteps) -> Claim {
        Claim {
            id,
            source: "test.txt",
            statement: "test",
            lab: "none",
            action: "none",
            needs: Needs::default(),
            estimate: Duration::from_secs(1),
            run: netclaim_suites::claim::Procedure::Rust(steps),
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            hz: 250,
            kernel: "test".into(),
        }
    }

    /// Without privilege a claim is skipped before it runs, so these need root.
    fn privileged() -> bool {
        netclaim_harness::privilege::check().is_ok()
    }

    #[test]
    fn a_panicking_claim_is_an_error_and_the_others_still_finish() {
        let claims = [
            claim(
                "t.panics",
                &Steps::<()> {
                    measure: |_| panic!("boom"),
                    judge: unjudged,
                },
            ),
            claim(
                "t.fine",
                &Steps::<()> {
                    measure: |_| Ok(Observation::Forced(Verdict::NotApplicable, "ok".into())),
                    judge: unjudged,
                },
            ),
        ];
        let done = run(&claims, &ctx(), 2, true, &Parent::default());
        if !privileged() {
            assert!(done.iter().all(|f| f.outcome.verdict() == Verdict::Skipped));
            return;
        }
        assert_eq!(done[0].outcome.verdict(), Verdict::Error);
        assert_eq!(done[0].outcome.reason(), "the claim panicked: boom");
        assert_eq!(done[1].outcome.verdict(), Verdict::NotApplicable);
    }

    static EVENTS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

    fn note(e: &'static str) {
        EVENTS.lock().unwrap().push(e);
    }

    // With --jobs 1 a claim that waits on kernel timers took the only slot, and every short
    // claim waited until it ended (the catalog took 210 s instead of 140 s in a VM).
    #[test]
    fn a_claim_that_waits_on_timers_takes_no_job_slot() {
        let mut waits = claim(
            "t.waits",
            &Steps::<()> {
                measure: |_| {
                    note("start waits");
                    std::thread::sleep(Duration::from_millis(800));
                    note("end waits");
                    Ok(Observation::Forced(Verdict::NotApplicable, "ok".into()))
                },
                judge: unjudged,
            },
        );
        waits.estimate = Claim::WAITS_FROM;
        let short = claim(
            "t.short",
            &Steps::<()> {
                measure: |_| {
                    note("short");
                    Ok(Observation::Forced(Verdict::NotApplicable, "ok".into()))
                },
                judge: unjudged,
            },
        );
        let done = run(&[waits, short], &ctx(), 1, true, &Parent::default());
        if !privileged() {
            assert!(done.iter().all(|f| f.outcome.verdict() == Verdict::Skipped));
            return;
        }
        let events = EVENTS.lock().unwrap().clone();
        let at = |e| events.iter().position(|x| *x == e);
        assert!(at("short") < at("end waits"), "{events:?}");
        assert!(at("start waits").is_some(), "{events:?}");
    }

    // netclaim kernels: a VM's claims that need the CPU wait for their turn (the gate
    // file); those that wait on kernel timers start at once.
    #[test]
    fn the_busy_gate_holds_back_only_claims_that_need_the_cpu() {
        static GATED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
        let dir = tempfile::tempdir().unwrap();
        let gate = dir.path().join("go");
        let mut waits = claim(
            "t.gate-waits",
            &Steps::<()> {
                measure: |_| {
                    GATED.lock().unwrap().push("waits");
                    std::thread::sleep(Duration::from_millis(600));
                    Ok(Observation::Forced(Verdict::NotApplicable, "ok".into()))
                },
                judge: unjudged,
            },
        );
        waits.estimate = Claim::WAITS_FROM;
        let short = claim(
            "t.gate-short",
            &Steps::<()> {
                measure: |_| {
                    GATED.lock().unwrap().push("short");
                    Ok(Observation::Forced(Verdict::NotApplicable, "ok".into()))
                },
                judge: unjudged,
            },
        );
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                GATED.lock().unwrap().push("gate opens");
                std::fs::write(&gate, b"").unwrap();
            })
        };
        let done = run_with(
            &[waits, short],
            &ctx(),
            4,
            true,
            executor::deadline,
            &Parent::gated(gate.clone()),
        );
        opener.join().unwrap();
        if !privileged() {
            assert!(done.iter().all(|f| f.outcome.verdict() == Verdict::Skipped));
            return;
        }
        let events = GATED.lock().unwrap().clone();
        assert_eq!(events, vec!["waits", "gate opens", "short"]);
    }

    #[test]
    fn a_claim_past_its_deadline_is_an_error_and_does_not_hold_up_the_run() {
        let claims = [claim(
            "t.hangs",
            &Steps::<()> {
                measure: |_| {
                    std::thread::sleep(Duration::from_secs(30));
                    Ok(Observation::Observed(()))
                },
                judge: unjudged,
            },
        )];
        let start = Instant::now();
        let done = run_with(
            &claims,
            &ctx(),
            1,
            true,
            |_| Duration::from_millis(300),
            &Parent::default(),
        );
        if !privileged() {
            assert_eq!(done[0].outcome.verdict(), Verdict::Skipped);
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(done[0].outcome.verdict(), Verdict::Error);
        assert!(done[0].outcome.reason().contains("hard deadline"));
    }
}
