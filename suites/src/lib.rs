//! The claims netclaim verifies, the runner that executes them concurrently, and the
//! reports that render their verdicts.

pub mod catalog;
pub mod claim;
pub mod claims;
pub mod lab;

pub use claim::{Check, CheckState, Claim, Ctx, Figures, Outcome, Timing, Verdict};
