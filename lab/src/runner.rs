//! The test runner behind `netclaim_lab::main!()`.
//!
//! libtest cannot report a test as ignored once it runs, so a lab test guarded by a
//! privilege check inside a plain `#[test]` shows as *passed* where it never ran. This
//! runner decides before any test starts: where labs cannot be built (no privilege, and
//! no user namespace to be had), every lab test is reported *ignored* with the reason;
//! otherwise each runs for real. It is libtest-compatible on the command line (filters,
//! `--exact`, `--list`, `--ignored`, `--test-threads`) through libtest-mimic.

use std::collections::BTreeSet;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// One `#[netclaim_lab::test]`.
#[derive(Debug)]
pub struct LabTest {
    /// `module_path!()` where it is defined (`crate::faults`).
    pub module: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// Runs it: `Err` says whether it failed or could not run here.
    pub run: fn() -> Result<(), TestError>,
}

/// Why a lab test did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestError {
    /// It ran and failed: the message.
    Failed(String),
    /// Its lab cannot be built on this machine (a device or feature is missing): reported
    /// as *ignored* with the reason, never as passed or failed.
    Skipped(String),
}

/// Every `#[netclaim_lab::test]` linked into this binary.
#[linkme::distributed_slice]
pub static TESTS: [LabTest];

/// The test's name as libtest shows it: its module path without the crate, then its
/// name (`faults::syn_drop`).
fn display_name(t: &LabTest) -> String {
    match t.module.split_once("::") {
        Some((_, rest)) => format!("{rest}::{}", t.name),
        None => t.name.to_owned(),
    }
}

/// Enters a user namespace when needed (this runs first in `main`, while the process is
/// single-threaded), moves the test threads into an empty network namespace (a call made
/// outside a lab fails with `ENETUNREACH` rather than reaching the host), and runs every
/// registered lab test; exits with libtest's status.
pub fn run_tests() -> ! {
    let entered = netclaim_harness::userns::enter_if_unprivileged();
    let labs = match (&entered, netclaim_harness::privilege::check()) {
        (Ok(_), Ok(())) => Ok(()),
        (_, Err(reason)) => Err(reason),
        (Err(e), Ok(())) => Err(e.reason.clone()),
    };
    if labs.is_ok() && std::env::var_os("NETCLAIM_LAB_NO_QUARANTINE").is_none() {
        // Every thread started from here on (libtest-mimic's test threads) inherits it.
        if let Err(errno) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("netclaim-lab: could not isolate the test threads ({errno}); calls made outside a lab reach the host\n"),
            );
        }
    }
    let args = Arguments::from_args();
    let mut seen = BTreeSet::new();
    let trials: Vec<Trial> = TESTS
        .iter()
        .filter(|t| seen.insert((t.module, t.name)))
        .map(|t| {
            let name = display_name(t);
            let run = t.run;
            match &labs {
                Ok(()) => Trial::ignorable_test(name, move || match run() {
                    Ok(()) => Ok(Completion::Completed),
                    Err(TestError::Skipped(reason)) => Ok(Completion::ignored_with(reason)),
                    Err(TestError::Failed(message)) => Err(Failed::from(message)),
                }),
                Err(reason) => {
                    let reason = reason.clone();
                    Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                }
            }
            .with_kind("lab")
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
