//! The second room: records ([`crate::record`]), statements ([`crate::spec`]) and
//! predictions ([`crate::models`]) turned into checks, figures and evidence. Pure: no
//! module here builds a lab, starts a process or reads a clock, so a recording made on
//! another machine is judged here exactly as at the end of a run (a test checks the
//! imports).

pub mod checks;
mod claim_file;
pub mod connection;
mod consistency;
pub mod exchange;
mod prediction;
pub mod recovery;
mod statement;
pub mod timing;
pub mod tool;

pub use claim_file::judge;
pub use consistency::inconsistencies;
pub use statement::last_line;
