//! SYN retransmission and the connect timeout (seed 002, and the kernel parts of seed 000).
//!
//! Every claim here drops SYNs (an iptables rule on loopback, or a host that drops all
//! input), lets a client or a real tool connect, captures the SYNs in-process, and
//! compares the give-up time, the errno or exit code and the SYN schedule with two
//! schedules: the one the source states and the one the kernel timing model predicts
//! from the sysctls in force in the lab.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::client;
use netclaim_harness::capture;
use netclaim_harness::command::{tool_version, ToolCommand};
use netclaim_harness::model::{SynModel, SynSchedule};
use netclaim_harness::sysctl::knob;
use netclaim_harness::{Error as HarnessError, NetNs};
use nix::errno::Errno;

use super::seeds;
use crate::claim::{Claim, Ctx, Figures, Needs, Outcome, Verdict};
use crate::lab::{
    self, check_eq, check_schedule, check_timing, Against, BlackholeLab, Measurement, SynDropLab,
    TOOL_STARTUP,
};

/// Who connects.
#[derive(Debug, Clone, Copy)]
enum Actor {
    /// The in-repo blocking connect() client.
    Client,
    /// A real tool.
    Tool(Tool),
}

/// The tools whose connect failure the claims look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Telnet,
    Curl,
    Wget,
    Nc,
    Mysql,
}

impl Tool {
    fn program(self) -> &'static str {
        match self {
            Self::Telnet => "telnet",
            Self::Curl => "curl",
            Self::Wget => "wget",
            Self::Nc => "nc",
            Self::Mysql => "mysql",
        }
    }

    /// The command line; none of them sets a connect timeout shorter than the kernel's.
    fn command(self, target: SocketAddrV4, deadline: Duration) -> ToolCommand {
        let (ip, port) = (target.ip().to_string(), target.port().to_string());
        let url = format!("http://{target}/");
        let args: Vec<String> = match self {
            Self::Telnet => vec![ip, port],
            Self::Curl => vec!["-sS".into(), "--connect-timeout".into(), "999".into(), url],
            Self::Wget => vec![
                "--tries".into(),
                "1".into(),
                "--connect-timeout".into(),
                "999".into(),
                "-O".into(),
                "/dev/null".into(),
                url,
            ],
            Self::Nc => vec!["-v".into(), ip, port],
            Self::Mysql => vec![
                "--no-defaults".into(),
                "--protocol=TCP".into(),
                "-h".into(),
                ip,
                "-P".into(),
                port,
                "-u".into(),
                "netclaim".into(),
                "-e".into(),
                "SELECT 1".into(),
            ],
        };
        ToolCommand::new(self.program(), deadline).args(args)
    }

    /// What the tool does when connect() fails with `errno`: its exit code and a piece of
    /// the message it prints, from each tool's documented error handling.
    fn expected_failure(self, errno: Errno, target: SocketAddrV4) -> (i32, String) {
        let text = errno.desc().to_owned();
        match self {
            // telnet: "Unable to connect to remote host: <strerror>", exit 1.
            Self::Telnet => (1, format!("Unable to connect to remote host: {text}")),
            // curl ≥ 7.67.0 maps a connect ETIMEDOUT to CURLE_OPERATION_TIMEDOUT (28)
            // (curl PR #4462); older versions and other errnos give CURLE_COULDNT_CONNECT.
            Self::Curl => {
                let code = if errno == Errno::ETIMEDOUT && curl_at_least(7, 67) {
                    28
                } else {
                    7
                };
                (code, "Failed to connect".into())
            }
            // wget: exit 4 "network failure", message "failed: <strerror>."
            Self::Wget => (4, format!("failed: {text}.")),
            // OpenBSD nc -v: "connect to HOST port P (tcp) failed: <strerror>", exit 1.
            Self::Nc => (1, format!("failed: {text}")),
            // MySQL's client: connect() fails → ERROR 2003 "Can't connect to MySQL server on
            // 'HOST:PORT' (errno)". MariaDB's (Connector/C 3) connects nonblocking and
            // reports ERROR 2002 "Can't connect to server on 'HOST'" with the errno of the
            // initial connect(), EINPROGRESS (115).
            Self::Mysql => {
                let mariadb = super::mysql::is_mariadb();
                if mariadb {
                    (
                        1,
                        format!(
                            "ERROR 2002 (HY000): Can't connect to server on '{}' ({})",
                            target.ip(),
                            Errno::EINPROGRESS as i32
                        ),
                    )
                } else {
                    (
                        1,
                        format!(
                            "ERROR 2003 (HY000): Can't connect to MySQL server on '{}:{}' ({})",
                            target.ip(),
                            target.port(),
                            errno as i32
                        ),
                    )
                }
            }
        }
    }
}

