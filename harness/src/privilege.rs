//! Whether this process may build labs: it needs CAP_SYS_ADMIN (unshare, setns, mount)
//! and CAP_NET_ADMIN (links, sysctls, iptables) in its effective set — as root, or in a
//! user namespace of its own (see [`crate::userns`]), where it has them over the labs it
//! creates — and a /proc/sys it may write the labs' sysctls through (a container runtime
//! mounts it read-only unless told otherwise, whatever the capabilities).

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

/// As [`check`], with a failure to read this process's own capabilities or mounts (out
/// of descriptors or memory: the harness failing, not a lack of privilege) apart.
pub fn status() -> Result<Result<(), String>, crate::Error> {
    if let Err(reason) = capable()? {
        return Ok(Err(reason));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| crate::Error::os("reading /proc/self/mountinfo", e))?;
    Ok(proc_sys_writable(&mounts))
}

/// Whether this process has the capabilities labs need (the part of [`status`] that a
/// user namespace of its own can give it).
pub fn capable() -> Result<Result<(), String>, crate::Error> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| crate::Error::os("reading /proc/self/status", e))?;
    Ok(capabilities(&status))
}

/// `Err` with the reason and the fix when the mount that holds /proc/sys/net (per
/// `mountinfo`, /proc/self/mountinfo's text) is read-only: every lab sets its sysctls
/// there, and the write would fail with EROFS, which is no finding and no harness
/// failure but a container's setting.
fn proc_sys_writable(mountinfo: &str) -> Result<(), String> {
    const NET: &str = "/proc/sys/net";
    // Fields: id parent major:minor root mount-point mount-options …; the last mount
    // over a path is the one in force, so the longest mount point wins, later first.
    let covering = mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (point, options) = (*f.get(4)?, *f.get(5)?);
            let covers = point == "/"
                || NET == point
                || NET
                    .strip_prefix(point)
                    .is_some_and(|rest| rest.starts_with('/'));
            covers.then_some((point, options))
        })
        .rev()
        .max_by_key(|(point, _)| point.len());
    match covering {
        Some((point, options)) if options.split(',').any(|o| o == "ro") => Err(format!(
            "labs set their sysctls under /proc/sys/net, and {point} is mounted read-only \
             here (a container runtime's default, whatever the capabilities): run the \
             container with --privileged (Kubernetes: securityContext.privileged: true), or \
             leave /proc/sys writable (docker run --security-opt systempaths=unconfined; \
             Kubernetes: securityContext.procMount: Unmasked) beside CAP_SYS_ADMIN and \
             CAP_NET_ADMIN"
        )),
        _ => Ok(()),
    }
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

    /// /proc/self/mountinfo in `docker run --cap-add SYS_ADMIN --cap-add NET_ADMIN`
    /// (Docker 20.10, runc 1.1), shortened.
    const DOCKER: &str = "\
72 48 0:40 / / rw,nodev,noatime master:2 - fuse.fuse-overlayfs fuse-overlayfs rw
73 72 0:42 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
76 72 0:45 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
49 73 0:42 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
52 73 0:42 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw
54 73 0:43 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
";

    #[test]
    fn a_read_only_proc_sys_is_named_with_the_fix() {
        let err = proc_sys_writable(DOCKER).unwrap_err();
        assert!(err.contains("/proc/sys is mounted read-only"), "{err}");
        assert!(err.contains("--privileged"), "{err}");
        assert!(err.contains("systempaths=unconfined"), "{err}");
        // --privileged, or systempaths=unconfined: no mount of its own over /proc/sys.
        let privileged: String = DOCKER
            .lines()
            .filter(|l| !l.contains(" /proc/sys "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(proc_sys_writable(&privileged), Ok(()));
        // A mount over /proc/sysrq-trigger, or a read-only /sys, is not /proc/sys.
        let beside = privileged.replace("/proc/bus", "/proc/sysrq-trigger");
        assert_eq!(proc_sys_writable(&beside), Ok(()));
        // A read-only /proc as a whole is.
        let all = privileged.replace("/ /proc rw,", "/ /proc ro,");
        assert!(proc_sys_writable(&all)
            .unwrap_err()
            .contains("/proc is mounted"));
        // This machine (the test runs wherever the workspace is tested) answers too.
        let here = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let _ = proc_sys_writable(&here);
    }

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
