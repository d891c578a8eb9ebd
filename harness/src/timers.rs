//! The kernel's timers after the SYN: data retransmission (the RTO from the measured RTT,
//! the tail loss probe, exponential backoff and the `tcp_retries2` / `TCP_USER_TIMEOUT`
//! boundary), keepalive, SYN-ACK retransmission on the passive side, the lifetime of an
//! orphaned FIN_WAIT_2 socket, and what an ICMP error does to a connect() in SYN_SENT.
//!
//! Each model follows the kernel source it names, in jiffies where the kernel counts in
//! jiffies (so `HZ` is an input), and produces a [`Schedule`]: when each packet goes out,
//! relative to the first, and when the kernel gives up. Everything here is pure.
//!
//! Sources (Linux 6.1 and 6.18 agree on all of it, except where noted):
//! * `net/ipv4/tcp_input.c`: `tcp_rtt_estimator`, `__tcp_set_rto` — the first RTT sample
//!   `m` gives `srtt = m`, `rttvar = max(2m, rto_min)`, `RTO = usecs_to_jiffies(srtt +
//!   rttvar)`, bounded by `rto_max`;
//! * `net/ipv4/tcp_output.c`: `tcp_schedule_loss_probe` — with `tcp_early_retrans` 3 or 4
//!   and SACK, one tail loss probe after `PTO = min(usecs_to_jiffies(2·srtt) +
//!   TCP_RTO_MIN, RTO)` when one segment is out; `tcp_send_loss_probe` re-arms the RTO from
//!   the probe; `tcp_retransmit_skb` stamps `retrans_stamp` at the first RTO
//!   retransmission (the probe does not);
//! * `net/ipv4/tcp_timer.c`: `tcp_retransmit_timer` (RTO doubles, capped at `rto_max`),
//!   `tcp_write_timeout` / `retransmits_timed_out` / `tcp_model_timeout` (give up at the
//!   first expiry at least `timeout` ms after `retrans_stamp`, where `timeout` models
//!   `boundary` doublings of `TCP_RTO_MIN` up to `rto_max` then linear, or is
//!   `TCP_USER_TIMEOUT`), `tcp_clamp_rto_to_user_timeout`, `tcp_keepalive_timer`;
//! * `net/ipv4/inet_connection_sock.c`: `reqsk_timer_handler` / `reqsk_timeout` (SYN-ACKs
//!   after 1, 2, 4 … s, capped at 120 s; the request dropped at the expiry after
//!   `tcp_synack_retries` retransmissions);
//! * `net/ipv4/tcp.c` / `tcp_input.c`: `tcp_fin_time` (an orphan stays in FIN_WAIT_2 for
//!   `max(linger2 or tcp_fin_timeout, 3.5 × RTO)`);
//! * `net/ipv4/tcp_ipv4.c`: `tcp_v4_err` with `icmp_err_convert[]` (`net/ipv4/icmp.c`).

use std::time::Duration;

pub use crate::model::SynSchedule as Schedule;

/// `TCP_RTO_MIN`: 200 ms.
pub const TCP_RTO_MIN: Duration = Duration::from_millis(200);
/// `TCP_RTO_MAX`: 120 s.
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);
/// `TCP_TIMEOUT_INIT`: 1 s, the SYN and SYN-ACK initial RTO.
pub const TCP_TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// `TCP_TIMEWAIT_LEN`: 60 s.
pub const TCP_TIMEWAIT_LEN: Duration = Duration::from_secs(60);
/// `TCP_FIN_TIMEOUT_MAX`: the most `tcp_fin_timeout` and, since Linux 5.8, `TCP_LINGER2`
/// take (a larger `TCP_LINGER2` is clamped to it; before 5.8 it fell back to the sysctl).
pub const TCP_FIN_TIMEOUT_MAX: Duration = Duration::from_secs(120);

