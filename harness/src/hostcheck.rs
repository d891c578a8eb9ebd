//! A snapshot of the host's own network state, to prove that labs never touch it.
//!
//! It records, from the calling thread's namespace (call it from a thread that never
//! entered a lab, e.g. the main thread): the iptables rules (`iptables-save`, without its
//! timestamp comments), the nftables ruleset, every readable `net.*` sysctl, links,
//! addresses and routes (`ip -o ...`), and this process's `netclaim-<pid>-*` names under
//! `/run/netns` and their mounts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Sysctls that the kernel changes by itself (counters), excluded from the comparison.
const VOLATILE: &[&str] = &["net.netfilter.nf_conntrack_count"];

/// The host's network state at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSnapshot {
    /// Named sections (`iptables-save`, `ip -o link`, ...) and their text.
    pub sections: BTreeMap<String, String>,
    /// Every readable `net.*` sysctl and its value.
    pub sysctls: BTreeMap<String, String>,
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    crate::command::which(program)?;
    let out = Command::new(program).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            let name = path
                .strip_prefix("/proc/sys")
                .map(|p| p.to_string_lossy().replace('/', "."))
                .unwrap_or_default();
            if !VOLATILE.contains(&name.as_str()) {
                out.insert(name, text.trim_end().to_owned());
            }
        }
    }
}

/// Every readable `net.*` sysctl of the calling thread's namespace, by dotted name
/// (counters such as `nf_conntrack_count` left out). Call it inside a fresh lab
/// (`ns.run(net_sysctls)`) to learn the defaults a new namespace starts with.
pub fn net_sysctls() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(Path::new("/proc/sys/net"), &mut out);
    out
}

impl HostSnapshot {
    /// Takes a snapshot of the calling thread's namespace (the host's, from the main
    /// thread or any thread that never entered a lab).
    pub fn take() -> Self {
        let mut sections = BTreeMap::new();
        if let Some(rules) = output_of("iptables-save", &[]) {
            let rules: Vec<&str> = rules.lines().filter(|l| !l.starts_with('#')).collect();
            sections.insert("iptables-save".into(), rules.join("\n"));
        }
        if let Some(ruleset) = output_of("nft", &["list", "ruleset"]) {
            sections.insert("nft list ruleset".into(), ruleset);
        }
        for (name, args) in [
            ("ip -o link", &["-o", "link", "show"][..]),
            ("ip -o addr", &["-o", "addr", "show"][..]),
            ("ip route", &["route", "show", "table", "all"][..]),
            ("ip -6 route", &["-6", "route", "show", "table", "all"][..]),
        ] {
            if let Some(text) = output_of("ip", args) {
                sections.insert(name.into(), text);
            }
        }
        // Only this process's labs: other netclaim runs on the same host (a second
        // `netclaim run`, a CI job next door) come and go on their own.
        sections.insert(
            "netclaim namespaces".into(),
            crate::netns::names_of(std::process::id()).join("\n"),
        );
        let own = format!("{}{}-", crate::netns::NAME_PREFIX, std::process::id());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        sections.insert(
            "netclaim mounts".into(),
            mounts
                .lines()
                .filter(|l| l.contains(&own))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        Self {
            sections,
            sysctls: net_sysctls(),
        }
    }

    /// A description of every difference from `before`; empty when identical.
    pub fn diff(&self, before: &Self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, text) in &self.sections {
            match before.sections.get(name) {
                Some(old) if old == text => {}
                Some(old) => out.push(format!(
                    "{name} changed:\n--- before\n{old}\n--- after\n{text}"
                )),
                None => out.push(format!("{name} appeared:\n{text}")),
            }
        }
        for name in before
            .sections
            .keys()
            .filter(|n| !self.sections.contains_key(*n))
        {
            out.push(format!("{name} disappeared"));
        }
        for (name, value) in &self.sysctls {
            match before.sysctls.get(name) {
                Some(old) if old == value => {}
                Some(old) => out.push(format!("sysctl {name}: {old:?} -> {value:?}")),
                None => out.push(format!("sysctl {name} appeared: {value:?}")),
            }
        }
        for name in before
            .sysctls
            .keys()
            .filter(|n| !self.sysctls.contains_key(*n))
        {
            out.push(format!("sysctl {name} disappeared"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_what_changed() {
        let mut a = HostSnapshot::default();
        a.sysctls.insert("net.core.somaxconn".into(), "4096".into());
        a.sections.insert("iptables-save".into(), "*filter".into());
        let mut b = a.clone();
        assert!(b.diff(&a).is_empty());
        b.sysctls.insert("net.core.somaxconn".into(), "4".into());
        b.sections
            .insert("iptables-save".into(), "*filter\n-A INPUT -j DROP".into());
        let d = b.diff(&a);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d
            .iter()
            .any(|l| l.contains("somaxconn") && l.contains("\"4\"")));
        assert!(d.iter().any(|l| l.contains("-A INPUT -j DROP")));
    }
}
