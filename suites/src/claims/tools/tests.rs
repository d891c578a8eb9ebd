//! The tool claims' parsing and judging, from recorded measurements.

use super::curl::{judge_max_time, parse_max_time_message, MaxTime, MAX_TIME, MAX_TIME_STEPS};
use super::dns::Resolver;
use super::*;
use crate::claims::testing::ctx;
use crate::record::attempt::Attempt;
use crate::record::tool::ToolRun;
use crate::Verdict;

/// A recorded curl run: its first SYN 5 ms after the spawn, its exit `took` later.
fn curl_run(code: i32, stderr: &str, took: Duration) -> ToolRun {
    serde_json::from_value(serde_json::json!({
            "output": {
                "command_line": "curl -q -sS --noproxy * -o /dev/null --max-time 2 http://127.0.0.1:8080/",
                "netns": "lab",
                "status": code << 8,
                "stdout": "",
                "stderr": stderr,
                "duration": took + Duration::from_millis(5),
                "timed_out": false
            },
            "events": [],
            "syn_times": [{"secs": 0, "nanos": 0}],
            "measurement": Attempt {
                syn_times_us: vec![0],
                first_packet_us: Some(5_000),
                duration_us: (took + Duration::from_millis(5)).as_micros() as u64,
                tool: true,
                syn_late_us: vec![0],
                late_us: 0,
            }
        }))
        .expect("a recorded tool run")
}

fn max_time(run: ToolRun) -> MaxTime {
    MaxTime {
        lab: "lab".into(),
        url: "http://127.0.0.1:8080/".into(),
        version: Some("curl 7.88.1 (x86_64-pc-linux-gnu)".into()),
        run,
        served: "[]".into(),
        headers_after: Some(Duration::from_millis(10)),
        body_sent: Some(40_000),
    }
}

#[test]
fn curl_ending_with_28_at_max_time_holds() {
    let run = curl_run(
        28,
        "curl: (28) Operation timed out after 2000 milliseconds with 39000 out of 1000000 \
             bytes received\n",
        Duration::from_millis(2000),
    );
    let o = judge_max_time(&max_time(run), &ctx());
    assert_eq!(o.verdict(), Verdict::Holds, "{}", o.reason());
    assert!(o.model_agrees(), "{:?}", o.model_checks);
    let exit = &o.claim_checks[1];
    assert_eq!(
        (exit.what.as_str(), exit.observed.as_str()),
        ("exit code", "28")
    );
}

#[test]
fn curl_exiting_7_is_refuted() {
    let run = curl_run(
        7,
        "curl: (7) Failed to connect to 127.0.0.1 port 8080: Connection refused\n",
        Duration::from_millis(1),
    );
    let o = judge_max_time(&max_time(run), &ctx());
    assert_eq!(o.verdict(), Verdict::Refuted);
    assert!(
        o.reason().contains("exit code: claimed 28, observed 7"),
        "{}",
        o.reason()
    );
}

#[test]
fn curl_killed_at_the_harness_deadline_is_an_error_not_a_refutation() {
    // Under emulation beside a load, curl had not exited when the harness's deadline
    // for it passed: killed, no exit code, no message. That is no observation of
    // curl's --max-time.
    let mut run = curl_run(0, "", MAX_TIME + DEADLINE_MARGIN);
    run.output.timed_out = true;
    run.output.status = std::os::unix::process::ExitStatusExt::from_raw(9);
    let measured =
        serde_json::to_value(crate::claim::Observation::Observed(max_time(run))).expect("a record");
    let o = crate::claim::TwoSteps::judge(&MAX_TIME_STEPS, &measured, &ctx()).expect("it reads");
    assert_eq!(o.verdict(), Verdict::Error, "{}", o.reason());
    assert!(
        o.reason().starts_with("the harness killed `curl -q -sS"),
        "{}",
        o.reason()
    );
    assert!(o.reason().contains("after 12.005 s"), "{}", o.reason());
}

#[test]
fn max_time_message_parses() {
    let m = "curl: (28) Operation timed out after 5000 milliseconds with 5626456 out of 77194340 bytes received";
    assert_eq!(parse_max_time_message(m), Some((5000, 5626456, 77194340)));
    assert_eq!(parse_max_time_message("curl: (7) nope"), None);
}

#[test]
fn resolver_waits_timeout_times_attempts() {
    let r = Resolver {
        timeout_s: 1,
        attempts: 2,
    };
    assert_eq!(r.give_up(), 2 * S);
    assert_eq!(r.rounds(), vec![Duration::ZERO, S]);
}
