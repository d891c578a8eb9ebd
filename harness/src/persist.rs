//! The persist timer: what the kernel does when the peer's window is zero and data waits
//! to be sent. Pure, like [`crate::timers`], whose jiffy arithmetic it uses.
//!
//! Sources (`net/ipv4/tcp_input.c`, `tcp_output.c`, `tcp_timer.c`; Linux 5.11 and later,
//! where Enke Chen's "tcp: fix TCP_USER_TIMEOUT with zero window" added
//! `icsk_probes_tstamp`):
//! * `tcp_ack_probe`: an ACK that leaves the window closed (re)arms `ICSK_TIME_PROBE0` at
//!   `tcp_probe0_when = min(tcp_probe0_base << icsk_backoff, TCP_RTO_MAX)`, where
//!   `tcp_probe0_base = max(RTO, TCP_RTO_MIN)`, clamped by
//!   `tcp_clamp_probe0_to_user_timeout` (never past the user timeout, at least
//!   `TCP_TIMEOUT_MIN`, 2 jiffies);
//! * `tcp_probe_timer`: the first expiry stamps `icsk_probes_tstamp`; a later expiry at
//!   least `TCP_USER_TIMEOUT` after the stamp aborts the connection (ETIMEDOUT). Otherwise
//!   `tcp_send_probe0` sends a window probe (a pure ACK at `snd_una − 1`) and raises
//!   `icsk_backoff`, by at most `tcp_retries2`;
//! * `tcp_ack`: every ACK resets `icsk_probes_out`, so a peer that answers its probes is
//!   never given up by `tcp_retries2` (RFC 1122 4.2.2.17); only the user timeout ends it.
//!
//! So the probes go out one round trip plus a doubling interval apart, from the moment
//! the window closed, and with a user timeout the connection ends that long after the
//! first probe's timer: `rtt + base + user_timeout` after the data that filled the window
//! (the window closes when that data's ACK arrives, one round trip after it was sent).

use std::time::Duration;

use crate::timers::{from_jiffies, jiffy, to_jiffies, Schedule, TCP_RTO_MAX, TCP_RTO_MIN};

/// The inputs of the persist-timer model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistModel {
    /// `CONFIG_HZ`.
    pub hz: u32,
    /// The round trip: the window closes one after the data is sent, and each probe's
    /// answer arrives one after the probe.
    pub rtt: Duration,
    /// The RTO in force when the window closes (`tcpi_rto`).
    pub rto: Duration,
    /// `net.ipv4.tcp_retries2`: the most `icsk_backoff` grows to.
    pub retries2: u32,
    /// `TCP_USER_TIMEOUT`; without it a peer that answers its probes is probed for ever.
    pub user_timeout: Option<Duration>,
}

/// What the persist-timer model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistPlan {
    /// The data at 0, then each window probe; `give_up`: ETIMEDOUT (with a user timeout;
    /// otherwise the end of the horizon the plan was asked for).
    pub schedule: Schedule,
    /// `tcp_probe0_base`.
    pub base: Duration,
    /// The intervals the timer was armed with, for their timer-wheel slack.
    pub intervals: Vec<Duration>,
    /// Whether the connection is given up (a user timeout), or still probed at the
    /// horizon.
    pub gives_up: bool,
}

impl PersistModel {
    /// `tcp_probe0_base`: `max(RTO, TCP_RTO_MIN)`, in jiffies.
    pub fn base(&self) -> Duration {
        let min = from_jiffies(to_jiffies(TCP_RTO_MIN, self.hz), self.hz);
        self.rto.max(min)
    }

    /// The probes and the give-up, from the data that filled the window, up to `horizon`
    /// when nothing gives up.
    pub fn plan(&self, horizon: Duration) -> PersistPlan {
        let hz = self.hz;
        let base = self.base();
        let timeout_min = jiffy(hz) * 2;
        let mut sends = vec![Duration::ZERO];
        let mut intervals = Vec::new();
        // The window closes when the data's ACK arrives; every answer to a probe re-arms
        // the timer one round trip after the probe.
        let mut armed_at = self.rtt;
        let mut backoff = 0u32;
        let mut stamp: Option<Duration> = None;
        loop {
            let when = (base * (1u32 << backoff.min(20))).min(TCP_RTO_MAX);
            let when = match (self.user_timeout, stamp) {
                // In jiffies the clamped timer expires exactly when the stamp is
                // user_timeout old, so that expiry aborts.
                (Some(u), Some(s)) => when.min(u.saturating_sub(armed_at - s).max(timeout_min)),
                _ => when,
            };
            let fires = armed_at + when;
            intervals.push(when);
            match (self.user_timeout, stamp) {
                (Some(u), Some(s)) if fires - s >= u => {
                    return PersistPlan {
                        schedule: Schedule {
                            send_times: sends,
                            give_up: fires,
                        },
                        base,
                        intervals,
                        gives_up: true,
                    };
                }
                _ if fires > horizon => {
                    return PersistPlan {
                        schedule: Schedule {
                            send_times: sends,
                            give_up: horizon,
                        },
                        base,
                        intervals,
                        gives_up: false,
                    };
                }
                _ => {}
            }
            stamp.get_or_insert(fires);
            sends.push(fires);
            backoff = (backoff + 1).min(self.retries2);
            armed_at = fires + self.rtt;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// 10 ms away, RTO 212 ms, TCP_USER_TIMEOUT 2.5 s: probes 0.222, 0.656, 1.514 s; the
    /// timer clamped to the user timeout fires 2.5 s after the first probe, 2.722 s.
    #[test]
    fn a_user_timeout_ends_a_zero_window_that_long_after_the_first_probe() {
        let m = PersistModel {
            hz: 250,
            rtt: ms(10),
            rto: ms(212),
            retries2: 15,
            user_timeout: Some(ms(2500)),
        };
        let p = m.plan(Duration::from_secs(60));
        assert_eq!(p.base, ms(212));
        assert_eq!(
            p.schedule.send_times,
            vec![ms(0), ms(222), ms(656), ms(1514)]
        );
        assert_eq!(p.schedule.give_up, ms(2722));
        assert!(p.gives_up);
        assert_eq!(p.intervals, vec![ms(212), ms(424), ms(848), ms(1198)]);
    }

    /// Without a user timeout answered probes go on for ever; tcp_retries2=3 caps the
    /// backoff at 8 × base (the probes 0.24, 0.68, 1.54, 3.27, 5.0, 6.7 s measured in
    /// net.zero-window.outlives-retries2).
    #[test]
    fn answered_probes_go_on_with_the_backoff_capped_by_retries2() {
        let m = PersistModel {
            hz: 250,
            rtt: ms(10),
            rto: ms(216),
            retries2: 3,
            user_timeout: None,
        };
        let p = m.plan(Duration::from_secs(8));
        assert!(!p.gives_up);
        assert_eq!(
            p.schedule.send_times,
            vec![
                ms(0),
                ms(226),
                ms(668),
                ms(1542),
                ms(3280),
                ms(5018),
                ms(6756)
            ]
        );
    }

    /// A small RTO is raised to TCP_RTO_MIN (tcp_probe0_base).
    #[test]
    fn the_base_is_at_least_tcp_rto_min() {
        let m = PersistModel {
            hz: 250,
            rtt: ms(1),
            rto: ms(56),
            retries2: 15,
            user_timeout: None,
        };
        assert_eq!(m.base(), ms(200));
    }
}
