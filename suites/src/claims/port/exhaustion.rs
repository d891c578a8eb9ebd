//! `port.exhaustion-errno` and `port.exhaustion-curl`: every port of a small range held

//! (by open connections or TIME_WAIT sockets), and what the next connect() or curl gets.

use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, state, Listener};
use netclaim_harness::command::ToolCommand;
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{
    errno_figure, errno_text, loopback, set_range, Filled, Held, RangeInForce, Table, LISTEN_PORT,
    SMALL_RANGE,
};
use crate::catalog::knobs::or_na;
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::tool::{tool_evidence, tool_figures, version_line};
use crate::measure::tool::{run_tool, version_of};
use crate::record::tool::ToolRun;

/// Holds every port of a small range open against a listener that never accepts.
struct HeldLab {
    ns: NetNs,
    range: RangeInForce,
    _listener: Listener,
    ex: ports::Exhaustion,
}

fn held_lab(range: (u16, u16)) -> Result<std::result::Result<HeldLab, netclaim_harness::Error>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let range = match set_range(&ns, range) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let listener =
        Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding the listener")?;
    let ex = ports::hold_connections(&ns, listener.addr(), range.usable + 4)?;
    Ok(Ok(HeldLab {
        ns,
        range,
        _listener: listener,
        ex,
    }))
}

/// What `port.exhaustion-errno` measured: every port of a lab held by open connections,
/// then every port of a second lab held by client-closed TIME_WAIT sockets
/// (`tcp_tw_reuse=0`), and the next connect() in each.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AllPortsUsed {
    /// The lab whose ports are held by open connections.
    pub(super) lab: String,
    /// Its range in force.
    pub(super) range: RangeInForce,
    /// The connections held there, and the next connect().
    pub(super) held: Held,
    /// Its socket table with every port held.
    pub(super) held_table: Table,
    /// The lab whose ports are held by TIME_WAIT.
    pub(super) tw_lab: String,
    /// Its range in force.
    pub(super) tw_range: RangeInForce,
    /// The short connections made there, and the next connect().
    pub(super) filled: Filled,
    /// Its socket table with every port in TIME_WAIT.
    pub(super) tw_table: Table,
}

/// `port.exhaustion-errno`, measured: both labs filled, and connect() once more in each.
fn measure_exhaustion_errno(_ctx: &Ctx) -> Result<Observation<AllPortsUsed>> {
    let lab = or_na!(held_lab(SMALL_RANGE)?);
    let held_table = Table::read(&lab.ns, "with every port held")?;

    // The same exhaustion with the ports held by TIME_WAIT (tcp_tw_reuse=0).
    let ns2 = NetNs::new().context("creating the TIME_WAIT namespace")?;
    or_na!(ns2.set_tcp_tw_reuse(0));
    let tw_range = or_na!(set_range(&ns2, SMALL_RANGE));
    let l2 = Listener::bind(&ns2, loopback(LISTEN_PORT), 1024).context("binding")?;
    let fill = ports::fill_time_wait(&ns2, &l2, tw_range.usable + 4).context("TIME_WAIT fill")?;
    let tw_table = Table::read(&ns2, "ports held by TIME_WAIT, tcp_tw_reuse=0")?;
    Ok(Observation::Observed(AllPortsUsed {
        lab: lab.ns.name().to_owned(),
        held: Held::of(&lab.ex),
        range: lab.range,
        held_table,
        tw_lab: ns2.name().to_owned(),
        tw_range,
        filled: Filled::of(&fill),
        tw_table,
    }))
}

/// `port.exhaustion-errno`, judged: errno 99 in both labs, after as many connections as
/// the range allows.
pub(super) fn judge_exhaustion_errno(m: &AllPortsUsed, _ctx: &Ctx) -> Outcome {
    let usable = m.range.usable;
    let failure = m.held.failure();
    let tw_failure = m.filled.failure();
    let mut o = Outcome::default();
    o.evidence(m.range.describe());
    o.evidence(format!(
        "held {} connection(s) to {} from ports {:?}; next connect(): {}",
        m.held.ports.len(),
        loopback(LISTEN_PORT),
        m.held.ports,
        errno_text(failure)
    ));
    o.evidence(m.held_table.text());
    let table2 = m.tw_table.entries();
    let tw = ports::count_state(table2, state::TIME_WAIT);
    o.evidence(format!(
        "{} short connection(s) closed by the client from ports {:?} (tcp_tw_reuse=0, because the default 2 would let loopback connections reuse a TIME_WAIT after tcp_tw_reuse_delay); next connect(): {}; {}",
        m.filled.ports.len(),
        m.filled.ports,
        errno_text(tw_failure),
        m.filled.settled_text()
    ));
    o.evidence(m.tw_table.text());

    let e99 = Some(Errno::EADDRNOTAVAIL);
    o.claimed.errno = Some(Errno::EADDRNOTAVAIL as i32);
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some(format!("{usable} connections, then errno 99")),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: errno_figure(failure),
        value: Some(format!("{} connections", m.held.ports.len())),
        ..Figures::default()
    };
    check_eq(
        &mut o,
        Against::Statement,
        "errno of connect() with every port ESTABLISHED",
        e99,
        failure,
    );
    check_eq(
        &mut o,
        Against::Statement,
        "errno of connect() with every port in TIME_WAIT",
        e99,
        tw_failure,
    );
    check_eq(
        &mut o,
        Against::Model,
        "connections before the failure",
        usable,
        m.held.ports.len(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "ESTABLISHED client sockets",
        usable,
        m.held_table
            .entries()
            .iter()
            .filter(|e| e.state == state::ESTABLISHED && e.remote.port() == LISTEN_PORT)
            .count(),
    );
    check_eq(&mut o, Against::Model, "errno (held)", e99, failure);
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets before the failure",
        m.tw_range.usable,
        tw,
    );
    check_eq(&mut o, Against::Model, "errno (TIME_WAIT)", e99, tw_failure);
    o
}

