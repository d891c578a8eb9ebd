//! Validation: everything wrong with a claim that parsing alone cannot see.

use super::link::LINKED_SERVERS;
use super::{
    errno_by_name, serde_kebab, ClaimSpec, Client, ErrnoSpec, ExpectSpec, Family, RunSpec, Server,
    SocketSpec, Texts, Value,
};

/// The longest body a trickle server may take: a claim's run must end.
const MAX_TRICKLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The most values a sweep may have.
pub const MAX_SWEEP_VALUES: usize = 1000;

/// The placeholders a command may use.
pub const PLACEHOLDERS: &[&str] = &["{target}", "{ip}", "{port}", "{dir}"];

/// Everything wrong with one claim that parsing alone cannot see.
pub fn validate(spec: &ClaimSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(why) = check_id(&spec.id) {
        problems.push(format!("id {} {why}", shown_id(&spec.id)));
    }
    for (what, value) in [("source", &spec.source), ("statement", &spec.statement)] {
        if value.trim().is_empty() {
            problems.push(format!("{what} is empty"));
        }
    }
    let sysctl_names = spec
        .lab
        .sysctls
        .keys()
        .chain(spec.lab.sysctls_if_present.keys())
        .chain(spec.expect.sysctls.keys())
        .chain(spec.model.defaults.keys())
        .chain(spec.sweep.iter().map(|s| &s.sysctl));
    for name in sysctl_names {
        if name.contains('\0') {
            problems.push(format!("sysctl name {name:?} contains a NUL byte"));
            continue;
        }
        if let Err(e) = netclaim_harness::sysctl::proc_path(name) {
            problems.push(format!(
                "{e}: a lab may only change its own namespace, and anything else would change the host"
            ));
        }
    }
    if let Some(link) = &spec.lab.link {
        if let Err(errors) = link.wire_spec(&spec.lab.rules) {
            problems.extend(errors);
        }
        if !LINKED_SERVERS.contains(&spec.lab.server) {
            problems.push(format!(
                "lab.link: server {} cannot stand behind a link (a unix socket, or no address at all); these can: {}",
                serde_kebab(&spec.lab.server),
                LINKED_SERVERS.iter().map(serde_kebab).collect::<Vec<_>>().join(", ")
            ));
        }
        if spec.lab.family == Family::Ipv6 {
            problems
                .push("lab.link carries IPv4 (192.0.2.0/24): family = \"ipv6\" has no link".into());
        }
    } else if !spec.lab.rules.is_empty() {
        problems.push("lab.rules act on a wire: add lab.link (an empty one, lab.link = {}, is a perfect wire)".into());
    }
    // Written (not only read): none whose write would act beyond the lab.
    let written = spec
        .lab
        .sysctls
        .keys()
        .chain(spec.lab.sysctls_if_present.keys())
        .chain(spec.sweep.iter().map(|s| &s.sysctl));
    for name in written {
        if let Some(why) = netclaim_harness::sysctl::refusal(name) {
            problems.push(format!(
                "sysctl {name} may not be written by a lab: {why}; a lab may only write sysctls the kernel keeps per network namespace"
            ));
        }
    }
    match &spec.run {
        None if spec.expect.sysctls.is_empty() && spec.lab.sysctls.is_empty() => problems.push(
            "no [claim.run] and no expect.sysctls: give an action (run.command or run.client) or the defaults to read".into(),
        ),
        None => {}
        Some(run) => validate_run(spec, run, &mut problems),
    }
    if spec.lab.server == Server::NeverAcceptUnix && spec.lab.port.is_some() {
        problems.push("lab.port does not apply to a unix server".into());
    }
    if spec.lab.port == Some(0) {
        problems.push("lab.port = 0 is not a port: give 1 to 65535".into());
    }
    if let Some(b) = spec.lab.backlog.filter(|b| i32::try_from(*b).is_err()) {
        problems.push(format!(
            "lab.backlog {b} is above what listen() takes (an int: at most {}); the kernel caps \
             the backlog at net.core.somaxconn anyway",
            i32::MAX
        ));
    }
    if spec.lab.backlog.is_some() && !spec.lab.server.answers_nothing() {
        problems.push(format!(
            "lab.backlog only applies to a listening server (silent, never-accept), not {:?}",
            spec.lab.server
        ));
    }
    for (name, to) in &spec.lab.hosts {
        if to != "target" {
            problems.push(format!(
                "lab.hosts.{name} = {to:?}: a name can only resolve to \"target\" (the lab's server)"
            ));
        }
        // Written into the lab's /etc/hosts: a newline or a '#' would add lines of its own.
        let host_name = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
        if !host_name {
            problems.push(format!(
                "lab.hosts: {name:?} is not a host name (letters, digits, '.', '-', '_')"
            ));
        }
    }
    validate_docs_keys(spec, &mut problems);
    validate_values(spec, &mut problems);
    validate_expect(&spec.expect, "expect", &mut problems);
    for (value, each) in &spec.expect.each {
        validate_expect(each, &format!("expect.each.{value:?}"), &mut problems);
        if !each.each.is_empty() {
            problems.push(format!(
                "expect.each.{value:?}.each: a sweep value has no values of its own"
            ));
        }
        if !each.sysctls.is_empty() {
            problems.push(format!(
                "expect.each.{value:?}.sysctls: a fresh namespace's defaults are read once per claim: give them in expect.sysctls"
            ));
        }
    }
    validate_checks(spec, &mut problems);
    match &spec.sweep {
        Some(sweep) => {
            if sweep.values.is_empty() {
                problems.push("sweep.values is empty".into());
            }
            if sweep.values.len() > MAX_SWEEP_VALUES {
                problems.push(format!(
                    "sweep.values has {} values: at most {MAX_SWEEP_VALUES} (each is a lab of its own)",
                    sweep.values.len()
                ));
            }
            let keys: Vec<String> = sweep.values.iter().map(Value::text).collect();
            for k in spec.expect.each.keys() {
                if !keys.contains(k) {
                    problems.push(format!(
                        "expect.each.{k:?} is not one of sweep.values {keys:?}"
                    ));
                }
            }
            if spec.run.is_none() {
                problems.push("a sweep needs a [claim.run]".into());
            }
        }
        None if !spec.expect.each.is_empty() => {
            problems.push("expect.each needs a [claim.sweep]".into())
        }
        None => {}
    }
    for (name, by_release) in &spec.model.defaults {
        for release in by_release.keys() {
            if parse_release(release).is_none() {
                problems.push(format!(
                    "model.defaults.{name:?}: {release:?} is not a release such as \"5.4\""
                ));
            }
        }
    }
    problems
}

