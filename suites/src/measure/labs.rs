//! The standard labs the Rust claims build for themselves (a SYN-drop namespace, an
//! unreachable host), the SYN model read from a namespace, and what a kernel's refusal
//! to build a lab means for a claim. (The library's lab builder is to replace the labs.)

use std::net::SocketAddrV4;

use anyhow::{Context, Result};
use netclaim_harness::sysctl::knob;
use netclaim_harness::NetNs;
// The SYN model for what is in force in a namespace is the library's (it had a copy here).
pub use netclaim_lab::timing::model_in;

use crate::outcome::Outcome;

/// The port every SYN-drop lab listens on (nothing listens; the SYNs are dropped).
pub const DROPPED_PORT: u16 = 7;

/// A namespace where SYNs to [`DROPPED_PORT`] on loopback are dropped, as in seed 002.
pub struct SynDropLab {
    /// The namespace.
    pub ns: NetNs,
    /// `127.0.0.1:DROPPED_PORT`.
    pub target: SocketAddrV4,
}

impl SynDropLab {
    /// Builds the lab, applying `sysctls` before the DROP rule.
    pub fn new(sysctls: &[(&str, &str)]) -> Result<Self> {
        let ns = NetNs::with_sysctls(sysctls)
            .with_context(|| format!("creating the lab namespace with {sysctls:?}"))?;
        ns.drop_syn_to_port(DROPPED_PORT)
            .with_context(|| format!("installing the SYN DROP rule in {}", ns.name()))?;
        Ok(Self {
            ns,
            target: SocketAddrV4::new([127, 0, 0, 1].into(), DROPPED_PORT),
        })
    }
}

/// A client namespace joined by veth to a host namespace that drops every packet: an
/// unreachable peer at [`BlackholeLab::HOST`], as in seed 000's tests against a dead IP.
pub struct BlackholeLab {
    /// Where the client runs (192.0.2.1).
    pub client: NetNs,
    /// The host that drops everything (192.0.2.2).
    pub host: NetNs,
}

impl BlackholeLab {
    /// The client's address.
    pub const CLIENT: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);
    /// The unreachable host's address.
    pub const HOST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 2);

    /// Builds the lab, applying `sysctls` in the client namespace.
    pub fn new(sysctls: &[(&str, &str)]) -> Result<Self> {
        let client = NetNs::new().context("creating the client namespace")?;
        let host = NetNs::new().context("creating the blackhole namespace")?;
        netclaim_harness::link::veth_pair(&client, Self::CLIENT, &host, Self::HOST, 24)
            .context("linking client and blackhole host")?;
        host.drop_all_input()
            .with_context(|| format!("dropping all input in {}", host.name()))?;
        client
            .set_sysctls(sysctls)
            .with_context(|| format!("setting {sysctls:?} in {}", client.name()))?;
        Ok(Self { client, host })
    }
}

/// The not-applicable outcome for a sysctl this kernel lacks or rejects (the lab cannot
/// be built as the claim needs it); `None` for any other error.
pub fn not_applicable(e: &netclaim_harness::Error) -> Option<Outcome> {
    refusal(e).map(|why| Outcome::forced(crate::outcome::Verdict::NotApplicable, why))
}

/// Why the kernel refuses a lab, for a sysctl it lacks or rejects; `None` for any other
/// error. In a user namespace, a knob the kernel keeps from non-initial user namespaces
/// says so: the same claim may apply as root.
pub fn refusal(e: &netclaim_harness::Error) -> Option<String> {
    use netclaim_harness::Error::{SysctlAbsent, SysctlGlobal, SysctlRejected};
    let name = match e {
        SysctlGlobal { .. } => return Some(format!("not applicable in a lab: {e}")),
        SysctlAbsent { name, .. } | SysctlRejected { name, .. } => name,
        _ => return None,
    };
    if let SysctlAbsent { path, .. } = e {
        // Read from this thread, which is in the host's namespace: a knob the host has and
        // a lab lacks is one the kernel keeps only for the host (global), not a missing one.
        if path.exists() {
            return Some(format!(
                "not applicable in a lab: the kernel keeps {name} only in the host's network namespace (it is global: a lab has none of its own to write, and the host's is never changed)"
            ));
        }
    }
    let mut why = format!("this kernel refuses the lab: {e}");
    if netclaim_harness::userns::mode().rootless() && name.as_str() == knob::SOMAXCONN {
        why.push_str(
            "; the labs run in a user namespace, and Linux before 6.3 does not offer \
             net.core.somaxconn to a network namespace owned by one (sysctl_core_net_init): \
             run as root to measure it",
        );
    }
    Some(why)
}
