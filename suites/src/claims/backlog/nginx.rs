//! `backlog.nginx-502`: nginx answers 502 when its upstream's unix accept queue is full.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use netclaim_fixtures::client::{self, ConnectResult};
use netclaim_fixtures::server::UnixNoAcceptListener;
use netclaim_harness::command::{CommandOutput, ToolCommand};
use netclaim_harness::sysctl::knob;
use netclaim_harness::tmp::TempDir;
use netclaim_harness::wait::{self, Poll};
use netclaim_harness::NetNs;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::{errno_of, fill, not_applicable, result_text, set_or_na, strerror, LISTEN_ARG};
use crate::claim::{Ctx, Observation, Outcome, Steps};
use crate::judge::checks::{check_eq, Against};
use crate::judge::tool::version_line;
use crate::measure::tool::version_of;

/// nginx's port in the lab.
const NGINX_PORT: u16 = 8080;
/// somaxconn for the nginx lab: listen(128) is capped to this.
const NGINX_SOMAXCONN: u32 = 2;
/// What nginx's error line about the upstream ends with.
const UPSTREAM_ERROR: &str = "while connecting to upstream";

/// nginx's configuration for the lab in `dir`, proxying to the unix socket `upstream`.
fn nginx_conf(dir: &Path, upstream: &Path) -> String {
    let d = dir.display();
    // In a user namespace only root is mapped: nginx's default worker user (nobody)
    // cannot be switched to, so the workers stay root there.
    let user = if netclaim_harness::userns::mode().rootless() {
        "user root root;\n"
    } else {
        ""
    };
    format!(
        "{user}worker_processes 1;
error_log {d}/error.log error;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        location / {{
            proxy_pass http://unix:{};
        }}
    }}
}}
",
        upstream.display()
    )
}

/// Waits until `daemon` accepts connections on `port` (or exits, an error); returns how
/// long that took.
fn wait_for_port(
    ns: &NetNs,
    port: u16,
    daemon: &mut netclaim_harness::command::Daemon,
) -> Result<Duration> {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let limit = Duration::from_secs(10);
    let (state, took) = wait::until(&format!("nginx listening on {addr}"), limit, || {
        if let Some(status) = daemon.exited() {
            return Poll::Ready(Err(anyhow::anyhow!(
                "nginx exited at start-up ({status}): {}",
                daemon.log()
            )));
        }
        match client::connect_nonblocking(ns, addr, Duration::from_millis(200)) {
            Ok(c) if c.result == ConnectResult::Connected => Poll::Ready(Ok(())),
            Ok(c) => Poll::Pending(result_text(Some(c.result))),
            Err(e) => Poll::Ready(Err(anyhow::Error::from(e).context("connecting to nginx"))),
        }
    })
    .map_err(|e| anyhow::anyhow!("{e}: {}", daemon.log()))?;
    state?;
    Ok(took)
}

/// What `backlog.nginx-502` measured: curl through nginx to a full unix upstream.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Nginx502 {
    /// The lab's namespace.
    pub(super) lab: String,
    /// net.core.somaxconn, read back after setting it.
    pub(super) somaxconn: u32,
    /// The upstream's socket path.
    pub(super) sock: String,
    /// Connects that filled the upstream's queue.
    pub(super) filled: usize,
    /// The fill loop's extra connect (`None`: every one completed).
    pub(super) stop: Option<ConnectResult>,
    /// How long nginx took to listen.
    pub(super) ready: Duration,
    /// nginx's command line.
    pub(super) command_line: String,
    /// Its configuration.
    pub(super) conf: String,
    /// curl's run.
    pub(super) curl: CommandOutput,
    /// nginx's error log afterwards.
    pub(super) error_log: String,
    /// The installed nginx's version.
    pub(super) version: Option<String>,
}

