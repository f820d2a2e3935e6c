//! `rampart audit` (and `apply --check`) on a real lab: read-only (guarantee 4),
//! exit codes, every kind of drift in the diff, JSON, JUnit, no escape codes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::support::{
    all, code, file_info, host_report, is_kernel_default, live_both, playbook, report, run,
    run_bounded, settle_processes, sh_in, show, statuses, stdout, Lab, Scratch, FAST,
    RAMPART_TIMEOUT,
};

/// Everything rampart could touch on a host: both rule sets, every file
/// (type, mode, size, mtime) the host has of its own, and its processes.
/// The host's /run and /tmp are its own tmpfs: listed from inside. Its
/// /etc, /var and /root are overlays on the machine's, whose files change
/// under them (builds, logs, other tests): what the host wrote there, and
/// only that, is in the overlay's upper dir, listed from the machine (a
/// deleted file leaves a whiteout there, a changed one a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    v4: String,
    v6: String,
    /// path -> type, mode, size, mtime
    files: BTreeMap<String, String>,
    processes: Vec<String>,
}

fn parse_listing(listing: &str, prefix: &str, files: &mut BTreeMap<String, String>) {
    for (p, m) in listing.lines().filter_map(|l| l.split_once('\t')) {
        files.insert(format!("{prefix}{p}"), m.to_string());
    }
}

pub(crate) fn snapshot(lab: &Lab, host: &str) -> Snapshot {
    let left = settle_processes(lab, host, Duration::from_secs(5));
    assert!(left.is_empty(), "{host}: processes besides sshd: {left:?}");
    let (v4, v6) = live_both(lab, host);
    let mut files = BTreeMap::new();
    let private = sh_in(
        lab,
        host,
        "find /run /tmp -printf '%p\\t%y %m %s %T@\\n' 2>/dev/null; true",
    );
    parse_listing(&private, "", &mut files);
    for (mounted_at, upper) in lab.upper_dirs(host) {
        let out = run_bounded(
            Command::new("find")
                .arg(&upper)
                .args(["-printf", "%P\t%y %m %s %T@\n"]),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{}: {}", upper.display(), show(&out));
        parse_listing(&stdout(&out), &mounted_at, &mut files);
    }
    let mut processes: Vec<String> = lab
        .host_processes(host)
        .into_iter()
        .map(|p| format!("{} {}", p.pid, p.cmdline))
        .collect();
    processes.sort();
    Snapshot {
        v4,
        v6,
        files,
        processes,
    }
}

/// The paths whose entry differs between two snapshots.
fn changed_paths(a: &Snapshot, b: &Snapshot) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (p, m) in &a.files {
        if b.files.get(p) != Some(m) {
            out.insert(p.clone());
        }
    }
    for p in b.files.keys() {
        if !a.files.contains_key(p) {
            out.insert(p.clone());
        }
    }
    out
}

/// How `b` differs from `a`, paths in `noise` aside; empty when the same.
pub(crate) fn what_changed(a: &Snapshot, b: &Snapshot, noise: &BTreeSet<String>) -> String {
    let mut out = String::new();
    if a.v4 != b.v4 {
        out.push_str(&format!("iptables:\n{}\n->\n{}\n", a.v4, b.v4));
    }
    if a.v6 != b.v6 {
        out.push_str(&format!("ip6tables:\n{}\n->\n{}\n", a.v6, b.v6));
    }
    for p in changed_paths(a, b).difference(noise) {
        out.push_str(&format!(
            "{p}: {:?} -> {:?}\n",
            a.files.get(p),
            b.files.get(p)
        ));
    }
    if a.processes != b.processes {
        out.push_str(&format!(
            "processes {:?} -> {:?}\n",
            a.processes, b.processes
        ));
    }
    out
}

/// What any SSH login changes on a host by itself, rampart or not: the
/// login shell reads root's rc files (the lab's /root is the machine's, and
/// bash run by sshd sources .bashrc, which may e.g. `pyenv rehash`). Found
/// with a plain `ssh host true` between two snapshots; a login must not
/// touch rules or processes.
pub(crate) fn login_noise(lab: &Lab, host: &str) -> BTreeSet<String> {
    let warm = lab.ssh(host, "true");
    assert!(warm.status.success(), "{host}: {}", show(&warm));
    let a = snapshot(lab, host);
    let ssh = lab.ssh(host, "true");
    assert!(ssh.status.success(), "{host}: {}", show(&ssh));
    let b = snapshot(lab, host);
    assert_eq!((&a.v4, &a.v6, &a.processes), (&b.v4, &b.v6, &b.processes));
    let noise = changed_paths(&a, &b);
    if !noise.is_empty() {
        eprintln!("{host}: a plain ssh login changes {noise:?}: ignored");
    }
    noise
}

