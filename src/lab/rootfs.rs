//! Real Debian userlands for lab hosts: root filesystems built once with
//! `debootstrap`, cached on the machine, and shared read-only by every host
//! of that kind (each host's root is an overlay on top: see [`super::host`]).
//!
//! Personality hosts run this machine's own sshd, iptables and `sh`; a host
//! of a [`Distro`] runs its distribution's: OpenSSH 8.4 to 10.0, iptables
//! 1.8.7 to 1.8.11 (nf_tables or legacy), dash or busybox ash. That is what
//! checks rampart's remote scripts and parsers against the versions real
//! fleets run (docs/design.md, "The lab").
//!
//! A build never runs a package script in this machine's namespaces:
//! `debootstrap --foreign` only downloads and unpacks (it needs the
//! network), and the second stage, which runs every maintainer script
//! (iptables-persistent's saves rules, openssh-server's would start sshd),
//! runs chrooted inside `unshare --net --pid --fork --mount-proc`: a network
//! namespace of its own (no firewall of this machine to save or touch), a pid
//! namespace that takes every process it started down with it, and a mount
//! namespace that takes its /proc and /sys mounts along. `policy-rc.d`
//! refuses every service start on top of that.
//!
//! The cache (`--cache DIR`, else `$RAMPART_LAB_CACHE`, else
//! [`DEFAULT_CACHE`]) holds `rootfs/<kind>-r<RECIPE>/` with `root/` (the
//! filesystem) and `build.json` (what was built: suite, mirror, package
//! versions), `rootfs/<kind>-r<RECIPE>.lock`, a build log per kind, and
//! `debs/<suite>/`, debootstrap's package cache, shared by the kinds of one
//! suite (downloads into it take `debs/<suite>.lock`).
//! A kind is built in a temp dir beside its entry and renamed into place
//! when complete, under an exclusive `flock` on its lock file: concurrent
//! test processes, and other checkouts on the same machine, build each
//! kind once and never see half a build. The recipe number is in the entry
//! name so that checkouts whose recipes differ never fight over one entry.
//! An entry is never modified after its rename: it is the lower layer of
//! live overlays.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::sys;
use crate::error::{Error, Result};

/// Where root filesystems are cached when neither `--cache` nor
/// [`CACHE_ENV`] says otherwise. Outside every lab dir: labs come and go,
/// the cache stays.
pub const DEFAULT_CACHE: &str = "/srv/rampart-cache";

/// The environment variable naming the cache dir.
pub const CACHE_ENV: &str = "RAMPART_LAB_CACHE";

/// Version of what a build produces. Bump it whenever the packages, the
/// preseeding or the post-build steps change: entries of another recipe are
/// then neither used nor touched (another checkout may still use them).
pub const RECIPE: u32 = 1;

/// Packages every distro gets on top of `--variant=minbase`.
const PACKAGES: &[&str] = &[
    "openssh-server",
    "iptables",
    "sudo",
    "netfilter-persistent",
    "iptables-persistent",
];

/// Used when this machine's apt sources name no Debian mirror.
const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";

/// debconf answers given before any package is configured:
/// iptables-persistent would otherwise save the build's (empty) rules to
/// /etc/iptables/rules.v4 and .v6, and every host would start with
/// persisted files it never had on a fresh VPS.
const PRESEED: &str = "Name: iptables-persistent/autosave_v4\n\
Template: iptables-persistent/autosave_v4\n\
Value: false\n\
Owners: iptables-persistent\n\
Flags: seen\n\
\n\
Name: iptables-persistent/autosave_v6\n\
Template: iptables-persistent/autosave_v6\n\
Value: false\n\
Owners: iptables-persistent\n\
Flags: seen\n\
\n";

