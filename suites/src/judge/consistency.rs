//! Whether a record can be judged at all: what in it contradicts its claim, the run it
//! was recorded in or itself, and when the harness's own limits cut it short.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use netclaim_harness::sysctl::knob;

use crate::models::budget::fill_expected;
use crate::models::plan::{End, Plan};
use crate::models::tools::Program;
use crate::outcome::Ctx;
use crate::record::{substitute, LabRecord, Measurement, RunRecord, Target};
use crate::spec::{ClaimSpec, ExpectSpec, Value};
use crate::text::secs;

/// What in a measurement of `spec` contradicts the claim, the run it was recorded in
/// (`ctx`) or itself: each problem in words. Checked before judging (see
/// [`crate::claim::Claim::judge`]).
pub fn inconsistencies(spec: &ClaimSpec, m: &Measurement, ctx: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    if m.hz != ctx.hz {
        out.push(format!(
            "measured with hz {} in a run with hz {}",
            m.hz, ctx.hz
        ));
    }
    if m.kernel != ctx.kernel {
        out.push(format!(
            "measured on Linux {:?} in a run on Linux {:?}",
            m.kernel, ctx.kernel
        ));
    }
    for name in spec.expect.sysctls.keys().chain(spec.model.defaults.keys()) {
        if !m.fresh.contains_key(name) {
            out.push(format!(
                "the claim reads {name} in a fresh namespace; the record does not have it"
            ));
        }
    }
    match (&spec.sweep, &m.lab) {
        (Some(sweep), _) => {
            let asked: Vec<String> = sweep.values.iter().map(Value::text).collect();
            let recorded: Vec<&String> = m.sweep.iter().map(|(v, _)| v).collect();
            if recorded != asked.iter().collect::<Vec<_>>() {
                out.push(format!(
                    "the claim sweeps {} over {asked:?}; the record has {recorded:?}",
                    sweep.sysctl
                ));
            }
            if m.lab.is_some() {
                out.push("a sweep recorded with a single lab".into());
            }
            for (value, lab) in &m.sweep {
                let name = sweep.sysctl.rsplit('.').next().unwrap_or("");
                let label = format!("{name}={value}: ");
                let extra = Some((sweep.sysctl.as_str(), value.as_str()));
                out.extend(
                    lab_inconsistencies(spec, lab, extra)
                        .into_iter()
                        .map(|p| format!("{label}{p}")),
                );
            }
        }
        (None, Some(lab)) => {
            if !m.sweep.is_empty() {
                out.push("a claim without a sweep recorded with sweep values".into());
            }
            out.extend(lab_inconsistencies(spec, lab, None));
        }
        (None, None) => {
            if spec.run.is_some() || !spec.lab.sysctls.is_empty() {
                out.push("the claim builds a lab; the record has none".into());
            }
        }
    }
    out
}

/// Whether a value read back from `/proc/sys` is the one written: the same words (the
/// kernel separates a range with a tab), or for a port list the same ports
/// (`40001,40000` reads back as `40000-40001`).
fn same_sysctl_value(written: &str, read: &str) -> bool {
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    if words(written) == words(read) {
        return true;
    }
    let ports = |s: &str| -> Option<std::collections::BTreeSet<u32>> {
        let mut all = std::collections::BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi) = (
                lo.trim().parse::<u32>().ok()?,
                hi.trim().parse::<u32>().ok()?,
            );
            if hi < lo || hi > 65535 {
                return None;
            }
            all.extend(lo..=hi);
        }
        Some(all)
    };
    matches!((ports(written), ports(read)), (Some(a), Some(b)) if a == b)
}

/// The largest number of SYNs one connection can send with the sysctls in force (and the
/// client's TCP_SYNCNT): the first and `tcp_syn_retries + tcp_syn_linear_timeouts`
/// retransmissions (tcp_write_timeout gives up then at the latest). `None` when the record
/// does not show tcp_syn_retries in force (older records).
fn max_syns(spec: &ClaimSpec, in_force: &BTreeMap<String, String>) -> Option<u64> {
    let num = |k: &str| in_force.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    let retries = match spec.run.as_ref().and_then(|r| r.socket.syncnt) {
        Some(n) => u64::from(n),
        None => num(knob::TCP_SYN_RETRIES)?,
    };
    Some(
        retries
            .saturating_add(num(knob::TCP_SYN_LINEAR_TIMEOUTS).unwrap_or(0))
            .saturating_add(1),
    )
}

