//! What rampart learns about a host in its first step (`scripts/facts.sh`):
//! OS family, iptables backend and tools, firewalld/ufw, the init system and
//! whether anything loads the persisted rules at boot, the live rules and
//! the persisted files. One read-only step gathers all of it, so an audit
//! of a compliant host costs one handshake and one round trip, and changes
//! nothing (docs/design.md, "The transaction").

use std::collections::BTreeMap;

use super::script::{self, Kind, Script};
use super::shell::Sections;

/// Persistence conventions by OS family (docs/design.md, "Persistence and boot").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsFamily {
    Rhel,
    Debian,
    Alpine,
    Other,
}

impl OsFamily {
    /// Default persisted files (IPv4, IPv6), or None for `Other`.
    pub fn persist_paths(self) -> Option<(&'static str, &'static str)> {
        match self {
            OsFamily::Rhel => Some(("/etc/sysconfig/iptables", "/etc/sysconfig/ip6tables")),
            OsFamily::Debian => Some(("/etc/iptables/rules.v4", "/etc/iptables/rules.v6")),
            OsFamily::Alpine => Some(("/etc/iptables/rules-save", "/etc/iptables/rules6-save")),
            OsFamily::Other => None,
        }
    }

    /// What an operator installs so the file is loaded at boot.
    pub fn loader_hint(self) -> &'static str {
        match self {
            OsFamily::Rhel => {
                "install and enable iptables-services (systemctl enable iptables ip6tables)"
            }
            OsFamily::Debian => "install iptables-persistent (netfilter-persistent)",
            OsFamily::Alpine => "rc-update add iptables (and ip6tables)",
            OsFamily::Other => "configure your init system to load it",
        }
    }
}

/// Every path any family persists to, read in the first round trip so the
/// OS does not have to be known before reading.
pub const ALL_PERSIST_PATHS: &[&str] = &[
    "/etc/sysconfig/iptables",
    "/etc/sysconfig/ip6tables",
    "/etc/iptables/rules.v4",
    "/etc/iptables/rules.v6",
    "/etc/iptables/rules-save",
    "/etc/iptables/rules6-save",
];

/// The init system that will boot the host next (docs/design.md,
/// "Persistence and boot").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// systemd: running now (PID 1), or `/sbin/init` is systemd.
    Systemd {
        running: bool,
    },
    OpenRc,
    /// `/etc/init.d` scripts started from `/etc/rc?.d` links.
    SysV,
    Unknown,
}

/// The facts and the current state of one host.
#[derive(Debug, Clone)]
pub struct Facts {
    pub os: OsFamily,
    /// `ID` of os-release, or `centos` / `debian` from the legacy files.
    pub os_id: String,
    /// `nf_tables`, `legacy`, or `unknown`.
    pub backend: String,
    pub has_iptables: bool,
    pub has_ip6tables: bool,
    pub firewalld_active: bool,
    pub ufw_active: bool,
    /// Boot loaders found (paths).
    pub loaders: Vec<String>,
    /// Effective uid the script ran as.
    pub uid: Option<u32>,
    /// `$SSH_CONNECTION` as the host saw this connection: client address,
    /// client port, server address, server port.
    pub ssh_connection: Option<(std::net::IpAddr, u16, std::net::IpAddr, u16)>,
    /// Whether the kernel has IPv6 at all (`/proc/net/if_inet6`).
    pub ipv6_enabled: bool,
    /// Tools found on the host: `unshare`, `flock`, `systemd-run`.
    pub tools: Vec<String>,
    pub init: Init,
    /// What the dead-man switch of an earlier run recorded, if it left a record.
    pub switch_state: Option<String>,
    /// `iptables-save` output, or the error text when it failed.
    pub save_v4: Result<String, String>,
    pub save_v6: Result<String, String>,
    /// Persisted files read: path -> what was found.
    pub files: BTreeMap<String, FileState>,
}

/// A persisted file as the facts step found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Absent,
    /// A regular file, and its content.
    Present(String),
    /// A symlink: never followed (an audit reads nothing it should not).
    Symlink,
    /// A directory, device or anything but a regular file.
    Special,
}

/// The facts step, reading the persisted files `paths` besides the facts.
pub fn script(paths: &[String]) -> Script {
    Script::new(Kind::Facts).set("rp_files", script::lines(paths))
}

