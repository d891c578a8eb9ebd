//! Ephemeral port exhaustion and errno 99 (seed 001).
//!
//! Every claim shrinks `net.ipv4.ip_local_port_range` inside its own namespace to a few
//! ports, so "every port in use" takes a handful of connections instead of 28 232. The
//! connections go to a listener on 127.0.0.1:8080, outside the range. The number of
//! connections the kernel can make is predicted from the range read back: connect()
//! (`__inet_hash_connect`) scans `high + 1 - low` ports rounded down to an even number
//! when that is more than one, both parities, skipping `ip_local_reserved_ports`.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netclaim_fixtures::client::{self, ConnectResult};
use netclaim_fixtures::ports::{self, state, Exhaustion, Listener, TcpEntry, TimeWaitFill};
use netclaim_harness::command::{which, CommandOutput, ToolCommand};
use netclaim_harness::sysctl::knob;
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::seeds;
use crate::catalog::knobs::or_na;
use crate::claim::{Claim, Ctx, Figures, Measured, Needs, Outcome, Procedure, Steps};
use crate::lab::{self, check_eq, Against, Shown, ToolRun};
use crate::models::ports::usable_ports;

/// Where the lab listener listens (outside every range the claims set).
pub(crate) const LISTEN_PORT: u16 = 8080;
/// A second destination port, to show that ports are per destination.
pub(crate) const OTHER_PORT: u16 = 8081;
/// The shrunken range most claims use: four ports.
pub(crate) const SMALL_RANGE: (u16, u16) = (40000, 40003);

/// `127.0.0.1:port`.
pub(crate) fn loopback(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new([127, 0, 0, 1].into(), port)
}

/// The range in force after setting `range`, and the number of usable ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RangeInForce {
    /// Low and high, read back.
    pub low: u16,
    /// High, read back.
    pub high: u16,
    /// `ip_local_reserved_ports`, read back.
    pub reserved: String,
    /// What connect() can use at most.
    pub usable: usize,
    /// What connect() can use at least (less than `usable` for odd-sized ranges).
    pub usable_min: usize,
}

impl RangeInForce {
    /// Evidence text.
    pub fn describe(&self) -> String {
        let count = if self.usable_min == self.usable {
            self.usable.to_string()
        } else {
            format!(
                "{} or {} (odd-sized range: each connect() scans an even number of ports)",
                self.usable_min, self.usable
            )
        };
        format!(
            "ip_local_port_range = {} {} (read back), ip_local_reserved_ports = {:?}: connect() can use {count} port(s)",
            self.low, self.high, self.reserved
        )
    }
}

/// Sets the port range of `ns` and reads back what is in force.
pub(crate) fn set_range(
    ns: &NetNs,
    (low, high): (u16, u16),
) -> netclaim_harness::Result<RangeInForce> {
    ns.set_ip_local_port_range(low, high)?;
    let (low, high) = ns.ip_local_port_range()?;
    let reserved = ns
        .sysctl_opt("net.ipv4.ip_local_reserved_ports")?
        .unwrap_or_default();
    let (usable_min, usable) = usable_ports(low, high, &reserved);
    Ok(RangeInForce {
        low,
        high,
        usable,
        usable_min,
        reserved,
    })
}

/// The socket table of a lab namespace as read at one moment, with what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Table {
    /// What the moment was ("with every port held").
    pub title: String,
    /// The namespace it was read in.
    pub lab: String,
    /// Its sockets.
    pub rows: Vec<TcpEntry>,
}

impl Table {
    /// Reads the socket table of `ns`.
    pub fn read(ns: &NetNs, title: &str) -> Result<Self> {
        let table = ports::tcp_table(ns).context("reading /proc/thread-self/net/tcp")?;
        Ok(Self {
            title: title.to_owned(),
            lab: ns.name().to_owned(),
            rows: table,
        })
    }

    /// The sockets.
    pub fn entries(&self) -> &[TcpEntry] {
        &self.rows
    }

    /// The table with a per-state summary, as evidence.
    pub fn text(&self) -> String {
        let table = self.entries();
        format!(
            "{} (/proc/thread-self/net/tcp in {}): {:?}\n{}",
            self.title,
            self.lab,
            ports::state_counts(table),
            ports::table_text(table)
        )
    }
}

/// Connections held open, as recorded: their local ports and how the next connect()
/// ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Held {
    /// Local ports, in connect order.
    pub ports: Vec<u16>,
    /// The errno (number) of the first failed connect, if one failed.
    pub failure: Option<i32>,
    /// Whether a connect neither completed nor failed in time.
    pub stalled: bool,
}

impl Held {
    /// The record of `ex`.
    pub fn of(ex: &Exhaustion) -> Self {
        Self {
            ports: ex.ports.clone(),
            failure: ex.failure.map(|e| e as i32),
            stalled: ex.stalled,
        }
    }

    /// The errno of the failed connect.
    pub fn failure(&self) -> Option<Errno> {
        self.failure.map(Errno::from_raw)
    }
}

/// Short client-closed connections as recorded: their ports, how the next connect()
/// ended, and when they had all reached TIME_WAIT.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Filled {
    /// Client ports, in order.
    pub ports: Vec<u16>,
    /// The errno (number) of the connect that failed, if one did.
    pub failure: Option<i32>,
    /// How long after the last close every port was in TIME_WAIT (`None`: not within
    /// the fixtures' limit).
    pub settled: Option<Duration>,
}

impl Filled {
    /// The record of `fill`.
    pub fn of(fill: &TimeWaitFill) -> Self {
        Self {
            ports: fill.ports.clone(),
            failure: fill.failure.map(|e| e as i32),
            settled: fill.settled,
        }
    }

