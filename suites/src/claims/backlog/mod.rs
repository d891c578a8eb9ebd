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
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netclaim_fixtures::client::{self, ConnectOutcome, ConnectResult};
use netclaim_fixtures::ports;
use netclaim_fixtures::server::{NoAcceptListener, UnixNoAcceptListener};
use netclaim_harness::capture::{self, TcpEvent};
use netclaim_harness::command::{CommandOutput, ToolCommand};
use netclaim_harness::model::SynModel;
use netclaim_harness::sysctl::knob;
use netclaim_harness::tmp::TempDir;
use netclaim_harness::wait::{self, Poll};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use socket2::{Domain, SockAddr, Socket, Type};

use super::seeds;
use crate::claim::{
    Checked, Claim, Ctx, Figures, Measured, Needs, Outcome, Procedure, Steps, Verdict,
};
use crate::lab::{self, check_eq, check_schedule, Against, Measurement};
use crate::recording::too_many_syns;

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
        Err(e) => match lab::refusal(&e) {
            Some(why) => Ok(Some(why)),
            None => Err(e).with_context(|| format!("setting {pairs:?} in {}", ns.name())),
        },
    }
}

/// A measurement that does not apply on this kernel, for `why`.
fn not_applicable<T>(why: String) -> Result<Measured<T>> {
    Ok(Measured::Forced(Verdict::NotApplicable, why))
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
    /// (Recv-Q, Send-Q), if ss listed the listener.
    queue: Option<(u32, u32)>,
    /// The ss command and its output.
    text: String,
}

/// Waits until the accept queue of the listener on `port` holds `n` connections (ss
/// Recv-Q): a client's connect() returns when its SYN-ACK arrives, the server queues the
/// connection when the client's ACK does. Returns the last reading of ss, whether or not
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
    let texts = ns
        .run(|| {
            ["snmp", "netstat"]
                .map(|f| std::fs::read_to_string(format!("/proc/thread-self/net/{f}")))
        })
        .context("reading the namespace's TCP counters")?;
    let mut out = Vec::new();
    for t in texts {
        out.extend(parse_counters(
            &t.context("reading /proc/net/snmp or netstat")?,
        ));
    }
    Ok(out)
}

/// Parses the header/value line pairs of `/proc/net/snmp` and `/proc/net/netstat`.
fn parse_counters(text: &str) -> Vec<(String, String, u64)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((group, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse() {
                out.push((group.to_owned(), n.to_owned(), v));
            }
        }
    }
    out
}

/// One counter of a [`counters`] reading (0 when this kernel lacks it).
fn counter(all: &[(String, String, u64)], group: &str, name: &str) -> u64 {
    all.iter()
        .find(|(g, n, _)| g == group && n == name)
        .map_or(0, |(_, _, v)| *v)
}

// ---------------------------------------------------------------------------------------
// backlog.capped-by-somaxconn

/// What `backlog.capped-by-somaxconn` measured: TCP listeners filled until a connect no
/// longer completes.
#[derive(Debug, Serialize, Deserialize)]
struct SomaxconnCap {
    /// The lab's namespace.
    lab: String,
    /// net.core.somaxconn, read back after setting it.
    somaxconn: u32,
    /// One fill per listen() argument.
    runs: Vec<TcpFill>,
}

/// One TCP listener filled until a connect no longer completes.
#[derive(Debug, Serialize, Deserialize)]
struct TcpFill {
    /// The listen() argument.
    listen_arg: i32,
    /// Connects that completed within [`TCP_POLL`].
    completed: usize,
    /// The first connect that did not (`None`: [`FILL_LIMIT`] reached).
    stop: Option<ConnectResult>,
    /// ss's (Recv-Q, Send-Q) of the listener afterwards.
    ss: Option<(u32, u32)>,
    /// The ss command and its output.
    ss_text: String,
}

/// Fills a listener with `listen(listen_arg)` on `port` and reads its queue with ss.
fn tcp_fill(ns: &NetNs, port: u16, listen_arg: i32) -> Result<TcpFill> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let listener = NoAcceptListener::bind(ns, addr, listen_arg)
        .with_context(|| format!("listening on {addr}"))?;
    // Each connect is given TCP_POLL to complete: that wait is the measurement.
    let filled = fill(FILL_LIMIT, || {
        Ok(client::connect_nonblocking(ns, listener.addr(), TCP_POLL)?)
    })?;
    // Every completed connect's final ACK reaches the queue before ss is read; if the
    // queue never holds them all, the last reading is what was measured.
    let completed = u32::try_from(filled.kept.len()).context("counting connections")?;
    let reading = until_queued(ns, port, completed)?;
    Ok(TcpFill {
        listen_arg,
        completed: filled.kept.len(),
        stop: filled.stop.as_ref().map(|o| o.result),
        ss: reading.queue,
        ss_text: reading.text,
    })
}

/// `backlog.capped-by-somaxconn`, measured: somaxconn set small, listen(128) and
/// listen(2) filled.
fn measure_capped(_ctx: &Ctx) -> Result<Measured<SomaxconnCap>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    if let Some(why) = set_or_na(&ns, &[(knob::SOMAXCONN, &SMALL_SOMAXCONN.to_string())])? {
        return not_applicable(why);
    }
    let somaxconn = ns.somaxconn()?;
    let runs = vec![
        tcp_fill(&ns, TCP_PORT, LISTEN_ARG)?,
        tcp_fill(&ns, TCP_PORT + 1, 2)?,
    ];
    Ok(Measured::Observed(SomaxconnCap {
        lab: ns.name().to_owned(),
        somaxconn,
        runs,
    }))
}