/// The longest claim id. An id names the file `timelines/<id>.svg` that `--out` writes,
/// and a file name has at most 255 bytes (NAME_MAX); 128 leaves room and stays readable.
pub const ID_MAX: usize = 128;

/// Why `id` is not a claim id: `topic.name`, lowercase letters, digits, `-`, parts
/// separated by single dots, at most [`ID_MAX`] characters.
fn check_id(id: &str) -> Result<(), String> {
    let length = id.chars().count();
    if length > ID_MAX {
        return Err(format!(
            "is {length} characters long: an id has at most {ID_MAX} (it names the file timelines/<id>.svg)"
        ));
    }
    if !id.contains('.')
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c))
    {
        return Err(
            "must look like topic.name: lowercase letters, digits, '.' and '-', with at least one '.'"
                .into(),
        );
    }
    if id.split('.').any(str::is_empty) {
        return Err(
            "has an empty part: no '.' at its start or end and no \"..\" (topic.name)".into(),
        );
    }
    Ok(())
}

/// An id as messages show it: escaped, and cut after 60 characters.
pub(super) fn shown_id(id: &str) -> String {
    match id.char_indices().nth(60) {
        Some((cut, _)) => format!("{:?}…", &id[..cut]),
        None => format!("{id:?}"),
    }
}

