//! `port.tw-reuse`: tcp_tw_reuse=1 lets new outgoing connections take over local ports held

//! by TIME_WAIT sockets.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::client::{self, ConnectResult};
use netclaim_fixtures::ports::{self, state, Listener};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{
    loopback, set_range, tw_reuse_age, tw_reuse_delay, Filled, RangeInForce, Table, LISTEN_PORT,
    SMALL_RANGE,
};
use crate::catalog::knobs::or_na;
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::text::Shown;

/// One connect() as recorded: how it ended and, when connected, its local port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Attempt {
    /// How it ended.
    pub(super) result: ConnectResult,
    /// Its local port, when it has one.
    pub(super) port: Option<u16>,
}

impl Attempt {
    fn text(&self) -> String {
        match (self.result, self.port) {
            (ConnectResult::Connected, Some(p)) => format!("connected from port {p}"),
            (ConnectResult::Connected, None) => "connected".into(),
            (ConnectResult::Failed(e), _) => format!("errno {} ({e})", e as i32),
            (ConnectResult::PollTimedOut, _) => "timed out".into(),
        }
    }
}

/// Connects once and records the result and the local port; the socket is returned so
/// that its port stays in use.
fn try_connect(ns: &NetNs, target: SocketAddrV4) -> Result<(Attempt, Option<socket2::Socket>)> {
    let out = client::connect_blocking(ns, target)?;
    let port = out.socket.as_ref().and_then(|s| ports::local_port(s).ok());
    Ok((
        Attempt {
            result: out.result,
            port,
        },
        out.socket,
    ))
}

/// What `port.tw-reuse` measured: a range filled with TIME_WAIT, and connect() under
/// each tcp_tw_reuse setting.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReuseTries {
    /// The lab's namespace.
    pub(super) lab: String,
    /// Its range in force.
    pub(super) range: RangeInForce,
    /// `tcp_tw_reuse_delay` in force, ms (`None`: the kernel has none).
    pub(super) reuse_delay_ms: Option<u64>,
    /// The short connections that filled the range.
    pub(super) filled: Filled,
    /// The socket table with the range filled.
    pub(super) table: Table,
    /// connect() with tcp_tw_reuse=0.
    pub(super) reuse_0: Attempt,
    /// When tcp_tw_reuse=1 was set, from before the first short connection.
    pub(super) young: Duration,
    /// connect() with tcp_tw_reuse=1 at once.
    pub(super) reuse_1_young: Attempt,
    /// How long the claim then waited for the TIME_WAITs to age.
    pub(super) waited: Duration,
    /// How old the youngest TIME_WAIT was at least at the aged connect: the time from
    /// when the fill saw every port in TIME_WAIT (absent in recordings from before it
    /// was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) aged_at_least: Option<Duration>,
    /// connect() with tcp_tw_reuse=1 after that.
    pub(super) reuse_1_aged: Attempt,
    /// connect() with tcp_tw_reuse=2.
    pub(super) reuse_2: Attempt,
    /// The socket table after the reuses.
    pub(super) after: Table,
}

/// `port.tw-reuse`, measured: the range filled, then connect() with 0, 1 (young and
/// aged) and 2.
fn measure_tw_reuse(_ctx: &Ctx) -> Result<Observation<ReuseTries>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    or_na!(ns.set_tcp_timestamps(1));
    or_na!(ns.set_tcp_tw_reuse(0));
    let range = or_na!(set_range(&ns, SMALL_RANGE));
    let reuse_delay_ms = tw_reuse_delay(&ns)?;
    let (age, _) = tw_reuse_age(reuse_delay_ms);
    let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding")?;
    let start = Instant::now();
    let fill = ports::fill_time_wait(&ns, &listener, range.usable).context("TIME_WAIT fill")?;
    // The fill returns once it saw every port in TIME_WAIT: no TIME_WAIT is younger than
    // this instant makes it.
    let all_in_time_wait = Instant::now();
    let table = Table::read(&ns, "range filled with TIME_WAIT")?;

    // 1. tcp_tw_reuse=0.
    let (reuse_0, _s0) = try_connect(&ns, listener.addr())?;
    // 2. tcp_tw_reuse=1 at once: the TIME_WAITs are younger than the reuse age.
    ns.set_tcp_tw_reuse(1)?;
    let young = start.elapsed();
    let (reuse_1_young, _s1) = try_connect(&ns, listener.addr())?;
    // 3. tcp_tw_reuse=1 once every TIME_WAIT is old enough. This wait is the measurement:
    // the sockets must age past the reuse age, which no socket state shows (a connect
    // to poll it would itself take the port). Their age counts from when the last one
    // entered TIME_WAIT, not from the first connection: on two loaded CPUs the fill
    // itself took longer than the 300 ms margin.
    let waited = (age + Duration::from_millis(300)).saturating_sub(all_in_time_wait.elapsed());
    std::thread::sleep(waited);
    let aged_at_least = Some(all_in_time_wait.elapsed());
    let (reuse_1_aged, _s2) = try_connect(&ns, listener.addr())?;
    // 4. tcp_tw_reuse=2 (the default since 4.20): loopback only; 127.0.0.1 qualifies.
    ns.set_tcp_tw_reuse(2)?;
    let (reuse_2, _s3) = try_connect(&ns, listener.addr())?;
    let after = Table::read(&ns, "after the reuses")?;
    Ok(Observation::Observed(ReuseTries {
        lab: ns.name().to_owned(),
        range,
        reuse_delay_ms,
        filled: Filled::of(&fill),
        table,
        reuse_0,
        young,
        reuse_1_young,
        waited,
        aged_at_least,
        reuse_1_aged,
        reuse_2,
        after,
    }))
}

