//! What claim files can say about a connection after its first SYN: rejections (RST,
//! ICMP, no route), the data retransmission timer and its give-up (`tcp_retries2`,
//! `TCP_USER_TIMEOUT`), keepalive, close() (FIN_WAIT_2 lifetime, `SO_LINGER` 0), and
//! the passive side's SYN-ACK retransmissions.
//!
//! Measuring happens in [`act`] (called by the engine inside the lab it built) and
//! [`from_wire`] (the capture, once the action is over); judging in [`judge`], a pure
//! function of the spec and the record, with predictions from
//! [`netclaim_harness::timers`].

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::conn::{self, SockOpts};
use netclaim_fixtures::ports::{self, state};
use netclaim_harness::capture::TcpEvent;
use netclaim_harness::timers::{self, KeepaliveModel, RetransModel, Schedule};
use netclaim_harness::tolerance::{kernel_timer_window, Window};
use netclaim_harness::wait::Poll;
use netclaim_harness::{slowness, NetNs};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::claim::{Check, Figures, Outcome};
use crate::lab::{self, check_eq, secs, Against, Measured, Shown};
use crate::spec::{ClaimSpec, Client, SocketSpec};

/// What a client after the SYN observed, beside the engine's common record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AfterRecord {
    /// The handshake's RTT on the wire (SYN out → SYN-ACK in), µs.
    pub rtt_us: Option<u64>,
    /// `TCP_INFO`'s `tcpi_rto` right after the handshake, µs.
    pub kernel_rto_us: Option<u64>,
    /// `TCP_INFO`'s `tcpi_rtt` right after the handshake: the kernel's own first RTT
    /// sample, µs (the model's input; under emulation it can exceed the wire's RTT by
    /// milliseconds).
    #[serde(default)]
    pub kernel_rtt_us: Option<u64>,
    /// `send`: transmissions of the data segment; `idle`: keepalive probes (from the
    /// SYN-ACK); `syn-only`: SYN-ACKs. µs, from the first (or the SYN-ACK).
    pub sent_us: Vec<u64>,
    /// `close`: the client sent an RST.
    pub rst: bool,
    /// `close`: the client sent a FIN.
    pub fin: bool,
    /// Kernel states the socket (or request) went through while watched.
    pub states: Vec<String>,
    /// Whether the socket (or request) left the kernel's table while watched.
    pub gone: bool,
    /// `close`: when the orphan's FIN_WAIT_2 timer is due, from close(), as the kernel
    /// armed it (the last sighting in FIN_WAIT2 plus the time left on its timer, in ms as
    /// the kernel's jiffies give it). Unlike the moment the socket is seen gone, it does
    /// not depend on how soon the watching thread gets the CPU.
    #[serde(default)]
    pub armed_end_us: Option<u64>,
    /// ICMP (type, code) errors about the connection seen on the wire.
    pub icmp: Vec<(u8, u8)>,
    /// µs from where the client starts its clock to where the kernel starts its timer:
    /// `close`, from close() to the peer's ACK of its FIN (FIN_WAIT_2 starts there; a
    /// delayed ACK takes tens of ms; records from before the instants were kept count from
    /// the FIN); `idle`, from the handshake to the last packet received from
    /// the peer (keepalive counts idleness from there; a probe the peer still answered
    /// before it went silent moves it).
    #[serde(default)]
    pub starts_after_us: Option<u64>,
    /// `close`: how long close() took, µs. An ACK of the FIN that arrives while close()
    /// still holds the socket waits in its backlog until close() releases it, and only
    /// then arms the FIN_WAIT_2 timer: the timer starts between the ACK and close()'s
    /// return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_took_us: Option<u64>,
    /// `close`: when close() was called, to set the capture's packets against (only in
    /// the measuring process; not recorded).
    #[serde(skip)]
    pub close_started: Option<Instant>,
    /// Per entry of `sent_us`: the slowness probe's worst timer lateness over each kernel
    /// timer before it, summed, µs (how much later than the model it may have gone out
    /// on this machine). Empty in records from before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_late_us: Vec<u64>,
    /// The probe's worst timer lateness over the whole wait (from the client's start to
    /// the error or the socket's departure), µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_us: Option<u64>,
    /// How much later than the event the watch of the socket (its lookups) may have recorded it,
    /// µs: from the last lookup that still found the socket to the one that did not; with
    /// `armed_end_us`, the longest lookup (the sighting may precede its recorded time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_error_us: Option<u64>,
}

impl AfterRecord {
    /// Records what watching the socket (by its lookups) saw.
    fn watched(&mut self, w: &conn::Watched) {
        self.gone = w.gone.is_some();
        self.watch_error_us = w.gone.map(|g| micros(g.saturating_sub(w.seen_until)));
        self.states = w
            .states
            .iter()
            .map(|s| state::name(s.1).to_owned())
            .collect();
    }
}

/// The raw client's source port (`syn-only`).
pub const RAW_PORT: u16 = 40999;
/// Bytes the `send` client writes.
pub const SEND_BYTES: usize = 100;

