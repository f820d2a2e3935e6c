//! What a host's init runs at boot to load its persisted firewall rules,
//! found the way that init would find it, so that `lab reboot` (and every
//! boot) tests the distribution's loader, and rampart's own, for real.
//!
//! The init system is decided exactly as rampart decides it on a host
//! (docs/design.md, "Persistence and boot"), so that the lab and the engine
//! never disagree about a host:
//! - systemd iff `/run/systemd/system` is a directory, or `/sbin/init`
//!   resolves to a path ending in `/systemd` and `/etc/systemd/system` is a
//!   directory;
//! - else OpenRC if `/sbin/openrc-run` or `/sbin/openrc` is executable;
//! - else sysvinit if `/etc/init.d` exists.
//!
//! Then the firewall loaders that init would start, in its order:
//! - systemd: the units named `netfilter-persistent.service`,
//!   `iptables.service`, `ip6tables.service` or `rampart-*.service` enabled
//!   (linked) in `/etc/systemd/system/{sysinit,network-pre,multi-user}.target.wants`;
//!   each runs its `ExecStart=` lines in order, honouring the `-` prefix
//!   (failure ignored), `ConditionPathExists=` and `AssertPathExists=`, and
//!   `Environment=`. Not modelled: drop-ins, `$VAR` expansion, specifiers.
//! - sysvinit: `/etc/init.d/NAME start` for the `S??NAME` links of
//!   `/etc/rcS.d`, then `/etc/rc3.d` on RHEL-like hosts (`/etc/redhat-release`)
//!   or `/etc/rc2.d` (Debian's default runlevel), NAME one of
//!   netfilter-persistent, iptables-persistent, iptables, ip6tables, rampart-*.
//! - OpenRC: `/etc/init.d/NAME start` for NAME in
//!   `/etc/runlevels/{sysinit,boot,default}/`.
//!
//! Files are read from the machine through `/proc/<keeper>/root`, so
//! symlinks (absolute ones included) are resolved here, inside that root,
//! never against the machine's own filesystem.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The init system a host boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitSystem {
    Systemd,
    OpenRc,
    SysVinit,
    /// None of the above: nothing runs at boot.
    None,
}

impl InitSystem {
    pub fn name(self) -> &'static str {
        match self {
            InitSystem::Systemd => "systemd",
            InitSystem::OpenRc => "openrc",
            InitSystem::SysVinit => "sysvinit",
            InitSystem::None => "no init",
        }
    }
}

/// One command of a loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<String>,
    /// systemd's `-` prefix: a failure does not fail the unit.
    pub ignore_failure: bool,
}

/// What init would do with one loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run these commands in order, stopping at the first failure.
    Run {
        commands: Vec<Cmd>,
        env: Vec<(String, String)>,
    },
    /// Not started, and not an error (a condition is false).
    Skip(String),
    /// Not started, and init reports a failure (missing unit file, failed assertion).
    Fail(String),
}

/// One enabled loader of firewall rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loader {
    /// What enables it: the wants link, rc link or runlevel entry.
    pub via: String,
    pub action: Action,
}