/// Whether the installed curl is at least `major.minor`.
pub fn curl_at_least(major: u32, minor: u32) -> bool {
    tool_version("curl")
        .and_then(|v| {
            let mut parts = v.split_whitespace().nth(1)?.split('.');
            let ma: u32 = parts.next()?.parse().ok()?;
            let mi: u32 = parts.next()?.parse().ok()?;
            Some((ma, mi) >= (major, minor))
        })
        .unwrap_or(false)
}

/// What one connect attempt did.
struct Attempt {
    /// Its SYNs and when it began and ended.
    m: Measurement,
    errno: Option<Errno>,
    exit_code: Option<i32>,
    message: Option<String>,
    evidence: String,
}

/// A blocking connect() from the in-repo client to `target` in `ns`, captured.
fn client_attempt(ns: &NetNs, target: SocketAddrV4) -> Result<(client::ConnectOutcome, Attempt)> {
    let cap = ns.capture_tcp(target.port())?;
    let capture_started = cap.started();
    let started = Instant::now();
    let out = client::connect_blocking(ns, target)?;
    let ended = Instant::now();
    let events = cap.finish()?;
    let m = Measurement::client(&events, target.port(), capture_started, started, ended);
    let evidence = format!(
        "blocking connect({target}) from {}: {:?} after {:.3} s\n--- wire ---\n{}",
        ns.name(),
        out.result,
        out.duration.as_secs_f64(),
        capture::timeline(&events)
    );
    let a = Attempt {
        m,
        errno: out.errno(),
        exit_code: None,
        message: None,
        evidence,
    };
    Ok((out, a))
}

fn attempt(
    ns: &NetNs,
    target: SocketAddrV4,
    actor: Actor,
    schedule: &SynSchedule,
) -> Result<Attempt> {
    match actor {
        Actor::Client => Ok(client_attempt(ns, target)?.1),
        Actor::Tool(tool) => {
            let deadline = schedule.give_up * 2 + Duration::from_secs(30);
            let run = lab::run_tool(ns, &tool.command(target, deadline), target.port())?;
            let message = run.output.combined();
            Ok(Attempt {
                m: run.measurement.clone(),
                errno: None,
                exit_code: run.output.exit_code(),
                message: Some(message),
                evidence: lab::tool_evidence(&run),
            })
        }
    }
}

/// Which parts of the stated schedule the source actually states.
#[derive(Debug, Clone, Copy)]
enum Stated {
    /// Give-up time, SYN count and spacing.
    FullSchedule,
    /// Only the give-up time.
    GiveUpOnly,
}

/// The lab a give-up claim runs in.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// SYN DROP rule on loopback (seed 002).
    LoopbackDrop,
    /// A host on a veth that drops all input (seed 000).
    Blackhole,
}

struct GiveUpSpec {
    sysctls: &'static [(&'static str, &'static str)],
    /// Knobs that are only set where the kernel has them (tcp_syn_linear_timeouts).
    optional_sysctls: &'static [(&'static str, &'static str)],
    peer: Peer,
    actor: Actor,
    /// The schedule the source states (classic exponential backoff).
    stated: SynModel,
    stated_parts: Stated,
}

