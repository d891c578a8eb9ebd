//! `backlog.syn-backlog-default`: tcp_max_syn_backlog's default and the SYN queue it bounds.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::server::NoAcceptListener;
use netclaim_harness::command::{CommandOutput, ToolCommand};
use netclaim_harness::sysctl::knob;
use netclaim_harness::wait::{self, Poll};
use netclaim_harness::NetNs;
use serde::{Deserialize, Serialize};
use socket2::{Domain, SockAddr, Socket, Type};

use super::{counter, counters, not_applicable, set_or_na, SETTLE};
use crate::claim::{Ctx, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};

/// The port of the SYN-queue lab's listener.
pub(super) const SYN_QUEUE_PORT: u16 = 9100;
/// tcp_max_syn_backlog in the SYN-queue lab.
const SMALL_SYN_BACKLOG: usize = 16;
/// SYNs sent to it.
const SYN_QUEUE_CLIENTS: usize = 24;
/// The listener's backlog there (large enough not to limit the SYN queue itself).
const SYN_QUEUE_LISTEN: i32 = 64;

/// Request sockets a listener keeps after `syns` unproven SYNs when syncookies are off:
/// `tcp_conn_request` drops a SYN when `max - qlen < max >> 2`.
pub(super) fn syn_queue_without_cookies(max: usize, syns: usize) -> usize {
    let mut qlen = 0;
    for _ in 0..syns {
        if max.saturating_sub(qlen) >= (max >> 2) && qlen < max {
            qlen += 1;
        }
    }
    qlen
}

/// What `backlog.syn-backlog-default` measured: a fresh namespace's defaults, then a
/// small SYN queue with syncookies off and on.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SynBacklog {
    /// The fresh namespace.
    pub(super) lab: String,
    /// Its net.ipv4.tcp_max_syn_backlog.
    pub(super) max_syn_backlog: usize,
    /// Its net.ipv4.tcp_syncookies.
    pub(super) syncookies: String,
    /// Its net.ipv4.tcp_ehash_entries (6.1+; negative when the table is shared with the
    /// initial namespace), where the kernel has it.
    pub(super) ehash_entries: Option<i64>,
    /// Its net.ipv4.tcp_max_tw_buckets, read when tcp_ehash_entries is absent.
    pub(super) max_tw_buckets: Option<usize>,
    /// The SYN-queue namespace.
    pub(super) queue_lab: String,
    /// The SYNs with tcp_syncookies=0, then =1.
    pub(super) counts: Vec<SynRecv>,
}

impl SynBacklog {
    /// The ehash size the namespace uses: tcp_ehash_entries, else twice
    /// tcp_max_tw_buckets (also set from it).
    pub(super) fn ehash(&self) -> usize {
        match (self.ehash_entries, self.max_tw_buckets) {
            (Some(e), _) => e.unsigned_abs() as usize,
            (None, Some(tw)) => 2 * tw,
            (None, None) => 0,
        }
    }
}

/// SYNs sent to a listener whose SYN-ACKs are dropped, and its SYN-RECV sockets.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SynRecv {
    /// The tcp_syncookies set.
    pub(super) syncookies: u8,
    /// The listener.
    pub(super) addr: SocketAddrV4,
    /// The ss command line.
    pub(super) command_line: String,
    /// Its output: one line per SYN-RECV socket.
    pub(super) stdout: String,
}

/// The SYN-RECV sockets in ss's output.
fn syn_recv_lines(stdout: &str) -> usize {
    stdout.lines().filter(|l| !l.trim().is_empty()).count()
}

