//! Building the lab a claim file describes: its namespace(s), sysctls, rules, wire and
//! server, and reading back the sysctls in force.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::http::{SlowBodyServer, Trickle};
use netclaim_fixtures::server::{NoAcceptListener, SilentServer, UnixNoAcceptListener};
use netclaim_harness::sysctl::knob;
use netclaim_harness::tmp::TempDir;
use netclaim_harness::{Error as HarnessError, NetNs};

use crate::measure::labs::{self, BlackholeLab};
use crate::models::budget::DEFAULT_BACKLOG;
use crate::models::connection;
use crate::record::Target;
use crate::spec::{ClaimSpec, Family, Server};

/// What a lab's server is, kept alive while the action runs.
#[expect(dead_code, reason = "the guards are held for their Drop, never read")]
enum ServerGuard {
    NoAccept(NoAcceptListener),
    Unix(UnixNoAcceptListener, TempDir),
    Silent(SilentServer),
    Http(SlowBodyServer),
}

/// A built lab: the namespace the action runs in, and everything that must outlive it.
pub(crate) struct Built {
    // Declared first, dropped first: the wire's relays stop before its namespaces go.
    pub(crate) wire: Option<netclaim_harness::wire::Wire>,
    pub(crate) ns: NetNs,
    pub(crate) peer: Option<NetNs>,
    _server: Option<ServerGuard>,
    pub(crate) target: Target,
    pub(crate) notes: Vec<String>,
    pub(crate) description: String,
}

/// The sysctls the model reads, beside the ones a claim sets.
const MODEL_INPUTS: &[&str] = &[
    knob::TCP_SYN_RETRIES,
    knob::TCP_SYN_LINEAR_TIMEOUTS,
    knob::TCP_RTO_MAX_MS,
    knob::SOMAXCONN,
    knob::IP_LOCAL_PORT_RANGE,
    "net.ipv4.ip_local_reserved_ports",
];

