//! The model's checks of how a run ends: a tool's own deadline and failure, a tool that
//! retries, the handshake, a queue or a port range exhausted.

use std::net::SocketAddrV4;
use std::time::Duration;

use netclaim_harness::model::SynSchedule;
use netclaim_harness::sysctl::knob;
use netclaim_harness::tolerance::{tool_deadline_window, tool_timer_window};
use nix::errno::Errno;

use crate::judge::checks::{check_eq, Against};
use crate::judge::statement::check_contains_any;
use crate::judge::timing::check_timing;
use crate::models::budget::{fill_expected, DEFAULT_BACKLOG};
use crate::models::plan::{End, Plan};
use crate::models::tools::{self, Failure, Program};
use crate::outcome::{Figures, Outcome};
use crate::record::attempt::Measured;
use crate::record::{LabRecord, RunRecord};
use crate::spec::{ClaimSpec, Client, ExpectSpec, Server};
use crate::text::secs;

/// [`SynSchedule::syns_before`] a deadline a program keeps from its own start: it armed its timer
/// somewhere between its spawn and its first SYN (`startup`, measured), so from the first
/// SYN its deadline came up to that much sooner (a shell script's `timeout 5` started
/// 0.9 s before its connect on a loaded machine and let 4 SYNs out, not 5).
pub(crate) fn syns_before_tool_deadline(
    schedule: &SynSchedule,
    deadline: Duration,
    startup: Option<Duration>,
) -> (usize, usize) {
    let earliest = deadline.saturating_sub(startup.unwrap_or_default());
    (
        schedule.syns_before(earliest).0,
        schedule.syns_before(deadline).1,
    )
}

pub(crate) fn check_syn_range(o: &mut Outcome, what: &str, range: (usize, usize), observed: usize) {
    let expected = if range.0 == range.1 {
        range.0.to_string()
    } else {
        format!("{}..={}", range.0, range.1)
    };
    o.model_check(
        what,
        expected,
        observed.to_string(),
        (range.0..=range.1).contains(&observed),
    );
}

/// The model check of a deadline the tool keeps itself.
pub(crate) fn check_tool_deadline(
    o: &mut Outcome,
    what: &dyn Fn(&str) -> String,
    deadline: Duration,
    m: &Measured,
    expected: &mut Figures,
) {
    check_timing(
        o,
        Against::Model,
        &what("give-up time"),
        deadline,
        tool_deadline_window(deadline),
        m,
    );
    *expected = expected.clone().duration(deadline);
}

/// The model check that the handshake completed (the peer is a listener that answers
/// nothing after it); a unix target has no wire to see it on.
pub(crate) fn check_handshake(
    o: &mut Outcome,
    what: &dyn Fn(&str) -> String,
    run: &RunRecord,
    target: SocketAddrV4,
) {
    let completed = run.syn_acks > 0 || target.port() == 0;
    o.model_check(
        &what("the TCP handshake completed (SYN-ACK seen)"),
        "true",
        completed.to_string(),
        completed,
    );
}

/// Model checks of a tool's reported failure: exit code and message.
pub(crate) fn tool_failure_checks(
    f: &Failure,
    run: &RunRecord,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
    expected: &mut Figures,
) {
    check_eq(
        o,
        Against::Model,
        &what("exit code"),
        Some(f.exit),
        run.exit_code,
    );
    expected.exit_code = Some(f.exit);
    if !f.messages.is_empty() {
        check_contains_any(
            o,
            Against::Model,
            &what("message"),
            &run.output(),
            &f.messages,
            false,
        );
        expected.value = Some(f.message_text());
    }
}

/// A tool that retries (wget): tries on the wire, each try's start, the total.
pub(crate) fn judge_tries(
    expect: &ExpectSpec,
    run: &RunRecord,
    plan: &Plan,
    per_try: Duration,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
    expected: &mut Figures,
) {
    let tries = plan.tries;
    let starts: Vec<Duration> = run
        .conn_starts_us
        .iter()
        .map(|&us| Duration::from_micros(us))
        .collect();
    check_eq(
        o,
        Against::Model,
        &what("tries on the wire"),
        tries,
        starts.len(),
    );
    // Every try of the run carries the run's measured error.
    let total_m = run.timed().tool_timer();
    let within_run = |took: Duration| Measured {
        took,
        ..total_m.clone()
    };
    let predicted = tools::wget_try_starts(tries, per_try, tools::WGET_WAITRETRY);
    for (k, (p, s)) in predicted.iter().zip(&starts).enumerate().skip(1) {
        // wget's own clock between tries: its process work between them, or 5 %.
        let w = tool_timer_window(*p, Duration::from_millis(300).max(p.mul_f64(0.05)));
        check_timing(
            o,
            Against::Model,
            &what(&format!(
                "start of try {} (tries of {} + back-off {} s)",
                k + 1,
                secs(per_try),
                tools::wget_backoff(k + 1, tools::WGET_WAITRETRY).as_secs()
            )),
            *p,
            w,
            &within_run(*s),
        );
    }
    if let Some(stated) = expect.per_try {
        // Each try lasts from its first SYN to its FIN (wget closed it: a read timeout),
        // else to the next try's first SYN, less the back-off, or to the end.
        for k in 0..starts.len() {
            let fin = run.conn_fins_us.get(k).copied().flatten();
            let d = match (fin, starts.get(k + 1)) {
                (Some(fin), _) => Duration::from_micros(fin).saturating_sub(starts[k]),
                (None, Some(next)) => next
                    .saturating_sub(starts[k])
                    .saturating_sub(tools::wget_backoff(k + 2, tools::WGET_WAITRETRY)),
                (None, None) => total_m.took.saturating_sub(starts[k]),
            };
            check_timing(
                o,
                Against::Statement,
                &what(&format!("try {} fails after", k + 1)),
                stated.0,
                tool_deadline_window(stated.0),
                &within_run(d),
            );
        }
    }
    if let (Some(schedule), End::ToolConnect { .. } | End::Kernel) = (&plan.schedule, &plan.end) {
        let range = schedule.syns_before(per_try);
        let who = plan.program.map_or("the program", Program::name);
        for (k, n) in run.conn_syns.iter().enumerate() {
            check_syn_range(
                o,
                &what(&format!("SYNs of try {} before {who}'s deadline", k + 1)),
                range,
                *n,
            );
        }
    }
    let total = tools::wget_total(tries, per_try, tools::WGET_WAITRETRY);
    check_timing(
        o,
        Against::Model,
        &what("total run time"),
        total,
        tool_deadline_window(total),
        &total_m,
    );
    *expected = expected.clone().duration(total);
    expected.value = Some(format!(
        "{tries} tries starting at {:?} ms",
        predicted.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    ));
}