/// Sends `n` SYNs from nonblocking sockets that stay open (their SYN-ACKs are dropped),
/// then counts the listener's SYN-RECV request sockets with ss.
fn syn_recv_count(ns: &NetNs, syncookies: u8) -> Result<SynRecv> {
    ns.set_sysctl(knob::TCP_SYNCOOKIES, &syncookies.to_string())
        .context("setting tcp_syncookies")?;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, SYN_QUEUE_PORT + u16::from(syncookies));
    let _listener = NoAcceptListener::bind(ns, addr, SYN_QUEUE_LISTEN)
        .with_context(|| format!("listening on {addr}"))?;
    let drops = |c: &[(String, String, u64)]| counter(c, "TcpExt", "ListenDrops");
    let base = drops(&counters(ns)?);
    let mut clients = Vec::new();
    for _ in 0..SYN_QUEUE_CLIENTS {
        let s = ns
            .run(|| -> std::io::Result<Socket> {
                let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
                s.set_nonblocking(true)?;
                match s.connect(&SockAddr::from(addr)) {
                    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(s),
                    Err(e) => Err(e),
                    Ok(()) => Ok(s),
                }
            })?
            .context("sending a SYN")?;
        clients.push(s);
    }
    let filter = format!("sport = :{}", addr.port());
    let cmd = ToolCommand::new("ss", Duration::from_secs(5)).args([
        "-tnH",
        "state",
        "syn-recv",
        filter.as_str(),
    ]);
    // Until the listener has dealt with every SYN: a request socket (SYN-RECV) or a drop
    // (TcpExt ListenDrops). The first retransmissions come after 1 s. On the deadline the
    // last count is what was measured.
    let mut last: Option<Result<CommandOutput>> = None;
    let _ = wait::until(
        &format!("{SYN_QUEUE_CLIENTS} SYNs to {addr} queued or dropped"),
        SETTLE,
        || {
            let out = ns
                .run_command(&cmd)
                .with_context(|| format!("running {}", cmd.command_line()));
            let dropped = counters(ns).map(|c| drops(&c).saturating_sub(base));
            let state = match (&out, dropped) {
                (Ok(o), Ok(d)) => {
                    let queued = syn_recv_lines(&o.stdout);
                    if queued + d as usize >= SYN_QUEUE_CLIENTS {
                        None
                    } else {
                        Some(format!("{queued} SYN-RECV, {d} dropped"))
                    }
                }
                _ => None,
            };
            last = Some(out);
            match state {
                None => Poll::Ready(()),
                Some(s) => Poll::Pending(s),
            }
        },
    );
    let out = last.context("ss never ran")??;
    drop(clients);
    Ok(SynRecv {
        syncookies,
        addr,
        command_line: cmd.command_line(),
        stdout: out.stdout,
    })
}

/// `backlog.syn-backlog-default`, measured.
fn measure_syn_backlog(_ctx: &Ctx) -> Result<Observation<SynBacklog>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let max_syn_backlog: usize = ns
        .sysctl(knob::TCP_MAX_SYN_BACKLOG)?
        .parse()
        .context("parsing tcp_max_syn_backlog")?;
    let syncookies = ns.sysctl(knob::TCP_SYNCOOKIES)?;
    let ehash_entries = match ns.sysctl_opt("net.ipv4.tcp_ehash_entries")? {
        Some(v) => Some(v.parse::<i64>().context("parsing tcp_ehash_entries")?),
        None => None,
    };
    let max_tw_buckets = match ehash_entries {
        Some(_) => None,
        None => Some(
            ns.sysctl("net.ipv4.tcp_max_tw_buckets")?
                .parse::<usize>()
                .context("parsing tcp_max_tw_buckets")?,
        ),
    };

    // Does the knob only matter with syncookies off? Set it small and count request socks.
    let lab = NetNs::new().context("creating the SYN-queue namespace")?;
    if let Some(why) = set_or_na(
        &lab,
        &[(knob::TCP_MAX_SYN_BACKLOG, &SMALL_SYN_BACKLOG.to_string())],
    )? {
        return not_applicable(why);
    }
    for port in [SYN_QUEUE_PORT, SYN_QUEUE_PORT + 1] {
        lab.iptables_append(
            "filter",
            "INPUT",
            &format!("-p tcp --sport {port} --tcp-flags SYN,ACK SYN,ACK -j DROP"),
        )
        .context("dropping SYN-ACKs")?;
    }
    let counts = vec![syn_recv_count(&lab, 0)?, syn_recv_count(&lab, 1)?];
    Ok(Observation::Observed(SynBacklog {
        lab: ns.name().to_owned(),
        max_syn_backlog,
        syncookies,
        ehash_entries,
        max_tw_buckets,
        queue_lab: lab.name().to_owned(),
        counts,
    }))
}

