//! One lab host: its files, its boot, its sshd.
//!
//! A host is a network namespace plus a mount and UTS namespace held open by
//! a *keeper* process (`rampart-lab-init`, a renamed `sleep infinity`). The
//! keeper, not sshd, holds the namespaces so that a test can stop sshd and
//! start it again in the very same host (same /etc, same /tmp, same running
//! dead-man switch), or restart it with a new host key.
//!
//! The boot script runs inside `nsenter --net=/run/netns/NS unshare -m -u
//! --propagation private` and:
//! 1. creates the overlay whiteouts the personality needs (`mknod c 0 0`),
//! 2. configures eth0 and lo,
//! 3. detaches its copies of /run/netns and of other labs' `D/hosts`
//!    tmpfs. Without this, the host's mount namespace would hold a
//!    reference to every netns and lab that existed when it booted: a netns
//!    still referenced keeps its veth alive after the other lab's `lab
//!    down`, and a tmpfs its memory,
//! 4. mounts overlays on /etc, /var, /root (upper dirs prepared here, in
//!    `D/hosts`), its own /sys, and tmpfs on /run, /tmp (`mount -a -T
//!    fstab`: one exec for all),
//! 5. sets the hostname, starts sshd (it daemonizes), and becomes the keeper.
//!
//! The whole /etc upper dir is written from Rust before boot: it is faster
//! than running `useradd` and friends in hundreds of namespaces, and it
//! leaves the machine's own /etc untouched by construction.

use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::net;
use super::state::{HostPaths, HostState, LabState, Personality};
use super::sys;
use crate::error::{Error, Result};

/// Name the keeper shows in `ps`, so nobody mistakes it for a stray process.
pub const KEEPER_NAME: &str = "rampart-lab-init";

/// The users every host has besides root: `deploy` may `sudo` without a
/// password, `nopw` needs one (which nobody knows), for `become` tests.
pub const SUDO_USER: &str = "deploy";
pub const NOPASSWD_DENIED_USER: &str = "nopw";

/// Runs as `bash -c BOOT rampart-lab-boot HOSTDIR NAME SSHD KEEPER_NAME
/// TMPFS_NAME [WHITEOUT...]`. Values come in as arguments, never pasted
/// into the script text. mountinfo is read with `mapfile`: `while read`
/// reads it a byte at a time, and the kernel regenerates it for each read;
/// with hundreds of netns mounts that alone took most of a second per host.
const BOOT: &str = r#"set -eu
h=$1 name=$2 sshd=$3 keeper=$4 tmpfs=$5
shift 5
echo $$ > "$h/keeper.pid"
for w in "$@"; do [ -e "$h/etc-up/$w" ] || mknod "$h/etc-up/$w" c 0 0; done
ip -batch "$h/net.batch"
detach=(/run/netns)
mapfile -t mounts < /proc/self/mountinfo
for m in "${mounts[@]}"; do
  case "$m" in *" - tmpfs $tmpfs "*)
    f=($m); [ "${f[4]}" = "${h%/*}" ] || detach+=("${f[4]}");;
  esac
done
umount -l "${detach[@]}" 2>/dev/null || true
mount -a -T "$h/fstab"
mkdir -p -m 0755 /run/sshd
echo "$name" > /proc/sys/kernel/hostname
"$sshd" -f "$h/sshd_config" -E "$h/sshd.log"
exec -a "$keeper" sleep infinity
"#;

/// What is the same for every host of a lab, computed once.
#[derive(Debug, Clone)]
pub struct Common {
    /// The client public key line, authorized for every user.
    pub client_pub: String,
    pub passwd: String,
    pub group: String,
    pub shadow: String,
    pub gshadow: String,
    /// The machine's /etc/hosts, to which each host adds its own name.
    pub hosts: String,
    /// Mode and group of the machine's /etc/shadow and /etc/gshadow.
    pub shadow_mode: u32,
    pub shadow_gid: u32,
    /// uid = gid of deploy; nopw has uid + 1.
    pub uid: u32,
}

impl Common {
    /// Read the machine's account files and add the lab users to them.
    pub fn new(client_pub: String, root_hash: &str) -> Result<Common> {
        let read =
            |p: &str| fs::read_to_string(p).map_err(|e| Error::io(format!("cannot read {p}"), e));
        let (passwd, group) = (read("/etc/passwd")?, read("/etc/group")?);
        let (shadow, gshadow) = (
            read("/etc/shadow")?,
            read("/etc/gshadow").unwrap_or_default(),
        );
        let meta =
            fs::metadata("/etc/shadow").map_err(|e| Error::io("cannot stat /etc/shadow", e))?;
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
                "{user}:x:{id}:{id}:rampart lab:/var/home/{user}:/bin/bash\n"
            ));
            group.push_str(&format!("{user}:x:{id}:\n"));
            // "*": no password matches, yet the account is not locked.
            shadow.push_str(&format!("{user}:*:20000:0:99999:7:::\n"));
            gshadow.push_str(&format!("{user}:!::\n"));
        }
        Ok(Common {
            client_pub,
            passwd,
            group,
            shadow,
            gshadow,
            hosts: read("/etc/hosts").unwrap_or_default(),
            shadow_mode: meta.permissions().mode() & 0o7777,
            shadow_gid: std::os::unix::fs::MetadataExt::gid(&meta),
            uid,
        })
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    }
    fs::write(path, text)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))
}

