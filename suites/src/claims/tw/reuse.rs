//! `tw.reuse-needs-timestamps`: tcp_tw_reuse has no effect unless tcp_timestamps=1.

use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, state, Listener};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{record, replay, show, Connected};
use crate::catalog::knobs::or_na;
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::claims::port::{
    loopback, set_range, tw_reuse_age, tw_reuse_delay, Filled, RangeInForce, Table, LISTEN_PORT,
    SMALL_RANGE,
};
use crate::judge::checks::{check_eq, Against};

/// One lab of `tw.reuse-needs-timestamps`: the range filled with TIME_WAIT, then a
/// connect after the reuse age.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReuseTrial {
    /// The lab's namespace.
    pub(super) lab: String,
    /// `tcp_timestamps` set there.
    pub(super) timestamps: u8,
    /// Its range in force.
    pub(super) range: RangeInForce,
    /// The short connections that filled it.
    pub(super) filled: Filled,
    /// The socket table just before the connect.
    pub(super) table: Table,
    /// The connect.
    pub(super) result: Connected,
}

/// What `tw.reuse-needs-timestamps` measured: the same fill and connect with
/// tcp_timestamps=0 and =1.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReuseByTimestamps {
    /// `tcp_tw_reuse_delay` in force, ms (`None`: the kernel has none).
    pub(super) reuse_delay_ms: Option<u64>,
    /// tcp_timestamps=0, then 1.
    pub(super) trials: Vec<ReuseTrial>,
}

/// `tw.reuse-needs-timestamps`, measured: both labs filled, aged past the reuse age, and
/// connected once more.
fn measure_reuse_needs_timestamps(_ctx: &Ctx) -> Result<Observation<ReuseByTimestamps>> {
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
    let reuse_delay_ms = match labs.first() {
        Some((_, ns, ..)) => tw_reuse_delay(ns)?,
        None => anyhow::bail!("no lab was built"),
    };
    let (age, _) = tw_reuse_age(reuse_delay_ms);
    // This wait is the measurement: the TIME_WAITs must age past the reuse age, which no
    // socket state shows (a connect to poll it would itself take the port).
    std::thread::sleep(age + Duration::from_millis(300));
    let mut trials = Vec::new();
    // Every lab lives until the last connect, as when they were filled.
    for (ts, ns, range, listener, fill) in &labs {
        let table = Table::read(ns, &format!("tcp_timestamps={ts}, before the connect"))?;
        let out = netclaim_fixtures::client::connect_blocking(ns, listener.addr())?;
        let result = match (out.errno(), out.socket.as_ref()) {
            (None, Some(s)) => Ok(ports::local_port(s).context("local port")?),
            (Some(e), _) => Err(e),
            (None, None) => Err(Errno::UnknownErrno),
        };
        trials.push(ReuseTrial {
            lab: ns.name().to_owned(),
            timestamps: *ts,
            range: range.clone(),
            filled: Filled::of(fill),
            table,
            result: record(result),
        });
        drop(out);
    }
    Ok(Observation::Observed(ReuseByTimestamps {
        reuse_delay_ms,
        trials,
    }))
}

/// `tw.reuse-needs-timestamps`, judged: no reuse without timestamps, reuse with them.
pub(super) fn judge_reuse_needs_timestamps(m: &ReuseByTimestamps, _ctx: &Ctx) -> Outcome {
    let (age, age_text) = tw_reuse_age(m.reuse_delay_ms);
    let mut o = Outcome::default();
    o.evidence(format!(
        "tcp_tw_reuse=1 in both labs; {age_text}; waited {:.3} s after filling. tcp_twsk_unique() reuses a TIME_WAIT only if it recorded the peer's timestamp (tw_ts_recent_stamp != 0), which needs timestamps negotiated",
        (age + Duration::from_millis(300)).as_secs_f64()
    ));
    for t in &m.trials {
        o.evidence(format!(
            "{}; filled from ports {:?}\n{}\nconnect with tcp_timestamps={}: {}",
            t.range.describe(),
            t.filled.ports,
            t.table.text(),
            t.timestamps,
            show(&replay(&t.result))
        ));
    }
    let (Some(off), Some(on)) = (
        m.trials.iter().find(|t| t.timestamps == 0),
        m.trials.iter().find(|t| t.timestamps == 1),
    ) else {
        return Outcome::forced(
            crate::claim::Verdict::Error,
            "the measurement lacks the lab with tcp_timestamps=0 or =1",
        );
    };
    let tw = |t: &ReuseTrial| ports::count_state(t.table.entries(), state::TIME_WAIT);
    let (off_result, on_result) = (replay(&off.result), replay(&on.result));
    o.claimed.value = Some("timestamps=0: no reuse; timestamps=1: reuse".into());
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some("timestamps=0: errno 99; timestamps=1: connected".into()),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: off_result.err().map(|e| e as i32),
        value: Some(format!(
            "timestamps=0: {}; timestamps=1: {}",
            show(&off_result),
            show(&on_result)
        )),
        ..Figures::default()
    };
    o.claim_check(
        "tcp_tw_reuse=1 with tcp_timestamps=0 / =1, every port in TIME_WAIT",
        "no effect (errno 99) / reuse (connected)",
        format!("{} / {}", show(&off_result), show(&on_result)),
        off_result == Err(Errno::EADDRNOTAVAIL) && on_result.is_ok(),
    );
    let usable = off.range.usable;
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets (timestamps=0)",
        usable,
        tw(off),
    );
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets (timestamps=1)",
        usable,
        tw(on),
    );
    check_eq(
        &mut o,
        Against::Model,
        "connect, tcp_timestamps=0",
        Some(Errno::EADDRNOTAVAIL),
        off_result.err(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "connect, tcp_timestamps=1 succeeds",
        true,
        on_result.is_ok(),
    );
    o
}

pub(super) const REUSE_NEEDS_TIMESTAMPS: Steps<ReuseByTimestamps> = Steps {
    measure: measure_reuse_needs_timestamps,
    judge: judge_reuse_needs_timestamps,
};
