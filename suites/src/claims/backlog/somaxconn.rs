//! `backlog.capped-by-somaxconn`: listen()'s backlog capped at net.core.somaxconn.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context, Result};
use netclaim_fixtures::client::{self, ConnectResult};
use netclaim_fixtures::server::NoAcceptListener;
use netclaim_harness::sysctl::knob;
use netclaim_harness::NetNs;
use serde::{Deserialize, Serialize};

use super::{
    fill, not_applicable, result_text, set_or_na, until_queued, FILL_LIMIT, LISTEN_ARG,
    SMALL_SOMAXCONN, TCP_POLL, TCP_PORT,
};
use crate::claim::{Ctx, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};

/// What `backlog.capped-by-somaxconn` measured: TCP listeners filled until a connect no
/// longer completes.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SomaxconnCap {
    /// The lab's namespace.
    pub(super) lab: String,
    /// net.core.somaxconn, read back after setting it.
    pub(super) somaxconn: u32,
    /// One fill per listen() argument.
    pub(super) runs: Vec<TcpFill>,
}

/// One TCP listener filled until a connect no longer completes.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TcpFill {
    /// The listen() argument.
    pub(super) listen_arg: i32,
    /// Connects that completed within [`TCP_POLL`].
    pub(super) completed: usize,
    /// The first connect that did not (`None`: [`FILL_LIMIT`] reached).
    pub(super) stop: Option<ConnectResult>,
    /// The listener's (Recv-Q, Send-Q) afterwards, as ss shows them (from sock_diag).
    pub(super) ss: Option<(u32, u32)>,
    /// The reading as text (recordings from before the sock_diag lookup hold `ss -ltnH`'s
    /// output).
    pub(super) ss_text: String,
}

/// Fills a listener with `listen(listen_arg)` on `port` and reads its queue with ss.
fn tcp_fill(ns: &NetNs, port: u16, listen_arg: i32) -> Result<TcpFill> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let listener = NoAcceptListener::bind(ns, addr, listen_arg)
        .with_context(|| format!("listening on {addr}"))?;
    // Each connect is given TCP_POLL to complete: that wait is the measurement.
    let filled = fill(FILL_LIMIT, || {
        Ok(client::connect_nonblocking(ns, listener.addr(), TCP_POLL)?)
    })?;
    // Every completed connect's final ACK reaches the queue before it is read; if the
    // queue never holds them all, the last reading is what was measured.
    let completed = u32::try_from(filled.kept.len()).context("counting connections")?;
    let reading = until_queued(ns, port, completed)?;
    Ok(TcpFill {
        listen_arg,
        completed: filled.kept.len(),
        stop: filled.stop.as_ref().map(|o| o.result),
        ss: reading.queue,
        ss_text: reading.text,
    })
}

/// `backlog.capped-by-somaxconn`, measured: somaxconn set small, listen(128) and
/// listen(2) filled.
fn measure_capped(_ctx: &Ctx) -> Result<Observation<SomaxconnCap>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    if let Some(why) = set_or_na(&ns, &[(knob::SOMAXCONN, &SMALL_SOMAXCONN.to_string())])? {
        return not_applicable(why);
    }
    let somaxconn = ns.somaxconn()?;
    let runs = vec![
        tcp_fill(&ns, TCP_PORT, LISTEN_ARG)?,
        tcp_fill(&ns, TCP_PORT + 1, 2)?,
    ];
    Ok(Observation::Observed(SomaxconnCap {
        lab: ns.name().to_owned(),
        somaxconn,
        runs,
    }))
}

/// `backlog.capped-by-somaxconn`, judged: Send-Q is min(listen(), somaxconn), and
/// backlog + 1 connections fit.
fn judge_capped(m: &SomaxconnCap, _ctx: &Ctx) -> Outcome {
    let somaxconn = m.somaxconn;
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: net.core.somaxconn={somaxconn} (read back); TCP listeners on 127.0.0.1 that never accept; \
         nonblocking connects, each given {} ms to complete",
        m.lab,
        TCP_POLL.as_millis()
    ));
    let mut claimed = Vec::new();
    let mut observed = Vec::new();
    let mut expected = Vec::new();
    for r in &m.runs {
        let stated = (r.listen_arg as u32).min(somaxconn);
        let backlog = stated;
        let send_q = r.ss.map(|(_, s)| s);
        o.evidence(format!(
            "listen({}): {} connects completed, the next: {}\n{}",
            r.listen_arg,
            r.completed,
            result_text(r.stop),
            r.ss_text
        ));
        claimed.push(format!("listen({}) → {stated}", r.listen_arg));
        expected.push(format!(
            "listen({}) → backlog {}, {} queued",
            r.listen_arg,
            backlog,
            backlog + 1
        ));
        observed.push(format!(
            "listen({}) → Send-Q {}, {} queued",
            r.listen_arg,
            send_q.map_or("?".into(), |s| s.to_string()),
            r.completed
        ));
        check_eq(
            &mut o,
            Against::Statement,
            &format!(
                "effective backlog of listen({}) with somaxconn={somaxconn} (ss Send-Q)",
                r.listen_arg
            ),
            Some(stated),
            send_q,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("ss Send-Q of listen({})", r.listen_arg),
            Some(backlog),
            send_q,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!(
                "connections completed before the queue is full, listen({}) (backlog + 1)",
                r.listen_arg
            ),
            backlog as usize + 1,
            r.completed,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("ss Recv-Q of listen({}) (queued)", r.listen_arg),
            Some(backlog + 1),
            r.ss.map(|(q, _)| q),
        );
    }
    o.claimed.value = Some(claimed.join("; "));
    o.expected.value = Some(expected.join("; "));
    o.observed.value = Some(observed.join("; "));
    o
}

/// `backlog.capped-by-somaxconn` in two steps.
pub(super) const CAPPED: Steps<SomaxconnCap> = Steps {
    measure: measure_capped,
    judge: judge_capped,
};
