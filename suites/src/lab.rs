//! Building blocks the claims share: standard labs, the model read from a namespace, tool
//! runs with wire capture, and the checks that compare a SYN schedule with a measurement.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_harness::capture::{self, TcpEvent, TcpFlags};
use netclaim_harness::command::{CommandOutput, ToolCommand};
use netclaim_harness::model::{SynModel, SynSchedule};
use netclaim_harness::slowness;
use netclaim_harness::sysctl::knob;
use netclaim_harness::tolerance::Window;
// The one tolerance policy, under the names the claims use.
pub use netclaim_harness::tolerance::{
    accumulated_slack, give_up_window, interval_slack, schedule_windows, tool_timer_window, EARLY,
    TOOL_EARLY, TOOL_STARTUP,
};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::claim::{Check, Ctx, Figures, Outcome, Timeline, Timing};

/// The port every SYN-drop lab listens on (nothing listens; the SYNs are dropped).
pub const DROPPED_PORT: u16 = 7;

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

/// The not-applicable outcome for a sysctl this kernel lacks or rejects (the lab cannot
/// be built as the claim needs it); `None` for any other error.
pub fn not_applicable(e: &netclaim_harness::Error) -> Option<Outcome> {
    refusal(e).map(|why| Outcome::forced(crate::claim::Verdict::NotApplicable, why))
}

/// Why the kernel refuses a lab, for a sysctl it lacks or rejects; `None` for any other
/// error. In a user namespace, a knob the kernel keeps from non-initial user namespaces
/// says so: the same claim may apply as root.
pub fn refusal(e: &netclaim_harness::Error) -> Option<String> {
    use netclaim_harness::Error::{SysctlAbsent, SysctlGlobal, SysctlRejected};
    let name = match e {
        SysctlGlobal { .. } => return Some(format!("not applicable in a lab: {e}")),
        SysctlAbsent { name, .. } | SysctlRejected { name, .. } => name,
        _ => return None,
    };
    if let SysctlAbsent { path, .. } = e {
        // Read from this thread, which is in the host's namespace: a knob the host has and
        // a lab lacks is one the kernel keeps only for the host (global), not a missing one.
        if path.exists() {
            return Some(format!(
                "not applicable in a lab: the kernel keeps {name} only in the host's network namespace (it is global: a lab has none of its own to write, and the host's is never changed)"
            ));
        }
    }
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

    // A 6.12 guest's 6th SYN came 0.8 s late, within its measured error of 1 s, while its
    // 2nd was on time with no error: the send-times check was judged by the 2nd (outside
    // by 0 ms, error 0) and failed instead of being inconclusive.
    // The 6.12 guest's SYNs under TCG beside a load: the 2nd 13 ms before its window
    // (a retransmission timer armed while jiffies lagged the clock), with the probe
    // seeing timers 188 ms late over the first one. That is no early timer of the
    // kernel's: inconclusive, never a mismatch. On an idle machine (lateness 0) the same
    // early SYN is still a mismatch.
    #[test]
    fn an_early_syn_within_the_tick_lateness_is_inconclusive() {
        let m = |late_us: u64| Measurement {
            syn_times_us: vec![0, 987_000, 3_013_000],
            first_packet_us: Some(0),
            duration_us: 3_100_000,
            tool: false,
            syn_late_us: vec![late_us, 0, 0],
            late_us,
        };
        let ms = Duration::from_millis;
        let windows = [
            Window {
                min: ms(0),
                max: ms(40),
            },
            Window {
                min: ms(1000) - EARLY,
                max: ms(1040),
            },
            Window {
                min: ms(3000) - EARLY,
                max: ms(3080),
            },
        ];
        let times = [ms(0), ms(987), ms(3013)];
        let state = |late_us: u64| {
            let m = m(late_us);
            let errors: Vec<Measured> = (0..3).map(|i| m.syn_error(i)).collect();
            let i = worst_outside(&windows, &times, &errors).expect("the 2nd SYN is early");
            crate::claim::Check {
                what: "SYN send times".into(),
                expected: String::new(),
                observed: String::new(),
                ok: false,
                timing: Some(timing(windows[i], times[i], &errors[i])),
            }
            .state()
        };
        assert_eq!(state(187_597), crate::claim::CheckState::Inconclusive);
        assert_eq!(state(0), crate::claim::CheckState::Fail);
    }

    #[test]
    fn the_send_times_check_is_judged_by_a_syn_outside_its_window() {
        let ms = Duration::from_millis;
        let window = |at: u64| Window {
            min: ms(at).saturating_sub(EARLY),
            max: ms(at + 40),
        };
        let windows = [window(0), window(1000), window(3000)];
        let times = [ms(0), ms(1000), ms(3800)];
        let error = |e: u64| Measured {
            took: Duration::ZERO,
            error: ms(e),
            early_error: Duration::ZERO,
            error_from: String::new(),
        };
        let errors = [error(0), error(0), error(1000)];
        assert_eq!(worst_outside(&windows, &times, &errors), Some(2));
        let t = timing(windows[2], times[2], &errors[2]);
        assert!(t.outside_ms() > 0.0 && t.outside_ms() <= t.error_on_its_side_ms());
        assert_eq!(
            worst_outside(&windows, &[ms(0), ms(1000), ms(3000)], &errors),
            None
        );
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

    /// Records a complete check (one that carries its timing) in `outcome`'s list.
    pub fn record_check(self, outcome: &mut Outcome, check: Check) {
        match self {
            Against::Statement => outcome.claim_checks.push(check),
            Against::Model => outcome.model_checks.push(check),
        }
    }
}

/// One connection attempt as measured: its SYNs on the wire, when it began and ended, and
/// how late this machine ran timers meanwhile (the slowness probe, read when it ended).
/// It holds no clock readings, only durations: a recorded measurement is judged later
/// (claim files) as well as at once, with the same errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// SYN send times, µs from the first.
    pub syn_times_us: Vec<u64>,
    /// From the start (a tool's spawn, or the connect() call) to the first packet (the
    /// first SYN; for a tool that resolves a name first, its first DNS query), µs;
    /// `None`: no packet was seen.
    pub first_packet_us: Option<u64>,
    /// From the start to the end (connect() returned, or the tool exited), µs.
    pub duration_us: u64,
    /// Whether the start is a tool's spawn (then up to the first packet is its start-up).
    pub tool: bool,
    /// The probe's worst timer lateness over each SYN's timer (from SYN i to SYN i+1; the
    /// last one to the end), µs.
    pub syn_late_us: Vec<u64>,
    /// The probe's worst timer lateness from the first packet (or the start) to the end,
    /// µs.
    pub late_us: u64,
}