/// The tcp(7) socket options the kernel accepts only in a range (`do_tcp_setsockopt`,
/// include/net/tcp.h): name, key, value, highest valid value (the lowest is 1).
fn socket_ranges(s: &SocketSpec) -> [(&'static str, &'static str, Option<u32>, u32); 5] {
    [
        ("syncnt", "TCP_SYNCNT (MAX_TCP_SYNCNT)", s.syncnt, 127),
        (
            "keepidle",
            "TCP_KEEPIDLE (MAX_TCP_KEEPIDLE)",
            s.keepidle,
            32767,
        ),
        (
            "keepintvl",
            "TCP_KEEPINTVL (MAX_TCP_KEEPINTVL)",
            s.keepintvl,
            32767,
        ),
        ("keepcnt", "TCP_KEEPCNT (MAX_TCP_KEEPCNT)", s.keepcnt, 127),
        (
            "rto_min_us",
            "TCP_RTO_MIN_US (TCP_RTO_MIN, µs)",
            s.rto_min_us,
            200_000,
        ),
    ]
}

/// Sysctl values with a NUL or another control character: the kernel parses none of
/// them (a value is written as text to /proc/sys).
fn validate_values(spec: &ClaimSpec, problems: &mut Vec<String>) {
    let lab = &spec.lab;
    let mut values: Vec<(String, &Value)> = lab
        .sysctls
        .iter()
        .chain(&lab.sysctls_if_present)
        .chain(&spec.expect.sysctls)
        .map(|(k, v)| (k.clone(), v))
        .collect();
    for (name, by_release) in &spec.model.defaults {
        values.extend(by_release.values().map(|v| (name.clone(), v)));
    }
    if let Some(sweep) = &spec.sweep {
        values.extend(sweep.values.iter().map(|v| (sweep.sysctl.clone(), v)));
    }
    for (name, value) in values {
        if let Value::Text(t) = value {
            if t.chars().any(|c| c.is_control() && !c.is_whitespace()) {
                problems.push(format!(
                    "sysctl value {name:?} = {t:?} contains a NUL or another control character"
                ));
            }
        }
    }
}

