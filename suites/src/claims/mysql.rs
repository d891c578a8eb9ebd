//! The mysql command-line client's timeouts and error messages (seed 000).
//!
//! The seed ran the MySQL 5.1 client on CentOS 6.5 against an unreachable address, a
//! listener that accepts and never greets (`nc -l 3306`), a port with no listener, and a
//! host with no local server socket, and read the `ERROR NNNN (HY000): … (errno)` lines.
//! Here each case is rebuilt in a lab namespace and the installed client (on Debian 12,
//! MariaDB 10.11's, built on Connector/C 3) is run with `--no-defaults`, so no option file
//! changes what is measured. The statement is checked as the seed wrote it; the
//! prediction for the installed client comes from its connect code: Connector/C connects
//! nonblocking, waits in `poll()` with the connect timeout (−1 when none is set), reports a
//! failed connect with the errno saved from the initial `connect()` (EINPROGRESS, 115) as
//! ERROR 2002, and applies `--connect_timeout` to the wait for the server's greeting too
//! (ERROR 2013, "system error: 110").

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_harness::command::{CommandOutput, ToolCommand};
use netclaim_harness::tmp::TempDir;
use netclaim_harness::tolerance::{tool_timer_window, TOOL_STARTUP};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::seeds;
use crate::claim::{Claim, Ctx, Figures, Needs, Observation, Outcome, Procedure, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::timing::check_timing;
use crate::judge::tool::{tool_evidence, version_line};
use crate::measure::tool::{run_tool, version_of};
use crate::models::tools::{mysql_error_of, MysqlCase, MysqlError};
use crate::models::versions::is_mariadb;
use crate::record::tool::ToolRun;

/// The MySQL port the seed used.
const MYSQL_PORT: u16 = 3306;
/// Loopback, where every lab here puts its server.
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
/// The default server socket of Debian's MariaDB client (`MARIADB_UNIX_ADDR`).
const MARIADB_DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";
/// The default server socket of an upstream MySQL build.
const MYSQL_DEFAULT_SOCKET: &str = "/tmp/mysql.sock";

/// The `mysql` command line for a TCP connection to `target`.
fn tcp_command(
    target: SocketAddrV4,
    connect_timeout: Option<u64>,
    deadline: Duration,
) -> ToolCommand {
    let mut args = vec![
        "--no-defaults".to_owned(),
        "--protocol=TCP".into(),
        "-h".into(),
        target.ip().to_string(),
        "-P".into(),
        target.port().to_string(),
        "-u".into(),
        "netclaim".into(),
    ];
    if let Some(n) = connect_timeout {
        args.push(format!("--connect_timeout={n}"));
    }
    args.extend(["-e".to_owned(), "SELECT 1".into()]);
    ToolCommand::new("mysql", deadline).args(args)
}

/// An `ERROR NNNN (SQLSTATE): message (errno)` line, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientError {
    /// The whole line.
    line: String,
    /// The client error number (2002, 2003, 2013).
    code: Option<u32>,
    /// The errno the message ends with: `(N)` or `system error: N`.
    errno: Option<i32>,
}

impl ClientError {
    /// Finds the first `ERROR` line in `output`.
    fn parse(output: &str) -> Option<Self> {
        let line = output.lines().find(|l| l.starts_with("ERROR "))?.trim();
        let code = line
            .strip_prefix("ERROR ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        let errno = if let Some((_, n)) = line.rsplit_once("system error: ") {
            n.trim().parse().ok()
        } else {
            line.strip_suffix(')')
                .and_then(|l| l.rsplit_once('('))
                .and_then(|(_, n)| n.parse().ok())
        };
        Some(Self {
            line: line.to_owned(),
            code,
            errno,
        })
    }
}

/// Model checks of exit code 1, error number, errno and the whole line.
fn check_prediction(
    o: &mut Outcome,
    label: &str,
    p: &MysqlError,
    run: &ToolRun,
    err: Option<&ClientError>,
) {
    let what = |w: &str| format!("{label}{w}");
    check_eq(
        o,
        Against::Model,
        &what("exit code"),
        Some(1),
        run.output.exit_code(),
    );
    check_eq(
        o,
        Against::Model,
        &what("client error number"),
        Some(p.code),
        err.and_then(|e| e.code),
    );
    check_eq(
        o,
        Against::Model,
        &what("errno in the message"),
        Some(p.errno),
        err.and_then(|e| e.errno),
    );
    check_eq(
        o,
        Against::Model,
        &what("error line"),
        Some(p.line.as_str()),
        err.map(|e| e.line.as_str()),
    );
}