    /// The errno of the failed connect.
    pub fn failure(&self) -> Option<Errno> {
        self.failure.map(Errno::from_raw)
    }

    /// "all in TIME_WAIT 3 ms after the last close", or that they were not.
    pub fn settled_text(&self) -> String {
        TimeWaitFill {
            settled: self.settled,
            ..TimeWaitFill::default()
        }
        .settled_text()
    }
}

/// `net.ipv4.tcp_tw_reuse_delay` in force in `ns`, in ms (`None`: the kernel has no such
/// knob, before 6.13).
pub(crate) fn tw_reuse_delay(ns: &NetNs) -> Result<Option<u64>> {
    ns.sysctl_opt("net.ipv4.tcp_tw_reuse_delay")?
        .map(|ms| {
            ms.trim()
                .parse()
                .with_context(|| format!("tcp_tw_reuse_delay is not a number of ms: {ms:?}"))
        })
        .transpose()
}

/// How long a TIME_WAIT socket must age before `tcp_tw_reuse` may take it over, and why,
/// for the `tcp_tw_reuse_delay` in force ([`tw_reuse_delay`]).
///
/// `tcp_twsk_unique()` reuses a TIME_WAIT only when it recorded a peer timestamp
/// (`tw_ts_recent_stamp != 0`, i.e. timestamps were negotiated) and, since Linux 6.13,
/// `tcp_clock_ms() > tw_entry_stamp + tcp_tw_reuse_delay` (ms, default 1000); before that,
/// `ktime_get_seconds() > tw_ts_recent_stamp + 1`, i.e. 1 to 2 s.
pub(crate) fn tw_reuse_age(delay_ms: Option<u64>) -> (Duration, String) {
    match delay_ms {
        Some(ms) => (
            Duration::from_millis(ms + 1),
            format!("tcp_tw_reuse_delay = {ms} ms: a TIME_WAIT becomes reusable {ms}..{} ms after it was entered", ms + 1),
        ),
        None => (
            Duration::from_secs(2),
            "no tcp_tw_reuse_delay (kernel < 6.13): a TIME_WAIT becomes reusable when the seconds clock is past its last timestamp + 1 s, i.e. 1..2 s after it was entered".into(),
        ),
    }
}

fn errno_figure(e: Option<Errno>) -> Option<i32> {
    e.map(|e| e as i32)
}

fn errno_text(e: Option<Errno>) -> String {
    match e {
        Some(e) => format!("{} ({})", e as i32, e),
        None => "none (no connect failed)".into(),
    }
}

/// Holds every port of a small range open against a listener that never accepts.
struct HeldLab {
    ns: NetNs,
    range: RangeInForce,
    _listener: Listener,
    ex: ports::Exhaustion,
}

fn held_lab(range: (u16, u16)) -> Result<std::result::Result<HeldLab, netclaim_harness::Error>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let range = match set_range(&ns, range) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let listener =
        Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding the listener")?;
    let ex = ports::hold_connections(&ns, listener.addr(), range.usable + 4)?;
    Ok(Ok(HeldLab {
        ns,
        range,
        _listener: listener,
        ex,
    }))
}

/// What `port.exhaustion-errno` measured: every port of a lab held by open connections,
/// then every port of a second lab held by client-closed TIME_WAIT sockets
/// (`tcp_tw_reuse=0`), and the next connect() in each.
#[derive(Debug, Serialize, Deserialize)]
struct AllPortsUsed {
    /// The lab whose ports are held by open connections.
    lab: String,
    /// Its range in force.
    range: RangeInForce,
    /// The connections held there, and the next connect().
    held: Held,
    /// Its socket table with every port held.
    held_table: Table,
    /// The lab whose ports are held by TIME_WAIT.
    tw_lab: String,
    /// Its range in force.
    tw_range: RangeInForce,
    /// The short connections made there, and the next connect().
    filled: Filled,
    /// Its socket table with every port in TIME_WAIT.
    tw_table: Table,
}

/// `port.exhaustion-errno`, measured: both labs filled, and connect() once more in each.
fn measure_exhaustion_errno(_ctx: &Ctx) -> Result<Measured<AllPortsUsed>> {
    let lab = or_na!(held_lab(SMALL_RANGE)?);
    let held_table = Table::read(&lab.ns, "with every port held")?;

    // The same exhaustion with the ports held by TIME_WAIT (tcp_tw_reuse=0).
    let ns2 = NetNs::new().context("creating the TIME_WAIT namespace")?;
    or_na!(ns2.set_tcp_tw_reuse(0));
    let tw_range = or_na!(set_range(&ns2, SMALL_RANGE));
    let l2 = Listener::bind(&ns2, loopback(LISTEN_PORT), 1024).context("binding")?;
    let fill = ports::fill_time_wait(&ns2, &l2, tw_range.usable + 4).context("TIME_WAIT fill")?;
    let tw_table = Table::read(&ns2, "ports held by TIME_WAIT, tcp_tw_reuse=0")?;
    Ok(Measured::Observed(AllPortsUsed {
        lab: lab.ns.name().to_owned(),
        held: Held::of(&lab.ex),
        range: lab.range,
        held_table,
        tw_lab: ns2.name().to_owned(),
        tw_range,
        filled: Filled::of(&fill),
        tw_table,
    }))
}

