//! Plays (docs/design.md, "Formats"), merged into one desired [`FirewallSpec`] per host.
//!
//! [`Playbook::load`] validates everything up front (unknown keys, services,
//! ports, CIDRs, raw rules, host patterns) and reports `file:line:column`,
//! so that a bad playbook stops the run before any host is contacted.
//! [`Playbook::plan`] merges the plays matching a host into one spec: the
//! host is converged in one transaction, not play by play.
//!
//! Merge rules:
//! - `baseline`: true if any matching play states true; false if plays
//!   state it and all say false; true when no play states it.
//! - `allow`, `rules`: concatenated in play order, exact duplicates dropped
//!   (the first occurrence keeps its place).
//! - `policy`: last wins *per chain*: a play stating only `{input: drop}`
//!   changes only INPUT. Unstated chains keep the seed's defaults.
//! - `ipv6`: the last play that states it wins; default true.
//! - `preserve`: the union of the lists plays state, in order, deduplicated;
//!   the default list (`DOCKER*`, `f2b-*`, ...) only when no play states
//!   `preserve` at all, so `preserve: []` really preserves nothing.
//! - `persist`: the last play that states it wins, as a whole.
//! - `boot`: the last play that states it wins; default `ensure`.

mod values;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::InputError;
use crate::firewall::{
    self, Allow, Boot, Family, FirewallSpec, PersistPaths, Policies, Policy, Rule,
};
/// The seed's service table lives in the firewall core; re-exported here
/// because playbooks are where service names are written.
pub use crate::firewall::{service_port, SERVICES};
use crate::inventory::pattern::Pattern;
use crate::inventory::yaml::{self, Seg};
use crate::inventory::{Host, Inventory};
use values::{AllowDoc, BootDoc, ChainPatternDoc, HostsDoc, PolicyDoc, RemotePathDoc, RuleDoc};

/// One play as written.
#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    pub hosts: String,
    /// The firewall facts this play states (None = not stated).
    pub firewall: PlayFirewall,
    /// 1-based line and column of the play's `hosts:` value (for messages).
    pub hosts_at: (usize, usize),
}

/// The firewall facts of one play, validated, before merging.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayFirewall {
    pub baseline: Option<bool>,
    pub allow: Vec<Allow>,
    pub policy: PolicyPatch,
    pub ipv6: Option<bool>,
    pub rules: Vec<Rule>,
    pub preserve: Option<Vec<String>>,
    pub persist: Option<PersistPaths>,
    pub boot: Option<Boot>,
}

/// The chain policies one play states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyPatch {
    pub input: Option<Policy>,
    pub forward: Option<Policy>,
    pub output: Option<Policy>,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

/// What one host should become: the merged spec and the plays it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPlan {
    pub plays: Vec<String>,
    pub firewall: FirewallSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayDoc {
    name: Option<String>,
    hosts: HostsDoc,
    firewall: FirewallDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirewallDoc {
    baseline: Option<bool>,
    allow: Option<Vec<AllowDoc>>,
    policy: Option<PolicyDocs>,
    ipv6: Option<bool>,
    rules: Option<Vec<RuleDoc>>,
    preserve: Option<Vec<ChainPatternDoc>>,
    persist: Option<PersistDoc>,
    boot: Option<BootDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDocs {
    input: Option<PolicyDoc>,
    forward: Option<PolicyDoc>,
    output: Option<PolicyDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersistDoc {
    ipv4: Option<RemotePathDoc>,
    ipv6: Option<RemotePathDoc>,
}

impl Playbook {
    /// Read and validate a playbook; every error names `file:line:column`.
    pub fn load(path: &Path) -> Result<Playbook, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::whole_file(path, format!("cannot read playbook: {e}")))?;
        Self::from_text(path, &text)
    }

    /// Parse playbook `text` as if read from `path`.
    pub fn from_text(path: &Path, text: &str) -> Result<Playbook, InputError> {
        let meaningful = text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
        if !meaningful {
            return Err(InputError::whole_file(
                path,
                "the playbook is empty: expected a list of plays",
            ));
        }
        let docs: Vec<PlayDoc> =
            serde_norway::from_str(text).map_err(|e| yaml::input_error(path, &e))?;
        if docs.is_empty() {
            return Err(InputError::new(path, 1, 1, "the playbook has no play"));
        }
        let plays = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let hosts_at = yaml::locate(text, &[Seg::Index(i), Seg::Key("hosts".into())])
                    .unwrap_or((0, 0));
                let name = d
                    .name
                    .unwrap_or_else(|| format!("play {} (hosts: {})", i + 1, d.hosts.0));
                Play {
                    name,
                    hosts: d.hosts.0,
                    firewall: d.firewall.into_play(),
                    hosts_at,
                }
            })
            .collect();
        Ok(Playbook {
            path: path.to_path_buf(),
            plays,
        })
    }

    /// The merged plan for `host`, or None when no play matches it (then the
    /// host is not contacted).
    pub fn plan(&self, inventory: &Inventory, host: &Host) -> Option<HostPlan> {
        let matching: Vec<&Play> = self
            .plays
            .iter()
            .filter(|p| inventory.matches(host, &p.hosts))
            .collect();
        if matching.is_empty() {
            return None;
        }
        Some(HostPlan {
            plays: matching.iter().map(|p| p.name.clone()).collect(),
            firewall: merge(matching.iter().map(|p| &p.firewall)),
        })
    }

    /// Plays whose `hosts:` names something (a plain name, not a glob) that
    /// is neither a host nor a non-empty group of `inventory`: almost always
    /// a typo that would silently leave hosts unprotected. Returned as
    /// errors with the position of the `hosts:` value, for the caller to
    /// show as warnings or to refuse, as Ansible warns.
    pub fn unknown_host_names(&self, inventory: &Inventory) -> Vec<InputError> {
        let groups = inventory.groups();
        let mut out = Vec::new();
        for p in &self.plays {
            let Ok(pat) = Pattern::parse(&p.hosts) else {
                continue;
            };
            for n in pat.names() {
                if inventory.host(n).is_none() && !groups.contains(n) {
                    out.push(InputError::new(
                        &self.path,
                        p.hosts_at.0,
                        p.hosts_at.1,
                        format!(
                            "play '{}': hosts names '{n}', which is neither a host nor a group of {}",
                            p.name,
                            inventory.path.display()
                        ),
                    ));
                }
            }
        }
        out
    }
}

