//! Where the building blocks the claims share used to live in one file; they are now
//! in the rooms by what they hold (issue 20). These re-exports keep the old paths until
//! their users (engine.rs and the claims) import from the rooms.

pub use crate::judge::checks::{check_eq, Against};
pub use crate::judge::timing::{
    check_schedule, check_syns, check_timing, timeline, timing, worst_outside,
};
pub use crate::judge::tool::{tool_evidence, tool_figures, version_line};
pub use crate::measure::attempt::first_syn_at;
pub use crate::measure::labs::{
    model_in, not_applicable, refusal, BlackholeLab, SynDropLab, DROPPED_PORT,
};
pub use crate::measure::parallel::parallel;
pub use crate::measure::tool::{run_tool, ss_listener, version_of};
pub use crate::record::attempt::{Attempt as Measurement, Measured};
pub use crate::record::tool::ToolRun;
pub use crate::text::{describe_model, secs, Shown};
// The one tolerance policy, under the names the claims use.
pub use netclaim_harness::tolerance::{
    accumulated_slack, give_up_window, interval_slack, schedule_windows, tool_timer_window, EARLY,
    TOOL_EARLY, TOOL_STARTUP,
};
