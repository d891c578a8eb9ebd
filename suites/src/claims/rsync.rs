//! rsync's two network timeouts (seed 000): `--contimeout`, an alarm(2) around the
//! connect to an rsync daemon, and `--timeout`, the I/O idle timeout checked after each
//! select(2) that returns nothing.
//!
//! The seed lists both in its table without measuring them; here each is measured with
//! the installed rsync. The prediction for `--timeout` follows rsync's `io.c`:
//! `set_io_timeout(N)` makes select(2) wait `s = min((N + 1) / 2, 60)` s at a time, and
//! `check_timeout()`, run after every empty select, compares `time(NULL)` in whole seconds
//! with the last I/O; when nothing was ever read, the first empty select only starts the
//! idle clock. A peer that never sends a byte therefore ends the run after
//! `s × (1 + ⌈N / s⌉)` s, not N s.

use std::net::SocketAddrV4;
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::server::NoAcceptListener;
use netclaim_harness::capture::TcpFlags;
use netclaim_harness::command::ToolCommand;
use netclaim_harness::tolerance::{tool_timer_window, TOOL_STARTUP};
use netclaim_harness::NetNs;

use serde::{Deserialize, Serialize};

use super::seeds;
use crate::claim::{
    Check, Checked, Claim, Ctx, Figures, Needs, Observation, Outcome, Procedure, Steps,
};
use crate::judge::checks::{check_eq, Against};
use crate::judge::timing::{check_timing, timing};
use crate::judge::tool::{tool_evidence, tool_figures, version_line};
use crate::measure::tool::{run_tool, version_of};
use crate::models::tools::rsync::RERR_TIMEOUT;
use crate::record::attempt::Measured;
use crate::record::tool::ToolRun;
use crate::text::secs;

/// The rsync daemon port.
const RSYNC_PORT: u16 = 873;
/// Loopback, where the labs put the daemon.
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
/// The module the lab's daemon exports.
const MODULE: &str = "netclaim";
/// The `--timeout` values the claim passes: 2 (the seed's style of small value) and 4,
/// where the difference between N and the real idle time is unambiguous.
const IO_TIMEOUTS_S: [u64; 2] = [2, 4];
/// rsync's `SELECT_TIMEOUT`: the longest single select(2) wait.
const SELECT_TIMEOUT_S: u64 = 60;

/// The last `rsync error: …` line of a run.
fn error_line(run: &ToolRun) -> Option<String> {
    run.output
        .combined()
        .lines()
        .rev()
        .find(|l| l.contains("rsync error:"))
        .map(|l| l.trim().to_owned())
}

/// rsync's select(2) period for `--timeout=n` (`set_io_timeout`).
fn select_period(n: u64) -> u64 {
    let lull = n.div_ceil(2);
    if lull > SELECT_TIMEOUT_S {
        SELECT_TIMEOUT_S
    } else {
        lull
    }
}

/// When rsync gives up on a peer that never sent a byte, with the idle seconds it
/// reports: the first empty select starts the idle clock, then whole periods until the
/// `time(NULL)` difference reaches `n`.
fn predicted_idle_exit(n: u64) -> (Duration, u64) {
    let s = select_period(n);
    let counted = s * n.div_ceil(s);
    (Duration::from_secs(s + counted), counted)
}

/// Whether the give-up may come one select period early: when the last select before
/// the predicted one ends just past a `time()` second boundary, the whole-second
/// difference can exceed the elapsed time by up to 1 s (a sub-millisecond coincidence).
fn may_end_one_period_early(n: u64) -> bool {
    let s = select_period(n);
    (n.div_ceil(s) - 1) * s + 1 >= n
}

/// The `N` of rsync's "io timeout after N seconds -- exiting".
fn reported_idle_seconds(text: &str) -> Option<u64> {
    let rest = text.split("io timeout after ").nth(1)?;
    let (n, tail) = rest.split_once(' ')?;
    tail.starts_with("seconds -- exiting")
        .then(|| n.parse().ok())
        .flatten()
}

/// What `rsync.timeout` measured: one rsync run per `--timeout` value against a peer that
/// completes the handshake and then never sends anything.
#[derive(Debug, Serialize, Deserialize)]
struct IdlePeer {
    /// The lab's namespace.
    lab: String,
    /// The installed rsync's version.
    version: Option<String>,
    /// One run per `--timeout` value.
    runs: Vec<IdleRun>,
}