/// `backlog.capped-by-somaxconn`, judged: Send-Q is min(listen(), somaxconn), and
/// backlog + 1 connections fit.
fn judge_capped(m: &SomaxconnCap, _ctx: &Ctx) -> Outcome {
    let somaxconn = m.somaxconn;
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: net.core.somaxconn={somaxconn} (read back); TCP listeners on 127.0.0.1 that never accept; \
         nonblocking connects, each given {} ms to complete",
        m.lab,
        TCP_POLL.as_millis()
    ));
    let mut claimed = Vec::new();
    let mut observed = Vec::new();
    let mut expected = Vec::new();
    for r in &m.runs {
        let stated = (r.listen_arg as u32).min(somaxconn);
        let backlog = stated;
        let send_q = r.ss.map(|(_, s)| s);
        o.evidence(format!(
            "listen({}): {} connects completed, the next: {}\n{}",
            r.listen_arg,
            r.completed,
            result_text(r.stop),
            r.ss_text
        ));
        claimed.push(format!("listen({}) → {stated}", r.listen_arg));
        expected.push(format!(
            "listen({}) → backlog {}, {} queued",
            r.listen_arg,
            backlog,
            backlog + 1
        ));
        observed.push(format!(
            "listen({}) → Send-Q {}, {} queued",
            r.listen_arg,
            send_q.map_or("?".into(), |s| s.to_string()),
            r.completed
        ));
        check_eq(
            &mut o,
            Against::Statement,
            &format!(
                "effective backlog of listen({}) with somaxconn={somaxconn} (ss Send-Q)",
                r.listen_arg
            ),
            Some(stated),
            send_q,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("ss Send-Q of listen({})", r.listen_arg),
            Some(backlog),
            send_q,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!(
                "connections completed before the queue is full, listen({}) (backlog + 1)",
                r.listen_arg
            ),
            backlog as usize + 1,
            r.completed,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("ss Recv-Q of listen({}) (queued)", r.listen_arg),
            Some(backlog + 1),
            r.ss.map(|(q, _)| q),
        );
    }
    o.claimed.value = Some(claimed.join("; "));
    o.expected.value = Some(expected.join("; "));
    o.observed.value = Some(observed.join("; "));
    o
}

/// `backlog.capped-by-somaxconn` in two steps.
const CAPPED: Steps<SomaxconnCap> = Steps {
    measure: measure_capped,
    judge: judge_capped,
};

// ---------------------------------------------------------------------------------------
// backlog.tcp-full-refused

/// What `backlog.tcp-full-refused` measured: a client's connect() to a full accept queue
/// under each tcp_abort_on_overflow, then (with iptables) overflows at the final ACK.
#[derive(Debug, Serialize, Deserialize)]
struct FullQueue {
    /// The lab's namespace.
    lab: String,
    /// net.core.somaxconn, read back after setting it.
    somaxconn: u32,
    /// The SYN-schedule sysctls in force.
    model: ModelInForce,
    /// One connect per tcp_abort_on_overflow (0, then 1).
    connects: Vec<FullConnect>,
    /// The overflow-at-the-final-ACK phases (0, then 1); `None`: iptables is missing, so
    /// they were not run.
    overflows: Option<Vec<AckOverflow>>,
}

/// The inputs of the SYN model, as read in the lab ([`SynModel`] is not recorded as is).
#[derive(Debug, Serialize, Deserialize)]
struct ModelInForce {
    /// net.ipv4.tcp_syn_retries.
    syn_retries: u32,
    /// net.ipv4.tcp_syn_linear_timeouts, where the kernel has it.
    syn_linear_timeouts: Option<u32>,
    /// The initial RTO.
    initial_rto: Duration,
    /// The RTO cap.
    rto_max: Duration,
}

impl ModelInForce {
    /// Records `m`.
    fn of(m: &SynModel) -> Self {
        Self {
            syn_retries: m.syn_retries,
            syn_linear_timeouts: m.syn_linear_timeouts,
            initial_rto: m.initial_rto,
            rto_max: m.rto_max,
        }
    }

    /// The model again.
    fn model(&self) -> SynModel {
        SynModel {
            syn_retries: self.syn_retries,
            syn_linear_timeouts: self.syn_linear_timeouts,
            initial_rto: self.initial_rto,
            rto_max: self.rto_max,
        }
    }
}

/// One connect to a full TCP listener, with the packets it caused.
#[derive(Debug, Serialize, Deserialize)]
struct FullConnect {
    /// The tcp_abort_on_overflow set.
    abort: u8,
    /// The listener's port.
    port: u16,
    /// tcp_abort_on_overflow as read back.
    in_force: String,
    /// Connections that completed while filling the queue.
    queued: usize,
    /// How the blocking connect() ended.
    result: ConnectResult,
    /// How long it took.
    duration: Duration,
    /// The connect() as measured, for its timing checks.
    m: Measurement,
    /// Handshake packets on the listener's port.
    events: Vec<TcpEvent>,
}

/// Fills the accept queue of a `listen(listen_arg)` listener on `port` with
/// `queued_expected` connections, then makes one blocking connect() to it under capture.
fn connect_to_full(
    ns: &NetNs,
    port: u16,
    listen_arg: i32,
    queued_expected: usize,
) -> Result<(usize, ConnectOutcome, Measurement, Vec<TcpEvent>)> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let listener = NoAcceptListener::bind(ns, addr, listen_arg)
        .with_context(|| format!("listening on {addr}"))?;
    // Fill exactly the queue (backlog + 1), each connect completing.
    let mut kept = Vec::new();
    for _ in 0..queued_expected {
        let c = client::connect_nonblocking(ns, listener.addr(), TCP_POLL)?;
        if c.result != ConnectResult::Connected {
            break;
        }
        kept.push(c);
    }
    // The last final ACK must have reached the queue before the next SYN is sent, or
    // that SYN finds a place.
    let n = u32::try_from(kept.len()).context("counting connections")?;
    let reading = until_queued(ns, port, n)?;
    if !reading.reached {
        bail!(
            "the accept queue of {addr} did not hold the {n} connections made within {} s:\n{}",
            settle().as_secs(),
            reading.text
        );
    }
    let cap = ns.capture_tcp(port).context("starting the capture")?;
    let capture_started = cap.started();
    let started = Instant::now();
    let c = client::connect_blocking(ns, listener.addr())?;
    let ended = Instant::now();
    let events = cap.finish().context("finishing the capture")?;
    // The timer probe is read here, while the instants mean something.
    let m = Measurement::client(&events, port, capture_started, started, ended);
    Ok((kept.len(), c, m, events))
}

