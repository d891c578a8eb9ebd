//! Comparing measured durations with expected ones.
//!
//! Two kinds of bound: a [`Tolerance`] of the form `max(absolute, percent)` (packetdrill's
//! `--tolerance_usecs` idea) for tool-driven timers, and [`timer_slack`] for kernel timers,
//! which the timer wheel fires late by up to one granule of the wheel level that holds
//! them (`kernel/time/timer.c`: 8^level jiffies), never early.

use std::fmt;
use std::time::Duration;

/// `max(absolute, percent × expected)`, symmetric around the expected value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// The absolute part.
    pub absolute: Duration,
    /// The relative part, in percent of the expected value.
    pub percent: f64,
}

impl Tolerance {
    /// A tolerance of `max(absolute, percent %)`.
    pub const fn new(absolute: Duration, percent: f64) -> Self {
        Self { absolute, percent }
    }

    /// The allowed deviation for `expected`.
    pub fn allowance(&self, expected: Duration) -> Duration {
        self.absolute.max(expected.mul_f64(self.percent / 100.0))
    }

    /// The window `[expected − allowance, expected + allowance]`.
    pub fn window(&self, expected: Duration) -> Window {
        let a = self.allowance(expected);
        Window {
            min: expected.saturating_sub(a),
            max: expected + a,
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max({} ms, {}%)",
            self.absolute.as_millis(),
            self.percent
        )
    }
}

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
/// jitter), late by at most `max(floor, timer_slack)`.
pub fn kernel_timer_window(expected: Duration, slack: Duration, early: Duration) -> Window {
    Window {
        min: expected.saturating_sub(early),
        max: expected + slack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn tolerance_takes_the_larger_part() {
        let t = Tolerance::new(Duration::from_millis(200), 5.0);
        assert_eq!(
            t.allowance(Duration::from_secs(1)),
            Duration::from_millis(200)
        );
        assert_eq!(
            t.allowance(Duration::from_secs(10)),
            Duration::from_millis(500)
        );
        assert!(t
            .window(Duration::from_secs(3))
            .contains(Duration::from_millis(3150)));
        assert!(!t
            .window(Duration::from_secs(3))
            .contains(Duration::from_millis(3300)));
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
