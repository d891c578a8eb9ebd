//! `tw.duration`: how long a TIME_WAIT socket lasts (the seed's 2 MSL of 4 minutes against
//! the kernel's TCP_TIMEWAIT_LEN).

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, state, Closer, Listener, TcpEntry};
use netclaim_harness::tolerance::EARLY;
use netclaim_harness::tolerance::{kernel_timer_window, timer_slack};
use netclaim_harness::wait::{self, Poll};
use netclaim_harness::{slowness, NetNs};
use serde::{Deserialize, Serialize};

use super::{find, STATED_TIME_WAIT, TCP_TIMEWAIT_LEN};
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::claims::port::{loopback, LISTEN_PORT};
use crate::judge::checks::Against;
use crate::judge::timing::check_timing;
use crate::record::attempt::Measured;

/// How often `tw.duration` reads the socket table.
const LIFETIME_POLL: Duration = Duration::from_millis(100);
/// How long after the close it gives up.
const LIFETIME_LIMIT: Duration = Duration::from_secs(75);

/// What `tw.duration` measured: one client-side TIME_WAIT, its timer as first read, and
/// when it left the table.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Lifetime {
    /// The lab's namespace.
    pub(super) lab: String,
    /// The client's address (it closed first).
    pub(super) client: SocketAddrV4,
    /// From the close to the first table read that showed TIME_WAIT.
    pub(super) read_at: Duration,
    /// The client's socket as read then.
    pub(super) entry: TcpEntry,
    /// Table reads while waiting for it to go.
    pub(super) polls: u32,
    /// When it was gone, from the close (`None`: still there at the limit).
    pub(super) gone: Option<Duration>,
    /// The lifetime judged (`gone`, or the limit) with the probe's timer lateness over
    /// it: the kernel's timer and the poller's sleeps ran as late as this machine did.
    pub(super) lifetime: Measured,
}

/// `tw.duration`, measured: one TIME_WAIT made, its timer read, then the table polled
/// until it is gone.
fn measure_duration(_ctx: &Ctx) -> Result<Observation<Lifetime>> {
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
    let settle = ports::time_wait_settle();
    let first =
        ports::wait_for_table(&ns, settle, in_time_wait).context("reading the socket table")?;
    let read_at = closed.elapsed();
    let entry = find(&first, pair.client, pair.server)
        .filter(|e| e.state == state::TIME_WAIT)
        .with_context(|| {
            format!(
                "the client's socket is not in TIME_WAIT {} ms after closing first",
                settle.as_millis()
            )
        })?;
    let mut polls = 0u32;
    let mut failed = None;
    let waited = wait::until_every(
        "the client's TIME_WAIT socket to go",
        LIFETIME_LIMIT.saturating_sub(closed.elapsed()),
        LIFETIME_POLL,
        || {
            polls += 1;
            match ports::tcp_table(&ns) {
                Ok(t) => match find(&t, pair.client, pair.server) {
                    Some(e) if e.state == state::TIME_WAIT => {
                        Poll::Pending("still in TIME_WAIT".into())
                    }
                    _ => Poll::Ready(Some(closed.elapsed())),
                },
                Err(e) => {
                    failed = Some(e);
                    Poll::Ready(None)
                }
            }
        },
    );
    if let Some(e) = failed {
        return Err(anyhow::Error::from(e).context("reading the socket table"));
    }
    // Past the limit the lifetime is judged as the limit (and fails).
    let gone = waited.ok().and_then(|(at, _)| at);
    let observed = gone.unwrap_or(LIFETIME_LIMIT);
    Ok(Observation::Observed(Lifetime {
        lab: ns.name().to_owned(),
        client: pair.client,
        read_at,
        entry,
        polls,
        gone,
        lifetime: Measured {
            took: observed,
            error: slowness::late_between(closed, closed + observed),
            early_error: Duration::ZERO,
            error_from: "timers late over the lifetime (probe)".into(),
        },
    }))
}

/// `tw.duration`, judged: 240 s stated, `TCP_TIMEWAIT_LEN` (60 s) predicted, with the
/// timer wheel's slack at this run's HZ.
pub(super) fn judge_duration(m: &Lifetime, ctx: &Ctx) -> Outcome {
    let entry = m.entry;
    let (read_at, gone) = (m.read_at, m.gone);
    // The timer column: how long the kernel will keep this TIME_WAIT, as armed.
    let armed = read_at + entry.timer_left();
    let slack = timer_slack(TCP_TIMEWAIT_LEN, ctx.hz);
    // Late side: the wheel's slack, one poll interval, and scheduling delay of the poller
    // while other claims run.
    let late = slack + LIFETIME_POLL + Duration::from_millis(300);
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
        m.client,
        read_at.as_secs_f64(),
        entry.state_name(),
        entry.timer_ticks,
        ports::USER_HZ,
        entry.timer_left().as_secs_f64(),
        armed.as_secs_f64()
    ));
    o.evidence(format!(
        "polled every {} ms ({} polls): {}",
        LIFETIME_POLL.as_millis(),
        m.polls,
        match gone {
            Some(d) => format!("gone {:.3} s after the close", d.as_secs_f64()),
            None => format!("still in TIME_WAIT after {} s", LIFETIME_LIMIT.as_secs()),
        }
    ));
    o.evidence(format!(
        "TCP_TIMEWAIT_LEN = 60*HZ (include/net/tcp.h), not tunable; the TIME_WAIT timer sits in the timer wheel with up to {:.3} s of slack at HZ={}",
        slack.as_secs_f64(),
        ctx.hz
    ));
    let measured = &m.lifetime;
    o.claimed = Figures::default().duration(STATED_TIME_WAIT);
    o.expected = Figures::default().duration(TCP_TIMEWAIT_LEN);
    o.observed = Figures::default().duration(measured.took);
    if gone.is_none() {
        o.observed.value = Some(format!("still present at {} s", LIFETIME_LIMIT.as_secs()));
    }
    match gone {
        Some(_) => check_timing(
            &mut o,
            Against::Statement,
            "TIME_WAIT lifetime (2 MSL, MSL = 2 min)",
            STATED_TIME_WAIT,
            stated_window,
            measured,
        ),
        None => o.claim_check(
            "TIME_WAIT lifetime (2 MSL, MSL = 2 min)",
            format!("240 s within {stated_window}"),
            format!("> {} s", LIFETIME_LIMIT.as_secs()),
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
            measured,
        ),
        None => o.model_check(
            "TIME_WAIT lifetime (TCP_TIMEWAIT_LEN, timer-wheel slack, poll interval)",
            format!("60 s within {window}"),
            format!("> {} s", LIFETIME_LIMIT.as_secs()),
            false,
        ),
    }
    o
}

pub(super) const DURATION: Steps<Lifetime> = Steps {
    measure: measure_duration,
    judge: judge_duration,
};