/// `backlog.tcp-full-refused`, measured.
fn measure_full(_ctx: &Ctx) -> Result<Measured<FullQueue>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    if let Some(why) = set_or_na(
        &ns,
        &[
            (knob::SOMAXCONN, &SMALL_SOMAXCONN.to_string()),
            (knob::TCP_SYN_RETRIES, "1"),
            (knob::TCP_ABORT_ON_OVERFLOW, "0"),
        ],
    )? {
        return not_applicable(why);
    }
    let somaxconn = ns.somaxconn()?;
    let backlog = (LISTEN_ARG as u32).min(somaxconn);
    let queued = backlog as usize + 1;
    let model = lab::model_in(&ns)?;

    let mut connects = Vec::new();
    for (abort, port) in [(0u8, TCP_PORT), (1, TCP_PORT + 1)] {
        if abort == 1 {
            if let Some(why) = set_or_na(&ns, &[(knob::TCP_ABORT_ON_OVERFLOW, "1")])? {
                return not_applicable(why);
            }
        }
        let in_force = ns.sysctl(knob::TCP_ABORT_ON_OVERFLOW)?;
        let (n, c, m, events) = connect_to_full(&ns, port, LISTEN_ARG, queued)?;
        connects.push(FullConnect {
            abort,
            port,
            in_force,
            queued: n,
            result: c.result,
            duration: c.duration,
            m,
            events,
        });
    }
    let overflows = if netclaim_harness::firewall::available() {
        let mut phases = Vec::new();
        for (abort, port) in [(0u8, TCP_PORT + 2), (1, TCP_PORT + 3)] {
            phases.push(ack_overflow(&ns, port, abort, backlog)?);
        }
        Some(phases)
    } else {
        None
    };
    Ok(Measured::Observed(FullQueue {
        lab: ns.name().to_owned(),
        somaxconn,
        model: ModelInForce::of(&model),
        connects,
        overflows,
    }))
}

/// `backlog.tcp-full-refused`, judged: ECONNREFUSED stated; the model says the SYN is
/// dropped (ETIMEDOUT after the SYN schedule, no RST), and that tcp_abort_on_overflow
/// only acts on an overflow at the final ACK.
fn judge_full(m: &FullQueue, ctx: &Ctx) -> Outcome {
    let somaxconn = m.somaxconn;
    let backlog = (LISTEN_ARG as u32).min(somaxconn);
    let queued = backlog as usize + 1;
    let model = m.model.model();
    let schedule = model.schedule();

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: net.core.somaxconn={somaxconn}, listen({LISTEN_ARG}) → backlog {backlog}, {queued} \
         connections fill the accept queue; in force: {}",
        m.lab,
        lab::describe_model(&model)
    ));
    o.claimed.errno = Some(Errno::ECONNREFUSED as i32);
    o.expected = Figures::default()
        .duration(schedule.give_up)
        .syn_times(&schedule.send_times);
    o.expected.errno = Some(Errno::ETIMEDOUT as i32);

    for r in &m.connects {
        let in_force = &r.in_force;
        let port = r.port;
        let errno = errno_of(r.result);
        let rsts = r.events.iter().filter(|e| e.flags.is_rst()).count();
        let syn_times = capture::syn_times(&r.events, port);
        let timeline = if r.events.is_empty() {
            "(no handshake packets)".into()
        } else {
            capture::timeline(&r.events)
        };
        let errno_text = errno.map_or("connected".into(), |e| format!("{e:?}"));
        o.evidence(format!(
            "tcp_abort_on_overflow={in_force}: {} connections queued; blocking connect() to 127.0.0.1:{port} \
             → {errno_text} after {:.3} s, {} SYN, {} RST\n--- wire ---\n{}",
            r.queued,
            r.duration.as_secs_f64(),
            syn_times.len(),
            rsts,
            timeline
        ));
        let tag = format!("tcp_abort_on_overflow={in_force}");
        check_eq(
            &mut o,
            Against::Model,
            &format!("{tag}: connections that fill the queue (backlog + 1)"),
            queued,
            r.queued,
        );
        check_eq(
            &mut o,
            Against::Statement,
            &format!("{tag}: errno of the next client's connect()"),
            Some(Errno::ECONNREFUSED),
            errno,
        );
        // The SYN is dropped while the queue is full whatever tcp_abort_on_overflow says,
        // so the client runs its SYN schedule out.
        check_eq(
            &mut o,
            Against::Model,
            &format!("{tag}: errno of the next client's connect()"),
            Some(Errno::ETIMEDOUT),
            errno,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("{tag}: RSTs on the wire"),
            0,
            rsts,
        );
        let mut part = Outcome::default();
        check_schedule(
            &mut part,
            Against::Model,
            &schedule,
            &r.m,
            ctx,
            Duration::ZERO,
        );
        for mut c in part.model_checks {
            c.what = format!("{tag}: {}", c.what);
            o.model_checks.push(c);
        }
        o.timelines.push(lab::timeline(
            &format!("connect() to a full accept queue, {tag}"),
            &syn_times,
            &schedule,
            Some(r.duration),
        ));
        if r.abort == 0 {
            o.observed = Figures::default()
                .duration(r.duration)
                .syn_times(&syn_times);
            o.observed.errno = errno.map(|e| e as i32);
            o.observed.value = Some(format!("{rsts} RST"));
        } else {
            o.observed.value = Some(format!(
                "{}; with tcp_abort_on_overflow=1: {errno_text} after {:.3} s, {rsts} RST",
                o.observed.value.take().unwrap_or_default(),
                r.duration.as_secs_f64(),
            ));
        }
    }
    match &m.overflows {
        Some(phases) => {
            for r in phases {
                judge_ack_overflow(&mut o, r, backlog);
            }
        }
        None => o.evidence(
            "iptables is missing: the overflow-at-final-ACK phase (where tcp_abort_on_overflow acts) was not run",
        ),
    }
    o
}

/// `backlog.tcp-full-refused` in two steps, its record checked first: the sysctls it sets
/// in force, no more SYNs than they allow.
const FULL_REFUSED: Checked<FullQueue> = Checked {
    steps: Steps {
        measure: measure_full,
        judge: judge_full,
    },
    check: full_inconsistencies,
};

fn full_inconsistencies(m: &FullQueue, _ctx: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    if m.somaxconn != SMALL_SOMAXCONN {
        out.push(format!(
            "the claim sets net.core.somaxconn={SMALL_SOMAXCONN}; the record shows {}",
            m.somaxconn
        ));
    }
    let model = m.model.model();
    if model.syn_retries != 1 {
        out.push(format!(
            "the claim sets tcp_syn_retries=1; the record shows {} in force",
            model.syn_retries
        ));
    }
    for r in &m.connects {
        if r.in_force.trim() != r.abort.to_string() {
            out.push(format!(
                "the claim sets tcp_abort_on_overflow={}; the record shows {} in force",
                r.abort,
                r.in_force.trim()
            ));
        }
        let what = format!("tcp_abort_on_overflow={}", r.abort);
        out.extend(too_many_syns(
            &what,
            &model,
            crate::recording::syns_to(&r.events, r.port),
        ));
    }
    out
}

