//! Timing one connection attempt: its SYNs from the capture and the slowness probe's
//! lateness over their timers, recorded as an [`Attempt`].

use std::time::{Duration, Instant};

use netclaim_harness::capture::{self, TcpEvent};
use netclaim_harness::slowness;

use crate::record::attempt::Attempt;
use crate::record::micros;

impl Attempt {
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
                micros(slowness::late_between(*a, end))
            })
            .collect();
        Self {
            syn_times_us: syn_times.iter().map(|t| micros(*t)).collect(),
            first_packet_us: first_packet.map(|f| micros(f.saturating_duration_since(started))),
            duration_us: micros(ended.saturating_duration_since(started)),
            tool,
            syn_late_us,
            late_us: micros(slowness::late_between(from, ended)),
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
}

/// The measured lateness of the chain of timers armed at `armed` (each runs until the
/// next, the last until `end`): the probe's worst lateness over each, summed.
pub(crate) fn chain_lateness(armed: &[Instant], end: Instant) -> Duration {
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