fn link(target: &str, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdir(parent, 0o755)?;
    }
    match symlink(target, path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            Err(Error::io(format!("cannot create {}", path.display()), e))
        }
        _ => Ok(()),
    }
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
/// /etc/os-release on Debian is a symlink: the whiteout hides the link itself.
fn whiteouts(p: Personality) -> Vec<&'static str> {
    match p {
        Personality::Centos6 => vec!["os-release", "debian_version"],
        Personality::Rocky9 => vec!["debian_version"],
        Personality::Debian12 | Personality::Ubuntu22 => vec![],
    }
}

/// The personality's boot-time loader of persisted rules, so rampart's
/// "does anything load this file at boot?" check meets each case;
/// ubuntu22 deliberately has none (the warning case).
fn boot_loaders(p: Personality, etc: &Path) -> Result<()> {
    const INIT_SCRIPT: &str =
        "#!/bin/sh\n# iptables: stand-in for CentOS 6's init script (rampart lab)\nexit 0\n";
    match p {
        Personality::Centos6 => {
            write(&etc.join("init.d/iptables"), INIT_SCRIPT, 0o755)?;
            write(&etc.join("rc3.d/S08iptables"), INIT_SCRIPT, 0o755)?;
            // CentOS 6 ships (and enables) ip6tables' init script as well.
            write(&etc.join("init.d/ip6tables"), INIT_SCRIPT, 0o755)?;
            write(&etc.join("rc3.d/S08ip6tables"), INIT_SCRIPT, 0o755)?;
        }
        Personality::Rocky9 => {
            let wants = etc.join("systemd/system/multi-user.target.wants");
            for unit in ["iptables.service", "ip6tables.service"] {
                link(
                    &format!("/usr/lib/systemd/system/{unit}"),
                    &wants.join(unit),
                )?;
            }
        }
        Personality::Debian12 => {
            let wants = etc.join("systemd/system/multi-user.target.wants");
            link(
                "/lib/systemd/system/netfilter-persistent.service",
                &wants.join("netfilter-persistent.service"),
            )?;
            mkdir(&etc.join("iptables"), 0o755)?;
        }
        Personality::Ubuntu22 => {}
    }
    if matches!(p, Personality::Centos6 | Personality::Rocky9) {
        mkdir(&etc.join("sysconfig"), 0o755)?;
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

/// Write everything a host needs before it boots: overlay dirs, its /etc
/// upper (personality, users, sudoers, hostname), sshd config, fstab.
pub fn prepare(paths: &HostPaths, host: &HostState, common: &Common, k: u32) -> Result<()> {
    mkdir(&paths.dir, 0o755)?;
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
    let etc = paths.upper("etc");
    write(&etc.join("hostname"), &format!("{}\n", host.name), 0o644)?;
    write(
        &etc.join("hosts"),
        &format!("{}127.0.1.1\t{}\n", common.hosts, host.name),
        0o644,
    )?;
    for (file, text) in personality_files(host.personality) {
        write(&etc.join(file), text, 0o644)?;
    }
    boot_loaders(host.personality, &etc)?;

    write(&etc.join("passwd"), &common.passwd, 0o644)?;
    write(&etc.join("group"), &common.group, 0o644)?;
    for (file, text) in [("shadow", &common.shadow), ("gshadow", &common.gshadow)] {
        let p = etc.join(file);
        write(&p, text, common.shadow_mode)?;
        chown(&p, Some(0), Some(common.shadow_gid))
            .map_err(|e| Error::io(format!("cannot chown {}", p.display()), e))?;
    }
    write(
        &etc.join("sudoers.d").join(SUDO_USER),
        &format!("{SUDO_USER} ALL=(ALL) NOPASSWD:ALL\n"),
        0o440,
    )?;
    write(
        &etc.join("sudoers.d").join(NOPASSWD_DENIED_USER),
        &format!("{NOPASSWD_DENIED_USER} ALL=(ALL) ALL\n"),
        0o440,
    )?;
    for (n, user) in [SUDO_USER, NOPASSWD_DENIED_USER].iter().enumerate() {
        let home = paths.upper("var").join("home").join(user);
        mkdir(&home, 0o755)?;
        let id = common.uid + n as u32;
        chown(&home, Some(id), Some(id))
            .map_err(|e| Error::io(format!("cannot chown {}", home.display()), e))?;
    }

    // Read by sshd as the logging-in user (it drops privileges to read
    // authorized keys), hence world-readable and outside every overlay.
    write(&paths.authorized_keys(), &common.client_pub, 0o644)?;
    write(
        &paths.sshd_config(),
        &sshd_config(paths, host.address),
        0o644,
    )?;
    write(&paths.fstab(), &fstab(paths), 0o644)?;
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

/// Start the host: the boot script becomes the keeper, which outlives
/// `rampart`. Not waited for; [`wait_ready`] tells when sshd answers.
pub fn boot(tools: &sys::Tools, paths: &HostPaths, host: &HostState) -> Result<()> {
    let log = fs::File::create(paths.boot_log())
        .map_err(|e| Error::io(format!("cannot create {}", paths.boot_log().display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("cannot duplicate a file handle", e))?;
    // nsenter rather than `ip netns exec`: that one also makes a mount
    // namespace and remounts /sys, which costs the kernel's global mount
    // lock twice more per host; the fstab mounts the host's own /sys.
    let mut cmd = Command::new(&tools.nsenter);
    cmd.arg(format!("--net=/run/netns/{}", host.netns))
        .arg("--")
        .arg(&tools.unshare)
        .args(["-m", "-u", "--propagation", "private"])
        .arg(&tools.bash)
        .args(["-c", BOOT, "rampart-lab-boot"])
        .arg(&paths.dir)
        .arg(&host.name)
        .arg(&tools.sshd)
        .arg(KEEPER_NAME)
        .arg(super::HOSTS_TMPFS)
        .args(whiteouts(host.personality))
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
