//! The claims, grouped by topic. Each module exposes `claims()`.

pub mod backlog;
pub mod mysql;
pub mod port;
pub mod rsync;
pub mod syn;
pub mod tools;
pub mod tw;

/// Seed file names, so ids and sources stay consistent.
pub mod seeds {
    /// Tool timeouts (Japanese; CentOS 6.5, tcp_syn_retries=5).
    pub const TOOLS: &str = "000_b835ceb3545f9178.txt";
    /// libcurl and errno 99 (Chinese).
    pub const ERRNO_99: &str = "001_7bb4288b989996ed.txt";
    /// The 127 s connect timeout (Chinese).
    pub const SYN_127: &str = "002_e7b34916364827ff.txt";
    /// TIME_WAIT (Chinese).
    pub const TIME_WAIT: &str = "003_c73ea96cc590f1ac.txt";
    /// somaxconn and EAGAIN (Chinese).
    pub const SOMAXCONN: &str = "004_d32429faf5cd833e.txt";
}

/// What the claims' unit tests share: the facts a recorded run is judged with.
#[cfg(test)]
pub(crate) mod testing {
    use crate::claim::Ctx;

    /// A run's facts: HZ=250, a kernel named "test".
    pub(crate) fn ctx() -> Ctx {
        Ctx {
            hz: 250,
            kernel: "test".into(),
        }
    }
}
