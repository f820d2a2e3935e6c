//! Ansible inventories, INI and YAML, read into the same hosts as the
//! native format, so users bring the inventory they already have.
//!
//! The connection variables rampart uses: `ansible_host`, `ansible_port`,
//! `ansible_user`, `ansible_ssh_private_key_file`, `ansible_become` (and
//! the old `ansible_ssh_host` / `_port` / `_user` spellings), and a jump
//! host given as `-J HOST` or `-o ProxyJump=HOST` inside
//! `ansible_ssh_common_args` or `ansible_ssh_extra_args` (the common args
//! first, as ssh sees them). `ansible_connection: ssh`,
//! `ansible_become_method: sudo` and `ansible_become_user: root` are what
//! rampart does anyway. Any other `ansible_*` variable, and any other part
//! of the ssh args, is named in one warning per run: it would change how
//! Ansible connects, and rampart does not honour it. Variables not starting
//! with `ansible_` belong to playbooks and are skipped silently. Passwords
//! (`ansible_password`, `ansible_ssh_pass`, `ansible_become_password`, ...)
//! are rejected with a position: rampart takes passwords only from an
//! environment variable (`password_env`) or `--ask-pass`, never from a file
//! that ends up in version control.
//!
//! Variable precedence is Ansible's: inventory-file vars of `all`, then of
//! the host's groups from parent to child (groups of equal depth by name),
//! then `group_vars/all`, then `group_vars/` of those groups in the same
//! order, then the host's inventory-file vars, then `host_vars/`
//! ([`super::ansible_dir`] reads those files). Children inherit their
//! parents' vars; a group's members include its children's. Differences
//! from Ansible, on purpose: the default user is `root` (no user rampart
//! could guess is better) rather than the local user, a relative key file is
//! taken from the inventory's directory, and `host:port` is split only when
//! the name has exactly one `:` (so IPv6 names stay whole).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::native::named_map;
use super::resolve::{Jumps, Parsed, Sourced, Stated};
use super::sshconfig::parse_jumps;
use super::yaml;
use super::{
    check_address, check_group_name, check_host_name, check_user, parse_port, resolve_path,
};
use crate::error::InputError;

/// One variable, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Host(String),
    Port(u16),
    User(String),
    Key(String),
    Become(bool),
    /// `ansible_ssh_common_args` (`extra: false`) or `_extra_args`: the jump
    /// list it gives with `-J` / `-o ProxyJump`, if any, and what else it
    /// says (unused by rampart).
    SshArgs {
        extra: bool,
        jumps: Option<Jumps>,
        unused: Vec<String>,
    },
    /// An `ansible_*` variable rampart does not use (named in a warning).
    Unused(String),
    /// A variable of the playbooks', not of the connection.
    Ignored,
}

/// The variables set at one level (a group, a host, a vars file), each
/// with where it was set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Vars {
    host: Option<Sourced<String>>,
    port: Option<Sourced<u16>>,
    user: Option<Sourced<String>>,
    key: Option<Sourced<String>>,
    become_: Option<bool>,
    /// The jumps of `ansible_ssh_common_args`: `Some(None)` when the
    /// variable is set without a `-J` (it still replaces a parent's).
    common_jumps: Option<Sourced<Option<Jumps>>>,
    extra_jumps: Option<Sourced<Option<Jumps>>>,
    /// (what, where) of everything set here that rampart does not use.
    unused: Vec<(String, String)>,
}

impl Vars {
    pub(crate) fn set(&mut self, v: Var, from: &str) {
        let src = |x| Sourced::new(x, from);
        match v {
            Var::Host(h) => self.host = Some(src(h)),
            Var::Port(p) => self.port = Some(Sourced::new(p, from)),
            Var::User(u) => self.user = Some(src(u)),
            Var::Key(k) => self.key = Some(src(k)),
            Var::Become(b) => self.become_ = Some(b),
            Var::SshArgs {
                extra,
                jumps,
                unused,
            } => {
                let which = if extra {
                    "ansible_ssh_extra_args"
                } else {
                    "ansible_ssh_common_args"
                };
                for u in unused {
                    self.unused
                        .push((format!("{which} '{u}'"), from.to_string()));
                }
                let slot = if extra {
                    &mut self.extra_jumps
                } else {
                    &mut self.common_jumps
                };
                *slot = Some(Sourced::new(jumps, from));
            }
            Var::Unused(name) => self.unused.push((name, from.to_string())),
            Var::Ignored => {}
        }
    }