/// Every path the facts step reads: each family's defaults, then `extra`
/// (paths a play set).
pub fn paths_to_read(extra: &[String]) -> Vec<String> {
    let mut paths: Vec<String> = ALL_PERSIST_PATHS.iter().map(|p| p.to_string()).collect();
    for p in extra {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    paths
}

/// A value of an os-release style `KEY=value` file, unquoted.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

/// The family of an os-release `ID` plus `ID_LIKE`, first match wins.
fn family_of(ids: &[&str]) -> OsFamily {
    for id in ids {
        match *id {
            "rhel" | "centos" | "fedora" | "rocky" | "almalinux" | "ol" | "amzn" => {
                return OsFamily::Rhel
            }
            "debian" | "ubuntu" | "raspbian" => return OsFamily::Debian,
            "alpine" => return OsFamily::Alpine,
            _ => {}
        }
    }
    OsFamily::Other
}

/// Split a saved-rules section into the rules, or the error text.
fn saved(body: Option<&str>, what: &str) -> Result<String, String> {
    let Some(body) = body else {
        return Err(format!("{what} not found"));
    };
    if body.trim().is_empty() {
        return Err(format!("{what} not installed"));
    }
    let (text, rc) = match body.trim_end().rsplit_once("@@rc=") {
        Some((t, rc)) => (t.to_string(), rc.trim().to_string()),
        None => (body.to_string(), "?".into()),
    };
    if rc == "0" {
        Ok(text)
    } else {
        Err(format!("{what} failed (exit {rc}): {}", text.trim()))
    }
}

impl Facts {
    /// Interpret the output of the facts step.
    pub fn parse(s: &Sections) -> Facts {
        let osr = s.text("os_release");
        let (os, os_id) = if !osr.trim().is_empty() {
            let id = os_release_value(osr, "ID")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let like = os_release_value(osr, "ID_LIKE")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let mut ids = vec![id.as_str()];
            ids.extend(like.split_whitespace());
            (family_of(&ids), id.clone())
        } else if !s.text("redhat_release").trim().is_empty() {
            let r = s.text("redhat_release").to_ascii_lowercase();
            let id = if r.contains("centos") {
                "centos"
            } else if r.contains("rocky") {
                "rocky"
            } else {
                "rhel"
            };
            (OsFamily::Rhel, id.to_string())
        } else if !s.text("debian_version").trim().is_empty() {
            (OsFamily::Debian, "debian".to_string())
        } else if !s.text("alpine_release").trim().is_empty() {
            (OsFamily::Alpine, "alpine".to_string())
        } else {
            (OsFamily::Other, "unknown".to_string())
        };
        let v = s.text("iptables_v");
        let backend = if v.contains("nf_tables") {
            "nf_tables"
        } else if v.contains("legacy") || v.trim_start().starts_with("iptables v1.") {
            "legacy"
        } else {
            "unknown"
        }
        .to_string();
        let has: Vec<&str> = s.text("has").lines().map(str::trim).collect();
        let has_iptables = has.contains(&"iptables-save") && has.contains(&"iptables-restore");
        let has_ip6tables = has.contains(&"ip6tables-save") && has.contains(&"ip6tables-restore");
        let fw = s.text("firewalld");
        let firewalld_active = fw.lines().any(|l| matches!(l.trim(), "active" | "running"));
        let ufw_active = !s.text("ufw").trim().is_empty();
        let loaders = s
            .text("loaders")
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let uid = s.text("uid").trim().parse().ok();
        let files = s
            .names()
            .filter_map(|n| n.strip_prefix("file:"))
            .map(|path| {
                let body = s.text(&format!("file:{path}"));
                let state = match body.split_once('\n') {
                    Some(("present", content)) => FileState::Present(content.to_string()),
                    _ if body.trim() == "present" => FileState::Present(String::new()),
                    _ if body.trim() == "symlink" => FileState::Symlink,
                    _ if body.trim() == "special" => FileState::Special,
                    _ => FileState::Absent,
                };
                (path.to_string(), state)
            })
            .collect();
        let init_lines: Vec<&str> = s.text("init").lines().map(str::trim).collect();
        let init = if init_lines.contains(&"systemd running") {
            Init::Systemd { running: true }
        } else if init_lines.contains(&"systemd") {
            Init::Systemd { running: false }
        } else if init_lines.contains(&"openrc") {
            Init::OpenRc
        } else if init_lines.contains(&"sysv") {
            Init::SysV
        } else {
            Init::Unknown
        };
        let switch_state =
            Some(s.text("switch_state").trim().to_string()).filter(|t| !t.is_empty());
        Facts {
            os,
            os_id,
            backend,
            has_iptables,
            has_ip6tables,
            firewalld_active,
            ufw_active,
            loaders,
            uid,
            ssh_connection: parse_ssh_connection(s.text("ssh_connection")),
            ipv6_enabled: s.text("ipv6").trim() != "disabled",
            tools: ["unshare", "flock", "systemd-run"]
                .iter()
                .filter(|t| has.contains(t))
                .map(|t| t.to_string())
                .collect(),
            init,
            switch_state,
            save_v4: saved(s.get("save4"), "iptables-save"),
            save_v6: saved(s.get("save6"), "ip6tables-save"),
            files,
        }
    }

    /// Is there a boot loader for the rules of this family, of a kind the
    /// host's init runs? systemd runs its enabled units and, through its
    /// sysv generator, enabled rc scripts; a sysvinit boot ignores units,
    /// and OpenRC follows only its runlevels.
    pub fn has_loader(&self, v6: bool) -> bool {
        self.loaders.iter().any(|p| {
            let counts = match self.init {
                Init::Systemd { .. } => p.starts_with("/etc/systemd/") || p.starts_with("/etc/rc"),
                Init::SysV => p.starts_with("/etc/rc"),
                Init::OpenRc => p.starts_with("/etc/runlevels/"),
                Init::Unknown => true,
            };
            if !counts {
                return false;
            }
            let base = p.rsplit('/').next().unwrap_or(p);
            if base.contains("rampart-firewall") {
                return true;
            }
            if base.contains("netfilter-persistent") || base.contains("iptables-persistent") {
                return true;
            }
            if v6 {
                base.contains("ip6tables")
            } else {
                base.contains("iptables") && !base.contains("ip6tables")
            }
        })
    }
}

/// `client_ip client_port server_ip server_port`, as sshd sets it.
fn parse_ssh_connection(text: &str) -> Option<(std::net::IpAddr, u16, std::net::IpAddr, u16)> {
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() != 4 {
        return None;
    }
    Some((
        f[0].parse().ok()?,
        f[1].parse().ok()?,
        f[2].parse().ok()?,
        f[3].parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(sections: &[(&str, &str)]) -> Sections {
        let mut s = String::from("motd noise\n");
        for (n, b) in sections {
            s.push_str(&format!("\n@@rampart:N:{n}\n{b}"));
        }
        Sections::parse(&s, "N")
    }

    #[test]
    fn rocky_with_loader_and_files() {
        let o = out(&[
            ("uid", "0\n"),
            (
                "os_release",
                "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
            ),
            ("iptables_v", "iptables v1.8.10 (nf_tables)\n"),
            (
                "has",
                "iptables-save\niptables-restore\nip6tables-save\nip6tables-restore\n",
            ),
            ("save4", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n@@rc=0\n"),
            ("save6", "@@rc=0\n"),
            (
                "loaders",
                "/etc/systemd/system/multi-user.target.wants/iptables.service\n",
            ),
            ("file:/etc/sysconfig/iptables", "present\n*filter\nCOMMIT\n"),
            ("file:/etc/sysconfig/ip6tables", "absent\n"),
        ]);
        let f = Facts::parse(&o);
        assert_eq!(f.os, OsFamily::Rhel);
        assert_eq!(f.os_id, "rocky");
        assert_eq!(f.backend, "nf_tables");
        assert!(f.has_ip6tables);
        assert_eq!(
            f.save_v4.as_deref(),
            Ok("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
        );
        assert_eq!(f.save_v6.as_deref(), Ok(""));
        assert!(f.has_loader(false));
        assert!(!f.has_loader(true));
        assert_eq!(
            f.files.get("/etc/sysconfig/iptables"),
            Some(&FileState::Present("*filter\nCOMMIT\n".to_string()))
        );
        assert_eq!(
            f.files.get("/etc/sysconfig/ip6tables"),
            Some(&FileState::Absent)
        );
        assert_eq!(f.uid, Some(0));
    }

    #[test]
    fn centos6_from_redhat_release() {
        let o = out(&[
            ("redhat_release", "CentOS release 6.10 (Final)\n"),
            ("iptables_v", "iptables v1.4.7\n"),
        ]);
        let f = Facts::parse(&o);
        assert_eq!(f.os, OsFamily::Rhel);
        assert_eq!(f.os_id, "centos");
        assert_eq!(f.backend, "legacy");
        assert!(f.save_v4.is_err());
    }

    #[test]
    fn ubuntu_and_ufw() {
        let o = out(&[
            ("os_release", "ID=ubuntu\nID_LIKE=debian\n"),
            ("ufw", "ENABLED=yes\n"),
        ]);
        let f = Facts::parse(&o);
        assert_eq!(f.os, OsFamily::Debian);
        assert!(f.ufw_active);
        assert!(!f.firewalld_active);
    }

    #[test]
    fn symlinks_and_ssh_connection_and_init() {
        let o = out(&[
            ("ssh_connection", "198.18.0.1 51234 198.18.0.2 22\n"),
            ("init", "systemd\nsysv\n"),
            ("ipv6", "disabled\n"),
            ("file:/etc/iptables/rules.v4", "symlink\n"),
            ("switch_state", "restore_failed\n"),
        ]);
        let f = Facts::parse(&o);
        assert_eq!(
            f.files.get("/etc/iptables/rules.v4"),
            Some(&FileState::Symlink)
        );
        let (cip, cport, sip, sport) = f.ssh_connection.expect("parsed");
        assert_eq!(
            (cip.to_string(), cport, sip.to_string(), sport),
            ("198.18.0.1".into(), 51234, "198.18.0.2".into(), 22)
        );
        assert_eq!(f.init, Init::Systemd { running: false });
        assert!(!f.ipv6_enabled);
        assert_eq!(f.switch_state.as_deref(), Some("restore_failed"));
    }
}
