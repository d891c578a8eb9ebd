//! The one tolerance policy: which window a measured duration is judged in, used by the
//! claims, the claim files' engine, netclaim-lab and the report's timing figure alike.
//!
//! - Kernel timers are never early (beyond [`EARLY`], capture and clock jitter) and fire
//!   late by up to one granule of the timer-wheel level that holds them
//!   (`kernel/time/timer.c`: 8^level jiffies, [`timer_slack`]), with a floor of
//!   [`SLACK_FLOOR`]; a SYN is captured a moment before its timer is armed
//!   ([`ARMED_AFTER_CAPTURE`]); lateness accumulates over successive retransmissions
//!   ([`schedule_windows`]).
//! - A tool's own timer is at most [`TOOL_EARLY`] early and late by what the caller
//!   allows ([`tool_timer_window`]); a deadline a tool keeps from its start, timed from its
//!   spawn, is late by at most `max(TOOL_STARTUP, 5 %)` ([`tool_deadline_window`]).
//!
//! A timing check carries the window it was judged in, and the measured error of the
//! machine (see `slowness`) decides whether a miss is inconclusive.

use std::fmt;
use std::time::Duration;

use crate::model::SynSchedule;

/// How early a measured kernel-timer event may appear: capture and clock jitter.
pub const EARLY: Duration = Duration::from_millis(5);

/// How early a tool's own timer may appear to fire when timed from its first packet:
/// clock granularity, and the tool's work between arming the timer and sending the
/// packet (socket(), fcntl(), connect(): 2 ms seen on a loaded machine).
pub const TOOL_EARLY: Duration = Duration::from_millis(10);

/// Start-up allowance for a real tool between spawn and its first packet (exec, dynamic
/// linking, option parsing); only ever added to the late side.
pub const TOOL_STARTUP: Duration = Duration::from_millis(400);

/// The least lateness allowed to a kernel timer's interval, whatever the wheel's slack
/// at this HZ (at HZ=1000 the slack of a short timer is 2 ms).
pub const SLACK_FLOOR: Duration = Duration::from_millis(4);

/// An accepted range of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Lower bound, inclusive.
    pub min: Duration,
    /// Upper bound, inclusive.
    pub max: Duration,
}

impl Window {
    /// Whether `d` lies in the window.
    pub fn contains(&self, d: Duration) -> bool {
        self.min <= d && d <= self.max
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:.3}, {:.3}] s",
            self.min.as_secs_f64(),
            self.max.as_secs_f64()
        )
    }
}

/// How late the timer wheel may fire a timer armed `timeout` ahead, at `hz`: one granule
/// of its level plus the jiffy the expiry is rounded up to.
pub fn timer_slack(timeout: Duration, hz: u32) -> Duration {
    const LVL_CLK_SHIFT: u32 = 3;
    const LVL_SIZE: u64 = 64;
    let jiffy = Duration::from_nanos(1_000_000_000 / u64::from(hz.max(1)));
    let jiffies = timeout.as_nanos().div_ceil(jiffy.as_nanos()) as u64;
    // LVL_START(n) = (LVL_SIZE - 1) << ((n - 1) * LVL_CLK_SHIFT)
    let mut level = 0;
    while level < 8 && jiffies >= (LVL_SIZE - 1) << (level * LVL_CLK_SHIFT) {
        level += 1;
    }
    let granule = 1u64 << (level * LVL_CLK_SHIFT);
    jiffy * (granule as u32 + 1)
}

/// How much later than its SYN's capture a retransmission timer may be armed, which a
/// measured interval counts as lateness. The capture point (the packet tap on transmit)
/// precedes `inet_csk_reset_xmit_timer` by microseconds; when a tick falls in between,
/// the timer starts from the next jiffy and the interval measures that much past the
/// wheel's bound (seen: 29 µs past [`timer_slack`], once in 595 intervals). 1 ms also
/// covers a brief preemption of the sending CPU.
pub const ARMED_AFTER_CAPTURE: Duration = Duration::from_millis(1);