/// The socket options of a spec.
pub fn sock_opts(s: &SocketSpec) -> SockOpts {
    SockOpts {
        syncnt: s.syncnt,
        user_timeout: s.user_timeout.map(|t| t.0),
        keepalive: s.keepalive,
        keepidle: s.keepidle,
        keepintvl: s.keepintvl,
        keepcnt: s.keepcnt,
        linger: s.linger.map(|t| t.0),
        linger2: s.linger2,
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Runs a client after the SYN in the lab: `ns` is the client's namespace, `peer` the
/// other end's (for `send` and `idle`, which make it drop everything once connected).
/// Returns (errno, duration, notes, record).
pub fn act(
    client: Client,
    spec: &ClaimSpec,
    ns: &NetNs,
    peer: Option<&NetNs>,
    target: SocketAddr,
    limit: Duration,
) -> Result<(Option<Errno>, Duration, String, AfterRecord)> {
    let opts = spec
        .run
        .as_ref()
        .map(|r| sock_opts(&r.socket))
        .unwrap_or_default();
    let mut rec = AfterRecord::default();
    match client {
        Client::Send | Client::Idle => {
            let peer = peer.context("the client needs the peer's namespace")?;
            let o = conn::connect_with(ns, target, &opts)?;
            let connected_at = Instant::now();
            let Some(socket) = o.socket else {
                return Ok((o.errno(), o.duration, "connect() failed".into(), rec));
            };
            let info = conn::tcp_info(&socket)?;
            rec.kernel_rto_us = Some(micros(info.rto));
            rec.kernel_rtt_us = Some(micros(info.rtt));
            peer.drop_all_input()
                .with_context(|| format!("making {} drop everything", peer.name()))?;
            let started = Instant::now();
            let what = if client == Client::Send {
                use std::io::Write;
                (&socket)
                    .write_all(&[b'n'; SEND_BYTES])
                    .context("send() of 100 bytes")?;
                format!(
                    "connected to {target}; the peer drops everything; send({SEND_BYTES} bytes), then wait for the connection's error"
                )
            } else {
                format!(
                    "connected to {target}; the peer drops everything; the connection stays idle until it fails"
                )
            };
            let waited = conn::wait_error(&socket, limit)?;
            let from = if client == Client::Idle {
                connected_at
            } else {
                started
            };
            rec.late_us = Some(micros(slowness::late_between(from, Instant::now())));
            let (errno, at) = match waited {
                Some((e, at)) => (e, at),
                None => (None, started.elapsed()),
            };
            rec.gone = waited.is_some();
            let at = if client == Client::Idle {
                // From the handshake (the last packet received), as keepalive counts.
                at + started.duration_since(connected_at)
            } else {
                at
            };
            Ok((errno, at, what, rec))
        }
        Client::Close => {
            let o = conn::connect_with(ns, target, &opts)?;
            let Some(socket) = o.socket else {
                return Ok((o.errno(), o.duration, "connect() failed".into(), rec));
            };
            let info = conn::tcp_info(&socket)?;
            rec.kernel_rto_us = Some(micros(info.rto));
            rec.kernel_rtt_us = Some(micros(info.rtt));
            let (Some(SocketAddr::V4(local)), SocketAddr::V4(remote)) =
                (socket.local_addr().ok().and_then(|a| a.as_socket()), target)
            else {
                anyhow::bail!("close watches an IPv4 connection");
            };
            let diag = ports::Diag::open(ns)?;
            let started = Instant::now();
            rec.close_started = Some(started);
            drop(socket);
            // The watch's times count from its own start, after close().
            let watch_from = started.elapsed();
            rec.close_took_us = Some(micros(watch_from));
            let w = conn::wait_gone(&diag, local, remote, |_| true, limit)?;
            rec.late_us = Some(micros(slowness::late_between(started, Instant::now())));
            rec.watched(&w);
            // Projected from the last sighting in FIN_WAIT_2 (the first if the last had
            // no timer left): the jiffies the timer counts in may run at another rate
            // than the clock, which a projection over the whole timer would carry.
            rec.armed_end_us = w
                .last
                .filter(|s| s.1 == state::FIN_WAIT2 && !s.2.is_zero())
                .or_else(|| {
                    w.states
                        .iter()
                        .copied()
                        .find(|s| s.1 == state::FIN_WAIT2 && !s.2.is_zero())
                })
                .map(|(at, _, left)| micros(watch_from + at + left));
            if rec.armed_end_us.is_some() {
                rec.watch_error_us = Some(micros(w.slowest_read));
            }
            Ok((
                None,
                w.gone
                    .map(|g| watch_from + g)
                    .unwrap_or_else(|| started.elapsed()),
                format!("connected to {target} from {local}; close(); look the socket up (sock_diag) until it is gone"),
                rec,
            ))
        }
        Client::SynOnly => {
            let SocketAddr::V4(dst) = target else {
                anyhow::bail!("syn-only sends an IPv4 SYN");
            };
            let src = SocketAddrV4::new(conn::RAW_CLIENT, RAW_PORT);
            ns.iptables_append(
                "filter",
                "INPUT",
                &format!("-p tcp --dport {RAW_PORT} -j DROP"),
            )
            .context("dropping what comes back to the raw client")?;
            let started = Instant::now();
            conn::send_raw_syn(ns, src, dst)?;
            // The request appears at once; then watch it until the server drops it.
            let diag = ports::Diag::open(ns)?;
            let appeared = netclaim_harness::wait::until_every(
                &format!("a SYN_RECV request for {src} at {dst}"),
                Duration::from_secs(2),
                Duration::from_millis(2),
                || match diag.lookup(dst, src) {
                    Ok(Some(e)) if e.state == state::SYN_RECV => Poll::Ready(Ok(())),
                    Ok(seen) => Poll::Pending(format!("{seen:?}")),
                    Err(e) => Poll::Ready(Err(e)),
                },
            );
            appeared?.0?;
            // The watch's times count from its own start.
            let watch_from = Instant::now();
            let w = conn::wait_gone(&diag, dst, src, |st| st == state::SYN_RECV, limit)?;
            rec.late_us = Some(micros(slowness::late_between(started, Instant::now())));
            rec.watched(&w);
            let lifetime = w
                .gone
                .map(|g| g + watch_from.duration_since(started))
                .unwrap_or_else(|| started.elapsed());
            Ok((
                None,
                lifetime,
                format!("one SYN from a raw socket at {src} to {dst}, never answered (iptables drops what comes back to port {RAW_PORT}); look the request up (sock_diag)"),
                rec,
            ))
        }
        other => anyhow::bail!("{other:?} is not a client after the SYN"),
    }
}

/// Fills the wire-derived parts of `rec` from the capture of the action.
/// `capture_started` is the instant the events' times count from (for the slowness
/// probe's lateness over each timer).
pub fn from_wire(
    client: Option<Client>,
    rec: &mut AfterRecord,
    events: &[TcpEvent],
    port: u16,
    capture_started: Option<Instant>,
) {
    // The probe's lateness over the timers before each transmission (at `times`, from the
    // capture's start), summed; the first is a timer too when it runs from `from`.
    let chain_late = |times: &[Duration], from: Option<Duration>| -> Vec<u64> {
        let Some(t0) = capture_started else {
            return Vec::new();
        };
        let mut sum = Duration::ZERO;
        times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let armed = if i == 0 { from } else { Some(times[i - 1]) };
                if let Some(a) = armed {
                    sum += slowness::late_between(t0 + a, t0 + *t);
                }
                micros(sum)
            })
            .collect()
    };
    let syn = events
        .iter()
        .find(|e| e.flags.is_syn() && e.dst.port() == port);
    let synack = events
        .iter()
        .find(|e| e.flags.is_syn_ack() && e.src.port() == port);
    if let (Some(s), Some(a)) = (syn, synack) {
        rec.rtt_us = Some(micros(a.at.saturating_sub(s.at)));
    }
    rec.icmp = events.iter().filter_map(|e| e.icmp).collect();
    let from_client = |e: &&TcpEvent| e.dst.port() == port && e.icmp.is_none();
    let rel = |times: Vec<Duration>, from: Duration| -> Vec<u64> {
        times
            .into_iter()
            .map(|t| micros(t.saturating_sub(from)))
            .collect()
    };
    match client {
        Some(Client::Send) => {
            let first = events.iter().filter(from_client).find(|e| e.len > 0);
            if let Some(f) = first {
                let times: Vec<Duration> = events
                    .iter()
                    .filter(from_client)
                    .filter(|e| e.len > 0 && e.seq == f.seq)
                    .map(|e| e.at)
                    .collect();
                rec.sent_late_us = chain_late(&times, None);
                rec.sent_us = rel(times, f.at);
            }
        }
        Some(Client::Idle) => {
            // Keepalive probes: pure ACKs at snd_una − 1, i.e. the SYN's own sequence.
            // Idleness counts from the last packet received from the peer: the SYN-ACK,
            // or the answer to a probe sent before the peer went silent.
            if let (Some(s), Some(a)) = (syn, synack) {
                let last_rx = events
                    .iter()
                    .filter(|e| e.src.port() == port && e.icmp.is_none())
                    .map(|e| e.at)
                    .max()
                    .unwrap_or(a.at);
                let times: Vec<Duration> = events
                    .iter()
                    .filter(from_client)
                    .filter(|e| e.len == 0 && e.flags.0 == 0x10 && e.seq == s.seq)
                    .filter(|e| e.at > last_rx)
                    .map(|e| e.at)
                    .collect();
                rec.sent_late_us = chain_late(&times, Some(last_rx));
                rec.sent_us = rel(times, last_rx);
                rec.starts_after_us = Some(micros(last_rx - a.at));
            }
        }
        Some(Client::Close) => {
            let after_handshake = events
                .iter()
                .filter(from_client)
                .filter(|e| !e.flags.is_syn());
            for e in after_handshake {
                rec.rst |= e.flags.is_rst();
                rec.fin |= e.flags.0 & 0x01 != 0;
            }
            let fin = events
                .iter()
                .filter(from_client)
                .find(|e| e.flags.0 & 0x01 != 0);
            if let Some(f) = fin {
                let ack = events.iter().find(|e| {
                    e.src.port() == port
                        && e.icmp.is_none()
                        && e.at >= f.at
                        && e.flags.0 & 0x10 != 0
                });
                // From close() to the ACK of the FIN, on one clock: a FIN is not always
                // sent at the moment close() is called (a 6.12 guest under TCG still
                // showed the socket ESTABLISHED after close() returned, and sent its
                // FIN 75 ms later). Without the instants, from the FIN.
                rec.starts_after_us = ack.map(|a| match (capture_started, rec.close_started) {
                    (Some(t0), Some(closed)) => {
                        micros((t0 + a.at).saturating_duration_since(closed))
                    }
                    _ => micros(a.at - f.at),
                });
            }
        }
        Some(Client::SynOnly) => {
            let times: Vec<Duration> = events
                .iter()
                .filter(|e| e.flags.is_syn_ack() && e.src.port() == port)
                .map(|e| e.at)
                .collect();
            let first = times.first().copied().unwrap_or_default();
            rec.sent_late_us = chain_late(&times, None);
            rec.sent_us = rel(times, first);
        }
        _ => {}
    }
}

