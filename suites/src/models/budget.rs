//! How long a claim file's measurement takes and may take: the estimate that schedules
//! it, the limit its own deadlines add up to, each action's deadline, and how many
//! connections the fill client makes.

use std::collections::BTreeMap;
use std::time::Duration;

use netclaim_harness::sysctl::knob;

use crate::models::connection;
use crate::models::plan::{plan, End, Plan};
use crate::spec::{ClaimSpec, Client, Server};

/// At most this many labs of one sweep exist at once; the other values wait for a free
/// slot. A lab that runs a command holds a namespace, a capture socket, pipes and about
/// six threads, and every spawn forks the whole process, whose cost grows with its
/// address space (every live lab's threads): with all 300 values of a sweep at once,
/// 300 forks of a process holding 300 labs made the sweep quadratic (13 s for 300
/// values, minutes for 1,000). A bounded sweep is linear in its values, and its time
/// follows from [`sweep_rounds`].
pub const SWEEP_JOBS: usize = 32;

/// How many values of `spec`'s sweep one slot runs in turn, at most: the values divided
/// among [`SWEEP_JOBS`] slots (1 without a sweep).
pub fn sweep_rounds(spec: &ClaimSpec) -> u32 {
    let values = spec.sweep.as_ref().map_or(1, |s| s.values.len().max(1));
    u32::try_from(values.div_ceil(SWEEP_JOBS)).unwrap_or(u32::MAX)
}

/// What one lab costs besides its action (namespace, links, rules, server, capture, the
/// spawn), with headroom for a loaded machine: added per value in turn.
const LAB_SETUP: Duration = Duration::from_secs(1);

/// The sysctls the file sets, as the model reads them (linear timeouts assumed: the
/// longer schedule).
fn assumed_in_force(spec: &ClaimSpec) -> BTreeMap<String, String> {
    let mut in_force: BTreeMap<String, String> = spec
        .lab
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.text()))
        .collect();
    in_force
        .entry(knob::TCP_SYN_LINEAR_TIMEOUTS.into())
        .or_insert_with(|| "4".into());
    in_force
}

/// The longest of `per_value` over the sweep's values (or the one lab without a sweep).
fn longest_value(
    spec: &ClaimSpec,
    per_value: impl Fn(&BTreeMap<String, String>) -> Duration,
) -> Duration {
    let in_force = assumed_in_force(spec);
    match &spec.sweep {
        Some(sweep) => sweep
            .values
            .iter()
            .map(|v| {
                let mut f = in_force.clone();
                f.insert(sweep.sysctl.clone(), v.text());
                per_value(&f)
            })
            .max()
            .unwrap_or_default(),
        None => per_value(&in_force),
    }
}

/// A rough run time for scheduling and the hard deadline, from the sysctls the file sets
/// (the kernel's defaults otherwise; linear timeouts assumed, the longer schedule): the
/// longest value's action and its lab's set-up, times the values one sweep slot runs in
/// turn.
pub fn estimate(spec: &ClaimSpec) -> Duration {
    if let Some(e) = spec.estimate {
        return e.0;
    }
    let Some(run) = &spec.run else {
        return LAB_SETUP;
    };
    if let Some(
        c @ (Client::Send
        | Client::Idle
        | Client::Close
        | Client::SynOnly
        | Client::Stream
        | Client::Bulk),
    ) = run.client
    {
        // Its own estimate includes the set-up.
        return connection::estimate(c, spec).saturating_mul(sweep_rounds(spec));
    }
    if run.client == Some(Client::Exchange) {
        return (crate::models::exchange::estimate(spec) + LAB_SETUP)
            .saturating_mul(sweep_rounds(spec));
    }
    let argv = run.command.clone().unwrap_or_default();
    let longest = longest_value(spec, |in_force| {
        // Only when it ends is read: the tool's version changes what it prints, not that.
        let p = plan(spec, in_force, &argv, None, None);
        p.ends_after.unwrap_or_default()
            + match p.end {
                End::Blocks => run.timeout.map_or(Duration::from_secs(30), |t| t.0),
                _ => Duration::ZERO,
            }
    });
    longest
        .saturating_add(run.hold.map_or(Duration::ZERO, |h| h.0))
        .saturating_add(LAB_SETUP)
        .saturating_mul(sweep_rounds(spec))
}

