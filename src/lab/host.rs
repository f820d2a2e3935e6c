//! One lab host: its files, its boot, its loaders, its sshd.
//!
//! A host is a network namespace plus a mount and UTS namespace held open by
//! a *keeper* process (`rampart-lab-init`: a renamed `sleep infinity` on
//! personality hosts; on distro hosts a bash waiting forever on a FIFO
//! nobody writes to, since `sleep` is a busybox applet on busybox hosts and
//! would refuse to run under another name). The keeper, not sshd, holds
//! the namespaces so that a test can stop sshd and start it again in the
//! very same host (same /etc, same /tmp, same running dead-man switch), or
//! restart it with a new host key.
//!
//! Two kinds of host (see [`Kind`]):
//! - a *personality* runs this machine's userland; its /etc, /var and /root
//!   are overlays on the machine's, and its /etc upper dir makes it look
//!   like CentOS 6, Rocky 9, Debian 12 or Ubuntu 22 (os-release, release
//!   files, users, boot loaders of persisted rules). Fast: nothing to build.
//! - a *distro* host runs a real Debian root filesystem (see
//!   [`super::rootfs`]): its whole `/` is an overlay whose lower layer is the
//!   cached, read-only root filesystem and whose upper layer (the host's
//!   disk) lives in its host dir; it gets its own /proc, /sys, a minimal
//!   /dev (a tmpfs with null, zero, full, random, urandom, tty and its own
//!   devpts: the machine's /dev, disks and console, stays out of reach),
//!   tmpfs /run and /tmp, and `pivot_root`s into it, so every program that
//!   runs there (sshd, iptables, sh, sudo) is the distro's.
//!
//! The boot script runs inside `nsenter --net=/run/netns/NS unshare -m -u
//! --propagation private` and:
//! 1. creates the overlay whiteouts a personality needs (`mknod c 0 0`),
//! 2. configures eth0 and lo,
//! 3. personality: detaches its copies of /run/netns and of other labs'
//!    `D/hosts` tmpfs (without this, the host's mount namespace would hold a
//!    reference to every netns and lab that existed when it booted: a netns
//!    still referenced keeps its veth alive after the other lab's `lab
//!    down`, and a tmpfs its memory), then mounts overlays on /etc, /var,
//!    /root (upper dirs prepared here, in `D/hosts`), its own /sys, and tmpfs
//!    on /run, /tmp (`mount -a -T fstab`: one exec for all);
//!    distro: mounts its root overlay and the rest, binds its host dir at the
//!    same path inside (sshd's config, keys and logs live there), and
//!    `pivot_root`s, detaching the machine's whole mount tree at once,
//! 4. sets the hostname, writes `booted`, and becomes the keeper.
//!
//! Then, from here, as the host's init would: the firewall loaders its init
//! system would start at boot (see [`loaders`]), then sshd, inside the
//! host (`nsenter` into the keeper's namespaces). A reboot ([`reboot`])
//! kills every process of the host, gives it a new network namespace (so
//! every netfilter table of both backends is the kernel's default again)
//! and boots it the same way: its disk (the upper dirs) stays, its /run and
//! /tmp are new.
//!
//! The /etc upper dir is written from Rust before boot: it is faster than
//! running `useradd` and friends in hundreds of namespaces, and it leaves
//! the machine's own /etc (and the cached root filesystems) untouched by
//! construction.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{chown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::loaders::{self, InitSystem, LoaderRun};
use super::net;
use super::rootfs::Distro;
use super::state::{HostPaths, HostState, Kind, LabState, Personality};
use super::sys;
use crate::error::{Error, Result};

/// Name the keeper shows in `ps`, so nobody mistakes it for a stray process.
pub const KEEPER_NAME: &str = "rampart-lab-init";

/// The users every host has besides root: `deploy` may `sudo` without a
/// password, `nopw` needs one (which nobody knows), for `become` tests.
pub const SUDO_USER: &str = "deploy";
pub const NOPASSWD_DENIED_USER: &str = "nopw";

/// How long a host's loaders and sshd start may take together.
const SERVICES_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs as `bash -c BOOT rampart-lab-boot HOSTDIR NAME KEEPER_NAME
/// TMPFS_NAME LOWER [WHITEOUT...]`, LOWER empty for a personality. Values
/// come in as arguments, never pasted into the script text. mountinfo is
/// read with `mapfile`: `while read` reads it a byte at a time, and the
/// kernel regenerates it for each read; with hundreds of netns mounts that
/// alone took most of a second per host.
const BOOT: &str = r#"set -eu
h=$1 name=$2 keeper=$3 tmpfs=$4 lower=$5
shift 5
echo $$ > "$h/keeper.pid"
for w in "$@"; do [ -e "$h/etc-up/$w" ] || mknod "$h/etc-up/$w" c 0 0; done
ip -batch "$h/net.batch"
if [ -z "$lower" ]; then
  detach=(/run/netns)
  mapfile -t mounts < /proc/self/mountinfo
  for m in "${mounts[@]}"; do
    case "$m" in *" - tmpfs $tmpfs "*)
      f=($m); [ "${f[4]}" = "${h%/*}" ] || detach+=("${f[4]}");;
    esac
  done
  umount -l "${detach[@]}" 2>/dev/null || true
  mount -a -T "$h/fstab"
