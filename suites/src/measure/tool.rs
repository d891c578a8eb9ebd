//! Running a tool in a lab while capturing its packets, and what else a measurement
//! asks of the host's tools (`ss`, versions).

use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_harness::capture::{self, TcpEvent, TcpFlags};
use netclaim_harness::command::ToolCommand;
use netclaim_harness::tolerance::TOOL_STARTUP;
use netclaim_harness::NetNs;

use crate::measure::attempt::{chain_lateness, first_syn_at};
use crate::record::attempt::{Attempt, Measured};
use crate::record::tool::ToolRun;

impl ToolRun {
    /// The run as one timer of the tool's that ends when it closes the connection to
    /// `port`: from its first SYN to its FIN, seen on the wire, so that its exit does not
    /// count; the tool may have armed the timer before the SYN (its start-up is the early
    /// error). Without a FIN, as [`Attempt::tool_timer`].
    pub fn until_close(&self, port: u16) -> Measured {
        let syn = self.first_to(port, TcpFlags::is_syn);
        match (syn, self.first_to(port, TcpFlags::is_fin)) {
            // The tool's work from its SYN to arming the timer counts as process work.
            (Some(s), Some(f)) => {
                let wire = self.between(s, f, None);
                let process = self.measurement.process_excess();
                Measured {
                    error: wire.error + process,
                    early_error: self.measurement.startup().unwrap_or_default(),
                    error_from: format!(
                        "{}; tool process work {} ms past the {} ms allowed",
                        wire.error_from,
                        process.as_millis(),
                        TOOL_STARTUP.as_millis()
                    ),
                    ..wire
                }
            }
            _ => self.measurement.tool_timer(),
        }
    }

    /// A span the tool spent waiting between two of its packets (`from` → `to`) on a
    /// timer it re-arms every `period` (one timer when `None`), measured on the wire:
    /// neither its start-up nor its exit is in it, nor process work worth counting. Its
    /// error is the probe's timer lateness, summed over the timers of the span.
    pub fn between(&self, from: &TcpEvent, to: &TcpEvent, period: Option<Duration>) -> Measured {
        let (a, b) = (self.capture_started + from.at, self.capture_started + to.at);
        let mut armed = vec![a];
        if let Some(p) = period.filter(|p| !p.is_zero()) {
            while let Some(next) = armed.last().map(|t| *t + p).filter(|t| *t < b) {
                armed.push(next);
            }
        }
        let late = chain_lateness(&armed, b);
        Measured {
            took: b.saturating_duration_since(a),
            error: late,
            early_error: Duration::ZERO,
            error_from: format!(
                "timers up to {} ms late over {} timer(s) (probe)",
                late.as_millis(),
                armed.len()
            ),
        }
    }
}

/// Runs `cmd` in `ns` while capturing handshake packets to `port`.
pub fn run_tool(ns: &NetNs, cmd: &ToolCommand, port: u16) -> Result<ToolRun> {
    let cap = ns.capture_tcp(port).context("starting the capture")?;
    let capture_started = cap.started();
    let output = ns
        .run_command(cmd)
        .with_context(|| format!("running {}", cmd.command_line()))?;
    let events = cap.finish().context("finishing the capture")?;
    let syn_times = capture::syn_times(&events, port);
    let first_packet = first_syn_at(&events, port, capture_started);
    let measurement = Attempt::record(
        &syn_times,
        first_packet,
        output.started,
        output.started + output.duration,
        true,
    );
    Ok(ToolRun {
        output,
        events,
        syn_times,
        measurement,
        capture_started,
    })
}

/// `ss` run inside `ns`; `(Recv-Q, Send-Q)` of the listener line that `pick` selects.
/// For a listener Recv-Q is the accept queue length and Send-Q the effective backlog.
pub fn ss_listener(
    ns: &NetNs,
    args: &[&str],
    pick: impl Fn(&str) -> bool,
    recv_q_col: usize,
) -> Result<(Option<(u32, u32)>, String)> {
    let cmd = ToolCommand::new("ss", Duration::from_secs(5)).args(args.iter().copied());
    let out = ns
        .run_command(&cmd)
        .with_context(|| format!("running {}", cmd.command_line()))?;
    let line = out.stdout.lines().find(|l| pick(l)).map(str::to_owned);
    let parsed = line.as_deref().and_then(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((
            f.get(recv_q_col)?.parse().ok()?,
            f.get(recv_q_col + 1)?.parse().ok()?,
        ))
    });
    Ok((
        parsed,
        format!("$ {}\n{}", cmd.command_line(), out.stdout.trim_end()),
    ))
}

/// The installed version of `program` (its `--version` line, or its package's version),
/// as a measurement records it.
pub fn version_of(program: &str) -> Option<String> {
    netclaim_harness::command::tool_version(program)
}
