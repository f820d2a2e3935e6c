//! The lab's contact with the operating system: running child processes with
//! a deadline, finding the tools it needs, and the two libc calls std lacks.
//!
//! Everything the lab does to the machine goes through a child process
//! (`ip`, `ssh-keygen`, `unshare`, `nsenter`, `sshd`) so that a reader can
//! replay any step by hand; this file makes sure none of them can hang the
//! lab forever.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// PATH given to every child the lab starts, so a caller whose PATH lacks the
/// sbin directories (a non-login root shell, a test harness) still works.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The programs the lab runs, resolved once to absolute paths.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ip: PathBuf,
    pub bridge: PathBuf,
    pub ssh_keygen: PathBuf,
    pub sshd: PathBuf,
    pub unshare: PathBuf,
    pub nsenter: PathBuf,
    pub bash: PathBuf,
    pub mount: PathBuf,
    pub umount: PathBuf,
    pub openssl: PathBuf,
}

/// (program, Debian package that ships it, needed by `lab down` too).
const REQUIRED: &[(&str, &str, bool)] = &[
    ("ip", "iproute2", true),
    ("bridge", "iproute2", false),
    ("sshd", "openssh-server", false),
    ("ssh-keygen", "openssh-client", false),
    ("ssh", "openssh-client", false),
    ("iptables", "iptables", false),
    ("ip6tables", "iptables", false),
    ("sudo", "sudo", false),
    ("unshare", "util-linux", false),
    ("nsenter", "util-linux", false),
    ("pivot_root", "util-linux", false),
    ("chroot", "coreutils", false),
    ("mount", "mount", false),
    ("umount", "mount", true),
    ("mknod", "coreutils", false),
    ("bash", "bash", false),
    ("openssl", "openssl", false),
];

/// Find `name` in [`PATH`] (not the caller's PATH: see there).
pub fn which(name: &str) -> Option<PathBuf> {
    PATH.split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Refuse early, with the fix in the message, rather than half-building a
/// lab: the lab needs root (namespaces, mounts, links) and Debian's tools.
/// `for_down` asks only for what tearing down needs, so a lab can still be
/// removed after its packages were.
pub fn preflight(for_down: bool) -> Result<Tools> {
    if !is_root() {
        return Err(Error::Lab(
            "the lab needs root (network namespaces, mounts, links): run it as root or with sudo"
                .into(),
        ));
    }
    let mut missing: Vec<(&str, &str)> = REQUIRED
        .iter()
        .filter(|(_, _, down)| *down || !for_down)
        .filter(|(name, _, _)| which(name).is_none())
        .map(|(name, pkg, _)| (*name, *pkg))
        .collect();
    if !missing.is_empty() {
        let progs: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
        missing.sort_by_key(|(_, p)| *p);
        let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        pkgs.dedup();
        return Err(Error::Lab(format!(
            "missing {}: install them with `apt-get install -y {}`",
            progs.join(", "),
            pkgs.join(" ")
        )));
    }
    let get = |n: &str| which(n).ok_or_else(|| Error::Lab(format!("{n} not found")));
    if for_down {
        // What tear-down does not run is never looked up: point it at `ip`.
        let ip = get("ip")?;
        return Ok(Tools {
            ip: ip.clone(),
            bridge: ip.clone(),
            ssh_keygen: ip.clone(),
            sshd: ip.clone(),
            unshare: ip.clone(),
            nsenter: ip.clone(),
            bash: ip.clone(),
            mount: ip.clone(),
            openssl: ip,
            umount: get("umount")?,
        });
    }
    Ok(Tools {
        ip: get("ip")?,
        bridge: get("bridge")?,
        ssh_keygen: get("ssh-keygen")?,
        sshd: get("sshd")?,
        unshare: get("unshare")?,
        nsenter: get("nsenter")?,
        bash: get("bash")?,
        mount: get("mount")?,
        umount: get("umount")?,
        openssl: get("openssl")?,
    })
}

/// Whether this process runs as root (effective uid 0).
#[allow(unsafe_code)]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Send `signal` to `pid`. Errors (the process is already gone) are ignored:
/// callers check afterwards whether what they wanted gone is gone.
#[allow(unsafe_code)]
pub fn signal(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // Never 0 or negative (process groups) and never init: only one real process.
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) only reads its two integer arguments; a stale pid is
    // reported through the return value, which we deliberately ignore.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Run a command to completion with a deadline, feeding it `stdin`; kill it
/// when the deadline passes. The command's environment is reduced to PATH.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    run_env(cmd, &[], stdin, timeout)
}