/// What the models predict for a client after the SYN, from what was in force.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Transmissions (data, probes, SYN-ACKs) and the give-up or lifetime.
    pub schedule: Schedule,
    /// The intervals the kernel arms, for their timer-wheel slack.
    pub intervals: Vec<Duration>,
    /// What the model used, in words.
    pub inputs: String,
    /// The errno the client sees.
    pub errno: Option<Errno>,
    /// The RTO after the handshake (`send`, `close`).
    pub rto: Option<Duration>,
}

fn num(in_force: &BTreeMap<String, String>, k: &str) -> Option<u64> {
    in_force
        .get(k)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The model inputs of a client after the SYN (the sysctls read in its lab).
pub const MODEL_INPUTS: &[&str] = &[
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_early_retrans",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_rto_min_us",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_synack_retries",
];

/// The prediction for `client` with `in_force`, the socket options of `spec`, the
/// handshake's `rtt` (when measured) and `hz`.
pub fn predict(
    client: Client,
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    rtt: Option<Duration>,
    hz: u32,
) -> Prediction {
    let socket = spec
        .run
        .as_ref()
        .map(|r| r.socket.clone())
        .unwrap_or_default();
    let rto_min = num(in_force, "net.ipv4.tcp_rto_min_us")
        .map(Duration::from_micros)
        .unwrap_or(timers::TCP_RTO_MIN);
    let rto_max = num(in_force, netclaim_harness::sysctl::knob::TCP_RTO_MAX_MS)
        .map(Duration::from_millis)
        .unwrap_or(timers::TCP_RTO_MAX);
    let retrans = RetransModel {
        hz,
        rtt: rtt.unwrap_or(Duration::from_micros(50)),
        rto_min,
        rto_max,
        tlp: matches!(
            num(in_force, "net.ipv4.tcp_early_retrans"),
            Some(3 | 4) | None
        ) && num(in_force, "net.ipv4.tcp_sack") != Some(0),
        retries2: num(in_force, "net.ipv4.tcp_retries2").unwrap_or(15) as u32,
        user_timeout: socket.user_timeout.map(|t| t.0),
    };
    match client {
        Client::Send => {
            let p = retrans.plan();
            Prediction {
                inputs: format!(
                    "RTT {} µs (the kernel's first sample, TCP_INFO) → RTO {} ms (rto_min {} ms, HZ={hz}); {}; {}; rto_max {} s; give up at the first RTO ≥ {} after the first retransmission ({} ms after the original)",
                    retrans.rtt.as_micros(),
                    p.rto.as_millis(),
                    rto_min.as_millis(),
                    match p.pto {
                        Some(pto) => format!("a tail loss probe after {} ms (tcp_early_retrans, SACK)", pto.as_millis()),
                        None => "no tail loss probe".into(),
                    },
                    match retrans.user_timeout {
                        Some(u) => format!("TCP_USER_TIMEOUT {} ms", u.as_millis()),
                        None => format!("tcp_retries2={} (tcp_model_timeout {} ms)", retrans.retries2, p.boundary.as_millis()),
                    },
                    rto_max.as_secs(),
                    secs(p.boundary),
                    p.retrans_stamp.as_millis(),
                ),
                schedule: p.schedule,
                intervals: p.intervals,
                errno: Some(Errno::ETIMEDOUT),
                rto: Some(p.rto),
            }
        }
        Client::Idle => {
            let sys = |k: &str, d: u64| num(in_force, k).unwrap_or(d);
            let k = KeepaliveModel {
                time: Duration::from_secs(
                    socket
                        .keepidle
                        .map_or_else(|| sys("net.ipv4.tcp_keepalive_time", 7200), u64::from),
                ),
                intvl: Duration::from_secs(
                    socket
                        .keepintvl
                        .map_or_else(|| sys("net.ipv4.tcp_keepalive_intvl", 75), u64::from),
                ),
                probes: socket
                    .keepcnt
                    .unwrap_or_else(|| sys("net.ipv4.tcp_keepalive_probes", 9) as u32),
                user_timeout: socket.user_timeout.map(|t| t.0),
            };
            Prediction {
                inputs: format!(
                    "keepalive time {} s, intvl {} s, probes {}{}",
                    k.time.as_secs(),
                    k.intvl.as_secs(),
                    k.probes,
                    k.user_timeout
                        .map(|u| format!(", TCP_USER_TIMEOUT {} ms", u.as_millis()))
                        .unwrap_or_default()
                ),
                schedule: k.schedule(),
                intervals: k.intervals(),
                errno: Some(Errno::ETIMEDOUT),
                rto: None,
            }
        }
        Client::Close => {
            let rto = retrans.rto();
            if socket.linger.is_some_and(|l| l.0.is_zero()) {
                return Prediction {
                    schedule: Schedule {
                        send_times: Vec::new(),
                        give_up: Duration::ZERO,
                    },
                    intervals: Vec::new(),
                    inputs: "SO_LINGER on with a 0 s timeout: tcp_close() aborts (tcp_disconnect): an RST, the socket freed at once".into(),
                    errno: None,
                    rto: Some(rto),
                };
            }
            // do_tcp_setsockopt(TCP_LINGER2): 0 leaves the sysctl in force (tcp_fin_time
            // takes `linger2 ?: tcp_fin_timeout`), a value above TCP_FIN_TIMEOUT_MAX is
            // clamped to it (Linux ≥ 5.8), a negative one makes an orphan that reaches
            // FIN_WAIT_2 be reset and freed at once.
            let max = timers::TCP_FIN_TIMEOUT_MAX.as_secs();
            let (fin, from) = match socket.linger2 {
                Some(s) if s < 0 => (
                    Duration::ZERO,
                    format!("TCP_LINGER2 {s}: an orphan is reset and freed when its FIN is ACKed, instead of waiting in FIN_WAIT_2"),
                ),
                Some(s) if s as u64 > max => (
                    timers::TCP_FIN_TIMEOUT_MAX,
                    format!("TCP_LINGER2 {s} s, clamped to TCP_FIN_TIMEOUT_MAX {max} s"),
                ),
                Some(s) if s > 0 => (Duration::from_secs(s as u64), format!("TCP_LINGER2 {s} s")),
                linger2 => {
                    let s = sys_fin(in_force);
                    let why = match linger2 {
                        Some(_) => "TCP_LINGER2 0 leaves ",
                        None => "",
                    };
                    (Duration::from_secs(s), format!("{why}tcp_fin_timeout {s} s"))
                }
            };
            let reset = socket.linger2.is_some_and(|s| s < 0);
            let life = match reset {
                true => Duration::ZERO,
                false => timers::fin_wait2_lifetime(fin, rto),
            };
            Prediction {
                schedule: Schedule {
                    send_times: Vec::new(),
                    give_up: life,
                },
                intervals: vec![life],
                inputs: match reset {
                    true => from,
                    false => format!(
                        "{from}; floor 3.5 × RTO {} ms (tcp_fin_time): an orphaned FIN_WAIT_2 socket lives {}",
                        rto.as_millis(),
                        secs(life)
                    ),
                },
                errno: None,
                rto: Some(rto),
            }
        }
        Client::SynOnly => {
            let n = num(in_force, "net.ipv4.tcp_synack_retries").unwrap_or(5) as u32;
            let s = timers::synack_schedule(n);
            let mut intervals = s.intervals();
            intervals.retain(|d| !d.is_zero());
            Prediction {
                inputs: format!(
                    "tcp_synack_retries={n}: SYN-ACK retransmissions after 1, 2, 4 … s (reqsk_timeout), the request dropped at the next expiry"
                ),
                schedule: s,
                intervals,
                errno: None,
                rto: None,
            }
        }
        _ => Prediction {
            schedule: Schedule {
                send_times: Vec::new(),
                give_up: Duration::ZERO,
            },
            intervals: Vec::new(),
            inputs: String::new(),
            errno: None,
            rto: None,
        },
    }
}

fn sys_fin(in_force: &BTreeMap<String, String>) -> u64 {
    num(in_force, netclaim_harness::sysctl::knob::TCP_FIN_TIMEOUT).unwrap_or(60)
}

/// How early a kernel timer may appear: a jiffy (the first one is armed mid-jiffy) and a
/// millisecond of capture and wake-up jitter, at least [`lab::EARLY`].
pub fn early(hz: u32) -> Duration {
    (timers::jiffy(hz) + Duration::from_millis(1)).max(lab::EARLY)
}

/// The window of a time the kernel reaches through `intervals` (never early beyond
/// [`early`], late by their accumulated timer-wheel slack).
pub fn window(at: Duration, intervals: &[Duration], hz: u32) -> Window {
    let late: Duration = intervals.iter().map(|i| lab::interval_slack(*i, hz)).sum();
    kernel_timer_window(at, late, early(hz))
}

/// A rough run time for `client` with the sysctls the spec sets (kernel defaults
/// otherwise).
pub fn estimate(client: Client, spec: &ClaimSpec) -> Duration {
    let in_force: BTreeMap<String, String> = spec
        .lab
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.text()))
        .collect();
    let p = predict(client, spec, &in_force, None, 250);
    p.schedule.give_up + Duration::from_secs(1)
}