/// A measured duration with the error this machine may have added to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The duration.
    pub took: Duration,
    /// How much of it the machine may account for (late timers, slow processes).
    pub error: Duration,
    /// How much of the timed span the measurement may have missed at its start (a timer
    /// armed before the first packet the measurement starts from).
    pub early_error: Duration,
    /// Where the errors come from, in words.
    pub error_from: String,
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn from_us(us: u64) -> Duration {
    Duration::from_micros(us)
}

impl Measurement {
    /// Records an attempt that began at `started` and ended at `ended`, whose SYNs left at
    /// `syn_times` from its first packet at `first_packet`; `tool`: the start is a tool's
    /// spawn. Reads the slowness probe for each of the SYNs' timers and for the whole.
    pub fn record(
        syn_times: &[Duration],
        first_packet: Option<Instant>,
        started: Instant,
        ended: Instant,
        tool: bool,
    ) -> Self {
        let from = first_packet.unwrap_or(started);
        let armed: Vec<Instant> = match first_packet {
            Some(f) => syn_times.iter().map(|t| f + *t).collect(),
            None => Vec::new(),
        };
        let syn_late_us = armed
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let end = armed.get(i + 1).copied().unwrap_or(ended);
                us(slowness::late_between(*a, end))
            })
            .collect();
        Self {
            syn_times_us: syn_times.iter().map(|t| us(*t)).collect(),
            first_packet_us: first_packet.map(|f| us(f.saturating_duration_since(started))),
            duration_us: us(ended.saturating_duration_since(started)),
            tool,
            syn_late_us,
            late_us: us(slowness::late_between(from, ended)),
        }
    }

    /// The attempt of an in-process client: SYNs from a capture started at
    /// `capture_started`, connect() called at `started` and returned at `ended`.
    pub fn client(
        events: &[TcpEvent],
        port: u16,
        capture_started: Instant,
        started: Instant,
        ended: Instant,
    ) -> Self {
        Self::record(
            &capture::syn_times(events, port),
            first_syn_at(events, port, capture_started),
            started,
            ended,
            false,
        )
    }

    /// SYN send times, from the first.
    pub fn syn_times(&self) -> Vec<Duration> {
        self.syn_times_us.iter().map(|&t| from_us(t)).collect()
    }

    /// What a check of the attempt's duration measures: from the first SYN to the end,
    /// so that a tool's start-up (exec, dynamic linking, which emulation slows tenfold)
    /// is not counted as the kernel's or the tool's time; from the start without a packet.
    pub fn took(&self) -> Duration {
        from_us(
            self.duration_us
                .saturating_sub(self.first_packet_us.unwrap_or(0)),
        )
    }

    /// A tool's start-up: from its spawn to its first packet.
    pub fn startup(&self) -> Option<Duration> {
        self.first_packet_us.filter(|_| self.tool).map(from_us)
    }

    /// A tool's process work beyond what the windows allow for it ([`TOOL_STARTUP`]),
    /// measured by its start-up: its exit path (after the timer that ends it) runs the
    /// same slow way, and the windows give it only the allowance.
    pub fn process_excess(&self) -> Duration {
        self.startup()
            .map_or(Duration::ZERO, |s| s.saturating_sub(TOOL_STARTUP))
    }

    /// The duration as a give-up by the kernel: its SYN timers ran one after the other from
    /// the first SYN, each may have fired as late as this machine ran timers meanwhile, and
    /// a tool then needed its process work to exit.
    pub fn kernel_give_up(&self) -> Measured {
        let timers = from_us(self.syn_late_us.iter().sum());
        self.measured(timers, self.syn_late_us.len(), Duration::ZERO)
    }

    /// The duration as one timer of the tool's own. The tool armed it somewhere between
    /// its spawn and its first packet, where the measurement starts: on the early side the
    /// measurement may miss up to the tool's start-up.
    pub fn tool_timer(&self) -> Measured {
        let armed_before = self.startup().unwrap_or_default();
        self.measured(from_us(self.late_us), 1, armed_before)
    }

    fn measured(&self, timers: Duration, n: usize, early_error: Duration) -> Measured {
        let process = self.process_excess();
        let mut from = vec![format!(
            "timers up to {} ms late over {n} timer(s) (probe)",
            timers.as_millis()
        )];
        if let Some(s) = self.startup() {
            from.push(format!(
                "tool start-up {} ms, {} ms past the {} ms allowed",
                s.as_millis(),
                process.as_millis(),
                TOOL_STARTUP.as_millis()
            ));
        }
        Measured {
            took: self.took(),
            error: timers + process,
            early_error,
            error_from: from.join("; "),
        }
    }

    /// The measured error of SYN `i`'s send time (relative to the first SYN): the
    /// lateness of the timers before it, on both sides. A kernel timer never fires before
    /// its jiffy, but the kernel arms it in jiffies, which lag the clock the capture uses
    /// while the tick runs late (an emulated CPU the host does not run, a loaded
    /// machine): a retransmission timer armed then falls due early by that clock, by at
    /// most how late the tick ran, which is the probe's lateness. A 6.12 guest under TCG
    /// beside a load sent its 2nd SYN at 0.987 s while its probe saw timers 188 ms late;
    /// on an idle machine the lateness, so this allowance, is a fraction of a millisecond.
    pub fn syn_error(&self, i: usize) -> Measured {
        let late = from_us(self.syn_late_us.iter().take(i).sum());
        Measured {
            took: self
                .syn_times_us
                .get(i)
                .map_or(Duration::ZERO, |&t| from_us(t)),
            error: late,
            early_error: late,
            error_from: format!(
                "SYN {}: timers up to {} ms late before it (probe); as much early: jiffies \
                 behind the clock while the tick ran late",
                i + 1,
                late.as_millis()
            ),
        }
    }
}

