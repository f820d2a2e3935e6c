//! rampart's own inventory format: `defaults`, `hosts`, `groups`
//! (docs/design.md, "Formats").
//!
//! Local mistakes (unknown keys, a bad port, a malformed name) are caught
//! while deserializing, so serde_norway reports their position. Mistakes that
//! need the whole file (a duplicate host, a group naming an unknown host, a
//! cycle between groups) are positioned afterwards with [`yaml::locate`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserialize;

use super::pattern::{check_glob, is_glob};
use super::resolve::{Jumps, Parsed, Sourced, SshConfigChoice, Stated};
use super::sshconfig::parse_jumps;
use super::yaml::{self, Seg};
use super::{base_dir, check_address, check_group_name, check_host_name, check_user, resolve_path};
use crate::error::InputError;
use crate::glob::matches as glob_match;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    defaults: Option<Defaults>,
    #[serde(default)]
    hosts: Option<HostMap>,
    #[serde(default)]
    groups: Option<GroupMap>,
}

/// Connection settings every host inherits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    user: Option<User>,
    port: Option<Port>,
    identity_file: Option<String>,
    known_hosts: Option<String>,
    #[serde(rename = "become")]
    become_: Option<bool>,
    password_env: Option<EnvName>,
    /// Jump hosts for every host (a host says `proxy_jump: none` to opt out).
    proxy_jump: Option<JumpList>,
    /// The OpenSSH client config to read, or `none`.
    ssh_config: Option<String>,
}

/// One host's entry: its address and any overridden setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    address: Option<Address>,
    user: Option<User>,
    port: Option<Port>,
    identity_file: Option<String>,
    known_hosts: Option<String>,
    #[serde(rename = "become")]
    become_: Option<bool>,
    password_env: Option<EnvName>,
    proxy_jump: Option<JumpList>,
}

/// Declares a newtype over a validated value whose `Deserialize` runs the
/// check, so that a bad value is reported at its own position.
macro_rules! validated {
    ($name:ident, $inner:ty, $expect:literal, |$v:ident| $check:expr) => {
        #[derive(Debug, Clone)]
        struct $name($inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expect)
                    }
                    fn visit_str<E: de::Error>(self, $v: &str) -> Result<$name, E> {
                        let r: Result<$inner, String> = $check;
                        r.map($name).map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        self.visit_str(&v.to_string())
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

validated!(Port, u16, "a port number 1-65535", |v| super::parse_port(v));
validated!(User, String, "a user name", |v| check_user(v)
    .map(|_| v.to_string()));
validated!(Address, String, "an IP address or DNS name", |v| {
    check_address(v).map(|_| v.to_string())
});
validated!(
    JumpList,
    Jumps,
    "jump hosts: [user@]host[:port], comma-separated, or none",
    |v| parse_jumps(v).map_err(|(_, m)| m)
);
validated!(EnvName, String, "an environment variable name", |v| {
    let ok = !v.is_empty()
        && !v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("invalid environment variable name '{v}'"))
    }
});

/// `hosts:` in file order; a duplicate name is an error at the second key.
#[derive(Debug, Default)]
struct HostMap(Vec<(String, HostEntry)>);

impl<'de> Deserialize<'de> for HostMap {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named_map(d, "host", check_host_name).map(HostMap)
    }
}

/// `groups:` in file order: name -> members (null = no member).
#[derive(Debug, Default)]
struct GroupMap(Vec<(String, Vec<String>)>);

impl<'de> Deserialize<'de> for GroupMap {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn check(n: &str) -> Result<(), String> {
            if n == "all" {
                return Err("'all' is implicit (every host); it cannot be defined".into());
            }
            check_group_name(n)
        }
        let v: Vec<(String, Members)> = named_map(d, "group", check)?;
        Ok(GroupMap(
            v.into_iter()
                .map(|(k, m)| (k, m.0.into_iter().map(|x| x.0).collect()))
                .collect(),
        ))
    }
}

/// A group's member list.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
struct Members(Vec<Member>);

