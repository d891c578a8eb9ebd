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
use netclaim_fixtures::server::NoAcceptListener;
use netclaim_harness::command::{tool_version, ToolCommand};
use netclaim_harness::sysctl::knob;
use netclaim_harness::tmp::TempDir;
use netclaim_harness::NetNs;
use nix::errno::Errno;

use super::seeds;
use crate::claim::{Claim, Ctx, Figures, Needs, Outcome};
use crate::lab::{
    self, check_eq, check_schedule, check_timing, secs, tool_timer_window, version_evidence,
    Against, SynDropLab, ToolRun, TOOL_STARTUP,
};

/// The MySQL port the seed used.
const MYSQL_PORT: u16 = 3306;
/// Loopback, where every lab here puts its server.
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
/// The `--connect_timeout` the claims pass.
const CONNECT_TIMEOUT_S: u64 = 2;
/// How long the silent-server run is left blocked before the harness kills it: far past
/// the connect timeout the other claims use and the SYN give-up of the lab.
const SILENT_WAIT: Duration = Duration::from_secs(15);
/// The default server socket of Debian's MariaDB client (`MARIADB_UNIX_ADDR`).
const MARIADB_DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";
/// The default server socket of an upstream MySQL build.
const MYSQL_DEFAULT_SOCKET: &str = "/tmp/mysql.sock";

/// Whether the installed `mysql` is MariaDB's client.
pub(crate) fn is_mariadb() -> bool {
    tool_version("mysql").is_some_and(|v| v.contains("MariaDB"))
}

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

/// What the installed client is predicted to print.
#[derive(Debug, Clone)]
struct Predicted {
    code: u32,
    errno: i32,
    line: String,
}

/// The failure cases the claims look at.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// connect() fails: the kernel gave up (ETIMEDOUT) or the peer reset (ECONNREFUSED).
    ConnectFailed(Errno),
    /// The client's own connect timeout expired while connecting.
    ConnectTimedOut,
    /// Connected; the greeting did not come within the connect timeout.
    GreetingTimedOut,
}

/// The prediction for `case` against `target`, from the client's connect code.
fn predict(case: Case, target: SocketAddrV4) -> Predicted {
    let ip = target.ip();
    if is_mariadb() {
        // Connector/C 3 (ma_pvio_socket.c): nonblocking connect(); whatever then fails
        // in poll() or SO_ERROR, the error reported is CR_CONN_HOST_ERROR (2002) with the
        // errno saved from connect(), EINPROGRESS, unless its own poll() timed out
        // (ETIMEDOUT). A timed-out greeting read is CR_SERVER_LOST (2013).
        match case {
            Case::ConnectFailed(_) => {
                let e = Errno::EINPROGRESS as i32;
                Predicted {
                    code: 2002,
                    errno: e,
                    line: format!("ERROR 2002 (HY000): Can't connect to server on '{ip}' ({e})"),
                }
            }
            Case::ConnectTimedOut => {
                let e = Errno::ETIMEDOUT as i32;
                Predicted {
                    code: 2002,
                    errno: e,
                    line: format!("ERROR 2002 (HY000): Can't connect to server on '{ip}' ({e})"),
                }
            }
            Case::GreetingTimedOut => {
                let e = Errno::ETIMEDOUT as i32;
                Predicted {
                    code: 2013,
                    errno: e,
                    line: format!(
                        "ERROR 2013 (HY000): Lost connection to server at 'handshake: reading initial communication packet', system error: {e}"
                    ),
                }
            }
        }
    } else {
        // Oracle MySQL's libmysqlclient: CR_CONN_HOST_ERROR (2003) with the connect errno.
        match case {
            Case::ConnectFailed(errno) => {
                let e = errno as i32;
                Predicted {
                    code: 2003,
                    errno: e,
                    line: format!(
                        "ERROR 2003 (HY000): Can't connect to MySQL server on '{ip}:{}' ({e})",
                        target.port()
                    ),
                }
            }
            Case::ConnectTimedOut => {
                let e = Errno::ETIMEDOUT as i32;
                Predicted {
                    code: 2003,
                    errno: e,
                    line: format!(
                        "ERROR 2003 (HY000): Can't connect to MySQL server on '{ip}:{}' ({e})",
                        target.port()
                    ),
                }
            }
            Case::GreetingTimedOut => {
                let e = Errno::ETIMEDOUT as i32;
                Predicted {
                    code: 2013,
                    errno: e,
                    line: format!(
                        "ERROR 2013 (HY000): Lost connection to MySQL server at 'reading initial communication packet', system error: {e}"
                    ),
                }
            }
        }
    }
}

