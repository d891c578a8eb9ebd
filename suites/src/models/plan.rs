//! How a claim file's run is predicted to end: the kernel's SYN schedule for the sysctls
//! in force, the tool's own deadlines, or what the peer does. Measuring reads it for its
//! default deadline, judging for the checks.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use netclaim_harness::model::{SynModel, SynSchedule};
use netclaim_harness::sysctl::knob;

use crate::models::connection::{self, Rejection};
use crate::models::tools::{self, Failure, Program};
use crate::spec::{ClaimSpec, Client, Server, TrickleSpec};

/// How the model predicts the action ends.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// SYNs go unanswered until the kernel gives up (ETIMEDOUT).
    Kernel,
    /// SYNs go unanswered until the tool's own deadline.
    ToolConnect {
        /// The deadline.
        deadline: Duration,
        /// What the tool reports then; `None` for a program the model does not know.
        failure: Option<Failure>,
    },
    /// A program the model does not know, against a peer that never answers: it ends at
    /// the latest when the kernel gives up.
    NoLaterThanKernel,
    /// The peer answers the SYN with RST.
    Refused,
    /// The handshake completes, nothing comes; the tool's own read deadline ends it.
    ToolRead {
        /// The deadline.
        deadline: Duration,
        /// What the tool reports then.
        failure: Failure,
    },
    /// The handshake completes, nothing comes, no timer: blocked until the harness kills it.
    Blocks,
    /// The connection succeeds (a client), or the command is served (HTTP).
    Completes,
    /// A fill or exhaust client runs until connect() fails.
    Exhausts,
    /// The SYN is rejected (RST, ICMP) or cannot be routed.
    Rejected(Rejection),
    /// A client after the SYN (send, idle, close, syn-only): judged by
    /// [`crate::judge::connection::judge`].
    AfterSyn(Client),
    /// The `exchange` client's request/reply exchanges: judged by
    /// [`crate::judge::exchange::judge`].
    Exchange,
}

/// What the plan knows: the kernel's schedule (unanswered SYNs), the tool, and the end.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The kernel's SYN schedule for the sysctls in force, when SYNs go unanswered.
    pub schedule: Option<SynSchedule>,
    /// The model behind it.
    pub model: Option<SynModel>,
    /// The tool, if the command is one the model knows.
    pub program: Option<Program>,
    /// Its command line (inside a `strace … --` wrapper): what it prints depends on it.
    pub argv: Vec<String>,
    /// How many connections it makes (wget retries).
    pub tries: usize,
    /// How the run ends.
    pub end: End,
    /// When it ends, from the start (the end's deadline, the kernel's give-up, or the
    /// tries' total).
    pub ends_after: Option<Duration>,
    /// The kernel timers armed on the way to the end, for their slack (clients after the
    /// SYN).
    pub intervals: Vec<Duration>,
}

/// The SYN model for sysctls in force (read from the lab), its inputs within what the
/// kernel accepts (a claim file asking for more is refused when its lab is built; its
/// estimate must not count SYNs for ever meanwhile).
pub fn model_of(in_force: &BTreeMap<String, String>) -> SynModel {
    let num = |k: &str| in_force.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    let count = |n: u64| u32::try_from(n.min(MAX_TCP_SYNCNT)).unwrap_or(0);
    let mut m = SynModel::new(
        count(num(knob::TCP_SYN_RETRIES).unwrap_or(6)),
        num(knob::TCP_SYN_LINEAR_TIMEOUTS).map(count),
    );
    if let Some(ms) = num(knob::TCP_RTO_MAX_MS) {
        m.rto_max = Duration::from_millis(ms.min(120_000));
    }
    m
}

/// `MAX_TCP_SYNCNT`: the most SYN retransmissions tcp_syn_retries, TCP_SYNCNT and
/// tcp_syn_linear_timeouts may ask for.
const MAX_TCP_SYNCNT: u64 = 127;

/// The most tries of a tool that retries (wget `--tries`) the model follows: more would
/// outlast any run (a day at one try a second).
const MAX_TRIES: usize = 100_000;

/// The program a command line runs and its own arguments, looking through a `strace …
/// --` wrapper.
fn traced_argv(argv: &[String]) -> &[String] {
    if argv.first().map(String::as_str) == Some("strace") {
        if let Some(i) = argv.iter().position(|a| a == "--") {
            return &argv[i + 1..];
        }
    }
    argv
}

/// The round trip of the lab's wire from its fixed delays (zero without one).
pub fn link_rtt(spec: &ClaimSpec) -> Duration {
    spec.lab.link.as_ref().map_or(Duration::ZERO, |l| {
        let (to, from) = l.delays();
        to + from
    })
}

