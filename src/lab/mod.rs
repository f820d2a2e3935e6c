//! The lab: a real fleet of VPS-like hosts on one Linux machine
//! (docs/design.md, "The lab").
//!
//! rampart's promises (rollback when SSH is cut, atomic rules, nothing left
//! behind) are about real sshd, real iptables and real processes, which is
//! exactly what a mock would fake; so tests, demos and benchmarks run
//! against hosts made of Linux namespaces:
//!
//! - a network namespace `rp{k}-{host}` with a veth into the lab's bridge
//!   `rpbr{k}` and an address in the lab's /22 of 198.18.0.0/15, so iptables
//!   in a host filters only that host's traffic, and a DROP policy there can
//!   only cut that host off;
//! - a mount and UTS namespace with overlays on /etc, /var, /root and tmpfs on
//!   /run, /tmp, so each host has its own os-release, persisted rules,
//!   backups, hostname and processes (see [`host`] for how it boots); or,
//!   for a real distro (`--distros`, see [`rootfs`]), an overlay on its whole
//!   `/` whose lower layer is that distro's cached root filesystem;
//! - its own sshd with its own host key, listening on port 22, started after
//!   the firewall loaders its init would run at boot (see [`loaders`]), so
//!   `lab reboot` ([`reboot`]) meets persisted rules the way a real boot does.
//!
//! The lab dir D (default [`DEFAULT_DIR`]) holds `state.json` (see
//! [`state`]), the client key `id_ed25519`, `known_hosts` with the real host
//! keys, `inventory.yml` (a rampart inventory) and `hosts/<name>/` (host
//! key, sshd config and log, overlay upper/work dirs) on a tmpfs mounted at
//! `D/hosts` for speed.
//!
//! The network has no ARP and no flooding (see `build`): every address and
//! MAC is known in advance, so the machine, the bridge and the hosts get
//! static entries. That is what lets one bridge carry a thousand hosts.
//!
//! `lab up` on a dir that holds a lab removes it first and builds afresh:
//! repairing a half-built lab in place would need to know how it broke, and
//! a rebuild takes seconds. `lab down` is driven by state.json and by scans
//! for the lab's index (bridge label, `rp{k}-*` namespaces, `rp{k}h*`
//! links), so it also cleans up after a crash at any point, and twice is as
//! good as once.
//!
//! Safety: nothing here runs iptables. On the machine itself the lab only
//! adds (and `lab down` removes) its bridge, veths, neighbour entries,
//! named network namespaces and the tmpfs on `D/hosts`. Run one lab
//! command per dir at a time; labs in different dirs are independent.
//!
//! `RAMPART_LAB_TRACE=1` prints how long each phase of `lab up` took.

pub mod host;
pub mod loaders;
pub mod net;
pub mod rootfs;
pub mod state;
pub mod sys;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

pub use rootfs::Distro;
pub use state::{Creator, HostPaths, HostState, Kind, LabPaths, LabState, Personality};

use crate::error::{Error, Result};

/// Where `rampart lab` keeps a lab when `--dir` is not given. Not under
/// /etc, /var, /root, /run or /tmp: hosts overlay or hide those.
pub const DEFAULT_DIR: &str = "/srv/rampart-lab";

/// Directories a lab dir must not be in: every host overlays or hides them,
/// so a host's sshd could not read its own config from there.
const FORBIDDEN: &[&str] = &[
    "/etc", "/var", "/root", "/run", "/tmp", "/proc", "/sys", "/dev",
];

/// Parallel workers for per-host setup. Most of the work is fork/exec and
/// kernel time, so a few more than the cores keeps them busy.
const WORKERS: usize = 8;

