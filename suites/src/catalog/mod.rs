//! Every claim, in a stable order: the built-in ones (Rust, and claim files compiled
//! into the binary from `suites/claims/`) and those of the user's claim files.

use std::path::Path;
use std::sync::OnceLock;

use crate::claim::{Claim, DataClaim, Needs, Procedure};
use crate::claims;
use crate::spec::{self, Client, Located, Origin, Server, SpecError};

pub(crate) mod knobs;

/// Which catalog a claim belongs to: what it checks, and so how it is listed, cited and
/// scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Catalog {
    /// The five write-ups in the seeds (their claims cite a seed file).
    Seeds,
    /// The kernel's own documentation: ip-sysctl.rst and the man pages, each claim citing
    /// the document and its version (ids `docs.*`).
    KernelDocs,
    /// What the documents say about TCP on a real network: claims over a wire with delay,
    /// loss or a scripted peer (ids `net.*`).
    Network,
    /// A user's claim file.
    File,
}

impl Catalog {
    /// Its name in listings and reports (`netclaim list --format json`'s `catalog`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Seeds => "seeds",
            Self::KernelDocs => "kernel docs",
            Self::Network => "network",
            Self::File => "file",
        }
    }

    /// The catalog of a built-in claim file, by its name in [`BUILT_IN_FILES`].
    pub fn of_built_in(file: &str) -> Self {
        BUILT_IN_FILES
            .iter()
            .find(|(name, _, _)| *name == file)
            .map_or(Self::Seeds, |(_, catalog, _)| *catalog)
    }
}

impl std::fmt::Display for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The built-in claim files, compiled in: (name, catalog, text).
pub const BUILT_IN_FILES: &[(&str, Catalog, &str)] = &[
    (
        "syn.toml",
        Catalog::Seeds,
        include_str!("../../claims/syn.toml"),
    ),
    (
        "tools.toml",
        Catalog::Seeds,
        include_str!("../../claims/tools.toml"),
    ),
    (
        "mysql.toml",
        Catalog::Seeds,
        include_str!("../../claims/mysql.toml"),
    ),
    (
        "rsync.toml",
        Catalog::Seeds,
        include_str!("../../claims/rsync.toml"),
    ),
    (
        "defaults.toml",
        Catalog::Seeds,
        include_str!("../../claims/defaults.toml"),
    ),
    (
        "backlog.toml",
        Catalog::Seeds,
        include_str!("../../claims/backlog.toml"),
    ),
    (
        "docs-syn.toml",
        Catalog::KernelDocs,
        include_str!("../../claims/docs-syn.toml"),
    ),
    (
        "docs-rejections.toml",
        Catalog::KernelDocs,
        include_str!("../../claims/docs-rejections.toml"),
    ),
    (
        "docs-established.toml",
        Catalog::KernelDocs,
        include_str!("../../claims/docs-established.toml"),
    ),
    (
        "docs-defaults.toml",
        Catalog::KernelDocs,
        include_str!("../../claims/docs-defaults.toml"),
    ),
    (
        "net-handshake.toml",
        Catalog::Network,
        include_str!("../../claims/net-handshake.toml"),
    ),
    (
        "net-established.toml",
        Catalog::Network,
        include_str!("../../claims/net-established.toml"),
    ),
    (
        "net-tools.toml",
        Catalog::Network,
        include_str!("../../claims/net-tools.toml"),
    ),
    (
        "net-keepalive.toml",
        Catalog::Network,
        include_str!("../../claims/net-keepalive.toml"),
    ),
    (
        "net-ack.toml",
        Catalog::Network,
        include_str!("../../claims/net-ack.toml"),
    ),
    (
        "net-recovery.toml",
        Catalog::Network,
        include_str!("../../claims/net-recovery.toml"),
    ),
];

