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

use crate::out::outln;
use crate::report::Report;

/// Reads a recording, or a report (converted): a regular file of at most
/// [`REPORT_CAP`](netclaim_suites::input::REPORT_CAP).
fn load(path: &Path) -> Result<Recording> {
    let text = netclaim_suites::input::read_text(path, netclaim_suites::input::REPORT_CAP)?;
    let as_recording = match serde_json::from_str::<Recording>(&text) {
        Ok(r) => return Ok(r),
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
        .map(|r| r.recording())
        .with_context(|| {
            format!(
                "{} is neither a report.json nor a recording.json of `netclaim run --out DIR`",
                path.display()
            )
        })
}

/// Judges every recorded measurement again, with the built-in catalog and the claim
/// files at `claim_files`; exit 0 when every verdict is the recorded one, 3 when some
/// changed, 4 when some could not be judged (their record no longer reads).
pub fn run(path: &Path, claim_files: &[PathBuf]) -> Result<u8> {
    let claims = crate::catalog_with_paths(claim_files)?;
    let recording = load(path)?;
    let judged = recording::rejudge_all(&recording, &claims);
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(vec!["claim", "recorded", "judged now", "why it changed"]);
    let (mut same, mut changed, mut skipped) = (0, 0, 0);
    for (r, now) in &judged {
        let (verdict, why) = match now {
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
        t.add_row(vec![r.id.clone(), r.verdict.to_string(), verdict, why]);
    }
    outln!("{t}");
    outln!(
        "{} recorded measurement(s) of Linux {} (netclaim {}, labs as {}): {same} judged to the \
         same verdict, {changed} changed, {skipped} not judged",
        judged.len(),
        recording.kernel,
        recording.netclaim,
        recording.mode
    );
    // A measurement that no longer reads is no agreement: say so in the exit code.
    Ok(if changed > 0 {
        crate::exit::DRIFT
    } else if skipped > 0 {
        crate::exit::SKIPPED
    } else {
        crate::exit::OK
    })
}