validated!(Member, String, "a host name, group name or glob", |v| {
    if is_glob(v) {
        check_glob(v).map(|_| v.to_string())
    } else {
        check_host_name(v)
            .or_else(|_| check_group_name(v))
            .map(|_| v.to_string())
    }
});

/// Read a mapping whose keys are names (checked with `check`, unique: a
/// repeated key is reported at its second occurrence) and whose values may
/// be null (then `V::default()`), keeping file order.
pub(crate) fn named_map<'de, D, V>(
    d: D,
    what: &'static str,
    check: fn(&str) -> Result<(), String>,
) -> Result<Vec<(String, V)>, D::Error>
where
    D: de::Deserializer<'de>,
    V: Deserialize<'de> + Default,
{
    struct Vis<V> {
        what: &'static str,
        check: fn(&str) -> Result<(), String>,
        _v: std::marker::PhantomData<V>,
    }
    impl<'de, V: Deserialize<'de> + Default> Visitor<'de> for Vis<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a mapping of {} names", self.what)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            while let Some(name) = map.next_key_seed(NameSeed {
                what: self.what,
                check: self.check,
                seen: &seen,
            })? {
                let v: Option<V> = map.next_value()?;
                seen.insert(name.clone());
                out.push((name, v.unwrap_or_default()));
            }
            Ok(out)
        }
    }
    d.deserialize_any(Vis {
        what,
        check,
        _v: std::marker::PhantomData,
    })
}

/// A name used as a mapping key: checked, and not seen before.
pub(crate) struct NameSeed<'a> {
    pub what: &'static str,
    pub check: fn(&str) -> Result<(), String>,
    pub seen: &'a HashSet<String>,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} name", self.what)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        (self.check)(v).map_err(E::custom)?;
        if self.seen.contains(v) {
            return Err(E::custom(format!("duplicate {} '{v}'", self.what)));
        }
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
}

