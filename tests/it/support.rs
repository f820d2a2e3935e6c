//! Shared fixtures: the lab (a real fleet in network namespaces) and helpers to run the binary.
//!
//! `Lab::up(n)` gives a test its own lab in `/srv/rampart-test/<test>-<pid>-<n>`,
//! built by the real binary (`rampart lab up`) and removed by it on `Drop`
//! (`rampart lab down`), so the tests exercise the same commands users run.
//! Labs left behind by a test process that died (killed, aborted) are reaped
//! by the next `Lab::up` in any test process: their state.json names a
//! creator that no longer runs.
//!
//! Everything that waits is bounded: a hung host fails a test, never hangs it.
#![allow(dead_code)] // each test file uses its own subset of the helpers

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use rampart::lab::{host, LabState};

/// Where test labs live; one subdir per lab.
pub const TEST_ROOT: &str = "/srv/rampart-test";

/// How long a `rampart` run may take before the test fails instead of hanging.
pub const RAMPART_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one plain `ssh` command may take.
pub const SSH_TIMEOUT: Duration = Duration::from_secs(60);

/// One lab host, as the tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    /// `h001`, ...: inventory name and hostname.
    pub name: String,
    pub address: Ipv4Addr,
    /// `centos6`, `rocky9`, `debian12` or `ubuntu22`.
    pub personality: String,
    /// Its network namespace (`ip netns exec <netns> ...`).
    pub netns: String,
}

/// A process running in a lab host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProcess {
    pub pid: u32,
    pub cmdline: String,
}

/// A lab of real hosts for one test; removed on drop.
#[derive(Debug)]
pub struct Lab {
    dir: PathBuf,
    /// False once torn down explicitly (`down`) or handed over (`leak`).
    armed: bool,
}

// Tests share labs across threads (parallel ssh to many hosts).
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Lab>();
};

/// Run `cmd` with a deadline; on timeout kill it and return what it wrote,
/// with a failed status and "[timed out]" appended to stderr.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let (status, timed_out): (ExitStatus, bool) = loop {
        match child.try_wait().expect("wait for child") {
            Some(s) => break (s, false),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                break (child.wait().expect("reap killed child"), true);
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let mut stderr = err.join().unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(format!("[timed out after {timeout:?}]").as_bytes());
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Run the rampart binary built for these tests.
pub fn rampart(args: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rampart")).args(args),
        RAMPART_TIMEOUT,
    )
}

/// stdout + stderr of an Output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static NEXT: AtomicUsize = AtomicUsize::new(0);
static REAP: Once = Once::new();

