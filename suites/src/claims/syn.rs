//! SYN retransmission and the connect timeout (seed 002, and the kernel parts of seed 000):
//! the claims that need a procedure of their own. The rest of the topic is data, in
//! `suites/claims/syn.toml`.
//!
//! `syn.drop-rule` compares a lab with the DROP rule against a control lab without it;
//! `syn.invisible-to-strace` reads an strace of the tool beside the wire.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::client;
use netclaim_harness::capture;
use netclaim_harness::command::ToolCommand;
use netclaim_harness::sysctl::knob;
use netclaim_harness::NetNs;
use nix::errno::Errno;

use super::seeds;
use crate::claim::{Claim, Ctx, Figures, Needs, OneStep, Outcome, Procedure};
use crate::lab::{self, check_eq, check_schedule, Against, Measurement, SynDropLab};

const RETRIES_1: &[(&str, &str)] = &[(knob::TCP_SYN_RETRIES, "1")];

/// `syn.drop-rule`: the DROP rule turns a closed loopback port (RST, ECONNREFUSED at once)
/// into an unreachable one (no answer, ETIMEDOUT after the retries).
fn drop_rule(ctx: &Ctx) -> Result<Outcome> {
    let control = NetNs::new()?;
    control.set_tcp_syn_retries(1)?;
    let target = SocketAddrV4::new([127, 0, 0, 1].into(), lab::DROPPED_PORT);
    let cap = control.capture_tcp(target.port())?;
    let refused = client::connect_blocking(&control, target)?;
    let control_events = cap.finish()?;

    let lab = SynDropLab::new(RETRIES_1)?;
    let rules = lab.ns.iptables_rules("filter")?;
    let model = lab::model_in(&lab.ns)?;
    let schedule = model.schedule();
    let cap = lab.ns.capture_tcp(target.port())?;
    let capture_started = cap.started();
    let started = Instant::now();
    let dropped = client::connect_blocking(&lab.ns, target)?;
    let ended = Instant::now();
    let events = cap.finish()?;
    let m = Measurement::client(&events, target.port(), capture_started, started, ended);
    let syns = m.syn_times();
    let answered = events
        .iter()
        .any(|e| e.flags.is_rst() || e.flags.is_syn_ack());

    let mut o = Outcome::default();
    o.claimed.errno = Some(Errno::ETIMEDOUT as i32);
    o.expected = Figures::default()
        .duration(schedule.give_up)
        .syn_times(&schedule.send_times);
    o.expected.errno = Some(Errno::ETIMEDOUT as i32);
    o.observed = Figures::default().duration(m.took()).syn_times(&syns);
    o.observed.errno = dropped.errno().map(|e| e as i32);
    o.claim_check(
        "peer answers nothing (no RST, no SYN-ACK)",
        "no answer",
        if answered { "answered" } else { "no answer" },
        !answered,
    );
    check_eq(
        &mut o,
        Against::Statement,
        "errno with the rule",
        Some(Errno::ETIMEDOUT),
        dropped.errno(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno without the rule (closed port answers RST)",
        Some(Errno::ECONNREFUSED),
        refused.errno(),
    );
    check_schedule(&mut o, Against::Model, &schedule, &m, ctx, Duration::ZERO);
    o.evidence(format!(
        "in force in {}: {}",
        lab.ns.name(),
        lab::describe_model(&model)
    ));
    o.evidence(format!("rules in {}:\n{}", lab.ns.name(), rules.join("\n")));
    o.evidence(format!(
        "without the rule ({}): {:?} after {:.3} ms\n{}",
        control.name(),
        refused.result,
        refused.duration.as_secs_f64() * 1000.0,
        capture::timeline(&control_events)
    ));
    o.evidence(format!(
        "with the rule: {:?} after {:.3} s\n{}",
        dropped.result,
        dropped.duration.as_secs_f64(),
        capture::timeline(&events)
    ));
    Ok(o)
}

/// `syn.invisible-to-strace`: one connect() system call, several SYNs on the wire.
fn invisible_to_strace(_ctx: &Ctx) -> Result<Outcome> {
    let lab = SynDropLab::new(RETRIES_1)?;
    let model = lab::model_in(&lab.ns)?;
    let schedule = model.schedule();
    let deadline = schedule.give_up * 2 + Duration::from_secs(30);
    // Removed on drop, also when reading the trace fails.
    let dir = netclaim_harness::tmp::TempDir::new("strace")?;
    let trace = dir.path().join("connect.txt");
    let cmd = ToolCommand::new("strace", deadline).args([
        "-f".to_string(),
        "-e".into(),
        "trace=connect".into(),
        "-o".into(),
        trace.display().to_string(),
        "telnet".into(),
        lab.target.ip().to_string(),
        lab.target.port().to_string(),
    ]);
    let run = lab::run_tool(&lab.ns, &cmd, lab.target.port())?;
    let text =
        std::fs::read_to_string(&trace).with_context(|| format!("reading {}", trace.display()))?;
    let inet_connects: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("connect(") && l.contains("AF_INET"))
        .collect();
    let mut o = Outcome {
        observed: lab::tool_figures(&run),
        ..Outcome::default()
    };
    o.claimed.value = Some("1 connect() call, several SYNs".into());
    o.observed.value = Some(format!(
        "{} connect() call(s), {} SYNs",
        inet_connects.len(),
        run.syn_times.len()
    ));
    o.expected = Figures::default().syn_times(&schedule.send_times);
    o.expected.value = Some(format!(
        "1 connect() call(s), {} SYNs",
        schedule.syn_count()
    ));
    o.claim_check(
        "connect() calls seen by strace",
        1,
        inet_connects.len(),
        inet_connects.len() == 1,
    );
    o.claim_check(
        "SYNs seen on the wire",
        "more than 1",
        run.syn_times.len(),
        run.syn_times.len() > 1,
    );
    check_eq(
        &mut o,
        Against::Model,
        "connect() calls",
        1,
        inet_connects.len(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "SYN count",
        schedule.syn_count(),
        run.syn_times.len(),
    );
    o.model_check(
        "the one connect() fails with ETIMEDOUT",
        "ETIMEDOUT",
        inet_connects.first().copied().unwrap_or("(none)"),
        inet_connects
            .first()
            .is_some_and(|l| l.contains("ETIMEDOUT")),
    );
    o.evidence(format!(
        "in force in {}: {}",
        lab.ns.name(),
        lab::describe_model(&model)
    ));
    o.evidence(format!("strace -e trace=connect:\n{text}"));
    o.evidence(lab::tool_evidence(&run));
    Ok(o)
}

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    let drop_lab =
        "one namespace, iptables -A INPUT -p tcp --dport 7 --syn -j DROP, target 127.0.0.1:7";
    let client = Needs {
        tools: &["iptables"],
    };
    let with = |t: &'static [&'static str]| Needs { tools: t };
    vec![
        Claim {
            id: "syn.drop-rule",
            source: seeds::SYN_127,
            statement: "An iptables -A INPUT -p tcp --dport P --syn -j DROP rule makes a loopback port look like an unreachable peer: no answer, connect() times out instead of being refused.",
            lab: "a control namespace without the rule, and one with it; tcp_syn_retries=1",
            action: "blocking connect() to 127.0.0.1:7 in both",
            needs: client,
            estimate: 4 * S,
            run: Procedure::Rust(&OneStep(drop_rule)),
        },
        Claim {
            id: "syn.invisible-to-strace",
            source: seeds::TOOLS,
            statement: "SYN retransmissions happen inside one blocked connect() call: strace shows a single call, only the wire shows the retries.",
            lab: drop_lab,
            action: "strace -f -e trace=connect telnet 127.0.0.1 7, tcp_syn_retries=1, with an in-process capture",
            needs: with(&["iptables", "telnet", "strace"]),
            estimate: 4 * S,
            run: Procedure::Rust(&OneStep(invisible_to_strace)),
        },
    ]
}
