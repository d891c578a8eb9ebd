//! The kernel's SYN retransmission schedule, computed from the sysctls in force.
//!
//! Derived from `net/ipv4/tcp_timer.c` (`tcp_retransmit_timer`, `tcp_write_timeout`,
//! `retransmits_timed_out`, `tcp_model_timeout`):
//!
//! * the first SYN is sent at 0 with the initial RTO (`TCP_TIMEOUT_INIT`, 1 s);
//! * on every expiry the kernel first asks `tcp_write_timeout` whether to give up: after
//!   `syn_retries + syn_linear_timeouts` retransmissions (the linear part exists from
//!   Linux 6.5 on), or once `(2^(syn_retries+1) − 1) × RTO₀` has elapsed since the first
//!   SYN (the time-based bound of `tcp_model_timeout`, which only counts once something
//!   has been retransmitted);
//! * otherwise it retransmits; while `total_rto ≤ syn_linear_timeouts` the RTO stays as it
//!   is, afterwards it doubles, capped at `tcp_rto_max_ms` (120 s by default).
//!
//! With `tcp_syn_linear_timeouts = 0` (or on kernels without it) this is the classic
//! schedule 0, 1, 3, 7, … s and a give-up after `2^(n+1) − 1` s.

use std::time::Duration;

/// `TCP_TIMEOUT_INIT`: the initial RTO of a SYN.
pub const TCP_TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// `TCP_RTO_MAX`: the default cap of the RTO.
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);

/// The inputs of the model: what is in force in the namespace. It serialises, so a
/// measurement records the sysctls it ran under and is judged against them later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SynModel {
    /// `net.ipv4.tcp_syn_retries` (or the socket's `TCP_SYNCNT`).
    pub syn_retries: u32,
    /// `net.ipv4.tcp_syn_linear_timeouts`; `None` on kernels that lack the knob.
    pub syn_linear_timeouts: Option<u32>,
    /// The initial RTO.
    pub initial_rto: Duration,
    /// The RTO cap (`net.ipv4.tcp_rto_max_ms` where present).
    pub rto_max: Duration,
}

/// What the model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynSchedule {
    /// Send time of every SYN relative to the first (the first is 0).
    pub send_times: Vec<Duration>,
    /// When connect() fails with ETIMEDOUT, relative to the first SYN.
    pub give_up: Duration,
}

impl SynSchedule {
    /// Number of SYNs on the wire.
    pub fn syn_count(&self) -> usize {
        self.send_times.len()
    }

    /// The gaps between consecutive SYNs, then the wait after the last one.
    pub fn intervals(&self) -> Vec<Duration> {
        let mut out: Vec<Duration> = self.send_times.windows(2).map(|w| w[1] - w[0]).collect();
        if let Some(last) = self.send_times.last() {
            out.push(self.give_up - *last);
        }
        out
    }

    /// How many SYNs the kernel sends before a client abandons the connect at `deadline`:
    /// a range, because a SYN due within 100 ms of the deadline may or may not go out.
    pub fn syns_before(&self, deadline: Duration) -> (usize, usize) {
        let margin = Duration::from_millis(100);
        let limit = deadline.min(self.give_up);
        let lo = self
            .send_times
            .iter()
            .filter(|t| **t + margin < limit)
            .count();
        let hi = self
            .send_times
            .iter()
            .filter(|t| **t <= limit + margin)
            .count();
        (lo, hi)
    }
}

impl SynModel {
    /// The model for `syn_retries` with the kernel's other defaults.
    pub fn new(syn_retries: u32, syn_linear_timeouts: Option<u32>) -> Self {
        Self {
            syn_retries,
            syn_linear_timeouts,
            initial_rto: TCP_TIMEOUT_INIT,
            rto_max: TCP_RTO_MAX,
        }
    }

    /// `tcp_model_timeout(sk, boundary, rto_base)`: the time-based give-up bound.
    pub fn model_timeout(&self, boundary: u32) -> Duration {
        let ratio = (TCP_RTO_MAX.as_millis() / self.initial_rto.as_millis().max(1)) as u64;
        let thresh = 63 - ratio.max(1).leading_zeros(); // ilog2
        if boundary <= thresh {
            self.initial_rto * ((2u32 << boundary) - 1)
        } else {
            self.initial_rto * ((2u32 << thresh) - 1) + TCP_RTO_MAX * (boundary - thresh)
        }
    }

    /// Simulates the retransmission timer.
    pub fn schedule(&self) -> SynSchedule {
        let linear = self.syn_linear_timeouts.unwrap_or(0);
        let max_retransmits = self.syn_retries + linear;
        let time_bound = self.model_timeout(self.syn_retries);
        let mut now = Duration::ZERO;
        let mut rto = self.initial_rto;
        let mut send_times = vec![Duration::ZERO];
        let mut retransmits = 0u32;
        let mut total_rto = 0u32;
        loop {
            now += rto; // the retransmission timer fires
            let expired = retransmits >= max_retransmits || (retransmits > 0 && now >= time_bound);
            if expired {
                return SynSchedule {
                    send_times,
                    give_up: now,
                };
            }
            send_times.push(now);
            retransmits += 1;
            total_rto += 1;
            if total_rto > linear {
                rto = (rto * 2).min(self.rto_max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[rstest]
    #[case::classic_6(6, None, &[0, 1, 3, 7, 15, 31, 63], 127)]
    #[case::classic_5(5, None, &[0, 1, 3, 7, 15, 31], 63)]
    #[case::classic_1(1, None, &[0, 1], 3)]
    #[case::linear_off(6, Some(0), &[0, 1, 3, 7, 15, 31, 63], 127)]
    #[case::linear_default_6(6, Some(4), &[0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67], 131)]
    #[case::linear_default_1(1, Some(4), &[0, 1, 2], 3)]
    #[case::linear_default_2(2, Some(4), &[0, 1, 2, 3, 4, 5], 7)]
    fn schedule_matches_the_kernel(
        #[case] retries: u32,
        #[case] linear: Option<u32>,
        #[case] sends: &[u64],
        #[case] give_up: u64,
    ) {
        let s = SynModel::new(retries, linear).schedule();
        assert_eq!(s.send_times, secs(sends));
        assert_eq!(s.give_up, Duration::from_secs(give_up));
    }

    #[rstest]
    fn sweep_is_two_to_the_n_plus_one_minus_one(#[values(1, 2, 3, 4, 5, 6)] n: u32) {
        let s = SynModel::new(n, Some(0)).schedule();
        assert_eq!(s.give_up, Duration::from_secs((1 << (n + 1)) - 1));
        assert_eq!(s.syn_count(), n as usize + 1);
    }

    #[test]
    fn intervals_end_with_the_final_wait() {
        let s = SynModel::new(6, Some(0)).schedule();
        assert_eq!(s.intervals(), secs(&[1, 2, 4, 8, 16, 32, 64]));
    }
}