/// `port.exhaustion-errno`, judged: errno 99 in both labs, after as many connections as
/// the range allows.
fn judge_exhaustion_errno(m: &AllPortsUsed, _ctx: &Ctx) -> Outcome {
    let usable = m.range.usable;
    let failure = m.held.failure();
    let tw_failure = m.filled.failure();
    let mut o = Outcome::default();
    o.evidence(m.range.describe());
    o.evidence(format!(
        "held {} connection(s) to {} from ports {:?}; next connect(): {}",
        m.held.ports.len(),
        loopback(LISTEN_PORT),
        m.held.ports,
        errno_text(failure)
    ));
    o.evidence(m.held_table.text());
    let table2 = m.tw_table.entries();
    let tw = ports::count_state(table2, state::TIME_WAIT);
    o.evidence(format!(
        "{} short connection(s) closed by the client from ports {:?} (tcp_tw_reuse=0, because the default 2 would let loopback connections reuse a TIME_WAIT after tcp_tw_reuse_delay); next connect(): {}; {}",
        m.filled.ports.len(),
        m.filled.ports,
        errno_text(tw_failure),
        m.filled.settled_text()
    ));
    o.evidence(m.tw_table.text());

    let e99 = Some(Errno::EADDRNOTAVAIL);
    o.claimed.errno = Some(Errno::EADDRNOTAVAIL as i32);
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some(format!("{usable} connections, then errno 99")),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: errno_figure(failure),
        value: Some(format!("{} connections", m.held.ports.len())),
        ..Figures::default()
    };
    check_eq(
        &mut o,
        Against::Statement,
        "errno of connect() with every port ESTABLISHED",
        e99,
        failure,
    );
    check_eq(
        &mut o,
        Against::Statement,
        "errno of connect() with every port in TIME_WAIT",
        e99,
        tw_failure,
    );
    check_eq(
        &mut o,
        Against::Model,
        "connections before the failure",
        usable,
        m.held.ports.len(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "ESTABLISHED client sockets",
        usable,
        m.held_table
            .entries()
            .iter()
            .filter(|e| e.state == state::ESTABLISHED && e.remote.port() == LISTEN_PORT)
            .count(),
    );
    check_eq(&mut o, Against::Model, "errno (held)", e99, failure);
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets before the failure",
        m.tw_range.usable,
        tw,
    );
    check_eq(&mut o, Against::Model, "errno (TIME_WAIT)", e99, tw_failure);
    o
}

const EXHAUSTION_ERRNO: Steps<AllPortsUsed> = Steps {
    measure: measure_exhaustion_errno,
    judge: judge_exhaustion_errno,
};

/// What `port.exhaustion-curl` measured: curl run with every port of the range held.
#[derive(Debug, Serialize, Deserialize)]
struct CurlWithoutPorts {
    /// The lab's namespace.
    lab: String,
    /// Its range in force.
    range: RangeInForce,
    /// The connections held, and the in-repo client's next connect().
    held: Held,
    /// The installed curl's version.
    version: Option<String>,
    /// curl's run.
    run: ToolRun,
}

/// `port.exhaustion-curl`, measured: every port held, then one curl.
fn measure_exhaustion_curl(_ctx: &Ctx) -> Result<Measured<CurlWithoutPorts>> {
    let lab = or_na!(held_lab(SMALL_RANGE)?);
    let url = format!("http://{}/", loopback(LISTEN_PORT));
    let cmd = ToolCommand::new("curl", Duration::from_secs(15)).args([
        "-sS",
        "-v",
        "--max-time",
        "10",
        url.as_str(),
    ]);
    let run = lab::run_tool(&lab.ns, &cmd, LISTEN_PORT)?;
    Ok(Measured::Observed(CurlWithoutPorts {
        lab: lab.ns.name().to_owned(),
        held: Held::of(&lab.ex),
        range: lab.range,
        version: lab::version_of("curl"),
        run,
    }))
}

/// `port.exhaustion-curl`, judged: exit 7, the errno's message in the trace, no SYN.
fn judge_exhaustion_curl(m: &CurlWithoutPorts, _ctx: &Ctx) -> Outcome {
    let run = &m.run;
    let mut o = Outcome::default();
    o.evidence(m.range.describe());
    o.evidence(format!(
        "held {} connection(s) from ports {:?}; the in-repo client's next connect(): {}",
        m.held.ports.len(),
        m.held.ports,
        errno_text(m.held.failure())
    ));
    lab::version_line(&mut o, "curl", m.version.as_deref());
    o.evidence(lab::tool_evidence(run));

    let text = run.output.combined();
    let code = run.output.exit_code();
    // libcurl maps every connect() failure other than a timeout to CURLE_COULDNT_CONNECT
    // (7); its verbose trace names the errno with strerror().
    let expected_code = 7;
    let strerror = Errno::EADDRNOTAVAIL.desc();
    o.claimed.exit_code = Some(7);
    o.expected = Figures {
        exit_code: Some(expected_code),
        value: Some(format!("Failed to connect …; verbose: {strerror}")),
        ..Figures::default()
    };
    o.observed = lab::tool_figures(run);
    check_eq(&mut o, Against::Statement, "curl exit code", Some(7), code);
    check_eq(
        &mut o,
        Against::Model,
        "curl exit code",
        Some(expected_code),
        code,
    );
    check_eq(
        &mut o,
        Against::Model,
        "ports held before curl",
        m.range.usable,
        m.held.ports.len(),
    );
    o.model_check(
        "curl message",
        "contains \"Failed to connect\"",
        format!("{:?}", o.observed.value.clone().unwrap_or_default()),
        text.contains("Failed to connect"),
    );
    o.model_check(
        "curl verbose trace names the errno",
        format!("contains {strerror:?}"),
        text.lines()
            .find(|l| l.contains(strerror))
            .unwrap_or("(absent)")
            .trim()
            .to_owned(),
        text.contains(strerror),
    );
    check_eq(
        &mut o,
        Against::Model,
        "SYNs on the wire (connect() fails before sending one)",
        0,
        run.syn_times.len(),
    );
    o
}