/// The keys of `e` that are checks of the statement (each one can decide the verdict),
/// beside `expect.sysctls`. `ignore_case`, `per_try` and `tolerance` only qualify them.
fn figures(e: &ExpectSpec) -> Vec<&'static str> {
    let texts = |t: &Option<Texts>| t.as_ref().is_some_and(|t| !t.items().is_empty());
    [
        ("exit", e.exit.is_some()),
        ("errno", e.errno.is_some()),
        ("duration", e.duration.is_some()),
        ("syns", e.syns.is_some()),
        ("syn_times", e.syn_times.is_some()),
        ("stdout", texts(&e.stdout)),
        ("stderr", texts(&e.stderr)),
        ("output", texts(&e.output)),
        ("output_line", e.output_line.is_some()),
        ("output_count", !e.output_count.is_empty()),
        ("connect_calls", e.connect_calls.is_some()),
        ("killed", e.killed.is_some()),
        ("connections", e.connections.is_some()),
        ("duration_at_least", e.duration_at_least.is_some()),
        ("duration_at_most", e.duration_at_most.is_some()),
        ("retransmissions", e.retransmissions.is_some()),
        ("first_retransmission", e.first_retransmission.is_some()),
        ("probes", e.probes.is_some()),
        ("synacks", e.synacks.is_some()),
        ("rst", e.rst.is_some()),
        ("fin", e.fin.is_some()),
        ("exchange", e.exchange.is_some()),
        ("repair", e.repair.is_some()),
        ("timeouts", e.timeouts.is_some()),
        ("repaired_within_rtts", e.repaired_within_rtts.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect()
}

/// What is wrong with one expectation (`expect`, or a sweep value's `expect.each."1"`),
/// named under `key`.
fn validate_expect(e: &ExpectSpec, key: &str, problems: &mut Vec<String>) {
    match &e.errno {
        Some(ErrnoSpec::Name(name)) if errno_by_name(name).is_none() => problems.push(format!(
            "{key}.errno {name:?} is not an errno name such as \"ETIMEDOUT\""
        )),
        Some(ErrnoSpec::Number(n))
            if !(1..=4095).contains(n)
                || nix::errno::Errno::from_raw(*n) == nix::errno::Errno::UnknownErrno =>
        {
            problems.push(format!(
                "{key}.errno = {n} is not an errno: give a name such as \"ETIMEDOUT\", or a number from 1 to 4095 that names one"
            ))
        }
        _ => {}
    }
    if let Some(code) = e.exit {
        if !(0..=255).contains(&code) {
            problems.push(format!(
                "{key}.exit = {code}: an exit code is 0 to 255 (a command killed by a signal has none: see expect.killed)"
            ));
        }
    }
    // The tolerance applies to the stated durations it can widen: the give-up time, the
    // first retransmission and the exchange.
    let widened = [e.duration, e.first_retransmission, e.exchange];
    match (&e.tolerance, widened.iter().flatten().next()) {
        (Some(t), Some(_)) => {
            for d in widened.iter().flatten() {
                if let Err(why) = t.around(d.0) {
                    problems.push(format!("{key}.tolerance: {why}"));
                }
            }
        }
        (Some(_), None) => problems.push(format!(
            "{key}.tolerance needs {key}.duration, {key}.first_retransmission or {key}.exchange"
        )),
        _ => {}
    }
    if let Some(times) = &e.syn_times {
        if times.windows(2).any(|w| w[1] <= w[0]) {
            problems.push(format!("{key}.syn_times must increase"));
        }
        if e.syns.is_some_and(|n| n != times.len()) {
            problems.push(format!(
                "{key}.syns disagrees with the length of {key}.syn_times"
            ));
        }
    }
    if let (Some(least), Some(most)) = (e.duration_at_least, e.duration_at_most) {
        if least > most {
            problems.push(format!(
                "{key}.duration_at_least ({least}) is above {key}.duration_at_most ({most}): no duration fits both"
            ));
        }
    }
    for (name, texts) in [
        ("stdout", &e.stdout),
        ("stderr", &e.stderr),
        ("output", &e.output),
    ] {
        match texts {
            Some(t) if t.items().is_empty() => problems.push(format!(
                "{key}.{name} = [] checks nothing: give the texts to look for"
            )),
            Some(t) if t.items().iter().any(|i| i.is_empty()) => problems.push(format!(
                "{key}.{name}: an empty text is in every output: give the text to look for"
            )),
            _ => {}
        }
    }
    if e.output_count.iter().any(|c| c.text.is_empty()) {
        problems.push(format!(
            "{key}.output_count: an empty text cannot be counted: give the text to count"
        ));
    }
}

/// A claim must check something: every lab it runs has a figure of the statement to
/// check, or it reads a fresh namespace's defaults. A claim with nothing to check would
/// end in `error` after building its lab.
fn validate_checks(spec: &ClaimSpec, problems: &mut Vec<String>) {
    const NOTHING: &str = "nothing to check: [claim.expect] gives no figure of the statement \
        (exit, errno, duration, syns, syn_times, stdout, stderr, output, output_line, \
        output_count, killed, connections, connect_calls, duration_at_least, duration_at_most, \
        retransmissions, first_retransmission, probes, synacks, rst, fin, exchange, repair, \
        timeouts, repaired_within_rtts, or sysctls without a run); ignore_case, \
        per_try and tolerance only qualify those";
    let Some(_) = &spec.run else {
        let on_a_run = figures(&spec.expect);
        if !on_a_run.is_empty() {
            problems.push(format!(
                "expect.{} {} observed on a run: add [claim.run] (run.command or run.client), or keep only expect.sysctls",
                on_a_run.join(", expect."),
                if on_a_run.len() == 1 { "is" } else { "are" }
            ));
        } else if spec.expect.sysctls.is_empty()
            && spec.model.defaults.is_empty()
            && !spec.lab.sysctls.is_empty()
        {
            // (With model.defaults, a lab of sysctls alone states that the kernel takes
            // them: port.tw-recycle is not-applicable where the knob is gone.)
            problems.push(format!("{NOTHING} (a lab without a run observes nothing)"));
        }
        return;
    };
    match &spec.sweep {
        None => {
            if figures(&spec.expect).is_empty() {
                problems.push(NOTHING.into());
            }
        }
        Some(sweep) => {
            let mut bare = Vec::new();
            for value in sweep.values.iter().map(Value::text) {
                match spec.expect.each.get(&value) {
                    Some(each) if figures(each).is_empty() => problems.push(format!(
                        "expect.each.{value:?} checks nothing: give it a figure (duration, syns, exit, …)"
                    )),
                    None if figures(&spec.expect).is_empty() => bare.push(value),
                    _ => {}
                }
            }
            if !bare.is_empty() {
                problems.push(format!(
                    "{NOTHING}: sweep value(s) {} have no expect.each entry either",
                    bare.join(", ")
                ));
            }
        }
    }
}

/// The keys the kernel-documentation catalog added: families, rejections, the clients
/// after the SYN and what they observe.
fn validate_docs_keys(spec: &ClaimSpec, problems: &mut Vec<String>) {
    let lab = &spec.lab;
    let client = spec.run.as_ref().and_then(|r| r.client);
    if lab.family == Family::Ipv6
        && !matches!(lab.server, Server::DropSyn | Server::Refuse | Server::None)
    {
        problems.push(format!(
            "lab.family = \"ipv6\" works with drop-syn, refuse and none, not {:?}",
            lab.server
        ));
    }
    if lab.family == Family::Ipv6 && spec.run.as_ref().is_some_and(|r| r.command.is_some()) {
        problems.push("lab.family = \"ipv6\" works with run.client = \"connect\"".into());
    }
    match (&lab.reject_with, lab.server) {
        (None, Server::Reject) => problems.push(
            "lab.server = \"reject\" needs lab.reject_with (tcp-reset, icmp-port-unreachable, icmp-host-unreachable, icmp-net-unreachable, icmp-admin-prohibited, …)".into(),
        ),
        (Some(_), s) if s != Server::Reject => {
            problems.push("lab.reject_with applies to lab.server = \"reject\"".into())
        }
        (Some(w), _)
            if w != "tcp-reset" && netclaim_harness::timers::reject_code(w).is_none() =>
        {
            problems.push(format!(
                "lab.reject_with {w:?} is not one of tcp-reset, icmp-net-unreachable, icmp-host-unreachable, icmp-proto-unreachable, icmp-port-unreachable, icmp-net-prohibited, icmp-host-prohibited, icmp-admin-prohibited"
            ))
        }
        _ => {}
    }
    match (&lab.trickle, lab.server) {
        (None, Server::Trickle) => problems.push(
            "lab.server = \"trickle\" needs lab.trickle (`{ every = \"1s\", bytes = 4 }`: a body byte every second, 4 in all)".into(),
        ),
        (Some(_), s) if s != Server::Trickle => {
            problems.push("lab.trickle applies to lab.server = \"trickle\"".into())
        }
        (Some(t), _) if t.every.0.is_zero() || t.bytes == 0 => problems.push(
            "lab.trickle: every and bytes must be above zero (a body that trickles)".into(),
        ),
        (Some(t), _) if t.body_time() > MAX_TRICKLE => problems.push(format!(
            "lab.trickle: {} bytes one every {} ms take longer than an hour",
            t.bytes,
            t.every.0.as_millis()
        )),
        _ => {}
    }
    if let Some(run) = &spec.run {
        if !run.socket.is_empty() && run.client.is_none() {
            problems.push("run.socket applies to the in-repo clients (run.client)".into());
        }
    }
    let needs = |key: &str, ok: bool, what: &str, problems: &mut Vec<String>| {
        if !ok {
            problems.push(format!("{key} is observed on {what}"));
        }
    };
    let e = &spec.expect;
    if e.retransmissions.is_some() {
        needs(
            "expect.retransmissions",
            matches!(client, Some(Client::Send | Client::Bulk)),
            "run.client = \"send\" or \"bulk\"",
            problems,
        );
    }
    if e.timeouts.is_some() || e.repair.is_some() || e.repaired_within_rtts.is_some() {
        needs(
            "expect.timeouts, expect.repair and expect.repaired_within_rtts",
            client == Some(Client::Bulk),
            "run.client = \"bulk\"",
            problems,
        );
    }
    if e.repaired_within_rtts == Some(0) {
        problems.push(
            "expect.repaired_within_rtts = 0: no retransmission comes before the loss is seen, a round trip at the least".into(),
        );
    }
    if e.first_retransmission.is_some() {
        needs(
            "expect.first_retransmission",
            client == Some(Client::Send),
            "run.client = \"send\"",
            problems,
        );
    }
    if e.probes.is_some() {
        needs(
            "expect.probes",
            client == Some(Client::Idle),
            "run.client = \"idle\"",
            problems,
        );
    }
    if e.synacks.is_some() {
        let holds = spec.run.as_ref().is_some_and(|r| r.hold.is_some());
        needs(
            "expect.synacks",
            client == Some(Client::SynOnly) || (client == Some(Client::Connect) && holds),
            "run.client = \"syn-only\", or \"connect\" with run.hold",
            problems,
        );
    }
    if e.rst.is_some() || e.fin.is_some() {
        needs(
            "expect.rst and expect.fin",
            client == Some(Client::Close),
            "run.client = \"close\"",
            problems,
        );
    }
    validate_exchange_keys(spec, client, problems);
}

/// The keys of the `exchange` client and its `reply` server: each only where it applies.
fn validate_exchange_keys(spec: &ClaimSpec, client: Option<Client>, problems: &mut Vec<String>) {
    if spec.expect.exchange.is_some() && client != Some(Client::Exchange) {
        problems.push("expect.exchange is observed on run.client = \"exchange\"".into());
    }
    if spec.lab.quickack && spec.lab.server != Server::Reply {
        problems.push(
            "lab.quickack applies to lab.server = \"reply\" (the server that sets TCP_QUICKACK after every recv())".into(),
        );
    }
    let socket = spec.run.as_ref().map(|r| &r.socket);
    if socket.is_some_and(|s| s.nodelay || s.cork) && client != Some(Client::Exchange) {
        problems.push(
            "run.socket.nodelay and run.socket.cork apply to run.client = \"exchange\" (the only client that writes a request)".into(),
        );
    }
}

/// The longest `run.hold`.
const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(60);

fn validate_run(spec: &ClaimSpec, run: &RunSpec, problems: &mut Vec<String>) {
    if let Some(hold) = run.hold {
        if run.client != Some(Client::Connect) {
            problems.push("run.hold applies to run.client = \"connect\" only".into());
        }
        if hold.0 > MAX_HOLD {
            problems.push(format!(
                "run.hold = {:?} is longer than {} s: a claim about what a peer sends after the handshake needs a minute at most",
                hold.0,
                MAX_HOLD.as_secs()
            ));
        }
    }
    if run.timeout.is_some_and(|t| t.0.is_zero()) {
        problems.push(
            "run.timeout is 0: the harness would kill the action before it starts; give it longer than the behaviour the claim is about".into(),
        );
    }
    match (&run.command, run.client) {
        (Some(_), Some(_)) => problems.push("run.command and run.client exclude each other".into()),
        (None, None) => problems.push("[claim.run] needs run.command or run.client".into()),
        (Some(cmd), None) => {
            if cmd.is_empty() || cmd[0].trim().is_empty() {
                problems.push("run.command is empty: give the program first".into());
            }
            for arg in cmd {
                if arg.contains('\0') {
                    problems.push(format!(
                        "run.command argument {arg:?} contains a NUL byte, which no program can be given"
                    ));
                }
            }
            // Placeholders are replaced in the arguments and in the environment's values.
            for text in cmd.iter().chain(run.env.values()) {
                for p in placeholders_in(text) {
                    if !PLACEHOLDERS.contains(&p.as_str()) {
                        problems.push(format!(
                            "unknown placeholder {p} in {text:?}: use {}",
                            PLACEHOLDERS.join(", ")
                        ));
                    }
                }
            }
            if spec.lab.server == Server::NeverAcceptUnix
                && cmd
                    .iter()
                    .chain(run.env.values())
                    .any(|a| a.contains("{ip}") || a.contains("{port}"))
            {
                problems.push("{ip} and {port} do not apply to a unix server: use {target}".into());
            }
            for (key, value) in &run.env {
                if key.is_empty() || key.contains(['=', '\0']) {
                    problems.push(format!(
                        "run.env: {key:?} is not a variable name (not empty, no '=' and no NUL)"
                    ));
                }
                if value.contains('\0') {
                    problems.push(format!(
                        "run.env.{key:?} = {value:?} contains a NUL byte, which no environment can hold"
                    ));
                }
            }
        }
        (None, Some(client)) => {
            if !run.env.is_empty() || run.stdin.is_some() {
                problems.push("run.env and run.stdin apply to run.command, not run.client".into());
            }
            if !spec.lab.hosts.is_empty() {
                problems.push("lab.hosts applies to run.command, not run.client".into());
            }
            let fits = match client {
                Client::Connect => !matches!(
                    spec.lab.server,
                    Server::NeverAcceptUnix | Server::None | Server::DiesAfterHandshake
                ),
                Client::Fill => spec.lab.server.answers_nothing(),
                // Ports run out on TCP only.
                Client::Exhaust => {
                    matches!(spec.lab.server, Server::Silent | Server::NeverAccept)
                }
                Client::Send => spec.lab.server == Server::DiesAfterHandshake,
                // A live peer (silent) answers the probes: its wait ends at run.timeout.
                Client::Idle => {
                    spec.lab.server == Server::DiesAfterHandshake
                        || (spec.lab.server == Server::Silent && spec.lab.link.is_some())
                }
                Client::Close => spec.lab.server == Server::Silent,
                Client::Stream => spec.lab.server == Server::Silent,
                Client::Bulk => spec.lab.server == Server::Sink,
                Client::SynOnly => {
                    matches!(spec.lab.server, Server::NeverAccept | Server::Silent)
                }
                Client::Exchange => spec.lab.server == Server::Reply,
            };
            if !fits {
                problems.push(format!(
                    "run.client = {client:?} does not fit lab.server = {:?}",
                    spec.lab.server
                ));
            }
            let closes_the_window = spec.lab.link.is_some()
                && spec.lab.rules.iter().any(|r| r.action.trim() == "window 0");
            if client == Client::Stream && !closes_the_window {
                problems.push(
                    "run.client = \"stream\" needs a peer whose window is 0: lab.link and a rule such as { toward = \"client\", flags = \"A\", not_flags = \"S\", action = \"window 0\" }".into(),
                );
            }
            if client == Client::Stream && run.socket.user_timeout.is_none() {
                problems.push(
                    "run.client = \"stream\" needs run.socket.user_timeout: a peer that answers its window probes is probed for ever, and only TCP_USER_TIMEOUT ends the connection".into(),
                );
            }
            if client == Client::Idle && spec.lab.server == Server::Silent && run.timeout.is_none()
            {
                problems.push(
                    "run.client = \"idle\" with a live peer (silent) needs run.timeout: the connection may stay up for ever".into(),
                );
            }
        }
    }
    for (name, option, value, max) in socket_ranges(&run.socket) {
        if let Some(v) = value {
            if !(1..=max).contains(&v) {
                problems.push(format!(
                    "run.socket.{name} = {v}: the kernel accepts {option} from 1 to {max} (EINVAL otherwise)"
                ));
            }
        }
    }
    if run.command.is_some() && spec.expect.connections.is_some() {
        problems.push(
            "expect.connections is observed on a fill or exhaust client, not on a command".into(),
        );
    }
    if run.command.is_some() && !run.trace_connect && spec.expect.errno.is_some() {
        problems.push(
            "expect.errno on a command needs run.trace_connect = true (strace observes the errno); or use expect.exit and expect.output".into(),
        );
    }
    if run.trace_connect && run.command.is_none() {
        problems.push("run.trace_connect applies to run.command".into());
    }
    if spec.expect.connect_calls.is_some() && !run.trace_connect {
        problems.push("expect.connect_calls needs run.trace_connect = true".into());
    }
    if run.client.is_some()
        && (spec.expect.exit.is_some()
            || spec.expect.stdout.is_some()
            || spec.expect.stderr.is_some()
            || spec.expect.output.is_some()
            || spec.expect.output_line.is_some()
            || !spec.expect.output_count.is_empty()
            || (spec.expect.killed.is_some() && run.client != Some(Client::Idle)))
    {
        problems.push(
            "expect.exit, the output keys and expect.killed are observed on run.command (expect.killed also on run.client = \"idle\"), not on a client".into(),
        );
    }
}

/// The `{...}` tokens of `arg`.
fn placeholders_in(arg: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        found.push(rest[start..=start + len].to_owned());
        rest = &rest[start + len + 1..];
    }
    found
}

/// `(major, minor)` of `"5.4"` or a kernel release `"6.18.44-foo"`.
pub fn parse_release(text: &str) -> Option<(u32, u32)> {
    let mut it = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}
