//! The rule corpus (`tests/corpus/*.rules`) against what real iptables
//! printed for it (`tests/corpus/printed/<version>-<backend>/`, made by
//! `tests/corpus/regen-printed.sh` with iptables 1.8.7, 1.8.9 and 1.8.11,
//! legacy and nf_tables).
//!
//! What this pins down: every corpus rule parses; every rule the offline
//! canonicaliser calls certain ([`Rule::canon_certain`]) is printed by every
//! version and backend exactly as rampart writes it; rampart never sends a
//! rule to a family whose iptables refused it; and every printed text parses
//! and renders back to itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// (file stem, the file's families, its `-A` lines).
fn corpus_files() -> Vec<(String, Vec<Family>, Vec<String>)> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rules"))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        let text = std::fs::read_to_string(&p).expect("read a corpus file");
        let rules = text
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_string)
            .collect();
        match name.strip_suffix(".v6") {
            Some(stem) => out.push((stem.to_string(), vec![Family::V6, Family::V4], rules)),
            None => out.push((name, vec![Family::V4, Family::V6], rules)),
        }
    }
    out
}

fn printed_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join("printed"))
        .expect("tests/corpus/printed exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn fam_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

/// Collapse runs of blanks and drop trailing ones: iptables 1.8.7 prints
/// `--dst-len 8  -j` and a trailing blank after some matches; blanks are
/// not part of a rule's meaning.
fn squeeze(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Every corpus rule paired with what one version/backend printed for it.
struct Pairing {
    combo: String,
    family: Family,
    file: String,
    source: String,
    printed: Rule,
}

fn pairings() -> (Vec<Pairing>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let files = corpus_files();
    let dirs = printed_dirs();
    assert!(
        dirs.len() >= 5,
        "goldens for every supported version/backend"
    );
    for dir in &dirs {
        let combo = dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        for (stem, fams, rules) in &files {
            for fam in fams {
                let base = format!("{stem}.{}", fam_name(*fam));
                let save = std::fs::read_to_string(dir.join(format!("{base}.save")))
                    .unwrap_or_else(|e| panic!("{combo}/{base}.save: {e}"));
                let refused: Vec<String> =
                    std::fs::read_to_string(dir.join(format!("{base}.refused")))
                        .map(|t| t.lines().map(str::to_string).collect())
                        .unwrap_or_default();
                let rs = parse_save(&save, *fam)
                    .unwrap_or_else(|e| panic!("{combo}/{base}.save does not parse: {e}"));
                let table = rs.filter_or_default();
                // Rules of the file the host took, per chain, in order.
                let mut by_chain: BTreeMap<String, Vec<&String>> = BTreeMap::new();
                for r in rules.iter().filter(|r| !refused.contains(r)) {
                    let chain = r.split_whitespace().nth(1).unwrap_or("").to_string();
                    by_chain.entry(chain).or_default().push(r);
                }
                for (chain, srcs) in by_chain {
                    let printed = table
                        .chain(&chain)
                        .map(|c| c.rules.clone())
                        .unwrap_or_default();
                    if printed.len() != srcs.len() {
                        problems.push(format!(
                            "{combo}/{base}: chain {chain}: {} rules loaded, {} printed",
                            srcs.len(),
                            printed.len()
                        ));
                        continue;
                    }
                    for (s, p) in srcs.into_iter().zip(printed) {
                        out.push(Pairing {
                            combo: combo.clone(),
                            family: *fam,
                            file: base.clone(),
                            source: s.clone(),
                            printed: p,
                        });
                    }
                }
                // Rules rampart would send to this family must be ones it
                // takes: refused as written is fine when rampart's own
                // spelling was taken (`tcp-rst` -> `tcp-reset`).
                let taken: Vec<String> = table
                    .chains
                    .iter()
                    .flat_map(|c| c.rules.iter().map(|r| r.to_line()))
                    .collect();
                for r in &refused {
                    if let Ok(rule) = Rule::parse(r) {
                        let ours = rule.for_family(*fam).to_line();
                        if rule.family().is_none_or(|f| f == *fam) && !taken.contains(&ours) {
                            problems.push(format!(
                                "{combo}/{base}: rampart sends {r:?} to {fam:?}, which refuses it"
                            ));
                        }
                    }
                }
                // The printed text parses and renders back to itself.
                assert_eq!(
                    render(&rs),
                    squeeze(&save),
                    "{combo}/{base}.save does not round-trip"
                );
            }
        }
    }
    (out, problems)
}

#[test]
fn every_corpus_rule_parses() {
    let files = corpus_files();
    let mut n = 0;
    for (stem, _, rules) in &files {
        for r in rules {
            if let Err(e) = Rule::parse(r) {
                panic!("{stem}: {r}: {e}");
            }
            n += 1;
        }
    }
    assert!(n >= 150, "the corpus has {n} rules");
}

#[test]
fn certain_rules_are_printed_exactly_as_rampart_writes_them() {
    let (pairs, mut problems) = pairings();
    let mut certain = 0;
    let mut uncertain = 0;
    let mut certain_rules = std::collections::BTreeSet::new();
    for p in &pairs {
        let rule = match Rule::parse(&p.source) {
            Ok(r) => r,
            Err(e) => panic!("{}: {}: {e}", p.file, p.source),
        };
        if rule.family().is_some_and(|f| f != p.family) {
            continue;
        }
        let ours = rule.for_family(p.family);
        if ours.canon_certain() {
            certain += 1;
            certain_rules.insert(p.source.clone());
            if ours.to_line() != p.printed.to_line() {
                problems.push(format!(
                    "{}/{}: claimed certain but differs:\n   source  {}\n   rampart {}\n   printed {}",
                    p.combo,
                    p.file,
                    p.source,
                    ours.to_line(),
                    p.printed.to_line()
                ));
            }
        } else {
            uncertain += 1;
        }
    }
    eprintln!(
        "corpus pairings: {certain} certain, {uncertain} left to the host; {} distinct rules certain",
        certain_rules.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
