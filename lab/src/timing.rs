//! The kernel's timing model as the catalog applies it: the SYN model for what is in
//! force in a namespace, and the windows measured times are judged with. Kernel timers
//! are never early and fire late by up to one granule of the timer-wheel level that holds
//! them (plus a jiffy); a SYN is captured a moment before its timer is armed; lateness
//! accumulates over successive retransmissions.

use std::time::Duration;

use netclaim_harness::model::{SynModel, SynSchedule};
use netclaim_harness::sysctl::knob;
// The windows are the harness's one tolerance policy.
pub use netclaim_harness::tolerance::{
    accumulated_slack, give_up_window, interval_slack, schedule_windows, EARLY,
};
use netclaim_harness::{Error, NetNs, Result};

/// The SYN model for what is in force in `ns`: tcp_syn_retries, tcp_syn_linear_timeouts
/// (absent before Linux 6.5) and tcp_rto_max_ms (absent before 6.15).
pub fn model_in(ns: &NetNs) -> Result<SynModel> {
    let retries = ns.tcp_syn_retries()?;
    let linear = ns.tcp_syn_linear_timeouts()?;
    let mut model = SynModel::new(retries, linear);
    if let Some(ms) = ns.sysctl_opt(knob::TCP_RTO_MAX_MS)? {
        let ms: u64 = ms.trim().parse().map_err(|_| Error::SysctlRejected {
            name: knob::TCP_RTO_MAX_MS.into(),
            value: ms.clone(),
            errno: nix::errno::Errno::EINVAL,
        })?;
        model.rto_max = Duration::from_millis(ms);
    }
    Ok(model)
}

/// How many SYNs the kernel sends before a client abandons the connect at `deadline`
/// (see [`SynSchedule::syns_before`]).
pub fn syns_before(schedule: &SynSchedule, deadline: Duration) -> (usize, usize) {
    schedule.syns_before(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn windows_are_late_only_and_accumulate() {
        let s = SynModel::new(1, None).schedule();
        let (w, give_up) = schedule_windows(&s, 250, Duration::ZERO);
        assert_eq!(w[0].min, Duration::ZERO);
        assert!(w[1].min == S - EARLY && w[1].max > S);
        assert!(give_up.min == 3 * S - EARLY && give_up.max > w[1].max);
        assert_eq!(syns_before(&s, Duration::from_millis(2500)), (2, 2));
        assert_eq!(
            syns_before(&SynModel::new(6, None).schedule(), 3 * S),
            (2, 3)
        );
    }
}