fn give_up_claim(ctx: &Ctx, spec: &GiveUpSpec) -> Result<Outcome> {
    let (ns, _keep, target) = match spec.peer {
        Peer::LoopbackDrop => {
            let lab = SynDropLab::new(spec.sysctls)?;
            let target = lab.target;
            (lab.ns, None, target)
        }
        Peer::Blackhole => {
            let lab = BlackholeLab::new(spec.sysctls)?;
            let target = SocketAddrV4::new(BlackholeLab::HOST, 80);
            (lab.client, Some(lab.host), target)
        }
    };
    let mut notes = Vec::new();
    for (name, value) in spec.optional_sysctls {
        match ns.set_sysctl(name, value) {
            Ok(()) => notes.push(format!("{name}={value}")),
            Err(HarnessError::SysctlAbsent { .. }) => notes.push(format!(
                "{name} is absent on this kernel: its classic behaviour applies"
            )),
            Err(e) => return Err(e).context("setting an optional sysctl"),
        }
    }
    let model = lab::model_in(&ns)?;
    let schedule = model.schedule();
    let stated = spec.stated.schedule();
    let startup = match spec.actor {
        Actor::Client => Duration::ZERO,
        Actor::Tool(_) => TOOL_STARTUP,
    };

    let a = attempt(&ns, target, spec.actor, &schedule)?;
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {} ({:?}), in force: {}{}",
        ns.name(),
        spec.peer,
        lab::describe_model(&model),
        if notes.is_empty() {
            String::new()
        } else {
            format!("; {}", notes.join("; "))
        }
    ));
    o.evidence(a.evidence.clone());

    o.claimed = Figures::default().duration(stated.give_up);
    o.expected = Figures::default()
        .duration(schedule.give_up)
        .syn_times(&schedule.send_times);
    o.observed = Figures::default()
        .duration(a.m.took())
        .syn_times(&a.m.syn_times);
    if matches!(spec.stated_parts, Stated::FullSchedule) {
        o.claimed = o.claimed.clone().syn_times(&stated.send_times);
    }

    // The statement.
    match spec.stated_parts {
        Stated::FullSchedule => {
            check_schedule(&mut o, Against::Statement, &stated, &a.m, ctx, startup)
        }
        Stated::GiveUpOnly => {
            // Judged with the slack of the timers this kernel really arms.
            let window = lab::give_up_window(stated.give_up, &schedule, ctx.hz, startup);
            check_timing(
                &mut o,
                Against::Statement,
                "give-up time",
                stated.give_up,
                window,
                &a.m.kernel_give_up(),
            );
        }
    }
    // The model.
    check_schedule(&mut o, Against::Model, &schedule, &a.m, ctx, startup);
    let who = match spec.actor {
        Actor::Client => "connect()".to_owned(),
        Actor::Tool(t) => t.program().to_owned(),
    };
    o.timelines.push(lab::timeline(
        &format!("{who}: {}", lab::describe_model(&model)),
        &a.m.syn_times,
        &schedule,
        Some(a.m.took()),
    ));

    match spec.actor {
        Actor::Client => {
            let errno = a.errno.map(|e| e as i32);
            o.observed.errno = errno;
            o.expected.errno = Some(Errno::ETIMEDOUT as i32);
            o.claimed.errno = Some(Errno::ETIMEDOUT as i32);
            check_eq(
                &mut o,
                Against::Statement,
                "errno",
                Some(Errno::ETIMEDOUT),
                a.errno,
            );
            check_eq(
                &mut o,
                Against::Model,
                "errno",
                Some(Errno::ETIMEDOUT),
                a.errno,
            );
        }
        Actor::Tool(tool) => {
            let (code, message) = tool.expected_failure(Errno::ETIMEDOUT, target);
            let printed = a.message.clone().unwrap_or_default();
            o.observed.exit_code = a.exit_code;
            o.observed.value = printed
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_owned());
            o.expected.exit_code = Some(code);
            o.expected.value = Some(message.clone());
            check_eq(&mut o, Against::Model, "exit code", Some(code), a.exit_code);
            o.model_check(
                "message",
                format!("contains {message:?}"),
                format!("{printed:?}"),
                printed.contains(&message),
            );
            lab::version_evidence(&mut o, tool.program());
        }
    }
    Ok(o)
}