/// Observed figures of a mysql run: duration, SYNs, exit code, errno and error line.
fn observed(run: &ToolRun, err: Option<&ClientError>) -> Figures {
    let mut f = lab::tool_figures(run);
    f.errno = err.and_then(|e| e.errno);
    if let Some(e) = err {
        f.value = Some(e.line.clone());
    }
    f
}

/// Model checks of exit code 1, error number, errno and the whole line.
fn check_prediction(
    o: &mut Outcome,
    label: &str,
    p: &Predicted,
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

/// `mysql.no-timeout`: no --connect_timeout to a dropped port → the kernel decides.
fn no_timeout(ctx: &Ctx) -> Result<Outcome> {
    let lab = SynDropLab::new(&[(knob::TCP_SYN_RETRIES, "1")])?;
    let model = lab::model_in(&lab.ns)?;
    let schedule = model.schedule();
    let deadline = schedule.give_up * 2 + Duration::from_secs(10);
    let run = lab::run_tool(
        &lab.ns,
        &tcp_command(lab.target, None, deadline),
        lab.target.port(),
    )?;
    let err = ClientError::parse(&run.output.combined());
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: SYN DROP on {}, in force: {}",
        lab.ns.name(),
        lab.target,
        lab::describe_model(&model)
    ));
    version_evidence(&mut o, "mysql");
    o.evidence(lab::tool_evidence(&run));

    let etimedout = Errno::ETIMEDOUT as i32;
    let stated_line = format!(
        "ERROR 2003 (HY000): Can't connect to MySQL server on '{}' ({etimedout})",
        lab.target.ip()
    );
    o.claimed = Figures {
        errno: Some(etimedout),
        value: Some(stated_line),
        ..Figures::default()
    }
    .duration(schedule.give_up);
    let p = predict(Case::ConnectFailed(Errno::ETIMEDOUT), lab.target);
    o.expected = Figures {
        exit_code: Some(1),
        errno: Some(p.errno),
        value: Some(p.line.clone()),
        ..Figures::default()
    }
    .duration(schedule.give_up)
    .syn_times(&schedule.send_times);
    o.observed = observed(&run, err.as_ref());

    // The statement: the client waits for the kernel's give-up, then ERROR 2003 (110).
    let window = lab::give_up_window(schedule.give_up, &schedule, ctx.hz, TOOL_STARTUP);
    check_timing(
        &mut o,
        Against::Statement,
        "fails when the kernel gives up (no client timer)",
        schedule.give_up,
        window,
        &run.measurement.kernel_give_up(),
    );
    check_eq(
        &mut o,
        Against::Statement,
        "client error number",
        Some(2003),
        err.as_ref().and_then(|e| e.code),
    );
    check_eq(
        &mut o,
        Against::Statement,
        "errno in the message",
        Some(etimedout),
        err.as_ref().and_then(|e| e.errno),
    );

    // The prediction.
    check_schedule(
        &mut o,
        Against::Model,
        &schedule,
        &run.measurement,
        ctx,
        TOOL_STARTUP,
    );
    check_prediction(&mut o, "", &p, &run, err.as_ref());
    Ok(o)
}

/// `mysql.connect-timeout`: --connect_timeout=N to a dropped port fails after N s.
fn connect_timeout(_ctx: &Ctx) -> Result<Outcome> {
    let lab = SynDropLab::new(&[])?;
    let model = lab::model_in(&lab.ns)?;
    let schedule = model.schedule();
    let n = Duration::from_secs(CONNECT_TIMEOUT_S);
    let cmd = tcp_command(
        lab.target,
        Some(CONNECT_TIMEOUT_S),
        n + Duration::from_secs(20),
    );
    let run = lab::run_tool(&lab.ns, &cmd, lab.target.port())?;
    let err = ClientError::parse(&run.output.combined());
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: SYN DROP on {}, in force: {} (the kernel alone would give up after {})",
        lab.ns.name(),
        lab.target,
        lab::describe_model(&model),
        secs(schedule.give_up)
    ));
    version_evidence(&mut o, "mysql");
    o.evidence(
        "seed (MySQL 5.1): `mysql -h 192.168.100.1 --connect_timeout=5` printed \
         \"ERROR 2003 (HY000): Can't connect to MySQL server on '192.168.100.1' (4)\" after \
         poll(…, 5000) = 0 (Timeout)",
    );
    o.evidence(lab::tool_evidence(&run));

    // The client's timer wins when it is shorter than the kernel's give-up.
    let (expected, case) = if n < schedule.give_up {
        (n, Case::ConnectTimedOut)
    } else {
        (schedule.give_up, Case::ConnectFailed(Errno::ETIMEDOUT))
    };
    let p = predict(case, lab.target);
    o.claimed = Figures::default().duration(n);
    o.expected = Figures {
        exit_code: Some(1),
        errno: Some(p.errno),
        value: Some(p.line.clone()),
        ..Figures::default()
    }
    .duration(expected);
    o.observed = observed(&run, err.as_ref());

    let took = run.measurement.tool_timer();
    check_timing(
        &mut o,
        Against::Statement,
        "fails after the connect timeout",
        n,
        tool_timer_window(n, TOOL_STARTUP),
        &took,
    );
    check_timing(
        &mut o,
        Against::Model,
        "give-up time (min of connect_timeout and the kernel's give-up)",
        expected,
        tool_timer_window(expected, TOOL_STARTUP),
        &took,
    );
    check_prediction(&mut o, "", &p, &run, err.as_ref());
    Ok(o)
}