/// How many clients race for the last places of the queue in the final-ACK phase.
const RACERS: usize = 3;

/// What the racers saw.
#[derive(Debug, Serialize, Deserialize)]
struct AckOverflow {
    /// The tcp_abort_on_overflow set.
    abort: u8,
    /// The listener's port.
    port: u16,
    /// Each racer's connect() result.
    connects: Vec<ConnectResult>,
    /// Each racer's read() after its write: the errno, `None` = no data yet (EAGAIN).
    reads: Vec<Option<i32>>,
    /// Packets on the listener's port from the racers' connects on.
    events: Vec<TcpEvent>,
    /// ss Recv-Q of the listener afterwards (connections queued).
    queued: Option<u32>,
    /// Why the lab stopped waiting for a racer's segment to be dealt with, if it did
    /// (the kernel neither queued it nor counted an overflow).
    unsettled: Option<String>,
}

/// The listener-side counters that say a racer's segment was dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dealt {
    /// Children created (Tcp PassiveOpens): a place in the queue.
    opened: u64,
    /// Overflows at the final ACK (TcpExt ListenOverflows).
    overflowed: u64,
    /// Resets sent (Tcp OutRsts).
    resets_sent: u64,
    /// Established connections reset (Tcp EstabResets): resets received.
    resets_received: u64,
}

impl Dealt {
    /// Reads the counters in `ns`.
    fn read(ns: &NetNs) -> Result<Self> {
        let c = counters(ns)?;
        Ok(Self {
            opened: counter(&c, "Tcp", "PassiveOpens"),
            overflowed: counter(&c, "TcpExt", "ListenOverflows"),
            resets_sent: counter(&c, "Tcp", "OutRsts"),
            resets_received: counter(&c, "Tcp", "EstabResets"),
        })
    }

    /// Whether, since `base`, `segments` final ACKs were dealt with (queued or counted as
    /// an overflow) and every reset sent has been received.
    fn settled_since(&self, base: &Self, segments: u64) -> bool {
        let dealt = self.opened.saturating_sub(base.opened)
            + self.overflowed.saturating_sub(base.overflowed);
        let sent = self.resets_sent.saturating_sub(base.resets_sent);
        let received = self.resets_received.saturating_sub(base.resets_received);
        dealt >= segments && received >= sent
    }
}

