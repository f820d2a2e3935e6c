//! `D/state.json`, the lab's index of itself, and the layout of the lab dir.
//!
//! The state file is written before anything is created on the machine and
//! rewritten as the lab grows, so that `lab down` after a crash at any point
//! knows the lab index (hence the names of every namespace and link) and the
//! hosts. It is the last file `lab down` removes.

use std::fs;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::rootfs::Distro;

/// Version of the state file format, bumped on incompatible changes.
/// 2: hosts have a `kind` (personality or distro) and a `rootfs`.
pub const STATE_VERSION: u32 = 2;

/// What a lab host pretends to be: its /etc files (os-release, release files,
/// boot loaders of persisted rules) are those of this distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Personality {
    Centos6,
    Rocky9,
    Debian12,
    Ubuntu22,
}

impl Personality {
    /// The cycle hosts are given, in order: h001 centos6, h002 rocky9, ...
    pub const ALL: [Personality; 4] = [
        Personality::Centos6,
        Personality::Rocky9,
        Personality::Debian12,
        Personality::Ubuntu22,
    ];

    /// The name used in state.json, inventory groups and `lab status`.
    pub fn name(self) -> &'static str {
        match self {
            Personality::Centos6 => "centos6",
            Personality::Rocky9 => "rocky9",
            Personality::Debian12 => "debian12",
            Personality::Ubuntu22 => "ubuntu22",
        }
    }

    /// Personality of the host numbered `i` (1-based).
    pub fn of_host(i: usize) -> Personality {
        Self::ALL[(i.max(1) - 1) % Self::ALL.len()]
    }
}

impl std::fmt::Display for Personality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a lab host is: a personality on this machine's userland (fast, the
/// default), or a real distribution's root filesystem (`--distros`).
///
/// Names are unique within a lab: `--distros` names only real root
/// filesystems and the personalities that have none (centos6, rocky9,
/// ubuntu22), so `debian12` there is the real Debian 12, while the
/// debian12 personality exists only in labs made without `--distros`.
/// state.json says which one a host is (`{"distro": "debian12"}` or
/// `{"personality": "debian12"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Personality(Personality),
    Distro(Distro),
}

impl Kind {
    /// The name used in inventory groups and `lab status`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Personality(p) => p.name(),
            Kind::Distro(d) => d.name(),
        }
    }

    /// "machine" or "rootfs": which userland the host runs.
    pub fn userland(self) -> &'static str {
        match self {
            Kind::Personality(_) => "machine",
            Kind::Distro(_) => "rootfs",
        }
    }

    /// The kinds of a lab made without `--distros`.
    pub fn default_cycle() -> Vec<Kind> {
        Personality::ALL.map(Kind::Personality).to_vec()
    }

    /// Every name `--distros` accepts, in the order of the help text.
    pub fn selectable() -> Vec<Kind> {
        let mut v: Vec<Kind> = Distro::ALL.map(Kind::Distro).to_vec();
        v.extend(
            [
                Personality::Centos6,
                Personality::Rocky9,
                Personality::Ubuntu22,
            ]
            .map(Kind::Personality),
        );
        v
    }

    /// One `--distros` name.
    pub fn parse(s: &str) -> Option<Kind> {
        Self::selectable().into_iter().find(|k| k.name() == s)
    }

    /// A `--distros` list (`a,b,c`, possibly given as several values):
    /// every name known, none twice, at least one.
    pub fn parse_list(values: &[String]) -> Result<Vec<Kind>> {
        let mut kinds = Vec::new();
        for name in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
            let k = Kind::parse(name).ok_or_else(|| {
                let names: Vec<&str> = Self::selectable().iter().map(|k| k.name()).collect();
                Error::Lab(format!(
                    "unknown kind {name:?} in --distros: choose among {}",
                    names.join(", ")
                ))
            })?;
            if kinds.contains(&k) {
                return Err(Error::Lab(format!("{name} is named twice in --distros")));
            }
            kinds.push(k);
        }
        if kinds.is_empty() {
            return Err(Error::Lab("--distros names no kind".into()));
        }
        Ok(kinds)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The process that asked for the lab (the parent of `rampart lab up`: a
/// shell, or a test binary). A test harness uses it to recognize labs left
/// by runs that died: the pid alone could have been reused, pid + start
/// time cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creator {
    pub pid: u32,
    /// Clock ticks since boot (/proc/PID/stat field 22); None if unknown.
    pub start_time: Option<u64>,
}

impl Creator {
    /// The parent of this process.
    pub fn parent() -> Creator {
        let pid = std::os::unix::process::parent_id();
        Creator {
            pid,
            start_time: super::sys::start_time(pid),
        }
    }

    /// Whether the creator still runs (same pid and same start time).
    pub fn is_alive(&self) -> bool {
        super::sys::alive(self.pid)
            && match self.start_time {
                Some(t) => super::sys::start_time(self.pid) == Some(t),
                None => true,
            }
    }
}

/// One host of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// `h001`, `h002`, ...: also its hostname and its inventory name.
    pub name: String,
    pub address: Ipv4Addr,
    pub kind: Kind,
    /// The cached root filesystem under the host's root overlay (distro
    /// hosts only): the very entry it booted from, even if the cache was
    /// refreshed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    /// Network namespace (`ip netns`): `rp{index}-{name}`.
    pub netns: String,
    /// Machine side of the host's veth, a port of the lab's bridge: `rp{index}h{i}`.
    pub veth: String,
    /// MAC address of the host's eth0 (fixed: the machine knows it without ARP).
    pub mac: String,
}