pub(super) const EXHAUSTION_ERRNO: Steps<AllPortsUsed> = Steps {
    measure: measure_exhaustion_errno,
    judge: judge_exhaustion_errno,
};

/// What `port.exhaustion-curl` measured: curl run with every port of the range held.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CurlWithoutPorts {
    /// The lab's namespace.
    lab: String,
    /// Its range in force.
    range: RangeInForce,
    /// The connections held, and the in-repo client's next connect().
    held: Held,
    /// The installed curl's version.
    version: Option<String>,
    /// curl's run.
    run: ToolRun,
}

/// `port.exhaustion-curl`, measured: every port held, then one curl.
fn measure_exhaustion_curl(_ctx: &Ctx) -> Result<Observation<CurlWithoutPorts>> {
    let lab = or_na!(held_lab(SMALL_RANGE)?);
    let url = format!("http://{}/", loopback(LISTEN_PORT));
    let cmd = ToolCommand::new("curl", Duration::from_secs(15)).args([
        "-sS",
        "-v",
        "--max-time",
        "10",
        url.as_str(),
    ]);
    let run = run_tool(&lab.ns, &cmd, LISTEN_PORT)?;
    Ok(Observation::Observed(CurlWithoutPorts {
        lab: lab.ns.name().to_owned(),
        held: Held::of(&lab.ex),
        range: lab.range,
        version: version_of("curl"),
        run,
    }))
}

/// `port.exhaustion-curl`, judged: exit 7, the errno's message in the trace, no SYN.
fn judge_exhaustion_curl(m: &CurlWithoutPorts, _ctx: &Ctx) -> Outcome {
    let run = &m.run;
    let mut o = Outcome::default();
    o.evidence(m.range.describe());
    o.evidence(format!(
        "held {} connection(s) from ports {:?}; the in-repo client's next connect(): {}",
        m.held.ports.len(),
        m.held.ports,
        errno_text(m.held.failure())
    ));
    version_line(&mut o, "curl", m.version.as_deref());
    o.evidence(tool_evidence(run));

    let text = run.output.combined();
    let code = run.output.exit_code();
    // libcurl maps every connect() failure other than a timeout to CURLE_COULDNT_CONNECT
    // (7); its verbose trace names the errno with strerror().
    let expected_code = 7;
    let strerror = Errno::EADDRNOTAVAIL.desc();
    o.claimed.exit_code = Some(7);
    o.expected = Figures {
        exit_code: Some(expected_code),
        value: Some(format!("Failed to connect …; verbose: {strerror}")),
        ..Figures::default()
    };
    o.observed = tool_figures(run);
    check_eq(&mut o, Against::Statement, "curl exit code", Some(7), code);
    check_eq(
        &mut o,
        Against::Model,
        "curl exit code",
        Some(expected_code),
        code,
    );
    check_eq(
        &mut o,
        Against::Model,
        "ports held before curl",
        m.range.usable,
        m.held.ports.len(),
    );
    o.model_check(
        "curl message",
        "contains \"Failed to connect\"",
        format!("{:?}", o.observed.value.clone().unwrap_or_default()),
        text.contains("Failed to connect"),
    );
    o.model_check(
        "curl verbose trace names the errno",
        format!("contains {strerror:?}"),
        text.lines()
            .find(|l| l.contains(strerror))
            .unwrap_or("(absent)")
            .trim()
            .to_owned(),
        text.contains(strerror),
    );
    check_eq(
        &mut o,
        Against::Model,
        "SYNs on the wire (connect() fails before sending one)",
        0,
        run.syn_times.len(),
    );
    o
}

pub(super) const EXHAUSTION_CURL: Steps<CurlWithoutPorts> = Steps {
    measure: measure_exhaustion_curl,
    judge: judge_exhaustion_curl,
};