/// What the kernel accepts for the sysctls the models read (net/ipv4/sysctl_net_ipv4.c,
/// net/core/sysctl_net_core.c): a record showing another value in force did not come from
/// a kernel, and the models are not asked about it (a tcp_syn_retries of 4,000,000,000
/// would have them count SYNs for ever).
const IN_FORCE_RANGES: &[(&str, u64, u64)] = &[
    (knob::TCP_SYN_RETRIES, 1, 127),
    (knob::TCP_SYN_LINEAR_TIMEOUTS, 0, 127),
    (knob::TCP_RTO_MAX_MS, 1, 120_000),
    (knob::SOMAXCONN, 0, i32::MAX as u64),
    ("net.ipv4.tcp_retries2", 0, 255),
    ("net.ipv4.tcp_synack_retries", 0, 255),
    ("net.ipv4.tcp_keepalive_probes", 0, 255),
    ("net.ipv4.tcp_keepalive_time", 0, i32::MAX as u64),
    ("net.ipv4.tcp_keepalive_intvl", 0, i32::MAX as u64),
    ("net.ipv4.tcp_fin_timeout", 0, i32::MAX as u64),
    ("net.ipv4.tcp_rto_min_us", 1, i32::MAX as u64),
];

/// Errnos the kernel has (`MAX_ERRNO`).
const MAX_ERRNO: i32 = 4095;

