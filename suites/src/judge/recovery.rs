//! Judging a bulk transfer with a lost segment ([`BulkRecord`]): what repaired it, when,
//! and whether an RTO fired, against the statement (`expect.repair`, `expect.timeouts`,
//! `expect.retransmissions`, `expect.repaired_within_rtts`) and against
//! [`crate::models::recovery`].

use std::collections::BTreeMap;
use std::time::Duration;

use netclaim_harness::tolerance::Window;

use crate::judge::checks::{check_eq, Against};
use crate::models::recovery::{predict, Inputs, Prediction};
use crate::outcome::{Check, Outcome, Timing, Verdict};
use crate::record::recovery::BulkRecord;
use crate::spec::{ClaimSpec, ExpectSpec, Repair};
use crate::text::secs;

/// What repaired the loss, by the counters of the client's namespace: a timeout wins
/// (it ran whatever else did), then fast recovery (SACK or NewReno), then a probe alone.
pub fn observed_repair(b: &BulkRecord) -> Option<Repair> {
    [Repair::Timeout, Repair::Sack, Repair::Reno, Repair::Probe]
        .into_iter()
        .find(|r| b.counter(r.counter()) > 0)
}

fn repair_text(r: Option<Repair>) -> String {
    r.map_or_else(
        || "none (no recovery counter moved)".into(),
        |r| format!("{} ({})", r.name(), r.counter()),
    )
}

/// The observed figures in a line.
pub fn observed_text(b: &BulkRecord) -> String {
    format!(
        "repair {}, {} timeouts, {} segments sent again, resent {} after its first transmission{}, RTT {} µs",
        observed_repair(b).map_or("none", Repair::name),
        b.counter("TCPTimeouts"),
        b.total_retrans,
        b.resent_us.map_or("?".into(), |us| secs(Duration::from_micros(us))),
        // Only a timer's wait shows here: fast recovery follows the last ACK at once.
        b.quiet_us
            .filter(|us| *us > b.rtt_us)
            .map_or(String::new(), |us| format!(
                " ({} after the last ACK)",
                secs(Duration::from_micros(us))
            )),
        b.rtt_us
    )
}

/// The model's prediction for a record.
pub fn prediction(
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    b: &BulkRecord,
    hz: u32,
) -> Prediction {
    let us = Duration::from_micros;
    let tcp = (
        us(b.rtt_us),
        us(b.srtt_us),
        us(b.rttvar_us),
        b.sack,
        u64::from(b.mss),
    );
    predict(&Inputs::new(spec, in_force, hz, tcp, b.bytes))
}

fn timing_check(o: &mut Outcome, what: String, expected: String, observed: Option<u64>, w: Window) {
    let seen = observed.map(Duration::from_micros);
    o.model_check(
        &what,
        expected,
        seen.map_or("not seen on the wire".into(), secs),
        seen.is_some_and(|d| w.contains(d)),
    );
}