/// Parse a native inventory into what it states about each host, in file
/// order; ssh_config and built-in defaults are applied later ([`super::resolve`]).
pub(crate) fn parse(file: &Path, text: &str) -> Result<Parsed, InputError> {
    let doc: Doc = serde_norway::from_str(text).map_err(|e| {
        let mut err = yaml::input_error(file, &e);
        if err.message.contains("unknown field") {
            err.message.push_str(
                " (an Ansible YAML inventory starts with `all:`; rampart's has defaults, hosts, groups)",
            );
        }
        err
    })?;
    let base = base_dir(file);
    let defaults = doc.defaults.unwrap_or_default();
    let hosts = doc.hosts.unwrap_or_default().0;
    let groups = doc.groups.unwrap_or_default().0;

    let path_at = |text_path: &str, at: &[Seg]| -> Result<PathBuf, InputError> {
        resolve_path(text_path, &base).map_err(|m| yaml::error_at(file, text, at, m))
    };
    let in_defaults = |k: &str| [Seg::Key("defaults".into()), Seg::Key(k.into())];
    let default_identity = match &defaults.identity_file {
        Some(p) => Some(Sourced::new(
            path_at(p, &in_defaults("identity_file"))?,
            "defaults",
        )),
        None => None,
    };
    let default_known = match &defaults.known_hosts {
        Some(p) => Some(Sourced::new(
            path_at(p, &in_defaults("known_hosts"))?,
            "defaults",
        )),
        None => None,
    };
    let ssh_config = match defaults.ssh_config.as_deref() {
        None => None,
        Some("none") => Some(SshConfigChoice::None),
        Some(p) => Some(SshConfigChoice::File(path_at(
            p,
            &in_defaults("ssh_config"),
        )?)),
    };
    let jump_defaults = Stated {
        port: defaults
            .port
            .as_ref()
            .map(|p| Sourced::new(p.0, "defaults")),
        user: defaults
            .user
            .as_ref()
            .map(|u| Sourced::new(u.0.clone(), "defaults")),
        identity_file: default_identity.clone(),
        known_hosts: default_known.clone(),
        ..Stated::default()
    };

    let host_names: HashSet<&str> = hosts.iter().map(|(n, _)| n.as_str()).collect();
    let group_names: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    for (name, _) in &groups {
        if host_names.contains(name.as_str()) {
            return Err(yaml::error_at(
                file,
                text,
                &[Seg::Key("groups".into()), Seg::KeyItself(name.clone(), 0)],
                format!(
                    "group '{name}' has the name of a host; patterns could not tell them apart"
                ),
            ));
        }
    }

    // Members of each group (host indices), resolving nested groups.
    let mut resolved: Vec<Option<BTreeSet<usize>>> = vec![None; groups.len()];
    for gi in 0..groups.len() {
        let mut stack = Vec::new();
        resolve_group(gi, &groups, &hosts, &group_names, &mut resolved, &mut stack)
            .map_err(|(path, msg)| yaml::error_at(file, text, &path, msg))?;
    }

    let mut out = Vec::with_capacity(hosts.len());
    for (hi, (name, e)) in hosts.iter().enumerate() {
        let at = |k: &str| {
            vec![
                Seg::Key("hosts".into()),
                Seg::Key(name.clone()),
                Seg::Key(k.into()),
            ]
        };
        let own = format!("hosts.{name}");
        let mine = |v| Sourced::new(v, own.clone());
        let identity_file = match &e.identity_file {
            Some(p) => Some(mine(path_at(p, &at("identity_file"))?)),
            None => default_identity.clone(),
        };
        let known_hosts = match &e.known_hosts {
            Some(p) => Some(mine(path_at(p, &at("known_hosts"))?)),
            None => default_known.clone(),
        };
        let mut member_of: Vec<String> = groups
            .iter()
            .zip(&resolved)
            .filter(|(_, r)| r.as_ref().is_some_and(|s| s.contains(&hi)))
            .map(|((g, _), _)| g.clone())
            .collect();
        member_of.sort();
        out.push(Stated {
            name: name.clone(),
            groups: member_of,
            address: e
                .address
                .as_ref()
                .map(|a| Sourced::new(a.0.clone(), own.clone())),
            port: match (&e.port, &defaults.port) {
                (Some(p), _) => Some(Sourced::new(p.0, own.clone())),
                (None, Some(p)) => Some(Sourced::new(p.0, "defaults")),
                (None, None) => None,
            },
            user: match (&e.user, &defaults.user) {
                (Some(u), _) => Some(Sourced::new(u.0.clone(), own.clone())),
                (None, Some(u)) => Some(Sourced::new(u.0.clone(), "defaults")),
                (None, None) => None,
            },
            identity_file,
            known_hosts,
            jumps: match (&e.proxy_jump, &defaults.proxy_jump) {
                (Some(j), _) => Some(Sourced::new(j.0.clone(), own.clone())),
                (None, Some(j)) => Some(Sourced::new(j.0.clone(), "defaults")),
                (None, None) => None,
            },
            become_: e.become_.or(defaults.become_).unwrap_or(false),
            password_env: e
                .password_env
                .as_ref()
                .or(defaults.password_env.as_ref())
                .map(|p| p.0.clone()),
        });
    }
    Ok(Parsed {
        hosts: out,
        jump_defaults,
        ssh_config,
        warnings: Vec::new(),
    })
}

type Located = (Vec<Seg>, String);