fn lab_inconsistencies(
    spec: &ClaimSpec,
    lab: &LabRecord,
    sweep: Option<(&str, &str)>,
) -> Vec<String> {
    let mut out = Vec::new();
    if lab.refused.is_some() {
        return out;
    }
    let set = spec
        .lab
        .sysctls
        .iter()
        .map(|(k, v)| (k.as_str(), v.text(), true))
        .filter(|(k, _, _)| sweep.is_none_or(|(name, _)| name != *k))
        .chain(
            spec.lab
                .sysctls_if_present
                .iter()
                .map(|(k, v)| (k.as_str(), v.text(), false)),
        )
        .chain(sweep.map(|(k, v)| (k, v.to_owned(), true)));
    for (name, value, required) in set {
        match lab.in_force.get(name) {
            Some(read) if !same_sysctl_value(&value, read) => out.push(format!(
                "the claim sets {name}={value}; the record shows {name}={read} in force"
            )),
            None if required => out.push(format!(
                "the claim sets {name}={value}; the record does not show it in force"
            )),
            _ => {}
        }
    }
    for (name, lo, hi) in IN_FORCE_RANGES {
        if let Some(read) = lab.in_force.get(*name) {
            if !read
                .trim()
                .parse::<u64>()
                .is_ok_and(|v| (*lo..=*hi).contains(&v))
            {
                out.push(format!(
                    "{name}={read} in force, which the kernel does not accept ({lo}..={hi})"
                ));
            }
        }
    }
    if let Some(range) = lab.in_force.get(knob::IP_LOCAL_PORT_RANGE) {
        let ports: Vec<Option<u16>> = range.split_whitespace().map(|p| p.parse().ok()).collect();
        if !matches!(ports.as_slice(), [Some(lo), Some(hi)] if lo <= hi) {
            out.push(format!(
                "{}={range} in force, which is not a range of ports",
                knob::IP_LOCAL_PORT_RANGE
            ));
        }
    }
    let Some(run) = &lab.run else {
        if spec.run.is_some() {
            out.push("the claim runs an action; the record has no run".into());
        }
        return out;
    };
    let is_command = spec.run.as_ref().is_some_and(|r| r.command.is_some());
    if let Some(command) = spec.run.as_ref().and_then(|r| r.command.as_ref()) {
        // The command line the record ran is the claim's, placeholders filled from the
        // lab's target ({dir} from wherever the file was: any text).
        let target = lab
            .target
            .parse::<SocketAddr>()
            .map(|a| match a {
                SocketAddr::V4(a) => Target::Tcp(a),
                SocketAddr::V6(a) => Target::Tcp6(a),
            })
            .unwrap_or_else(|_| Target::Unix(PathBuf::from(&lab.target)));
        let fits = |arg: &String, ran: &String| {
            if arg.contains("{dir}") {
                let (head, tail) = arg.split_once("{dir}").unwrap_or((arg, ""));
                let head = substitute(head, &target, None);
                let tail = substitute(tail, &target, None);
                ran.starts_with(&head) && ran.ends_with(&tail)
            } else {
                substitute(arg, &target, None) == *ran
            }
        };
        if run.argv.len() != command.len()
            || !command.iter().zip(&run.argv).all(|(a, r)| fits(a, r))
        {
            out.push(format!(
                "the claim runs {command:?}; the record ran {:?}",
                run.argv
            ));
        }
    }
    if let (true, Some(code)) = (run.timed_out, run.exit_code) {
        // The deadline kills the process group with SIGKILL: no exit code.
        out.push(format!(
            "killed at the harness's deadline (timed_out), yet it exited by itself with code {code}"
        ));
    }
    if let (true, Some(t)) = (run.timed_out, run.timeout_us) {
        if run.duration_us.saturating_add(10_000) < t {
            out.push(format!(
                "ended at its deadline of {} after only {}",
                secs(Duration::from_micros(t)),
                secs(run.duration())
            ));
        }
    }
    if let Some(code) = run.exit_code.filter(|c| !(0..=255).contains(c)) {
        out.push(format!(
            "exit code {code} is not one a process can exit with (0..=255)"
        ));
    }
    if !is_command && run.exit_code.is_some() {
        out.push("an exit code recorded for an in-repo client".into());
    }
    if let Some(e) = run.errno.filter(|e| !(1..=MAX_ERRNO).contains(e)) {
        out.push(format!(
            "errno {e} is not one the kernel has (1..={MAX_ERRNO})"
        ));
    }
    if run.duration_us > MAX_RECORDED_US {
        out.push(format!("a run of {} µs is beyond any run", run.duration_us));
    }
    // SYNs: ordered, from the first, split into connections that add up, within the run,
    // and no more per connection than the kernel sends before it gives up.
    let syns = &run.syn_times_us;
    if syns.first().is_some_and(|t| *t != 0) {
        out.push(format!(
            "SYN times count from the first SYN, yet they start at {} µs",
            syns[0]
        ));
    }
    if syns.windows(2).any(|w| w[1] < w[0]) {
        out.push("SYN times go back in time".into());
    }
    if run.conn_starts_us.windows(2).any(|w| w[1] < w[0]) {
        out.push("connections start back in time".into());
    }
    if !run.conn_syns.is_empty() {
        let total = run
            .conn_syns
            .iter()
            .fold(0usize, |a, n| a.saturating_add(*n));
        if total != syns.len() {
            out.push(format!(
                "{} SYNs on the wire, but the connections add up to {total}",
                syns.len()
            ));
        }
        if run.conn_starts_us.len() != run.conn_syns.len() {
            out.push(format!(
                "{} connections started, but SYN counts for {}",
                run.conn_starts_us.len(),
                run.conn_syns.len()
            ));
        }
    }
    if !run.conn_fins_us.is_empty() && run.conn_fins_us.len() != run.conn_starts_us.len() {
        out.push(format!(
            "{} connections started, but FINs recorded for {}",
            run.conn_starts_us.len(),
            run.conn_fins_us.len()
        ));
    }
    if let Some(max) = max_syns(spec, &lab.in_force) {
        let per_conn: Vec<u64> = if run.conn_syns.is_empty() {
            vec![syns.len() as u64]
        } else {
            run.conn_syns.iter().map(|n| *n as u64).collect()
        };
        if let Some(n) = per_conn.iter().find(|n| **n > max) {
            out.push(format!(
                "{n} SYNs on one connection, where the sysctls in force allow at most {max} (tcp_syn_retries or TCP_SYNCNT, plus tcp_syn_linear_timeouts, plus the first)"
            ));
        }
    }
    if let Some(timed) = &run.timed {
        if timed.syn_times_us != run.syn_times_us {
            out.push("the timed attempt's SYN times differ from the run's".into());
        }
    }
    if let (Some(n), Some(cap)) = (run.connections, run.connection_cap) {
        if n > cap {
            out.push(format!("{n} connections from a client capped at {cap}"));
        }
    }
    if let Some((recv_q, send_q)) = run.listener_queue {
        if recv_q > send_q.saturating_add(1) {
            out.push(format!(
                "the listener queues {recv_q} connections with a backlog of {send_q}: at most one more fits"
            ));
        }
    }
    out
}