/// How long one debootstrap stage may take (a slow mirror, a loaded machine).
const STAGE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long to wait for another process's build of the same kind.
const LOCK_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// A real Debian userland a lab host can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Distro {
    /// Debian 11 bullseye: OpenSSH 8.4, iptables 1.8.7 (nf_tables).
    #[serde(rename = "debian11")]
    Debian11,
    /// Debian 12 bookworm: OpenSSH 9.2, iptables 1.8.9 (nf_tables).
    #[serde(rename = "debian12")]
    Debian12,
    /// Debian 13 trixie: OpenSSH 10.0, iptables 1.8.11 (nf_tables).
    #[serde(rename = "debian13")]
    Debian13,
    /// Debian 12 with update-alternatives set to iptables-legacy.
    #[serde(rename = "debian12-legacy")]
    Debian12Legacy,
    /// Debian 12 whose `sh`, `kill`, `sleep` and `setsid` are busybox
    /// applets, and which has no `flock` at all: rampart claims Alpine-like
    /// hosts, so its remote scripts must run under busybox ash.
    #[serde(rename = "busybox")]
    Busybox,
}

impl Distro {
    pub const ALL: [Distro; 5] = [
        Distro::Debian11,
        Distro::Debian12,
        Distro::Debian13,
        Distro::Debian12Legacy,
        Distro::Busybox,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Distro::Debian11 => "debian11",
            Distro::Debian12 => "debian12",
            Distro::Debian13 => "debian13",
            Distro::Debian12Legacy => "debian12-legacy",
            Distro::Busybox => "busybox",
        }
    }

    pub fn parse(s: &str) -> Option<Distro> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The Debian suite it is bootstrapped from.
    pub fn suite(self) -> &'static str {
        match self {
            Distro::Debian11 => "bullseye",
            Distro::Debian12 | Distro::Debian12Legacy | Distro::Busybox => "bookworm",
            Distro::Debian13 => "trixie",
        }
    }

    fn packages(self) -> Vec<&'static str> {
        let mut p = PACKAGES.to_vec();
        if self == Distro::Busybox {
            p.push("busybox");
        }
        p
    }

    /// The name of its cache entry: kind and recipe.
    fn entry_name(self) -> String {
        format!("{}-r{RECIPE}", self.name())
    }
}

impl std::fmt::Display for Distro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a build produced, as recorded in its entry's `build.json`: the
/// README's table of tested versions comes from here (`rampart lab rootfs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub kind: String,
    pub recipe: u32,
    pub suite: String,
    pub mirror: String,
    /// Seconds since the epoch when the build completed.
    pub built_at: u64,
    /// How long the build took, in whole seconds.
    pub build_seconds: u64,
    /// Debian package versions: openssh-server, iptables, sudo, busybox.
    pub packages: BTreeMap<String, String>,
    /// `nf_tables` or `legacy`: where the `iptables` alternative points.
    pub backend: String,
    /// What `/bin/sh` is: `dash`, `busybox`, ...
    pub sh: String,
}

impl BuildInfo {
    /// The upstream version of a package (`1:9.2p1-2+deb12u5` -> `9.2p1`).
    pub fn upstream(&self, package: &str) -> String {
        self.packages
            .get(package)
            .map(|v| upstream_version(v))
            .unwrap_or_else(|| "-".into())
    }
}

/// `[epoch:]upstream[-revision]` -> upstream.
pub fn upstream_version(v: &str) -> String {
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    v.rsplit_once('-').map_or(v, |(up, _)| up).to_string()
}

/// A built root filesystem in the cache.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub distro: Distro,
    /// The cache entry: `root/` and `build.json`.
    pub entry: PathBuf,
    pub info: BuildInfo,
}

impl Rootfs {
    /// The filesystem itself: the lower layer of every host of this kind.
    pub fn root(&self) -> PathBuf {
        self.entry.join("root")
    }
}

/// The cache dir: `explicit` (`--cache`), else `$RAMPART_LAB_CACHE`, else
/// [`DEFAULT_CACHE`]; absolute, and made of characters that can go into an
/// overlay's mount options.
pub fn cache_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let chosen = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(CACHE_ENV) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(DEFAULT_CACHE),
        },
    };
    let abs = if chosen.is_absolute() {
        chosen
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("cannot read the current dir", e))?
            .join(chosen)
    };
    let shown = abs.display().to_string();
    let ok = |c: char| c.is_ascii_alphanumeric() || "/._-+@".contains(c);
    if !shown.chars().all(ok) || shown.len() > 200 || abs == Path::new("/") {
        return Err(Error::Lab(format!(
            "rootfs cache dir {shown:?}: use at most 200 letters, digits and . _ - + @ / \
             (the path goes into overlay mount options)"
        )));
    }
    Ok(abs)
}