/// One jiffy at `hz`.
pub fn jiffy(hz: u32) -> Duration {
    Duration::from_nanos(1_000_000_000 / u64::from(hz.max(1)))
}

/// `usecs_to_jiffies`: rounds up.
pub fn to_jiffies(d: Duration, hz: u32) -> u64 {
    (d.as_micros() as u64 * u64::from(hz)).div_ceil(1_000_000)
}

/// `jiffies_to_usecs`.
pub fn from_jiffies(j: u64, hz: u32) -> Duration {
    jiffy(hz) * j as u32
}

/// `tcp_model_timeout(sk, boundary, rto_base)` in ms: `boundary` doublings of `rto_base`
/// until `rto_max`, then `rto_max` per step. Computed in jiffies, returned as
/// `jiffies_to_msecs`.
pub fn model_timeout(boundary: u32, rto_base: Duration, rto_max: Duration, hz: u32) -> Duration {
    let base = to_jiffies(rto_base, hz).max(1);
    let max = to_jiffies(rto_max, hz);
    let thresh = 63 - (max / base).max(1).leading_zeros(); // ilog2
    let j = if boundary <= thresh {
        ((2u64 << boundary) - 1) * base
    } else {
        ((2u64 << thresh) - 1) * base + u64::from(boundary - thresh) * max
    };
    // jiffies_to_msecs truncates to whole ms.
    Duration::from_millis(from_jiffies(j, hz).as_millis() as u64)
}

/// The inputs of the data retransmission model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransModel {
    /// `CONFIG_HZ`.
    pub hz: u32,
    /// The first RTT sample (the handshake's), as the kernel measured it.
    pub rtt: Duration,
    /// `tcp_rto_min` in force (200 ms unless `tcp_rto_min_us` or a route says otherwise).
    pub rto_min: Duration,
    /// `tcp_rto_max_ms` in force (120 s where the knob does not exist).
    pub rto_max: Duration,
    /// Whether a tail loss probe precedes the first RTO (`tcp_early_retrans` 3 or 4, SACK).
    pub tlp: bool,
    /// `net.ipv4.tcp_retries2`.
    pub retries2: u32,
    /// `TCP_USER_TIMEOUT`, when set: it replaces the `tcp_retries2` boundary.
    pub user_timeout: Option<Duration>,
}

/// What the retransmission model predicts for one segment that is never acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetransPlan {
    /// Transmissions of the segment (the original at 0, then the probe and the
    /// retransmissions) and the give-up (ETIMEDOUT), from the original.
    pub schedule: Schedule,
    /// The RTO after the handshake.
    pub rto: Duration,
    /// The tail loss probe's timeout, when there is one.
    pub pto: Option<Duration>,
    /// `retrans_stamp`: the first RTO retransmission, from the original.
    pub retrans_stamp: Duration,
    /// The boundary `retransmits_timed_out` compares with (`tcp_model_timeout` or the
    /// user timeout).
    pub boundary: Duration,
    /// The armed intervals, for their timer-wheel slack.
    pub intervals: Vec<Duration>,
    /// Whether the last transmission comes within the timer wheel's slack of the
    /// boundary: the timers since `retrans_stamp`, each as late as the wheel lets it,
    /// can carry its expiry past the boundary, and the kernel then gives up instead of
    /// sending it (`retransmits_timed_out` measures the time that actually passed).
    pub optional_last: bool,
}

impl RetransModel {
    /// The RTO after one RTT sample `m`: `usecs_to_jiffies(m + max(2m, rto_min))`, at most
    /// `rto_max`.
    pub fn rto(&self) -> Duration {
        let m = self.rtt;
        let rttvar = (m * 2).max(self.rto_min);
        from_jiffies(to_jiffies(m + rttvar, self.hz), self.hz).min(self.rto_max)
    }

