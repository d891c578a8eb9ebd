//! `sysctl.writes-proc`: `sysctl -w` writes the file under /proc/sys/net/… and takes effect

//! at once for new sockets.

use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, Listener};
use netclaim_harness::command::{which, CommandOutput, ToolCommand};
use netclaim_harness::sysctl::knob;
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{errno_text, loopback, Held, LISTEN_PORT};
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::models::ports::usable_ports;

/// The range `sysctl.writes-proc` sets.
const NEW: (u16, u16) = (40000, 40001);

/// What `sysctl.writes-proc` measured: `sysctl -w` (under strace when there is one), the
/// value before and after, and the connections that followed.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SysctlWrite {
    /// The lab's namespace.
    lab: String,
    /// `ip_local_port_range` before.
    before: String,
    /// Whether sysctl ran under strace.
    traced: bool,
    /// The run.
    run: CommandOutput,
    /// `ip_local_port_range` read back from /proc/sys after.
    after: String,
    /// New connections until the range was used up.
    held: Held,
}

/// `sysctl.writes-proc`, measured: `sysctl -w`, then connections until the new range is
/// used up.
fn measure_writes_proc(_ctx: &Ctx) -> Result<Observation<SysctlWrite>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let before = ns.sysctl(knob::IP_LOCAL_PORT_RANGE)?;
    let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding")?;
    let assignment = format!("{}={} {}", knob::IP_LOCAL_PORT_RANGE, NEW.0, NEW.1);
    let traced = which("strace").is_some();
    let cmd = if traced {
        ToolCommand::new("strace", Duration::from_secs(10)).args([
            "-e",
            "trace=openat,write",
            "sysctl",
            "-w",
            assignment.as_str(),
        ])
    } else {
        ToolCommand::new("sysctl", Duration::from_secs(10)).args(["-w", assignment.as_str()])
    };
    let run = ns.run_command(&cmd).context("running sysctl -w")?;
    let after = ns.sysctl(knob::IP_LOCAL_PORT_RANGE)?;
    let (_, usable) = usable_ports(NEW.0, NEW.1, "");
    let ex = ports::hold_connections(&ns, listener.addr(), usable + 2)?;
    Ok(Observation::Observed(SysctlWrite {
        lab: ns.name().to_owned(),
        before,
        traced,
        run,
        after,
        held: Held::of(&ex),
    }))
}

/// `sysctl.writes-proc`, judged: the /proc/sys write (when traced) and the new range in
/// force for the next connections.
fn judge_writes_proc(m: &SysctlWrite, _ctx: &Ctx) -> Outcome {
    let (run, after, held) = (&m.run, &m.after, &m.held);
    let (_, usable) = usable_ports(NEW.0, NEW.1, "");
    let mut o = Outcome::default();
    o.evidence(format!(
        "before: {} = {}",
        knob::IP_LOCAL_PORT_RANGE,
        m.before
    ));
    let relevant: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| {
            l.contains("/proc/sys") || (l.starts_with("write(") && l.contains(&NEW.0.to_string()))
        })
        .collect();
    o.evidence(format!(
        "command: {} (in netns {})\nexit code {:?} after {:.3} s\n--- stdout ---\n{}\n--- strace: /proc/sys opens and writes of the value ---\n{}",
        run.command_line,
        run.netns,
        run.exit_code(),
        run.duration.as_secs_f64(),
        run.stdout.trim_end(),
        if relevant.is_empty() { "(none)".to_owned() } else { relevant.join("\n") }
    ));
    o.evidence(format!(
        "after (read from /proc/sys in {}): {after}; new connections from ports {:?}, then {}",
        m.lab,
        held.ports,
        errno_text(held.failure())
    ));
    let proc_path = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = run.combined();
    let expected_line = format!("{} = {} {}", knob::IP_LOCAL_PORT_RANGE, NEW.0, NEW.1);
    let in_range = !held.ports.is_empty() && held.ports.iter().all(|p| (NEW.0..=NEW.1).contains(p));
    o.claimed.value = Some(format!(
        "writes {proc_path}; new sockets use {}-{} at once",
        NEW.0, NEW.1
    ));
    o.expected = Figures {
        exit_code: Some(0),
        value: Some(format!(
            "{usable} connections from ports {}-{}",
            NEW.0, NEW.1
        )),
        ..Figures::default()
    };
    o.observed = Figures {
        exit_code: run.exit_code(),
        value: Some(format!("ports {:?}", held.ports)),
        ..Figures::default()
    };
    o.claim_check(
        "first new connections after sysctl -w use the new range",
        format!("ports in {}-{}", NEW.0, NEW.1),
        format!("{:?}", held.ports),
        in_range && *after == format!("{} {}", NEW.0, NEW.1),
    );
    if m.traced {
        o.claim_check(
            "sysctl -w opens the /proc/sys file for writing",
            format!("openat(… \"{proc_path}\", O_WRONLY …)"),
            text.lines()
                .find(|l| l.contains(proc_path))
                .unwrap_or("(absent)")
                .to_owned(),
            text.lines()
                .any(|l| l.contains(proc_path) && l.contains("O_WRONLY")),
        );
    }
    check_eq(
        &mut o,
        Against::Model,
        "sysctl exit code",
        Some(0),
        run.exit_code(),
    );
    o.model_check(
        "sysctl prints the new value",
        format!("{expected_line:?}"),
        format!("{:?}", run.stdout.trim()),
        run.stdout.contains(&expected_line),
    );
    check_eq(
        &mut o,
        Against::Model,
        "value read back",
        format!("{} {}", NEW.0, NEW.1),
        after.clone(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "connections in the new range",
        usable,
        held.ports.len(),
    );
    o.model_check(
        "every port in the new range",
        format!("{}-{}", NEW.0, NEW.1),
        format!("{:?}", held.ports),
        in_range,
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno after the range is used up",
        Some(Errno::EADDRNOTAVAIL),
        held.failure(),
    );
    o
}

pub(super) const WRITES_PROC: Steps<SysctlWrite> = Steps {
    measure: measure_writes_proc,
    judge: judge_writes_proc,
};
