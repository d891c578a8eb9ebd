//! The statement's checks: what a claim file's `expect` says, against the record.

use std::ops::Range;
use std::time::Duration;

use netclaim_harness::model::SynSchedule;
use netclaim_harness::tolerance::{
    give_up_window, schedule_windows, tool_deadline_window, Window, EARLY,
};
use nix::errno::Errno;

use crate::judge::checks::{check_eq, Against};
use crate::judge::connection;
use crate::judge::timing::{check_syns, check_timing, timing};
use crate::models::plan::{End, Plan};
use crate::outcome::{Check, Ctx, Outcome, Verdict};
use crate::record::attempt::Measured;
use crate::record::RunRecord;
use crate::spec::{Client, ExpectSpec};
use crate::text::secs;

/// The last non-empty line of `text`.
pub fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .unwrap_or_default()
}

/// Checks that `text` contains one of `needles`.
pub(crate) fn check_contains_any(
    o: &mut Outcome,
    against: Against,
    what: &str,
    text: &str,
    needles: &[String],
    ignore_case: bool,
) {
    let fold = |s: &str| {
        if ignore_case {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let hay = fold(text);
    let found = needles.iter().find(|n| hay.contains(&fold(n)));
    let expected = match needles {
        [one] => format!(
            "contains {one:?}{}",
            if ignore_case { " (any case)" } else { "" }
        ),
        _ => format!("contains one of {needles:?}"),
    };
    let observed = found
        .and_then(|n| {
            text.lines()
                .find(|l| fold(l).contains(&fold(n)))
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| last_line(text));
    against.record(o, what, expected, format!("{observed:?}"), found.is_some());
}

/// The duration window the statement's give-up time is judged with.
fn stated_window(
    expect: &ExpectSpec,
    stated: Duration,
    plan: &Plan,
    hz: u32,
    startup: Duration,
) -> Window {
    if let Some(t) = &expect.tolerance {
        let tol = t.around(stated).unwrap_or_default();
        return Window {
            min: stated.saturating_sub(tol),
            max: stated + tol,
        };
    }
    match (&plan.end, &plan.schedule) {
        // Judged with the slack of the timers this kernel really arms.
        (End::Kernel | End::NoLaterThanKernel, Some(schedule)) => {
            give_up_window(stated, schedule, hz, startup)
        }
        (End::AfterSyn(_), _) => crate::models::connection::window(stated, &plan.intervals, hz),
        _ => tool_deadline_window(stated),
    }
}

/// What a check of the run's end measures, by how the plan says it ends: the kernel's
/// SYN timers from the first SYN, a read timeout to the tool's FIN, or the tool's own
/// timer from its first packet.
fn measured_end(plan: &Plan, run: &RunRecord) -> Measured {
    match (&plan.end, &run.after) {
        (End::AfterSyn(_), Some(after)) => return connection::end_measured(after, run.duration()),
        (End::Rejected(_), _) => return run.timed().kernel_give_up(),
        _ => {}
    }
    match plan.end {
        End::Kernel | End::NoLaterThanKernel => run.timed().kernel_give_up(),
        End::ToolRead { .. } => run.until_close(),
        _ => run.timed().tool_timer(),
    }
}

/// The statement's checks into `o`; returns where its SYN checks (count, send times,
/// give-up) lie in `o.claim_checks`, for [`answered_before_its_timer`].
pub(crate) fn statement_checks(
    expect: &ExpectSpec,
    run: &RunRecord,
    plan: &Plan,
    hz: u32,
    startup: Duration,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) -> Range<usize> {
    let duration = run.duration();
    let syns = run.syn_times();
    let syn_checks_from = o.claim_checks.len();
    if let Some(times) = &expect.syn_times {
        let stated = SynSchedule {
            send_times: times.iter().map(|s| s.0).collect(),
            give_up: expect
                .duration
                .map_or_else(|| times.last().map(|s| s.0).unwrap_or_default(), |d| d.0),
        };
        let first = o.claim_checks.len();
        check_syns(
            o,
            Against::Statement,
            &stated,
            &run.timed(),
            &Ctx {
                hz,
                kernel: String::new(),
            },
            startup,
            expect.duration.is_some(),
        );
        for c in &mut o.claim_checks[first..] {
            c.what = what(&c.what);
        }
    } else {
        if let Some(d) = expect.duration {
            let window = stated_window(expect, d.0, plan, hz, startup);
            check_timing(
                o,
                Against::Statement,
                &what("give-up time"),
                d.0,
                window,
                &measured_end(plan, run),
            );
        }
        if let Some(n) = expect.syns {
            check_eq(o, Against::Statement, &what("SYN count"), n, syns.len());
        }
    }
    let syn_checks = syn_checks_from..o.claim_checks.len();
    // Bounds are timing checks too: a miss within the measured error is inconclusive.
    if expect.duration_at_least.is_some() || expect.duration_at_most.is_some() {
        let m = Measured {
            took: duration,
            ..measured_end(plan, run)
        };
        if let Some(d) = expect.duration_at_least {
            let min = d.0.saturating_sub(EARLY);
            let window = Window {
                min,
                max: duration.max(min),
            };
            o.claim_checks.push(Check {
                what: what("duration, at least"),
                expected: format!("≥ {} (less {} of clock jitter)", secs(d.0), secs(EARLY)),
                observed: secs(duration),
                ok: duration >= min,
                timing: Some(timing(window, duration, &m)),
            });
        }
        if let Some(d) = expect.duration_at_most {
            let window = Window {
                min: Duration::ZERO,
                max: d.0 + EARLY,
            };
            o.claim_checks.push(Check {
                what: what("duration, at most"),
                expected: format!("≤ {}", secs(d.0)),
                observed: secs(duration),
                ok: window.contains(duration),
                timing: Some(timing(window, duration, &m)),
            });
        }
    }
    if let (None, Some(n)) = (&run.after, expect.synacks) {
        // A connect client holding its connection (run.hold): what it heard.
        check_eq(
            o,
            Against::Statement,
            &what("SYN-ACKs the client heard from the peer"),
            n,
            run.synack_times_us.len(),
        );
    }
    if let Some(after) = &run.after {
        connection::statement_checks(expect, client_of(plan), after, what, o);
        if let Some(stated) = expect.first_retransmission {
            let window = match &expect.tolerance {
                Some(_) => stated_window(expect, stated.0, plan, hz, startup),
                None => crate::models::connection::window(stated.0, &[stated.0], hz),
            };
            connection::check_first_retransmission(after, stated.0, window, what, o);
        }
    }
    if let Some(e) = &expect.errno {
        let name = if run.connect_calls.is_some() {
            "connect() errno"
        } else {
            "errno"
        };
        check_eq(
            o,
            Against::Statement,
            &what(name),
            e.errno(),
            run.errno.map(Errno::from_raw),
        );
    }
    if let Some(code) = expect.exit {
        check_eq(
            o,
            Against::Statement,
            &what("exit code"),
            Some(code),
            run.exit_code,
        );
    }
    let before = o.claim_checks.len();
    for (key, texts, text) in [
        ("stdout", &expect.stdout, &run.stdout),
        ("stderr", &expect.stderr, &run.stderr),
        ("output", &expect.output, &run.output()),
    ] {
        if let Some(t) = texts {
            for item in t.items() {
                check_contains_any(
                    o,
                    Against::Statement,
                    &what(key),
                    text,
                    &[item.to_owned()],
                    expect.ignore_case,
                );
            }
        }
    }
    if let Some(line) = &expect.output_line {
        let output = run.output();
        o.claim_check(
            &what("message"),
            format!("a line {line:?}"),
            format!("{output:?}"),
            output.lines().any(|l| l.trim() == line),
        );
    }
    for c in &expect.output_count {
        let n = run.output().matches(c.text.as_str()).count();
        check_eq(
            o,
            Against::Statement,
            &what(&format!("times {:?} is printed", c.text)),
            c.count,
            n,
        );
    }
    if run.output_cut > 0 && o.claim_checks[before..].iter().any(|c| !c.ok) {
        // Not found in what was kept is not "not printed".
        o.forced = Some((
            Verdict::Error,
            format!(
                "the tool printed {} bytes more than netclaim keeps (the first and last {} KiB \
                 of each stream), and a text the claim expects is not in the part kept: it may \
                 be in the part cut out, so its output was not observed",
                run.output_cut,
                crate::record::OUTPUT_KEEP / 1024
            ),
        ));
    }
    if let Some(k) = expect.killed {
        o.claim_check(
            // A client after the SYN (idle): its connection, not a process.
            &what(match run.after {
                Some(_) => "still up when the harness stops waiting",
                None => "still running when the harness kills it",
            }),
            k.to_string(),
            format!("{} after {}", run.timed_out, secs(duration)),
            run.timed_out == k,
        );
    }
    if let Some(n) = expect.connections {
        check_eq(
            o,
            Against::Statement,
            &what("connections before the first failure"),
            n,
            run.connections.unwrap_or(0),
        );
    }
    if let Some(n) = expect.connect_calls {
        check_eq(
            o,
            Against::Statement,
            &what("connect() calls seen by strace"),
            n,
            run.connect_calls.unwrap_or(0),
        );
    }
    syn_checks
}

/// Why a run that connected with fewer SYNs than the kernel's schedule allows could not
/// show the client's SYN timer: the peer's SYN-ACK, sent again by the peer's own timer,
/// reached the client while the client's timer for its next SYN was due but had not yet
/// fired (inside that SYN's window: the timer wheel's slack and the probe's lateness).
///
/// Both ends arm a 1 s timer a wire's delay apart, and at HZ=250 both fall in the timer
/// wheel's 32 ms buckets, each expired by its own CPU: which fires first is a race. On a
/// 1 ms wire the client sends its SYN again first on a calm machine (12 of 12 runs), but
/// CI, loaded, once connected on the peer's SYN-ACK at 1.027 s with one SYN, the client's
/// window running to 1.037 s. Such a run says nothing about whether the client would have
/// sent its SYN again: its SYN checks are not observations.
pub(crate) fn answered_before_its_timer(
    run: &RunRecord,
    schedule: &SynSchedule,
    hz: u32,
    startup: Duration,
) -> Option<String> {
    let syns = run.syn_times();
    let (last, sent) = (*syns.last()?, syns.len());
    if run.errno.is_some() || run.exit_code.is_some_and(|c| c != 0) {
        return None;
    }
    let (windows, _) = schedule_windows(schedule, hz, startup);
    let next = windows.get(sent)?;
    let due_by = next.max + run.timed().syn_error(sent).error;
    let answer = run
        .synack_times_us
        .iter()
        .map(|&us| Duration::from_micros(us))
        .find(|&t| t > last)?;
    (next.min..=due_by).contains(&answer).then(|| {
        format!(
            "the peer's SYN-ACK, sent again by its own timer, reached the client at {} while \
             the client's timer for SYN {} was due within [{:.3}, {:.3}] s and had not fired: the \
             client connected on it with {} SYN(s). Which of the two timers fires first is a \
             race (each end's timer-wheel slack), so this run cannot show whether the client \
             sends its SYN again",
            secs(answer),
            sent + 1,
            next.min.as_secs_f64(),
            due_by.as_secs_f64(),
            sent
        )
    })
}

/// The client after the SYN a plan is for.
fn client_of(plan: &Plan) -> Option<Client> {
    match plan.end {
        End::AfterSyn(c) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::judge::judge;
    use crate::outcome::Verdict;
    use crate::record::testing::spec_of;
    use crate::record::{LabRecord, Measurement, RunRecord};

    #[test]
    fn a_text_missing_from_cut_output_is_not_observed() {
        let spec = spec_of(
            "lab = { server = \"none\" }\nrun = { command = [\"sh\", \"-c\", \"x\"] }\n\
             expect = { exit = 0, stderr = \"needle\" }\n",
        );
        let measured = |stderr: &str, output_cut: u64| Measurement {
            kernel: "6.18".into(),
            hz: 250,
            lab: Some(LabRecord {
                name: "netclaim-1-1".into(),
                target: "127.0.0.1:8080".into(),
                run: Some(RunRecord {
                    command_line: "sh -c x".into(),
                    exit_code: Some(0),
                    stderr: stderr.into(),
                    output_cut,
                    ..RunRecord::default()
                }),
                ..LabRecord::default()
            }),
            ..Measurement::default()
        };
        let cut = judge(
            &spec,
            &measured("head\n[netclaim: 9000 bytes cut here]\ntail", 9000),
        );
        assert_eq!(cut.verdict(), Verdict::Error, "{}", cut.reason());
        assert!(
            cut.reason().contains("printed 9000 bytes more"),
            "{}",
            cut.reason()
        );
        // Whole output without it: a finding. Cut output with it: it was printed.
        assert_eq!(
            judge(&spec, &measured("head tail", 0)).verdict(),
            Verdict::Refuted
        );
        let found = judge(
            &spec,
            &measured("needle\n[netclaim: 9000 bytes cut here]\n", 9000),
        );
        assert_eq!(found.verdict(), Verdict::Holds, "{}", found.reason());
    }
}
