//! `net.*` sysctls of one namespace, read and written through `/proc/sys/net`.
//!
//! A `/proc/sys/net` file shows the namespace of the thread that opens it, so the
//! `*_current` functions must run on a thread inside the lab ([`NetNs::run`]); the
//! methods on [`NetNs`] do that for you. Only `net.*` names are accepted: everything else
//! is global to the host.
//!
//! Not every `net.*` knob a namespace shows is its own. The kernel registers most of
//! them per network namespace, but some (most of `net.core`, `net.ipv4.tcp_mem`) exist
//! only in the host's, and are absent in a lab; some are shown to every namespace
//! read-only because their value is global (`net.netfilter.nf_conntrack_max`); and a few
//! are writable everywhere while their write acts on the whole kernel. So before a write
//! [`write_current`] asks the kernel ([`writable_here`]): the knob must exist in the lab,
//! be writable there, not be one whose handler is known to act globally
//! ([`GLOBAL_HANDLERS`], refused by name also in `check`: [`refusal`]), and not name a
//! kernel module that is not loaded ([`MODULE_LOADING`]: the write would load it into the
//! host's kernel).

use std::io::Write;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// Names of the sysctls the claims use.
pub mod knob {
    /// Retransmissions of an active open's SYN.
    pub const TCP_SYN_RETRIES: &str = "net.ipv4.tcp_syn_retries";
    /// Linear (non-doubling) SYN retransmissions before exponential backoff (Linux ≥ 6.5).
    pub const TCP_SYN_LINEAR_TIMEOUTS: &str = "net.ipv4.tcp_syn_linear_timeouts";
    /// Upper bound of the retransmission timeout in milliseconds (Linux ≥ 6.15).
    pub const TCP_RTO_MAX_MS: &str = "net.ipv4.tcp_rto_max_ms";
    /// Cap on listen() backlogs.
    pub const SOMAXCONN: &str = "net.core.somaxconn";
    /// Ephemeral port range for outgoing connections.
    pub const IP_LOCAL_PORT_RANGE: &str = "net.ipv4.ip_local_port_range";
    /// Reuse of TIME_WAIT sockets for new outgoing connections.
    pub const TCP_TW_REUSE: &str = "net.ipv4.tcp_tw_reuse";
    /// Fast recycling of TIME_WAIT sockets (removed in Linux 4.12).
    pub const TCP_TW_RECYCLE: &str = "net.ipv4.tcp_tw_recycle";
    /// TCP timestamps option (RFC 7323).
    pub const TCP_TIMESTAMPS: &str = "net.ipv4.tcp_timestamps";
    /// Reset instead of drop when the accept queue overflows.
    pub const TCP_ABORT_ON_OVERFLOW: &str = "net.ipv4.tcp_abort_on_overflow";
    /// Size of the SYN (request) queue.
    pub const TCP_MAX_SYN_BACKLOG: &str = "net.ipv4.tcp_max_syn_backlog";
    /// SYN cookies.
    pub const TCP_SYNCOOKIES: &str = "net.ipv4.tcp_syncookies";
    /// Lifetime of orphaned FIN_WAIT_2 sockets.
    pub const TCP_FIN_TIMEOUT: &str = "net.ipv4.tcp_fin_timeout";
}

/// Knobs every network namespace shows as writable whose write acts on the whole kernel,
/// with what it does. Checked against the kernel source of each release the catalog runs on
/// (`net/netfilter/nf_hooks_lwtunnel.c`: the handler enables a static key, for every
/// namespace, and refuses to disable it again: EBUSY until reboot).
pub const GLOBAL_HANDLERS: &[(&str, &str)] = &[(
    "net.netfilter.nf_hooks_lwtunnel",
    "its handler enables lightweight-tunnel netfilter hooks for the whole kernel, and once \
     enabled they cannot be disabled again until reboot",
)];

/// Knobs whose value names something the kernel loads as a module when it is not loaded
/// yet (`request_module` from the handler, with the host's privileges), with the knob
/// that lists what is available now.
pub const MODULE_LOADING: &[(&str, &str)] = &[
    (
        "net.ipv4.tcp_congestion_control",
        "net.ipv4.tcp_available_congestion_control",
    ),
    ("net.mptcp.scheduler", "net.mptcp.available_schedulers"),
    (
        "net.mptcp.path_manager",
        "net.mptcp.available_path_managers",
    ),
];

/// Why a lab may never write `name`, whatever the kernel, or `None`. `check` uses it
/// before anything runs; [`writable_here`] adds what only the running kernel can say.
pub fn refusal(name: &str) -> Option<&'static str> {
    let name = dotted(name);
    GLOBAL_HANDLERS
        .iter()
        .find(|(knob, _)| *knob == name)
        .map(|(_, why)| *why)
}

