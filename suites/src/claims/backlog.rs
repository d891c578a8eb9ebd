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
use netclaim_fixtures::server::{NoAcceptListener, UnixNoAcceptListener};
use netclaim_harness::capture;
use netclaim_harness::command::ToolCommand;
use netclaim_harness::sysctl::knob;
use netclaim_harness::tmp::TempDir;
use netclaim_harness::NetNs;
use nix::errno::Errno;
use socket2::{Domain, SockAddr, Socket, Type};

use super::seeds;
use crate::claim::{Claim, Ctx, Figures, Needs, OneStep, Outcome, Procedure};
use crate::lab::{self, check_eq, check_schedule, Against, Measurement};

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

/// The C library's message for `e` (what nginx prints), e.g. "Resource temporarily unavailable".
fn strerror(e: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e as i32).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Sets sysctls in `ns`, turning an absent or rejected knob into a not-applicable outcome.
fn set_or_na(ns: &NetNs, pairs: &[(&str, &str)]) -> Result<Option<Outcome>> {
    match ns.set_sysctls(pairs) {
        Ok(()) => Ok(None),
        Err(e) => match lab::not_applicable(&e) {
            Some(o) => Ok(Some(o)),
            None => Err(e).with_context(|| format!("setting {pairs:?} in {}", ns.name())),
        },
    }
}

/// Connections made until the first one that did not complete.
struct Fill {
    /// Completed connections, kept open so they stay queued.
    kept: Vec<ConnectOutcome>,
    /// The first attempt that did not complete (`None` when the limit was reached).
    stop: Option<ConnectOutcome>,
}

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

fn result_text(o: Option<&ConnectOutcome>) -> String {
    match o.map(|o| o.result) {
        None => "(limit reached, every connect completed)".into(),
        Some(ConnectResult::Connected) => "connected".into(),
        Some(ConnectResult::PollTimedOut) => "still in progress at the poll timeout".into(),
        Some(ConnectResult::Failed(e)) => format!("{e:?} ({})", strerror(e)),
    }
}

// ---------------------------------------------------------------------------------------
// backlog.unix-eagain

// ---------------------------------------------------------------------------------------
// backlog.capped-by-somaxconn

/// One TCP listener filled until a connect no longer completes.
struct TcpFillResult {
    listen_arg: i32,
    backlog: u32,
    completed: usize,
    stop: String,
    ss: Option<(u32, u32)>,
    ss_text: String,
}

fn tcp_fill(ns: &NetNs, port: u16, listen_arg: i32, somaxconn: u32) -> Result<TcpFillResult> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let listener = NoAcceptListener::bind(ns, addr, listen_arg)
        .with_context(|| format!("listening on {addr}"))?;
    let filled = fill(FILL_LIMIT, || {
        Ok(client::connect_nonblocking(ns, listener.addr(), TCP_POLL)?)
    })?;
    let port_text = format!(":{port}");
    let (ss, ss_text) = lab::ss_listener(
        ns,
        &["-ltnH"],
        |l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|a| a.ends_with(&port_text))
        },
        1,
    )?;
    Ok(TcpFillResult {
        listen_arg,
        backlog: (listen_arg as u32).min(somaxconn),
        completed: filled.kept.len(),
        stop: result_text(filled.stop.as_ref()),
        ss,
        ss_text,
    })
}