const EXHAUSTION_CURL: Steps<CurlWithoutPorts> = Steps {
    measure: measure_exhaustion_curl,
    judge: judge_exhaustion_curl,
};

/// The even range of `port.range-size`.
const EVEN: (u16, u16) = (40000, 40007);
/// Its odd range.
const ODD: (u16, u16) = (40000, 40004);

/// What `port.range-size` measured: connections held to two destinations from one even
/// range, and to one destination from an odd range.
#[derive(Debug, Serialize, Deserialize)]
struct PerDestination {
    /// The even-range lab.
    lab: String,
    /// Its range in force.
    range: RangeInForce,
    /// Destination A.
    a_to: SocketAddrV4,
    /// Connections held to A.
    a: Held,
    /// Destination B (same address, another port).
    b_to: SocketAddrV4,
    /// Connections held to B.
    b: Held,
    /// The socket table with both destinations exhausted.
    table: Table,
    /// The odd-range lab.
    odd_lab: String,
    /// Its range in force.
    odd: RangeInForce,
    /// Connections held there.
    c: Held,
}

/// `port.range-size`, measured: both labs exhausted.
fn measure_range_size(_ctx: &Ctx) -> Result<Measured<PerDestination>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let range = or_na!(set_range(&ns, EVEN));
    let size = usize::from(range.high - range.low) + 1;
    let la = Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding")?;
    let lb = Listener::bind(&ns, loopback(OTHER_PORT), 1024).context("binding")?;
    let a = ports::hold_connections(&ns, la.addr(), size + 4)?;
    let b = ports::hold_connections(&ns, lb.addr(), size + 4)?;
    let table = Table::read(&ns, "both destinations exhausted")?;

    // An odd-sized range: the kernel scans an even number of ports.
    let ns_odd = NetNs::new().context("creating the odd-range namespace")?;
    let odd = or_na!(set_range(&ns_odd, ODD));
    let lo = Listener::bind(&ns_odd, loopback(LISTEN_PORT), 1024).context("binding")?;
    let c = ports::hold_connections(&ns_odd, lo.addr(), usize::from(odd.high - odd.low) + 5)?;
    Ok(Measured::Observed(PerDestination {
        lab: ns.name().to_owned(),
        range,
        a_to: la.addr(),
        a: Held::of(&a),
        b_to: lb.addr(),
        b: Held::of(&b),
        table,
        odd_lab: ns_odd.name().to_owned(),
        odd,
        c: Held::of(&c),
    }))
}

/// `port.range-size`, judged: the range size per destination, the odd range's count.
fn judge_range_size(m: &PerDestination, _ctx: &Ctx) -> Outcome {
    let (range, odd) = (&m.range, &m.odd);
    let (a, b, c) = (&m.a, &m.b, &m.c);
    let size = usize::from(range.high - range.low) + 1;
    let mut o = Outcome::default();
    o.evidence(range.describe());
    o.evidence(format!(
        "to {}: {} connection(s) from ports {:?}, then {}",
        m.a_to,
        a.ports.len(),
        a.ports,
        errno_text(a.failure())
    ));
    o.evidence(format!(
        "to {} (another destination, same range): {} connection(s) from ports {:?}, then {}",
        m.b_to,
        b.ports.len(),
        b.ports,
        errno_text(b.failure())
    ));
    o.evidence(m.table.text());
    o.evidence(format!(
        "odd range: {}; {} connection(s) from ports {:?}, then {}",
        odd.describe(),
        c.ports.len(),
        c.ports,
        errno_text(c.failure())
    ));

    o.claimed.value = Some(format!("{size} connections per destination (range size)"));
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some(format!(
            "{} per destination; odd range {}-{}: {} or {}",
            range.usable, odd.low, odd.high, odd.usable_min, odd.usable
        )),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: errno_figure(a.failure()),
        value: Some(format!(
            "{} and {} per destination; odd range: {}",
            a.ports.len(),
            b.ports.len(),
            c.ports.len()
        )),
        ..Figures::default()
    };
    o.claim_check(
        "concurrent connections to one destination, then EADDRNOTAVAIL",
        format!("{size} (the range size), then errno 99"),
        format!("{}, then {}", a.ports.len(), errno_text(a.failure())),
        a.ports.len() == size && a.failure() == Some(Errno::EADDRNOTAVAIL),
    );
    check_eq(
        &mut o,
        Against::Model,
        "connections to destination A",
        range.usable,
        a.ports.len(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno (A)",
        Some(Errno::EADDRNOTAVAIL),
        a.failure(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "connections to destination B (4-tuple differs)",
        range.usable,
        b.ports.len(),
    );
    let mut pa = a.ports.clone();
    let mut pb = b.ports.clone();
    pa.sort_unstable();
    pb.sort_unstable();
    check_eq(&mut o, Against::Model, "B reuses A's source ports", pa, pb);
    o.model_check(
        "connections with the odd range (each call scans an even number of ports)",
        format!("{} or {}", odd.usable_min, odd.usable),
        c.ports.len(),
        (odd.usable_min..=odd.usable).contains(&c.ports.len()),
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno (odd range)",
        Some(Errno::EADDRNOTAVAIL),
        c.failure(),
    );
    o
}

const RANGE_SIZE: Steps<PerDestination> = Steps {
    measure: measure_range_size,
    judge: judge_range_size,
};

/// One connect() as recorded: how it ended and, when connected, its local port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Attempt {
    /// How it ended.
    result: ConnectResult,
    /// Its local port, when it has one.
    port: Option<u16>,
}