/// The order of the seeds catalog (the order claims appear in reports); claims not
/// listed (the kernel-docs catalog, users' files) follow in file order.
const ORDER: &[&str] = &[
    "syn.default-timeout",
    "syn.default-timeout.telnet",
    "syn.default-timeout-exponential",
    "syn.default-timeout-exponential.telnet",
    "syn.retries-1",
    "syn.retries-1.telnet",
    "syn.retries-1.curl",
    "syn.retries-1.wget",
    "syn.retries-1.nc",
    "syn.retries-1.mysql",
    "syn.retries-sweep",
    "syn.retries-sweep-exponential",
    "syn.drop-rule",
    "syn.telnet-message",
    "syn.retries-5-nc",
    "syn.retries-0",
    "syn.invisible-to-strace",
    "curl.connect-timeout",
    "curl.kernel-gives-up",
    "curl.max-time",
    "wget.connect-timeout",
    "wget.kernel-gives-up",
    "wget.read-timeout",
    "wget.dns-timeout",
    "wget.timeout-sets-all",
    "nc.w-connect",
    "nc.w-idle",
    "mysql.no-timeout",
    "mysql.connect-timeout",
    "mysql.silent-server",
    "mysql.silent-server-timeout",
    "mysql.refused",
    "mysql.no-socket",
    "rsync.contimeout",
    "rsync.timeout",
    "port.exhaustion-errno",
    "port.exhaustion-curl",
    "port.range-size",
    "port.tw-reuse",
    "port.tw-recycle",
    "sysctl.writes-proc",
    "tw.active-closer",
    "tw.duration",
    "tw.reuse-needs-timestamps",
    "tw.concurrent-client-exhaustion",
    "tw.default-values",
    "backlog.unix-eagain",
    "backlog.capped-by-somaxconn",
    "backlog.somaxconn-default",
    "backlog.tcp-full-refused",
    "backlog.syn-backlog-default",
    "backlog.nginx-502",
];

/// The claims written in Rust (a custom procedure the file format cannot express).
pub fn rust_claims() -> Vec<Claim> {
    let mut v = Vec::new();
    v.extend(claims::syn::claims());
    v.extend(claims::tools::claims());
    v.extend(claims::mysql::claims());
    v.extend(claims::rsync::claims());
    v.extend(claims::port::claims());
    v.extend(claims::tw::claims());
    v.extend(claims::backlog::claims());
    v
}

/// The built-in claim files' claims. They are part of the binary: a problem in one is a
/// bug, reported by the tests (`built_in_files_are_valid`).
pub fn data_claims() -> Vec<Claim> {
    static PARSED: OnceLock<Vec<Claim>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            BUILT_IN_FILES
                .iter()
                .flat_map(
                    |(name, _, text)| match spec::parse(text, &Origin::BuiltIn(name)) {
                        Ok(located) => located.into_iter().map(|l| to_claim(l, None)).collect(),
                        Err(errors) => {
                            // Unreachable in a tested build; never a panic at run time.
                            for e in errors {
                                let _ = std::io::Write::write_fmt(
                                    &mut std::io::stderr(),
                                    format_args!("netclaim: built-in claim file: {e}\n"),
                                );
                            }
                            Vec::new()
                        }
                    },
                )
                .collect()
        })
        .clone()
}

/// All built-in claims, in the catalog's order.
pub fn all() -> Vec<Claim> {
    let mut v = rust_claims();
    v.extend(data_claims());
    let rank = |id: &str| ORDER.iter().position(|o| *o == id).unwrap_or(ORDER.len());
    v.sort_by_key(|c| rank(c.id));
    v
}

/// The built-in claims and those of the claim files at `paths` (files, or directories
/// of `*.toml`). Every problem of every file is returned, with its place; ids must be
/// unique across all of them.
pub fn with_files(paths: &[impl AsRef<Path>]) -> Result<Vec<Claim>, Vec<SpecError>> {
    let mut claims = all();
    let mut errors = Vec::new();
    let mut added = Vec::new();
    for path in paths {
        let files = match spec::files_at(path.as_ref()) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for file in files {
            match spec::load(&file) {
                Ok(located) => added.extend(located),
                Err(e) => errors.extend(e),
            }
        }
    }
    // Every id taken so far, and by whom: one lookup per claim (a file of 10,000 claims
    // compared each with every other before).
    let mut taken: std::collections::HashMap<String, String> = claims
        .iter()
        .map(|c| (c.id.to_owned(), c.origin()))
        .collect();
    for l in added {
        if let Some(other) = taken.get(&l.spec.id) {
            errors.push(SpecError {
                file: l.origin.to_string(),
                line: l.line,
                column: l.column,
                message: format!(
                    "claim id {:?} is already taken by {other}: choose another id",
                    l.spec.id
                ),
            });
            continue;
        }
        let dir = match &l.origin {
            Origin::File(p) => Some(claim_dir(p)),
            Origin::BuiltIn(_) => None,
        };
        let claim = to_claim(l, dir);
        taken.insert(claim.id.to_owned(), claim.origin());
        claims.push(claim);
    }
    if errors.is_empty() {
        Ok(claims)
    } else {
        Err(errors)
    }
}