else
  r=$h/root
  mount -t overlay -o "lowerdir=$lower,upperdir=$h/root-up,workdir=$h/root-wk" "rampart-$name" "$r"
  mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
  mount -t tmpfs -o mode=0755,nosuid,size=1m dev "$r/dev"
  mknod -m 0666 "$r/dev/null" c 1 3
  mknod -m 0666 "$r/dev/zero" c 1 5
  mknod -m 0666 "$r/dev/full" c 1 7
  mknod -m 0666 "$r/dev/random" c 1 8
  mknod -m 0666 "$r/dev/urandom" c 1 9
  mknod -m 0666 "$r/dev/tty" c 5 0
  ln -s /proc/self/fd "$r/dev/fd"
  ln -s /proc/self/fd/0 "$r/dev/stdin"
  ln -s /proc/self/fd/1 "$r/dev/stdout"
  ln -s /proc/self/fd/2 "$r/dev/stderr"
  mkdir -m 0755 "$r/dev/pts"
  mkdir -m 1777 "$r/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
  ln -s pts/ptmx "$r/dev/ptmx"
  mount -t tmpfs -o mode=0755,nosuid,nodev run "$r/run"
  mkdir -m 1777 "$r/run/lock"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$r/tmp"
  mount --bind "$h" "$r$h"
  [ -p "$h/keeper.fifo" ] || mkfifo -m 0600 "$h/keeper.fifo"
  cd "$r"
  pivot_root . .
  umount -l .
  cd /
fi
mkdir -p -m 0755 /run/sshd
echo "$name" > /proc/sys/kernel/hostname
: > "$h/booted"
if [ -z "$lower" ]; then
  exec -a "$keeper" sleep infinity
fi
exec -a "$keeper" bash -c 'read -r _ <> "$0"' "$h/keeper.fifo"
"#;

/// A userland's account files with the lab's users added, computed once
/// per lab (the machine's, and each distro's).
#[derive(Debug, Clone)]
pub struct Accounts {
    pub passwd: String,
    pub group: String,
    pub shadow: String,
    pub gshadow: String,
    /// Mode and group of /etc/shadow and /etc/gshadow there.
    pub shadow_mode: u32,
    pub shadow_gid: u32,
    /// uid = gid of deploy; nopw has uid + 1.
    pub uid: u32,
    /// Where the lab users' homes are (`/var/home` on personalities, whose
    /// /home is the machine's; `/home` on distro hosts).
    pub home: &'static str,
}

impl Accounts {
    /// Read the account files in `etc` and add the lab users to them; root
    /// gets `root_hash` as its password.
    pub fn read(etc: &Path, root_hash: &str, home: &'static str) -> Result<Accounts> {
        let read = |f: &str| {
            let p = etc.join(f);
            fs::read_to_string(&p).map_err(|e| Error::io(format!("cannot read {}", p.display()), e))
        };
        let (passwd, group) = (read("passwd")?, read("group")?);
        let (shadow, gshadow) = (read("shadow")?, read("gshadow").unwrap_or_default());
        let meta = fs::metadata(etc.join("shadow"))
            .map_err(|e| Error::io(format!("cannot stat {}/shadow", etc.display()), e))?;
        let ids = |text: &str| -> Vec<u32> {
            text.lines()
                .filter_map(|l| l.split(':').nth(2)?.parse().ok())
                .collect()
        };
        let used: Vec<u32> = ids(&passwd).into_iter().chain(ids(&group)).collect();
        let uid = (2000..60000)
            .find(|u| !used.contains(u) && !used.contains(&(u + 1)))
            .ok_or_else(|| Error::Lab("no free uid for the lab users".into()))?;
        let users = [SUDO_USER, NOPASSWD_DENIED_USER];
        let without = |text: &str| -> String {
            text.lines()
                .filter(|l| !users.iter().any(|u| l.split(':').next() == Some(u)))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let (mut passwd, mut group) = (without(&passwd), without(&group));
        // Root gets the lab's own random password (never the machine's hash):
        // a fresh VPS's root password, for password_env. It also unlocks the
        // account, which sshd without PAM requires even for key logins.
        let mut shadow: String = without(&shadow)
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(':').collect();
                if f.len() > 1 && f[0] == "root" {
                    f[1] = root_hash;
                }
                format!("{}\n", f.join(":"))
            })
            .collect();
        let mut gshadow = without(&gshadow);
        for (n, user) in users.iter().enumerate() {
            let id = uid + n as u32;
            passwd.push_str(&format!(
                "{user}:x:{id}:{id}:rampart lab:{home}/{user}:/bin/bash\n"
            ));
            group.push_str(&format!("{user}:x:{id}:\n"));
            // "*": no password matches, yet the account is not locked.
            shadow.push_str(&format!("{user}:*:20000:0:99999:7:::\n"));
            gshadow.push_str(&format!("{user}:!::\n"));
        }
        Ok(Accounts {
            passwd,
            group,
            shadow,
            gshadow,
            shadow_mode: meta.permissions().mode() & 0o7777,
            shadow_gid: meta.gid(),
            uid,
            home,
        })
    }
}