fn snapshots(lab: &Lab, names: &[&str]) -> Vec<Snapshot> {
    names.iter().map(|n| snapshot(lab, n)).collect()
}

fn assert_unchanged(
    lab: &Lab,
    names: &[&str],
    before: &[Snapshot],
    noise: &[BTreeSet<String>],
    what: &str,
) {
    for ((n, b), noise) in names.iter().zip(before).zip(noise) {
        let after = snapshot(lab, n);
        let changed = what_changed(b, &after, noise);
        assert!(
            changed.is_empty(),
            "{n}: {what} changed the host:\n{changed}"
        );
    }
}

/// [`audit_and_check_are_read_only`] on the personalities (tests/it/distros.rs: on real distros).
#[test]
fn audit_and_check_are_read_only_on_drifting_and_compliant_fleets() {
    audit_and_check_are_read_only(&Lab::up(4));
}

/// Guarantee 4: audit and `apply --check` change nothing on a host (rules,
/// files, processes), whether the fleet drifts or is compliant.
pub(crate) fn audit_and_check_are_read_only(lab: &Lab) {
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let book = playbook("baseline.yml");
    let inv = lab.inventory();

    let noise: Vec<BTreeSet<String>> = names.iter().map(|n| login_noise(lab, n)).collect();

    // Fresh fleet: everything drifts.
    let before = snapshots(lab, &names);
    let out = run("audit", &book, &inv, &["--format", "json"]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert_eq!(statuses(&report(&out)), all(&names, "drift"));
    assert_unchanged(lab, &names, &before, &noise, "audit (drift)");
    let out = run("apply", &book, &inv, &["--check", "--format", "json"]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert_eq!(statuses(&report(&out)), all(&names, "drift"));
    assert_unchanged(lab, &names, &before, &noise, "apply --check (drift)");

    // Converged fleet: everything ok.
    let out = run("apply", &book, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let before = snapshots(lab, &names);
    let out = run("audit", &book, &inv, &["--format", "json"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(statuses(&report(&out)), all(&names, "ok"));
    assert_unchanged(lab, &names, &before, &noise, "audit (ok)");
    let out = run("apply", &book, &inv, &["--check", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(statuses(&report(&out)), all(&names, "ok"));
    // A different playbook drifts the converged fleet: still read-only.
    let out = run("audit", &playbook("lockout.yml"), &inv, &[]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert_unchanged(lab, &names, &before, &noise, "audit and apply --check (ok)");
}

/// Exit codes (docs/design.md, "Exit codes"): 2 drift, 0 compliant, 3 when a host cannot be audited.
#[test]
fn audit_exit_codes_follow_the_fleet() {
    let lab = Lab::up(3);
    let book = playbook("baseline.yml");
    let inv = lab.inventory();
    let out = run("audit", &book, &inv, &[]);
    assert_eq!(code(&out), 2, "fresh fleet drifts: {}", show(&out));
    let out = run("apply", &book, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = run("audit", &book, &inv, &[]);
    assert_eq!(code(&out), 0, "converged fleet: {}", show(&out));

    lab.cut_link("h003");
    let out = run("audit", &book, &inv, &["--format", "json"]);
    lab.restore_link("h003");
    assert_eq!(code(&out), 3, "{}", show(&out));
    let v = report(&out);
    let want: BTreeMap<String, String> = [("h001", "ok"), ("h002", "ok"), ("h003", "unreachable")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(statuses(&v), want, "{v:#}");

    // Drift and an unreachable host: 3 beats 2.
    sh_in(&lab, "h001", "iptables -P INPUT ACCEPT");
    lab.cut_link("h003");
    let out = run("audit", &book, &inv, &[]);
    lab.restore_link("h003");
    assert_eq!(code(&out), 3, "{}", show(&out));
}

/// The diff text of one host in an audit's JSON report.
fn diff_of(v: &serde_json::Value, name: &str) -> String {
    let r = host_report(v, name);
    assert_eq!(r["status"], "drift", "{name}: {r:#}");
    r["diff"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no diff: {r:#}"))
        .to_string()
}

/// Every kind of drift shows in the diff: a rule added by hand, a rule
/// removed, rules reordered, a policy changed, a persisted file missing, a
/// persisted file stale. apply repairs each; then the audit is clean.
#[test]
fn audit_diff_names_every_kind_of_drift() {
    let lab = Lab::up(4);
    let book = playbook("baseline.yml");
    let inv = lab.inventory();
    let out = run("apply", &book, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));

    // Live drift, one kind per host.
    sh_in(
        &lab,
        "h001",
        "iptables -A INPUT -p tcp --dport 8080 -j ACCEPT",
    );
    sh_in(
        &lab,
        "h002",
        "iptables -D INPUT -p tcp -m tcp --dport 443 -j ACCEPT",
    );
    // Move the port 80 rule after the port 22 one.
    sh_in(
        &lab,
        "h003",
        "iptables -D INPUT -p tcp -m tcp --dport 80 -j ACCEPT && iptables -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT",
    );
    sh_in(&lab, "h004", "ip6tables -P INPUT ACCEPT");
    let out = run("audit", &book, &inv, &["--format", "json"]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    let v = report(&out);
    assert_eq!(v["command"], "audit", "{v:#}");
    assert_eq!(v["summary"]["drift"], 4, "{v:#}");
    let d = diff_of(&v, "h001");
    assert!(
        d.contains("- -A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT"),
        "h001 (rule added by hand):\n{d}"
    );
    assert!(!d.contains("ip6tables"), "h001: only IPv4 drifted:\n{d}");
    let d = diff_of(&v, "h002");
    assert!(
        d.contains("+ -A INPUT -p tcp -m tcp --dport 443 -j ACCEPT"),
        "h002 (rule removed):\n{d}"
    );
    let d = diff_of(&v, "h003");
    assert!(d.contains("reordered"), "h003 (rules reordered):\n{d}");
    assert!(d.contains("--dport 80"), "h003:\n{d}");
    let d = diff_of(&v, "h004");
    assert!(
        d.contains("ip6tables") && d.contains("~ policy INPUT ACCEPT -> DROP"),
        "h004 (policy changed):\n{d}"
    );
    assert!(!d.contains("persisted"), "h004: files are fine:\n{d}");

    let out = run("apply", &book, &inv, &["--format", "json"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = run("audit", &book, &inv, &[]);
    assert_eq!(code(&out), 0, "repaired: {}", show(&out));

    // Persisted files: one missing, one stale; live rules are right.
    sh_in(&lab, "h001", "rm /etc/sysconfig/iptables");
    sh_in(
        &lab,
        "h003",
        "sed -i '/--dport 443/d' /etc/iptables/rules.v6",
    );
    let out = run("audit", &book, &inv, &["--format", "json"]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    let v = report(&out);
    let want: BTreeMap<String, String> = [
        ("h001", "drift"),
        ("h002", "ok"),
        ("h003", "drift"),
        ("h004", "ok"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(statuses(&v), want, "{v:#}");
    let d = diff_of(&v, "h001");
    assert!(
        d.contains("/etc/sysconfig/iptables") && d.contains("missing"),
        "h001 (persisted file missing):\n{d}"
    );
    assert!(!d.contains("live rules"), "h001: live rules are fine:\n{d}");
    let d = diff_of(&v, "h003");
    assert!(
        d.contains("/etc/iptables/rules.v6") && d.contains("differs"),
        "h003 (persisted file stale):\n{d}"
    );
    assert!(!d.contains("rules.v4"), "h003: rules.v4 is fine:\n{d}");

    // apply rewrites the stale files from the live rules: `changed`.
    let out = run("apply", &book, &inv, &["--format", "json"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v = report(&out);
    assert_eq!(statuses(&v)["h001"], "changed", "{v:#}");
    assert_eq!(statuses(&v)["h003"], "changed", "{v:#}");
    let f = file_info(&lab, "h003", "/etc/iptables/rules.v6").expect("rules.v6");
    assert!(f.contains("--dport 443") && f.starts_with("600 "), "{f}");
    let f = file_info(&lab, "h001", "/etc/sysconfig/iptables").expect("iptables");
    assert!(f.contains("--dport 443") && f.starts_with("600 "), "{f}");
    let out = run("audit", &book, &inv, &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
}

/// A minimal XML element tree: enough to prove a JUnit file well formed.
#[derive(Debug, Default)]
struct Elem {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Elem>,
    text: String,
}

/// Decode the five predefined entities and numeric references; reject
/// anything else (a bare `&` or `<` makes XML ill formed).
fn unescape(s: &str) -> Result<String, String> {
    if s.contains('<') {
        return Err(format!("bare '<' in {s:?}"));
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(';')
            .ok_or_else(|| format!("bare '&' in {s:?}"))?;
        let ent = &rest[i + 1..i + end];
        out.push(match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad reference &{n};"))?,
            n if n.starts_with('#') => n[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad reference &{n};"))?,
            n => return Err(format!("unknown entity &{n};")),
        });
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse a document: an XML declaration, then exactly one root element.
fn parse_xml(doc: &str) -> Result<Elem, String> {
    let mut rest = doc.trim_start();
    if let Some(r) = rest.strip_prefix("<?xml") {
        let end = r.find("?>").ok_or("unterminated declaration")?;
        rest = &r[end + 2..];
    }
    let mut stack: Vec<Elem> = vec![Elem::default()];
    loop {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() {
                return Err(format!("text after the root: {rest:?}"));
            }
            break;
        };
        let text = unescape(&rest[..lt])?;
        if stack.len() == 1 && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        stack.last_mut().ok_or("stack")?.text.push_str(&text);
        rest = &rest[lt + 1..];
        let gt = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let e = stack.pop().ok_or("close without open")?;
            if e.name != name.trim() || stack.is_empty() {
                return Err(format!("</{name}> closes <{}>", e.name));
            }
            stack.last_mut().ok_or("stack")?.children.push(e);
            continue;
        }
        let (body, empty) = match tag.strip_suffix('/') {
            Some(b) => (b, true),
            None => (tag, false),
        };
        let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
        let mut e = Elem {
            name: body[..name_end].to_string(),
            ..Elem::default()
        };
        if e.name.is_empty() || !e.name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!("bad tag <{tag}>"));
        }
        let mut a = body[name_end..].trim();
        while !a.is_empty() {
            let eq = a
                .find('=')
                .ok_or_else(|| format!("bad attribute in <{tag}>"))?;
            let key = a[..eq].trim().to_string();
            let v = a[eq + 1..].trim_start();
            let v = v
                .strip_prefix('"')
                .ok_or_else(|| format!("unquoted attribute in <{tag}>"))?;
            let close = v
                .find('"')
                .ok_or_else(|| format!("unterminated attribute in <{tag}>"))?;
            if e.attrs
                .insert(key.clone(), unescape(&v[..close])?)
                .is_some()
            {
                return Err(format!("duplicate attribute {key} in <{tag}>"));
            }
            a = v[close + 1..].trim_start();
        }
        if empty {
            stack.last_mut().ok_or("stack")?.children.push(e);
        } else {
            stack.push(e);
        }
    }
    if stack.len() != 1 {
        return Err(format!(
            "unclosed <{}>",
            stack.last().map_or("", |e| &e.name)
        ));
    }
    let mut top = stack.pop().ok_or("stack")?;
    if top.children.len() != 1 {
        return Err(format!("{} root elements", top.children.len()));
    }
    top.children.pop().ok_or_else(|| "no root".to_string())
}

/// `--format json` (one document, statuses, diff) and `--junit FILE` (well
/// formed, one testcase per host, drift and unreachable as failures).
#[test]
fn audit_json_and_junit_reports() {
    let lab = Lab::up(3);
    let book = playbook("baseline.yml");
    let inv = lab.inventory();
    let out = run("apply", &book, &inv, &["--limit", "h001"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let scratch = Scratch::new(&lab);
    let junit = scratch.path().join("audit.xml");
    lab.cut_link("h003");
    let out = run(
        "audit",
        &book,
        &inv,
        &["--format", "json", "--junit", &junit.to_string_lossy()],
    );
    lab.restore_link("h003");
    assert_eq!(code(&out), 3, "{}", show(&out));

    let v = report(&out);
    assert_eq!(v["command"], "audit", "{v:#}");
    assert_eq!(v["playbook"], book.as_str(), "{v:#}");
    assert!(v["duration_ms"].is_u64(), "{v:#}");
    let s = &v["summary"];
    assert_eq!(
        (
            s["hosts"].as_u64(),
            s["ok"].as_u64(),
            s["drift"].as_u64(),
            s["unreachable"].as_u64()
        ),
        (Some(3), Some(1), Some(1), Some(1)),
        "{v:#}"
    );
    assert_eq!(s["changed"], 0, "an audit changes nothing: {v:#}");
    let h1 = host_report(&v, "h001");
    assert_eq!(h1["status"], "ok", "{h1:#}");
    assert_eq!(h1["diff"], serde_json::Value::Null, "{h1:#}");
    assert_eq!(h1["persisted"], serde_json::json!([]), "{h1:#}");
    let h2 = host_report(&v, "h002");
    assert_eq!(h2["status"], "drift", "{h2:#}");
    let d = h2["diff"].as_str().unwrap_or_default();
    assert!(
        d.contains("+ -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT")
            && d.contains("/etc/sysconfig/iptables"),
        "{h2:#}"
    );
    assert_eq!(h2["os"], "rocky", "{h2:#}");
    let h3 = host_report(&v, "h003");
    assert_eq!(h3["status"], "unreachable", "{h3:#}");
    assert!(
        h3["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{h3:#}"
    );
    // The drifting host was only read.
    assert!(is_kernel_default(&live_both(&lab, "h002").0));

    let xml = fs::read_to_string(&junit).expect("the JUnit file is written");
    let root = parse_xml(&xml).unwrap_or_else(|e| panic!("ill-formed XML ({e}):\n{xml}"));
    assert_eq!(root.name, "testsuites", "{xml}");
    let cases: Vec<&Elem> = root
        .children
        .iter()
        .flat_map(|s| {
            assert_eq!(s.name, "testsuite", "{xml}");
            s.children.iter()
        })
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| c.attrs["name"].as_str()).collect();
    assert_eq!(
        names,
        ["h001", "h002", "h003"],
        "one testcase per host:\n{xml}"
    );
    assert!(cases.iter().all(|c| c.name == "testcase"), "{xml}");
    let failure = |c: &Elem| {
        c.children
            .iter()
            .find(|f| f.name == "failure")
            .map(|f| f.attrs.get("type").cloned().unwrap_or_default())
    };
    assert_eq!(failure(cases[0]), None, "ok is no failure:\n{xml}");
    assert_eq!(failure(cases[1]).as_deref(), Some("drift"), "{xml}");
    assert_eq!(failure(cases[2]).as_deref(), Some("unreachable"), "{xml}");
    let drift_text = &cases[1].children[0].text;
    assert!(
        drift_text.contains("--dport 22"),
        "the diff is in the failure: {xml}"
    );
    assert_eq!(
        root.attrs.get("failures").map(String::as_str),
        Some("2"),
        "{xml}"
    );
    assert_eq!(
        root.attrs.get("tests").map(String::as_str),
        Some("3"),
        "{xml}"
    );
}

/// A minimal XML parser is only worth something if it rejects bad XML.
#[test]
fn the_xml_checker_rejects_ill_formed_documents() {
    assert!(parse_xml("<?xml version=\"1.0\"?>\n<a x=\"1\"><b/>t&amp;</a>\n").is_ok());
    for bad in [
        "<a><b></a></b>",
        "<a>x & y</a>",
        "<a x=\"<\"/>",
        "<a x=1/>",
        "<a></a><b/>",
        "<a>",
        "<a>&bogus;</a>",
    ] {
        assert!(parse_xml(bad).is_err(), "accepted {bad:?}");
    }
}

/// No escape codes in output that is not a terminal, nor with NO_COLOR.
#[test]
fn no_escape_codes_off_a_terminal_or_with_no_color() {
    let lab = Lab::up(2);
    let book = playbook("baseline.yml");
    let inv = lab.inventory();
    let out = run("apply", &book, &inv, &["--limit", "h001"]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    // Pipes, NO_COLOR unset: plain progress and report.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.arg("audit")
        .arg(&book)
        .arg("-i")
        .arg(&inv)
        .args(FAST)
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color");
    let out = run_bounded(&mut cmd, RAMPART_TIMEOUT);
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert!(stdout(&out).contains("drift"), "{}", show(&out));
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "escape codes off a terminal:\n{}",
        show(&out)
    );

    // On a terminal (script(1) gives one), stderr to a file: colour unless
    // NO_COLOR is set.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script(1) not installed: terminal half skipped");
        return;
    }
    let scratch = Scratch::new(&lab);
    let line = format!(
        "{} audit {} -i {} {} 2>{}",
        env!("CARGO_BIN_EXE_rampart"),
        book,
        inv.display(),
        FAST.join(" "),
        scratch.path().join("stderr").display()
    );
    let on_tty = |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env("TERM", "xterm-256color");
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        run_bounded(&mut cmd, RAMPART_TIMEOUT)
    };
    let plain = on_tty(Some("1"));
    assert!(stdout(&plain).contains("drift"), "{}", show(&plain));
    assert!(
        !stdout(&plain).contains("\x1b["),
        "NO_COLOR=1 on a terminal:\n{}",
        show(&plain)
    );
    // The control: without NO_COLOR the same terminal gets colour, so the
    // check above can see escape codes when there are some.
    let coloured = on_tty(None);
    assert!(
        stdout(&coloured).contains("\x1b["),
        "no colour on a terminal without NO_COLOR:\n{}",
        show(&coloured)
    );
}