/// A lab dir name unique to this test (libtest names the thread after the
/// test), this process and this call.
fn unique_dir() -> PathBuf {
    let test = thread::current()
        .name()
        .unwrap_or("test")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect::<String>();
    Path::new(TEST_ROOT).join(format!(
        "{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Remove the labs under [`TEST_ROOT`] whose creator (the test process that
/// made them) no longer runs. Returns the dirs it removed.
pub fn reap_stale_labs() -> Vec<PathBuf> {
    let mut reaped = Vec::new();
    let Ok(entries) = std::fs::read_dir(TEST_ROOT) else {
        return reaped;
    };
    for dir in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        match LabState::load(&dir) {
            Ok(Some(state)) if !state.creator.is_alive() => {
                let out = teardown(&dir);
                if out.status.success() {
                    reaped.push(dir);
                } else {
                    eprintln!("cannot reap stale lab {}: {}", dir.display(), show(&out));
                }
            }
            // No state.json: a lab being created this very instant, or not a lab.
            _ => {}
        }
    }
    reaped
}

impl Lab {
    /// Bring up `n` hosts in a fresh lab dir of this test's own.
    pub fn up(n: usize) -> Lab {
        REAP.call_once(|| {
            reap_stale_labs();
        });
        Lab::up_in(&unique_dir(), n)
    }

    /// Bring up `n` hosts in `dir` (replacing any lab there).
    pub fn up_in(dir: &Path, n: usize) -> Lab {
        std::fs::create_dir_all(TEST_ROOT).expect("create the test lab root");
        let d = dir.to_string_lossy().into_owned();
        let out = rampart(&["lab", "up", &n.to_string(), "--dir", &d]);
        if !out.status.success() {
            let down = rampart(&["lab", "down", "--dir", &d]);
            panic!(
                "rampart lab up {n} --dir {d} failed:\n{}\n(lab down afterwards: {})",
                show(&out),
                down.status
            );
        }
        Lab {
            dir: dir.to_path_buf(),
            armed: true,
        }
    }

    /// `rampart lab down` now, returning its output; Drop then does nothing.
    pub fn down(mut self) -> Output {
        self.armed = false;
        teardown(&self.dir)
    }

    /// A path in the lab dir for a test's own files (inventories,
    /// playbooks, known_hosts variants); removed with the lab.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Forget the lab without removing it (as a crashed test would); returns its dir.
    pub fn leak(mut self) -> PathBuf {
        self.armed = false;
        self.dir.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab's state.json, read now (a `lab up` over it may have changed it).
    pub fn state(&self) -> LabState {
        LabState::load(&self.dir)
            .expect("read the lab's state.json")
            .expect("the lab has a state.json")
    }

    /// `D/inventory.yml`, a SPEC §2 inventory of every host.
    pub fn inventory(&self) -> PathBuf {
        self.state().paths().inventory()
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.state().paths().known_hosts()
    }

    /// The client private key every host authorizes (root, deploy, nopw).
    pub fn identity(&self) -> PathBuf {
        self.state().paths().identity()
    }

    pub fn hosts(&self) -> Vec<LabHost> {
        self.state()
            .hosts
            .iter()
            .map(|h| LabHost {
                name: h.name.clone(),
                address: h.address,
                personality: h.personality.name().to_string(),
                netns: h.netns.clone(),
            })
            .collect()
    }

    pub fn host(&self, name: &str) -> LabHost {
        self.hosts()
            .into_iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in the lab at {}", self.dir.display()))
    }

    /// The arguments of plain OpenSSH reaching `user@host` with the lab's
    /// key and known_hosts, host keys strictly checked; append a command.
    pub fn ssh_command(&self, user: &str, host: &str) -> Command {
        let h = self.host(host);
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
            .arg("-i")
            .arg(self.identity())
            .args(["-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"])
            .args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"])
            .arg(format!("{user}@{}", h.address));
        cmd
    }

    /// Run a shell command on a host as root over plain OpenSSH.
    pub fn ssh(&self, host: &str, cmd: &str) -> Output {
        self.ssh_as("root", host, cmd)
    }

    /// Run a shell command on a host as `user` (root, deploy, nopw).
    pub fn ssh_as(&self, user: &str, host: &str, cmd: &str) -> Output {
        run_bounded(self.ssh_command(user, host).arg("--").arg(cmd), SSH_TIMEOUT)
    }

    /// Run `argv` inside the host (its network, mount and UTS namespaces)
    /// without SSH: for assertions that must not depend on what is tested.
    pub fn exec_in(&self, host: &str, argv: &[&str]) -> Output {
        let keeper = host::keeper(&self.state(), host).expect("the host is running");
        run_bounded(
            Command::new("nsenter")
                .args(["-t", &keeper.to_string(), "-m", "-u", "-n", "--"])
                .args(argv),
            SSH_TIMEOUT,
        )
    }

    /// Drop every packet to and from the host (its link goes down):
    /// connections time out, as when the network fails.
    pub fn cut_link(&self, host: &str) {
        host::set_link(&self.state(), host, false).expect("cut the host's link");
    }

    pub fn restore_link(&self, host: &str) {
        host::set_link(&self.state(), host, true).expect("restore the host's link");
    }

    /// Stop the host's sshd listener (open sessions live on); new
    /// connections are refused until [`Lab::start_sshd`].
    pub fn stop_sshd(&self, host: &str) {
        host::stop_sshd(&self.state(), host).expect("stop the host's sshd");
    }

    /// Start the host's sshd again; returns once it answers.
    pub fn start_sshd(&self, host: &str) {
        host::start_sshd(&self.state(), host).expect("start the host's sshd");
    }

    /// Give the host a new host key (sshd restarted), leaving known_hosts
    /// as it was: strict clients must now refuse the host.
    pub fn change_host_key(&self, host: &str) {
        host::change_host_key(&self.state(), host).expect("change the host's key");
    }

    /// The host's sshd listener (to tell it from what a test looks for).
    pub fn sshd_pid(&self, host: &str) -> Option<u32> {
        host::sshd_pid(&self.state(), host).expect("look up the host's sshd")
    }

    /// Every process in the host except the lab's keeper (its stand-in for
    /// init): sshd and whatever rampart or a test left running there.
    pub fn host_processes(&self, host: &str) -> Vec<HostProcess> {
        host::processes(&self.state(), host)
            .expect("list the host's processes")
            .into_iter()
            .map(|(pid, cmdline)| HostProcess { pid, cmdline })
            .collect()
    }
}

/// `rampart lab down`, then remove what tests put in the dir ([`Lab::scratch`]).
/// Only after a successful down: before it, the dir may hold mounts.
fn teardown(dir: &Path) -> Output {
    let out = rampart(&["lab", "down", "--dir", &dir.to_string_lossy()]);
    if out.status.success() {
        let _ = std::fs::remove_dir_all(dir);
    }
    out
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let out = teardown(&self.dir);
        if !out.status.success() {
            // No panic in drop (the test may be unwinding already): say it loudly.
            eprintln!(
                "lab down --dir {} failed:\n{}",
                self.dir.display(),
                show(&out)
            );
        }
    }
}

/// The seed's saved filter table (SPEC §1), as `iptables-save` must print it
/// on a host converged to `playbooks/baseline.yml`, counters and comments aside.
pub const SEED_V4: &str = "*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP
-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW -j DROP
-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,SYN,RST,PSH,ACK,URG -j DROP
-A INPUT -i lo -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
";
