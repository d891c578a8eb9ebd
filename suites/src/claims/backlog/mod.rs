//! Listen backlogs, net.core.somaxconn, and what a client sees when an accept queue is
//! full (seed 004: nginx's "connect() to unix:… failed (11: Resource temporarily
//! unavailable)" and its explanation).
//!
//! Every claim builds its own namespace, sets the backlog knobs there, fills a listener
//! that never calls accept() (unix or TCP), and looks at the next client. The kernel
//! rules the predictions come from:
//!
//! * `__sys_listen` caps the listen() argument at the `net.core.somaxconn` of the
//!   listener's namespace (`sock_net(sk)`), giving `sk_max_ack_backlog`;
//! * a unix listener refuses a connect when `unix_recvq_full`: queued connections
//!   `> sk_max_ack_backlog`, so backlog + 1 fit; a nonblocking connect then fails with
//!   EAGAIN (`net/unix/af_unix.c`, `unix_stream_connect`);
//! * a TCP listener drops an incoming SYN when `sk_acceptq_is_full`
//!   (`sk_ack_backlog > sk_max_ack_backlog`, `tcp_conn_request`), so backlog + 1
//!   connections complete and the next client retransmits its SYN until it gives up;
//!   `tcp_abort_on_overflow` only acts when the queue overflows at the final ACK
//!   (`tcp_check_req`), which a full queue never lets happen because the SYN is dropped first;
//! * a fresh namespace gets `SOMAXCONN` (4096 since Linux 5.4) and
//!   `tcp_max_syn_backlog = max(128, ehash buckets / 128)` (`tcp_sk_init`); the latter is
//!   only consulted when `tcp_syncookies` is 0 (the last quarter of it is kept for proven
//!   peers).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::client::{ConnectOutcome, ConnectResult};
use netclaim_fixtures::ports;
use netclaim_harness::wait::{self, Poll};
use netclaim_harness::NetNs;
use nix::errno::Errno;

use super::seeds;
use crate::claim::{Claim, Needs, Observation, Procedure, Verdict};
use crate::measure::labs::refusal;

mod full;
mod nginx;
mod somaxconn;
mod syn_backlog;
#[cfg(test)]
mod tests;

use full::FULL_REFUSED;
use nginx::NGINX_502;
use somaxconn::CAPPED;
use syn_backlog::SYN_BACKLOG;

/// The listen() argument the seed's servers (nginx, php-fpm) typically pass.
const LISTEN_ARG: i32 = 128;
/// The small somaxconn the labs cap that argument with.
const SMALL_SOMAXCONN: u32 = 4;
/// The TCP port of the no-accept listeners.
const TCP_PORT: u16 = 9000;
/// How long a TCP connect may take before it counts as "not completed" on loopback (the
/// first SYN retransmission comes after 1 s, a completed handshake after microseconds).
const TCP_POLL: Duration = Duration::from_millis(300);
/// Upper bound on the number of connects a fill loop makes (a safety net).
const FILL_LIMIT: usize = 300;
/// How long the labs wait for the kernel to have dealt with packets already sent (a
/// queue to fill, a segment to be processed): microseconds on an idle machine, so a
/// deadline this long is only reached when the kernel does something else.
const SETTLE: Duration = Duration::from_secs(5);

/// [`SETTLE`] stretched by this machine's measured slowness: these are waits on a state,
/// and under emulation beside a load the kernel (and the reader) ran seconds late.
fn settle() -> Duration {
    netclaim_harness::slowness::stretch(SETTLE)
}

/// The C library's message for `e` (what nginx prints), e.g. "Resource temporarily unavailable".
fn strerror(e: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e as i32).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Sets sysctls in `ns`; an absent or rejected knob gives the reason the claim does not
/// apply (`Some`), any other failure is an error.
fn set_or_na(ns: &NetNs, pairs: &[(&str, &str)]) -> Result<Option<String>> {
    match ns.set_sysctls(pairs) {
        Ok(()) => Ok(None),
        Err(e) => match refusal(&e) {
            Some(why) => Ok(Some(why)),
            None => Err(e).with_context(|| format!("setting {pairs:?} in {}", ns.name())),
        },
    }
}

/// A measurement that does not apply on this kernel, for `why`.
fn not_applicable<T>(why: String) -> Result<Observation<T>> {
    Ok(Observation::Forced(Verdict::NotApplicable, why))
}

/// The errno of a connect result, if it failed with one.
fn errno_of(r: ConnectResult) -> Option<Errno> {
    match r {
        ConnectResult::Failed(e) => Some(e),
        _ => None,
    }
}

/// Connections made until the first one that did not complete.
struct Fill {
    /// Completed connections, kept open so they stay queued.
    kept: Vec<ConnectOutcome>,
    /// The first attempt that did not complete (`None` when the limit was reached).
    stop: Option<ConnectOutcome>,
}

/// Connects with `connect` until an attempt does not complete, at most `limit` times.
fn fill(limit: usize, mut connect: impl FnMut() -> Result<ConnectOutcome>) -> Result<Fill> {
    let mut kept = Vec::new();
    for _ in 0..limit {
        let o = connect()?;
        if o.result == ConnectResult::Connected {
            kept.push(o);
        } else {
            return Ok(Fill {
                kept,
                stop: Some(o),
            });
        }
    }
    Ok(Fill { kept, stop: None })
}

/// How a fill loop's last attempt ended, in words.
fn result_text(r: Option<ConnectResult>) -> String {
    match r {
        None => "(limit reached, every connect completed)".into(),
        Some(ConnectResult::Connected) => "connected".into(),
        Some(ConnectResult::PollTimedOut) => "still in progress at the poll timeout".into(),
        Some(ConnectResult::Failed(e)) => format!("{e:?} ({})", strerror(e)),
    }
}