fn rootfs_dir(cache: &Path) -> PathBuf {
    cache.join("rootfs")
}

fn entry_dir(cache: &Path, d: Distro) -> PathBuf {
    rootfs_dir(cache).join(d.entry_name())
}

/// The build log of a kind (kept after the build, for the curious).
pub fn log_path(cache: &Path, d: Distro) -> PathBuf {
    rootfs_dir(cache).join(format!("{}.log", d.entry_name()))
}

/// The cached root filesystem of `d`, if a complete one is there.
pub fn lookup(cache: &Path, d: Distro) -> Option<Rootfs> {
    let entry = entry_dir(cache, d);
    let text = fs::read_to_string(entry.join("build.json")).ok()?;
    let info: BuildInfo = serde_json::from_str(&text).ok()?;
    (info.recipe == RECIPE && info.kind == d.name() && entry.join("root/usr/sbin/sshd").is_file())
        .then_some(Rootfs {
            distro: d,
            entry,
            info,
        })
}

/// The cached root filesystem of `d`, built first if there is none (or
/// rebuilt with `refresh`). Returns it and whether it was built now.
/// Progress goes to stderr: a build takes about a minute.
pub fn ensure(cache: &Path, d: Distro, refresh: bool) -> Result<(Rootfs, bool)> {
    if !refresh {
        if let Some(r) = lookup(cache, d) {
            return Ok((r, false));
        }
    }
    let dir = rootfs_dir(cache);
    fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let lock_path = dir.join(format!("{}.lock", d.entry_name()));
    let _lock = sys::FileLock::exclusive(&lock_path, LOCK_TIMEOUT, || {
        eprintln!("lab: waiting for another process's build of the {d} root filesystem");
    })?;
    // Someone else may have built it while we waited for the lock.
    if !refresh {
        if let Some(r) = lookup(cache, d) {
            return Ok((r, false));
        }
    }
    let mirror = debian_mirror();
    eprintln!(
        "lab: building the {d} root filesystem ({} from {mirror}) in {}; about a minute",
        d.suite(),
        entry_dir(cache, d).display()
    );
    let t0 = Instant::now();
    let info = build(cache, d, &mirror, t0)?;
    eprintln!(
        "lab: built {d} in {} s: OpenSSH {}, iptables {} ({}), sh = {}",
        info.build_seconds,
        info.upstream("openssh-server"),
        info.upstream("iptables"),
        info.backend,
        info.sh
    );
    let r = lookup(cache, d).ok_or_else(|| {
        Error::Lab(format!(
            "the {d} root filesystem was built but its entry does not check out"
        ))
    })?;
    Ok((r, true))
}

/// Appends every step's output to the kind's build log.
struct BuildLog {
    path: PathBuf,
    file: fs::File,
}

impl BuildLog {
    fn step(&mut self, what: &str, out: &std::process::Output) {
        let _ = writeln!(self.file, "==== {what}: {}", out.status);
        let _ = self.file.write_all(&out.stdout);
        let _ = self.file.write_all(&out.stderr);
    }

    fn note(&mut self, what: &str) {
        let _ = writeln!(self.file, "==== {what}");
    }

    /// An error for a failed step, with the end of the log.
    fn failed(&self, what: &str) -> Error {
        let text = fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        Error::Lab(format!(
            "rootfs build: {what} failed; the end of {}:\n  {}",
            self.path.display(),
            lines[lines.len().saturating_sub(15)..].join("\n  ")
        ))
    }

    fn run(&mut self, what: &str, cmd: &mut Command, env: &[(String, String)]) -> Result<()> {
        let out = sys::run_env(cmd, env, None, STAGE_TIMEOUT)?;
        self.step(what, &out);
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed(what))
        }
    }
}

/// Variables a download needs from our environment (a proxy), since every
/// child otherwise gets PATH alone.
fn download_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    for k in [
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    ] {
        if let Ok(v) = std::env::var(k) {
            env.push((k.to_string(), v));
        }
    }
    env
}

