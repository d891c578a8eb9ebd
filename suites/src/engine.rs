//! The engine behind claim files: measure, then judge.
//!
//! [`measure`] builds the lab a [`ClaimSpec`] describes, runs its action and records what
//! happened in a [`Measurement`] (serialisable, stored in the report). [`judge`] is a pure
//! function of the spec and the measurement: it predicts from the sysctls recorded in force
//! (the kernel's SYN timing model) and from the command line (the [tool model]), and turns
//! statement and prediction into checks. So a claim file gets the same labs, capture,
//! tolerances and model as the built-in claims, and a recorded run can be judged again.
//!
//! [tool model]: crate::toolmodel

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::client::{self, ConnectResult};
use netclaim_fixtures::http::{SlowBodyServer, Trickle};
use netclaim_fixtures::server::{NoAcceptListener, SilentServer, UnixNoAcceptListener};
use netclaim_harness::capture::{self, TcpEvent};
use netclaim_harness::command::ToolCommand;
use netclaim_harness::model::{SynModel, SynSchedule};
use netclaim_harness::sysctl::knob;
use netclaim_harness::tmp::TempDir;
use netclaim_harness::tolerance::{tool_deadline_window, tool_timer_window, Window};
use netclaim_harness::{Error as HarnessError, NetNs};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::aftersyn::{self, AfterRecord, Rejection};
use crate::claim::{Check, Ctx, Figures, Outcome, Verdict};
use crate::lab::{
    self, check_eq, check_schedule, check_timing, secs, Against, BlackholeLab, Measured, Shown,
    TOOL_STARTUP,
};
use crate::spec::{ClaimSpec, Client, ExpectSpec, Family, Server, Value};
use crate::toolmodel::{self, Failure, Program};

/// What one run of a claim file measured: everything [`judge`] needs, nothing it
/// computes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `uname -r` of the kernel measured.
    pub kernel: String,
    /// Its `CONFIG_HZ`.
    pub hz: u32,
    /// Whether the labs ran in a user namespace (without root).
    #[serde(default)]
    pub rootless: bool,
    /// Values of the namespace-fresh sysctls the claim asks about (`None`: absent).
    #[serde(default)]
    pub fresh: BTreeMap<String, Option<String>>,
    /// The lab and its run (absent for a claim that only reads defaults).
    #[serde(default)]
    pub lab: Option<LabRecord>,
    /// One lab and run per sweep value.
    #[serde(default)]
    pub sweep: Vec<(String, LabRecord)>,
    /// The first line of the command's `--version` (or its package's version).
    #[serde(default)]
    pub tool_version: Option<String>,
}

/// One lab as built, and its run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabRecord {
    /// The lab's namespace name(s).
    pub name: String,
    /// What is at `{target}`: `ip:port`, or a unix socket path.
    pub target: String,
    /// Sysctls read in the lab after it was set up (the model's inputs).
    pub in_force: BTreeMap<String, String>,
    /// Set-up notes (an optional sysctl the kernel lacks).
    pub notes: Vec<String>,
    /// Why the lab could not be built as the claim asks (a sysctl the kernel lacks or
    /// rejects): the claim is not applicable here.
    pub refused: Option<String>,
    /// The action.
    pub run: Option<RunRecord>,
    /// What the wire did, when the lab had one (`lab.link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkRecord>,
}

/// What a lab's wire did, each way, and the seed that reproduces its fates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The seed of every random choice.
    pub seed: u64,
    /// Toward the peer.
    pub to_peer: LinkCounts,
    /// From the peer.
    pub from_peer: LinkCounts,
}

/// One direction of a wire, counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkCounts {
    /// Packets that entered it.
    pub packets_in: u64,
    /// Packets delivered (duplicates included).
    pub delivered: u64,
    /// Lost by the loss model.
    pub lost: u64,
    /// Dropped at a full queue.
    pub dropped_limit: u64,
    /// Dropped by a rule.
    pub dropped_rule: u64,
    /// Duplicated, reordered, corrupted.
    pub duplicated: u64,
    /// Delivered after a packet that arrived later.
    pub reordered: u64,
    /// Delivered with a bit flipped.
    pub corrupted: u64,
    /// Rewritten by a rule (window, MSS).
    pub rewritten: u64,
    /// Made up by a rule (RSTs, ICMP errors).
    pub injected: u64,
    /// How late the wire released held packets against when they were due: the worst,
    /// µs (absent: none held). A timing check may be off by this much more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_max_us: Option<u64>,
}

impl From<&netclaim_harness::wire::DirectionReport> for LinkCounts {
    fn from(d: &netclaim_harness::wire::DirectionReport) -> Self {
        let c = &d.counts;
        Self {
            packets_in: c.packets_in,
            delivered: c.delivered,
            lost: c.lost,
            dropped_limit: c.dropped_limit,
            dropped_rule: c.dropped_rule,
            duplicated: c.duplicated,
            reordered: c.reordered,
            corrupted: c.corrupted,
            rewritten: c.rewritten,
            injected: c.injected,
            late_max_us: d.lateness.map(|l| l.max_us),
        }
    }
}

impl std::fmt::Display for LinkCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in, {} delivered", self.packets_in, self.delivered)?;
        for (n, what) in [
            (self.lost, "lost"),
            (self.dropped_limit, "dropped at the queue limit"),
            (self.dropped_rule, "dropped by a rule"),
            (self.duplicated, "duplicated"),
            (self.reordered, "reordered"),
            (self.corrupted, "corrupted"),
            (self.rewritten, "rewritten"),
            (self.injected, "injected"),
        ] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        if let Some(late) = self.late_max_us {
            write!(f, "; released up to {:.1} ms late", late as f64 / 1000.0)?;
        }
        Ok(())
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the action did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The command line, or the client that ran.
    pub command_line: String,
    /// The command's arguments after placeholders (empty for a client).
    pub argv: Vec<String>,
    /// Exit code (`None`: killed by a signal, or a client).
    pub exit_code: Option<i32>,
    /// Whether the harness ended it at its deadline (`run.timeout`, or the default one):
    /// a command killed, a client after the SYN no longer waited for.
    pub timed_out: bool,
    /// That deadline, µs (absent in measurements recorded before it was kept, and for
    /// clients that have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_us: Option<u64>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Bytes of stdout and stderr the harness did not keep (it keeps the first and last
    /// 256 KiB of each): a text not found may have been in them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_cut: u64,
    /// From start to end, µs.
    pub duration_us: u64,
    /// The errno of the connect that failed (a client, or a command traced by strace).
    pub errno: Option<i32>,
    /// connect() calls strace saw (`run.trace_connect`).
    pub connect_calls: Option<usize>,
    /// Connections a `fill` or `exhaust` client held before the first failure.
    pub connections: Option<usize>,
    /// The most connections the `fill` client would make ([`fill_cap`]): reaching it, it
    /// stopped without a failure (absent in measurements recorded before the cap followed
    /// the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_cap: Option<usize>,
    /// SYNs to the target's port, µs from the first.
    pub syn_times_us: Vec<u64>,
    /// The first SYN of each connection (by source port), µs from the first SYN.
    pub conn_starts_us: Vec<u64>,
    /// SYNs of each connection, in the same order.
    #[serde(default)]
    pub conn_syns: Vec<usize>,
    /// A fill client's listener as `ss` shows it: (Recv-Q, Send-Q), i.e. queued
    /// connections and the effective backlog.
    #[serde(default)]
    pub listener_queue: Option<(u32, u32)>,
    /// SYN-ACKs and RSTs seen from the target.
    pub syn_acks: usize,
    /// RSTs.
    pub rsts: usize,
    /// The command's full record and the wire timeline, as evidence.
    pub evidence: String,
    /// The attempt timed from its first SYN, with the slowness probe's errors (absent in
    /// measurements recorded before it existed: then timed from the start, no error).
    #[serde(default)]
    pub timed: Option<lab::Measurement>,
    /// The client's first FIN on each connection, in the order of `conn_starts_us`, µs
    /// from the first SYN: when the tool closed it (its read timeout, seen on the wire).
    #[serde(default)]
    pub conn_fins_us: Vec<Option<u64>>,
    /// The probe's worst timer lateness from the first SYN to the first FIN, µs.
    #[serde(default)]
    pub fin_late_us: Option<u64>,
    /// What a client after the SYN observed (data retransmissions, keepalive probes,
    /// close(), SYN-ACKs, ICMP errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<AfterRecord>,
}

impl RunRecord {
    fn duration(&self) -> Duration {
        Duration::from_micros(self.duration_us)
    }

    /// The attempt's timing: as measured, or (an older record) from the start, no error.
    fn timed(&self) -> lab::Measurement {
        self.timed.clone().unwrap_or_else(|| lab::Measurement {
            syn_times_us: self.syn_times_us.clone(),
            duration_us: self.duration_us,
            ..lab::Measurement::default()
        })
    }

    /// The run as a timer of the tool's that ends when it closes its first connection: from
    /// the first SYN to the FIN (the exit does not count; the tool may have armed the timer
    /// before the SYN: its start-up is the early error); without a FIN, to the end.
    fn until_close(&self) -> Measured {
        let timed = self.timed();
        match (
            self.conn_fins_us.first().copied().flatten(),
            self.fin_late_us,
        ) {
            (Some(fin), Some(late)) => {
                let process = timed.process_excess();
                let late = Duration::from_micros(late);
                Measured {
                    took: Duration::from_micros(fin),
                    error: late + process,
                    early_error: timed.startup().unwrap_or_default(),
                    error_from: format!(
                        "timers up to {} ms late over 1 timer(s) (probe); tool process work {} \
                         ms past the {} ms allowed",
                        late.as_millis(),
                        process.as_millis(),
                        TOOL_STARTUP.as_millis()
                    ),
                }
            }
            _ => timed.tool_timer(),
        }
    }

    fn syn_times(&self) -> Vec<Duration> {
        self.syn_times_us
            .iter()
            .map(|&us| Duration::from_micros(us))
            .collect()
    }

    fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

// ---------------------------------------------------------------------------------------
// Planning: how a run is predicted to end. Shared by measure (for the default deadline)
// and judge.

/// How the model predicts the action ends.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// SYNs go unanswered until the kernel gives up (ETIMEDOUT).
    Kernel,
    /// SYNs go unanswered until the tool's own deadline.
    ToolConnect {
        /// The deadline.
        deadline: Duration,
        /// What the tool reports then; `None` for a program the model does not know.
        failure: Option<Failure>,
    },
    /// A program the model does not know, against a peer that never answers: it ends at
    /// the latest when the kernel gives up.
    NoLaterThanKernel,
    /// The peer answers the SYN with RST.
    Refused,
    /// The handshake completes, nothing comes; the tool's own read deadline ends it.
    ToolRead {
        /// The deadline.
        deadline: Duration,
        /// What the tool reports then.
        failure: Failure,
    },
    /// The handshake completes, nothing comes, no timer: blocked until the harness kills it.
    Blocks,
    /// The connection succeeds (a client), or the command is served (HTTP).
    Completes,
    /// A fill or exhaust client runs until connect() fails.
    Exhausts,
    /// The SYN is rejected (RST, ICMP) or cannot be routed.
    Rejected(Rejection),
    /// A client after the SYN (send, idle, close, syn-only): judged by
    /// [`aftersyn::judge`].
    AfterSyn(Client),
}

/// What the plan knows: the kernel's schedule (unanswered SYNs), the tool, and the end.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The kernel's SYN schedule for the sysctls in force, when SYNs go unanswered.
    pub schedule: Option<SynSchedule>,
    /// The model behind it.
    pub model: Option<SynModel>,
    /// The tool, if the command is one the model knows.
    pub program: Option<Program>,
    /// Its command line (inside a `strace … --` wrapper): what it prints depends on it.
    pub argv: Vec<String>,
    /// How many connections it makes (wget retries).
    pub tries: usize,
    /// How the run ends.
    pub end: End,
    /// When it ends, from the start (the end's deadline, the kernel's give-up, or the
    /// tries' total).
    pub ends_after: Option<Duration>,
    /// The kernel timers armed on the way to the end, for their slack (clients after the
    /// SYN).
    pub intervals: Vec<Duration>,
}

/// The SYN model for sysctls in force (read from the lab), its inputs within what the
/// kernel accepts (a claim file asking for more is refused when its lab is built; its
/// estimate must not count SYNs for ever meanwhile).
pub fn model_of(in_force: &BTreeMap<String, String>) -> SynModel {
    let num = |k: &str| in_force.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    let count = |n: u64| u32::try_from(n.min(MAX_TCP_SYNCNT)).unwrap_or(0);
    let mut m = SynModel::new(
        count(num(knob::TCP_SYN_RETRIES).unwrap_or(6)),
        num(knob::TCP_SYN_LINEAR_TIMEOUTS).map(count),
    );
    if let Some(ms) = num(knob::TCP_RTO_MAX_MS) {
        m.rto_max = Duration::from_millis(ms.min(120_000));
    }
    m
}

/// `MAX_TCP_SYNCNT`: the most SYN retransmissions tcp_syn_retries, TCP_SYNCNT and
/// tcp_syn_linear_timeouts may ask for.
const MAX_TCP_SYNCNT: u64 = 127;

/// The most tries of a tool that retries (wget `--tries`) the model follows: more would
/// outlast any run (a day at one try a second).
const MAX_TRIES: usize = 100_000;

/// The program a command line runs and its own arguments, looking through a `strace …
/// --` wrapper.
fn traced_argv(argv: &[String]) -> &[String] {
    if argv.first().map(String::as_str) == Some("strace") {
        if let Some(i) = argv.iter().position(|a| a == "--") {
            return &argv[i + 1..];
        }
    }
    argv
}