/// The measured lateness of the chain of timers armed at `armed` (each runs until the
/// next, the last until `end`): the probe's worst lateness over each, summed.
fn chain_lateness(armed: &[Instant], end: Instant) -> Duration {
    armed
        .iter()
        .enumerate()
        .map(|(i, a)| slowness::late_between(*a, armed.get(i + 1).copied().unwrap_or(end)))
        .sum()
}

/// When the first SYN to `port` among `events` went out, on the monotonic clock.
pub fn first_syn_at(events: &[TcpEvent], port: u16, capture_started: Instant) -> Option<Instant> {
    events
        .iter()
        .find(|e| e.flags.is_syn() && e.dst.port() == port)
        .map(|e| capture_started + e.at)
}

/// Records a timing check: `m.took` against `window` (around `expected`), carrying the
/// window and the measured error so that a miss within the error reads inconclusive.
pub fn check_timing(
    o: &mut Outcome,
    against: Against,
    what: &str,
    expected: Duration,
    window: Window,
    m: &Measured,
) {
    against.record_check(
        o,
        Check {
            what: what.into(),
            expected: format!("{} within {window}", secs(expected)),
            observed: secs(m.took),
            ok: window.contains(m.took),
            timing: Some(timing(window, m.took, m)),
        },
    );
}

/// The [`Timing`] of a check of `observed` against `window`, with the errors of `m`.
pub fn timing(window: Window, observed: Duration, m: &Measured) -> Timing {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Timing {
        window_ms: [ms(window.min), ms(window.max)],
        observed_ms: ms(observed),
        error_ms: ms(m.error),
        early_error_ms: ms(m.early_error),
        error_from: m.error_from.clone(),
    }
}

