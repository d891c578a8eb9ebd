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
use netclaim_fixtures::ports::{self, state, Listener, TcpEntry};
use netclaim_harness::command::{which, ToolCommand};
use netclaim_harness::sysctl::knob;
use netclaim_harness::NetNs;
use nix::errno::Errno;

use super::seeds;
use crate::claim::{Claim, Ctx, Figures, Needs, Outcome, Procedure};
use crate::lab::{self, check_eq, Against, Shown};

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

/// Turns a sysctl the kernel lacks or rejects into a not-applicable outcome (returned
/// from the enclosing claim function); other errors propagate.
macro_rules! or_na {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => match $crate::lab::not_applicable(&e) {
                Some(na) => return Ok(na),
                None => return Err(anyhow::Error::from(e)),
            },
        }
    };
}
pub(crate) use or_na;

/// How many ports connect() can use in `[low, high]`, as (fewest, most), minus the
/// reserved ones listed in `reserved` (the text of `ip_local_reserved_ports`).
///
/// `__inet_hash_connect()` scans `remaining = high + 1 - low` ports, rounded down to an
/// even number when more than one, starting at a per-destination offset that moves only
/// after a successful connect. With an even range every port is reachable; with an odd
/// range each call reaches all ports but one, and which one depends on that offset, so
/// the count before the first EADDRNOTAVAIL is `size - 1` or `size`.
pub(crate) fn usable_ports(low: u16, high: u16, reserved: &str) -> (usize, usize) {
    if high < low {
        return (0, 0);
    }
    let size = usize::from(high - low) + 1;
    let reserved_in_range = parse_port_list(reserved)
        .into_iter()
        .filter(|p| (low..=high).contains(p))
        .count();
    let most = size.saturating_sub(reserved_in_range);
    let fewest = if size > 1 && size % 2 == 1 {
        most.saturating_sub(1)
    } else {
        most
    };
    (fewest, most)
}

fn parse_port_list(text: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    ports.extend(a..=b);
                }
            }
            None => ports.extend(part.parse::<u16>().ok()),
        }
    }
    ports
}

/// The range in force after setting `range`, and the number of usable ports.
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

/// The socket table of `ns` with a per-state summary, as evidence.
pub(crate) fn table_evidence(ns: &NetNs, title: &str) -> Result<(Vec<TcpEntry>, String)> {
    let table = ports::tcp_table(ns).context("reading /proc/thread-self/net/tcp")?;
    let text = format!(
        "{title} (/proc/thread-self/net/tcp in {}): {:?}\n{}",
        ns.name(),
        ports::state_counts(&table),
        ports::table_text(&table)
    );
    Ok((table, text))
}

