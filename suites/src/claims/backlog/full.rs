//! `backlog.tcp-full-refused`: a client's connect() to a full accept queue, and overflows at
//! the final ACK under tcp_abort_on_overflow.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netclaim_fixtures::client::{self, ConnectOutcome, ConnectResult};
use netclaim_fixtures::server::NoAcceptListener;
use netclaim_harness::capture::{self, TcpEvent};
use netclaim_harness::model::SynModel;
use netclaim_harness::sysctl::knob;
use netclaim_harness::wait::{self, Poll};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{
    counter, counters, errno_of, listener_queue, not_applicable, result_text, set_or_na, settle,
    until_queued, LISTEN_ARG, SMALL_SOMAXCONN, TCP_POLL, TCP_PORT,
};
use crate::claim::{Checked, Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::timing::{self, check_schedule};
use crate::measure::labs::model_in;
use crate::record::attempt::Attempt;
use crate::recording::too_many_syns;
use crate::text::describe_model;

/// What `backlog.tcp-full-refused` measured: a client's connect() to a full accept queue
/// under each tcp_abort_on_overflow, then (with iptables) overflows at the final ACK.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FullQueue {
    /// The lab's namespace.
    pub(super) lab: String,
    /// net.core.somaxconn, read back after setting it.
    pub(super) somaxconn: u32,
    /// The SYN-schedule sysctls in force.
    pub(super) model: ModelInForce,
    /// One connect per tcp_abort_on_overflow (0, then 1).
    pub(super) connects: Vec<FullConnect>,
    /// The overflow-at-the-final-ACK phases (0, then 1); `None`: iptables is missing, so
    /// they were not run.
    pub(super) overflows: Option<Vec<AckOverflow>>,
}

/// The inputs of the SYN model, as read in the lab ([`SynModel`] is not recorded as is).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ModelInForce {
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
    pub(super) fn of(m: &SynModel) -> Self {
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
pub(super) struct FullConnect {
    /// The tcp_abort_on_overflow set.
    pub(super) abort: u8,
    /// The listener's port.
    pub(super) port: u16,
    /// tcp_abort_on_overflow as read back.
    pub(super) in_force: String,
    /// Connections that completed while filling the queue.
    pub(super) queued: usize,
    /// How the blocking connect() ended.
    pub(super) result: ConnectResult,
    /// How long it took.
    pub(super) duration: Duration,
    /// The connect() as measured, for its timing checks.
    pub(super) m: Attempt,
    /// Handshake packets on the listener's port.
    pub(super) events: Vec<TcpEvent>,
}

/// Fills the accept queue of a `listen(listen_arg)` listener on `port` with
/// `queued_expected` connections, then makes one blocking connect() to it under capture.
fn connect_to_full(
    ns: &NetNs,
    port: u16,
    listen_arg: i32,
    queued_expected: usize,
) -> Result<(usize, ConnectOutcome, Attempt, Vec<TcpEvent>)> {
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
    let m = Attempt::client(&events, port, capture_started, started, ended);
    Ok((kept.len(), c, m, events))
}

/// `backlog.tcp-full-refused`, measured.
fn measure_full(_ctx: &Ctx) -> Result<Observation<FullQueue>> {
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
    let model = model_in(&ns)?;

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
    Ok(Observation::Observed(FullQueue {
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
        describe_model(&model)
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
        o.timelines.push(timing::timeline(
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
pub(super) const FULL_REFUSED: Checked<FullQueue> = Checked {
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
pub(super) const RACERS: usize = 3;

/// What the racers saw.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct AckOverflow {
    /// The tcp_abort_on_overflow set.
    pub(super) abort: u8,
    /// The listener's port.
    pub(super) port: u16,
    /// Each racer's connect() result.
    pub(super) connects: Vec<ConnectResult>,
    /// Each racer's read() after its write: the errno, `None` = no data yet (EAGAIN).
    pub(super) reads: Vec<Option<i32>>,
    /// Packets on the listener's port from the racers' connects on.
    pub(super) events: Vec<TcpEvent>,
    /// The listener's Recv-Q afterwards (connections queued; sock_diag).
    pub(super) queued: Option<u32>,
    /// Why the lab stopped waiting for a racer's segment to be dealt with, if it did
    /// (the kernel neither queued it nor counted an overflow).
    pub(super) unsettled: Option<String>,
}

/// The listener-side counters that say a racer's segment was dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dealt {
    /// Children created (Tcp PassiveOpens): a place in the queue.
    pub(super) opened: u64,
    /// Overflows at the final ACK (TcpExt ListenOverflows).
    pub(super) overflowed: u64,
    /// Resets sent (Tcp OutRsts).
    pub(super) resets_sent: u64,
    /// Established connections reset (Tcp EstabResets): resets received.
    pub(super) resets_received: u64,
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
    pub(super) fn settled_since(&self, base: &Self, segments: u64) -> bool {
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
