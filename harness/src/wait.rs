//! Waiting for a condition, never for a fixed time: [`until`] polls until a condition
//! holds or a deadline passes, and says what it waited for when it gives up (the
//! kernel selftests' `busywait`/`slowwait`). A fixed sleep is either too short on a
//! loaded machine (the flake) or too long everywhere else; a deadline with a reason is
//! neither.

use std::fmt;
use std::time::{Duration, Instant};

/// How often [`until`] polls by default: fine enough for socket-table and daemon
/// start-up checks, coarse enough to cost nothing.
pub const POLL: Duration = Duration::from_millis(10);

/// A condition that did not hold within its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was waited for.
    pub waited_for: String,
    /// The deadline.
    pub limit: Duration,
    /// How often it was checked.
    pub polls: u32,
    /// The last state seen, in words (what the condition reported).
    pub last: String,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} did not happen within {:.3} s ({} checks; last seen: {})",
            self.waited_for,
            self.limit.as_secs_f64(),
            self.polls,
            self.last
        )
    }
}

impl std::error::Error for TimedOut {}

/// What a condition says at one check.
#[derive(Debug)]
pub enum Poll<T> {
    /// It holds: stop with this value.
    Ready(T),
    /// Not yet; the state in words, for the error if the deadline passes.
    Pending(String),
}

/// Checks `condition` every `every` until it is [`Poll::Ready`] or `limit` passes (it is
/// checked once more at the deadline, so a condition that becomes true just in time
/// counts). `waited_for` names the condition in the error.
pub fn until_every<T>(
    waited_for: &str,
    limit: Duration,
    every: Duration,
    mut condition: impl FnMut() -> Poll<T>,
) -> Result<(T, Duration), TimedOut> {
    let start = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        let last = match condition() {
            Poll::Ready(v) => return Ok((v, start.elapsed())),
            Poll::Pending(state) => state,
        };
        let elapsed = start.elapsed();
        if elapsed >= limit {
            return Err(TimedOut {
                waited_for: waited_for.to_owned(),
                limit,
                polls,
                last,
            });
        }
        std::thread::sleep(every.min(limit - elapsed));
    }
}

/// [`until_every`] at [`POLL`]: the value and how long it took.
pub fn until<T>(
    waited_for: &str,
    limit: Duration,
    condition: impl FnMut() -> Poll<T>,
) -> Result<(T, Duration), TimedOut> {
    until_every(waited_for, limit, POLL, condition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut n = 0;
        let (v, took) = until("the third check", Duration::from_secs(5), || {
            n += 1;
            if n == 3 {
                Poll::Ready(n)
            } else {
                Poll::Pending(format!("check {n}"))
            }
        })
        .unwrap();
        assert_eq!(v, 3);
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    #[test]
    fn gives_up_at_the_deadline_saying_what_and_the_last_state() {
        let e = until_every(
            "a socket in TIME_WAIT",
            Duration::from_millis(50),
            Duration::from_millis(10),
            || Poll::<()>::Pending("FIN_WAIT1".into()),
        )
        .unwrap_err();
        assert!(e.polls >= 3, "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "a socket in TIME_WAIT did not happen within 0.050 s ({} checks; last seen: FIN_WAIT1)",
                e.polls
            )
        );
    }
}
