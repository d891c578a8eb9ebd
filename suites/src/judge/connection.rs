//! Judging a connection after its first SYN: its record ([`AfterRecord`]) against the
//! statement and against the predictions of [`crate::models::connection`].

use std::collections::BTreeMap;
use std::time::Duration;

use netclaim_harness::timers;
use netclaim_harness::tolerance::{Window, TOOL_STARTUP};
use nix::errno::Errno;

use crate::judge::checks::{check_eq, Against};
use crate::judge::timing::{check_timing, timeline, timing, worst_outside};
use crate::models::connection::{predict, window, Prediction, Rejection};
use crate::outcome::{Check, Figures, Outcome};
use crate::record::attempt::Measured;
use crate::record::connection::AfterRecord;
use crate::record::micros;
use crate::spec::{ClaimSpec, Client};
use crate::text::secs;

/// How soon a socket closed with SO_LINGER 0 leaves the table: "at once".
const AT_ONCE: Duration = Duration::from_millis(100);

/// Transmission `i` (at `t`) with its measured error: the probe's lateness over the
/// kernel timers before it, on both sides (a kernel timer never fires before its jiffy,
/// but jiffies lag the clock while the tick runs late: see
/// [`Attempt::syn_error`](crate::record::attempt::Attempt::syn_error)).
fn send_error(rec: &AfterRecord, i: usize, t: Duration) -> Measured {
    let late = Duration::from_micros(rec.sent_late_us.get(i).copied().unwrap_or(0));
    Measured {
        took: t,
        error: late,
        early_error: late,
        error_from: format!(
            "transmission {}: timers up to {} ms late before it (probe); as much early",
            i + 1,
            late.as_millis()
        ),
    }
}

/// The end of a client after the SYN (its error, or its socket leaving the table) as
/// measured, with its error: the probe's lateness over the kernel timers before it and
/// over the wait, and how late the watch of the table may have seen it.
pub fn end_measured(rec: &AfterRecord, took: Duration) -> Measured {
    let timers = Duration::from_micros(
        rec.sent_late_us.last().copied().unwrap_or(0) + rec.late_us.unwrap_or(0),
    );
    let watch = Duration::from_micros(rec.watch_error_us.unwrap_or(0));
    let mut from = vec![format!(
        "timers up to {} ms late (probe, over the transmissions and the wait)",
        timers.as_millis()
    )];
    if rec.watch_error_us.is_some() {
        from.push(format!(
            "the socket looked up up to {} ms after the event",
            watch.as_millis()
        ));
    }
    // The FIN_WAIT_2 timer starts when the ACK of the FIN is processed: at the ACK, or,
    // when it came while close() still held the socket, at close()'s return.
    let held = Duration::from_micros(
        rec.close_took_us
            .unwrap_or(0)
            .saturating_sub(rec.starts_after_us.unwrap_or(0)),
    );
    if !held.is_zero() {
        from.push(format!(
            "the ACK of the FIN may have waited up to {} ms for close() to release the socket",
            held.as_millis()
        ));
    }
    // The kernel arms these timers in jiffies. While the tick runs late (a host that does
    // not run an emulated CPU, a loaded machine), jiffies lag the clock the measurement
    // uses, and a timer armed then falls due that much early by that clock: a 6.1 guest
    // under TCG put an orphan's 60 s FIN_WAIT_2 timer 56 ms early while its probe saw
    // timers 1.1 s late. The lag is at most how late the tick ran: the probe's lateness.
    let wait = Duration::from_micros(rec.late_us.unwrap_or(0));
    if !wait.is_zero() {
        from.push(format!(
            "up to {} ms early: jiffies behind the clock while the tick ran late",
            wait.as_millis()
        ));
    }
    Measured {
        took,
        error: timers + watch + held,
        early_error: wait,
        error_from: from.join("; "),
    }
}

fn times(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|us| Duration::from_micros(*us)).collect()
}

