//! `rampart inventory`: the resolved hosts, as the transport will reach
//! them (address, port, user, key, jump chain) and where each of those came
//! from (the inventory, ssh_config `FILE:LINE`, the host's name, or a
//! built-in default), so that "why does rampart connect there?" has an
//! answer without running anything.

use std::path::Path;

use serde_json::json;

use crate::cli::Format;
use crate::error::{Error, Result};
use crate::inventory::Host;
use crate::remote::Reach;

/// What to show: the hosts, and (with `--playbook`) the plays of each.
pub struct Listing<'a> {
    pub inventory: &'a Path,
    pub playbook: Option<&'a Path>,
    pub hosts: Vec<&'a Host>,
    /// Per host, in the order of `hosts`, when a playbook was given.
    pub plays: Option<Vec<Vec<String>>>,
}

fn jump_chain(r: &Reach) -> String {
    if r.jumps.is_empty() {
        "-".into()
    } else {
        r.jumps
            .iter()
            .map(Reach::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

pub fn render(l: &Listing, format: Format) -> Result<String> {
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = l
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let r = &h.reach;
                    let mut v = json!({
                        "name": r.name,
                        "address": r.address,
                        "port": r.port,
                        "user": r.user,
                        "become": r.become_,
                        "groups": h.groups,
                        "identity_file": r.identity_file,
                        "identities_only": r.identities_only,
                        "known_hosts": r.known_hosts,
                        "extra_known_hosts": r.extra_known_hosts,
                        "accept_new_host_key": r.accept_new_host_key,
                        "connect_timeout_s": r.connect_timeout.map(|d| d.as_secs()),
                        "password_env": r.password_env,
                        "jumps": r.jumps.iter().map(|j| json!({
                            "name": j.name,
                            "address": j.address,
                            "port": j.port,
                            "user": j.user,
                            "identity_file": j.identity_file,
                            "known_hosts": j.known_hosts,
                        })).collect::<Vec<_>>(),
                        "sources": h.sources,
                    });
                    if let Some(plays) = l.plays.as_ref().and_then(|p| p.get(i)) {
                        v["plays"] = json!(plays);
                    }
                    v
                })
                .collect();
            let doc = json!({
                "command": "inventory",
                "inventory": l.inventory,
                "playbook": l.playbook,
                "hosts": rows,
            });
            let s = serde_json::to_string_pretty(&doc)
                .map_err(|e| Error::Usage(format!("cannot encode JSON: {e}")))?;
            let mut s = super::inert::json(&s).into_owned();
            s.push('\n');
            Ok(s)
        }
        Format::Human => {
            let mut header = vec![
                "NAME", "ADDRESS", "PORT", "USER", "BECOME", "KEY", "JUMP", "GROUPS",
            ];
            if l.plays.is_some() {
                header.push("PLAYS");
            }
            let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
            for (i, h) in l.hosts.iter().enumerate() {
                let r = &h.reach;
                let mut row = vec![
                    r.name.clone(),
                    r.address.clone(),
                    r.port.to_string(),
                    r.user.clone(),
                    if r.become_ { "yes" } else { "no" }.to_string(),
                    r.identity_file
                        .as_ref()
                        .map_or_else(|| "-".to_string(), |p| p.display().to_string()),
                    jump_chain(r),
                    dash_if_empty(h.groups.join(",")),
                ];
                if let Some(plays) = l.plays.as_ref().and_then(|p| p.get(i)) {
                    row.push(if plays.is_empty() {
                        "- (no play: not contacted)".to_string()
                    } else {
                        plays.join(", ")
                    });
                }
                rows.push(row);
            }
            // Names, addresses, paths come from input files: one inert
            // line each.
            for row in &mut rows {
                for cell in row.iter_mut() {
                    *cell = super::inert::line(cell).into_owned();
                }
            }
            let mut out = table(&rows);
            out.push_str("\nFROM\n");
            for h in &l.hosts {
                let s = &h.sources;
                let from = format!(
                    "{}: address {}; port {}; user {}; key {}; known_hosts {}; jump {}",
                    h.reach.name,
                    s.address,
                    s.port,
                    s.user,
                    s.identity_file,
                    s.known_hosts,
                    s.jumps
                );
                out.push_str(&super::inert::line(&from));
                out.push('\n');
            }
            Ok(out)
        }
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
            line.push_str(cell);
            if i + 1 < r.len() {
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