    /// Apply `o` on top of `self`: what `o` states wins.
    fn overlay(&mut self, o: &Vars) {
        fn over<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if b.is_some() {
                a.clone_from(b);
            }
        }
        over(&mut self.host, &o.host);
        over(&mut self.port, &o.port);
        over(&mut self.user, &o.user);
        over(&mut self.key, &o.key);
        over(&mut self.become_, &o.become_);
        over(&mut self.common_jumps, &o.common_jumps);
        over(&mut self.extra_jumps, &o.extra_jumps);
        self.unused.extend(o.unused.iter().cloned());
    }

    /// The jump list the ssh args give: common args first.
    fn jumps(&self) -> Option<Sourced<Jumps>> {
        for slot in [&self.common_jumps, &self.extra_jumps] {
            if let Some(Sourced {
                value: Some(j),
                from,
            }) = slot
            {
                return Some(Sourced::new(j.clone(), from.clone()));
            }
        }
        None
    }
}

/// Split ssh arguments (`-J bastion -o Foo=bar`) into the jump list and
/// the rest.
fn parse_ssh_args(key: &str, value: &str, extra: bool) -> Result<Var, String> {
    let toks: Vec<String> = tokenize(value)
        .map_err(|(_, e)| format!("{key}: {e}"))?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let mut jumps: Option<Jumps> = None;
    let mut unused = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        i += 1;
        let jump = if t == "-J" || t == "-o" {
            let Some(arg) = toks.get(i) else {
                return Err(format!("{key}: {t} needs an argument"));
            };
            i += 1;
            if t == "-J" {
                Some(arg.clone())
            } else {
                option_jump(arg).or_else(|| {
                    unused.push(format!("-o {arg}"));
                    None
                })
            }
        } else if let Some(rest) = t.strip_prefix("-J") {
            Some(rest.to_string())
        } else if let Some(rest) = t.strip_prefix("-o") {
            option_jump(rest).or_else(|| {
                unused.push(t.clone());
                None
            })
        } else {
            unused.push(t.clone());
            None
        };
        if let Some(j) = jump {
            let parsed = parse_jumps(&j).map_err(|(_, m)| format!("{key}: {m}"))?;
            // ssh takes the first ProxyJump it is given.
            if jumps.is_none() {
                jumps = Some(parsed);
            }
        }
    }
    Ok(Var::SshArgs {
        extra,
        jumps,
        unused,
    })
}

/// The value of `ProxyJump=X` / `ProxyJump X` in an `-o` argument.
fn option_jump(arg: &str) -> Option<String> {
    let (k, v) = arg
        .split_once('=')
        .or_else(|| arg.split_once(char::is_whitespace))?;
    k.trim()
        .eq_ignore_ascii_case("proxyjump")
        .then(|| v.trim().to_string())
}

/// Interpret one variable; passwords are refused.
pub(crate) fn parse_var(key: &str, value: &str) -> Result<Var, String> {
    let value = value.trim();
    Ok(match key {
        "ansible_host" | "ansible_ssh_host" => {
            check_address(value).map_err(|e| format!("{key}: {e}"))?;
            Var::Host(value.to_string())
        }
        "ansible_port" | "ansible_ssh_port" => {
            Var::Port(parse_port(value).map_err(|e| format!("{key}: {e}"))?)
        }
        "ansible_user" | "ansible_ssh_user" => {
            check_user(value).map_err(|e| format!("{key}: {e}"))?;
            Var::User(value.to_string())
        }
        "ansible_ssh_private_key_file" | "ansible_private_key_file" => {
            if value.is_empty() {
                return Err(format!("{key}: empty path"));
            }
            Var::Key(value.to_string())
        }
        "ansible_become" => Var::Become(match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => true,
            "false" | "no" | "0" | "off" => false,
            _ => {
                return Err(format!(
                    "{key}: '{value}' is not a boolean (true/yes/1 or false/no/0)"
                ))
            }
        }),
        "ansible_ssh_common_args" => parse_ssh_args(key, value, false)?,
        "ansible_ssh_extra_args" => parse_ssh_args(key, value, true)?,
        "ansible_password"
        | "ansible_ssh_pass"
        | "ansible_ssh_password"
        | "ansible_become_password"
        | "ansible_become_pass"
        | "ansible_sudo_pass" => {
            return Err(format!(
                "{key} is not supported: rampart never reads passwords from an inventory; \
                 use SSH keys, or a rampart inventory with password_env (or --ask-pass)"
            ))
        }
        // What rampart does anyway: nothing to warn about.
        "ansible_connection" if matches!(value, "ssh" | "smart" | "paramiko" | "paramiko_ssh") => {
            Var::Ignored
        }
        "ansible_become_method" if value == "sudo" => Var::Ignored,
        "ansible_become_user" if value == "root" => Var::Ignored,
        k if k.starts_with("ansible_") => Var::Unused(k.to_string()),
        _ => Var::Ignored,
    })
}

/// Is `key` one of the variables whose value must be a single scalar?
fn is_scalar_var(key: &str) -> bool {
    !matches!(parse_var(key, "x"), Ok(Var::Unused(_) | Var::Ignored))
}