/// Whether writing `value` to `name` changes only the calling thread's namespace, asked
/// of the running kernel: [`Error::SysctlAbsent`] when the namespace does not have the
/// knob (the kernel keeps it only in the host's), [`Error::SysctlGlobal`] when the write
/// would act beyond the namespace.
pub fn writable_here(name: &str, value: &str) -> Result<()> {
    let path = proc_path(name)?;
    let dotted = dotted(name);
    let global = |reason: String| Error::SysctlGlobal {
        name: dotted.clone(),
        reason,
    };
    if let Some(why) = refusal(&dotted) {
        return Err(global(why.to_owned()));
    }
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::SysctlAbsent {
                name: name.into(),
                path,
            })
        }
        Err(e) => return Err(Error::io("stat", path, e)),
    };
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o222 == 0 {
        return Err(global(
            "the kernel shows it read-only in a network namespace other than the host's: \
             its value is global"
                .into(),
        ));
    }
    if let Some((_, list)) = MODULE_LOADING.iter().find(|(knob, _)| *knob == dotted) {
        let available = read_current(list).unwrap_or_default();
        let wanted = value.trim();
        if !available.split_whitespace().any(|a| a == wanted) {
            return Err(global(format!(
                "{wanted:?} is not loaded ({list} = {available:?}), and writing it would load \
                 a kernel module into the host's kernel; load it on the host first \
                 (modprobe) if that is what you want"
            )));
        }
    }
    Ok(())
}

/// The `/proc/sys` path of a `net.*` sysctl, named as `sysctl` writes it
/// (`net.ipv4.tcp_syn_retries`) or as its path under `/proc/sys`
/// (`net/ipv4/tcp_syn_retries`).
pub fn proc_path(name: &str) -> Result<PathBuf> {
    let dotted = dotted(name);
    let valid = dotted.starts_with("net.")
        && dotted
            .split('.')
            .all(|part| !part.is_empty() && part != "..");
    if !valid || name.contains("..") {
        return Err(Error::NotNetSysctl { name: name.into() });
    }
    Ok(PathBuf::from("/proc/sys").join(dotted.replace('.', "/")))
}

/// `net/ipv4/tcp_syn_retries` as `net.ipv4.tcp_syn_retries` (dotted names unchanged).
pub fn dotted(name: &str) -> String {
    if name.contains('/') {
        name.trim_start_matches('/').replace('/', ".")
    } else {
        name.to_owned()
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// Reads a sysctl of the calling thread's namespace; whitespace runs become one space.
pub fn read_current(name: &str) -> Result<String> {
    let path = proc_path(name)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.split_whitespace().collect::<Vec<_>>().join(" ")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::SysctlAbsent {
            name: name.into(),
            path,
        }),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Writes a sysctl of the calling thread's namespace, if the kernel keeps it per
/// namespace ([`writable_here`]).
pub fn write_current(name: &str, value: &str) -> Result<()> {
    let path = proc_path(name)?;
    writable_here(name, value)?;
    let mut file = match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::SysctlAbsent {
                name: name.into(),
                path,
            })
        }
        Err(e) => return Err(Error::io("open", path, e)),
    };
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(|e| match errno_of(&e) {
            errno @ (Errno::EINVAL | Errno::ERANGE | Errno::EPERM | Errno::EOPNOTSUPP) => {
                Error::SysctlRejected {
                    name: name.into(),
                    value: value.into(),
                    errno,
                }
            }
            _ => Error::io("write", path, e),
        })
}

fn parse<T: std::str::FromStr>(name: &str, text: &str) -> Result<T> {
    text.trim().parse().map_err(|_| Error::SysctlRejected {
        name: name.into(),
        value: text.into(),
        errno: Errno::EINVAL,
    })
}

impl NetNs {
    /// Reads a `net.*` sysctl of this namespace.
    pub fn sysctl(&self, name: &str) -> Result<String> {
        self.run(|| read_current(name))?
    }

