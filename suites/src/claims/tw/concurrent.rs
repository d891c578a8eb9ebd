//! `tw.concurrent-client-exhaustion`: many short concurrent connections fill the local port
//! range with TIME_WAIT, then connect() fails.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, state, ShortServer, TcpEntry};
use netclaim_harness::slowness;
use netclaim_harness::sysctl::knob;
use netclaim_lab::Lab;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{record, replay, show, Connected};
use crate::catalog::knobs::or_na;
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::claims::port::{set_range, tw_reuse_age, tw_reuse_delay, RangeInForce, Table};
use crate::judge::checks::{check_eq, Against};
use crate::measure::parallel::parallel;
use crate::text::secs;

/// The server of `tw.concurrent-client-exhaustion`: the lab's peer (its client is the lab, at `netclaim_lab::LOCAL`).
pub(super) const SERVER: Ipv4Addr = netclaim_lab::PEER;
/// Threads making short connections at once.
pub(super) const WORKERS: usize = 4;
/// How long the workers' closed connections may take to reach TIME_WAIT on a machine as
/// fast as an idle native one (stretched by the measured slowness).
const TW_SETTLE: Duration = Duration::from_secs(2);

/// What `tw.concurrent-client-exhaustion` measured: short connections from several
/// threads until connect() failed, the TIME_WAITs left, and a retry after the reuse age.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ShortConnections {
    /// The client's namespace.
    pub(super) client_lab: String,
    /// The server's namespace.
    pub(super) server_lab: String,
    /// The client's range in force.
    pub(super) range: RangeInForce,
    /// The client's `tcp_tw_reuse` (namespace default).
    pub(super) tw_reuse: String,
    /// The client's `tcp_timestamps` (namespace default).
    pub(super) timestamps: String,
    /// The client's `tcp_tw_reuse_delay`, ms (`None`: the kernel has none).
    pub(super) reuse_delay_ms: Option<u64>,
    /// The ports the workers' connections used.
    pub(super) used: Vec<u16>,
    /// The errno (number) each worker stopped on.
    pub(super) errnos: Vec<i32>,
    /// The client's socket table once the workers were done (and their TIME_WAITs had
    /// settled, or the wait's deadline passed).
    pub(super) after_workers: Vec<TcpEntry>,
    /// The wait's deadline when it passed before every connection made was in TIME_WAIT
    /// (the table above is then no observation of the count); `None` when they settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) unsettled_after: Option<Duration>,
    /// The retry after the reuse age.
    pub(super) late: Connected,
    /// Connections the server finished, read after the retry.
    pub(super) served: usize,
    /// The client's table after the retry.
    pub(super) after_retry: Table,
}

/// `tw.concurrent-client-exhaustion`, measured: the workers run to exhaustion, then one
/// retry after the reuse age.
fn measure_concurrent_client_exhaustion(_ctx: &Ctx) -> Result<Observation<ShortConnections>> {
    let lab = Lab::builder()
        .peer()
        .build()
        .context("building the client and server namespaces")?;
    let client = lab.ns();
    let server = lab.peer_ns().context("the lab's peer")?;
    let range = or_na!(set_range(client, (40000, 40007)));
    let tw_reuse = client.sysctl(knob::TCP_TW_REUSE)?;
    let timestamps = client.sysctl(knob::TCP_TIMESTAMPS)?;
    let target = SocketAddrV4::new(SERVER, 3306);
    let srv = ShortServer::start(server, target).context("starting the server")?;

    // WORKERS threads make short connections (connect, send, close first) until connect fails.
    let worker = || -> Result<(Vec<u16>, Option<Errno>)> {
        let mut done = Vec::new();
        for _ in 0..range.usable + 4 {
            match ports::short_connection(client, target)? {
                Ok(p) => done.push(p),
                Err(e) => return Ok((done, Some(e))),
            }
        }
        Ok((done, None))
    };
    let results = parallel("tw-worker", vec![worker; WORKERS]);
    let mut used = Vec::new();
    let mut errnos = Vec::new();
    for r in results {
        let (p, e) = r?;
        used.extend(p);
        errnos.extend(e.map(|e| e as i32));
    }
    let n = used.len();
    // Each close reaches TIME_WAIT once the server's FIN is processed: microseconds here,
    // seconds under emulation beside a load. Wait on that state, as long as this machine's
    // slowness makes reasonable.
    let settle = slowness::stretch(TW_SETTLE);
    let table = ports::wait_for_table(client, settle, |t| {
        ports::count_state(t, state::TIME_WAIT) >= n
    })
    .context("reading the socket table")?;
    let unsettled_after = (ports::count_state(&table, state::TIME_WAIT) < n).then_some(settle);
    // After the reuse age, tcp_tw_reuse=2 (loopback only) still does not apply: the
    // destination is on a veth.
    let reuse_delay_ms = tw_reuse_delay(client)?;
    let (age, _) = tw_reuse_age(reuse_delay_ms);
    // This wait is the measurement: the TIME_WAITs must age past the reuse age, which no
    // socket state shows (a connect to poll it would itself take the port).
    std::thread::sleep(age + Duration::from_millis(300));
    let late = ports::short_connection(client, target)?;
    let after_retry = Table::read(client, "client after the retry")?;
    Ok(Observation::Observed(ShortConnections {
        client_lab: client.name().to_owned(),
        server_lab: server.name().to_owned(),
        range,
        tw_reuse,
        timestamps,
        reuse_delay_ms,
        used,
        errnos,
        after_workers: table,
        unsettled_after,
        late: record(late),
        served: srv.served(),
        after_retry,
    }))
}