impl Loader {
    /// The commands, as a person would type them.
    pub fn command_line(&self) -> String {
        match &self.action {
            Action::Run { commands, .. } => commands
                .iter()
                .map(|c| {
                    let line = c.argv.join(" ");
                    if c.ignore_failure {
                        format!("-{line}")
                    } else {
                        line
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            Action::Skip(why) | Action::Fail(why) => why.clone(),
        }
    }
}

/// What came of a loader at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderRun {
    pub loader: Loader,
    /// The exit status of its commands (None when not run, or when its
    /// result is missing: the boot script died).
    pub status: Option<i32>,
    /// What it printed (stdout and stderr), trimmed.
    pub output: String,
}

impl LoaderRun {
    /// One line for `lab reboot`'s report.
    pub fn describe(&self) -> String {
        let outcome = match (&self.loader.action, self.status) {
            (Action::Skip(why), _) => format!("skipped: {why}"),
            (Action::Fail(why), _) => format!("failed: {why}"),
            (Action::Run { .. }, Some(0)) => "exit 0".to_string(),
            (Action::Run { .. }, Some(n)) => format!("exit {n}"),
            (Action::Run { .. }, None) => "did not finish".to_string(),
        };
        let mut s = format!(
            "{}: {}: {outcome}",
            self.loader.via,
            self.loader.command_line()
        );
        if self.status.is_some_and(|n| n != 0) && !self.output.is_empty() {
            let last = self.output.lines().last().unwrap_or_default();
            s.push_str(&format!(" ({last})"));
        }
        s
    }
}

/// Resolve `path` (absolute, as the host sees it) inside `root`, following
/// symlinks the way the host would: an absolute target starts again at
/// `root`. Returns where it lands on the machine, or None when a
/// component is missing or the links loop.
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let mut todo: VecDeque<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let here = done
            .iter()
            .fold(root.to_path_buf(), |p, d| p.join(d))
            .join(&c);
        let meta = fs::symlink_metadata(&here).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = fs::read_link(&here).ok()?;
            let t = target.to_string_lossy();
            if t.starts_with('/') {
                done.clear();
            }
            for part in t.split('/').filter(|p| !p.is_empty()).rev() {
                todo.push_front(part.to_string());
            }
        } else {
            done.push(c);
        }
    }
    Some(done.iter().fold(root.to_path_buf(), |p, d| p.join(d)))
}

fn is_dir(root: &Path, path: &str) -> bool {
    resolve(root, path).is_some_and(|p| p.is_dir())
}

fn exists(root: &Path, path: &str) -> bool {
    resolve(root, path).is_some()
}