/// Builds the lab; `Ok(Err(reason))` when the kernel refuses a sysctl the claim sets.
pub(crate) fn build(
    spec: &ClaimSpec,
    extra: Option<(&str, String)>,
) -> Result<std::result::Result<Built, String>> {
    let lab = &spec.lab;
    let mut sysctls: Vec<(String, String)> = lab
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.text()))
        .collect();
    if let Some((k, v)) = extra {
        sysctls.retain(|(name, _)| name != k);
        sysctls.push((k.to_owned(), v));
    }
    let pairs: Vec<(&str, &str)> = sysctls
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let port = lab.port.unwrap_or_else(|| lab.server.default_port());
    let refused = labs::refusal;
    let mut wire = None;
    let two_ns = match (&lab.link, lab.server) {
        (Some(link), _) => {
            let spec = link
                .wire_spec(&lab.rules)
                .map_err(|problems| anyhow::anyhow!("lab.link: {}", problems.join("; ")))?;
            Some(linked_lab(&pairs, spec).map(|(client, peer, w)| {
                wire = Some(w);
                (client, peer)
            }))
        }
        (None, Server::Reject | Server::DiesAfterHandshake) => Some(peer_lab(&pairs)),
        (None, Server::Blackhole) => Some(BlackholeLab::new(&pairs).map(|bh| (bh.client, bh.host))),
        _ => None,
    };
    let (ns, peer, target) = if let Some(made) = two_ns {
        match made {
            Ok((client, host)) => (
                client,
                Some(host),
                Target::Tcp(SocketAddrV4::new(BlackholeLab::HOST, port)),
            ),
            Err(e) => {
                let reason = e
                    .chain()
                    .find_map(|c| c.downcast_ref::<HarnessError>().and_then(refused));
                return match reason {
                    Some(r) => Ok(Err(r)),
                    None => Err(e),
                };
            }
        }
    } else {
        match NetNs::with_sysctls(&pairs) {
            Ok(ns) => (
                ns,
                None,
                match (lab.family, lab.server) {
                    (_, Server::Unroutable) => Target::Tcp(SocketAddrV4::new(UNROUTABLE, port)),
                    (Family::Ipv6, _) => {
                        Target::Tcp6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0))
                    }
                    (Family::Ipv4, _) => Target::Tcp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
                },
            ),
            Err(e) => {
                return match refused(&e) {
                    Some(r) => Ok(Err(r)),
                    None => Err(e).context("creating the lab namespace"),
                }
            }
        }
    };
    let mut notes = Vec::new();
    for (name, value) in &lab.sysctls_if_present {
        match ns.set_sysctl(name, &value.text()) {
            Ok(()) => notes.push(format!("{name}={value}")),
            Err(HarnessError::SysctlAbsent { .. }) => notes.push(format!(
                "{name} is absent on this kernel: its classic behaviour applies"
            )),
            Err(e) => match refused(&e) {
                Some(r) => return Ok(Err(r)),
                None => return Err(e).context("setting an optional sysctl"),
            },
        }
    }
    // listen() takes an int; `check` refuses larger values, so this never wraps negative.
    let asked = lab.backlog.unwrap_or(DEFAULT_BACKLOG);
    let backlog = i32::try_from(asked)
        .with_context(|| format!("lab.backlog {asked} is above listen()'s int range"))?;
    // With a link every server is on the peer's side of it.
    let server_ns = match (&wire, &peer) {
        (Some(_), Some(p)) => p,
        _ => &ns,
    };
    let (server, target, description) = match (lab.server, &target) {
        (Server::Blackhole, Target::Tcp(addr)) if wire.is_some() => {
            server_ns
                .drop_all_input()
                .with_context(|| format!("dropping all input in {}", server_ns.name()))?;
            (
                None,
                target.clone(),
                format!(
                    "client {} on the wire to {} ({}), which drops all input; target {addr}",
                    BlackholeLab::CLIENT,
                    BlackholeLab::HOST,
                    server_ns.name()
                ),
            )
        }
        (Server::DropSyn, Target::Tcp(addr)) => {
            server_ns
                .drop_syn_to_port(addr.port())
                .with_context(|| format!("installing the SYN DROP rule in {}", ns.name()))?;
            (
                None,
                target.clone(),
                format!(
                    "iptables -A INPUT -p tcp --dport {} --syn -j DROP, target {addr}",
                    addr.port()
                ),
            )
        }
        (Server::DropSyn, Target::Tcp6(addr)) => {
            ns.ip6tables_append(
                "filter",
                "INPUT",
                &netclaim_harness::firewall::drop_syn_rule(addr.port()),
            )
            .with_context(|| format!("installing the IPv6 SYN DROP rule in {}", ns.name()))?;
            (
                None,
                target.clone(),
                format!(
                    "ip6tables -A INPUT -p tcp --dport {} --syn -j DROP, target {addr}",
                    addr.port()
                ),
            )
        }
        (Server::None | Server::Refuse, Target::Tcp6(addr)) => (
            None,
            target.clone(),
            format!("nothing listens on {addr}: the kernel answers a SYN with RST"),
        ),
        (Server::Reject, Target::Tcp(addr)) => {
            let with = lab.reject_with.clone().unwrap_or_default();
            let host = peer.as_ref().context("reject needs its peer")?;
            let rule = format!(
                "-p tcp --dport {} -j REJECT --reject-with {with}",
                addr.port()
            );
            host.iptables_append("filter", "INPUT", &rule)
                .with_context(|| format!("installing the REJECT rule in {}", host.name()))?;
            (
                None,
                target.clone(),
                format!(
                    "client {} on a {} to {} ({}), whose iptables -A INPUT {rule}; target {addr}",
                    BlackholeLab::CLIENT,
                    if wire.is_some() { "wire" } else { "veth" },
                    BlackholeLab::HOST,
                    host.name()
                ),
            )
        }
        (Server::Unroutable, Target::Tcp(addr)) => (
            None,
            target.clone(),
            format!("only lo in the lab: no route to {addr}"),
        ),
        (Server::DiesAfterHandshake, Target::Tcp(addr)) => {
            let host = peer.as_ref().context("the server needs its peer")?;
            let s = SilentServer::start(host, *addr)
                .with_context(|| format!("serving on {addr} in {}", host.name()))?;
            (
                Some(ServerGuard::Silent(s)),
                target.clone(),
                format!(
                    "client {} on a {} to {} ({}), which accepts on {addr} and, once the client is connected, drops every packet (iptables -A INPUT -j DROP)",
                    BlackholeLab::CLIENT,
                    if wire.is_some() { "wire" } else { "veth" },
                    BlackholeLab::HOST,
                    host.name()
                ),
            )
        }
        (Server::Blackhole, Target::Tcp(addr)) => (
            None,
            target.clone(),
            format!(
                "client {} on a veth to {}, which drops all input; target {addr}",
                BlackholeLab::CLIENT,
                BlackholeLab::HOST
            ),
        ),
        (Server::None | Server::Refuse, Target::Tcp(addr)) => (
            None,
            target.clone(),
            format!("nothing listens on {addr}: the kernel answers a SYN with RST"),
        ),
        (Server::NeverAccept, Target::Tcp(addr)) => {
            let l = NoAcceptListener::bind(server_ns, *addr, backlog)
                .with_context(|| format!("listening on {addr}"))?;
            (
                Some(ServerGuard::NoAccept(l)),
                target.clone(),
                format!("a listener on {addr} with listen({backlog}) that never calls accept()"),
            )
        }
        (Server::NeverAcceptUnix, _) => {
            let dir = TempDir::new("eagain")?;
            let path = dir.path().join("listener.sock");
            let l = UnixNoAcceptListener::bind(&ns, &path, backlog)
                .with_context(|| format!("listening on {}", path.display()))?;
            let desc = format!(
                "a unix listener at {} with listen({backlog}) that never calls accept()",
                path.display()
            );
            (Some(ServerGuard::Unix(l, dir)), Target::Unix(path), desc)
        }
        (Server::Silent, Target::Tcp(addr)) => {
            let s = SilentServer::start(server_ns, *addr)
                .with_context(|| format!("serving on {addr}"))?;
            (
                Some(ServerGuard::Silent(s)),
                target.clone(),
                format!("a server on {addr} that accepts and never sends a byte"),
            )
        }
        (Server::Http, Target::Tcp(addr)) => {
            let body = b"netclaim lab\n".len() as u64;
            let trickle = Trickle {
                content_length: body,
                initial: body,
                chunk: body,
                interval: Duration::ZERO,
            };
            let s = SlowBodyServer::start(server_ns, *addr, trickle)
                .with_context(|| format!("serving HTTP on {addr}"))?;
            (
                Some(ServerGuard::Http(s)),
                target.clone(),
                format!("an HTTP server on {addr} answering 200 OK with {body} bytes"),
            )
        }
        (kind, Target::Unix(_)) => anyhow::bail!("server {kind:?} has no unix target"),
        (kind, Target::Tcp6(_)) => anyhow::bail!("server {kind:?} has no IPv6 target"),
    };
    let description = match (&wire, &lab.link) {
        (Some(w), Some(link)) => format!(
            "{description}; between client and peer a wire of netclaim's own: {} (seed {})",
            describe_link(link, &lab.rules),
            w.seed()
        ),
        _ => description,
    };
    Ok(Ok(Built {
        description: format!("lab {}: {description}", ns.name()),
        wire,
        ns,
        peer,
        _server: server,
        target,
        notes,
    }))
}