fn capped_by_somaxconn(_ctx: &Ctx) -> Result<Outcome> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    if let Some(na) = set_or_na(&ns, &[(knob::SOMAXCONN, &SMALL_SOMAXCONN.to_string())])? {
        return Ok(na);
    }
    let somaxconn = ns.somaxconn()?;
    let runs = [
        tcp_fill(&ns, TCP_PORT, LISTEN_ARG, somaxconn)?,
        tcp_fill(&ns, TCP_PORT + 1, 2, somaxconn)?,
    ];
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: net.core.somaxconn={somaxconn} (read back); TCP listeners on 127.0.0.1 that never accept; \
         nonblocking connects, each given {} ms to complete",
        ns.name(),
        TCP_POLL.as_millis()
    ));
    let mut claimed = Vec::new();
    let mut observed = Vec::new();
    let mut expected = Vec::new();
    for r in &runs {
        let stated = (r.listen_arg as u32).min(somaxconn);
        let send_q = r.ss.map(|(_, s)| s);
        o.evidence(format!(
            "listen({}): {} connects completed, the next: {}\n{}",
            r.listen_arg, r.completed, r.stop, r.ss_text
        ));
        claimed.push(format!("listen({}) → {stated}", r.listen_arg));
        expected.push(format!(
            "listen({}) → backlog {}, {} queued",
            r.listen_arg,
            r.backlog,
            r.backlog + 1
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
            Some(r.backlog),
            send_q,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!(
                "connections completed before the queue is full, listen({}) (backlog + 1)",
                r.listen_arg
            ),
            r.backlog as usize + 1,
            r.completed,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("ss Recv-Q of listen({}) (queued)", r.listen_arg),
            Some(r.backlog + 1),
            r.ss.map(|(q, _)| q),
        );
    }
    o.claimed.value = Some(claimed.join("; "));
    o.expected.value = Some(expected.join("; "));
    o.observed.value = Some(observed.join("; "));
    Ok(o)
}

// ---------------------------------------------------------------------------------------
// backlog.tcp-full-refused

/// One connect to a full TCP listener, with the packets it caused.
struct FullConnect {
    queued: usize,
    errno: Option<Errno>,
    duration: Duration,
    syn_times: Vec<Duration>,
    /// The connect() as measured, for its timing checks.
    m: Measurement,
    rsts: usize,
    timeline: String,
}

fn connect_to_full(
    ns: &NetNs,
    port: u16,
    listen_arg: i32,
    queued_expected: usize,
) -> Result<FullConnect> {
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
    let cap = ns.capture_tcp(port).context("starting the capture")?;
    let capture_started = cap.started();
    let started = Instant::now();
    let c = client::connect_blocking(ns, listener.addr())?;
    let ended = Instant::now();
    let events = cap.finish().context("finishing the capture")?;
    let rsts = events.iter().filter(|e| e.flags.is_rst()).count();
    let m = Measurement::client(&events, port, capture_started, started, ended);
    Ok(FullConnect {
        queued: kept.len(),
        errno: c.errno(),
        duration: c.duration,
        syn_times: capture::syn_times(&events, port),
        m,
        rsts,
        timeline: if events.is_empty() {
            "(no handshake packets)".into()
        } else {
            capture::timeline(&events)
        },
    })
}

