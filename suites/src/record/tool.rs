//! A tool run as recorded: its output, its packets and its attempt.

use std::time::{Duration, Instant};

use netclaim_harness::capture::{TcpEvent, TcpFlags};
use netclaim_harness::command::CommandOutput;

use crate::record::attempt::Attempt;

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
    pub measurement: Attempt,
    /// When the capture began: the instant every event's `at` counts from. Like
    /// [`CommandOutput::started`] it is not recorded: [`ToolRun::between`] and
    /// [`ToolRun::until_close`] read this machine's timer probe over it, so they belong
    /// to the measuring step, never to judging a record.
    #[serde(skip, default = "Instant::now")]
    pub capture_started: Instant,
}

impl ToolRun {
    /// From the tool's first SYN to its exit (see [`Attempt::took`]).
    pub fn took(&self) -> Duration {
        self.measurement.took()
    }

    /// The tool's first packet to `port` whose flags satisfy `which`.
    pub fn first_to(&self, port: u16, which: fn(TcpFlags) -> bool) -> Option<&TcpEvent> {
        self.events
            .iter()
            .find(|e| which(e.flags) && e.dst.port() == port)
    }
}
