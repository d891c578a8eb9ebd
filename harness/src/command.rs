//! Running a real tool inside a lab: one wrapper that captures the command line, exit
//! status, stdout, stderr and the wall duration on the monotonic clock, with a deadline.
//!
//! The child enters the lab's namespace in `pre_exec`, starts with no signal blocked,
//! becomes the leader of its own process group and gets `PR_SET_PDEATHSIG(SIGKILL)`. It
//! is the init of a PID namespace of its own ([`crate::pidns`]), spawned and reaped by one
//! waiter thread, so the death signal is tied to that thread's life and nothing it starts,
//! however it detaches, outlives it. On the deadline it is killed; on exit, leftovers of
//! its group are killed before it is reaped. Of its output, the first and last
//! [`OUTPUT_KEEP`] bytes of each stream are kept.

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::netns::NetNs;
use crate::tmp::TempDir;

/// Finds `program` on `PATH`, then in `/usr/sbin` and `/sbin` (a normal user's `PATH`
/// lacks them, and iptables and nginx live there), or checks an explicit path. Whatever
/// runs a program runs the path found here ([`resolve`]), so "installed" and "runnable"
/// cannot disagree.
pub fn which(program: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| is_exec(p))
}

/// The path [`which`] finds for `program`, or [`Error::ToolMissing`] with its package.
pub fn resolve(program: &str) -> Result<PathBuf> {
    which(program).ok_or_else(|| Error::ToolMissing {
        program: program.to_owned(),
        package: package_of(program).to_owned(),
    })
}

/// A command to run inside a lab.
#[derive(Debug, Clone)]
pub struct ToolCommand {
    program: String,
    args: Vec<String>,
    timeout: Duration,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
    etc_overrides: Vec<(String, Vec<u8>)>,
}

