//! How `netclaim vm` and `kernels` coordinate with the `netclaim run` each starts (natively
//! or in a VM): the parent hands the run a [`Parent`] (hidden `run` options: the busy gate
//! and a file descriptor for events), and the run sends [`RunEvent`]s back on it, one JSON
//! line each.
//!
//! A native run's descriptor is a pipe of its own. A VM's run has only its console to
//! reach the host, so the guest joins the descriptor to its stderr and the host picks the
//! event lines out of the console with [`RunEvent::parse`].

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// What a run tells the command that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum RunEvent {
    /// Only claims that mostly wait on kernel timers are left: the CPU-heavy part is over.
    OnlyWaitingLeft,
    /// Behind a busy gate: the claims that wait on kernel timers are under way (the
    /// machine's CPUs went quiet, or long enough passed; see [`crate::settle::Settle`]).
    Settled,
}

/// What starts an event's line, to tell it from the other lines of a VM's console.
const PREFIX: &str = "netclaim-event: ";

impl RunEvent {
    /// The event as one line, newline included.
    pub fn line(self) -> String {
        let json = serde_json::to_string(&self).unwrap_or_default();
        format!("{PREFIX}{json}\n")
    }

    /// The event `line` carries, if it is an event's line.
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line.trim().strip_prefix(PREFIX)?).ok()
    }
}

/// The descriptor a native run's events go to (the write end of its parent's pipe).
pub const EVENTS_FD: RawFd = 3;

/// A pipe for a run's events: (read end, write end), both close-on-exec.
pub fn pipe() -> std::io::Result<(std::fs::File, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given, of that length.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new, open and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((std::fs::File::from(read), write))
}

/// How a run started by `vm` or `kernels` coordinates with it: hidden `run` options.
#[derive(clap::Args, Default, Clone)]
pub struct ParentArgs {
    /// The claims that need the CPU (those that do not mostly wait on kernel timers)
    /// start once this file exists: `kernels` lets several VMs start their long claims
    /// at once, then one VM at a time do its CPU-heavy part.
    #[arg(long, hide = true, value_name = "FILE")]
    pub busy_gate: Option<PathBuf>,
    /// Send [`RunEvent`]s, one JSON line each, to this open file descriptor.
    #[arg(long, hide = true, value_name = "FD")]
    pub events_fd: Option<RawFd>,
}

impl ParentArgs {
    /// The arguments of `run` that hand it `gate` and [`EVENTS_FD`].
    pub fn argv(gate: Option<&std::path::Path>) -> Vec<String> {
        let mut argv = vec![format!("--events-fd={EVENTS_FD}")];
        if let Some(g) = gate {
            argv.push(format!("--busy-gate={}", g.display()));
        }
        argv
    }

    /// Takes the descriptor (kept from the tools this run starts).
    pub fn open(self) -> Result<Parent> {
        let events = match self.events_fd {
            Some(fd) => Some(Events::take(fd)?),
            None => None,
        };
        Ok(Parent {
            gate: self.busy_gate,
            events,
        })
    }
}

/// What a run knows of the command that started it; nothing for a plain `netclaim run`.
#[derive(Default)]
pub struct Parent {
    /// See [`ParentArgs::busy_gate`].
    pub gate: Option<PathBuf>,
    events: Option<Events>,
}

impl Parent {
    /// A parent that gates the claims that need the CPU on `gate`, and hears nothing.
    #[cfg(test)]
    pub fn gated(gate: PathBuf) -> Self {
        Self {
            gate: Some(gate),
            events: None,
        }
    }

    /// Tells the parent `event`; a parent that stopped listening is no harm to the run.
    pub fn send(&self, event: RunEvent) {
        if let Some(e) = &self.events {
            e.send(event);
        }
    }
}

/// The sending end: the descriptor the parent passed.
struct Events(Mutex<std::fs::File>);

impl Events {
    /// Takes `fd`, which must be open; marks it close-on-exec so the tools and daemons
    /// the run starts do not hold the parent's pipe open.
    fn take(fd: RawFd) -> Result<Self> {
        if fd <= 2 {
            bail!("--events-fd {fd}: give a descriptor above 2 (0-2 are the run's own streams)");
        }
        // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF when `fd`
        // is not open, which is checked before the descriptor is owned.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            bail!("--events-fd {fd} is not an open file descriptor");
        }
        // SAFETY: `fd` is open (checked above), was handed to this process for this use
        // alone by its parent, and is owned only here (the option is read once).
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sets the close-on-exec flag of a descriptor this process owns.
        unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(Self(Mutex::new(std::fs::File::from(owned))))
    }

    fn send(&self, event: RunEvent) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(event.line().as_bytes());
        let _ = f.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_back_from_its_line_and_nothing_else_reads_as_one() {
        for e in [RunEvent::OnlyWaitingLeft, RunEvent::Settled] {
            let line = e.line();
            assert!(
                line.ends_with('\n') && line.matches('\n').count() == 1,
                "{line}"
            );
            assert_eq!(RunEvent::parse(&line), Some(e));
            // As the host reads a VM's console: a carriage return, leading spaces.
            assert_eq!(
                RunEvent::parse(&format!("  {}\r", line.trim_end())),
                Some(e)
            );
        }
        assert_eq!(
            RunEvent::Settled.line(),
            "netclaim-event: {\"event\":\"settled\"}\n"
        );
        assert_eq!(
            RunEvent::parse("[ 7/52] holds          syn.retries-1 (3.28 s)"),
            None
        );
        assert_eq!(
            RunEvent::parse("netclaim: waiting claims under way after 2.0 s"),
            None
        );
        assert_eq!(
            RunEvent::parse("netclaim-event: {\"event\":\"boom\"}"),
            None
        );
    }

    #[test]
    fn events_go_down_the_descriptor_the_parent_passed() {
        let (reader, fd) = pipe().expect("a pipe");
        let parent = ParentArgs {
            busy_gate: None,
            events_fd: Some(fd.as_raw_fd()),
        };
        // Owned by the Parent from here on.
        std::mem::forget(fd);
        let parent = parent.open().expect("the pipe is open");
        parent.send(RunEvent::OnlyWaitingLeft);
        parent.send(RunEvent::Settled);
        drop(parent);
        let got: Vec<Option<RunEvent>> = std::io::BufRead::lines(std::io::BufReader::new(reader))
            .map(|l| RunEvent::parse(&l.expect("a line")))
            .collect();
        assert_eq!(
            got,
            [Some(RunEvent::OnlyWaitingLeft), Some(RunEvent::Settled)]
        );
    }

    #[test]
    fn a_descriptor_that_is_not_open_or_a_standard_stream_is_refused() {
        let refused = |fd| {
            ParentArgs {
                busy_gate: None,
                events_fd: Some(fd),
            }
            .open()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        assert!(refused(1_000_000).contains("not an open file descriptor"));
        assert!(refused(2).contains("above 2"));
        assert!(refused(-1).contains("above 2"));
    }
}