/// Resolve group `gi` into host indices (memoized in `resolved`); `stack`
/// holds the groups being resolved, to report a cycle at the member that
/// closes it.
fn resolve_group(
    gi: usize,
    groups: &[(String, Vec<String>)],
    hosts: &[(String, HostEntry)],
    group_names: &HashMap<&str, usize>,
    resolved: &mut Vec<Option<BTreeSet<usize>>>,
    stack: &mut Vec<usize>,
) -> Result<(), Located> {
    if resolved[gi].is_some() {
        return Ok(());
    }
    stack.push(gi);
    let (gname, members) = &groups[gi];
    let mut set = BTreeSet::new();
    for (mi, m) in members.iter().enumerate() {
        let at = || {
            vec![
                Seg::Key("groups".into()),
                Seg::Key(gname.clone()),
                Seg::Index(mi),
            ]
        };
        if m == "all" {
            set.extend(0..hosts.len());
        } else if is_glob(m) {
            // A glob selects hosts by name; matching nothing is allowed
            // (a `mx*` group in an inventory with no mail server yet).
            set.extend(
                hosts
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| glob_match(m, n))
                    .map(|(i, _)| i),
            );
        } else if let Some(hi) = hosts.iter().position(|(n, _)| n == m) {
            set.insert(hi);
        } else if let Some(&sub) = group_names.get(m.as_str()) {
            if stack.contains(&sub) {
                let cycle: Vec<&str> = stack
                    .iter()
                    .map(|&i| groups[i].0.as_str())
                    .chain(std::iter::once(m.as_str()))
                    .collect();
                return Err((at(), format!("groups form a cycle: {}", cycle.join(" -> "))));
            }
            resolve_group(sub, groups, hosts, group_names, resolved, stack)?;
            if let Some(s) = &resolved[sub] {
                set.extend(s.iter().copied());
            }
        } else {
            return Err((
                at(),
                format!("group '{gname}' names '{m}', which is neither a host nor a group of this inventory"),
            ));
        }
    }
    stack.pop();
    resolved[gi] = Some(set);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Host;
    use super::*;

    fn load(text: &str) -> Result<Vec<Host>, InputError> {
        let file = Path::new("/inv/hosts.yml");
        let parsed = parse(file, text)?;
        super::super::resolve::resolve(file, &parsed, &SshConfigChoice::None).map(|(h, _)| h)
    }

    fn err(text: &str) -> (usize, usize, String) {
        let e = load(text).expect_err("should fail");
        (e.line, e.column, e.message)
    }

    const EXAMPLE: &str = "\
defaults:
  user: root
  port: 22
  identity_file: keys/id_ed25519
  known_hosts: /etc/rampart/known_hosts
  become: false
  password_env: VPS_ROOT_PW
hosts:
  web1: {address: 203.0.113.10}
  web2: {address: 203.0.113.11, port: 2222, user: admin, become: true}
  mx1:  {address: 2001:db8::25}
  bare:
groups:
  web: [web1, web2]
  mail: [mx*]
  front: [web, bare]
