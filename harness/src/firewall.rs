//! iptables rules inside a lab, through the `iptables` crate.
//!
//! The crate runs the `iptables` binary with `--wait` (the xtables lock) from the calling
//! thread; a child process inherits its thread's namespace, so the methods here call it
//! from a thread inside the lab. The host's own rules are never touched.

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// The `iptables` program, where [`crate::command::which`] finds it (`PATH`, then
/// `/usr/sbin`, `/sbin`): the path that is run, so that a claim is skipped exactly when
/// it could not run. Looked up once per process.
fn program() -> Option<&'static str> {
    static PROGRAM: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(|| crate::command::which("iptables").map(|p| p.to_string_lossy().into_owned()))
        .as_deref()
}

/// The `ip6tables` program (from the same package), looked up as [`program`] is.
fn program6() -> Option<&'static str> {
    static PROGRAM: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            crate::command::which("ip6tables").map(|p| p.to_string_lossy().into_owned())
        })
        .as_deref()
}

/// Whether the `iptables` program is installed.
pub fn available() -> bool {
    program().is_some()
}

/// Why an `IPTables` handle could not be made.
enum HandleError {
    /// `iptables --version` could not be started (fork failed, for instance under a pids
    /// limit): the harness's failure, kept with its errno.
    Spawn(std::io::Error),
    /// It ran but said something this cannot read.
    Version(String),
}

/// An `IPTables` handle that runs [`program`]. `iptables --version` tells whether `-C`
/// and `--wait` exist; the answer does not change within a process, so it is learnt once
/// (a process spawn saved per rule). A failure is not kept: the next rule asks again.
fn handle(cmd: &'static str) -> std::result::Result<iptables::IPTables, HandleError> {
    static PROBE: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();
    let (has_check, has_wait) = match PROBE.get() {
        Some(known) => *known,
        None => {
            let out = std::process::Command::new(cmd)
                .arg("--version")
                .output()
                .map_err(HandleError::Spawn)?;
            let text = String::from_utf8_lossy(&out.stdout);
            let version = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix('v'))
                .ok_or_else(|| {
                    HandleError::Version(format!("{cmd} --version printed no version: {text}"))
                })?;
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let v = (
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
            );
            // As the iptables crate decides: -C since 1.4.11, --wait since 1.4.20.
            *PROBE.get_or_init(|| (v >= (1, 4, 11), v >= (1, 4, 20)))
        }
    };
    Ok(iptables::IPTables {
        cmd,
        has_check,
        has_wait,
        is_numeric: false,
    })
}

impl NetNs {
    fn iptables<T>(
        &self,
        args: &str,
        f: impl FnOnce(&iptables::IPTables) -> Result<T, Box<dyn std::error::Error>> + Send,
    ) -> Result<T>
    where
        T: Send,
    {
        self.xtables(false, args, f)
    }

    /// Runs `f` with `iptables` (or `ip6tables` when `v6`) from a thread in this lab.
    fn xtables<T>(
        &self,
        v6: bool,
        args: &str,
        f: impl FnOnce(&iptables::IPTables) -> Result<T, Box<dyn std::error::Error>> + Send,
    ) -> Result<T>
    where
        T: Send,
    {
        let (found, name) = if v6 {
            (program6(), "ip6tables")
        } else {
            (program(), "iptables")
        };
        let Some(cmd) = found else {
            return Err(Error::ToolMissing {
                program: name.into(),
                package: "iptables".into(),
            });
        };
        let netns = self.name().to_owned();
        self.run(move || {
            let command_line = format!("{cmd} {args} (in {netns})");
            let failed = |message: String| Error::Firewall {
                args: args.into(),
                netns,
                message: message.trim().to_owned(),
            };
            match handle(cmd) {
                // An I/O error means iptables could not even be started (fork failed, for
                // instance under a pids limit): kept with its errno, not as iptables' words.
                Ok(ipt) => f(&ipt).map_err(|e| match e.downcast::<std::io::Error>() {
                    Ok(io) => Error::Spawn {
                        command_line,
                        source: *io,
                    },
                    Err(e)
                        if crate::userns::mode().rootless()
                            && e.to_string().contains("xtables.lock") =>
                    {
                        Error::Rootless {
                            reason: format!(
                                "{cmd} is iptables-legacy, which needs the host's \
                                 /run/xtables.lock, and a user namespace may not open it: use \
                                 iptables-nft (update-alternatives --set iptables \
                                 /usr/sbin/iptables-nft), or run as root"
                            ),
                        }
                    }
                    Err(e) => failed(e.to_string()),
                }),
                Err(HandleError::Spawn(source)) => Err(Error::Spawn {
                    command_line: format!("{cmd} --version"),
                    source,
                }),
                Err(HandleError::Version(message)) => Err(failed(message)),
            }
        })?
    }

    /// Appends `rule` to `chain` of `table` (`iptables -t TABLE -A CHAIN RULE`).
    pub fn iptables_append(&self, table: &str, chain: &str, rule: &str) -> Result<()> {
        let args = format!("-t {table} -A {chain} {rule}");
        self.iptables(&args, |ipt| ipt.append(table, chain, rule))
    }

    /// Appends `rule` to `chain` of `table` of the IPv6 rules (`ip6tables -t TABLE -A
    /// CHAIN RULE`).
    pub fn ip6tables_append(&self, table: &str, chain: &str, rule: &str) -> Result<()> {
        let args = format!("-t {table} -A {chain} {rule}");
        self.xtables(true, &args, |ipt| ipt.append(table, chain, rule))
    }

    /// Drops TCP SYNs to `port` arriving in this namespace (as seed 002 does on loopback).
    pub fn drop_syn_to_port(&self, port: u16) -> Result<()> {
        self.iptables_append("filter", "INPUT", &drop_syn_rule(port))
    }

    /// Drops every packet arriving in this namespace: an unreachable host.
    pub fn drop_all_input(&self) -> Result<()> {
        self.iptables_append("filter", "INPUT", "-j DROP")
    }

    /// The rules of `table`, as `iptables -S` prints them.
    pub fn iptables_rules(&self, table: &str) -> Result<Vec<String>> {
        self.iptables(&format!("-t {table} -S"), |ipt| ipt.list_table(table))
    }
}

/// The rule text that drops SYNs to `port`.
pub fn drop_syn_rule(port: u16) -> String {
    format!("-p tcp --dport {port} --syn -j DROP")
}
