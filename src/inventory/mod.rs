//! Hosts, groups, `--limit` patterns and `--shard` (docs/design.md, "Formats").
//!
//! [`Inventory::load`] reads the native YAML format ([`native`]), an Ansible
//! inventory, INI or YAML ([`ansible`]), chosen by content, or a directory
//! of Ansible inventory files, with Ansible's `group_vars/` and `host_vars/`
//! ([`ansible_dir`]), so users bring what they already have. The OpenSSH
//! client config ([`sshconfig`]) fills what the inventory leaves unsaid,
//! and [`resolve`] turns all of it into flat [`Host`]s (defaults applied,
//! vars inherited, jump chains flattened, paths absolute), so that no later
//! layer needs to know which format a host came from.
//! [`Inventory::select`] resolves a `--limit` expression and
//! [`Inventory::matches`] a play's `hosts:`; both use [`pattern`].
//!
//! Paths (`identity_file`, `known_hosts`) come back absolute: `~` expanded
//! from `$HOME`, relative ones taken from the inventory file's directory
//! (not the current directory: an inventory must mean the same thing
//! wherever rampart is started from).

pub(crate) mod ansible;
pub(crate) mod ansible_dir;
pub(crate) mod native;
pub(crate) mod pattern;
pub(crate) mod resolve;
pub mod shard;
pub mod sshconfig;
pub(crate) mod yaml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::InputError;
use crate::remote::Reach;
use pattern::Pattern;
pub use resolve::SshConfigChoice;
pub use shard::Shard;

/// One host: how to reach it (every connection setting resolved, defaults
/// applied), the groups it belongs to, and where each setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub reach: Reach,
    /// Groups this host belongs to (sorted, without the implicit `all`).
    pub groups: Vec<String>,
    pub sources: Sources,
}

impl Host {
    /// The inventory name.
    pub fn name(&self) -> &str {
        &self.reach.name
    }
}

/// Where each connection setting of a host came from: the inventory
/// (`hosts.web1`, `defaults`, `hosts.ini:12`, `group_vars/web.yml`, ...),
/// `ssh_config FILE:LINE`, `name` (the address is the host's name) or
/// `default` (built in). Shown by `rampart inventory`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sources {
    pub address: String,
    pub port: String,
    pub user: String,
    pub identity_file: String,
    pub known_hosts: String,
    pub jumps: String,
}

/// A loaded inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// In file order.
    pub hosts: Vec<Host>,
    /// Things in the inputs that change nothing and deserve a word: unused
    /// Ansible variables, ssh_config lines not honoured. Shown once per run.
    pub warnings: Vec<String>,
}

/// How to load an inventory, beyond its path.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--ssh-config`: beats the inventory's own `ssh_config`.
    pub ssh_config: Option<SshConfigChoice>,
}

/// Which syntax an inventory file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// rampart's own YAML (docs/design.md, "Formats").
    Native,
    /// Ansible INI (`[group]` sections, `host key=value` lines).
    AnsibleIni,
    /// Ansible YAML (top-level `all:` with `hosts` / `children` / `vars`).
    AnsibleYaml,
}

/// Guess the format from the text. The first meaningful line decides:
/// a `[section]` header or a line without any YAML `key:` is INI; otherwise
/// YAML, Ansible's when there is a top-level `all:` key.
pub fn detect_format(text: &str) -> Format {
    let first = text
        .lines()
        .map(str::trim_end)
        .find(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#') && !t.starts_with(';')
        })
        .unwrap_or("");
    let t = first.trim_start();
    if t.starts_with('[') && t.ends_with(']') && !t.contains(',') && !t.contains(": ") {
        return Format::AnsibleIni;
    }
    let yamlish = t.starts_with("---")
        || t.starts_with("- ")
        || t.starts_with('{')
        || t.split_whitespace()
            .next()
            .is_some_and(|w| w.ends_with(':') && !w.contains('='));
    if !yamlish {
        return Format::AnsibleIni;
    }
    let top_all = text.lines().any(|l| {
        let l = l.trim_end();
        l == "all:" || l.starts_with("all: ") || l.starts_with("all:#") || l == "\"all\":"
    });
    if top_all {
        Format::AnsibleYaml
    } else {
        Format::Native
    }
}

