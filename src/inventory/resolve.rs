//! From what an inventory states about each host to the [`Reach`] the
//! transport uses, whatever the inventory's format.
//!
//! Precedence, per setting: what the inventory states (a host's entry, its
//! groups' vars, the native `defaults`) > the OpenSSH client config
//! ([`super::sshconfig`]) > built-in defaults (the name as address, port 22,
//! user root, ssh-agent then `~/.ssh/id_ed25519` and `~/.ssh/id_rsa`,
//! `~/.ssh/known_hosts`). Every value keeps where it came from, for
//! `rampart inventory`.
//!
//! Jump hosts (`proxy_jump`, ssh_config `ProxyJump`, `-J` in Ansible's ssh
//! args) are resolved here into a flat chain: a hop that names an inventory
//! host takes that host's settings (and its own chain, first); any other hop
//! is resolved like a host the inventory does not list: the native
//! `defaults`, then ssh_config, then built-ins. `user@` and `:port` written
//! in the hop win. A cycle is an error, and so is a chain longer than
//! [`MAX_CHAIN`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::sshconfig::{Hop, Lookup, SshConfig, Strict, Tokens, Val};
use super::{default_known_hosts, Host, Sources};
use crate::error::InputError;
use crate::remote::Reach;

/// Longest jump chain accepted: deeper is surely a mistake.
pub const MAX_CHAIN: usize = 8;

/// OpenSSH's default `GlobalKnownHostsFile`: the machine's known_hosts,
/// consulted (never written) after the user's files.
pub const GLOBAL_KNOWN_HOSTS: &[&str] = &["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// A value and a short note of where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sourced<T> {
    pub value: T,
    pub from: String,
}

impl<T> Sourced<T> {
    pub fn new(value: T, from: impl Into<String>) -> Self {
        Sourced {
            value,
            from: from.into(),
        }
    }
}

/// A jump list as stated: `None` inside means an explicit "no jump".
pub(crate) type Jumps = Option<Vec<Hop>>;

/// What an inventory states about one host, every inherited value already
/// merged in by the format's own rules, before ssh_config and defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stated {
    pub name: String,
    pub groups: Vec<String>,
    pub address: Option<Sourced<String>>,
    pub port: Option<Sourced<u16>>,
    pub user: Option<Sourced<String>>,
    pub identity_file: Option<Sourced<PathBuf>>,
    pub known_hosts: Option<Sourced<PathBuf>>,
    pub jumps: Option<Sourced<Jumps>>,
    pub become_: bool,
    pub password_env: Option<String>,
}

/// Which OpenSSH client config to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshConfigChoice {
    /// `~/.ssh/config` when it exists.
    Default,
    /// None at all.
    None,
    /// This file (it must exist).
    File(PathBuf),
}

impl SshConfigChoice {
    /// `none` or a path, as `--ssh-config` and `defaults.ssh_config` take it.
    pub fn from_arg(p: &Path) -> SshConfigChoice {
        if p.as_os_str() == "none" {
            SshConfigChoice::None
        } else {
            SshConfigChoice::File(p.to_path_buf())
        }
    }
}

/// A parsed inventory, before resolution.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    pub hosts: Vec<Stated>,
    /// What a jump host missing from the inventory inherits: the native
    /// `defaults` (without their `proxy_jump`); nothing for Ansible, whose
    /// `-J` hosts are reached by ssh with the ssh_config alone.
    pub jump_defaults: Stated,
    /// The inventory's own choice (native `defaults.ssh_config`).
    pub ssh_config: Option<SshConfigChoice>,
    pub warnings: Vec<String>,
}

/// One resolved endpoint, its chain still as written.
#[derive(Debug, Clone)]
struct Base {
    reach: Reach,
    sources: Sources,
    jumps: Option<Sourced<Jumps>>,
}

struct Resolver<'a> {
    file: &'a Path,
    config: Option<SshConfig>,
    jump_defaults: &'a Stated,
    default_known: PathBuf,
    warnings: BTreeSet<String>,
    by_name: HashMap<&'a str, usize>,
    hosts: &'a [Stated],
    bases: Vec<Option<Base>>,
    /// Flat chains of inventory hosts, once resolved.
    chains: Vec<Option<Vec<Reach>>>,
}

