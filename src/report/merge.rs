//! `rampart report merge A.json B.json ...`: the JSON reports of the shards
//! of one run (`--shard K/N` in a CI matrix) combined into one report and
//! one exit code, as if one machine had run the whole fleet.
//!
//! Refused, exit 1, naming the file: a report that is not rampart's JSON,
//! reports of different commands, playbooks or modes (apply vs check), a
//! host in two reports (the shards overlap: the same host would have been
//! converged twice), and, when the reports carry their shard (`--shard`
//! runs do), shards of different N, a shard twice, or a shard missing: a
//! job that died before writing its report must not make the merge look
//! complete.
//!
//! The merged summary is recounted from the hosts and the exit code comes
//! from [`super::exit_code`], the function a live run uses. Hosts are
//! listed by name, so the merge does not depend on the order of its
//! arguments. `duration_ms` is the longest shard's (they ran side by side);
//! `started_at` is the earliest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{exit_code, human, json, RunSummary};
use crate::cli::{Format, MergeArgs};
use crate::converge::HostReport;
use crate::error::{Error, InputError, Result};

#[derive(Debug, Deserialize)]
struct ShardDoc {
    index: u32,
    count: u32,
}

/// The parts of a run's JSON report the merge needs.
#[derive(Debug, Deserialize)]
struct Doc {
    command: String,
    playbook: String,
    check: bool,
    started_at: String,
    duration_ms: u64,
    #[serde(default)]
    shard: Option<ShardDoc>,
    hosts: Vec<HostReport>,
}

/// A merged run.
#[derive(Debug)]
pub struct Merged {
    pub summary: RunSummary,
    pub started_at: String,
    pub hosts: Vec<HostReport>,
}

fn read(path: &Path) -> Result<Doc, InputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::whole_file(path, format!("cannot read report: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        InputError::new(
            path,
            e.line(),
            e.column(),
            format!("not a rampart JSON report (`--format json` of apply or audit): {e}"),
        )
    })
}

/// Merge the reports read from `files` (in that order).
pub fn merge(files: &[PathBuf]) -> Result<Merged, InputError> {
    let mut docs = Vec::with_capacity(files.len());
    for f in files {
        docs.push((f.as_path(), read(f)?));
    }
    let Some((first_file, first)) = docs.first() else {
        return Err(InputError::whole_file("-", "no report to merge"));
    };
    let (command, playbook, check) = (first.command.clone(), first.playbook.clone(), first.check);
    let mut owner: BTreeMap<String, &Path> = BTreeMap::new();
    let mut shards: BTreeMap<u32, &Path> = BTreeMap::new();
    let mut shard_count: Option<(u32, &Path)> = None;
    let mut unsharded = 0usize;
    for (file, d) in &docs {
        if d.command != command || d.playbook != playbook || d.check != check {
            let mode = |c: bool| if c { " (read-only)" } else { "" };
            return Err(InputError::whole_file(
                file,
                format!(
                    "this report is of `{} {}`{}, {} is of `{command} {playbook}`{}: only the shards of one run can be merged",
                    d.command,
                    d.playbook,
                    mode(d.check),
                    first_file.display(),
                    mode(check)
                ),
            ));
        }
        match &d.shard {
            Some(s) => {
                if s.index == 0 || s.index > s.count {
                    return Err(InputError::whole_file(
                        file,
                        format!("bad shard {}/{}", s.index, s.count),
                    ));
                }
                match shard_count {
                    Some((n, other)) if n != s.count => {
                        return Err(InputError::whole_file(
                            file,
                            format!(
                                "shard {}/{} does not belong with {} (shards of {n})",
                                s.index,
                                s.count,
                                other.display()
                            ),
                        ))
                    }
                    _ => shard_count = Some((s.count, file)),
                }
                if let Some(other) = shards.insert(s.index, file) {
                    return Err(InputError::whole_file(
                        file,
                        format!(
                            "shard {}/{} is already merged from {}",
                            s.index,
                            s.count,
                            other.display()
                        ),
                    ));
                }
            }
            None => unsharded += 1,
        }
        for h in &d.hosts {
            if let Some(other) = owner.insert(h.name.clone(), file) {
                return Err(InputError::whole_file(
                    file,
                    format!(
                        "host {} is also in {}: the shards overlap",
                        h.name,
                        other.display()
                    ),
                ));
            }
        }
    }
    if let Some((n, _)) = shard_count {
        if unsharded > 0 {
            return Err(InputError::whole_file(
                first_file,
                "some reports are of --shard runs and some are not: merge the shards of one run",
            ));
        }
        let missing: BTreeSet<u32> = (1..=n).filter(|k| !shards.contains_key(k)).collect();
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|k| format!("{k}/{n}")).collect();
            return Err(InputError::whole_file(
                first_file,
                format!("missing shard report(s): {}", list.join(", ")),
            ));
        }
    }
    let started_at = docs
        .iter()
        .map(|(_, d)| d.started_at.clone())
        .min()
        .unwrap_or_default();
    let duration_ms = docs.iter().map(|(_, d)| d.duration_ms).max().unwrap_or(0);
    let mut hosts: Vec<HostReport> = docs.into_iter().flat_map(|(_, d)| d.hosts).collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Merged {
        summary: RunSummary {
            command,
            playbook,
            duration_ms,
            check,
            shard: None,
        },
        started_at,
        hosts,
    })
}