#[derive(Debug, Default)]
struct Group {
    /// Hosts listed directly in this group.
    hosts: Vec<String>,
    children: Vec<String>,
    /// Vars from inventory files.
    vars: Vars,
    /// Vars from `group_vars/`.
    file_vars: Vars,
}

/// Ansible inventories as written (one or several files, plus vars
/// files), before inheritance is resolved.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// Host names in order of first appearance.
    host_order: Vec<String>,
    host_vars: HashMap<String, Vars>,
    host_file_vars: HashMap<String, Vars>,
    groups: Vec<(String, Group)>,
    group_idx: HashMap<String, usize>,
    /// `group_vars/ungrouped`: for hosts in no group but `all`.
    ungrouped_vars: Vars,
}

impl Model {
    fn group(&mut self, name: &str) -> &mut Group {
        let i = match self.group_idx.get(name) {
            Some(&i) => i,
            None => {
                self.groups.push((name.to_string(), Group::default()));
                self.group_idx
                    .insert(name.to_string(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        &mut self.groups[i].1
    }

    fn host(&mut self, name: &str, in_group: &str, vars: &Vars) {
        match self.host_vars.get_mut(name) {
            Some(v) => v.overlay(vars),
            None => {
                self.host_order.push(name.to_string());
                self.host_vars.insert(name.to_string(), vars.clone());
            }
        }
        if in_group != "all" {
            let g = self.group(in_group);
            if !g.hosts.iter().any(|h| h == name) {
                g.hosts.push(name.to_string());
            }
        }
    }

    fn child(&mut self, parent: &str, child: &str) {
        self.group(child);
        if parent != "all" {
            let g = self.group(parent);
            if !g.children.iter().any(|c| c == child) {
                g.children.push(child.to_string());
            }
        }
    }

    /// Is there a group of this name (`all` always is)?
    pub(crate) fn has_group(&self, name: &str) -> bool {
        name == "all" || self.group_idx.contains_key(name)
    }

    pub(crate) fn has_host(&self, name: &str) -> bool {
        self.host_vars.contains_key(name)
    }

    /// Add the vars of a `group_vars/` file (later files win).
    pub(crate) fn add_group_file_vars(&mut self, group: &str, vars: &Vars) {
        if group == "ungrouped" && !self.group_idx.contains_key("ungrouped") {
            self.ungrouped_vars.overlay(vars);
        } else {
            self.group(group).file_vars.overlay(vars);
        }
    }

    /// Add the vars of a `host_vars/` file (later files win).
    pub(crate) fn add_host_file_vars(&mut self, host: &str, vars: &Vars) {
        self.host_file_vars
            .entry(host.to_string())
            .or_default()
            .overlay(vars);
    }

    /// Resolve membership and variable inheritance. `file` names the
    /// inventory in errors; `base` is where relative key paths start.
    pub(crate) fn finish(mut self, file: &Path, base: &Path) -> Result<Parsed, InputError> {
        self.group("all");
        let n = self.groups.len();
        let idx = |name: &str, m: &Model| m.group_idx.get(name).copied();
        // Parents of each group, to compute depth (all = 0, top level = 1).
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (pi, (_, g)) in self.groups.iter().enumerate() {
            for c in &g.children {
                if let Some(ci) = idx(c, &self) {
                    parents[ci].push(pi);
                }
            }
        }
        let all = idx("all", &self).unwrap_or(0);
        let mut depth: Vec<Option<usize>> = vec![None; n];
        for gi in 0..n {
            let mut stack = Vec::new();
            group_depth(gi, all, &parents, &mut depth, &mut stack).map_err(|cycle| {
                let names: Vec<&str> = cycle.iter().map(|&i| self.groups[i].0.as_str()).collect();
                InputError::whole_file(file, format!("groups form a cycle: {}", names.join(" -> ")))
            })?;
        }
        // Transitive members of each group (cycles were ruled out above).
        let mut members: Vec<Option<BTreeSet<String>>> = vec![None; n];
        for gi in 0..n {
            group_members(gi, &self, &mut members);
        }
        let mut unused: BTreeMap<String, String> = BTreeMap::new();
        let mut note_unused = |v: &Vars| {
            for (what, at) in &v.unused {
                unused.entry(what.clone()).or_insert_with(|| at.clone());
            }
        };
        for (_, g) in &self.groups {
            note_unused(&g.vars);
            note_unused(&g.file_vars);
        }
        note_unused(&self.ungrouped_vars);
        for v in self.host_vars.values().chain(self.host_file_vars.values()) {
            note_unused(v);
        }
        let mut out = Vec::with_capacity(self.host_order.len());
        for name in &self.host_order {
            let mut of: Vec<usize> = (0..n)
                .filter(|&gi| gi != all && members[gi].as_ref().is_some_and(|s| s.contains(name)))
                .collect();
            of.sort_by(|&a, &b| (depth[a], &self.groups[a].0).cmp(&(depth[b], &self.groups[b].0)));
            let mut v = self.groups[all].1.vars.clone();
            for &gi in &of {
                v.overlay(&self.groups[gi].1.vars);
            }
            v.overlay(&self.groups[all].1.file_vars);
            if of.is_empty() {
                v.overlay(&self.ungrouped_vars);
            }
            for &gi in &of {
                v.overlay(&self.groups[gi].1.file_vars);
            }
            if let Some(hv) = self.host_vars.get(name) {
                v.overlay(hv);
            }
            if let Some(hv) = self.host_file_vars.get(name) {
                v.overlay(hv);
            }
            let identity_file = match &v.key {
                Some(k) => Some(Sourced::new(
                    resolve_path(&k.value, base)
                        .map_err(|e| InputError::whole_file(file, format!("host '{name}': {e}")))?,
                    k.from.clone(),
                )),
                None => None,
            };
            let mut groups: Vec<String> = of.iter().map(|&gi| self.groups[gi].0.clone()).collect();
            groups.sort();
            out.push(Stated {
                name: name.clone(),
                groups,
                address: v.host.clone(),
                port: v.port.clone(),
                user: v.user.clone(),
                identity_file,
                known_hosts: None,
                jumps: v.jumps(),
                become_: v.become_.unwrap_or(false),
                password_env: None,
            });
        }
        let mut warnings = Vec::new();
        if !unused.is_empty() {
            let list: Vec<String> = unused
                .iter()
                .map(|(what, at)| format!("{what} ({at})"))
                .collect();
            warnings.push(format!(
                "Ansible settings rampart does not use (they change nothing here): {}",
                list.join(", ")
            ));
        }
        Ok(Parsed {
            hosts: out,
            warnings,
            ..Parsed::default()
        })
    }
}

/// Longest distance from `all` (memoized); Err(the cycle) when one exists.
fn group_depth(
    gi: usize,
    all: usize,
    parents: &[Vec<usize>],
    depth: &mut Vec<Option<usize>>,
    stack: &mut Vec<usize>,
) -> Result<usize, Vec<usize>> {
    if let Some(d) = depth[gi] {
        return Ok(d);
    }
    if gi == all {
        depth[gi] = Some(0);
        return Ok(0);
    }
    if let Some(pos) = stack.iter().position(|&s| s == gi) {
        let mut cycle: Vec<usize> = stack[pos..].iter().rev().copied().collect();
        cycle.push(gi);
        return Err(cycle);
    }
    stack.push(gi);
    let mut d = 1;
    for &p in &parents[gi] {
        d = d.max(group_depth(p, all, parents, depth, stack)? + 1);
    }
    stack.pop();
    depth[gi] = Some(d);
    Ok(d)
}

fn group_members(gi: usize, m: &Model, memo: &mut Vec<Option<BTreeSet<String>>>) {
    if memo[gi].is_some() {
        return;
    }
    let (_, g) = &m.groups[gi];
    let mut set: BTreeSet<String> = g.hosts.iter().cloned().collect();
    for c in &g.children {
        if let Some(&ci) = m.group_idx.get(c) {
            group_members(ci, m, memo);
            if let Some(s) = &memo[ci] {
                set.extend(s.iter().cloned());
            }
        }
    }
    memo[gi] = Some(set);
}

/// Expand Ansible host ranges: `web[01:03]` -> web01, web02, web03;
/// `db-[a:c]`; `[1:10:2]` with a stride. Several ranges multiply.
pub(crate) fn expand_ranges(name: &str) -> Result<Vec<String>, String> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let close = name[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or_else(|| format!("unclosed '[' in host range '{name}'"))?;
    let (prefix, inner, suffix) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let parts: Vec<&str> = inner.split(':').collect();
    let bad = || {
        format!(
            "bad host range '[{inner}]' in '{name}' (expected [start:end] or [start:end:stride])"
        )
    };
    if parts.len() != 2 && parts.len() != 3 {
        return Err(bad());
    }
    let stride: usize = match parts.get(2) {
        Some(s) => s.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?,
        None => 1,
    };
    let (a, b) = (parts[0], parts[1]);
    let items: Vec<String> = if let (Ok(lo), Ok(hi)) = (a.parse::<u64>(), b.parse::<u64>()) {
        if lo > hi {
            return Err(bad());
        }
        if hi - lo > 100_000 {
            return Err(format!("host range '[{inner}]' in '{name}' is too large"));
        }
        let width = if a.len() > 1 && a.starts_with('0') {
            a.len()
        } else {
            0
        };
        (lo..=hi)
            .step_by(stride)
            .map(|i| format!("{i:0width$}"))
            .collect()
    } else {
        let (mut ca, mut cb) = (a.chars(), b.chars());
        match (ca.next(), ca.next(), cb.next(), cb.next()) {
            (Some(x), None, Some(y), None)
                if x.is_ascii_alphabetic() && y.is_ascii_alphabetic() && x <= y =>
            {
                (x..=y).step_by(stride).map(String::from).collect()
            }
            _ => return Err(bad()),
        }
    };
    let tails = expand_ranges(suffix)?;
    let mut out = Vec::with_capacity(items.len() * tails.len());
    for i in &items {
        for t in &tails {
            out.push(format!("{prefix}{i}{t}"));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// INI
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// Split a line into whitespace-separated tokens, honouring '...' and "..."
/// (the quotes are removed); a token starting with `#` ends the line.
/// Each token comes with its 1-based column.
fn tokenize(line: &str) -> Result<Vec<(usize, String)>, (usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let start = i;
        let mut tok = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => tok.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => break,
                None => tok.push(c),
            }
            i += 1;
        }
        if quote.is_some() {
            return Err((start + 1, "unterminated quote".into()));
        }
        out.push((start + 1, tok));
    }
    Ok(out)
}

/// Remove one pair of matching surrounding quotes.
fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// Parse one Ansible INI inventory on its own.
pub(crate) fn parse_ini(file: &Path, text: &str) -> Result<Parsed, InputError> {
    let mut m = Model::default();
    m.add_ini(file, text)?;
    m.finish(file, &super::base_dir(file))
}

/// How a vars source is named in `rampart inventory` and warnings: the
/// file's name (not its whole path: short, and the same on every machine).
pub(crate) fn short_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

impl Model {
    /// Add an Ansible INI inventory file.
    pub(crate) fn add_ini(&mut self, file: &Path, text: &str) -> Result<(), InputError> {
        let m = self;
        let short = short_name(file);
        let mut sec = Section::Hosts("all".into());
        let err = |line: usize, col: usize, msg: String| InputError::new(file, line, col, msg);
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let from = format!("{short}:{lineno}");
            let line = raw.trim_end_matches('\r');
            let t = line.trim_start();
            let indent = line.chars().count() - t.chars().count();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            if t.starts_with('[') {
                let inner = t
                    .trim_end()
                    .strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .ok_or_else(|| {
                        err(
                            lineno,
                            indent + 1,
                            "section header without closing ']'".into(),
                        )
                    })?;
                let (name, kind) = match inner.rsplit_once(':') {
                    Some((n, k)) => (n, Some(k)),
                    None => (inner, None),
                };
                check_group_name(name).map_err(|e| err(lineno, indent + 2, e))?;
                m.group(name);
                sec = match kind {
                    None => Section::Hosts(name.into()),
                    Some("vars") => Section::Vars(name.into()),
                    Some("children") => Section::Children(name.into()),
                    Some(k) => {
                        return Err(err(
                            lineno,
                            indent + 2 + name.chars().count(),
                            format!("unknown section kind ':{k}' (expected :vars or :children)"),
                        ))
                    }
                };
                continue;
            }
            match &sec {
                Section::Hosts(group) => {
                    let toks = tokenize(line).map_err(|(c, e)| err(lineno, c, e))?;
                    let Some(((hcol, hostspec), rest)) = toks.split_first() else {
                        continue;
                    };
                    let mut vars = Vars::default();
                    let mut hostpart = hostspec.as_str();
                    if hostspec.matches(':').count() == 1 {
                        if let Some((h, p)) = hostspec.split_once(':') {
                            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                                let port = parse_port(p).map_err(|e| err(lineno, *hcol, e))?;
                                vars.set(Var::Port(port), &from);
                                hostpart = h;
                            }
                        }
                    }
                    let names = expand_ranges(hostpart).map_err(|e| err(lineno, *hcol, e))?;
                    for n in &names {
                        check_host_name(n).map_err(|e| err(lineno, *hcol, e))?;
                    }
                    for (col, tok) in rest {
                        let (k, v) = tok.split_once('=').ok_or_else(|| {
                            err(
                                lineno,
                                *col,
                                format!("expected key=value after the host name, found '{tok}'"),
                            )
                        })?;
                        vars.set(parse_var(k, v).map_err(|e| err(lineno, *col, e))?, &from);
                    }
                    for n in &names {
                        m.host(n, group, &vars);
                    }
                }
                Section::Vars(group) => {
                    let (k, v) = t.split_once('=').ok_or_else(|| {
                        err(
                            lineno,
                            indent + 1,
                            format!("expected key=value in [{group}:vars]"),
                        )
                    })?;
                    let k = k.trim();
                    if k.is_empty() || k.contains(char::is_whitespace) {
                        return Err(err(lineno, indent + 1, format!("bad variable name '{k}'")));
                    }
                    let value = strip_inline_comment(v.trim());
                    let var =
                        parse_var(k, unquote(value)).map_err(|e| err(lineno, indent + 1, e))?;
                    m.group(group).vars.set(var, &from);
                }
                Section::Children(group) => {
                    let toks = tokenize(line).map_err(|(c, e)| err(lineno, c, e))?;
                    let Some((col, child)) = toks.first() else {
                        continue;
                    };
                    if toks.len() > 1 {
                        return Err(err(
                            lineno,
                            toks[1].0,
                            format!("one group name per line in [{group}:children]"),
                        ));
                    }
                    check_group_name(child).map_err(|e| err(lineno, *col, e))?;
                    if child == group {
                        return Err(err(
                            lineno,
                            *col,
                            format!("group '{group}' cannot be its own child"),
                        ));
                    }
                    m.child(group, child);
                }
            }
        }
        Ok(())
    }
}

/// Drop a ` # comment` after an unquoted value.
fn strip_inline_comment(v: &str) -> &str {
    if v.starts_with('"') || v.starts_with('\'') {
        return v;
    }
    match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

// ---------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------

/// A group as written: `hosts`, `children`, `vars`, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    #[serde(default)]
    hosts: Option<HostsDoc>,
    #[serde(default)]
    children: Option<ChildrenDoc>,
    #[serde(default)]
    vars: Option<VarsDoc>,
}

#[derive(Debug, Default)]
struct ChildrenDoc(Vec<(String, GroupDoc)>);

impl<'de> Deserialize<'de> for ChildrenDoc {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named_map(d, "group", check_group_name).map(ChildrenDoc)
    }
}

#[derive(Debug, Default)]
struct TopDoc(Vec<(String, GroupDoc)>);

impl<'de> Deserialize<'de> for TopDoc {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named_map(d, "group", check_group_name).map(TopDoc)
    }
}

