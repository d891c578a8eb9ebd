//! What the harness's integration test binaries share.

/// `Ok` when `cond` holds, else an error with `msg()`: a check that names what it saw.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> anyhow::Result<()> {
    if cond {
        Ok(())
    } else {
        Err(anyhow::anyhow!(msg()))
    }
}
