//! What one run of a claim file measured: the fresh sysctls, each lab as built and its
//! run, what its wire did. Written by [`crate::measure`], read by [`crate::judge`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use netclaim_harness::tolerance::TOOL_STARTUP;

use crate::record::attempt::{Attempt, Measured};
use crate::record::connection::AfterRecord;

/// What one run of a claim file measured: everything [`judge`] needs, nothing it
/// computes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `uname -r` of the kernel measured.
    pub kernel: String,
    /// Its `CONFIG_HZ`.
    pub hz: u32,
    /// Whether the labs ran in a user namespace (without root).
    #[serde(default)]
    pub rootless: bool,
    /// Values of the namespace-fresh sysctls the claim asks about (`None`: absent).
    #[serde(default)]
    pub fresh: BTreeMap<String, Option<String>>,
    /// The lab and its run (absent for a claim that only reads defaults).
    #[serde(default)]
    pub lab: Option<LabRecord>,
    /// One lab and run per sweep value.
    #[serde(default)]
    pub sweep: Vec<(String, LabRecord)>,
    /// The first line of the command's `--version` (or its package's version).
    #[serde(default)]
    pub tool_version: Option<String>,
}

/// One lab as built, and its run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabRecord {
    /// The lab's namespace name(s).
    pub name: String,
    /// What is at `{target}`: `ip:port`, or a unix socket path.
    pub target: String,
    /// Sysctls read in the lab after it was set up (the model's inputs).
    pub in_force: BTreeMap<String, String>,
    /// Set-up notes (an optional sysctl the kernel lacks).
    pub notes: Vec<String>,
    /// Why the lab could not be built as the claim asks (a sysctl the kernel lacks or
    /// rejects): the claim is not applicable here.
    pub refused: Option<String>,
    /// The action.
    pub run: Option<RunRecord>,
    /// What the wire did, when the lab had one (`lab.link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkRecord>,
}

/// What a lab's wire did, each way, and the seed that reproduces its fates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The seed of every random choice.
    pub seed: u64,
    /// Toward the peer.
    pub to_peer: LinkCounts,
    /// From the peer.
    pub from_peer: LinkCounts,
}

/// One direction of a wire, counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkCounts {
    /// Packets that entered it.
    pub packets_in: u64,
    /// Packets delivered (duplicates included).
    pub delivered: u64,
    /// Lost by the loss model.
    pub lost: u64,
    /// Dropped at a full queue.
    pub dropped_limit: u64,
    /// Dropped by a rule.
    pub dropped_rule: u64,
    /// Duplicated, reordered, corrupted.
    pub duplicated: u64,
    /// Delivered after a packet that arrived later.
    pub reordered: u64,
    /// Delivered with a bit flipped.
    pub corrupted: u64,
    /// Rewritten by a rule (window, MSS).
    pub rewritten: u64,
    /// Made up by a rule (RSTs, ICMP errors).
    pub injected: u64,
    /// How late the wire released held packets against when they were due: the worst,
    /// µs (absent: none held). A timing check may be off by this much more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_max_us: Option<u64>,
}

impl From<&netclaim_harness::wire::DirectionReport> for LinkCounts {
    fn from(d: &netclaim_harness::wire::DirectionReport) -> Self {
        let c = &d.counts;
        Self {
            packets_in: c.packets_in,
            delivered: c.delivered,
            lost: c.lost,
            dropped_limit: c.dropped_limit,
            dropped_rule: c.dropped_rule,
            duplicated: c.duplicated,
            reordered: c.reordered,
            corrupted: c.corrupted,
            rewritten: c.rewritten,
            injected: c.injected,
            late_max_us: d.lateness.map(|l| l.max_us),
        }
    }
}

impl std::fmt::Display for LinkCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in, {} delivered", self.packets_in, self.delivered)?;
        for (n, what) in [
            (self.lost, "lost"),
            (self.dropped_limit, "dropped at the queue limit"),
            (self.dropped_rule, "dropped by a rule"),
            (self.duplicated, "duplicated"),
            (self.reordered, "reordered"),
            (self.corrupted, "corrupted"),
            (self.rewritten, "rewritten"),
            (self.injected, "injected"),
        ] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        if let Some(late) = self.late_max_us {
            write!(f, "; released up to {:.1} ms late", late as f64 / 1000.0)?;
        }
        Ok(())
    }
}