/// What is the same for every host of a lab, computed once.
#[derive(Debug, Clone)]
pub struct Common {
    /// The client public key line, authorized for every user.
    pub client_pub: String,
    /// Accounts of personality hosts (the machine's, plus the lab users).
    pub machine: Accounts,
    /// The machine's /etc/hosts, to which each personality host adds its name.
    pub hosts: String,
    /// Accounts of each distro's hosts (its own, plus the lab users).
    pub distros: HashMap<Distro, Accounts>,
}

impl Common {
    /// Read the machine's account files, and those of each root filesystem
    /// (distro, its root), and add the lab users to them.
    pub fn new(
        client_pub: String,
        root_hash: &str,
        rootfs: &[(Distro, PathBuf)],
    ) -> Result<Common> {
        let mut distros = HashMap::new();
        for (d, root) in rootfs {
            distros.insert(*d, Accounts::read(&root.join("etc"), root_hash, "/home")?);
        }
        Ok(Common {
            client_pub,
            machine: Accounts::read(Path::new("/etc"), root_hash, "/var/home")?,
            hosts: fs::read_to_string("/etc/hosts").unwrap_or_default(),
            distros,
        })
    }
}

/// One overlay layer being prepared: files go into `upper`; a directory
/// created on the way gets the mode and owner of the same directory in
/// `lower`, so the host sees what the distribution ships (sudo insists on
/// its sudoers.d being root's and not writable by others).
struct Layer<'a> {
    upper: &'a Path,
    lower: &'a Path,
}