/// Run `script` with `sh` chrooted into `root`, in namespaces of its own
/// (network, pid, mount, uts, ipc): what runs there can reach neither this
/// machine's firewall nor outlive the command.
fn in_chroot(log: &mut BuildLog, what: &str, root: &Path, script: &str) -> Result<()> {
    let unshare = sys::which("unshare").ok_or_else(|| Error::Lab("unshare not found".into()))?;
    let chroot = sys::which("chroot").ok_or_else(|| Error::Lab("chroot not found".into()))?;
    let env = [
        ("DEBIAN_FRONTEND".to_string(), "noninteractive".to_string()),
        ("DEBCONF_NONINTERACTIVE_SEEN".into(), "true".into()),
        ("LC_ALL".into(), "C".into()),
        ("HOME".into(), "/root".into()),
    ];
    log.run(
        what,
        Command::new(unshare)
            .args(["--net", "--pid", "--uts", "--ipc", "--fork"])
            .arg(format!("--mount-proc={}", root.join("proc").display()))
            .arg(chroot)
            .arg(root)
            .args(["/bin/sh", "-c", script]),
        &env,
    )
}

fn build(cache: &Path, d: Distro, mirror: &str, t0: Instant) -> Result<BuildInfo> {
    let debootstrap = sys::which("debootstrap").ok_or_else(|| {
        Error::Lab(
            "building a lab root filesystem needs debootstrap: `apt-get install -y debootstrap`"
                .into(),
        )
    })?;
    let dir = rootfs_dir(cache);
    let entry = entry_dir(cache, d);
    let log_path = log_path(cache, d);
    let file = fs::File::create(&log_path)
        .map_err(|e| Error::io(format!("cannot create {}", log_path.display()), e))?;
    let mut log = BuildLog {
        path: log_path,
        file,
    };
    // We hold the kind's lock: any temp dir of this kind is a crashed build's.
    let prefix = format!(".{}.build-", d.entry_name());
    for stale in fs::read_dir(&dir)
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
    {
        remove_tree(&stale.path())?;
    }
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    let root = tmp.join("root");
    fs::create_dir_all(&root)
        .map_err(|e| Error::io(format!("cannot create {}", root.display()), e))?;
    // One package cache per suite, shared by its kinds; downloads into it
    // are serialized (below): two debootstraps fetching the same .deb into
    // the same file would corrupt it.
    let debs = cache.join("debs").join(d.suite());
    fs::create_dir_all(&debs)
        .map_err(|e| Error::io(format!("cannot create {}", debs.display()), e))?;

    let result = (|| -> Result<BuildInfo> {
        let downloading = sys::FileLock::exclusive(
            &cache.join("debs").join(format!("{}.lock", d.suite())),
            LOCK_TIMEOUT,
            || eprintln!("lab: {d}: waiting for another download of {}", d.suite()),
        )?;
        log.run(
            "debootstrap --foreign (download and unpack)",
            Command::new(&debootstrap)
                .args(["--foreign", "--variant=minbase"])
                .arg(format!("--include={}", d.packages().join(",")))
                .arg(format!("--cache-dir={}", debs.display()))
                .arg(d.suite())
                .arg(&root)
                .arg(mirror),
            &download_env(),
        )?;
        drop(downloading);
        write_file(&root.join("var/cache/debconf/config.dat"), PRESEED, 0o644)?;
        write_file(
            &root.join("usr/sbin/policy-rc.d"),
            "#!/bin/sh\n# No service may start while the lab builds this root filesystem.\nexit 101\n",
            0o755,
        )?;
        in_chroot(
            &mut log,
            "debootstrap --second-stage (configure, no network)",
            &root,
            "/debootstrap/debootstrap --second-stage",
        )?;
        match d {
            Distro::Debian12Legacy => in_chroot(
                &mut log,
                "switch to iptables-legacy",
                &root,
                "update-alternatives --set iptables /usr/sbin/iptables-legacy && \
                 update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy",
            )?,
            Distro::Busybox => busyboxify(&mut log, &root)?,
            _ => {}
        }
        // A fresh VPS image: no build leftovers, no shared host keys (every
        // host has its own, from the lab), no package cache.
        remove_file_if_any(&root.join("usr/sbin/policy-rc.d"))?;
        for (sub, keep) in [("etc/ssh", "ssh_host_"), ("var/cache/apt/archives", ".deb")] {
            let d = root.join(sub);
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(keep) || name.ends_with(keep) {
                    remove_file_if_any(&e.path())?;
                }
            }
        }
        check(&root, d)?;
        let info = BuildInfo {
            kind: d.name().to_string(),
            recipe: RECIPE,
            suite: d.suite().to_string(),
            mirror: mirror.to_string(),
            built_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|t| t.as_secs())
                .unwrap_or(0),
            build_seconds: t0.elapsed().as_secs(),
            packages: package_versions(
                &fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default(),
                &["openssh-server", "iptables", "sudo", "busybox", "dash"],
            ),
            backend: backend_of(&root),
            sh: fs::read_link(root.join("usr/bin/sh"))
                .ok()
                .and_then(|t| t.file_name().map(|f| f.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "?".into()),
        };
        let json = serde_json::to_string_pretty(&info)
            .map_err(|e| Error::Lab(format!("cannot encode build.json: {e}")))?;
        write_file(&tmp.join("build.json"), &(json + "\n"), 0o644)?;
        Ok(info)
    })();
    let info = match result {
        Ok(i) => i,
        Err(e) => {
            log.note("build failed; removing the temp dir");
            let _ = remove_tree(&tmp);
            return Err(e);
        }
    };
    // A refresh replaces an entry that live overlays may still use as their
    // lower layer: move it aside (its files stay as they are) and remove it
    // only once no mount refers to it.
    if entry.exists() {
        let old = dir.join(format!(".{}.old-{}", d.entry_name(), info.built_at));
        fs::rename(&entry, &old)
            .map_err(|e| Error::io(format!("cannot move {} aside", entry.display()), e))?;
    }
    fs::rename(&tmp, &entry)
        .map_err(|e| Error::io(format!("cannot rename the build to {}", entry.display()), e))?;
    remove_unused_old_entries(&dir);
    log.note("done");
    Ok(info)
}

