//! Building blocks the claims share: standard labs, the model read from a namespace, tool
//! runs with wire capture, and the checks that compare a SYN schedule with a measurement.

use std::net::SocketAddrV4;
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_harness::capture::{self, TcpEvent};
use netclaim_harness::command::{CommandOutput, ToolCommand};
use netclaim_harness::model::{SynModel, SynSchedule};
use netclaim_harness::sysctl::knob;
use netclaim_harness::tolerance::{kernel_timer_window, timer_slack, Window, ARMED_AFTER_CAPTURE};
use netclaim_harness::NetNs;
use nix::errno::Errno;

use crate::claim::{Ctx, Figures, Outcome, Timeline};

/// The port every SYN-drop lab listens on (nothing listens; the SYNs are dropped).
pub const DROPPED_PORT: u16 = 7;
/// How early a measured kernel-timer event may appear: capture and clock jitter.
pub const EARLY: Duration = Duration::from_millis(5);
/// Start-up allowance for a real tool between spawn and its first SYN (exec, dynamic
/// linking, option parsing); only ever added to the late side.
pub const TOOL_STARTUP: Duration = Duration::from_millis(400);

/// A namespace where SYNs to [`DROPPED_PORT`] on loopback are dropped, as in seed 002.
pub struct SynDropLab {
    /// The namespace.
    pub ns: NetNs,
    /// `127.0.0.1:DROPPED_PORT`.
    pub target: SocketAddrV4,
}

impl SynDropLab {
    /// Builds the lab, applying `sysctls` before the DROP rule.
    pub fn new(sysctls: &[(&str, &str)]) -> Result<Self> {
        let ns = NetNs::with_sysctls(sysctls)
            .with_context(|| format!("creating the lab namespace with {sysctls:?}"))?;
        ns.drop_syn_to_port(DROPPED_PORT)
            .with_context(|| format!("installing the SYN DROP rule in {}", ns.name()))?;
        Ok(Self {
            ns,
            target: SocketAddrV4::new([127, 0, 0, 1].into(), DROPPED_PORT),
        })
    }
}

/// A client namespace joined by veth to a host namespace that drops every packet: an
/// unreachable peer at [`BlackholeLab::HOST`], as in seed 000's tests against a dead IP.
pub struct BlackholeLab {
    /// Where the client runs (192.0.2.1).
    pub client: NetNs,
    /// The host that drops everything (192.0.2.2).
    pub host: NetNs,
}

impl BlackholeLab {
    /// The client's address.
    pub const CLIENT: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);
    /// The unreachable host's address.
    pub const HOST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 2);

    /// Builds the lab, applying `sysctls` in the client namespace.
    pub fn new(sysctls: &[(&str, &str)]) -> Result<Self> {
        let client = NetNs::new().context("creating the client namespace")?;
        let host = NetNs::new().context("creating the blackhole namespace")?;
        netclaim_harness::link::veth_pair(&client, Self::CLIENT, &host, Self::HOST, 24)
            .context("linking client and blackhole host")?;
        host.drop_all_input()
            .with_context(|| format!("dropping all input in {}", host.name()))?;
        client
            .set_sysctls(sysctls)
            .with_context(|| format!("setting {sysctls:?} in {}", client.name()))?;
        Ok(Self { client, host })
    }
}

/// The SYN model for what is in force in `ns`.
pub fn model_in(ns: &NetNs) -> Result<SynModel> {
    let retries = ns.tcp_syn_retries()?;
    let linear = ns.tcp_syn_linear_timeouts()?;
    let mut model = SynModel::new(retries, linear);
    if let Some(ms) = ns.sysctl_opt(knob::TCP_RTO_MAX_MS)? {
        model.rto_max = Duration::from_millis(ms.parse().context("tcp_rto_max_ms")?);
    }
    Ok(model)
}

/// A text describing the sysctls the model used.
pub fn describe_model(m: &SynModel) -> String {
    let linear = match m.syn_linear_timeouts {
        Some(n) => format!("tcp_syn_linear_timeouts={n}"),
        None => "no tcp_syn_linear_timeouts (kernel < 6.5)".into(),
    };
    format!(
        "tcp_syn_retries={}, {linear}, initial RTO {} ms, RTO max {} ms",
        m.syn_retries,
        m.initial_rto.as_millis(),
        m.rto_max.as_millis()
    )
}