/// `port.tw-reuse`, judged: reuse with 1 once aged (the statement), errno 99 with 0 and
/// while young, reuse with 2 on loopback.
pub(super) fn judge_tw_reuse(m: &ReuseTries, _ctx: &Ctx) -> Outcome {
    let (age, age_text) = tw_reuse_age(m.reuse_delay_ms);
    let tw_ports: Vec<u16> = m
        .table
        .entries()
        .iter()
        .filter(|e| e.state == state::TIME_WAIT)
        .map(|e| e.local.port())
        .collect();
    let (a0, a1, a2, a3) = (m.reuse_0, m.reuse_1_young, m.reuse_1_aged, m.reuse_2);
    let mut o = Outcome::default();
    o.evidence(format!(
        "{}; tcp_timestamps=1; {age_text}",
        m.range.describe()
    ));
    o.evidence(format!(
        "{} short connection(s), client closed first, from ports {:?}; {}",
        m.filled.ports.len(),
        m.filled.ports,
        m.filled.settled_text()
    ));
    o.evidence(m.table.text());
    o.evidence(format!(
        "tcp_tw_reuse=0: {}\ntcp_tw_reuse=1 at {:.3} s after the first TIME_WAIT (younger than {} ms): {}\ntcp_tw_reuse=1 after waiting {:.3} s more{}: {}\ntcp_tw_reuse=2 (loopback only; the destination is 127.0.0.1): {}",
        a0.text(),
        m.young.as_secs_f64(),
        age.as_millis(),
        a1.text(),
        m.waited.as_secs_f64(),
        m.aged_at_least
            .map(|a| format!(", {} ms after every port was in TIME_WAIT", a.as_millis()))
            .unwrap_or_default(),
        a2.text(),
        a3.text()
    ));
    o.evidence(m.after.text());
    if let Some(aged) = m.aged_at_least.filter(|&a| a < age) {
        // The connect meant for aged TIME_WAITs came while one may still have been young:
        // what it returned says nothing about tcp_tw_reuse=1 on aged sockets.
        o.forced = Some((
            crate::claim::Verdict::Error,
            format!(
                "the harness connected {} ms after the last port was seen in TIME_WAIT, before the reuse age of {} ms: no observation of an aged TIME_WAIT",
                aged.as_millis(),
                age.as_millis()
            ),
        ));
        return o;
    }

    let e99 = ConnectResult::Failed(Errno::EADDRNOTAVAIL);
    o.claimed.value = Some("tcp_tw_reuse=1: connect succeeds on a TIME_WAIT port".into());
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some(format!(
            "reuse=0: errno 99; reuse=1: errno 99 for {} ms, then connected; reuse=2: connected (loopback)",
            age.as_millis()
        )),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: match a0.result {
            ConnectResult::Failed(e) => Some(e as i32),
            _ => None,
        },
        value: Some(format!(
            "reuse=0: {}; reuse=1 young: {}; reuse=1 aged: {}; reuse=2: {}",
            a0.text(),
            a1.text(),
            a2.text(),
            a3.text()
        )),
        ..Figures::default()
    };
    o.claim_check(
        "connect with every port in TIME_WAIT and tcp_tw_reuse=1",
        "connected, on a TIME_WAIT port",
        a2.text(),
        a2.result == ConnectResult::Connected && a2.port.is_some_and(|p| tw_ports.contains(&p)),
    );
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets",
        m.range.usable,
        tw_ports.len(),
    );
    check_eq(&mut o, Against::Model, "tcp_tw_reuse=0", e99, a0.result);
    if m.young < age {
        check_eq(
            &mut o,
            Against::Model,
            "tcp_tw_reuse=1, TIME_WAIT too young",
            e99,
            a1.result,
        );
    }
    check_eq(
        &mut o,
        Against::Model,
        "tcp_tw_reuse=1, aged",
        ConnectResult::Connected,
        a2.result,
    );
    o.model_check(
        "reused port was in TIME_WAIT",
        format!("one of {tw_ports:?}"),
        a2.port.shown(),
        a2.port.is_some_and(|p| tw_ports.contains(&p)),
    );
    check_eq(
        &mut o,
        Against::Model,
        "tcp_tw_reuse=2 on loopback",
        ConnectResult::Connected,
        a3.result,
    );
    o
}

pub(super) const TW_REUSE: Steps<ReuseTries> = Steps {
    measure: measure_tw_reuse,
    judge: judge_tw_reuse,
};
