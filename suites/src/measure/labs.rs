//! What the Rust claims share about their labs (which netclaim-lab's builder makes): the
//! SYN-drop port, the SYN model read from a namespace, and what a kernel's refusal to
//! build a lab means for a claim.

use netclaim_harness::sysctl::knob;
// The SYN model for what is in force in a namespace is the library's (it had a copy here).
pub use netclaim_lab::timing::model_in;

use crate::outcome::Outcome;

/// The port every SYN-drop lab listens on (nothing listens; the SYNs are dropped).
pub const DROPPED_PORT: u16 = 7;

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