    /// Simulates the retransmission timer until the kernel gives up.
    pub fn plan(&self) -> RetransPlan {
        let hz = self.hz;
        let rto0 = self.rto();
        let pto = self.tlp.then(|| {
            let two_srtt = from_jiffies(to_jiffies(self.rtt * 2, hz), hz);
            (two_srtt + from_jiffies(to_jiffies(TCP_RTO_MIN, hz), hz)).min(rto0)
        });
        let boundary = match self.user_timeout {
            Some(u) => u,
            None => model_timeout(self.retries2, TCP_RTO_MIN, self.rto_max, hz),
        };
        let mut sends = vec![Duration::ZERO];
        let mut intervals = Vec::new();
        let mut now = Duration::ZERO;
        if let Some(p) = pto {
            now += p;
            intervals.push(p);
            sends.push(now); // the probe: the tail segment again
        }
        // The RTO armed after the original (or re-armed after the probe).
        let mut rto = rto0;
        now += rto;
        intervals.push(rto);
        sends.push(now);
        let stamp = now; // retrans_stamp: the first RTO retransmission
                         // How late the timers armed since the stamp may have run, accumulated.
        let mut late_since_stamp = Duration::ZERO;
        let mut optional_last = false;
        loop {
            rto = (rto * 2).min(self.rto_max);
            let armed = match self.user_timeout {
                // tcp_clamp_rto_to_user_timeout: never past the user timeout.
                Some(u) => {
                    let left = u.saturating_sub(now - stamp);
                    if left.is_zero() {
                        jiffy(hz)
                    } else {
                        rto.min(from_jiffies(to_jiffies(left, hz), hz))
                    }
                }
                None => rto,
            };
            now += armed;
            intervals.push(armed);
            late_since_stamp += crate::tolerance::interval_slack(armed, hz);
            // retransmits_timed_out: whole ms since retrans_stamp.
            let elapsed = Duration::from_millis((now - stamp).as_millis() as u64);
            if elapsed >= boundary {
                return RetransPlan {
                    schedule: Schedule {
                        send_times: sends,
                        give_up: now,
                    },
                    rto: rto0,
                    pto,
                    retrans_stamp: stamp,
                    boundary,
                    intervals,
                    optional_last,
                };
            }
            optional_last = boundary - elapsed <= late_since_stamp;
            sends.push(now);
        }
    }
}

/// Who answers the keepalive probes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProbeAnswers {
    /// Nobody: the peer is dead, every probe goes unanswered.
    #[default]
    Nobody,
    /// A live peer, whose answer comes `rtt` after each probe that reaches it; the probes
    /// numbered in `lost` (1 is the first) are lost on the way and go unanswered.
    Peer {
        /// The round trip from a probe to its answer.
        rtt: Duration,
        /// The probes lost on the way, by number (1 is the first).
        lost: Vec<u32>,
    },
}

/// The inputs of the keepalive model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepaliveModel {
    /// Idle time before the first probe (`tcp_keepalive_time` or `TCP_KEEPIDLE`).
    pub time: Duration,
    /// Between probes (`tcp_keepalive_intvl` or `TCP_KEEPINTVL`).
    pub intvl: Duration,
    /// Unanswered probes before the connection is killed (`tcp_keepalive_probes` or
    /// `TCP_KEEPCNT`).
    pub probes: u32,
    /// `TCP_USER_TIMEOUT`, which overrides the probe count when set.
    pub user_timeout: Option<Duration>,
    /// Who answers the probes.
    pub answers: ProbeAnswers,
}

/// How a keepalive run ends: killed, or still up when the wait ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepaliveRun {
    /// The probes, and the kill (or the end of the wait).
    pub schedule: Schedule,
    /// Whether the connection is killed (ETIMEDOUT) before the wait ends.
    pub killed: bool,
    /// The interval armed before each probe and, when killed, before the kill, for their
    /// slack.
    pub intervals: Vec<Duration>,
}

/// The most probes a keepalive run follows (a live peer answers for ever).
const MAX_KEEPALIVE_PROBES: usize = 100_000;

