//! TIME_WAIT (seed 003): who holds it, how long it lasts, when tcp_tw_reuse can take it
//! over, and what the knobs default to.
//!
//! Sockets are observed in `/proc/thread-self/net/tcp`, read on the lab namespace's own
//! thread; for a TIME_WAIT socket its `tm->when` column is the time left on the TIME_WAIT
//! timer in `USER_HZ` ticks.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, state, Closer, Listener, ShortServer, TcpEntry};
use netclaim_harness::slowness;
use netclaim_harness::sysctl::knob;
use netclaim_harness::tolerance::{kernel_timer_window, timer_slack};
use netclaim_harness::NetNs;
use nix::errno::Errno;

use super::port::{
    loopback, or_na, set_range, table_evidence, tw_reuse_age, LISTEN_PORT, SMALL_RANGE,
};
use super::seeds;
use crate::claim::{Claim, Ctx, Figures, Needs, OneStep, Outcome, Procedure};
use crate::lab::{check_eq, check_timing, Against, Measured, EARLY};

/// `TCP_TIMEWAIT_LEN` (`include/net/tcp.h`): 60 s, a constant, not a sysctl.
const TCP_TIMEWAIT_LEN: Duration = Duration::from_secs(60);
/// The seed's 2 MSL with MSL = 2 minutes.
const STATED_TIME_WAIT: Duration = Duration::from_secs(240);

fn find(table: &[TcpEntry], local: SocketAddrV4, remote: SocketAddrV4) -> Option<TcpEntry> {
    table
        .iter()
        .copied()
        .find(|e| e.local == local && e.remote == remote)
}

fn describe(e: Option<TcpEntry>) -> String {
    match e {
        Some(e) if e.state == state::TIME_WAIT => format!(
            "TIME_WAIT ({:.2} s left on the timer)",
            e.timer_left().as_secs_f64()
        ),
        Some(e) => e.state_name().to_owned(),
        None => "CLOSED (no socket)".to_owned(),
    }
}

fn active_closer(_ctx: &Ctx) -> Result<Outcome> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 128).context("binding")?;
    let mut o = Outcome::default();
    let mut results = Vec::new();
    for closer in [Closer::Client, Closer::Server] {
        let pair = match ports::close_one(&ns, &listener, closer).context("connection")? {
            Ok(p) => p,
            Err(e) => anyhow::bail!("connect failed: {e}"),
        };
        // The last ACK crosses loopback at once; allow a moment for the passive closer's
        // LAST_ACK to turn into CLOSED.
        let table = ports::wait_for_table(&ns, Duration::from_secs(1), |t| {
            let c = find(t, pair.client, pair.server).map(|e| e.state);
            let s = find(t, pair.server, pair.client).map(|e| e.state);
            !matches!(
                c,
                Some(state::LAST_ACK | state::FIN_WAIT2 | state::CLOSE_WAIT)
            ) && !matches!(
                s,
                Some(state::LAST_ACK | state::FIN_WAIT2 | state::CLOSE_WAIT)
            )
        })
        .context("reading the socket table")?;
        let client = find(&table, pair.client, pair.server);
        let server = find(&table, pair.server, pair.client);
        o.evidence(format!(
            "{closer:?} closes first: client {} → {}, server side {}\n{}",
            pair.client,
            describe(client),
            describe(server),
            ports::table_text(&table)
        ));
        results.push((closer, client, server));
    }
    let st = |e: Option<TcpEntry>| e.map(|e| e.state_name()).unwrap_or("CLOSED");
    let (_, c1, s1) = results[0];
    let (_, c2, s2) = results[1];
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
    Ok(o)
}