/// An address no lab has a route to (RFC 5737 TEST-NET-3).
const UNROUTABLE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// A client namespace (192.0.2.1, with `sysctls`) on a veth to a peer (192.0.2.2) that
/// accepts everything until the claim says otherwise.
fn peer_lab(sysctls: &[(&str, &str)]) -> Result<(NetNs, NetNs)> {
    let client = NetNs::with_sysctls(sysctls).context("creating the client namespace")?;
    let host = NetNs::new().context("creating the peer namespace")?;
    netclaim_harness::link::veth_pair(&client, BlackholeLab::CLIENT, &host, BlackholeLab::HOST, 24)
        .context("linking client and peer")?;
    Ok((client, host))
}

/// A client namespace (192.0.2.1, with `sysctls`) and a peer (192.0.2.2) with the wire
/// `spec` between them instead of a veth.
fn linked_lab(
    sysctls: &[(&str, &str)],
    spec: netclaim_harness::wire::WireSpec,
) -> Result<(NetNs, NetNs, netclaim_harness::wire::Wire)> {
    let client = NetNs::with_sysctls(sysctls).context("creating the client namespace")?;
    let peer = NetNs::new().context("creating the peer namespace")?;
    let wire = netclaim_harness::wire::Wire::between_addrs(
        &client,
        BlackholeLab::CLIENT,
        &peer,
        BlackholeLab::HOST,
        24,
        spec,
    )
    .context("putting the wire between client and peer")?;
    Ok((client, peer, wire))
}

/// `lab.link` and `lab.rules` in words, for the lab's description.
pub fn describe_link(
    link: &crate::spec::link::LinkSpec,
    rules: &[crate::spec::link::RuleSpec],
) -> String {
    let mut text = toml::to_string(link)
        .map(|t| t.lines().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    if text.is_empty() {
        text = "a perfect wire".into();
    }
    for r in rules {
        text.push_str(&format!(
            "; rule: toward the {:?}{}{}{}{}, {}",
            r.toward,
            r.flags
                .as_ref()
                .map(|f| format!(", flags {f}"))
                .unwrap_or_default(),
            r.not_flags
                .as_ref()
                .map(|f| format!(", not {f}"))
                .unwrap_or_default(),
            r.nth.map(|n| format!(", the #{n}")).unwrap_or_default(),
            r.after_bytes
                .map(|b| format!(", past byte {b}"))
                .unwrap_or_default(),
            r.action
        ));
    }
    text
}

/// Reads the model's inputs and the claim's own sysctls in the lab.
pub(crate) fn in_force(spec: &ClaimSpec, ns: &NetNs) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let names = MODEL_INPUTS
        .iter()
        .chain(connection::MODEL_INPUTS)
        .map(|s| (*s).to_owned())
        .chain(spec.lab.sysctls.keys().cloned())
        .chain(spec.lab.sysctls_if_present.keys().cloned())
        .chain(spec.sweep.iter().map(|s| s.sysctl.clone()));
    for name in names {
        if let Some(v) = ns.sysctl_opt(&name)? {
            out.insert(name, v);
        }
    }
    Ok(out)
}
