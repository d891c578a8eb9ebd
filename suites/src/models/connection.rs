//! What the kernel is predicted to do with a connection after its first SYN, from the
//! sysctls in force and the socket options: the retransmission timer and its give-up
//! (`tcp_retries2`, `TCP_USER_TIMEOUT`), keepalive, the FIN_WAIT_2 lifetime, SYN-ACK
//! retransmissions, and a rejected or unroutable SYN. Predictions come from
//! [`netclaim_harness::timers`].

use std::collections::BTreeMap;
use std::time::Duration;

use netclaim_harness::persist::PersistModel;
use netclaim_harness::timers::{self, KeepaliveModel, ProbeAnswers, RetransModel, Schedule};
use netclaim_harness::tolerance::{self, kernel_timer_window, Window};
use nix::errno::Errno;

use crate::spec::{ClaimSpec, Client, Server};
use crate::text::{secs, Shown};

/// What the models predict for a client after the SYN, from what was in force.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Transmissions (data, probes, SYN-ACKs) and the give-up or lifetime.
    pub schedule: Schedule,
    /// The intervals the kernel arms, for their timer-wheel slack.
    pub intervals: Vec<Duration>,
    /// What the model used, in words.
    pub inputs: String,
    /// The errno the client sees.
    pub errno: Option<Errno>,
    /// The RTO after the handshake (`send`, `close`).
    pub rto: Option<Duration>,
    /// The last transmission may not be sent: it comes within the timer wheel's slack of
    /// the give-up boundary ([`timers::RetransPlan::optional_last`]).
    pub optional_last: bool,
    /// `idle` with a live peer: the connection is still up when the wait ends, this long
    /// after the handshake.
    pub survives: Option<Duration>,
}