/// `tw.concurrent-client-exhaustion`, judged: the range filled with TIME_WAIT, then
/// errno 99 in every worker; the retry as tcp_tw_reuse predicts.
pub(super) fn judge_concurrent_client_exhaustion(m: &ShortConnections, _ctx: &Ctx) -> Outcome {
    let (age, age_text) = tw_reuse_age(m.reuse_delay_ms);
    let (range, reuse, used) = (&m.range, &m.tw_reuse, &m.used);
    let errnos: Vec<Errno> = m.errnos.iter().copied().map(Errno::from_raw).collect();
    let late = replay(&m.late);
    let n = used.len();
    let tw = ports::count_state(&m.after_workers, state::TIME_WAIT);
    let mut o = Outcome::default();
    o.evidence(format!(
        "client 192.0.2.1 → server 192.0.2.2:3306 over a veth; client {}; tcp_tw_reuse = {reuse}, tcp_timestamps = {} (namespace defaults); {age_text}",
        range.describe(),
        m.timestamps
    ));
    o.evidence(format!(
        "{WORKERS} workers made {n} short connection(s) from ports {used:?}; the server finished {}; the workers stopped on errno {:?}; {tw} TIME_WAIT socket(s) on the client",
        m.served,
        errnos.iter().map(|e| format!("{} ({e})", *e as i32)).collect::<Vec<_>>()
    ));
    o.evidence(format!(
        "retry {:.3} s later: {}",
        (age + Duration::from_millis(300)).as_secs_f64(),
        show(&late)
    ));
    o.evidence(m.after_retry.text());
    if let Some(limit) = m.unsettled_after {
        // The count below would be of sockets still closing: not an observation.
        return Outcome {
            forced: Some((
                crate::Verdict::Error,
                format!(
                    "the {n} connection(s) made were not all in TIME_WAIT within {} \
                     (the wait's deadline, stretched by this machine's slowness): {tw} were, \
                     so the TIME_WAIT count was not observed",
                    secs(limit)
                ),
            )),
            ..o
        };
    }
    let all_99 = !errnos.is_empty() && errnos.iter().all(|e| *e == Errno::EADDRNOTAVAIL);
    o.claimed.errno = Some(Errno::EADDRNOTAVAIL as i32);
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some(format!(
            "{} connections, {} TIME_WAIT, then errno 99",
            range.usable, range.usable
        )),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: errnos.first().map(|e| *e as i32),
        value: Some(format!("{n} connections, {tw} TIME_WAIT")),
        ..Figures::default()
    };
    o.claim_check(
        "short connections fill the range with TIME_WAIT, then connect fails",
        format!("{} TIME_WAIT, then errno 99", range.usable),
        format!(
            "{tw} TIME_WAIT, then {}",
            errnos
                .first()
                .map(|e| format!("errno {} ({e})", *e as i32))
                .unwrap_or("no failure".into())
        ),
        tw == n && n > 0 && all_99,
    );
    check_eq(&mut o, Against::Model, "connections made", range.usable, n);
    check_eq(
        &mut o,
        Against::Model,
        "client TIME_WAIT sockets",
        range.usable,
        tw,
    );
    check_eq(
        &mut o,
        Against::Model,
        "every worker stopped on EADDRNOTAVAIL",
        true,
        all_99 && errnos.len() == WORKERS,
    );
    let predicted_late = if reuse == "1" {
        "connected"
    } else {
        "errno 99 (tcp_tw_reuse is not 1 and 192.0.2.2 is not loopback)"
    };
    o.model_check(
        "retry after the reuse age",
        predicted_late,
        show(&late),
        if reuse == "1" {
            late.is_ok()
        } else {
            late == Err(Errno::EADDRNOTAVAIL)
        },
    );
    o
}

pub(super) const CONCURRENT_CLIENT_EXHAUSTION: Steps<ShortConnections> = Steps {
    measure: measure_concurrent_client_exhaustion,
    judge: judge_concurrent_client_exhaustion,
};