/// The directory of the claim file at `path`, absolute (`{dir}`): the parent made
/// canonical, the current directory for a bare file name ("mine.toml" has the parent "").
pub fn claim_dir(path: &Path) -> std::path::PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parent.canonicalize().unwrap_or_else(|_| {
        // Unreadable now (the file was read a moment ago): at least absolute.
        std::env::current_dir()
            .map(|cwd| cwd.join(parent))
            .unwrap_or_else(|_| parent.to_owned())
    })
}

/// The claim files named by `NETCLAIM_CLAIMS` (paths separated by `:`), for `cargo test`.
pub fn env_paths() -> Vec<std::path::PathBuf> {
    std::env::var_os("NETCLAIM_CLAIMS")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A claim file's claim as a [`Claim`]. Claims live for the whole process, so what they
/// borrow is leaked once.
fn to_claim(l: Located, dir: Option<std::path::PathBuf>) -> Claim {
    let data: &'static DataClaim = Box::leak(Box::new(DataClaim {
        spec: l.spec,
        origin: l.origin,
        dir,
    }));
    let spec = &data.spec;
    let mut tools: Vec<&'static str> = Vec::new();
    if spec.lab.server.drops_syns()
        || matches!(spec.lab.server, Server::Reject | Server::DiesAfterHandshake)
        || spec.run.as_ref().and_then(|r| r.client) == Some(Client::SynOnly)
    {
        tools.push(if spec.lab.family == spec::Family::Ipv6 {
            "ip6tables"
        } else {
            "iptables"
        });
    }
    if let Some(run) = &spec.run {
        if let Some(argv0) = run.command.as_ref().and_then(|c| c.first()) {
            if !argv0.contains('{') {
                tools.push(argv0.as_str());
            }
        }
        if run.trace_connect {
            tools.push("strace");
        }
        if run.client == Some(Client::Fill) {
            tools.push("ss");
        }
    }
    Claim {
        id: spec.id.as_str(),
        source: spec.source.as_str(),
        statement: spec.statement.as_str(),
        lab: leak(describe_lab(spec)),
        action: leak(describe_action(spec)),
        needs: Needs {
            tools: Box::leak(tools.into_boxed_slice()),
        },
        estimate: crate::models::estimate(spec),
        run: Procedure::Data(data),
    }
}

