//! How late this machine runs timers right now, measured rather than assumed.
//!
//! Probe threads per CPU (pinned to it) sleep again and again and record how much later
//! than asked they woke: one on a high-resolution timer ([`PERIOD`]), one on a timer of
//! the kernel's timer wheel ([`WHEEL_TIMEOUT`], a receive timeout, which is how the kernel
//! arms its TCP timers too), whose lateness beyond the wheel's own rounding (two jiffies)
//! shows timer-softirq delays the first cannot see. On an idle machine that is tens of microseconds;
//! under emulation (QEMU's TCG) or on a loaded machine it grows to milliseconds or more,
//! because the timer interrupt is delivered late and the woken thread waits for a CPU.
//! One CPU can be late while another is on time (a host that does not run an emulated
//! CPU's thread for a while), and a kernel timer fires on the CPU that armed it, so each
//! CPU is probed. A kernel timer (a SYN retransmission) or a tool's own timer armed at the
//! same time suffers the same delays, so [`late_between`] over the span of a measurement,
//! the worst over every CPU, is the measured error of that measurement's timers: what a
//! timing check may attribute to the machine, not to the kernel or the tool.
//!
//! The probe starts on the first call to [`start`] (or to [`late_between`]) and lives as
//! long as the process; it runs in whatever namespace the process started in and touches
//! nothing but its own clock.
//!
//! The probe's lateness is the error of a timing; it says little about how long a process
//! takes to start, which is what emulation slows most. [`spawn_cost`] measures that (a
//! spawn of `/bin/true`), and [`stretch`] scales a deadline by it: the deadline of a wait
//! on a state or of a tool that ends by its own timer, never a window a timing is judged
//! against.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the probe sleeps each time. A stall shorter than this that falls between two
/// wake-ups goes unseen, so it is short: a TCG guest's vCPU that the host does not run for
/// 10 ms delayed a SYN timer by as much while a 20 ms probe saw nothing.
pub const PERIOD: Duration = Duration::from_millis(5);
/// Samples kept per CPU: 30 minutes at [`PERIOD`], far more than the longest claim.
const KEEP: usize = 360_000;
/// The timeout of the wheel probe's receive (two jiffies at HZ=250).
pub const WHEEL_TIMEOUT: Duration = Duration::from_millis(8);

/// One wake-up of the probe, in µs from the probe's start (8 bytes, so that half an hour
/// of them per CPU stays under 3 MiB).
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When it went to sleep.
    slept_us: u32,
    /// How long it slept.
    slept_for_us: u32,
}

impl Sample {
    fn new(base: Instant, slept: Instant, woke: Instant) -> Self {
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        Self {
            slept_us: us(slept.saturating_duration_since(base)),
            slept_for_us: us(woke.saturating_duration_since(slept)),
        }
    }

    fn slept(&self, base: Instant) -> Instant {
        base + Duration::from_micros(self.slept_us.into())
    }

    fn woke(&self, base: Instant) -> Instant {
        self.slept(base) + Duration::from_micros(self.slept_for_us.into())
    }

    /// How much longer than `asked` it slept.
    fn late(&self, asked: Duration) -> Duration {
        Duration::from_micros(self.slept_for_us.into()).saturating_sub(asked)
    }
}

/// One probe thread of one CPU.
struct Lane {
    /// How long a sleep of this probe takes on an idle machine at the most: its sleep,
    /// and for the wheel probe the wheel's rounding.
    asked: Duration,
    samples: Mutex<VecDeque<Sample>>,
    /// When the current sleep began, for a wake-up that has not come yet.
    asleep_since: Mutex<Option<Instant>>,
}

impl Lane {
    fn new(asked: Duration) -> Self {
        Self {
            asked,
            samples: Mutex::new(VecDeque::new()),
            asleep_since: Mutex::new(None),
        }
    }