/// How long a tool with `tries` tries of `per_try` each runs: one try, or wget's tries
/// with its backoff between them.
fn over_tries(tries: usize, per_try: Duration) -> Duration {
    if tries > 1 {
        tools::wget_total(tries, per_try, tools::WGET_WAITRETRY)
    } else {
        per_try
    }
}

/// Predicts how the run of `spec` ends, given the sysctls in force, the command line
/// after placeholders and the tool's `--version` line as recorded (what it prints may
/// depend on it; when it ends does not).
pub fn plan(
    spec: &ClaimSpec,
    in_force: &BTreeMap<String, String>,
    argv: &[String],
    target: Option<SocketAddrV4>,
    version: Option<&str>,
) -> Plan {
    let run = spec.run.as_ref();
    let server = spec.lab.server;
    let argv = traced_argv(argv);
    let program = argv.first().and_then(|a| Program::of(a));
    let tries = program.map_or(1, |p| tools::tries(p, argv).min(MAX_TRIES));
    let target = target.unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let declared = run.and_then(|r| r.deadline).map(|d| d.0);
    let mut plan = Plan {
        schedule: None,
        model: None,
        program,
        argv: argv.to_vec(),
        tries,
        end: End::Completes,
        ends_after: None,
        intervals: Vec::new(),
    };
    let client = run.and_then(|r| r.client);
    if matches!(client, Some(Client::Fill | Client::Exhaust)) {
        plan.end = End::Exhausts;
        return plan;
    }
    if let Some(
        c @ (Client::Send
        | Client::Idle
        | Client::Close
        | Client::SynOnly
        | Client::Stream
        | Client::Bulk),
    ) = client
    {
        plan.end = End::AfterSyn(c);
        return plan;
    }
    if client == Some(Client::Exchange) {
        plan.end = End::Exchange;
        return plan;
    }
    if let Some(r) = connection::rejection(spec) {
        plan.end = End::Rejected(r);
        return plan;
    }
    // Over a wire the handshake takes the wire's round trip: a tool whose own connect
    // deadline comes first gives up connecting while the SYN-ACK is on its way, the
    // kernel keeping to its SYN schedule meanwhile (curl --connect-timeout 1 to a peer
    // 1.2 s away).
    let rtt = link_rtt(spec);
    let own_connect = program.and_then(|p| tools::connect_deadline(p, argv, target, version));
    if let Some((deadline, failure)) = own_connect
        .clone()
        .filter(|(d, _)| !rtt.is_zero() && *d < rtt)
    {
        if !server.drops_syns() {
            let model = model_of(in_force);
            plan.ends_after = Some(over_tries(tries, deadline));
            plan.end = End::ToolConnect {
                deadline,
                failure: Some(failure),
            };
            plan.schedule = Some(model.schedule());
            plan.model = Some(model);
            return plan;
        }
    }
    if server.drops_syns() {
        let mut model = model_of(in_force);
        // TCP_SYNCNT replaces tcp_syn_retries for this socket (tcp_write_timeout).
        if let Some(n) = run.and_then(|r| r.socket.syncnt) {
            model.syn_retries = n.min(MAX_TCP_SYNCNT as u32);
        }
        let schedule = model.schedule();
        let own = match program {
            Some(_) => own_connect.map(|(d, f)| (d, Some(f))),
            None => declared.map(|d| (d, None)),
        };
        let (end, per_try) = match own {
            Some((d, failure)) if d < schedule.give_up => (
                End::ToolConnect {
                    deadline: d,
                    failure,
                },
                d,
            ),
            _ if client.is_none() && program.is_none() && declared.is_none() => {
                (End::NoLaterThanKernel, schedule.give_up)
            }
            _ => (End::Kernel, schedule.give_up),
        };
        plan.ends_after = Some(over_tries(tries, per_try));
        plan.end = end;
        plan.schedule = Some(schedule);
        plan.model = Some(model);
        return plan;
    }
    match server {
        Server::None | Server::Refuse => plan.end = End::Refused,
        Server::Silent | Server::NeverAccept | Server::NeverAcceptUnix if client.is_none() => {
            let own = match program {
                Some(p) => tools::read_deadline(p, argv, target, version),
                None => declared.map(|d| {
                    (
                        d,
                        Failure {
                            exit: 0,
                            messages: Vec::new(),
                        },
                    )
                }),
            };
            match own {
                Some((own, failure)) => {
                    // A read timer starts once the connection is up: over a wire, one
                    // round trip after the first SYN (mysql --connect-timeout=2 to a peer
                    // 0.8 s away gives up after 2.8 s, a fresh 2 s for the greeting).
                    // curl's --max-time alone counts from the start.
                    let deadline = if program == Some(Program::Curl) {
                        own
                    } else {
                        rtt + own
                    };
                    plan.ends_after = Some(over_tries(tries, deadline));
                    plan.end = End::ToolRead { deadline, failure };
                }
                None => plan.end = End::Blocks,
            }
        }
        Server::Trickle if client.is_none() => match (program, spec.lab.trickle) {
            (Some(p), Some(t)) => trickle(&mut plan, p, argv, t, link_rtt(spec)),
            _ => plan.end = End::Completes,
        },
        _ => plan.end = End::Completes,
    }
    plan
}