fn tcp_full_refused(ctx: &Ctx) -> Result<Outcome> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    if let Some(na) = set_or_na(
        &ns,
        &[
            (knob::SOMAXCONN, &SMALL_SOMAXCONN.to_string()),
            (knob::TCP_SYN_RETRIES, "1"),
            (knob::TCP_ABORT_ON_OVERFLOW, "0"),
        ],
    )? {
        return Ok(na);
    }
    let somaxconn = ns.somaxconn()?;
    let backlog = (LISTEN_ARG as u32).min(somaxconn);
    let queued = backlog as usize + 1;
    let model = lab::model_in(&ns)?;
    let schedule = model.schedule();

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: net.core.somaxconn={somaxconn}, listen({LISTEN_ARG}) → backlog {backlog}, {queued} \
         connections fill the accept queue; in force: {}",
        ns.name(),
        lab::describe_model(&model)
    ));
    o.claimed.errno = Some(Errno::ECONNREFUSED as i32);
    o.expected = Figures::default()
        .duration(schedule.give_up)
        .syn_times(&schedule.send_times);
    o.expected.errno = Some(Errno::ETIMEDOUT as i32);

    for (abort, port) in [(0u8, TCP_PORT), (1, TCP_PORT + 1)] {
        if abort == 1 {
            if let Some(na) = set_or_na(&ns, &[(knob::TCP_ABORT_ON_OVERFLOW, "1")])? {
                return Ok(na);
            }
        }
        let in_force = ns.sysctl(knob::TCP_ABORT_ON_OVERFLOW)?;
        let r = connect_to_full(&ns, port, LISTEN_ARG, queued)?;
        let errno_text = r.errno.map_or("connected".into(), |e| format!("{e:?}"));
        o.evidence(format!(
            "tcp_abort_on_overflow={in_force}: {} connections queued; blocking connect() to 127.0.0.1:{port} \
             → {errno_text} after {:.3} s, {} SYN, {} RST\n--- wire ---\n{}",
            r.queued,
            r.duration.as_secs_f64(),
            r.syn_times.len(),
            r.rsts,
            r.timeline
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
            r.errno,
        );
        // The SYN is dropped while the queue is full whatever tcp_abort_on_overflow says,
        // so the client runs its SYN schedule out.
        check_eq(
            &mut o,
            Against::Model,
            &format!("{tag}: errno of the next client's connect()"),
            Some(Errno::ETIMEDOUT),
            r.errno,
        );
        check_eq(
            &mut o,
            Against::Model,
            &format!("{tag}: RSTs on the wire"),
            0,
            r.rsts,
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
            &r.syn_times,
            &schedule,
            Some(r.duration),
        ));
        if abort == 0 {
            o.observed = Figures::default()
                .duration(r.duration)
                .syn_times(&r.syn_times);
            o.observed.errno = r.errno.map(|e| e as i32);
            o.observed.value = Some(format!("{} RST", r.rsts));
        } else {
            o.observed.value = Some(format!(
                "{}; with tcp_abort_on_overflow=1: {errno_text} after {:.3} s, {} RST",
                o.observed.value.take().unwrap_or_default(),
                r.duration.as_secs_f64(),
                r.rsts
            ));
        }
    }
    if netclaim_harness::firewall::available() {
        for (abort, port) in [(0u8, TCP_PORT + 2), (1, TCP_PORT + 3)] {
            ack_overflow_phase(&mut o, &ns, port, abort, backlog)?;
        }
    } else {
        o.evidence(
            "iptables is missing: the overflow-at-final-ACK phase (where tcp_abort_on_overflow acts) was not run",
        );
    }
    Ok(o)
}

/// How many clients race for the last places of the queue in the final-ACK phase.
const RACERS: usize = 3;

/// What the racers saw.
struct AckOverflow {
    /// Each racer's connect() result.
    connects: Vec<ConnectResult>,
    /// Each racer's read() after its first write: `None` = no data yet (EAGAIN).
    reads: Vec<Option<Errno>>,
    rsts: usize,
    timeline: String,
    /// ss Recv-Q of the listener afterwards (connections queued).
    queued: Option<u32>,
}