/// [`crate::recording::MAX_RECORDED`] in µs.
const MAX_RECORDED_US: u64 = crate::recording::MAX_RECORDED.as_micros() as u64;

/// When the harness ended the run at its own deadline and the claim is not about that
/// (`expect.killed` on a command, or a command the model predicts blocks until killed),
/// why the measurement is no observation: it was cut short, whatever it shows. A `1s`
/// run.timeout on a curl that gives up after 3 s says nothing about curl's 3 s.
pub(crate) fn cut_short(
    spec: &ClaimSpec,
    expect: &ExpectSpec,
    run: &RunRecord,
    plan: &Plan,
) -> Option<String> {
    if !run.timed_out {
        return None;
    }
    let is_command = spec.run.as_ref().is_some_and(|r| r.command.is_some());
    // A statement about a run the harness ends: a command still blocked, a connection
    // still up (`idle`).
    if expect.killed.is_some() || (is_command && plan.end == End::Blocks) {
        return None;
    }
    let set = spec.run.as_ref().and_then(|r| r.timeout).is_some();
    let deadline = match (run.timeout_us, set) {
        (Some(us), true) => format!("its run.timeout of {}", secs(Duration::from_micros(us))),
        (Some(us), false) => format!(
            "its default deadline of {} (twice the prediction plus 30 s)",
            secs(Duration::from_micros(us))
        ),
        (None, _) => "its deadline".to_owned(),
    };
    let after = secs(run.duration());
    let who = plan.program.map_or(
        if is_command {
            "the command"
        } else {
            "the client"
        },
        Program::name,
    );
    let predicted = match (&plan.end, plan.ends_after, &plan.schedule) {
        (End::Kernel, Some(d), _) => format!("the kernel gives up after {}", secs(d)),
        (End::NoLaterThanKernel, Some(d), _) => {
            format!(
                "{who} ends no later than the kernel gives up, after {}",
                secs(d)
            )
        }
        (End::ToolConnect { .. } | End::ToolRead { .. }, Some(d), _) => {
            format!("{who} gives up by itself after {}", secs(d))
        }
        (End::AfterSyn(_), _, Some(s)) => format!("the kernel ends it after {}", secs(s.give_up)),
        (End::Refused | End::Rejected(_), _, _) => format!("{who} fails at once"),
        _ => format!("{who} ends by itself"),
    };
    let ended = if is_command {
        format!("the harness killed {who} at {deadline}, after {after}")
    } else {
        format!("the harness stopped waiting for {who} at {deadline}, after {after}")
    };
    let advice = if is_command {
        "give a longer run.timeout, or expect.killed = true if being killed is what the claim is about"
    } else {
        "give a longer run.timeout"
    };
    Some(format!(
        "{ended}, before it ended by itself (the model predicts: {predicted}): a measurement \
         cut short by the harness is not an observation; {advice}"
    ))
}

