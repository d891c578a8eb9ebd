//! What the real tools do, as far as the claims need to predict it: how each reports a
//! connect() that failed with an errno, which of its options sets its own connect or
//! read deadline, and what it prints and returns when that deadline passes.
//!
//! Every entry names where it comes from (the tool's source or documented behaviour).
//! The built-in Rust claims and the claim-file engine share this one model, so a claim
//! file that runs `curl --connect-timeout 5` gets its expected figures from the same
//! knowledge as `curl.connect-timeout`.

use std::net::SocketAddrV4;
use std::time::Duration;

use nix::errno::Errno;

use crate::models::versions::{curl_at_least, is_mariadb};

/// The tools the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// netkit telnet.
    Telnet,
    /// curl.
    Curl,
    /// GNU wget.
    Wget,
    /// OpenBSD netcat.
    Nc,
    /// The mysql client (MariaDB's or Oracle's).
    Mysql,
    /// rsync.
    Rsync,
}

impl Program {
    /// The program a command line starts, if the model knows it (by file name).
    pub fn of(argv0: &str) -> Option<Self> {
        let name = argv0.rsplit('/').next().unwrap_or(argv0);
        Some(match name {
            "telnet" => Self::Telnet,
            "curl" => Self::Curl,
            "wget" => Self::Wget,
            "nc" | "netcat" | "nc.openbsd" => Self::Nc,
            "mysql" | "mariadb" => Self::Mysql,
            "rsync" => Self::Rsync,
            _ => return None,
        })
    }

    /// The executable's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Telnet => "telnet",
            Self::Curl => "curl",
            Self::Wget => "wget",
            Self::Nc => "nc",
            Self::Mysql => "mysql",
            Self::Rsync => "rsync",
        }
    }
}

/// How a tool reports a failure: its exit code and what it prints (any one of the
/// messages; some tools word one outcome in more than one way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code.
    pub exit: i32,
    /// Text of which one appears in the output.
    pub messages: Vec<String>,
}

impl Failure {
    fn new(exit: i32, message: impl Into<String>) -> Self {
        Self {
            exit,
            messages: vec![message.into()],
        }
    }

    /// The messages as one expected figure: `A or B`.
    pub fn message_text(&self) -> String {
        self.messages.join(" or ")
    }
}

/// The C library's message for `errno`, as tools print it ("Connection timed out").
pub fn strerror(errno: Errno) -> &'static str {
    errno.desc()
}

/// The mysql client's failure cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlCase {
    /// connect() failed: the kernel gave up (ETIMEDOUT) or the peer reset (ECONNREFUSED).
    ConnectFailed(Errno),
    /// The client's own connect timeout expired while connecting.
    ConnectTimedOut,
    /// Connected; the greeting did not come within the connect timeout.
    GreetingTimedOut,
}

/// What the mysql client prints: `ERROR code (HY000): … (errno)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlError {
    /// The client error number (2002, 2003, 2013).
    pub code: u32,
    /// The errno the message ends with.
    pub errno: i32,
    /// The whole line.
    pub line: String,
}

/// The error for `case` against `target` of the mysql client whose `--version` line is
/// `version` (as the measurement recorded it), from its connect code.
///
/// MariaDB's Connector/C 3 (ma_pvio_socket.c) connects nonblocking; whatever then fails
/// in poll() or SO_ERROR is CR_CONN_HOST_ERROR (2002) with the errno saved from
/// connect(), EINPROGRESS, unless its own poll() timed out (ETIMEDOUT); a timed-out
/// greeting read is CR_SERVER_LOST (2013). Oracle's libmysqlclient reports
/// CR_CONN_HOST_ERROR (2003) with the connect errno.
pub fn mysql_error(version: Option<&str>, case: MysqlCase, target: SocketAddrV4) -> MysqlError {
    mysql_error_of(is_mariadb(version), case, target)
}