/// The accept queue overflows when the final ACK (here: the first data segment) arrives,
/// not at the SYN: `backlog − 1` connections are queued, the racers' handshakes complete
/// on the client side while their pure ACKs are dropped (iptables), then each racer writes
/// 200 bytes, which completes its handshake on the server. The first two fill the queue
/// (`backlog + 1`), the third overflows in `tcp_check_req`.
fn ack_overflow(ns: &NetNs, port: u16, backlog: u32) -> Result<AckOverflow> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let listener = NoAcceptListener::bind(ns, addr, LISTEN_ARG)
        .with_context(|| format!("listening on {addr}"))?;
    let mut kept = Vec::new();
    for _ in 1..backlog {
        let c = client::connect_nonblocking(ns, listener.addr(), TCP_POLL)?;
        if c.result != ConnectResult::Connected {
            bail!("pre-filling {addr}: {}", result_text(Some(&c)));
        }
        kept.push(c);
    }
    ns.iptables_append(
        "filter",
        "INPUT",
        &format!("-p tcp --dport {port} --tcp-flags ALL ACK -m length --length 0:100 -j DROP"),
    )
    .context("dropping the racers' pure ACKs")?;
    let cap = ns.capture_tcp(port).context("starting the capture")?;
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        racers.push(client::connect_nonblocking(ns, listener.addr(), TCP_POLL)?);
    }
    for r in &racers {
        if let Some(s) = &r.socket {
            s.send(&[b'x'; 200]).context("writing from a racer")?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let events = cap.finish().context("finishing the capture")?;
    let reads = racers
        .iter()
        .map(|r| {
            let s = r.socket.as_ref()?;
            let mut buf = [0u8; 16];
            match std::io::Read::read(&mut &*s, &mut buf) {
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(e) => Some(Errno::from_raw(e.raw_os_error().unwrap_or(0))),
            }
        })
        .collect();
    let port_text = format!(":{port}");
    let (ss, _) = lab::ss_listener(
        ns,
        &["-ltnH"],
        |l| {
            l.split_whitespace()
                .nth(3)
                .is_some_and(|a| a.ends_with(&port_text))
        },
        1,
    )?;
    Ok(AckOverflow {
        queued: ss.map(|(q, _)| q),
        connects: racers.iter().map(|r| r.result).collect(),
        reads,
        rsts: events.iter().filter(|e| e.flags.is_rst()).count(),
        timeline: capture::timeline(&events),
    })
}

fn read_text(r: Option<Errno>) -> String {
    r.map_or("EAGAIN (no data, connection alive)".into(), |e| {
        format!("{e:?}")
    })
}

fn ack_overflow_phase(
    o: &mut Outcome,
    ns: &NetNs,
    port: u16,
    abort: u8,
    backlog: u32,
) -> Result<()> {
    ns.set_sysctl(knob::TCP_ABORT_ON_OVERFLOW, &abort.to_string())
        .context("setting tcp_abort_on_overflow")?;
    let r = ack_overflow(ns, port, backlog)?;
    let tag = format!("overflow at the final ACK, tcp_abort_on_overflow={abort}");
    let reads: Vec<String> = r.reads.iter().map(|e| read_text(*e)).collect();
    o.evidence(format!(
        "{tag}: {} connections queued, {RACERS} racers' pure ACKs dropped, then each writes 200 bytes: \
         connect() {:?}; read() after the write: [{}]; {} RST\n--- wire ---\n{}",
        backlog - 1,
        r.connects,
        reads.join(", "),
        r.rsts,
        r.timeline
    ));
    let expect_reset = abort == 1;
    let last = r.reads.last().copied().flatten();
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
        r.reads[..RACERS - 1].to_vec(),
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
        r.rsts,
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
    Ok(())
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

/// Sends `n` SYNs from nonblocking sockets that stay open (their SYN-ACKs are dropped),
/// then counts the listener's SYN-RECV request sockets with ss.
fn syn_recv_count(ns: &NetNs, syncookies: u8) -> Result<(usize, String)> {
    ns.set_sysctl(knob::TCP_SYNCOOKIES, &syncookies.to_string())
        .context("setting tcp_syncookies")?;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, SYN_QUEUE_PORT + u16::from(syncookies));
    let _listener = NoAcceptListener::bind(ns, addr, SYN_QUEUE_LISTEN)
        .with_context(|| format!("listening on {addr}"))?;
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
    // Let softirq processing settle; the first retransmissions come after 1 s.
    std::thread::sleep(Duration::from_millis(100));
    let filter = format!("sport = :{}", addr.port());
    let cmd = ToolCommand::new("ss", Duration::from_secs(5)).args([
        "-tnH",
        "state",
        "syn-recv",
        filter.as_str(),
    ]);
    let out = ns
        .run_command(&cmd)
        .with_context(|| format!("running {}", cmd.command_line()))?;
    let count = out.stdout.lines().filter(|l| !l.trim().is_empty()).count();
    drop(clients);
    Ok((
        count,
        format!(
            "tcp_syncookies={syncookies}: {SYN_QUEUE_CLIENTS} SYNs to {addr} (SYN-ACKs dropped) → {count} SYN-RECV\n$ {}\n{}",
            cmd.command_line(),
            out.stdout.trim_end()
        ),
    ))
}

fn syn_backlog_default(_ctx: &Ctx) -> Result<Outcome> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let value: usize = ns
        .sysctl(knob::TCP_MAX_SYN_BACKLOG)?
        .parse()
        .context("parsing tcp_max_syn_backlog")?;
    let syncookies = ns.sysctl(knob::TCP_SYNCOOKIES)?;
    // The ehash size the namespace uses: tcp_ehash_entries (6.1+, negative when shared
    // with the initial namespace), else twice tcp_max_tw_buckets (also set from it).
    let ehash = match ns.sysctl_opt("net.ipv4.tcp_ehash_entries")? {
        Some(v) => v
            .parse::<i64>()
            .context("parsing tcp_ehash_entries")?
            .unsigned_abs() as usize,
        None => {
            2 * ns
                .sysctl("net.ipv4.tcp_max_tw_buckets")?
                .parse::<usize>()
                .context("parsing tcp_max_tw_buckets")?
        }
    };
    let predicted = (ehash / 128).max(128);

    let mut o = Outcome::default();
    o.evidence(format!(
        "fresh namespace {}: tcp_max_syn_backlog={value}, tcp_syncookies={syncookies}, TCP ehash \
         buckets={ehash} → tcp_sk_init sets max(128, {ehash}/128) = {predicted}",
        ns.name()
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

    // Does the knob only matter with syncookies off? Set it small and count request socks.
    let lab = NetNs::new().context("creating the SYN-queue namespace")?;
    if let Some(na) = set_or_na(
        &lab,
        &[(knob::TCP_MAX_SYN_BACKLOG, &SMALL_SYN_BACKLOG.to_string())],
    )? {
        return Ok(na);
    }
    for port in [SYN_QUEUE_PORT, SYN_QUEUE_PORT + 1] {
        lab.iptables_append(
            "filter",
            "INPUT",
            &format!("-p tcp --sport {port} --tcp-flags SYN,ACK SYN,ACK -j DROP"),
        )
        .context("dropping SYN-ACKs")?;
    }
    let (off, off_text) = syn_recv_count(&lab, 0)?;
    let (on, on_text) = syn_recv_count(&lab, 1)?;
    let want_off = syn_queue_without_cookies(SMALL_SYN_BACKLOG, SYN_QUEUE_CLIENTS);
    let want_on = SYN_QUEUE_CLIENTS.min(SYN_QUEUE_LISTEN as usize + 1);
    o.evidence(format!(
        "lab {}: tcp_max_syn_backlog={SMALL_SYN_BACKLOG}, listen({SYN_QUEUE_LISTEN}), SYN-ACKs dropped so \
         requests stay queued\n{off_text}\n{on_text}",
        lab.name()
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
    Ok(o)
}

// ---------------------------------------------------------------------------------------
// backlog.nginx-502

/// nginx's port in the lab.
const NGINX_PORT: u16 = 8080;
/// somaxconn for the nginx lab: listen(128) is capped to this.
const NGINX_SOMAXCONN: u32 = 2;

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

fn wait_for_port(
    ns: &NetNs,
    port: u16,
    daemon: &mut netclaim_harness::command::Daemon,
) -> Result<Duration> {
    let start = Instant::now();
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(status) = daemon.exited() {
            bail!("nginx exited at start-up ({status}): {}", daemon.log());
        }
        let c = client::connect_nonblocking(ns, addr, Duration::from_millis(200))?;
        if c.result == ConnectResult::Connected {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "nginx did not listen on {addr} within 10 s: {}",
        daemon.log()
    )
}

fn nginx_502(_ctx: &Ctx) -> Result<Outcome> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    if let Some(na) = set_or_na(&ns, &[(knob::SOMAXCONN, &NGINX_SOMAXCONN.to_string())])? {
        return Ok(na);
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
    let fill_errno = filled.stop.as_ref().and_then(|o| o.errno());

    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir.path(), &sock))
        .with_context(|| format!("writing {}", conf.display()))?;
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
    // nginx writes the error line before it answers; give the file a moment anyway.
    std::thread::sleep(Duration::from_millis(50));
    let error_log_path = dir.path().join("error.log");
    let error_log = std::fs::read_to_string(&error_log_path).unwrap_or_default();
    let code = out.stdout.trim().to_owned();

    let expected_line = format!(
        "connect() to unix:{} failed ({}: {}) while connecting to upstream",
        sock.display(),
        Errno::EAGAIN as i32,
        strerror(Errno::EAGAIN)
    );
    let stated_fragment =
        "failed (11: Resource temporarily unavailable) while connecting to upstream";
    let found = error_log
        .lines()
        .find(|l| l.contains("while connecting to upstream"))
        .map(str::to_owned);

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: net.core.somaxconn={somaxconn}; upstream {} listen({LISTEN_ARG}) never accepts; \
         {} connects filled it (next: {}); nginx listening after {:.3} s",
        ns.name(),
        sock.display(),
        filled.kept.len(),
        result_text(filled.stop.as_ref()),
        ready.as_secs_f64()
    ));
    o.evidence(format!(
        "{}\nnginx.conf:\n{}",
        daemon.command_line(),
        nginx_conf(dir.path(), &sock)
    ));
    o.evidence(format!("{out}"));
    o.evidence(format!("error.log:\n{}", error_log.trim_end()));
    lab::version_evidence(&mut o, "nginx");
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
    drop(daemon);
    drop(filled);
    drop(upstream);
    Ok(o)
}

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
            run: Procedure::Rust(&OneStep(capped_by_somaxconn)),
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
            run: Procedure::Rust(&OneStep(tcp_full_refused)),
        },
        Claim {
            id: "backlog.syn-backlog-default",
            source: seeds::SOMAXCONN,
            statement: "net.ipv4.tcp_max_syn_backlog (the SYN queue size) defaults to 512 and only takes effect when syncookies are disabled.",
            lab: "a fresh namespace (defaults); a second one with tcp_max_syn_backlog=16 and the listener's SYN-ACKs dropped",
            action: "read the defaults; send 24 SYNs with tcp_syncookies=0 and =1 and count SYN-RECV request sockets with ss",
            needs: Needs { tools: &["ss", "iptables"] },
            estimate: 2 * S,
            run: Procedure::Rust(&OneStep(syn_backlog_default)),
        },
        Claim {
            id: "backlog.nginx-502",
            source: seeds::SOMAXCONN,
            statement: "nginx proxying to a unix-socket upstream whose backlog is full logs \"connect() to unix:… failed (11: Resource temporarily unavailable) while connecting to upstream\" and answers 502.",
            lab: "one namespace with net.core.somaxconn=2; a unix upstream with listen(128) that never accepts, filled; nginx (master_process off) on 127.0.0.1:8080 with proxy_pass http://unix:…",
            action: "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/; read nginx's error log",
            needs: Needs { tools: &["nginx", "curl"] },
            estimate: 3 * S,
            run: Procedure::Rust(&OneStep(nginx_502)),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_queue_keeps_three_quarters_without_cookies() {
        assert_eq!(syn_queue_without_cookies(16, 24), 13);
        assert_eq!(syn_queue_without_cookies(8, 24), 7);
        assert_eq!(syn_queue_without_cookies(512, 10), 10);
    }
}