/// The model's checks into `o`; a record the harness could not complete is an error.
pub fn judge(
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    b: &BulkRecord,
    hz: u32,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    let p = prediction(spec, in_force, b, hz);
    o.evidence(format!("model: {}", p.inputs));
    o.evidence(format!(
        "TCP_INFO at the end: tcpi_total_retrans {}, tcpi_rtt {} µs, tcpi_rttvar {} µs, tcpi_rto {} µs, SACK {}, MSS {}; the client namespace's counters over the transfer: {}; the capture: {} data segments, {} sent again, the first from stream byte {}",
        b.total_retrans,
        b.srtt_us,
        b.rttvar_us,
        b.rto_us,
        b.sack,
        b.mss,
        b.counters
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        b.wire_segments,
        b.wire_retransmissions,
        b.lost_offset.map_or("?".into(), |o| o.to_string())
    ));
    if !b.complete {
        o.forced = Some((
            Verdict::Error,
            format!(
                "the transfer did not end within the harness's limit ({})",
                b.error.as_deref().unwrap_or("no error")
            ),
        ));
    } else if b.resent_us.is_none() {
        o.forced = Some((
            Verdict::Error,
            "the capture saw no data segment sent twice, though the wire lost one (packets missed by the capture?)".into(),
        ));
    }
    check_eq(
        o,
        Against::Model,
        &what("what repaired the lost segment (the client namespace's counters)"),
        repair_text(Some(p.repair)),
        repair_text(observed_repair(b)),
    );
    check_eq(
        o,
        Against::Model,
        &what("retransmission timeouts (TcpExt TCPTimeouts)"),
        p.timeouts,
        b.counter("TCPTimeouts"),
    );
    check_eq(
        o,
        Against::Model,
        &what("segments sent again (tcpi_total_retrans)"),
        p.retransmissions,
        u64::from(b.total_retrans),
    );
    // The kernel computed its RTO at the last RTT sample, from the SRTT then: a few µs
    // from the one read at the end, which may put it a jiffy either side.
    let jiffy = netclaim_harness::timers::jiffy(hz);
    let kernel_rto = Duration::from_micros(b.rto_us);
    o.model_check(
        &what("the RTO at the end (tcpi_rto) = usecs_to_jiffies(srtt + max(4·mdev, rto_min)), within a jiffy"),
        secs(p.rto),
        secs(kernel_rto),
        kernel_rto.abs_diff(p.rto) <= jiffy,
    );
    if let Some(w) = p.resent {
        timing_check(
            o,
            what("the lost segment sent again, from its first transmission"),
            format!("within [{}, {}]", secs(w.min), secs(w.max)),
            b.resent_us,
            w,
        );
        let before_rto = Window {
            min: Duration::ZERO,
            max: p.rto,
        };
        timing_check(
            o,
            what("…before the RTO could have fired (the RTO, from its first transmission)"),
            format!("< {}", secs(p.rto)),
            b.resent_us,
            before_rto,
        );
    }
    if let Some((at, w)) = p.quiet {
        timing_check(
            o,
            what(&format!(
                "the lost segment sent again by the {}, from the last ACK",
                if p.repair == Repair::Probe {
                    "tail loss probe"
                } else {
                    "RTO"
                }
            )),
            format!("{} within [{}, {}]", secs(at), secs(w.min), secs(w.max)),
            b.quiet_us,
            w,
        );
    }
    o.expected.value = Some(format!(
        "repair {}, {} timeouts, {} segment sent again, {}",
        p.repair.name(),
        p.timeouts,
        p.retransmissions,
        match (p.resent, p.quiet) {
            (Some(w), _) => format!("resent within {}", secs(w.max)),
            (None, Some((at, _))) => format!("resent {} after the last ACK", secs(at)),
            _ => String::new(),
        }
    ));
}