/// The accept queue of the TCP listener on 127.0.0.1:`port`, as ss shows it: (Recv-Q,
/// Send-Q), from one sock_diag lookup (no process to start: `ss` took over 5 s to start
/// under emulation beside a load and was killed with nothing read), and the reading as
/// text in ss's columns.
fn listener_queue(ns: &NetNs, port: u16) -> Result<(Option<(u32, u32)>, String)> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let q = ports::Diag::open(ns)
        .and_then(|d| d.listener_queue(addr))
        .with_context(|| format!("looking up the listener on {addr} (sock_diag)"))?;
    let line = match q {
        Some((recv, send)) => format!("LISTEN {recv} {send} {addr} 0.0.0.0:*"),
        None => "(no listener)".into(),
    };
    Ok((
        q,
        format!("sock_diag lookup of {addr} (State Recv-Q Send-Q Local Peer):\n{line}"),
    ))
}

/// The last reading of a listener's queue.
struct QueueReading {
    /// Whether the queue held what was waited for.
    reached: bool,
    /// (Recv-Q, Send-Q), if the lookup found the listener.
    queue: Option<(u32, u32)>,
    /// The lookup and what it found, in ss's columns.
    text: String,
}

/// Waits until the accept queue of the listener on `port` holds `n` connections
/// (Recv-Q): a client's connect() returns when its SYN-ACK arrives, the server queues the
/// connection when the client's ACK does. Returns the last reading, whether or not
/// the queue reached `n` within [`settle`] (`Err` only when the lookup failed).
fn until_queued(ns: &NetNs, port: u16, n: u32) -> Result<QueueReading> {
    let mut last = None;
    let mut failed = None;
    let reached = wait::until(
        &format!("the accept queue of :{port} holding {n}"),
        settle(),
        || match listener_queue(ns, port) {
            Ok((q, text)) => {
                let done = q.is_some_and(|(recv, _)| recv >= n);
                let seen = q.map_or("no listener line".into(), |(r, _)| format!("Recv-Q {r}"));
                last = Some((q, text));
                if done {
                    Poll::Ready(())
                } else {
                    Poll::Pending(seen)
                }
            }
            Err(e) => {
                failed = Some(e);
                Poll::Ready(())
            }
        },
    )
    .is_ok();
    if let Some(e) = failed {
        return Err(e);
    }
    let (queue, text) = last.unwrap_or((None, String::new()));
    Ok(QueueReading {
        reached: reached && queue.is_some(),
        queue,
        text,
    })
}

/// The counters of `/proc/net/snmp` and `/proc/net/netstat` in `ns`, as `(group, name,
/// value)` ("Tcp", "OutRsts", 3).
fn counters(ns: &NetNs) -> Result<Vec<(String, String, u64)>> {
    netclaim_fixtures::bulk::counters(ns).context("reading the namespace's TCP counters")
}

use netclaim_fixtures::bulk::counter;
#[cfg(test)]
use netclaim_fixtures::bulk::parse_counters;

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "backlog.capped-by-somaxconn",
            source: seeds::SOMAXCONN,
            statement: "The effective backlog of a listener is min(listen() backlog, net.core.somaxconn).",
            lab: "one namespace with net.core.somaxconn=4; TCP listeners on 127.0.0.1 with listen(128) and listen(2) that never accept",
            action: "nonblocking connects until one does not complete within 300 ms; each listener's Send-Q/Recv-Q looked up (sock_diag)",
            needs: Needs::default(),
            estimate: 2 * S,
            run: Procedure::Rust(&CAPPED),
        },
        Claim {
            id: "backlog.tcp-full-refused",
            source: seeds::SOMAXCONN,
            statement: "When a TCP listener's accept queue is full, new clients get ECONNREFUSED (Connection refused).",
            lab: "one namespace with net.core.somaxconn=4, tcp_syn_retries=1; a TCP listener with listen(128) that never accepts, its queue filled",
            action: "blocking connect() from a new client with SYN capture, with tcp_abort_on_overflow=0 and then 1; \
                     then (with iptables) an overflow at the final ACK: 3 racers whose pure ACKs are dropped write 200 bytes each, \
                     and the last one's read() is checked",
            needs: Needs::default(),
            estimate: 7 * S,
            run: Procedure::Rust(&FULL_REFUSED),
        },
        Claim {
            id: "backlog.syn-backlog-default",
            source: seeds::SOMAXCONN,
            statement: "net.ipv4.tcp_max_syn_backlog (the SYN queue size) defaults to 512 and only takes effect when syncookies are disabled.",
            lab: "a fresh namespace (defaults); a second one with tcp_max_syn_backlog=16 and the listener's SYN-ACKs dropped",
            action: "read the defaults; send 24 SYNs with tcp_syncookies=0 and =1 and count SYN-RECV request sockets with ss",
            needs: Needs { tools: &["ss", "iptables"] },
            estimate: 2 * S,
            run: Procedure::Rust(&SYN_BACKLOG),
        },
        Claim {
            id: "backlog.nginx-502",
            source: seeds::SOMAXCONN,
            statement: "nginx proxying to a unix-socket upstream whose backlog is full logs \"connect() to unix:… failed (11: Resource temporarily unavailable) while connecting to upstream\" and answers 502.",
            lab: "one namespace with net.core.somaxconn=2; a unix upstream with listen(128) that never accepts, filled; nginx (master_process off) on 127.0.0.1:8080 with proxy_pass http://unix:…",
            action: "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/; read nginx's error log",
            needs: Needs { tools: &["nginx", "curl"] },
            estimate: 3 * S,
            run: Procedure::Rust(&NGINX_502),
        },
    ]
}
