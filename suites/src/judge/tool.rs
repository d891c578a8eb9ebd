//! What a recorded tool run reads as: its evidence, its figures, its version.

use netclaim_harness::capture;

use crate::outcome::{Figures, Outcome};
use crate::record::tool::ToolRun;
use crate::text::secs;

/// The evidence line for a recorded version of `program` (nothing when it has none).
pub fn version_line(o: &mut Outcome, program: &str, version: Option<&str>) {
    if let Some(v) = version {
        o.evidence(format!("{program} version: {v}"));
    }
}

/// Evidence text for a tool run: the command output, its start-up and the packet
/// timeline.
pub fn tool_evidence(run: &ToolRun) -> String {
    let m = &run.measurement;
    let startup = match m.startup() {
        Some(s) => format!(
            "start-up (spawn to first SYN) {}, first SYN to exit {}",
            secs(s),
            secs(m.took())
        ),
        None => "no SYN: timed from the spawn".into(),
    };
    format!(
        "{}\n{startup}\n--- wire ---\n{}",
        run.output,
        if run.events.is_empty() {
            "(no handshake packets)".into()
        } else {
            capture::timeline(&run.events)
        }
    )
}

/// Observed figures of a tool run.
pub fn tool_figures(run: &ToolRun) -> Figures {
    let mut f = Figures::default()
        .duration(run.took())
        .syn_times(&run.syn_times);
    f.exit_code = run.output.exit_code();
    f.value = run
        .output
        .combined()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned());
    f
}
