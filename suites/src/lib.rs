//! The claims netclaim verifies: the claim file format ([`spec`]) and the engine that
//! measures claim files ([`measure`]) into records ([`record`]) and judges them
//! ([`judge`], with what the kernel and the tools are predicted to do in [`models`]), the
//! built-in claim files (`suites/claims/*.toml`) and the claims that need a procedure of
//! their own ([`claims`]), gathered by [`catalog`]. The runner and the reports are the
//! `netclaim` binary's (`src/`).

pub mod catalog;
pub mod claim;
pub mod claims;
pub mod executor;
pub mod input;
pub mod judge;
pub mod measure;
pub mod models;
pub mod outcome;
pub mod record;
pub mod recording;
pub mod spec;
pub mod text;

pub use claim::Claim;
pub use outcome::{Check, CheckState, Ctx, Figures, Outcome, Timing, Verdict};