/// The seed's lab: default sysctls, iptables SYN DROP on loopback.
const DEFAULTS: &[(&str, &str)] = &[];
const RETRIES_1: &[(&str, &str)] = &[(knob::TCP_SYN_RETRIES, "1")];
const RETRIES_5: &[(&str, &str)] = &[(knob::TCP_SYN_RETRIES, "5")];
const LINEAR_OFF: &[(&str, &str)] = &[(knob::TCP_SYN_LINEAR_TIMEOUTS, "0")];

macro_rules! give_up {
    ($name:ident, $sysctls:expr, $optional:expr, $peer:expr, $actor:expr, $n:expr, $parts:expr) => {
        fn $name(ctx: &Ctx) -> Result<Outcome> {
            give_up_claim(
                ctx,
                &GiveUpSpec {
                    sysctls: $sysctls,
                    optional_sysctls: $optional,
                    peer: $peer,
                    actor: $actor,
                    stated: SynModel::new($n, None),
                    stated_parts: $parts,
                },
            )
        }
    };
}

give_up!(
    default_client,
    DEFAULTS,
    &[],
    Peer::LoopbackDrop,
    Actor::Client,
    6,
    Stated::FullSchedule
);
give_up!(
    default_telnet,
    DEFAULTS,
    &[],
    Peer::LoopbackDrop,
    Actor::Tool(Tool::Telnet),
    6,
    Stated::FullSchedule
);
give_up!(
    exp_client,
    DEFAULTS,
    LINEAR_OFF,
    Peer::LoopbackDrop,
    Actor::Client,
    6,
    Stated::FullSchedule
);
give_up!(
    exp_telnet,
    DEFAULTS,
    LINEAR_OFF,
    Peer::LoopbackDrop,
    Actor::Tool(Tool::Telnet),
    6,
    Stated::FullSchedule
);
give_up!(
    r1_client,
    RETRIES_1,
    &[],
    Peer::LoopbackDrop,
    Actor::Client,
    1,
    Stated::GiveUpOnly
);
give_up!(
    r1_telnet,
    RETRIES_1,
    &[],
    Peer::LoopbackDrop,
    Actor::Tool(Tool::Telnet),
    1,
    Stated::GiveUpOnly
);
give_up!(
    r1_curl,
    RETRIES_1,
    &[],
    Peer::LoopbackDrop,
    Actor::Tool(Tool::Curl),
    1,
    Stated::GiveUpOnly
);
give_up!(
    r1_wget,
    RETRIES_1,
    &[],
    Peer::LoopbackDrop,
    Actor::Tool(Tool::Wget),
    1,
    Stated::GiveUpOnly
);
give_up!(
    r1_nc,
    RETRIES_1,
    &[],
    Peer::LoopbackDrop,
    Actor::Tool(Tool::Nc),
    1,
    Stated::GiveUpOnly
);
give_up!(
    r1_mysql,
    RETRIES_1,
    &[],
    Peer::LoopbackDrop,
    Actor::Tool(Tool::Mysql),
    1,
    Stated::GiveUpOnly
);
give_up!(
    r5_nc,
    RETRIES_5,
    &[],
    Peer::Blackhole,
    Actor::Tool(Tool::Nc),
    5,
    Stated::FullSchedule
);