/// `hosts:` of a group: host name (ranges expanded) -> its vars.
#[derive(Debug, Default)]
struct HostsDoc(Vec<(Vec<String>, VarsDoc)>);

impl<'de> Deserialize<'de> for HostsDoc {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HostsDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of host names to their variables")
            }
            fn visit_unit<E: de::Error>(self) -> Result<HostsDoc, E> {
                Ok(HostsDoc::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HostsDoc, A::Error> {
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                while let Some(names) = map.next_key_seed(HostKey { seen: &seen })? {
                    let vars: Option<VarsDoc> = map.next_value()?;
                    seen.extend(names.iter().cloned());
                    out.push((names, vars.unwrap_or_default()));
                }
                Ok(HostsDoc(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A host key: ranges expanded, each name checked, no duplicate in the mapping.
struct HostKey<'a> {
    seen: &'a HashSet<String>,
}

impl<'de> DeserializeSeed<'de> for HostKey<'_> {
    type Value = Vec<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HostKey<'_> {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a host name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
        let names = expand_ranges(v).map_err(E::custom)?;
        for n in &names {
            check_host_name(n).map_err(E::custom)?;
            if self.seen.contains(n) {
                return Err(E::custom(format!("duplicate host '{n}' in this group")));
            }
        }
        Ok(names)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<String>, E> {
        self.visit_str(&v.to_string())
    }
}

/// A `vars:` mapping (or a host's variables, or a vars file): understood
/// variables checked at their own position, the rest skipped.
#[derive(Debug, Default)]
pub(crate) struct VarsDoc(Vec<Var>);

impl VarsDoc {
    /// The variables, each marked as set in `from`.
    pub(crate) fn into_vars(self, from: &str) -> Vars {
        let mut v = Vars::default();
        for var in self.0 {
            v.set(var, from);
        }
        v
    }
}

impl<'de> Deserialize<'de> for VarsDoc {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VarsDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of variables")
            }
            fn visit_unit<E: de::Error>(self) -> Result<VarsDoc, E> {
                Ok(VarsDoc::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VarsDoc, A::Error> {
                let mut vars = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    vars.push(map.next_value_seed(VarSeed { key: &key })?);
                }
                Ok(VarsDoc(vars))
            }
        }
        d.deserialize_any(V)
    }
}

struct VarSeed<'a> {
    key: &'a str,
}