/// The statement's checks into `o`.
pub fn statement_checks(
    expect: &ExpectSpec,
    b: &BulkRecord,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    let mut claimed = Vec::new();
    if let Some(r) = expect.repair {
        claimed.push(format!("repair {}", r.name()));
        check_eq(
            o,
            Against::Statement,
            &what("what repaired the lost segment (the client namespace's counters)"),
            repair_text(Some(r)),
            repair_text(observed_repair(b)),
        );
    }
    if let Some(n) = expect.timeouts {
        claimed.push(format!("{n} timeouts"));
        check_eq(
            o,
            Against::Statement,
            &what("retransmission timeouts (TcpExt TCPTimeouts)"),
            n,
            b.counter("TCPTimeouts"),
        );
    }
    if let Some(n) = expect.retransmissions {
        claimed.push(format!("{n} segments sent again"));
        check_eq(
            o,
            Against::Statement,
            &what("segments sent again (tcpi_total_retrans)"),
            n as u64,
            u64::from(b.total_retrans),
        );
    }
    if let Some(n) = expect.repaired_within_rtts {
        let bound = Duration::from_micros(b.rtt_us) * n;
        claimed.push(format!("resent within {n} round trips"));
        let seen = b.resent_us.map(Duration::from_micros);
        Against::Statement.record_check(
            o,
            Check {
                what: what(&format!(
                    "the lost segment sent again within {n} round trips ({n} × RTT {} µs) of its first transmission",
                    b.rtt_us
                )),
                expected: format!("≤ {}", secs(bound)),
                observed: match seen {
                    Some(d) => format!(
                        "{} ({:.1} round trips)",
                        secs(d),
                        d.as_secs_f64() / (b.rtt_us.max(1) as f64 / 1e6)
                    ),
                    None => "not seen on the wire".into(),
                },
                ok: seen.is_some_and(|d| d <= bound),
                // A time that counts the wire's round trips: when the lab's round trip
                // was stretched (the premise rule, judge::claim_file), a miss is no
                // observation. No measured error of its own: otherwise it is exact.
                timing: seen.map(|d| Timing {
                    window_ms: [0.0, bound.as_secs_f64() * 1e3],
                    observed_ms: d.as_secs_f64() * 1e3,
                    error_ms: 0.0,
                    early_error_ms: 0.0,
                    error_from: String::new(),
                }),
            },
        );
    }
    if !claimed.is_empty() {
        o.claimed.value = Some(claimed.join(", "));
    }
    o.observed.value = Some(observed_text(b));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::testing::spec_of;

    const FILE: &str = "lab = { server = \"sink\", link = { delay = \"10ms\" }, rules = [{ toward = \"peer\", after_bytes = 131072, nth = 1, action = \"drop\" }] }\n\
                        run = { client = \"bulk\" }\n\
                        expect = { repair = \"sack\", timeouts = 0, retransmissions = 1, repaired_within_rtts = 3 }\n";

    /// The record of a run on 6.18 (HZ=250): SACK recovery 20.8 ms after the loss.
    fn record() -> BulkRecord {
        BulkRecord {
            bytes: 524_288,
            complete: true,
            error: None,
            rtt_us: 20_172,
            srtt_us: 20_105,
            rttvar_us: 11,
            rto_us: 224_000,
            total_retrans: 1,
            sack: true,
            mss: 1448,
            counters: [
                ("TCPSackRecovery", 1),
                ("TCPFastRetrans", 1),
                ("TCPTimeouts", 0),
                ("RetransSegs", 1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            lost_offset: Some(130_320),
            resent_us: Some(20_833),
            quiet_us: Some(95),
            repair_rtt_us: Some(20_190),
            wire_retransmissions: 1,
            wire_segments: 365,
        }
    }

    fn run(spec: &ClaimSpec, b: &BulkRecord) -> Outcome {
        let mut o = Outcome::default();
        let what = |w: &str| w.to_owned();
        judge(spec, &BTreeMap::new(), b, 250, &what, &mut o);
        statement_checks(&spec.expect, b, &what, &mut o);
        o
    }

    #[test]
    fn sack_recovery_within_a_round_trip_holds_and_the_model_agrees() {
        let spec = spec_of(FILE);
        let o = run(&spec, &record());
        assert!(o.claim_checks.iter().all(|c| c.ok), "{:?}", o.claim_checks);
        assert!(o.model_checks.iter().all(|c| c.ok), "{:?}", o.model_checks);
        assert_eq!(o.claim_checks.len(), 4);
        assert_eq!(o.verdict(), Verdict::Holds, "{}", o.reason());
    }

    #[test]
    fn an_rto_instead_is_refuted_with_the_counter_and_the_time() {
        let spec = spec_of(FILE);
        let mut b = record();
        b.counters.insert("TCPTimeouts".into(), 1);
        b.resent_us = Some(244_000);
        let o = run(&spec, &b);
        assert_eq!(o.verdict(), Verdict::Refuted);
        let failed: Vec<&str> = o
            .claim_checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.as_str())
            .collect();
        assert_eq!(failed.len(), 3, "{failed:?}");
        assert!(failed[0].starts_with("what repaired"), "{failed:?}");
        let late = o
            .claim_checks
            .iter()
            .find(|c| c.what.contains("within 3 round trips"));
        assert_eq!(late.unwrap().observed, "0.244 s (12.1 round trips)");
    }

    #[test]
    fn a_transfer_the_capture_missed_is_an_error_not_a_refutation() {
        let spec = spec_of(FILE);
        let mut b = record();
        b.resent_us = None;
        assert_eq!(run(&spec, &b).verdict(), Verdict::Error);
        let mut b = record();
        b.complete = false;
        assert_eq!(run(&spec, &b).verdict(), Verdict::Error);
    }

    #[test]
    fn the_repair_is_read_from_the_counters() {
        let mut b = record();
        assert_eq!(observed_repair(&b), Some(Repair::Sack));
        b.counters.clear();
        assert_eq!(observed_repair(&b), None);
        b.counters.insert("TCPLossProbes".into(), 1);
        assert_eq!(observed_repair(&b), Some(Repair::Probe));
        b.counters.insert("TCPTimeouts".into(), 1);
        assert_eq!(observed_repair(&b), Some(Repair::Timeout));
    }
}