/// Predicts how the run of `spec` ends, given the sysctls in force and the command line
/// after placeholders.
pub fn plan(
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    argv: &[String],
    target: Option<SocketAddrV4>,
) -> Plan {
    let run = spec.run.as_ref();
    let server = spec.lab.server;
    let argv = traced_argv(argv);
    let program = argv.first().and_then(|a| Program::of(a));
    let tries = program.map_or(1, |p| toolmodel::tries(p, argv).min(MAX_TRIES));
    let target = target.unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let declared = run.and_then(|r| r.deadline).map(|d| d.0);
    let mut plan = Plan {
        schedule: None,
        model: None,
        program,
        argv: argv.to_vec(),
        tries,
        end: End::Completes,
        ends_after: None,
        intervals: Vec::new(),
    };
    let client = run.and_then(|r| r.client);
    if matches!(client, Some(Client::Fill | Client::Exhaust)) {
        plan.end = End::Exhausts;
        return plan;
    }
    if let Some(c @ (Client::Send | Client::Idle | Client::Close | Client::SynOnly)) = client {
        plan.end = End::AfterSyn(c);
        return plan;
    }
    if let Some(r) = aftersyn::rejection(spec) {
        plan.end = End::Rejected(r);
        return plan;
    }
    if server.drops_syns() {
        let mut model = model_of(in_force);
        // TCP_SYNCNT replaces tcp_syn_retries for this socket (tcp_write_timeout).
        if let Some(n) = run.and_then(|r| r.socket.syncnt) {
            model.syn_retries = n.min(MAX_TCP_SYNCNT as u32);
        }
        let schedule = model.schedule();
        let own = match program {
            Some(p) => toolmodel::connect_deadline(p, argv, target).map(|(d, f)| (d, Some(f))),
            None => declared.map(|d| (d, None)),
        };
        let (end, per_try) = match own {
            Some((d, failure)) if d < schedule.give_up => (
                End::ToolConnect {
                    deadline: d,
                    failure,
                },
                d,
            ),
            _ if client.is_none() && program.is_none() && declared.is_none() => {
                (End::NoLaterThanKernel, schedule.give_up)
            }
            _ => (End::Kernel, schedule.give_up),
        };
        plan.ends_after = Some(if tries > 1 {
            toolmodel::wget_total(tries, per_try, toolmodel::WGET_WAITRETRY)
        } else {
            per_try
        });
        plan.end = end;
        plan.schedule = Some(schedule);
        plan.model = Some(model);
        return plan;
    }
    match server {
        Server::None | Server::Refuse => plan.end = End::Refused,
        Server::Silent | Server::NeverAccept | Server::NeverAcceptUnix if client.is_none() => {
            let own = match program {
                Some(p) => toolmodel::read_deadline(p, argv, target),
                None => declared.map(|d| {
                    (
                        d,
                        Failure {
                            exit: 0,
                            messages: Vec::new(),
                        },
                    )
                }),
            };
            match own {
                Some((deadline, failure)) => {
                    plan.ends_after = Some(if tries > 1 {
                        toolmodel::wget_total(tries, deadline, toolmodel::WGET_WAITRETRY)
                    } else {
                        deadline
                    });
                    plan.end = End::ToolRead { deadline, failure };
                }
                None => plan.end = End::Blocks,
            }
        }
        _ => plan.end = End::Completes,
    }
    plan
}

/// At most this many labs of one sweep exist at once; the other values wait for a free
/// slot. A lab that runs a command holds a namespace, a capture socket, pipes and about
/// six threads, and every spawn forks the whole process, whose cost grows with its
/// address space (every live lab's threads): with all 300 values of a sweep at once,
/// 300 forks of a process holding 300 labs made the sweep quadratic (13 s for 300
/// values, minutes for 1,000). A bounded sweep is linear in its values, and its time
/// follows from [`sweep_rounds`].
pub const SWEEP_JOBS: usize = 32;

/// How many values of `spec`'s sweep one slot runs in turn, at most: the values divided
/// among [`SWEEP_JOBS`] slots (1 without a sweep).
pub fn sweep_rounds(spec: &ClaimSpec) -> u32 {
    let values = spec.sweep.as_ref().map_or(1, |s| s.values.len().max(1));
    u32::try_from(values.div_ceil(SWEEP_JOBS)).unwrap_or(u32::MAX)
}

/// What one lab costs besides its action (namespace, links, rules, server, capture, the
/// spawn), with headroom for a loaded machine: added per value in turn.
const LAB_SETUP: Duration = Duration::from_secs(1);

/// The sysctls the file sets, as the model reads them (linear timeouts assumed: the
/// longer schedule).
fn assumed_in_force(spec: &ClaimSpec) -> BTreeMap<String, String> {
    let mut in_force: BTreeMap<String, String> = spec
        .lab
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.text()))
        .collect();
    in_force
        .entry(knob::TCP_SYN_LINEAR_TIMEOUTS.into())
        .or_insert_with(|| "4".into());
    in_force
}

/// The longest of `per_value` over the sweep's values (or the one lab without a sweep).
fn longest_value(
    spec: &ClaimSpec,
    per_value: impl Fn(&BTreeMap<String, String>) -> Duration,
) -> Duration {
    let in_force = assumed_in_force(spec);
    match &spec.sweep {
        Some(sweep) => sweep
            .values
            .iter()
            .map(|v| {
                let mut f = in_force.clone();
                f.insert(sweep.sysctl.clone(), v.text());
                per_value(&f)
            })
            .max()
            .unwrap_or_default(),
        None => per_value(&in_force),
    }
}

/// A rough run time for scheduling and the hard deadline, from the sysctls the file sets
/// (the kernel's defaults otherwise; linear timeouts assumed, the longer schedule): the
/// longest value's action and its lab's set-up, times the values one sweep slot runs in
/// turn.
pub fn estimate(spec: &ClaimSpec) -> Duration {
    if let Some(e) = spec.estimate {
        return e.0;
    }
    let Some(run) = &spec.run else {
        return LAB_SETUP;
    };
    if let Some(c @ (Client::Send | Client::Idle | Client::Close | Client::SynOnly)) = run.client {
        // Its own estimate includes the set-up.
        return aftersyn::estimate(c, spec).saturating_mul(sweep_rounds(spec));
    }
    let argv = run.command.clone().unwrap_or_default();
    let longest = longest_value(spec, |in_force| {
        let p = plan(spec, in_force, &argv, None);
        p.ends_after.unwrap_or_default()
            + match p.end {
                End::Blocks => run.timeout.map_or(Duration::from_secs(30), |t| t.0),
                _ => Duration::ZERO,
            }
    });
    longest
        .saturating_add(LAB_SETUP)
        .saturating_mul(sweep_rounds(spec))
}

/// The longest the measurement of `spec` may take before the harness's own deadlines end
/// it: per value, the kill deadline of its command or client (`run.timeout`, or the
/// default one [`act`] computes), and its lab's set-up; times the values a sweep slot
/// runs in turn. The claim's hard deadline is never shorter (see
/// [`crate::executor::deadline`]): a claim whose tools are still within their own
/// deadlines is not abandoned.
pub fn limit(spec: &ClaimSpec) -> Duration {
    let Some(run) = &spec.run else {
        return LAB_SETUP;
    };
    let argv = run.command.clone().unwrap_or_default();
    let per_value = longest_value(spec, |in_force| match run.client {
        Some(c @ (Client::Send | Client::Idle | Client::Close | Client::SynOnly)) => {
            after_limit(run, c, spec)
        }
        Some(Client::Fill) => fill_wait(spec)
            .saturating_mul(u32::try_from(fill_cap(spec, in_force)).unwrap_or(u32::MAX)),
        // connect() and the exhaust client end when the kernel gives up: the estimate.
        Some(Client::Connect | Client::Exhaust) => Duration::ZERO,
        None => command_timeout(run, &plan(spec, in_force, &argv, None)),
    });
    per_value
        .saturating_add(LAB_SETUP)
        .saturating_mul(sweep_rounds(spec))
}

/// How long the fill client waits for one connect to complete: a TCP connect to a queue
/// with room completes at once (the SYN-ACK comes over loopback), one to a full queue
/// never does (its SYN is dropped); a unix connect to a full queue fails at once
/// (EAGAIN).
fn fill_wait(spec: &ClaimSpec) -> Duration {
    match spec.lab.server {
        Server::NeverAcceptUnix => Duration::from_secs(1),
        _ => Duration::from_millis(300),
    }
}

/// The most connections the model lets a fill client make: `listen()` caps the backlog
/// at somaxconn, and one more than the backlog is queued (TCP: the accept queue is full
/// when it holds more than the backlog; unix: likewise).
fn fill_expected(spec: &ClaimSpec, in_force: &BTreeMap<String, String>) -> usize {
    let somaxconn = in_force
        .get(knob::SOMAXCONN)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(4096);
    let backlog = u64::from(spec.lab.backlog.unwrap_or(DEFAULT_BACKLOG)).min(somaxconn);
    usize::try_from(backlog)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
}

/// How many connections the fill client makes at most before it stops without a failure:
/// more than the model and the statement expect (the larger of them, and per sweep value),
/// by a quarter and 16 more, so a queue that takes more than either is seen to. Reaching
/// it is the harness's own limit, not an observation: the claim is then an `error`.
pub fn fill_cap(spec: &ClaimSpec, in_force: &BTreeMap<String, String>) -> usize {
    let stated = spec
        .expect
        .each
        .values()
        .filter_map(|e| e.connections)
        .chain(spec.expect.connections)
        .max()
        .unwrap_or(0);
    let most = fill_expected(spec, in_force).max(stated);
    most.saturating_add(most / 4).saturating_add(16)
}

/// The listen() backlog of a never-accept server when the file gives none.
pub const DEFAULT_BACKLOG: u32 = 16;

/// The harness's deadline for a command: `run.timeout`, or twice what the model predicts
/// plus 30 s.
fn command_timeout(run: &crate::spec::RunSpec, p: &Plan) -> Duration {
    run.timeout.map(|t| t.0).unwrap_or_else(|| {
        p.ends_after
            .unwrap_or(Duration::from_secs(10))
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(30))
    })
}

/// The harness's deadline for a client after the SYN: `run.timeout`, or twice its
/// estimate plus 30 s.
fn after_limit(run: &crate::spec::RunSpec, c: Client, spec: &ClaimSpec) -> Duration {
    run.timeout.map(|t| t.0).unwrap_or_else(|| {
        aftersyn::estimate(c, spec)
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(30))
    })
}

// ---------------------------------------------------------------------------------------
// Measuring

/// What a lab's server is, kept alive while the action runs.
#[expect(dead_code, reason = "the guards are held for their Drop, never read")]
enum ServerGuard {
    NoAccept(NoAcceptListener),
    Unix(UnixNoAcceptListener, TempDir),
    Silent(SilentServer),
    Http(SlowBodyServer),
}

/// Where the action is pointed.
#[derive(Debug, Clone)]
enum Target {
    Tcp(SocketAddrV4),
    Tcp6(SocketAddrV6),
    Unix(PathBuf),
}

impl Target {
    fn text(&self) -> String {
        match self {
            Self::Tcp(a) => a.to_string(),
            Self::Tcp6(a) => a.to_string(),
            Self::Unix(p) => p.display().to_string(),
        }
    }

    fn tcp(&self) -> Option<SocketAddrV4> {
        match self {
            Self::Tcp(a) => Some(*a),
            Self::Tcp6(_) | Self::Unix(_) => None,
        }
    }

    /// The TCP address, IPv4 or IPv6.
    fn sock(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(a) => Some((*a).into()),
            Self::Tcp6(a) => Some((*a).into()),
            Self::Unix(_) => None,
        }
    }
}

/// A built lab: the namespace the action runs in, and everything that must outlive it.
struct Built {
    // Declared first, dropped first: the wire's relays stop before its namespaces go.
    wire: Option<netclaim_harness::wire::Wire>,
    ns: NetNs,
    peer: Option<NetNs>,
    _server: Option<ServerGuard>,
    target: Target,
    notes: Vec<String>,
    description: String,
}

/// The sysctls the model reads, beside the ones a claim sets.
const MODEL_INPUTS: &[&str] = &[
    knob::TCP_SYN_RETRIES,
    knob::TCP_SYN_LINEAR_TIMEOUTS,
    knob::TCP_RTO_MAX_MS,
    knob::SOMAXCONN,
    knob::IP_LOCAL_PORT_RANGE,
    "net.ipv4.ip_local_reserved_ports",
];

