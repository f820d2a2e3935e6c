//! What rampart learns about a host in its first round trip (SPEC §6 step 2-3):
//! OS family, iptables backend, ip6tables presence, firewalld/ufw, whether
//! anything loads the persisted rules at boot, the live rules and the
//! persisted files. One read-only script gathers all of it, so an audit of a
//! compliant host costs one handshake and one round trip, and changes nothing.

use std::collections::BTreeMap;

use super::shell::{quote, Sections, PROLOGUE};

/// Persistence conventions by OS family (SPEC §6 table).
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

/// Places whose existence means "something loads the rules at boot".
const LOADER_GLOBS: &[&str] = &[
    "/etc/systemd/system/*.wants/netfilter-persistent.service",
    "/etc/systemd/system/*.wants/iptables.service",
    "/etc/systemd/system/*.wants/ip6tables.service",
    "/etc/rc[2345].d/S*netfilter-persistent",
    "/etc/rc[2345].d/S*iptables-persistent",
    "/etc/rc[2345].d/S*iptables",
    "/etc/rc[2345].d/S*ip6tables",
    "/etc/runlevels/*/iptables",
    "/etc/runlevels/*/ip6tables",
];

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
    /// `iptables-save` output, or the error text when it failed.
    pub save_v4: Result<String, String>,
    pub save_v6: Result<String, String>,
    /// Persisted files read: path -> content (None when absent).
    pub files: BTreeMap<String, Option<String>>,
}

/// The read-only script of the first round trip. `extra_paths` are
/// persistence paths a play set explicitly.
pub fn read_script(extra_paths: &[String]) -> String {
    let mut s = String::from(PROLOGUE);
    s.push_str(
        "sec uid; id -u\n\
         sec os_release; cat /etc/os-release 2>/dev/null\n\
         sec redhat_release; cat /etc/redhat-release 2>/dev/null\n\
         sec debian_version; cat /etc/debian_version 2>/dev/null\n\
         sec alpine_release; cat /etc/alpine-release 2>/dev/null\n\
         sec iptables_v; iptables -V 2>&1\n\
         sec has; for c in iptables-save iptables-restore ip6tables-save ip6tables-restore; do command -v $c >/dev/null 2>&1 && echo $c; done\n\
         sec firewalld; if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl is-active firewalld 2>/dev/null; fi; if command -v firewall-cmd >/dev/null 2>&1; then firewall-cmd --state 2>/dev/null; fi\n\
         sec ufw; if [ -r /etc/ufw/ufw.conf ]; then grep -i '^ENABLED=yes' /etc/ufw/ufw.conf; fi\n\
         sec save4; if command -v iptables-save >/dev/null 2>&1; then iptables-save 2>&1; echo \"@@rc=$?\"; fi\n\
         sec save6; if command -v ip6tables-save >/dev/null 2>&1; then ip6tables-save 2>&1; echo \"@@rc=$?\"; fi\n",
    );
    s.push_str("sec loaders; for f in");
    for g in LOADER_GLOBS {
        s.push(' ');
        s.push_str(g);
    }
    s.push_str("; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then echo \"$f\"; fi; done\n");
    let mut paths: Vec<String> = ALL_PERSIST_PATHS.iter().map(|p| p.to_string()).collect();
    for p in extra_paths {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    for p in &paths {
        let q = quote(p);
        s.push_str(&format!(
            "sec {}; if [ -f {q} ]; then echo present; cat {q}; else echo absent; fi\n",
            quote(&format!("file:{p}"))
        ));
    }
    s
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
    /// Interpret the output of [`read_script`].
    pub fn parse(out: &str) -> Facts {
        let s = Sections::parse(out);
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
        let mut files = BTreeMap::new();
        let mut rest = out;
        while let Some(i) = rest.find("\n@@rampart:file:") {
            rest = &rest[i + "\n@@rampart:file:".len()..];
            let path = rest.lines().next().unwrap_or("").to_string();
            let body = s.text(&format!("file:{path}"));
            let content = body.strip_prefix("present\n").map(str::to_string);
            files.insert(path, content);
        }
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
            save_v4: saved(s.get("save4"), "iptables-save"),
            save_v6: saved(s.get("save6"), "ip6tables-save"),
            files,
        }
    }

    /// Is there a boot loader for the rules of this family?
    pub fn has_loader(&self, v6: bool) -> bool {
        self.loaders.iter().any(|p| {
            let base = p.rsplit('/').next().unwrap_or(p);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn out(sections: &[(&str, &str)]) -> String {
        let mut s = String::from("motd noise\n");
        for (n, b) in sections {
            s.push_str(&format!("\n@@rampart:{n}\n{b}"));
        }
        s
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
            Some(&Some("*filter\nCOMMIT\n".to_string()))
        );
        assert_eq!(f.files.get("/etc/sysconfig/ip6tables"), Some(&None));
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
    fn read_script_quotes_extra_paths() {
        let s = read_script(&["/etc/my rules;x".to_string()]);
        assert!(s.contains("'/etc/my rules;x'"));
        assert!(!s.contains("cat /etc/my rules;x"));
    }
}