/// The longest the measurement of `spec` may take before the harness's own deadlines end
/// it: per value, the kill deadline of its command or client (`run.timeout`, or the
/// default one [`act`] computes), and its lab's set-up; times the values a sweep slot
/// runs in turn. The claim's hard deadline is never shorter (see
/// [`crate::executor::deadline`]): a claim whose tools are still within their own
/// deadlines is not abandoned.
pub fn limit(spec: &ClaimSpec) -> Duration {
    let Some(run) = &spec.run else {
        return LAB_SETUP;
    };
    let argv = run.command.clone().unwrap_or_default();
    let per_value = longest_value(spec, |in_force| match run.client {
        Some(
            c @ (Client::Send
            | Client::Idle
            | Client::Close
            | Client::SynOnly
            | Client::Stream
            | Client::Bulk),
        ) => after_limit(run, c, spec),
        Some(Client::Fill) => fill_wait(spec)
            .saturating_mul(u32::try_from(fill_cap(spec, in_force)).unwrap_or(u32::MAX)),
        // connect() and the exhaust client end when the kernel gives up: the estimate;
        // a connect holds its connection run.hold longer.
        Some(Client::Connect | Client::Exhaust) => run.hold.map_or(Duration::ZERO, |h| h.0),
        // Each reply waited for at most this long.
        Some(Client::Exchange) => crate::models::exchange::REPLY_LIMIT
            .saturating_mul(crate::models::exchange::EXCHANGES as u32),
        None => command_timeout(run, &plan(spec, in_force, &argv, None, None)),
    });
    per_value
        .saturating_add(LAB_SETUP)
        .saturating_mul(sweep_rounds(spec))
}

/// How long the fill client waits for one connect to complete: a TCP connect to a queue
/// with room completes at once (the SYN-ACK comes over loopback), one to a full queue
/// never does (its SYN is dropped); a unix connect to a full queue fails at once
/// (EAGAIN).
pub(crate) fn fill_wait(spec: &ClaimSpec) -> Duration {
    match spec.lab.server {
        Server::NeverAcceptUnix => Duration::from_secs(1),
        _ => Duration::from_millis(300),
    }
}

/// The most connections the model lets a fill client make: `listen()` caps the backlog
/// at somaxconn, and one more than the backlog is queued (TCP: the accept queue is full
/// when it holds more than the backlog; unix: likewise).
pub(crate) fn fill_expected(spec: &ClaimSpec, in_force: &BTreeMap<String, String>) -> usize {
    let somaxconn = in_force
        .get(knob::SOMAXCONN)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(4096);
    let backlog = u64::from(spec.lab.backlog.unwrap_or(DEFAULT_BACKLOG)).min(somaxconn);
    usize::try_from(backlog)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
}

/// How many connections the fill client makes at most before it stops without a failure:
/// more than the model and the statement expect (the larger of them, and per sweep value),
/// by a quarter and 16 more, so a queue that takes more than either is seen to. Reaching
/// it is the harness's own limit, not an observation: the claim is then an `error`.
pub fn fill_cap(spec: &ClaimSpec, in_force: &BTreeMap<String, String>) -> usize {
    let stated = spec
        .expect
        .each
        .values()
        .filter_map(|e| e.connections)
        .chain(spec.expect.connections)
        .max()
        .unwrap_or(0);
    let most = fill_expected(spec, in_force).max(stated);
    most.saturating_add(most / 4).saturating_add(16)
}

/// The listen() backlog of a never-accept server when the file gives none.
pub const DEFAULT_BACKLOG: u32 = 16;

/// The harness's deadline for a command: `run.timeout`, or twice what the model predicts
/// plus 30 s.
pub(crate) fn command_timeout(run: &crate::spec::RunSpec, p: &Plan) -> Duration {
    run.timeout.map(|t| t.0).unwrap_or_else(|| {
        p.ends_after
            .unwrap_or(Duration::from_secs(10))
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(30))
    })
}

