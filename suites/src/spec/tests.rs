//! The claim file format's tests: parsing, places, and every validation message.

use std::time::Duration;

use super::*;

const EXAMPLE: &str = r#"
[[claim]]
id = "mine.curl-retries-3"
source = "runbooks/kernel-upgrade.md"
statement = "With tcp_syn_retries=3, curl against a host that drops SYNs gives up after 15 s with exit 28."

[claim.lab]
sysctls = { "net.ipv4.tcp_syn_retries" = "3" }
server = "drop-syn"

[claim.run]
command = ["curl", "-sS", "http://{target}/"]
timeout = "60s"

[claim.expect]
exit = 28
duration = "15s"
stderr = "Failed to connect"
syns = 4
"#;

fn origin() -> Origin {
    Origin::File("mine.toml".into())
}

#[test]
fn the_issue_example_parses() {
    let claims = parse(EXAMPLE, &origin()).expect("valid");
    let c = &claims[0].spec;
    assert_eq!(claims[0].line, 2);
    assert_eq!(c.lab.server, Server::DropSyn);
    assert_eq!(c.lab.sysctls["net.ipv4.tcp_syn_retries"].text(), "3");
    assert_eq!(c.expect.duration, Some(Span(Duration::from_secs(15))));
    assert_eq!(c.expect.syns, Some(4));
    assert_eq!(
        c.run.as_ref().unwrap().timeout,
        Some(Span(Duration::from_secs(60)))
    );
}

fn one_error(text: &str) -> SpecError {
    let errors = parse(text, &origin()).expect_err("invalid");
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn a_syntax_error_has_its_line_and_column() {
    let e = one_error("[[claim]]\nid = \"a.b\"\nsource = \"s\nstatement = \"x\"\n");
    assert_eq!((e.line, e.file.as_str()), (3, "mine.toml"), "{e}");
    assert!(e.to_string().starts_with("mine.toml:3:"), "{e}");
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    let text = EXAMPLE.replace("exit = 28", "exit = 28\nexitcode = 7");
    let e = one_error(&text);
    assert!(e.message.contains("unknown key `exitcode`"), "{e}");
    assert!(
        e.message.contains("valid keys here:") && e.message.contains("`duration`"),
        "{e}"
    );
    // toml places it at the table the key is in.
    assert_eq!(e.line, 17, "{e}");
}

#[test]
fn missing_required_keys_are_named() {
    let e = one_error("[[claim]]\nid = \"a.b\"\nsource = \"s\"\n");
    assert!(
        e.message.contains("missing required key `statement`"),
        "{e}"
    );
}

#[test]
fn the_example_lists_every_server_kind() {
    // The kinds as serde names them in its error, against the example's comment.
    let e = one_error(
        "[[claim]]\nid = \"a.b\"\nsource = \"s\"\nstatement = \"s\"\nlab = { server = \"zzz\" }\n",
    );
    let (_, kinds) = e.message.split_once("expected one of ").expect("a list");
    let kinds: std::collections::BTreeSet<&str> = kinds
        .split(", ")
        .map(|k| k.trim_matches(['`', ' ', '.']))
        .collect();
    let example = include_str!("../../../examples/claims/curl-retries-3.toml");
    let (_, listed) = example
        .split_once("what is at {target}:")
        .expect("the comment");
    let listed: std::collections::BTreeSet<&str> = listed
        .lines()
        .take(2)
        .flat_map(|l| l.trim_start_matches([' ', '#']).split('|'))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    assert_eq!(listed, kinds);
}

#[test]
fn semantic_problems_are_found_and_placed() {
    let text = EXAMPLE
        .replace("\"net.ipv4.tcp_syn_retries\"", "\"kernel.panic\"")
        .replace("{target}/", "{host}/")
        .replace("\"drop-syn\"", "\"drop-syn\"\nbacklog = 4");
    let errors = parse(&text, &origin()).expect_err("invalid");
    let all = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains("only net.* sysctls"), "{all}");
    assert!(all.contains("unknown placeholder {host}"), "{all}");
    assert!(all.contains("lab.backlog only applies"), "{all}");
    assert!(errors.iter().all(|e| e.line == 2), "{all}");
}