/// What `mysql.refused` measured: the client against a port nothing listens on, without
/// and with `--connect_timeout`.
#[derive(Debug, Serialize, Deserialize)]
struct Refused {
    /// The lab's namespace.
    lab: String,
    /// Where the client connected.
    target: SocketAddrV4,
    /// The installed client's version line.
    version: Option<String>,
    /// Without `--connect_timeout`.
    plain: ToolRun,
    /// With `--connect_timeout=1`.
    timed: ToolRun,
}

/// `mysql.refused`, measured: no listener; with and without --connect_timeout.
fn measure_refused(_ctx: &Ctx) -> Result<Observation<Refused>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let target = SocketAddrV4::new(LOOPBACK.into(), MYSQL_PORT);
    let deadline = Duration::from_secs(20);
    let plain = run_tool(&ns, &tcp_command(target, None, deadline), MYSQL_PORT)?;
    let timed = run_tool(&ns, &tcp_command(target, Some(1), deadline), MYSQL_PORT)?;
    Ok(Observation::Observed(Refused {
        lab: ns.name().to_owned(),
        target,
        version: version_of("mysql"),
        plain,
        timed,
    }))
}

/// `mysql.refused`, judged: the seed's ERROR 2003 / 2013 with errno 111, and Connector/C's
/// own report of a refused connect for the recorded client.
fn judge_refused(m: &Refused, _ctx: &Ctx) -> Outcome {
    let (plain, timed, target) = (&m.plain, &m.timed, m.target);
    let plain_err = ClientError::parse(&plain.output.combined());
    let timed_err = ClientError::parse(&timed.output.combined());
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: nothing listens on {target}; the kernel answers the SYN with RST",
        m.lab
    ));
    version_line(&mut o, "mysql", m.version.as_deref());
    o.evidence(format!(
        "without --connect_timeout:\n{}",
        tool_evidence(plain)
    ));
    o.evidence(format!(
        "with --connect_timeout=1:\n{}",
        tool_evidence(timed)
    ));

    let refused = Errno::ECONNREFUSED as i32;
    let stated_plain = format!(
        "ERROR 2003 (HY000): Can't connect to MySQL server on '{}' ({refused})",
        target.ip()
    );
    let stated_timed = format!(
        "ERROR 2013 (HY000): Lost connection to MySQL server at 'reading initial communication packet', system error: {refused}"
    );
    // Connector/C reports a refused connect the same way with or without a timeout.
    let p = mysql_error_of(
        is_mariadb(m.version.as_deref()),
        MysqlCase::ConnectFailed(Errno::ECONNREFUSED),
        target,
    );
    o.claimed = Figures {
        errno: Some(refused),
        value: Some(format!(
            "{stated_plain} | with --connect_timeout: {stated_timed}"
        )),
        ..Figures::default()
    };
    o.expected = Figures {
        exit_code: Some(1),
        errno: Some(p.errno),
        value: Some(format!("{} | with --connect_timeout: {}", p.line, p.line)),
        ..Figures::default()
    };
    let line = |e: &Option<ClientError>| e.as_ref().map(|e| e.line.clone()).unwrap_or_default();
    o.observed = Figures {
        exit_code: plain.output.exit_code(),
        errno: plain_err.as_ref().and_then(|e| e.errno),
        value: Some(format!(
            "{} | with --connect_timeout: {}",
            line(&plain_err),
            line(&timed_err)
        )),
        ..Figures::default()
    }
    .duration(plain.took());

    let code = |e: &Option<ClientError>| e.as_ref().and_then(|e| e.code);
    let errno = |e: &Option<ClientError>| e.as_ref().and_then(|e| e.errno);
    check_eq(
        &mut o,
        Against::Statement,
        "no timeout: client error number",
        Some(2003),
        code(&plain_err),
    );
    check_eq(
        &mut o,
        Against::Statement,
        "no timeout: errno in the message",
        Some(refused),
        errno(&plain_err),
    );
    check_eq(
        &mut o,
        Against::Statement,
        "--connect_timeout: client error number",
        Some(2013),
        code(&timed_err),
    );
    check_eq(
        &mut o,
        Against::Statement,
        "--connect_timeout: errno in the message",
        Some(refused),
        errno(&timed_err),
    );

    for (label, run, err) in [
        ("no timeout: ", plain, &plain_err),
        ("--connect_timeout=1: ", timed, &timed_err),
    ] {
        let rst = run.events.iter().any(|e| e.flags.is_rst());
        o.model_check(
            &format!("{label}RST on the wire"),
            "true",
            rst.to_string(),
            rst,
        );
        // From the SYN (answered by RST at once) to the exit: process work only.
        check_timing(
            &mut o,
            Against::Model,
            &format!("{label}fails at once (no timer involved)"),
            Duration::ZERO,
            tool_timer_window(Duration::ZERO, TOOL_STARTUP),
            &run.measurement.tool_timer(),
        );
        check_prediction(&mut o, label, &p, run, err.as_ref());
    }
    o
}

