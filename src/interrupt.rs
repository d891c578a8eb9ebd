//! SIGINT, SIGTERM and SIGHUP: one signal thread that cleans up and exits.

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};

use crate::out::errln;

/// Blocks SIGINT, SIGTERM and SIGHUP (a closed terminal) in every thread (threads
/// started later inherit the mask) and handles them on one thread: `cleanup`; then every
/// tool and daemon still running is killed and reaped, this process's lab names and
/// temporary files are removed, and the process exits 128 + signal.
pub(crate) fn on_interrupt(cleanup: fn(Signal)) -> Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set.thread_block()
        .context("blocking SIGINT/SIGTERM/SIGHUP")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(sig) = set.wait() else { return };
            cleanup(sig);
            // Held until exit: no claim thread can start another tool meanwhile.
            let stopped = netclaim_harness::command::stop_all_children();
            if stopped.reaped > 0 {
                errln!(
                    "netclaim: killed and reaped {} tool process(es)",
                    stopped.reaped
                );
            }
            let swept = netclaim_harness::sweep::own();
            if netclaim_harness::netns::naming() || !swept.removed.is_empty() {
                errln!(
                    "netclaim: removed {} lab name(s) and temporary file(s)",
                    swept.removed.len()
                );
            }
            for f in swept.failed {
                errln!("netclaim: warning: {f}");
            }
            std::process::exit(128 + sig as i32);
        })
        .context("starting the signal thread")?;
    Ok(())
}