/// A tool against the trickle server, its times from the first SYN: the headers arrive
/// two round trips in (the handshake's, then the request's), each body byte `every`
/// after the one before (the first `every` after the headers). An idle timeout
/// shorter than `every` passes before the first byte, with 0 bytes read; a longer one
/// is started again by every byte and the whole body comes in, `bytes × every` after the
/// headers, unless a deadline for the whole transfer (curl `--max-time`) passes first.
fn trickle(plan: &mut Plan, program: Program, argv: &[String], t: TrickleSpec, rtt: Duration) {
    let headers_in = rtt * 2;
    let done = headers_in + t.body_time();
    let retrying = plan.tries > 1;
    let stalls = tools::idle_read_timeout(program, argv)
        .filter(|idle| *idle < t.every.0)
        .and_then(|idle| {
            let failure = tools::body_timed_out(program, 0, t.bytes, retrying)?;
            Some((headers_in + idle, failure))
        });
    let cut = tools::transfer_deadline(program, argv).filter(|(d, _)| *d < done);
    let end = match (stalls, cut) {
        (Some(s), Some(c)) => Some(if c.0 < s.0 { c } else { s }),
        (s, c) => s.or(c),
    };
    match end {
        Some((deadline, failure)) => {
            plan.ends_after = Some(over_tries(plan.tries, deadline));
            plan.end = End::ToolRead { deadline, failure };
        }
        None => {
            plan.ends_after = Some(done);
            plan.end = End::Completes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::budget::estimate;
    use crate::record::testing::{in_force, spec_of};

    /// curl --connect-timeout 1 over a wire: it connects when the round trip is shorter
    /// (0.8 s), gives up at 1 s with exit 28 when it is longer (1.2 s).
    #[test]
    fn a_tool_connect_deadline_shorter_than_the_wire_round_trip_ends_the_connect() {
        let plan_at = |delay: &str| {
            let spec = spec_of(&format!(
                "lab = {{ server = \"http\", link = {{ delay = \"{delay}\" }} }}\n\
                 run = {{ command = [\"curl\", \"--connect-timeout\", \"1\", \"http://{{target}}/\"] }}\n\
                 expect = {{ exit = 28 }}\n"
            ));
            let argv: Vec<String> = ["curl", "--connect-timeout", "1", "http://192.0.2.2:8080/"]
                .map(String::from)
                .to_vec();
            plan(&spec, &in_force(&[]), &argv, None, Some("curl 7.88.1"))
        };
        assert!(matches!(plan_at("400ms").end, End::Completes));
        match plan_at("600ms").end {
            End::ToolConnect {
                deadline,
                failure: Some(f),
            } => assert_eq!((deadline, f.exit), (Duration::from_secs(1), 28)),
            other => panic!("{other:?}"),
        }
    }

    /// mysql --connect-timeout=2 to a silent server 0.8 s away: connected after one round
    /// trip, then a fresh 2 s for the greeting (2.8 s); curl --max-time counts from the
    /// start.
    #[test]
    fn a_read_deadline_over_a_wire_starts_when_the_connection_is_up() {
        let plan_of = |argv: &[&str]| {
            let quoted: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
            let spec = spec_of(&format!(
                "lab = {{ server = \"silent\", port = 3306, link = {{ delay = \"400ms\" }} }}\n\
                 run = {{ command = [{}] }}\n\
                 expect = {{ exit = 1 }}\n",
                quoted.join(", ")
            ));
            let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
            plan(
                &spec,
                &in_force(&[]),
                &argv,
                None,
                Some("mysql  Ver 15.1 Distrib 10.11.6-MariaDB"),
            )
        };
        let mysql = plan_of(&[
            "mysql",
            "-h",
            "{ip}",
            "--connect-timeout=2",
            "-e",
            "SELECT 1",
        ]);
        assert!(matches!(mysql.end, End::ToolRead { .. }), "{:?}", mysql.end);
        assert_eq!(mysql.ends_after, Some(Duration::from_millis(2800)));
        let curl = plan_of(&["curl", "-m", "2", "http://{target}/"]);
        assert_eq!(curl.ends_after, Some(Duration::from_secs(2)));
    }

    /// wget --read-timeout=2 against a byte every second reads the 4-byte body to its end
    /// (exit 0, two round trips and 4 s after the first SYN); against a byte every 3 s
    /// it gives up 2 s after the headers with 0 bytes read (exit 4).
    #[test]
    fn wget_read_timeout_against_a_trickle_is_an_idle_timeout() {
        let plan_at = |every: &str| {
            let spec = spec_of(&format!(
                "lab = {{ server = \"trickle\", trickle = {{ every = \"{every}\" }}, link = {{ delay = \"10ms\" }} }}\n\
                 run = {{ command = [\"wget\", \"-t\", \"1\", \"--read-timeout=2\", \"http://{{target}}/\"] }}\n\
                 expect = {{ exit = 0 }}\n"
            ));
            let argv: Vec<String> = [
                "wget",
                "-t",
                "1",
                "--read-timeout=2",
                "http://192.0.2.2:8080/",
            ]
            .map(String::from)
            .to_vec();
            plan(&spec, &in_force(&[]), &argv, None, None)
        };
        let p = plan_at("1s");
        assert_eq!(p.end, End::Completes);
        assert_eq!(p.ends_after, Some(Duration::from_millis(4040)));
        let p = plan_at("3s");
        match p.end {
            End::ToolRead { deadline, failure } => {
                assert_eq!(deadline, Duration::from_millis(2040));
                assert_eq!(failure.exit, 4);
                assert_eq!(
                    failure.messages,
                    vec!["Read error at byte 0/4 (Connection timed out). Giving up.".to_owned()]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.ends_after, Some(Duration::from_millis(2040)));
        // The same idle timeout with 3 tries: each try stalls, wget waits 1 s, then 2 s.
        let spec = spec_of(
            "lab = { server = \"trickle\", trickle = { every = \"3s\" } }\n\
             run = { command = [\"wget\", \"-t\", \"3\", \"-T\", \"2\", \"http://{target}/\"] }\n\
             expect = { exit = 4 }\n",
        );
        let argv: Vec<String> = ["wget", "-t", "3", "-T", "2", "http://127.0.0.1:8080/"]
            .map(String::from)
            .to_vec();
        let p = plan(&spec, &in_force(&[]), &argv, None, None);
        assert_eq!(p.ends_after, Some(Duration::from_secs(9)));
        // curl --max-time 2 has no idle timeout: it is cut 2 s in, whatever the gaps.
        let spec = spec_of(
            "lab = { server = \"trickle\", trickle = { every = \"1s\" } }\n\
             run = { command = [\"curl\", \"-m\", \"2\", \"http://{target}/\"] }\n\
             expect = { exit = 28 }\n",
        );
        let argv: Vec<String> = ["curl", "-m", "2", "http://127.0.0.1:8080/"]
            .map(String::from)
            .to_vec();
        let p = plan(&spec, &in_force(&[]), &argv, None, None);
        assert!(
            matches!(&p.end, End::ToolRead { deadline, failure } if *deadline == Duration::from_secs(2) && failure.exit == 28),
            "{:?}",
            p.end
        );
    }

    // `check` hung on these: the estimate counted SYNs of 4e9 retries, and wget tries by
    // the billions.
    #[test]
    fn the_model_asks_no_more_than_the_kernel_accepts() {
        let m = model_of(&in_force(&[
            (knob::TCP_SYN_RETRIES, "4000000000"),
            (knob::TCP_SYN_LINEAR_TIMEOUTS, "18446744073709551615"),
        ]));
        assert_eq!((m.syn_retries, m.syn_linear_timeouts), (127, Some(127)));
        // check refuses such a syncnt; a spec that did not go through it (a record's, a
        // hand-built one) must still not make the model run for ever.
        let syncnt = crate::spec::parse_unvalidated(
            "[[claim]]\nid = \"t.x\"\nsource = \"s\"\nstatement = \"s\"\nlab = { server = \"drop-syn\" }\nrun = { client = \"connect\", socket = { syncnt = 4000000000 } }\nexpect = { errno = \"ETIMEDOUT\" }\n",
        )
        .remove(0);
        assert!(estimate(&syncnt) > Duration::from_secs(3600));
        let wget = spec_of(
            "lab = { server = \"drop-syn\" }\nrun = { command = [\"wget\", \"--tries\", \"18446744073709551615\", \"http://{target}/\"] }\nexpect = { exit = 4 }\n",
        );
        assert!(estimate(&wget) > Duration::from_secs(24 * 3600));
    }
}