/// `mysql.refused` in two steps.
const REFUSED: Steps<Refused> = Steps {
    measure: measure_refused,
    judge: judge_refused,
};

/// The server socket the client tries by default (MariaDB's or Oracle's), and whether
/// `--socket` must replace it because something exists at the default path on this
/// machine.
fn socket_path(tmp: &Path, mariadb: bool) -> (PathBuf, bool) {
    let default = if mariadb {
        MARIADB_DEFAULT_SOCKET
    } else {
        MYSQL_DEFAULT_SOCKET
    };
    let default = PathBuf::from(default);
    if default.exists() {
        (tmp.join("mysqld.sock"), true)
    } else {
        (default, false)
    }
}

/// What `mysql.no-socket` measured: the client with no host and no server socket.
#[derive(Debug, Serialize, Deserialize)]
struct NoSocket {
    /// The lab's namespace.
    lab: String,
    /// The installed client's version line.
    version: Option<String>,
    /// The socket path the client tried.
    socket: PathBuf,
    /// Whether `--socket` replaced the default (something exists at the default path).
    overridden: bool,
    /// The client's run.
    output: CommandOutput,
}

/// `mysql.no-socket`, measured: the client run with no host, its socket missing.
fn measure_no_socket(_ctx: &Ctx) -> Result<Observation<NoSocket>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let tmp = TempDir::new("mysql")?;
    let version = version_of("mysql");
    let (socket, overridden) = socket_path(tmp.path(), is_mariadb(version.as_deref()));
    let mut args = vec!["--no-defaults".to_owned()];
    if overridden {
        args.push(format!("--socket={}", socket.display()));
    }
    args.extend(["-e".to_owned(), "SELECT 1".into()]);
    let cmd = ToolCommand::new("mysql", Duration::from_secs(20)).args(args);
    let output = ns
        .run_command(&cmd)
        .with_context(|| format!("running {}", cmd.command_line()))?;
    Ok(Observation::Observed(NoSocket {
        lab: ns.name().to_owned(),
        version,
        socket,
        overridden,
        output,
    }))
}

/// `mysql.no-socket`, judged: no host, no server socket → ERROR 2002 (ENOENT).
fn judge_no_socket(m: &NoSocket, _ctx: &Ctx) -> Outcome {
    let (output, socket, overridden) = (&m.output, &m.socket, m.overridden);
    let mariadb = is_mariadb(m.version.as_deref());
    let err = ClientError::parse(&output.combined());
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: no host given, no server; socket {} does not exist{}",
        m.lab,
        socket.display(),
        if overridden {
            " (the default path exists on this machine, so --socket points into an empty temp dir)"
        } else {
            " (the client's compiled-in default)"
        }
    ));
    version_line(&mut o, "mysql", m.version.as_deref());
    o.evidence(output.to_string());

    let enoent = Errno::ENOENT as i32;
    let p_line = if mariadb {
        format!(
            "ERROR 2002 (HY000): Can't connect to local server through socket '{}' ({enoent})",
            socket.display()
        )
    } else {
        format!(
            "ERROR 2002 (HY000): Can't connect to local MySQL server through socket '{}' ({enoent})",
            socket.display()
        )
    };
    o.claimed = Figures {
        errno: Some(enoent),
        value: Some(format!(
            "ERROR 2002 (HY000): Can't connect to local MySQL server through socket '…' ({enoent})"
        )),
        ..Figures::default()
    };
    o.expected = Figures {
        exit_code: Some(1),
        errno: Some(enoent),
        value: Some(p_line.clone()),
        ..Figures::default()
    };
    o.observed = Figures {
        exit_code: output.exit_code(),
        errno: err.as_ref().and_then(|e| e.errno),
        value: err.as_ref().map(|e| e.line.clone()),
        ..Figures::default()
    }
    .duration(output.duration);

    let code = err.as_ref().and_then(|e| e.code);
    let errno = err.as_ref().and_then(|e| e.errno);
    check_eq(
        &mut o,
        Against::Statement,
        "client error number",
        Some(2002),
        code,
    );
    check_eq(
        &mut o,
        Against::Statement,
        "errno in the message",
        Some(enoent),
        errno,
    );
    check_eq(
        &mut o,
        Against::Model,
        "exit code",
        Some(1),
        output.exit_code(),
    );
    check_eq(
        &mut o,
        Against::Model,
        "client error number",
        Some(2002),
        code,
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno in the message",
        Some(enoent),
        errno,
    );
    check_eq(
        &mut o,
        Against::Model,
        "error line",
        Some(p_line.as_str()),
        err.as_ref().map(|e| e.line.as_str()),
    );
    o
}