/// One rsync run with `--timeout=N` and the idle span it measured.
#[derive(Debug, Serialize, Deserialize)]
struct IdleRun {
    /// N.
    seconds: u64,
    /// The run.
    run: ToolRun,
    /// From rsync's greeting to its FIN (its whole run without them), with its error.
    idle: Measured,
}

/// `rsync.timeout`, measured: rsync against the silent peer, once per `--timeout`.
fn measure_io_timeout(_ctx: &Ctx) -> Result<Observation<IdlePeer>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let target = SocketAddrV4::new(LOOPBACK.into(), RSYNC_PORT);
    let _listener = NoAcceptListener::bind(&ns, target, 16)
        .with_context(|| format!("binding the silent listener on {target}"))?;
    let mut runs = Vec::new();
    for n in IO_TIMEOUTS_S {
        let (predicted, _) = predicted_idle_exit(n);
        let cmd = ToolCommand::new("rsync", predicted + Duration::from_secs(20)).args([
            format!("--timeout={n}"),
            format!("rsync://127.0.0.1:{RSYNC_PORT}/{MODULE}/"),
        ]);
        let run = run_tool(&ns, &cmd, RSYNC_PORT)?;
        // rsync's idle clock starts after it sent its greeting (the client's first data)
        // and ends when it closes the connection (its FIN): timed there on the wire, so
        // that neither its start-up nor its exit counts. The timer error comes from this
        // machine's probe while the run went on, so it is taken here, with the run.
        let greeting = run.first_to(RSYNC_PORT, TcpFlags::is_push);
        let idle = match (greeting, run.first_to(RSYNC_PORT, TcpFlags::is_fin)) {
            // It wakes from select() every period: one timer each.
            (Some(g), Some(f)) => run.between(g, f, Some(Duration::from_secs(select_period(n)))),
            _ => run.measurement.tool_timer(),
        };
        runs.push(IdleRun {
            seconds: n,
            run,
            idle,
        });
    }
    Ok(Observation::Observed(IdlePeer {
        lab: ns.name().to_owned(),
        version: version_of("rsync"),
        runs,
    }))
}

/// `rsync.timeout`, judged: the stated N s, and the select-period model of `io.c`.
fn judge_io_timeout(m: &IdlePeer, _ctx: &Ctx) -> Outcome {
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: a listener on {} that never accepts: the kernel completes the handshake, \
         and no byte (not even the daemon's @RSYNCD greeting) ever arrives, so the \
         connection is idle from its first moment",
        m.lab,
        SocketAddrV4::new(LOOPBACK.into(), RSYNC_PORT)
    ));
    version_line(&mut o, "rsync", m.version.as_deref());
    let mut claimed = Vec::new();
    let mut expected = Vec::new();
    let mut observed = Vec::new();
    for IdleRun {
        seconds: n,
        run,
        idle: measured,
    } in &m.runs
    {
        let n = *n;
        let stated = Duration::from_secs(n);
        let (predicted, counted) = predicted_idle_exit(n);
        o.evidence(tool_evidence(run));
        let took = measured.took;
        let line = error_line(run).unwrap_or_default();
        claimed.push(format!("--timeout={n}: {}", secs(stated)));
        expected.push(format!(
            "--timeout={n}: {} (select every {} s), exit {RERR_TIMEOUT}",
            secs(predicted),
            select_period(n)
        ));
        observed.push(format!(
            "--timeout={n}: {}, exit {}",
            secs(took),
            run.output
                .exit_code()
                .map_or_else(|| "(signal)".into(), |c| c.to_string())
        ));
        if n == IO_TIMEOUTS_S[0] {
            // The duration is what was judged: from the greeting to the FIN.
            o.observed = tool_figures(run).duration(took);
            o.claimed = Figures::default().duration(stated);
            o.expected = Figures {
                exit_code: Some(RERR_TIMEOUT),
                ..Figures::default()
            }
            .duration(predicted);
        }

        // rsync counts idle time with time(): whole seconds, so up to 1 s late is still
        // "N s" by its own clock.
        let window = tool_timer_window(stated, Duration::from_secs(1) + TOOL_STARTUP);
        check_timing(
            &mut o,
            Against::Statement,
            &format!("--timeout={n}: ends after N s idle (rsync counts whole seconds)"),
            stated,
            window,
            measured,
        );
        let window = tool_timer_window(predicted, TOOL_STARTUP);
        let early = may_end_one_period_early(n).then(|| {
            tool_timer_window(
                predicted - Duration::from_secs(select_period(n)),
                TOOL_STARTUP,
            )
        });
        // Judged against whichever of the two windows the run came nearer.
        let nearest = [Some(window), early]
            .into_iter()
            .flatten()
            .map(|w| timing(w, took, measured))
            .min_by(|a, b| a.outside_ms().total_cmp(&b.outside_ms()));
        Against::Model.record_check(
            &mut o,
            Check {
                what: format!("--timeout={n}: ends after s × (1 + ⌈N/s⌉)"),
                expected: match early {
                    Some(e) => format!(
                        "{} within {window} (or, at a time() second edge, within {e})",
                        secs(predicted)
                    ),
                    None => format!("{} within {window}", secs(predicted)),
                },
                observed: secs(took),
                ok: window.contains(took) || early.is_some_and(|e| e.contains(took)),
                timing: nearest,
            },
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("--timeout={n}: exit code"),
            Some(RERR_TIMEOUT),
            run.output.exit_code(),
        );
        // The idle seconds rsync reports are a difference of time() values: a second
        // boundary crossed while the selects drift late (timer slack, a busy machine)
        // makes it one more than the whole periods counted.
        let text = run.output.combined();
        let reported = reported_idle_seconds(&text);
        o.model_check(
            &format!("--timeout={n}: messages"),
            format!(
                "\"io timeout after {counted} seconds -- exiting\" (or {} at a time() second \
                 edge) and \"rsync error: timeout in data send/receive (code {RERR_TIMEOUT})\"",
                counted + 1
            ),
            format!("{:?}", text.trim()),
            reported.is_some_and(|r| r == counted || r == counted + 1)
                && line.starts_with(&format!(
                    "rsync error: timeout in data send/receive (code {RERR_TIMEOUT})"
                )),
        );
        let handshake = run.events.iter().any(|e| e.flags.is_syn_ack());
        o.model_check(
            &format!("--timeout={n}: the TCP handshake completed (SYN-ACK seen)"),
            "true",
            handshake.to_string(),
            handshake,
        );
    }
    o.claimed.value = Some(claimed.join("; "));
    o.expected.value = Some(expected.join("; "));
    o.observed.value = Some(observed.join("; "));
    o
}