impl Inventory {
    /// Read and validate an inventory (native YAML, Ansible INI or YAML, or
    /// a directory of Ansible files), reading `~/.ssh/config` when it exists.
    /// Every error names `file:line:column` where it can.
    pub fn load(path: &Path) -> Result<Inventory, InputError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// [`Inventory::load`] with options from the command line.
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Inventory, InputError> {
        let parsed = if path.is_dir() {
            ansible_dir::load_dir(path)?
        } else {
            let text = std::fs::read_to_string(path)
                .map_err(|e| InputError::whole_file(path, format!("cannot read inventory: {e}")))?;
            match detect_format(&text) {
                Format::Native => native::parse(path, &text)?,
                Format::AnsibleIni | Format::AnsibleYaml => ansible_dir::load_file(path, &text)?,
            }
        };
        Self::finish(path, parsed, opts)
    }

    /// Parse inventory `text` as if read from `path` (used for relative
    /// paths and in messages); no ssh_config, no group_vars.
    pub fn from_text(path: &Path, text: &str) -> Result<Inventory, InputError> {
        let parsed = match detect_format(text) {
            Format::Native => native::parse(path, text)?,
            Format::AnsibleIni => ansible::parse_ini(path, text)?,
            Format::AnsibleYaml => ansible::parse_yaml(path, text)?,
        };
        let opts = LoadOptions {
            ssh_config: Some(SshConfigChoice::None),
        };
        Self::finish(path, parsed, &opts)
    }

    fn finish(
        path: &Path,
        parsed: resolve::Parsed,
        opts: &LoadOptions,
    ) -> Result<Inventory, InputError> {
        if parsed.hosts.is_empty() {
            return Err(InputError::whole_file(
                path,
                "the inventory defines no host",
            ));
        }
        let choice = opts
            .ssh_config
            .clone()
            .or_else(|| parsed.ssh_config.clone())
            .unwrap_or(SshConfigChoice::Default);
        let (hosts, config_warnings) = resolve::resolve(path, &parsed, &choice)?;
        let mut warnings = parsed.warnings.clone();
        warnings.extend(config_warnings);
        Ok(Inventory {
            path: path.to_path_buf(),
            hosts,
            warnings,
        })
    }

    /// The host named `name`, if any.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name() == name)
    }

    /// Every group name that has at least one member, sorted.
    pub fn groups(&self) -> BTreeSet<&str> {
        self.hosts
            .iter()
            .flat_map(|h| h.groups.iter().map(String::as_str))
            .collect()
    }

    /// Hosts matching a `--limit` expression (None = all), in inventory order.
    /// Zero matches is an error naming the expression, and so is a plain
    /// name that is neither a host nor a (non-empty) group: a typo must not
    /// silently shrink a rollout. Errors point at the inventory file, line 0
    /// (the mistake is on the command line, the names come from the file).
    pub fn select(&self, limit: Option<&str>) -> Result<Vec<&Host>, InputError> {
        let Some(limit) = limit else {
            return Ok(self.hosts.iter().collect());
        };
        let pat = Pattern::parse(limit)
            .map_err(|e| InputError::whole_file(&self.path, format!("--limit: {e}")))?;
        let groups = self.groups();
        for name in pat.names() {
            if self.host(name).is_none() && !groups.contains(name) {
                return Err(InputError::whole_file(
                    &self.path,
                    format!("--limit '{limit}': no host or group named '{name}' in this inventory"),
                ));
            }
        }
        let hosts: Vec<&Host> = self
            .hosts
            .iter()
            .filter(|h| pat.matches(h.name(), &h.groups))
            .collect();
        if hosts.is_empty() {
            return Err(InputError::whole_file(
                &self.path,
                format!("--limit '{limit}' matches no host"),
            ));
        }
        Ok(hosts)
    }

    /// Does `host` match the host pattern `pattern` (a name, group, glob,
    /// `all`, comma-separated, with `!exclusions` and `&intersections`)?
    /// Used for plays' `hosts:`. A malformed pattern matches nothing (the
    /// playbook loader rejects those with a position before this runs).
    pub fn matches(&self, host: &Host, pattern: &str) -> bool {
        Pattern::parse(pattern).is_ok_and(|p| p.matches(host.name(), &host.groups))
    }
}