fn num(in_force: &BTreeMap<String, String>, k: &str) -> Option<u64> {
    in_force
        .get(k)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The model inputs of a client after the SYN (the sysctls read in its lab).
pub const MODEL_INPUTS: &[&str] = &[
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_early_retrans",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_rto_min_us",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_synack_retries",
];

/// The prediction for `client` with `in_force`, the socket options of `spec`, the
/// handshake's `rtt` (when measured) and `hz`.
pub fn predict(
    client: Client,
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    rtt: Option<Duration>,
    hz: u32,
) -> Prediction {
    let socket = spec
        .run
        .as_ref()
        .map(|r| r.socket.clone())
        .unwrap_or_default();
    // The socket option over the sysctl (ip-sysctl.rst, tcp_rto_min_us), and both in
    // jiffies as icsk_rto_min keeps them.
    let rto_min = socket
        .rto_min_us
        .map(u64::from)
        .or_else(|| num(in_force, "net.ipv4.tcp_rto_min_us"))
        .map(Duration::from_micros)
        .unwrap_or(timers::TCP_RTO_MIN);
    let rto_max = num(in_force, netclaim_harness::sysctl::knob::TCP_RTO_MAX_MS)
        .map(Duration::from_millis)
        .unwrap_or(timers::TCP_RTO_MAX);
    let retrans = RetransModel {
        hz,
        rtt: rtt.unwrap_or(Duration::from_micros(50)),
        rto_min,
        rto_max,
        tlp: matches!(
            num(in_force, "net.ipv4.tcp_early_retrans"),
            Some(3 | 4) | None
        ) && num(in_force, "net.ipv4.tcp_sack") != Some(0),
        retries2: num(in_force, "net.ipv4.tcp_retries2").unwrap_or(15) as u32,
        user_timeout: socket.user_timeout.map(|t| t.0),
    };
    match client {
        Client::Send => {
            let p = retrans.plan();
            Prediction {
                inputs: format!(
                    "RTT {} µs (the kernel's first sample, TCP_INFO) → RTO {} ms (rto_min {} ms, HZ={hz}); {}; {}; rto_max {} s; give up at the first RTO ≥ {} after the first retransmission ({} ms after the original){}",
                    retrans.rtt.as_micros(),
                    p.rto.as_millis(),
                    rto_min.as_millis(),
                    match p.pto {
                        Some(pto) => format!("a tail loss probe after {} ms (tcp_early_retrans, SACK)", pto.as_millis()),
                        None => "no tail loss probe".into(),
                    },
                    match retrans.user_timeout {
                        Some(u) => format!("TCP_USER_TIMEOUT {} ms", u.as_millis()),
                        None => format!("tcp_retries2={} (tcp_model_timeout {} ms)", retrans.retries2, p.boundary.as_millis()),
                    },
                    rto_max.as_secs(),
                    secs(p.boundary),
                    p.retrans_stamp.as_millis(),
                    if p.optional_last {
                        "; the last retransmission comes within the timer wheel's slack of the boundary, so it may not be sent"
                    } else {
                        ""
                    },
                ),
                schedule: p.schedule,
                intervals: p.intervals,
                errno: Some(Errno::ETIMEDOUT),
                rto: Some(p.rto),
                optional_last: p.optional_last,
                survives: None,
            }
        }
        Client::Idle => {
            let sys = |k: &str, d: u64| num(in_force, k).unwrap_or(d);
            // A peer that dies after the handshake answers nothing; any other answers
            // each probe that reaches it, one round trip later.
            let live = spec.lab.server != Server::DiesAfterHandshake;
            let lost = lost_probes(spec);
            let k = KeepaliveModel {
                time: Duration::from_secs(
                    socket
                        .keepidle
                        .map_or_else(|| sys("net.ipv4.tcp_keepalive_time", 7200), u64::from),
                ),
                intvl: Duration::from_secs(
                    socket
                        .keepintvl
                        .map_or_else(|| sys("net.ipv4.tcp_keepalive_intvl", 75), u64::from),
                ),
                probes: socket
                    .keepcnt
                    .unwrap_or_else(|| sys("net.ipv4.tcp_keepalive_probes", 9) as u32),
                user_timeout: socket.user_timeout.map(|t| t.0),
                answers: match live {
                    true => ProbeAnswers::Peer {
                        rtt: retrans.rtt,
                        lost: lost.clone(),
                    },
                    false => ProbeAnswers::Nobody,
                },
            };
            // A live peer may keep the connection up for ever: the wait ends at
            // run.timeout (which check asks for).
            let wait = match live {
                true => spec
                    .run
                    .as_ref()
                    .and_then(|r| r.timeout)
                    .map_or(Duration::MAX, |t| t.0),
                false => Duration::MAX,
            };
            let run = k.until(wait);
            Prediction {
                inputs: format!(
                    "keepalive time {} s, intvl {} s, probes {}{}; {}",
                    k.time.as_secs(),
                    k.intvl.as_secs(),
                    k.probes,
                    k.user_timeout
                        .map(|u| format!(", TCP_USER_TIMEOUT {} ms", u.as_millis()))
                        .unwrap_or_default(),
                    match live {
                        true => format!(
                            "a live peer answers each probe after the RTT, {} µs (the probes' own on the wire where one was answered, else the handshake's){}; an answer sets the count back to 0 and the next probe comes keepalive time after it",
                            retrans.rtt.as_micros(),
                            match shown(&lost) {
                                Some(l) => format!(", but the wire's rules lose probe {l}"),
                                None => String::new(),
                            }
                        ),
                        false => "a dead peer answers no probe".into(),
                    }
                ),
                schedule: run.schedule,
                intervals: run.intervals,
                errno: run.killed.then_some(Errno::ETIMEDOUT),
                rto: None,
                optional_last: false,
                survives: (!run.killed).then_some(wait),
            }
        }
        Client::Close => {
            let rto = retrans.rto();
            if socket.linger.is_some_and(|l| l.0.is_zero()) {
                return Prediction {
                    schedule: Schedule {
                        send_times: Vec::new(),
                        give_up: Duration::ZERO,
                    },
                    intervals: Vec::new(),
                    inputs: "SO_LINGER on with a 0 s timeout: tcp_close() aborts (tcp_disconnect): an RST, the socket freed at once".into(),
                    errno: None,
                    rto: Some(rto),
                    optional_last: false,
                    survives: None,
                };
            }
            // do_tcp_setsockopt(TCP_LINGER2): 0 leaves the sysctl in force (tcp_fin_time
            // takes `linger2 ?: tcp_fin_timeout`), a value above TCP_FIN_TIMEOUT_MAX is
            // clamped to it (Linux ≥ 5.8), a negative one makes an orphan that reaches
            // FIN_WAIT_2 be reset and freed at once.
            let max = timers::TCP_FIN_TIMEOUT_MAX.as_secs();
            let (fin, from) = match socket.linger2 {
                Some(s) if s < 0 => (
                    Duration::ZERO,
                    format!("TCP_LINGER2 {s}: an orphan is reset and freed when its FIN is ACKed, instead of waiting in FIN_WAIT_2"),
                ),
                Some(s) if s as u64 > max => (
                    timers::TCP_FIN_TIMEOUT_MAX,
                    format!("TCP_LINGER2 {s} s, clamped to TCP_FIN_TIMEOUT_MAX {max} s"),
                ),
                Some(s) if s > 0 => (Duration::from_secs(s as u64), format!("TCP_LINGER2 {s} s")),
                linger2 => {
                    let s = sys_fin(in_force);
                    let why = match linger2 {
                        Some(_) => "TCP_LINGER2 0 leaves ",
                        None => "",
                    };
                    (Duration::from_secs(s), format!("{why}tcp_fin_timeout {s} s"))
                }
            };
            let reset = socket.linger2.is_some_and(|s| s < 0);
            let life = match reset {
                true => Duration::ZERO,
                false => timers::fin_wait2_lifetime(fin, rto),
            };
            Prediction {
                schedule: Schedule {
                    send_times: Vec::new(),
                    give_up: life,
                },
                intervals: vec![life],
                inputs: match reset {
                    true => from,
                    false => format!(
                        "{from}; floor 3.5 × RTO {} ms (tcp_fin_time): an orphaned FIN_WAIT_2 socket lives {}",
                        rto.as_millis(),
                        secs(life)
                    ),
                },
                errno: None,
                rto: Some(rto),
                optional_last: false,
                survives: None,
            }
        }
        Client::Stream => {
            let rto = retrans.rto();
            let m = PersistModel {
                hz,
                rtt: retrans.rtt,
                rto,
                retries2: retrans.retries2,
                user_timeout: retrans.user_timeout,
            };
            // Without a user timeout (check refuses it) nothing ends the probing.
            let p = m.plan(timers::TCP_RTO_MAX);
            Prediction {
                inputs: format!(
                    "RTT {} µs (TCP_INFO) → RTO {} ms → tcp_probe0_base {} ms; the window closes one RTT after the data; window probes one RTT plus base·2^k apart (the backoff capped at tcp_retries2={}); {}",
                    retrans.rtt.as_micros(),
                    rto.as_millis(),
                    p.base.as_millis(),
                    retrans.retries2,
                    match retrans.user_timeout {
                        Some(u) => format!(
                            "answered probes reset the count, TCP_USER_TIMEOUT {} ms ends it that long after the first probe ({} after the data)",
                            u.as_millis(),
                            secs(p.schedule.give_up)
                        ),
                        None => "answered probes reset the count: no end".into(),
                    }
                ),
                schedule: p.schedule,
                intervals: p.intervals,
                errno: p.gives_up.then_some(Errno::ETIMEDOUT),
                rto: Some(rto),
                optional_last: false,
                survives: None,
            }
        }
        Client::SynOnly => {
            let n = num(in_force, "net.ipv4.tcp_synack_retries").unwrap_or(5) as u32;
            let s = timers::synack_schedule(n);
            let mut intervals = s.intervals();
            intervals.retain(|d| !d.is_zero());
            Prediction {
                inputs: format!(
                    "tcp_synack_retries={n}: SYN-ACK retransmissions after 1, 2, 4 … s (reqsk_timeout), the request dropped at the next expiry"
                ),
                schedule: s,
                intervals,
                errno: None,
                rto: None,
                optional_last: false,
                survives: None,
            }
        }
        _ => Prediction {
            schedule: Schedule {
                send_times: Vec::new(),
                give_up: Duration::ZERO,
            },
            intervals: Vec::new(),
            inputs: String::new(),
            errno: None,
            rto: None,
            optional_last: false,
            survives: None,
        },
    }
}

/// The most keepalive probes [`lost_probes`] follows.
const PROBES_FOLLOWED: u32 = 256;

/// The keepalive probes (1 is the first, up to [`PROBES_FOLLOWED`]) the lab's wire rules
/// lose, as the relay applies them: in order, each rule toward the peer that a pure ACK
/// matches (its `flags` at most `A`, no `A` in `not_flags`, no `after_bytes`: a probe
/// carries no stream byte) counting the pure ACKs it sees, and a segment one rule drops
/// reaching no later rule. An idle connection sends the handshake's final ACK and then
/// only probes, all pure ACKs: a `drop` rule's `nth = n` loses probe n − 1, one without
/// `nth` every probe.
pub fn lost_probes(spec: &ClaimSpec) -> Vec<u32> {
    use netclaim_harness::capture::TcpFlags;
    use netclaim_harness::wire::{Action, Direction};
    let rules: Vec<_> = spec
        .lab
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.rule(i + 1).ok())
        .filter(|r| {
            r.directions.contains(&Direction::ToPeer)
                && r.flags_set & !TcpFlags::ACK == 0
                && r.flags_clear & TcpFlags::ACK == 0
                && r.after_bytes.is_none()
        })
        .collect();
    let mut hits = vec![0u64; rules.len()];
    let mut lost = Vec::new();
    // Pure ACK m: the handshake's for m = 1, probe m − 1 after it.
    for m in 1..=u64::from(PROBES_FOLLOWED) + 1 {
        for (i, r) in rules.iter().enumerate() {
            hits[i] += 1;
            if r.nth.is_some_and(|n| n != hits[i]) {
                continue;
            }
            match r.action {
                Action::Drop => {
                    if m > 1 {
                        lost.push((m - 1) as u32);
                    }
                    break;
                }
                // Gone too, but answered by the wire itself: not a lost probe.
                Action::Reset | Action::IcmpUnreachable(_) => break,
                Action::Delay(_) | Action::Window(_) | Action::Mss(_) => {}
            }
        }
    }
    lost
}

