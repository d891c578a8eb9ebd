//! `netclaim judge FILE`: a recorded run judged again, without root.
//!
//! A report (or the smaller recording.json beside it) keeps what each claim measured;
//! judging is a pure function of that, the claim's statement and the models. So a run
//! from another machine, another kernel or an older netclaim can be judged with this
//! binary's catalog and models, and a change to a model or a tolerance shows which
//! recorded verdicts it would flip.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use netclaim_suites::recording::{self, Recording};

use crate::out::{errln, out, outln};
use crate::report::{ClaimReport, Format, Report};

/// Reads a recording, or a report (converted, and kept for its machine's facts): a regular
/// file of at most [`REPORT_CAP`](netclaim_suites::input::REPORT_CAP).
fn load(path: &Path) -> Result<(Recording, Option<Report>)> {
    let text = netclaim_suites::input::read_text(path, netclaim_suites::input::REPORT_CAP)?;
    let as_recording = match serde_json::from_str::<Recording>(&text) {
        Ok(r) => return Ok((r, None)),
        Err(e) => e,
    };
    let value: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if value
        .as_ref()
        .is_some_and(crate::report::looks_like_recording)
    {
        return Err(anyhow::Error::new(as_recording).context(format!(
            "{} is a recording.json that does not read: write it again with `netclaim run --out DIR`",
            path.display()
        )));
    }
    Report::parse(path, &text)
        .map(|r| (r.recording(), Some(r)))
        .with_context(|| {
            format!(
                "{} is neither a report.json nor a recording.json of `netclaim run --out DIR`",
                path.display()
            )
        })
}

/// Judges every recorded measurement again, with the built-in catalog and the claim
/// files at `claim_files`, and prints the verdicts then and now (`format` table) or the
/// report of the claims as judged now (the other formats, as `run` prints them); with
/// `out`, writes that report's files there as `run --out` does (a claim that could not be
/// judged is `skipped` in them, saying why). Exit 0 when every verdict is the recorded
/// one, 3 when some changed, 4 when some could not be judged (their record no longer
/// reads, or contradicts itself: see [`recording::rejudge_all`]) or when there was nothing
/// to judge (no agreement either), 1 when the files or stdout could not be written.
pub fn run(path: &Path, claim_files: &[PathBuf], format: Format, out: Option<&Path>) -> Result<u8> {
    let claims = crate::select::catalog_with_paths(claim_files)?;
    let (recording, before) = load(path)?;
    if let Some(dir) = out {
        crate::report::prepare_out(dir)?;
    }
    if recording.claims.is_empty() {
        errln!(
            "{}: no recorded measurement to judge (the recording lists no claim, or the \
             report's claims recorded none): nothing was judged, which is no agreement",
            path.display()
        );
        return Ok(crate::exit::SKIPPED);
    }
    for problem in recording.check_consistency() {
        errln!("{}: {problem}", path.display());
    }
    let judged = recording::rejudge_all(&recording, &claims);
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(vec!["claim", "recorded", "judged now", "why it changed"]);
    let (mut same, mut changed, mut skipped) = (0, 0, 0);
    let mut entries = Vec::new();
    for (r, now) in judged {
        let (verdict, why) = match &now {
            Ok(o) if o.verdict() == r.verdict => {
                same += 1;
                (o.verdict().to_string(), String::new())
            }
            Ok(o) => {
                changed += 1;
                (format!("{} (changed)", o.verdict()), o.reason())
            }
            Err(e) => {
                skipped += 1;
                ("not judged".into(), e.to_string())
            }
        };
        // Beside a report on stdout, what changed goes to stderr.
        if !matches!(format, Format::Table) && verdict != r.verdict.to_string() {
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            };
            errln!(
                "netclaim judge: {}: recorded {}, now {verdict}{why}",
                r.id,
                r.verdict
            );
        }
        t.add_row(vec![r.id.clone(), r.verdict.to_string(), verdict, why]);
        // The measurement stays in the report, so that it can be judged again in turn.
        let mut outcome = now.unwrap_or_else(|e| {
            netclaim_suites::Outcome::forced(
                netclaim_suites::Verdict::Skipped,
                format!("not judged again: {e}"),
            )
        });
        outcome
            .measurement
            .get_or_insert_with(|| r.measurement.clone());
        entries.push(ClaimReport::judged(
            &r.id,
            claims.iter().find(|c| c.id == r.id),
            before
                .as_ref()
                .and_then(|b| b.claims.iter().find(|c| c.id == r.id)),
            outcome,
        ));
    }
    let report = Report::judged(before.as_ref(), &recording, entries);
    let summary = format!(
        "{} recorded measurement(s) of Linux {} (netclaim {}, labs as {}): {same} judged to the \
         same verdict, {changed} changed, {skipped} not judged (unknown, unreadable or \
         inconsistent)",
        report.claims.len(),
        recording.kernel,
        recording.netclaim,
        recording.mode
    );
    // Files first: they are the record, whatever becomes of stdout.
    let mut wrote = true;
    if let Some(dir) = out {
        match crate::report::write_out(dir, &report) {
            Ok(()) => errln!(
                "netclaim judge: wrote report.json, recording.json, junit.xml, report.md and \
                 timelines/ to {}",
                dir.display()
            ),
            Err(e) => {
                errln!("netclaim: error: {e:#}");
                wrote = false;
            }
        }
    }
    match format {
        Format::Table => {
            outln!("{t}");
            outln!("{summary}");
        }
        Format::Json => outln!("{}", report.json()),
        Format::Junit => out!("{}", report.junit()),
        Format::Markdown => out!("{}", report.markdown()),
    }
    if !matches!(format, Format::Table) {
        errln!("{summary}");
    }
    if let Some(e) = crate::out::stdout_failure() {
        errln!("netclaim: error: writing to stdout failed: {e}");
        wrote = false;
    }
    // A measurement that no longer reads is no agreement: say so in the exit code.
    // Agreement, not the verdicts themselves: a changed verdict is drift, a claim not
    // judged again counts as skipped (as the report says), the verdicts judged now do not
    // count (an `error` recorded and judged again is agreement).
    Ok(crate::exit::of_run(
        std::iter::repeat_n(netclaim_suites::Verdict::Skipped, skipped),
        !wrote,
        changed > 0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // `judge` of a recording with `claims: []` exited 0: nothing judged is no agreement.
    #[test]
    fn a_recording_with_nothing_to_judge_is_no_agreement() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("recording.json");
        std::fs::write(
            &path,
            r#"{"netclaim": "0.1.0", "kernel": "6.18.44", "hz": 250, "claims": []}"#,
        )
        .expect("written");
        assert_eq!(
            run(&path, &[], Format::Table, None).expect("it reads"),
            crate::exit::SKIPPED
        );
    }

    #[test]
    fn a_recording_with_an_impossible_hz_is_not_judged() {
        let rec = concat!(env!("CARGO_MANIFEST_DIR"), "/suites/recordings/6.1.json");
        let mut r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(rec).expect("read")).expect("json");
        assert_eq!(
            run(Path::new(rec), &[], Format::Table, None).expect("it reads"),
            crate::exit::OK
        );
        r["hz"] = 0.into();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("recording.json");
        std::fs::write(&path, r.to_string()).expect("written");
        assert_eq!(
            run(&path, &[], Format::Table, None).expect("it reads"),
            crate::exit::SKIPPED
        );
    }
}
