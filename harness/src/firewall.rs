//! iptables rules inside a lab, through the `iptables` crate.
//!
//! The crate runs the `iptables` binary with `--wait` (the xtables lock) from the calling
//! thread; a child process inherits its thread's namespace, so the methods here call it
//! from a thread inside the lab. The host's own rules are never touched.

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// Whether the `iptables` binary is on `PATH`.
pub fn available() -> bool {
    crate::command::which("iptables").is_some()
}

/// An `IPTables` handle. `iptables::new` runs `iptables --version` to learn whether `-C`
/// and `--wait` exist; the answer does not change within a process, so it is learnt once
/// (a process spawn saved per rule).
fn handle() -> Result<iptables::IPTables, String> {
    static PROBE: std::sync::OnceLock<Result<(bool, bool), String>> = std::sync::OnceLock::new();
    let (has_check, has_wait) = PROBE
        .get_or_init(|| {
            iptables::new(false)
                .map(|ipt| (ipt.has_check, ipt.has_wait))
                .map_err(|e| e.to_string())
        })
        .clone()?;
    Ok(iptables::IPTables {
        cmd: "iptables",
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
        if !available() {
            return Err(Error::ToolMissing {
                program: "iptables".into(),
                package: "iptables".into(),
            });
        }
        let netns = self.name().to_owned();
        self.run(move || {
            let failed = |message: String| Error::Firewall {
                args: args.into(),
                netns,
                message: message.trim().to_owned(),
            };
            match handle() {
                Ok(ipt) => f(&ipt).map_err(|e| failed(e.to_string())),
                Err(message) => Err(failed(message)),
            }
        })?
    }

    /// Appends `rule` to `chain` of `table` (`iptables -t TABLE -A CHAIN RULE`).
    pub fn iptables_append(&self, table: &str, chain: &str, rule: &str) -> Result<()> {
        let args = format!("-t {table} -A {chain} {rule}");
        self.iptables(&args, |ipt| ipt.append(table, chain, rule))
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
