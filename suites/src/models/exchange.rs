//! How long a request/reply exchange of the `exchange` client takes: a request written as
//! two small write()s, then the reply read (write-write-read), under Nagle's algorithm,
//! the receiver's delayed ACK, `TCP_QUICKACK` and `TCP_CORK`. Pure.
//!
//! Each exchange takes one round trip, plus what holds the request back:
//! * Nagle (the default; `tcp_nagle_check`, Minshall's variant): the first part goes at
//!   once, the second small one waits while the first, also small, is unacknowledged. The
//!   receiver's ACK of the first part then comes back after one round trip plus its
//!   delayed-ACK timer, and the exchange takes two round trips plus that timer.
//! * The delayed-ACK timer (`tcp_send_delayed_ack`): `ato`, and where `ato` exceeds
//!   `TCP_DELACK_MIN`, at most `max(srtt, TCP_DELACK_MIN)` and `TCP_DELACK_MAX`
//!   (`HZ/2` outside pingpong mode). In a write-write-read exchange `ato` stays at
//!   `TCP_ATO_MIN` (`HZ/25`, 40 ms): the timer fires in pingpong mode, which
//!   `tcp_delack_timer_handler` leaves with `ato = TCP_ATO_MIN`, and the reply enters
//!   again (`tcp_event_data_sent`); `tcp_event_data_recv` only raises `ato` for a segment
//!   that comes sooner than `ato` after the previous one, and then to at most
//!   `ato/2 + TCP_ATO_MIN/2` (the first part comes a round trip after the reply, the
//!   second a round trip and a timer after the first).
//! * `TCP_QUICKACK` at the receiver, set again after every recv() (tcp(7): not
//!   permanent): `__tcp_sock_set_quickack` sends the scheduled ACK at once; Nagle still
//!   holds the second part for the round trip of that ACK.
//! * `TCP_NODELAY` at the writer: both parts go at once; one round trip.
//! * `TCP_CORK` at the writer, never uncorked: the partial request waits in the write
//!   queue with nothing in flight, and `tcp_check_probe_timer` arms the zero-window-probe
//!   timer at `tcp_probe0_base` = `max(icsk_rto, TCP_RTO_MIN)`; when it fires,
//!   `tcp_write_wakeup` sends the queued bytes, corked or not. tcp(7) calls that "a 200
//!   millisecond ceiling"; it is the RTO in force when the request is written, 200 ms
//!   only while the RTO is at most `TCP_RTO_MIN`.
//!
//! A connection's first segments are ACKed at once (quickack mode, `tcp_incr_quickack`:
//! up to `TCP_MAX_QUICKACKS` = 16 ACKs) until it is interactive (pingpong): the first
//! [`WARM_UP`] exchanges (16 segments of two-part requests) are recorded but not judged.
//!
//! Sources, Linux 6.18 (6.1 and 6.6 agree): `include/net/tcp.h` (`TCP_DELACK_MIN`,
//! `TCP_ATO_MIN`, `TCP_DELACK_MAX`, `TCP_RTO_MIN`, `tcp_probe0_base`,
//! `tcp_check_probe_timer`), `net/ipv4/tcp_output.c` (`tcp_nagle_check`,
//! `tcp_send_delayed_ack`, `tcp_write_wakeup`), `net/ipv4/tcp_input.c`
//! (`tcp_event_data_recv`, `__tcp_ack_snd_check`), `net/ipv4/tcp_timer.c`
//! (`tcp_delack_timer_handler`, `tcp_probe_timer`), `net/ipv4/tcp.c`
//! (`__tcp_sock_set_quickack`).

use std::time::Duration;

use netclaim_harness::timers::{from_jiffies, to_jiffies, RetransModel, TCP_RTO_MAX, TCP_RTO_MIN};
use netclaim_harness::tolerance::{interval_slack, kernel_timer_window, Window, EARLY};

use crate::spec::ClaimSpec;

/// Exchanges the client makes on its one connection.
pub const EXCHANGES: usize = 24;

/// Exchanges at the start that are recorded but not judged: quickack mode ACKs up to 16
/// segments at once, 8 two-part requests.
pub const WARM_UP: usize = 8;

/// Bytes of each of the request's two write()s.
pub const PART_BYTES: usize = 100;

/// How long the client waits for one reply before it calls the run a failure (an
/// `error`, never a verdict): longer than any RTO a corked request waits for at the round
/// trips a lab builds.
pub const REPLY_LIMIT: Duration = Duration::from_secs(10);

/// What one exchange may take beyond the model, without a timer: the wire relay's and
/// the two processes' wake-ups, four times (two segments each way).
pub const PROCESS: Duration = Duration::from_millis(2);

/// `TCP_ATO_MIN` and `TCP_DELACK_MIN`, in jiffies: `HZ/25` (40 ms), 4 below HZ 100.
pub fn ato_min(hz: u32) -> u64 {
    if hz >= 100 {
        u64::from(hz / 25)
    } else {
        4
    }
}

/// `TCP_DELACK_MAX`, in jiffies: `HZ/5` (200 ms).
pub fn delack_max(hz: u32) -> u64 {
    u64::from(hz / 5)
}