/// [`mysql_error`] for a client known to be MariaDB's (`mariadb`) or Oracle's: what a
/// judge uses, with the version its measurement recorded.
pub fn mysql_error_of(mariadb: bool, case: MysqlCase, target: SocketAddrV4) -> MysqlError {
    let ip = target.ip();
    let port = target.port();
    let line = |code: u32, errno: i32, text: String| MysqlError {
        code,
        errno,
        line: text,
    };
    let timedout = Errno::ETIMEDOUT as i32;
    if mariadb {
        match case {
            MysqlCase::ConnectFailed(_) => {
                let e = Errno::EINPROGRESS as i32;
                line(2002, e, format!("ERROR 2002 (HY000): Can't connect to server on '{ip}' ({e})"))
            }
            MysqlCase::ConnectTimedOut => line(
                2002,
                timedout,
                format!("ERROR 2002 (HY000): Can't connect to server on '{ip}' ({timedout})"),
            ),
            MysqlCase::GreetingTimedOut => line(
                2013,
                timedout,
                format!(
                    "ERROR 2013 (HY000): Lost connection to server at 'handshake: reading initial communication packet', system error: {timedout}"
                ),
            ),
        }
    } else {
        match case {
            MysqlCase::ConnectFailed(errno) => {
                let e = errno as i32;
                line(
                    2003,
                    e,
                    format!("ERROR 2003 (HY000): Can't connect to MySQL server on '{ip}:{port}' ({e})"),
                )
            }
            MysqlCase::ConnectTimedOut => line(
                2003,
                timedout,
                format!("ERROR 2003 (HY000): Can't connect to MySQL server on '{ip}:{port}' ({timedout})"),
            ),
            MysqlCase::GreetingTimedOut => line(
                2013,
                timedout,
                format!(
                    "ERROR 2013 (HY000): Lost connection to MySQL server at 'reading initial communication packet', system error: {timedout}"
                ),
            ),
        }
    }
}

/// rsync's exit codes (errcode.h).
pub mod rsync {
    /// `RERR_SOCKETIO`: "error in socket IO" (connect() itself failed).
    pub const RERR_SOCKETIO: i32 = 10;
    /// `RERR_TIMEOUT`: "timeout in data send/receive".
    pub const RERR_TIMEOUT: i32 = 30;
    /// `RERR_CONTIMEOUT`: "timeout waiting for daemon connection".
    pub const RERR_CONTIMEOUT: i32 = 35;
}

/// What `program` run as `argv` does when its connect() fails with `errno` (the kernel
/// gave up, or the peer answered RST), from each tool's documented error handling;
/// `version` is the tool's `--version` line as the measurement recorded it.
pub fn connect_failed(
    program: Program,
    argv: &[String],
    errno: Errno,
    target: SocketAddrV4,
    version: Option<&str>,
) -> Failure {
    let text = strerror(errno);
    let f = match program {
        // telnet: "Unable to connect to remote host: <strerror>", exit 1.
        Program::Telnet => Failure::new(1, format!("Unable to connect to remote host: {text}")),
        // curl ≥ 7.67.0 maps a connect ETIMEDOUT to CURLE_OPERATION_TIMEDOUT (28) (curl PR
        // #4462); older versions and other errnos give CURLE_COULDNT_CONNECT (7).
        Program::Curl => {
            let code = if errno == Errno::ETIMEDOUT && curl_at_least(version, 7, 67) {
                28
            } else {
                7
            };
            Failure::new(code, "Failed to connect")
        }
        // wget: exit 4 "network failure", message "failed: <strerror>."
        Program::Wget => Failure::new(4, format!("failed: {text}.")),
        // OpenBSD nc -v: "connect to HOST port P (tcp) failed: <strerror>", exit 1.
        Program::Nc => Failure::new(1, format!("failed: {text}")),
        Program::Mysql => Failure::new(
            1,
            mysql_error(version, MysqlCase::ConnectFailed(errno), target).line,
        ),
        // rsync: connect() failing is a socket error (RERR_SOCKETIO).
        Program::Rsync => Failure::new(
            rsync::RERR_SOCKETIO,
            format!(
                "rsync error: error in socket IO (code {})",
                rsync::RERR_SOCKETIO
            ),
        ),
    };
    as_printed(program, argv, f)
}

