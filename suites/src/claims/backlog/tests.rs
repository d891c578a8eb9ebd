//! The backlog claims' judging, from recorded measurements.

use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

use netclaim_harness::command::CommandOutput;
use netclaim_harness::model::SynModel;
use serde::Serialize;

use super::full::{AckOverflow, Dealt, FullConnect, FullQueue, ModelInForce, RACERS};
use super::nginx::Nginx502;
use super::somaxconn::{SomaxconnCap, TcpFill};
use super::syn_backlog::{syn_queue_without_cookies, SynBacklog, SynRecv, SYN_QUEUE_PORT};
use super::*;
use crate::claim::{CheckState, Outcome};
use crate::claims::testing::ctx;
use crate::record::attempt::Attempt;

/// Judges `m` as a recording of claim `id` is judged: serialised, read back, and the
/// claim's own judge (with its exhaustion rule).
fn judged<T: Serialize>(id: &str, m: T) -> Outcome {
    let claim = claims()
        .into_iter()
        .find(|c| c.id == id)
        .expect("the claim exists");
    let value = serde_json::to_value(Observation::Observed(m)).expect("serialisable");
    claim
        .judge(&value, &ctx())
        .expect("a measurement of this claim")
}

fn check<'a>(o: &'a Outcome, what: &str) -> &'a crate::claim::Check {
    o.claim_checks
        .iter()
        .chain(&o.model_checks)
        .find(|c| c.what == what)
        .unwrap_or_else(|| panic!("no check {what:?} in {o:#?}"))
}

fn fill(listen_arg: i32, completed: usize, recv_q: u32, send_q: u32) -> TcpFill {
    TcpFill {
        listen_arg,
        completed,
        stop: Some(ConnectResult::PollTimedOut),
        ss: Some((recv_q, send_q)),
        ss_text: format!("LISTEN {recv_q} {send_q} 127.0.0.1:9000 0.0.0.0:*"),
    }
}

#[test]
fn a_queue_capped_at_somaxconn_holds() {
    let o = judged(
        "backlog.capped-by-somaxconn",
        SomaxconnCap {
            lab: "t".into(),
            somaxconn: 4,
            runs: vec![fill(128, 5, 5, 4), fill(2, 3, 3, 2)],
        },
    );
    assert_eq!(o.verdict(), Verdict::Holds, "{o:#?}");
    assert!(o.model_agrees(), "{o:#?}");
    let c = check(
        &o,
        "effective backlog of listen(128) with somaxconn=4 (ss Send-Q)",
    );
    assert_eq!(
        (c.expected.as_str(), c.observed.as_str(), c.ok),
        ("4", "4", true)
    );
}

#[test]
fn an_uncapped_queue_is_refuted() {
    let o = judged(
        "backlog.capped-by-somaxconn",
        SomaxconnCap {
            lab: "t".into(),
            somaxconn: 4,
            runs: vec![fill(128, 129, 129, 128), fill(2, 3, 3, 2)],
        },
    );
    assert_eq!(o.verdict(), Verdict::Refuted, "{o:#?}");
    let c = check(
        &o,
        "effective backlog of listen(128) with somaxconn=4 (ss Send-Q)",
    );
    assert_eq!(c.state(), CheckState::Fail);
    assert_eq!(c.observed, "128");
    assert!(!check(&o, "ss Recv-Q of listen(128) (queued)").ok);
}

fn full_queue(result: ConnectResult) -> FullQueue {
    let connect = |abort: u8| FullConnect {
        abort,
        port: TCP_PORT + u16::from(abort),
        in_force: abort.to_string(),
        queued: 5,
        result,
        duration: Duration::from_secs(3),
        m: Attempt::default(),
        events: Vec::new(),
    };
    FullQueue {
        lab: "t".into(),
        somaxconn: 4,
        model: ModelInForce::of(&SynModel::new(1, None)),
        connects: vec![connect(0), connect(1)],
        overflows: None,
    }
}

#[test]
fn a_full_queue_that_times_out_refutes_econnrefused() {
    let o = judged(
        "backlog.tcp-full-refused",
        full_queue(ConnectResult::Failed(Errno::ETIMEDOUT)),
    );
    assert_eq!(o.verdict(), Verdict::Refuted, "{o:#?}");
    let what = "tcp_abort_on_overflow=0: errno of the next client's connect()";
    let stated = o.claim_checks.iter().find(|c| c.what == what);
    assert!(stated.is_some_and(|c| !c.ok && c.expected.contains("ECONNREFUSED")));
    let model = o.model_checks.iter().find(|c| c.what == what);
    assert!(model.is_some_and(|c| c.ok), "{o:#?}");
    assert!(o
        .evidence
        .iter()
        .any(|e| e.starts_with("iptables is missing")));
    assert_eq!(o.observed.errno, Some(Errno::ETIMEDOUT as i32));
}

#[test]
fn a_connect_that_ran_out_of_descriptors_is_not_refuted() {
    let o = judged(
        "backlog.tcp-full-refused",
        full_queue(ConnectResult::Failed(Errno::EMFILE)),
    );
    assert_eq!(o.verdict(), Verdict::Error, "{o:#?}");
    assert!(
        o.reason().contains("the measurement is void"),
        "{}",
        o.reason()
    );
}