/// The whole of `D/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub version: u32,
    /// The lab dir, absolute.
    pub dir: PathBuf,
    /// Lab index k in 0..128: the lab owns bridge `rpbr{k}`, the /22 at
    /// 198.18.0.0 + 1024·k, namespaces `rp{k}-*` and links `rp{k}h*`.
    /// None only in the instant between writing the first state and
    /// allocating the bridge.
    pub index: Option<u32>,
    /// `198.18.x.0/22`.
    pub subnet: Option<String>,
    pub bridge: Option<String>,
    /// The bridge's address: the machine as seen from the hosts.
    pub gateway: Option<Ipv4Addr>,
    pub creator: Creator,
    /// True once every host's sshd answered; false while (or if) building.
    pub complete: bool,
    /// The kinds hosts were given, round-robin, in that order.
    #[serde(default)]
    pub kinds: Vec<Kind>,
    pub hosts: Vec<HostState>,
}

impl LabState {
    /// Read `dir/state.json`; Ok(None) when there is none.
    pub fn load(dir: &Path) -> Result<Option<LabState>> {
        let path = LabPaths::new(dir).state();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let state: LabState = serde_json::from_str(&text)
            .map_err(|e| Error::Lab(format!("{}: not a lab state file: {e}", path.display())))?;
        if state.version != STATE_VERSION {
            return Err(Error::Lab(format!(
                "{}: state version {} (this rampart knows {STATE_VERSION})",
                path.display(),
                state.version
            )));
        }
        Ok(Some(state))
    }

    /// Write atomically (temp file + rename): a crash never leaves half a state.
    pub fn save(&self) -> Result<()> {
        let paths = LabPaths::new(&self.dir);
        let path = paths.state();
        let tmp = self.dir.join(".state.json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Lab(format!("cannot encode lab state: {e}")))?;
        fs::write(&tmp, text + "\n")
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn paths(&self) -> LabPaths {
        LabPaths::new(&self.dir)
    }
}

/// Where everything lives in a lab dir.
#[derive(Debug, Clone)]
pub struct LabPaths {
    pub dir: PathBuf,
}

impl LabPaths {
    pub fn new(dir: &Path) -> LabPaths {
        LabPaths {
            dir: dir.to_path_buf(),
        }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// The client key every host authorizes, for root, deploy and nopw.
    pub fn identity(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    pub fn identity_pub(&self) -> PathBuf {
        self.dir.join("id_ed25519.pub")
    }
    /// Every host's real key: `198.18.x.y ssh-ed25519 AAAA...`.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.yml")
    }
    /// Root's password on every host (random per lab, mode 0600): fresh
    /// VPSes often ship with one, and rampart's `password_env` needs a
    /// real sshd to be tested against.
    pub fn root_password(&self) -> PathBuf {
        self.dir.join("root_password")
    }
    pub fn hosts_dir(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    pub fn host(&self, name: &str) -> HostPaths {
        HostPaths {
            dir: self.hosts_dir().join(name),
        }
    }
    /// Everything `lab up` writes in the lab dir, state.json last: the
    /// order in which `lab down` removes them.
    pub fn generated(&self) -> Vec<PathBuf> {
        vec![
            self.hosts_dir(),
            self.inventory(),
            self.known_hosts(),
            self.identity(),
            self.identity_pub(),
            self.root_password(),
            self.dir.join(".state.json.tmp"),
            self.state(),
        ]
    }
}

/// One host's dir, `D/hosts/<name>/`: what its sshd reads lives here because
/// the host's own /etc, /var, /root, /run and /tmp are overlaid or hidden.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub dir: PathBuf,
}

impl HostPaths {
    pub fn host_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }
    pub fn host_key_pub(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key.pub")
    }
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }
    pub fn sshd_config(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }
    pub fn sshd_log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }
    pub fn sshd_pid(&self) -> PathBuf {
        self.dir.join("sshd.pid")
    }
    /// Pid of the host's keeper: the process that holds its mount and UTS
    /// namespaces, so sshd can be stopped and started again in the same host.
    pub fn keeper_pid(&self) -> PathBuf {
        self.dir.join("keeper.pid")
    }
    /// stdout/stderr of the host's boot script.
    pub fn boot_log(&self) -> PathBuf {
        self.dir.join("boot.log")
    }
    /// The mounts of the host (overlays and tmpfs), `mount -a -T` format.
    pub fn fstab(&self) -> PathBuf {
        self.dir.join("fstab")
    }
    /// `ip -batch` file configuring the host's interfaces.
    pub fn net_batch(&self) -> PathBuf {
        self.dir.join("net.batch")
    }
    /// Overlay upper dir for `/etc`, `/var` or `/root` of a personality
    /// host, or `root`: the whole `/` of a distro host (`which` without slash).
    pub fn upper(&self, which: &str) -> PathBuf {
        self.dir.join(format!("{which}-up"))
    }
    /// Overlay work dir for `/etc`, `/var`, `/root` or `root` (`/`).
    pub fn work(&self, which: &str) -> PathBuf {
        self.dir.join(format!("{which}-wk"))
    }
    /// Where a distro host's root overlay is mounted before it becomes `/`.
    pub fn root_mount(&self) -> PathBuf {
        self.dir.join("root")
    }
    /// Written by the boot script once the host's mounts are ready and
    /// just before it becomes the keeper: its loaders and sshd may start.
    pub fn booted(&self) -> PathBuf {
        self.dir.join("booted")
    }
    /// The FIFO the keeper waits on forever (it never gets a writer).
    pub fn keeper_fifo(&self) -> PathBuf {
        self.dir.join("keeper.fifo")
    }
    /// What the boot-time loaders of the host's last boot printed.
    pub fn loaders_log(&self) -> PathBuf {
        self.dir.join("loaders.log")
    }
}