    /// Reads a sysctl, `None` when this kernel lacks it.
    pub fn sysctl_opt(&self, name: &str) -> Result<Option<String>> {
        match self.sysctl(name) {
            Ok(v) => Ok(Some(v)),
            Err(Error::SysctlAbsent { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a `net.*` sysctl of this namespace.
    pub fn set_sysctl(&self, name: &str, value: &str) -> Result<()> {
        self.run(|| write_current(name, value))?
    }

    /// Writes several sysctls on one thread, in order; stops at the first error.
    pub fn set_sysctls(&self, pairs: &[(&str, &str)]) -> Result<()> {
        self.run(|| pairs.iter().try_for_each(|(n, v)| write_current(n, v)))?
    }

    fn sysctl_num<T: std::str::FromStr>(&self, name: &str) -> Result<T> {
        parse(name, &self.sysctl(name)?)
    }

    /// `net.ipv4.tcp_syn_retries`.
    pub fn tcp_syn_retries(&self) -> Result<u32> {
        self.sysctl_num(knob::TCP_SYN_RETRIES)
    }

    /// Sets `net.ipv4.tcp_syn_retries`.
    pub fn set_tcp_syn_retries(&self, n: u32) -> Result<()> {
        self.set_sysctl(knob::TCP_SYN_RETRIES, &n.to_string())
    }

    /// `net.ipv4.tcp_syn_linear_timeouts`, `None` on kernels before 6.5 that lack it.
    pub fn tcp_syn_linear_timeouts(&self) -> Result<Option<u32>> {
        self.sysctl_opt(knob::TCP_SYN_LINEAR_TIMEOUTS)?
            .map(|v| parse(knob::TCP_SYN_LINEAR_TIMEOUTS, &v))
            .transpose()
    }

    /// Sets `net.ipv4.tcp_syn_linear_timeouts`; [`Error::SysctlAbsent`] before 6.5.
    pub fn set_tcp_syn_linear_timeouts(&self, n: u32) -> Result<()> {
        self.set_sysctl(knob::TCP_SYN_LINEAR_TIMEOUTS, &n.to_string())
    }

    /// `net.core.somaxconn`.
    pub fn somaxconn(&self) -> Result<u32> {
        self.sysctl_num(knob::SOMAXCONN)
    }

    /// Sets `net.core.somaxconn`.
    pub fn set_somaxconn(&self, n: u32) -> Result<()> {
        self.set_sysctl(knob::SOMAXCONN, &n.to_string())
    }

    /// `net.ipv4.ip_local_port_range` as (low, high).
    pub fn ip_local_port_range(&self) -> Result<(u16, u16)> {
        let text = self.sysctl(knob::IP_LOCAL_PORT_RANGE)?;
        let mut it = text.split_whitespace();
        match (it.next(), it.next()) {
            (Some(lo), Some(hi)) => Ok((
                parse(knob::IP_LOCAL_PORT_RANGE, lo)?,
                parse(knob::IP_LOCAL_PORT_RANGE, hi)?,
            )),
            _ => Err(Error::SysctlRejected {
                name: knob::IP_LOCAL_PORT_RANGE.into(),
                value: text,
                errno: Errno::EINVAL,
            }),
        }
    }

    /// Sets `net.ipv4.ip_local_port_range` to `low high`.
    pub fn set_ip_local_port_range(&self, low: u16, high: u16) -> Result<()> {
        self.set_sysctl(knob::IP_LOCAL_PORT_RANGE, &format!("{low} {high}"))
    }

    /// Sets `net.ipv4.tcp_tw_reuse` (0, 1, or 2 = loopback only).
    pub fn set_tcp_tw_reuse(&self, mode: u8) -> Result<()> {
        self.set_sysctl(knob::TCP_TW_REUSE, &mode.to_string())
    }

    /// Sets `net.ipv4.tcp_timestamps`.
    pub fn set_tcp_timestamps(&self, mode: u8) -> Result<()> {
        self.set_sysctl(knob::TCP_TIMESTAMPS, &mode.to_string())
    }

    /// Sets `net.ipv4.tcp_abort_on_overflow`.
    pub fn set_tcp_abort_on_overflow(&self, on: bool) -> Result<()> {
        self.set_sysctl(knob::TCP_ABORT_ON_OVERFLOW, if on { "1" } else { "0" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("net.ipv4.tcp_syn_retries", "/proc/sys/net/ipv4/tcp_syn_retries")]
    #[case("net.core.somaxconn", "/proc/sys/net/core/somaxconn")]
    fn maps_names_to_proc(#[case] name: &str, #[case] path: &str) {
        assert_eq!(proc_path(name).unwrap(), PathBuf::from(path));
    }

    #[rstest]
    #[case("net/ipv4/tcp_syn_retries", "/proc/sys/net/ipv4/tcp_syn_retries")]
    #[case("net/core/somaxconn", "/proc/sys/net/core/somaxconn")]
    fn accepts_the_path_form(#[case] name: &str, #[case] path: &str) {
        assert_eq!(proc_path(name).unwrap(), PathBuf::from(path));
    }

    #[rstest]
    #[case("kernel.hostname")]
    #[case("kernel/hostname")]
    #[case("net/ipv4/../../kernel/hostname")]
    #[case("net..ipv4")]
    #[case("net.ipv4/../../kernel")]
    #[case("vm.swappiness")]
    fn refuses_non_net_names(#[case] name: &str) {
        assert!(matches!(proc_path(name), Err(Error::NotNetSysctl { .. })));
    }

    #[rstest]
    #[case("net.netfilter.nf_hooks_lwtunnel")]
    #[case("net/netfilter/nf_hooks_lwtunnel")]
    fn refuses_knobs_whose_handler_is_global(#[case] name: &str) {
        assert!(refusal(name).is_some_and(|why| why.contains("until reboot")));
    }

    #[rstest]
    #[case("net.ipv4.tcp_syn_retries")]
    #[case("net.core.somaxconn")]
    #[case("net.ipv4.tcp_congestion_control")]
    fn per_namespace_knobs_are_not_refused_by_name(#[case] name: &str) {
        assert_eq!(refusal(name), None);
    }
}
