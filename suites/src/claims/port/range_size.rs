//! `port.range-size`: the connections to one destination are bounded by the size of

//! ip_local_port_range (even and odd ranges).

use std::net::SocketAddrV4;

use anyhow::{Context, Result};
use netclaim_fixtures::ports::{self, Listener};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{
    errno_figure, errno_text, loopback, set_range, Held, RangeInForce, Table, LISTEN_PORT,
    OTHER_PORT,
};
use crate::catalog::knobs::or_na;
use crate::claim::{Ctx, Figures, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};

/// The even range of `port.range-size`.
const EVEN: (u16, u16) = (40000, 40007);
/// Its odd range.
const ODD: (u16, u16) = (40000, 40004);

/// What `port.range-size` measured: connections held to two destinations from one even
/// range, and to one destination from an odd range.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PerDestination {
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
fn measure_range_size(_ctx: &Ctx) -> Result<Observation<PerDestination>> {
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
    Ok(Observation::Observed(PerDestination {
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

pub(super) const RANGE_SIZE: Steps<PerDestination> = Steps {
    measure: measure_range_size,
    judge: judge_range_size,
};
