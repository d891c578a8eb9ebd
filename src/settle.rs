//! When the claims of a gated run that wait on kernel timers are under way.

use std::time::{Duration, Instant};

use crate::out::errln;

/// Tells, in a run whose CPU-heavy claims wait for the busy gate, when the claims that
/// wait on kernel timers have finished setting up: the machine's CPUs (all of them, as
/// `/proc/stat` counts) were less than [`Settle::QUIET`] busy over two half-second
/// samples in a row, or [`Settle::AT_MOST`] passed. `kernels` lets the first VM's
/// CPU-heavy claims start only once every VM has settled, so that they do not compete
/// with the others' boots and lab set-ups.
pub struct Settle {
    since: Instant,
    last: Option<(Instant, u64, u64)>,
    quiet_samples: u32,
    announced: bool,
}

impl Settle {
    /// The busy fraction below which the machine counts as quiet.
    const QUIET: f64 = 0.3;
    /// Announced after this long whatever the load.
    const AT_MOST: Duration = Duration::from_secs(40);

    pub fn new() -> Self {
        Self {
            since: Instant::now(),
            last: None,
            quiet_samples: 0,
            announced: false,
        }
    }

    /// Samples the load (every half second at most); true (and a line on stderr for
    /// the user) the one time the claims count as under way.
    pub fn poll(&mut self) -> bool {
        if self.announced {
            return false;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|(at, ..)| now - at < Duration::from_millis(500))
        {
            return false;
        }
        let Some((busy, total)) = cpu_times() else {
            return false;
        };
        let fraction = self.last.and_then(|(_, b, t)| {
            (total > t).then(|| (busy.saturating_sub(b)) as f64 / (total - t) as f64)
        });
        self.last = Some((now, busy, total));
        match fraction {
            Some(f) if f < Self::QUIET => self.quiet_samples += 1,
            Some(_) => self.quiet_samples = 0,
            None => {}
        }
        let waited = now - self.since;
        if self.quiet_samples >= 2 || waited >= Self::AT_MOST {
            self.announced = true;
            errln!(
                "netclaim: waiting claims under way after {:.1} s ({})",
                waited.as_secs_f64(),
                if self.quiet_samples >= 2 {
                    "the CPUs went quiet"
                } else {
                    "still busy: not waiting longer"
                }
            );
            return true;
        }
        false
    }
}

/// (busy, total) CPU time of the machine, in ticks, from `/proc/stat`'s `cpu` line.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}