impl ToolCommand {
    /// A command with a hard deadline of `timeout`.
    pub fn new(program: impl Into<String>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            timeout,
            stdin: None,
            env: Vec::new(),
            etc_overrides: Vec::new(),
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Feeds `data` on stdin, then closes it (stdin is /dev/null otherwise).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Shows the child `contents` at `/etc/NAME` (e.g. `resolv.conf`), through a private
    /// mount namespace, as `ip netns exec` does with `/etc/netns/NS/NAME`.
    pub fn etc_file(mut self, name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        self.etc_overrides.push((name.into(), contents.into()));
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The command line as a shell would show it.
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a finished (or killed) command did. It serialises (the exit status as its raw
/// wait status), so a run can be recorded and judged again without running it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandOutput {
    /// The command line.
    pub command_line: String,
    /// The namespace it ran in.
    pub netns: String,
    /// Its exit status.
    #[serde(with = "wait_status")]
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Bytes of stdout that were not kept: only the first and last [`OUTPUT_KEEP`] bytes
    /// are, with a line marking the cut between them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stdout_cut: u64,
    /// Bytes of stderr that were not kept, as for stdout.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stderr_cut: u64,
    /// Wall time from spawn to exit, on the monotonic clock.
    pub duration: Duration,
    /// When it was spawned (it exited at `started + duration`), to set its run against
    /// other events such as captured packets. An instant means something only in the
    /// process that measured it: it is not recorded, and one read back from a recording
    /// is the moment of reading. Whatever it is set against is derived while measuring.
    #[serde(skip, default = "Instant::now")]
    pub started: Instant,
    /// Whether the harness killed it at the deadline.
    pub timed_out: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An exit status as the raw wait(2) status, the one form that keeps a signal.
mod wait_status {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(status: &ExitStatus, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(status.into_raw())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ExitStatus, D::Error> {
        i32::deserialize(d).map(ExitStatus::from_raw)
    }
}

impl CommandOutput {
    /// The exit code, `None` when a signal ended it.
    pub fn exit_code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The terminating signal, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Whether part of its output was not kept ([`OUTPUT_KEEP`]): a text that is not found
    /// in it may have been in the part cut out.
    pub fn output_cut(&self) -> bool {
        self.stdout_cut > 0 || self.stderr_cut > 0
    }

    /// stdout and stderr together, for matching messages.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for CommandOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "command: {} (in netns {})",
            self.command_line, self.netns
        )?;
        let status = match (self.exit_code(), self.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "unknown".into(),
        };
        let killed = if self.timed_out {
            " (killed at the harness deadline)"
        } else {
            ""
        };
        writeln!(
            f,
            "status: {status}{killed} after {:.3} s",
            self.duration.as_secs_f64()
        )?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// How much of each output stream is kept: this much of its start and as much of its
/// end. A tool printing without end (200 MB, say) costs the harness and the report at most
/// twice this per stream; what lies between is counted, not kept.
pub const OUTPUT_KEEP: usize = 256 * 1024;

/// What was kept of one output stream.
#[derive(Debug, Default)]
struct Kept {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    /// Bytes dropped between head and tail.
    cut: u64,
}

impl Kept {
    fn push(&mut self, mut chunk: &[u8]) {
        let room = OUTPUT_KEEP - self.head.len();
        let first = chunk.len().min(room);
        self.head.extend_from_slice(&chunk[..first]);
        chunk = &chunk[first..];
        if chunk.len() > OUTPUT_KEEP {
            let skip = chunk.len() - OUTPUT_KEEP;
            self.cut += (self.tail.len() + skip) as u64;
            self.tail.clear();
            chunk = &chunk[skip..];
        }
        let over = (self.tail.len() + chunk.len()).saturating_sub(OUTPUT_KEEP);
        self.tail.drain(..over);
        self.cut += over as u64;
        self.tail.extend(chunk);
    }

    /// The kept bytes, lossily decoded, with a line saying how much was cut between them.
    fn text(&self) -> String {
        let mut bytes = self.head.clone();
        if self.cut > 0 {
            bytes.extend_from_slice(
                format!("\n[netclaim: {} bytes cut here]\n", self.cut).as_bytes(),
            );
        }
        bytes.extend(self.tail.iter());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A thread collecting one output stream, up to [`OUTPUT_KEEP`] of each end.
type Reader = std::thread::JoinHandle<Kept>;

fn read_capped(name: &str, mut r: impl Read + Send + 'static) -> Result<Reader> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut kept = Kept::default();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => kept.push(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            kept
        })
        .map_err(|e| Error::thread_spawn(name, e))
}

/// The processes this harness started and has not reaped yet: tools run by
/// [`NetNs::run_command`] and daemons. A pid is taken out of it, under its lock, just
/// before the process is reaped, while its zombie still pins the pid (and so its process
/// group id), so [`kill_and_reap_all`] never signals a reused pid.
fn children() -> &'static Mutex<Vec<Pid>> {
    static CHILDREN: OnceLock<Mutex<Vec<Pid>>> = OnceLock::new();
    CHILDREN.get_or_init(Default::default)
}

fn lock_children() -> std::sync::MutexGuard<'static, Vec<Pid>> {
    children()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reaps `child` (a leader of its own process group) after killing what is left of its
/// group, and takes it out of the registry first, under the registry's lock.
fn reap(
    pid: Pid,
    wait: impl FnOnce() -> std::io::Result<ExitStatus>,
) -> std::io::Result<ExitStatus> {
    let mut live = lock_children();
    live.retain(|p| *p != pid);
    let _ = killpg(pid, Signal::SIGKILL);
    wait()
}

/// Kills the process group of every tool and daemon still running and reaps them, for an
/// interrupted run about to exit, so nothing it started is left running or unreaped.
/// While the returned guard lives no new child can be started (a claim thread trying to
/// start or reap one waits): hold it until the process exits.
pub fn stop_all_children() -> StoppedChildren {
    let mut live = lock_children();
    for pid in live.iter() {
        let _ = killpg(*pid, Signal::SIGKILL);
    }
    let reaped = live.len();
    for pid in live.drain(..) {
        // SIGKILL cannot be caught, so this returns at once. Registered children are only
        // reaped under the lock held here, so the pid is still this process's child.
        let _ = nix::sys::wait::waitpid(pid, None);
    }
    StoppedChildren {
        reaped,
        _lock: live,
    }
}

/// Proof that every child was killed and reaped, holding off new ones while it lives.
#[must_use = "new children can start again once this is dropped"]
pub struct StoppedChildren {
    /// How many children were killed and reaped.
    pub reaped: usize,
    _lock: std::sync::MutexGuard<'static, Vec<Pid>>,
}

/// Files that replace `/etc/NAME` inside the child, kept alive until it exits.
struct EtcOverrides {
    _dir: Option<TempDir>,
    pairs: Vec<(CString, CString)>,
}

fn prepare_overrides(cmd: &ToolCommand) -> Result<EtcOverrides> {
    if cmd.etc_overrides.is_empty() {
        return Ok(EtcOverrides {
            _dir: None,
            pairs: Vec::new(),
        });
    }
    let dir = TempDir::new("etc")?;
    let mut pairs = Vec::new();
    for (name, contents) in &cmd.etc_overrides {
        let src = dir.path().join(name);
        std::fs::write(&src, contents).map_err(|e| Error::io("write", &src, e))?;
        let target = Path::new("/etc").join(name);
        let c =
            |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL");
        pairs.push((c(&src), c(&target)));
    }
    Ok(EtcOverrides {
        _dir: Some(dir),
        pairs,
    })
}

impl NetNs {
    /// Runs `cmd` inside this namespace until it exits or its deadline passes.
    ///
    /// A missing program is [`Error::ToolMissing`]; a tool that fails is a normal
    /// [`CommandOutput`] with its exit status.
    pub fn run_command(&self, cmd: &ToolCommand) -> Result<CommandOutput> {
        let program = resolve(&cmd.program)?;
        let overrides = prepare_overrides(cmd)?;
        let command_line = cmd.command_line();
        let mut command = self.command(&program);
        command
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if !overrides.pairs.is_empty() {
            let pairs = overrides.pairs.clone();
            // SAFETY: only async-signal-safe syscalls (unshare, mount) on CStrings that were
            // allocated before fork; nothing is allocated in the child.
            unsafe {
                command.pre_exec(move || {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let root = c"/";
                    let flags = libc::MS_REC | libc::MS_SLAVE;
                    if libc::mount(
                        std::ptr::null(),
                        root.as_ptr(),
                        std::ptr::null(),
                        flags,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    for (src, dst) in &pairs {
                        if libc::mount(
                            src.as_ptr(),
                            dst.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND,
                            std::ptr::null(),
                        ) != 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }

        // The waiter spawns the child as the init of a PID namespace of its own (see
        // [`crate::pidns`]) and reaps it. Having unshared, it can create no thread, so the
        // threads that feed stdin and collect the output are started here, from the pipes
        // it hands over.
        let (tx, rx) = mpsc::channel::<Result<(ExitStatus, Instant)>>();
        let (pid_tx, pid_rx) = mpsc::channel::<Result<Spawned>>();
        let spawn_line = command_line.clone();
        let thread = format!("{}:{}", self.name(), cmd.program);
        let waiter = std::thread::Builder::new()
            .name(thread.clone())
            .spawn(move || {
                if let Err(e) = crate::pidns::for_children() {
                    let _ = pid_tx.send(Err(e));
                    return;
                }
                let started = Instant::now();
                let spawned = {
                    // Registered under the lock it is spawned under, so an interrupt
                    // either sees it or runs before it exists.
                    let mut live = lock_children();
                    command
                        .spawn()
                        .inspect(|c| live.push(Pid::from_raw(c.id() as i32)))
                };
                let mut child = match spawned {
                    Ok(c) => c,
                    Err(source) => {
                        let _ = pid_tx.send(Err(Error::Spawn {
                            command_line: spawn_line,
                            source,
                        }));
                        return;
                    }
                };
                let pid = Pid::from_raw(child.id() as i32);
                let _ = pid_tx.send(Ok(Spawned {
                    pid,
                    started,
                    stdin: child.stdin.take(),
                    stdout: child.stdout.take(),
                    stderr: child.stderr.take(),
                }));
                // Wait for the exit without reaping, kill what is left of its group while
                // the leader's pid still pins the group id, then reap. (The init's exit has
                // already ended every other process of its PID namespace.)
                let exited = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
                let ended = Instant::now();
                let result = match exited {
                    Ok(_) => reap(pid, || child.wait())
                        .map(|status| (status, ended))
                        .map_err(|e| Error::io("wait", format!("pid {pid}"), e)),
                    Err(e) => {
                        let _ = reap(pid, || child.wait());
                        Err(Error::sys(format!("waitid(P_PID, {pid})"), e))
                    }
                };
                let _ = tx.send(result);
            })
            .map_err(|e| Error::thread_spawn(thread, e))?;
        let vanished = |program: &str| Error::Thread {
            thread: program.to_owned(),
            reason: "waiter thread vanished".into(),
        };

        let spawned = match pid_rx.recv() {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = waiter.join();
                return Err(e);
            }
            Err(_) => {
                return Err(Error::Thread {
                    thread: cmd.program.clone(),
                    reason: "waiter thread ended before spawning".into(),
                })
            }
        };
        let (pid, started) = (spawned.pid, spawned.started);
        let streams = spawned.start_io(cmd.stdin.clone());
        let streams = match streams {
            Ok(s) => s,
            Err(e) => {
                // No thread to drain its output: end it rather than let it block.
                let _ = killpg(pid, Signal::SIGKILL);
                let _ = rx.recv();
                let _ = waiter.join();
                return Err(e);
            }
        };
        let (outcome, deadline_passed) = match rx.recv_timeout(cmd.timeout) {
            Ok(r) => (r, false),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = killpg(pid, Signal::SIGKILL);
                (
                    rx.recv().unwrap_or_else(|_| Err(vanished(&cmd.program))),
                    true,
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => (Err(vanished(&cmd.program)), false),
        };
        waiter.join().map_err(|_| Error::Thread {
            thread: cmd.program.clone(),
            reason: "waiter thread panicked".into(),
        })?;
        drop(overrides);
        let (status, ended) = outcome?;
        let (stdout, stderr) = streams.join();
        Ok(CommandOutput {
            command_line,
            netns: self.name().to_owned(),
            status,
            stdout: stdout.text(),
            stderr: stderr.text(),
            stdout_cut: stdout.cut,
            stderr_cut: stderr.cut,
            duration: ended - started,
            started,
            // Only if the harness's SIGKILL is what ended it: a tool that exited on its own
            // just as the deadline passed was not cut short.
            timed_out: deadline_passed && status.signal() == Some(libc::SIGKILL),
        })
    }
}

/// A child just spawned by a waiter thread, with the pipes to its standard streams.
struct Spawned {
    pid: Pid,
    started: Instant,
    stdin: Option<std::process::ChildStdin>,
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
}

/// The threads feeding a child's stdin and collecting its output.
struct Streams {
    stdout: Option<Reader>,
    stderr: Option<Reader>,
}

impl Spawned {
    /// Starts the stdin writer (when there is data) and the two readers.
    fn start_io(self, data: Option<Vec<u8>>) -> Result<Streams> {
        if let (Some(mut stdin), Some(data)) = (self.stdin, data) {
            // Without a writer thread the child would see EOF at once.
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || {
                    let _ = stdin.write_all(&data);
                })
                .map_err(|e| Error::thread_spawn("stdin", e))?;
        }
        let stdout = self.stdout.map(|o| read_capped("stdout", o)).transpose()?;
        let stderr = self.stderr.map(|e| read_capped("stderr", e)).transpose()?;
        Ok(Streams { stdout, stderr })
    }
}

impl Streams {
    fn join(self) -> (Kept, Kept) {
        let join = |r: Option<Reader>| r.and_then(|r| r.join().ok()).unwrap_or_default();
        (join(self.stdout), join(self.stderr))
    }
}

/// The Debian package that provides `program`, for install hints.
pub fn package_of(program: &str) -> &'static str {
    match program {
        "nc" => "netcat-openbsd",
        "telnet" => "telnet",
        "mysql" | "mariadb" => "mariadb-client",
        "iptables" | "iptables-save" => "iptables",
        "ip" => "iproute2",
        "curl" => "curl",
        "wget" => "wget",
        "rsync" => "rsync",
        "nginx" => "nginx-light",
        "tcpdump" => "tcpdump",
        "strace" => "strace",
        "sysctl" => "procps",
        "ss" => "iproute2",
        _ => "(unknown: see scripts/install-tools)",
    }
}

/// The installed version of a tool (cached), from its own `--version` where it has one,
/// else from dpkg. `None` when it cannot be determined.
pub fn tool_version(program: &str) -> Option<String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().ok()?.get(program) {
        return v.clone();
    }
    let v = probe_version(program);
    cache.lock().ok()?.insert(program.to_owned(), v.clone());
    v
}

fn probe_version(program: &str) -> Option<String> {
    which(program)?;
    let first_line = |out: std::process::Output| {
        let text = if out.stdout.is_empty() {
            out.stderr
        } else {
            out.stdout
        };
        String::from_utf8_lossy(&text)
            .lines()
            .next()
            .map(|l| l.trim().to_owned())
    };
    let own = match program {
        "curl" | "wget" | "mysql" | "mariadb" | "rsync" | "iptables" | "strace" => {
            std::process::Command::new(program)
                .arg("--version")
                .output()
                .ok()
                .and_then(first_line)
        }
        "nginx" => std::process::Command::new(program)
            .arg("-v")
            .output()
            .ok()
            .and_then(first_line),
        _ => None,
    };
    own.or_else(|| {
        let out = std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${Package} ${Version}", package_of(program)])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_what_needs_it() {
        let cmd = ToolCommand::new("curl", Duration::from_secs(1)).args([
            "--connect-timeout",
            "3",
            "http://192.0.2.1:80/",
            "a b",
            "it's",
        ]);
        assert_eq!(
            cmd.command_line(),
            r"curl --connect-timeout 3 http://192.0.2.1:80/ 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn packages_for_install_hints() {
        assert_eq!(package_of("nc"), "netcat-openbsd");
        assert_eq!(package_of("mysql"), "mariadb-client");
    }
}

/// A background process inside a lab (a daemon such as `rsync --daemon` or nginx), killed
/// with everything it started when dropped. Its output goes to a file that
/// [`Daemon::log`] reads, so a daemon that fails to start can say why.
///
/// Like a tool, it is the init of a PID namespace of its own, started by a keeper thread
/// that lives as long as this guard: the thread's end is the daemon's parent death.
#[derive(Debug)]
pub struct Daemon {
    command_line: String,
    child: std::process::Child,
    log: crate::tmp::TempFile,
    /// Dropping it ends the keeper thread.
    keep: Option<mpsc::Sender<()>>,
    keeper: Option<std::thread::JoinHandle<()>>,
}

impl NetNs {
    /// Starts `cmd` in the background inside this namespace; it runs until the returned
    /// guard is dropped (or the harness dies: it also gets SIGKILL as parent-death signal).
    pub fn start_daemon(&self, cmd: &ToolCommand) -> Result<Daemon> {
        let program = resolve(&cmd.program)?;
        // Removed on every path out of here that does not hand it to the Daemon.
        let log = crate::tmp::TempFile::create("daemon")?;
        let file = log.open_append()?;
        let file2 = file
            .try_clone()
            .map_err(|e| Error::io("dup", log.path(), e))?;
        let command_line = cmd.command_line();
        let mut command = self.command(&program);
        command
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2)
            .process_group(0);
        let (child_tx, child_rx) = mpsc::channel::<Result<std::process::Child>>();
        let (keep, kept) = mpsc::channel::<()>();
        let spawn_line = command_line.clone();
        let thread = format!("{}:{}", self.name(), cmd.program);
        let keeper = std::thread::Builder::new()
            .name(thread.clone())
            .spawn(move || {
                let spawned = crate::pidns::for_children().and_then(|()| {
                    let mut live = lock_children();
                    command
                        .spawn()
                        .inspect(|c| live.push(Pid::from_raw(c.id() as i32)))
                        .map_err(|source| Error::Spawn {
                            command_line: spawn_line,
                            source,
                        })
                });
                let started = spawned.is_ok();
                let _ = child_tx.send(spawned);
                if started {
                    // Until the guard is dropped (its sender with it).
                    let _ = kept.recv();
                }
            })
            .map_err(|e| Error::thread_spawn(thread, e))?;
        let child = match child_rx.recv() {
            Ok(Ok(child)) => child,
            Ok(Err(e)) => {
                let _ = keeper.join();
                return Err(e);
            }
            Err(_) => {
                let _ = keeper.join();
                return Err(Error::Thread {
                    thread: cmd.program.clone(),
                    reason: "keeper thread ended before spawning".into(),
                });
            }
        };
        Ok(Daemon {
            command_line,
            child,
            log,
            keep: Some(keep),
            keeper: Some(keeper),
        })
    }
}

impl Daemon {
    /// The command line it was started with.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log.path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Its exit status, if it has already exited (a daemon that died at start-up).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        use nix::sys::wait::WaitStatus;
        // Look without reaping: the zombie keeps the pid (and its group id) ours until
        // drop reaps it, so killing the group then cannot hit a reused pid.
        let pid = Pid::from_raw(self.child.id() as i32);
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(pid), flags).ok()? {
            WaitStatus::Exited(_, code) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
            WaitStatus::Signaled(_, sig, _) => Some(ExitStatus::from_raw(sig as i32)),
            _ => None,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = reap(pid, || self.child.wait());
        drop(self.keep.take());
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}