/// Load the OpenSSH client config the choice names.
fn load_config(choice: &SshConfigChoice) -> Result<Option<SshConfig>, InputError> {
    match choice {
        SshConfigChoice::None => Ok(None),
        SshConfigChoice::File(p) => SshConfig::load(p).map(Some),
        SshConfigChoice::Default => {
            let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
                return Ok(None);
            };
            let p = PathBuf::from(home).join(".ssh/config");
            if p.is_file() {
                SshConfig::load(&p).map(Some)
            } else {
                Ok(None)
            }
        }
    }
}

/// Resolve every stated host into a [`Host`]; returns the hosts and the
/// warnings (ssh_config lines that apply but are not honoured).
pub(crate) fn resolve(
    file: &Path,
    parsed: &Parsed,
    choice: &SshConfigChoice,
) -> Result<(Vec<Host>, Vec<String>), InputError> {
    let mut r = Resolver {
        file,
        config: load_config(choice)?,
        jump_defaults: &parsed.jump_defaults,
        default_known: default_known_hosts(file)?,
        warnings: BTreeSet::new(),
        by_name: parsed
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.as_str(), i))
            .collect(),
        hosts: &parsed.hosts,
        bases: vec![None; parsed.hosts.len()],
        chains: vec![None; parsed.hosts.len()],
    };
    let mut out = Vec::with_capacity(parsed.hosts.len());
    for i in 0..parsed.hosts.len() {
        let mut stack = Vec::new();
        let chain = r.chain_of_host(i, &mut stack)?;
        let base = r.base_of_host(i)?;
        let mut reach = base.reach;
        let mut sources = base.sources;
        sources.jumps = match (&base.jumps, chain.is_empty()) {
            (_, true) => "-".into(),
            (Some(j), false) => j.from.clone(),
            (None, false) => "-".into(),
        };
        reach.jumps = chain;
        out.push(Host {
            reach,
            groups: parsed.hosts[i].groups.clone(),
            sources,
        });
    }
    Ok((out, r.warnings.into_iter().collect()))
}

impl<'a> Resolver<'a> {
    fn base_of_host(&mut self, i: usize) -> Result<Base, InputError> {
        if let Some(b) = &self.bases[i] {
            return Ok(b.clone());
        }
        let b = self.base(&self.hosts[i].clone())?;
        self.bases[i] = Some(b.clone());
        Ok(b)
    }