impl KeepaliveModel {
    /// Probe times and the kill time, from the last packet received (the handshake):
    /// `tcp_keepalive_timer` probes at `time`, then every `intvl`; it kills the connection
    /// at the first expiry where `probes` probes are out (or, with a user timeout, at the
    /// first expiry at least that long after the last packet received once a probe is
    /// out). For a peer that answers, up to the end of [`Self::until`]'s longest wait.
    pub fn schedule(&self) -> Schedule {
        self.until(Duration::MAX).schedule
    }

    /// The probes and the kill within a wait of `horizon` from the last packet received
    /// (the handshake), as `tcp_keepalive_timer` runs: when it fires, the time since the
    /// last packet received (`keepalive_time_elapsed`) is at least `time`, it kills the
    /// connection if `probes` probes are out (`icsk_probes_out`; with a user timeout: if
    /// that long has passed and a probe is out), or sends a probe and fires again after
    /// `intvl`; otherwise it fires again `time` after the last packet received. An answer
    /// to a probe is a packet received: tcp_ack() sets `icsk_probes_out` back to 0 and
    /// `rcv_tstamp` to its arrival, so the count starts over and the next probe comes
    /// `time` after the answer.
    pub fn until(&self, horizon: Duration) -> KeepaliveRun {
        let mut probes: Vec<Duration> = Vec::new();
        let mut intervals = Vec::new();
        let mut last_rx = Duration::ZERO;
        let mut last_event = Duration::ZERO;
        let mut out = 0u32;
        let mut answer: Option<Duration> = None;
        let mut now = self.time;
        while now <= horizon && probes.len() < MAX_KEEPALIVE_PROBES {
            if let Some(a) = answer.filter(|a| *a <= now) {
                last_rx = a;
                out = 0;
                answer = None;
            }
            let elapsed = now - last_rx;
            if elapsed < self.time {
                now = last_rx + self.time;
                continue;
            }
            let kill = match self.user_timeout {
                Some(u) => elapsed >= u && out > 0,
                None => out >= self.probes,
            };
            intervals.push(now - last_event);
            last_event = now;
            if kill {
                return KeepaliveRun {
                    schedule: Schedule {
                        send_times: probes,
                        give_up: now,
                    },
                    killed: true,
                    intervals,
                };
            }
            probes.push(now);
            out += 1;
            if let ProbeAnswers::Peer { rtt, lost } = &self.answers {
                if !lost.contains(&(probes.len() as u32)) {
                    answer = Some(now + *rtt);
                }
            }
            now += self.intvl;
        }
        KeepaliveRun {
            schedule: Schedule {
                send_times: probes,
                give_up: horizon.min(now),
            },
            killed: false,
            intervals,
        }
    }

    /// The intervals the keepalive timer arms, for their slack.
    pub fn intervals(&self) -> Vec<Duration> {
        self.until(Duration::MAX).intervals
    }
}

/// SYN-ACKs of a passive open whose ACK never comes, from the first: `reqsk_timer_handler`
/// retransmits after `min(1 s << n, 120 s)` until `synack_retries` retransmissions, then
/// drops the request at the next expiry.
pub fn synack_schedule(synack_retries: u32) -> Schedule {
    let mut sends = vec![Duration::ZERO];
    let mut now = Duration::ZERO;
    for n in 0..=synack_retries {
        now += (TCP_TIMEOUT_INIT * (1u32 << n.min(7))).min(TCP_RTO_MAX);
        if n == synack_retries {
            break;
        }
        sends.push(now);
    }
    Schedule {
        send_times: sends,
        give_up: now,
    }
}

/// How long an orphaned socket stays in FIN_WAIT_2 after its FIN is acknowledged:
/// `tcp_fin_time`, i.e. `linger2` (or `tcp_fin_timeout`) but at least `3.5 × RTO`.
pub fn fin_wait2_lifetime(fin_timeout: Duration, rto: Duration) -> Duration {
    let floor = rto * 4 - rto / 2;
    fin_timeout.max(floor)
}

