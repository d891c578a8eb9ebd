//! One connection attempt as measured, and a measured duration with its error.

use std::time::Duration;

use netclaim_harness::tolerance::TOOL_STARTUP;
use serde::{Deserialize, Serialize};

/// One connection attempt as measured: its SYNs on the wire, when it began and ended, and
/// how late this machine ran timers meanwhile (the slowness probe, read when it ended).
/// It holds no clock readings, only durations: a recorded measurement is judged later
/// (claim files) as well as at once, with the same errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
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

fn from_us(us: u64) -> Duration {
    Duration::from_micros(us)
}

impl Attempt {
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
