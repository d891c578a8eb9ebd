//! SYN retransmission and the connect timeout (seed 002, and the kernel parts of seed 000):
//! the claims that need a procedure of their own. The rest of the topic is data, in
//! `suites/claims/syn.toml`.
//!
//! `syn.drop-rule` compares a lab with the DROP rule against a control lab without it;
//! `syn.invisible-to-strace` reads an strace of the tool beside the wire.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::client::{self, ConnectResult};
use netclaim_harness::capture::{self, TcpEvent};
use netclaim_harness::command::ToolCommand;
use netclaim_harness::model::SynModel;
use netclaim_harness::sysctl::knob;
use netclaim_harness::NetNs;
use netclaim_lab::{kind, Lab};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::seeds;
use crate::claim::{Checked, Claim, Ctx, Figures, Needs, Observation, Outcome, Procedure, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::timing::check_schedule;
use crate::judge::tool::{tool_evidence, tool_figures};
use crate::measure::labs::{model_in, DROPPED_PORT};
use crate::measure::tool::run_tool;
use crate::record::attempt::Attempt;
use crate::record::tool::ToolRun;
use crate::recording::too_many_syns;
use crate::text::describe_model;

/// A lab where SYNs to 127.0.0.1:[`DROPPED_PORT`] are dropped, with
/// tcp_syn_retries=1 (a give-up after 3 s).
fn syn_drop_lab() -> netclaim_lab::Result<Lab> {
    Lab::builder()
        .sysctl(knob::TCP_SYN_RETRIES, 1)
        .serve(kind::DropSyn, DROPPED_PORT)
        .build()
}

/// The errno of a failed connect, `None` when it connected or timed out in poll().
fn errno_of(r: ConnectResult) -> Option<Errno> {
    match r {
        ConnectResult::Failed(e) => Some(e),
        _ => None,
    }
}

/// What `syn.drop-rule` measured: a blocking connect() to the same closed port in a
/// control lab without the DROP rule and in a lab with it.
#[derive(Debug, Serialize, Deserialize)]
struct DropRule {
    /// The control namespace (no rule).
    control: String,
    /// How the connect() in the control lab ended.
    refused: ConnectResult,
    /// How long it took.
    refused_took: Duration,
    /// The handshake packets of the control lab.
    control_events: Vec<TcpEvent>,
    /// The namespace with the rule.
    lab: String,
    /// Its filter table, as `iptables -S` lists it.
    rules: Vec<String>,
    /// The SYN sysctls in force there.
    model: SynModel,
    /// How the connect() with the rule ended.
    dropped: ConnectResult,
    /// How long it took.
    dropped_took: Duration,
    /// The handshake packets of the lab with the rule.
    events: Vec<TcpEvent>,
    /// The attempt with the rule, with this machine's timer lateness while it ran.
    m: Attempt,
}

/// `syn.drop-rule`, measured: connect() without the rule, then with it.
fn measure_drop_rule(_ctx: &Ctx) -> Result<Observation<DropRule>> {
    let control = NetNs::new()?;
    control.set_tcp_syn_retries(1)?;
    let target = SocketAddrV4::new([127, 0, 0, 1].into(), DROPPED_PORT);
    let cap = control.capture_tcp(target.port())?;
    let refused = client::connect_blocking(&control, target)?;
    let control_events = cap.finish()?;

    let lab = syn_drop_lab()?;
    let rules = lab.ns().iptables_rules("filter")?;
    let model = model_in(lab.ns())?;
    let cap = lab.ns().capture_tcp(target.port())?;
    let capture_started = cap.started();
    let started = Instant::now();
    let dropped = client::connect_blocking(lab.ns(), target)?;
    let ended = Instant::now();
    let events = cap.finish()?;
    // Reads the timer probe over the attempt: here, while the instants mean something.
    let m = Attempt::client(&events, target.port(), capture_started, started, ended);
    Ok(Observation::Observed(DropRule {
        control: control.name().to_owned(),
        refused: refused.result,
        refused_took: refused.duration,
        control_events,
        lab: lab.ns().name().to_owned(),
        rules,
        model,
        dropped: dropped.result,
        dropped_took: dropped.duration,
        events,
        m,
    }))
}

/// `syn.drop-rule`, judged: the DROP rule turns a closed loopback port (RST,
/// ECONNREFUSED at once) into an unreachable one (no answer, ETIMEDOUT after the
/// retries).
fn judge_drop_rule(d: &DropRule, ctx: &Ctx) -> Outcome {
    let schedule = d.model.schedule();
    let m = &d.m;
    let syns = m.syn_times();
    let answered = d
        .events
        .iter()
        .any(|e| e.flags.is_rst() || e.flags.is_syn_ack());
    let dropped_errno = errno_of(d.dropped);

    let mut o = Outcome::default();
    o.claimed.errno = Some(Errno::ETIMEDOUT as i32);
    o.expected = Figures::default()
        .duration(schedule.give_up)
        .syn_times(&schedule.send_times);
    o.expected.errno = Some(Errno::ETIMEDOUT as i32);
    o.observed = Figures::default().duration(m.took()).syn_times(&syns);
    o.observed.errno = dropped_errno.map(|e| e as i32);
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
        dropped_errno,
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno without the rule (closed port answers RST)",
        Some(Errno::ECONNREFUSED),
        errno_of(d.refused),
    );
    check_schedule(&mut o, Against::Model, &schedule, m, ctx, Duration::ZERO);
    o.evidence(format!(
        "in force in {}: {}",
        d.lab,
        describe_model(&d.model)
    ));
    o.evidence(format!("rules in {}:\n{}", d.lab, d.rules.join("\n")));
    o.evidence(format!(
        "without the rule ({}): {:?} after {:.3} ms\n{}",
        d.control,
        d.refused,
        d.refused_took.as_secs_f64() * 1000.0,
        capture::timeline(&d.control_events)
    ));
    o.evidence(format!(
        "with the rule: {:?} after {:.3} s\n{}",
        d.dropped,
        d.dropped_took.as_secs_f64(),
        capture::timeline(&d.events)
    ));
    o
}