/// `backlog.syn-backlog-default`, judged: the default against 512 and against
/// `tcp_sk_init`; the SYN queue with cookies off and on.
fn judge_syn_backlog(m: &SynBacklog, _ctx: &Ctx) -> Outcome {
    let value = m.max_syn_backlog;
    let syncookies = &m.syncookies;
    let ehash = m.ehash();
    let predicted = (ehash / 128).max(128);

    let mut o = Outcome::default();
    o.evidence(format!(
        "fresh namespace {}: tcp_max_syn_backlog={value}, tcp_syncookies={syncookies}, TCP ehash \
         buckets={ehash} → tcp_sk_init sets max(128, {ehash}/128) = {predicted}",
        m.lab
    ));
    o.claimed.value = Some("512; only used with tcp_syncookies=0".into());
    check_eq(
        &mut o,
        Against::Statement,
        "tcp_max_syn_backlog default",
        512,
        value,
    );
    check_eq(
        &mut o,
        Against::Model,
        "tcp_max_syn_backlog = max(128, ehash buckets / 128)",
        predicted,
        value,
    );

    let count = |cookies: u8| {
        m.counts
            .iter()
            .find(|c| c.syncookies == cookies)
            .map_or(0, |c| syn_recv_lines(&c.stdout))
    };
    let text = |cookies: u8| {
        m.counts
            .iter()
            .find(|c| c.syncookies == cookies)
            .map_or_else(
                || format!("tcp_syncookies={cookies}: not measured"),
                |c| {
                    format!(
                        "tcp_syncookies={cookies}: {SYN_QUEUE_CLIENTS} SYNs to {} (SYN-ACKs dropped) → {} SYN-RECV\n$ {}\n{}",
                        c.addr,
                        syn_recv_lines(&c.stdout),
                        c.command_line,
                        c.stdout.trim_end()
                    )
                },
            )
    };
    let (off, on) = (count(0), count(1));
    let want_off = syn_queue_without_cookies(SMALL_SYN_BACKLOG, SYN_QUEUE_CLIENTS);
    let want_on = SYN_QUEUE_CLIENTS.min(SYN_QUEUE_LISTEN as usize + 1);
    o.evidence(format!(
        "lab {}: tcp_max_syn_backlog={SMALL_SYN_BACKLOG}, listen({SYN_QUEUE_LISTEN}), SYN-ACKs dropped so \
         requests stay queued\n{}\n{}",
        m.queue_lab,
        text(0),
        text(1)
    ));
    o.claim_check(
        "tcp_max_syn_backlog limits the SYN queue with syncookies off and not with them on",
        format!("off: ≤ {SMALL_SYN_BACKLOG} SYN-RECV; on: more"),
        format!("off: {off}; on: {on}"),
        off <= SMALL_SYN_BACKLOG && on > SMALL_SYN_BACKLOG,
    );
    check_eq(
        &mut o,
        Against::Model,
        "SYN-RECV with tcp_syncookies=0 (drop when max − qlen < max/4)",
        want_off,
        off,
    );
    check_eq(
        &mut o,
        Against::Model,
        "SYN-RECV with tcp_syncookies=1 (tcp_max_syn_backlog ignored)",
        want_on,
        on,
    );
    o.expected.value = Some(format!(
        "{predicted}; SYN-RECV {want_off} (cookies off) / {want_on} (on) at tcp_max_syn_backlog={SMALL_SYN_BACKLOG}"
    ));
    o.observed.value = Some(format!(
        "{value} (tcp_syncookies={syncookies}); SYN-RECV {off} / {on}"
    ));
    o
}

/// `backlog.syn-backlog-default` in two steps.
pub(super) const SYN_BACKLOG: Steps<SynBacklog> = Steps {
    measure: measure_syn_backlog,
    judge: judge_syn_backlog,
};