/// Judges a client after the SYN: the model's checks (and its figures) into `o`.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one lab record, all needed"
)]
pub fn judge(
    client: Client,
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    rec: &AfterRecord,
    errno: Option<Errno>,
    end: &Measured,
    hz: u32,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) -> Prediction {
    let duration = end.took;
    let rtt = rec.model_rtt(client);
    let p = predict(client, spec, in_force, rtt, hz);
    let p = match (client, rtt) {
        (Client::Stream, Some(rtt)) => crate::models::connection::anchored_stream(
            p,
            spec,
            in_force,
            rtt,
            rec.persist_rto_us.map(Duration::from_micros),
            &times(&rec.sent_us),
            &times(&rec.answered_us),
            hz,
        ),
        _ => p,
    };
    if client == Client::Bulk {
        let empty = crate::record::recovery::BulkRecord::default();
        let b = rec.bulk.as_ref().unwrap_or(&empty);
        crate::judge::recovery::judge(spec, in_force, b, hz, what, o);
        return p;
    }
    o.evidence(format!("model: {}", p.inputs));
    let sent = times(&rec.sent_us);
    let mut expected = Figures::default();
    let noun = match client {
        Client::Send => "transmissions of the data segment (original, probe, retransmissions)",
        Client::Idle => "keepalive probes",
        Client::SynOnly => "SYN-ACKs",
        Client::Stream => "the first data segment, then the window probes",
        _ => "",
    };
    if let (Some(model), Some(kernel)) = (p.rto, rec.kernel_rto_us) {
        if client == Client::Send {
            check_eq(
                o,
                Against::Model,
                &what("RTO after the handshake (TCP_INFO tcpi_rto, µs) = usecs_to_jiffies(RTT + max(2·RTT, rto_min))"),
                micros(model),
                kernel,
            );
        }
    }
    match client {
        Client::Send | Client::Idle | Client::SynOnly | Client::Stream => {
            let n = p.schedule.send_times.len();
            // The last one, within the wheel's slack of the boundary, may be missing.
            let same_count = sent.len() == n || (p.optional_last && sent.len() + 1 == n);
            if p.optional_last {
                o.model_check(
                    &what(&format!("{noun}: count (the last optional)")),
                    format!("{} or {n}", n - 1),
                    sent.len(),
                    same_count,
                );
            } else {
                check_eq(
                    o,
                    Against::Model,
                    &what(&format!("{noun}: count")),
                    n,
                    sent.len(),
                );
            }
            // Each send time: the intervals before it.
            let base = if client == Client::Idle { 0 } else { 1 };
            let windows: Vec<Window> = p
                .schedule
                .send_times
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    window(
                        *t,
                        &p.intervals[..(i + 1 - base).min(p.intervals.len())],
                        hz,
                    )
                })
                .collect();
            let ok = same_count && windows.iter().zip(&sent).all(|(w, s)| w.contains(*s));
            let last = p
                .schedule
                .send_times
                .last()
                .zip(windows.last())
                .map(|(t, w)| format!("{} within {w}", secs(*t)))
                .unwrap_or_default();
            // Of the transmissions outside their windows, the one farthest beyond its
            // measured error (the probe's lateness over the timers before it) decides.
            let errors: Vec<Measured> = sent
                .iter()
                .enumerate()
                .map(|(i, t)| send_error(rec, i, *t))
                .collect();
            let worst = same_count
                .then(|| worst_outside(&windows, &sent, &errors))
                .flatten();
            o.model_checks.push(Check {
                what: what(&format!(
                    "{noun}: times (timer-wheel slack at HZ={hz}, late only)"
                )),
                expected: format!(
                    "[{}] s (last {last})",
                    p.schedule
                        .send_times
                        .iter()
                        .map(|t| format!("{:.3}", t.as_secs_f64()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                observed: format!(
                    "[{}] s",
                    sent.iter()
                        .map(|t| format!("{:.3}", t.as_secs_f64()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                ok,
                timing: worst.map(|i| timing(windows[i], sent[i], &errors[i])),
            });
            let n = p.schedule.send_times.len();
            expected.value = Some(match client {
                Client::Send => format!(
                    "{} retransmissions (RTO {} ms)",
                    n.saturating_sub(1),
                    p.rto.map_or(0, |r| r.as_millis())
                ),
                Client::Idle => format!("{n} keepalive probes"),
                Client::Stream => format!(
                    "{} window probes (probe0 base {} ms)",
                    n.saturating_sub(1),
                    p.rto.map_or(0, |r| r
                        .max(netclaim_harness::timers::TCP_RTO_MIN)
                        .as_millis())
                ),
                _ => format!("{n} SYN-ACKs"),
            });
        }
        _ => {}
    }
    let gives_up = match client {
        Client::Close if p.intervals.is_empty() => {
            // SO_LINGER 0: an RST and no FIN, gone at once.
            check_eq(
                o,
                Against::Model,
                &what("close() sends an RST"),
                true,
                rec.rst,
            );
            check_eq(
                o,
                Against::Model,
                &what("close() sends a FIN"),
                false,
                rec.fin,
            );
            if rec.gone {
                check_timing(
                    o,
                    Against::Model,
                    &what("the socket leaves the table at once"),
                    Duration::ZERO,
                    Window {
                        min: Duration::ZERO,
                        max: AT_ONCE,
                    },
                    end,
                );
            } else {
                o.model_check(
                    &what("the socket leaves the table at once"),
                    format!("< {}", secs(AT_ONCE)),
                    format!("still there after {}", secs(duration)),
                    false,
                );
            }
            expected.value = Some("RST, socket gone at once".into());
            false
        }
        Client::Close => {
            check_eq(
                o,
                Against::Model,
                &what("close() sends a FIN"),
                true,
                rec.fin,
            );
            // A negative TCP_LINGER2: the ACK of the FIN finds an orphan that may not wait
            // in FIN_WAIT_2; tcp_rcv_state_process frees it and answers with an RST.
            let reset = spec
                .run
                .as_ref()
                .and_then(|r| r.socket.linger2)
                .is_some_and(|s| s < 0);
            check_eq(
                o,
                Against::Model,
                &what("close() sends an RST"),
                reset,
                rec.rst,
            );
            let fw2 = rec.states.iter().any(|s| s == "FIN_WAIT2");
            check_eq(
                o,
                Against::Model,
                &what("the orphan waits in FIN_WAIT2"),
                !reset,
                fw2,
            );
            if !reset {
                expected.value = Some(format!("FIN, FIN_WAIT2 for {}", secs(p.schedule.give_up)));
                true
            } else {
                expected.value = Some("FIN, then an RST when it is ACKed: no FIN_WAIT2".into());
                let label = "the socket leaves the table once its FIN is ACKed";
                if rec.gone {
                    let at_once = Window {
                        min: Duration::ZERO,
                        max: AT_ONCE,
                    };
                    check_timing(
                        o,
                        Against::Model,
                        &what(label),
                        Duration::ZERO,
                        at_once,
                        end,
                    );
                } else {
                    o.model_check(
                        &what(label),
                        format!("< {}", secs(AT_ONCE)),
                        format!("still there after {}", secs(duration)),
                        false,
                    );
                }
                false
            }
        }
        Client::Idle if p.survives.is_some() => {
            let wait = p.survives.unwrap_or_default();
            let up = !rec.gone && errno.is_none();
            o.model_check(
                &what("the connection is still up when the wait ends (from the handshake)"),
                format!("up after {}", secs(wait)),
                match up {
                    true => format!("up after {}", secs(duration)),
                    false => format!("failed after {}", secs(duration)),
                },
                up,
            );
            expected.value = Some(format!(
                "{} keepalive probes, still up after {}",
                p.schedule.send_times.len(),
                secs(wait)
            ));
            false
        }
        _ => true,
    };
    if gives_up {
        let w = window(p.schedule.give_up, &p.intervals, hz);
        let label = match client {
            Client::Send | Client::Idle | Client::Stream => {
                "the connection fails (from the send, or from the handshake)"
            }
            Client::Close => "the orphan's FIN_WAIT_2 ends (its timer, from the ACK of the FIN)",
            _ => "the server drops the request (from the SYN)",
        };
        if rec.gone {
            check_timing(o, Against::Model, &what(label), p.schedule.give_up, w, end);
        } else {
            o.model_check(
                &what(label),
                format!("{} within {w}", secs(p.schedule.give_up)),
                format!("still there after {}", secs(duration)),
                false,
            );
        }
        expected = expected.duration(p.schedule.give_up);
    }
    if let Some(e) = p.errno {
        check_eq(o, Against::Model, &what("errno"), Some(e), errno);
        expected.errno = Some(e as i32);
    }
    o.timelines.push(timeline(
        &what(&format!("{client:?}: {}", p.inputs)),
        &sent,
        &p.schedule,
        Some(duration),
    ));
    o.expected = expected;
    p
}

/// The SYN-ACKs a `connect` client heard while it held the connection (`run.hold`),
/// against [`crate::models::connection::synacks_heard`]: how many, and when (from the
/// first, each within its timer-wheel slack).
pub fn judge_synacks(
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    heard_us: &[u64],
    hold: Duration,
    hz: u32,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    let (times, intervals) = crate::models::connection::synacks_heard(spec, in_force, hold);
    let first = heard_us.first().copied().unwrap_or_default();
    let heard: Vec<Duration> = heard_us
        .iter()
        .map(|t| Duration::from_micros(t - first))
        .collect();
    check_eq(
        o,
        Against::Model,
        &what("SYN-ACKs heard from the peer: count (one more per final ACK the rules drop, each when the peer's request timer expires)"),
        times.len(),
        heard.len(),
    );
    let windows: Vec<Window> = times
        .iter()
        .enumerate()
        .map(|(i, t)| window(*t, &intervals[..i], hz))
        .collect();
    let shown = |v: &[Duration]| {
        v.iter()
            .map(|t| format!("{:.3}", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    o.model_check(
        &what(&format!(
            "SYN-ACKs heard: times from the first (timer-wheel slack at HZ={hz}, late only)"
        )),
        format!("[{}] s", shown(&times)),
        format!("[{}] s", shown(&heard)),
        heard.len() == times.len() && windows.iter().zip(&heard).all(|(w, h)| w.contains(*h)),
    );
    o.expected.value = Some(format!("{} SYN-ACKs at [{}] s", times.len(), shown(&times)));
    o.observed.value = Some(format!("{} SYN-ACKs at [{}] s", heard.len(), shown(&heard)));
}

/// The statement's checks specific to clients after the SYN.
pub fn statement_checks(
    spec_expect: &crate::spec::ExpectSpec,
    client: Option<Client>,
    rec: &AfterRecord,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    let sent = rec.sent_us.len();
    let mut claimed = Vec::new();
    for (n, noun) in [
        (spec_expect.retransmissions, "retransmissions"),
        (spec_expect.probes, "keepalive probes"),
        (spec_expect.synacks, "SYN-ACKs"),
    ] {
        if let Some(n) = n {
            claimed.push(format!("{n} {noun}"));
        }
    }
    if let Some(r) = spec_expect.rst {
        claimed.push(if r { "RST".into() } else { "no RST".into() });
    }
    if let Some(f) = spec_expect.fin {
        claimed.push(if f { "FIN".into() } else { "no FIN".into() });
    }
    if let Some(d) = spec_expect.duration_at_least {
        claimed.push(format!("≥ {}", secs(d.0)));
    }
    if let Some(d) = spec_expect.duration_at_most {
        claimed.push(format!("≤ {}", secs(d.0)));
    }
    if !claimed.is_empty() && o.claimed.value.is_none() {
        o.claimed.value = Some(claimed.join(", "));
    }
    if client.is_some() {
        o.observed.value = Some(observed_text(client, rec));
    }
    if let (Some(Client::Bulk), Some(b)) = (client, &rec.bulk) {
        crate::judge::recovery::statement_checks(spec_expect, b, what, o);
        return;
    }
    if let Some(n) = spec_expect.retransmissions {
        check_eq(
            o,
            Against::Statement,
            &what("retransmissions of the data segment on the wire"),
            n,
            sent.saturating_sub(1),
        );
    }
    if let Some(n) = spec_expect.probes {
        check_eq(o, Against::Statement, &what("keepalive probes"), n, sent);
    }
    if let Some(n) = spec_expect.synacks {
        check_eq(o, Against::Statement, &what("SYN-ACKs sent"), n, sent);
    }
    if client == Some(Client::Close) {
        if let Some(r) = spec_expect.rst {
            check_eq(
                o,
                Against::Statement,
                &what("close() sends an RST"),
                r,
                rec.rst,
            );
        }
        if let Some(f) = spec_expect.fin {
            check_eq(
                o,
                Against::Statement,
                &what("close() sends a FIN"),
                f,
                rec.fin,
            );
        }
    }
}

/// The statement's first retransmission (`expect.first_retransmission`) against the
/// record: the second transmission of the data segment, from the first, with the timer
/// lateness measured before it; none seen is a mismatch, shown as such.
pub fn check_first_retransmission(
    rec: &AfterRecord,
    stated: Duration,
    window: Window,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    let what = what("first retransmission of the data segment (probe or RTO), from its send");
    match (rec.sent_us.first(), rec.sent_us.get(1)) {
        (Some(&first), Some(&second)) => {
            let t = Duration::from_micros(second.saturating_sub(first));
            check_timing(
                o,
                Against::Statement,
                &what,
                stated,
                window,
                &send_error(rec, 1, t),
            );
        }
        _ => Against::Statement.record_check(
            o,
            Check {
                what,
                expected: format!("{} within {window}", secs(stated)),
                observed: "no retransmission on the wire".into(),
                ok: false,
                timing: None,
            },
        ),
    }
}

/// The observation of a client after the SYN, in words.
fn observed_text(client: Option<Client>, rec: &AfterRecord) -> String {
    let n = rec.sent_us.len();
    match client {
        Some(c @ (Client::Send | Client::Stream)) => format!(
            "{} {}{}",
            n.saturating_sub(1),
            if c == Client::Send {
                "retransmissions of the data segment"
            } else {
                "window probes"
            },
            match (rec.rtt_us, rec.kernel_rtt_us) {
                (Some(w), Some(k)) => format!(", RTT {w} µs on the wire, {k} µs by the kernel"),
                (Some(w), None) => format!(", RTT {w} µs on the wire"),
                _ => String::new(),
            }
        ),
        Some(Client::Idle) => format!("{n} keepalive probes"),
        Some(Client::SynOnly) => format!("{n} SYN-ACKs; request states {:?}", rec.states),
        Some(Client::Close) => format!(
            "{}{}; states {:?}",
            if rec.fin { "FIN" } else { "no FIN" },
            if rec.rst { ", RST" } else { "" },
            rec.states
        ),
        _ => String::new(),
    }
}

/// The model checks of a rejected connect.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one lab record, all needed"
)]
pub fn judge_rejection(
    r: &Rejection,
    hz: u32,
    errno: Option<Errno>,
    end: &Measured,
    syns: usize,
    rec: &AfterRecord,
    rsts: usize,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    o.evidence(format!("model: {}", r.why));
    check_eq(o, Against::Model, &what("errno"), Some(r.errno), errno);
    // One more SYN and one initial RTO when the first answer found the socket owned.
    let waited = r.may_wait_one_rto && syns == r.syns + 1;
    let (want_syns, limit) = if waited {
        (
            r.syns + 1,
            window(timers::TCP_TIMEOUT_INIT, &[timers::TCP_TIMEOUT_INIT], hz),
        )
    } else {
        // After one round trip of the wire (none on a veth), never before it.
        (
            r.syns,
            Window {
                min: r.rtt,
                max: r.rtt + TOOL_STARTUP,
            },
        )
    };
    check_eq(
        o,
        Against::Model,
        &what("SYNs on the wire"),
        want_syns,
        syns,
    );
    check_timing(
        o,
        Against::Model,
        &what(if waited {
            "fails with the answer to the first retransmission (the first answer found the socket owned by connect())"
        } else if r.rtt.is_zero() {
            "fails at once (no timer involved)"
        } else {
            "fails after one round trip of the wire (no timer involved)"
        }),
        if waited {
            timers::TCP_TIMEOUT_INIT
        } else {
            r.rtt
        },
        limit,
        end,
    );
    if r.may_wait_one_rto {
        o.evidence(format!(
            "the first ICMP answer {}",
            if waited {
                "arrived while connect() held the socket: kept as a soft error until the next SYN's answer"
            } else {
                "aborted the connect at once"
            }
        ));
    }
    if r.rst {
        check_eq(o, Against::Model, &what("RST on the wire"), true, rsts > 0);
    }
    if let Some(icmp) = r.icmp {
        check_eq(
            o,
            Against::Model,
            &what("ICMP (type, code) on the wire, one per SYN"),
            vec![icmp; want_syns],
            rec.icmp.clone(),
        );
    }
    o.expected = Figures::default().duration(if waited {
        timers::TCP_TIMEOUT_INIT
    } else {
        r.rtt
    });
    o.expected.errno = Some(r.errno as i32);
    o.expected.syn_count = Some(want_syns);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::connection::rejection;
    use crate::models::connection::tests::spec;

    #[test]
    fn an_icmp_rejection_is_immediate_or_one_rto_late() {
        let s = spec("lab = { server = \"reject\", reject_with = \"icmp-host-unreachable\" }\nrun = { client = \"connect\" }\n");
        let r = rejection(&s).expect("a rejection");
        assert_eq!(r.errno, Errno::EHOSTUNREACH);
        let what = |w: &str| w.to_owned();
        let judge_with = |syns: usize, ms: u64, error_ms: u64| {
            let mut o = Outcome::default();
            let rec = AfterRecord {
                icmp: vec![(3, 1); syns],
                ..AfterRecord::default()
            };
            let end = Measured {
                took: Duration::from_millis(ms),
                error: Duration::from_millis(error_ms),
                early_error: Duration::ZERO,
                error_from: "test".into(),
            };
            judge_rejection(
                &r,
                250,
                Some(Errno::EHOSTUNREACH),
                &end,
                syns,
                &rec,
                0,
                &what,
                &mut o,
            );
            (o.model_agrees(), o.model_inconclusive())
        };
        let judge = |syns: usize, ms: u64| judge_with(syns, ms, 0).0;
        assert!(judge(1, 2), "at once");
        assert!(judge(2, 1010), "with the first retransmission's answer");
        assert!(!judge(2, 3000), "not later");
        assert!(!judge(3, 3000), "not after further retransmissions");
        // 1.055 s is 18 ms past the window: within 30 ms of measured lateness it is
        // inconclusive, with 10 ms it is a miss.
        assert_eq!(judge_with(2, 1055, 30), (true, 1));
        assert_eq!(judge_with(2, 1055, 10), (false, 0));
    }

    #[test]
    fn a_socket_seen_gone_late_by_a_slow_watch_is_inconclusive_not_late() {
        let s = spec("lab = { server = \"silent\" }\nrun = { client = \"close\", socket = { linger = \"0s\" } }\n");
        let what = |w: &str| w.to_owned();
        let judge_at = |ms: u64, watch_ms: u64| {
            let rec = AfterRecord {
                rst: true,
                gone: true,
                watch_error_us: Some(watch_ms * 1000),
                late_us: Some(0),
                ..AfterRecord::default()
            };
            let mut o = Outcome::default();
            let end = end_measured(&rec, Duration::from_millis(ms));
            judge(
                Client::Close,
                &s,
                &BTreeMap::new(),
                &rec,
                None,
                &end,
                250,
                &what,
                &mut o,
            );
            (o.model_agrees(), o.model_inconclusive())
        };
        assert_eq!(judge_at(20, 20), (true, 0), "gone at once");
        // Seen gone after 201 ms by a read that took 200 ms (the first one): it may have
        // gone at once.
        assert_eq!(judge_at(201, 200), (true, 1));
        // Seen gone after 201 ms with reads of 10 ms: it was there at 190 ms.
        assert_eq!(judge_at(201, 10), (false, 0));
    }
}
