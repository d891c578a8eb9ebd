//! The first room: building labs and acting in them. Everything here may create
//! namespaces, start processes, read clocks and capture packets; what it produces is a
//! record ([`crate::record`]) that the second room ([`crate::judge`]) turns into a
//! verdict without any of that.

mod act;
pub mod attempt;
mod build;
mod claim_file;
pub mod connection;
pub mod exchange;
pub mod labs;
pub mod parallel;
pub mod tool;

pub use build::describe_link;
pub use claim_file::measure;