/// `f` as the program run as `argv` reports it: OpenBSD nc says what happened to a
/// connection (refused, timed out, succeeded) only with -v; without it, only its exit
/// code tells (a `nc -z` with a 7 s give-up printed nothing).
fn as_printed(program: Program, argv: &[String], f: Failure) -> Failure {
    let verbose = || {
        argv.iter()
            .skip(1)
            .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('v'))
    };
    match program {
        Program::Nc if !verbose() => Failure {
            messages: Vec::new(),
            ..f
        },
        _ => f,
    }
}

/// The value of an option in `argv`: `--name V`, `--name=V`, or a short `-n V`.
pub fn option<'a>(argv: &'a [String], names: &[&str]) -> Option<&'a str> {
    let mut found = None;
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        for name in names {
            if arg == name {
                found = it.clone().next().map(String::as_str);
            } else if let Some(v) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                if name.starts_with("--") {
                    found = Some(v);
                }
            }
        }
    }
    found
}

/// A duration option in seconds (`2.5`).
fn seconds(argv: &[String], names: &[&str]) -> Option<Duration> {
    option(argv, names)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The tool's own deadline for a connect that gets no answer, with what it reports when
/// it passes (as the tool whose `--version` line is `version` words it); `None` when the
/// tool waits for the kernel.
pub fn connect_deadline(
    program: Program,
    argv: &[String],
    target: SocketAddrV4,
    version: Option<&str>,
) -> Option<(Duration, Failure)> {
    let found = match program {
        // --connect-timeout, and --max-time which bounds the whole transfer. curl 7.88
        // words the connect timeout two ways, depending on which of its checks notices
        // first: "Failed to connect … after N ms: Timeout was reached" or the connect
        // filter's "Connection timeout after N ms".
        Program::Curl => {
            let connect = seconds(argv, &["--connect-timeout"]);
            let max = seconds(argv, &["--max-time", "-m"]);
            let d = [connect, max].into_iter().flatten().min()?;
            Some((
                d,
                Failure {
                    exit: 28,
                    messages: vec![
                        "Timeout was reached".into(),
                        "Connection timeout after".into(),
                    ],
                },
            ))
        }
        // wget's --connect-timeout, or --timeout / -T which sets all three timeouts.
        Program::Wget => seconds(argv, &["--connect-timeout", "--timeout", "-T"])
            .map(|d| (d, Failure::new(4, "failed: Connection timed out."))),
        // OpenBSD nc: connect_with_timeout() polls for -w; on expiry errno is still
        // EINPROGRESS from the nonblocking connect() and nc -v prints "timed out:
        // <strerror>".
        Program::Nc => seconds(argv, &["-w"]).map(|d| {
            (
                d,
                Failure::new(
                    1,
                    format!(
                        "connect to {} port {} (tcp) timed out: {}",
                        target.ip(),
                        target.port(),
                        strerror(Errno::EINPROGRESS)
                    ),
                ),
            )
        }),
        Program::Mysql => seconds(argv, &["--connect_timeout", "--connect-timeout"]).map(|d| {
            (
                d,
                Failure::new(
                    1,
                    mysql_error(version, MysqlCase::ConnectTimedOut, target).line,
                ),
            )
        }),
        // rsync --contimeout=N: an alarm(N) around the connect to the daemon.
        Program::Rsync => seconds(argv, &["--contimeout"]).map(|d| {
            (
                d,
                Failure::new(
                    rsync::RERR_CONTIMEOUT,
                    format!(
                        "rsync error: timeout waiting for daemon connection (code {})",
                        rsync::RERR_CONTIMEOUT
                    ),
                ),
            )
        }),
        Program::Telnet => None,
    };
    found.map(|(d, f)| (d, as_printed(program, argv, f)))
}

/// The tool's own deadline for data after the handshake completed and the peer sends
/// nothing, with what it reports when it passes (as the tool whose `--version` line is
/// `version` words it); `None`: it blocks until killed.
pub fn read_deadline(
    program: Program,
    argv: &[String],
    target: SocketAddrV4,
    version: Option<&str>,
) -> Option<(Duration, Failure)> {
    let found = match program {
        Program::Curl => seconds(argv, &["--max-time", "-m"])
            .map(|d| (d, Failure::new(28, "Operation timed out after"))),
        // --read-timeout (default 900 s), or --timeout / -T.
        Program::Wget => idle_read_timeout(program, argv).map(|d| {
            (
                d,
                Failure::new(4, "Read error (Connection timed out) in headers."),
            )
        }),
        // -w also closes an idle connection: a silent close, exit 0.
        Program::Nc => seconds(argv, &["-w"]).map(|d| {
            (
                d,
                Failure::new(
                    0,
                    format!(
                        "Connection to {} {} port [tcp/*] succeeded!",
                        target.ip(),
                        target.port()
                    ),
                ),
            )
        }),
        // --connect_timeout also bounds the wait for the server's greeting.
        Program::Mysql => seconds(argv, &["--connect_timeout", "--connect-timeout"]).map(|d| {
            (
                d,
                Failure::new(
                    1,
                    mysql_error(version, MysqlCase::GreetingTimedOut, target).line,
                ),
            )
        }),
        Program::Rsync | Program::Telnet => None,
    };
    found.map(|(d, f)| (d, as_printed(program, argv, f)))
}

/// wget's read timeout when none is given (`--read-timeout`, wget(1): 900 seconds).
pub const WGET_READ_TIMEOUT: Duration = Duration::from_secs(900);

/// The tool's idle timeout while it reads a response: how long it waits for the next
/// bytes, started again by each read that returns some (not a deadline for the whole
/// transfer); `None` when it has none. wget(1): `--read-timeout`, "the amount of time
/// in seconds to wait for data", default 900 s, or `--timeout` / `-T`; src/connect.c
/// fd_read() selects for that long before every read.
pub fn idle_read_timeout(program: Program, argv: &[String]) -> Option<Duration> {
    match program {
        Program::Wget => {
            Some(seconds(argv, &["--read-timeout", "--timeout", "-T"]).unwrap_or(WGET_READ_TIMEOUT))
        }
        _ => None,
    }
}

/// The tool's deadline for a whole transfer, from its start: curl's `--max-time`.
pub fn transfer_deadline(program: Program, argv: &[String]) -> Option<(Duration, Failure)> {
    match program {
        Program::Curl => seconds(argv, &["--max-time", "-m"])
            .map(|d| (d, Failure::new(28, "Operation timed out after"))),
        _ => None,
    }
}

/// What `program` reports when its idle timeout passes in a response body, `got` of
/// `total` bytes in, with tries left (`retrying`) or not. wget, src/http.c: "Read error
/// at byte got/total (strerror). " then "Retrying." or "Giving up.", exit 4 (network
/// failure).
pub fn body_timed_out(program: Program, got: u64, total: u64, retrying: bool) -> Option<Failure> {
    match program {
        Program::Wget => Some(Failure::new(
            4,
            format!(
                "Read error at byte {got}/{total} ({}). {}",
                strerror(Errno::ETIMEDOUT),
                if retrying { "Retrying." } else { "Giving up." }
            ),
        )),
        _ => None,
    }
}

/// wget's `--waitretry` default: a linear back-off of 1, 2, … s between tries, capped.
pub const WGET_WAITRETRY: u64 = 10;

/// How many connections a tool makes in one run: wget retries a network failure up to
/// `--tries` (default 20) times; the others try once.
pub fn tries(program: Program, argv: &[String]) -> usize {
    match program {
        Program::Wget => option(argv, &["--tries", "-t"])
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(20),
        _ => 1,
    }
}

/// wget's pause before try `k` (1-based; none before the first): `min(k − 1, waitretry)`
/// seconds (`sleep_between_retrievals` in src/retr.c).
pub fn wget_backoff(k: usize, waitretry: u64) -> Duration {
    if k <= 1 {
        Duration::ZERO
    } else {
        Duration::from_secs((k as u64 - 1).min(waitretry))
    }
}

/// Predicted start of each try, relative to the first, when every try lasts `per_try`.
pub fn wget_try_starts(tries: usize, per_try: Duration, waitretry: u64) -> Vec<Duration> {
    let mut starts = Vec::new();
    let mut t = Duration::ZERO;
    for k in 1..=tries {
        if k > 1 {
            t += per_try + wget_backoff(k, waitretry);
        }
        starts.push(t);
    }
    starts
}

/// Predicted total run time of `tries` tries of `per_try` each.
pub fn wget_total(tries: usize, per_try: Duration, waitretry: u64) -> Duration {
    per_try * tries as u32
        + (1..=tries)
            .map(|k| wget_backoff(k, waitretry))
            .sum::<Duration>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 7);

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn failures_name_the_errno_text() {
        assert_eq!(
            connect_failed(
                Program::Telnet,
                &argv("telnet 127.0.0.1 7"),
                Errno::ETIMEDOUT,
                T,
                None
            )
            .messages[0],
            "Unable to connect to remote host: Connection timed out"
        );
        assert_eq!(
            connect_failed(
                Program::Wget,
                &argv("wget http://127.0.0.1:7/"),
                Errno::ETIMEDOUT,
                T,
                None
            ),
            Failure::new(4, "failed: Connection timed out.")
        );
    }

    #[test]
    fn nc_says_what_happened_only_with_v() {
        let quiet = connect_failed(
            Program::Nc,
            &argv("nc -z 192.0.2.2 5432"),
            Errno::ETIMEDOUT,
            T,
            None,
        );
        assert_eq!((quiet.exit, quiet.messages.len()), (1, 0));
        for verbose in ["nc -v 192.0.2.2 5432", "nc -zv 192.0.2.2 5432"] {
            let f = connect_failed(Program::Nc, &argv(verbose), Errno::ETIMEDOUT, T, None);
            assert_eq!(
                f,
                Failure::new(1, "failed: Connection timed out"),
                "{verbose}"
            );
        }
        let (_, f) = connect_deadline(Program::Nc, &argv("nc -w 2 127.0.0.1 7"), T, None).unwrap();
        assert!(f.messages.is_empty());
        // Other tools print their failure whatever their options.
        let f = connect_failed(
            Program::Telnet,
            &argv("telnet 127.0.0.1 7"),
            Errno::ETIMEDOUT,
            T,
            None,
        );
        assert_eq!(f.messages.len(), 1);
    }

    // The model read the installed curl and mysql when it judged, so a recording judged
    // on another machine (or here without mysql) got other expectations.
    #[test]
    fn what_a_tool_prints_follows_its_recorded_version_not_the_installed_one() {
        let curl = |version| {
            connect_failed(
                Program::Curl,
                &argv("curl http://127.0.0.1:7/"),
                Errno::ETIMEDOUT,
                T,
                version,
            )
            .exit
        };
        assert_eq!(
            curl(Some("curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1")),
            28
        );
        assert_eq!(
            curl(Some("curl 7.66.0 (x86_64-pc-linux-gnu) libcurl/7.66.0")),
            7
        );
        assert_eq!(curl(None), 7);
        let mysql = |version| {
            connect_failed(
                Program::Mysql,
                &argv("mysql -h 127.0.0.1 -P 7"),
                Errno::ETIMEDOUT,
                T,
                version,
            )
            .messages[0]
                .clone()
        };
        let mariadb = "mysql  Ver 15.1 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)";
        assert!(
            mysql(Some(mariadb)).starts_with("ERROR 2002 (HY000)"),
            "{}",
            mysql(Some(mariadb))
        );
        assert!(
            mysql(None).starts_with("ERROR 2003 (HY000)"),
            "{}",
            mysql(None)
        );
    }

    #[test]
    fn options_are_read_in_every_spelling() {
        let a = argv("curl -sS --connect-timeout 2.5 http://x/");
        assert_eq!(option(&a, &["--connect-timeout"]), Some("2.5"));
        let a = argv("mysql --no-defaults --connect_timeout=2 -e x");
        assert_eq!(
            connect_deadline(Program::Mysql, &a, T, None).map(|d| d.0),
            Some(Duration::from_secs(2))
        );
        let a = argv("nc -v -w 2 127.0.0.1 7");
        let (d, f) = connect_deadline(Program::Nc, &a, T, None).unwrap();
        assert_eq!(d, Duration::from_secs(2));
        assert!(f.messages[0].ends_with("timed out: Operation now in progress"));
        assert_eq!(
            connect_deadline(Program::Telnet, &argv("telnet 127.0.0.1 7"), T, None),
            None
        );
        // The later of two spellings wins, as in getopt.
        let a = argv("curl -m 5 --max-time 3 http://x/");
        assert_eq!(
            connect_deadline(Program::Curl, &a, T, None).unwrap().0,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn wget_read_timeout_is_idle_and_reports_the_bytes_read() {
        let a = argv("wget -t 1 --read-timeout=2 -O /dev/null http://x/");
        assert_eq!(
            idle_read_timeout(Program::Wget, &a),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            idle_read_timeout(Program::Wget, &argv("wget http://x/")),
            Some(Duration::from_secs(900))
        );
        assert_eq!(idle_read_timeout(Program::Curl, &argv("curl -m 2 x")), None);
        assert_eq!(
            transfer_deadline(Program::Curl, &argv("curl -m 2 x")).map(|d| d.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            body_timed_out(Program::Wget, 0, 4, false),
            Some(Failure::new(
                4,
                "Read error at byte 0/4 (Connection timed out). Giving up."
            ))
        );
        assert_eq!(
            body_timed_out(Program::Wget, 3, 10, true).unwrap().messages[0],
            "Read error at byte 3/10 (Connection timed out). Retrying."
        );
    }

    #[test]
    fn wget_tries_and_backoff() {
        assert_eq!(tries(Program::Wget, &argv("wget --tries 3 x")), 3);
        assert_eq!(tries(Program::Wget, &argv("wget x")), 20);
        assert_eq!(tries(Program::Curl, &argv("curl x")), 1);
        let per = Duration::from_millis(1500);
        assert_eq!(
            wget_try_starts(3, per, WGET_WAITRETRY),
            vec![
                Duration::ZERO,
                Duration::from_millis(2500),
                Duration::from_millis(6000)
            ]
        );
        assert_eq!(
            wget_total(3, per, WGET_WAITRETRY),
            Duration::from_millis(7500)
        );
    }

    #[test]
    fn wget_backoff_is_linear_and_capped() {
        assert_eq!(wget_backoff(1, 10), Duration::ZERO);
        assert_eq!(wget_backoff(2, 10), Duration::from_secs(1));
        assert_eq!(wget_backoff(3, 10), 2 * Duration::from_secs(1));
        assert_eq!(wget_backoff(20, 10), 10 * Duration::from_secs(1));
        assert_eq!(
            wget_total(3, Duration::from_millis(1500), 10),
            Duration::from_millis(7500)
        );
        // The seed: --connect-timeout 5, tries start 6 s and then 7 s apart.
        assert_eq!(
            wget_try_starts(3, Duration::from_secs(5), 10),
            vec![
                Duration::ZERO,
                Duration::from_secs(6),
                Duration::from_secs(13)
            ]
        );
    }
}