/// `tcp_send_delayed_ack`: the jiffies the delayed-ACK timer is armed for with `ato`
/// (jiffies), the receiver's smoothed RTT `srtt` (none before a sample), in pingpong mode
/// or not. Above `TCP_DELACK_MIN`, `ato` is bounded by `max(srtt, TCP_DELACK_MIN)` and by
/// `TCP_DELACK_MAX` in pingpong mode (`HZ/2` outside it); always by `TCP_DELACK_MAX`
/// (`icsk_delack_max`).
pub fn delayed_ack_jiffies(ato: u64, srtt: Option<Duration>, pingpong: bool, hz: u32) -> u64 {
    let mut ato = ato;
    if ato > ato_min(hz) {
        let mut max_ato = if pingpong {
            delack_max(hz)
        } else {
            u64::from(hz / 2)
        };
        if let Some(s) = srtt.filter(|s| !s.is_zero()) {
            let rtt = to_jiffies(s, hz).max(ato_min(hz));
            max_ato = max_ato.min(rtt);
        }
        ato = ato.min(max_ato);
    }
    ato.min(delack_max(hz))
}

/// `tcp_probe0_base`: `max(icsk_rto, TCP_RTO_MIN)`, in whole jiffies (the RTO as the
/// kernel holds it, read back from `TCP_INFO`).
pub fn probe0_base(rto: Duration, hz: u32) -> Duration {
    let j = to_jiffies(rto, hz).max(to_jiffies(TCP_RTO_MIN, hz));
    from_jiffies(j, hz).min(TCP_RTO_MAX)
}

/// The inputs of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// `CONFIG_HZ`.
    pub hz: u32,
    /// The path's round trip (as the kernel measured it: `tcpi_min_rtt`).
    pub rtt: Duration,
    /// `TCP_NODELAY` on the writer.
    pub nodelay: bool,
    /// `TCP_CORK` on the writer, never uncorked.
    pub cork: bool,
    /// The receiver sets `TCP_QUICKACK` after every recv().
    pub quickack: bool,
    /// The writer's RTO when it writes the request (`TCP_INFO`).
    pub rto: Duration,
}

/// What the model predicts for one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// From the first write() to the whole reply read.
    pub took: Duration,
    /// The kernel timer the exchange waits for (the delayed ACK, the probe0 timer), whose
    /// timer-wheel slack widens its window.
    pub timer: Option<Duration>,
    /// Why, in words.
    pub why: String,
}

impl Exchange {
    /// The delayed-ACK timer of a write-write-read exchange's first part: `ato` at
    /// `TCP_ATO_MIN`, in pingpong mode.
    pub fn delayed_ack(&self) -> Duration {
        from_jiffies(
            delayed_ack_jiffies(ato_min(self.hz), Some(self.rtt), true, self.hz),
            self.hz,
        )
    }

    /// How long the exchange takes, and why.
    pub fn predict(&self) -> Prediction {
        let rtt = self.rtt;
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        if self.cork {
            let probe = probe0_base(self.rto, self.hz);
            return Prediction {
                took: probe + rtt,
                timer: Some(probe),
                why: format!(
                    "TCP_CORK, never uncorked: the request waits with nothing in flight until the probe0 timer, max(RTO {}, TCP_RTO_MIN 200 ms) = {}, sends it (tcp_check_probe_timer, tcp_write_wakeup); then one round trip, {}",
                    ms(self.rto),
                    ms(probe),
                    ms(rtt)
                ),
            };
        }
        if self.nodelay {
            return Prediction {
                took: rtt,
                timer: None,
                why: format!(
                    "TCP_NODELAY: both parts go at once; one round trip, {}",
                    ms(rtt)
                ),
            };
        }
        if self.quickack {
            return Prediction {
                took: rtt * 2,
                timer: None,
                why: format!(
                    "Nagle holds the second part until the first is ACKed; TCP_QUICKACK at the receiver ACKs it at once: two round trips, 2 × {}",
                    ms(rtt)
                ),
            };
        }
        let delack = self.delayed_ack();
        Prediction {
            took: rtt * 2 + delack,
            timer: Some(delack),
            why: format!(
                "Nagle holds the second part until the first is ACKed; the receiver, interactive (pingpong), delays that ACK by ato = TCP_ATO_MIN = {} (HZ/25; bounded by max(srtt, TCP_DELACK_MIN) and TCP_DELACK_MAX 200 ms only above TCP_DELACK_MIN): two round trips of {} and the delayed ACK",
                ms(delack),
                ms(rtt)
            ),
        }
    }
}

/// The window of an exchange predicted to take `took`: never early beyond
/// [`EARLY`], late by the timer-wheel slack of `timer` (if it waits for one) and
/// [`PROCESS`].
pub fn window(took: Duration, timer: Option<Duration>, hz: u32) -> Window {
    let slack = timer.map_or(Duration::ZERO, |t| interval_slack(t, hz)) + PROCESS;
    kernel_timer_window(took, slack, EARLY)
}

/// The median of `v` (the mean of the middle two of an even count); zero when empty.
pub fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    match s.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    }
}