";

    #[test]
    fn spec_example_resolves() {
        let hosts = load(EXAMPLE).expect("valid");
        let names: Vec<&str> = hosts.iter().map(|h| h.name()).collect();
        assert_eq!(names, ["web1", "web2", "mx1", "bare"]);
        let web2 = &hosts[1];
        assert_eq!(web2.reach.address, "203.0.113.11");
        assert_eq!(
            (
                web2.reach.port,
                web2.reach.user.as_str(),
                web2.reach.become_
            ),
            (2222, "admin", true)
        );
        assert_eq!(web2.groups, ["front", "web"]);
        assert_eq!(
            web2.reach.identity_file,
            Some(PathBuf::from("/inv/keys/id_ed25519"))
        );
        assert_eq!(
            web2.reach.known_hosts,
            PathBuf::from("/etc/rampart/known_hosts")
        );
        assert_eq!(web2.reach.password_env.as_deref(), Some("VPS_ROOT_PW"));
        assert_eq!(hosts[2].reach.address, "2001:db8::25");
        assert_eq!(hosts[2].groups, ["mail"]);
        let bare = &hosts[3];
        assert_eq!(
            (
                bare.reach.address.as_str(),
                bare.reach.port,
                bare.reach.user.as_str()
            ),
            ("bare", 22, "root")
        );
        assert_eq!(bare.groups, ["front"]);
    }

    #[test]
    fn minimal_defaults() {
        let hosts = load("hosts:\n  a:\n  b: {}\n").expect("valid");
        assert_eq!(hosts.len(), 2);
        assert_eq!(
            (
                hosts[0].reach.port,
                hosts[0].reach.user.as_str(),
                hosts[0].reach.become_
            ),
            (22, "root", false)
        );
        assert!(hosts[0].groups.is_empty());
        assert!(hosts[0].reach.known_hosts.ends_with(".ssh/known_hosts"));
        assert_eq!(hosts[0].reach.identity_file, None);
    }

    #[test]
    fn errors_have_positions() {
        let (l, c, m) = err("hosts:\n  web1: {adress: 1.2.3.4}\n");
        assert_eq!((l, c), (2, 10), "{m}");
        assert!(m.contains("unknown field `adress`"), "{m}");

        let (l, c, m) = err("hosts:\n  web1:\n    port: 70000\n");
        assert_eq!((l, c), (3, 11), "{m}");
        assert!(m.contains("port 70000 is out of range (1-65535)"), "{m}");

        let (l, c, m) = err("hosts:\n  web1: {port: 0}\n");
        assert_eq!((l, c), (2, 16), "{m}");
        assert!(m.contains("port 0 is out of range"), "{m}");

        let (l, c, m) = err("hosts:\n  web1:\n  web2:\n  web1: {}\n");
        assert_eq!((l, c), (4, 3), "{m}");
        assert!(m.contains("duplicate host 'web1'"), "{m}");

        let (l, c, m) = err("groups:\n  web: [web1, wbe2]\nhosts:\n  web1:\n  web2:\n");
        assert_eq!((l, c), (2, 15), "{m}");
        assert!(
            m.contains("'wbe2', which is neither a host nor a group"),
            "{m}"
        );

        let (l, c, m) = err("hosts:\n  a:\ngroups:\n  x: [y]\n  y: [x]\n");
        assert_eq!((l, c), (5, 7), "{m}");
        assert!(m.contains("cycle: x -> y -> x"), "{m}");

        let (l, c, m) = err("defaults:\n  usr: root\nhosts:\n  a:\n");
        assert_eq!((l, c), (2, 3), "{m}");
        assert!(m.contains("unknown field `usr`"), "{m}");

        let (l, c, m) = err("hosts:\n  a: {user: 'x y'}\n");
        assert_eq!((l, c), (2, 13), "{m}");
        assert!(m.contains("invalid user name"), "{m}");

        let (l, c, _) = err("hosts:\n  a: [\n");
        assert!(l >= 2 && c >= 1, "syntax error located");

        let (l, c, m) = err("groups:\n  all: [a]\nhosts:\n  a:\n");
        assert_eq!((l, c), (2, 3), "{m}");

        let (_, _, m) = err("all_hosts:\n  a:\n");
        assert!(m.contains("Ansible"), "{m}");
    }

    #[test]
    fn proxy_jump_names_inventory_hosts_or_others() {
        let hosts = load(
            "defaults:\n  proxy_jump: ops@bastion:2222\nhosts:\n  bastion: {address: 192.0.2.7, proxy_jump: none}\n  web1:\n  web2: {proxy_jump: 'gw.example.net,bastion'}\n",
        )
        .expect("valid");
        assert!(hosts[0].reach.jumps.is_empty());
        let chain = |i: usize| -> Vec<String> {
            hosts[i].reach.jumps.iter().map(|j| j.endpoint()).collect()
        };
        assert_eq!(chain(1), ["ops@192.0.2.7:2222"]);
        assert_eq!(hosts[1].sources.jumps, "defaults");
        assert_eq!(chain(2), ["root@gw.example.net:22", "root@192.0.2.7:22"]);
        assert_eq!(hosts[2].sources.jumps, "hosts.web2");
        assert_eq!(hosts[2].reach.jumps[1].name, "bastion");

        let (l, c, m) = err("hosts:\n  a: {proxy_jump: 'x:99999'}\n");
        assert_eq!((l, c), (2, 19), "{m}");
        assert!(m.contains("bad jump host 'x:99999'"), "{m}");
        let (l, _, m) = err("hosts:\n  a: {proxy_jump: a}\n");
        assert_eq!(l, 0, "{m}");
        assert!(m.contains("jump hosts form a cycle: a -> a"), "{m}");
    }

    #[test]
    fn globs_and_nested_groups() {
        let hosts = load(
            "hosts:\n  web1:\n  web2:\n  db1:\ngroups:\n  web: ['web*']\n  prod: [web, db1]\n  none: ['zz*']\n  everyone: [all]\n",
        )
        .expect("valid");
        assert_eq!(hosts[0].groups, ["everyone", "prod", "web"]);
        assert_eq!(hosts[2].groups, ["everyone", "prod"]);
    }
}
