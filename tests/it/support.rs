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

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use rampart::lab::{host, Kind, LabState};
use serde_json::Value;

/// Where test labs live; one subdir per lab.
pub const TEST_ROOT: &str = "/srv/rampart-test";

/// How long a `rampart` run may take before the test fails instead of hanging.
pub const RAMPART_TIMEOUT: Duration = Duration::from_secs(180);
/// How long building every root filesystem may take (about a minute each
/// on a 2-core machine; other tests may be building beside it).
pub const ROOTFS_BUILD_TIMEOUT: Duration = Duration::from_secs(25 * 60);
/// How long one plain `ssh` command may take.
pub const SSH_TIMEOUT: Duration = Duration::from_secs(60);

/// One lab host, as the tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    /// `h001`, ...: inventory name and hostname.
    pub name: String,
    pub address: Ipv4Addr,
    /// Its kind: a personality (`centos6`, `rocky9`, `debian12`,
    /// `ubuntu22`) or a real distro (`debian11`, `debian12`, `debian13`,
    /// `debian12-legacy`, `busybox`); `rootfs` tells the two debian12 apart.
    pub kind: String,
    /// The same as `kind` (the name the personality-only tests use).
    pub personality: String,
    /// Whether it runs a real root filesystem (else this machine's userland).
    pub rootfs: bool,
    /// Its network namespace (`ip netns exec <netns> ...`).
    pub netns: String,
}

/// A process running in a lab host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProcess {
    pub pid: u32,
    pub cmdline: String,
}

/// One process for good: its pid and its start time. This machine's pids
/// wrap at 32768, and tests start processes by the thousand, so "pid P is
/// alive" seconds later may well be about another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pid {
    pub pid: u32,
    pub start: Option<u64>,
}

impl Pid {
    pub fn of(pid: u32) -> Pid {
        Pid {
            pid,
            start: rampart::lab::sys::start_time(pid),
        }
    }