/// A namespace with a listener on 127.0.0.1:3306 that completes handshakes and never
/// accepts, so the client waits for a greeting that never comes (the seed's `nc -l 3306`).
struct SilentServerLab {
    ns: NetNs,
    _listener: NoAcceptListener,
    target: SocketAddrV4,
}

impl SilentServerLab {
    fn new() -> Result<Self> {
        let ns = NetNs::new().context("creating the lab namespace")?;
        let target = SocketAddrV4::new(LOOPBACK.into(), MYSQL_PORT);
        let listener = NoAcceptListener::bind(&ns, target, 16)
            .with_context(|| format!("binding the silent listener on {target}"))?;
        Ok(Self {
            ns,
            _listener: listener,
            target,
        })
    }
}

/// Whether the handshake completed on the wire (a SYN-ACK came back).
fn handshake_completed(run: &ToolRun) -> bool {
    run.events.iter().any(|e| e.flags.is_syn_ack())
}

/// `mysql.silent-server`: no --connect_timeout → blocked for good waiting for the greeting.
fn silent_server(_ctx: &Ctx) -> Result<Outcome> {
    let lab = SilentServerLab::new()?;
    let run = lab::run_tool(
        &lab.ns,
        &tcp_command(lab.target, None, SILENT_WAIT),
        lab.target.port(),
    )?;
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: listener on {} that never accepts (kernel completes the handshake, no greeting); \
         the harness kills mysql after {}",
        lab.ns.name(),
        lab.target,
        secs(SILENT_WAIT)
    ));
    version_evidence(&mut o, "mysql");
    o.evidence(lab::tool_evidence(&run));

    let blocked = |r: &ToolRun| {
        if r.output.timed_out {
            "still blocked"
        } else {
            "ended"
        }
    };
    o.claimed = Figures {
        value: Some(format!("still blocked at {}", secs(SILENT_WAIT))),
        ..Figures::default()
    };
    // The client sets no read timeout without --connect_timeout (--help: connect-timeout
    // 0): it waits in poll(fd, POLLIN, -1) for the greeting.
    o.expected = Figures {
        value: Some(format!("still blocked at {}, no output", secs(SILENT_WAIT))),
        ..Figures::default()
    };
    o.observed = lab::tool_figures(&run);
    o.observed.value = Some(format!(
        "{} at {}{}",
        blocked(&run),
        secs(run.output.duration),
        ClientError::parse(&run.output.combined())
            .map(|e| format!(": {}", e.line))
            .unwrap_or_default()
    ));

    o.claim_check(
        "blocks well past every other timeout",
        format!("still blocked when killed at {}", secs(SILENT_WAIT)),
        format!("{} after {}", blocked(&run), secs(run.output.duration)),
        run.output.timed_out,
    );
    o.model_check(
        "the TCP handshake completed (SYN-ACK seen)",
        "true",
        handshake_completed(&run).to_string(),
        handshake_completed(&run),
    );
    o.model_check(
        "no client timer fires: killed at the harness deadline",
        format!("timed_out=true after {}", secs(SILENT_WAIT)),
        format!(
            "timed_out={} after {}",
            run.output.timed_out,
            secs(run.output.duration)
        ),
        run.output.timed_out,
    );
    check_eq(
        &mut o,
        Against::Model,
        "nothing printed",
        "",
        run.output.combined().trim(),
    );
    Ok(o)
}