fn duration(ctx: &Ctx) -> Result<Outcome> {
    const POLL: Duration = Duration::from_millis(100);
    const LIMIT: Duration = Duration::from_secs(75);
    let ns = NetNs::new().context("creating the lab namespace")?;
    let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 128).context("binding")?;
    let pair = match ports::close_one(&ns, &listener, Closer::Client).context("connection")? {
        Ok(p) => p,
        Err(e) => anyhow::bail!("connect failed: {e}"),
    };
    let closed = Instant::now();
    // The FIN exchange ends in TIME_WAIT a moment after close() returns (later on a slow
    // or emulated machine): wait for it, within limits.
    let in_time_wait = |t: &[TcpEntry]| {
        find(t, pair.client, pair.server).is_some_and(|e| e.state == state::TIME_WAIT)
    };
    let first = ports::wait_for_table(&ns, ports::TIME_WAIT_SETTLE, in_time_wait)
        .context("reading the socket table")?;
    let read_at = closed.elapsed();
    let entry = find(&first, pair.client, pair.server)
        .filter(|e| e.state == state::TIME_WAIT)
        .with_context(|| {
            format!(
                "the client's socket is not in TIME_WAIT {} ms after closing first",
                ports::TIME_WAIT_SETTLE.as_millis()
            )
        })?;
    // The timer column: how long the kernel will keep this TIME_WAIT, as armed.
    let armed = read_at + entry.timer_left();
    let mut gone = None;
    let mut polls = 0u32;
    while closed.elapsed() < LIMIT {
        std::thread::sleep(POLL);
        polls += 1;
        let t = ports::tcp_table(&ns).context("reading the socket table")?;
        if find(&t, pair.client, pair.server).is_none_or(|e| e.state != state::TIME_WAIT) {
            gone = Some(closed.elapsed());
            break;
        }
    }

    let slack = timer_slack(TCP_TIMEWAIT_LEN, ctx.hz);
    // Late side: the wheel's slack, one poll interval, and scheduling delay of the poller
    // while other claims run.
    let late = slack + POLL + Duration::from_millis(300);
    let window = kernel_timer_window(TCP_TIMEWAIT_LEN, late, EARLY);
    let stated_window = kernel_timer_window(STATED_TIME_WAIT, late, EARLY);
    // clock_t resolution (10 ms) plus the time between close and the read.
    let armed_window = kernel_timer_window(
        TCP_TIMEWAIT_LEN,
        read_at + Duration::from_millis(20),
        Duration::from_millis(20),
    );
    let mut o = Outcome::default();
    o.evidence(format!(
        "client {} closed first; {:.3} s later /proc/thread-self/net/tcp showed {} with tm->when = {} ticks of 1/{} s ({:.2} s left): armed for {:.3} s",
        pair.client,
        read_at.as_secs_f64(),
        entry.state_name(),
        entry.timer_ticks,
        ports::USER_HZ,
        entry.timer_left().as_secs_f64(),
        armed.as_secs_f64()
    ));
    o.evidence(format!(
        "polled every {} ms ({polls} polls): {}",
        POLL.as_millis(),
        match gone {
            Some(d) => format!("gone {:.3} s after the close", d.as_secs_f64()),
            None => format!("still in TIME_WAIT after {} s", LIMIT.as_secs()),
        }
    ));
    o.evidence(format!(
        "TCP_TIMEWAIT_LEN = 60*HZ (include/net/tcp.h), not tunable; the TIME_WAIT timer sits in the timer wheel with up to {:.3} s of slack at HZ={}",
        slack.as_secs_f64(),
        ctx.hz
    ));
    let observed = gone.unwrap_or(LIMIT);
    o.claimed = Figures::default().duration(STATED_TIME_WAIT);
    o.expected = Figures::default().duration(TCP_TIMEWAIT_LEN);
    o.observed = Figures::default().duration(observed);
    if gone.is_none() {
        o.observed.value = Some(format!("still present at {} s", LIMIT.as_secs()));
    }
    // One kernel timer, and the poller's own sleeps: as late as this machine ran timers.
    let measured = Measured {
        took: observed,
        error: slowness::late_between(closed, closed + observed),
        early_error: Duration::ZERO,
        error_from: "timers late over the lifetime (probe)".into(),
    };
    match gone {
        Some(_) => check_timing(
            &mut o,
            Against::Statement,
            "TIME_WAIT lifetime (2 MSL, MSL = 2 min)",
            STATED_TIME_WAIT,
            stated_window,
            &measured,
        ),
        None => o.claim_check(
            "TIME_WAIT lifetime (2 MSL, MSL = 2 min)",
            format!("240 s within {stated_window}"),
            format!("> {} s", LIMIT.as_secs()),
            false,
        ),
    }
    o.model_check(
        "TIME_WAIT timer as armed (elapsed + tm->when)",
        format!("60 s within {armed_window}"),
        format!("{:.3} s", armed.as_secs_f64()),
        armed_window.contains(armed),
    );
    match gone {
        Some(_) => check_timing(
            &mut o,
            Against::Model,
            "TIME_WAIT lifetime (TCP_TIMEWAIT_LEN, timer-wheel slack, poll interval)",
            TCP_TIMEWAIT_LEN,
            window,
            &measured,
        ),
        None => o.model_check(
            "TIME_WAIT lifetime (TCP_TIMEWAIT_LEN, timer-wheel slack, poll interval)",
            format!("60 s within {window}"),
            format!("> {} s", LIMIT.as_secs()),
            false,
        ),
    }
    Ok(o)
}

/// One lab of tw.reuse-needs-timestamps: the range filled with TIME_WAIT, then a
/// connect after the reuse age.
struct ReuseTrial {
    timestamps: u8,
    tw: usize,
    result: std::result::Result<u16, Errno>,
    table: String,
}