/// How soon a socket closed with SO_LINGER 0 leaves the table: "at once".
const AT_ONCE: Duration = Duration::from_millis(100);

/// Transmission `i` (at `t`) with its measured error: the probe's lateness over the
/// kernel timers before it, on both sides (a kernel timer never fires before its jiffy,
/// but jiffies lag the clock while the tick runs late: see `lab::Measurement::syn_error`).
fn send_error(rec: &AfterRecord, i: usize, t: Duration) -> Measured {
    let late = Duration::from_micros(rec.sent_late_us.get(i).copied().unwrap_or(0));
    Measured {
        took: t,
        error: late,
        early_error: late,
        error_from: format!(
            "transmission {}: timers up to {} ms late before it (probe); as much early",
            i + 1,
            late.as_millis()
        ),
    }
}

/// The end of a client after the SYN (its error, or its socket leaving the table) as
/// measured, with its error: the probe's lateness over the kernel timers before it and
/// over the wait, and how late the watch of the table may have seen it.
pub fn end_measured(rec: &AfterRecord, took: Duration) -> Measured {
    let timers = Duration::from_micros(
        rec.sent_late_us.last().copied().unwrap_or(0) + rec.late_us.unwrap_or(0),
    );
    let watch = Duration::from_micros(rec.watch_error_us.unwrap_or(0));
    let mut from = vec![format!(
        "timers up to {} ms late (probe, over the transmissions and the wait)",
        timers.as_millis()
    )];
    if rec.watch_error_us.is_some() {
        from.push(format!(
            "the socket looked up up to {} ms after the event",
            watch.as_millis()
        ));
    }
    // The FIN_WAIT_2 timer starts when the ACK of the FIN is processed: at the ACK, or,
    // when it came while close() still held the socket, at close()'s return.
    let held = Duration::from_micros(
        rec.close_took_us
            .unwrap_or(0)
            .saturating_sub(rec.starts_after_us.unwrap_or(0)),
    );
    if !held.is_zero() {
        from.push(format!(
            "the ACK of the FIN may have waited up to {} ms for close() to release the socket",
            held.as_millis()
        ));
    }
    // The kernel arms these timers in jiffies. While the tick runs late (a host that does
    // not run an emulated CPU, a loaded machine), jiffies lag the clock the measurement
    // uses, and a timer armed then falls due that much early by that clock: a 6.1 guest
    // under TCG put an orphan's 60 s FIN_WAIT_2 timer 56 ms early while its probe saw
    // timers 1.1 s late. The lag is at most how late the tick ran: the probe's lateness.
    let wait = Duration::from_micros(rec.late_us.unwrap_or(0));
    if !wait.is_zero() {
        from.push(format!(
            "up to {} ms early: jiffies behind the clock while the tick ran late",
            wait.as_millis()
        ));
    }
    Measured {
        took,
        error: timers + watch + held,
        early_error: wait,
        error_from: from.join("; "),
    }
}