/// Builds the lab; `Ok(Err(reason))` when the kernel refuses a sysctl the claim sets.
fn build(
    spec: &ClaimSpec,
    extra: Option<(&str, String)>,
) -> Result<std::result::Result<Built, String>> {
    let lab = &spec.lab;
    let mut sysctls: Vec<(String, String)> = lab
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.text()))
        .collect();
    if let Some((k, v)) = extra {
        sysctls.retain(|(name, _)| name != k);
        sysctls.push((k.to_owned(), v));
    }
    let pairs: Vec<(&str, &str)> = sysctls
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let port = lab.port.unwrap_or_else(|| lab.server.default_port());
    let refused = lab::refusal;
    let mut wire = None;
    let two_ns = match (&lab.link, lab.server) {
        (Some(link), _) => {
            let spec = link
                .wire_spec(&lab.rules)
                .map_err(|problems| anyhow::anyhow!("lab.link: {}", problems.join("; ")))?;
            Some(linked_lab(&pairs, spec).map(|(client, peer, w)| {
                wire = Some(w);
                (client, peer)
            }))
        }
        (None, Server::Reject | Server::DiesAfterHandshake) => Some(peer_lab(&pairs)),
        (None, Server::Blackhole) => Some(BlackholeLab::new(&pairs).map(|bh| (bh.client, bh.host))),
        _ => None,
    };
    let (ns, peer, target) = if let Some(made) = two_ns {
        match made {
            Ok((client, host)) => (
                client,
                Some(host),
                Target::Tcp(SocketAddrV4::new(BlackholeLab::HOST, port)),
            ),
            Err(e) => {
                let reason = e
                    .chain()
                    .find_map(|c| c.downcast_ref::<HarnessError>().and_then(refused));
                return match reason {
                    Some(r) => Ok(Err(r)),
                    None => Err(e),
                };
            }
        }
    } else {
        match NetNs::with_sysctls(&pairs) {
            Ok(ns) => (
                ns,
                None,
                match (lab.family, lab.server) {
                    (_, Server::Unroutable) => Target::Tcp(SocketAddrV4::new(UNROUTABLE, port)),
                    (Family::Ipv6, _) => {
                        Target::Tcp6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0))
                    }
                    (Family::Ipv4, _) => Target::Tcp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
                },
            ),
            Err(e) => {
                return match refused(&e) {
                    Some(r) => Ok(Err(r)),
                    None => Err(e).context("creating the lab namespace"),
                }
            }
        }
    };
    let mut notes = Vec::new();
    for (name, value) in &lab.sysctls_if_present {
        match ns.set_sysctl(name, &value.text()) {
            Ok(()) => notes.push(format!("{name}={value}")),
            Err(HarnessError::SysctlAbsent { .. }) => notes.push(format!(
                "{name} is absent on this kernel: its classic behaviour applies"
            )),
            Err(e) => match refused(&e) {
                Some(r) => return Ok(Err(r)),
                None => return Err(e).context("setting an optional sysctl"),
            },
        }
    }
    // listen() takes an int; `check` refuses larger values, so this never wraps negative.
    let asked = lab.backlog.unwrap_or(DEFAULT_BACKLOG);
    let backlog = i32::try_from(asked)
        .with_context(|| format!("lab.backlog {asked} is above listen()'s int range"))?;
    // With a link every server is on the peer's side of it.
    let server_ns = match (&wire, &peer) {
        (Some(_), Some(p)) => p,
        _ => &ns,
    };
    let (server, target, description) = match (lab.server, &target) {
        (Server::Blackhole, Target::Tcp(addr)) if wire.is_some() => {
            server_ns
                .drop_all_input()
                .with_context(|| format!("dropping all input in {}", server_ns.name()))?;
            (
                None,
                target.clone(),
                format!(
                    "client {} on the wire to {} ({}), which drops all input; target {addr}",
                    BlackholeLab::CLIENT,
                    BlackholeLab::HOST,
                    server_ns.name()
                ),
            )
        }
        (Server::DropSyn, Target::Tcp(addr)) => {
            server_ns
                .drop_syn_to_port(addr.port())
                .with_context(|| format!("installing the SYN DROP rule in {}", ns.name()))?;
            (
                None,
                target.clone(),
                format!(
                    "iptables -A INPUT -p tcp --dport {} --syn -j DROP, target {addr}",
                    addr.port()
                ),
            )
        }
        (Server::DropSyn, Target::Tcp6(addr)) => {
            ns.ip6tables_append(
                "filter",
                "INPUT",
                &netclaim_harness::firewall::drop_syn_rule(addr.port()),
            )
            .with_context(|| format!("installing the IPv6 SYN DROP rule in {}", ns.name()))?;
            (
                None,
                target.clone(),
                format!(
                    "ip6tables -A INPUT -p tcp --dport {} --syn -j DROP, target {addr}",
                    addr.port()
                ),
            )
        }
        (Server::None | Server::Refuse, Target::Tcp6(addr)) => (
            None,
            target.clone(),
            format!("nothing listens on {addr}: the kernel answers a SYN with RST"),
        ),
        (Server::Reject, Target::Tcp(addr)) => {
            let with = lab.reject_with.clone().unwrap_or_default();
            let host = peer.as_ref().context("reject needs its peer")?;
            let rule = format!(
                "-p tcp --dport {} -j REJECT --reject-with {with}",
                addr.port()
            );
            host.iptables_append("filter", "INPUT", &rule)
                .with_context(|| format!("installing the REJECT rule in {}", host.name()))?;
            (
                None,
                target.clone(),
                format!(
                    "client {} on a {} to {} ({}), whose iptables -A INPUT {rule}; target {addr}",
                    BlackholeLab::CLIENT,
                    if wire.is_some() { "wire" } else { "veth" },
                    BlackholeLab::HOST,
                    host.name()
                ),
            )
        }
        (Server::Unroutable, Target::Tcp(addr)) => (
            None,
            target.clone(),
            format!("only lo in the lab: no route to {addr}"),
        ),
        (Server::DiesAfterHandshake, Target::Tcp(addr)) => {
            let host = peer.as_ref().context("the server needs its peer")?;
            let s = SilentServer::start(host, *addr)
                .with_context(|| format!("serving on {addr} in {}", host.name()))?;
            (
                Some(ServerGuard::Silent(s)),
                target.clone(),
                format!(
                    "client {} on a {} to {} ({}), which accepts on {addr} and, once the client is connected, drops every packet (iptables -A INPUT -j DROP)",
                    BlackholeLab::CLIENT,
                    if wire.is_some() { "wire" } else { "veth" },
                    BlackholeLab::HOST,
                    host.name()
                ),
            )
        }
        (Server::Blackhole, Target::Tcp(addr)) => (
            None,
            target.clone(),
            format!(
                "client {} on a veth to {}, which drops all input; target {addr}",
                BlackholeLab::CLIENT,
                BlackholeLab::HOST
            ),
        ),
        (Server::None | Server::Refuse, Target::Tcp(addr)) => (
            None,
            target.clone(),
            format!("nothing listens on {addr}: the kernel answers a SYN with RST"),
        ),
        (Server::NeverAccept, Target::Tcp(addr)) => {
            let l = NoAcceptListener::bind(server_ns, *addr, backlog)
                .with_context(|| format!("listening on {addr}"))?;
            (
                Some(ServerGuard::NoAccept(l)),
                target.clone(),
                format!("a listener on {addr} with listen({backlog}) that never calls accept()"),
            )
        }
        (Server::NeverAcceptUnix, _) => {
            let dir = TempDir::new("eagain")?;
            let path = dir.path().join("listener.sock");
            let l = UnixNoAcceptListener::bind(&ns, &path, backlog)
                .with_context(|| format!("listening on {}", path.display()))?;
            let desc = format!(
                "a unix listener at {} with listen({backlog}) that never calls accept()",
                path.display()
            );
            (Some(ServerGuard::Unix(l, dir)), Target::Unix(path), desc)
        }
        (Server::Silent, Target::Tcp(addr)) => {
            let s = SilentServer::start(server_ns, *addr)
                .with_context(|| format!("serving on {addr}"))?;
            (
                Some(ServerGuard::Silent(s)),
                target.clone(),
                format!("a server on {addr} that accepts and never sends a byte"),
            )
        }
        (Server::Http, Target::Tcp(addr)) => {
            let body = b"netclaim lab\n".len() as u64;
            let trickle = Trickle {
                content_length: body,
                initial: body,
                chunk: body,
                interval: Duration::ZERO,
            };
            let s = SlowBodyServer::start(server_ns, *addr, trickle)
                .with_context(|| format!("serving HTTP on {addr}"))?;
            (
                Some(ServerGuard::Http(s)),
                target.clone(),
                format!("an HTTP server on {addr} answering 200 OK with {body} bytes"),
            )
        }
        (kind, Target::Unix(_)) => anyhow::bail!("server {kind:?} has no unix target"),
        (kind, Target::Tcp6(_)) => anyhow::bail!("server {kind:?} has no IPv6 target"),
    };
    let description = match (&wire, &lab.link) {
        (Some(w), Some(link)) => format!(
            "{description}; between client and peer a wire of netclaim's own: {} (seed {})",
            describe_link(link, &lab.rules),
            w.seed()
        ),
        _ => description,
    };
    Ok(Ok(Built {
        description: format!("lab {}: {description}", ns.name()),
        wire,
        ns,
        peer,
        _server: server,
        target,
        notes,
    }))
}

/// An address no lab has a route to (RFC 5737 TEST-NET-3).
const UNROUTABLE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// A client namespace (192.0.2.1, with `sysctls`) on a veth to a peer (192.0.2.2) that
/// accepts everything until the claim says otherwise.
fn peer_lab(sysctls: &[(&str, &str)]) -> Result<(NetNs, NetNs)> {
    let client = NetNs::with_sysctls(sysctls).context("creating the client namespace")?;
    let host = NetNs::new().context("creating the peer namespace")?;
    netclaim_harness::link::veth_pair(&client, BlackholeLab::CLIENT, &host, BlackholeLab::HOST, 24)
        .context("linking client and peer")?;
    Ok((client, host))
}

/// A client namespace (192.0.2.1, with `sysctls`) and a peer (192.0.2.2) with the wire
/// `spec` between them instead of a veth.
fn linked_lab(
    sysctls: &[(&str, &str)],
    spec: netclaim_harness::wire::WireSpec,
) -> Result<(NetNs, NetNs, netclaim_harness::wire::Wire)> {
    let client = NetNs::with_sysctls(sysctls).context("creating the client namespace")?;
    let peer = NetNs::new().context("creating the peer namespace")?;
    let wire = netclaim_harness::wire::Wire::between_addrs(
        &client,
        BlackholeLab::CLIENT,
        &peer,
        BlackholeLab::HOST,
        24,
        spec,
    )
    .context("putting the wire between client and peer")?;
    Ok((client, peer, wire))
}

/// The most packets of a wire's log the evidence shows.
const WIRE_TIMELINE_MAX: usize = 40;

/// The wire's first packets, both ways in the order they entered it: when each was sent
/// into the wire and when it left it (delivered), or what became of it instead.
fn wire_timeline(report: &netclaim_harness::wire::WireReport, max: usize) -> String {
    use netclaim_harness::wire::Fate;
    let mut entries: Vec<(&str, &netclaim_harness::wire::LogEntry)> = report
        .to_peer
        .log
        .iter()
        .map(|e| ("to peer  ", e))
        .chain(report.from_peer.log.iter().map(|e| ("from peer", e)))
        .collect();
    entries.sort_by_key(|(_, e)| e.arrived_us);
    let total = entries.len();
    let secs = |us: u64| us as f64 / 1e6;
    let mut text = String::from("--- the wire: sent into it → left it ---");
    for (way, e) in entries.into_iter().take(max) {
        let flags = e
            .tcp_flags
            .map(|f| format!(" [{}]", netclaim_harness::capture::TcpFlags(f)))
            .unwrap_or_else(|| format!(" (not TCP, {} B)", e.len));
        let payload = e
            .tcp_payload
            .filter(|p| *p > 0)
            .map(|p| format!(" {p} B"))
            .unwrap_or_default();
        let fate = match (e.fate, e.sent_us) {
            (Fate::Delivered, Some(t)) => format!("→ {:.3} s", secs(t)),
            (Fate::Corrupted, Some(t)) => format!("→ {:.3} s, corrupted", secs(t)),
            (Fate::Held, _) => "still held when the wire stopped".into(),
            (Fate::Lost, _) => "lost".into(),
            (Fate::Limit, _) => "dropped: the queue was full".into(),
            (Fate::RuleDrop(n), _) => format!("dropped by rule {n}"),
            (Fate::Reset(n), _) => format!("reset by rule {n}"),
            (Fate::Icmp(n), _) => format!("answered with ICMP by rule {n}"),
            (_, None) => "not sent".into(),
        };
        text.push_str(&format!(
            "\n{:>9.3} s  {way}  #{}{flags}{payload}  {fate}",
            secs(e.arrived_us),
            e.n
        ));
    }
    if total > max {
        text.push_str(&format!("\n… {} more packets (counted above)", total - max));
    }
    text
}

/// The round trip of the lab's wire from its fixed delays (zero without one).
fn link_rtt(spec: &ClaimSpec) -> Duration {
    spec.lab.link.as_ref().map_or(Duration::ZERO, |l| {
        let (to, from) = l.delays();
        to + from
    })
}

/// `lab.link` and `lab.rules` in words, for the lab's description.
pub fn describe_link(link: &crate::link::LinkSpec, rules: &[crate::link::RuleSpec]) -> String {
    let mut text = toml::to_string(link)
        .map(|t| t.lines().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    if text.is_empty() {
        text = "a perfect wire".into();
    }
    for r in rules {
        text.push_str(&format!(
            "; rule: toward the {:?}{}{}{}{}, {}",
            r.toward,
            r.flags
                .as_ref()
                .map(|f| format!(", flags {f}"))
                .unwrap_or_default(),
            r.not_flags
                .as_ref()
                .map(|f| format!(", not {f}"))
                .unwrap_or_default(),
            r.nth.map(|n| format!(", the #{n}")).unwrap_or_default(),
            r.after_bytes
                .map(|b| format!(", past byte {b}"))
                .unwrap_or_default(),
            r.action
        ));
    }
    text
}

/// Reads the model's inputs and the claim's own sysctls in the lab.
fn in_force(spec: &ClaimSpec, ns: &NetNs) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let names = MODEL_INPUTS
        .iter()
        .chain(aftersyn::MODEL_INPUTS)
        .map(|s| (*s).to_owned())
        .chain(spec.lab.sysctls.keys().cloned())
        .chain(spec.lab.sysctls_if_present.keys().cloned())
        .chain(spec.sweep.iter().map(|s| s.sysctl.clone()));
    for name in names {
        if let Some(v) = ns.sysctl_opt(&name)? {
            out.insert(name, v);
        }
    }
    Ok(out)
}