/// [`run`] with `env` added to the child's environment (PATH and nothing
/// else otherwise).
pub fn run_env(
    cmd: &mut Command,
    env: &[(String, String)],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output> {
    let what = describe(cmd);
    cmd.env_clear()
        .env("PATH", PATH)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("cannot run {what}"), e))?;
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                // A child that exits early closes the pipe: not our error to report.
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_deadline(&mut child, timeout);
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(Error::Lab(format!(
            "{what} did not finish within {} s (killed)",
            timeout.as_secs_f32()
        ))),
    }
}

/// Run a command with its stdout and stderr going to `out` (a file: a
/// daemon it starts may keep them open, which would keep a pipe from ever
/// reaching its end), and a deadline; its environment is PATH alone.
pub fn run_to_file(cmd: &mut Command, out: std::fs::File, timeout: Duration) -> Result<ExitStatus> {
    let what = describe(cmd);
    let err = out
        .try_clone()
        .map_err(|e| Error::io("cannot duplicate a file handle", e))?;
    let mut child = cmd
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::io(format!("cannot run {what}"), e))?;
    wait_deadline(&mut child, timeout).ok_or_else(|| {
        Error::Lab(format!(
            "{what} did not finish within {} s (killed)",
            timeout.as_secs_f32()
        ))
    })
}

/// [`run`], and turn a non-zero exit into an error carrying its stderr.
pub fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    let what = describe(cmd);
    let out = run(cmd, stdin, timeout)?;
    if !out.status.success() {
        return Err(Error::Lab(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Wait for `child` until `timeout`; on timeout kill and reap it and return None.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                thread::sleep(pause);
                // Most commands here take milliseconds (ip, ssh-keygen,
                // nsenter): look often at first, then rarely. Each host's
                // boot waits for several, one after the other, so coarse
                // looks add up to seconds over a lab of hundreds.
                let cap = if start.elapsed() < Duration::from_secs(1) {
                    Duration::from_millis(4)
                } else {
                    Duration::from_millis(50)
                };
                pause = (pause * 2).min(cap);
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `prog arg arg...` for messages, shortened so that a long script does not
/// drown the interesting part.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.len() > 60 {
            s.push_str(&a[..a.floor_char_boundary_compat(57)]);
            s.push_str("...");
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// `str::floor_char_boundary` is not stable on our MSRV.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        if i >= self.len() {
            return self.len();
        }
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// The start time of a process (field 22 of /proc/PID/stat, in clock ticks
/// since boot): with the pid it names one process for good, even after the
/// pid is reused.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The command line of a process, arguments joined by spaces ("" for kernel threads or if gone).
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// An exclusive `flock(2)` on a file, released when dropped (or when the
/// process dies, whatever kills it: the kernel drops the lock with the last
/// descriptor, so a crashed holder never blocks the next one).
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Take the lock on `path` (created if missing), waiting at most
    /// `timeout`; `waiting` is called once if the lock is held by another.
    #[allow(unsafe_code)]
    pub fn exclusive(path: &Path, timeout: Duration, waiting: impl FnOnce()) -> Result<FileLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let deadline = Instant::now() + timeout;
        let mut waiting = Some(waiting);
        loop {
            // SAFETY: flock(2) only takes a descriptor we own (kept open by
            // `file` for as long as the lock lives) and a flag word.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(Error::io(format!("cannot lock {}", path.display()), err));
            }
            if Instant::now() >= deadline {
                return Err(Error::Lab(format!(
                    "{} is still locked after {} s: another build is stuck?",
                    path.display(),
                    timeout.as_secs()
                )));
            }
            if let Some(f) = waiting.take() {
                f();
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}
