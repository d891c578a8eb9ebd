//! The TIME_WAIT claims' judging, from recorded measurements.

use super::concurrent::{judge_concurrent_client_exhaustion, ShortConnections, SERVER, WORKERS};
use super::duration::{judge_duration, Lifetime};
use super::reuse::{judge_reuse_needs_timestamps, ReuseByTimestamps, ReuseTrial};
use super::*;
use crate::claim::Verdict;
use crate::claims::port::{loopback, Filled, RangeInForce, Table, LISTEN_PORT};
use crate::claims::testing::ctx;
use crate::record::attempt::Measured;

fn trial(timestamps: u8, result: Connected) -> ReuseTrial {
    let ports: Vec<u16> = (40000..=40003).collect();
    ReuseTrial {
        lab: format!("netclaim-test-{timestamps}"),
        timestamps,
        range: RangeInForce {
            low: 40000,
            high: 40003,
            reserved: String::new(),
            usable: 4,
            usable_min: 4,
        },
        filled: Filled {
            ports: ports.clone(),
            failure: None,
            settled: Some(Duration::from_millis(2)),
        },
        table: Table {
            title: format!("tcp_timestamps={timestamps}, before the connect"),
            lab: format!("netclaim-test-{timestamps}"),
            rows: ports
                .iter()
                .map(|&p| TcpEntry {
                    local: loopback(p),
                    remote: loopback(LISTEN_PORT),
                    state: state::TIME_WAIT,
                    timer: 3,
                    timer_ticks: 5800,
                    timer_ms: None,
                })
                .collect(),
        },
        result,
    }
}

#[test]
fn reuse_only_with_timestamps_holds() {
    let m = ReuseByTimestamps {
        reuse_delay_ms: Some(1000),
        trials: vec![trial(0, Err(99)), trial(1, Ok(40002))],
    };
    let o = judge_reuse_needs_timestamps(&m, &ctx());
    assert_eq!(o.verdict(), Verdict::Holds, "{}", o.reason());
    assert!(o.model_agrees(), "{:?}", o.model_checks);
    let check = &o.claim_checks[0];
    assert!(check.ok);
    assert!(
        check.observed.starts_with("errno 99 (EADDRNOTAVAIL")
            && check.observed.ends_with(" / connected from port 40002"),
        "{}",
        check.observed
    );
    // Reuse without timestamps too: the statement is refuted.
    let m = ReuseByTimestamps {
        reuse_delay_ms: None,
        trials: vec![trial(0, Ok(40001)), trial(1, Ok(40002))],
    };
    let o = judge_reuse_needs_timestamps(&m, &ctx());
    assert_eq!(o.verdict(), Verdict::Refuted);
    assert!(o.evidence[0].contains("no tcp_tw_reuse_delay (kernel < 6.13)"));
}

#[test]
fn a_sixty_second_time_wait_refutes_four_minutes_and_meets_the_model() {
    let gone = Duration::from_millis(60_150);
    let m = Lifetime {
        lab: "netclaim-test".into(),
        client: loopback(40000),
        read_at: Duration::from_millis(5),
        entry: TcpEntry {
            local: loopback(40000),
            remote: loopback(LISTEN_PORT),
            state: state::TIME_WAIT,
            timer: 3,
            timer_ticks: 5999,
            timer_ms: None,
        },
        polls: 601,
        gone: Some(gone),
        lifetime: Measured {
            took: gone,
            error: Duration::ZERO,
            early_error: Duration::ZERO,
            error_from: "timers late over the lifetime (probe)".into(),
        },
    };
    let o = judge_duration(&m, &ctx());
    assert_eq!(o.verdict(), Verdict::Refuted, "{}", o.reason());
    assert!(o.model_agrees(), "{:?}", o.model_checks);
    assert_eq!(o.observed.duration_ms, Some(60_150));
    assert!(o.evidence[1].contains("(601 polls): gone 60.150 s after the close"));
    // Still there at the limit: no timing to judge, and the model fails.
    let m = Lifetime { gone: None, ..m };
    let o = judge_duration(&m, &ctx());
    assert_eq!(o.verdict(), Verdict::Refuted);
    assert!(!o.model_agrees());
    assert_eq!(o.claim_checks[0].observed, "> 75 s");
}

/// A `tw.concurrent-client-exhaustion` record: 8 connections from 40000–40007, each
/// worker stopped on errno 99, `tw` of them in TIME_WAIT when the table was read.
fn short_connections(tw: u16, unsettled_after: Option<Duration>) -> ShortConnections {
    let used: Vec<u16> = (40000..=40007).collect();
    let server = SocketAddrV4::new(SERVER, 3306);
    let rows = used
        .iter()
        .map(|&p| TcpEntry {
            local: SocketAddrV4::new(netclaim_lab::LOCAL, p),
            remote: server,
            state: if p < 40000 + tw {
                state::TIME_WAIT
            } else {
                state::FIN_WAIT2
            },
            timer: 3,
            timer_ticks: 5900,
            timer_ms: None,
        })
        .collect::<Vec<_>>();
    ShortConnections {
        client_lab: "netclaim-test-1".into(),
        server_lab: "netclaim-test-2".into(),
        range: RangeInForce {
            low: 40000,
            high: 40007,
            reserved: String::new(),
            usable: 8,
            usable_min: 8,
        },
        tw_reuse: "2".into(),
        timestamps: "1".into(),
        reuse_delay_ms: Some(1000),
        used,
        errnos: vec![99; WORKERS],
        after_workers: rows.clone(),
        unsettled_after,
        late: Err(99),
        served: 8,
        after_retry: Table {
            title: "client after the retry".into(),
            lab: "netclaim-test-1".into(),
            rows,
        },
    }
}

#[test]
fn concurrent_short_connections_filling_the_range_hold() {
    let o = judge_concurrent_client_exhaustion(&short_connections(8, None), &ctx());
    assert_eq!(o.verdict(), Verdict::Holds, "{}", o.reason());
    assert!(o.model_agrees(), "{:?}", o.model_checks);
}

#[test]
fn time_waits_not_settled_by_the_deadline_are_no_observation() {
    // Under emulation beside a load, 2 of the 8 closes were still in FIN_WAIT2 when
    // the wait for TIME_WAIT gave up: that is not "6 TIME_WAIT instead of 8".
    let m = short_connections(6, Some(Duration::from_secs(2)));
    let o = judge_concurrent_client_exhaustion(&m, &ctx());
    assert_eq!(o.verdict(), Verdict::Error, "{}", o.reason());
    assert!(
        o.reason()
            .starts_with("the 8 connection(s) made were not all in TIME_WAIT within 2.000 s"),
        "{}",
        o.reason()
    );
    assert!(o.reason().contains("6 were"), "{}", o.reason());
}