/// `mysql.silent-server-timeout`: with --connect_timeout=N the greeting wait ends after N s.
fn silent_server_timeout(_ctx: &Ctx) -> Result<Outcome> {
    let lab = SilentServerLab::new()?;
    let n = Duration::from_secs(CONNECT_TIMEOUT_S);
    let cmd = tcp_command(
        lab.target,
        Some(CONNECT_TIMEOUT_S),
        n + Duration::from_secs(20),
    );
    let run = lab::run_tool(&lab.ns, &cmd, lab.target.port())?;
    let err = ClientError::parse(&run.output.combined());
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: listener on {} that never accepts (kernel completes the handshake, no greeting)",
        lab.ns.name(),
        lab.target
    ));
    version_evidence(&mut o, "mysql");
    o.evidence(
        "seed (MySQL 5.1, `nc -l 3306` server): `mysql -h 127.0.0.1 --connect_timeout=30` \
         printed \"ERROR 2003 (HY000): Can't connect to MySQL server on '127.0.0.1' (4)\"",
    );
    o.evidence(lab::tool_evidence(&run));

    let p = predict(Case::GreetingTimedOut, lab.target);
    o.claimed = Figures::default().duration(n);
    o.expected = Figures {
        exit_code: Some(1),
        errno: Some(p.errno),
        value: Some(p.line.clone()),
        ..Figures::default()
    }
    .duration(n);
    o.observed = observed(&run, err.as_ref());

    let window = tool_timer_window(n, TOOL_STARTUP);
    // The client hangs up when the greeting does not come in time: timed to its FIN.
    let took = run.until_close(lab.target.port());
    check_timing(
        &mut o,
        Against::Statement,
        "fails after the connect timeout",
        n,
        window,
        &took,
    );
    check_timing(
        &mut o,
        Against::Model,
        "fails after the connect timeout (greeting read)",
        n,
        window,
        &took,
    );
    o.model_check(
        "the TCP handshake completed (SYN-ACK seen)",
        "true",
        handshake_completed(&run).to_string(),
        handshake_completed(&run),
    );
    check_prediction(&mut o, "", &p, &run, err.as_ref());
    Ok(o)
}