fn is_executable(root: &Path, path: &str) -> bool {
    resolve(root, path)
        .and_then(|p| fs::metadata(p).ok())
        .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The init system of the host whose `/` is `root` (see the module doc).
pub fn init_system(root: &Path) -> InitSystem {
    // Where /sbin/init lands, as the host sees it (its own path, not ours).
    let init_is_systemd = resolve(root, "/sbin/init")
        .and_then(|p| {
            p.strip_prefix(root)
                .ok()
                .map(|rel| rel.to_string_lossy().into_owned())
        })
        .is_some_and(|rel| rel.ends_with("/systemd"));
    if is_dir(root, "/run/systemd/system")
        || (init_is_systemd && is_dir(root, "/etc/systemd/system"))
    {
        InitSystem::Systemd
    } else if is_executable(root, "/sbin/openrc-run") || is_executable(root, "/sbin/openrc") {
        InitSystem::OpenRc
    } else if is_dir(root, "/etc/init.d") {
        InitSystem::SysVinit
    } else {
        InitSystem::None
    }
}

/// Whether a service name is a firewall loader (init.d or runlevel name).
fn is_loader_name(name: &str) -> bool {
    matches!(
        name,
        "netfilter-persistent" | "iptables-persistent" | "iptables" | "ip6tables"
    ) || (name.starts_with("rampart-") && name.len() > "rampart-".len())
}

/// Names in a directory of the host, sorted.
fn list(root: &Path, dir: &str) -> Vec<String> {
    let Some(d) = resolve(root, dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// The init system and the firewall loaders it would start, in order.
pub fn discover(root: &Path) -> (InitSystem, Vec<Loader>) {
    let init = init_system(root);
    let loaders = match init {
        InitSystem::Systemd => systemd_loaders(root),
        InitSystem::SysVinit => sysv_loaders(root),
        InitSystem::OpenRc => openrc_loaders(root),
        InitSystem::None => Vec::new(),
    };
    (init, loaders)
}

/// Where systemd looks for a unit by name, first match wins.
const UNIT_PATH: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

fn systemd_loaders(root: &Path) -> Vec<Loader> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for target in ["sysinit", "network-pre", "multi-user"] {
        let wants = format!("/etc/systemd/system/{target}.target.wants");
        for unit in list(root, &wants) {
            let Some(base) = unit.strip_suffix(".service") else {
                continue;
            };
            // iptables-persistent has an init script, but no unit of its own.
            if !is_loader_name(base) || base == "iptables-persistent" {
                continue;
            }
            if seen.contains(&unit) {
                continue;
            }
            seen.push(unit.clone());
            let via = format!("{wants}/{unit}");
            // By name along the unit path, as systemd loads it; else where
            // the link points.
            let file = UNIT_PATH
                .iter()
                .filter_map(|d| resolve(root, &format!("{d}/{unit}")))
                .find(|p| p.is_file())
                .or_else(|| resolve(root, &via).filter(|p| p.is_file()));
            let action = match file.and_then(|f| fs::read_to_string(f).ok()) {
                Some(text) => unit_action(&parse_unit(&text), root),
                None => Action::Fail(format!("unit file {unit} not found")),
            };
            out.push(Loader { via, action });
        }
    }
    out
}

fn sysv_loaders(root: &Path) -> Vec<Loader> {
    let runlevel = if exists(root, "/etc/redhat-release") {
        "/etc/rc3.d"
    } else {
        "/etc/rc2.d"
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for dir in ["/etc/rcS.d", runlevel] {
        for link in list(root, dir) {
            let Some(rest) = link.strip_prefix('S') else {
                continue;
            };
            if rest.len() < 3 || !rest.as_bytes()[..2].iter().all(u8::is_ascii_digit) {
                continue;
            }
            let name = &rest[2..];
            if !is_loader_name(name) || seen.iter().any(|s| s == name) {
                continue;
            }
            seen.push(name.to_string());
            out.push(init_script(root, format!("{dir}/{link}"), name));
        }
    }
    out
}

fn openrc_loaders(root: &Path) -> Vec<Loader> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for level in ["sysinit", "boot", "default"] {
        let dir = format!("/etc/runlevels/{level}");
        for name in list(root, &dir) {
            if !is_loader_name(&name) || seen.contains(&name) {
                continue;
            }
            seen.push(name.clone());
            out.push(init_script(root, format!("{dir}/{name}"), &name));
        }
    }
    out
}

fn init_script(root: &Path, via: String, name: &str) -> Loader {
    let script = format!("/etc/init.d/{name}");
    let action = if is_executable(root, &script) {
        Action::Run {
            commands: vec![Cmd {
                argv: vec![script, "start".into()],
                ignore_failure: false,
            }],
            env: Vec::new(),
        }
    } else {
        Action::Fail(format!("{script} is missing or not executable"))
    };
    Loader { via, action }
}

/// A unit file: section -> (key, value) in order, continuation lines joined.
pub fn parse_unit(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let full = format!("{pending}{line}");
        pending.clear();
        if full.starts_with('[') && full.ends_with(']') {
            section = full[1..full.len() - 1].to_string();
            continue;
        }
        if let Some((k, v)) = full.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// What systemd does with a parsed unit at boot.
fn unit_action(unit: &BTreeMap<String, Vec<(String, String)>>, root: &Path) -> Action {
    let empty = Vec::new();
    let u = unit.get("Unit").unwrap_or(&empty);
    for (k, v) in u {
        let (negate, path) = match v.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, v.as_str()),
        };
        let path = path.trim_start_matches('|');
        if k != "ConditionPathExists" && k != "AssertPathExists" {
            continue;
        }
        if exists(root, path) == negate {
            let what = format!("{k}={v} is false");
            return if k.starts_with("Condition") {
                Action::Skip(what)
            } else {
                Action::Fail(what)
            };
        }
    }
    let s = unit.get("Service").unwrap_or(&empty);
    let mut commands = Vec::new();
    let mut env = Vec::new();
    for (k, v) in s {
        match k.as_str() {
            "ExecStart" if v.is_empty() => commands.clear(),
            "ExecStart" => {
                if let Some(c) = exec_command(v) {
                    commands.push(c);
                }
            }
            "Environment" => {
                for w in split_words(v) {
                    if let Some((a, b)) = w.split_once('=') {
                        env.push((a.to_string(), b.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    if commands.is_empty() {
        return Action::Fail("no ExecStart=".into());
    }
    Action::Run { commands, env }
}

/// One `ExecStart=` value: prefixes `-@:+!` (and `!!`) off the first word,
/// `@` meaning the next word is argv[0] (dropped: the path runs).
pub fn exec_command(value: &str) -> Option<Cmd> {
    let mut words = split_words(value);
    if words.is_empty() {
        return None;
    }
    let first = words.remove(0);
    let prefix_len = first
        .find(|c: char| !"-@:+!".contains(c))
        .unwrap_or(first.len());
    let (prefix, path) = first.split_at(prefix_len);
    if path.is_empty() {
        return None;
    }
    if prefix.contains('@') && !words.is_empty() {
        words.remove(0);
    }
    let mut argv = vec![path.to_string()];
    argv.extend(words);
    Some(Cmd {
        argv,
        ignore_failure: prefix.contains('-'),
    })
}

/// systemd's word splitting: whitespace separates, single and double quotes
/// group, backslash escapes (`\n`, `\t`, and any other character as itself).
pub fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some('n') => cur.push('\n'),
                    Some('t') => cur.push('\t'),
                    Some(o) => cur.push(o),
                    None => {}
                }
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Single-quote a word for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A POSIX sh script (dash, bash, busybox ash) that runs the loaders in
/// order inside the host, each framed by markers, then `then` (sshd):
/// `@@loader I`, its output, `@@rc N`.
pub fn script(loaders: &[Loader], then: &[String]) -> String {
    let mut s = String::from(
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PATH\nexec 2>&1 </dev/null\ncd /\n",
    );
    for (i, l) in loaders.iter().enumerate() {
        let Action::Run { commands, env } = &l.action else {
            continue;
        };
        let env_prefix: String = if env.is_empty() {
            String::new()
        } else {
            let mut e = String::from("env");
            for (k, v) in env {
                e.push(' ');
                e.push_str(&sh_quote(&format!("{k}={v}")));
            }
            e.push(' ');
            e
        };
        let steps: Vec<String> = commands
            .iter()
            .map(|c| {
                let argv: Vec<String> = c.argv.iter().map(|a| sh_quote(a)).collect();
                let cmd = format!("{env_prefix}{}", argv.join(" "));
                if c.ignore_failure {
                    format!("{{ {cmd} || :; }}")
                } else {
                    cmd
                }
            })
            .collect();
        s.push_str(&format!(
            "echo '@@loader {i}'\n{{ {}; }}\necho \"@@rc $?\"\n",
            steps.join(" && ")
        ));
    }
    if !then.is_empty() {
        let argv: Vec<String> = then.iter().map(|a| sh_quote(a)).collect();
        s.push_str(&format!(
            "echo '@@sshd'\n{}\necho \"@@rc $?\"\n",
            argv.join(" ")
        ));
    }
    s
}

/// Read back what [`script`] printed: each loader's run, and the exit
/// status of `then` (None when it never reported).
pub fn results(loaders: &[Loader], output: &str) -> (Vec<LoaderRun>, Option<i32>) {
    let mut runs: Vec<LoaderRun> = loaders
        .iter()
        .map(|l| LoaderRun {
            loader: l.clone(),
            status: None,
            output: String::new(),
        })
        .collect();
    let mut then = None;
    // Which block the lines belong to: Some(Some(i)) loader i, Some(None) `then`.
    let mut current: Option<Option<usize>> = None;
    let mut text = String::new();
    for line in output.lines() {
        if let Some(i) = line.strip_prefix("@@loader ") {
            current = i.trim().parse().ok().map(Some);
            text.clear();
        } else if line == "@@sshd" {
            current = Some(None);
            text.clear();
        } else if let Some(rc) = line.strip_prefix("@@rc ") {
            let rc = rc.trim().parse().ok();
            match current.take() {
                Some(Some(i)) => {
                    if let Some(r) = runs.get_mut(i) {
                        r.status = rc;
                        r.output = text.trim().to_string();
                    }
                }
                Some(None) => then = rc,
                None => {}
            }
            text.clear();
        } else if current.is_some() {
            text.push_str(line);
            text.push('\n');
        }
    }
    (runs, then)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "rampart-loaders-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn put(root: &Path, rel: &str, text: &str, mode: u32) {
        let p = root.join(rel.trim_start_matches('/'));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, text).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn ln(root: &Path, target: &str, rel: &str) {
        let p = root.join(rel.trim_start_matches('/'));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        symlink(target, p).expect("symlink");
    }

    #[test]
    fn words_split_like_systemd() {
        assert_eq!(
            split_words(r#"/bin/sh -c 'if [ -f /a ]; then x < /a; fi'"#),
            ["/bin/sh", "-c", "if [ -f /a ]; then x < /a; fi"]
        );
        assert_eq!(split_words(r#"a "b c" d\ e"#), ["a", "b c", "d e"]);
        assert_eq!(split_words("  "), Vec::<String>::new());
        assert_eq!(split_words("x ''"), ["x", ""]);
        let c = exec_command("-/usr/sbin/netfilter-persistent start").expect("a command");
        assert!(c.ignore_failure);
        assert_eq!(c.argv, ["/usr/sbin/netfilter-persistent", "start"]);
        let c = exec_command("@/bin/sleep sleeper 3").expect("a command");
        assert_eq!(c.argv, ["/bin/sleep", "3"]);
        assert!(!c.ignore_failure);
        let c = exec_command("+!!/usr/bin/x").expect("a command");
        assert_eq!(c.argv, ["/usr/bin/x"]);
        assert_eq!(exec_command(""), None);
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let r = tree();
        put(&r, "/usr/lib/systemd/systemd", "", 0o755);
        ln(&r, "usr/sbin", "/sbin");
        ln(&r, "/lib/systemd/systemd", "/usr/sbin/init");
        ln(&r, "usr/lib", "/lib");
        let got = resolve(&r, "/sbin/init").expect("resolves");
        assert_eq!(got, r.join("usr/lib/systemd/systemd"));
        ln(&r, "/loop", "/loop");
        assert_eq!(resolve(&r, "/loop"), None);
        assert_eq!(resolve(&r, "/nope/x"), None);
        // An absolute link never escapes to the machine's /etc.
        ln(&r, "/etc/passwd", "/p");
        assert_eq!(resolve(&r, "/p"), None);
        fs::remove_dir_all(&r).expect("cleanup");
    }

    #[test]
    fn init_system_follows_the_engine_contract() {
        let r = tree();
        assert_eq!(init_system(&r), InitSystem::None);
        fs::create_dir_all(r.join("etc/init.d")).expect("mkdir");
        assert_eq!(init_system(&r), InitSystem::SysVinit);
        put(&r, "/lib/systemd/systemd", "", 0o755);
        ln(&r, "/lib/systemd/systemd", "/sbin/init");
        // systemd as init, but no /etc/systemd/system: not a systemd host.
        assert_eq!(init_system(&r), InitSystem::SysVinit);
        fs::create_dir_all(r.join("etc/systemd/system")).expect("mkdir");
        assert_eq!(init_system(&r), InitSystem::Systemd);
        let r2 = tree();
        put(&r2, "/sbin/openrc-run", "", 0o755);
        fs::create_dir_all(r2.join("etc/init.d")).expect("mkdir");
        assert_eq!(init_system(&r2), InitSystem::OpenRc);
        fs::create_dir_all(r2.join("run/systemd/system")).expect("mkdir");
        assert_eq!(init_system(&r2), InitSystem::Systemd);
        fs::remove_dir_all(&r).expect("cleanup");
        let _ = fs::remove_dir_all(&r2);
    }

    #[test]
    fn systemd_runs_enabled_firewall_units_in_target_order() {
        let r = tree();
        put(&r, "/lib/systemd/systemd", "", 0o755);
        ln(&r, "/lib/systemd/systemd", "/sbin/init");
        put(
            &r,
            "/etc/systemd/system/iptables.service",
            "[Unit]\nAssertPathExists=/etc/sysconfig/iptables\n[Service]\nType=oneshot\nEnvironment=BOOTUP=serial\nExecStart=/usr/sbin/iptables-restore \\\n  /etc/sysconfig/iptables\n",
            0o644,
        );
        put(
            &r,
            "/lib/systemd/system/rampart-firewall.service",
            "[Service]\nExecStart=-/bin/true\nExecStart=/usr/sbin/iptables-restore /etc/iptables/rules.v4\n",
            0o644,
        );
        let mu = "/etc/systemd/system/multi-user.target.wants";
        ln(
            &r,
            "/etc/systemd/system/iptables.service",
            &format!("{mu}/iptables.service"),
        );
        ln(
            &r,
            "/lib/systemd/system/ssh.service",
            &format!("{mu}/ssh.service"),
        );
        ln(
            &r,
            "/lib/systemd/system/nope.service",
            &format!("{mu}/ip6tables.service"),
        );
        ln(
            &r,
            "/lib/systemd/system/rampart-firewall.service",
            "/etc/systemd/system/network-pre.target.wants/rampart-firewall.service",
        );
        let (init, loaders) = discover(&r);
        assert_eq!(init, InitSystem::Systemd);
        let vias: Vec<&str> = loaders.iter().map(|l| l.via.as_str()).collect();
        assert_eq!(
            vias,
            [
                "/etc/systemd/system/network-pre.target.wants/rampart-firewall.service",
                "/etc/systemd/system/multi-user.target.wants/ip6tables.service",
                "/etc/systemd/system/multi-user.target.wants/iptables.service",
            ]
        );
        assert_eq!(
            loaders[0].action,
            Action::Run {
                commands: vec![
                    Cmd {
                        argv: vec!["/bin/true".into()],
                        ignore_failure: true
                    },
                    Cmd {
                        argv: vec![
                            "/usr/sbin/iptables-restore".into(),
                            "/etc/iptables/rules.v4".into()
                        ],
                        ignore_failure: false
                    }
                ],
                env: vec![]
            }
        );
        assert!(matches!(&loaders[1].action, Action::Fail(w) if w.contains("not found")));
        assert!(
            matches!(&loaders[2].action, Action::Fail(w) if w.contains("AssertPathExists")),
            "{loaders:?}"
        );
        put(&r, "/etc/sysconfig/iptables", "*filter\nCOMMIT\n", 0o600);
        let (_, loaders) = discover(&r);
        assert_eq!(
            loaders[2].action,
            Action::Run {
                commands: vec![Cmd {
                    argv: vec![
                        "/usr/sbin/iptables-restore".into(),
                        "/etc/sysconfig/iptables".into()
                    ],
                    ignore_failure: false
                }],
                env: vec![("BOOTUP".into(), "serial".into())]
            }
        );
        fs::remove_dir_all(&r).expect("cleanup");
    }

    #[test]
    fn sysvinit_runs_s_links_of_rcs_then_the_default_runlevel() {
        let r = tree();
        for name in [
            "netfilter-persistent",
            "ssh",
            "iptables",
            "rampart-firewall",
        ] {
            put(&r, &format!("/etc/init.d/{name}"), "#!/bin/sh\n", 0o755);
        }
        ln(
            &r,
            "../init.d/netfilter-persistent",
            "/etc/rcS.d/S01netfilter-persistent",
        );
        ln(&r, "../init.d/ssh", "/etc/rc2.d/S01ssh");
        ln(
            &r,
            "../init.d/rampart-firewall",
            "/etc/rc2.d/S02rampart-firewall",
        );
        ln(
            &r,
            "../init.d/rampart-firewall",
            "/etc/rc2.d/K02rampart-firewall",
        );
        ln(&r, "../init.d/iptables", "/etc/rc3.d/S08iptables");
        let (init, loaders) = discover(&r);
        assert_eq!(init, InitSystem::SysVinit);
        let lines: Vec<String> = loaders.iter().map(Loader::command_line).collect();
        assert_eq!(
            lines,
            [
                "/etc/init.d/netfilter-persistent start",
                "/etc/init.d/rampart-firewall start"
            ]
        );
        // A RHEL-like host boots into runlevel 3.
        put(
            &r,
            "/etc/redhat-release",
            "CentOS release 6.10 (Final)\n",
            0o644,
        );
        let (_, loaders) = discover(&r);
        let lines: Vec<String> = loaders.iter().map(Loader::command_line).collect();
        assert_eq!(
            lines,
            [
                "/etc/init.d/netfilter-persistent start",
                "/etc/init.d/iptables start"
            ]
        );
        fs::remove_dir_all(&r).expect("cleanup");
    }

    #[test]
    fn openrc_runs_runlevel_entries() {
        let r = tree();
        put(&r, "/sbin/openrc", "", 0o755);
        put(&r, "/etc/init.d/iptables", "#!/sbin/openrc-run\n", 0o755);
        ln(
            &r,
            "/etc/init.d/iptables",
            "/etc/runlevels/default/iptables",
        );
        ln(&r, "/etc/init.d/sshd", "/etc/runlevels/default/sshd");
        ln(&r, "/etc/init.d/ip6tables", "/etc/runlevels/boot/ip6tables");
        let (init, loaders) = discover(&r);
        assert_eq!(init, InitSystem::OpenRc);
        assert_eq!(loaders.len(), 2);
        assert!(matches!(loaders[0].action, Action::Fail(_)), "{loaders:?}");
        assert_eq!(loaders[1].command_line(), "/etc/init.d/iptables start");
        fs::remove_dir_all(&r).expect("cleanup");
    }

    #[test]
    fn the_script_frames_each_loader_and_its_status() {
        let loaders = vec![
            Loader {
                via: "a".into(),
                action: Action::Run {
                    commands: vec![
                        Cmd {
                            argv: vec!["x'y".into()],
                            ignore_failure: true,
                        },
                        Cmd {
                            argv: vec!["z".into(), "start".into()],
                            ignore_failure: false,
                        },
                    ],
                    env: vec![("K".into(), "v w".into())],
                },
            },
            Loader {
                via: "b".into(),
                action: Action::Skip("no".into()),
            },
        ];
        let s = script(
            &loaders,
            &["/usr/sbin/sshd".into(), "-f".into(), "c".into()],
        );
        assert!(
            s.contains("{ { env 'K=v w' 'x'\\''y' || :; } && env 'K=v w' 'z' 'start'; }"),
            "{s}"
        );
        assert!(s.contains("'/usr/sbin/sshd' '-f' 'c'"), "{s}");
        let (runs, sshd) = results(
            &loaders,
            "@@loader 0\nloading\nwarning: x\n@@rc 1\n@@sshd\n@@rc 0\n",
        );
        assert_eq!(runs[0].status, Some(1));
        assert_eq!(runs[0].output, "loading\nwarning: x");
        assert_eq!(runs[1].status, None);
        assert_eq!(sshd, Some(0));
        assert!(
            runs[0].describe().contains("exit 1 (warning: x)"),
            "{}",
            runs[0].describe()
        );
        assert_eq!(runs[1].describe(), "b: no: skipped: no");
    }
}