/// A rough run time of the exchanges of `spec`: each as the model predicts it at the
/// wire's round trip, with the RTO after the handshake.
pub fn estimate(spec: &ClaimSpec) -> Duration {
    let rtt = crate::models::plan::link_rtt(spec);
    let socket = spec
        .run
        .as_ref()
        .map(|r| r.socket.clone())
        .unwrap_or_default();
    let rto = RetransModel {
        hz: 250,
        rtt,
        rto_min: TCP_RTO_MIN,
        rto_max: TCP_RTO_MAX,
        tlp: false,
        retries2: 15,
        user_timeout: None,
    }
    .rto();
    let one = Exchange {
        hz: 250,
        rtt,
        nodelay: socket.nodelay,
        cork: socket.cork,
        quickack: spec.lab.quickack,
        rto,
    }
    .predict()
    .took;
    (one + PROCESS) * EXCHANGES as u32 + rtt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn at(rtt: Duration) -> Exchange {
        Exchange {
            hz: 250,
            rtt,
            nodelay: false,
            cork: false,
            quickack: false,
            rto: ms(212),
        }
    }

    #[test]
    fn the_delayed_ack_timer_is_bounded_as_tcp_send_delayed_ack_bounds_it() {
        // HZ=250: TCP_ATO_MIN = TCP_DELACK_MIN = 10 jiffies, TCP_DELACK_MAX = 50.
        assert_eq!((ato_min(250), delack_max(250)), (10, 50));
        assert_eq!((ato_min(1000), delack_max(1000)), (40, 200));
        assert_eq!(ato_min(64), 4);
        // At TCP_DELACK_MIN the srtt does not matter.
        assert_eq!(delayed_ack_jiffies(10, Some(ms(100)), true, 250), 10);
        // Above it: max(srtt, TCP_DELACK_MIN) bounds it (srtt 10 ms → 10 jiffies).
        assert_eq!(delayed_ack_jiffies(30, Some(ms(10)), true, 250), 10);
        assert_eq!(delayed_ack_jiffies(30, Some(ms(100)), true, 250), 25);
        // TCP_DELACK_MAX (200 ms) in pingpong mode, HZ/2 outside it, but always
        // icsk_delack_max (TCP_DELACK_MAX) at the end.
        assert_eq!(delayed_ack_jiffies(100, Some(ms(1000)), true, 250), 50);
        assert_eq!(delayed_ack_jiffies(100, None, false, 250), 50);
        assert_eq!(delayed_ack_jiffies(40, None, false, 250), 40);
    }

    #[test]
    fn nagle_and_a_delayed_ack_take_two_round_trips_and_40_ms() {
        let p = at(ms(10)).predict();
        assert_eq!(p.took, ms(60));
        assert_eq!(p.timer, Some(ms(40)));
        // At a 200 ms round trip the timer is still TCP_ATO_MIN.
        assert_eq!(at(ms(200)).predict().took, ms(440));
        // At HZ=1000 TCP_ATO_MIN is 40 jiffies: 40 ms too.
        let mut e = at(ms(10));
        e.hz = 1000;
        assert_eq!(e.predict().took, ms(60));
    }

    #[test]
    fn nodelay_takes_one_round_trip_and_quickack_two() {
        let nodelay = Exchange {
            nodelay: true,
            ..at(ms(10))
        };
        assert_eq!(
            (nodelay.predict().took, nodelay.predict().timer),
            (ms(10), None)
        );
        let quickack = Exchange {
            quickack: true,
            ..at(ms(10))
        };
        assert_eq!(
            (quickack.predict().took, quickack.predict().timer),
            (ms(20), None)
        );
    }

    #[test]
    fn a_corked_request_waits_for_the_probe0_timer() {
        // RTO 212 ms (10 ms round trip: 53 jiffies): 212 ms, then the round trip.
        let cork = Exchange {
            cork: true,
            ..at(ms(10))
        };
        assert_eq!(cork.predict().took, ms(222));
        assert_eq!(cork.predict().timer, Some(ms(212)));
        // An RTO below TCP_RTO_MIN (tcp_rto_min_us lowered): 200 ms.
        assert_eq!(probe0_base(ms(5), 250), ms(200));
        // 200 ms round trip, RTO 600 ms: the "200 ms ceiling" is 600 ms.
        let far = Exchange {
            cork: true,
            rto: ms(600),
            ..at(ms(200))
        };
        assert_eq!(far.predict().took, ms(800));
        // TCP_CORK wins over TCP_NODELAY.
        let both = Exchange {
            nodelay: true,
            ..cork
        };
        assert_eq!(both.predict().took, ms(222));
    }

    #[test]
    fn windows_and_medians() {
        let w = window(ms(60), Some(ms(40)), 250);
        // 5 ms early; late by one level-0 granule and the rounded-up jiffy (8 ms), 1 ms
        // armed after the capture, 2 ms of process.
        assert_eq!((w.min, w.max), (ms(55), ms(71)));
        let w = window(ms(10), None, 250);
        assert_eq!((w.min, w.max), (ms(5), ms(12)));
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(
            median(&[ms(4), ms(1), ms(2), ms(3)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