/// The busybox kind: busybox's `sh`, `kill`, `sleep` and `setsid` replace
/// dash's, procps', coreutils' and util-linux's, and util-linux's `flock`
/// goes (Debian's busybox has no flock applet), so this host has no flock.
fn busyboxify(log: &mut BuildLog, root: &Path) -> Result<()> {
    if !root.join("usr/bin/busybox").is_file() {
        return Err(log.failed("busybox is not installed in the busybox root filesystem"));
    }
    for tool in ["sh", "kill", "sleep", "setsid"] {
        let p = root.join("usr/bin").join(tool);
        remove_file_if_any(&p)?;
        symlink("busybox", &p).map_err(|e| Error::io(format!("cannot link {}", p.display()), e))?;
    }
    for dir in ["usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin"] {
        remove_file_if_any(&root.join(dir).join("flock"))?;
    }
    log.note("busybox: sh, kill, sleep, setsid -> busybox; flock removed");
    Ok(())
}

/// Refuse a build that is not what the lab promises.
fn check(root: &Path, d: Distro) -> Result<()> {
    let fail = |what: String| Err(Error::Lab(format!("rootfs {d}: {what}")));
    let answers = fs::read_to_string(root.join("var/cache/debconf/config.dat")).unwrap_or_default();
    for q in ["autosave_v4", "autosave_v6"] {
        if debconf_value(&answers, &format!("iptables-persistent/{q}")).as_deref() != Some("false")
        {
            return fail(format!("debconf: iptables-persistent/{q} is not false"));
        }
    }
    for f in ["etc/iptables/rules.v4", "etc/iptables/rules.v6"] {
        if root.join(f).exists() {
            return fail(format!("/{f} exists: the build saved rules"));
        }
    }
    for f in [
        "usr/sbin/sshd",
        "usr/sbin/iptables-restore",
        "usr/sbin/netfilter-persistent",
        "etc/init.d/netfilter-persistent",
        "usr/bin/sudo",
        "bin/bash",
    ] {
        if fs::symlink_metadata(root.join(f)).is_err() {
            return fail(format!("/{f} is missing"));
        }
    }
    let want = if d == Distro::Debian12Legacy {
        "legacy"
    } else {
        "nf_tables"
    };
    if backend_of(root) != want {
        return fail(format!("the iptables backend is {}", backend_of(root)));
    }
    if d == Distro::Busybox {
        for tool in ["sh", "kill", "sleep", "setsid"] {
            let t = fs::read_link(root.join("usr/bin").join(tool)).ok();
            if t.as_deref() != Some(Path::new("busybox")) {
                return fail(format!("/usr/bin/{tool} is not busybox"));
            }
        }
        if let Some(f) = find_named(root, "flock", 6) {
            return fail(format!(
                "{} is there: the busybox kind has no flock",
                f.display()
            ));
        }
    }
    Ok(())
}