impl Attempt {
    fn text(&self) -> String {
        match (self.result, self.port) {
            (ConnectResult::Connected, Some(p)) => format!("connected from port {p}"),
            (ConnectResult::Connected, None) => "connected".into(),
            (ConnectResult::Failed(e), _) => format!("errno {} ({e})", e as i32),
            (ConnectResult::PollTimedOut, _) => "timed out".into(),
        }
    }
}

/// Connects once and records the result and the local port; the socket is returned so
/// that its port stays in use.
fn try_connect(ns: &NetNs, target: SocketAddrV4) -> Result<(Attempt, Option<socket2::Socket>)> {
    let out = client::connect_blocking(ns, target)?;
    let port = out.socket.as_ref().and_then(|s| ports::local_port(s).ok());
    Ok((
        Attempt {
            result: out.result,
            port,
        },
        out.socket,
    ))
}

/// What `port.tw-reuse` measured: a range filled with TIME_WAIT, and connect() under
/// each tcp_tw_reuse setting.
#[derive(Debug, Serialize, Deserialize)]
struct ReuseTries {
    /// The lab's namespace.
    lab: String,
    /// Its range in force.
    range: RangeInForce,
    /// `tcp_tw_reuse_delay` in force, ms (`None`: the kernel has none).
    reuse_delay_ms: Option<u64>,
    /// The short connections that filled the range.
    filled: Filled,
    /// The socket table with the range filled.
    table: Table,
    /// connect() with tcp_tw_reuse=0.
    reuse_0: Attempt,
    /// When tcp_tw_reuse=1 was set, from before the first short connection.
    young: Duration,
    /// connect() with tcp_tw_reuse=1 at once.
    reuse_1_young: Attempt,
    /// How long the claim then waited for the TIME_WAITs to age.
    waited: Duration,
    /// connect() with tcp_tw_reuse=1 after that.
    reuse_1_aged: Attempt,
    /// connect() with tcp_tw_reuse=2.
    reuse_2: Attempt,
    /// The socket table after the reuses.
    after: Table,
}

/// `port.tw-reuse`, measured: the range filled, then connect() with 0, 1 (young and
/// aged) and 2.
fn measure_tw_reuse(_ctx: &Ctx) -> Result<Measured<ReuseTries>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    or_na!(ns.set_tcp_timestamps(1));
    or_na!(ns.set_tcp_tw_reuse(0));
    let range = or_na!(set_range(&ns, SMALL_RANGE));
    let reuse_delay_ms = tw_reuse_delay(&ns)?;
    let (age, _) = tw_reuse_age(reuse_delay_ms);
    let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding")?;
    let start = Instant::now();
    let fill = ports::fill_time_wait(&ns, &listener, range.usable).context("TIME_WAIT fill")?;
    let table = Table::read(&ns, "range filled with TIME_WAIT")?;

    // 1. tcp_tw_reuse=0.
    let (reuse_0, _s0) = try_connect(&ns, listener.addr())?;
    // 2. tcp_tw_reuse=1 at once: the TIME_WAITs are younger than the reuse age.
    ns.set_tcp_tw_reuse(1)?;
    let young = start.elapsed();
    let (reuse_1_young, _s1) = try_connect(&ns, listener.addr())?;
    // 3. tcp_tw_reuse=1 once every TIME_WAIT is old enough. This wait is the measurement:
    // the sockets must age past the reuse age, which no socket state shows (a connect
    // to poll it would itself take the port).
    let waited = (age + Duration::from_millis(300)).saturating_sub(start.elapsed());
    std::thread::sleep(waited);
    let (reuse_1_aged, _s2) = try_connect(&ns, listener.addr())?;
    // 4. tcp_tw_reuse=2 (the default since 4.20): loopback only; 127.0.0.1 qualifies.
    ns.set_tcp_tw_reuse(2)?;
    let (reuse_2, _s3) = try_connect(&ns, listener.addr())?;
    let after = Table::read(&ns, "after the reuses")?;
    Ok(Measured::Observed(ReuseTries {
        lab: ns.name().to_owned(),
        range,
        reuse_delay_ms,
        filled: Filled::of(&fill),
        table,
        reuse_0,
        young,
        reuse_1_young,
        waited,
        reuse_1_aged,
        reuse_2,
        after,
    }))
}

