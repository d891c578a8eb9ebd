//! Running a claim file's action in a built lab (a command or an in-repo client) while
//! capturing its handshake packets, into a [`RunRecord`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::client::{self, ConnectResult};
use netclaim_harness::capture::{self, TcpEvent};
use netclaim_harness::command::ToolCommand;
use netclaim_harness::tmp::TempDir;

use crate::measure::attempt::first_syn_at;
use crate::measure::build::Built;
use crate::measure::connection;
use crate::measure::tool::ss_listener;
use crate::models::budget::{after_limit, command_timeout, fill_cap, fill_wait};
use crate::models::plan::plan;
use crate::record::attempt::Attempt;
use crate::record::connection::AfterRecord;
use crate::record::{substitute, RunRecord, Target};
use crate::spec::{ClaimSpec, Client, Server};
use crate::text::Shown;

/// One connection of a run, by source port.
struct Conn {
    /// Its first SYN, from the first SYN of all.
    start: Duration,
    /// Its SYNs.
    syns: usize,
    /// The client's FIN on it, from the first SYN of all.
    fin: Option<Duration>,
}

/// Per connection (by source port, in order of its first SYN): its first SYN, from the
/// first SYN of all, how many SYNs it sent, and when the client closed it.
fn connections(events: &[TcpEvent], port: u16) -> Vec<Conn> {
    let syns: Vec<&TcpEvent> = events
        .iter()
        .filter(|e| e.flags.is_syn() && e.icmp.is_none() && e.dst.port() == port)
        .collect();
    let first = syns.first().map(|e| e.at).unwrap_or_default();
    let mut seen: Vec<(u16, Conn)> = Vec::new();
    for e in syns {
        match seen.iter_mut().find(|(p, _)| *p == e.src.port()) {
            Some((_, c)) => c.syns += 1,
            None => seen.push((
                e.src.port(),
                Conn {
                    start: e.at - first,
                    syns: 1,
                    fin: None,
                },
            )),
        }
    }
    for (src, c) in &mut seen {
        c.fin = events
            .iter()
            .find(|e| e.flags.is_fin() && e.src.port() == *src && e.dst.port() == port)
            .map(|e| e.at.saturating_sub(first));
    }
    seen.into_iter().map(|(_, c)| c).collect()
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Runs the action in a built lab.
pub(crate) fn act(
    spec: &ClaimSpec,
    built: &Built,
    in_force: &BTreeMap<String, String>,
    dir: Option<&Path>,
) -> Result<RunRecord> {
    let run = spec.run.as_ref().context("a lab without an action")?;
    let after_client = matches!(
        run.client,
        Some(
            Client::Send
                | Client::Idle
                | Client::Close
                | Client::SynOnly
                | Client::Stream
                | Client::Bulk
        )
    );
    // Clients after the SYN and rejections need every segment (data, probes, ICMP).
    let every_segment = after_client || spec.lab.server == Server::Reject;
    let capture = match built.target.sock() {
        Some(addr) => Some(
            if every_segment {
                built.ns().capture_tcp_all(addr.port())
            } else {
                built.ns().capture_tcp(addr.port())
            }
            .context("starting the capture")?,
        ),
        None => None,
    };
    let capture_started = capture.as_ref().map(|c| c.started());
    // When the action began and ended, and whether it was a tool's spawn.
    let mut span: Option<(std::time::Instant, std::time::Instant, bool)> = None;
    let mut record = RunRecord::default();
    match (&run.command, run.client) {
        (Some(command), _) => {
            let argv: Vec<String> = command
                .iter()
                .map(|a| substitute(a, &built.target, dir))
                .collect();
            // Only when it ends is read (for the deadline), which the version does not change.
            let p = plan(spec, in_force, &argv, built.target.tcp(), None);
            let timeout = command_timeout(run, &p);
            record.timeout_us = Some(micros(timeout));
            let trace = run
                .trace_connect
                .then(|| TempDir::new("strace"))
                .transpose()?;
            let trace_file = trace.as_ref().map(|d| d.path().join("connect.txt"));
            let full: Vec<String> = match &trace_file {
                Some(f) => ["strace", "-f", "-e", "trace=connect", "-o"]
                    .into_iter()
                    .map(str::to_owned)
                    .chain([f.display().to_string(), "--".into()])
                    .chain(argv.iter().cloned())
                    .collect(),
                None => argv.clone(),
            };
            let mut cmd =
                ToolCommand::new(full[0].clone(), timeout).args(full[1..].iter().cloned());
            for (k, v) in &run.env {
                cmd = cmd.env(k.clone(), substitute(v, &built.target, dir));
            }
            if let Some(data) = &run.stdin {
                cmd = cmd.stdin(data.clone().into_bytes());
            }
            if !spec.lab.hosts.is_empty() {
                let ip = built
                    .target
                    .tcp()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
                for name in spec.lab.hosts.keys() {
                    hosts.push_str(&format!("{ip} {name}\n"));
                }
                cmd = cmd.etc_file("hosts", hosts);
            }
            let out = built
                .ns()
                .run_command(&cmd)
                .with_context(|| format!("running {}", cmd.command_line()))?;
            if let Some(f) = &trace_file {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                let port = built.target.tcp().map(|a| a.port()).unwrap_or(0);
                let calls: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        l.contains("connect(") && l.contains(&format!("sin_port=htons({port})"))
                    })
                    .collect();
                record.connect_calls = Some(calls.len());
                record.errno = calls.first().and_then(|l| {
                    l.split_whitespace()
                        .find(|w| w.starts_with('E'))
                        .and_then(crate::spec::errno_by_name)
                        .map(|e| e as i32)
                });
                record.evidence = format!("strace -e trace=connect:\n{}\n", text.trim_end());
            }
            span = Some((out.started, out.started + out.duration, true));
            record.command_line = out.command_line.clone();
            record.argv = argv;
            record.exit_code = out.exit_code();
            record.timed_out = out.timed_out;
            record.stdout = out.stdout.clone();
            record.stderr = out.stderr.clone();
            record.output_cut = out.stdout_cut + out.stderr_cut;
            record.duration_us = micros(out.duration);
            record.evidence.push_str(&out.to_string());
        }
        (
            None,
            Some(
                c @ (Client::Send
                | Client::Idle
                | Client::Close
                | Client::SynOnly
                | Client::Stream
                | Client::Bulk),
            ),
        ) => {
            let addr = built
                .target
                .sock()
                .context("the client needs a TCP target")?;
            let limit = after_limit(run, c, spec);
            let (errno, duration, what, after) =
                connection::act(c, spec, built.ns(), built.peer(), addr, limit)?;
            record.command_line = what;
            record.errno = errno.map(|e| e as i32);
            record.timeout_us = Some(micros(limit));
            // Neither the error nor the socket's end came before the limit: the harness
            // stopped waiting (a connect that failed has its errno).
            record.timed_out = !after.gone && errno.is_none();
            record.duration_us = micros(duration);
            record.evidence = format!(
                "{}: {} after {:.3} s; states seen: {:?}",
                record.command_line,
                errno.map_or("no error".to_owned(), |e| e.shown()),
                duration.as_secs_f64(),
                after.states
            );
            record.after = Some(after);
        }
        (None, Some(Client::Exchange)) => {
            let addr = built.target.sock().context("exchange needs a TCP target")?;
            let (duration, what, rec) =
                crate::measure::exchange::act(built.ns(), addr, &run.socket)?;
            record.command_line = what;
            record.duration_us = micros(duration);
            record.evidence = format!(
                "{}: {} exchanges in {:.3} s",
                record.command_line,
                rec.exchanges.len(),
                duration.as_secs_f64()
            );
            record.exchange = Some(rec);
        }
        (None, Some(Client::Connect)) => {
            let addr = built.target.sock().context("connect needs a TCP target")?;
            let opts = connection::sock_opts(&run.socket);
            let started = std::time::Instant::now();
            let o = netclaim_fixtures::conn::connect_with(built.ns(), addr, &opts)?;
            span = Some((started, std::time::Instant::now(), false));
            // The connection stays open (the capture running) while the peer may still
            // send: its SYN-ACK again when the final ACK was lost.
            if let (Some(hold), Some(_)) = (run.hold, &o.socket) {
                std::thread::sleep(hold.0);
            }
            record.command_line = format!(
                "blocking connect({addr}) from {}{}",
                built.ns().name(),
                if run.socket.is_empty() {
                    String::new()
                } else {
                    format!(" with {opts:?}")
                }
            );
            record.errno = o.errno().map(|e| e as i32);
            record.duration_us = micros(o.duration);
            record.evidence = format!(
                "{}: {:?} after {:.3} s",
                record.command_line,
                o.result,
                o.duration.as_secs_f64()
            );
            // What the wire says about a rejection (ICMP) is kept beside the record.
            if matches!(spec.lab.server, Server::Reject | Server::Unroutable) {
                record.after = Some(AfterRecord::default());
            }
        }
        (None, Some(Client::Fill)) => {
            let cap = fill_cap(spec, in_force);
            let started = std::time::Instant::now();
            let wait = fill_wait(spec);
            let filled = match &built.target {
                Target::Unix(path) => client::fill(cap, || {
                    client::unix_connect_nonblocking(built.ns(), path, wait)
                }),
                Target::Tcp(addr) => {
                    client::fill(cap, || client::connect_nonblocking(built.ns(), *addr, wait))
                }
                Target::Tcp6(_) => anyhow::bail!("fill works on IPv4 and unix targets"),
            }
            .with_context(|| format!("filling the queue of {}", built.target.text()))?;
            record.command_line = format!(
                "nonblocking connect()s to {} until one fails (at most {cap})",
                built.target.text()
            );
            record.connections = Some(filled.held.len());
            record.connection_cap = Some(cap);
            record.errno = filled.stop.and_then(|r| match r {
                ConnectResult::Failed(e) => Some(e as i32),
                _ => None,
            });
            record.duration_us = micros(started.elapsed());
            // The kernel's own view of the queue, while it is full.
            let (args, col): (&[&str], usize) = match &built.target {
                Target::Unix(_) => (&["-xlnH"], 2),
                Target::Tcp(_) | Target::Tcp6(_) => (&["-ltnH"], 1),
            };
            let listener = built.target.text();
            let (queue, ss_text) = ss_listener(built.ns(), args, |l| l.contains(&listener), col)?;
            record.listener_queue = queue;
            let held = filled.held.len();
            drop(filled.held);
            record.evidence = format!(
                "{}: {held} completed; the next: {}\n{ss_text}",
                record.command_line,
                filled.stop.map_or_else(
                    || format!("none tried (the client's cap of {cap} reached)"),
                    |r| r.shown()
                )
            );
        }
        (None, Some(Client::Exhaust)) => {
            let addr = built.target.tcp().context("exhaust needs a TCP target")?;
            let started = std::time::Instant::now();
            let ex = netclaim_fixtures::ports::hold_connections(built.ns(), addr, 70_000)?;
            record.command_line =
                format!("blocking connect()s to {addr}, each held open, until one fails");
            record.connections = Some(ex.held.len());
            record.errno = ex.failure.map(|e| e as i32);
            record.duration_us = micros(started.elapsed());
            record.evidence = format!(
                "{}: {} held from ports {:?}; the next: {}",
                record.command_line,
                ex.held.len(),
                ex.ports,
                ex.failure.shown()
            );
        }
        (None, None) => anyhow::bail!("a run with neither command nor client"),
    }
    if let (Some(cap), Some(addr)) = (capture, built.target.sock()) {
        let events = cap.finish().context("finishing the capture")?;
        if let Some(after) = &mut record.after {
            connection::from_wire(run.client, after, &events, addr.port(), capture_started);
            // The kernel's timer starts later than the client's clock (the ACK of a FIN,
            // the last packet received): the duration is counted from there.
            // close(): the FIN_WAIT_2 timer as the kernel armed it, not when a polling
            // thread (late under load) saw the socket gone.
            if let Some(armed) = after.armed_end_us {
                record.evidence.push_str(&format!(
                    "\nFIN_WAIT_2 timer due {:.3} s after close() (sock_diag idiag_expires); seen gone after {:.3} s",
                    armed as f64 / 1e6,
                    record.duration_us as f64 / 1e6
                ));
                record.duration_us = armed;
            }
            if let Some(later) = after.starts_after_us {
                record.duration_us = record.duration_us.saturating_sub(later);
            }
        }
        record.syn_times_us = capture::syn_times(&events, addr.port())
            .into_iter()
            .map(micros)
            .collect();
        let conns = connections(&events, addr.port());
        record.conn_starts_us = conns.iter().map(|c| micros(c.start)).collect();
        record.conn_syns = conns.iter().map(|c| c.syns).collect();
        record.conn_fins_us = conns.iter().map(|c| c.fin.map(micros)).collect();
        if let (Some((started, ended, tool)), Some(cap_started)) = (span, capture_started) {
            let first = first_syn_at(&events, addr.port(), cap_started);
            record.timed = Some(Attempt::record(
                &capture::syn_times(&events, addr.port()),
                first,
                started,
                ended,
                tool,
            ));
            if let (Some(f), Some(Some(fin))) = (first, record.conn_fins_us.first()) {
                let at = f + Duration::from_micros(*fin);
                record.fin_late_us = Some(micros(netclaim_harness::slowness::late_between(f, at)));
            }
        }
        record.syn_acks = events
            .iter()
            .filter(|e| e.flags.is_syn_ack() && e.icmp.is_none())
            .count();
        if let Some(first) = events
            .iter()
            .find(|e| e.flags.is_syn() && e.dst.port() == addr.port())
        {
            record.synack_times_us = events
                .iter()
                .filter(|e| e.flags.is_syn_ack() && e.icmp.is_none() && e.src.port() == addr.port())
                .map(|e| micros(e.at.saturating_sub(first.at)))
                .collect();
        }
        record.rsts = events
            .iter()
            .filter(|e| e.flags.is_rst() && e.icmp.is_none())
            .count();
        record.evidence.push_str(&format!(
            "\n--- wire ---\n{}",
            if events.is_empty() {
                "(no handshake packets)".into()
            } else if run.client == Some(Client::Bulk) {
                connection::bulk_timeline(&events, addr.port())
            } else {
                capture::timeline(&events)
            }
        ));
    }
    Ok(record)
}
