//! Whether this process may build labs: it needs CAP_SYS_ADMIN (unshare, setns, mount)
//! and CAP_NET_ADMIN (links, sysctls, iptables) in its effective set — as root, or in a
//! user namespace of its own (see [`crate::userns`]), where it has them over the labs it
//! creates.

use std::sync::OnceLock;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// The command that runs tests with privilege, for the hint when no program said how it
/// was started ([`set_command`]).
const TEST_COMMAND: &str = "sudo -E env \"PATH=$PATH\" cargo test";

static COMMAND: OnceLock<String> = OnceLock::new();

/// Says how this program was started (`netclaim run syn.retries-1`), so that the hint
/// for a missing privilege is that very command under sudo. Test binaries leave it unset
/// and get [`TEST_COMMAND`]'s hint. Only the first call counts.
pub fn set_command(command_line: impl Into<String>) {
    let _ = COMMAND.set(command_line.into());
}

fn rerun_hint() -> String {
    match COMMAND.get() {
        Some(cmd) => format!("sudo {cmd}"),
        None => TEST_COMMAND.to_owned(),
    }
}

/// `Ok(())` when labs can be built, otherwise the reason and the fix.
pub fn check() -> Result<(), String> {
    status().map_err(|e| e.to_string())?
}

/// As [`check`], with a failure to read this process's own capabilities (out of
/// descriptors or memory: the harness failing, not a lack of privilege) apart.
pub fn status() -> Result<Result<(), String>, crate::Error> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| crate::Error::os("reading /proc/self/status", e))?;
    Ok(capabilities(&status))
}

fn capabilities(status: &str) -> Result<(), String> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or("no CapEff line in /proc/self/status")?;
    missing(eff)
}

fn missing(eff: u64) -> Result<(), String> {
    let lacks: Vec<&str> = [
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| eff & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if lacks.is_empty() {
        Ok(())
    } else {
        let rootless = match crate::userns::unavailable() {
            Some(why) => format!(", or let them run in a user namespace: {why}"),
            None => String::new(),
        };
        Err(format!(
            "labs need {} to create network namespaces: run as root (`{}`) or in a privileged container{rootless}",
            lacks.join(" and "),
            rerun_hint()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_capabilities() {
        assert!(missing(u64::MAX).is_ok());
        let err = missing(1 << CAP_NET_ADMIN).unwrap_err();
        assert!(
            err.contains("CAP_SYS_ADMIN") && !err.contains("CAP_NET_ADMIN and"),
            "{err}"
        );
        assert!(missing(0)
            .unwrap_err()
            .contains("CAP_SYS_ADMIN and CAP_NET_ADMIN"));
    }
}