    /// Sleeps once with `sleep` and records how long it took in lane `i`.
    fn sleep_once(i: usize, sleep: &dyn Fn()) {
        let slept = Instant::now();
        let lane = PROBE.get().and_then(|p| p.lanes.get(i));
        if let Some(l) = lane {
            *lock(&l.asleep_since) = Some(slept);
        }
        sleep();
        let woke = Instant::now();
        if let (Some(l), Some(p)) = (lane, PROBE.get()) {
            *lock(&l.asleep_since) = None;
            let mut s = lock(&l.samples);
            if s.len() == KEEP {
                s.pop_front();
            }
            s.push_back(Sample::new(p.base, slept, woke));
        }
    }
}

/// Sleeps `WHEEL_TIMEOUT` in a receive on an empty AF_UNIX datagram socket whose receive
/// timeout is that long: the kernel waits with schedule_timeout(), a timer of the timer
/// wheel. No address, no traffic: only this process's own socket pair.
fn wheel_sleeper() -> Option<impl Fn()> {
    use nix::sys::socket::{
        recv, setsockopt, socketpair, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    };
    use std::os::fd::AsRawFd;
    let (a, _b) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ok()?;
    let timeout = nix::sys::time::TimeVal::new(0, WHEEL_TIMEOUT.as_micros() as _);
    setsockopt(&a, sockopt::ReceiveTimeout, &timeout).ok()?;
    Some(move || {
        let _keep = &_b;
        let mut buf = [0u8; 1];
        let _ = recv(a.as_raw_fd(), &mut buf, MsgFlags::empty());
    })
}

struct Probe {
    /// What the samples' times count from.
    base: Instant,
    lanes: Vec<Lane>,
}

/// At most this many CPUs are probed (the first of the process's CPU set): a machine
/// with more is not the slow one this is for.
const MAX_LANES: usize = 16;

static PROBE: OnceLock<Probe> = OnceLock::new();

/// The CPUs this process may run on.
fn cpus() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|c| set.is_set(*c).unwrap_or(false))
            .take(MAX_LANES)
            .collect(),
        Err(_) => vec![usize::MAX],
    }
}