    /// A host's settings: stated > ssh_config > built-in.
    fn base(&mut self, st: &Stated) -> Result<Base, InputError> {
        let l: Lookup = match &self.config {
            Some(c) => c.lookup(
                &[st.name.as_str()],
                st.address.as_ref().map(|a| a.value.as_str()),
            ),
            None => Lookup::default(),
        };
        self.warnings.extend(l.warnings.iter().cloned());
        let at = |v: &super::sshconfig::Loc| format!("ssh_config {v}");
        let (address, address_from) = match (&st.address, &l.hostname) {
            (Some(a), _) => (a.value.clone(), a.from.clone()),
            (None, Some(h)) => (h.value.clone(), at(&h.at)),
            (None, None) => (st.name.clone(), "name".to_string()),
        };
        let (port, port_from) = match (&st.port, &l.port) {
            (Some(p), _) => (p.value, p.from.clone()),
            (None, Some(p)) => (p.value, at(&p.at)),
            (None, None) => (22, "default".to_string()),
        };
        let (user, user_from) = match (&st.user, &l.user) {
            (Some(u), _) => (u.value.clone(), u.from.clone()),
            (None, Some(u)) => (u.value.clone(), at(&u.at)),
            (None, None) => ("root".to_string(), "default".to_string()),
        };
        let tokens = Tokens {
            host: &address,
            original: &st.name,
            port,
            user: &user,
        };
        let expand = |v: &Val<super::sshconfig::Template>| {
            v.value
                .expand(&tokens)
                .map_err(|m| InputError::new(v.at.file.as_path(), v.at.line, 0, m))
        };
        let config_key = match &l.identity_file {
            Some(k) => {
                let p = expand(k)?;
                // As ssh does: a missing key file is passed over (with a
                // word), and the agent and default keys are tried instead.
                if p.exists() {
                    Some((p, at(&k.at)))
                } else {
                    self.warnings.insert(format!(
                        "{}: IdentityFile {} does not exist: not used",
                        k.at,
                        p.display()
                    ));
                    None
                }
            }
            None => None,
        };
        let (identity_file, key_from) = match (&st.identity_file, config_key) {
            (Some(k), _) => (Some(k.value.clone()), k.from.clone()),
            (None, Some((p, from))) => (Some(p), from),
            (None, None) => (None, "default".to_string()),
        };
        let (known_hosts, extra_known_hosts, known_from) = match (&st.known_hosts, &l.known_hosts) {
            (Some(k), _) => (k.value.clone(), Vec::new(), k.from.clone()),
            (None, Some(files)) => {
                let mut paths = Vec::new();
                for t in &files.value {
                    paths.push(expand(&Val {
                        value: t.clone(),
                        at: files.at.clone(),
                    })?);
                }
                let first = paths.remove(0);
                (first, paths, at(&files.at))
            }
            (None, None) => (
                self.default_known.clone(),
                Vec::new(),
                "default".to_string(),
            ),
        };
        // The global files come after the user's, read-only, as OpenSSH
        // reads them: a key there is known, an `@revoked` line there wins,
        // new keys are recorded only in the user file (`known_hosts`).
        let mut extra_known_hosts = extra_known_hosts;
        let globals: Vec<PathBuf> = match &l.global_known_hosts {
            Some(files) => {
                let mut paths = Vec::new();
                for t in &files.value {
                    paths.push(expand(&Val {
                        value: t.clone(),
                        at: files.at.clone(),
                    })?);
                }
                paths
            }
            None => GLOBAL_KNOWN_HOSTS.iter().map(PathBuf::from).collect(),
        };
        for g in globals {
            if g != known_hosts && !extra_known_hosts.contains(&g) {
                extra_known_hosts.push(g);
            }
        }
        let jumps = match (&st.jumps, &l.proxy_jump) {
            (Some(j), _) => Some(j.clone()),
            (None, Some(j)) => Some(Sourced::new(j.value.clone(), at(&j.at))),
            (None, None) => None,
        };
        Ok(Base {
            reach: Reach {
                name: st.name.clone(),
                address,
                port,
                user,
                identity_file,
                known_hosts,
                extra_known_hosts,
                accept_new_host_key: l.strict.is_some_and(|s| s.value == Strict::AcceptNew),
                identities_only: l.identities_only.is_some_and(|v| v.value),
                connect_timeout: l.connect_timeout.map(|v| v.value),
                become_: st.become_,
                password_env: st.password_env.clone(),
                password: None,
                jumps: Vec::new(),
            },
            sources: Sources {
                address: address_from,
                port: port_from,
                user: user_from,
                identity_file: key_from,
                known_hosts: known_from,
                jumps: String::new(),
            },
            jumps,
        })
    }

    fn cycle_error(&self, stack: &[String], again: &str) -> InputError {
        let mut names: Vec<&str> = stack.iter().map(String::as_str).collect();
        names.push(again);
        InputError::whole_file(
            self.file,
            format!("jump hosts form a cycle: {}", names.join(" -> ")),
        )
    }