/// When a fill client stopped at its own cap, why that is no observation: the harness's
/// limit, not the queue's.
pub(crate) fn capped(spec: &ClaimSpec, lab: &LabRecord, run: &RunRecord) -> Option<String> {
    let (Some(cap), Some(n)) = (run.connection_cap, run.connections) else {
        return None;
    };
    (n >= cap).then(|| {
        let stated = spec
            .expect
            .connections
            .map(|c| format!(", the claim {c}"))
            .unwrap_or_default();
        format!(
            "the fill client stopped at its cap of {cap} connections without a failure (the \
             model expects {}{stated}): the harness's limit, not the queue's; not an observation",
            fill_expected(spec, &lab.in_force)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::judge;
    use crate::models::budget::fill_cap;
    use crate::outcome::Verdict;
    use crate::record::attempt::Attempt;
    use crate::record::connection::AfterRecord;
    use crate::record::testing::{in_force, spec_of};

    // backlog = 1000 with expect.connections = 1001 was refuted with "observed 300": the
    // client stopped at a fixed 300.
    #[test]
    fn the_fill_clients_cap_follows_the_model_and_reaching_it_is_an_error() {
        let spec = spec_of(
            "lab = { server = \"never-accept\", backlog = 1000 }\nrun = { client = \"fill\" }\nexpect = { connections = 1001 }\n",
        );
        let f = in_force(&[(knob::SOMAXCONN, "4096")]);
        assert_eq!(fill_expected(&spec, &f), 1001);
        let cap = fill_cap(&spec, &f);
        assert!(cap > 1001, "{cap}");
        // somaxconn caps the backlog: the model expects 129, the statement 1001.
        assert_eq!(
            fill_expected(&spec, &in_force(&[(knob::SOMAXCONN, "128")])),
            129
        );
        assert!(fill_cap(&spec, &in_force(&[(knob::SOMAXCONN, "128")])) > 1001);

        let measured = |connections: usize, errno: Option<i32>| Measurement {
            kernel: "6.18".into(),
            hz: 250,
            lab: Some(LabRecord {
                name: "netclaim-1-1".into(),
                target: "127.0.0.1:8080".into(),
                in_force: f.clone(),
                run: Some(RunRecord {
                    command_line: "fill".into(),
                    connections: Some(connections),
                    connection_cap: Some(cap),
                    errno,
                    listener_queue: Some((1001, 1000)),
                    ..RunRecord::default()
                }),
                ..LabRecord::default()
            }),
            ..Measurement::default()
        };
        let full = judge(&spec, &measured(1001, None));
        assert_eq!(full.verdict(), Verdict::Holds, "{}", full.reason());
        let capped = judge(&spec, &measured(cap, None));
        assert_eq!(capped.verdict(), Verdict::Error);
        assert!(
            capped
                .reason()
                .contains(&format!("stopped at its cap of {cap} connections")),
            "{}",
            capped.reason()
        );
    }

    fn curl_spec(extra: &str) -> ClaimSpec {
        spec_of(&format!(
            "lab = {{ server = \"drop-syn\", sysctls = {{ \"net.ipv4.tcp_syn_retries\" = 1 }} }}\n\
             run = {{ command = [\"curl\", \"-sS\", \"--connect-timeout\", \"999\", \"http://{{target}}/\"], timeout = \"1s\" }}\n\
             expect = {{ duration = \"3s\"{extra} }}\n"
        ))
    }

    fn killed_curl() -> Measurement {
        let run = RunRecord {
            command_line: "curl -sS --connect-timeout 999 http://127.0.0.1:7/".into(),
            argv: [
                "curl",
                "-sS",
                "--connect-timeout",
                "999",
                "http://127.0.0.1:7/",
            ]
            .map(String::from)
            .to_vec(),
            exit_code: None,
            timed_out: true,
            timeout_us: Some(1_000_000),
            duration_us: 1_004_000,
            syn_times_us: vec![0, 1_000_000],
            conn_starts_us: vec![0],
            conn_syns: vec![2],
            timed: Some(Attempt {
                syn_times_us: vec![0, 1_000_000],
                first_packet_us: Some(4_000),
                duration_us: 1_004_000,
                tool: true,
                ..Attempt::default()
            }),
            ..RunRecord::default()
        };
        Measurement {
            kernel: "6.18".into(),
            hz: 250,
            lab: Some(LabRecord {
                name: "netclaim-1-1".into(),
                target: "127.0.0.1:7".into(),
                in_force: in_force(&[
                    (knob::TCP_SYN_RETRIES, "1"),
                    (knob::TCP_SYN_LINEAR_TIMEOUTS, "4"),
                ]),
                run: Some(run),
                ..LabRecord::default()
            }),
            ..Measurement::default()
        }
    }

    // run.timeout = "1s" on a curl that gives up after 3 s was `refuted` ("give-up
    // observed 0.992 s"): the harness's kill is no observation of curl.
    #[test]
    fn a_run_cut_short_by_the_harness_is_an_error_not_a_refutation() {
        let spec = curl_spec("");
        let m = killed_curl();
        let ctx = Ctx {
            hz: 250,
            kernel: "6.18".into(),
        };
        assert_eq!(inconsistencies(&spec, &m, &ctx), Vec::<String>::new());
        let o = judge(&spec, &m);
        assert_eq!(o.verdict(), Verdict::Error, "{}", o.reason());
        for needle in [
            "killed curl at its run.timeout of 1.000 s",
            "the kernel gives up after 3.000 s",
            "give a longer run.timeout",
            "expect.killed = true",
        ] {
            assert!(o.reason().contains(needle), "{needle:?} in {}", o.reason());
        }
        // When being killed is what the claim says, the kill is the observation.
        let killed = curl_spec(", killed = true");
        let o = judge(&killed, &m);
        assert_ne!(o.verdict(), Verdict::Error, "{}", o.reason());
        // A client after the SYN that the harness stopped waiting for: the same.
        let close = spec_of(
            "lab = { server = \"silent\", sysctls = { \"net.ipv4.tcp_fin_timeout\" = 5 } }\nrun = { client = \"close\", timeout = \"1s\" }\nexpect = { duration = \"5s\" }\n",
        );
        let mut m = killed_curl();
        if let Some(run) = m.lab.as_mut().and_then(|l| l.run.as_mut()) {
            run.argv.clear();
            run.syn_times_us = vec![0];
            run.conn_syns = vec![1];
            run.timed = None;
            run.after = Some(AfterRecord::default());
        }
        let o = judge(&close, &m);
        assert_eq!(o.verdict(), Verdict::Error, "{}", o.reason());
        assert!(
            o.reason()
                .contains("stopped waiting for the client at its run.timeout"),
            "{}",
            o.reason()
        );
    }

    fn run(m: &mut Measurement) -> &mut RunRecord {
        m.lab.as_mut().and_then(|l| l.run.as_mut()).expect("a run")
    }

    // A record that contradicts its claim or itself is not judged: the sysctl the claim
    // sets in force, no more SYNs than it allows, a kill that is a kill.
    #[test]
    fn a_record_that_contradicts_its_claim_or_itself_is_found() {
        let spec = curl_spec("");
        let ctx = Ctx {
            hz: 250,
            kernel: "6.18".into(),
        };
        let with = |change: fn(&mut Measurement)| {
            let mut m = killed_curl();
            change(&mut m);
            inconsistencies(&spec, &m, &ctx).join("; ")
        };
        let retries = with(|m| {
            if let Some(l) = m.lab.as_mut() {
                l.in_force.insert(knob::TCP_SYN_RETRIES.into(), "7".into());
            }
        });
        assert!(
            retries.contains("the claim sets net.ipv4.tcp_syn_retries=1; the record shows net.ipv4.tcp_syn_retries=7 in force"),
            "{retries}"
        );
        let syns = with(|m| {
            let r = run(m);
            r.syn_times_us = (0..13).map(|i| i * 1000).collect();
            r.conn_syns = vec![13];
            r.timed = None;
        });
        assert!(
            syns.contains("13 SYNs on one connection, where the sysctls in force allow at most 6"),
            "{syns}"
        );
        let exited = with(|m| run(m).exit_code = Some(0));
        assert!(
            exited
                .contains("killed at the harness's deadline (timed_out), yet it exited by itself"),
            "{exited}"
        );
        let hz = with(|m| m.hz = 0);
        assert!(
            hz.contains("measured with hz 0 in a run with hz 250"),
            "{hz}"
        );
        let early = with(|m| run(m).duration_us = 200_000);
        assert!(
            early.contains("ended at its deadline of 1.000 s after only 0.200 s"),
            "{early}"
        );
        let adds = with(|m| run(m).conn_syns = vec![1]);
        assert!(
            adds.contains("2 SYNs on the wire, but the connections add up to 1"),
            "{adds}"
        );
    }
}