/// A window for a timer a tool keeps itself: never more than [`EARLY`] early, at most
/// `late` late (the tool's start-up, and whatever rounding the tool does).
pub fn tool_timer_window(expected: Duration, late: Duration) -> Window {
    Window {
        min: expected.saturating_sub(EARLY),
        max: expected + late,
    }
}

/// How late a measured interval armed for `interval` may be: the timer-wheel slack, plus
/// the time between capturing the SYN and arming the timer ([`ARMED_AFTER_CAPTURE`]).
pub fn interval_slack(interval: Duration, hz: u32) -> Duration {
    timer_slack(interval, hz) + ARMED_AFTER_CAPTURE
}

/// How late the give-up of `schedule` may come: the slack of every interval it arms,
/// accumulated.
pub fn accumulated_slack(schedule: &SynSchedule, hz: u32) -> Duration {
    schedule
        .intervals()
        .into_iter()
        .map(|i| interval_slack(i, hz))
        .sum()
}

/// The window for a stated give-up time, when the timers actually armed are those of
/// `armed` (the model's schedule for this kernel): never early, late by their slack.
pub fn give_up_window(stated: Duration, armed: &SynSchedule, hz: u32, startup: Duration) -> Window {
    kernel_timer_window(stated, accumulated_slack(armed, hz) + startup, EARLY)
}

/// Windows for every SYN send time and the give-up time of `schedule`: each interval may
/// be late by its timer-wheel slack, and lateness accumulates; `startup` widens the give-up
/// window for tools that start before their first SYN.
pub fn schedule_windows(
    schedule: &SynSchedule,
    hz: u32,
    startup: Duration,
) -> (Vec<Window>, Window) {
    let mut late = Duration::ZERO;
    let mut windows = Vec::new();
    let intervals = schedule.intervals();
    for (i, t) in schedule.send_times.iter().enumerate() {
        if i > 0 {
            late += interval_slack(intervals[i - 1], hz);
        }
        windows.push(kernel_timer_window(*t, late, EARLY));
    }
    (
        windows,
        give_up_window(schedule.give_up, schedule, hz, startup),
    )
}

/// The not-applicable outcome for a sysctl this kernel lacks or rejects (the lab cannot
/// be built as the claim needs it); `None` for any other error.
pub fn not_applicable(e: &netclaim_harness::Error) -> Option<Outcome> {
    refusal(e).map(|why| Outcome::forced(crate::claim::Verdict::NotApplicable, why))
}

/// Why the kernel refuses a lab, for a sysctl it lacks or rejects; `None` for any other
/// error. In a user namespace, a knob the kernel keeps from non-initial user namespaces
/// says so: the same claim may apply as root.
pub fn refusal(e: &netclaim_harness::Error) -> Option<String> {
    use netclaim_harness::Error::{SysctlAbsent, SysctlRejected};
    let name = match e {
        SysctlAbsent { name, .. } | SysctlRejected { name, .. } => name,
        _ => return None,
    };
    let mut why = format!("this kernel refuses the lab: {e}");
    if netclaim_harness::userns::mode().rootless() && name.as_str() == knob::SOMAXCONN {
        why.push_str(
            "; the labs run in a user namespace, and Linux before 6.3 does not offer \
             net.core.somaxconn to a network namespace owned by one (sysctl_core_net_init): \
             run as root to measure it",
        );
    }
    Some(why)
}