/// `mysql.refused`: no listener; with and without --connect_timeout.
fn refused(_ctx: &Ctx) -> Result<Outcome> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let target = SocketAddrV4::new(LOOPBACK.into(), MYSQL_PORT);
    let deadline = Duration::from_secs(20);
    let plain = lab::run_tool(&ns, &tcp_command(target, None, deadline), MYSQL_PORT)?;
    let timed = lab::run_tool(&ns, &tcp_command(target, Some(1), deadline), MYSQL_PORT)?;
    let plain_err = ClientError::parse(&plain.output.combined());
    let timed_err = ClientError::parse(&timed.output.combined());
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: nothing listens on {target}; the kernel answers the SYN with RST",
        ns.name()
    ));
    version_evidence(&mut o, "mysql");
    o.evidence(format!(
        "without --connect_timeout:\n{}",
        lab::tool_evidence(&plain)
    ));
    o.evidence(format!(
        "with --connect_timeout=1:\n{}",
        lab::tool_evidence(&timed)
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
    let p = predict(Case::ConnectFailed(Errno::ECONNREFUSED), target);
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
        ("no timeout: ", &plain, &plain_err),
        ("--connect_timeout=1: ", &timed, &timed_err),
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
    Ok(o)
}

/// The server socket the client tries by default, and whether `--socket` must replace it
/// because something exists at the default path on this machine.
fn socket_path(tmp: &Path) -> (PathBuf, bool) {
    let default = if is_mariadb() {
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

/// `mysql.no-socket`: no host, no server socket → ERROR 2002 (ENOENT).
fn no_socket(_ctx: &Ctx) -> Result<Outcome> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    let tmp = TempDir::new("mysql")?;
    let (socket, overridden) = socket_path(tmp.path());
    let mut args = vec!["--no-defaults".to_owned()];
    if overridden {
        args.push(format!("--socket={}", socket.display()));
    }
    args.extend(["-e".to_owned(), "SELECT 1".into()]);
    let cmd = ToolCommand::new("mysql", Duration::from_secs(20)).args(args);
    let output = ns
        .run_command(&cmd)
        .with_context(|| format!("running {}", cmd.command_line()))?;
    let err = ClientError::parse(&output.combined());
    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: no host given, no server; socket {} does not exist{}",
        ns.name(),
        socket.display(),
        if overridden {
            " (the default path exists on this machine, so --socket points into an empty temp dir)"
        } else {
            " (the client's compiled-in default)"
        }
    ));
    version_evidence(&mut o, "mysql");
    o.evidence(output.to_string());

    let enoent = Errno::ENOENT as i32;
    let p_line = if is_mariadb() {
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
    Ok(o)
}

const S: Duration = Duration::from_secs(1);

/// The claims of this module.
pub fn claims() -> Vec<Claim> {
    let with_fw = Needs {
        tools: &["iptables", "mysql"],
    };
    let plain = Needs { tools: &["mysql"] };
    let silent_lab = "one namespace; a listener on 127.0.0.1:3306 that never calls accept() (the kernel completes the handshake, no greeting is ever sent), as the seed's `nc -l 3306`";
    vec![
        Claim {
            id: "mysql.no-timeout",
            source: seeds::TOOLS,
            statement: "Without --connect_timeout, mysql connecting to a port whose SYNs are dropped waits until the kernel gives up the connect, then prints ERROR 2003 (HY000) … (110), ETIMEDOUT.",
            lab: "one namespace, iptables -A INPUT -p tcp --dport 7 --syn -j DROP, target 127.0.0.1:7; tcp_syn_retries=1 in the lab (the seed had 5, 63 s) so the kernel gives up within seconds",
            action: "mysql --no-defaults --protocol=TCP -h 127.0.0.1 -P 7 -u netclaim -e 'SELECT 1', with the SYNs captured",
            needs: with_fw,
            estimate: 4 * S,
            run: no_timeout,
        },
        Claim {
            id: "mysql.connect-timeout",
            source: seeds::TOOLS,
            statement: "mysql --connect_timeout=N to a port whose SYNs are dropped fails after N s (the client's own nonblocking connect + poll), well before the kernel would give up.",
            lab: "one namespace, iptables -A INPUT -p tcp --dport 7 --syn -j DROP, target 127.0.0.1:7, the kernel's default sysctls",
            action: "mysql --no-defaults --protocol=TCP -h 127.0.0.1 -P 7 --connect_timeout=2 -e 'SELECT 1'",
            needs: with_fw,
            estimate: 3 * S,
            run: connect_timeout,
        },
        Claim {
            id: "mysql.silent-server",
            source: seeds::TOOLS,
            statement: "Without --connect_timeout, mysql connected to a server that accepts the TCP connection but never sends its greeting blocks indefinitely.",
            lab: silent_lab,
            action: "mysql --no-defaults --protocol=TCP -h 127.0.0.1 -P 3306 -e 'SELECT 1', killed by the harness after 15 s (far past the 2 s connect timeout and the SYN give-up); still running then = blocked",
            needs: plain,
            estimate: 16 * S,
            run: silent_server,
        },
        Claim {
            id: "mysql.silent-server-timeout",
            source: seeds::TOOLS,
            statement: "With --connect_timeout=N, mysql connected to a server that never sends its greeting fails after N s instead of blocking.",
            lab: silent_lab,
            action: "mysql --no-defaults --protocol=TCP -h 127.0.0.1 -P 3306 --connect_timeout=2 -e 'SELECT 1'",
            needs: plain,
            estimate: 3 * S,
            run: silent_server_timeout,
        },
        Claim {
            id: "mysql.refused",
            source: seeds::TOOLS,
            statement: "With no listener on the port, mysql prints ERROR 2003 (HY000) … (111); with --connect_timeout it prints ERROR 2013 (HY000): Lost connection to MySQL server at 'reading initial communication packet', system error: 111.",
            lab: "one namespace, nothing listening on 127.0.0.1:3306 (the kernel answers SYN with RST)",
            action: "mysql --no-defaults --protocol=TCP -h 127.0.0.1 -P 3306 -e 'SELECT 1', then the same with --connect_timeout=1",
            needs: plain,
            estimate: S,
            run: refused,
        },
        Claim {
            id: "mysql.no-socket",
            source: seeds::TOOLS,
            statement: "mysql with no host and no local server socket fails with ERROR 2002 (HY000): Can't connect to local MySQL server through socket '…' (2), ENOENT.",
            lab: "one namespace, no server; the client's default socket path (/run/mysqld/mysqld.sock for MariaDB) does not exist, else --socket points to a missing file in an empty temp dir",
            action: "mysql --no-defaults -e 'SELECT 1'",
            needs: plain,
            estimate: S,
            run: no_socket,
        },
    ]
}