/// Pins the calling thread to `cpu` (best effort: unpinned, it still probes one CPU).
fn pin(cpu: usize) {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

fn probe() -> &'static Probe {
    PROBE.get_or_init(|| {
        let cpus = cpus();
        let jiffy = Duration::from_nanos(1_000_000_000 / u64::from(crate::kernel::hz_for_slack()));
        let mut lanes = Vec::new();
        for (n, cpu) in cpus.iter().copied().enumerate() {
            // One thread per CPU, its two kinds of sleep one after the other (a thread is a
            // task: a pids cgroup of 16 leaves no room for two per CPU). Without the thread
            // its lanes have no samples and add no error: checks stay strict, the safe side.
            let (hr, wheel) = (lanes.len(), lanes.len() + 1);
            lanes.push(Lane::new(PERIOD));
            lanes.push(Lane::new(WHEEL_TIMEOUT + jiffy * 2));
            let _ = std::thread::Builder::new()
                .name(format!("netclaim-slowness-{n}"))
                .spawn(move || {
                    pin(cpu);
                    let wheel_sleep = wheel_sleeper();
                    loop {
                        Lane::sleep_once(hr, &|| std::thread::sleep(PERIOD));
                        if let Some(w) = &wheel_sleep {
                            Lane::sleep_once(wheel, w);
                        }
                    }
                });
        }
        Probe {
            base: Instant::now(),
            lanes,
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the probe (idempotent). Call it before the measurements it should cover.
pub fn start() {
    probe();
}

/// The worst lateness of a timer over `[from, to]`: the latest wake-up of every probe
/// sleep that overlapped the span, including a sleep still waiting to wake (it is late
/// by at least how long it has overslept so far). Zero when the probe has no sample there.
pub fn late_between(from: Instant, to: Instant) -> Duration {
    probe()
        .lanes
        .iter()
        .map(|l| {
            let done = worst_late(&lock(&l.samples), probe().base, l.asked, from, to);
            let pending = match *lock(&l.asleep_since) {
                Some(since) if since <= to => Instant::now()
                    .saturating_duration_since(since)
                    .saturating_sub(l.asked),
                _ => Duration::ZERO,
            };
            done.max(pending)
        })
        .max()
        .unwrap_or_default()
}

/// The worst lateness beyond `asked` among `samples` (in wake-up order, times from `base`)
/// whose sleep overlapped `[from, to]`.
fn worst_late(
    samples: &VecDeque<Sample>,
    base: Instant,
    asked: Duration,
    from: Instant,
    to: Instant,
) -> Duration {
    overlapping(samples, base, from, to)
        .map(|s| s.late(asked))
        .max()
        .unwrap_or_default()
}

fn overlapping(
    samples: &VecDeque<Sample>,
    base: Instant,
    from: Instant,
    to: Instant,
) -> impl Iterator<Item = &Sample> {
    // Samples are in wake-up order; skip those that woke before the span.
    let first = samples.partition_point(|x| x.woke(base) < from);
    samples
        .range(first..)
        .take_while(move |x| x.slept(base) <= to)
}

/// Summary figures of the probe over `[from, to]`, every CPU together: the number of
/// wake-ups and the lateness of the median and the worst one.
pub fn summary_between(from: Instant, to: Instant) -> Summary {
    let mut late: Vec<Duration> = probe()
        .lanes
        .iter()
        .flat_map(|l| {
            overlapping(&lock(&l.samples), probe().base, from, to)
                .map(|s| s.late(l.asked))
                .collect::<Vec<_>>()
        })
        .collect();
    late.sort();
    Summary {
        samples: late.len(),
        median: late.get(late.len() / 2).copied().unwrap_or_default(),
        worst: late.last().copied().unwrap_or_default(),
    }
}

/// What an idle native machine takes to spawn `/bin/true` and reap it (fork, exec, dynamic
/// linking, exit): 1.0–1.9 ms measured on the 2-CPU development host, rounded up. The
/// reference [`factor`] divides by.
pub const SPAWN_REFERENCE: Duration = Duration::from_millis(2);
/// The most [`stretch`] multiplies a deadline by: a machine slower than this is not one a
/// deadline should wait for (under QEMU's TCG a spawn took 15–60 ms).
pub const MAX_FACTOR: f64 = 30.0;
/// How long a measured spawn cost is reused before it is measured again.
const SPAWN_FRESH: Duration = Duration::from_secs(5);

static SPAWN: Mutex<Option<(Instant, Duration)>> = Mutex::new(None);

/// What spawning and reaping `/bin/true` costs right now: the median of three, reused for
/// [`SPAWN_FRESH`]. `None` when it cannot be spawned (no such program, a pids limit).
/// This is the slowness that the timer probe cannot see: emulation (TCG) runs a guest's
/// timers nearly on time yet every process start-up tenfold slower, and a loaded machine
/// makes the spawned process wait for a CPU.
pub fn spawn_cost() -> Option<Duration> {
    let mut cached = lock(&SPAWN);
    if let Some((at, cost)) = *cached {
        if at.elapsed() < SPAWN_FRESH {
            return Some(cost);
        }
    }
    let mut costs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let ok = std::process::Command::new("/bin/true")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        costs.push(t.elapsed());
    }
    costs.sort();
    let cost = costs[1];
    *cached = Some((Instant::now(), cost));
    Some(cost)
}

/// How many times slower than [`SPAWN_REFERENCE`] this machine starts a process right now,
/// between 1 and [`MAX_FACTOR`] (1 when it could not be measured).
pub fn factor() -> f64 {
    factor_of(spawn_cost())
}

fn factor_of(spawn: Option<Duration>) -> f64 {
    spawn.map_or(1.0, |s| {
        (s.as_secs_f64() / SPAWN_REFERENCE.as_secs_f64()).clamp(1.0, MAX_FACTOR)
    })
}

/// `limit` stretched by the measured slowness ([`factor`]): the deadline of a wait on a
/// state (a socket in TIME_WAIT, a queue filled) or of a tool that ends by its own timer.
/// Such a deadline is only reached when the state never comes, so a long one costs
/// nothing on a fast machine, and on a slow one it keeps the harness from giving up on
/// what was merely late. Never for a timing that is judged.
pub fn stretch(limit: Duration) -> Duration {
    stretched(limit, spawn_cost())
}

fn stretched(limit: Duration, spawn: Option<Duration>) -> Duration {
    limit.mul_f64(factor_of(spawn))
}

/// What the probe saw over a span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Wake-ups in the span.
    pub samples: usize,
    /// The median lateness.
    pub median: Duration,
    /// The worst lateness.
    pub worst: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wheel_probe_sleeps_its_timeout_in_a_receive() {
        let sleep = wheel_sleeper().expect("a unix socket pair");
        let t = Instant::now();
        sleep();
        assert!(t.elapsed() >= WHEEL_TIMEOUT, "{:?}", t.elapsed());
    }

    #[test]
    fn the_probe_wakes_every_period_while_a_span_runs() {
        start();
        let from = Instant::now();
        std::thread::sleep(PERIOD * 6);
        let to = Instant::now();
        let s = summary_between(from, to);
        assert!(s.samples >= 3, "{s:?}");
        assert!(s.median <= s.worst, "{s:?}");
        assert!(late_between(from, to) >= s.worst, "{s:?}");
    }

    #[test]
    fn only_sleeps_overlapping_the_span_count() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let p = PERIOD.as_millis() as u64;
        // Slept at 0 (woke 20 ms late), at 40 (woke 500 ms late), at 600 (on time).
        let samples: VecDeque<Sample> = [(0, p + 20), (40, 40 + p + 500), (600, 600 + p)]
            .into_iter()
            .map(|(s, w)| Sample::new(t0, at(s), at(w)))
            .collect();
        let late = |a, b| worst_late(&samples, t0, PERIOD, at(a), at(b));
        assert_eq!(late(0, 10), Duration::from_millis(20));
        // The long sleep overlaps any span that touches [40, 545].
        assert_eq!(late(100, 200), Duration::from_millis(500));
        assert_eq!(late(601, 602), Duration::ZERO);
        assert_eq!(late(700, 800), Duration::ZERO);
    }

    #[test]
    fn deadlines_stretch_with_the_spawn_cost_within_limits() {
        let s = Duration::from_secs(2);
        // Unmeasured, or as fast as the reference or faster: unchanged.
        assert_eq!(stretched(s, None), s);
        assert_eq!(stretched(s, Some(Duration::from_micros(900))), s);
        assert_eq!(stretched(s, Some(SPAWN_REFERENCE)), s);
        // Ten times the reference (a TCG guest): ten times the deadline.
        assert_eq!(stretched(s, Some(SPAWN_REFERENCE * 10)), s * 10);
        // A stall far beyond: capped.
        assert_eq!(
            stretched(s, Some(Duration::from_secs(5))),
            s.mul_f64(MAX_FACTOR)
        );
    }

    #[test]
    fn the_spawn_cost_is_measured_and_reused() {
        let a = spawn_cost().expect("/bin/true runs");
        assert!(a > Duration::ZERO);
        assert_eq!(spawn_cost(), Some(a), "reused within {SPAWN_FRESH:?}");
        assert!((1.0..=MAX_FACTOR).contains(&factor()));
    }

    #[test]
    fn lateness_is_the_sleep_beyond_the_period() {
        let t = Instant::now();
        let s = Sample::new(t, t, t + PERIOD + Duration::from_millis(7));
        assert_eq!(s.late(PERIOD), Duration::from_millis(7));
        assert_eq!(s.woke(t), t + PERIOD + Duration::from_millis(7));
        let early = Sample::new(t, t, t + PERIOD / 2);
        assert_eq!(early.late(PERIOD), Duration::ZERO);
    }
}