/// Probe numbers in words (`1`, `1 and 3`, `1, 2, …`), or `None` for none.
fn shown(lost: &[u32]) -> Option<String> {
    match lost {
        [] => None,
        [one] => Some(one.to_string()),
        l if l.len() >= PROBES_FOLLOWED as usize => Some("every one".into()),
        [rest @ .., last] => Some(format!(
            "{} and {last}",
            rest.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn sys_fin(in_force: &BTreeMap<String, String>) -> u64 {
    num(in_force, netclaim_harness::sysctl::knob::TCP_FIN_TIMEOUT).unwrap_or(60)
}

/// How early a kernel timer may appear: a jiffy (the first one is armed mid-jiffy) and a
/// millisecond of capture and wake-up jitter, at least [`tolerance::EARLY`].
pub fn early(hz: u32) -> Duration {
    (timers::jiffy(hz) + Duration::from_millis(1)).max(tolerance::EARLY)
}

/// The window of a time the kernel reaches through `intervals` (never early beyond
/// [`early`], late by their accumulated timer-wheel slack).
pub fn window(at: Duration, intervals: &[Duration], hz: u32) -> Window {
    let late: Duration = intervals
        .iter()
        .map(|i| tolerance::interval_slack(*i, hz))
        .sum();
    kernel_timer_window(at, late, early(hz))
}

/// The `stream` client's prediction redone with what its record measured: the persist
/// timer's base from `persist_rto` (the RTO read once the first probe was out: the
/// data's own RTT samples move it from the handshake's), and each probe due one armed
/// interval after the answer that armed it (`answered`: the ACK that closed the window,
/// then each probe's ACK), so the round trips are the wire's, measured, not predicted.
/// With a user timeout the give-up is that long after the first probe (`sent[1]`).
#[expect(
    clippy::too_many_arguments,
    reason = "the prediction, what was in force and the four measured figures it is anchored at"
)]
pub fn anchored_stream(
    p: Prediction,
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    rtt: Duration,
    persist_rto: Option<Duration>,
    sent: &[Duration],
    answered: &[Duration],
    hz: u32,
) -> Prediction {
    let user_timeout = spec
        .run
        .as_ref()
        .and_then(|r| r.socket.user_timeout)
        .map(|t| t.0);
    let m = PersistModel {
        hz,
        rtt,
        rto: persist_rto.or(p.rto).unwrap_or(timers::TCP_RTO_MIN),
        retries2: num(in_force, "net.ipv4.tcp_retries2").unwrap_or(15) as u32,
        user_timeout,
    };
    let plan = m.plan(timers::TCP_RTO_MAX);
    let mut times = plan.schedule.send_times.clone();
    for (k, t) in times.iter_mut().enumerate().skip(1) {
        if let (Some(a), Some(i)) = (answered.get(k - 1), plan.intervals.get(k - 1)) {
            *t = *a + *i;
        }
    }
    let give_up = match (user_timeout, sent.get(1)) {
        (Some(u), Some(first_probe)) if plan.gives_up => *first_probe + u,
        _ => plan.schedule.give_up,
    };
    Prediction {
        inputs: format!(
            "{}; measured: tcpi_rto {} ms once the first probe was out → tcp_probe0_base {} ms, each probe due one armed interval after the ACK that armed it (the window-closing ACK, then each probe's), the give-up {} after the first probe",
            p.inputs,
            m.rto.as_millis(),
            plan.base.as_millis(),
            user_timeout.map_or_else(|| "never".into(), secs),
        ),
        schedule: Schedule {
            send_times: times,
            give_up,
        },
        intervals: plan.intervals,
        errno: p.errno,
        rto: Some(m.rto),
        ..p
    }
}

/// The SYN-ACKs a `connect` client hears from its peer while it holds the connection for
/// `hold` after connect() returned, from the first: the first; then, for each of the
/// handshake's final ACKs the lab's rules drop (a `drop` rule toward the peer on ACKs
/// without SYN: its `nth = 1` drops one, no `nth` drops them all), the peer's SYN-ACK
/// again when its request timer expires (`reqsk_timer_handler`: 1 s, then 2 s … later;
/// at most `tcp_synack_retries` of them), which the client answers with another ACK.
/// Returns the times and the intervals the peer's timer armed.
pub fn synacks_heard(
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    hold: Duration,
) -> (Vec<Duration>, Vec<Duration>) {
    use crate::spec::link::Toward;
    let lost: u64 = spec
        .lab
        .rules
        .iter()
        .filter(|r| {
            matches!(r.toward, Toward::Peer | Toward::Both)
                && r.action.trim() == "drop"
                && r.flags
                    .as_deref()
                    .is_some_and(|f| f.contains('A') && !f.contains('S'))
                && r.not_flags.as_deref().is_some_and(|f| f.contains('S'))
                && r.after_bytes.is_none()
        })
        .map(|r| match r.nth {
            None => u64::MAX,
            Some(1) => 1,
            Some(_) => 0,
        })
        .max()
        .unwrap_or(0);
    let retries = num(in_force, "net.ipv4.tcp_synack_retries").unwrap_or(5) as u32;
    let s = timers::synack_schedule(retries);
    let times: Vec<Duration> = s
        .send_times
        .into_iter()
        .take(usize::try_from(lost.saturating_add(1)).unwrap_or(usize::MAX))
        .filter(|t| *t <= hold)
        .collect();
    let intervals = times.windows(2).map(|w| w[1] - w[0]).collect();
    (times, intervals)
}

/// A rough run time for `client` with the sysctls the spec sets (kernel defaults
/// otherwise).
pub fn estimate(client: Client, spec: &ClaimSpec) -> Duration {
    let in_force: BTreeMap<String, String> = spec
        .lab
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.text()))
        .collect();
    let p = predict(client, spec, &in_force, None, 250);
    p.schedule.give_up + Duration::from_secs(1)
}