/// `{target}`, `{ip}`, `{port}`, `{dir}` replaced.
fn substitute(arg: &str, target: &Target, dir: Option<&Path>) -> String {
    let (ip, port) = match target {
        Target::Tcp(a) => (a.ip().to_string(), a.port().to_string()),
        Target::Tcp6(a) => (a.ip().to_string(), a.port().to_string()),
        Target::Unix(_) => (String::new(), String::new()),
    };
    let dir = dir
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| ".".into());
    arg.replace("{target}", &target.text())
        .replace("{ip}", &ip)
        .replace("{port}", &port)
        .replace("{dir}", &dir)
}

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
fn act(
    spec: &ClaimSpec,
    built: &Built,
    in_force: &BTreeMap<String, String>,
    dir: Option<&Path>,
) -> Result<RunRecord> {
    let run = spec.run.as_ref().context("a lab without an action")?;
    let after_client = matches!(
        run.client,
        Some(Client::Send | Client::Idle | Client::Close | Client::SynOnly)
    );
    // Clients after the SYN and rejections need every segment (data, probes, ICMP).
    let every_segment = after_client || spec.lab.server == Server::Reject;
    let capture = match built.target.sock() {
        Some(addr) => Some(
            if every_segment {
                built.ns.capture_tcp_all(addr.port())
            } else {
                built.ns.capture_tcp(addr.port())
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
            let p = plan(spec, in_force, &argv, built.target.tcp());
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
                .ns
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
        (None, Some(c @ (Client::Send | Client::Idle | Client::Close | Client::SynOnly))) => {
            let addr = built
                .target
                .sock()
                .context("the client needs a TCP target")?;
            let limit = after_limit(run, c, spec);
            let (errno, duration, what, after) =
                aftersyn::act(c, spec, &built.ns, built.peer.as_ref(), addr, limit)?;
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
        (None, Some(Client::Connect)) => {
            let addr = built.target.sock().context("connect needs a TCP target")?;
            let opts = aftersyn::sock_opts(&run.socket);
            let started = std::time::Instant::now();
            let o = netclaim_fixtures::conn::connect_with(&built.ns, addr, &opts)?;
            span = Some((started, std::time::Instant::now(), false));
            record.command_line = format!(
                "blocking connect({addr}) from {}{}",
                built.ns.name(),
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
                    client::unix_connect_nonblocking(&built.ns, path, wait)
                }),
                Target::Tcp(addr) => {
                    client::fill(cap, || client::connect_nonblocking(&built.ns, *addr, wait))
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
            let (queue, ss_text) =
                lab::ss_listener(&built.ns, args, |l| l.contains(&listener), col)?;
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
            let ex = netclaim_fixtures::ports::hold_connections(&built.ns, addr, 70_000)?;
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
            aftersyn::from_wire(run.client, after, &events, addr.port(), capture_started);
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
            let first = lab::first_syn_at(&events, addr.port(), cap_started);
            record.timed = Some(lab::Measurement::record(
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
        record.rsts = events
            .iter()
            .filter(|e| e.flags.is_rst() && e.icmp.is_none())
            .count();
        record.evidence.push_str(&format!(
            "\n--- wire ---\n{}",
            if events.is_empty() {
                "(no handshake packets)".into()
            } else {
                capture::timeline(&events)
            }
        ));
    }
    Ok(record)
}

/// Builds one lab and runs the action in it.
fn lab_and_run(
    spec: &ClaimSpec,
    extra: Option<(&str, String)>,
    dir: Option<&Path>,
) -> Result<LabRecord> {
    let mut built = match build(spec, extra)? {
        Ok(b) => b,
        Err(reason) => {
            return Ok(LabRecord {
                refused: Some(reason),
                ..LabRecord::default()
            })
        }
    };
    let in_force = in_force(spec, &built.ns)?;
    let run = match &spec.run {
        Some(_) => Some(act(spec, &built, &in_force, dir)?),
        None => None,
    };
    let mut notes = built.notes.clone();
    notes.insert(0, built.description.clone());
    let mut timeline = None;
    let link = built.wire.take().map(|w| {
        let report = w.finish();
        timeline = Some(wire_timeline(&report, WIRE_TIMELINE_MAX));
        LinkRecord {
            seed: report.seed,
            to_peer: LinkCounts::from(&report.to_peer),
            from_peer: LinkCounts::from(&report.from_peer),
        }
    });
    let mut run = run;
    if let Some(l) = &link {
        notes.push(format!(
            "the wire (seed {}): toward the peer {}; from the peer {}",
            l.seed, l.to_peer, l.from_peer
        ));
        // A packet the relay released late is a late event to the kernels at both ends,
        // as a late timer is: a round trip's worth of it joins every timing's error.
        let late = l.to_peer.late_max_us.unwrap_or(0) + l.from_peer.late_max_us.unwrap_or(0);
        if let Some(t) = timeline.take() {
            notes.push(t);
        }
        if let Some(t) = run.as_mut().and_then(|r| r.timed.as_mut()) {
            t.late_us += late;
            t.syn_late_us.iter_mut().for_each(|s| *s += late);
            notes.push(format!(
                "each timing's error includes the wire's release lateness, {:.1} ms a round trip",
                late as f64 / 1000.0
            ));
        }
    }
    Ok(LabRecord {
        name: built.ns.name().to_owned(),
        target: built.target.text(),
        in_force,
        notes,
        refused: None,
        run,
        link,
    })
}

/// Measures a claim file's claim: its fresh-namespace sysctls, then its lab(s) and run.
/// `dir` is the claim file's directory (for `{dir}`).
pub fn measure(spec: &ClaimSpec, ctx: &Ctx, dir: Option<&Path>) -> Result<Measurement> {
    let mut m = Measurement {
        kernel: ctx.kernel.clone(),
        hz: ctx.hz,
        rootless: netclaim_harness::userns::mode().rootless(),
        ..Measurement::default()
    };
    let fresh_names: Vec<&String> = spec
        .expect
        .sysctls
        .keys()
        .chain(spec.model.defaults.keys())
        .collect();
    if !fresh_names.is_empty() {
        let ns = NetNs::new().context("creating a fresh namespace")?;
        for name in fresh_names {
            m.fresh.insert(name.clone(), ns.sysctl_opt(name)?);
        }
    }
    if let Some(argv0) = spec
        .run
        .as_ref()
        .and_then(|r| r.command.as_ref())
        .and_then(|c| c.first())
    {
        m.tool_version = netclaim_harness::command::tool_version(argv0);
    }
    match &spec.sweep {
        Some(sweep) => {
            let values: Vec<String> = sweep.values.iter().map(Value::text).collect();
            let done = bounded("sweep-point", SWEEP_JOBS, values.len(), |i| {
                let lab = lab_and_run(spec, Some((sweep.sysctl.as_str(), values[i].clone())), dir)?;
                Ok((values[i].clone(), lab))
            });
            for r in done {
                m.sweep.push(r?);
            }
        }
        None if spec.run.is_some() || !spec.lab.sysctls.is_empty() => {
            m.lab = Some(lab_and_run(spec, None, dir)?);
        }
        None => {}
    }
    Ok(m)
}

/// Runs `job(0..n)` on at most `slots` threads named `name`, each taking the next index
/// as it finishes one; returns the results in index order. A job whose thread panicked is
/// an error naming it; when no thread can be started at all, every job is the harness's
/// error (out of threads).
fn bounded<T: Send>(
    name: &str,
    slots: usize,
    n: usize,
    job: impl Fn(usize) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return out;
            }
            out.push((i, job(i)));
        }
    };
    let mut results: Vec<Option<Result<T>>> = (0..n).map(|_| None).collect();
    let mut spawn_error = None;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..slots.clamp(1, n.max(1)))
            .filter_map(|_| {
                match std::thread::Builder::new()
                    .name(name.to_owned())
                    .spawn_scoped(s, worker)
                {
                    Ok(h) => Some(h),
                    Err(e) => {
                        spawn_error.get_or_insert(e);
                        None
                    }
                }
            })
            .collect();
        for h in handles {
            // A panicking job loses its worker's results: those jobs are reported below.
            if let Ok(done) = h.join() {
                for (i, r) in done {
                    results[i] = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(match &spawn_error {
                    Some(e) if next.load(std::sync::atomic::Ordering::Relaxed) == 0 => {
                        let again = e.raw_os_error().map_or_else(
                            || std::io::Error::new(e.kind(), e.to_string()),
                            std::io::Error::from_raw_os_error,
                        );
                        HarnessError::thread_spawn(name, again).into()
                    }
                    _ => anyhow::anyhow!("a {name} thread panicked"),
                })
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Judging

/// What in a measurement of `spec` contradicts the claim, the run it was recorded in
/// (`ctx`) or itself: each problem in words. Checked before judging (see
/// [`crate::claim::Claim::judge`]).
pub fn inconsistencies(spec: &ClaimSpec, m: &Measurement, ctx: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    if m.hz != ctx.hz {
        out.push(format!(
            "measured with hz {} in a run with hz {}",
            m.hz, ctx.hz
        ));
    }
    if m.kernel != ctx.kernel {
        out.push(format!(
            "measured on Linux {:?} in a run on Linux {:?}",
            m.kernel, ctx.kernel
        ));
    }
    for name in spec.expect.sysctls.keys().chain(spec.model.defaults.keys()) {
        if !m.fresh.contains_key(name) {
            out.push(format!(
                "the claim reads {name} in a fresh namespace; the record does not have it"
            ));
        }
    }
    match (&spec.sweep, &m.lab) {
        (Some(sweep), _) => {
            let asked: Vec<String> = sweep.values.iter().map(Value::text).collect();
            let recorded: Vec<&String> = m.sweep.iter().map(|(v, _)| v).collect();
            if recorded != asked.iter().collect::<Vec<_>>() {
                out.push(format!(
                    "the claim sweeps {} over {asked:?}; the record has {recorded:?}",
                    sweep.sysctl
                ));
            }
            if m.lab.is_some() {
                out.push("a sweep recorded with a single lab".into());
            }
            for (value, lab) in &m.sweep {
                let name = sweep.sysctl.rsplit('.').next().unwrap_or("");
                let label = format!("{name}={value}: ");
                let extra = Some((sweep.sysctl.as_str(), value.as_str()));
                out.extend(
                    lab_inconsistencies(spec, lab, extra)
                        .into_iter()
                        .map(|p| format!("{label}{p}")),
                );
            }
        }
        (None, Some(lab)) => {
            if !m.sweep.is_empty() {
                out.push("a claim without a sweep recorded with sweep values".into());
            }
            out.extend(lab_inconsistencies(spec, lab, None));
        }
        (None, None) => {
            if spec.run.is_some() || !spec.lab.sysctls.is_empty() {
                out.push("the claim builds a lab; the record has none".into());
            }
        }
    }
    out
}

/// Whether a value read back from `/proc/sys` is the one written: the same words (the
/// kernel separates a range with a tab), or for a port list the same ports
/// (`40001,40000` reads back as `40000-40001`).
fn same_sysctl_value(written: &str, read: &str) -> bool {
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    if words(written) == words(read) {
        return true;
    }
    let ports = |s: &str| -> Option<std::collections::BTreeSet<u32>> {
        let mut all = std::collections::BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi) = (
                lo.trim().parse::<u32>().ok()?,
                hi.trim().parse::<u32>().ok()?,
            );
            if hi < lo || hi > 65535 {
                return None;
            }
            all.extend(lo..=hi);
        }
        Some(all)
    };
    matches!((ports(written), ports(read)), (Some(a), Some(b)) if a == b)
}

/// The largest number of SYNs one connection can send with the sysctls in force (and the
/// client's TCP_SYNCNT): the first and `tcp_syn_retries + tcp_syn_linear_timeouts`
/// retransmissions (tcp_write_timeout gives up then at the latest). `None` when the record
/// does not show tcp_syn_retries in force (older records).
fn max_syns(spec: &ClaimSpec, in_force: &BTreeMap<String, String>) -> Option<u64> {
    let num = |k: &str| in_force.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    let retries = match spec.run.as_ref().and_then(|r| r.socket.syncnt) {
        Some(n) => u64::from(n),
        None => num(knob::TCP_SYN_RETRIES)?,
    };
    Some(
        retries
            .saturating_add(num(knob::TCP_SYN_LINEAR_TIMEOUTS).unwrap_or(0))
            .saturating_add(1),
    )
}

/// What the kernel accepts for the sysctls the models read (net/ipv4/sysctl_net_ipv4.c,
/// net/core/sysctl_net_core.c): a record showing another value in force did not come from
/// a kernel, and the models are not asked about it (a tcp_syn_retries of 4,000,000,000
/// would have them count SYNs for ever).
const IN_FORCE_RANGES: &[(&str, u64, u64)] = &[
    (knob::TCP_SYN_RETRIES, 1, 127),
    (knob::TCP_SYN_LINEAR_TIMEOUTS, 0, 127),
    (knob::TCP_RTO_MAX_MS, 1, 120_000),
    (knob::SOMAXCONN, 0, i32::MAX as u64),
    ("net.ipv4.tcp_retries2", 0, 255),
    ("net.ipv4.tcp_synack_retries", 0, 255),
    ("net.ipv4.tcp_keepalive_probes", 0, 255),
    ("net.ipv4.tcp_keepalive_time", 0, i32::MAX as u64),
    ("net.ipv4.tcp_keepalive_intvl", 0, i32::MAX as u64),
    ("net.ipv4.tcp_fin_timeout", 0, i32::MAX as u64),
    ("net.ipv4.tcp_rto_min_us", 1, i32::MAX as u64),
];

/// Errnos the kernel has (`MAX_ERRNO`).
const MAX_ERRNO: i32 = 4095;

fn lab_inconsistencies(
    spec: &ClaimSpec,
    lab: &LabRecord,
    sweep: Option<(&str, &str)>,
) -> Vec<String> {
    let mut out = Vec::new();
    if lab.refused.is_some() {
        return out;
    }
    let set = spec
        .lab
        .sysctls
        .iter()
        .map(|(k, v)| (k.as_str(), v.text(), true))
        .filter(|(k, _, _)| sweep.is_none_or(|(name, _)| name != *k))
        .chain(
            spec.lab
                .sysctls_if_present
                .iter()
                .map(|(k, v)| (k.as_str(), v.text(), false)),
        )
        .chain(sweep.map(|(k, v)| (k, v.to_owned(), true)));
    for (name, value, required) in set {
        match lab.in_force.get(name) {
            Some(read) if !same_sysctl_value(&value, read) => out.push(format!(
                "the claim sets {name}={value}; the record shows {name}={read} in force"
            )),
            None if required => out.push(format!(
                "the claim sets {name}={value}; the record does not show it in force"
            )),
            _ => {}
        }
    }
    for (name, lo, hi) in IN_FORCE_RANGES {
        if let Some(read) = lab.in_force.get(*name) {
            if !read
                .trim()
                .parse::<u64>()
                .is_ok_and(|v| (*lo..=*hi).contains(&v))
            {
                out.push(format!(
                    "{name}={read} in force, which the kernel does not accept ({lo}..={hi})"
                ));
            }
        }
    }
    if let Some(range) = lab.in_force.get(knob::IP_LOCAL_PORT_RANGE) {
        let ports: Vec<Option<u16>> = range.split_whitespace().map(|p| p.parse().ok()).collect();
        if !matches!(ports.as_slice(), [Some(lo), Some(hi)] if lo <= hi) {
            out.push(format!(
                "{}={range} in force, which is not a range of ports",
                knob::IP_LOCAL_PORT_RANGE
            ));
        }
    }
    let Some(run) = &lab.run else {
        if spec.run.is_some() {
            out.push("the claim runs an action; the record has no run".into());
        }
        return out;
    };
    let is_command = spec.run.as_ref().is_some_and(|r| r.command.is_some());
    if let Some(command) = spec.run.as_ref().and_then(|r| r.command.as_ref()) {
        // The command line the record ran is the claim's, placeholders filled from the
        // lab's target ({dir} from wherever the file was: any text).
        let target = lab
            .target
            .parse::<SocketAddr>()
            .map(|a| match a {
                SocketAddr::V4(a) => Target::Tcp(a),
                SocketAddr::V6(a) => Target::Tcp6(a),
            })
            .unwrap_or_else(|_| Target::Unix(PathBuf::from(&lab.target)));
        let fits = |arg: &String, ran: &String| {
            if arg.contains("{dir}") {
                let (head, tail) = arg.split_once("{dir}").unwrap_or((arg, ""));
                let head = substitute(head, &target, None);
                let tail = substitute(tail, &target, None);
                ran.starts_with(&head) && ran.ends_with(&tail)
            } else {
                substitute(arg, &target, None) == *ran
            }
        };
        if run.argv.len() != command.len()
            || !command.iter().zip(&run.argv).all(|(a, r)| fits(a, r))
        {
            out.push(format!(
                "the claim runs {command:?}; the record ran {:?}",
                run.argv
            ));
        }
    }
    if let (true, Some(code)) = (run.timed_out, run.exit_code) {
        // The deadline kills the process group with SIGKILL: no exit code.
        out.push(format!(
            "killed at the harness's deadline (timed_out), yet it exited by itself with code {code}"
        ));
    }
    if let (true, Some(t)) = (run.timed_out, run.timeout_us) {
        if run.duration_us.saturating_add(10_000) < t {
            out.push(format!(
                "ended at its deadline of {} after only {}",
                secs(Duration::from_micros(t)),
                secs(run.duration())
            ));
        }
    }
    if let Some(code) = run.exit_code.filter(|c| !(0..=255).contains(c)) {
        out.push(format!(
            "exit code {code} is not one a process can exit with (0..=255)"
        ));
    }
    if !is_command && run.exit_code.is_some() {
        out.push("an exit code recorded for an in-repo client".into());
    }
    if let Some(e) = run.errno.filter(|e| !(1..=MAX_ERRNO).contains(e)) {
        out.push(format!(
            "errno {e} is not one the kernel has (1..={MAX_ERRNO})"
        ));
    }
    if run.duration_us > MAX_RECORDED_US {
        out.push(format!("a run of {} µs is beyond any run", run.duration_us));
    }
    // SYNs: ordered, from the first, split into connections that add up, within the run,
    // and no more per connection than the kernel sends before it gives up.
    let syns = &run.syn_times_us;
    if syns.first().is_some_and(|t| *t != 0) {
        out.push(format!(
            "SYN times count from the first SYN, yet they start at {} µs",
            syns[0]
        ));
    }
    if syns.windows(2).any(|w| w[1] < w[0]) {
        out.push("SYN times go back in time".into());
    }
    if run.conn_starts_us.windows(2).any(|w| w[1] < w[0]) {
        out.push("connections start back in time".into());
    }
    if !run.conn_syns.is_empty() {
        let total = run
            .conn_syns
            .iter()
            .fold(0usize, |a, n| a.saturating_add(*n));
        if total != syns.len() {
            out.push(format!(
                "{} SYNs on the wire, but the connections add up to {total}",
                syns.len()
            ));
        }
        if run.conn_starts_us.len() != run.conn_syns.len() {
            out.push(format!(
                "{} connections started, but SYN counts for {}",
                run.conn_starts_us.len(),
                run.conn_syns.len()
            ));
        }
    }
    if !run.conn_fins_us.is_empty() && run.conn_fins_us.len() != run.conn_starts_us.len() {
        out.push(format!(
            "{} connections started, but FINs recorded for {}",
            run.conn_starts_us.len(),
            run.conn_fins_us.len()
        ));
    }
    if let Some(max) = max_syns(spec, &lab.in_force) {
        let per_conn: Vec<u64> = if run.conn_syns.is_empty() {
            vec![syns.len() as u64]
        } else {
            run.conn_syns.iter().map(|n| *n as u64).collect()
        };
        if let Some(n) = per_conn.iter().find(|n| **n > max) {
            out.push(format!(
                "{n} SYNs on one connection, where the sysctls in force allow at most {max} (tcp_syn_retries or TCP_SYNCNT, plus tcp_syn_linear_timeouts, plus the first)"
            ));
        }
    }
    if let Some(timed) = &run.timed {
        if timed.syn_times_us != run.syn_times_us {
            out.push("the timed attempt's SYN times differ from the run's".into());
        }
    }
    if let (Some(n), Some(cap)) = (run.connections, run.connection_cap) {
        if n > cap {
            out.push(format!("{n} connections from a client capped at {cap}"));
        }
    }
    if let Some((recv_q, send_q)) = run.listener_queue {
        if recv_q > send_q.saturating_add(1) {
            out.push(format!(
                "the listener queues {recv_q} connections with a backlog of {send_q}: at most one more fits"
            ));
        }
    }
    out
}

/// [`crate::recording::MAX_RECORDED`] in µs.
const MAX_RECORDED_US: u64 = crate::recording::MAX_RECORDED.as_micros() as u64;

/// [`SynSchedule::syns_before`] a deadline a program keeps from its own start: it armed its timer
/// somewhere between its spawn and its first SYN (`startup`, measured), so from the first
/// SYN its deadline came up to that much sooner (a shell script's `timeout 5` started
/// 0.9 s before its connect on a loaded machine and let 4 SYNs out, not 5).
fn syns_before_tool_deadline(
    schedule: &SynSchedule,
    deadline: Duration,
    startup: Option<Duration>,
) -> (usize, usize) {
    let earliest = deadline.saturating_sub(startup.unwrap_or_default());
    (
        schedule.syns_before(earliest).0,
        schedule.syns_before(deadline).1,
    )
}

fn check_syn_range(o: &mut Outcome, what: &str, range: (usize, usize), observed: usize) {
    let expected = if range.0 == range.1 {
        range.0.to_string()
    } else {
        format!("{}..={}", range.0, range.1)
    };
    o.model_check(
        what,
        expected,
        observed.to_string(),
        (range.0..=range.1).contains(&observed),
    );
}

/// The last non-empty line of `text`.
pub fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .unwrap_or_default()
}

/// Checks that `text` contains one of `needles`.
fn check_contains_any(
    o: &mut Outcome,
    against: Against,
    what: &str,
    text: &str,
    needles: &[String],
    ignore_case: bool,
) {
    let fold = |s: &str| {
        if ignore_case {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let hay = fold(text);
    let found = needles.iter().find(|n| hay.contains(&fold(n)));
    let expected = match needles {
        [one] => format!(
            "contains {one:?}{}",
            if ignore_case { " (any case)" } else { "" }
        ),
        _ => format!("contains one of {needles:?}"),
    };
    let observed = found
        .and_then(|n| {
            text.lines()
                .find(|l| fold(l).contains(&fold(n)))
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| last_line(text));
    against.record(o, what, expected, format!("{observed:?}"), found.is_some());
}

/// The duration window the statement's give-up time is judged with.
fn stated_window(
    expect: &ExpectSpec,
    stated: Duration,
    plan: &Plan,
    hz: u32,
    startup: Duration,
) -> Window {
    if let Some(t) = &expect.tolerance {
        let tol = t.around(stated).unwrap_or_default();
        return Window {
            min: stated.saturating_sub(tol),
            max: stated + tol,
        };
    }
    match (&plan.end, &plan.schedule) {
        // Judged with the slack of the timers this kernel really arms.
        (End::Kernel | End::NoLaterThanKernel, Some(schedule)) => {
            lab::give_up_window(stated, schedule, hz, startup)
        }
        (End::AfterSyn(_), _) => aftersyn::window(stated, &plan.intervals, hz),
        _ => tool_deadline_window(stated),
    }
}

/// Judges a recorded measurement of `spec`: the statement's checks decide the verdict,
/// the model's checks what `cargo test` asserts.
pub fn judge(spec: &ClaimSpec, m: &Measurement) -> Outcome {
    let mut o = Outcome::default();
    judge_defaults(spec, m, &mut o);
    if let Some(lab) = &m.lab {
        judge_lab(spec, &spec.expect, lab, m, "", &mut o);
    }
    let mut claimed = Vec::new();
    let mut expected = Vec::new();
    let mut observed = Vec::new();
    for (value, lab) in &m.sweep {
        let expect = spec
            .expect
            .each
            .get(value)
            .cloned()
            .unwrap_or_else(|| spec.expect.clone());
        let name = spec
            .sweep
            .as_ref()
            .map_or("", |s| s.sysctl.rsplit('.').next().unwrap_or(""));
        let mut part = Outcome::default();
        judge_lab(
            spec,
            &expect,
            lab,
            m,
            &format!("{name}={value}: "),
            &mut part,
        );
        if let Some((v, reason)) = part.forced.take() {
            o.forced
                .get_or_insert((v, format!("{name}={value}: {reason}")));
        }
        let d = |f: &Figures| {
            f.duration_ms
                .map_or("?".into(), |ms| format!("{:.2}s", ms as f64 / 1000.0))
        };
        claimed.push(format!("{value}:{}", d(&part.claimed)));
        expected.push(format!("{value}:{}", d(&part.expected)));
        observed.push(format!("{value}:{}", d(&part.observed)));
        o.claim_checks.extend(part.claim_checks);
        o.model_checks.extend(part.model_checks);
        o.evidence.extend(part.evidence);
        o.timelines.extend(part.timelines);
    }
    if !m.sweep.is_empty() {
        o.claimed.value = Some(claimed.join(" "));
        o.expected.value = Some(expected.join(" "));
        o.observed.value = Some(observed.join(" "));
    }
    if let Some(v) = &m.tool_version {
        let program = spec
            .run
            .as_ref()
            .and_then(|r| r.command.as_ref())
            .and_then(|c| c.first())
            .cloned()
            .unwrap_or_default();
        o.evidence(format!("{program} version: {v}"));
    }
    o
}

/// The documented default of `by_release` for `release`: the entry of the highest
/// release not above it.
fn documented(by_release: &BTreeMap<String, Value>, release: &str) -> Option<String> {
    let now = crate::spec::parse_release(release)?;
    by_release
        .iter()
        .filter_map(|(r, v)| Some((crate::spec::parse_release(r)?, v)))
        .filter(|(r, _)| *r <= now)
        .max_by_key(|(r, _)| *r)
        .map(|(_, v)| v.text())
}

fn judge_defaults(spec: &ClaimSpec, m: &Measurement, o: &mut Outcome) {
    if m.fresh.is_empty() {
        return;
    }
    // A knob the kernel hides from namespaces of a user namespace is absent there for
    // that reason, not because this kernel lacks it.
    if m.rootless && m.fresh.get(knob::SOMAXCONN) == Some(&None) {
        o.forced = Some((
            Verdict::NotApplicable,
            format!(
                "{} is absent in a network namespace owned by a user namespace on Linux {} \
                 (before 6.3, sysctl_core_net_init does not offer it there): run as root to read \
                 its default",
                knob::SOMAXCONN,
                m.kernel
            ),
        ));
        return;
    }
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
    let mut claimed = Vec::new();
    let mut expected = Vec::new();
    let mut observed = Vec::new();
    for (name, value) in &spec.expect.sysctls {
        let seen = shown(m.fresh.get(name).unwrap_or(&None));
        claimed.push(format!("{name}={value}"));
        check_eq(
            o,
            Against::Statement,
            &format!("{name} default"),
            value.text(),
            seen,
        );
    }
    for (name, by_release) in &spec.model.defaults {
        let seen = shown(m.fresh.get(name).unwrap_or(&None));
        match documented(by_release, &m.kernel) {
            Some(doc) => {
                expected.push(format!("{name}={doc}"));
                let reference = spec
                    .model
                    .reference
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                check_eq(
                    o,
                    Against::Model,
                    &format!(
                        "{name} default documented for Linux {}{reference}",
                        m.kernel
                    ),
                    doc,
                    seen.clone(),
                );
            }
            None => o.model_check(
                &format!("{name} default documented for Linux {}", m.kernel),
                "a release listed in model.defaults",
                format!("none at or below {}", m.kernel),
                false,
            ),
        }
    }
    for name in m.fresh.keys() {
        observed.push(format!("{name}={}", shown(&m.fresh[name])));
    }
    o.evidence(format!(
        "a fresh namespace on Linux {} (it starts from the kernel's built-in defaults, not the host's values): {}",
        m.kernel,
        observed.join(", ")
    ));
    let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join(", "));
    o.claimed.value = join(claimed);
    o.expected.value = join(expected);
    o.observed.value = join(observed);
}

fn judge_lab(
    spec: &ClaimSpec,
    expect: &ExpectSpec,
    lab: &LabRecord,
    m: &Measurement,
    label: &str,
    o: &mut Outcome,
) {
    if let Some(reason) = &lab.refused {
        o.forced = Some((Verdict::NotApplicable, reason.clone()));
        return;
    }
    o.evidence(format!(
        "{}; in force: {}",
        lab.notes.join("; "),
        lab.in_force
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let Some(run) = &lab.run else {
        return;
    };
    o.evidence(run.evidence.clone());
    let target = lab.target.parse::<SocketAddrV4>().ok();
    let mut plan = plan(spec, &lab.in_force, &run.argv, target);
    if let End::AfterSyn(c) = &plan.end {
        let rtt = run
            .after
            .as_ref()
            .and_then(|a| a.kernel_rtt_us.or(a.rtt_us))
            .map(Duration::from_micros);
        let p = aftersyn::predict(*c, spec, &lab.in_force, rtt, m.hz);
        plan.intervals = p.intervals;
        plan.schedule = Some(p.schedule);
    }
    let target = target.unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let is_command = spec.run.as_ref().is_some_and(|r| r.command.is_some());
    let startup = if is_command {
        TOOL_STARTUP
    } else {
        Duration::ZERO
    };
    let what = |w: &str| format!("{label}{w}");
    let syns = run.syn_times();
    let duration = run.duration();
    let timed = run.timed();
    let took = timed.took();
    let output = run.output();
    let model = plan.model.map(|m| lab::describe_model(&m));

    // Figures.
    o.claimed = Figures::default();
    if let Some(d) = expect.duration {
        o.claimed = o.claimed.clone().duration(d.0);
    }
    if let Some(times) = &expect.syn_times {
        o.claimed = o
            .claimed
            .clone()
            .syn_times(&times.iter().map(|s| s.0).collect::<Vec<_>>());
    } else if let Some(n) = expect.syns {
        o.claimed.syn_count = Some(n);
    }
    o.claimed.errno = expect
        .errno
        .as_ref()
        .and_then(|e| e.errno())
        .map(|e| e as i32);
    o.claimed.exit_code = expect.exit;
    o.claimed.value = expect
        .output_line
        .clone()
        .or_else(|| {
            [&expect.stderr, &expect.stdout, &expect.output]
                .into_iter()
                .flatten()
                .next()
                .map(|t| t.items().join(", "))
        })
        .or_else(|| {
            expect.killed.map(|k| {
                if k {
                    "still blocked when killed".into()
                } else {
                    "ends by itself".into()
                }
            })
        });
    o.observed = Figures::default().duration(took);
    if run.command_line.is_empty() || target.port() != 0 || !syns.is_empty() {
        o.observed = o.observed.clone().syn_times(&syns);
    }
    o.observed.errno = run.errno;
    o.observed.exit_code = run.exit_code;
    o.observed.value = if let Some(n) = run.connections {
        Some(format!("{n} connections"))
    } else if is_command {
        Some(last_line(&output))
    } else {
        None
    };

    // The statement.
    statement_checks(expect, run, &plan, m.hz, startup, &what, o);

    // The prediction.
    let mut expected = Figures::default();
    match &plan.end {
        End::Kernel | End::NoLaterThanKernel => {
            let schedule = plan.schedule.clone().unwrap_or_else(no_schedule);
            if plan.end == End::Kernel && plan.tries <= 1 {
                let first = o.model_checks.len();
                check_schedule(o, Against::Model, &schedule, &timed, &ctx_of(m), startup);
                for c in &mut o.model_checks[first..] {
                    c.what = what(&c.what);
                }
                expected = expected
                    .duration(schedule.give_up)
                    .syn_times(&schedule.send_times);
            } else if plan.end == End::NoLaterThanKernel {
                let window = lab::give_up_window(schedule.give_up, &schedule, m.hz, startup);
                check_timing(
                    o,
                    Against::Model,
                    &what("ends no later than the kernel gives up"),
                    schedule.give_up,
                    Window {
                        min: Duration::ZERO,
                        max: window.max,
                    },
                    &timed.kernel_give_up(),
                );
                expected.value = Some(format!(
                    "at most {} (the kernel's give-up)",
                    secs(schedule.give_up)
                ));
            }
            if plan.tries > 1 {
                judge_tries(
                    expect,
                    run,
                    &plan,
                    schedule.give_up,
                    &what,
                    o,
                    &mut expected,
                );
            }
            if is_command {
                if let Some(p) = plan.program {
                    let f = toolmodel::connect_failed(p, &plan.argv, Errno::ETIMEDOUT, target);
                    tool_failure_checks(&f, run, &what, o, &mut expected);
                }
                if run.errno.is_some() || run.connect_calls.is_some() {
                    check_eq(
                        o,
                        Against::Model,
                        &what("connect() errno"),
                        Some(Errno::ETIMEDOUT),
                        run.errno.map(Errno::from_raw),
                    );
                    expected.errno = Some(Errno::ETIMEDOUT as i32);
                }
            } else {
                check_eq(
                    o,
                    Against::Model,
                    &what("errno"),
                    Some(Errno::ETIMEDOUT),
                    run.errno.map(Errno::from_raw),
                );
                expected.errno = Some(Errno::ETIMEDOUT as i32);
            }
            o.timelines.push(lab::timeline(
                &format!(
                    "{}{}: {}",
                    label,
                    plan.program.map_or(
                        if is_command { "command" } else { "connect()" },
                        Program::name
                    ),
                    model.clone().unwrap_or_default()
                ),
                &syns,
                &schedule,
                Some(took),
            ));
        }
        End::ToolConnect { deadline, failure } => {
            let schedule = plan.schedule.clone().unwrap_or_else(no_schedule);
            let who = plan.program.map_or("the program", Program::name);
            if plan.tries > 1 {
                judge_tries(expect, run, &plan, *deadline, &what, o, &mut expected);
            } else {
                check_tool_deadline(o, &what, *deadline, &timed.tool_timer(), &mut expected);
                check_syn_range(
                    o,
                    &what(&format!("SYNs sent before {who} gives up")),
                    syns_before_tool_deadline(&schedule, *deadline, timed.startup()),
                    syns.len(),
                );
            }
            if let Some(f) = failure {
                tool_failure_checks(f, run, &what, o, &mut expected);
            }
            o.timelines.push(lab::timeline(
                &format!("{label}{who}: {}", model.clone().unwrap_or_default()),
                &syns,
                &schedule,
                Some(took),
            ));
        }
        End::Refused => {
            let rst = run.rsts > 0;
            o.model_check(&what("RST on the wire"), "true", rst.to_string(), rst);
            // From the SYN (answered by RST at once, or after the wire's round trip) to
            // the end: that round trip and process work only.
            let rtt = link_rtt(spec);
            check_timing(
                o,
                Against::Model,
                &what(if rtt.is_zero() {
                    "fails at once (no timer involved)"
                } else {
                    "fails after one round trip of the wire (no timer involved)"
                }),
                rtt,
                Window {
                    min: rtt,
                    max: rtt + TOOL_STARTUP,
                },
                &timed.tool_timer(),
            );
            if is_command {
                if let Some(p) = plan.program {
                    tool_failure_checks(
                        &toolmodel::connect_failed(p, &plan.argv, Errno::ECONNREFUSED, target),
                        run,
                        &what,
                        o,
                        &mut expected,
                    );
                }
            } else {
                check_eq(
                    o,
                    Against::Model,
                    &what("errno"),
                    Some(Errno::ECONNREFUSED),
                    run.errno.map(Errno::from_raw),
                );
                expected.errno = Some(Errno::ECONNREFUSED as i32);
            }
        }
        End::ToolRead { deadline, failure } => {
            if plan.tries > 1 {
                judge_tries(expect, run, &plan, *deadline, &what, o, &mut expected);
            } else {
                check_tool_deadline(o, &what, *deadline, &run.until_close(), &mut expected);
            }
            check_handshake(o, &what, run, target);
            if plan.program.is_some() {
                tool_failure_checks(failure, run, &what, o, &mut expected);
            }
        }
        End::Blocks => {
            check_handshake(o, &what, run, target);
            o.model_check(
                &what("no timer fires: killed at the harness deadline"),
                "timed_out=true",
                format!("timed_out={} after {}", run.timed_out, secs(duration)),
                run.timed_out,
            );
            expected.value = Some("still blocked when killed".into());
        }
        End::Completes => {
            if is_command {
                check_eq(
                    o,
                    Against::Model,
                    &what("exit code"),
                    Some(0),
                    run.exit_code,
                );
                expected.exit_code = Some(0);
            } else {
                check_eq(
                    o,
                    Against::Model,
                    &what("errno"),
                    None,
                    run.errno.map(Errno::from_raw),
                );
            }
        }
        End::Exhausts => judge_exhaustion(spec, lab, run, &what, o, &mut expected),
        End::Rejected(r) => {
            let after = run.after.clone().unwrap_or_default();
            aftersyn::judge_rejection(
                r,
                m.hz,
                run.errno.map(Errno::from_raw),
                &run.timed().kernel_give_up(),
                syns.len(),
                &after,
                run.rsts,
                &what,
                o,
            );
            expected = o.expected.clone();
        }
        End::AfterSyn(c) => {
            let after = run.after.clone().unwrap_or_default();
            aftersyn::judge(
                *c,
                spec,
                &lab.in_force,
                &after,
                run.errno.map(Errno::from_raw),
                &aftersyn::end_measured(&after, duration),
                m.hz,
                &what,
                o,
            );
            expected = o.expected.clone();
        }
    }
    o.expected = expected;
    if let Some(why) = cut_short(spec, expect, run, &plan).or_else(|| capped(spec, lab, run)) {
        o.forced = Some((Verdict::Error, why));
    }
}

/// When the harness ended the run at its own deadline and the claim is not about that
/// (`expect.killed` on a command, or a command the model predicts blocks until killed),
/// why the measurement is no observation: it was cut short, whatever it shows. A `1s`
/// run.timeout on a curl that gives up after 3 s says nothing about curl's 3 s.
fn cut_short(
    spec: &ClaimSpec,
    expect: &ExpectSpec,
    run: &RunRecord,
    plan: &Plan,
) -> Option<String> {
    if !run.timed_out {
        return None;
    }
    let is_command = spec.run.as_ref().is_some_and(|r| r.command.is_some());
    if is_command && (expect.killed.is_some() || plan.end == End::Blocks) {
        return None;
    }
    let set = spec.run.as_ref().and_then(|r| r.timeout).is_some();
    let deadline = match (run.timeout_us, set) {
        (Some(us), true) => format!("its run.timeout of {}", secs(Duration::from_micros(us))),
        (Some(us), false) => format!(
            "its default deadline of {} (twice the prediction plus 30 s)",
            secs(Duration::from_micros(us))
        ),
        (None, _) => "its deadline".to_owned(),
    };
    let after = secs(run.duration());
    let who = plan.program.map_or(
        if is_command {
            "the command"
        } else {
            "the client"
        },
        Program::name,
    );
    let predicted = match (&plan.end, plan.ends_after, &plan.schedule) {
        (End::Kernel, Some(d), _) => format!("the kernel gives up after {}", secs(d)),
        (End::NoLaterThanKernel, Some(d), _) => {
            format!(
                "{who} ends no later than the kernel gives up, after {}",
                secs(d)
            )
        }
        (End::ToolConnect { .. } | End::ToolRead { .. }, Some(d), _) => {
            format!("{who} gives up by itself after {}", secs(d))
        }
        (End::AfterSyn(_), _, Some(s)) => format!("the kernel ends it after {}", secs(s.give_up)),
        (End::Refused | End::Rejected(_), _, _) => format!("{who} fails at once"),
        _ => format!("{who} ends by itself"),
    };
    let ended = if is_command {
        format!("the harness killed {who} at {deadline}, after {after}")
    } else {
        format!("the harness stopped waiting for {who} at {deadline}, after {after}")
    };
    let advice = if is_command {
        "give a longer run.timeout, or expect.killed = true if being killed is what the claim is about"
    } else {
        "give a longer run.timeout"
    };
    Some(format!(
        "{ended}, before it ended by itself (the model predicts: {predicted}): a measurement \
         cut short by the harness is not an observation; {advice}"
    ))
}

/// When a fill client stopped at its own cap, why that is no observation: the harness's
/// limit, not the queue's.
fn capped(spec: &ClaimSpec, lab: &LabRecord, run: &RunRecord) -> Option<String> {
    let (Some(cap), Some(n)) = (run.connection_cap, run.connections) else {
        return None;
    };
    (n >= cap).then(|| {
        let stated = spec
            .expect
            .connections
            .map(|c| format!(", the claim {c}"))
            .unwrap_or_default();
        format!(
            "the fill client stopped at its cap of {cap} connections without a failure (the \
             model expects {}{stated}): the harness's limit, not the queue's; not an observation",
            fill_expected(spec, &lab.in_force)
        )
    })
}

/// The schedule of a plan without unanswered SYNs (never used for judging timing).
fn no_schedule() -> SynSchedule {
    SynSchedule {
        send_times: Vec::new(),
        give_up: Duration::ZERO,
    }
}

/// The model check of a deadline the tool keeps itself.
fn check_tool_deadline(
    o: &mut Outcome,
    what: &dyn Fn(&str) -> String,
    deadline: Duration,
    m: &Measured,
    expected: &mut Figures,
) {
    check_timing(
        o,
        Against::Model,
        &what("give-up time"),
        deadline,
        tool_deadline_window(deadline),
        m,
    );
    *expected = expected.clone().duration(deadline);
}

/// What a check of the run's end measures, by how the plan says it ends: the kernel's
/// SYN timers from the first SYN, a read timeout to the tool's FIN, or the tool's own
/// timer from its first packet.
fn measured_end(plan: &Plan, run: &RunRecord) -> Measured {
    match (&plan.end, &run.after) {
        (End::AfterSyn(_), Some(after)) => return aftersyn::end_measured(after, run.duration()),
        (End::Rejected(_), _) => return run.timed().kernel_give_up(),
        _ => {}
    }
    match plan.end {
        End::Kernel | End::NoLaterThanKernel => run.timed().kernel_give_up(),
        End::ToolRead { .. } => run.until_close(),
        _ => run.timed().tool_timer(),
    }
}

/// The model check that the handshake completed (the peer is a listener that answers
/// nothing after it); a unix target has no wire to see it on.
fn check_handshake(
    o: &mut Outcome,
    what: &dyn Fn(&str) -> String,
    run: &RunRecord,
    target: SocketAddrV4,
) {
    let completed = run.syn_acks > 0 || target.port() == 0;
    o.model_check(
        &what("the TCP handshake completed (SYN-ACK seen)"),
        "true",
        completed.to_string(),
        completed,
    );
}

/// A [`Ctx`] for the checks that take one, from what the measurement recorded.
fn ctx_of(m: &Measurement) -> Ctx {
    Ctx {
        hz: m.hz,
        kernel: m.kernel.clone(),
    }
}

/// Model checks of a tool's reported failure: exit code and message.
fn tool_failure_checks(
    f: &Failure,
    run: &RunRecord,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
    expected: &mut Figures,
) {
    check_eq(
        o,
        Against::Model,
        &what("exit code"),
        Some(f.exit),
        run.exit_code,
    );
    expected.exit_code = Some(f.exit);
    if !f.messages.is_empty() {
        check_contains_any(
            o,
            Against::Model,
            &what("message"),
            &run.output(),
            &f.messages,
            false,
        );
        expected.value = Some(f.message_text());
    }
}

/// A tool that retries (wget): tries on the wire, each try's start, the total.
fn judge_tries(
    expect: &ExpectSpec,
    run: &RunRecord,
    plan: &Plan,
    per_try: Duration,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
    expected: &mut Figures,
) {
    let tries = plan.tries;
    let starts: Vec<Duration> = run
        .conn_starts_us
        .iter()
        .map(|&us| Duration::from_micros(us))
        .collect();
    check_eq(
        o,
        Against::Model,
        &what("tries on the wire"),
        tries,
        starts.len(),
    );
    // Every try of the run carries the run's measured error.
    let total_m = run.timed().tool_timer();
    let within_run = |took: Duration| Measured {
        took,
        ..total_m.clone()
    };
    let predicted = toolmodel::wget_try_starts(tries, per_try, toolmodel::WGET_WAITRETRY);
    for (k, (p, s)) in predicted.iter().zip(&starts).enumerate().skip(1) {
        // wget's own clock between tries: its process work between them, or 5 %.
        let w = tool_timer_window(*p, Duration::from_millis(300).max(p.mul_f64(0.05)));
        check_timing(
            o,
            Against::Model,
            &what(&format!(
                "start of try {} (tries of {} + back-off {} s)",
                k + 1,
                secs(per_try),
                toolmodel::wget_backoff(k + 1, toolmodel::WGET_WAITRETRY).as_secs()
            )),
            *p,
            w,
            &within_run(*s),
        );
    }
    if let Some(stated) = expect.per_try {
        // Each try lasts from its first SYN to its FIN (wget closed it: a read timeout),
        // else to the next try's first SYN, less the back-off, or to the end.
        for k in 0..starts.len() {
            let fin = run.conn_fins_us.get(k).copied().flatten();
            let d = match (fin, starts.get(k + 1)) {
                (Some(fin), _) => Duration::from_micros(fin).saturating_sub(starts[k]),
                (None, Some(next)) => next
                    .saturating_sub(starts[k])
                    .saturating_sub(toolmodel::wget_backoff(k + 2, toolmodel::WGET_WAITRETRY)),
                (None, None) => total_m.took.saturating_sub(starts[k]),
            };
            check_timing(
                o,
                Against::Statement,
                &what(&format!("try {} fails after", k + 1)),
                stated.0,
                tool_deadline_window(stated.0),
                &within_run(d),
            );
        }
    }
    if let (Some(schedule), End::ToolConnect { .. } | End::Kernel) = (&plan.schedule, &plan.end) {
        let range = schedule.syns_before(per_try);
        let who = plan.program.map_or("the program", Program::name);
        for (k, n) in run.conn_syns.iter().enumerate() {
            check_syn_range(
                o,
                &what(&format!("SYNs of try {} before {who}'s deadline", k + 1)),
                range,
                *n,
            );
        }
    }
    let total = toolmodel::wget_total(tries, per_try, toolmodel::WGET_WAITRETRY);
    check_timing(
        o,
        Against::Model,
        &what("total run time"),
        total,
        tool_deadline_window(total),
        &total_m,
    );
    *expected = expected.clone().duration(total);
    expected.value = Some(format!(
        "{tries} tries starting at {:?} ms",
        predicted.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    ));
}

/// A fill client's queue (a backlog) or an exhaust client's ports.
fn judge_exhaustion(
    spec: &ClaimSpec,
    lab: &LabRecord,
    run: &RunRecord,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
    expected: &mut Figures,
) {
    let num = |k: &str| {
        lab.in_force
            .get(k)
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    let client = spec.run.as_ref().and_then(|r| r.client);
    let (connections, errno, why) = match client {
        Some(Client::Exhaust) => {
            let range = lab
                .in_force
                .get(knob::IP_LOCAL_PORT_RANGE)
                .cloned()
                .unwrap_or_default();
            let mut it = range
                .split_whitespace()
                .filter_map(|p| p.parse::<u16>().ok());
            let (lo, hi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
            let reserved = lab
                .in_force
                .get("net.ipv4.ip_local_reserved_ports")
                .cloned()
                .unwrap_or_default();
            let (fewest, most) = crate::claims::port::usable_ports(lo, hi, &reserved);
            (
                (fewest, most),
                Some(Errno::EADDRNOTAVAIL),
                format!("ip_local_port_range {range}: {fewest}..={most} usable ports, then EADDRNOTAVAIL"),
            )
        }
        _ => {
            // __sys_listen caps the backlog at somaxconn; a unix listener refuses when
            // more than the backlog are queued (backlog + 1 fit); a TCP listener drops
            // the SYN when the accept queue is full (backlog + 1 complete).
            let somaxconn = num(knob::SOMAXCONN).unwrap_or(4096);
            let queued = fill_expected(spec, &lab.in_force);
            let errno = (spec.lab.server == Server::NeverAcceptUnix).then_some(Errno::EAGAIN);
            (
                (queued, queued),
                errno,
                format!(
                    "effective backlog min({}, somaxconn {somaxconn}) = {}: {queued} queued, then the next is refused",
                    spec.lab.backlog.unwrap_or(DEFAULT_BACKLOG),
                    queued - 1
                ),
            )
        }
    };
    o.evidence(why);
    let n = run.connections.unwrap_or(0);
    let range_text = if connections.0 == connections.1 {
        connections.0.to_string()
    } else {
        format!("{}..={}", connections.0, connections.1)
    };
    o.model_check(
        &what("connections before the first failure"),
        range_text.clone(),
        n.to_string(),
        (connections.0..=connections.1).contains(&n),
    );
    check_eq(
        o,
        Against::Model,
        &what("errno of the connect that failed"),
        errno,
        run.errno.map(Errno::from_raw),
    );
    if let (Some((recv_q, send_q)), Some(Client::Fill)) = (run.listener_queue, client) {
        let backlog = u32::try_from(connections.0.saturating_sub(1)).unwrap_or(u32::MAX);
        let queued = u32::try_from(connections.0).unwrap_or(u32::MAX);
        check_eq(
            o,
            Against::Model,
            &what("ss Send-Q of the listener (effective backlog)"),
            backlog,
            send_q,
        );
        check_eq(
            o,
            Against::Model,
            &what("ss Recv-Q of the listener (queued connections)"),
            queued,
            recv_q,
        );
    }
    expected.errno = errno.map(|e| e as i32);
    expected.value = Some(format!("{range_text} connections"));
}

fn statement_checks(
    expect: &ExpectSpec,
    run: &RunRecord,
    plan: &Plan,
    hz: u32,
    startup: Duration,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    let duration = run.duration();
    let syns = run.syn_times();
    if let Some(times) = &expect.syn_times {
        let stated = SynSchedule {
            send_times: times.iter().map(|s| s.0).collect(),
            give_up: expect
                .duration
                .map_or_else(|| times.last().map(|s| s.0).unwrap_or_default(), |d| d.0),
        };
        let first = o.claim_checks.len();
        lab::check_syns(
            o,
            Against::Statement,
            &stated,
            &run.timed(),
            &Ctx {
                hz,
                kernel: String::new(),
            },
            startup,
            expect.duration.is_some(),
        );
        for c in &mut o.claim_checks[first..] {
            c.what = what(&c.what);
        }
    } else {
        if let Some(d) = expect.duration {
            let window = stated_window(expect, d.0, plan, hz, startup);
            check_timing(
                o,
                Against::Statement,
                &what("give-up time"),
                d.0,
                window,
                &measured_end(plan, run),
            );
        }
        if let Some(n) = expect.syns {
            check_eq(o, Against::Statement, &what("SYN count"), n, syns.len());
        }
    }
    // Bounds are timing checks too: a miss within the measured error is inconclusive.
    if expect.duration_at_least.is_some() || expect.duration_at_most.is_some() {
        let m = Measured {
            took: duration,
            ..measured_end(plan, run)
        };
        if let Some(d) = expect.duration_at_least {
            let min = d.0.saturating_sub(lab::EARLY);
            let window = Window {
                min,
                max: duration.max(min),
            };
            o.claim_checks.push(Check {
                what: what("duration, at least"),
                expected: format!(
                    "≥ {} (less {} of clock jitter)",
                    secs(d.0),
                    secs(lab::EARLY)
                ),
                observed: secs(duration),
                ok: duration >= min,
                timing: Some(lab::timing(window, duration, &m)),
            });
        }
        if let Some(d) = expect.duration_at_most {
            let window = Window {
                min: Duration::ZERO,
                max: d.0 + lab::EARLY,
            };
            o.claim_checks.push(Check {
                what: what("duration, at most"),
                expected: format!("≤ {}", secs(d.0)),
                observed: secs(duration),
                ok: window.contains(duration),
                timing: Some(lab::timing(window, duration, &m)),
            });
        }
    }
    if let Some(after) = &run.after {
        aftersyn::statement_checks(expect, client_of(plan), after, what, o);
    }
    if let Some(e) = &expect.errno {
        let name = if run.connect_calls.is_some() {
            "connect() errno"
        } else {
            "errno"
        };
        check_eq(
            o,
            Against::Statement,
            &what(name),
            e.errno(),
            run.errno.map(Errno::from_raw),
        );
    }
    if let Some(code) = expect.exit {
        check_eq(
            o,
            Against::Statement,
            &what("exit code"),
            Some(code),
            run.exit_code,
        );
    }
    let before = o.claim_checks.len();
    for (key, texts, text) in [
        ("stdout", &expect.stdout, &run.stdout),
        ("stderr", &expect.stderr, &run.stderr),
        ("output", &expect.output, &run.output()),
    ] {
        if let Some(t) = texts {
            for item in t.items() {
                check_contains_any(
                    o,
                    Against::Statement,
                    &what(key),
                    text,
                    &[item.to_owned()],
                    expect.ignore_case,
                );
            }
        }
    }
    if let Some(line) = &expect.output_line {
        let output = run.output();
        o.claim_check(
            &what("message"),
            format!("a line {line:?}"),
            format!("{output:?}"),
            output.lines().any(|l| l.trim() == line),
        );
    }
    for c in &expect.output_count {
        let n = run.output().matches(c.text.as_str()).count();
        check_eq(
            o,
            Against::Statement,
            &what(&format!("times {:?} is printed", c.text)),
            c.count,
            n,
        );
    }
    if run.output_cut > 0 && o.claim_checks[before..].iter().any(|c| !c.ok) {
        // Not found in what was kept is not "not printed".
        o.forced = Some((
            Verdict::Error,
            format!(
                "the tool printed {} bytes more than netclaim keeps (the first and last {} KiB \
                 of each stream), and a text the claim expects is not in the part kept: it may \
                 be in the part cut out, so its output was not observed",
                run.output_cut,
                netclaim_harness::command::OUTPUT_KEEP / 1024
            ),
        ));
    }
    if let Some(k) = expect.killed {
        o.claim_check(
            &what("still running when the harness kills it"),
            k.to_string(),
            format!("{} after {}", run.timed_out, secs(duration)),
            run.timed_out == k,
        );
    }
    if let Some(n) = expect.connections {
        check_eq(
            o,
            Against::Statement,
            &what("connections before the first failure"),
            n,
            run.connections.unwrap_or(0),
        );
    }
    if let Some(n) = expect.connect_calls {
        check_eq(
            o,
            Against::Statement,
            &what("connect() calls seen by strace"),
            n,
            run.connect_calls.unwrap_or(0),
        );
    }
}

/// The client after the SYN a plan is for.
fn client_of(plan: &Plan) -> Option<Client> {
    match plan.end {
        End::AfterSyn(c) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_range_around_a_deadline() {
        let s = SynModel::new(6, None).schedule();
        assert_eq!(s.syns_before(Duration::from_millis(2500)), (2, 2));
        assert_eq!(s.syns_before(Duration::from_secs(3)), (2, 3));
    }

    #[test]
    fn a_slow_start_lets_fewer_syns_out_before_a_programs_own_deadline() {
        // tcp_syn_linear_timeouts=4: SYNs at 0, 1, 2, 3, 4, 5 s, ...
        let s = SynModel::new(6, Some(4)).schedule();
        let five = Duration::from_secs(5);
        assert_eq!(syns_before_tool_deadline(&s, five, None), (5, 6));
        // The program armed its 5 s timer 0.9 s before its first SYN.
        let slow = Some(Duration::from_millis(900));
        assert_eq!(syns_before_tool_deadline(&s, five, slow), (4, 6));
    }

    #[test]
    fn documented_defaults_follow_the_release() {
        let by: BTreeMap<String, Value> = [("0", Value::Int(128)), ("5.4", Value::Int(4096))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(documented(&by, "6.18.44-fc-v782").as_deref(), Some("4096"));
        assert_eq!(documented(&by, "5.4.0").as_deref(), Some("4096"));
        assert_eq!(documented(&by, "4.19.0-17-amd64").as_deref(), Some("128"));
        assert_eq!(documented(&by, "junk"), None);
    }

    #[test]
    fn a_knob_hidden_from_user_namespaces_is_not_applicable_there() {
        let spec = crate::spec::parse(
            "[[claim]]\nid = \"t.somaxconn\"\nsource = \"s\"\nstatement = \"s\"\n\
             expect = { sysctls = { \"net.core.somaxconn\" = 128 } }\n",
            &crate::spec::Origin::BuiltIn("t.toml"),
        )
        .unwrap()
        .remove(0)
        .spec;
        let mut m = Measurement {
            kernel: "6.1.0-56-amd64".into(),
            hz: 250,
            rootless: true,
            ..Measurement::default()
        };
        m.fresh.insert(knob::SOMAXCONN.into(), None);
        let o = judge(&spec, &m);
        assert_eq!(o.verdict(), Verdict::NotApplicable);
        assert!(o.reason().contains("user namespace"), "{}", o.reason());
        // As root the same absence is a finding about the kernel.
        m.rootless = false;
        assert_eq!(judge(&spec, &m).verdict(), Verdict::Refuted);
    }

    fn spec_of(rest: &str) -> ClaimSpec {
        crate::spec::parse(
            &format!("[[claim]]\nid = \"t.x\"\nsource = \"s\"\nstatement = \"s\"\n{rest}"),
            &crate::spec::Origin::BuiltIn("t.toml"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
        .remove(0)
        .spec
    }

    fn refused(rest: &str) -> String {
        let errors = crate::spec::parse(
            &format!("[[claim]]\nid = \"t.x\"\nsource = \"s\"\nstatement = \"s\"\n{rest}"),
            &crate::spec::Origin::BuiltIn("t.toml"),
        )
        .expect_err("check must refuse it");
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn sweep_of(n: usize) -> ClaimSpec {
        let values: Vec<String> = (1..=n).map(|v| v.to_string()).collect();
        spec_of(&format!(
            "lab = {{ server = \"refuse\" }}\nrun = {{ command = [\"curl\", \"-sS\", \"http://{{target}}/\"] }}\n\
             sweep = {{ sysctl = \"net.ipv4.tcp_fin_timeout\", values = [{}] }}\nexpect = {{ exit = 7 }}\n",
            values.join(", ")
        ))
    }

    // A sweep of 1,000 values was abandoned at a hard deadline of 62 s computed as if it
    // were one lab (estimate 1 s).
    #[test]
    fn a_sweep_is_estimated_by_the_turns_its_values_take() {
        let one = sweep_of(1);
        let many = sweep_of(1000);
        assert_eq!(sweep_rounds(&one), 1);
        assert_eq!(sweep_rounds(&many), 32);
        assert_eq!(estimate(&many), estimate(&one) * 32);
        assert!(
            estimate(&many) >= Duration::from_secs(32),
            "{:?}",
            estimate(&many)
        );
        // Each value's curl may run until its default deadline (twice 10 s plus 30 s).
        assert_eq!(limit(&many), (Duration::from_secs(50) + LAB_SETUP) * 32);
    }

    #[test]
    fn a_run_timeout_longer_than_the_estimate_sets_the_limit() {
        let s = spec_of(
            "lab = { server = \"refuse\" }\nrun = { command = [\"sh\", \"-c\", \"sleep 100\"], timeout = \"200s\" }\nexpect = { exit = 0 }\n",
        );
        assert_eq!(estimate(&s), LAB_SETUP);
        assert_eq!(limit(&s), Duration::from_secs(200) + LAB_SETUP);
    }

    #[test]
    fn a_bounded_sweep_runs_at_most_its_slots_at_once_and_keeps_the_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let done = bounded("t", 4, 50, |i| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            now.fetch_sub(1, Ordering::SeqCst);
            if i == 7 {
                anyhow::bail!("value {i} failed");
            }
            Ok(i * 10)
        });
        assert_eq!(done.len(), 50);
        assert!(most.load(Ordering::SeqCst) <= 4, "{most:?}");
        for (i, r) in done.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i * 10),
                Err(e) => assert_eq!((i, e.to_string()), (7, "value 7 failed".into())),
            }
        }
    }

    #[test]
    fn check_refuses_what_a_lab_cannot_be_given() {
        let backlog = refused(
            "lab = { server = \"never-accept\", backlog = 4294967295 }\nrun = { client = \"fill\" }\nexpect = { connections = 1 }\n",
        );
        assert!(
            backlog.contains("lab.backlog 4294967295 is above what listen() takes"),
            "{backlog}"
        );
        assert!(backlog.contains("2147483647"), "{backlog}");
        let zero = refused(
            "lab = { server = \"drop-syn\" }\nrun = { command = [\"curl\", \"http://{target}/\"], timeout = \"0s\" }\nexpect = { exit = 28 }\n",
        );
        assert!(zero.contains("run.timeout is 0"), "{zero}");
        let values: Vec<String> = (1..=1001).map(|v| v.to_string()).collect();
        let many = refused(&format!(
            "lab = {{ server = \"refuse\" }}\nrun = {{ client = \"connect\" }}\n\
             sweep = {{ sysctl = \"net.ipv4.tcp_fin_timeout\", values = [{}] }}\n",
            values.join(", ")
        ));
        assert!(
            many.contains("sweep.values has 1001 values: at most 1000"),
            "{many}"
        );
        // The largest int is accepted (the kernel caps it at somaxconn).
        spec_of(
            "lab = { server = \"never-accept\", backlog = 2147483647 }\nrun = { client = \"fill\" }\nexpect = { connections = 1 }\n",
        );
    }

    fn in_force(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    // `check` hung on these: the estimate counted SYNs of 4e9 retries, and wget tries by
    // the billions.
    #[test]
    fn the_model_asks_no_more_than_the_kernel_accepts() {
        let m = model_of(&in_force(&[
            (knob::TCP_SYN_RETRIES, "4000000000"),
            (knob::TCP_SYN_LINEAR_TIMEOUTS, "18446744073709551615"),
        ]));
        assert_eq!((m.syn_retries, m.syn_linear_timeouts), (127, Some(127)));
        // check refuses such a syncnt; a spec that did not go through it (a record's, a
        // hand-built one) must still not make the model run for ever.
        let syncnt = crate::spec::parse_unvalidated(
            "[[claim]]\nid = \"t.x\"\nsource = \"s\"\nstatement = \"s\"\nlab = { server = \"drop-syn\" }\nrun = { client = \"connect\", socket = { syncnt = 4000000000 } }\nexpect = { errno = \"ETIMEDOUT\" }\n",
        )
        .remove(0);
        assert!(estimate(&syncnt) > Duration::from_secs(3600));
        let wget = spec_of(
            "lab = { server = \"drop-syn\" }\nrun = { command = [\"wget\", \"--tries\", \"18446744073709551615\", \"http://{target}/\"] }\nexpect = { exit = 4 }\n",
        );
        assert!(estimate(&wget) > Duration::from_secs(24 * 3600));
    }

    // backlog = 1000 with expect.connections = 1001 was refuted with "observed 300": the
    // client stopped at a fixed 300.
    #[test]
    fn the_fill_clients_cap_follows_the_model_and_reaching_it_is_an_error() {
        let spec = spec_of(
            "lab = { server = \"never-accept\", backlog = 1000 }\nrun = { client = \"fill\" }\nexpect = { connections = 1001 }\n",
        );
        let f = in_force(&[(knob::SOMAXCONN, "4096")]);
        assert_eq!(fill_expected(&spec, &f), 1001);
        let cap = fill_cap(&spec, &f);
        assert!(cap > 1001, "{cap}");
        // somaxconn caps the backlog: the model expects 129, the statement 1001.
        assert_eq!(
            fill_expected(&spec, &in_force(&[(knob::SOMAXCONN, "128")])),
            129
        );
        assert!(fill_cap(&spec, &in_force(&[(knob::SOMAXCONN, "128")])) > 1001);

        let measured = |connections: usize, errno: Option<i32>| Measurement {
            kernel: "6.18".into(),
            hz: 250,
            lab: Some(LabRecord {
                name: "netclaim-1-1".into(),
                target: "127.0.0.1:8080".into(),
                in_force: f.clone(),
                run: Some(RunRecord {
                    command_line: "fill".into(),
                    connections: Some(connections),
                    connection_cap: Some(cap),
                    errno,
                    listener_queue: Some((1001, 1000)),
                    ..RunRecord::default()
                }),
                ..LabRecord::default()
            }),
            ..Measurement::default()
        };
        let full = judge(&spec, &measured(1001, None));
        assert_eq!(full.verdict(), Verdict::Holds, "{}", full.reason());
        let capped = judge(&spec, &measured(cap, None));
        assert_eq!(capped.verdict(), Verdict::Error);
        assert!(
            capped
                .reason()
                .contains(&format!("stopped at its cap of {cap} connections")),
            "{}",
            capped.reason()
        );
    }

    #[test]
    fn a_text_missing_from_cut_output_is_not_observed() {
        let spec = spec_of(
            "lab = { server = \"none\" }\nrun = { command = [\"sh\", \"-c\", \"x\"] }\n\
             expect = { exit = 0, stderr = \"needle\" }\n",
        );
        let measured = |stderr: &str, output_cut: u64| Measurement {
            kernel: "6.18".into(),
            hz: 250,
            lab: Some(LabRecord {
                name: "netclaim-1-1".into(),
                target: "127.0.0.1:8080".into(),
                run: Some(RunRecord {
                    command_line: "sh -c x".into(),
                    exit_code: Some(0),
                    stderr: stderr.into(),
                    output_cut,
                    ..RunRecord::default()
                }),
                ..LabRecord::default()
            }),
            ..Measurement::default()
        };
        let cut = judge(
            &spec,
            &measured("head\n[netclaim: 9000 bytes cut here]\ntail", 9000),
        );
        assert_eq!(cut.verdict(), Verdict::Error, "{}", cut.reason());
        assert!(
            cut.reason().contains("printed 9000 bytes more"),
            "{}",
            cut.reason()
        );
        // Whole output without it: a finding. Cut output with it: it was printed.
        assert_eq!(
            judge(&spec, &measured("head tail", 0)).verdict(),
            Verdict::Refuted
        );
        let found = judge(
            &spec,
            &measured("needle\n[netclaim: 9000 bytes cut here]\n", 9000),
        );
        assert_eq!(found.verdict(), Verdict::Holds, "{}", found.reason());
    }

    fn curl_spec(extra: &str) -> ClaimSpec {
        spec_of(&format!(
            "lab = {{ server = \"drop-syn\", sysctls = {{ \"net.ipv4.tcp_syn_retries\" = 1 }} }}\n\
             run = {{ command = [\"curl\", \"-sS\", \"--connect-timeout\", \"999\", \"http://{{target}}/\"], timeout = \"1s\" }}\n\
             expect = {{ duration = \"3s\"{extra} }}\n"
        ))
    }

    fn killed_curl() -> Measurement {
        let run = RunRecord {
            command_line: "curl -sS --connect-timeout 999 http://127.0.0.1:7/".into(),
            argv: [
                "curl",
                "-sS",
                "--connect-timeout",
                "999",
                "http://127.0.0.1:7/",
            ]
            .map(String::from)
            .to_vec(),
            exit_code: None,
            timed_out: true,
            timeout_us: Some(1_000_000),
            duration_us: 1_004_000,
            syn_times_us: vec![0, 1_000_000],
            conn_starts_us: vec![0],
            conn_syns: vec![2],
            timed: Some(lab::Measurement {
                syn_times_us: vec![0, 1_000_000],
                first_packet_us: Some(4_000),
                duration_us: 1_004_000,
                tool: true,
                ..lab::Measurement::default()
            }),
            ..RunRecord::default()
        };
        Measurement {
            kernel: "6.18".into(),
            hz: 250,
            lab: Some(LabRecord {
                name: "netclaim-1-1".into(),
                target: "127.0.0.1:7".into(),
                in_force: in_force(&[
                    (knob::TCP_SYN_RETRIES, "1"),
                    (knob::TCP_SYN_LINEAR_TIMEOUTS, "4"),
                ]),
                run: Some(run),
                ..LabRecord::default()
            }),
            ..Measurement::default()
        }
    }

    // run.timeout = "1s" on a curl that gives up after 3 s was `refuted` ("give-up
    // observed 0.992 s"): the harness's kill is no observation of curl.
    #[test]
    fn a_run_cut_short_by_the_harness_is_an_error_not_a_refutation() {
        let spec = curl_spec("");
        let m = killed_curl();
        let ctx = Ctx {
            hz: 250,
            kernel: "6.18".into(),
        };
        assert_eq!(inconsistencies(&spec, &m, &ctx), Vec::<String>::new());
        let o = judge(&spec, &m);
        assert_eq!(o.verdict(), Verdict::Error, "{}", o.reason());
        for needle in [
            "killed curl at its run.timeout of 1.000 s",
            "the kernel gives up after 3.000 s",
            "give a longer run.timeout",
            "expect.killed = true",
        ] {
            assert!(o.reason().contains(needle), "{needle:?} in {}", o.reason());
        }
        // When being killed is what the claim says, the kill is the observation.
        let killed = curl_spec(", killed = true");
        let o = judge(&killed, &m);
        assert_ne!(o.verdict(), Verdict::Error, "{}", o.reason());
        // A client after the SYN that the harness stopped waiting for: the same.
        let close = spec_of(
            "lab = { server = \"silent\", sysctls = { \"net.ipv4.tcp_fin_timeout\" = 5 } }\nrun = { client = \"close\", timeout = \"1s\" }\nexpect = { duration = \"5s\" }\n",
        );
        let mut m = killed_curl();
        if let Some(run) = m.lab.as_mut().and_then(|l| l.run.as_mut()) {
            run.argv.clear();
            run.syn_times_us = vec![0];
            run.conn_syns = vec![1];
            run.timed = None;
            run.after = Some(AfterRecord::default());
        }
        let o = judge(&close, &m);
        assert_eq!(o.verdict(), Verdict::Error, "{}", o.reason());
        assert!(
            o.reason()
                .contains("stopped waiting for the client at its run.timeout"),
            "{}",
            o.reason()
        );
    }

    fn run(m: &mut Measurement) -> &mut RunRecord {
        m.lab.as_mut().and_then(|l| l.run.as_mut()).expect("a run")
    }

    // A record that contradicts its claim or itself is not judged: the sysctl the claim
    // sets in force, no more SYNs than it allows, a kill that is a kill.
    #[test]
    fn a_record_that_contradicts_its_claim_or_itself_is_found() {
        let spec = curl_spec("");
        let ctx = Ctx {
            hz: 250,
            kernel: "6.18".into(),
        };
        let with = |change: fn(&mut Measurement)| {
            let mut m = killed_curl();
            change(&mut m);
            inconsistencies(&spec, &m, &ctx).join("; ")
        };
        let retries = with(|m| {
            if let Some(l) = m.lab.as_mut() {
                l.in_force.insert(knob::TCP_SYN_RETRIES.into(), "7".into());
            }
        });
        assert!(
            retries.contains("the claim sets net.ipv4.tcp_syn_retries=1; the record shows net.ipv4.tcp_syn_retries=7 in force"),
            "{retries}"
        );
        let syns = with(|m| {
            let r = run(m);
            r.syn_times_us = (0..13).map(|i| i * 1000).collect();
            r.conn_syns = vec![13];
            r.timed = None;
        });
        assert!(
            syns.contains("13 SYNs on one connection, where the sysctls in force allow at most 6"),
            "{syns}"
        );
        let exited = with(|m| run(m).exit_code = Some(0));
        assert!(
            exited
                .contains("killed at the harness's deadline (timed_out), yet it exited by itself"),
            "{exited}"
        );
        let hz = with(|m| m.hz = 0);
        assert!(
            hz.contains("measured with hz 0 in a run with hz 250"),
            "{hz}"
        );
        let early = with(|m| run(m).duration_us = 200_000);
        assert!(
            early.contains("ended at its deadline of 1.000 s after only 0.200 s"),
            "{early}"
        );
        let adds = with(|m| run(m).conn_syns = vec![1]);
        assert!(
            adds.contains("2 SYNs on the wire, but the connections add up to 1"),
            "{adds}"
        );
    }
}