/// `rsync.timeout` in two steps, its record checked first: one run per `--timeout` the
/// claim gives, in its order.
const IO_TIMEOUT: Checked<IdlePeer> = Checked {
    steps: Steps {
        measure: measure_io_timeout,
        judge: judge_io_timeout,
    },
    check: io_timeout_inconsistencies,
};

fn io_timeout_inconsistencies(m: &IdlePeer, _ctx: &Ctx) -> Vec<String> {
    let ran: Vec<u64> = m.runs.iter().map(|r| r.seconds).collect();
    if ran == IO_TIMEOUTS_S {
        Vec::new()
    } else {
        vec![format!(
            "the claim runs rsync with --timeout {IO_TIMEOUTS_S:?}; the record has {ran:?}"
        )]
    }
}

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "rsync.timeout",
            source: seeds::TOOLS,
            statement: "rsync --timeout=N ends a connection on which no data has moved for N s (select(2)-based I/O idle timeout), exit code 30 \"timeout in data send/receive\".",
            lab: "one namespace with a listener on 127.0.0.1:873 that never accepts: the handshake completes and the peer stays silent (no @RSYNCD greeting), so the link is idle from the start. A stall in mid-transfer was not used: with the daemon's packets dropped the client's keep-alive writes still succeed and the give-up time was not repeatable",
            action: "rsync --timeout=2 rsync://127.0.0.1:873/netclaim/, then the same with --timeout=4",
            needs: Needs { tools: &["rsync"] },
            estimate: 10 * S,
            run: Procedure::Rust(&IO_TIMEOUT),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_idle_seconds_rsync_reports() {
        let text = "[Receiver] io timeout after 5 seconds -- exiting\n\
                    rsync error: timeout in data send/receive (code 30) at io.c(197)";
        assert_eq!(reported_idle_seconds(text), Some(5));
        assert_eq!(reported_idle_seconds("io timeout after x seconds"), None);
        assert_eq!(
            reported_idle_seconds("rsync: connection unexpectedly closed"),
            None
        );
    }

    #[test]
    fn idle_exit_follows_the_select_period() {
        // --timeout=4: select every 2 s; the first empty select starts the clock.
        assert_eq!(predicted_idle_exit(4), (Duration::from_secs(6), 4));
        // --timeout=2: select every 1 s.
        assert_eq!(predicted_idle_exit(2), (Duration::from_secs(3), 2));
        assert!(may_end_one_period_early(2));
        assert!(!may_end_one_period_early(4));
    }
}