fn times(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|us| Duration::from_micros(*us)).collect()
}

/// Judges a client after the SYN: the model's checks (and its figures) into `o`.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one lab record, all needed"
)]
pub fn judge(
    client: Client,
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    rec: &AfterRecord,
    errno: Option<Errno>,
    end: &Measured,
    hz: u32,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) -> Prediction {
    let duration = end.took;
    let rtt = rec.kernel_rtt_us.or(rec.rtt_us).map(Duration::from_micros);
    let p = predict(client, spec, in_force, rtt, hz);
    o.evidence(format!("model: {}", p.inputs));
    let sent = times(&rec.sent_us);
    let mut expected = Figures::default();
    let noun = match client {
        Client::Send => "transmissions of the data segment (original, probe, retransmissions)",
        Client::Idle => "keepalive probes",
        Client::SynOnly => "SYN-ACKs",
        _ => "",
    };
    if let (Some(model), Some(kernel)) = (p.rto, rec.kernel_rto_us) {
        if client == Client::Send {
            check_eq(
                o,
                Against::Model,
                &what("RTO after the handshake (TCP_INFO tcpi_rto, µs) = usecs_to_jiffies(RTT + max(2·RTT, rto_min))"),
                micros(model),
                kernel,
            );
        }
    }
    match client {
        Client::Send | Client::Idle | Client::SynOnly => {
            check_eq(
                o,
                Against::Model,
                &what(&format!("{noun}: count")),
                p.schedule.send_times.len(),
                sent.len(),
            );
            // Each send time: the intervals before it.
            let base = if client == Client::Idle { 0 } else { 1 };
            let same_count = sent.len() == p.schedule.send_times.len();
            let windows: Vec<Window> = p
                .schedule
                .send_times
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    window(
                        *t,
                        &p.intervals[..(i + 1 - base).min(p.intervals.len())],
                        hz,
                    )
                })
                .collect();
            let ok = same_count && windows.iter().zip(&sent).all(|(w, s)| w.contains(*s));
            let last = p
                .schedule
                .send_times
                .last()
                .zip(windows.last())
                .map(|(t, w)| format!("{} within {w}", secs(*t)))
                .unwrap_or_default();
            // Of the transmissions outside their windows, the one farthest beyond its
            // measured error (the probe's lateness over the timers before it) decides.
            let errors: Vec<Measured> = sent
                .iter()
                .enumerate()
                .map(|(i, t)| send_error(rec, i, *t))
                .collect();
            let worst = same_count
                .then(|| lab::worst_outside(&windows, &sent, &errors))
                .flatten();
            o.model_checks.push(Check {
                what: what(&format!(
                    "{noun}: times (timer-wheel slack at HZ={hz}, late only)"
                )),
                expected: format!(
                    "[{}] s (last {last})",
                    p.schedule
                        .send_times
                        .iter()
                        .map(|t| format!("{:.3}", t.as_secs_f64()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                observed: format!(
                    "[{}] s",
                    sent.iter()
                        .map(|t| format!("{:.3}", t.as_secs_f64()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                ok,
                timing: worst.map(|i| lab::timing(windows[i], sent[i], &errors[i])),
            });
            let n = p.schedule.send_times.len();
            expected.value = Some(match client {
                Client::Send => format!(
                    "{} retransmissions (RTO {} ms)",
                    n.saturating_sub(1),
                    p.rto.map_or(0, |r| r.as_millis())
                ),
                Client::Idle => format!("{n} keepalive probes"),
                _ => format!("{n} SYN-ACKs"),
            });
        }
        _ => {}
    }
    let gives_up = match client {
        Client::Close if p.intervals.is_empty() => {
            // SO_LINGER 0: an RST and no FIN, gone at once.
            check_eq(
                o,
                Against::Model,
                &what("close() sends an RST"),
                true,
                rec.rst,
            );
            check_eq(
                o,
                Against::Model,
                &what("close() sends a FIN"),
                false,
                rec.fin,
            );
            if rec.gone {
                lab::check_timing(
                    o,
                    Against::Model,
                    &what("the socket leaves the table at once"),
                    Duration::ZERO,
                    Window {
                        min: Duration::ZERO,
                        max: AT_ONCE,
                    },
                    end,
                );
            } else {
                o.model_check(
                    &what("the socket leaves the table at once"),
                    format!("< {}", secs(AT_ONCE)),
                    format!("still there after {}", secs(duration)),
                    false,
                );
            }
            expected.value = Some("RST, socket gone at once".into());
            false
        }
        Client::Close => {
            check_eq(
                o,
                Against::Model,
                &what("close() sends a FIN"),
                true,
                rec.fin,
            );
            // A negative TCP_LINGER2: the ACK of the FIN finds an orphan that may not wait
            // in FIN_WAIT_2; tcp_rcv_state_process frees it and answers with an RST.
            let reset = spec
                .run
                .as_ref()
                .and_then(|r| r.socket.linger2)
                .is_some_and(|s| s < 0);
            check_eq(
                o,
                Against::Model,
                &what("close() sends an RST"),
                reset,
                rec.rst,
            );
            let fw2 = rec.states.iter().any(|s| s == "FIN_WAIT2");
            check_eq(
                o,
                Against::Model,
                &what("the orphan waits in FIN_WAIT2"),
                !reset,
                fw2,
            );
            if !reset {
                expected.value = Some(format!("FIN, FIN_WAIT2 for {}", secs(p.schedule.give_up)));
                true
            } else {
                expected.value = Some("FIN, then an RST when it is ACKed: no FIN_WAIT2".into());
                let label = "the socket leaves the table once its FIN is ACKed";
                if rec.gone {
                    let at_once = Window {
                        min: Duration::ZERO,
                        max: AT_ONCE,
                    };
                    lab::check_timing(
                        o,
                        Against::Model,
                        &what(label),
                        Duration::ZERO,
                        at_once,
                        end,
                    );
                } else {
                    o.model_check(
                        &what(label),
                        format!("< {}", secs(AT_ONCE)),
                        format!("still there after {}", secs(duration)),
                        false,
                    );
                }
                false
            }
        }
        _ => true,
    };
    if gives_up {
        let w = window(p.schedule.give_up, &p.intervals, hz);
        let label = match client {
            Client::Send | Client::Idle => {
                "the connection fails (from the send, or from the handshake)"
            }
            Client::Close => "the orphan's FIN_WAIT_2 ends (its timer, from the ACK of the FIN)",
            _ => "the server drops the request (from the SYN)",
        };
        if rec.gone {
            lab::check_timing(o, Against::Model, &what(label), p.schedule.give_up, w, end);
        } else {
            o.model_check(
                &what(label),
                format!("{} within {w}", secs(p.schedule.give_up)),
                format!("still there after {}", secs(duration)),
                false,
            );
        }
        expected = expected.duration(p.schedule.give_up);
    }
    if let Some(e) = p.errno {
        check_eq(o, Against::Model, &what("errno"), Some(e), errno);
        expected.errno = Some(e as i32);
    }
    o.timelines.push(lab::timeline(
        &what(&format!("{client:?}: {}", p.inputs)),
        &sent,
        &p.schedule,
        Some(duration),
    ));
    o.expected = expected;
    p
}

/// The statement's checks specific to clients after the SYN.
pub fn statement_checks(
    spec_expect: &crate::spec::ExpectSpec,
    client: Option<Client>,
    rec: &AfterRecord,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    let sent = rec.sent_us.len();
    let mut claimed = Vec::new();
    for (n, noun) in [
        (spec_expect.retransmissions, "retransmissions"),
        (spec_expect.probes, "keepalive probes"),
        (spec_expect.synacks, "SYN-ACKs"),
    ] {
        if let Some(n) = n {
            claimed.push(format!("{n} {noun}"));
        }
    }
    if let Some(r) = spec_expect.rst {
        claimed.push(if r { "RST".into() } else { "no RST".into() });
    }
    if let Some(f) = spec_expect.fin {
        claimed.push(if f { "FIN".into() } else { "no FIN".into() });
    }
    if let Some(d) = spec_expect.duration_at_least {
        claimed.push(format!("≥ {}", secs(d.0)));
    }
    if let Some(d) = spec_expect.duration_at_most {
        claimed.push(format!("≤ {}", secs(d.0)));
    }
    if !claimed.is_empty() && o.claimed.value.is_none() {
        o.claimed.value = Some(claimed.join(", "));
    }
    if client.is_some() {
        o.observed.value = Some(observed_text(client, rec));
    }
    if let Some(n) = spec_expect.retransmissions {
        check_eq(
            o,
            Against::Statement,
            &what("retransmissions of the data segment on the wire"),
            n,
            sent.saturating_sub(1),
        );
    }
    if let Some(n) = spec_expect.probes {
        check_eq(o, Against::Statement, &what("keepalive probes"), n, sent);
    }
    if let Some(n) = spec_expect.synacks {
        check_eq(o, Against::Statement, &what("SYN-ACKs sent"), n, sent);
    }
    if client == Some(Client::Close) {
        if let Some(r) = spec_expect.rst {
            check_eq(
                o,
                Against::Statement,
                &what("close() sends an RST"),
                r,
                rec.rst,
            );
        }
        if let Some(f) = spec_expect.fin {
            check_eq(
                o,
                Against::Statement,
                &what("close() sends a FIN"),
                f,
                rec.fin,
            );
        }
    }
}

/// The observation of a client after the SYN, in words.
fn observed_text(client: Option<Client>, rec: &AfterRecord) -> String {
    let n = rec.sent_us.len();
    match client {
        Some(Client::Send) => format!(
            "{} retransmissions of the data segment{}",
            n.saturating_sub(1),
            match (rec.rtt_us, rec.kernel_rtt_us) {
                (Some(w), Some(k)) => format!(", RTT {w} µs on the wire, {k} µs by the kernel"),
                (Some(w), None) => format!(", RTT {w} µs on the wire"),
                _ => String::new(),
            }
        ),
        Some(Client::Idle) => format!("{n} keepalive probes"),
        Some(Client::SynOnly) => format!("{n} SYN-ACKs; request states {:?}", rec.states),
        Some(Client::Close) => format!(
            "{}{}; states {:?}",
            if rec.fin { "FIN" } else { "no FIN" },
            if rec.rst { ", RST" } else { "" },
            rec.states
        ),
        _ => String::new(),
    }
}

/// A connect()'s outcome when the SYN is rejected or cannot be routed: the errno the
/// kernel reports, and what the wire shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The errno of connect().
    pub errno: Errno,
    /// SYNs on the wire before it (0: no route, nothing sent).
    pub syns: usize,
    /// An ICMP answer that arrives while connect() still holds the socket is only
    /// recorded (`sk_err_soft`, `tcp_v4_err`'s `sock_owned_by_user` branch); the abort
    /// comes with the ICMP answering the first retransmission, after the initial RTO. On a
    /// direct link (veth) the answer usually comes back within the send itself.
    pub may_wait_one_rto: bool,
    /// An RST answers the SYN.
    pub rst: bool,
    /// The ICMP (type, code) that answers it.
    pub icmp: Option<(u8, u8)>,
    /// The round trip of the lab's wire (`lab.link`'s fixed delays; zero on a veth or
    /// loopback): the answer comes this long after the SYN.
    pub rtt: Duration,
    /// Why, in words.
    pub why: String,
}

/// What the kernel does with `lab.server` reject / unroutable.
pub fn rejection(spec: &ClaimSpec) -> Option<Rejection> {
    let mut r = rejection_on_a_direct_link(spec)?;
    if let Some(link) = &spec.lab.link {
        let (to, from) = link.delays();
        r.rtt = to + from;
        if r.may_wait_one_rto && r.rtt >= AFTER_THE_SEND {
            // The answer comes after connect() has gone to sleep: it aborts at once.
            r.may_wait_one_rto = false;
            r.why.push_str(&format!(
                "; over the lab's wire the answer comes {} ms after the SYN, when connect() sleeps and no longer holds the socket: the abort comes after one round trip, with one SYN",
                r.rtt.as_millis()
            ));
        }
    }
    Some(r)
}

/// A round trip long enough that an answer cannot come back while connect() still holds
/// the socket after sending its SYN (on a veth it comes back within the send itself).
const AFTER_THE_SEND: Duration = Duration::from_millis(1);

fn rejection_on_a_direct_link(spec: &ClaimSpec) -> Option<Rejection> {
    use crate::spec::Server;
    match spec.lab.server {
        Server::Unroutable => Some(Rejection {
            errno: Errno::ENETUNREACH,
            syns: 0,
            may_wait_one_rto: false,
            rst: false,
            icmp: None,
            rtt: Duration::ZERO,
            why: "no route to 203.0.113.1 in the lab: ip_route_connect() fails before a SYN is built (ENETUNREACH)".into(),
        }),
        Server::Reject => {
            let with = spec.lab.reject_with.as_deref().unwrap_or("");
            if with == "tcp-reset" {
                return Some(Rejection {
                    errno: Errno::ECONNREFUSED,
                    syns: 1,
                    // An RST that finds the socket owned waits in the backlog and is
                    // processed when connect() releases it: at once.
                    may_wait_one_rto: false,
                    rst: true,
                    icmp: None,
                    rtt: Duration::ZERO,
                    why: "REJECT --reject-with tcp-reset answers the SYN with an RST: tcp_reset() in SYN_SENT gives ECONNREFUSED".into(),
                });
            }
            let code = timers::reject_code(with)?;
            let v = timers::icmp_dest_unreach(code)?;
            Some(Rejection {
                errno: v.errno,
                syns: 1,
                may_wait_one_rto: true,
                rst: false,
                icmp: Some((3, code)),
                rtt: Duration::ZERO,
                why: format!(
                    "REJECT --reject-with {with} sends ICMP destination unreachable code {code}: icmp_err_convert gives {} ({} error per RFC 1122); tcp_v4_err() in SYN_SENT aborts the connect at once whatever its class, unless connect() still holds the socket when the ICMP arrives (then it is kept in sk_err_soft and the abort comes with the ICMP answering the first retransmission, 1 s later)",
                    v.errno.shown(),
                    if v.hard { "a hard" } else { "a soft" }
                ),
            })
        }
        _ => None,
    }
}

/// The model checks of a rejected connect.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one lab record, all needed"
)]
pub fn judge_rejection(
    r: &Rejection,
    hz: u32,
    errno: Option<Errno>,
    end: &Measured,
    syns: usize,
    rec: &AfterRecord,
    rsts: usize,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
) {
    o.evidence(format!("model: {}", r.why));
    check_eq(o, Against::Model, &what("errno"), Some(r.errno), errno);
    // One more SYN and one initial RTO when the first answer found the socket owned.
    let waited = r.may_wait_one_rto && syns == r.syns + 1;
    let (want_syns, limit) = if waited {
        (
            r.syns + 1,
            window(timers::TCP_TIMEOUT_INIT, &[timers::TCP_TIMEOUT_INIT], hz),
        )
    } else {
        // After one round trip of the wire (none on a veth), never before it.
        (
            r.syns,
            Window {
                min: r.rtt,
                max: r.rtt + lab::TOOL_STARTUP,
            },
        )
    };
    check_eq(
        o,
        Against::Model,
        &what("SYNs on the wire"),
        want_syns,
        syns,
    );
    lab::check_timing(
        o,
        Against::Model,
        &what(if waited {
            "fails with the answer to the first retransmission (the first answer found the socket owned by connect())"
        } else if r.rtt.is_zero() {
            "fails at once (no timer involved)"
        } else {
            "fails after one round trip of the wire (no timer involved)"
        }),
        if waited {
            timers::TCP_TIMEOUT_INIT
        } else {
            r.rtt
        },
        limit,
        end,
    );
    if r.may_wait_one_rto {
        o.evidence(format!(
            "the first ICMP answer {}",
            if waited {
                "arrived while connect() held the socket: kept as a soft error until the next SYN's answer"
            } else {
                "aborted the connect at once"
            }
        ));
    }
    if r.rst {
        check_eq(o, Against::Model, &what("RST on the wire"), true, rsts > 0);
    }
    if let Some(icmp) = r.icmp {
        check_eq(
            o,
            Against::Model,
            &what("ICMP (type, code) on the wire, one per SYN"),
            vec![icmp; want_syns],
            rec.icmp.clone(),
        );
    }
    o.expected = Figures::default().duration(if waited {
        timers::TCP_TIMEOUT_INIT
    } else {
        r.rtt
    });
    o.expected.errno = Some(r.errno as i32);
    o.expected.syn_count = Some(want_syns);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ClaimSpec {
        let full = format!("[[claim]]\nid = \"t.t\"\nsource = \"s\"\nstatement = \"s\"\n{text}");
        // Model tests: a lab and an action, no statement to check (which `parse` requires).
        crate::spec::parse_unvalidated(&full).remove(0)
    }

    #[test]
    fn tcp_linger2_as_do_tcp_setsockopt_takes_it() {
        let in_force = BTreeMap::from([("net.ipv4.tcp_fin_timeout".to_owned(), "4".to_owned())]);
        for (socket, secs) in [
            ("", 4),
            (", socket = { linger2 = 0 }", 4),
            (", socket = { linger2 = 2 }", 2),
            (", socket = { linger2 = 120 }", 120),
            (", socket = { linger2 = 200 }", 120),
        ] {
            let s = spec(&format!(
                "lab = {{ server = \"silent\" }}\nrun = {{ client = \"close\"{socket} }}\n"
            ));
            let p = predict(
                Client::Close,
                &s,
                &in_force,
                Some(Duration::from_micros(50)),
                250,
            );
            assert_eq!(
                p.schedule.give_up,
                Duration::from_secs(secs),
                "{socket}: {}",
                p.inputs
            );
        }
    }

    #[test]
    fn a_negative_tcp_linger2_resets_the_orphan() {
        let s = spec("lab = { server = \"silent\" }\nrun = { client = \"close\", socket = { linger2 = -1 } }\n");
        let p = predict(Client::Close, &s, &BTreeMap::new(), None, 250);
        assert_eq!(p.schedule.give_up, Duration::ZERO);
        assert!(p.inputs.contains("reset and freed"), "{}", p.inputs);
    }

    #[test]
    fn an_icmp_rejection_is_immediate_or_one_rto_late() {
        let s = spec("lab = { server = \"reject\", reject_with = \"icmp-host-unreachable\" }\nrun = { client = \"connect\" }\n");
        let r = rejection(&s).expect("a rejection");
        assert_eq!(r.errno, Errno::EHOSTUNREACH);
        let what = |w: &str| w.to_owned();
        let judge_with = |syns: usize, ms: u64, error_ms: u64| {
            let mut o = Outcome::default();
            let rec = AfterRecord {
                icmp: vec![(3, 1); syns],
                ..AfterRecord::default()
            };
            let end = Measured {
                took: Duration::from_millis(ms),
                error: Duration::from_millis(error_ms),
                early_error: Duration::ZERO,
                error_from: "test".into(),
            };
            judge_rejection(
                &r,
                250,
                Some(Errno::EHOSTUNREACH),
                &end,
                syns,
                &rec,
                0,
                &what,
                &mut o,
            );
            (o.model_agrees(), o.model_inconclusive())
        };
        let judge = |syns: usize, ms: u64| judge_with(syns, ms, 0).0;
        assert!(judge(1, 2), "at once");
        assert!(judge(2, 1010), "with the first retransmission's answer");
        assert!(!judge(2, 3000), "not later");
        assert!(!judge(3, 3000), "not after further retransmissions");
        // 1.055 s is 18 ms past the window: within 30 ms of measured lateness it is
        // inconclusive, with 10 ms it is a miss.
        assert_eq!(judge_with(2, 1055, 30), (true, 1));
        assert_eq!(judge_with(2, 1055, 10), (false, 0));
    }

    #[test]
    fn a_socket_seen_gone_late_by_a_slow_watch_is_inconclusive_not_late() {
        let s = spec("lab = { server = \"silent\" }\nrun = { client = \"close\", socket = { linger = \"0s\" } }\n");
        let what = |w: &str| w.to_owned();
        let judge_at = |ms: u64, watch_ms: u64| {
            let rec = AfterRecord {
                rst: true,
                gone: true,
                watch_error_us: Some(watch_ms * 1000),
                late_us: Some(0),
                ..AfterRecord::default()
            };
            let mut o = Outcome::default();
            let end = end_measured(&rec, Duration::from_millis(ms));
            judge(
                Client::Close,
                &s,
                &BTreeMap::new(),
                &rec,
                None,
                &end,
                250,
                &what,
                &mut o,
            );
            (o.model_agrees(), o.model_inconclusive())
        };
        assert_eq!(judge_at(20, 20), (true, 0), "gone at once");
        // Seen gone after 201 ms by a read that took 200 ms (the first one): it may have
        // gone at once.
        assert_eq!(judge_at(201, 200), (true, 1));
        // Seen gone after 201 ms with reads of 10 ms: it was there at 190 ms.
        assert_eq!(judge_at(201, 10), (false, 0));
    }

    #[test]
    fn predictions_follow_the_sysctls_and_socket_options() {
        let s = spec("lab = { server = \"dies-after-handshake\" }\nrun = { client = \"idle\", socket = { keepalive = true, keepidle = 1, keepintvl = 1, keepcnt = 4 } }\n");
        let p = predict(Client::Idle, &s, &BTreeMap::new(), None, 250);
        assert_eq!(p.schedule.give_up, Duration::from_secs(5));
        assert_eq!(p.schedule.send_times.len(), 4);
        let s = spec("lab = { server = \"silent\" }\nrun = { client = \"close\" }\n");
        let in_force: BTreeMap<String, String> =
            [("net.ipv4.tcp_fin_timeout".to_owned(), "3".to_owned())].into();
        let p = predict(
            Client::Close,
            &s,
            &in_force,
            Some(Duration::from_micros(20)),
            250,
        );
        assert_eq!(p.schedule.give_up, Duration::from_secs(3));
        let s = spec("lab = { server = \"dies-after-handshake\", sysctls = { \"net.ipv4.tcp_retries2\" = 8 } }\nrun = { client = \"send\" }\n");
        let in_force: BTreeMap<String, String> =
            [("net.ipv4.tcp_retries2".to_owned(), "8".to_owned())].into();
        let p = predict(
            Client::Send,
            &s,
            &in_force,
            Some(Duration::from_micros(60)),
            250,
        );
        assert_eq!(p.schedule.give_up, Duration::from_millis(104_448));
        assert_eq!(p.rto, Some(Duration::from_millis(204)));
    }
}
