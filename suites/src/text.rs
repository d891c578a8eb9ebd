//! How figures read in checks, reasons and evidence: durations, SYN models, values as a
//! user writes them.

use std::time::Duration;

use netclaim_harness::model::SynModel;
use nix::errno::Errno;

/// A duration as seconds with millisecond precision: `3.071 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
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