/// The accept queue overflows when the final ACK (here: the first data segment) arrives,
/// not at the SYN: `backlog − 1` connections are queued, the racers' handshakes complete
/// on the client side while their pure ACKs are dropped (iptables), then each racer writes
/// 200 bytes, which completes its handshake on the server. The first two fill the queue
/// (`backlog + 1`), the third overflows in `tcp_check_req`.
fn ack_overflow(ns: &NetNs, port: u16, abort: u8, backlog: u32) -> Result<AckOverflow> {
    ns.set_sysctl(knob::TCP_ABORT_ON_OVERFLOW, &abort.to_string())
        .context("setting tcp_abort_on_overflow")?;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let listener = NoAcceptListener::bind(ns, addr, LISTEN_ARG)
        .with_context(|| format!("listening on {addr}"))?;
    let mut kept = Vec::new();
    for _ in 1..backlog {
        let c = client::connect_nonblocking(ns, listener.addr(), TCP_POLL)?;
        if c.result != ConnectResult::Connected {
            bail!("pre-filling {addr}: {}", result_text(Some(c.result)));
        }
        kept.push(c);
    }
    // The pre-fill's final ACKs are pure ACKs too: they must be queued before the rule
    // that drops them is in place.
    let reading = until_queued(ns, port, backlog - 1)?;
    if !reading.reached {
        bail!(
            "pre-filling {addr}: the accept queue did not hold {} within {} s:\n{}",
            backlog - 1,
            settle().as_secs(),
            reading.text
        );
    }
    ns.iptables_append(
        "filter",
        "INPUT",
        &format!("-p tcp --dport {port} --tcp-flags ALL ACK -m length --length 0:100 -j DROP"),
    )
    .context("dropping the racers' pure ACKs")?;
    let base = Dealt::read(ns)?;
    let cap = ns.capture_tcp(port).context("starting the capture")?;
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        racers.push(client::connect_nonblocking(ns, listener.addr(), TCP_POLL)?);
    }
    // One racer at a time: its segment is queued or overflows (and, with
    // tcp_abort_on_overflow=1, its reset is delivered) before the next one writes.
    let mut written = 0;
    let mut unsettled = None;
    for r in &racers {
        let Some(s) = &r.socket else { continue };
        s.send(&[b'x'; 200]).context("writing from a racer")?;
        written += 1;
        if unsettled.is_some() {
            continue;
        }
        let mut failed = None;
        let waited = wait::until(
            &format!("the listener dealing with racer {written}'s first segment"),
            settle(),
            || match Dealt::read(ns) {
                Ok(now) if now.settled_since(&base, written) => Poll::Ready(()),
                Ok(now) => Poll::Pending(format!("{now:?} since {base:?}")),
                Err(e) => {
                    failed = Some(e);
                    Poll::Ready(())
                }
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
        unsettled = waited.err().map(|e| e.to_string());
    }
    let events = cap.finish().context("finishing the capture")?;
    let reads = racers
        .iter()
        .map(|r| {
            let s = r.socket.as_ref()?;
            let mut buf = [0u8; 16];
            match std::io::Read::read(&mut &*s, &mut buf) {
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(e) => Some(e.raw_os_error().unwrap_or(0)),
            }
        })
        .collect();
    let (ss, _) = listener_queue(ns, port)?;
    Ok(AckOverflow {
        abort,
        port,
        connects: racers.iter().map(|r| r.result).collect(),
        reads,
        events,
        queued: ss.map(|(q, _)| q),
        unsettled,
    })
}

/// A racer's read() result, in words.
fn read_text(r: Option<Errno>) -> String {
    r.map_or("EAGAIN (no data, connection alive)".into(), |e| {
        format!("{e:?}")
    })
}

/// The checks of one overflow-at-the-final-ACK phase.
fn judge_ack_overflow(o: &mut Outcome, r: &AckOverflow, backlog: u32) {
    let abort = r.abort;
    let tag = format!("overflow at the final ACK, tcp_abort_on_overflow={abort}");
    let errnos: Vec<Option<Errno>> = r.reads.iter().map(|e| e.map(Errno::from_raw)).collect();
    let reads: Vec<String> = errnos.iter().map(|e| read_text(*e)).collect();
    let rsts = r.events.iter().filter(|e| e.flags.is_rst()).count();
    o.evidence(format!(
        "{tag}: {} connections queued, {RACERS} racers' pure ACKs dropped, then each writes 200 bytes: \
         connect() {:?}; read() after the write: [{}]; {} RST\n--- wire ---\n{}",
        backlog - 1,
        r.connects,
        reads.join(", "),
        rsts,
        capture::timeline(&r.events)
    ));
    if let Some(why) = &r.unsettled {
        o.evidence(format!("{tag}: stopped waiting: {why}"));
    }
    let expect_reset = abort == 1;
    let last = errnos.last().copied().flatten();
    check_eq(
        o,
        Against::Model,
        &format!("{tag}: every racer's connect() completes"),
        vec![ConnectResult::Connected; RACERS],
        r.connects.clone(),
    );
    check_eq(
        o,
        Against::Model,
        &format!("{tag}: reads of the racers that got a place"),
        vec![None; RACERS - 1],
        errnos.iter().take(RACERS - 1).copied().collect::<Vec<_>>(),
    );
    check_eq(
        o,
        Against::Model,
        &format!("{tag}: read of the racer that overflowed"),
        expect_reset.then_some(Errno::ECONNRESET),
        last,
    );
    check_eq(
        o,
        Against::Model,
        &format!("{tag}: ss Recv-Q afterwards (backlog + 1 queued)"),
        Some(backlog + 1),
        r.queued,
    );
    check_eq(
        o,
        Against::Model,
        &format!("{tag}: RSTs on the wire"),
        usize::from(expect_reset),
        rsts,
    );
    if expect_reset {
        o.claim_check(
            &format!("{tag}: error the overflowing client sees"),
            "ECONNREFUSED",
            format!(
                "connect() succeeded, then read() failed with {}",
                read_text(last)
            ),
            last == Some(Errno::ECONNREFUSED),
        );
    }
}

// ---------------------------------------------------------------------------------------
// backlog.syn-backlog-default

/// The port of the SYN-queue lab's listener.
const SYN_QUEUE_PORT: u16 = 9100;
/// tcp_max_syn_backlog in the SYN-queue lab.
const SMALL_SYN_BACKLOG: usize = 16;
/// SYNs sent to it.
const SYN_QUEUE_CLIENTS: usize = 24;
/// The listener's backlog there (large enough not to limit the SYN queue itself).
const SYN_QUEUE_LISTEN: i32 = 64;

/// Request sockets a listener keeps after `syns` unproven SYNs when syncookies are off:
/// `tcp_conn_request` drops a SYN when `max - qlen < max >> 2`.
fn syn_queue_without_cookies(max: usize, syns: usize) -> usize {
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
struct SynBacklog {
    /// The fresh namespace.
    lab: String,
    /// Its net.ipv4.tcp_max_syn_backlog.
    max_syn_backlog: usize,
    /// Its net.ipv4.tcp_syncookies.
    syncookies: String,
    /// Its net.ipv4.tcp_ehash_entries (6.1+; negative when the table is shared with the
    /// initial namespace), where the kernel has it.
    ehash_entries: Option<i64>,
    /// Its net.ipv4.tcp_max_tw_buckets, read when tcp_ehash_entries is absent.
    max_tw_buckets: Option<usize>,
    /// The SYN-queue namespace.
    queue_lab: String,
    /// The SYNs with tcp_syncookies=0, then =1.
    counts: Vec<SynRecv>,
}

impl SynBacklog {
    /// The ehash size the namespace uses: tcp_ehash_entries, else twice
    /// tcp_max_tw_buckets (also set from it).
    fn ehash(&self) -> usize {
        match (self.ehash_entries, self.max_tw_buckets) {
            (Some(e), _) => e.unsigned_abs() as usize,
            (None, Some(tw)) => 2 * tw,
            (None, None) => 0,
        }
    }
}

/// SYNs sent to a listener whose SYN-ACKs are dropped, and its SYN-RECV sockets.
#[derive(Debug, Serialize, Deserialize)]
struct SynRecv {
    /// The tcp_syncookies set.
    syncookies: u8,
    /// The listener.
    addr: SocketAddrV4,
    /// The ss command line.
    command_line: String,
    /// Its output: one line per SYN-RECV socket.
    stdout: String,
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
fn measure_syn_backlog(_ctx: &Ctx) -> Result<Measured<SynBacklog>> {
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
    Ok(Measured::Observed(SynBacklog {
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
const SYN_BACKLOG: Steps<SynBacklog> = Steps {
    measure: measure_syn_backlog,
    judge: judge_syn_backlog,
};

// ---------------------------------------------------------------------------------------
// backlog.nginx-502

/// nginx's port in the lab.
const NGINX_PORT: u16 = 8080;
/// somaxconn for the nginx lab: listen(128) is capped to this.
const NGINX_SOMAXCONN: u32 = 2;
/// What nginx's error line about the upstream ends with.
const UPSTREAM_ERROR: &str = "while connecting to upstream";

/// nginx's configuration for the lab in `dir`, proxying to the unix socket `upstream`.
fn nginx_conf(dir: &Path, upstream: &Path) -> String {
    let d = dir.display();
    // In a user namespace only root is mapped: nginx's default worker user (nobody)
    // cannot be switched to, so the workers stay root there.
    let user = if netclaim_harness::userns::mode().rootless() {
        "user root root;\n"
    } else {
        ""
    };
    format!(
        "{user}worker_processes 1;
error_log {d}/error.log error;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        location / {{
            proxy_pass http://unix:{};
        }}
    }}
}}
",
        upstream.display()
    )
}

/// Waits until `daemon` accepts connections on `port` (or exits, an error); returns how
/// long that took.
fn wait_for_port(
    ns: &NetNs,
    port: u16,
    daemon: &mut netclaim_harness::command::Daemon,
) -> Result<Duration> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let limit = Duration::from_secs(10);
    let (state, took) = wait::until(&format!("nginx listening on {addr}"), limit, || {
        if let Some(status) = daemon.exited() {
            return Poll::Ready(Err(anyhow::anyhow!(
                "nginx exited at start-up ({status}): {}",
                daemon.log()
            )));
        }
        match client::connect_nonblocking(ns, addr, Duration::from_millis(200)) {
            Ok(c) if c.result == ConnectResult::Connected => Poll::Ready(Ok(())),
            Ok(c) => Poll::Pending(result_text(Some(c.result))),
            Err(e) => Poll::Ready(Err(anyhow::Error::from(e).context("connecting to nginx"))),
        }
    })
    .map_err(|e| anyhow::anyhow!("{e}: {}", daemon.log()))?;
    state?;
    Ok(took)
}

/// What `backlog.nginx-502` measured: curl through nginx to a full unix upstream.
#[derive(Debug, Serialize, Deserialize)]
struct Nginx502 {
    /// The lab's namespace.
    lab: String,
    /// net.core.somaxconn, read back after setting it.
    somaxconn: u32,
    /// The upstream's socket path.
    sock: String,
    /// Connects that filled the upstream's queue.
    filled: usize,
    /// The fill loop's extra connect (`None`: every one completed).
    stop: Option<ConnectResult>,
    /// How long nginx took to listen.
    ready: Duration,
    /// nginx's command line.
    command_line: String,
    /// Its configuration.
    conf: String,
    /// curl's run.
    curl: CommandOutput,
    /// nginx's error log afterwards.
    error_log: String,
    /// The installed nginx's version.
    version: Option<String>,
}

/// `backlog.nginx-502`, measured.
fn measure_nginx(_ctx: &Ctx) -> Result<Measured<Nginx502>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    if let Some(why) = set_or_na(&ns, &[(knob::SOMAXCONN, &NGINX_SOMAXCONN.to_string())])? {
        return not_applicable(why);
    }
    let somaxconn = ns.somaxconn()?;
    let dir = TempDir::new("nginx")?;
    let sock = dir.path().join("up.sock");
    let upstream = UnixNoAcceptListener::bind(&ns, &sock, LISTEN_ARG)
        .with_context(|| format!("binding {}", sock.display()))?;
    let fits = (LISTEN_ARG as u32).min(somaxconn) as usize + 1;
    let filled = fill(fits + 1, || {
        Ok(client::unix_connect_nonblocking(
            &ns,
            upstream.path(),
            Duration::from_secs(1),
        )?)
    })?;

    let conf_text = nginx_conf(dir.path(), &sock);
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, &conf_text).with_context(|| format!("writing {}", conf.display()))?;
    let prefix = format!("{}/", dir.path().display());
    let startup_log = dir.path().join("startup.log");
    let cmd = ToolCommand::new("nginx", Duration::from_secs(30)).args([
        "-e".to_string(),
        startup_log.display().to_string(),
        "-p".into(),
        prefix,
        "-c".into(),
        conf.display().to_string(),
        "-g".into(),
        "daemon off; master_process off;".into(),
    ]);
    let mut daemon = ns.start_daemon(&cmd).context("starting nginx")?;
    let ready = wait_for_port(&ns, NGINX_PORT, &mut daemon)?;

    let url = format!("http://127.0.0.1:{NGINX_PORT}/");
    let curl = ToolCommand::new("curl", Duration::from_secs(15)).args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        url.as_str(),
    ]);
    let out = ns
        .run_command(&curl)
        .with_context(|| format!("running {}", curl.command_line()))?;
    // nginx writes the error line before it answers; should the file lag, wait until it
    // has the line (at most 2 s: without it, the log as it is was measured).
    let error_log_path = dir.path().join("error.log");
    let read_log = || std::fs::read_to_string(&error_log_path).unwrap_or_default();
    let error_log = match wait::until(
        "nginx's upstream error line in error.log",
        Duration::from_secs(2),
        || {
            let log = read_log();
            if log.contains(UPSTREAM_ERROR) {
                Poll::Ready(log)
            } else {
                Poll::Pending(format!("{} bytes without it", log.len()))
            }
        },
    ) {
        Ok((log, _)) => log,
        Err(_) => read_log(),
    };
    let measured = Nginx502 {
        lab: ns.name().to_owned(),
        somaxconn,
        sock: sock.display().to_string(),
        filled: filled.kept.len(),
        stop: filled.stop.as_ref().map(|o| o.result),
        ready,
        command_line: daemon.command_line().to_owned(),
        conf: conf_text,
        curl: out,
        error_log,
        version: lab::version_of("nginx"),
    };
    drop(daemon);
    drop(filled);
    drop(upstream);
    Ok(Measured::Observed(measured))
}