/// The window for a kernel timer: never early (beyond `early`, for clock and capture
/// jitter), late by at most `slack`.
pub fn kernel_timer_window(expected: Duration, slack: Duration, early: Duration) -> Window {
    Window {
        min: expected.saturating_sub(early),
        max: expected + slack,
    }
}

/// How late a measured interval armed for `interval` may be: the timer-wheel slack at
/// `hz` (at least [`SLACK_FLOOR`]), plus the time between capturing the SYN and arming
/// the timer ([`ARMED_AFTER_CAPTURE`]).
pub fn interval_slack(interval: Duration, hz: u32) -> Duration {
    timer_slack(interval, hz).max(SLACK_FLOOR) + ARMED_AFTER_CAPTURE
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

/// The window for a give-up at `stated` when the timers actually armed are those of
/// `armed` (the model's schedule for this kernel): never early, late by their slack plus
/// `startup` (a tool's own start-up).
pub fn give_up_window(stated: Duration, armed: &SynSchedule, hz: u32, startup: Duration) -> Window {
    kernel_timer_window(stated, accumulated_slack(armed, hz) + startup, EARLY)
}

/// Windows for every SYN send time and the give-up time of `schedule`: each interval may
/// be late by its slack, and lateness accumulates; `startup` widens the give-up window for
/// tools that start before their first SYN.
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

/// A window for a timer a tool keeps itself, timed from its first packet: never more
/// than [`TOOL_EARLY`] early, at most `late` late (the tool's process work, and whatever
/// rounding the tool does).
pub fn tool_timer_window(expected: Duration, late: Duration) -> Window {
    Window {
        min: expected.saturating_sub(TOOL_EARLY),
        max: expected + late,
    }
}

/// The window for a deadline a tool keeps from its own start, timed from its spawn: a
/// few ms early, at most `max(TOOL_STARTUP, 5 %)` late (its start-up is in the measured
/// duration, and a long deadline drifts with the process's work).
pub fn tool_deadline_window(expected: Duration) -> Window {
    tool_timer_window(expected, TOOL_STARTUP.max(expected.mul_f64(0.05)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn a_tool_deadline_is_late_by_its_start_up_or_five_percent() {
        let w = tool_deadline_window(Duration::from_secs(3));
        assert_eq!(w.min, Duration::from_millis(2990));
        assert_eq!(w.max, Duration::from_millis(3400));
        let w = tool_deadline_window(Duration::from_secs(20));
        assert_eq!(w.max, Duration::from_secs(21));
    }

    #[test]
    fn an_interval_slack_has_its_floor_and_the_arming_gap() {
        // HZ=1000: a 20 ms timer's wheel slack is 2 ms, below the floor.
        assert_eq!(
            interval_slack(Duration::from_millis(20), 1000),
            SLACK_FLOOR + ARMED_AFTER_CAPTURE
        );
        assert_eq!(
            interval_slack(Duration::from_secs(1), 250),
            Duration::from_millis(37)
        );
    }

    // HZ=250: a jiffy is 4 ms; level granules are 1, 8, 64, 512 jiffies.
    #[rstest]
    #[case(Duration::from_millis(200), 250, Duration::from_millis(8))]
    #[case(Duration::from_secs(1), 250, Duration::from_millis(36))]
    #[case(Duration::from_secs(4), 250, Duration::from_millis(260))]
    #[case(Duration::from_secs(16), 250, Duration::from_millis(260))]
    #[case(Duration::from_secs(32), 250, Duration::from_millis(2052))]
    #[case(Duration::from_secs(64), 250, Duration::from_millis(2052))]
    #[case(Duration::from_secs(1), 1000, Duration::from_millis(65))]
    fn slack_follows_the_timer_wheel(
        #[case] t: Duration,
        #[case] hz: u32,
        #[case] slack: Duration,
    ) {
        assert_eq!(timer_slack(t, hz), slack);
    }
}
