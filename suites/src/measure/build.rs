//! Building the lab a claim file describes: its namespace(s), sysctls, rules, wire and
//! server, and reading back the sysctls in force.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use netclaim_harness::sysctl::knob;
use netclaim_harness::NetNs;
use netclaim_lab::{kind, Lab};

use crate::measure::labs;
use crate::models::budget::DEFAULT_BACKLOG;
use crate::models::connection;
use crate::record::Target;
use crate::spec::{ClaimSpec, Family, Server};

/// A built lab: the namespace the action runs in, and everything that must outlive it.
pub(crate) struct Built {
    /// The lab: its namespaces, wire and server, removed on drop.
    pub(crate) lab: Lab,
    pub(crate) target: Target,
    pub(crate) notes: Vec<String>,
    pub(crate) description: String,
}

impl Built {
    /// The client's namespace, where the action runs.
    pub(crate) fn ns(&self) -> &NetNs {
        self.lab.ns()
    }

    /// The peer's namespace, if the lab has one.
    pub(crate) fn peer(&self) -> Option<&NetNs> {
        self.lab.peer_ns()
    }
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

/// Builds the lab with netclaim-lab's builder; `Ok(Err(reason))` when the kernel refuses
/// a sysctl the claim sets.
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
    let mut builder = Lab::builder();
    for (name, value) in &sysctls {
        builder = builder.sysctl(name, value);
    }
    for (name, value) in &lab.sysctls_if_present {
        builder = builder.sysctl_if_present(name, value.text());
    }
    if let Some(link) = &lab.link {
        let spec = link
            .wire_spec(&lab.rules)
            .map_err(|problems| anyhow::anyhow!("lab.link: {}", problems.join("; ")))?;
        builder = builder.link(spec);
    }
    if lab.family == Family::Ipv6 {
        builder = builder.ipv6();
    }
    // listen() takes an int; `check` refuses larger values, so this never wraps negative.
    let asked = lab.backlog.unwrap_or(DEFAULT_BACKLOG);
    let backlog = i32::try_from(asked)
        .with_context(|| format!("lab.backlog {asked} is above listen()'s int range"))?;
    let port = lab.port.unwrap_or_else(|| lab.server.default_port());
    builder = match lab.server {
        Server::None | Server::Refuse => builder.serve(kind::Refuse, port),
        Server::DropSyn => builder.serve(kind::DropSyn, port),
        Server::Blackhole => builder.serve(kind::Blackhole, port),
        Server::Silent => builder.serve(kind::Silent, port),
        Server::NeverAccept => builder.serve(kind::NeverAccept { backlog }, port),
        Server::NeverAcceptUnix => builder.serve(kind::NeverAcceptUnix { backlog }, port),
        Server::Http => builder.serve(kind::Http, port),
        Server::Reject => builder.serve(
            kind::Reject::with(lab.reject_with.clone().unwrap_or_default()),
            port,
        ),
        Server::Unroutable => builder.serve(kind::Unroutable, port),
        Server::DiesAfterHandshake => builder.serve(kind::DiesAfterHandshake, port),
        Server::RstAfterHandshake => builder.serve(kind::RstAfterHandshake, port),
        Server::Trickle => {
            let t = lab
                .trickle
                .context("lab.server = \"trickle\" needs lab.trickle")?;
            builder.serve(
                kind::Trickle {
                    every: t.every.0,
                    bytes: t.bytes,
                },
                port,
            )
        }
        Server::Reply => builder.serve(
            kind::Reply {
                quickack: lab.quickack,
            },
            port,
        ),
        Server::Sink => builder.serve(kind::Sink, port),
    };
    let built = match builder.build() {
        Ok(built) => built,
        Err(e) => {
            return match labs::refusal(&e) {
                Some(r) => Ok(Err(r)),
                None => Err(e).context("building the lab"),
            }
        }
    };
    if let Some(why) = socket_option_refused(built.ns(), spec)? {
        return Ok(Err(why));
    }
    let target = match built.target() {
        Some(netclaim_lab::Target::Tcp(a)) => Target::Tcp(*a),
        Some(netclaim_lab::Target::Tcp6(a)) => Target::Tcp6(*a),
        Some(netclaim_lab::Target::Unix(p)) => Target::Unix(p.clone()),
        None => anyhow::bail!("the lab was built without its target"),
    };
    let description = built.description().unwrap_or_default();
    let description = match (built.wire(), &lab.link) {
        (Some(w), Some(link)) => format!(
            "{description}; between client and peer a wire of netclaim's own: {} (seed {})",
            describe_link(link, &lab.rules),
            w.seed()
        ),
        _ => description.to_owned(),
    };
    Ok(Ok(Built {
        description: format!("lab {}: {description}", built.ns().name()),
        notes: built.notes().to_vec(),
        target,
        lab: built,
    }))
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
        .chain(crate::models::recovery::MODEL_INPUTS)
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

/// Why this kernel will not take a socket option the claim's client sets, tried on a
/// throwaway socket in the lab (ENOPROTOOPT: the kernel lacks it; EINVAL: it refuses the
/// value): the claim is then not applicable here, as for a sysctl it lacks.
fn socket_option_refused(ns: &NetNs, spec: &ClaimSpec) -> Result<Option<String>> {
    let Some(us) = spec.run.as_ref().and_then(|r| r.socket.rto_min_us) else {
        return Ok(None);
    };
    let opts = netclaim_fixtures::conn::SockOpts {
        rto_min_us: Some(us),
        ..Default::default()
    };
    let socket = ns
        .run(|| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None))?
        .context("a socket to try TCP_RTO_MIN_US on")?;
    match opts.apply(&socket) {
        Ok(()) => Ok(None),
        Err(netclaim_harness::Error::Os { source, .. })
            if matches!(
                nix::errno::Errno::from_raw(source.raw_os_error().unwrap_or(0)),
                nix::errno::Errno::ENOPROTOOPT | nix::errno::Errno::EINVAL
            ) =>
        {
            Ok(Some(format!(
                "this kernel refuses the lab: setsockopt(TCP_RTO_MIN_US, {us}) fails with {source}{}",
                if source.raw_os_error() == Some(nix::libc::ENOPROTOOPT) {
                    " (the kernel lacks the option)"
                } else {
                    " (the kernel takes 2 jiffies to 200000 µs)"
                }
            )))
        }
        Err(e) => Err(e).context("trying TCP_RTO_MIN_US"),
    }
}