/// Runs `jobs` at once, each on its own scoped thread named `name`, and returns their
/// results in order. A thread that cannot be started (threads ran out) or that panics
/// gives an error for its job, never a panic here.
pub fn parallel<T, F>(name: &str, jobs: Vec<F>) -> Vec<Result<T>>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                std::thread::Builder::new()
                    .name(name.to_owned())
                    .spawn_scoped(s, job)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("{name} thread panicked"))),
                Err(e) => Err(netclaim_harness::Error::thread_spawn(name, e).into()),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_a_user_writes_them() {
        assert_eq!(Some(2003).shown(), "2003");
        assert_eq!(None::<i32>.shown(), "none");
        assert_eq!(Some(Errno::ETIMEDOUT).shown(), "ETIMEDOUT (110)");
        assert_eq!(
            vec![None, Some(Errno::EAGAIN)].shown(),
            "[none, EAGAIN (11)]"
        );
        assert_eq!(Some("TIME_WAIT").shown(), "TIME_WAIT");
        assert_eq!(String::new().shown(), "\"\" (empty)");
    }
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

/// A duration as seconds with millisecond precision: `3.071 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// The installed version of `program` (its `--version` line, or its package's version),
/// as a measurement records it.
pub fn version_of(program: &str) -> Option<String> {
    netclaim_harness::command::tool_version(program)
}

/// The evidence line for a recorded version of `program` (nothing when it has none).
pub fn version_line(o: &mut Outcome, program: &str, version: Option<&str>) {
    if let Some(v) = version {
        o.evidence(format!("{program} version: {v}"));
    }
}

/// Records the installed version of `program` as evidence (nothing when it has none).
pub fn version_evidence(o: &mut Outcome, program: &str) {
    if let Some(v) = netclaim_harness::command::tool_version(program) {
        o.evidence(format!("{program} version: {v}"));
    }
}

fn ms_list(times: &[Duration]) -> String {
    let v: Vec<String> = times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect();
    format!("[{}] s", v.join(", "))
}

/// Which comparison list a schedule check goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// The source's statement: decides the verdict.
    Statement,
    /// The model's prediction for this kernel: asserted by the tests.
    Model,
}

impl Against {
    /// Records a check in `outcome`'s list for this comparison: its claim checks or its
    /// model checks.
    pub fn record(
        self,
        outcome: &mut Outcome,
        what: &str,
        expected: impl std::fmt::Display,
        observed: impl std::fmt::Display,
        ok: bool,
    ) {
        match self {
            Against::Statement => outcome.claim_check(what, expected, observed, ok),
            Against::Model => outcome.model_check(what, expected, observed, ok),
        }
    }
}

/// Compares a measured SYN schedule (`syn_times` from the wire, `give_up` from the
/// client) with `schedule`, recording the checks in `outcome` under `against`.
pub fn check_schedule(
    outcome: &mut Outcome,
    against: Against,
    schedule: &SynSchedule,
    syn_times: &[Duration],
    give_up: Option<Duration>,
    ctx: &Ctx,
    startup: Duration,
) {
    let (windows, give_up_window) = schedule_windows(schedule, ctx.hz, startup);
    let mut record = |what: &str, expected: String, observed: String, ok: bool| {
        against.record(outcome, what, expected, observed, ok)
    };
    record(
        "SYN count",
        schedule.syn_count().to_string(),
        syn_times.len().to_string(),
        schedule.syn_count() == syn_times.len(),
    );
    let spacing_ok = syn_times.len() == windows.len()
        && windows.iter().zip(syn_times).all(|(w, t)| w.contains(*t));
    record(
        "SYN send times (timer-wheel slack at HZ, late only)",
        format!(
            "{} within {}",
            ms_list(&schedule.send_times),
            windows_text(&windows)
        ),
        ms_list(syn_times),
        spacing_ok,
    );
    if let Some(g) = give_up {
        record(
            "give-up time",
            format!(
                "{:.3} s within {give_up_window}",
                schedule.give_up.as_secs_f64()
            ),
            format!("{:.3} s", g.as_secs_f64()),
            give_up_window.contains(g),
        );
    }
}

fn windows_text(w: &[Window]) -> String {
    let last = w.last().map(|w| w.to_string()).unwrap_or_default();
    format!("per-SYN windows (last {last})")
}

/// A tool run with the packets it caused.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolRun {
    /// What the tool did.
    pub output: CommandOutput,
    /// Handshake packets to or from the port.
    pub events: Vec<TcpEvent>,
    /// SYN send times relative to the first.
    pub syn_times: Vec<Duration>,
}