/// What an ICMP destination-unreachable does to a connect() in SYN_SENT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpVerdict {
    /// The errno `icmp_err_convert[code]` gives.
    pub errno: nix::errno::Errno,
    /// RFC 1122's classification (`fatal` in `icmp_err_convert`): hard errors are
    /// port/protocol unreachable and the like; net/host unreachable are soft.
    pub hard: bool,
    /// Whether the kernel aborts the connect at once (`tcp_v4_err`: every
    /// destination-unreachable but fragmentation-needed, in SYN_SENT).
    pub aborts_at_once: bool,
}

/// `icmp_err_convert[code]` and `tcp_v4_err`'s handling of it in SYN_SENT.
///
/// Commit 0a8de364ff7a ("tcp: no longer abort SYN_SENT when receiving some ICMP", Nov
/// 2023) made net/host unreachable soft in SYN_SENT; b59db45d7eba reverted it in the
/// same merge window (Linux 6.8), so no release carries it: every kernel this model knows
/// aborts at once.
pub fn icmp_dest_unreach(code: u8) -> Option<IcmpVerdict> {
    use nix::errno::Errno::*;
    let (errno, hard) = match code {
        0 => (ENETUNREACH, false),  // ICMP_NET_UNREACH
        1 => (EHOSTUNREACH, false), // ICMP_HOST_UNREACH
        2 => (ENOPROTOOPT, true),   // ICMP_PROT_UNREACH
        3 => (ECONNREFUSED, true),  // ICMP_PORT_UNREACH
        5 => (EOPNOTSUPP, false),   // ICMP_SR_FAILED
        6 => (ENETUNREACH, true),   // ICMP_NET_UNKNOWN
        7 => (EHOSTDOWN, true),     // ICMP_HOST_UNKNOWN
        8 => (ENONET, true),        // ICMP_HOST_ISOLATED
        9 | 11 => (ENETUNREACH, true),
        10 | 12 => (EHOSTUNREACH, true),
        13 => (EHOSTUNREACH, true), // ICMP_PKT_FILTERED
        14 => (EHOSTUNREACH, true), // ICMP_PREC_VIOLATION
        15 => (EHOSTUNREACH, true), // ICMP_PREC_CUTOFF
        _ => return None,
    };
    Some(IcmpVerdict {
        errno,
        hard,
        aborts_at_once: true,
    })
}