/// Expand `~` from `$HOME` and make a relative path absolute against `base`
/// (the inventory's directory).
pub(crate) fn resolve_path(text: &str, base: &Path) -> Result<PathBuf, String> {
    let expanded = if text == "~" || text.starts_with("~/") {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("cannot expand '{text}': HOME is not set"))?;
        let mut p = PathBuf::from(home);
        if let Some(rest) = text.strip_prefix("~/") {
            p.push(rest);
        }
        p
    } else if text.starts_with('~') {
        return Err(format!(
            "'{text}': only '~/' (the current user's home) is expanded"
        ));
    } else {
        PathBuf::from(text)
    };
    if expanded.is_absolute() {
        Ok(expanded)
    } else {
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        let base =
            std::path::absolute(base).map_err(|e| format!("cannot resolve '{text}': {e}"))?;
        Ok(base.join(expanded))
    }
}

/// The directory of an inventory file, against which relative paths resolve.
pub(crate) fn base_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The default `known_hosts`: `~/.ssh/known_hosts`.
pub(crate) fn default_known_hosts(file: &Path) -> Result<PathBuf, InputError> {
    resolve_path("~/.ssh/known_hosts", &base_dir(file)).map_err(|e| InputError::whole_file(file, e))
}

/// Check a host name: it must be usable in a pattern, so no separators,
/// operators or glob characters, no whitespace, and not `all`.
pub(crate) fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".into());
    }
    if name == "all" {
        return Err("'all' is the implicit group of every host, not a host name".into());
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, ',' | '!' | '&' | '*' | '?' | '[' | ']')
    }) {
        return Err(format!("host name '{name}' contains {c:?}"));
    }
    Ok(())
}

/// Check a group name (same rules as host names).
pub(crate) fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty group name".into());
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, ',' | '!' | '&' | '*' | '?' | '[' | ']')
    }) {
        return Err(format!("group name '{name}' contains {c:?}"));
    }
    Ok(())
}

/// Check an address (IP or DNS name): no whitespace or control characters.
pub(crate) fn check_address(a: &str) -> Result<(), String> {
    if a.is_empty() {
        return Err("empty address".into());
    }
    if a.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("address '{a}' contains whitespace"));
    }
    if a.starts_with('-') {
        return Err(format!("address '{a}' starts with '-'"));
    }
    Ok(())
}

/// Check a user name: what `useradd` accepts, roughly; never anything a
/// shell or ssh would interpret.
pub(crate) fn check_user(u: &str) -> Result<(), String> {
    let ok = !u.is_empty()
        && !u.starts_with('-')
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid user name '{u}'"))
    }
}

/// Parse a port given as text: 1..=65535.
pub(crate) fn parse_port(text: &str) -> Result<u16, String> {
    let t = text.trim();
    match t.parse::<u64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is out of range (1-65535)")),
        Err(_) => Err(format!("invalid port '{t}' (expected a number 1-65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(detect_format("hosts:\n  a: {}\n"), Format::Native);
        assert_eq!(detect_format("# c\ndefaults: {user: x}\n"), Format::Native);
        assert_eq!(
            detect_format("all:\n  hosts:\n    a:\n"),
            Format::AnsibleYaml
        );
        assert_eq!(
            detect_format("---\nall:\n  children: {}\n"),
            Format::AnsibleYaml
        );
        assert_eq!(detect_format("; c\n[web]\nweb1\n"), Format::AnsibleIni);
        assert_eq!(
            detect_format("web1 ansible_host=1.2.3.4\n"),
            Format::AnsibleIni
        );
        assert_eq!(detect_format("web1\n"), Format::AnsibleIni);
    }

    #[test]
    fn resolves_paths() {
        let base = Path::new("/etc/rampart");
        assert_eq!(
            resolve_path("keys/id", base).expect("relative"),
            PathBuf::from("/etc/rampart/keys/id")
        );
        assert_eq!(
            resolve_path("/k", base).expect("absolute"),
            PathBuf::from("/k")
        );
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(
                resolve_path("~/.ssh/id", base).expect("home"),
                PathBuf::from(home).join(".ssh/id")
            );
        }
        assert!(resolve_path("~bob/x", base).is_err());
    }

    #[test]
    fn checks_names_and_ports() {
        assert!(check_host_name("web1").is_ok());
        assert!(check_host_name("2001:db8::1").is_ok());
        assert!(check_host_name("all").is_err());
        assert!(check_host_name("a,b").is_err());
        assert!(check_host_name("web*").is_err());
        assert_eq!(parse_port("22"), Ok(22));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert!(parse_port("ssh").is_err());
        assert!(check_user("deploy").is_ok());
        assert!(check_user("a b").is_err());
        assert!(check_user("-oProxyCommand=x").is_err());
    }
}