impl Layer<'_> {
    /// Make `rel` (a dir path relative to the layer's root) exist in upper.
    fn dir(&self, rel: &str) -> Result<PathBuf> {
        let mut up = self.upper.to_path_buf();
        let mut low = self.lower.to_path_buf();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            up.push(c);
            low.push(c);
            if fs::symlink_metadata(&up).is_ok() {
                continue;
            }
            let (mode, uid, gid) = match fs::symlink_metadata(&low) {
                Ok(m) if m.is_dir() => (m.permissions().mode() & 0o7777, m.uid(), m.gid()),
                _ => (0o755, 0, 0),
            };
            fs::create_dir(&up)
                .and_then(|()| fs::set_permissions(&up, fs::Permissions::from_mode(mode)))
                .and_then(|()| chown(&up, Some(uid), Some(gid)))
                .map_err(|e| Error::io(format!("cannot create {}", up.display()), e))?;
        }
        Ok(up)
    }

    fn parent_of(&self, rel: &str) -> Result<PathBuf> {
        let (dir, _) = rel.rsplit_once('/').unwrap_or(("", rel));
        self.dir(dir)
    }

    fn write(&self, rel: &str, text: &str, mode: u32) -> Result<PathBuf> {
        self.parent_of(rel)?;
        let path = self.upper.join(rel);
        fs::write(&path, text)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(mode)))
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        Ok(path)
    }

    fn link(&self, target: &str, rel: &str) -> Result<()> {
        self.parent_of(rel)?;
        let path = self.upper.join(rel);
        match symlink(target, &path) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                Err(Error::io(format!("cannot create {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }

    /// The account files and sudoers rules of the lab users, in the /etc
    /// at `etc` (a path in this layer: "" when the layer is /etc itself).
    fn accounts(&self, etc: &str, acc: &Accounts) -> Result<()> {
        self.write(&format!("{etc}passwd"), &acc.passwd, 0o644)?;
        self.write(&format!("{etc}group"), &acc.group, 0o644)?;
        for (file, text) in [("shadow", &acc.shadow), ("gshadow", &acc.gshadow)] {
            let p = self.write(&format!("{etc}{file}"), text, acc.shadow_mode)?;
            chown(&p, Some(0), Some(acc.shadow_gid))
                .map_err(|e| Error::io(format!("cannot chown {}", p.display()), e))?;
        }
        self.write(
            &format!("{etc}sudoers.d/{SUDO_USER}"),
            &format!("{SUDO_USER} ALL=(ALL) NOPASSWD:ALL\n"),
            0o440,
        )?;
        self.write(
            &format!("{etc}sudoers.d/{NOPASSWD_DENIED_USER}"),
            &format!("{NOPASSWD_DENIED_USER} ALL=(ALL) ALL\n"),
            0o440,
        )?;
        Ok(())
    }

    /// The lab users' homes (owned by them) at `base` in this layer.
    fn homes(&self, base: &str, acc: &Accounts) -> Result<()> {
        for (n, user) in [SUDO_USER, NOPASSWD_DENIED_USER].iter().enumerate() {
            let dir = self.dir(&format!("{base}/{user}"))?;
            let id = acc.uid + n as u32;
            chown(&dir, Some(id), Some(id))
                .map_err(|e| Error::io(format!("cannot chown {}", dir.display()), e))?;
        }
        Ok(())
    }
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// The /etc files of a personality: (path under /etc, contents). A path
/// listed by [`whiteouts`] is hidden instead.
fn personality_files(p: Personality) -> Vec<(&'static str, &'static str)> {
    match p {
        Personality::Centos6 => vec![("redhat-release", "CentOS release 6.10 (Final)\n")],
        Personality::Rocky9 => vec![
            (
                "os-release",
                "NAME=\"Rocky Linux\"\nVERSION=\"9.4 (Blue Onyx)\"\nID=\"rocky\"\n\
                 ID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\n\
                 PRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\nANSI_COLOR=\"0;32\"\n\
                 HOME_URL=\"https://rockylinux.org/\"\n",
            ),
            ("redhat-release", "Rocky Linux release 9.4 (Blue Onyx)\n"),
            ("rocky-release", "Rocky Linux release 9.4 (Blue Onyx)\n"),
        ],
        Personality::Debian12 => vec![
            (
                "os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                 VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\n\
                 ID=debian\nHOME_URL=\"https://www.debian.org/\"\n",
            ),
            ("debian_version", "12.5\n"),
        ],
        Personality::Ubuntu22 => vec![
            (
                "os-release",
                "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\n\
                 VERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nVERSION_CODENAME=jammy\nID=ubuntu\n\
                 ID_LIKE=debian\nHOME_URL=\"https://www.ubuntu.com/\"\nUBUNTU_CODENAME=jammy\n",
            ),
            ("debian_version", "bookworm/sid\n"),
        ],
    }
}

/// Files of the machine's /etc that the personality must not have: an
/// overlay whiteout (a 0/0 character device in the upper dir) hides them.
/// /etc/os-release on Debian is a symlink: the whiteout hides the link
/// itself. CentOS 6 has no /etc/systemd: without it, the machine's
/// `/sbin/init -> systemd` no longer makes it a systemd host (see
/// [`loaders`]), and its rc links are what boots it.
fn whiteouts(p: Personality) -> Vec<&'static str> {
    match p {
        Personality::Centos6 => vec!["os-release", "debian_version", "systemd"],
        Personality::Rocky9 => vec!["debian_version"],
        Personality::Debian12 | Personality::Ubuntu22 => vec![],
    }
}

/// What CentOS 6's /etc/init.d/iptables (and ip6tables) does on `start`:
/// restore the saved rules if there are any, else say so and exit 6.
fn centos6_init_script(cmd: &str) -> String {
    format!(
        "#!/bin/sh
         # {cmd}	Load the firewall saved in /etc/sysconfig/{cmd} at boot.
         # chkconfig: 2345 08 92
         # rampart lab: what CentOS 6's init script does on `start`, on this
         # machine's {cmd}-restore.
         IPTABLES={cmd}
         IPTABLES_DATA=/etc/sysconfig/$IPTABLES
         case \"$1\" in
         start)
             if [ ! -f \"$IPTABLES_DATA\" ]; then
                 echo \"$IPTABLES: No config file.\"
                 exit 6
             fi
             echo \"$IPTABLES: Applying firewall rules from $IPTABLES_DATA\"
             $IPTABLES-restore \"$IPTABLES_DATA\" || exit 1
             ;;
         *)
             echo \"Usage: $0 start\"
             exit 2
             ;;
         esac
"
    )
}

/// Rocky 9's iptables.service / ip6tables.service (iptables-services), with
/// the restore its iptables.init does on `start` as the ExecStart. Under
/// /etc/systemd/system: /usr is the machine's.
fn rocky9_unit(cmd: &str) -> String {
    let v = if cmd == "iptables" { "IPv4" } else { "IPv6" };
    format!(
        "[Unit]
         Description={v} firewall with {cmd}
         AssertPathExists=/etc/sysconfig/{cmd}
         Before=network-pre.target
         Wants=network-pre.target
         
         [Service]
         Type=oneshot
         RemainAfterExit=yes
         # rampart lab: what /usr/libexec/iptables/{cmd}.init start does.
         ExecStart=/usr/sbin/{cmd}-restore /etc/sysconfig/{cmd}
         Environment=BOOTUP=serial
         Environment=CONSOLETYPE=serial
         
         [Install]
         WantedBy=multi-user.target
"
    )
}

/// Debian 12's netfilter-persistent.service, whose ExecStart does what
/// `netfilter-persistent start` does with its two plugins (this machine has
/// no netfilter-persistent): restore rules.v4 and rules.v6 if present.
const DEBIAN12_UNIT: &str = "[Unit]
Description=netfilter persistent configuration
DefaultDependencies=no
Wants=network-pre.target systemd-modules-load.service local-fs.target
Before=network-pre.target shutdown.target
After=systemd-modules-load.service local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
# rampart lab: netfilter-persistent's plugins 15-ip4tables and 25-ip6tables.
ExecStart=/bin/sh -c 'if [ -f /etc/iptables/rules.v4 ]; then iptables-restore < /etc/iptables/rules.v4; fi'
ExecStart=/bin/sh -c 'if [ -f /etc/iptables/rules.v6 ]; then ip6tables-restore < /etc/iptables/rules.v6; fi'

[Install]
WantedBy=multi-user.target
";

/// The personality's boot-time loader of persisted rules, real enough to
/// run at boot (`lab reboot`): CentOS 6's init scripts with their rc3.d
/// links, Rocky 9's units and Debian 12's netfilter-persistent unit, enabled;
/// Ubuntu 22 deliberately has none (the host without a loader).
fn personality_loaders(p: Personality, etc: &Layer) -> Result<()> {
    match p {
        Personality::Centos6 => {
            // CentOS 6 ships (and enables) ip6tables' init script as well.
            for cmd in ["iptables", "ip6tables"] {
                etc.write(&format!("init.d/{cmd}"), &centos6_init_script(cmd), 0o755)?;
                etc.link(&format!("../init.d/{cmd}"), &format!("rc3.d/S08{cmd}"))?;
            }
        }
        Personality::Rocky9 => {
            for cmd in ["iptables", "ip6tables"] {
                let unit = format!("{cmd}.service");
                etc.write(&format!("systemd/system/{unit}"), &rocky9_unit(cmd), 0o644)?;
                etc.link(
                    &format!("/etc/systemd/system/{unit}"),
                    &format!("systemd/system/multi-user.target.wants/{unit}"),
                )?;
            }
        }
        Personality::Debian12 => {
            let unit = "netfilter-persistent.service";
            etc.write(&format!("systemd/system/{unit}"), DEBIAN12_UNIT, 0o644)?;
            etc.link(
                &format!("/etc/systemd/system/{unit}"),
                &format!("systemd/system/multi-user.target.wants/{unit}"),
            )?;
            etc.dir("iptables")?;
        }
        Personality::Ubuntu22 => {}
    }
    if matches!(p, Personality::Centos6 | Personality::Rocky9) {
        etc.dir("sysconfig")?;
    }
    Ok(())
}

/// Root's ~/.bashrc as Debian ships it, in substance.
const STOCK_BASHRC: &str = "# ~/.bashrc: executed by bash(1) for non-login shells.\n\
[ -z \"$PS1\" ] && return\n\
PS1='${debian_chroot:+($debian_chroot)}\\h:\\w\\$ '\n\
umask 022\n";

/// Root's ~/.profile as Debian ships it, in substance.
const STOCK_PROFILE: &str = "# ~/.profile: executed by Bourne-compatible login shells.\n\
if [ \"$BASH\" ] && [ -f ~/.bashrc ]; then . ~/.bashrc; fi\n\
mesg n 2> /dev/null || true\n";

/// /etc/hosts of a distro host, as Debian's installer writes it.
const DEBIAN_HOSTS: &str = "127.0.0.1\tlocalhost\n\
::1\t\tlocalhost ip6-localhost ip6-loopback\n\
ff02::1\t\tip6-allnodes\n\
ff02::2\t\tip6-allrouters\n";

/// Write everything a host needs before it boots: overlay dirs, its /etc
/// (personality or hostname, users, sudoers), sshd config, network config.
pub fn prepare(paths: &HostPaths, host: &HostState, common: &Common, k: u32) -> Result<()> {
    mkdir(&paths.dir, 0o755)?;
    match host.kind {
        Kind::Personality(p) => prepare_personality(paths, host, common, p)?,
        Kind::Distro(d) => prepare_distro(paths, host, common, d)?,
    }
    // Read by sshd as the logging-in user (it drops privileges to read
    // authorized keys), hence world-readable and outside every overlay.
    write(&paths.authorized_keys(), &common.client_pub, 0o644)?;
    write(
        &paths.sshd_config(),
        &sshd_config(paths, host.address),
        0o644,
    )?;
    write(
        &paths.net_batch(),
        &format!(
            "addr add {}/{} dev eth0\nlink set eth0 up\nlink set lo up\n\
             neigh replace {} lladdr {} dev eth0 nud permanent\n",
            host.address,
            net::PREFIX,
            net::gateway(k),
            net::bridge_mac(k),
        ),
        0o644,
    )?;
    Ok(())
}

fn prepare_personality(
    paths: &HostPaths,
    host: &HostState,
    common: &Common,
    p: Personality,
) -> Result<()> {
    for which in ["etc", "var", "root"] {
        mkdir(&paths.upper(which), 0o755)?;
        mkdir(&paths.work(which), 0o755)?;
    }
    // A freshly rented VPS has a stock root shell profile, not this
    // machine's (which may run slow tool initialisers such as `pyenv init`
    // on every SSH session and would distort every timing taken on the lab).
    let root = paths.upper("root");
    write(&root.join(".bashrc"), STOCK_BASHRC, 0o644)?;
    write(&root.join(".profile"), STOCK_PROFILE, 0o644)?;
    let (etc_up, var_up) = (paths.upper("etc"), paths.upper("var"));
    let etc = Layer {
        upper: &etc_up,
        lower: Path::new("/etc"),
    };
    etc.write("hostname", &format!("{}\n", host.name), 0o644)?;
    etc.write(
        "hosts",
        &format!("{}127.0.1.1\t{}\n", common.hosts, host.name),
        0o644,
    )?;
    for (file, text) in personality_files(p) {
        etc.write(file, text, 0o644)?;
    }
    personality_loaders(p, &etc)?;
    etc.accounts("", &common.machine)?;
    let var = Layer {
        upper: &var_up,
        lower: Path::new("/var"),
    };
    var.homes("home", &common.machine)?;
    write(&paths.fstab(), &fstab(paths), 0o644)
}

fn prepare_distro(paths: &HostPaths, host: &HostState, common: &Common, d: Distro) -> Result<()> {
    let lower = host.rootfs.as_deref().ok_or_else(|| {
        Error::Lab(format!(
            "{}: a {d} host without a root filesystem",
            host.name
        ))
    })?;
    let acc = common
        .distros
        .get(&d)
        .ok_or_else(|| Error::Lab(format!("{}: no accounts read for {d}", host.name)))?;
    let up = paths.upper("root");
    mkdir(&up, 0o755)?;
    mkdir(&paths.work("root"), 0o755)?;
    mkdir(&paths.root_mount(), 0o755)?;
    let root = Layer { upper: &up, lower };
    root.write("etc/hostname", &format!("{}\n", host.name), 0o644)?;
    root.write(
        "etc/hosts",
        &format!("{DEBIAN_HOSTS}127.0.1.1\t{}\n", host.name),
        0o644,
    )?;
    root.accounts("etc/", acc)?;
    root.homes(acc.home.trim_start_matches('/'), acc)?;
    // Where the host dir is bound at boot: the same path as on the machine,
    // so sshd's config (host key, authorized keys, logs) reads the same.
    root.dir(&paths.dir.to_string_lossy())?;
    Ok(())
}

/// The config of a lab host's sshd. `LogLevel VERBOSE` logs every session
/// ("Starting session: ...") beside every connection: `bench/fleet.sh`
/// counts both per host from the logs.
fn sshd_config(paths: &HostPaths, address: Ipv4Addr) -> String {
    format!(
        "# sshd of one rampart lab host. Everything it reads lives in the host dir,\n\
         # outside the overlaid /etc and the host's private /run and /tmp.\n\
         ListenAddress {address}\n\
         Port 22\n\
         HostKey {key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {auth}\n\
         PermitRootLogin yes\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication yes\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         UseDNS no\n\
         LogLevel VERBOSE\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         X11Forwarding no\n\
         MaxStartups 100:30:200\n\
         AcceptEnv LANG LC_*\n\
         Subsystem sftp internal-sftp\n",
        key = paths.host_key().display(),
        pid = paths.sshd_pid().display(),
        auth = paths.authorized_keys().display(),
    )
}

/// The mounts of a personality host.
fn fstab(paths: &HostPaths) -> String {
    let mut s = String::new();
    for which in ["etc", "var", "root"] {
        s.push_str(&format!(
            "overlay /{which} overlay lowerdir=/{which},upperdir={},workdir={} 0 0\n",
            paths.upper(which).display(),
            paths.work(which).display()
        ));
    }
    // Shows the host's own network devices under /sys/class/net.
    s.push_str("sysfs /sys sysfs ro,nosuid,nodev,noexec 0 0\n");
    s.push_str("tmpfs /run tmpfs mode=0755,nosuid,nodev 0 0\n");
    s.push_str("tmpfs /tmp tmpfs mode=1777,nosuid,nodev 0 0\n");
    s
}

/// Generate an ed25519 key pair at `path` (and `path.pub`), replacing any.
pub fn keygen(tools: &sys::Tools, path: &Path, comment: &str) -> Result<()> {
    for p in [path.to_path_buf(), path.with_extension("pub")] {
        match fs::remove_file(&p) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(Error::io(format!("cannot remove {}", p.display()), e))
            }
            _ => {}
        }
    }
    sys::run_ok(
        Command::new(&tools.ssh_keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        None,
        Duration::from_secs(30),
    )?;
    Ok(())
}

/// What a host's boot did.
#[derive(Debug, Clone)]
pub struct BootReport {
    pub init: InitSystem,
    /// The firewall loaders its init started, in order, with their outcome.
    pub loaders: Vec<LoaderRun>,
}

/// Boot the host: start its keeper (which outlives `rampart`), run the
/// firewall loaders its init would run, start its sshd, and return once
/// sshd answers (or `deadline` passes).
pub fn boot(
    tools: &sys::Tools,
    paths: &HostPaths,
    host: &HostState,
    deadline: Instant,
) -> Result<BootReport> {
    for p in [paths.booted(), paths.sshd_pid(), paths.keeper_pid()] {
        match fs::remove_file(&p) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(Error::io(format!("cannot remove {}", p.display()), e))
            }
            _ => {}
        }
    }
    spawn_keeper(tools, paths, host)?;
    let keeper = wait_booted(paths, host, deadline)?;
    let report = start_services(tools, paths, host, keeper)?;
    wait_ready(paths, host, deadline)?;
    Ok(report)
}