/// `backlog.nginx-502`, judged: HTTP 502 and the EAGAIN line in the error log.
fn judge_nginx(m: &Nginx502, _ctx: &Ctx) -> Outcome {
    let out = &m.curl;
    let error_log = &m.error_log;
    let code = out.stdout.trim().to_owned();
    let fill_errno = m.stop.and_then(errno_of);
    let expected_line = format!(
        "connect() to unix:{} failed ({}: {}) {UPSTREAM_ERROR}",
        m.sock,
        Errno::EAGAIN as i32,
        strerror(Errno::EAGAIN)
    );
    let stated_fragment =
        "failed (11: Resource temporarily unavailable) while connecting to upstream";
    let found = error_log
        .lines()
        .find(|l| l.contains(UPSTREAM_ERROR))
        .map(str::to_owned);

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: net.core.somaxconn={}; upstream {} listen({LISTEN_ARG}) never accepts; \
         {} connects filled it (next: {}); nginx listening after {:.3} s",
        m.lab,
        m.somaxconn,
        m.sock,
        m.filled,
        result_text(m.stop),
        m.ready.as_secs_f64()
    ));
    o.evidence(format!("{}\nnginx.conf:\n{}", m.command_line, m.conf));
    o.evidence(format!("{out}"));
    o.evidence(format!("error.log:\n{}", error_log.trim_end()));
    lab::version_line(&mut o, "nginx", m.version.as_deref());
    o.claimed.value = Some(format!("HTTP 502; log: {stated_fragment}"));
    o.expected.value = Some(format!("HTTP 502; log: {expected_line}"));
    o.expected.errno = Some(Errno::EAGAIN as i32);
    o.observed.exit_code = out.exit_code();
    o.observed.value = Some(format!(
        "HTTP {code}; log: {}",
        found.as_deref().unwrap_or("(no upstream error line)")
    ));
    o.observed.errno = fill_errno.map(|e| e as i32);

    o.claim_check("HTTP status", "502", &code, code == "502");
    o.claim_check(
        "error log line",
        format!("contains {stated_fragment:?}"),
        format!("{:?}", found.as_deref().unwrap_or("")),
        error_log.contains(stated_fragment) && error_log.contains("connect() to unix:"),
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno of the fill loop's extra connect (queue full before nginx)",
        Some(Errno::EAGAIN),
        fill_errno,
    );
    check_eq(
        &mut o,
        Against::Model,
        "curl exit code",
        Some(0),
        out.exit_code(),
    );
    check_eq(&mut o, Against::Model, "HTTP status", "502", code.as_str());
    o.model_check(
        "error log line",
        format!("contains {expected_line:?}"),
        format!("{:?}", found.as_deref().unwrap_or("")),
        error_log.contains(&expected_line),
    );
    o
}