impl VarSeed<'_> {
    /// A null, list or mapping value of a variable that is not scalar:
    /// unused (`ansible_*`) or a playbook's.
    fn not_scalar(&self) -> Var {
        if self.key.starts_with("ansible_") {
            Var::Unused(self.key.to_string())
        } else {
            Var::Ignored
        }
    }
}

impl<'de> DeserializeSeed<'de> for VarSeed<'_> {
    type Value = Var;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Var, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for VarSeed<'_> {
    type Value = Var;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value for {}", self.key)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Var, E> {
        parse_var(self.key, v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Var, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Var, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Var, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Var, E> {
        self.visit_str(if v { "true" } else { "false" })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Var, E> {
        Ok(self.not_scalar())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Var, A::Error> {
        if is_scalar_var(self.key) {
            return Err(de::Error::custom(format!(
                "{} must be a single value",
                self.key
            )));
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.not_scalar())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Var, A::Error> {
        if is_scalar_var(self.key) {
            return Err(de::Error::custom(format!(
                "{} must be a single value",
                self.key
            )));
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.not_scalar())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Var, A::Error> {
        // A tagged value (`!vault |`, `!unsafe`): not readable here.
        if is_scalar_var(self.key) {
            return Err(de::Error::custom(format!(
                "{}: tagged values (like !vault) are not supported",
                self.key
            )));
        }
        let (_, v): (IgnoredAny, _) = data.variant()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(v)?;
        Ok(self.not_scalar())
    }
}

fn add_group(m: &mut Model, short: &str, name: &str, doc: GroupDoc) {
    m.group(name);
    if let Some(v) = doc.vars {
        let vars = v.into_vars(&format!("{short}: group {name}"));
        m.group(name).vars.overlay(&vars);
    }
    for (names, vars) in doc.hosts.map(|h| h.0).unwrap_or_default() {
        let from = match names.as_slice() {
            [one] => format!("{short}: host {one}"),
            _ => format!("{short}: hosts of group {name}"),
        };
        let vars = vars.into_vars(&from);
        for n in names {
            m.host(&n, name, &vars);
        }
    }
    for (child, cdoc) in doc.children.map(|c| c.0).unwrap_or_default() {
        m.child(name, &child);
        add_group(m, short, &child, cdoc);
    }
}

/// Parse one Ansible YAML inventory on its own.
pub(crate) fn parse_yaml(file: &Path, text: &str) -> Result<Parsed, InputError> {
    let mut m = Model::default();
    m.add_yaml(file, text)?;
    m.finish(file, &super::base_dir(file))
}

impl Model {
    /// Add an Ansible YAML inventory file (top-level `all:`, and possibly
    /// other groups).
    pub(crate) fn add_yaml(&mut self, file: &Path, text: &str) -> Result<(), InputError> {
        let doc: TopDoc = serde_norway::from_str(text).map_err(|e| yaml::input_error(file, &e))?;
        let short = short_name(file);
        for (name, g) in doc.0 {
            add_group(self, &short, &name, g);
        }
        Ok(())
    }
}

/// Read a `group_vars/` or `host_vars/` file: a YAML (or JSON) mapping.
pub(crate) fn parse_vars_file(file: &Path, label: &str, text: &str) -> Result<Vars, InputError> {
    let doc: VarsDoc = serde_norway::from_str(text).map_err(|e| {
        let mut err = yaml::input_error(file, &e);
        if err.message.contains("expected a mapping of variables") {
            err.message
                .push_str(" (a variables file is a YAML mapping, like `ansible_user: deploy`)");
        }
        err
    })?;
    Ok(doc.into_vars(label))
}

#[cfg(test)]
mod tests {
    use super::super::Host;
    use super::*;

    fn resolved(file: &str, p: Result<Parsed, InputError>) -> Result<Vec<Host>, InputError> {
        let none = super::super::SshConfigChoice::None;
        super::super::resolve::resolve(Path::new(file), &p?, &none).map(|(h, _)| h)
    }
    fn ini(text: &str) -> Result<Vec<Host>, InputError> {
        resolved(
            "/inv/hosts.ini",
            parse_ini(Path::new("/inv/hosts.ini"), text),
        )
    }
    fn yml(text: &str) -> Result<Vec<Host>, InputError> {
        resolved(
            "/inv/hosts.yml",
            parse_yaml(Path::new("/inv/hosts.yml"), text),
        )
    }
    fn by<'a>(h: &'a [Host], n: &str) -> &'a Host {
        h.iter().find(|x| x.name() == n).expect(n)
    }

    const INI: &str = r#"
# an Ansible inventory
lonely ansible_host=192.0.2.1

[web]
web[01:03] ansible_user=deploy
web9 ansible_host="203.0.113.99" ansible_port=2222 ansible_user=admin  # trailing comment

[db]
db1 ansible_host=198.51.100.5 ansible_become=yes

[prod:children]
web
db

[prod:vars]
ansible_user = produser
ansible_ssh_private_key_file=keys/prod

[all:vars]
ansible_port=2200
ansible_become=no
some_other_var="ignored entirely"
"#;

    #[test]
    fn ini_inventory() {
        let h = ini(INI).expect("valid");
        let names: Vec<&str> = h.iter().map(|x| x.name()).collect();
        assert_eq!(names, ["lonely", "web01", "web02", "web03", "web9", "db1"]);
        let lonely = by(&h, "lonely");
        assert_eq!(
            (
                lonely.reach.address.as_str(),
                lonely.reach.port,
                lonely.reach.user.as_str()
            ),
            ("192.0.2.1", 2200, "root")
        );
        assert!(lonely.groups.is_empty());
        let w = by(&h, "web02");
        assert_eq!(w.reach.address, "web02");
        assert_eq!(w.reach.user, "deploy", "host vars beat group vars");
        assert_eq!(w.groups, ["prod", "web"]);
        assert_eq!(
            w.reach.identity_file.as_deref(),
            Some(Path::new("/inv/keys/prod"))
        );
        let w9 = by(&h, "web9");
        assert_eq!(
            (
                w9.reach.address.as_str(),
                w9.reach.port,
                w9.reach.user.as_str()
            ),
            ("203.0.113.99", 2222, "admin")
        );
        let db = by(&h, "db1");
        assert_eq!(
            (db.reach.user.as_str(), db.reach.become_, db.reach.port),
            ("produser", true, 2200)
        );
    }

    #[test]
    fn ini_errors_have_positions() {
        let e = ini("[web]\nweb1 ansible_port=99999\n").expect_err("bad port");
        assert_eq!((e.line, e.column), (2, 6), "{e}");
        assert!(e.message.contains("port 99999 is out of range"), "{e}");
        let e = ini("[web]\nweb1 ansible_password=hunter2\n").expect_err("password");
        assert_eq!((e.line, e.column), (2, 6), "{e}");
        assert!(
            e.message.contains("ansible_password is not supported"),
            "{e}"
        );
        let e = ini("[web:wat]\n").expect_err("bad section");
        assert_eq!((e.line, e.column), (1, 5), "{e}");
        let e = ini("[web\n").expect_err("unclosed");
        assert_eq!((e.line, e.column), (1, 1), "{e}");
        let e = ini("[a:children]\nb\n[b:children]\na\n").expect_err("cycle");
        assert!(e.message.contains("cycle"), "{e}");
        let e = ini("[web]\nweb1 ansible_become=maybe\n").expect_err("bool");
        assert!(e.message.contains("not a boolean"), "{e}");
        let e = ini("[web]\nweb1 stray\n").expect_err("stray token");
        assert_eq!((e.line, e.column), (2, 6), "{e}");
    }

    const YAML: &str = "
all:
  vars:
    ansible_user: ops
  hosts:
    bastion:
      ansible_host: 192.0.2.7
  children:
    web:
      vars:
        ansible_port: 2222
      hosts:
        web[1:2]:
        web3:
          ansible_port: 22
          ansible_become: true
          unrelated: [1, 2]
    mail:
      children:
        mx:
          hosts:
            mx1:
              ansible_host: 2001:db8::25
          vars:
            ansible_become: yes
";

    #[test]
    fn yaml_inventory() {
        let h = yml(YAML).expect("valid");
        let names: Vec<&str> = h.iter().map(|x| x.name()).collect();
        assert_eq!(names, ["bastion", "web1", "web2", "web3", "mx1"]);
        assert_eq!(by(&h, "bastion").reach.address, "192.0.2.7");
        assert_eq!(by(&h, "bastion").reach.user, "ops");
        assert_eq!(
            (
                by(&h, "web1").reach.port,
                by(&h, "web1").reach.user.as_str()
            ),
            (2222, "ops")
        );
        assert_eq!(
            (by(&h, "web3").reach.port, by(&h, "web3").reach.become_),
            (22, true)
        );
        let mx = by(&h, "mx1");
        assert_eq!(mx.reach.address, "2001:db8::25");
        assert!(mx.reach.become_);
        assert_eq!(mx.groups, ["mail", "mx"]);
    }

    #[test]
    fn yaml_errors_have_positions() {
        let e = yml("all:\n  hostz: {}\n").expect_err("unknown key");
        assert_eq!((e.line, e.column), (2, 3), "{e}");
        assert!(e.message.contains("unknown field `hostz`"), "{e}");
        let e = yml("all:\n  hosts:\n    a:\n      ansible_port: 0\n").expect_err("port");
        assert_eq!((e.line, e.column), (4, 21), "{e}");
        let e = yml("all:\n  hosts:\n    a:\n      ansible_ssh_pass: x\n").expect_err("pass");
        assert!(e.message.contains("not supported"), "{e}");
    }

    #[test]
    fn ranges() {
        assert_eq!(
            expand_ranges("web[01:03]").expect("r"),
            ["web01", "web02", "web03"]
        );
        assert_eq!(
            expand_ranges("h[1:5:2]x").expect("r"),
            ["h1x", "h3x", "h5x"]
        );
        assert_eq!(
            expand_ranges("db-[a:c]").expect("r"),
            ["db-a", "db-b", "db-c"]
        );
        assert_eq!(
            expand_ranges("r[1:2]c[1:2]").expect("r"),
            ["r1c1", "r1c2", "r2c1", "r2c2"]
        );
        assert!(expand_ranges("web[3:1]").is_err());
        assert!(expand_ranges("web[1]").is_err());
        assert!(expand_ranges("web[1:2").is_err());
    }
}