/// A connect()'s outcome when the SYN is rejected or cannot be routed: the errno the
/// kernel reports, and what the wire shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The errno of connect().
    pub errno: Errno,
    /// SYNs on the wire before it (0: no route, nothing sent).
    pub syns: usize,
    /// An ICMP answer that arrives while connect() still holds the socket is only
    /// recorded (`sk_err_soft`, `tcp_v4_err`'s `sock_owned_by_user` branch); the abort
    /// comes with the ICMP answering the first retransmission, after the initial RTO. On a
    /// direct link (veth) the answer usually comes back within the send itself.
    pub may_wait_one_rto: bool,
    /// An RST answers the SYN.
    pub rst: bool,
    /// The ICMP (type, code) that answers it.
    pub icmp: Option<(u8, u8)>,
    /// The round trip of the lab's wire (`lab.link`'s fixed delays; zero on a veth or
    /// loopback): the answer comes this long after the SYN.
    pub rtt: Duration,
    /// Why, in words.
    pub why: String,
}

/// What the kernel does with `lab.server` reject / unroutable.
pub fn rejection(spec: &ClaimSpec) -> Option<Rejection> {
    let mut r = rejection_on_a_direct_link(spec)?;
    if let Some(link) = &spec.lab.link {
        let (to, from) = link.delays();
        r.rtt = to + from;
        if r.may_wait_one_rto && r.rtt >= AFTER_THE_SEND {
            // The answer comes after connect() has gone to sleep: it aborts at once.
            r.may_wait_one_rto = false;
            r.why.push_str(&format!(
                "; over the lab's wire the answer comes {} ms after the SYN, when connect() sleeps and no longer holds the socket: the abort comes after one round trip, with one SYN",
                r.rtt.as_millis()
            ));
        }
    }
    Some(r)
}

