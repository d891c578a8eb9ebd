//! Tool versions as the claims compare them: decided from a version line (what
//! `measure::tool::version_of` returned, as a measurement records it), so that judging a
//! recorded measurement reads the version of the tool that was measured, not of whatever
//! is installed where the record is judged. Shared by the claim topics (so that no topic
//! imports another's helpers) and the tool model ([`crate::models::tools`]).

/// Whether a `mysql --version` line is MariaDB's client (Connector/C 3), whose messages
/// and default socket differ from Oracle's.
pub(crate) fn is_mariadb(version: Option<&str>) -> bool {
    version.is_some_and(|v| v.contains("MariaDB"))
}

/// Whether a `curl --version` line (`curl 7.88.1 (x86_64-pc-linux-gnu) …`) is of curl
/// `major.minor` or later; `false` when there is no line or it does not read as one.
pub(crate) fn curl_at_least(version: Option<&str>, major: u32, minor: u32) -> bool {
    version
        .and_then(|v| {
            let mut parts = v.split_whitespace().nth(1)?.split('.');
            let ma: u32 = parts.next()?.parse().ok()?;
            let mi: u32 = parts.next()?.parse().ok()?;
            Some((ma, mi) >= (major, minor))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_lines() {
        let curl = Some("curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.11");
        assert!(curl_at_least(curl, 7, 67));
        assert!(!curl_at_least(curl, 8, 0));
        assert!(!curl_at_least(None, 7, 0));
        assert!(!curl_at_least(Some("curl"), 7, 0));
        assert!(is_mariadb(Some(
            "mysql  Ver 15.1 Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)"
        )));
        assert!(!is_mariadb(Some("mysql  Ver 8.0.36 for Linux on x86_64")));
        assert!(!is_mariadb(None));
    }
}