/// Runs `cmd` in `ns` while capturing handshake packets to `port`.
pub fn run_tool(ns: &NetNs, cmd: &ToolCommand, port: u16) -> Result<ToolRun> {
    let cap = ns.capture_tcp(port).context("starting the capture")?;
    let output = ns
        .run_command(cmd)
        .with_context(|| format!("running {}", cmd.command_line()))?;
    let events = cap.finish().context("finishing the capture")?;
    let syn_times = capture::syn_times(&events, port);
    Ok(ToolRun {
        output,
        events,
        syn_times,
    })
}

/// Evidence text for a tool run: the command output and the packet timeline.
pub fn tool_evidence(run: &ToolRun) -> String {
    format!(
        "{}\n--- wire ---\n{}",
        run.output,
        if run.events.is_empty() {
            "(no handshake packets)".into()
        } else {
            capture::timeline(&run.events)
        }
    )
}

/// Observed figures of a tool run.
pub fn tool_figures(run: &ToolRun) -> Figures {
    let mut f = Figures::default()
        .duration(run.output.duration)
        .syn_times(&run.syn_times);
    f.exit_code = run.output.exit_code();
    f.value = run
        .output
        .combined()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned());
    f
}

/// A timeline entry for charts.
pub fn timeline(
    label: &str,
    observed: &[Duration],
    schedule: &SynSchedule,
    give_up: Option<Duration>,
) -> Timeline {
    let ms = |t: &Duration| t.as_millis() as u64;
    Timeline {
        label: label.into(),
        observed_ms: observed.iter().map(ms).collect(),
        observed_us: observed.iter().map(|t| t.as_micros() as u64).collect(),
        predicted_ms: schedule.send_times.iter().map(ms).collect(),
        predicted_give_up_ms: Some(ms(&schedule.give_up)),
        observed_give_up_ms: give_up.as_ref().map(ms),
    }
}

/// Checks an exact value against the statement or the model.
pub fn check_eq<T: PartialEq + Shown>(
    outcome: &mut Outcome,
    against: Against,
    what: &str,
    expected: T,
    observed: T,
) {
    let ok = expected == observed;
    against.record(outcome, what, expected.shown(), observed.shown(), ok);
}

/// How a figure reads in a check and a reason: as a user would write it
/// (`ETIMEDOUT (110)`, `2003`, `none`), never Rust's `Some(2003)`.
pub trait Shown {
    /// The text.
    fn shown(&self) -> String;
}

macro_rules! shown_as_display {
    ($($t:ty),*) => {
        $(impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
        })*
    };
}
shown_as_display!(i32, u32, u64, u16, u8, usize, bool);

impl Shown for str {
    fn shown(&self) -> String {
        if self.is_empty() {
            "\"\" (empty)".into()
        } else {
            self.to_owned()
        }
    }
}

impl Shown for String {
    fn shown(&self) -> String {
        self.as_str().shown()
    }
}

impl<T: Shown + ?Sized> Shown for &T {
    fn shown(&self) -> String {
        (**self).shown()
    }
}

impl Shown for Errno {
    fn shown(&self) -> String {
        format!("{self:?} ({})", *self as i32)
    }
}

impl Shown for netclaim_fixtures::client::ConnectResult {
    fn shown(&self) -> String {
        use netclaim_fixtures::client::ConnectResult;
        match self {
            ConnectResult::Connected => "connected".into(),
            ConnectResult::Failed(e) => e.shown(),
            ConnectResult::PollTimedOut => "still connecting at the poll timeout".into(),
        }
    }
}

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> String {
        match self {
            Some(v) => v.shown(),
            None => "none".into(),
        }
    }
}

impl<T: Shown> Shown for Vec<T> {
    fn shown(&self) -> String {
        format!(
            "[{}]",
            self.iter().map(Shown::shown).collect::<Vec<_>>().join(", ")
        )
    }
}

impl<A: Shown, B: Shown> Shown for (A, B) {
    fn shown(&self) -> String {
        format!("({}, {})", self.0.shown(), self.1.shown())
    }
}