/// The first regular file or symlink called `name` under `dir` (not
/// following symlinked dirs), at most `depth` levels down.
fn find_named(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            // Bash's completion for flock is data, not a flock.
            if depth > 0 && !p.ends_with("usr/share") {
                if let Some(f) = find_named(&p, name, depth - 1) {
                    return Some(f);
                }
            }
        } else if e.file_name() == name {
            return Some(p);
        }
    }
    None
}

/// `nf_tables` or `legacy` from where `/etc/alternatives/iptables` points.
fn backend_of(root: &Path) -> String {
    match fs::read_link(root.join("etc/alternatives/iptables")) {
        Ok(t) if t.to_string_lossy().ends_with("-legacy") => "legacy".into(),
        Ok(t) if t.to_string_lossy().ends_with("-nft") => "nf_tables".into(),
        Ok(t) => t.display().to_string(),
        Err(_) => "unknown".into(),
    }
}

/// The value of a question in a debconf `config.dat`.
pub fn debconf_value(config: &str, name: &str) -> Option<String> {
    config.split("\n\n").find_map(|stanza| {
        let mut lines = stanza.lines().map(str::trim_end);
        if !lines.any(|l| l == format!("Name: {name}")) {
            return None;
        }
        stanza
            .lines()
            .find_map(|l| l.strip_prefix("Value: ").map(str::to_string))
    })
}

/// Versions of `wanted` packages from a dpkg `status` file (installed only).
pub fn package_versions(status: &str, wanted: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stanza in status.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        let (Some(name), Some(version)) = (field("Package:"), field("Version:")) else {
            continue;
        };
        let installed = field("Status:").is_some_and(|s| s.ends_with(" installed"));
        if installed && wanted.contains(&name.as_str()) {
            out.insert(name, version);
        }
    }
    out
}

/// The Debian mirror this machine's apt uses, else [`FALLBACK_MIRROR`].
pub fn debian_mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push((false, t));
    }
    let mut extra: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    extra.sort();
    for p in extra {
        let name = p.to_string_lossy().into_owned();
        let deb822 = name.ends_with(".sources");
        if deb822 || name.ends_with(".list") {
            if let Ok(t) = fs::read_to_string(&p) {
                texts.push((deb822, t));
            }
        }
    }
    texts
        .iter()
        .find_map(|(deb822, t)| mirror_in(t, *deb822))
        .unwrap_or_else(|| FALLBACK_MIRROR.to_string())
}

/// Whether a URI is a Debian archive (not security, not ports, not another vendor's).
fn is_debian_archive(uri: &str) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://"))
        && uri
            .trim_end_matches('/')
            .split('/')
            .skip(3)
            .any(|seg| seg == "debian")
        && !uri.contains("security")
}

/// The first Debian archive URI in one sources file (one-line or deb822).
pub fn mirror_in(text: &str, deb822: bool) -> Option<String> {
    if deb822 {
        for stanza in text.split("\n\n") {
            let field = |k: &str| {
                stanza.lines().find_map(|l| {
                    let (key, v) = l.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(k)
                        .then(|| v.trim().to_string())
                })
            };
            let types = field("Types").unwrap_or_default();
            let enabled = field("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
            if !enabled || !types.split_whitespace().any(|t| t == "deb") {
                continue;
            }
            if let Some(uri) = field("URIs")
                .unwrap_or_default()
                .split_whitespace()
                .find(|u| is_debian_archive(u))
            {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
        return None;
    }
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        // Options: `[arch=amd64 signed-by=...]`, possibly several words.
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
            rest.drain(..=end);
        }
        if let Some(uri) = rest.first().filter(|u| is_debian_archive(u)) {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

/// Remove entries moved aside by a refresh once no host can be using
/// them: no overlay names their path, old or current.
fn remove_unused_old_entries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let olds: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".old-"))
        .map(|e| e.path())
        .collect();
    if olds.is_empty() {
        return;
    }
    // Overlays live in the hosts' own mount namespaces: look at them all.
    let mut mounts = String::new();
    for p in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if p.file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            if let Ok(m) = fs::read_to_string(p.path().join("mountinfo")) {
                mounts.push_str(&m);
            }
        }
    }
    for old in olds {
        // An overlay's options keep the path its lower dir had when it was
        // mounted: the entry's own name, now the new build's too. While any
        // overlay names it, the old tree may be under a running host.
        let name = old.file_name().map(|n| n.to_string_lossy().into_owned());
        let original = name
            .as_deref()
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.split(".old-").next())
            .map(|n| dir.join(n).to_string_lossy().into_owned());
        let in_use = mounts.contains(&old.to_string_lossy().into_owned())
            || original.is_none_or(|o| mounts.contains(&format!("lowerdir={o}/root")));
        if !in_use {
            let _ = remove_tree(&old);
        }
    }
}