/// The lab dir as an absolute path with symlinks resolved, or a refusal
/// saying why it cannot be one.
pub fn lab_dir(dir: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("cannot read the current dir", e))?;
    let mut abs = PathBuf::from("/");
    for c in cwd.join(dir).components() {
        match c {
            Component::ParentDir => {
                abs.pop();
            }
            Component::Normal(s) => abs.push(s),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    // Resolve symlinks in the part that exists: /srv/x -> /tmp/x is under /tmp.
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|s| s.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut real = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        real.push(name);
    }
    let shown = real.display().to_string();
    if real == Path::new("/") {
        return Err(Error::Lab("the lab dir cannot be /".into()));
    }
    if let Some(f) = FORBIDDEN.iter().find(|f| real.starts_with(f)) {
        return Err(Error::Lab(format!(
            "lab dir {shown} is under {f}, which every lab host overlays or hides: \
             choose another --dir, e.g. {DEFAULT_DIR}"
        )));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "/._-+@".contains(c);
    if !shown.chars().all(ok) || shown.len() > 200 {
        return Err(Error::Lab(format!(
            "lab dir {shown:?}: use at most 200 letters, digits and . _ - + @ / \
             (the path goes into overlay mount options and sshd_config)"
        )));
    }
    Ok(real)
}

/// Bring up `n` hosts in `dir`, replacing any lab already there; returns
/// once every sshd accepts connections. On failure, removes what it built.
///
/// `kinds` are given to hosts round-robin (h001 the first, ...); empty
/// means the personalities ([`Kind::default_cycle`]). The root filesystems
/// of distro kinds come from `cache` (see [`rootfs`]), built first when
/// missing: that is the only slow part, and happens once per machine.
pub fn up(n: usize, dir: &Path, kinds: &[Kind], cache: &Path) -> Result<LabState> {
    let tools = sys::preflight(false)?;
    let dir = lab_dir(dir)?;
    if n == 0 || n > net::MAX_HOSTS {
        return Err(Error::Lab(format!(
            "a lab has 1 to {} hosts, not {n}",
            net::MAX_HOSTS
        )));
    }
    let kinds = if kinds.is_empty() {
        Kind::default_cycle()
    } else {
        kinds.to_vec()
    };
    // Before anything is made on the machine: a build takes a minute.
    let distros: Vec<Distro> = kinds
        .iter()
        .filter_map(|k| match k {
            Kind::Distro(d) => Some(*d),
            Kind::Personality(_) => None,
        })
        .collect();
    let roots: Vec<(Distro, PathBuf)> = ensure_rootfs(&distros, cache, false)?
        .into_iter()
        .map(|(r, _)| (r.distro, r.root()))
        .collect();
    let paths = LabPaths::new(&dir);
    if paths.state().exists() || !net::bridges_of(&dir).is_empty() {
        eprintln!(
            "lab: removing the lab already in {} to build afresh",
            dir.display()
        );
        down_with(&tools, &dir)?;
    }
    match fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Lab(format!(
                    "{} is not empty and holds no lab (no state.json): choose an empty or new --dir",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
    }
    // World-traversable: sshd reads authorized_keys in here as the user.
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| Error::io(format!("cannot chmod {}", dir.display()), e))?;

    let mut state = LabState {
        version: state::STATE_VERSION,
        dir: dir.clone(),
        index: None,
        subnet: None,
        bridge: None,
        gateway: None,
        creator: Creator::parent(),
        complete: false,
        kinds,
        hosts: Vec::new(),
    };
    state.save()?;
    match build(&tools, &mut state, n, &roots) {
        Ok(()) => Ok(state),
        Err(e) => {
            eprintln!("lab: up failed; removing what was built");
            if let Err(e2) = down_with(&tools, &dir) {
                eprintln!("lab: and removing it failed too: {e2}");
            }
            Err(e)
        }
    }
}

fn build(
    tools: &sys::Tools,
    state: &mut LabState,
    n: usize,
    roots: &[(Distro, PathBuf)],
) -> Result<()> {
    let paths = state.paths();
    let t0 = Instant::now();
    let trace = |what: &str| {
        if std::env::var_os("RAMPART_LAB_TRACE").is_some() {
            eprintln!("lab: {:>6} ms  {what}", t0.elapsed().as_millis());
        }
    };
    let k = net::allocate(tools, &state.dir)?;
    state.index = Some(k);
    state.subnet = Some(format!("{}/{}", net::subnet_base(k), net::PREFIX));
    state.bridge = Some(net::bridge_name(k));
    state.gateway = Some(net::gateway(k));
    state.hosts = (1..=n)
        .map(|i| {
            let name = format!("h{i:03}");
            let kind = state.kinds[(i - 1) % state.kinds.len()];
            let rootfs = match kind {
                Kind::Distro(d) => roots.iter().find(|(r, _)| *r == d).map(|(_, p)| p.clone()),
                Kind::Personality(_) => None,
            };
            HostState {
                address: net::host_address(k, i),
                kind,
                rootfs,
                netns: net::netns_name(k, &name),
                veth: net::veth_name(k, i),
                mac: net::host_mac(k, i),
                name,
            }
        })
        .collect();
    state.save()?;
    // Leftovers of a crashed lab that had index k are ours now: we hold its bridge.
    clean_index(tools, k, false)?;
    mount_hosts_dir(tools, &paths)?;

    host::keygen(tools, &paths.identity(), "rampart-lab")?;
    let client_pub = fs::read_to_string(paths.identity_pub())
        .map_err(|e| Error::io("cannot read the lab's client key", e))?;
    let root_hash = root_password(tools, &paths)?;
    let common = host::Common::new(client_pub, &root_hash, roots)?;
    trace("client key");

    // The machine side in one `ip` process: bridge, namespaces, veths.
    // No ARP anywhere: the machine gets a permanent neighbour entry and the
    // bridge a static forwarding entry for every host, and each host one for
    // the bridge. An ARP request is flooded to every port of the bridge; with
    // hundreds of hosts, concurrent floods overrun the kernel's backlog, and
    // the hosts whose copy was dropped never answer. Static entries also keep
    // the machine's neighbour table out of its garbage collector's limits
    // (1024 entries by default), and make a cut link (`host::set_link`)
    // drop packets silently instead of failing with "No route to host".
    let bridge = net::bridge_name(k);
    let mut lines = vec![
        format!("addr add {}/{} dev {bridge}", net::gateway(k), net::PREFIX),
        format!("link set {bridge} up"),
    ];
    let mut fdb = Vec::new();
    for h in &state.hosts {
        let (plug, f) = net::plug_lines(h, &bridge);
        lines.extend(plug);
        fdb.push(f);
    }
    net::ip_batch(tools, &lines, false)?;
    net::bridge_batch(tools, &fdb, false)?;
    trace("machine side: bridge, namespaces, veths, neighbours");

    // Per host: files, key, boot, wait for sshd; in parallel, as it is mostly
    // fork/exec and kernel work. Each worker sees its host listening before
    // it takes the next: a boot is a dozen execs and mounts, and starting
    // hundreds at once only makes the last ones miss their deadline.
    let spent = [(); 3].map(|()| std::sync::atomic::AtomicU64::new(0));
    let timed = |i: usize, t: Instant| {
        spent[i].fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
    };
    for_each_parallel(&state.hosts, WORKERS, |h| {
        let hp = paths.host(&h.name);
        let t = Instant::now();
        host::prepare(&hp, h, &common, k)?;
        timed(0, t);
        let t = Instant::now();
        host::keygen(tools, &hp.host_key(), &format!("root@{}", h.name))?;
        timed(1, t);
        let t = Instant::now();
        host::boot(tools, &hp, h, t + host::BOOT_TIMEOUT)?;
        timed(2, t);
        Ok(())
    })?;
    let [files, keys, boots] = spent.map(|a| a.into_inner() / 1000);
    trace(&format!(
        "every sshd answers (worker time: files {files} ms, keys {keys} ms, \
         boots {boots} ms)"
    ));
    let mut known = String::new();
    for h in &state.hosts {
        let key = fs::read_to_string(paths.host(&h.name).host_key_pub())
            .map_err(|e| Error::io(format!("cannot read {}'s host key", h.name), e))?;
        let mut f = key.split_whitespace();
        let (Some(kind), Some(b64)) = (f.next(), f.next()) else {
            return Err(Error::Lab(format!("{}: malformed host key", h.name)));
        };
        let _ = writeln!(known, "{} {kind} {b64}", h.address);
    }
    fs::write(paths.known_hosts(), known).map_err(|e| Error::io("cannot write known_hosts", e))?;
    fs::write(paths.inventory(), inventory_yaml(state))
        .map_err(|e| Error::io("cannot write inventory.yml", e))?;

    state.complete = true;
    state.save()
}

/// Run `f` on every item with `workers` threads; all items are attempted,
/// and the errors (at most 5 shown) are returned together.
fn for_each_parallel<T: Sync>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = f(item) {
                    if let Ok(mut v) = errors.lock() {
                        v.push(e.to_string());
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    match errors.len() {
        0 => Ok(()),
        1..=5 => Err(Error::Lab(errors.join("\n"))),
        more => Err(Error::Lab(format!(
            "{}\n... and {} more",
            errors[..5].join("\n"),
            more - 5
        ))),
    }
}

/// D/inventory.yml: a native inventory (README, "Inventory"), one group per
/// kind of host.
pub fn inventory_yaml(state: &LabState) -> String {
    // JSON strings are YAML double-quoted scalars: any path is quoted right.
    let q = |p: &Path| serde_json::Value::String(p.display().to_string()).to_string();
    let paths = state.paths();
    let mut s = format!(
        "# A rampart lab: {} hosts in {} (lab index {}), made by `rampart lab up`.\n\
         # Removed by `rampart lab down --dir {}`.\n\
         defaults:\n  user: root\n  port: 22\n  identity_file: {}\n  known_hosts: {}\n\
         \x20 ssh_config: none   # a lab is reached the same way whatever ~/.ssh/config says\n\
         hosts:\n",
        state.hosts.len(),
        state.subnet.as_deref().unwrap_or("?"),
        state.index.map(|k| k.to_string()).unwrap_or_default(),
        state.dir.display(),
        q(&paths.identity()),
        q(&paths.known_hosts()),
    );
    for h in &state.hosts {
        let _ = writeln!(s, "  {}: {{address: {}}}", h.name, h.address);
    }
    s.push_str("groups:\n");
    let kinds = if state.kinds.is_empty() {
        Kind::default_cycle()
    } else {
        state.kinds.clone()
    };
    for k in kinds {
        let names: Vec<&str> = state
            .hosts
            .iter()
            .filter(|h| h.kind == k)
            .map(|h| h.name.as_str())
            .collect();
        let _ = writeln!(s, "  {k}: [{}]", names.join(", "));
    }
    s
}

/// What `lab up` prints: where the lab is and how to use it.
pub fn up_summary(state: &LabState, took: Duration) -> String {
    let paths = state.paths();
    let (first, last) = match (state.hosts.first(), state.hosts.last()) {
        (Some(f), Some(l)) => (f.address.to_string(), l.address.to_string()),
        _ => (String::new(), String::new()),
    };
    format!(
        "lab up: {} hosts ready in {:.1} s: {first} .. {last} ({}, lab index {}, bridge {})\n\
         \x20 inventory: {}\n\
         \x20 ssh:       ssh -i {} -o UserKnownHostsFile={} root@{first}\n\
         \x20 remove:    rampart lab down --dir {}\n",
        state.hosts.len(),
        took.as_secs_f64(),
        state.subnet.as_deref().unwrap_or("?"),
        state.index.map(|k| k.to_string()).unwrap_or_default(),
        state.bridge.as_deref().unwrap_or("?"),
        paths.inventory().display(),
        paths.identity().display(),
        paths.known_hosts().display(),
        state.dir.display(),
    )
}

/// What `lab down` removed.
#[derive(Debug, Clone, Default)]
pub struct DownSummary {
    pub dir: PathBuf,
    /// Whether there was anything of a lab to remove.
    pub found: bool,
    pub netns: usize,
    pub links: usize,
    pub processes: usize,
}

/// Remove every namespace, link, process and file of the lab in `dir`.
/// Idempotent; works on a half-built or crashed lab.
pub fn down(dir: &Path) -> Result<DownSummary> {
    let tools = sys::preflight(true)?;
    let dir = lab_dir(dir)?;
    down_with(&tools, &dir)
}

fn down_with(tools: &sys::Tools, dir: &Path) -> Result<DownSummary> {
    let paths = LabPaths::new(dir);
    let mut sum = DownSummary {
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    let state = match LabState::load(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lab: warning: {e}; removing what the bridge label points to");
            None
        }
    };
    let mut indices: BTreeSet<u32> = net::bridges_of(dir).into_iter().collect();
    if let Some(k) = state.as_ref().and_then(|s| s.index) {
        match net::bridge_owner(k) {
            // No bridge: nobody else holds k, so rp{k}-* leftovers are ours.
            None => {
                indices.insert(k);
            }
            Some(a) if a == net::bridge_alias(dir) => {
                indices.insert(k);
            }
            Some(_) => {
                eprintln!("lab: index {k} now belongs to another lab; leaving its namespaces alone")
            }
        }
    }
    sum.found = state.is_some() || !indices.is_empty() || paths.state().exists();
    let mut errors = Vec::new();
    for k in &indices {
        match clean_index(tools, *k, true) {
            Ok((netns, links, procs)) => {
                sum.netns += netns;
                sum.links += links;
                sum.processes += procs;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    // After the processes are gone (clean_index) nothing holds the tmpfs.
    if let Err(e) = unmount_hosts_dir(tools, &paths) {
        errors.push(e.to_string());
    }
    if sum.found {
        for p in paths.generated() {
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            match r {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    errors.push(format!("cannot remove {}: {e}", p.display()));
                }
                _ => {}
            }
        }
        // The dir itself too, if `lab up` made it and nothing else lives there.
        let _ = fs::remove_dir(dir);
    }
    if errors.is_empty() {
        Ok(sum)
    } else {
        Err(Error::Lab(errors.join("\n")))
    }
}

/// Make the lab's random root password, write it to `D/root_password`
/// (0600) and return its SHA-512 crypt hash for the hosts' /etc/shadow. The
/// password goes to `openssl passwd` on stdin, never on a command line.
fn root_password(tools: &sys::Tools, paths: &LabPaths) -> Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut raw = [0u8; 18];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(|e| Error::io("cannot read /dev/urandom", e))?;
    let password: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let path = paths.root_password();
    let _ = fs::remove_file(&path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{password}\n").as_bytes()))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    let out = sys::run_ok(
        std::process::Command::new(&tools.openssl).args(["passwd", "-6", "-stdin"]),
        Some(format!("{password}\n").as_bytes()),
        Duration::from_secs(10),
    )?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !hash.starts_with("$6$") {
        return Err(Error::Lab(format!(
            "openssl passwd gave no SHA-512 crypt hash: {hash:?}"
        )));
    }
    Ok(hash)
}

/// Source name of the tmpfs on `D/hosts`; hosts recognize other labs' by it.
pub const HOSTS_TMPFS: &str = "rampart-lab-hosts";

/// Mount a tmpfs on `D/hosts`: each host needs a few dozen small files and
/// dirs (overlay upper dirs, keys, configs), and on a virtual disk each
/// costs about a millisecond: three quarters of the time of `lab up 300`
/// went there. Hosts of other labs that boot while it is mounted detach
/// their copy of it (see [`host`]), so it vanishes with `lab down`.
fn mount_hosts_dir(tools: &sys::Tools, paths: &LabPaths) -> Result<()> {
    let dir = paths.hosts_dir();
    fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    sys::run_ok(
        std::process::Command::new(&tools.mount)
            .args(["-t", "tmpfs", "-o", "mode=0755", HOSTS_TMPFS])
            .arg(&dir),
        None,
        Duration::from_secs(10),
    )?;
    Ok(())
}

/// Whether `dir` is a mount point in this mount namespace.
fn is_mounted(dir: &Path) -> bool {
    let want = dir.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

/// Unmount `D/hosts` (every layer, should it be mounted twice); lazily if
/// something still holds it, so that `lab down` never leaves it behind.
fn unmount_hosts_dir(tools: &sys::Tools, paths: &LabPaths) -> Result<()> {
    let dir = paths.hosts_dir();
    for _ in 0..10 {
        if !is_mounted(&dir) {
            return Ok(());
        }
        let out = sys::run(
            std::process::Command::new(&tools.umount).arg(&dir),
            None,
            Duration::from_secs(10),
        )?;
        if !out.status.success() {
            sys::run(
                std::process::Command::new(&tools.umount)
                    .arg("-l")
                    .arg(&dir),
                None,
                Duration::from_secs(10),
            )?;
        }
    }
    Err(Error::Lab(format!("cannot unmount {}", dir.display())))
}

/// Remove everything of lab index k from the machine: processes, veths,
/// namespaces and (with `bridge`) the bridge, last, so that k stays taken
/// until all else is gone. Returns (namespaces, links, processes) removed.
fn clean_index(tools: &sys::Tools, k: u32, bridge: bool) -> Result<(usize, usize, usize)> {
    let netns = net::netns_of(k);
    let procs = net::kill_all_in(&netns, Duration::from_secs(10))?;
    let veths = net::veths_of(k);
    // Deleting the namespaces first lets the kernel tear their veths down in
    // one batch (deleting 100 veths one by one takes seconds); the few a
    // lingering reference keeps alive are deleted by name afterwards.
    let lines: Vec<String> = netns.iter().map(|n| format!("netns del {n}")).collect();
    net::ip_batch(tools, &lines, true)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !net::veths_of(k).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let mut lines: Vec<String> = net::veths_of(k)
        .iter()
        .map(|v| format!("link del {v}"))
        .collect();
    let has_bridge = bridge && net::bridge_owner(k).is_some();
    if has_bridge {
        lines.push(format!("link del {}", net::bridge_name(k)));
    }
    net::ip_batch(tools, &lines, true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left_ns = net::netns_of(k);
        let left_links = net::veths_of(k);
        let left_bridge = bridge && net::bridge_owner(k).is_some();
        if left_ns.is_empty() && left_links.is_empty() && !left_bridge {
            break;
        }
        if Instant::now() >= deadline {
            return Err(Error::Lab(format!(
                "lab index {k}: could not remove namespaces {left_ns:?}, links {left_links:?}{}",
                if left_bridge { ", bridge" } else { "" }
            )));
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok((netns.len(), veths.len() + usize::from(has_bridge), procs))
}

/// What `lab reboot` did to one host.
#[derive(Debug, Clone)]
pub struct Rebooted {
    pub name: String,
    pub kind: Kind,
    /// From the kill to SSH answering, or why the host did not come back.
    pub outcome: std::result::Result<(Duration, host::BootReport), String>,
}

/// `lab reboot HOST...` (`all` for every host): power-cycle them, in
/// parallel (see [`host::reboot`]). Every host named is attempted; each
/// one's outcome is in the result.
pub fn reboot(dir: &Path, names: &[String]) -> Result<Vec<Rebooted>> {
    let tools = sys::preflight(false)?;
    let dir = lab_dir(dir)?;
    let state = LabState::load(&dir)?
        .ok_or_else(|| Error::Lab(format!("no lab in {} (no state.json)", dir.display())))?;
    if !state.complete {
        return Err(Error::Lab(format!(
            "the lab in {} is incomplete: rebuild it with `lab up`",
            dir.display()
        )));
    }
    if names.is_empty() {
        return Err(Error::Lab("name the hosts to reboot (or `all`)".into()));
    }
    for n in names {
        if n != "all" && state.host(n).is_none() {
            return Err(Error::Lab(format!(
                "no host {n} in the lab at {}",
                dir.display()
            )));
        }
    }
    let hosts: Vec<&HostState> = state
        .hosts
        .iter()
        .filter(|h| names.iter().any(|n| n == "all" || *n == h.name))
        .collect();
    let done = Mutex::new(Vec::new());
    let _ = for_each_parallel(&hosts, WORKERS, |h| {
        let t = Instant::now();
        let outcome = host::reboot(&tools, &state, h)
            .map(|boot| (t.elapsed(), boot))
            .map_err(|e| e.to_string());
        if let Ok(mut d) = done.lock() {
            d.push(Rebooted {
                name: h.name.clone(),
                kind: h.kind,
                outcome,
            });
        }
        Ok(())
    });
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(done)
}

/// `lab reboot`'s report: per host, how long until SSH answered, its init,
/// and every firewall loader it ran with its exit status.
pub fn reboot_summary(done: &[Rebooted], took: Duration) -> String {
    let mut s = String::new();
    for r in done {
        match &r.outcome {
            Ok((t, boot)) => {
                let _ = writeln!(
                    s,
                    "{} ({}): SSH answers {:.1} s after the power cut; {}, {}",
                    r.name,
                    r.kind,
                    t.as_secs_f64(),
                    boot.init.name(),
                    match boot.loaders.len() {
                        0 => "no firewall loader enabled".to_string(),
                        1 => "1 firewall loader:".to_string(),
                        n => format!("{n} firewall loaders:"),
                    }
                );
                for l in &boot.loaders {
                    let _ = writeln!(s, "  {}", l.describe());
                }
            }
            Err(e) => {
                let _ = writeln!(s, "{} ({}): FAILED: {e}", r.name, r.kind);
            }
        }
    }
    let failed = done.iter().filter(|r| r.outcome.is_err()).count();
    let ok = done.len() - failed;
    let _ = writeln!(
        s,
        "lab reboot: {ok} host{} rebooted in {:.1} s{}",
        if ok == 1 { "" } else { "s" },
        took.as_secs_f64(),
        if failed > 0 {
            format!(", {failed} FAILED")
        } else {
            String::new()
        }
    );
    s
}

/// `lab rootfs [KIND...]`: build the root filesystems of these distros
/// (all of them when none is named) that the cache lacks, or all of them
/// again with `refresh`. Returns each one and whether it was built now.
pub fn build_rootfs(
    kinds: &[Distro],
    cache: &Path,
    refresh: bool,
) -> Result<Vec<(rootfs::Rootfs, bool)>> {
    if !sys::is_root() {
        return Err(Error::Lab(
            "building root filesystems needs root (debootstrap, chroot, namespaces)".into(),
        ));
    }
    let kinds = if kinds.is_empty() {
        Distro::ALL.to_vec()
    } else {
        kinds.to_vec()
    };
    ensure_rootfs(&kinds, cache, refresh)
}

/// [`rootfs::ensure`] for each kind, in parallel; in the order given.
fn ensure_rootfs(
    kinds: &[Distro],
    cache: &Path,
    refresh: bool,
) -> Result<Vec<(rootfs::Rootfs, bool)>> {
    // Two at a time: one downloads and unpacks (network, disk) while the
    // other configures (CPU); more only make a 2-core machine thrash.
    let done = Mutex::new(Vec::new());
    for_each_parallel(kinds, 2, |d| {
        let r = rootfs::ensure(cache, *d, refresh)?;
        if let Ok(mut v) = done.lock() {
            v.push(r);
        }
        Ok(())
    })?;
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(r, _)| kinds.iter().position(|k| *k == r.distro));
    Ok(done)
}

/// The table of built root filesystems: what each kind really runs.
pub fn rootfs_table(list: &[(rootfs::Rootfs, bool)]) -> String {
    let mut s = format!(
        "{:<16} {:<9} {:<8} {:<9} {:<10} {:<15} {:<8} {}\n",
        "KIND", "SUITE", "OPENSSH", "IPTABLES", "BACKEND", "SH", "BUILD", "ROOT"
    );
    for (r, built) in list {
        let i = &r.info;
        let sh = if i.sh == "busybox" {
            format!("busybox {}", i.upstream("busybox"))
        } else {
            i.sh.clone()
        };
        let _ = writeln!(
            s,
            "{:<16} {:<9} {:<8} {:<9} {:<10} {:<15} {:<8} {}",
            r.distro.name(),
            i.suite,
            i.upstream("openssh-server"),
            i.upstream("iptables"),
            i.backend,
            sh,
            if *built {
                format!("{} s", i.build_seconds)
            } else {
                "cached".to_string()
            },
            r.root().display()
        );
    }
    s
}

/// `lab status`: a table of hosts and whether each sshd answers. Returns
/// the text and whether all hosts answer. Reads only; needs no root.
pub fn status(dir: &Path) -> Result<(String, bool)> {
    let dir = lab_dir(dir)?;
    let state = LabState::load(&dir)?
        .ok_or_else(|| Error::Lab(format!("no lab in {} (no state.json)", dir.display())))?;
    let up: Vec<bool> = {
        let res = Mutex::new(vec![false; state.hosts.len()]);
        let idx: Vec<usize> = (0..state.hosts.len()).collect();
        let _ = for_each_parallel(&idx, 32, |i| {
            let ok = host::answers(state.hosts[*i].address, Duration::from_millis(500));
            if let Ok(mut r) = res.lock() {
                r[*i] = ok;
            }
            Ok(())
        });
        res.into_inner().unwrap_or_default()
    };
    let answering = up.iter().filter(|u| **u).count();
    let mut s = format!(
        "lab {}: {} hosts in {} (lab index {}, bridge {}), {} answering{}\n",
        dir.display(),
        state.hosts.len(),
        state.subnet.as_deref().unwrap_or("?"),
        state.index.map(|k| k.to_string()).unwrap_or("?".into()),
        state.bridge.as_deref().unwrap_or("?"),
        answering,
        if state.complete {
            ""
        } else {
            " (incomplete: rebuild with `lab up`)"
        }
    );
    let _ = writeln!(
        s,
        "{:<6} {:<15} {:<15} {:<8} {:<14} SSHD",
        "NAME", "ADDRESS", "KIND", "USERLAND", "NETNS"
    );
    for (h, up) in state.hosts.iter().zip(&up) {
        let _ = writeln!(
            s,
            "{:<6} {:<15} {:<15} {:<8} {:<14} {}",
            h.name,
            h.address.to_string(),
            h.kind.name(),
            h.kind.userland(),
            h.netns,
            if *up { "up" } else { "DOWN" }
        );
    }
    Ok((s, answering == state.hosts.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_dirs_that_hosts_overlay_or_hide_are_refused() {
        for d in [
            "/tmp/x",
            "/var/lib/lab",
            "/etc",
            "/root/lab",
            "/run/x",
            "/",
            "/srv/../tmp/x",
        ] {
            let e = lab_dir(Path::new(d)).expect_err(d).to_string();
            assert!(e.starts_with("lab: "), "{e}");
        }
        for d in ["/srv/a b", "/srv/a,b", "/srv/a:b", "/srv/a\"b"] {
            let e = lab_dir(Path::new(d)).expect_err(d).to_string();
            assert!(e.contains("letters, digits"), "{e}");
        }
        let ok = lab_dir(Path::new("/srv/./rampart-lab/../rampart-lab")).expect("a fine dir");
        assert_eq!(ok, Path::new("/srv/rampart-lab"));
    }

    #[test]
    fn every_lab_fits_in_the_benchmark_range_and_names_fit_the_kernel() {
        let last = net::host_address(net::MAX_LABS - 1, net::MAX_HOSTS);
        assert_eq!(last.to_string(), "198.19.255.254");
        assert_eq!(net::gateway(3).to_string(), "198.18.12.1");
        assert_eq!(net::host_address(3, 1).to_string(), "198.18.12.2");
        assert!(net::veth_name(net::MAX_LABS - 1, net::MAX_HOSTS).len() <= 15);
        assert!(net::bridge_name(net::MAX_LABS - 1).len() <= 15);
        assert_eq!(net::host_mac(3, 258), "02:72:70:03:01:02");
        assert_ne!(net::bridge_mac(3), net::host_mac(3, net::MAX_HOSTS));
    }

    #[test]
    fn distros_name_real_root_filesystems_and_personalities_without_one() {
        let list = |s: &str| Kind::parse_list(&[s.to_string()]);
        let kinds = list("debian12,centos6,busybox").expect("valid kinds");
        assert_eq!(
            kinds,
            [
                Kind::Distro(Distro::Debian12),
                Kind::Personality(Personality::Centos6),
                Kind::Distro(Distro::Busybox)
            ]
        );
        for bad in ["debian14", "debian12,debian12", "", "centos6,,x"] {
            let e = list(bad).expect_err(bad).to_string();
            assert!(e.starts_with("lab: "), "{bad}: {e}");
        }
        // state.json tells the real debian12 from the personality.
        let real = serde_json::to_string(&Kind::Distro(Distro::Debian12)).expect("encode");
        let persona =
            serde_json::to_string(&Kind::Personality(Personality::Debian12)).expect("encode");
        assert_eq!(real, r#"{"distro":"debian12"}"#);
        assert_eq!(persona, r#"{"personality":"debian12"}"#);
        assert_eq!(Kind::default_cycle().len(), 4);
    }

    #[test]
    fn inventory_lists_hosts_and_one_group_per_personality() {
        let state = LabState {
            version: state::STATE_VERSION,
            dir: PathBuf::from("/srv/lab"),
            index: Some(0),
            subnet: Some("198.18.0.0/22".into()),
            bridge: Some("rpbr0".into()),
            gateway: Some(net::gateway(0)),
            creator: Creator {
                pid: 1,
                start_time: None,
            },
            complete: true,
            kinds: Vec::new(),
            hosts: (1..=5)
                .map(|i| HostState {
                    name: format!("h{i:03}"),
                    address: net::host_address(0, i),
                    kind: Kind::Personality(Personality::of_host(i)),
                    rootfs: None,
                    netns: net::netns_name(0, &format!("h{i:03}")),
                    veth: net::veth_name(0, i),
                    mac: net::host_mac(0, i),
                })
                .collect(),
        };
        let yaml = inventory_yaml(&state);
        assert!(yaml.contains("defaults:\n  user: root\n  port: 22\n  identity_file: \"/srv/lab/id_ed25519\"\n  known_hosts: \"/srv/lab/known_hosts\"\n"), "{yaml}");
        assert!(yaml.contains("  h005: {address: 198.18.0.6}\n"), "{yaml}");
        assert!(yaml.contains("  centos6: [h001, h005]\n  rocky9: [h002]\n  debian12: [h003]\n  ubuntu22: [h004]\n"), "{yaml}");
    }
}
