//! `nc.w-idle`: nc -w N connected to a silent server closes after N s idle.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::server::NoAcceptListener;
use netclaim_harness::command::ToolCommand;
use netclaim_harness::tolerance::tool_deadline_window;
use netclaim_harness::NetNs;
use serde::{Deserialize, Serialize};

use super::{check_contains, check_duration, last_line, line_with, margin};
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::timing::check_timing;
use crate::judge::tool::{tool_evidence, tool_figures, version_line};
use crate::measure::tool::{run_tool, version_of};
use crate::record::attempt::Measured;
use crate::record::tool::ToolRun;
use crate::text::secs;

/// The `-w` of `nc.w-idle`.
const NC_IDLE: Duration = Duration::from_secs(2);

/// What `nc.w-idle` measured: `nc -w 2` connected to a server that never sends, without
/// and with `-q 1`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct NcIdle {
    /// The lab's namespace.
    lab: String,
    /// Where the silent server listens.
    addr: SocketAddrV4,
    /// The installed nc's version.
    version: Option<String>,
    /// `nc -v -w 2`.
    run: ToolRun,
    /// The same with `-q 1`.
    run_q: ToolRun,
    /// `run` as nc's idle timer: from its SYN to its FIN, with this machine's timer
    /// lateness meanwhile.
    until_close: Measured,
}

/// `nc.w-idle`, measured: nc against the silent server, without and with `-q 1`.
fn measure_nc_w_idle(_ctx: &Ctx) -> Result<Observation<NcIdle>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let listener = NoAcceptListener::bind(&ns, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), 16)
        .context("binding the silent server")?;
    let addr = listener.addr();
    let option = NC_IDLE;
    let base = [
        "-v".to_string(),
        "-w".into(),
        "2".into(),
        addr.ip().to_string(),
        addr.port().to_string(),
    ];
    // stdin is /dev/null: at EOF at once, so only the connection can be idle.
    let plain = ToolCommand::new("nc", option + margin()).args(base.clone());
    // The same with "-q 1", which the man page says quits 1 s after EOF on stdin.
    let with_q = ToolCommand::new("nc", option + margin())
        .args(["-q", "1"])
        .args(base);
    let run = run_tool(&ns, &plain, addr.port())?;
    let run_q = run_tool(&ns, &with_q, addr.port())?;
    // nc closes the idle connection when -w expires: timed to its FIN, here, where the
    // timer probe covers the run.
    let until_close = run.until_close(addr.port());
    Ok(Observation::Observed(NcIdle {
        lab: ns.name().to_owned(),
        addr,
        version: version_of("nc"),
        run,
        run_q,
        until_close,
    }))
}

/// `nc.w-idle`, judged: the connection is established and closed after -w of idle.
fn judge_nc_w_idle(m: &NcIdle, _ctx: &Ctx) -> Outcome {
    let (addr, run, run_q) = (m.addr, &m.run, &m.run_q);
    let option = NC_IDLE;
    let out = run.output.combined();
    // The client's FIN, relative to its SYN: when nc closed the connection.
    let fin_after = |r: &ToolRun| -> Option<Duration> {
        let syn = r
            .events
            .iter()
            .find(|e| e.flags.is_syn() && e.dst.port() == addr.port())?;
        let fin = r.events.iter().find(|e| {
            e.flags.0 & netclaim_harness::capture::TcpFlags::FIN != 0
                && e.src.port() == syn.src.port()
                && e.dst.port() == addr.port()
        })?;
        Some(fin.at - syn.at)
    };
    let fin = fin_after(run);
    let fin_q = fin_after(run_q);

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: a listener on {addr} that never calls accept(): the kernel completes the \
         handshake, nothing is ever sent back",
        m.lab
    ));
    o.evidence(tool_evidence(run));
    o.evidence(format!(
        "with -q 1 (evidence only, not checked: the man page says -q quits N s after EOF on \
         stdin; compare the client FIN and the exit time below):\n{}",
        tool_evidence(run_q)
    ));
    o.evidence(format!(
        "client FIN after its SYN: without -q {:?}, with -q 1 {:?}",
        fin.map(secs),
        fin_q.map(secs)
    ));
    version_line(&mut o, "nc", m.version.as_deref());
    o.claimed = Figures::default().duration(option);
    o.expected = Figures {
        exit_code: Some(0),
        value: Some(format!(
            "Connection to {} {} port [tcp/*] succeeded!",
            addr.ip(),
            addr.port()
        )),
        ..Figures::default()
    }
    .duration(option);
    o.observed = tool_figures(run);
    o.observed.value = Some(format!(
        "{}; FIN after {}; with -q 1: {}, exit {:?}",
        line_with(&out, "succeeded").unwrap_or_else(|| last_line(&out)),
        fin.map_or("(none)".into(), secs),
        secs(run_q.took()),
        run_q.output.exit_code()
    ));

    check_contains(
        &mut o,
        Against::Statement,
        "the connection is established",
        &out,
        "succeeded!",
    );
    // nc closes the idle connection when -w expires: timed to its FIN.
    let took = m.until_close.clone();
    check_duration(
        &mut o,
        Against::Statement,
        "closes after -w of idle",
        option,
        &took,
    );
    check_duration(&mut o, Against::Model, "run time", option, &took);
    check_eq(
        &mut o,
        Against::Model,
        "exit code (silent close)",
        Some(0),
        run.output.exit_code(),
    );
    let fin_window = tool_deadline_window(option);
    match fin {
        // nc's timer, seen on the wire: the run's measured error applies to it.
        Some(d) => check_timing(
            &mut o,
            Against::Model,
            "client FIN on the wire, after its SYN",
            option,
            fin_window,
            &Measured { took: d, ..took },
        ),
        None => o.model_check(
            "client FIN on the wire, after its SYN",
            format!("{} within {fin_window}", secs(option)),
            "(no FIN)",
            false,
        ),
    }
    o
}

/// `nc.w-idle` in two steps.
pub(super) const NC_W_IDLE: Steps<NcIdle> = Steps {
    measure: measure_nc_w_idle,
    judge: judge_nc_w_idle,
};