    /// Whether this very process still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        rampart::lab::sys::alive(self.pid)
            && self.start.is_some()
            && rampart::lab::sys::start_time(self.pid) == self.start
    }
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

    /// Bring up `n` hosts of these kinds (`rampart lab up --distros`),
    /// round-robin; the root filesystems come from the machine's cache
    /// (built, once, by the first test that needs them).
    pub fn up_distros(n: usize, kinds: &[&str]) -> Lab {
        REAP.call_once(|| {
            reap_stale_labs();
        });
        Lab::up_in_with(&unique_dir(), n, kinds)
    }

    /// Bring up `n` hosts in `dir` (replacing any lab there).
    pub fn up_in(dir: &Path, n: usize) -> Lab {
        Lab::up_in_with(dir, n, &[])
    }

    fn up_in_with(dir: &Path, n: usize, kinds: &[&str]) -> Lab {
        std::fs::create_dir_all(TEST_ROOT).expect("create the test lab root");
        let d = dir.to_string_lossy().into_owned();
        let n = n.to_string();
        let list = kinds.join(",");
        let mut args = vec!["lab", "up", &n, "--dir", &d];
        if !kinds.is_empty() {
            args.extend(["--distros", &list]);
        }
        let out = run_bounded(
            Command::new(env!("CARGO_BIN_EXE_rampart")).args(&args),
            // The first lab of a kind may build its root filesystem.
            RAMPART_TIMEOUT + ROOTFS_BUILD_TIMEOUT,
        );
        if !out.status.success() {
            let down = rampart(&["lab", "down", "--dir", &d]);
            panic!(
                "rampart {} failed:\n{}\n(lab down afterwards: {})",
                args.join(" "),
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

    /// `D/inventory.yml`, a rampart inventory of every host.
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
                kind: h.kind.name().to_string(),
                personality: h.kind.name().to_string(),
                rootfs: matches!(h.kind, Kind::Distro(_)),
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

    /// `rampart lab reboot HOST...`: power-cycle these hosts; panics when
    /// one does not come back. Returns the command's report.
    pub fn reboot(&self, hosts: &[&str]) -> String {
        let d = self.dir.to_string_lossy().into_owned();
        let mut args = vec!["lab", "reboot", "--dir", &d];
        args.extend(hosts);
        let out = rampart(&args);
        assert!(
            out.status.success(),
            "rampart {}:\n{}",
            args.join(" "),
            show(&out)
        );
        stdout(&out)
    }

    /// The overlay upper dirs of a host (what it wrote to its disk), with
    /// the path each one is mounted at inside the host: `/etc/`, `/var/`,
    /// `/root/` on personality hosts, `/` on distro hosts.
    pub fn upper_dirs(&self, host: &str) -> Vec<(String, PathBuf)> {
        let state = self.state();
        let paths = state.paths().host(host);
        let h = state
            .host(host)
            .unwrap_or_else(|| panic!("no host {host} in the lab"));
        match h.kind {
            Kind::Distro(_) => vec![("/".to_string(), paths.upper("root"))],
            Kind::Personality(_) => ["etc", "var", "root"]
                .iter()
                .map(|w| (format!("/{w}/"), paths.upper(w)))
                .collect(),
        }
    }

    /// Wait (bounded) for a process of the host whose command line starts
    /// with `prefix`, and return it: a process started in the background
    /// over SSH (`setsid -f`) may not even have been forked when the SSH
    /// command returns, let alone have exec'd under its final name.
    pub fn wait_process(&self, host: &str, prefix: &str, within: Duration) -> Option<HostProcess> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(p) = self
                .host_processes(host)
                .into_iter()
                .find(|p| p.cmdline.starts_with(prefix))
            {
                return Some(p);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
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

/// The seed's saved filter table, as `iptables-save` must print it
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

// ---------------------------------------------------------------------------
// Helpers shared by the apply, audit and distro tests
// ---------------------------------------------------------------------------

/// Short timeouts keep the tests quick (confirm >= 2 x connect + 5).
pub const FAST: [&str; 4] = ["--connect-timeout", "2", "--confirm-timeout", "10"];

/// The IPv6 twin of the seed: ipv6-icmp instead of icmp (README, "Playbook").
pub fn seed_v6() -> String {
    SEED_V4.replace("-p icmp -j", "-p ipv6-icmp -j")
}

/// A playbook shipped in `playbooks/`.
pub fn playbook(name: &str) -> String {
    format!("{}/playbooks/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `rampart CMD PLAYBOOK -i INVENTORY` with short timeouts and `extra`.
pub fn run(cmd: &str, playbook: &str, inventory: &Path, extra: &[&str]) -> Output {
    let inv = inventory.to_string_lossy();
    let mut args = vec![cmd, playbook, "-i", &inv];
    args.extend(FAST);
    args.extend(extra);
    rampart(&args)
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// `--format json` output: exactly one JSON document on stdout.
pub fn report(out: &Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", show(out)))
}

/// The report of host `name` in a JSON report.
pub fn host_report<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["hosts"]
        .as_array()
        .expect("hosts is an array")
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in the report: {v:#}"))
}

/// name -> status of every host in a JSON report.
pub fn statuses(v: &Value) -> BTreeMap<String, String> {
    v["hosts"]
        .as_array()
        .expect("hosts is an array")
        .iter()
        .map(|h| {
            (
                h["name"].as_str().expect("name").to_string(),
                h["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

/// `expected` for every host of `names`.
pub fn all(names: &[&str], expected: &str) -> BTreeMap<String, String> {
    names
        .iter()
        .map(|n| (n.to_string(), expected.to_string()))
        .collect()
}

pub static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// A dir in the lab dir (controller side) for a test's inventories,
/// playbooks and known_hosts; removed on drop, and with the lab anyway.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(lab: &Lab) -> Scratch {
        let dir = lab.scratch(&format!(
            "scratch-{}",
            SCRATCH.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An inventory of the lab's key and known_hosts with the given `hosts:` body
/// (YAML lines, indented by two spaces).
pub fn inventory_with(lab: &Lab, scratch: &Scratch, hosts_yaml: &str) -> PathBuf {
    let text = format!(
        "defaults:\n  user: root\n  identity_file: {:?}\n  known_hosts: {:?}\nhosts:\n{hosts_yaml}",
        lab.identity().to_string_lossy(),
        lab.known_hosts().to_string_lossy()
    );
    scratch.write("inventory.yml", &text)
}

/// Run a shell script inside a host (no SSH); panics when it fails.
pub fn sh_in(lab: &Lab, host: &str, script: &str) -> String {
    let out = lab.exec_in(host, &["sh", "-c", script]);
    assert!(
        out.status.success(),
        "{host}: `{script}` failed:\n{}",
        show(&out)
    );
    stdout(&out)
}

/// iptables-save output without comments, chain counters zeroed.
pub fn normalize_save(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with(':') {
            if let Some((head, counters)) = line.rsplit_once(' ') {
                if counters.starts_with('[') && counters.ends_with(']') {
                    out.push_str(head);
                    out.push_str(" [0:0]\n");
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The live rules of one family (`iptables` or `ip6tables`), normalized.
pub fn live(lab: &Lab, host: &str, cmd: &str) -> String {
    let out = lab.exec_in(host, &[&format!("{cmd}-save")]);
    assert!(out.status.success(), "{host}: {cmd}-save:\n{}", show(&out));
    normalize_save(&stdout(&out))
}

/// Both families' live rules, normalized.
pub fn live_both(lab: &Lab, host: &str) -> (String, String) {
    (live(lab, host, "iptables"), live(lab, host, "ip6tables"))
}

/// The `*filter` ... `COMMIT` block of a normalized save.
pub fn filter_table(norm: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in norm.lines() {
        if line == "*filter" {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
            if line == "COMMIT" {
                break;
            }
        }
    }
    out
}

/// The kernel's defaults: no table at all, or an empty filter table with
/// ACCEPT policies (what a restore of "no rules" leaves on nf_tables).
pub fn is_kernel_default(norm: &str) -> bool {
    let empty =
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    norm.is_empty() || norm == empty
}

/// Same rules, where "no tables" and "an empty ACCEPT filter table" are equal.
pub fn same_rules(a: &str, b: &str) -> bool {
    a == b || (is_kernel_default(a) && is_kernel_default(b))
}

/// A file's mode, size, mtime and content, or None when it does not exist.
pub fn file_info(lab: &Lab, host: &str, path: &str) -> Option<String> {
    let out = lab.exec_in(
        host,
        &[
            "sh",
            "-c",
            "[ -e \"$1\" ] || exit 3; find \"$1\" -maxdepth 0 -printf '%m %s %T@\\n' && cat -- \"$1\"",
            "sh",
            path,
        ],
    );
    match out.status.code() {
        Some(0) => Some(stdout(&out)),
        Some(3) => None,
        _ => panic!("{host}: stat {path}:\n{}", show(&out)),
    }
}

/// The entries of /var/lib/rampart on a host, or None when it does not exist.
pub fn state_dir(lab: &Lab, host: &str) -> Option<Vec<String>> {
    let out = lab.exec_in(
        host,
        &[
            "sh",
            "-c",
            "[ -d /var/lib/rampart ] || exit 3; ls -A /var/lib/rampart",
        ],
    );
    match out.status.code() {
        Some(0) => Some(stdout(&out).lines().map(str::to_string).collect()),
        Some(3) => None,
        _ => panic!("{host}: ls /var/lib/rampart:\n{}", show(&out)),
    }
}

/// Processes in the host besides its sshd listener: sshd sessions that have
/// not exited yet, and whatever rampart left behind (the switch, a sleep).
pub fn strays(lab: &Lab, host: &str) -> Vec<String> {
    let sshd = lab.sshd_pid(host);
    lab.host_processes(host)
        .into_iter()
        .filter(|p| Some(p.pid) != sshd)
        .map(|p| format!("{} {}", p.pid, p.cmdline))
        .collect()
}

/// Wait (bounded) until nothing but the sshd listener runs in the host:
/// sshd's session processes take a moment to exit after a client leaves.
/// Returns what is still running at the deadline.
pub fn settle_processes(lab: &Lab, host: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let s = strays(lab, host);
        if s.is_empty() || Instant::now() >= deadline {
            return s;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Poll `f` until it is true or `within` has passed; returns the last value.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The persisted files of a lab host's kind (README, "What it does to a host").
pub fn persist_paths(kind: &str) -> [&'static str; 2] {
    match kind {
        "centos6" | "rocky9" => ["/etc/sysconfig/iptables", "/etc/sysconfig/ip6tables"],
        "debian11" | "debian12" | "debian13" | "debian12-legacy" | "busybox" | "ubuntu22" => {
            ["/etc/iptables/rules.v4", "/etc/iptables/rules.v6"]
        }
        other => panic!("unknown kind {other}"),
    }
}

/// The `os` rampart must report for a lab host's kind.
pub fn expected_os(kind: &str) -> &'static str {
    match kind {
        "centos6" => "centos",
        "rocky9" => "rocky",
        "debian11" | "debian12" | "debian13" | "debian12-legacy" | "busybox" => "debian",
        "ubuntu22" => "ubuntu",
        other => panic!("unknown kind {other}"),
    }
}

/// The iptables backend a distro host runs; None for personalities (they
/// run this machine's iptables, whatever its backend).
pub fn expected_backend(kind: &str) -> Option<&'static str> {
    match kind {
        "debian12-legacy" => Some("legacy"),
        "debian11" | "debian12" | "debian13" | "busybox" => Some("nf_tables"),
        _ => None,
    }
}

/// Whether a host of this kind has a loader of persisted rules at boot
/// before rampart installs one: every kind but ubuntu22.
pub fn has_boot_loader(kind: &str) -> bool {
    kind != "ubuntu22"
}

/// Lines `Accepted ...` in a host's sshd log: authenticated sessions so far.
pub fn accepted_logins(lab: &Lab, host: &str) -> usize {
    let log = lab.state().paths().host(host).sshd_log();
    fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("Accepted "))
        .count()
}

/// What a host looks like to the transaction: rules, persisted files,
/// rampart's state dir. Compared before/after to prove nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    pub v4: String,
    pub v6: String,
    pub files: Vec<Option<String>>,
    pub state_dir: Option<Vec<String>>,
}

pub fn host_state(lab: &Lab, host: &str, personality: &str) -> HostState {
    let (v4, v6) = live_both(lab, host);
    HostState {
        v4,
        v6,
        files: persist_paths(personality)
            .iter()
            .map(|p| file_info(lab, host, p))
            .collect(),
        state_dir: state_dir(lab, host),
    }
}

/// Add rules by hand (not rampart's): a custom chain, a port, a source drop.
pub fn hand_rules(lab: &Lab, host: &str) {
    sh_in(
        lab,
        host,
        "iptables -N HANDMADE && iptables -A HANDMADE -s 192.0.2.0/24 -j DROP \
         && iptables -A INPUT -j HANDMADE && iptables -A INPUT -p tcp --dport 2222 -j ACCEPT \
         && ip6tables -A INPUT -p tcp --dport 2222 -j ACCEPT",
    );
}