/// `rampart report merge`.
pub fn cli(args: &MergeArgs) -> Result<u8> {
    let m = merge(&args.reports).map_err(Error::Input)?;
    let text = match args.format {
        Format::Json => json::render_at(&m.summary, &m.hosts, &m.started_at),
        Format::Human => human::render(
            &m.summary,
            &m.hosts,
            args.diff || m.summary.check,
            human::use_colour(),
        ),
    };
    super::emit(&text, args.junit.as_deref(), &m.summary, &m.hosts)?;
    Ok(exit_code(&m.hosts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converge::Status;
    use crate::inventory::Shard;

    fn report(shard: Option<(u32, u32)>, hosts: &[(&str, Status)]) -> String {
        let hosts: Vec<HostReport> = hosts
            .iter()
            .map(|(n, s)| {
                let mut r = HostReport::new(n, "192.0.2.1", vec!["p".into()]);
                r.status = *s;
                r
            })
            .collect();
        let summary = RunSummary {
            command: "audit".into(),
            playbook: "pb.yml".into(),
            duration_ms: 10,
            check: true,
            shard: shard.map(|(index, count)| Shard { index, count }),
        };
        json::render_at(&summary, &hosts, "2026-01-01T00:00:00Z")
    }

    fn files(docs: &[String]) -> Vec<PathBuf> {
        let dir = std::env::temp_dir().join(format!(
            "rampart-merge-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        docs.iter()
            .enumerate()
            .map(|(i, d)| {
                let p = dir.join(format!("r{i}.json"));
                std::fs::write(&p, d).expect("write");
                p
            })
            .collect()
    }

    #[test]
    fn merges_and_recounts() {
        let f = files(&[
            report(Some((2, 2)), &[("b", Status::Drift)]),
            report(
                Some((1, 2)),
                &[("c", Status::Ok), ("a", Status::Unreachable)],
            ),
        ]);
        let m = merge(&f).expect("merges");
        let names: Vec<&str> = m.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(exit_code(&m.hosts), crate::exit::HOST_PROBLEM);
        assert_eq!(m.summary.command, "audit");
    }

    #[test]
    fn refuses_overlaps_gaps_and_mixtures() {
        let f = files(&[
            report(Some((1, 2)), &[("a", Status::Ok)]),
            report(Some((2, 2)), &[("a", Status::Ok)]),
        ]);
        let e = merge(&f).expect_err("overlap");
        assert!(e.message.contains("host a is also in"), "{e}");
        let f = files(&[report(Some((1, 3)), &[("a", Status::Ok)])]);
        let e = merge(&f).expect_err("missing");
        assert!(
            e.message.contains("missing shard report(s): 2/3, 3/3"),
            "{e}"
        );
        let f = files(&[
            report(Some((1, 2)), &[("a", Status::Ok)]),
            report(Some((1, 2)), &[("b", Status::Ok)]),
        ]);
        assert!(merge(&f)
            .expect_err("twice")
            .message
            .contains("already merged"));
        let mut other = report(None, &[("b", Status::Ok)]);
        other = other.replace("\"audit\"", "\"apply\"");
        let f = files(&[report(None, &[("a", Status::Ok)]), other]);
        assert!(merge(&f)
            .expect_err("mixed")
            .message
            .contains("only the shards of one run"));
        let f = files(&["{\"not\": 1}".to_string()]);
        let e = merge(&f).expect_err("not a report");
        assert!(e.message.contains("not a rampart JSON report"), "{e}");
    }
}