/// `syn.drop-rule` in two steps, its record checked first: the retries it sets in force,
/// no more SYNs than they allow, the attempt's SYNs those on the wire.
const DROP_RULE: Checked<DropRule> = Checked {
    steps: Steps {
        measure: measure_drop_rule,
        judge: judge_drop_rule,
    },
    check: drop_rule_inconsistencies,
};

fn drop_rule_inconsistencies(d: &DropRule, _ctx: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    if d.model.syn_retries != 1 {
        out.push(format!(
            "the claim sets tcp_syn_retries=1; the record shows {} in force",
            d.model.syn_retries
        ));
    }
    let on_wire = crate::recording::syns_to(&d.events, DROPPED_PORT);
    out.extend(too_many_syns("with the rule", &d.model, on_wire));
    if d.m.syn_times_us.len() != on_wire {
        out.push(format!(
            "with the rule: the attempt has {} SYNs, the wire {on_wire}",
            d.m.syn_times_us.len()
        ));
    }
    out
}

/// What `syn.invisible-to-strace` measured: telnet under `strace -e trace=connect`
/// against the dropped port, with the wire beside it.
#[derive(Debug, Serialize, Deserialize)]
struct StraceRun {
    /// The lab's namespace.
    lab: String,
    /// The SYN sysctls in force there.
    model: SynModel,
    /// What strace wrote.
    trace: String,
    /// The strace (and telnet) run, with its packets.
    run: ToolRun,
}

/// `syn.invisible-to-strace`, measured: strace of telnet's connect() beside a capture.
fn measure_invisible_to_strace(_ctx: &Ctx) -> Result<Observation<StraceRun>> {
    let lab = syn_drop_lab()?;
    let target = lab.addr(DROPPED_PORT);
    let model = model_in(lab.ns())?;
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
        target.ip().to_string(),
        target.port().to_string(),
    ]);
    let run = run_tool(lab.ns(), &cmd, target.port())?;
    let text =
        std::fs::read_to_string(&trace).with_context(|| format!("reading {}", trace.display()))?;
    Ok(Observation::Observed(StraceRun {
        lab: lab.ns().name().to_owned(),
        model,
        trace: text,
        run,
    }))
}

/// `syn.invisible-to-strace`, judged: one connect() system call, several SYNs on the wire.
fn judge_invisible_to_strace(m: &StraceRun, _ctx: &Ctx) -> Outcome {
    let schedule = m.model.schedule();
    let run = &m.run;
    let text = &m.trace;
    let inet_connects: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("connect(") && l.contains("AF_INET"))
        .collect();
    let mut o = Outcome {
        observed: tool_figures(run),
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
        m.lab,
        describe_model(&m.model)
    ));
    o.evidence(format!("strace -e trace=connect:\n{text}"));
    o.evidence(tool_evidence(run));
    o
}