/// `port.tw-reuse`, judged: reuse with 1 once aged (the statement), errno 99 with 0 and
/// while young, reuse with 2 on loopback.
fn judge_tw_reuse(m: &ReuseTries, _ctx: &Ctx) -> Outcome {
    let (age, age_text) = tw_reuse_age(m.reuse_delay_ms);
    let tw_ports: Vec<u16> = m
        .table
        .entries()
        .iter()
        .filter(|e| e.state == state::TIME_WAIT)
        .map(|e| e.local.port())
        .collect();
    let (a0, a1, a2, a3) = (m.reuse_0, m.reuse_1_young, m.reuse_1_aged, m.reuse_2);
    let mut o = Outcome::default();
    o.evidence(format!(
        "{}; tcp_timestamps=1; {age_text}",
        m.range.describe()
    ));
    o.evidence(format!(
        "{} short connection(s), client closed first, from ports {:?}; {}",
        m.filled.ports.len(),
        m.filled.ports,
        m.filled.settled_text()
    ));
    o.evidence(m.table.text());
    o.evidence(format!(
        "tcp_tw_reuse=0: {}\ntcp_tw_reuse=1 at {:.3} s after the first TIME_WAIT (younger than {} ms): {}\ntcp_tw_reuse=1 after waiting {:.3} s more: {}\ntcp_tw_reuse=2 (loopback only; the destination is 127.0.0.1): {}",
        a0.text(),
        m.young.as_secs_f64(),
        age.as_millis(),
        a1.text(),
        m.waited.as_secs_f64(),
        a2.text(),
        a3.text()
    ));
    o.evidence(m.after.text());

    let e99 = ConnectResult::Failed(Errno::EADDRNOTAVAIL);
    o.claimed.value = Some("tcp_tw_reuse=1: connect succeeds on a TIME_WAIT port".into());
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some(format!(
            "reuse=0: errno 99; reuse=1: errno 99 for {} ms, then connected; reuse=2: connected (loopback)",
            age.as_millis()
        )),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: match a0.result {
            ConnectResult::Failed(e) => Some(e as i32),
            _ => None,
        },
        value: Some(format!(
            "reuse=0: {}; reuse=1 young: {}; reuse=1 aged: {}; reuse=2: {}",
            a0.text(),
            a1.text(),
            a2.text(),
            a3.text()
        )),
        ..Figures::default()
    };
    o.claim_check(
        "connect with every port in TIME_WAIT and tcp_tw_reuse=1",
        "connected, on a TIME_WAIT port",
        a2.text(),
        a2.result == ConnectResult::Connected && a2.port.is_some_and(|p| tw_ports.contains(&p)),
    );
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets",
        m.range.usable,
        tw_ports.len(),
    );
    check_eq(&mut o, Against::Model, "tcp_tw_reuse=0", e99, a0.result);
    if m.young < age {
        check_eq(
            &mut o,
            Against::Model,
            "tcp_tw_reuse=1, TIME_WAIT too young",
            e99,
            a1.result,
        );
    }
    check_eq(
        &mut o,
        Against::Model,
        "tcp_tw_reuse=1, aged",
        ConnectResult::Connected,
        a2.result,
    );
    o.model_check(
        "reused port was in TIME_WAIT",
        format!("one of {tw_ports:?}"),
        a2.port.shown(),
        a2.port.is_some_and(|p| tw_ports.contains(&p)),
    );
    check_eq(
        &mut o,
        Against::Model,
        "tcp_tw_reuse=2 on loopback",
        ConnectResult::Connected,
        a3.result,
    );
    o
}

const TW_REUSE: Steps<ReuseTries> = Steps {
    measure: measure_tw_reuse,
    judge: judge_tw_reuse,
};

/// The range `sysctl.writes-proc` sets.
const NEW: (u16, u16) = (40000, 40001);

/// What `sysctl.writes-proc` measured: `sysctl -w` (under strace when there is one), the
/// value before and after, and the connections that followed.
#[derive(Debug, Serialize, Deserialize)]
struct SysctlWrite {
    /// The lab's namespace.
    lab: String,
    /// `ip_local_port_range` before.
    before: String,
    /// Whether sysctl ran under strace.
    traced: bool,
    /// The run.
    run: CommandOutput,
    /// `ip_local_port_range` read back from /proc/sys after.
    after: String,
    /// New connections until the range was used up.
    held: Held,
}

/// `sysctl.writes-proc`, measured: `sysctl -w`, then connections until the new range is
/// used up.
fn measure_writes_proc(_ctx: &Ctx) -> Result<Measured<SysctlWrite>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let before = ns.sysctl(knob::IP_LOCAL_PORT_RANGE)?;
    let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding")?;
    let assignment = format!("{}={} {}", knob::IP_LOCAL_PORT_RANGE, NEW.0, NEW.1);
    let traced = which("strace").is_some();
    let cmd = if traced {
        ToolCommand::new("strace", Duration::from_secs(10)).args([
            "-e",
            "trace=openat,write",
            "sysctl",
            "-w",
            assignment.as_str(),
        ])
    } else {
        ToolCommand::new("sysctl", Duration::from_secs(10)).args(["-w", assignment.as_str()])
    };
    let run = ns.run_command(&cmd).context("running sysctl -w")?;
    let after = ns.sysctl(knob::IP_LOCAL_PORT_RANGE)?;
    let (_, usable) = usable_ports(NEW.0, NEW.1, "");
    let ex = ports::hold_connections(&ns, listener.addr(), usable + 2)?;
    Ok(Measured::Observed(SysctlWrite {
        lab: ns.name().to_owned(),
        before,
        traced,
        run,
        after,
        held: Held::of(&ex),
    }))
}

