//! Hosts, groups and `--limit` patterns (SPEC §2).
//!
//! [`Inventory::load`] reads the native YAML format ([`native`]) or an
//! Ansible inventory, INI or YAML ([`ansible`]), chosen by content so users
//! bring what they already have; everything is resolved into flat [`Host`]s
//! (defaults applied, group vars inherited, paths absolute) so that no later
//! layer needs to know which format a host came from.
//! [`Inventory::select`] resolves a `--limit` expression and
//! [`Inventory::matches`] a play's `hosts:`; both use [`pattern`].
//!
//! Paths (`identity_file`, `known_hosts`) come back absolute: `~` expanded
//! from `$HOME`, relative ones taken from the inventory file's directory
//! (not the current directory: an inventory must mean the same thing
//! wherever rampart is started from).

pub(crate) mod ansible;
pub(crate) mod native;
pub(crate) mod pattern;
pub(crate) mod yaml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::InputError;
use crate::remote::Reach;
use pattern::Pattern;

/// One host: how to reach it (every connection setting resolved, defaults
/// applied) and the groups it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub reach: Reach,
    /// Groups this host belongs to (sorted, without the implicit `all`).
    pub groups: Vec<String>,
}

impl Host {
    /// The inventory name.
    pub fn name(&self) -> &str {
        &self.reach.name
    }
}

/// A loaded inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// In file order.
    pub hosts: Vec<Host>,
}

/// Which syntax an inventory file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// rampart's own YAML (SPEC §2).
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
    /// Read and validate an inventory file (native YAML, Ansible INI or
    /// Ansible YAML). Every error names `file:line:column` where it can.
    pub fn load(path: &Path) -> Result<Inventory, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::whole_file(path, format!("cannot read inventory: {e}")))?;
        Self::from_text(path, &text)
    }

    /// Parse inventory `text` as if read from `path` (used for relative
    /// paths and in messages).
    pub fn from_text(path: &Path, text: &str) -> Result<Inventory, InputError> {
        let hosts = match detect_format(text) {
            Format::Native => native::parse(path, text)?,
            Format::AnsibleIni => ansible::parse_ini(path, text)?,
            Format::AnsibleYaml => ansible::parse_yaml(path, text)?,
        };
        if hosts.is_empty() {
            return Err(InputError::whole_file(
                path,
                "the inventory defines no host",
            ));
        }
        Ok(Inventory {
            path: path.to_path_buf(),
            hosts,
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

/// `rampart inventory`: list the resolved hosts (and their plays).
pub fn cli(args: &crate::cli::InventoryArgs) -> crate::error::Result<u8> {
    let inv = Inventory::load(&args.inventory)?;
    let hosts = inv.select(args.limit.as_deref())?;
    let playbook = match &args.playbook {
        Some(p) => Some(crate::playbook::Playbook::load(p)?),
        None => None,
    };
    if let Some(pb) = &playbook {
        for w in pb.unknown_host_names(&inv) {
            eprintln!("rampart: warning: {w}");
        }
    }
    let plays_of = |h: &Host| -> Option<Vec<String>> {
        playbook
            .as_ref()
            .map(|pb| pb.plan(&inv, h).map(|p| p.plays).unwrap_or_default())
    };
    let out = match args.format {
        crate::cli::Format::Json => {
            let rows: Vec<serde_json::Value> = hosts
                .iter()
                .map(|h| {
                    let mut v = serde_json::json!({
                        "name": h.reach.name,
                        "address": h.reach.address,
                        "port": h.reach.port,
                        "user": h.reach.user,
                        "become": h.reach.become_,
                        "groups": h.groups,
                        "identity_file": h.reach.identity_file,
                        "known_hosts": h.reach.known_hosts,
                        "password_env": h.reach.password_env,
                    });
                    if let Some(plays) = plays_of(h) {
                        v["plays"] = serde_json::json!(plays);
                    }
                    v
                })
                .collect();
            let doc = serde_json::json!({
                "command": "inventory",
                "inventory": inv.path,
                "playbook": args.playbook,
                "hosts": rows,
            });
            let mut s = serde_json::to_string_pretty(&doc)
                .map_err(|e| crate::error::Error::Usage(format!("cannot encode JSON: {e}")))?;
            s.push('\n');
            s
        }
        crate::cli::Format::Human => {
            let mut header = vec!["NAME", "ADDRESS", "PORT", "USER", "BECOME", "GROUPS"];
            if playbook.is_some() {
                header.push("PLAYS");
            }
            let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
            for h in &hosts {
                let mut row = vec![
                    h.reach.name.clone(),
                    h.reach.address.clone(),
                    h.reach.port.to_string(),
                    h.reach.user.clone(),
                    if h.reach.become_ { "yes" } else { "no" }.to_string(),
                    dash_if_empty(h.groups.join(",")),
                ];
                if let Some(plays) = plays_of(h) {
                    row.push(if plays.is_empty() {
                        "- (no play: not contacted)".to_string()
                    } else {
                        plays.join(", ")
                    });
                }
                rows.push(row);
            }
            table(&rows)
        }
    };
    print!("{out}");
    Ok(crate::exit::OK)
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// Left-aligned columns separated by two spaces; no trailing spaces.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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

    #[test]
    fn table_aligns() {
        let rows = vec![
            vec!["NAME".to_string(), "PORT".to_string()],
            vec!["web1".to_string(), "22".to_string()],
            vec!["longer-name".to_string(), "2222".to_string()],
        ];
        assert_eq!(
            table(&rows),
            "NAME         PORT\nweb1         22\nlonger-name  2222\n"
        );
    }
}