fn reuse_needs_timestamps(_ctx: &Ctx) -> Result<Outcome> {
    let mut labs = Vec::new();
    for ts in [0u8, 1] {
        let ns = NetNs::new().context("creating a lab namespace")?;
        or_na!(ns.set_tcp_timestamps(ts));
        or_na!(ns.set_tcp_tw_reuse(1));
        let range = or_na!(set_range(&ns, SMALL_RANGE));
        let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 128).context("binding")?;
        let fill = ports::fill_time_wait(&ns, &listener, range.usable).context("TIME_WAIT fill")?;
        labs.push((ts, ns, range, listener, fill));
    }
    let (age, age_text) = tw_reuse_age(&labs[0].1)?;
    std::thread::sleep(age + Duration::from_millis(300));
    let mut trials = Vec::new();
    for (ts, ns, range, listener, fill) in &labs {
        let (table, text) =
            table_evidence(ns, &format!("tcp_timestamps={ts}, before the connect"))?;
        let out = netclaim_fixtures::client::connect_blocking(ns, listener.addr())?;
        let result = match (out.errno(), out.socket.as_ref()) {
            (None, Some(s)) => Ok(ports::local_port(s).context("local port")?),
            (Some(e), _) => Err(e),
            (None, None) => Err(Errno::UnknownErrno),
        };
        trials.push(ReuseTrial {
            timestamps: *ts,
            tw: ports::count_state(&table, state::TIME_WAIT),
            result,
            table: format!(
                "{}; filled from ports {:?}\n{text}",
                range.describe(),
                fill.ports
            ),
        });
        drop(out);
    }
    let show = |r: &std::result::Result<u16, Errno>| match r {
        Ok(p) => format!("connected from port {p}"),
        Err(e) => format!("errno {} ({e})", *e as i32),
    };
    let mut o = Outcome::default();
    o.evidence(format!(
        "tcp_tw_reuse=1 in both labs; {age_text}; waited {:.3} s after filling. tcp_twsk_unique() reuses a TIME_WAIT only if it recorded the peer's timestamp (tw_ts_recent_stamp != 0), which needs timestamps negotiated",
        (age + Duration::from_millis(300)).as_secs_f64()
    ));
    for t in &trials {
        o.evidence(format!(
            "{}\nconnect with tcp_timestamps={}: {}",
            t.table,
            t.timestamps,
            show(&t.result)
        ));
    }
    let (off, on) = (&trials[0], &trials[1]);
    o.claimed.value = Some("timestamps=0: no reuse; timestamps=1: reuse".into());
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some("timestamps=0: errno 99; timestamps=1: connected".into()),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: off.result.err().map(|e| e as i32),
        value: Some(format!(
            "timestamps=0: {}; timestamps=1: {}",
            show(&off.result),
            show(&on.result)
        )),
        ..Figures::default()
    };
    o.claim_check(
        "tcp_tw_reuse=1 with tcp_timestamps=0 / =1, every port in TIME_WAIT",
        "no effect (errno 99) / reuse (connected)",
        format!("{} / {}", show(&off.result), show(&on.result)),
        off.result == Err(Errno::EADDRNOTAVAIL) && on.result.is_ok(),
    );
    let usable = labs[0].2.usable;
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets (timestamps=0)",
        usable,
        off.tw,
    );
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets (timestamps=1)",
        usable,
        on.tw,
    );
    check_eq(
        &mut o,
        Against::Model,
        "connect, tcp_timestamps=0",
        Some(Errno::EADDRNOTAVAIL),
        off.result.err(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "connect, tcp_timestamps=1 succeeds",
        true,
        on.result.is_ok(),
    );
    Ok(o)
}

