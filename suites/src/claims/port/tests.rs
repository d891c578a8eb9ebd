//! The port claims' judging, from recorded measurements.

use netclaim_fixtures::client::ConnectResult;
use netclaim_fixtures::ports::state;

use super::exhaustion::{judge_exhaustion_errno, AllPortsUsed};
use super::tw_reuse::{judge_tw_reuse, Attempt, ReuseTries};
use super::*;
use crate::claim::Observation;
use crate::claims::testing::ctx;

fn small_range() -> RangeInForce {
    RangeInForce {
        low: 40000,
        high: 40003,
        reserved: String::new(),
        usable: 4,
        usable_min: 4,
    }
}

fn row(port: u16, st: u8) -> TcpEntry {
    TcpEntry {
        local: loopback(port),
        remote: loopback(LISTEN_PORT),
        state: st,
        timer: if st == state::TIME_WAIT { 3 } else { 0 },
        timer_ticks: if st == state::TIME_WAIT { 5990 } else { 0 },
        timer_ms: None,
    }
}

/// Four ports held open and four in TIME_WAIT, each lab's next connect() failing
/// with `errno`.
fn all_ports_used(errno: Errno) -> AllPortsUsed {
    let ports: Vec<u16> = (40000..=40003).collect();
    let table = |title: &str, st| Table {
        title: title.into(),
        lab: "netclaim-test".into(),
        rows: ports.iter().map(|&p| row(p, st)).collect(),
    };
    AllPortsUsed {
        lab: "netclaim-test".into(),
        range: small_range(),
        held: Held {
            ports: ports.clone(),
            failure: Some(errno as i32),
            stalled: false,
        },
        held_table: table("with every port held", state::ESTABLISHED),
        tw_lab: "netclaim-test-tw".into(),
        tw_range: small_range(),
        filled: Filled {
            ports: ports.clone(),
            failure: Some(errno as i32),
            settled: Some(Duration::from_millis(3)),
        },
        tw_table: table("ports held by TIME_WAIT", state::TIME_WAIT),
    }
}

#[test]
fn exhaustion_with_errno_99_holds() {
    let o = judge_exhaustion_errno(&all_ports_used(Errno::EADDRNOTAVAIL), &ctx());
    assert_eq!(o.verdict(), crate::Verdict::Holds, "{}", o.reason());
    assert!(o.model_agrees(), "{:?}", o.model_checks);
    let check = o
        .claim_checks
        .iter()
        .find(|c| c.what == "errno of connect() with every port ESTABLISHED")
        .expect("the statement's errno check");
    assert!(check.ok);
    assert_eq!(check.observed, "EADDRNOTAVAIL (99)");
    assert_eq!(o.observed.errno, Some(99));
    assert!(o.evidence[1].contains("next connect(): 99 (EADDRNOTAVAIL"));
}

#[test]
fn exhaustion_with_emfile_is_the_harness_failing_not_a_refutation() {
    let claim = claims()
        .into_iter()
        .find(|c| c.id == "port.exhaustion-errno")
        .expect("the claim is in the catalog");
    let recorded =
        serde_json::to_value(Observation::Observed(all_ports_used(Errno::EMFILE))).unwrap();
    let o = claim.judge(&recorded, &ctx()).unwrap();
    assert_eq!(o.verdict(), crate::Verdict::Error, "{}", o.reason());
    assert!(o.reason().contains("EMFILE"), "{}", o.reason());
}

#[test]
fn a_recorded_measurement_judges_as_the_one_just_made() {
    let m = all_ports_used(Errno::EADDRNOTAVAIL);
    let recorded = serde_json::to_string(&m).unwrap();
    let back: AllPortsUsed = serde_json::from_str(&recorded).unwrap();
    assert_eq!(
        judge_exhaustion_errno(&back, &ctx()),
        judge_exhaustion_errno(&m, &ctx())
    );
}