/// The ICMP code iptables' `REJECT --reject-with NAME` sends, or `None` for `tcp-reset`
/// (an RST, not an ICMP) and unknown names.
pub fn reject_code(name: &str) -> Option<u8> {
    Some(match name {
        "icmp-net-unreachable" => 0,
        "icmp-host-unreachable" => 1,
        "icmp-proto-unreachable" => 2,
        "icmp-port-unreachable" => 3,
        "icmp-net-prohibited" => 9,
        "icmp-host-prohibited" => 10,
        "icmp-admin-prohibited" => 13,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn the_documented_hypothetical_timeouts() {
        // ip-sysctl.rst: 15 → 924.6 s, 8 → 102.2 s ("at least 100 s").
        assert_eq!(
            model_timeout(15, TCP_RTO_MIN, TCP_RTO_MAX, 250),
            ms(924_600)
        );
        assert_eq!(model_timeout(8, TCP_RTO_MIN, TCP_RTO_MAX, 250), ms(102_200));
        assert_eq!(
            model_timeout(15, TCP_RTO_MIN, TCP_RTO_MAX, 1000),
            ms(924_600)
        );
        // SYNs: rto_base 1 s, retries 6 → 127 s.
        assert_eq!(
            model_timeout(6, TCP_TIMEOUT_INIT, TCP_RTO_MAX, 250),
            ms(127_000)
        );
    }

    /// 10 ms away with TCP_USER_TIMEOUT 3 s the sixth transmission (3.392 s, 2.968 s after
    /// retrans_stamp) comes 32 ms before the boundary, less than the wheel may delay the
    /// timers before it: the kernel sent 5 in a measurement, so it is optional. With 2.5 s
    /// the last one (1.696 s) is far from the boundary and required.
    #[test]
    fn a_transmission_within_the_slack_of_the_user_timeout_is_optional() {
        let at = |ut: u64| {
            RetransModel {
                rtt: ms(10),
                ..veth(15, true, Some(ms(ut)))
            }
            .plan()
        };
        let p = at(3000);
        assert_eq!(
            p.schedule.send_times,
            vec![ms(0), ms(212), ms(424), ms(848), ms(1696), ms(3392)]
        );
        assert!(p.optional_last);
        let p = at(2500);
        assert_eq!(p.schedule.send_times.last(), Some(&ms(1696)));
        assert!(!p.optional_last);
    }

    fn veth(retries2: u32, tlp: bool, user_timeout: Option<Duration>) -> RetransModel {
        RetransModel {
            hz: 250,
            rtt: Duration::from_micros(60),
            rto_min: TCP_RTO_MIN,
            rto_max: TCP_RTO_MAX,
            tlp,
            retries2,
            user_timeout,
        }
    }

    #[test]
    fn rto_rounds_up_to_jiffies() {
        assert_eq!(veth(15, false, None).rto(), ms(204));
        let mut m = veth(15, false, None);
        m.hz = 1000;
        assert_eq!(m.rto(), ms(201));
        m.rtt = Duration::ZERO;
        assert_eq!(m.rto(), ms(200));
    }

    #[test]
    fn retries2_8_gives_up_at_the_first_rto_past_102_2_s() {
        let p = veth(8, false, None).plan();
        // Original, 8 retransmissions at 0.204 × (2^k − 1), give-up at the 9th expiry.
        assert_eq!(p.schedule.send_times.len(), 9);
        assert_eq!(p.schedule.send_times[1], ms(204));
        assert_eq!(p.schedule.send_times[8], ms(52_020));
        assert_eq!(p.schedule.give_up, ms(104_244));
        // With the tail loss probe everything moves one RTO later and the probe is one
        // more segment on the wire.
        let t = veth(8, true, None).plan();
        assert_eq!(t.pto, Some(ms(204)));
        assert_eq!(t.retrans_stamp, ms(408));
        assert_eq!(t.schedule.send_times.len(), 10);
        assert_eq!(t.schedule.give_up, ms(104_448));
    }

    #[test]
    fn retries2_15_gives_up_after_the_hypothetical_924_6_s() {
        let p = veth(15, true, None).plan();
        assert_eq!(p.boundary, ms(924_600));
        assert!(p.schedule.give_up - p.retrans_stamp >= p.boundary);
        // 15 RTO retransmissions and the probe.
        assert_eq!(p.schedule.send_times.len(), 17);
        assert_eq!(p.schedule.give_up, ms(208_896 + 6 * 120_000));
    }

    #[test]
    fn the_user_timeout_counts_from_the_first_retransmission() {
        let p = veth(15, true, Some(ms(3000))).plan();
        assert_eq!(p.schedule.give_up, ms(408 + 3000));
        let q = veth(15, false, Some(ms(3000))).plan();
        assert_eq!(q.schedule.give_up, ms(204 + 3000));
    }

    #[test]
    fn keepalive_kills_after_time_plus_probes_times_intvl() {
        let k = KeepaliveModel {
            time: Duration::from_secs(2),
            intvl: Duration::from_secs(1),
            probes: 3,
            user_timeout: None,
            answers: ProbeAnswers::Nobody,
        };
        let s = k.schedule();
        assert_eq!(
            s.send_times,
            vec![ms(2000), ms(3000), ms(4000)],
            "probes at time, time + intvl, …"
        );
        assert_eq!(s.give_up, ms(5000));
        assert_eq!(k.intervals(), vec![ms(2000), ms(1000), ms(1000), ms(1000)]);
        let u = KeepaliveModel {
            user_timeout: Some(ms(2500)),
            ..k
        };
        assert_eq!(u.schedule().give_up, ms(3000));
    }

    fn live(probes: u32, lost: &[u32]) -> KeepaliveModel {
        KeepaliveModel {
            time: Duration::from_secs(1),
            intvl: Duration::from_secs(1),
            probes,
            user_timeout: None,
            answers: ProbeAnswers::Peer {
                rtt: ms(20),
                lost: lost.to_vec(),
            },
        }
    }

    #[test]
    fn an_answered_probe_starts_the_count_over() {
        // TCP_KEEPCNT 2, the first probe lost: the second, 1 s later, is answered 20 ms
        // on; the next comes 1 s after that answer, and so on.
        let r = live(2, &[1]).until(ms(4500));
        assert!(!r.killed);
        assert_eq!(
            r.schedule.send_times,
            vec![ms(1000), ms(2000), ms(3020), ms(4040)]
        );
        assert_eq!(r.schedule.give_up, ms(4500));
        assert_eq!(r.intervals, vec![ms(1000), ms(1000), ms(1020), ms(1020)]);
        // Two probes lost, but never two in a row: still up.
        let r = live(2, &[1, 3]).until(ms(4500));
        assert!(!r.killed);
        assert_eq!(
            r.schedule.send_times,
            vec![ms(1000), ms(2000), ms(3020), ms(4020)]
        );
        // Nothing lost: one probe every time + rtt.
        let r = live(1, &[]).until(ms(3500));
        assert_eq!(r.schedule.send_times, vec![ms(1000), ms(2020), ms(3040)]);
    }

    #[test]
    fn with_tcp_keepcnt_1_one_lost_probe_kills() {
        let r = live(1, &[1]).until(ms(4500));
        assert!(r.killed);
        assert_eq!(r.schedule.send_times, vec![ms(1000)]);
        assert_eq!(r.schedule.give_up, ms(2000), "keepidle + keepintvl");
        assert_eq!(r.intervals, vec![ms(1000), ms(1000)]);
        // The second probe lost instead: the first was answered at 1.02 s, so the
        // second goes at 2.02 s and the kill comes at 3.02 s.
        let r = live(1, &[2]).until(ms(4500));
        assert!(r.killed);
        assert_eq!(r.schedule.send_times, vec![ms(1000), ms(2020)]);
        assert_eq!(r.schedule.give_up, ms(3020));
    }

    #[test]
    fn synacks_follow_the_documented_63_s() {
        let s = synack_schedule(5);
        assert_eq!(
            s.send_times,
            [0, 1, 3, 7, 15, 31].map(|x| ms(x * 1000)).to_vec()
        );
        assert_eq!(s.give_up, ms(63_000));
        assert_eq!(synack_schedule(2).give_up, ms(7000));
    }

    #[test]
    fn fin_wait2_has_a_floor_of_three_and_a_half_rtos() {
        assert_eq!(
            fin_wait2_lifetime(Duration::from_secs(60), ms(204)),
            Duration::from_secs(60)
        );
        assert_eq!(fin_wait2_lifetime(ms(100), ms(204)), ms(714));
    }

    #[test]
    fn icmp_codes_map_as_icmp_err_convert() {
        use nix::errno::Errno;
        assert_eq!(icmp_dest_unreach(1).unwrap().errno, Errno::EHOSTUNREACH);
        assert!(!icmp_dest_unreach(1).unwrap().hard);
        assert_eq!(icmp_dest_unreach(3).unwrap().errno, Errno::ECONNREFUSED);
        assert_eq!(icmp_dest_unreach(13).unwrap().errno, Errno::EHOSTUNREACH);
        assert_eq!(reject_code("icmp-admin-prohibited"), Some(13));
        assert_eq!(reject_code("tcp-reset"), None);
    }
}
