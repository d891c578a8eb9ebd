//! Where a claim file's action is pointed, and its command line's placeholders filled
//! from it: measuring fills them, judging checks a record's command line against them.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};

/// Where the action is pointed.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Tcp(SocketAddrV4),
    Tcp6(SocketAddrV6),
    Unix(PathBuf),
}

impl Target {
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Tcp(a) => a.to_string(),
            Self::Tcp6(a) => a.to_string(),
            Self::Unix(p) => p.display().to_string(),
        }
    }

    pub(crate) fn tcp(&self) -> Option<SocketAddrV4> {
        match self {
            Self::Tcp(a) => Some(*a),
            Self::Tcp6(_) | Self::Unix(_) => None,
        }
    }

    /// The TCP address, IPv4 or IPv6.
    pub(crate) fn sock(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(a) => Some((*a).into()),
            Self::Tcp6(a) => Some((*a).into()),
            Self::Unix(_) => None,
        }
    }
}

/// `{target}`, `{ip}`, `{port}`, `{dir}` replaced.
pub(crate) fn substitute(arg: &str, target: &Target, dir: Option<&Path>) -> String {
    let (ip, port) = match target {
        Target::Tcp(a) => (a.ip().to_string(), a.port().to_string()),
        Target::Tcp6(a) => (a.ip().to_string(), a.port().to_string()),
        Target::Unix(_) => (String::new(), String::new()),
    };
    let dir = dir
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| ".".into());
    arg.replace("{target}", &target.text())
        .replace("{ip}", &ip)
        .replace("{port}", &port)
        .replace("{dir}", &dir)
}