fn describe_lab(spec: &spec::ClaimSpec) -> String {
    let lab = &spec.lab;
    let port = lab.port.unwrap_or_else(|| lab.server.default_port());
    let mut parts = vec![match lab.server {
        Server::None | Server::Refuse => format!("one namespace, nothing listening on 127.0.0.1:{port}"),
        Server::DropSyn => format!(
            "one namespace, iptables -A INPUT -p tcp --dport {port} --syn -j DROP, target 127.0.0.1:{port}"
        ),
        Server::Blackhole => format!(
            "client namespace 192.0.2.1 on veth to a host 192.0.2.2 that drops all input, target 192.0.2.2:{port}"
        ),
        Server::Silent => format!("one namespace, a server on 127.0.0.1:{port} that accepts and never sends"),
        Server::NeverAccept => format!(
            "one namespace, a listener on 127.0.0.1:{port} with listen({}) that never calls accept()",
            lab.backlog.unwrap_or(16)
        ),
        Server::NeverAcceptUnix => format!(
            "one namespace, a unix listener with listen({}) that never calls accept()",
            lab.backlog.unwrap_or(16)
        ),
        Server::Http => format!("one namespace, an HTTP server on 127.0.0.1:{port}"),
        Server::Reject => format!(
            "client namespace 192.0.2.1 on veth to a host 192.0.2.2 whose iptables REJECTs port {port} --reject-with {}",
            lab.reject_with.as_deref().unwrap_or("?")
        ),
        Server::Unroutable => format!("one namespace with only lo: no route to 203.0.113.1:{port}"),
        Server::DiesAfterHandshake => format!(
            "client namespace 192.0.2.1 on veth to a host 192.0.2.2 that accepts on port {port}, then drops every packet"
        ),
        Server::RstAfterHandshake => format!(
            "one namespace, a server on 127.0.0.1:{port} that accepts and resets each connection"
        ),
        Server::Trickle => {
            let t = lab.trickle.unwrap_or(crate::spec::TrickleSpec {
                every: crate::spec::Span(std::time::Duration::from_secs(1)),
                bytes: 4,
            });
            format!(
                "one namespace, an HTTP server on 127.0.0.1:{port} whose {}-byte body comes one byte every {} ms",
                t.bytes,
                t.every.0.as_millis()
            )
        }
        Server::Reply => format!(
            "a server on port {port} that answers each 200-byte request with 100 bytes{}",
            if lab.quickack {
                ", setting TCP_QUICKACK after every recv()"
            } else {
                ""
            }
        ),
        Server::Sink => format!(
            "one namespace, a server on 127.0.0.1:{port} that reads each connection to its end and closes it"
        ),
    }];
    if lab.family == crate::spec::Family::Ipv6 {
        parts[0] = parts[0]
            .replace("127.0.0.1", "[::1]")
            .replace("iptables", "ip6tables");
    }
    if spec.run.is_none() && lab.sysctls.is_empty() {
        parts = vec!["a fresh namespace with the kernel's defaults".into()];
    }
    for (k, v) in &lab.sysctls {
        parts.push(format!("{}={v}", k.rsplit('.').next().unwrap_or(k)));
    }
    for (k, v) in &lab.sysctls_if_present {
        parts.push(format!(
            "{}={v} where the kernel has it",
            k.rsplit('.').next().unwrap_or(k)
        ));
    }
    if let Some(s) = &spec.sweep {
        parts.push(format!(
            "one lab per {} in {}",
            s.sysctl,
            s.values
                .iter()
                .map(|v| v.text())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for name in lab.hosts.keys() {
        parts.push(format!("{name} resolves to the target"));
    }
    parts.join("; ")
}

fn describe_action(spec: &spec::ClaimSpec) -> String {
    let Some(run) = &spec.run else {
        let names: Vec<&str> = spec.expect.sysctls.keys().map(String::as_str).collect();
        return format!("read {}", names.join(", "));
    };
    match (&run.command, run.client) {
        (Some(cmd), _) => {
            let line = cmd.join(" ");
            if run.trace_connect {
                format!("strace -f -e trace=connect {line}, with an in-process capture")
            } else {
                line
            }
        }
        (None, Some(Client::Connect)) => format!(
            "blocking connect() from the in-repo client{}",
            socket_text(&run.socket)
        ),
        (None, Some(Client::Fill)) => "nonblocking connect()s held open until one fails".into(),
        (None, Some(Client::Exhaust)) => "blocking connect()s held open until one fails".into(),
        (None, Some(Client::Send)) => format!(
            "connect(){}; the peer goes silent; send 100 bytes and wait for the error",
            socket_text(&run.socket)
        ),
        (None, Some(Client::Idle)) => format!(
            "connect(){}; the peer goes silent; wait idle for the error",
            socket_text(&run.socket)
        ),
        (None, Some(Client::Close)) => format!(
            "connect(){}, close(), look the socket up (sock_diag) until it is gone",
            socket_text(&run.socket)
        ),
        (None, Some(Client::Stream)) => format!(
            "connect(){}; write until the connection fails (the peer's window is 0)",
            socket_text(&run.socket)
        ),
        (None, Some(Client::SynOnly)) => {
            "one SYN from a raw socket, never answered; look the request up (sock_diag)".into()
        }
        (None, Some(Client::Exchange)) => format!(
            "connect(){}; {} request/reply exchanges, each request two write()s of 100 bytes, then read the reply",
            socket_text(&run.socket),
            crate::models::exchange::EXCHANGES
        ),
        (None, Some(Client::Bulk)) => format!(
            "connect(){}; write {} KiB, shut the write side, read until the sink closes",
            socket_text(&run.socket),
            crate::measure::connection::BULK_BYTES / 1024
        ),
        (None, None) => String::new(),
    }
}

/// The socket options of a client, as words (empty when none).
fn socket_text(s: &spec::SocketSpec) -> String {
    let mut v = Vec::new();
    if let Some(n) = s.syncnt {
        v.push(format!("TCP_SYNCNT={n}"));
    }
    if let Some(t) = s.user_timeout {
        v.push(format!("TCP_USER_TIMEOUT={} ms", t.0.as_millis()));
    }
    if s.keepalive {
        v.push("SO_KEEPALIVE".into());
    }
    for (name, val) in [
        ("TCP_KEEPIDLE", s.keepidle),
        ("TCP_KEEPINTVL", s.keepintvl),
        ("TCP_KEEPCNT", s.keepcnt),
    ] {
        if let Some(x) = val {
            v.push(format!("{name}={x}"));
        }
    }
    if let Some(l) = s.linger {
        v.push(format!("SO_LINGER {{1, {}}}", l.0.as_secs()));
    }
    if let Some(l) = s.linger2 {
        v.push(format!("TCP_LINGER2={l}"));
    }
    if let Some(us) = s.rto_min_us {
        v.push(format!("TCP_RTO_MIN_US={us}"));
    }
    if s.nodelay {
        v.push("TCP_NODELAY".into());
    }
    if s.cork {
        v.push("TCP_CORK".into());
    }
    if v.is_empty() {
        String::new()
    } else {
        format!(" with {}", v.join(", "))
    }
}

/// The default-tier claims whose id contains a filter; all default-tier claims when
/// `filters` is empty. Unknown filters are returned as errors.
pub fn select(filters: &[String]) -> Result<Vec<Claim>, Vec<String>> {
    select_from(all(), filters, false)
}

/// Whether `claim` runs for `filters`: its id contains one (all when there is none); a
/// long-tier claim only with `long`, or when a filter is its exact id.
fn selected(claim: &Claim, filters: &[String], long: bool) -> bool {
    let tier_ok =
        long || claim.tier() == crate::spec::Tier::Default || filters.iter().any(|f| f == claim.id);
    tier_ok && (filters.is_empty() || filters.iter().any(|f| claim.id.contains(f.as_str())))
}

/// [`select`] over a given catalog (built-in plus files); `long` adds the long tier.
/// A filter that matches only long-tier claims without `long` is an error that says so.
pub fn select_from(
    all: Vec<Claim>,
    filters: &[String],
    long: bool,
) -> Result<Vec<Claim>, Vec<String>> {
    let unknown: Vec<String> = filters
        .iter()
        .filter(|f| {
            !all.iter()
                .any(|c| c.id.contains(f.as_str()) && selected(c, std::slice::from_ref(f), long))
        })
        .map(|f| {
            let long_only: Vec<&str> = all
                .iter()
                .filter(|c| c.id.contains(f.as_str()))
                .map(|c| c.id)
                .collect();
            if long_only.is_empty() {
                f.clone()
            } else {
                format!(
                    "{f} (only long-tier claims match: {}; add --long or give the exact id)",
                    long_only.join(", ")
                )
            }
        })
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    Ok(all
        .into_iter()
        .filter(|c| selected(c, filters, long))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_files_are_valid() {
        for (name, _, text) in BUILT_IN_FILES {
            if let Err(errors) = spec::parse(text, &Origin::BuiltIn(name)) {
                panic!(
                    "{}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }

    #[test]
    fn ids_are_unique_and_well_formed() {
        let all = all();
        let mut ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate claim ids");
        for c in &all {
            assert!(
                c.id.contains('.')
                    && c.id.chars().all(|ch| ch.is_ascii_lowercase()
                        || ch.is_ascii_digit()
                        || ".-".contains(ch)),
                "bad id {}",
                c.id
            );
            if let (Catalog::KernelDocs | Catalog::Network, prefix) =
                (c.catalog(), &c.id[..c.id.find('.').unwrap_or(0)])
            {
                assert!(
                    prefix
                        == if c.catalog() == Catalog::KernelDocs {
                            "docs"
                        } else {
                            "net"
                        }
                        && [
                            " Linux ",
                            "man-pages ",
                            "curl ",
                            "MariaDB ",
                            "Wget ",
                            "RFC "
                        ]
                        .iter()
                        .any(|v| c.source.contains(v)),
                    "{}: a {} claim has its catalog's id prefix and cites its document with \
                     its version (kernel, man-pages, tool) or RFC: {}",
                    c.id,
                    c.catalog(),
                    c.source
                );
            } else {
                assert!(
                    c.source.ends_with(".txt"),
                    "{}: source must name a seed file",
                    c.id
                );
            }
            assert!(!c.statement.is_empty(), "{}: empty statement", c.id);
        }
        // Every seed claim is in ORDER, so reports keep their order.
        for c in all.iter().filter(|c| c.catalog() == Catalog::Seeds) {
            assert!(
                ORDER.contains(&c.id),
                "{} is missing from catalog::ORDER",
                c.id
            );
        }
    }

    #[test]
    fn the_kernel_docs_catalog_has_its_claims_and_tiers() {
        let all = all();
        let docs: Vec<&Claim> = all
            .iter()
            .filter(|c| c.catalog() == Catalog::KernelDocs)
            .collect();
        assert!(docs.len() >= 20, "{} kernel-docs claims", docs.len());
        // The default tier keeps a run's wall time at the longest SYN claim's (~131 s):
        // anything longer is in the long tier.
        for c in &all {
            if c.tier() == crate::spec::Tier::Default {
                assert!(
                    c.estimate <= std::time::Duration::from_secs(135),
                    "{} takes ~{} s: give it tier = \"long\"",
                    c.id,
                    c.estimate.as_secs()
                );
            }
        }
        let long: Vec<&str> = docs
            .iter()
            .filter(|c| c.tier() == crate::spec::Tier::Long)
            .map(|c| c.id)
            .collect();
        assert!(long.contains(&"docs.retries2.default"), "{long:?}");
        // Not run by default, nor by a filter that only contains its id; run by --long
        // or its exact id.
        let ids = |v: Vec<Claim>| v.iter().map(|c| c.id).collect::<Vec<_>>();
        assert!(!ids(select(&[]).unwrap()).contains(&"docs.retries2.default"));
        let e = select(&["retries2.default".into()]).unwrap_err();
        assert!(e[0].contains("add --long"), "{e:?}");
        assert_eq!(
            ids(select(&["docs.retries2.default".into()]).unwrap()),
            ["docs.retries2.default"]
        );
        assert!(
            ids(select_from(all.clone(), &[], true).unwrap()).contains(&"docs.retries2.default")
        );
    }

    #[test]
    fn unknown_filters_are_reported() {
        assert_eq!(
            select(&["no.such-claim".into()]).unwrap_err(),
            vec!["no.such-claim".to_string()]
        );
    }

    #[test]
    fn a_claim_files_dir_is_absolute_also_for_a_bare_name() {
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(claim_dir(Path::new("mine.toml")), cwd);
        assert_eq!(claim_dir(Path::new("./mine.toml")), cwd);
        assert_eq!(claim_dir(Path::new("src/mine.toml")), cwd.join("src"));
        assert_eq!(
            claim_dir(Path::new("/proc/self/../mine.toml")),
            Path::new("/proc")
        );
        assert!(claim_dir(Path::new("no-such-dir/mine.toml")).is_absolute());
    }

    #[test]
    fn ids_clash_across_files_too() {
        let dir =
            std::env::temp_dir().join(format!("suites-catalog-clash-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let claim = "[[claim]]\nid = \"mine.same\"\nsource = \"s\"\nstatement = \"s\"\n\
                     expect = { sysctls = { \"net.core.somaxconn\" = 4096 } }\n";
        let (a, b) = (dir.join("a.toml"), dir.join("b.toml"));
        std::fs::write(&a, claim).unwrap();
        std::fs::write(&b, claim).unwrap();
        let errors = with_files(&[&a, &b]).unwrap_err();
        let one = with_files(&[&a]).map(|c| c.len());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].file.ends_with("b.toml"), "{errors:?}");
        assert!(
            errors[0].message.contains(&format!(
                "\"mine.same\" is already taken by {}",
                a.display()
            )),
            "{errors:?}"
        );
        assert_eq!(one.unwrap(), all().len() + 1);
    }

    #[test]
    fn a_file_claim_may_not_take_a_built_in_id() {
        let dir =
            std::env::temp_dir().join(format!("netclaim-catalog-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dup.toml");
        std::fs::write(
            &file,
            "[[claim]]\nid = \"syn.retries-1\"\nsource = \"s\"\nstatement = \"s\"\n\
             [claim.expect]\nsysctls = { \"net.core.somaxconn\" = 128 }\n",
        )
        .unwrap();
        let errors = with_files(&[&file]).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            errors[0].message.contains("already taken by built-in"),
            "{errors:?}"
        );
        assert_eq!(errors[0].line, 1);
    }
}