/// `syn.telnet-message`: telnet's wording when the kernel gives up.
fn telnet_message(_ctx: &Ctx) -> Result<Outcome> {
    let lab = SynDropLab::new(RETRIES_1)?;
    let schedule = lab::model_in(&lab.ns)?.schedule();
    let deadline = schedule.give_up * 2 + Duration::from_secs(30);
    let run = lab::run_tool(
        &lab.ns,
        &Tool::Telnet.command(lab.target, deadline),
        lab.target.port(),
    )?;
    let printed = run.output.combined();
    let stated = "telnet: Unable to connect to remote host: Connection timed out";
    let (code, predicted) = Tool::Telnet.expected_failure(Errno::ETIMEDOUT, lab.target);
    let mut o = Outcome {
        observed: lab::tool_figures(&run),
        ..Outcome::default()
    };
    o.claimed.value = Some(stated.into());
    o.expected.value = Some(predicted.clone());
    o.expected.exit_code = Some(code);
    o.claim_check(
        "message",
        format!("a line {stated:?}"),
        format!("{printed:?}"),
        printed.lines().any(|l| l.trim() == stated),
    );
    o.model_check(
        "message",
        format!("contains {predicted:?}"),
        format!("{printed:?}"),
        printed.contains(&predicted),
    );
    check_eq(
        &mut o,
        Against::Model,
        "exit code",
        Some(code),
        run.output.exit_code(),
    );
    o.evidence(lab::tool_evidence(&run));
    Ok(o)
}

/// One setting of the sweep: what the model predicted and what happened.
struct SweepPoint {
    n: u32,
    schedule: SynSchedule,
    m: Measurement,
    errno: Option<Errno>,
    text: String,
}