#[test]
fn an_overflow_at_the_final_ack_with_abort_is_judged_from_the_racers_reads() {
    let mut m = full_queue(ConnectResult::Failed(Errno::ETIMEDOUT));
    m.overflows = Some(vec![AckOverflow {
        abort: 1,
        port: TCP_PORT + 3,
        connects: vec![ConnectResult::Connected; RACERS],
        reads: vec![None, None, Some(Errno::ECONNRESET as i32)],
        events: Vec::new(),
        queued: Some(5),
        unsettled: None,
    }]);
    let o = judged("backlog.tcp-full-refused", m);
    let tag = "overflow at the final ACK, tcp_abort_on_overflow=1";
    let c = check(&o, &format!("{tag}: read of the racer that overflowed"));
    assert!(c.ok, "{c:?}");
    let c = check(&o, &format!("{tag}: error the overflowing client sees"));
    assert_eq!(
        c.observed,
        "connect() succeeded, then read() failed with ECONNRESET"
    );
    assert!(!c.ok);
}

fn syn_recv(syncookies: u8, n: usize) -> SynRecv {
    let port = SYN_QUEUE_PORT + u16::from(syncookies);
    SynRecv {
        syncookies,
        addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        command_line: "ss -tnH state syn-recv".into(),
        stdout: (0..n)
            .map(|i| format!("0 0 127.0.0.1:{port} 127.0.0.1:{}\n", 40000 + i))
            .collect(),
    }
}

#[test]
fn a_2048_default_refutes_512_while_the_queue_behaves_as_modelled() {
    let o = judged(
        "backlog.syn-backlog-default",
        SynBacklog {
            lab: "t".into(),
            max_syn_backlog: 2048,
            syncookies: "1".into(),
            ehash_entries: Some(-262_144),
            max_tw_buckets: None,
            queue_lab: "q".into(),
            counts: vec![syn_recv(0, 13), syn_recv(1, 24)],
        },
    );
    assert_eq!(o.verdict(), Verdict::Refuted, "{o:#?}");
    assert!(o.model_agrees(), "{o:#?}");
    assert!(!check(&o, "tcp_max_syn_backlog default").ok);
    let c = check(
        &o,
        "tcp_max_syn_backlog limits the SYN queue with syncookies off and not with them on",
    );
    assert_eq!((c.observed.as_str(), c.ok), ("off: 13; on: 24", true));
}

#[test]
fn ehash_falls_back_to_twice_the_time_wait_buckets() {
    let m = SynBacklog {
        lab: "t".into(),
        max_syn_backlog: 512,
        syncookies: "1".into(),
        ehash_entries: None,
        max_tw_buckets: Some(32_768),
        queue_lab: "q".into(),
        counts: Vec::new(),
    };
    assert_eq!(m.ehash(), 65_536);
}

fn nginx(code: &str, error_log: &str) -> Nginx502 {
    Nginx502 {
        lab: "t".into(),
        somaxconn: 2,
        sock: "/tmp/n/up.sock".into(),
        filled: 3,
        stop: Some(ConnectResult::Failed(Errno::EAGAIN)),
        ready: Duration::from_millis(20),
        command_line: "nginx".into(),
        conf: String::new(),
        curl: CommandOutput {
            command_line: "curl".into(),
            netns: "t".into(),
            status: std::process::ExitStatus::from_raw(0),
            stdout: code.into(),
            stderr: String::new(),
            stdout_cut: 0,
            stderr_cut: 0,
            duration: Duration::from_millis(5),
            started: Instant::now(),
            timed_out: false,
        },
        error_log: error_log.into(),
        version: Some("nginx/1.22.1".into()),
    }
}

#[test]
fn nginx_answering_502_with_the_eagain_line_holds() {
    let line = "2026/01/01 00:00:00 [error] 1#1: *2 connect() to unix:/tmp/n/up.sock \
                    failed (11: Resource temporarily unavailable) while connecting to upstream, client: 127.0.0.1";
    let o = judged("backlog.nginx-502", nginx("502", line));
    assert_eq!(o.verdict(), Verdict::Holds, "{o:#?}");
    assert!(o.model_agrees(), "{o:#?}");
    assert!(o
        .evidence
        .iter()
        .any(|e| e == "nginx version: nginx/1.22.1"));
    assert_eq!(o.observed.errno, Some(Errno::EAGAIN as i32));
}

#[test]
fn nginx_without_the_line_is_refuted() {
    let o = judged("backlog.nginx-502", nginx("504", ""));
    assert_eq!(o.verdict(), Verdict::Refuted, "{o:#?}");
    let c = o.claim_checks.iter().find(|c| c.what == "HTTP status");
    assert!(c.is_some_and(|c| c.observed == "504" && !c.ok));
}

#[test]
fn reads_the_counters_of_proc_net() {
    let snmp = "Tcp: RtoAlgorithm PassiveOpens OutRsts\nTcp: 1 7 2\n\
                    TcpExt: ListenOverflows ListenDrops\nTcpExt: 3 4\n";
    let c = parse_counters(snmp);
    assert_eq!(counter(&c, "Tcp", "PassiveOpens"), 7);
    assert_eq!(counter(&c, "TcpExt", "ListenDrops"), 4);
    assert_eq!(counter(&c, "Tcp", "EstabResets"), 0);
    let base = Dealt {
        opened: 7,
        overflowed: 3,
        resets_sent: 2,
        resets_received: 2,
    };
    let queued_one = Dealt { opened: 8, ..base };
    assert!(queued_one.settled_since(&base, 1));
    let reset_in_flight = Dealt {
        overflowed: 4,
        resets_sent: 3,
        ..base
    };
    assert!(!reset_in_flight.settled_since(&base, 1));
}

#[test]
fn syn_queue_keeps_three_quarters_without_cookies() {
    assert_eq!(syn_queue_without_cookies(16, 24), 13);
    assert_eq!(syn_queue_without_cookies(8, 24), 7);
    assert_eq!(syn_queue_without_cookies(512, 10), 10);
}