/// `backlog.nginx-502` in two steps.
const NGINX_502: Steps<Nginx502> = Steps {
    measure: measure_nginx,
    judge: judge_nginx,
};

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    vec![
        Claim {
            id: "backlog.capped-by-somaxconn",
            source: seeds::SOMAXCONN,
            statement: "The effective backlog of a listener is min(listen() backlog, net.core.somaxconn).",
            lab: "one namespace with net.core.somaxconn=4; TCP listeners on 127.0.0.1 with listen(128) and listen(2) that never accept",
            action: "nonblocking connects until one does not complete within 300 ms; ss -ltn Send-Q/Recv-Q of each listener",
            needs: Needs { tools: &["ss"] },
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
            needs: Needs { tools: &["ss"] },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::testing::ctx;

    use crate::claim::CheckState;
    use std::os::unix::process::ExitStatusExt;

    /// Judges `m` as a recording of claim `id` is judged: serialised, read back, and the
    /// claim's own judge (with its exhaustion rule).
    fn judged<T: Serialize>(id: &str, m: T) -> Outcome {
        let claim = claims()
            .into_iter()
            .find(|c| c.id == id)
            .expect("the claim exists");
        let value = serde_json::to_value(Measured::Observed(m)).expect("serialisable");
        claim
            .judge(&value, &ctx())
            .expect("a measurement of this claim")
    }

    fn check<'a>(o: &'a Outcome, what: &str) -> &'a crate::claim::Check {
        o.claim_checks
            .iter()
            .chain(&o.model_checks)
            .find(|c| c.what == what)
            .unwrap_or_else(|| panic!("no check {what:?} in {o:#?}"))
    }

    fn fill(listen_arg: i32, completed: usize, recv_q: u32, send_q: u32) -> TcpFill {
        TcpFill {
            listen_arg,
            completed,
            stop: Some(ConnectResult::PollTimedOut),
            ss: Some((recv_q, send_q)),
            ss_text: format!("LISTEN {recv_q} {send_q} 127.0.0.1:9000 0.0.0.0:*"),
        }
    }

    #[test]
    fn a_queue_capped_at_somaxconn_holds() {
        let o = judged(
            "backlog.capped-by-somaxconn",
            SomaxconnCap {
                lab: "t".into(),
                somaxconn: 4,
                runs: vec![fill(128, 5, 5, 4), fill(2, 3, 3, 2)],
            },
        );
        assert_eq!(o.verdict(), Verdict::Holds, "{o:#?}");
        assert!(o.model_agrees(), "{o:#?}");
        let c = check(
            &o,
            "effective backlog of listen(128) with somaxconn=4 (ss Send-Q)",
        );
        assert_eq!(
            (c.expected.as_str(), c.observed.as_str(), c.ok),
            ("4", "4", true)
        );
    }

    #[test]
    fn an_uncapped_queue_is_refuted() {
        let o = judged(
            "backlog.capped-by-somaxconn",
            SomaxconnCap {
                lab: "t".into(),
                somaxconn: 4,
                runs: vec![fill(128, 129, 129, 128), fill(2, 3, 3, 2)],
            },
        );
        assert_eq!(o.verdict(), Verdict::Refuted, "{o:#?}");
        let c = check(
            &o,
            "effective backlog of listen(128) with somaxconn=4 (ss Send-Q)",
        );
        assert_eq!(c.state(), CheckState::Fail);
        assert_eq!(c.observed, "128");
        assert!(!check(&o, "ss Recv-Q of listen(128) (queued)").ok);
    }

    fn full_queue(result: ConnectResult) -> FullQueue {
        let connect = |abort: u8| FullConnect {
            abort,
            port: TCP_PORT + u16::from(abort),
            in_force: abort.to_string(),
            queued: 5,
            result,
            duration: Duration::from_secs(3),
            m: Measurement::default(),
            events: Vec::new(),
        };
        FullQueue {
            lab: "t".into(),
            somaxconn: 4,
            model: ModelInForce::of(&SynModel::new(1, None)),
            connects: vec![connect(0), connect(1)],
            overflows: None,
        }
    }

    #[test]
    fn a_full_queue_that_times_out_refutes_econnrefused() {
        let o = judged(
            "backlog.tcp-full-refused",
            full_queue(ConnectResult::Failed(Errno::ETIMEDOUT)),
        );
        assert_eq!(o.verdict(), Verdict::Refuted, "{o:#?}");
        let what = "tcp_abort_on_overflow=0: errno of the next client's connect()";
        let stated = o.claim_checks.iter().find(|c| c.what == what);
        assert!(stated.is_some_and(|c| !c.ok && c.expected.contains("ECONNREFUSED")));
        let model = o.model_checks.iter().find(|c| c.what == what);
        assert!(model.is_some_and(|c| c.ok), "{o:#?}");
        assert!(o
            .evidence
            .iter()
            .any(|e| e.starts_with("iptables is missing")));
        assert_eq!(o.observed.errno, Some(Errno::ETIMEDOUT as i32));
    }

    #[test]
    fn a_connect_that_ran_out_of_descriptors_is_not_refuted() {
        let o = judged(
            "backlog.tcp-full-refused",
            full_queue(ConnectResult::Failed(Errno::EMFILE)),
        );
        assert_eq!(o.verdict(), Verdict::Error, "{o:#?}");
        assert!(
            o.reason().contains("the measurement is void"),
            "{}",
            o.reason()
        );
    }

    #[test]
    fn an_overflow_at_the_final_ack_with_abort_is_judged_from_the_racers_reads() {
        let mut m = full_queue(ConnectResult::Failed(Errno::ETIMEDOUT));
        m.overflows = Some(vec![AckOverflow {
            abort: 1,
            port: TCP_PORT + 3,
            connects: vec![ConnectResult::Connected; RACERS],
            reads: vec![None, None, Some(Errno::ECONNRESET as i32)],
            events: Vec::new(),
            queued: Some(5),
            unsettled: None,
        }]);
        let o = judged("backlog.tcp-full-refused", m);
        let tag = "overflow at the final ACK, tcp_abort_on_overflow=1";
        let c = check(&o, &format!("{tag}: read of the racer that overflowed"));
        assert!(c.ok, "{c:?}");
        let c = check(&o, &format!("{tag}: error the overflowing client sees"));
        assert_eq!(
            c.observed,
            "connect() succeeded, then read() failed with ECONNRESET"
        );
        assert!(!c.ok);
    }

    fn syn_recv(syncookies: u8, n: usize) -> SynRecv {
        let port = SYN_QUEUE_PORT + u16::from(syncookies);
        SynRecv {
            syncookies,
            addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            command_line: "ss -tnH state syn-recv".into(),
            stdout: (0..n)
                .map(|i| format!("0 0 127.0.0.1:{port} 127.0.0.1:{}\n", 40000 + i))
                .collect(),
        }
    }

    #[test]
    fn a_2048_default_refutes_512_while_the_queue_behaves_as_modelled() {
        let o = judged(
            "backlog.syn-backlog-default",
            SynBacklog {
                lab: "t".into(),
                max_syn_backlog: 2048,
                syncookies: "1".into(),
                ehash_entries: Some(-262_144),
                max_tw_buckets: None,
                queue_lab: "q".into(),
                counts: vec![syn_recv(0, 13), syn_recv(1, 24)],
            },
        );
        assert_eq!(o.verdict(), Verdict::Refuted, "{o:#?}");
        assert!(o.model_agrees(), "{o:#?}");
        assert!(!check(&o, "tcp_max_syn_backlog default").ok);
        let c = check(
            &o,
            "tcp_max_syn_backlog limits the SYN queue with syncookies off and not with them on",
        );
        assert_eq!((c.observed.as_str(), c.ok), ("off: 13; on: 24", true));
    }

    #[test]
    fn ehash_falls_back_to_twice_the_time_wait_buckets() {
        let m = SynBacklog {
            lab: "t".into(),
            max_syn_backlog: 512,
            syncookies: "1".into(),
            ehash_entries: None,
            max_tw_buckets: Some(32_768),
            queue_lab: "q".into(),
            counts: Vec::new(),
        };
        assert_eq!(m.ehash(), 65_536);
    }

    fn nginx(code: &str, error_log: &str) -> Nginx502 {
        Nginx502 {
            lab: "t".into(),
            somaxconn: 2,
            sock: "/tmp/n/up.sock".into(),
            filled: 3,
            stop: Some(ConnectResult::Failed(Errno::EAGAIN)),
            ready: Duration::from_millis(20),
            command_line: "nginx".into(),
            conf: String::new(),
            curl: CommandOutput {
                command_line: "curl".into(),
                netns: "t".into(),
                status: std::process::ExitStatus::from_raw(0),
                stdout: code.into(),
                stderr: String::new(),
                stdout_cut: 0,
                stderr_cut: 0,
                duration: Duration::from_millis(5),
                started: Instant::now(),
                timed_out: false,
            },
            error_log: error_log.into(),
            version: Some("nginx/1.22.1".into()),
        }
    }

    #[test]
    fn nginx_answering_502_with_the_eagain_line_holds() {
        let line = "2026/01/01 00:00:00 [error] 1#1: *2 connect() to unix:/tmp/n/up.sock \
                    failed (11: Resource temporarily unavailable) while connecting to upstream, client: 127.0.0.1";
        let o = judged("backlog.nginx-502", nginx("502", line));
        assert_eq!(o.verdict(), Verdict::Holds, "{o:#?}");
        assert!(o.model_agrees(), "{o:#?}");
        assert!(o
            .evidence
            .iter()
            .any(|e| e == "nginx version: nginx/1.22.1"));
        assert_eq!(o.observed.errno, Some(Errno::EAGAIN as i32));
    }

    #[test]
    fn nginx_without_the_line_is_refuted() {
        let o = judged("backlog.nginx-502", nginx("504", ""));
        assert_eq!(o.verdict(), Verdict::Refuted, "{o:#?}");
        let c = o.claim_checks.iter().find(|c| c.what == "HTTP status");
        assert!(c.is_some_and(|c| c.observed == "504" && !c.ok));
    }

    #[test]
    fn reads_the_counters_of_proc_net() {
        let snmp = "Tcp: RtoAlgorithm PassiveOpens OutRsts\nTcp: 1 7 2\n\
                    TcpExt: ListenOverflows ListenDrops\nTcpExt: 3 4\n";
        let c = parse_counters(snmp);
        assert_eq!(counter(&c, "Tcp", "PassiveOpens"), 7);
        assert_eq!(counter(&c, "TcpExt", "ListenDrops"), 4);
        assert_eq!(counter(&c, "Tcp", "EstabResets"), 0);
        let base = Dealt {
            opened: 7,
            overflowed: 3,
            resets_sent: 2,
            resets_received: 2,
        };
        let queued_one = Dealt { opened: 8, ..base };
        assert!(queued_one.settled_since(&base, 1));
        let reset_in_flight = Dealt {
            overflowed: 4,
            resets_sent: 3,
            ..base
        };
        assert!(!reset_in_flight.settled_since(&base, 1));
    }

    #[test]
    fn syn_queue_keeps_three_quarters_without_cookies() {
        assert_eq!(syn_queue_without_cookies(16, 24), 13);
        assert_eq!(syn_queue_without_cookies(8, 24), 7);
        assert_eq!(syn_queue_without_cookies(512, 10), 10);
    }
}