/// `rm -rf`, refusing a tree that has something mounted inside it.
fn remove_tree(path: &Path) -> Result<()> {
    let p = path.to_string_lossy().into_owned();
    let mounted = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&p)));
    if mounted {
        return Err(Error::Lab(format!(
            "{p} has mounts inside: unmount them before it can be removed"
        )));
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(Error::io(format!("cannot remove {p}"), e))
        }
        _ => Ok(()),
    }
}

fn remove_file_if_any(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(Error::io(format!("cannot remove {}", p.display()), e))
        }
        _ => Ok(()),
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    }
    fs::write(path, text)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for d in Distro::ALL {
            assert_eq!(Distro::parse(d.name()), Some(d));
            let json = serde_json::to_string(&d).expect("encode");
            assert_eq!(json, format!("\"{}\"", d.name()));
        }
        assert_eq!(Distro::parse("debian14"), None);
        assert_eq!(Distro::Busybox.suite(), "bookworm");
        assert!(Distro::Busybox.packages().contains(&"busybox"));
        assert!(!Distro::Debian13.packages().contains(&"busybox"));
    }

    #[test]
    fn the_mirror_comes_from_apt_sources_of_either_format() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/2025\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                      Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_in(deb822, true).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let security_only = "Types: deb\nURIs: http://security.debian.org/debian-security\n";
        assert_eq!(mirror_in(security_only, true), None);
        let disabled = "Enabled: no\nTypes: deb\nURIs: http://ftp.de.debian.org/debian/\n\n\
                        Types: deb-src deb\nURIs: https://mirror.example/debian/\n";
        assert_eq!(
            mirror_in(disabled, true).as_deref(),
            Some("https://mirror.example/debian")
        );
        let list = "# comment\ndeb-src http://deb.debian.org/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] https://packages.cloud.google.com/apt cloud-sdk main\n\
                    deb [ signed-by=/usr/share/keyrings/x.gpg ] http://ftp.fr.debian.org/debian/ bookworm main\n";
        assert_eq!(
            mirror_in(list, false).as_deref(),
            Some("http://ftp.fr.debian.org/debian")
        );
        assert_eq!(
            mirror_in("deb http://archive.ubuntu.com/ubuntu jammy main\n", false),
            None
        );
    }

    #[test]
    fn versions_and_answers_are_read_from_dpkg_and_debconf_files() {
        let status =
            "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2+deb12u5\n\n\
                      Package: iptables\nStatus: install ok installed\nVersion: 1.8.9-2\n\n\
                      Package: busybox\nStatus: deinstall ok config-files\nVersion: 1:1.35.0-4\n\n\
                      Package: sudo\nStatus: install ok installed\nVersion: 1.9.13p3-1+deb12u1\n";
        let v = package_versions(status, &["openssh-server", "iptables", "busybox", "sudo"]);
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(upstream_version(&v["openssh-server"]), "9.2p1");
        assert_eq!(upstream_version(&v["iptables"]), "1.8.9");
        assert_eq!(upstream_version("1:1.35.0-4+b1"), "1.35.0");
        assert_eq!(upstream_version("10.0p1-7"), "10.0p1");
        assert_eq!(
            debconf_value(PRESEED, "iptables-persistent/autosave_v6").as_deref(),
            Some("false")
        );
        assert_eq!(debconf_value(PRESEED, "iptables-persistent/other"), None);
    }
}