/// The harness's deadline for a client after the SYN: `run.timeout`, or twice its
/// estimate plus 30 s.
pub(crate) fn after_limit(run: &crate::spec::RunSpec, c: Client, spec: &ClaimSpec) -> Duration {
    run.timeout.map(|t| t.0).unwrap_or_else(|| {
        connection::estimate(c, spec)
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(30))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::testing::spec_of;

    fn refused(rest: &str) -> String {
        let errors = crate::spec::parse(
            &format!("[[claim]]\nid = \"t.x\"\nsource = \"s\"\nstatement = \"s\"\n{rest}"),
            &crate::spec::Origin::BuiltIn("t.toml"),
        )
        .expect_err("check must refuse it");
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn sweep_of(n: usize) -> ClaimSpec {
        let values: Vec<String> = (1..=n).map(|v| v.to_string()).collect();
        spec_of(&format!(
            "lab = {{ server = \"refuse\" }}\nrun = {{ command = [\"curl\", \"-sS\", \"http://{{target}}/\"] }}\n\
             sweep = {{ sysctl = \"net.ipv4.tcp_fin_timeout\", values = [{}] }}\nexpect = {{ exit = 7 }}\n",
            values.join(", ")
        ))
    }

    // A sweep of 1,000 values was abandoned at a hard deadline of 62 s computed as if it
    // were one lab (estimate 1 s).
    #[test]
    fn a_sweep_is_estimated_by_the_turns_its_values_take() {
        let one = sweep_of(1);
        let many = sweep_of(1000);
        assert_eq!(sweep_rounds(&one), 1);
        assert_eq!(sweep_rounds(&many), 32);
        assert_eq!(estimate(&many), estimate(&one) * 32);
        assert!(
            estimate(&many) >= Duration::from_secs(32),
            "{:?}",
            estimate(&many)
        );
        // Each value's curl may run until its default deadline (twice 10 s plus 30 s).
        assert_eq!(limit(&many), (Duration::from_secs(50) + LAB_SETUP) * 32);
    }

    #[test]
    fn a_run_timeout_longer_than_the_estimate_sets_the_limit() {
        let s = spec_of(
            "lab = { server = \"refuse\" }\nrun = { command = [\"sh\", \"-c\", \"sleep 100\"], timeout = \"200s\" }\nexpect = { exit = 0 }\n",
        );
        assert_eq!(estimate(&s), LAB_SETUP);
        assert_eq!(limit(&s), Duration::from_secs(200) + LAB_SETUP);
    }

    #[test]
    fn check_refuses_what_a_lab_cannot_be_given() {
        let backlog = refused(
            "lab = { server = \"never-accept\", backlog = 4294967295 }\nrun = { client = \"fill\" }\nexpect = { connections = 1 }\n",
        );
        assert!(
            backlog.contains("lab.backlog 4294967295 is above what listen() takes"),
            "{backlog}"
        );
        assert!(backlog.contains("2147483647"), "{backlog}");
        let zero = refused(
            "lab = { server = \"drop-syn\" }\nrun = { command = [\"curl\", \"http://{target}/\"], timeout = \"0s\" }\nexpect = { exit = 28 }\n",
        );
        assert!(zero.contains("run.timeout is 0"), "{zero}");
        let values: Vec<String> = (1..=1001).map(|v| v.to_string()).collect();
        let many = refused(&format!(
            "lab = {{ server = \"refuse\" }}\nrun = {{ client = \"connect\" }}\n\
             sweep = {{ sysctl = \"net.ipv4.tcp_fin_timeout\", values = [{}] }}\n",
            values.join(", ")
        ));
        assert!(
            many.contains("sweep.values has 1001 values: at most 1000"),
            "{many}"
        );
        // The largest int is accepted (the kernel caps it at somaxconn).
        spec_of(
            "lab = { server = \"never-accept\", backlog = 2147483647 }\nrun = { client = \"fill\" }\nexpect = { connections = 1 }\n",
        );
    }
}