/// How long a TIME_WAIT socket must age before `tcp_tw_reuse` may take it over, and why.
///
/// `tcp_twsk_unique()` reuses a TIME_WAIT only when it recorded a peer timestamp
/// (`tw_ts_recent_stamp != 0`, i.e. timestamps were negotiated) and, since Linux 6.13,
/// `tcp_clock_ms() > tw_entry_stamp + tcp_tw_reuse_delay` (ms, default 1000); before that,
/// `ktime_get_seconds() > tw_ts_recent_stamp + 1`, i.e. 1 to 2 s.
pub(crate) fn tw_reuse_age(ns: &NetNs) -> Result<(Duration, String)> {
    Ok(match ns.sysctl_opt("net.ipv4.tcp_tw_reuse_delay")? {
        Some(ms) => {
            let ms: u64 = ms.trim().parse().context("tcp_tw_reuse_delay")?;
            (
                Duration::from_millis(ms + 1),
                format!("tcp_tw_reuse_delay = {ms} ms: a TIME_WAIT becomes reusable {ms}..{} ms after it was entered", ms + 1),
            )
        }
        None => (
            Duration::from_secs(2),
            "no tcp_tw_reuse_delay (kernel < 6.13): a TIME_WAIT becomes reusable when the seconds clock is past its last timestamp + 1 s, i.e. 1..2 s after it was entered".into(),
        ),
    })
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

fn exhaustion_errno(_ctx: &Ctx) -> Result<Outcome> {
    let lab = or_na!(held_lab(SMALL_RANGE)?);
    let usable = lab.range.usable;
    let mut o = Outcome::default();
    o.evidence(lab.range.describe());
    let (table, text) = table_evidence(&lab.ns, "with every port held")?;
    o.evidence(format!(
        "held {} connection(s) to {} from ports {:?}; next connect(): {}",
        lab.ex.ports.len(),
        loopback(LISTEN_PORT),
        lab.ex.ports,
        errno_text(lab.ex.failure)
    ));
    o.evidence(text);

    // The same exhaustion with the ports held by TIME_WAIT (tcp_tw_reuse=0).
    let ns2 = NetNs::new().context("creating the TIME_WAIT namespace")?;
    or_na!(ns2.set_tcp_tw_reuse(0));
    let range2 = or_na!(set_range(&ns2, SMALL_RANGE));
    let l2 = Listener::bind(&ns2, loopback(LISTEN_PORT), 1024).context("binding")?;
    let fill = ports::fill_time_wait(&ns2, &l2, range2.usable + 4).context("TIME_WAIT fill")?;
    let (table2, text2) = table_evidence(&ns2, "ports held by TIME_WAIT, tcp_tw_reuse=0")?;
    let tw = ports::count_state(&table2, state::TIME_WAIT);
    o.evidence(format!(
        "{} short connection(s) closed by the client from ports {:?} (tcp_tw_reuse=0, because the default 2 would let loopback connections reuse a TIME_WAIT after tcp_tw_reuse_delay); next connect(): {}; {}",
        fill.ports.len(),
        fill.ports,
        errno_text(fill.failure),
        fill.settled_text()
    ));
    o.evidence(text2);

    let e99 = Some(Errno::EADDRNOTAVAIL);
    o.claimed.errno = Some(Errno::EADDRNOTAVAIL as i32);
    o.expected = Figures {
        errno: Some(Errno::EADDRNOTAVAIL as i32),
        value: Some(format!("{usable} connections, then errno 99")),
        ..Figures::default()
    };
    o.observed = Figures {
        errno: errno_figure(lab.ex.failure),
        value: Some(format!("{} connections", lab.ex.ports.len())),
        ..Figures::default()
    };
    check_eq(
        &mut o,
        Against::Statement,
        "errno of connect() with every port ESTABLISHED",
        e99,
        lab.ex.failure,
    );
    check_eq(
        &mut o,
        Against::Statement,
        "errno of connect() with every port in TIME_WAIT",
        e99,
        fill.failure,
    );
    check_eq(
        &mut o,
        Against::Model,
        "connections before the failure",
        usable,
        lab.ex.ports.len(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "ESTABLISHED client sockets",
        usable,
        table
            .iter()
            .filter(|e| e.state == state::ESTABLISHED && e.remote.port() == LISTEN_PORT)
            .count(),
    );
    check_eq(&mut o, Against::Model, "errno (held)", e99, lab.ex.failure);
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets before the failure",
        range2.usable,
        tw,
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno (TIME_WAIT)",
        e99,
        fill.failure,
    );
    Ok(o)
}

fn exhaustion_curl(_ctx: &Ctx) -> Result<Outcome> {
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
    let mut o = Outcome::default();
    o.evidence(lab.range.describe());
    o.evidence(format!(
        "held {} connection(s) from ports {:?}; the in-repo client's next connect(): {}",
        lab.ex.ports.len(),
        lab.ex.ports,
        errno_text(lab.ex.failure)
    ));
    lab::version_evidence(&mut o, "curl");
    o.evidence(lab::tool_evidence(&run));

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
    o.observed = lab::tool_figures(&run);
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
        lab.range.usable,
        lab.ex.ports.len(),
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
    Ok(o)
}

fn range_size(_ctx: &Ctx) -> Result<Outcome> {
    const EVEN: (u16, u16) = (40000, 40007);
    const ODD: (u16, u16) = (40000, 40004);
    let ns = NetNs::new().context("creating the lab namespace")?;
    let range = or_na!(set_range(&ns, EVEN));
    let size = usize::from(range.high - range.low) + 1;
    let la = Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding")?;
    let lb = Listener::bind(&ns, loopback(OTHER_PORT), 1024).context("binding")?;
    let a = ports::hold_connections(&ns, la.addr(), size + 4)?;
    let b = ports::hold_connections(&ns, lb.addr(), size + 4)?;
    let (_, text) = table_evidence(&ns, "both destinations exhausted")?;

    // An odd-sized range: the kernel scans an even number of ports.
    let ns_odd = NetNs::new().context("creating the odd-range namespace")?;
    let odd = or_na!(set_range(&ns_odd, ODD));
    let lo = Listener::bind(&ns_odd, loopback(LISTEN_PORT), 1024).context("binding")?;
    let c = ports::hold_connections(&ns_odd, lo.addr(), usize::from(odd.high - odd.low) + 5)?;

    let mut o = Outcome::default();
    o.evidence(range.describe());
    o.evidence(format!(
        "to {}: {} connection(s) from ports {:?}, then {}",
        la.addr(),
        a.ports.len(),
        a.ports,
        errno_text(a.failure)
    ));
    o.evidence(format!(
        "to {} (another destination, same range): {} connection(s) from ports {:?}, then {}",
        lb.addr(),
        b.ports.len(),
        b.ports,
        errno_text(b.failure)
    ));
    o.evidence(text);
    o.evidence(format!(
        "odd range: {}; {} connection(s) from ports {:?}, then {}",
        odd.describe(),
        c.ports.len(),
        c.ports,
        errno_text(c.failure)
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
        errno: errno_figure(a.failure),
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
        format!("{}, then {}", a.ports.len(), errno_text(a.failure)),
        a.ports.len() == size && a.failure == Some(Errno::EADDRNOTAVAIL),
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
        a.failure,
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
        c.failure,
    );
    Ok(o)
}

/// Connects once and reports the result and the local port.
fn try_connect(
    ns: &NetNs,
    target: SocketAddrV4,
) -> Result<(ConnectResult, Option<u16>, Option<socket2::Socket>)> {
    let out = client::connect_blocking(ns, target)?;
    let port = out.socket.as_ref().and_then(|s| ports::local_port(s).ok());
    Ok((out.result, port, out.socket))
}

fn result_text(r: ConnectResult, port: Option<u16>) -> String {
    match (r, port) {
        (ConnectResult::Connected, Some(p)) => format!("connected from port {p}"),
        (ConnectResult::Connected, None) => "connected".into(),
        (ConnectResult::Failed(e), _) => format!("errno {} ({e})", e as i32),
        (ConnectResult::PollTimedOut, _) => "timed out".into(),
    }
}

fn tw_reuse(_ctx: &Ctx) -> Result<Outcome> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    or_na!(ns.set_tcp_timestamps(1));
    or_na!(ns.set_tcp_tw_reuse(0));
    let range = or_na!(set_range(&ns, SMALL_RANGE));
    let (age, age_text) = tw_reuse_age(&ns)?;
    let listener = Listener::bind(&ns, loopback(LISTEN_PORT), 1024).context("binding")?;
    let start = Instant::now();
    let fill = ports::fill_time_wait(&ns, &listener, range.usable).context("TIME_WAIT fill")?;
    let (table, text) = table_evidence(&ns, "range filled with TIME_WAIT")?;
    let tw_ports: Vec<u16> = table
        .iter()
        .filter(|e| e.state == state::TIME_WAIT)
        .map(|e| e.local.port())
        .collect();

    // 1. tcp_tw_reuse=0.
    let (r0, p0, _s0) = try_connect(&ns, listener.addr())?;
    // 2. tcp_tw_reuse=1 at once: the TIME_WAITs are younger than the reuse age.
    ns.set_tcp_tw_reuse(1)?;
    let young = start.elapsed();
    let (r1, p1, _s1) = try_connect(&ns, listener.addr())?;
    // 3. tcp_tw_reuse=1 once every TIME_WAIT is old enough.
    let wait = (age + Duration::from_millis(300)).saturating_sub(start.elapsed());
    std::thread::sleep(wait);
    let (r2, p2, _s2) = try_connect(&ns, listener.addr())?;
    // 4. tcp_tw_reuse=2 (the default since 4.20): loopback only; 127.0.0.1 qualifies.
    ns.set_tcp_tw_reuse(2)?;
    let (r3, p3, _s3) = try_connect(&ns, listener.addr())?;
    let (_, after) = table_evidence(&ns, "after the reuses")?;

    let mut o = Outcome::default();
    o.evidence(format!(
        "{}; tcp_timestamps=1; {age_text}",
        range.describe()
    ));
    o.evidence(format!(
        "{} short connection(s), client closed first, from ports {:?}; {}",
        fill.ports.len(),
        fill.ports,
        fill.settled_text()
    ));
    o.evidence(text);
    o.evidence(format!(
        "tcp_tw_reuse=0: {}\ntcp_tw_reuse=1 at {:.3} s after the first TIME_WAIT (younger than {} ms): {}\ntcp_tw_reuse=1 after waiting {:.3} s more: {}\ntcp_tw_reuse=2 (loopback only; the destination is 127.0.0.1): {}",
        result_text(r0, p0),
        young.as_secs_f64(),
        age.as_millis(),
        result_text(r1, p1),
        wait.as_secs_f64(),
        result_text(r2, p2),
        result_text(r3, p3)
    ));
    o.evidence(after);

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
        errno: match r0 {
            ConnectResult::Failed(e) => Some(e as i32),
            _ => None,
        },
        value: Some(format!(
            "reuse=0: {}; reuse=1 young: {}; reuse=1 aged: {}; reuse=2: {}",
            result_text(r0, p0),
            result_text(r1, p1),
            result_text(r2, p2),
            result_text(r3, p3)
        )),
        ..Figures::default()
    };
    o.claim_check(
        "connect with every port in TIME_WAIT and tcp_tw_reuse=1",
        "connected, on a TIME_WAIT port",
        result_text(r2, p2),
        r2 == ConnectResult::Connected && p2.is_some_and(|p| tw_ports.contains(&p)),
    );
    check_eq(
        &mut o,
        Against::Model,
        "TIME_WAIT sockets",
        range.usable,
        tw_ports.len(),
    );
    check_eq(&mut o, Against::Model, "tcp_tw_reuse=0", e99, r0);
    if young < age {
        check_eq(
            &mut o,
            Against::Model,
            "tcp_tw_reuse=1, TIME_WAIT too young",
            e99,
            r1,
        );
    }
    check_eq(
        &mut o,
        Against::Model,
        "tcp_tw_reuse=1, aged",
        ConnectResult::Connected,
        r2,
    );
    o.model_check(
        "reused port was in TIME_WAIT",
        format!("one of {tw_ports:?}"),
        p2.shown(),
        p2.is_some_and(|p| tw_ports.contains(&p)),
    );
    check_eq(
        &mut o,
        Against::Model,
        "tcp_tw_reuse=2 on loopback",
        ConnectResult::Connected,
        r3,
    );
    Ok(o)
}

