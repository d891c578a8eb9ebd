//! `tw.active-closer`: TIME_WAIT appears on the side that closes first; the other side ends
//! in CLOSED.

use std::net::SocketAddrV4;
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, state, Closer, Listener, TcpEntry};
use netclaim_harness::NetNs;
use serde::{Deserialize, Serialize};

use super::{describe, find, TCP_TIMEWAIT_LEN};
use crate::claim::{Ctx, Observation, Outcome, Steps};
use crate::claims::port::{loopback, LISTEN_PORT};
use crate::judge::checks::{check_eq, Against};

/// Which side sent the first FIN (the fixtures' [`Closer`], recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum FirstFin {
    /// The client closed first.
    Client,
    /// The server closed first.
    Server,
}

/// One connection of `tw.active-closer`, closed by one side first, and the socket table
/// once the close had settled.
#[derive(Debug, Serialize, Deserialize)]
struct Closing {
    /// Who closed first.
    closer: FirstFin,
    /// The client's address.
    client: SocketAddrV4,
    /// The server's address.
    server: SocketAddrV4,
    /// The lab's socket table after the close.
    table: Vec<TcpEntry>,
}

/// What `tw.active-closer` measured: a connection closed by the client first, then one
/// closed by the server first.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Closings {
    /// The lab's namespace.
    lab: String,
    /// Client first, then server first.
    closings: Vec<Closing>,
}

/// `tw.active-closer`, measured: one connection closed by each side first.
fn measure_active_closer(_ctx: &Ctx) -> Result<Observation<Closings>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 128).context("binding")?;
    let mut closings = Vec::new();
    for (closer, recorded) in [
        (Closer::Client, FirstFin::Client),
        (Closer::Server, FirstFin::Server),
    ] {
        let pair = match ports::close_one(&ns, &listener, closer).context("connection")? {
            Ok(p) => p,
            Err(e) => anyhow::bail!("connect failed: {e}"),
        };
        // The last ACK crosses loopback at once; allow a moment (stretched on a slow
        // machine) for every state on the way to settle: a FIN not yet ACKed (FIN_WAIT1,
        // CLOSING), the passive closer's LAST_ACK turning into CLOSED. A table read while
        // one side was still on its way was judged, under load, as a refutation.
        let passing = |e: Option<u8>| {
            matches!(
                e,
                Some(
                    state::FIN_WAIT1
                        | state::CLOSING
                        | state::LAST_ACK
                        | state::FIN_WAIT2
                        | state::CLOSE_WAIT
                )
            )
        };
        let settle = netclaim_harness::slowness::stretch(Duration::from_secs(1));
        let table = ports::wait_for_table(&ns, settle, |t| {
            let c = find(t, pair.client, pair.server).map(|e| e.state);
            let s = find(t, pair.server, pair.client).map(|e| e.state);
            !passing(c) && !passing(s)
        })
        .context("reading the socket table")?;
        closings.push(Closing {
            closer: recorded,
            client: pair.client,
            server: pair.server,
            table,
        });
    }
    Ok(Observation::Observed(Closings {
        lab: ns.name().to_owned(),
        closings,
    }))
}

/// `tw.active-closer`, judged: TIME_WAIT on the side that closed first, no socket on the
/// other.
fn judge_active_closer(m: &Closings, _ctx: &Ctx) -> Outcome {
    let mut o = Outcome::default();
    let mut results = Vec::new();
    for c in &m.closings {
        let table = &c.table;
        let client = find(table, c.client, c.server);
        let server = find(table, c.server, c.client);
        o.evidence(format!(
            "{:?} closes first: client {} → {}, server side {}\n{}",
            c.closer,
            c.client,
            describe(client),
            describe(server),
            ports::table_text(table)
        ));
        results.push((c.closer, client, server));
    }
    let st = |e: Option<TcpEntry>| e.map(|e| e.state_name()).unwrap_or("CLOSED");
    let closed = |who: FirstFin| {
        results
            .iter()
            .find(|(c, _, _)| *c == who)
            .map(|&(_, c, s)| (c, s))
            .unwrap_or_default()
    };
    let (c1, s1) = closed(FirstFin::Client);
    let (c2, s2) = closed(FirstFin::Server);
    o.claimed.value = Some("active closer: TIME_WAIT; passive closer: CLOSED".into());
    o.expected.value = o.claimed.value.clone();
    o.observed.value = Some(format!(
        "client closes: client {}, server {}; server closes: server {}, client {}",
        st(c1),
        st(s1),
        st(s2),
        st(c2)
    ));
    for (what, active, passive) in [
        ("client closes first", c1, s1),
        ("server closes first", s2, c2),
    ] {
        o.claim_check(
            &format!("{what}: active closer / passive closer"),
            "TIME_WAIT / CLOSED",
            format!("{} / {}", st(active), st(passive)),
            active.is_some_and(|e| e.state == state::TIME_WAIT) && passive.is_none(),
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("{what}: active closer's state"),
            Some("TIME_WAIT"),
            active.map(|e| e.state_name()),
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("{what}: passive closer's socket (gone = CLOSED)"),
            None,
            passive.map(|e| e.state_name()),
        );
        let left = active.map(|e| e.timer_left()).unwrap_or_default();
        o.model_check(
            &format!("{what}: TIME_WAIT timer (timer 3) ≤ TCP_TIMEWAIT_LEN"),
            format!("timer 3 with ≤ {} s left", TCP_TIMEWAIT_LEN.as_secs()),
            format!(
                "timer {} with {:.2} s left",
                active.map(|e| e.timer).unwrap_or(0),
                left.as_secs_f64()
            ),
            active.is_some_and(|e| e.timer == 3) && left <= TCP_TIMEWAIT_LEN,
        );
    }
    o
}

pub(super) const ACTIVE_CLOSER: Steps<Closings> = Steps {
    measure: measure_active_closer,
    judge: judge_active_closer,
};