/// Bytes of the start and of the end of each output stream a run keeps
/// ([`RunRecord::output_cut`] counts the rest): the harness's limit, named here so that
/// judging reads it from the record's room, not from the command runner.
pub const OUTPUT_KEEP: usize = netclaim_harness::command::OUTPUT_KEEP;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the action did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The command line, or the client that ran.
    pub command_line: String,
    /// The command's arguments after placeholders (empty for a client).
    pub argv: Vec<String>,
    /// Exit code (`None`: killed by a signal, or a client).
    pub exit_code: Option<i32>,
    /// Whether the harness ended it at its deadline (`run.timeout`, or the default one):
    /// a command killed, a client after the SYN no longer waited for.
    pub timed_out: bool,
    /// That deadline, µs (absent in measurements recorded before it was kept, and for
    /// clients that have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_us: Option<u64>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Bytes of stdout and stderr the harness did not keep (it keeps the first and last
    /// 256 KiB of each): a text not found may have been in them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_cut: u64,
    /// From start to end, µs.
    pub duration_us: u64,
    /// The errno of the connect that failed (a client, or a command traced by strace).
    pub errno: Option<i32>,
    /// connect() calls strace saw (`run.trace_connect`).
    pub connect_calls: Option<usize>,
    /// Connections a `fill` or `exhaust` client held before the first failure.
    pub connections: Option<usize>,
    /// The most connections the `fill` client would make ([`fill_cap`]): reaching it, it
    /// stopped without a failure (absent in measurements recorded before the cap followed
    /// the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_cap: Option<usize>,
    /// SYNs to the target's port, µs from the first.
    pub syn_times_us: Vec<u64>,
    /// The first SYN of each connection (by source port), µs from the first SYN.
    pub conn_starts_us: Vec<u64>,
    /// SYNs of each connection, in the same order.
    #[serde(default)]
    pub conn_syns: Vec<usize>,
    /// A fill client's listener as `ss` shows it: (Recv-Q, Send-Q), i.e. queued
    /// connections and the effective backlog.
    #[serde(default)]
    pub listener_queue: Option<(u32, u32)>,
    /// SYN-ACKs and RSTs seen from the target.
    pub syn_acks: usize,
    /// When each SYN-ACK from the target's port arrived, µs from the first SYN (empty in
    /// records from before it was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synack_times_us: Vec<u64>,
    /// RSTs.
    pub rsts: usize,
    /// The command's full record and the wire timeline, as evidence.
    pub evidence: String,
    /// The attempt timed from its first SYN, with the slowness probe's errors (absent in
    /// measurements recorded before it existed: then timed from the start, no error).
    #[serde(default)]
    pub timed: Option<Attempt>,
    /// The client's first FIN on each connection, in the order of `conn_starts_us`, µs
    /// from the first SYN: when the tool closed it (its read timeout, seen on the wire).
    #[serde(default)]
    pub conn_fins_us: Vec<Option<u64>>,
    /// The probe's worst timer lateness from the first SYN to the first FIN, µs.
    #[serde(default)]
    pub fin_late_us: Option<u64>,
    /// What a client after the SYN observed (data retransmissions, keepalive probes,
    /// close(), SYN-ACKs, ICMP errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<AfterRecord>,
    /// What the `exchange` client observed: each request/reply exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<crate::record::exchange::ExchangeRecord>,
}

impl RunRecord {
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_micros(self.duration_us)
    }

    /// The attempt's timing: as measured, or (an older record) from the start, no error.
    pub(crate) fn timed(&self) -> Attempt {
        self.timed.clone().unwrap_or_else(|| Attempt {
            syn_times_us: self.syn_times_us.clone(),
            duration_us: self.duration_us,
            ..Attempt::default()
        })
    }

    /// The run as a timer of the tool's that ends when it closes its first connection: from
    /// the first SYN to the FIN (the exit does not count; the tool may have armed the timer
    /// before the SYN: its start-up is the early error); without a FIN, to the end.
    pub(crate) fn until_close(&self) -> Measured {
        let timed = self.timed();
        match (
            self.conn_fins_us.first().copied().flatten(),
            self.fin_late_us,
        ) {
            (Some(fin), Some(late)) => {
                let process = timed.process_excess();
                let late = Duration::from_micros(late);
                Measured {
                    took: Duration::from_micros(fin),
                    error: late + process,
                    early_error: timed.startup().unwrap_or_default(),
                    error_from: format!(
                        "timers up to {} ms late over 1 timer(s) (probe); tool process work {} \
                         ms past the {} ms allowed",
                        late.as_millis(),
                        process.as_millis(),
                        TOOL_STARTUP.as_millis()
                    ),
                }
            }
            _ => timed.tool_timer(),
        }
    }

    pub(crate) fn syn_times(&self) -> Vec<Duration> {
        self.syn_times_us
            .iter()
            .map(|&us| Duration::from_micros(us))
            .collect()
    }

    pub(crate) fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}