/// Compares a measured attempt (its SYNs from the wire, its give-up from the first SYN
/// to its end) with `schedule`, recording the checks in `outcome` under `against`. The
/// SYN count is exact; send times and the give-up are timing checks judged with the
/// attempt's measured error.
pub fn check_schedule(
    outcome: &mut Outcome,
    against: Against,
    schedule: &SynSchedule,
    m: &Measurement,
    ctx: &Ctx,
    startup: Duration,
) {
    check_syns(outcome, against, schedule, m, ctx, startup, true);
}

/// [`check_schedule`], the give-up only `with_give_up` (a statement of SYN times alone).
pub fn check_syns(
    outcome: &mut Outcome,
    against: Against,
    schedule: &SynSchedule,
    m: &Measurement,
    ctx: &Ctx,
    startup: Duration,
    with_give_up: bool,
) {
    let (windows, give_up_window) = schedule_windows(schedule, ctx.hz, startup);
    let syn_times = &m.syn_times();
    against.record(
        outcome,
        "SYN count",
        schedule.syn_count().to_string(),
        syn_times.len().to_string(),
        schedule.syn_count() == syn_times.len(),
    );
    let same_count = syn_times.len() == windows.len();
    let spacing_ok = same_count && windows.iter().zip(syn_times).all(|(w, t)| w.contains(*t));
    // Of the SYNs outside their windows, the one farthest beyond its error decides (all
    // within their errors: inconclusive); with a different count the spacing is not a
    // timing question.
    let errors: Vec<Measured> = (0..syn_times.len()).map(|i| m.syn_error(i)).collect();
    let worst = same_count
        .then(|| worst_outside(&windows, syn_times, &errors))
        .flatten();
    against.record_check(
        outcome,
        Check {
            what: "SYN send times (timer-wheel slack at HZ, late only)".into(),
            expected: format!(
                "{} within {}",
                ms_list(&schedule.send_times),
                windows_text(&windows)
            ),
            observed: ms_list(syn_times),
            ok: spacing_ok,
            timing: worst.map(|i| timing(windows[i], syn_times[i], &errors[i])),
        },
    );
    if with_give_up {
        check_timing(
            outcome,
            against,
            "give-up time",
            schedule.give_up,
            give_up_window,
            &m.kernel_give_up(),
        );
    }
}

/// The index of the time outside its window farthest beyond its error, if any is outside.
pub fn worst_outside(windows: &[Window], times: &[Duration], errors: &[Measured]) -> Option<usize> {
    windows
        .iter()
        .zip(times)
        .zip(errors)
        .enumerate()
        .filter(|(_, ((w, t), _))| !w.contains(**t))
        .map(|(i, ((w, t), e))| {
            let t_ = timing(*w, *t, e);
            (t_.outside_ms() - t_.error_on_its_side_ms(), i)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, i)| i)
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
    /// The run as a connection attempt: spawn, first SYN, exit.
    pub measurement: Measurement,
    /// When the capture began: the instant every event's `at` counts from. Like
    /// [`CommandOutput::started`] it is not recorded: [`ToolRun::between`] and
    /// [`ToolRun::until_close`] read this machine's timer probe over it, so they belong
    /// to the measuring step, never to judging a record.
    #[serde(skip, default = "Instant::now")]
    pub capture_started: Instant,
}

impl ToolRun {
    /// From the tool's first SYN to its exit (see [`Measurement::took`]).
    pub fn took(&self) -> Duration {
        self.measurement.took()
    }

    /// The run as one timer of the tool's that ends when it closes the connection to
    /// `port`: from its first SYN to its FIN, seen on the wire, so that its exit does not
    /// count; the tool may have armed the timer before the SYN (its start-up is the early
    /// error). Without a FIN, as [`Measurement::tool_timer`].
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

    /// The tool's first packet to `port` whose flags satisfy `which`.
    pub fn first_to(&self, port: u16, which: fn(TcpFlags) -> bool) -> Option<&TcpEvent> {
        self.events
            .iter()
            .find(|e| which(e.flags) && e.dst.port() == port)
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
    let measurement = Measurement::record(
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

/// Evidence text for a tool run: the command output, its start-up and the packet
/// timeline.
pub fn tool_evidence(run: &ToolRun) -> String {
    let m = &run.measurement;
    let startup = match m.startup() {
        Some(s) => format!(
            "start-up (spawn to first SYN) {}, first SYN to exit {}",
            secs(s),
            secs(m.took())
        ),
        None => "no SYN: timed from the spawn".into(),
    };
    format!(
        "{}\n{startup}\n--- wire ---\n{}",
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
        .duration(run.took())
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