fn writes_proc(_ctx: &Ctx) -> Result<Outcome> {
    const NEW: (u16, u16) = (40000, 40001);
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

    let mut o = Outcome::default();
    o.evidence(format!("before: {} = {before}", knob::IP_LOCAL_PORT_RANGE));
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
        ns.name(),
        ex.ports,
        errno_text(ex.failure)
    ));
    let proc_path = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = run.combined();
    let expected_line = format!("{} = {} {}", knob::IP_LOCAL_PORT_RANGE, NEW.0, NEW.1);
    let in_range = !ex.ports.is_empty() && ex.ports.iter().all(|p| (NEW.0..=NEW.1).contains(p));
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
        value: Some(format!("ports {:?}", ex.ports)),
        ..Figures::default()
    };
    o.claim_check(
        "first new connections after sysctl -w use the new range",
        format!("ports in {}-{}", NEW.0, NEW.1),
        format!("{:?}", ex.ports),
        in_range && after == format!("{} {}", NEW.0, NEW.1),
    );
    if traced {
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
        after,
    );
    check_eq(
        &mut o,
        Against::Model,
        "connections in the new range",
        usable,
        ex.ports.len(),
    );
    o.model_check(
        "every port in the new range",
        format!("{}-{}", NEW.0, NEW.1),
        format!("{:?}", ex.ports),
        in_range,
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno after the range is used up",
        Some(Errno::EADDRNOTAVAIL),
        ex.failure,
    );
    Ok(o)
}

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
            run: Procedure::Rust(exhaustion_errno),
        },
        Claim {
            id: "port.exhaustion-curl",
            source: seeds::ERRNO_99,
            statement: "With every local port in use, curl (libcurl) fails with CURLE_COULDNT_CONNECT, exit code 7.",
            lab,
            action: "hold connections from every port, then curl -sS -v --max-time 10 http://127.0.0.1:8080/",
            needs: Needs { tools: &["curl"] },
            estimate: S,
            run: Procedure::Rust(exhaustion_curl),
        },
        Claim {
            id: "port.range-size",
            source: seeds::ERRNO_99,
            statement: "The number of concurrent outgoing connections to one destination is bounded by the size of ip_local_port_range.",
            lab: "one namespace, ip_local_port_range 40000-40007, listeners on 127.0.0.1:8080 and :8081; a second namespace with the odd range 40000-40004",
            action: "hold connections to :8080 until connect() fails, then to :8081; the same with the odd range",
            needs: Needs::default(),
            estimate: S,
            run: Procedure::Rust(range_size),
        },
        Claim {
            id: "port.tw-reuse",
            source: seeds::ERRNO_99,
            statement: "net.ipv4.tcp_tw_reuse=1 lets new outgoing connections reuse local ports held by TIME_WAIT sockets.",
            lab: "one namespace, ip_local_port_range 40000-40003, tcp_timestamps=1, listener on 127.0.0.1:8080",
            action: "fill the range with client-closed TIME_WAIT sockets; connect with tcp_tw_reuse=0, with 1 at once, with 1 after tcp_tw_reuse_delay, and with 2",
            needs: Needs::default(),
            estimate: 2 * S,
            run: Procedure::Rust(tw_reuse),
        },
        Claim {
            id: "sysctl.writes-proc",
            source: seeds::ERRNO_99,
            statement: "`sysctl -w` writes the value to the file under /proc/sys/net/…, and it takes effect at once for new sockets.",
            lab: "one namespace, listener on 127.0.0.1:8080",
            action: "sysctl -w net.ipv4.ip_local_port_range=\"40000 40001\" inside the namespace (under strace when available), then connect until the range is used up",
            needs: Needs { tools: &["sysctl"] },
            estimate: S,
            run: Procedure::Rust(writes_proc),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_ports_of_odd_ranges() {
        assert_eq!(usable_ports(40000, 40003, ""), (4, 4));
        assert_eq!(usable_ports(40000, 40004, ""), (4, 5));
        assert_eq!(usable_ports(40000, 40000, ""), (1, 1));
        assert_eq!(usable_ports(40000, 40003, "40001,50000-50010"), (3, 3));
        assert_eq!(usable_ports(32768, 60999, ""), (28232, 28232));
    }
}
