//! Jobs measured at once, each on a thread of its own.

use anyhow::Result;

/// Runs `jobs` at once, each on its own scoped thread named `name`, and returns their
/// results in order. A thread that cannot be started (threads ran out) or that panics
/// gives an error for its job, never a panic here.
pub fn parallel<T, F>(name: &str, jobs: Vec<F>) -> Vec<Result<T>>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                std::thread::Builder::new()
                    .name(name.to_owned())
                    .spawn_scoped(s, job)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("{name} thread panicked"))),
                Err(e) => Err(netclaim_harness::Error::thread_spawn(name, e).into()),
            })
            .collect()
    })
}
