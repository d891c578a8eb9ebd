//! How the kernel is predicted to repair one segment lost from a bulk transfer, from the
//! sysctls in force and the RTT it measured.
//!
//! - With segments after the lost one (at least `tp->reordering`, 3, of them), their
//!   SACKs or duplicate ACKs arrive one round trip after they were sent: with SACK, RACK
//!   marks the hole lost once a segment sent after it is delivered and its reordering
//!   window has passed (`tcp_rack_reo_wnd`: 0 before any reordering was seen and once
//!   three segments are SACKed, else min_rtt/4), and fast recovery resends it
//!   (TCPSackRecovery); without SACK, NewReno counts three duplicate ACKs
//!   (`tcp_newreno_mark_lost`, TCPRenoRecovery). Either way the segment goes again about
//!   a round trip after it first went: at the latest two round trips (the segments after
//!   it may wait for the next flight's ACKs) and the reordering window. No RTO fires: the
//!   RTO is at least the smoothed RTT plus `tcp_rto_min` (`rttvar_us` is never below it,
//!   `tcp_rtt_estimator`).
//! - The last segment lost (a tail loss) has nothing after it to be SACKed: every ACK
//!   re-arms the tail loss probe (`tcp_schedule_loss_probe`, SACK and `tcp_early_retrans`
//!   3 or 4) at 2·SRTT, plus `TCP_RTO_MIN` when one segment is in flight (RFC 8985's
//!   WCDelAckT), never later than the RTO. After the last ACK one segment is in flight, so
//!   the probe comes at min(2·SRTT + 200 ms, RTO) after that ACK; without the probe the RTO
//!   fires then (TCPTimeouts).

use std::time::Duration;

use netclaim_harness::timers::{self, from_jiffies, to_jiffies};
use netclaim_harness::tolerance::Window;

use crate::spec::{ClaimSpec, Repair};
use crate::text::secs;

/// The duplicate ACKs (or SACKed segments) fast retransmit waits for: `tp->reordering`'s
/// initial value, `tcp_reordering` (RFC 5681's DupThresh).
pub const DUPTHRESH: u64 = 3;

/// The sysctls the model reads.
pub const MODEL_INPUTS: &[&str] = &[
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_early_retrans",
    "net.ipv4.tcp_recovery",
    "net.ipv4.tcp_rto_min_us",
];

/// What the model is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// `CONFIG_HZ`.
    pub hz: u32,
    /// The kernel's first RTT sample (the handshake's, `TCP_INFO`): the path's round trip.
    pub rtt: Duration,
    /// The round trip of the lab's wire as configured (its delays both ways; zero without
    /// one): no packet comes back sooner, however late the relay ran at the handshake.
    pub wire_rtt: Duration,
    /// The smoothed RTT at the end of the transfer (`tcpi_rtt`).
    pub srtt: Duration,
    /// The RTT's mean deviation at the end (`tcpi_rttvar`).
    pub mdev: Duration,
    /// `tcp_rto_min` in force.
    pub rto_min: Duration,
    /// Whether SACK was agreed (`tcp_sack` on both ends).
    pub sack: bool,
    /// `tcp_early_retrans` (3 by default: tail loss probes).
    pub early_retrans: u64,
    /// Bytes the client writes.
    pub bytes: u64,
    /// The lost segment's first byte past this offset (`lab.rules`' `after_bytes`).
    pub lost_after: u64,
    /// The sender's segment size (`tcpi_snd_mss`).
    pub mss: u64,
}

/// What the model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// What repairs the loss.
    pub repair: Repair,
    /// Retransmission timeouts (TCPTimeouts).
    pub timeouts: u64,
    /// Segments sent again.
    pub retransmissions: u64,
    /// Full segments after the lost one.
    pub after: u64,
    /// The RTO the kernel arms at the end of the transfer:
    /// `usecs_to_jiffies(srtt + max(4·mdev, rto_min))`.
    pub rto: Duration,
    /// When the lost segment goes again, from its first transmission (fast recovery).
    pub resent: Option<Window>,
    /// When it goes again, from the last ACK before it (a tail loss: the probe or the
    /// RTO, each armed by that ACK), with the timer's slack.
    pub quiet: Option<(Duration, Window)>,
    /// What the model used, in words.
    pub inputs: String,
}