#[test]
fn the_docs_keys_are_checked() {
    let claim =
        |body: &str| format!("[[claim]]\nid = \"a.b\"\nsource = \"s\"\nstatement = \"s\"\n{body}");
    let all = |text: &str| {
        parse(text, &origin())
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let e = all(&claim(
        "lab = { server = \"reject\" }\nrun = { client = \"connect\" }\n",
    ));
    assert!(e.contains("needs lab.reject_with"), "{e}");
    let e = all(&claim(
            "lab = { server = \"reject\", reject_with = \"icmp-bogus\" }\nrun = { client = \"connect\" }\n",
        ));
    assert!(e.contains("is not one of tcp-reset"), "{e}");
    for (lab, needle) in [
        ("server = \"trickle\"", "needs lab.trickle"),
        (
            "server = \"http\", trickle = { every = \"1s\" }",
            "lab.trickle applies to lab.server = \"trickle\"",
        ),
        (
            "server = \"trickle\", trickle = { every = \"0s\" }",
            "every and bytes must be above zero",
        ),
        (
            "server = \"trickle\", trickle = { every = \"1s\", bytes = 0 }",
            "every and bytes must be above zero",
        ),
        (
            "server = \"trickle\", trickle = { every = \"2s\", bytes = 1801 }",
            "take longer than an hour",
        ),
        (
            "server = \"trickle\", trickle = { every = \"1s\", size = 3 }",
            "unknown key `size`",
        ),
    ] {
        let e = all(&claim(&format!(
            "lab = {{ {lab} }}\nrun = {{ command = [\"wget\", \"http://{{target}}/\"] }}\nexpect = {{ exit = 0 }}\n"
        )));
        assert!(e.contains(needle), "{lab}: {e}");
    }
    let ok = parse(
        &claim("lab = { server = \"trickle\", trickle = { every = \"1s\" }, link = { delay = \"10ms\" } }\nrun = { command = [\"wget\", \"http://{target}/\"] }\nexpect = { exit = 0 }\n"),
        &origin(),
    )
    .expect("a trickle lab behind a link");
    assert_eq!(
        ok[0].spec.lab.trickle.map(|t| (t.every.0, t.bytes)),
        Some((std::time::Duration::from_secs(1), 4))
    );
    // idle to a live peer: behind a link (the client needs the peer's namespace), with
    // run.timeout (it may stay up for ever); expect.killed says it is still up.
    let e = all(&claim(
        "lab = { server = \"silent\", link = {} }\nrun = { client = \"idle\" }\nexpect = { killed = true }\n",
    ));
    assert!(e.contains("needs run.timeout"), "{e}");
    assert!(!e.contains("expect.killed"), "{e}");
    let e = all(&claim(
        "lab = { server = \"silent\" }\nrun = { client = \"idle\", timeout = \"3s\" }\nexpect = { killed = true }\n",
    ));
    assert!(e.contains("does not fit lab.server"), "{e}");
    let e = all(&claim(
        "lab = { server = \"silent\" }\nrun = { client = \"close\" }\nexpect = { killed = true }\n",
    ));
    assert!(
        e.contains("expect.killed also on run.client = \"idle\""),
        "{e}"
    );
    parse(
        &claim("lab = { server = \"silent\", link = {} }\nrun = { client = \"idle\", timeout = \"3s\" }\nexpect = { killed = true }\n"),
        &origin(),
    )
    .expect("idle to a live peer behind a link, with a timeout");
    let e = all(&claim(
        "lab = { server = \"blackhole\", family = \"ipv6\" }\nrun = { client = \"connect\" }\n",
    ));
    assert!(e.contains("works with drop-syn, refuse and none"), "{e}");
    let e = all(&claim(
            "lab = { server = \"dies-after-handshake\" }\nrun = { client = \"send\" }\nexpect = { probes = 3 }\n",
        ));
    assert!(
        e.contains("expect.probes is observed on run.client = \"idle\""),
        "{e}"
    );
    let e = all(&claim(
            "lab = { server = \"dies-after-handshake\" }\nrun = { client = \"idle\" }\nexpect = { first_retransmission = \"1s\", tolerance = \"-5%\" }\n",
        ));
    assert!(
        e.contains("expect.first_retransmission is observed on run.client = \"send\"")
            && e.contains("expect.tolerance: "),
        "{e}"
    );
    let e = all(&claim(
            "lab = { server = \"dies-after-handshake\" }\nrun = { client = \"send\" }\nexpect = { errno = \"ETIMEDOUT\", tolerance = \"5%\" }\n",
        ));
    assert!(
        e.contains(
            "expect.tolerance needs expect.duration, expect.first_retransmission or expect.exchange"
        ),
        "{e}"
    );
    let e = all(&claim(
            "lab = { server = \"drop-syn\" }\nrun = { command = [\"nc\", \"{ip}\"], socket = { syncnt = 2 } }\n",
        ));
    assert!(
        e.contains("run.socket applies to the in-repo clients"),
        "{e}"
    );
    let e = all(&claim(
        "lab = { server = \"silent\" }\nrun = { client = \"send\" }\n",
    ));
    assert!(e.contains("does not fit lab.server"), "{e}");
    let ok = claim("tier = \"long\"\nlab = { server = \"dies-after-handshake\" }\nrun = { client = \"send\", socket = { user_timeout = \"3s\" } }\nexpect = { duration_at_most = \"3s\" }\n");
    let c = parse(&ok, &origin()).expect("valid");
    assert_eq!(c[0].spec.tier, Tier::Long);
}

#[test]
fn unknown_server_kinds_name_the_valid_ones() {
    let e = one_error(&EXAMPLE.replace("\"drop-syn\"", "\"dropsyn\""));
    assert!(
        e.message.contains("drop-syn") && e.message.contains("never-accept"),
        "{e}"
    );
}

#[test]
fn spans_and_tolerances_read_as_written() {
    assert_eq!(Span::parse("2.5s").unwrap().0, Duration::from_millis(2500));
    assert_eq!(
        Span::parse("1500ms").unwrap().0,
        Duration::from_millis(1500)
    );
    assert_eq!(Span::parse("2m").unwrap().0, Duration::from_secs(120));
    assert!(Span::parse("15").unwrap_err().contains("unknown unit"));
    let t = ToleranceSpec::Max(vec!["500ms".into(), "10%".into()]);
    assert_eq!(
        t.around(Duration::from_secs(15)).unwrap(),
        Duration::from_millis(1500)
    );
    assert_eq!(
        t.around(Duration::from_secs(2)).unwrap(),
        Duration::from_millis(500)
    );
}

#[test]
fn errnos_by_name_and_releases() {
    assert_eq!(
        errno_by_name("ETIMEDOUT"),
        Some(nix::errno::Errno::ETIMEDOUT)
    );
    assert_eq!(errno_by_name("ENOTANERRNO"), None);
    assert_eq!(parse_release("6.18.44-fc-v782"), Some((6, 18)));
    assert_eq!(parse_release("5.4"), Some((5, 4)));
    assert_eq!(parse_release("0"), Some((0, 0)));
}

/// A valid claim that the cases below change one key of.
const BASE: &str = r#"
[[claim]]
id = "t.case"
source = "s"
statement = "s"

[claim.lab]
server = "drop-syn"

[claim.run]
client = "connect"

[claim.expect]
errno = "ETIMEDOUT"
"#;

/// BASE with a command instead of the client (and its exit code as the check).
fn command_base() -> String {
    BASE.replace(
        "client = \"connect\"",
        "command = [\"sh\", \"-c\", \"true\"]",
    )
    .replace("errno = \"ETIMEDOUT\"", "exit = 0")
}

/// Every problem `parse` finds in `text`, one per line ("" when it is valid).
fn problems(text: &str) -> String {
    match parse(text, &origin()) {
        Ok(_) => String::new(),
        Err(errors) => errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// `text` is refused with a message containing each of `needles`.
#[track_caller]
fn refused(text: &str, needles: &[&str]) {
    let all = problems(text);
    assert!(!all.is_empty(), "accepted:\n{text}");
    for n in needles {
        assert!(all.contains(n), "no {n:?} in:\n{all}");
    }
}

#[test]
fn the_bases_are_valid() {
    assert_eq!(problems(BASE), "");
    assert_eq!(problems(&command_base()), "");
}

#[test]
fn tolerances_out_of_range_are_refused_not_a_panic() {
    for t in ["-50%", "-1%", "NaN%", "inf%", "1e30%", "101%"] {
        let text = BASE.replace(
            "errno = \"ETIMEDOUT\"",
            &format!("duration = \"3s\"\ntolerance = {t:?}"),
        );
        refused(
            &text,
            &[&format!(
                "expect.tolerance: tolerance {t:?}: a percentage is from 0% to 100%"
            )],
        );
    }
    let empty = BASE.replace("errno = \"ETIMEDOUT\"", "duration = \"3s\"\ntolerance = []");
    refused(&empty, &["an empty list gives no tolerance"]);
    let ok = BASE.replace(
        "errno = \"ETIMEDOUT\"",
        "duration = \"3s\"\ntolerance = [\"0%\", \"100%\", \"1s\"]",
    );
    assert_eq!(problems(&ok), "");
    assert_eq!(
        ToleranceSpec::One("100%".into()).around(Span::MAX),
        Ok(Span::MAX)
    );
}

#[test]
fn a_tolerance_of_the_wrong_shape_says_which_shapes_are_right() {
    let e = one_error(&BASE.replace("errno = \"ETIMEDOUT\"", "duration = \"3s\"\ntolerance = 5"));
    assert!(!e.message.contains("untagged"), "{e}");
    assert!(
            e.message.contains(r#"a tolerance is a duration ("500ms"), a percentage of expect.duration ("10%"), or both (["500ms", "10%"]"#),
            "{e}"
        );
    let e = one_error(&BASE.replace("errno = \"ETIMEDOUT\"", "errno = 1.5"));
    assert!(
        !e.message.contains("untagged") && e.message.contains("an errno is a name"),
        "{e}"
    );
    let e = one_error(&BASE.replace(
        "server = \"drop-syn\"",
        "server = \"drop-syn\"\nsysctls = { \"net.core.somaxconn\" = 1.5 }",
    ));
    assert!(e.message.contains("a sysctl value is a number"), "{e}");
    let e = one_error(&command_base().replace("exit = 0", "stdout = 3"));
    assert!(e.message.contains("a text to look for is a string"), "{e}");
}

#[test]
fn spans_are_bounded_to_a_day() {
    for t in ["300000000000000000m", "25h", "86401s", "1441m"] {
        let e = Span::parse(t).unwrap_err();
        assert!(
            e.contains("longer than a day") || e.contains("unknown unit"),
            "{t}: {e}"
        );
    }
    let huge = format!("1{}s", "0".repeat(400));
    assert!(Span::parse(&huge)
        .unwrap_err()
        .contains("longer than a day"));
    assert_eq!(Span::parse("1440m").unwrap().0, Span::MAX);
    assert!(Span::parse("-1s")
        .unwrap_err()
        .contains("is not a duration"));
    assert!(Span::parse("NaNs")
        .unwrap_err()
        .contains("is not a duration"));
    // In every key that takes a duration.
    for (from, to) in [
        (
            "errno = \"ETIMEDOUT\"",
            "duration = \"300000000000000000m\"",
        ),
        (
            "client = \"connect\"",
            "client = \"connect\"\ntimeout = \"300000000000000000m\"",
        ),
        (
            "statement = \"s\"",
            "statement = \"s\"\nestimate = \"300000000000000000m\"",
        ),
    ] {
        refused(
            &BASE.replace(from, to),
            &["\"300000000000000000m\" is longer than a day"],
        );
    }
}

#[test]
fn a_claim_with_nothing_to_check_is_refused() {
    for expect in [
        "",
        "ignore_case = true",
        "per_try = \"1s\"",
        "output_count = []",
        "ignore_case = true\nper_try = \"1s\"\noutput_count = []",
    ] {
        let text = command_base().replace("exit = 0", expect);
        refused(&text, &["nothing to check: [claim.expect] gives no figure"]);
    }
    let no_table = command_base().replace("[claim.expect]\nexit = 0\n", "");
    refused(&no_table, &["nothing to check"]);
    // Empty texts check nothing either.
    refused(
        &command_base().replace("exit = 0", "stdout = []"),
        &["expect.stdout = [] checks nothing"],
    );
    refused(
        &command_base().replace("exit = 0", "stderr = \"\""),
        &["expect.stderr: an empty text is in every output"],
    );
    refused(
        &command_base().replace("exit = 0", "output_count = [{ text = \"\", count = 1 }]"),
        &["an empty text cannot be counted"],
    );
    // Without a run, only a fresh namespace's defaults are observed.
    let no_run = "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\n\
                      lab = { sysctls = { \"net.core.somaxconn\" = 1 } }\n\
                      expect = { exit = 3, sysctls = { \"net.core.somaxconn\" = 4096 } }\n";
    refused(
        no_run,
        &["expect.exit is observed on a run: add [claim.run]"],
    );
    let lab_only = "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\n\
                        lab = { sysctls = { \"net.core.somaxconn\" = 1 } }\n";
    refused(
        lab_only,
        &["nothing to check", "a lab without a run observes nothing"],
    );
}

#[test]
fn every_sweep_value_has_something_to_check() {
    let sweep = |expect: &str| {
        format!(
            "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\n\
                 lab = {{ server = \"drop-syn\" }}\nrun = {{ client = \"connect\" }}\n\
                 sweep = {{ sysctl = \"net.ipv4.tcp_syn_retries\", values = [1, 2] }}\n\
                 [claim.expect]\n{expect}"
        )
    };
    assert_eq!(problems(&sweep("errno = \"ETIMEDOUT\"\n")), "");
    assert_eq!(
        problems(&sweep(
            "each.\"1\" = { duration = \"3s\" }\neach.\"2\" = { duration = \"7s\" }\n"
        )),
        ""
    );
    refused(
        &sweep("each.\"1\" = { duration = \"3s\" }\n"),
        &[
            "nothing to check",
            "sweep value(s) 2 have no expect.each entry",
        ],
    );
    refused(
        &sweep("errno = \"ETIMEDOUT\"\neach.\"1\" = { ignore_case = true }\n"),
        &["expect.each.\"1\" checks nothing"],
    );
    refused(
            &sweep("errno = \"ETIMEDOUT\"\neach.\"1\" = { exit = 300, errno = 0, duration = \"3s\", tolerance = \"-5%\" }\n"),
            &[
                "expect.each.\"1\".exit = 300",
                "expect.each.\"1\".errno = 0 is not an errno",
                "expect.each.\"1\".tolerance: tolerance \"-5%\"",
            ],
        );
    refused(
            &sweep("errno = \"ETIMEDOUT\"\neach.\"1\" = { duration = \"3s\", each = { \"1\" = { duration = \"1s\" } } }\n"),
            &["expect.each.\"1\".each: a sweep value has no values of its own"],
        );
    refused(
            &sweep("errno = \"ETIMEDOUT\"\neach.\"1\" = { duration = \"3s\", sysctls = { \"net.core.somaxconn\" = 1 } }\n"),
            &["expect.each.\"1\".sysctls: a fresh namespace's defaults are read once per claim"],
        );
}

#[test]
fn nul_bytes_are_refused_and_shown_escaped() {
    let name = BASE.replace(
        "server = \"drop-syn\"",
        "server = \"drop-syn\"\nsysctls = { \"net.ipv4.tcp_syn_retries\\u0000x\" = 1 }",
    );
    refused(
        &name,
        &[r#"sysctl name "net.ipv4.tcp_syn_retries\0x" contains a NUL byte"#],
    );
    let value = BASE.replace(
            "server = \"drop-syn\"",
            "server = \"drop-syn\"\nsysctls = { \"net.ipv4.tcp_syn_retries\" = \"1\\u0000\\u001b[2J\" }",
        );
    refused(
        &value,
        &[r#"sysctl value "net.ipv4.tcp_syn_retries" = "1\0\u{1b}[2J" contains a NUL"#],
    );
    let env = command_base().replace("command = [", "env = { A = \"x\\u0000y\" }\ncommand = [");
    refused(&env, &[r#"run.env."A" = "x\0y" contains a NUL byte"#]);
    let arg = command_base().replace("\"true\"", "\"tr\\u0000ue\"");
    refused(
        &arg,
        &[r#"run.command argument "tr\0ue" contains a NUL byte"#],
    );
}

#[test]
fn environment_keys_are_variable_names_and_values_take_placeholders() {
    for key in ["\"A=B\"", "\"\"", "\"A\\u0000\""] {
        let text = command_base().replace(
            "command = [",
            &format!("env = {{ {key} = \"1\" }}\ncommand = ["),
        );
        refused(
            &text,
            &["is not a variable name (not empty, no '=' and no NUL)"],
        );
    }
    let ok = command_base().replace(
            "command = [",
            "env = { URL = \"http://{target}/\", HOST = \"{ip}\", PORT = \"{port}\", HERE = \"{dir}\" }\ncommand = [",
        );
    assert_eq!(problems(&ok), "");
    let unknown = command_base().replace("command = [", "env = { URL = \"{host}\" }\ncommand = [");
    refused(&unknown, &["unknown placeholder {host} in \"{host}\""]);
}

#[test]
fn socket_options_are_in_the_kernels_ranges() {
    for (opt, value, max) in [
        ("keepcnt", 0, 127),
        ("keepcnt", 128, 127),
        ("syncnt", 300, 127),
        ("syncnt", 0, 127),
        ("keepidle", 0, 32767),
        ("keepidle", 32768, 32767),
        ("keepintvl", 0, 32767),
        ("keepintvl", 40000, 32767),
    ] {
        let text = BASE.replace(
            "client = \"connect\"",
            &format!("client = \"connect\"\nsocket = {{ {opt} = {value} }}"),
        );
        refused(
            &text,
            &[
                &format!("run.socket.{opt} = {value}: the kernel accepts"),
                &format!("from 1 to {max}"),
            ],
        );
    }
    let ok = BASE.replace(
            "client = \"connect\"",
            "client = \"connect\"\nsocket = { syncnt = 127, keepidle = 32767, keepintvl = 1, keepcnt = 127 }",
        );
    assert_eq!(problems(&ok), "");
}

#[test]
fn ids_fit_a_file_name_and_have_no_empty_parts() {
    for id in ["..", "probe..x", "probe.x.", ".probe.x", "a."] {
        refused(&BASE.replace("t.case", id), &["has an empty part"]);
    }
    let long = format!("t.{}", "x".repeat(127));
    refused(
        &BASE.replace("t.case", &long),
        &["is 129 characters long: an id has at most 128"],
    );
    let fits = format!("t.{}", "x".repeat(126));
    assert_eq!(problems(&BASE.replace("t.case", &fits)), "");
    // The message shows a long id cut short.
    assert!(problems(&BASE.replace("t.case", &long)).contains("xx\"…"));
}

#[test]
fn exit_codes_and_errnos_are_ones_a_run_can_observe() {
    for code in ["-1", "256"] {
        refused(
            &command_base().replace("exit = 0", &format!("exit = {code}")),
            &[&format!("expect.exit = {code}: an exit code is 0 to 255")],
        );
    }
    assert_eq!(
        problems(&command_base().replace("exit = 0", "exit = 255")),
        ""
    );
    for n in ["0", "-5", "4096", "4000"] {
        refused(
            &BASE.replace("errno = \"ETIMEDOUT\"", &format!("errno = {n}")),
            &[&format!("expect.errno = {n} is not an errno")],
        );
    }
    assert_eq!(
        problems(&BASE.replace("errno = \"ETIMEDOUT\"", "errno = 110")),
        ""
    );
    refused(
        &BASE.replace("\"ETIMEDOUT\"", "\"ETIMEOUT\""),
        &["is not an errno name"],
    );
}

#[test]
fn duration_bounds_must_leave_room() {
    refused(
        &BASE.replace(
            "errno = \"ETIMEDOUT\"",
            "duration_at_least = \"10s\"\nduration_at_most = \"5s\"",
        ),
        &["expect.duration_at_least (10.000 s) is above expect.duration_at_most (5.000 s)"],
    );
    assert_eq!(
        problems(&BASE.replace(
            "errno = \"ETIMEDOUT\"",
            "duration_at_least = \"5s\"\nduration_at_most = \"5s\""
        )),
        ""
    );
}

#[test]
fn what_the_engine_cannot_build_is_refused() {
    // Ports run out only on TCP: exhaust against a unix listener errs at run time.
    refused(
        &BASE
            .replace("\"drop-syn\"", "\"never-accept-unix\"")
            .replace("\"connect\"", "\"exhaust\"")
            .replace("errno = \"ETIMEDOUT\"", "connections = 3"),
        &["run.client = Exhaust does not fit lab.server = NeverAcceptUnix"],
    );
    refused(
        &BASE.replace("server = \"drop-syn\"", "server = \"drop-syn\"\nport = 0"),
        &["lab.port = 0 is not a port"],
    );
    refused(
        &command_base().replace(
            "server = \"drop-syn\"",
            "server = \"drop-syn\"\nhosts = { \"db\\n1.2.3.4 evil\" = \"target\" }",
        ),
        &["is not a host name"],
    );
    // A file without a claim.
    refused("claim = []\n", &["no claim in this file"]);
}

/// TCP_RTO_MIN_US takes at most TCP_RTO_MIN (200000 µs); the check says so before a
/// lab is built.
#[test]
fn rto_min_us_above_tcp_rto_min_is_refused() {
    let claim = |us: u32| {
        format!(
            "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\nlab = {{ server = \"dies-after-handshake\" }}\nrun = {{ client = \"send\", socket = {{ rto_min_us = {us} }} }}\nexpect = {{ errno = \"ETIMEDOUT\" }}\n"
        )
    };
    refused(&claim(200_001), &["rto_min_us"]);
    assert_eq!(problems(&claim(100_000)), "");
}

/// run.hold keeps a connect client's connection: for connect only, a minute at most; it
/// lets expect.synacks count what the client heard.
#[test]
fn run_hold_is_for_connect_and_bounded() {
    let claim = |run: &str, expect: &str| {
        format!(
            "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\nlab = {{ server = \"silent\" }}\nrun = {{ {run} }}\nexpect = {{ {expect} }}\n"
        )
    };
    refused(
        &claim("client = \"close\", hold = \"2s\"", "fin = true"),
        &["run.hold applies to run.client = \"connect\" only"],
    );
    refused(
        &claim("client = \"connect\", hold = \"61s\"", "synacks = 1"),
        &["is longer than 60 s"],
    );
    refused(
        &claim("client = \"connect\"", "synacks = 1"),
        &["expect.synacks"],
    );
    assert_eq!(
        problems(&claim("client = \"connect\", hold = \"2s\"", "synacks = 1")),
        ""
    );
}

/// The stream client needs a peer whose window a rule closes, and a user timeout (answered
/// window probes go on for ever); with both it is accepted.
#[test]
fn the_stream_client_needs_a_closed_window_and_a_user_timeout() {
    let stream = |lab: &str, socket: &str| {
        format!(
            "[[claim]]\nid = \"t.case\"\nsource = \"s\"\nstatement = \"s\"\nlab = {{ server = \"silent\"{lab} }}\nrun = {{ client = \"stream\"{socket} }}\nexpect = {{ errno = \"ETIMEDOUT\" }}\n"
        )
    };
    let window = ", link = { delay = \"5ms\" }, rules = [{ toward = \"client\", flags = \"A\", not_flags = \"S\", action = \"window 0\" }]";
    let timeout = ", socket = { user_timeout = \"2s\" }";
    refused(&stream("", timeout), &["needs a peer whose window is 0"]);
    refused(&stream(window, ""), &["needs run.socket.user_timeout"]);
    assert_eq!(problems(&stream(window, timeout)), "");
}

#[test]
fn the_exchange_keys_apply_to_the_exchange_client_and_its_reply_server() {
    let exchange = |lab: &str, run: &str, expect: &str| {
        format!(
            "[[claim]]\nid = \"t.exchange\"\nsource = \"s\"\nstatement = \"s\"\n\
             lab = {{ server = \"reply\", link = {{ delay = \"5ms\" }}{lab} }}\n\
             run = {{ client = \"exchange\"{run} }}\nexpect = {{ {expect} }}\n"
        )
    };
    let ok = exchange(
        ", quickack = true",
        ", socket = { nodelay = true }",
        "exchange = \"40ms\", tolerance = \"10%\"",
    );
    assert_eq!(problems(&ok), "");
    let c = &parse(&ok, &origin()).expect("valid")[0].spec;
    assert_eq!(c.expect.exchange, Some(Span(Duration::from_millis(40))));
    assert!(c.lab.quickack && c.run.as_ref().is_some_and(|r| r.socket.nodelay));
    // Off the exchange client: its key, its options and its server are refused.
    refused(
        &BASE.replace("errno = \"ETIMEDOUT\"", "exchange = \"40ms\""),
        &["expect.exchange is observed on run.client = \"exchange\""],
    );
    refused(
        &BASE.replace(
            "client = \"connect\"",
            "client = \"connect\"\nsocket = { cork = true }",
        ),
        &["run.socket.nodelay and run.socket.cork apply to run.client = \"exchange\""],
    );
    refused(
        &BASE.replace(
            "server = \"drop-syn\"",
            "server = \"drop-syn\"\nquickack = true",
        ),
        &["lab.quickack applies to lab.server = \"reply\""],
    );
    refused(
        &exchange("", "", "exchange = \"40ms\"").replace("\"reply\"", "\"silent\""),
        &["run.client = Exchange does not fit lab.server = Silent"],
    );
    // The tolerance widens the stated exchange, and must be one.
    refused(
        &exchange("", "", "exchange = \"40ms\", tolerance = \"-5%\""),
        &["expect.tolerance: "],
    );
    // A bad value of the key itself.
    refused(&exchange("", "", "exchange = \"soon\""), &["soon"]);
}

#[test]
fn the_recovery_keys_are_checked() {
    let claim = |body: &str| {
        [
            "[[claim]]\nid = \"a.b\"\nsource = \"s\"\nstatement = \"s\"",
            body,
        ]
        .join("\n")
    };
    let all = |text: &str| match parse(text, &origin()) {
        Ok(_) => String::new(),
        Err(errors) => errors.iter().map(|e| format!("{e}\n")).collect(),
    };
    let e = all(&claim(
        "lab = { server = \"dies-after-handshake\" }\nrun = { client = \"send\" }\nexpect = { repair = \"sack\", timeouts = 0 }\n",
    ));
    assert!(
        e.contains("expect.timeouts, expect.repair and expect.repaired_within_rtts is observed on run.client = \"bulk\""),
        "{e}"
    );
    let e = all(&claim(
        "lab = { server = \"silent\" }\nrun = { client = \"bulk\" }\nexpect = { repaired_within_rtts = 0 }\n",
    ));
    assert!(e.contains("does not fit lab.server"), "{e}");
    assert!(e.contains("repaired_within_rtts = 0"), "{e}");
    let e = all(&claim(
        "lab = { server = \"sink\" }\nrun = { client = \"bulk\" }\nexpect = { repair = \"rack\" }\n",
    ));
    assert!(e.contains("unknown variant `rack`"), "{e}");
    let e = all(&claim(
        "lab = { server = \"sink\" }\nrun = { client = \"idle\" }\nexpect = { retransmissions = 1 }\n",
    ));
    assert!(
        e.contains("expect.retransmissions is observed on run.client = \"send\" or \"bulk\""),
        "{e}"
    );
    let ok = claim(
        "lab = { server = \"sink\", link = { delay = \"10ms\" }, rules = [{ toward = \"peer\", after_bytes = 131072, nth = 1, action = \"drop\" }] }\n\
         run = { client = \"bulk\" }\nexpect = { repair = \"reno\", timeouts = 0, retransmissions = 1, repaired_within_rtts = 3 }\n",
    );
    let c = parse(&ok, &origin()).expect("valid");
    assert_eq!(c[0].spec.expect.repair, Some(crate::spec::Repair::Reno));
    assert_eq!(c[0].spec.expect.repaired_within_rtts, Some(3));
}