    /// The flat chain in front of inventory host `i`.
    fn chain_of_host(
        &mut self,
        i: usize,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Reach>, InputError> {
        if let Some(c) = &self.chains[i] {
            return Ok(c.clone());
        }
        let name = self.hosts[i].name.clone();
        if stack.contains(&name) {
            return Err(self.cycle_error(stack, &name));
        }
        stack.push(name.clone());
        let base = self.base_of_host(i)?;
        let chain = self.chain_of(&name, base.jumps.as_ref(), stack)?;
        stack.pop();
        self.chains[i] = Some(chain.clone());
        Ok(chain)
    }

    /// The flat chain for a jump list (of the host `name`).
    fn chain_of(
        &mut self,
        name: &str,
        jumps: Option<&Sourced<Jumps>>,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Reach>, InputError> {
        let Some(Sourced {
            value: Some(hops),
            from,
        }) = jumps
        else {
            return Ok(Vec::new());
        };
        let mut chain: Vec<Reach> = Vec::new();
        for hop in hops {
            let (mut reach, before) = match self.by_name.get(hop.host.as_str()).copied() {
                Some(j) => {
                    let before = self.chain_of_host(j, stack)?;
                    (self.base_of_host(j)?.reach, before)
                }
                None => {
                    if stack.iter().any(|s| s == &hop.host) {
                        return Err(self.cycle_error(stack, &hop.host));
                    }
                    let mut st = self.jump_defaults.clone();
                    st.name = hop.host.clone();
                    st.jumps = None;
                    let base = self.base(&st)?;
                    stack.push(hop.host.clone());
                    let before = self.chain_of(&hop.host, base.jumps.as_ref(), stack)?;
                    stack.pop();
                    (base.reach, before)
                }
            };
            if let Some(u) = &hop.user {
                reach.user.clone_from(u);
            }
            if let Some(p) = hop.port {
                reach.port = p;
            }
            // A hop's own chain comes first, unless the chain so far
            // already passes through it (`a,b` where b's chain is `a`).
            for r in before {
                if !chain.contains(&r) {
                    chain.push(r);
                }
            }
            chain.push(reach);
            if chain.len() > MAX_CHAIN {
                return Err(InputError::whole_file(
                    self.file,
                    format!("host '{name}': jump chain ({from}) is longer than {MAX_CHAIN} hops"),
                ));
            }
        }
        Ok(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stated(name: &str) -> Stated {
        Stated {
            name: name.into(),
            ..Stated::default()
        }
    }

    fn hops(s: &str) -> Option<Sourced<Jumps>> {
        Some(Sourced::new(
            super::super::sshconfig::parse_jumps(s).expect("valid"),
            "test",
        ))
    }

    fn run(p: &Parsed, cfg: Option<&str>) -> Result<(Vec<Host>, Vec<String>), InputError> {
        let dir = std::env::temp_dir().join(format!(
            "rampart-resolve-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let choice = match cfg {
            Some(text) => {
                let f = dir.join("config");
                std::fs::write(&f, text).expect("write");
                SshConfigChoice::File(f)
            }
            None => SshConfigChoice::None,
        };
        resolve(&dir.join("inv.yml"), p, &choice)
    }

    #[test]
    fn inventory_beats_ssh_config_beats_defaults() {
        let mut web1 = stated("web1");
        web1.user = Some(Sourced::new("admin".into(), "hosts.web1"));
        let p = Parsed {
            hosts: vec![web1, stated("web2")],
            ..Parsed::default()
        };
        let (h, w) = run(
            &p,
            Some("Host web*\n  User cfguser\n  HostName %h.example.com\n  Port 2222\n  IdentitiesOnly yes\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile /kh/a /kh/%h\n"),
        )
        .expect("resolves");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(h[0].reach.user, "admin");
        assert_eq!(h[0].sources.user, "hosts.web1");
        assert_eq!(h[1].reach.user, "cfguser");
        assert!(
            h[1].sources.user.ends_with("config:2"),
            "{:?}",
            h[1].sources
        );
        assert_eq!(h[1].reach.address, "web2.example.com");
        assert_eq!(h[1].reach.port, 2222);
        assert!(h[1].reach.identities_only && h[1].reach.accept_new_host_key);
        assert_eq!(h[1].reach.known_hosts, PathBuf::from("/kh/a"));
        assert_eq!(
            h[1].reach.extra_known_hosts,
            [
                "/kh/web2.example.com",
                "/etc/ssh/ssh_known_hosts",
                "/etc/ssh/ssh_known_hosts2"
            ]
            .map(PathBuf::from),
            "the user's files, then OpenSSH's default global ones"
        );
        let (h, _) = run(&p, None).expect("resolves");
        assert_eq!(
            (
                h[1].reach.address.as_str(),
                h[1].reach.port,
                h[1].reach.user.as_str()
            ),
            ("web2", 22, "root")
        );
        assert_eq!(h[1].sources.address, "name");
    }

    /// As OpenSSH: the user file, then the global ones (the default, or
    /// ssh_config's `GlobalKnownHostsFile`, `none` for none), also when the
    /// inventory names the user file and for jump hosts.
    #[test]
    fn global_known_hosts_follow_the_user_file() {
        let mut web1 = stated("web1");
        web1.known_hosts = Some(Sourced::new(PathBuf::from("/inv/kh"), "hosts.web1"));
        let mut web2 = stated("web2");
        web2.jumps = hops("gw");
        let p = Parsed {
            hosts: vec![web1, web2, stated("db1")],
            ..Parsed::default()
        };
        let (h, _) = run(&p, None).expect("resolves");
        assert_eq!(h[0].reach.known_hosts, PathBuf::from("/inv/kh"));
        let default: Vec<PathBuf> = GLOBAL_KNOWN_HOSTS.iter().map(PathBuf::from).collect();
        assert_eq!(h[0].reach.extra_known_hosts, default);
        assert_eq!(h[1].reach.jumps[0].extra_known_hosts, default);
        let (h, _) = run(
            &p,
            Some("Host web1 gw\n  GlobalKnownHostsFile /g/%h /inv/kh\nHost db1\n  GlobalKnownHostsFile none\n"),
        )
        .expect("resolves");
        assert_eq!(
            h[0].reach.extra_known_hosts,
            [PathBuf::from("/g/web1")],
            "the user file is not read twice"
        );
        assert_eq!(h[1].reach.extra_known_hosts, default);
        assert_eq!(
            h[1].reach.jumps[0].extra_known_hosts,
            ["/g/gw", "/inv/kh"].map(PathBuf::from)
        );
        assert!(h[2].reach.extra_known_hosts.is_empty());
    }

    #[test]
    fn jumps_flatten_and_inventory_hosts_lend_their_settings() {
        let mut bastion = stated("bastion");
        bastion.address = Some(Sourced::new("192.0.2.7".into(), "x"));
        bastion.user = Some(Sourced::new("ops".into(), "x"));
        let mut inner = stated("inner");
        inner.jumps = hops("bastion");
        let mut deep = stated("deep");
        deep.jumps = hops("jumper@inner:2200,outside");
        let p = Parsed {
            hosts: vec![bastion, inner, deep],
            ..Parsed::default()
        };
        let (h, _) = run(&p, Some("Host outside\n  HostName 10.9.9.9\n  User out\n")).expect("ok");
        assert!(h[0].reach.jumps.is_empty());
        let j: Vec<String> = h[1].reach.jumps.iter().map(Reach::endpoint).collect();
        assert_eq!(j, ["ops@192.0.2.7:22"]);
        let j: Vec<String> = h[2].reach.jumps.iter().map(Reach::endpoint).collect();
        assert_eq!(
            j,
            ["ops@192.0.2.7:22", "jumper@inner:2200", "out@10.9.9.9:22"]
        );
        assert!(h[2].reach.jumps.iter().all(|r| r.jumps.is_empty()));
    }

    #[test]
    fn cycles_are_errors() {
        let mut a = stated("a");
        a.jumps = hops("b");
        let mut b = stated("b");
        b.jumps = hops("a");
        let p = Parsed {
            hosts: vec![a, b],
            ..Parsed::default()
        };
        let e = run(&p, None).expect_err("cycle");
        assert!(e.message.contains("cycle: a -> b -> a"), "{e}");
        let mut a = stated("a");
        a.jumps = hops("a");
        let p = Parsed {
            hosts: vec![a],
            ..Parsed::default()
        };
        assert!(run(&p, None).is_err());
        // An ssh_config ProxyJump for every host, the jump included: a cycle
        // unless the jump's own block says none (first value wins).
        let mut x = stated("x");
        x.jumps = None;
        let p = Parsed {
            hosts: vec![x],
            ..Parsed::default()
        };
        let e = run(&p, Some("Host *\n  ProxyJump gw\n")).expect_err("gw via gw");
        assert!(e.message.contains("cycle"), "{e}");
        let (h, _) = run(
            &p,
            Some("Host gw\n  ProxyJump none\nHost *\n  ProxyJump gw\n"),
        )
        .expect("ok");
        assert_eq!(h[0].reach.jumps.len(), 1);
    }
}