impl FirewallDoc {
    fn into_play(self) -> PlayFirewall {
        let policy = self.policy.unwrap_or_default();
        PlayFirewall {
            baseline: self.baseline,
            allow: self
                .allow
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.0)
                .collect(),
            policy: PolicyPatch {
                input: policy.input.map(|p| p.0),
                forward: policy.forward.map(|p| p.0),
                output: policy.output.map(|p| p.0),
            },
            ipv6: self.ipv6,
            rules: self
                .rules
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.0)
                .collect(),
            preserve: self.preserve.map(|v| v.into_iter().map(|p| p.0).collect()),
            persist: self.persist.map(|p| PersistPaths {
                ipv4: p.ipv4.map(|x| x.0),
                ipv6: p.ipv6.map(|x| x.0),
            }),
            boot: self.boot.map(|b| b.0),
        }
    }
}

/// Merge the facts of the plays matching one host, in play order (see the
/// module documentation for the rules).
pub fn merge<'a>(plays: impl IntoIterator<Item = &'a PlayFirewall>) -> FirewallSpec {
    let mut baseline: Option<bool> = None;
    let mut allow: Vec<Allow> = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut policy = Policies::default();
    let mut ipv6 = true;
    let mut preserve: Option<Vec<String>> = None;
    let mut persist = None;
    let mut boot = Boot::default();
    for p in plays {
        if let Some(b) = p.baseline {
            baseline = Some(baseline.unwrap_or(false) || b);
        }
        for a in &p.allow {
            if !allow.contains(a) {
                allow.push(a.clone());
            }
        }
        for r in &p.rules {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
        if let Some(x) = p.policy.input {
            policy.input = x;
        }
        if let Some(x) = p.policy.forward {
            policy.forward = x;
        }
        if let Some(x) = p.policy.output {
            policy.output = x;
        }
        if let Some(v) = p.ipv6 {
            ipv6 = v;
        }
        if let Some(list) = &p.preserve {
            let acc = preserve.get_or_insert_with(Vec::new);
            for pat in list {
                if !acc.contains(pat) {
                    acc.push(pat.clone());
                }
            }
        }
        if p.persist.is_some() {
            persist.clone_from(&p.persist);
        }
        if let Some(b) = p.boot {
            boot = b;
        }
    }
    FirewallSpec {
        baseline: baseline.unwrap_or(true),
        allow,
        rules,
        policy,
        ipv6,
        preserve: preserve.unwrap_or_else(|| {
            firewall::DEFAULT_PRESERVE
                .iter()
                .map(|s| s.to_string())
                .collect()
        }),
        persist,
        boot,
    }
}

/// `rampart render`: print the iptables-restore input for one host.
pub fn cli_render(args: &crate::cli::RenderArgs) -> crate::error::Result<u8> {
    let inv = Inventory::load(&args.inventory)?;
    let pb = Playbook::load(&args.playbook)?;
    for w in pb.unknown_host_names(&inv) {
        crate::report::warn(&w.to_string());
    }
    let host = inv.host(&args.host).ok_or_else(|| {
        InputError::whole_file(
            &inv.path,
            format!("--host '{}' is not a host of this inventory", args.host),
        )
    })?;
    let plan = pb.plan(&inv, host).ok_or_else(|| {
        InputError::whole_file(
            &pb.path,
            format!(
                "no play matches host '{}': it would not be contacted, so there is nothing to render",
                host.name()
            ),
        )
    })?;
    let family = if args.ipv6 { Family::V6 } else { Family::V4 };
    if family == Family::V6 && !plan.firewall.ipv6 {
        return Err(crate::error::Error::Usage(format!(
            "host '{}' has ipv6: false: rampart leaves its ip6tables alone, there is nothing to render",
            host.name()
        )));
    }
    print!(
        "{}",
        firewall::render_noted(&firewall::desired(&plan.firewall, family))
    );
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests;