/// `syn.retries-sweep` and its exponential variant: give-up = 2^(n+1) − 1 s for n = 1..6.
fn sweep(ctx: &Ctx, linear_off: bool) -> Result<Outcome> {
    let results: Vec<Result<SweepPoint>> = lab::parallel(
        "sweep-point",
        (1..=6u32)
            .map(|n| {
                move || -> Result<_> {
                    let lab = SynDropLab::new(&[(knob::TCP_SYN_RETRIES, &n.to_string())])?;
                    let mut note = String::new();
                    if linear_off {
                        match lab.ns.set_tcp_syn_linear_timeouts(0) {
                            Ok(()) => {}
                            Err(HarnessError::SysctlAbsent { .. }) => {
                                note = " (no tcp_syn_linear_timeouts on this kernel)".into()
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    let model = lab::model_in(&lab.ns)?;
                    let (out, a) = client_attempt(&lab.ns, lab.target)?;
                    let syns = &a.m.syn_times;
                    let text = format!(
                        "n={n}: {}{note}: {:?} after {:.3} s, {} SYN at {:?} ms",
                        lab::describe_model(&model),
                        out.result,
                        out.duration.as_secs_f64(),
                        syns.len(),
                        syns.iter().map(|t| t.as_millis()).collect::<Vec<_>>()
                    );
                    Ok(SweepPoint {
                        n,
                        schedule: model.schedule(),
                        m: a.m,
                        errno: out.errno(),
                        text,
                    })
                }
            })
            .collect(),
    );
    let mut o = Outcome::default();
    let mut observed = Vec::new();
    let mut expected = Vec::new();
    let mut claimed = Vec::new();
    for r in results {
        let SweepPoint {
            n,
            schedule,
            m,
            errno,
            text,
        } = r?;
        let took = m.took();
        let stated = SynModel::new(n, None).schedule();
        let stated_window = lab::give_up_window(stated.give_up, &schedule, ctx.hz, Duration::ZERO);
        check_timing(
            &mut o,
            Against::Statement,
            &format!("n={n}: give-up time"),
            stated.give_up,
            stated_window,
            &m.kernel_give_up(),
        );
        let first = o.model_checks.len();
        check_schedule(&mut o, Against::Model, &schedule, &m, ctx, Duration::ZERO);
        for c in &mut o.model_checks[first..] {
            c.what = format!("n={n}: {}", c.what);
        }
        check_eq(
            &mut o,
            Against::Model,
            &format!("n={n}: errno"),
            Some(Errno::ETIMEDOUT),
            errno,
        );
        observed.push(format!("{n}:{:.2}s", took.as_secs_f64()));
        expected.push(format!("{n}:{}s", schedule.give_up.as_secs()));
        claimed.push(format!("{n}:{}s", stated.give_up.as_secs()));
        o.evidence(text);
        o.timelines.push(lab::timeline(
            &format!("tcp_syn_retries={n}"),
            &m.syn_times,
            &schedule,
            Some(took),
        ));
    }
    o.claimed.value = Some(claimed.join(" "));
    o.expected.value = Some(expected.join(" "));
    o.observed.value = Some(observed.join(" "));
    Ok(o)
}

fn sweep_default(ctx: &Ctx) -> Result<Outcome> {
    sweep(ctx, false)
}

fn sweep_exponential(ctx: &Ctx) -> Result<Outcome> {
    sweep(ctx, true)
}

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
    let syns = m.syn_times.clone();
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

/// `syn.retries-0`: 0 retries "still yields one retransmission, about 3 s".
fn retries_0(ctx: &Ctx) -> Result<Outcome> {
    let lab = SynDropLab::new(&[])?;
    match lab.ns.set_tcp_syn_retries(0) {
        Err(HarnessError::SysctlRejected { errno, .. }) => {
            let now = lab.ns.tcp_syn_retries()?;
            return Ok(Outcome::forced(
                Verdict::NotApplicable,
                format!(
                    "this kernel rejects net.ipv4.tcp_syn_retries=0 with {errno} (its minimum is 1; the value stays {now}), so the 2.6.32 behaviour cannot be reproduced"
                ),
            ));
        }
        Err(e) => return Err(e.into()),
        Ok(()) => {}
    }
    // An older kernel accepted 0: measure it.
    let model = lab::model_in(&lab.ns)?;
    let schedule = model.schedule();
    let stated = SynSchedule {
        send_times: vec![Duration::ZERO, Duration::from_secs(1)],
        give_up: Duration::from_secs(3),
    };
    let a = attempt(&lab.ns, lab.target, Actor::Client, &schedule)?;
    let mut o = Outcome {
        observed: Figures::default()
            .duration(a.m.took())
            .syn_times(&a.m.syn_times),
        expected: Figures::default()
            .duration(schedule.give_up)
            .syn_times(&schedule.send_times),
        claimed: Figures::default()
            .duration(stated.give_up)
            .syn_times(&stated.send_times),
        ..Outcome::default()
    };
    check_schedule(
        &mut o,
        Against::Statement,
        &stated,
        &a.m,
        ctx,
        Duration::ZERO,
    );
    check_schedule(&mut o, Against::Model, &schedule, &a.m, ctx, Duration::ZERO);
    o.evidence(a.evidence);
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
            id: "syn.default-timeout",
            source: seeds::SYN_127,
            statement: "With the default tcp_syn_retries (6), connect() to a port whose SYNs are dropped fails with ETIMEDOUT after 127 s; 7 SYNs go out, spaced 1, 2, 4, 8, 16, 32 s, and the kernel waits 64 s after the last.",
            lab: drop_lab,
            action: "blocking connect() from the in-repo client with the kernel's default sysctls",
            needs: client,
            estimate: 135 * S,
            run: default_client,
        },
        Claim {
            id: "syn.default-timeout.telnet",
            source: seeds::SYN_127,
            statement: "As syn.default-timeout, observed with telnet as the seed does: 127 s, 7 SYNs.",
            lab: drop_lab,
            action: "telnet 127.0.0.1 7 with the kernel's default sysctls",
            needs: with(&["iptables", "telnet"]),
            estimate: 135 * S,
            run: default_telnet,
        },
        Claim {
            id: "syn.default-timeout-exponential",
            source: seeds::SYN_127,
            statement: "With tcp_syn_retries=6 and classic exponential backoff (tcp_syn_linear_timeouts=0 where the kernel has it), connect() fails with ETIMEDOUT after 127 s with 7 SYNs spaced 1, 2, 4, 8, 16, 32 s.",
            lab: drop_lab,
            action: "blocking connect() from the in-repo client, tcp_syn_linear_timeouts=0",
            needs: client,
            estimate: 130 * S,
            run: exp_client,
        },
        Claim {
            id: "syn.default-timeout-exponential.telnet",
            source: seeds::SYN_127,
            statement: "As syn.default-timeout-exponential, observed with telnet.",
            lab: drop_lab,
            action: "telnet 127.0.0.1 7, tcp_syn_linear_timeouts=0",
            needs: with(&["iptables", "telnet"]),
            estimate: 130 * S,
            run: exp_telnet,
        },
        Claim {
            id: "syn.retries-1",
            source: seeds::SYN_127,
            statement: "With tcp_syn_retries=1 a connect() to a port whose SYNs are dropped fails after about 3 s.",
            lab: drop_lab,
            action: "blocking connect() from the in-repo client, tcp_syn_retries=1",
            needs: client,
            estimate: 4 * S,
            run: r1_client,
        },
        Claim {
            id: "syn.retries-1.telnet",
            source: seeds::SYN_127,
            statement: "With tcp_syn_retries=1, telnet gives up after about 3 s.",
            lab: drop_lab,
            action: "telnet 127.0.0.1 7, tcp_syn_retries=1",
            needs: with(&["iptables", "telnet"]),
            estimate: 4 * S,
            run: r1_telnet,
        },
        Claim {
            id: "syn.retries-1.curl",
            source: seeds::SYN_127,
            statement: "With tcp_syn_retries=1, curl --connect-timeout 999 gives up after about 3 s, when the kernel does.",
            lab: drop_lab,
            action: "curl --connect-timeout 999 http://127.0.0.1:7/, tcp_syn_retries=1",
            needs: with(&["iptables", "curl"]),
            estimate: 4 * S,
            run: r1_curl,
        },
        Claim {
            id: "syn.retries-1.wget",
            source: seeds::SYN_127,
            statement: "With tcp_syn_retries=1, wget --tries 1 --connect-timeout 999 gives up after about 3 s.",
            lab: drop_lab,
            action: "wget --tries 1 --connect-timeout 999 http://127.0.0.1:7/, tcp_syn_retries=1",
            needs: with(&["iptables", "wget"]),
            estimate: 4 * S,
            run: r1_wget,
        },
        Claim {
            id: "syn.retries-1.nc",
            source: seeds::SYN_127,
            statement: "With tcp_syn_retries=1, nc (no -w) gives up after about 3 s.",
            lab: drop_lab,
            action: "nc -v 127.0.0.1 7, tcp_syn_retries=1",
            needs: with(&["iptables", "nc"]),
            estimate: 4 * S,
            run: r1_nc,
        },
        Claim {
            id: "syn.retries-1.mysql",
            source: seeds::SYN_127,
            statement: "With tcp_syn_retries=1, the mysql client (no --connect_timeout) gives up after about 3 s.",
            lab: drop_lab,
            action: "mysql --protocol=TCP -h 127.0.0.1 -P 7, tcp_syn_retries=1",
            needs: with(&["iptables", "mysql"]),
            estimate: 4 * S,
            run: r1_mysql,
        },
        Claim {
            id: "syn.retries-sweep",
            source: seeds::SYN_127,
            statement: "Generalisation: with tcp_syn_retries=n the give-up time is 2^(n+1) − 1 s (n = 1..6), with the kernel's other defaults.",
            lab: "six namespaces with SYN DROP on loopback, tcp_syn_retries = 1..6",
            action: "blocking connect() in each, concurrently",
            needs: client,
            estimate: 135 * S,
            run: sweep_default,
        },
        Claim {
            id: "syn.retries-sweep-exponential",
            source: seeds::SYN_127,
            statement: "Generalisation with classic backoff: with tcp_syn_retries=n and tcp_syn_linear_timeouts=0 the give-up time is 2^(n+1) − 1 s (n = 1..6).",
            lab: "six namespaces with SYN DROP on loopback, tcp_syn_retries = 1..6, tcp_syn_linear_timeouts=0",
            action: "blocking connect() in each, concurrently",
            needs: client,
            estimate: 130 * S,
            run: sweep_exponential,
        },
        Claim {
            id: "syn.drop-rule",
            source: seeds::SYN_127,
            statement: "An iptables -A INPUT -p tcp --dport P --syn -j DROP rule makes a loopback port look like an unreachable peer: no answer, connect() times out instead of being refused.",
            lab: "a control namespace without the rule, and one with it; tcp_syn_retries=1",
            action: "blocking connect() to 127.0.0.1:7 in both",
            needs: client,
            estimate: 4 * S,
            run: drop_rule,
        },
        Claim {
            id: "syn.telnet-message",
            source: seeds::SYN_127,
            statement: "When the kernel gives up, telnet prints \"telnet: Unable to connect to remote host: Connection timed out\".",
            lab: drop_lab,
            action: "telnet 127.0.0.1 7, tcp_syn_retries=1",
            needs: with(&["iptables", "telnet"]),
            estimate: 4 * S,
            run: telnet_message,
        },
        Claim {
            id: "syn.retries-5-nc",
            source: seeds::TOOLS,
            statement: "With tcp_syn_retries=5, nc without -w to an unreachable host blocks until the kernel gives up: about 63 s, SYNs spaced 1, 2, 4, 8, 16 s.",
            lab: "client namespace 192.0.2.1 on veth to a host 192.0.2.2 that drops all input; tcp_syn_retries=5",
            action: "nc -v 192.0.2.2 80",
            needs: with(&["iptables", "nc"]),
            estimate: 70 * S,
            run: r5_nc,
        },
        Claim {
            id: "syn.retries-0",
            source: seeds::TOOLS,
            statement: "Writing 0 to tcp_syn_retries still yields one retransmission: connect() fails after about 3 s.",
            lab: drop_lab,
            action: "write 0 to net.ipv4.tcp_syn_retries in the lab, then a blocking connect()",
            needs: client,
            estimate: 4 * S,
            run: retries_0,
        },
        Claim {
            id: "syn.invisible-to-strace",
            source: seeds::TOOLS,
            statement: "SYN retransmissions happen inside one blocked connect() call: strace shows a single call, only the wire shows the retries.",
            lab: drop_lab,
            action: "strace -f -e trace=connect telnet 127.0.0.1 7, tcp_syn_retries=1, with an in-process capture",
            needs: with(&["iptables", "telnet", "strace"]),
            estimate: 4 * S,
            run: invisible_to_strace,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 7);

    #[test]
    fn tool_failures_name_the_errno_text() {
        assert_eq!(
            Tool::Telnet.expected_failure(Errno::ETIMEDOUT, T).1,
            "Unable to connect to remote host: Connection timed out"
        );
        assert_eq!(
            Tool::Wget.expected_failure(Errno::ETIMEDOUT, T),
            (4, "failed: Connection timed out.".into())
        );
    }

    #[test]
    fn stated_schedules_are_the_classic_ones() {
        assert_eq!(SynModel::new(6, None).schedule().give_up, 127 * S);
        assert_eq!(SynModel::new(5, None).schedule().give_up, 63 * S);
        assert_eq!(SynModel::new(1, None).schedule().give_up, 3 * S);
    }
}