/// `sysctl.writes-proc`, judged: the /proc/sys write (when traced) and the new range in
/// force for the next connections.
fn judge_writes_proc(m: &SysctlWrite, _ctx: &Ctx) -> Outcome {
    let (run, after, held) = (&m.run, &m.after, &m.held);
    let (_, usable) = usable_ports(NEW.0, NEW.1, "");
    let mut o = Outcome::default();
    o.evidence(format!(
        "before: {} = {}",
        knob::IP_LOCAL_PORT_RANGE,
        m.before
    ));
    let relevant: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| {
            l.contains("/proc/sys") || (l.starts_with("write(") && l.contains(&NEW.0.to_string()))
        })
        .collect();
    o.evidence(format!(
        "command: {} (in netns {})\nexit code {:?} after {:.3} s\n--- stdout ---\n{}\n--- strace: /proc/sys opens and writes of the value ---\n{}",
        run.command_line,
        run.netns,
        run.exit_code(),
        run.duration.as_secs_f64(),
        run.stdout.trim_end(),
        if relevant.is_empty() { "(none)".to_owned() } else { relevant.join("\n") }
    ));
    o.evidence(format!(
        "after (read from /proc/sys in {}): {after}; new connections from ports {:?}, then {}",
        m.lab,
        held.ports,
        errno_text(held.failure())
    ));
    let proc_path = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = run.combined();
    let expected_line = format!("{} = {} {}", knob::IP_LOCAL_PORT_RANGE, NEW.0, NEW.1);
    let in_range = !held.ports.is_empty() && held.ports.iter().all(|p| (NEW.0..=NEW.1).contains(p));
    o.claimed.value = Some(format!(
        "writes {proc_path}; new sockets use {}-{} at once",
        NEW.0, NEW.1
    ));
    o.expected = Figures {
        exit_code: Some(0),
        value: Some(format!(
            "{usable} connections from ports {}-{}",
            NEW.0, NEW.1
        )),
        ..Figures::default()
    };
    o.observed = Figures {
        exit_code: run.exit_code(),
        value: Some(format!("ports {:?}", held.ports)),
        ..Figures::default()
    };
    o.claim_check(
        "first new connections after sysctl -w use the new range",
        format!("ports in {}-{}", NEW.0, NEW.1),
        format!("{:?}", held.ports),
        in_range && *after == format!("{} {}", NEW.0, NEW.1),
    );
    if m.traced {
        o.claim_check(
            "sysctl -w opens the /proc/sys file for writing",
            format!("openat(… \"{proc_path}\", O_WRONLY …)"),
            text.lines()
                .find(|l| l.contains(proc_path))
                .unwrap_or("(absent)")
                .to_owned(),
            text.lines()
                .any(|l| l.contains(proc_path) && l.contains("O_WRONLY")),
        );
    }
    check_eq(
        &mut o,
        Against::Model,
        "sysctl exit code",
        Some(0),
        run.exit_code(),
    );
    o.model_check(
        "sysctl prints the new value",
        format!("{expected_line:?}"),
        format!("{:?}", run.stdout.trim()),
        run.stdout.contains(&expected_line),
    );
    check_eq(
        &mut o,
        Against::Model,
        "value read back",
        format!("{} {}", NEW.0, NEW.1),
        after.clone(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "connections in the new range",
        usable,
        held.ports.len(),
    );
    o.model_check(
        "every port in the new range",
        format!("{}-{}", NEW.0, NEW.1),
        format!("{:?}", held.ports),
        in_range,
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno after the range is used up",
        Some(Errno::EADDRNOTAVAIL),
        held.failure(),
    );
    o
}