/// `mysql.no-socket` in two steps.
const NO_SOCKET: Steps<NoSocket> = Steps {
    measure: measure_no_socket,
    judge: judge_no_socket,
};

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    let _with_fw = Needs {
        tools: &["iptables", "mysql"],
    };
    let plain = Needs { tools: &["mysql"] };
    let _silent_lab = "one namespace; a listener on 127.0.0.1:3306 that never calls accept() (the kernel completes the handshake, no greeting is ever sent), as the seed's `nc -l 3306`";
    vec![
        Claim {
            id: "mysql.refused",
            source: seeds::TOOLS,
            statement: "With no listener on the port, mysql prints ERROR 2003 (HY000) … (111); with --connect_timeout it prints ERROR 2013 (HY000): Lost connection to MySQL server at 'reading initial communication packet', system error: 111.",
            lab: "one namespace, nothing listening on 127.0.0.1:3306 (the kernel answers SYN with RST)",
            action: "mysql --no-defaults --protocol=TCP -h 127.0.0.1 -P 3306 -e 'SELECT 1', then the same with --connect_timeout=1",
            needs: plain,
            estimate: S,
            run: Procedure::Rust(&REFUSED),
        },
        Claim {
            id: "mysql.no-socket",
            source: seeds::TOOLS,
            statement: "mysql with no host and no local server socket fails with ERROR 2002 (HY000): Can't connect to local MySQL server through socket '…' (2), ENOENT.",
            lab: "one namespace, no server; the client's default socket path (/run/mysqld/mysqld.sock for MariaDB) does not exist, else --socket points to a missing file in an empty temp dir",
            action: "mysql --no-defaults -e 'SELECT 1'",
            needs: plain,
            estimate: S,
            run: Procedure::Rust(&NO_SOCKET),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::testing::ctx;
    use crate::Verdict;

    const MARIADB: &str = "mysql  Ver 15.1 Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)";

    /// A recorded client run that exited `code` after printing `stderr`.
    fn output(code: i32, stderr: &str) -> CommandOutput {
        serde_json::from_value(serde_json::json!({
            "command_line": "mysql --no-defaults -e 'SELECT 1'",
            "netns": "lab",
            "status": code << 8,
            "stdout": "",
            "stderr": stderr,
            "duration": {"secs": 0, "nanos": 30_000_000},
            "timed_out": false
        }))
        .expect("a recorded command output")
    }

    #[test]
    fn enoent_through_the_default_socket_holds() {
        let socket = PathBuf::from(MARIADB_DEFAULT_SOCKET);
        let m = NoSocket {
            lab: "lab".into(),
            version: Some(MARIADB.into()),
            output: output(
                1,
                "ERROR 2002 (HY000): Can't connect to local server through socket \
                 '/run/mysqld/mysqld.sock' (2)\n",
            ),
            socket,
            overridden: false,
        };
        let o = judge_no_socket(&m, &ctx());
        assert_eq!(o.verdict(), Verdict::Holds, "{}", o.reason());
        assert!(o.model_agrees(), "{:?}", o.model_checks);
        assert_eq!(o.claim_checks[1].what, "errno in the message");
        assert_eq!(o.claim_checks[1].observed, "2");
    }

    #[test]
    fn a_refused_connect_reported_as_2002_refutes_the_seed() {
        let line = "ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (115)\n";
        let run = |code: i32| -> ToolRun {
            serde_json::from_value(serde_json::json!({
                "output": output(code, line),
                "events": [],
                "syn_times": [],
                "measurement": crate::record::attempt::Attempt::default()
            }))
            .expect("a recorded tool run")
        };
        let m = Refused {
            lab: "lab".into(),
            target: SocketAddrV4::new(LOOPBACK.into(), MYSQL_PORT),
            version: Some(MARIADB.into()),
            plain: run(1),
            timed: run(1),
        };
        let o = judge_refused(&m, &ctx());
        assert_eq!(o.verdict(), Verdict::Refuted);
        let c = &o.claim_checks[0];
        assert_eq!(c.what, "no timeout: client error number");
        assert_eq!((c.expected.as_str(), c.observed.as_str()), ("2003", "2002"));
        // The prediction for MariaDB's client is this very line.
        let line_check = o
            .model_checks
            .iter()
            .find(|c| c.what == "no timeout: error line")
            .expect("an error-line check");
        assert!(line_check.ok, "{line_check:?}");
    }
}