/// `syn.invisible-to-strace` in two steps.
const INVISIBLE_TO_STRACE: Steps<StraceRun> = Steps {
    measure: measure_invisible_to_strace,
    judge: judge_invisible_to_strace,
};

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
            run: Procedure::Rust(&DROP_RULE),
        },
        Claim {
            id: "syn.invisible-to-strace",
            source: seeds::TOOLS,
            statement: "SYN retransmissions happen inside one blocked connect() call: strace shows a single call, only the wire shows the retries.",
            lab: drop_lab,
            action: "strace -f -e trace=connect telnet 127.0.0.1 7, tcp_syn_retries=1, with an in-process capture",
            needs: with(&["iptables", "telnet", "strace"]),
            estimate: 4 * S,
            run: Procedure::Rust(&INVISIBLE_TO_STRACE),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::testing::ctx;
    use crate::Verdict;

    /// A drop-rule measurement as the lab would record it: 3 SYNs at 0, 1, 3 s and a
    /// give-up at 6 s with `tcp_syn_retries=1` (the schedule), the control refused.
    fn drop_rule(dropped: ConnectResult) -> DropRule {
        let model = SynModel::new(1, None);
        let s = model.schedule();
        DropRule {
            control: "ctl".into(),
            refused: ConnectResult::Failed(Errno::ECONNREFUSED),
            refused_took: Duration::from_micros(80),
            control_events: Vec::new(),
            lab: "lab".into(),
            rules: vec!["-P INPUT ACCEPT".into()],
            model,
            dropped,
            dropped_took: s.give_up,
            events: Vec::new(),
            m: Attempt {
                syn_times_us: s.send_times.iter().map(|t| t.as_micros() as u64).collect(),
                first_packet_us: Some(50),
                duration_us: s.give_up.as_micros() as u64 + 50,
                tool: false,
                syn_late_us: vec![0; s.send_times.len()],
                late_us: 0,
            },
        }
    }

    #[test]
    fn a_timed_out_connect_with_the_rule_holds() {
        let o = judge_drop_rule(&drop_rule(ConnectResult::Failed(Errno::ETIMEDOUT)), &ctx());
        assert_eq!(o.verdict(), Verdict::Holds, "{}", o.reason());
        assert!(o.model_agrees(), "{:?}", o.model_checks);
        let c = &o.claim_checks[1];
        assert_eq!(c.what, "errno with the rule");
        assert_eq!(c.observed, "ETIMEDOUT (110)");
    }

    #[test]
    fn a_refused_connect_with_the_rule_is_refuted() {
        let o = judge_drop_rule(
            &drop_rule(ConnectResult::Failed(Errno::ECONNREFUSED)),
            &ctx(),
        );
        assert_eq!(o.verdict(), Verdict::Refuted);
        assert!(o.reason().contains("errno with the rule"), "{}", o.reason());
    }

    #[test]
    fn one_connect_in_the_trace_and_the_predicted_syns_hold() {
        // With the linear timeouts of Linux 6.5+ (4 by default), as on the lab kernel.
        let model = SynModel::new(1, Some(4));
        let syn_times = model.schedule().send_times;
        assert!(syn_times.len() > 1);
        let run: ToolRun = serde_json::from_value(serde_json::json!({
            "output": {
                "command_line": "strace -f -e trace=connect telnet 127.0.0.1 7",
                "netns": "lab",
                "status": 1 << 8,
                "stdout": "",
                "stderr": "telnet: Unable to connect to remote host: Connection timed out\n",
                "duration": {"secs": 3, "nanos": 0},
                "timed_out": false
            },
            "events": [],
            "syn_times": syn_times,
            "measurement": Attempt::default()
        }))
        .expect("a recorded tool run");
        let m = StraceRun {
            lab: "lab".into(),
            model,
            trace:
                "123 connect(3, {sa_family=AF_INET, sin_port=htons(7), \
                    sin_addr=inet_addr(\"127.0.0.1\")}, 16) = -1 ETIMEDOUT (Connection timed out)\n"
                    .into(),
            run,
        };
        let o = judge_invisible_to_strace(&m, &ctx());
        assert_eq!(o.verdict(), Verdict::Holds, "{}", o.reason());
        assert!(o.model_agrees(), "{:?}", o.model_checks);
        assert_eq!(o.claim_checks[0].observed, "1");
    }
}