/// A range of four ports filled with TIME_WAIT, tried as `port.tw-reuse` does: errno 99
/// with 0 and while young, the aged connect and reuse=2 connected.
fn reuse_tries() -> ReuseTries {
    let attempt = |result, port| Attempt { result, port };
    let e99 = ConnectResult::Failed(Errno::EADDRNOTAVAIL);
    let ports: Vec<u16> = (40000..=40003).collect();
    let table = Table {
        title: "range filled with TIME_WAIT".into(),
        lab: "netclaim-test".into(),
        rows: ports.iter().map(|&p| row(p, state::TIME_WAIT)).collect(),
    };
    ReuseTries {
        lab: "netclaim-test".into(),
        range: small_range(),
        reuse_delay_ms: Some(1000),
        filled: Filled {
            ports,
            failure: None,
            settled: Some(Duration::from_millis(2)),
        },
        table: table.clone(),
        reuse_0: attempt(e99, None),
        young: Duration::from_millis(40),
        reuse_1_young: attempt(e99, None),
        waited: Duration::from_millis(1260),
        aged_at_least: Some(Duration::from_millis(1300)),
        reuse_1_aged: attempt(ConnectResult::Connected, Some(40002)),
        reuse_2: attempt(ConnectResult::Connected, Some(40001)),
        after: table,
    }
}

#[test]
fn tw_reuse_while_young_is_checked_only_when_it_was_young() {
    let mut m = reuse_tries();
    let o = judge_tw_reuse(&m, &ctx());
    assert_eq!(o.verdict(), crate::Verdict::Holds, "{}", o.reason());
    assert!(o.model_agrees(), "{:?}", o.model_checks);
    let young = "tcp_tw_reuse=1, TIME_WAIT too young";
    assert!(o.model_checks.iter().any(|c| c.what == young));
    // Set at 1.1 s, the TIME_WAITs were past the 1001 ms reuse age already.
    m.young = Duration::from_millis(1100);
    let o = judge_tw_reuse(&m, &ctx());
    assert!(!o.model_checks.iter().any(|c| c.what == young));
    // Connected, but on a port that was never in TIME_WAIT: refuted.
    m.reuse_1_aged = Attempt {
        result: ConnectResult::Connected,
        port: Some(40999),
    };
    let o = judge_tw_reuse(&m, &ctx());
    assert_eq!(o.verdict(), crate::Verdict::Refuted);
}

/// CI's privileged container, beside a whole catalog on 2 CPUs, took longer to fill the
/// range than the 300 ms margin, and the connect "after the reuse age" came while the last
/// TIME_WAITs were still young: errno 99, judged refuted. That connect observed no aged
/// TIME_WAIT, so it judges nothing about them.
#[test]
fn tw_reuse_connect_before_the_reuse_age_is_no_observation() {
    let failed = Attempt {
        result: ConnectResult::Failed(Errno::EADDRNOTAVAIL),
        port: None,
    };
    let mut m = ReuseTries {
        young: Duration::from_millis(700),
        waited: Duration::from_millis(600),
        aged_at_least: Some(Duration::from_millis(620)),
        reuse_1_aged: failed,
        reuse_2: failed,
        ..reuse_tries()
    };
    let o = judge_tw_reuse(&m, &ctx());
    assert_eq!(o.verdict(), crate::Verdict::Error, "{}", o.reason());
    assert!(o.reason().contains("620 ms"), "{}", o.reason());
    // Past the reuse age the same errno 99 is an observation, and refutes.
    m.aged_at_least = Some(Duration::from_millis(1302));
    let refuted = crate::Verdict::Refuted;
    assert_eq!(judge_tw_reuse(&m, &ctx()).verdict(), refuted);
    // A recording from before the age was measured is judged as it was.
    m.aged_at_least = None;
    assert_eq!(judge_tw_reuse(&m, &ctx()).verdict(), refuted);
}