/// `backlog.nginx-502`, measured.
fn measure_nginx(_ctx: &Ctx) -> Result<Observation<Nginx502>> {
    let ns = NetNs::new().context("creating the lab namespace")?;
    if let Some(why) = set_or_na(&ns, &[(knob::SOMAXCONN, &NGINX_SOMAXCONN.to_string())])? {
        return not_applicable(why);
    }
    let somaxconn = ns.somaxconn()?;
    let dir = TempDir::new("nginx")?;
    let sock = dir.path().join("up.sock");
    let upstream = UnixNoAcceptListener::bind(&ns, &sock, LISTEN_ARG)
        .with_context(|| format!("binding {}", sock.display()))?;
    let fits = (LISTEN_ARG as u32).min(somaxconn) as usize + 1;
    let filled = fill(fits + 1, || {
        Ok(client::unix_connect_nonblocking(
            &ns,
            upstream.path(),
            Duration::from_secs(1),
        )?)
    })?;

    let conf_text = nginx_conf(dir.path(), &sock);
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, &conf_text).with_context(|| format!("writing {}", conf.display()))?;
    let prefix = format!("{}/", dir.path().display());
    let startup_log = dir.path().join("startup.log");
    let cmd = ToolCommand::new("nginx", Duration::from_secs(30)).args([
        "-e".to_string(),
        startup_log.display().to_string(),
        "-p".into(),
        prefix,
        "-c".into(),
        conf.display().to_string(),
        "-g".into(),
        "daemon off; master_process off;".into(),
    ]);
    let mut daemon = ns.start_daemon(&cmd).context("starting nginx")?;
    let ready = wait_for_port(&ns, NGINX_PORT, &mut daemon)?;

    let url = format!("http://127.0.0.1:{NGINX_PORT}/");
    let curl = ToolCommand::new("curl", Duration::from_secs(15)).args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        url.as_str(),
    ]);
    let out = ns
        .run_command(&curl)
        .with_context(|| format!("running {}", curl.command_line()))?;
    // nginx writes the error line before it answers; should the file lag, wait until it
    // has the line (at most 2 s: without it, the log as it is was measured).
    let error_log_path = dir.path().join("error.log");
    let read_log = || std::fs::read_to_string(&error_log_path).unwrap_or_default();
    let error_log = match wait::until(
        "nginx's upstream error line in error.log",
        Duration::from_secs(2),
        || {
            let log = read_log();
            if log.contains(UPSTREAM_ERROR) {
                Poll::Ready(log)
            } else {
                Poll::Pending(format!("{} bytes without it", log.len()))
            }
        },
    ) {
        Ok((log, _)) => log,
        Err(_) => read_log(),
    };
    let measured = Nginx502 {
        lab: ns.name().to_owned(),
        somaxconn,
        sock: sock.display().to_string(),
        filled: filled.kept.len(),
        stop: filled.stop.as_ref().map(|o| o.result),
        ready,
        command_line: daemon.command_line().to_owned(),
        conf: conf_text,
        curl: out,
        error_log,
        version: version_of("nginx"),
    };
    drop(daemon);
    drop(filled);
    drop(upstream);
    Ok(Observation::Observed(measured))
}

/// `backlog.nginx-502`, judged: HTTP 502 and the EAGAIN line in the error log.
fn judge_nginx(m: &Nginx502, _ctx: &Ctx) -> Outcome {
    let out = &m.curl;
    let error_log = &m.error_log;
    let code = out.stdout.trim().to_owned();
    let fill_errno = m.stop.and_then(errno_of);
    let expected_line = format!(
        "connect() to unix:{} failed ({}: {}) {UPSTREAM_ERROR}",
        m.sock,
        Errno::EAGAIN as i32,
        strerror(Errno::EAGAIN)
    );
    let stated_fragment =
        "failed (11: Resource temporarily unavailable) while connecting to upstream";
    let found = error_log
        .lines()
        .find(|l| l.contains(UPSTREAM_ERROR))
        .map(str::to_owned);

    let mut o = Outcome::default();
    o.evidence(format!(
        "lab {}: net.core.somaxconn={}; upstream {} listen({LISTEN_ARG}) never accepts; \
         {} connects filled it (next: {}); nginx listening after {:.3} s",
        m.lab,
        m.somaxconn,
        m.sock,
        m.filled,
        result_text(m.stop),
        m.ready.as_secs_f64()
    ));
    o.evidence(format!("{}\nnginx.conf:\n{}", m.command_line, m.conf));
    o.evidence(format!("{out}"));
    o.evidence(format!("error.log:\n{}", error_log.trim_end()));
    version_line(&mut o, "nginx", m.version.as_deref());
    o.claimed.value = Some(format!("HTTP 502; log: {stated_fragment}"));
    o.expected.value = Some(format!("HTTP 502; log: {expected_line}"));
    o.expected.errno = Some(Errno::EAGAIN as i32);
    o.observed.exit_code = out.exit_code();
    o.observed.value = Some(format!(
        "HTTP {code}; log: {}",
        found.as_deref().unwrap_or("(no upstream error line)")
    ));
    o.observed.errno = fill_errno.map(|e| e as i32);

    o.claim_check("HTTP status", "502", &code, code == "502");
    o.claim_check(
        "error log line",
        format!("contains {stated_fragment:?}"),
        format!("{:?}", found.as_deref().unwrap_or("")),
        error_log.contains(stated_fragment) && error_log.contains("connect() to unix:"),
    );
    check_eq(
        &mut o,
        Against::Model,
        "errno of the fill loop's extra connect (queue full before nginx)",
        Some(Errno::EAGAIN),
        fill_errno,
    );
    check_eq(
        &mut o,
        Against::Model,
        "curl exit code",
        Some(0),
        out.exit_code(),
    );
    check_eq(&mut o, Against::Model, "HTTP status", "502", code.as_str());
    o.model_check(
        "error log line",
        format!("contains {expected_line:?}"),
        format!("{:?}", found.as_deref().unwrap_or("")),
        error_log.contains(&expected_line),
    );
    o
}

/// `backlog.nginx-502` in two steps.
pub(super) const NGINX_502: Steps<Nginx502> = Steps {
    measure: measure_nginx,
    judge: judge_nginx,
};