/// A round trip long enough that an answer cannot come back while connect() still holds
/// the socket after sending its SYN (on a veth it comes back within the send itself).
const AFTER_THE_SEND: Duration = Duration::from_millis(1);

fn rejection_on_a_direct_link(spec: &ClaimSpec) -> Option<Rejection> {
    match spec.lab.server {
        Server::Unroutable => Some(Rejection {
            errno: Errno::ENETUNREACH,
            syns: 0,
            may_wait_one_rto: false,
            rst: false,
            icmp: None,
            rtt: Duration::ZERO,
            why: "no route to 203.0.113.1 in the lab: ip_route_connect() fails before a SYN is built (ENETUNREACH)".into(),
        }),
        Server::Reject => {
            let with = spec.lab.reject_with.as_deref().unwrap_or("");
            if with == "tcp-reset" {
                return Some(Rejection {
                    errno: Errno::ECONNREFUSED,
                    syns: 1,
                    // An RST that finds the socket owned waits in the backlog and is
                    // processed when connect() releases it: at once.
                    may_wait_one_rto: false,
                    rst: true,
                    icmp: None,
                    rtt: Duration::ZERO,
                    why: "REJECT --reject-with tcp-reset answers the SYN with an RST: tcp_reset() in SYN_SENT gives ECONNREFUSED".into(),
                });
            }
            let code = timers::reject_code(with)?;
            let v = timers::icmp_dest_unreach(code)?;
            Some(Rejection {
                errno: v.errno,
                syns: 1,
                may_wait_one_rto: true,
                rst: false,
                icmp: Some((3, code)),
                rtt: Duration::ZERO,
                why: format!(
                    "REJECT --reject-with {with} sends ICMP destination unreachable code {code}: icmp_err_convert gives {} ({} error per RFC 1122); tcp_v4_err() in SYN_SENT aborts the connect at once whatever its class, unless connect() still holds the socket when the ICMP arrives (then it is kept in sk_err_soft and the abort comes with the ICMP answering the first retransmission, 1 s later)",
                    v.errno.shown(),
                    if v.hard { "a hard" } else { "a soft" }
                ),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A claim from `text` (a lab and a run), unvalidated: the model tests' spec.
    pub(crate) fn spec(text: &str) -> ClaimSpec {
        let full = format!("[[claim]]\nid = \"t.t\"\nsource = \"s\"\nstatement = \"s\"\n{text}");
        // Model tests: a lab and an action, no statement to check (which `parse` requires).
        crate::spec::parse_unvalidated(&full).remove(0)
    }

    /// The stream client's probes are due one armed interval after the ACK that armed
    /// them, with the base from the RTO measured once the first probe was out; the give-up
    /// the user timeout after the first probe.
    #[test]
    fn window_probes_are_anchored_at_the_answers_measured() {
        let s = spec(
            "lab = { server = \"silent\", link = { delay = \"5ms\" }, rules = [{ toward = \"client\", flags = \"A\", not_flags = \"S\", action = \"window 0\" }] }\nrun = { client = \"stream\", socket = { user_timeout = \"2500ms\" } }\n",
        );
        let ms = Duration::from_millis;
        let p = predict(Client::Stream, &s, &BTreeMap::new(), Some(ms(10)), 250);
        let sent = [ms(0), ms(236), ms(700), ms(1580)];
        let answered = [ms(24), ms(246), ms(712), ms(1592)];
        let a = anchored_stream(
            p,
            &s,
            &BTreeMap::new(),
            ms(10),
            Some(ms(220)),
            &sent,
            &answered,
            250,
        );
        // base 220 ms: 24 + 220, 246 + 440, 712 + 880.
        assert_eq!(
            a.schedule.send_times,
            vec![ms(0), ms(244), ms(686), ms(1592)]
        );
        assert_eq!(a.schedule.give_up, ms(236 + 2500));
        assert_eq!(a.rto, Some(ms(220)));
    }

    /// One final ACK dropped: the peer's SYN-ACK again after 1 s; every one dropped: after
    /// 1, 3, 7 … s, as far as the hold reaches; no rule: the first only.
    #[test]
    fn the_peer_sends_its_syn_ack_again_per_final_ack_lost() {
        let with = |rule: &str, hold: u64| {
            let s = spec(&format!(
                "lab = {{ server = \"silent\", link = {{ delay = \"10ms\" }}{rule} }}\nrun = {{ client = \"connect\", hold = \"{hold}s\" }}\n"
            ));
            synacks_heard(&s, &BTreeMap::new(), Duration::from_secs(hold)).0
        };
        let s = Duration::from_secs;
        let nth1 = ", rules = [{ toward = \"peer\", flags = \"A\", not_flags = \"S\", nth = 1, action = \"drop\" }]";
        let all = ", rules = [{ toward = \"peer\", flags = \"A\", not_flags = \"S\", action = \"drop\" }]";
        assert_eq!(with(nth1, 2), vec![s(0), s(1)]);
        assert_eq!(with(nth1, 10), vec![s(0), s(1)]);
        assert_eq!(with(all, 8), vec![s(0), s(1), s(3), s(7)]);
        assert_eq!(with("", 5), vec![s(0)]);
    }

    #[test]
    fn tcp_linger2_as_do_tcp_setsockopt_takes_it() {
        let in_force = BTreeMap::from([("net.ipv4.tcp_fin_timeout".to_owned(), "4".to_owned())]);
        for (socket, secs) in [
            ("", 4),
            (", socket = { linger2 = 0 }", 4),
            (", socket = { linger2 = 2 }", 2),
            (", socket = { linger2 = 120 }", 120),
            (", socket = { linger2 = 200 }", 120),
        ] {
            let s = spec(&format!(
                "lab = {{ server = \"silent\" }}\nrun = {{ client = \"close\"{socket} }}\n"
            ));
            let p = predict(
                Client::Close,
                &s,
                &in_force,
                Some(Duration::from_micros(50)),
                250,
            );
            assert_eq!(
                p.schedule.give_up,
                Duration::from_secs(secs),
                "{socket}: {}",
                p.inputs
            );
        }
    }

    #[test]
    fn a_negative_tcp_linger2_resets_the_orphan() {
        let s = spec("lab = { server = \"silent\" }\nrun = { client = \"close\", socket = { linger2 = -1 } }\n");
        let p = predict(Client::Close, &s, &BTreeMap::new(), None, 250);
        assert_eq!(p.schedule.give_up, Duration::ZERO);
        assert!(p.inputs.contains("reset and freed"), "{}", p.inputs);
    }

    /// An idle connection's pure ACKs: the handshake's is #1, probe k is #k + 1; a rule
    /// that drops one hides it from the rules after it.
    #[test]
    fn the_wire_rules_lose_keepalive_probes_by_number() {
        let lab = |rules: &str| {
            spec(&format!(
                "lab = {{ server = \"silent\", link = {{ delay = \"10ms\" }}, rules = [{rules}] }}\nrun = {{ client = \"idle\", timeout = \"5s\" }}\n"
            ))
        };
        let drop_nth = |n: u64| {
            format!("{{ toward = \"peer\", flags = \"A\", not_flags = \"SFRP\", nth = {n}, action = \"drop\" }}")
        };
        assert_eq!(lost_probes(&lab(&drop_nth(2))), vec![1]);
        assert_eq!(lost_probes(&lab(&drop_nth(1))), Vec::<u32>::new());
        // The second rule counts the pure ACKs the first let through: its #3 is probe 3.
        assert_eq!(
            lost_probes(&lab(&format!("{}, {}", drop_nth(2), drop_nth(3)))),
            vec![1, 3]
        );
        // Toward the client, or only segments with data or a SYN: no probe.
        for other in [
            "{ toward = \"client\", flags = \"A\", nth = 2, action = \"drop\" }",
            "{ toward = \"peer\", flags = \"AP\", nth = 2, action = \"drop\" }",
            "{ toward = \"peer\", not_flags = \"A\", action = \"drop\" }",
            "{ toward = \"peer\", flags = \"A\", after_bytes = 0, action = \"drop\" }",
            "{ toward = \"peer\", flags = \"A\", nth = 2, action = \"window 0\" }",
        ] {
            assert_eq!(lost_probes(&lab(other)), Vec::<u32>::new(), "{other}");
        }
        let all = lost_probes(&lab(
            "{ toward = \"both\", flags = \"A\", action = \"drop\" }",
        ));
        assert_eq!(
            (all.first(), all.len()),
            (Some(&1), PROBES_FOLLOWED as usize)
        );
    }

    /// TCP_KEEPIDLE 1, TCP_KEEPINTVL 1 and a live peer 20 ms away whose link loses the
    /// first probe: TCP_KEEPCNT 2 survives a 4.5 s wait with 4 probes, TCP_KEEPCNT 1 fails
    /// at 2 s after 1.
    #[test]
    fn a_live_peer_with_a_lost_probe() {
        let at = |keepcnt: u32| {
            let s = spec(&format!(
                "lab = {{ server = \"silent\", link = {{ delay = \"10ms\" }}, rules = [{{ toward = \"peer\", flags = \"A\", not_flags = \"SFRP\", nth = 2, action = \"drop\" }}] }}\n\
                 run = {{ client = \"idle\", socket = {{ keepalive = true, keepidle = 1, keepintvl = 1, keepcnt = {keepcnt} }}, timeout = \"4500ms\" }}\n"
            ));
            predict(
                Client::Idle,
                &s,
                &BTreeMap::new(),
                Some(Duration::from_millis(20)),
                250,
            )
        };
        let p = at(2);
        assert_eq!(p.survives, Some(Duration::from_millis(4500)));
        assert_eq!(p.errno, None);
        assert_eq!(
            p.schedule.send_times,
            [1000, 2000, 3020, 4040].map(Duration::from_millis).to_vec()
        );
        assert!(p.inputs.contains("lose probe 1"), "{}", p.inputs);
        let p = at(1);
        assert_eq!(p.survives, None);
        assert_eq!(p.errno, Some(Errno::ETIMEDOUT));
        assert_eq!(p.schedule.send_times, vec![Duration::from_secs(1)]);
        assert_eq!(p.schedule.give_up, Duration::from_secs(2));
    }

    #[test]
    fn predictions_follow_the_sysctls_and_socket_options() {
        let s = spec("lab = { server = \"dies-after-handshake\" }\nrun = { client = \"idle\", socket = { keepalive = true, keepidle = 1, keepintvl = 1, keepcnt = 4 } }\n");
        let p = predict(Client::Idle, &s, &BTreeMap::new(), None, 250);
        assert_eq!(p.schedule.give_up, Duration::from_secs(5));
        assert_eq!(p.schedule.send_times.len(), 4);
        let s = spec("lab = { server = \"silent\" }\nrun = { client = \"close\" }\n");
        let in_force: BTreeMap<String, String> =
            [("net.ipv4.tcp_fin_timeout".to_owned(), "3".to_owned())].into();
        let p = predict(
            Client::Close,
            &s,
            &in_force,
            Some(Duration::from_micros(20)),
            250,
        );
        assert_eq!(p.schedule.give_up, Duration::from_secs(3));
        let s = spec("lab = { server = \"dies-after-handshake\", sysctls = { \"net.ipv4.tcp_retries2\" = 8 } }\nrun = { client = \"send\" }\n");
        let in_force: BTreeMap<String, String> =
            [("net.ipv4.tcp_retries2".to_owned(), "8".to_owned())].into();
        let p = predict(
            Client::Send,
            &s,
            &in_force,
            Some(Duration::from_micros(60)),
            250,
        );
        assert_eq!(p.schedule.give_up, Duration::from_millis(104_448));
        assert_eq!(p.rto, Some(Duration::from_millis(204)));
    }
}