fn concurrent_client_exhaustion(_ctx: &Ctx) -> Result<Outcome> {
    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const WORKERS: usize = 4;
    let client = NetNs::new().context("creating the client namespace")?;
    let server = NetNs::new().context("creating the server namespace")?;
    netclaim_harness::link::veth_pair(&client, CLIENT, &server, SERVER, 24)
        .context("linking client and server")?;
    let range = or_na!(set_range(&client, (40000, 40007)));
    let reuse = client.sysctl(knob::TCP_TW_REUSE)?;
    let ts = client.sysctl(knob::TCP_TIMESTAMPS)?;
    let target = SocketAddrV4::new(SERVER, 3306);
    let srv = ShortServer::start(&server, target).context("starting the server")?;

    // WORKERS threads make short connections (connect, send, close first) until connect fails.
    let worker = || -> Result<(Vec<u16>, Option<Errno>)> {
        let mut done = Vec::new();
        for _ in 0..range.usable + 4 {
            match ports::short_connection(&client, target)? {
                Ok(p) => done.push(p),
                Err(e) => return Ok((done, Some(e))),
            }
        }
        Ok((done, None))
    };
    let results = crate::lab::parallel("tw-worker", vec![worker; WORKERS]);
    let mut used = Vec::new();
    let mut errnos = Vec::new();
    for r in results {
        let (p, e) = r?;
        used.extend(p);
        errnos.extend(e);
    }
    let n = used.len();
    let table = ports::wait_for_table(&client, Duration::from_secs(2), |t| {
        ports::count_state(t, state::TIME_WAIT) >= n
    })
    .context("reading the socket table")?;
    let tw = ports::count_state(&table, state::TIME_WAIT);
    // After the reuse age, tcp_tw_reuse=2 (loopback only) still does not apply: the
    // destination is on a veth.
    let (age, age_text) = tw_reuse_age(&client)?;
    std::thread::sleep(age + Duration::from_millis(300));
    let late = ports::short_connection(&client, target)?;
    let (_, text) = table_evidence(&client, "client after the retry")?;

    let mut o = Outcome::default();
    o.evidence(format!(
        "client 192.0.2.1 → server 192.0.2.2:3306 over a veth; client {}; tcp_tw_reuse = {reuse}, tcp_timestamps = {ts} (namespace defaults); {age_text}",
        range.describe()
    ));
    o.evidence(format!(
        "{WORKERS} workers made {n} short connection(s) from ports {used:?}; the server finished {}; the workers stopped on errno {:?}; {tw} TIME_WAIT socket(s) on the client",
        srv.served(),
        errnos.iter().map(|e| format!("{} ({e})", *e as i32)).collect::<Vec<_>>()
    ));
    o.evidence(format!(
        "retry {:.3} s later: {}",
        (age + Duration::from_millis(300)).as_secs_f64(),
        match late {
            Ok(p) => format!("connected from port {p}"),
            Err(e) => format!("errno {} ({e})", e as i32),
        }
    ));
    o.evidence(text);
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
        match late {
            Ok(p) => format!("connected from port {p}"),
            Err(e) => format!("errno {} ({e})", e as i32),
        },
        if reuse == "1" {
            late.is_ok()
        } else {
            late == Err(Errno::EADDRNOTAVAIL)
        },
    );
    Ok(o)
}

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "tw.active-closer",
            source: seeds::TIME_WAIT,
            statement: "TIME_WAIT appears on the side that closes the connection first; the other side ends in CLOSED.",
            lab: "one namespace, listener on 127.0.0.1:8080",
            action: "one connection closed by the client first, one closed by the server first; read /proc/thread-self/net/tcp",
            needs: Needs::default(),
            estimate: S,
            run: Procedure::Rust(&OneStep(active_closer)),
        },
        Claim {
            id: "tw.duration",
            source: seeds::TIME_WAIT,
            statement: "A TIME_WAIT socket lasts 2 MSL, with MSL = 2 minutes (4 minutes).",
            lab: "one namespace, listener on 127.0.0.1:8080",
            action: "make one client-side TIME_WAIT, read its timer, poll /proc/thread-self/net/tcp every 100 ms until it is gone (at most 75 s)",
            needs: Needs::default(),
            estimate: 63 * S,
            run: Procedure::Rust(&OneStep(duration)),
        },
        Claim {
            id: "tw.reuse-needs-timestamps",
            source: seeds::TIME_WAIT,
            statement: "tcp_tw_reuse has no effect unless tcp_timestamps=1.",
            lab: "two namespaces with ip_local_port_range 40000-40003 and tcp_tw_reuse=1: one with tcp_timestamps=0, one with 1",
            action: "fill each range with client-closed TIME_WAIT sockets, wait past tcp_tw_reuse_delay, connect once more",
            needs: Needs::default(),
            estimate: 2 * S,
            run: Procedure::Rust(&OneStep(reuse_needs_timestamps)),
        },
        Claim {
            id: "tw.concurrent-client-exhaustion",
            source: seeds::TIME_WAIT,
            statement: "A client making many short concurrent connections fills the local port range with TIME_WAIT sockets and then cannot connect.",
            lab: "client 192.0.2.1 and server 192.0.2.2:3306 on a veth; client ip_local_port_range 40000-40007, other sysctls at their defaults",
            action: "4 threads make short connections (connect, send, close first) until connect() fails; retry after tcp_tw_reuse_delay",
            needs: Needs::default(),
            estimate: 2 * S,
            run: Procedure::Rust(&OneStep(concurrent_client_exhaustion)),
        },
    ]
}