impl Inputs {
    /// The inputs from the sysctls in force (`in_force`), the spec's loss rule and what
    /// `TCP_INFO` said.
    pub fn new(
        spec: &ClaimSpec,
        in_force: &std::collections::BTreeMap<String, String>,
        hz: u32,
        tcp: (Duration, Duration, Duration, bool, u64),
        bytes: u64,
    ) -> Self {
        let num = |k: &str| {
            in_force
                .get(k)
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        };
        let (rtt, srtt, mdev, sack, mss) = tcp;
        Self {
            hz,
            rtt,
            wire_rtt: crate::models::plan::link_rtt(spec),
            srtt,
            mdev,
            rto_min: num("net.ipv4.tcp_rto_min_us")
                .map_or(timers::TCP_RTO_MIN, Duration::from_micros),
            sack,
            early_retrans: num("net.ipv4.tcp_early_retrans").unwrap_or(3),
            bytes,
            lost_after: spec
                .lab
                .rules
                .iter()
                .find_map(|r| r.after_bytes)
                .unwrap_or(0),
            mss: mss.max(1),
        }
    }

    /// The RTO at the end of the transfer.
    pub fn rto(&self) -> Duration {
        let rttvar = (self.mdev * 4).max(self.rto_min);
        from_jiffies(to_jiffies(self.srtt + rttvar, self.hz), self.hz)
    }

    /// Whether a tail loss probe is armed (`tcp_schedule_loss_probe`).
    pub fn tlp(&self) -> bool {
        matches!(self.early_retrans, 3 | 4) && self.sack
    }
}