/// A fill client's queue (a backlog) or an exhaust client's ports.
pub(crate) fn judge_exhaustion(
    spec: &ClaimSpec,
    lab: &LabRecord,
    run: &RunRecord,
    what: &dyn Fn(&str) -> String,
    o: &mut Outcome,
    expected: &mut Figures,
) {
    let num = |k: &str| {
        lab.in_force
            .get(k)
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    let client = spec.run.as_ref().and_then(|r| r.client);
    let (connections, errno, why) = match client {
        Some(Client::Exhaust) => {
            let range = lab
                .in_force
                .get(knob::IP_LOCAL_PORT_RANGE)
                .cloned()
                .unwrap_or_default();
            let mut it = range
                .split_whitespace()
                .filter_map(|p| p.parse::<u16>().ok());
            let (lo, hi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
            let reserved = lab
                .in_force
                .get("net.ipv4.ip_local_reserved_ports")
                .cloned()
                .unwrap_or_default();
            let (fewest, most) = crate::models::ports::usable_ports(lo, hi, &reserved);
            (
                (fewest, most),
                Some(Errno::EADDRNOTAVAIL),
                format!("ip_local_port_range {range}: {fewest}..={most} usable ports, then EADDRNOTAVAIL"),
            )
        }
        _ => {
            // __sys_listen caps the backlog at somaxconn; a unix listener refuses when
            // more than the backlog are queued (backlog + 1 fit); a TCP listener drops
            // the SYN when the accept queue is full (backlog + 1 complete).
            let somaxconn = num(knob::SOMAXCONN).unwrap_or(4096);
            let queued = fill_expected(spec, &lab.in_force);
            let errno = (spec.lab.server == Server::NeverAcceptUnix).then_some(Errno::EAGAIN);
            (
                (queued, queued),
                errno,
                format!(
                    "effective backlog min({}, somaxconn {somaxconn}) = {}: {queued} queued, then the next is refused",
                    spec.lab.backlog.unwrap_or(DEFAULT_BACKLOG),
                    queued - 1
                ),
            )
        }
    };
    o.evidence(why);
    let n = run.connections.unwrap_or(0);
    let range_text = if connections.0 == connections.1 {
        connections.0.to_string()
    } else {
        format!("{}..={}", connections.0, connections.1)
    };
    o.model_check(
        &what("connections before the first failure"),
        range_text.clone(),
        n.to_string(),
        (connections.0..=connections.1).contains(&n),
    );
    check_eq(
        o,
        Against::Model,
        &what("errno of the connect that failed"),
        errno,
        run.errno.map(Errno::from_raw),
    );
    if let (Some((recv_q, send_q)), Some(Client::Fill)) = (run.listener_queue, client) {
        let backlog = u32::try_from(connections.0.saturating_sub(1)).unwrap_or(u32::MAX);
        let queued = u32::try_from(connections.0).unwrap_or(u32::MAX);
        check_eq(
            o,
            Against::Model,
            &what("ss Send-Q of the listener (effective backlog)"),
            backlog,
            send_q,
        );
        check_eq(
            o,
            Against::Model,
            &what("ss Recv-Q of the listener (queued connections)"),
            queued,
            recv_q,
        );
    }
    expected.errno = errno.map(|e| e as i32);
    expected.value = Some(format!("{range_text} connections"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use netclaim_harness::model::SynModel;

    #[test]
    fn syn_range_around_a_deadline() {
        let s = SynModel::new(6, None).schedule();
        assert_eq!(s.syns_before(Duration::from_millis(2500)), (2, 2));
        assert_eq!(s.syns_before(Duration::from_secs(3)), (2, 3));
    }

    #[test]
    fn a_slow_start_lets_fewer_syns_out_before_a_programs_own_deadline() {
        // tcp_syn_linear_timeouts=4: SYNs at 0, 1, 2, 3, 4, 5 s, ...
        let s = SynModel::new(6, Some(4)).schedule();
        let five = Duration::from_secs(5);
        assert_eq!(syns_before_tool_deadline(&s, five, None), (5, 6));
        // The program armed its 5 s timer 0.9 s before its first SYN.
        let slow = Some(Duration::from_millis(900));
        assert_eq!(syns_before_tool_deadline(&s, five, slow), (4, 6));
    }
}
