//! Judging the `exchange` client: the median exchange after the warm-up, against the
//! statement (`expect.exchange`) and against [`crate::models::exchange`], fed with the
//! round trip the kernel measured on the handshake and, for a corked request, the RTO in
//! force when it was written.

use std::time::Duration;

use crate::judge::checks::Against;
use crate::judge::timing::check_timing;
use crate::models::exchange::{median, window, Exchange, Prediction, WARM_UP};
use crate::outcome::{Figures, Outcome, Verdict};
use crate::record::attempt::Measured;
use crate::record::exchange::ExchangeRecord;
use crate::spec::{ClaimSpec, ExpectSpec};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Judges the exchanges of `rec` into `o`; `wire_late` is how late the lab's wire
/// released held packets at worst, both ways.
pub fn judge(
    spec: &ClaimSpec,
    expect: &ExpectSpec,
    rec: &ExchangeRecord,
    wire_late: Duration,
    hz: u32,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    let socket = spec
        .run
        .as_ref()
        .map(|r| r.socket.clone())
        .unwrap_or_default();
    // The path's round trip as the kernel measured it: its least sample over the
    // connection (one handshake sample can be stretched by a slow wake-up, and the
    // smoothed RTT by the delayed ACKs themselves); the handshake's in older records.
    let (rtt, rtt_from) = match (rec.min_rtt_us, rec.handshake_rtt_us) {
        (Some(us), _) => (
            Duration::from_micros(us),
            "tcpi_min_rtt after the exchanges",
        ),
        (None, Some(us)) => (
            Duration::from_micros(us),
            "the handshake's sample, tcpi_rtt",
        ),
        (None, None) => (
            crate::models::plan::link_rtt(spec),
            "the wire's delays (no TCP_INFO recorded)",
        ),
    };
    let judged = rec.exchanges.get(WARM_UP..).unwrap_or_default();
    if judged.is_empty() {
        o.forced = Some((
            Verdict::Error,
            format!(
                "{} exchanges recorded: none after the {WARM_UP} of the warm-up",
                rec.exchanges.len()
            ),
        ));
        return;
    }
    let model = |rto_us: u64| Exchange {
        hz,
        rtt,
        nodelay: socket.nodelay,
        cork: socket.cork,
        quickack: spec.lab.quickack,
        rto: Duration::from_micros(rto_us),
    };
    let took: Vec<Duration> = judged
        .iter()
        .map(|s| Duration::from_micros(s.took_us))
        .collect();
    let predictions: Vec<Prediction> = judged.iter().map(|s| model(s.rto_us).predict()).collect();
    let observed = median(&took);
    let predicted = median(&predictions.iter().map(|p| p.took).collect::<Vec<_>>());
    // The longest timer the exchanges wait for: its wheel level's slack.
    let timer = predictions.iter().filter_map(|p| p.timer).max();
    let late = Duration::from_micros(judged.iter().map(|s| s.late_us).max().unwrap_or(0));
    let m = Measured {
        took: observed,
        error: late + wire_late,
        early_error: wire_late,
        error_from: format!(
            "timers up to {} late over an exchange (probe); the wire released packets up to {} late",
            ms(late),
            ms(wire_late)
        ),
    };
    let n = judged.len();
    let first = WARM_UP + 1;
    let last = WARM_UP + n;
    let label = format!(
        "exchange (first write() to the whole reply read), the median of exchanges {first}–{last} (after {WARM_UP} of warm-up: quickack mode ACKs a connection's first 16 segments at once)"
    );
    o.evidence(format!(
        "model: round trip {} ({rtt_from}); {}",
        ms(rtt),
        predictions[n / 2].why
    ));
    o.evidence(format!(
        "exchanges (took / tcpi_rtt / tcpi_rto before it), the first {WARM_UP} not judged: {}",
        rec.exchanges
            .iter()
            .enumerate()
            .map(|(i, s)| format!(
                "{}{}: {:.1}/{:.1}/{:.0} ms",
                if i == WARM_UP { "| " } else { "" },
                i + 1,
                s.took_us as f64 / 1000.0,
                s.rtt_us as f64 / 1000.0,
                s.rto_us as f64 / 1000.0
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(stated) = expect.exchange {
        let w = match &expect.tolerance {
            Some(t) => {
                let tol = t.around(stated.0).unwrap_or_default();
                netclaim_harness::tolerance::Window {
                    min: stated.0.saturating_sub(tol),
                    max: stated.0 + tol,
                }
            }
            None => window(stated.0, timer, hz),
        };
        check_timing(o, Against::Statement, &what(&label), stated.0, w, &m);
        o.claimed = Figures::default().duration(stated.0);
        o.claimed.value = Some(format!("exchange {}", ms(stated.0)));
    }
    check_timing(
        o,
        Against::Model,
        &what(&label),
        predicted,
        window(predicted, timer, hz),
        &m,
    );
    let (min, max) = (
        took.iter().min().copied().unwrap_or_default(),
        took.iter().max().copied().unwrap_or_default(),
    );
    o.expected = Figures::default().duration(predicted);
    o.expected.value = Some(format!("exchange {}", ms(predicted)));
    o.observed = Figures::default().duration(observed);
    o.observed.value = Some(format!(
        "exchange {} (median of {n}; {} to {}), RTT {} ({rtt_from})",
        ms(observed),
        ms(min),
        ms(max),
        ms(rtt)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::exchange::ExchangeSample;
    use crate::record::testing::spec_of;

    fn rec(took_ms: &[u64], rto_ms: u64) -> ExchangeRecord {
        ExchangeRecord {
            handshake_rtt_us: Some(12_000),
            min_rtt_us: Some(10_000),
            exchanges: took_ms
                .iter()
                .map(|t| ExchangeSample {
                    took_us: t * 1000,
                    rtt_us: 20_000,
                    rto_us: rto_ms * 1000,
                    late_us: 50,
                })
                .collect(),
        }
    }

    fn judged(text: &str, r: &ExchangeRecord) -> Outcome {
        let spec = spec_of(text);
        let mut o = Outcome::default();
        judge(
            &spec,
            &spec.expect,
            r,
            Duration::ZERO,
            250,
            &|w: &str| w.to_owned(),
            &mut o,
        );
        o
    }

    const NAGLE: &str = "lab = { server = \"reply\", link = { delay = \"5ms\" } }\nrun = { client = \"exchange\" }\n";

    #[test]
    fn the_warm_up_is_not_judged_and_the_median_is() {
        // Eight quick exchanges, then sixteen stalled ones at 64 ms (2 × 10 ms + 44 ms).
        let mut took = vec![20; WARM_UP];
        took.extend([64; 15]);
        took.push(300);
        let o = judged(
            &format!("{NAGLE}expect = {{ exchange = \"50ms\", tolerance = \"10%\" }}\n"),
            &rec(&took, 212),
        );
        assert_eq!(o.verdict(), Verdict::Refuted, "{o:?}");
        assert!(o.model_agrees(), "{:?}", o.model_checks);
        assert_eq!(o.expected.duration_ms, Some(60));
        assert_eq!(o.observed.duration_ms, Some(64));
        // Stated as the model has it: holds.
        let o = judged(
            &format!("{NAGLE}expect = {{ exchange = \"60ms\", tolerance = \"10%\" }}\n"),
            &rec(&took, 212),
        );
        assert_eq!(o.verdict(), Verdict::Holds, "{o:?}");
        // No exchange after the warm-up: an error, not a verdict.
        let o = judged(
            &format!("{NAGLE}expect = {{ exchange = \"60ms\" }}\n"),
            &rec(&[20; WARM_UP], 212),
        );
        assert_eq!(o.verdict(), Verdict::Error);
    }

    #[test]
    fn a_corked_request_is_judged_against_the_rto_it_was_written_under() {
        let spec = "lab = { server = \"reply\", link = { delay = \"100ms\" } }\nrun = { client = \"exchange\", socket = { cork = true } }\nexpect = { exchange = \"400ms\", tolerance = \"10%\" }\n";
        let mut r = rec(&[800; 24], 600);
        r.min_rtt_us = Some(200_000);
        let o = judged(spec, &r);
        assert_eq!(o.verdict(), Verdict::Refuted);
        assert!(o.model_agrees(), "{:?}", o.model_checks);
        assert_eq!(o.expected.duration_ms, Some(800));
        // An exchange released at 200 ms would disagree with the model.
        let o = judged(spec, &rec(&[400; 24], 600));
        assert!(!o.model_agrees());
    }
}