/// The prediction for `i`.
pub fn predict(i: &Inputs) -> Prediction {
    let jiffy = timers::jiffy(i.hz);
    let rto = i.rto();
    // The lost segment starts at the segment boundary at or before `lost_after`.
    let lost_start = i.lost_after / i.mss * i.mss;
    let after = i.bytes.saturating_sub(lost_start + i.mss) / i.mss;
    let base = format!(
        "RTT {} µs (handshake; the wire's own {} µs), SRTT {} µs and mdev {} µs at the end (TCP_INFO) → RTO {} ms (rto_min {} ms, HZ={}); SACK {}; tcp_early_retrans={}; {} bytes, the segment from byte {} lost, {} full segments after it",
        i.rtt.as_micros(),
        i.wire_rtt.as_micros(),
        i.srtt.as_micros(),
        i.mdev.as_micros(),
        rto.as_millis(),
        i.rto_min.as_millis(),
        i.hz,
        if i.sack { "agreed" } else { "off" },
        i.early_retrans,
        i.bytes,
        lost_start,
        after
    );
    if after >= DUPTHRESH {
        // RACK's reordering window before three segments are SACKed; NewReno has none.
        let reo_wnd = if i.sack { i.rtt / 4 } else { Duration::ZERO };
        // The handshake's sample is the path's round trip only when the relay was on time
        // then: a loaded machine stretched it to 38.9 ms on a 20 ms wire, and the segment
        // went again 31 ms after it first went. The wire's own round trip is the floor; the
        // larger of the two samples bounds the top.
        let floor = if i.wire_rtt.is_zero() {
            i.rtt
        } else {
            i.rtt.min(i.wire_rtt)
        };
        let resent = Window {
            min: floor.saturating_sub(Duration::from_millis(1)),
            max: i.rtt.max(i.srtt) * 2 + reo_wnd + jiffy * 2,
        };
        return Prediction {
            repair: if i.sack { Repair::Sack } else { Repair::Reno },
            timeouts: 0,
            retransmissions: 1,
            after,
            rto,
            resent: Some(resent),
            quiet: None,
            inputs: format!(
                "{base}: {} ({} segments after it) resends it within [{}, {}] of its first transmission (one to two round trips, plus {} of reordering window), before the RTO",
                if i.sack { "SACK recovery, RACK" } else { "NewReno fast retransmit" },
                DUPTHRESH,
                secs(resent.min),
                secs(resent.max),
                secs(reo_wnd)
            ),
        };
    }
    let two_srtt = from_jiffies(to_jiffies(i.srtt * 2, i.hz), i.hz);
    let pto = (two_srtt + from_jiffies(to_jiffies(timers::TCP_RTO_MIN, i.hz), i.hz)).min(rto);
    let (repair, timeouts, at) = if i.tlp() {
        (Repair::Probe, 0, pto)
    } else {
        (Repair::Timeout, 1, rto)
    };
    // Armed by the ACK mid-jiffy and rounded up, fired at a tick that may itself run
    // late: a jiffy early to three late (6.18 at HZ=250 showed 1 to 8 ms late).
    let window = Window {
        min: at.saturating_sub(jiffy),
        max: at + jiffy * 3,
    };
    Prediction {
        repair,
        timeouts,
        retransmissions: 1,
        after,
        rto,
        resent: None,
        quiet: Some((at, window)),
        inputs: format!(
            "{base}: a tail loss, nothing after it to be SACKed; {} after the last ACK",
            if i.tlp() {
                format!(
                    "the tail loss probe at min(2·SRTT + 200 ms, RTO) = min({}, {}) = {}",
                    secs(two_srtt + timers::TCP_RTO_MIN),
                    secs(rto),
                    secs(pto)
                )
            } else {
                format!(
                    "no probe (tcp_early_retrans or SACK off): the RTO, {}",
                    secs(rto)
                )
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            hz: 250,
            rtt: Duration::from_micros(20_172),
            wire_rtt: Duration::from_millis(20),
            srtt: Duration::from_micros(20_105),
            mdev: Duration::from_micros(11),
            rto_min: timers::TCP_RTO_MIN,
            sack: true,
            early_retrans: 3,
            bytes: 524_288,
            lost_after: 131_072,
            mss: 1448,
        }
    }

    #[test]
    fn a_loss_mid_transfer_is_resent_within_two_round_trips_by_sack_recovery() {
        let p = predict(&inputs());
        assert_eq!(p.repair, Repair::Sack);
        assert_eq!((p.timeouts, p.retransmissions), (0, 1));
        // The segment from byte 130320 (90 × 1448); 271 full segments after it.
        assert_eq!(p.after, 271);
        // srtt 20.105 ms + rto_min 200 ms = 220.105 ms → 56 jiffies at HZ=250.
        assert_eq!(p.rto, Duration::from_millis(224));
        let w = p.resent.unwrap();
        // The wire's 20 ms, less a millisecond: the sample (20.172 ms) is above it.
        assert_eq!(w.min, Duration::from_millis(19));
        // 2 × 20.172 + 20.172 / 4 + 2 jiffies.
        assert_eq!(w.max, Duration::from_micros(40_344 + 5_043 + 8_000));
        assert!(w.max < p.rto);
        assert!(w.contains(Duration::from_micros(20_833)));
    }

    #[test]
    fn a_handshake_stretched_by_a_late_relay_does_not_raise_the_floor() {
        // CI in a privileged container on 2 loaded CPUs: the handshake's sample was
        // 38.873 ms on a 20 ms wire, and the segment went again after 31 ms.
        let late = Inputs {
            rtt: Duration::from_micros(38_873),
            ..inputs()
        };
        let w = predict(&late).resent.unwrap();
        assert_eq!(w.min, Duration::from_millis(19));
        assert!(w.contains(Duration::from_micros(31_000)));
        // Without a wire the sample is all there is.
        let bare = predict(&Inputs {
            wire_rtt: Duration::ZERO,
            ..late
        });
        assert_eq!(bare.resent.unwrap().min, Duration::from_micros(37_873));
        // Sooner than the wire can carry a packet there and back is still a mismatch.
        assert!(!w.contains(Duration::from_millis(18)));
    }

    #[test]
    fn without_sack_newreno_resends_it_with_no_reordering_window() {
        let p = predict(&Inputs {
            sack: false,
            ..inputs()
        });
        assert_eq!(p.repair, Repair::Reno);
        assert_eq!((p.timeouts, p.retransmissions), (0, 1));
        assert_eq!(p.resent.unwrap().max, Duration::from_micros(40_344 + 8_000));
    }

    #[test]
    fn a_tail_loss_is_probed_at_the_rto_when_one_segment_is_in_flight() {
        let tail = Inputs {
            lost_after: 524_287,
            ..inputs()
        };
        let p = predict(&tail);
        assert_eq!(p.after, 0);
        assert_eq!(p.repair, Repair::Probe);
        assert_eq!(p.timeouts, 0);
        // min(2·SRTT (44 ms in jiffies) + 200 ms, RTO 224 ms) = 224 ms.
        let (at, w) = p.quiet.unwrap();
        assert_eq!(at, Duration::from_millis(224));
        assert_eq!(w.min, Duration::from_millis(220));
        assert_eq!(w.max, Duration::from_millis(236));
        assert!(w.contains(Duration::from_micros(228_311)));
        // A jittery path (mdev 100 ms: RTO 424 ms) leaves the probe the earlier one,
        // 2·SRTT + 200 ms.
        let jittery = predict(&Inputs {
            mdev: Duration::from_millis(100),
            ..tail
        });
        assert_eq!(jittery.rto, Duration::from_millis(424));
        assert_eq!(jittery.quiet.unwrap().0, Duration::from_millis(244));
    }

    #[test]
    fn a_tail_loss_without_the_probe_waits_for_the_rto() {
        for off in [
            Inputs {
                lost_after: 524_287,
                early_retrans: 0,
                ..inputs()
            },
            Inputs {
                lost_after: 524_287,
                sack: false,
                ..inputs()
            },
        ] {
            let p = predict(&off);
            assert_eq!(p.repair, Repair::Timeout);
            assert_eq!(p.timeouts, 1);
            assert_eq!(p.quiet.unwrap().0, Duration::from_millis(224));
        }
    }
}