const WRITES_PROC: Steps<SysctlWrite> = Steps {
    measure: measure_writes_proc,
    judge: judge_writes_proc,
};

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    let lab =
        "one namespace, ip_local_port_range shrunk to 40000-40003, listener on 127.0.0.1:8080";
    vec![
        Claim {
            id: "port.exhaustion-errno",
            source: seeds::ERRNO_99,
            statement: "When every port of ip_local_port_range is in use (including by TIME_WAIT sockets), connect() fails with EADDRNOTAVAIL (99, \"Cannot assign requested address\").",
            lab,
            action: "hold connections from every port to a listener that never accepts, then connect() once more; again with the ports held by client-closed TIME_WAIT sockets and tcp_tw_reuse=0",
            needs: Needs::default(),
            estimate: S,
            run: Procedure::Rust(&EXHAUSTION_ERRNO),
        },
        Claim {
            id: "port.exhaustion-curl",
            source: seeds::ERRNO_99,
            statement: "With every local port in use, curl (libcurl) fails with CURLE_COULDNT_CONNECT, exit code 7.",
            lab,
            action: "hold connections from every port, then curl -sS -v --max-time 10 http://127.0.0.1:8080/",
            needs: Needs { tools: &["curl"] },
            estimate: S,
            run: Procedure::Rust(&EXHAUSTION_CURL),
        },
        Claim {
            id: "port.range-size",
            source: seeds::ERRNO_99,
            statement: "The number of concurrent outgoing connections to one destination is bounded by the size of ip_local_port_range.",
            lab: "one namespace, ip_local_port_range 40000-40007, listeners on 127.0.0.1:8080 and :8081; a second namespace with the odd range 40000-40004",
            action: "hold connections to :8080 until connect() fails, then to :8081; the same with the odd range",
            needs: Needs::default(),
            estimate: S,
            run: Procedure::Rust(&RANGE_SIZE),
        },
        Claim {
            id: "port.tw-reuse",
            source: seeds::ERRNO_99,
            statement: "net.ipv4.tcp_tw_reuse=1 lets new outgoing connections reuse local ports held by TIME_WAIT sockets.",
            lab: "one namespace, ip_local_port_range 40000-40003, tcp_timestamps=1, listener on 127.0.0.1:8080",
            action: "fill the range with client-closed TIME_WAIT sockets; connect with tcp_tw_reuse=0, with 1 at once, with 1 after tcp_tw_reuse_delay, and with 2",
            needs: Needs::default(),
            estimate: 2 * S,
            run: Procedure::Rust(&TW_REUSE),
        },
        Claim {
            id: "sysctl.writes-proc",
            source: seeds::ERRNO_99,
            statement: "`sysctl -w` writes the value to the file under /proc/sys/net/…, and it takes effect at once for new sockets.",
            lab: "one namespace, listener on 127.0.0.1:8080",
            action: "sysctl -w net.ipv4.ip_local_port_range=\"40000 40001\" inside the namespace (under strace when available), then connect until the range is used up",
            needs: Needs { tools: &["sysctl"] },
            estimate: S,
            run: Procedure::Rust(&WRITES_PROC),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::testing::ctx;

    fn small_range() -> RangeInForce {
        RangeInForce {
            low: 40000,
            high: 40003,
            reserved: String::new(),
            usable: 4,
            usable_min: 4,
        }
    }

    fn row(port: u16, st: u8) -> TcpEntry {
        TcpEntry {
            local: loopback(port),
            remote: loopback(LISTEN_PORT),
            state: st,
            timer: if st == state::TIME_WAIT { 3 } else { 0 },
            timer_ticks: if st == state::TIME_WAIT { 5990 } else { 0 },
            timer_ms: None,
        }
    }

    /// Four ports held open and four in TIME_WAIT, each lab's next connect() failing
    /// with `errno`.
    fn all_ports_used(errno: Errno) -> AllPortsUsed {
        let ports: Vec<u16> = (40000..=40003).collect();
        let table = |title: &str, st| Table {
            title: title.into(),
            lab: "netclaim-test".into(),
            rows: ports.iter().map(|&p| row(p, st)).collect(),
        };
        AllPortsUsed {
            lab: "netclaim-test".into(),
            range: small_range(),
            held: Held {
                ports: ports.clone(),
                failure: Some(errno as i32),
                stalled: false,
            },
            held_table: table("with every port held", state::ESTABLISHED),
            tw_lab: "netclaim-test-tw".into(),
            tw_range: small_range(),
            filled: Filled {
                ports: ports.clone(),
                failure: Some(errno as i32),
                settled: Some(Duration::from_millis(3)),
            },
            tw_table: table("ports held by TIME_WAIT", state::TIME_WAIT),
        }
    }

    #[test]
    fn exhaustion_with_errno_99_holds() {
        let o = judge_exhaustion_errno(&all_ports_used(Errno::EADDRNOTAVAIL), &ctx());
        assert_eq!(o.verdict(), crate::Verdict::Holds, "{}", o.reason());
        assert!(o.model_agrees(), "{:?}", o.model_checks);
        let check = o
            .claim_checks
            .iter()
            .find(|c| c.what == "errno of connect() with every port ESTABLISHED")
            .expect("the statement's errno check");
        assert!(check.ok);
        assert_eq!(check.observed, "EADDRNOTAVAIL (99)");
        assert_eq!(o.observed.errno, Some(99));
        assert!(o.evidence[1].contains("next connect(): 99 (EADDRNOTAVAIL"));
    }

    #[test]
    fn exhaustion_with_emfile_is_the_harness_failing_not_a_refutation() {
        let claim = claims()
            .into_iter()
            .find(|c| c.id == "port.exhaustion-errno")
            .expect("the claim is in the catalog");
        let recorded =
            serde_json::to_value(Measured::Observed(all_ports_used(Errno::EMFILE))).unwrap();
        let o = claim.judge(&recorded, &ctx()).unwrap();
        assert_eq!(o.verdict(), crate::Verdict::Error, "{}", o.reason());
        assert!(o.reason().contains("EMFILE"), "{}", o.reason());
    }

    #[test]
    fn a_recorded_measurement_judges_as_the_one_just_made() {
        let m = all_ports_used(Errno::EADDRNOTAVAIL);
        let recorded = serde_json::to_string(&m).unwrap();
        let back: AllPortsUsed = serde_json::from_str(&recorded).unwrap();
        assert_eq!(
            judge_exhaustion_errno(&back, &ctx()),
            judge_exhaustion_errno(&m, &ctx())
        );
    }

    #[test]
    fn tw_reuse_while_young_is_checked_only_when_it_was_young() {
        let attempt = |result, port| Attempt { result, port };
        let e99 = ConnectResult::Failed(Errno::EADDRNOTAVAIL);
        let ports: Vec<u16> = (40000..=40003).collect();
        let table = Table {
            title: "range filled with TIME_WAIT".into(),
            lab: "netclaim-test".into(),
            rows: ports.iter().map(|&p| row(p, state::TIME_WAIT)).collect(),
        };
        let mut m = ReuseTries {
            lab: "netclaim-test".into(),
            range: small_range(),
            reuse_delay_ms: Some(1000),
            filled: Filled {
                ports,
                failure: None,
                settled: Some(Duration::from_millis(2)),
            },
            table: table.clone(),
            reuse_0: attempt(e99, None),
            young: Duration::from_millis(40),
            reuse_1_young: attempt(e99, None),
            waited: Duration::from_millis(1260),
            reuse_1_aged: attempt(ConnectResult::Connected, Some(40002)),
            reuse_2: attempt(ConnectResult::Connected, Some(40001)),
            after: table,
        };
        let o = judge_tw_reuse(&m, &ctx());
        assert_eq!(o.verdict(), crate::Verdict::Holds, "{}", o.reason());
        assert!(o.model_agrees(), "{:?}", o.model_checks);
        let young = "tcp_tw_reuse=1, TIME_WAIT too young";
        assert!(o.model_checks.iter().any(|c| c.what == young));
        // Set at 1.1 s, the TIME_WAITs were past the 1001 ms reuse age already.
        m.young = Duration::from_millis(1100);
        let o = judge_tw_reuse(&m, &ctx());
        assert!(!o.model_checks.iter().any(|c| c.what == young));
        // Connected, but on a port that was never in TIME_WAIT: refuted.
        m.reuse_1_aged = attempt(ConnectResult::Connected, Some(40999));
        let o = judge_tw_reuse(&m, &ctx());
        assert_eq!(o.verdict(), crate::Verdict::Refuted);
    }
}