/// Start the boot script, which becomes the keeper. Not waited for.
fn spawn_keeper(tools: &sys::Tools, paths: &HostPaths, host: &HostState) -> Result<()> {
    let log = fs::File::create(paths.boot_log())
        .map_err(|e| Error::io(format!("cannot create {}", paths.boot_log().display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("cannot duplicate a file handle", e))?;
    let (lower, whiteouts) = match host.kind {
        Kind::Personality(p) => (PathBuf::new(), whiteouts(p)),
        Kind::Distro(_) => (host.rootfs.clone().unwrap_or_default(), Vec::new()),
    };
    if matches!(host.kind, Kind::Distro(_)) && !lower.join("usr/sbin/sshd").is_file() {
        return Err(Error::Lab(format!(
            "{}: its root filesystem {} is gone or incomplete: `rampart lab up` again",
            host.name,
            lower.display()
        )));
    }
    // nsenter rather than `ip netns exec`: that one also makes a mount
    // namespace and remounts /sys, which costs the kernel's global mount
    // lock twice more per host; the boot mounts the host's own /sys.
    let mut cmd = Command::new(&tools.nsenter);
    cmd.arg(format!("--net=/run/netns/{}", host.netns))
        .arg("--")
        .arg(&tools.unshare)
        .args(["-m", "-u", "--propagation", "private"])
        .arg(&tools.bash)
        .args(["-c", BOOT, "rampart-lab-boot"])
        .arg(&paths.dir)
        .arg(&host.name)
        .arg(KEEPER_NAME)
        .arg(super::HOSTS_TMPFS)
        .arg(&lower)
        .args(whiteouts)
        .env_clear()
        .env("PATH", sys::PATH)
        .current_dir("/")
        // Never our stdout: whoever reads rampart's output would wait for
        // the keeper, which never exits. Its own process group: a Ctrl-C
        // meant for rampart does not take the hosts down with it.
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
        .map_err(|e| Error::io(format!("cannot boot {}", host.name), e))?;
    Ok(())
}

/// Wait until the boot script has set the host up and is about to become
/// the keeper; returns the keeper's pid.
fn wait_booted(paths: &HostPaths, host: &HostState, deadline: Instant) -> Result<u32> {
    loop {
        let keeper = read_pid(&paths.keeper_pid());
        if paths.booted().exists() {
            if let Some(pid) = keeper.filter(|p| sys::alive(*p)) {
                return Ok(pid);
            }
        }
        let keeper_dead = keeper.is_some_and(|p| !sys::alive(p));
        if keeper_dead || Instant::now() >= deadline {
            let why = if keeper_dead {
                "its boot failed"
            } else {
                "its boot did not finish in time"
            };
            return Err(Error::Lab(format!(
                "host {} ({}): {why}\n{}",
                host.name,
                host.address,
                logs(paths)
            )));
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Inside the booted host: the firewall loaders its init would start, in
/// order, then sshd (it daemonizes). One `nsenter`, one `sh` (the host's
/// own), their output in `loaders.log`.
fn start_services(
    tools: &sys::Tools,
    paths: &HostPaths,
    host: &HostState,
    keeper: u32,
) -> Result<BootReport> {
    let root = PathBuf::from(format!("/proc/{keeper}/root"));
    let (init, found) = loaders::discover(&root);
    let sshd = [
        tools.sshd.to_string_lossy().into_owned(),
        "-f".into(),
        paths.sshd_config().to_string_lossy().into_owned(),
        "-E".into(),
        paths.sshd_log().to_string_lossy().into_owned(),
    ];
    let script = loaders::script(&found, &sshd);
    let log = fs::File::create(paths.loaders_log()).map_err(|e| {
        Error::io(
            format!("cannot create {}", paths.loaders_log().display()),
            e,
        )
    })?;
    let status = sys::run_to_file(
        Command::new(&tools.nsenter)
            .args(["-t", &keeper.to_string(), "-m", "-u", "-n", "--"])
            .args(["/bin/sh", "-c", &script]),
        log,
        SERVICES_TIMEOUT,
    )?;
    let output = fs::read_to_string(paths.loaders_log()).unwrap_or_default();
    let (runs, sshd_rc) = loaders::results(&found, &output);
    if sshd_rc != Some(0) {
        return Err(Error::Lab(format!(
            "host {} ({}): its sshd did not start ({}; loaders and sshd: {status})\n{}\n  loaders log {}:\n    {}",
            host.name,
            host.address,
            sshd_rc.map_or("no status".to_string(), |rc| format!("exit {rc}")),
            logs(paths),
            paths.loaders_log().display(),
            output.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n    ")
        )));
    }
    Ok(BootReport {
        init,
        loaders: runs,
    })
}

/// Power-cycle a host: every process of it dies (its keeper too, like
/// every mount of its namespace: /run and /tmp go), it gets a new network
/// namespace and veth (same names, address and MAC: every netfilter table of
/// both backends is the kernel's default again), and boots as at `lab up`,
/// with its disk (the overlay upper dirs) as it was.
pub fn reboot(tools: &sys::Tools, state: &LabState, host: &HostState) -> Result<BootReport> {
    let paths = state.paths().host(&host.name);
    let k = state
        .index
        .ok_or_else(|| Error::Lab("the lab has no index: rebuild it with `lab up`".into()))?;
    net::kill_all_in(std::slice::from_ref(&host.netns), Duration::from_secs(10))?;
    net::replug(tools, k, host)?;
    boot(tools, &paths, host, Instant::now() + BOOT_TIMEOUT)
}

/// How long one host may take from boot to a listening sshd.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether something accepts TCP on `address:22` within `timeout`.
pub fn answers(address: Ipv4Addr, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((address, 22)), timeout).is_ok()
}

/// Poll until the host's sshd accepts TCP, or the keeper died, or `deadline`.
pub fn wait_ready(paths: &HostPaths, host: &HostState, deadline: Instant) -> Result<()> {
    loop {
        // sshd writes its pid file once it listens: no knocking before.
        if paths.sshd_pid().exists() && answers(host.address, Duration::from_millis(200)) {
            return Ok(());
        }
        let keeper_dead = read_pid(&paths.keeper_pid()).is_some_and(|p| !sys::alive(p));
        if keeper_dead || Instant::now() >= deadline {
            let why = if keeper_dead {
                "its boot failed"
            } else {
                "its sshd did not answer in time"
            };
            return Err(Error::Lab(format!(
                "host {} ({}): {why}\n{}",
                host.name,
                host.address,
                logs(paths)
            )));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The tails of a host's boot and sshd logs, for error messages.
pub fn logs(paths: &HostPaths) -> String {
    let tail = |p: &Path| {
        let text = fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n    ")
    };
    format!(
        "  boot log {}:\n    {}\n  sshd log {}:\n    {}",
        paths.boot_log().display(),
        tail(&paths.boot_log()),
        paths.sshd_log().display(),
        tail(&paths.sshd_log())
    )
}

/// A pid from a pid file, if there is a sensible one.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
}

fn host_paths<'a>(state: &'a LabState, name: &str) -> Result<(HostPaths, &'a HostState)> {
    let host = state.host(name).ok_or_else(|| {
        Error::Lab(format!(
            "no host {name} in the lab at {}",
            state.dir.display()
        ))
    })?;
    Ok((state.paths().host(name), host))
}

/// The keeper of a host: the process whose namespaces are the host's.
pub fn keeper(state: &LabState, name: &str) -> Result<u32> {
    let (paths, host) = host_paths(state, name)?;
    read_pid(&paths.keeper_pid())
        .filter(|p| sys::alive(*p) && net::netns_pids(&host.netns).contains(p))
        .ok_or_else(|| Error::Lab(format!("host {name} is not running (no keeper)")))
}

/// The host's sshd listener, if it runs.
pub fn sshd_pid(state: &LabState, name: &str) -> Result<Option<u32>> {
    let (paths, host) = host_paths(state, name)?;
    Ok(read_pid(&paths.sshd_pid())
        .filter(|p| sys::alive(*p) && net::netns_pids(&host.netns).contains(p)))
}

/// Stop the host's sshd listener (sessions already open live on, as with
/// `systemctl stop ssh`); returns once new connections are refused.
pub fn stop_sshd(state: &LabState, name: &str) -> Result<()> {
    let (paths, host) = host_paths(state, name)?;
    if let Some(pid) = sshd_pid(state, name)? {
        sys::signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while sys::alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if sys::alive(pid) {
            sys::signal(pid, libc::SIGKILL);
        }
    }
    let _ = fs::remove_file(paths.sshd_pid());
    let deadline = Instant::now() + Duration::from_secs(5);
    while answers(host.address, Duration::from_millis(200)) {
        if Instant::now() >= deadline {
            return Err(Error::Lab(format!(
                "{name}: port 22 still answers after stopping sshd"
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Start the host's sshd again, inside the host (keeper's namespaces), and
/// wait until it answers.
pub fn start_sshd(state: &LabState, name: &str) -> Result<()> {
    let tools = sys::preflight(false)?;
    let (paths, host) = host_paths(state, name)?;
    let keeper = keeper(state, name)?;
    sys::run_ok(
        Command::new(&tools.nsenter)
            .args(["-t", &keeper.to_string(), "-m", "-u", "-n", "--"])
            .arg(&tools.sshd)
            .arg("-f")
            .arg(paths.sshd_config())
            .arg("-E")
            .arg(paths.sshd_log()),
        None,
        Duration::from_secs(10),
    )?;
    wait_ready(&paths, host, Instant::now() + Duration::from_secs(10))
}

/// Give the host a new host key and restart its sshd; known_hosts is left
/// as it was, so clients now see a changed key.
pub fn change_host_key(state: &LabState, name: &str) -> Result<()> {
    let tools = sys::preflight(false)?;
    let (paths, _) = host_paths(state, name)?;
    stop_sshd(state, name)?;
    keygen(&tools, &paths.host_key(), &format!("root@{name}"))?;
    start_sshd(state, name)
}

/// Cut the host off the network (`up == false`) or reconnect it: its
/// bridge port goes down. Packets vanish silently, as when a network fails,
/// so connects and open sessions time out rather than fail fast: the
/// machine's neighbour entry and the bridge's forwarding entry for the host
/// are static, so nothing answers "No route to host".
pub fn set_link(state: &LabState, name: &str, up: bool) -> Result<()> {
    let tools = sys::preflight(true)?;
    let (_, host) = host_paths(state, name)?;
    sys::run_ok(
        Command::new(&tools.ip).args(["link", "set", &host.veth, if up { "up" } else { "down" }]),
        None,
        Duration::from_secs(10),
    )?;
    Ok(())
}

/// Every process in the host (pid, command line), the keeper excepted: it
/// is the lab's plumbing, standing in for the init a real host has.
pub fn processes(state: &LabState, name: &str) -> Result<Vec<(u32, String)>> {
    let (paths, host) = host_paths(state, name)?;
    let keeper = read_pid(&paths.keeper_pid());
    Ok(net::netns_pids(&host.netns)
        .into_iter()
        .filter(|p| Some(*p) != keeper)
        .map(|p| (p, sys::cmdline(p)))
        .filter(|(_, cmd)| !cmd.is_empty())
        .collect())
}
