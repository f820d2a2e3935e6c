//! No panic on host data: a seeded, deterministic fuzz of every parser that
//! reads what a host (or a known_hosts file) says.
//!
//! A host may print anything: a hostile or broken host controls every byte
//! of `iptables-save`, `iptables -L`, the facts step's sections, the canon
//! probe's output. A panic there would be a bug that ends the host as
//! `failed` (the engine catches it) instead of a clear error, so these
//! parsers must never panic. This test feeds them random bytes, random
//! mutations and truncations of real inputs (`tests/golden/`,
//! `tests/corpus/printed/`), and splices of two inputs, and also runs what
//! consumes a successful parse (diff, render, the packet evaluator, the
//! listing cross-check).
//!
//! Deterministic: the seed is fixed (`RAMPART_FUZZ_SEED` replays another),
//! and `RAMPART_FUZZ_ITERS` (default 400 per target and seed input kind)
//! runs it longer. No dependency: a xorshift generator is enough to find
//! slicing and overflow bugs.

use std::path::{Path, PathBuf};

use crate::firewall::{
    self, desired, diff, evaluate, host_canonical, listing, parse_save, render, with_preserved,
    Family, FirewallSpec, Packet, Rule, HOST_CANON_MARKER,
};
use crate::remote::facts::Facts;
use crate::remote::knownhosts::KnownHosts;
use crate::remote::shell::Sections;

/// xorshift64*: tiny, fast, good enough to pick bytes and positions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens that mean something to one of the parsers: inserting them makes
/// mutations reach deeper than random bytes would.
const TOKENS: &[&str] = &[
    "-A ",
    "-A INPUT ",
    "-N X",
    "-P INPUT DROP",
    "! ",
    "\"",
    "\\",
    "\\\"",
    " -m ",
    " -p tcp ",
    " --dport ",
    " --sport ",
    " -j ",
    " -g ",
    " -c ",
    " --comment ",
    " --tcp-flags ",
    " --limit ",
    " 99999999999999999999",
    " 18446744073709551615",
    " 4294967296",
    "0x",
    "/",
    ":",
    ",",
    "K",
    "M",
    "G",
    "T",
    "99999999999999999999K",
    "18446744073709551615T",
    "*filter\n",
    "*nat\n",
    "COMMIT\n",
    ":INPUT ACCEPT [0:0]\n",
    "[1:2] ",
    "[",
    "]",
    "Chain ",
    "Chain INPUT (policy DROP 99999999999999999999T packets, 5G bytes)\n",
    "Chain X (18446744073709551615 references)\n",
    " (policy ",
    "num   pkts bytes target     prot opt in     out     source               destination\n",
    "target     prot opt source               destination\n",
    "@@rc=",
    "@@rc=0\n",
    "@@rampart:N:",
    "\n@@rampart:N:save4\n",
    "\n@@rampart:N:file:/etc/x\n",
    "present\n",
    "|1|",
    "@revoked ",
    "@cert-authority ",
    "[host]:",
    "ssh-ed25519 ",
    "AAAA",
    "=",
    "\n",
    "\r",
    "\t",
    "\0",
    "\u{1b}[2J",
    "é",
    "\u{202e}",
    "\u{9b}",
    "🦀",
    HOST_CANON_MARKER,
];

/// One mutation of `input` (bytes, lossily back to text as the transport
/// does with what a host prints).
fn mutate(rng: &mut Rng, input: &str, other: &str) -> String {
    let mut b: Vec<u8> = input.as_bytes().to_vec();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let at = rng.below(b.len() + 1);
        match rng.below(9) {
            // Truncate.
            0 => b.truncate(at),
            // Flip a byte to anything (invalid UTF-8 included).
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            // Insert a meaningful token.
            2 | 3 => {
                let t = rng.pick(TOKENS).as_bytes();
                b.splice(at..at, t.iter().copied());
            }
            // Delete a run.
            4 => {
                let end = (at + rng.below(40)).min(b.len());
                b.drain(at..end);
            }
            // Duplicate a run (lines, tokens).
            5 => {
                let end = (at + rng.below(200)).min(b.len());
                let run: Vec<u8> = b[at..end].to_vec();
                b.splice(at..at, run);
            }
            // Splice in part of another input.
            6 if !other.is_empty() => {
                let o = other.as_bytes();
                let s = rng.below(o.len());
                let e = (s + rng.below(400)).min(o.len());
                b.splice(at..at, o[s..e].iter().copied());
            }
            // Replace a digit run with a huge number.
            7 => {
                let t = rng.pick(&["99999999999999999999", "18446744073709551616", "4294967295"]);
                b.splice(at..at, t.bytes());
            }
            // Random bytes.
            _ => {
                let n = rng.below(16);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// A gentler mutation: one line of `input` mutated, the others intact, so
/// that most results still parse and what consumes a parsed ruleset (diff,
/// render, the packet evaluator) gets host-controlled values to chew on.
fn mutate_line(rng: &mut Rng, input: &str) -> String {
    let mut lines: Vec<String> = input.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return mutate(rng, input, "");
    }
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(lines.len());
        if rng.chance(2) {
            lines[i] = replace_word(rng, &lines[i]);
            continue;
        }
        let mut b = lines[i].as_bytes().to_vec();
        let at = rng.below(b.len() + 1);
        match rng.below(4) {
            0 => {
                let t = rng.pick(TOKENS).trim_end_matches('\n');
                b.splice(at..at, t.bytes());
            }
            1 => b.truncate(at),
            2 if !b.is_empty() => {
                let j = rng.below(b.len());
                b[j] = *rng.pick(b"0123456789:,/!-\"x\x1bK ");
            }
            _ => {
                let t = *rng.pick(VALUES);
                b.splice(at..at, t.bytes());
            }
        }
        lines[i] = String::from_utf8_lossy(&b).into_owned();
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Values that break number, address and name parsing: limits of integer
/// types, and the same with the listings' unit suffixes.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999",
    "18446744073709551615K",
    "18446744073709551T",
    "99999999999T",
    "999999999999999G",
    "K",
    "",
    "!",
    "--",
    "*",
    "\"",
    "0x",
    "0xffffffff/0xffffffff",
    "0:65535",
    "65535:0",
    ":",
    "ffff::/129",
    "1.2.3.4/33",
    "::/0",
    "1.2.3.4-::1",
];

/// One whitespace-separated word of `line` replaced by a [`VALUES`] entry
/// or a [`TOKENS`] entry: counters, ports, masks and option names are
/// whole words, so this reaches the conversions a byte flip rarely does.
fn replace_word(rng: &mut Rng, line: &str) -> String {
    let mut words: Vec<&str> = line.split(' ').collect();
    let i = rng.below(words.len());
    words[i] = if rng.chance(3) {
        rng.pick(TOKENS).trim()
    } else {
        *rng.pick(VALUES)
    };
    words.join(" ")
}

/// Pure random text (control characters, multi-byte, newlines).
fn random_text(rng: &mut Rng) -> String {
    let n = rng.below(300);
    let b: Vec<u8> = (0..n)
        .map(|_| match rng.below(4) {
            0 => rng.next() as u8,
            1 => b'\n',
            _ => b" -!:/,0123456789AKMGTabcdefx\"[]@|*"[rng.below(34)],
        })
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every file under `dir`, recursively, in name order.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The real inputs: saved rules, listings, and what six iptables versions
/// printed for the raw-rule corpus.
fn seeds() -> (Vec<String>, Vec<String>) {
    let mut files = Vec::new();
    files_under(&repo("tests/golden"), &mut files);
    files_under(&repo("tests/corpus/printed"), &mut files);
    let mut saves = Vec::new();
    let mut lists = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let name = f.to_string_lossy();
        if name.contains("list") || name.ends_with("-L.txt") {
            lists.push(text);
        } else {
            saves.push(text);
        }
    }
    assert!(saves.len() > 20, "the seed inputs are missing: {saves:?}");
    assert!(!lists.is_empty(), "the seed listings are missing");
    (saves, lists)
}

fn iterations() -> usize {
    std::env::var("RAMPART_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn seed() -> u64 {
    std::env::var("RAMPART_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_2026)
}

/// What consumes a successfully parsed host ruleset: none of it may panic.
fn consume_ruleset(rs: &firewall::Ruleset, want: &firewall::Ruleset) {
    let _ = render(rs);
    let _ = diff(want, rs);
    let _ = with_preserved(want, rs, &["DOCKER*".to_string(), "f2b-*".to_string()]);
    let v4 = rs.family == Family::V4;
    let (src, dst): (std::net::IpAddr, std::net::IpAddr) = if v4 {
        ([198, 18, 0, 1].into(), [198, 18, 0, 2].into())
    } else {
        (
            "2001:db8::1".parse().unwrap_or([0u8; 16].into()),
            "2001:db8::2".parse().unwrap_or([0u8; 16].into()),
        )
    };
    for chain in ["INPUT", "OUTPUT", "FORWARD"] {
        let _ = evaluate(rs, chain, &Packet::tcp_syn(src, 50000, dst, 22));
        let _ = evaluate(rs, chain, &Packet::tcp_established(src, 50000, dst, 22));
    }
    for c in rs.filter_or_default().chains {
        for r in &c.rules {
            let _ = r.to_line();
            let _ = r.canon_certain();
        }
    }
}

/// The sections the facts step prints.
const FACT_SECTIONS: &[&str] = &[
    "uid",
    "os_release",
    "redhat_release",
    "debian_version",
    "alpine_release",
    "iptables_v",
    "has",
    "firewalld",
    "ufw",
    "loaders",
    "init",
    "switch_state",
    "ssh_connection",
    "ipv6",
    "save4",
    "save6",
    "file:/etc/iptables/rules.v4",
    "file:/etc/sysconfig/iptables",
    "file:",
];

const FACT_BODIES: &[&str] = &[
    "0\n",
    "4294967296\n",
    "-1\n",
    "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
    "ID=\nID_LIKE=\n=\n\"\n",
    "iptables v1.8.9 (nf_tables)\n",
    "iptables-save\niptables-restore\nunshare\nflock\n",
    "active\n",
    "ENABLED=yes\n",
    "/etc/systemd/system/multi-user.target.wants/iptables.service\n/etc/rc3.d/S10x\n/",
    "systemd running\n",
    "restore_failed\n",
    "198.18.0.1 51234 198.18.0.2 22\n",
    "::1 99999 ::1 22\n",
    "198.18.0.1 51234 198.18.0.2\n",
    "disabled\n",
    "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n@@rc=0\n",
    "@@rc=",
    "@@rc=1\n",
    "present\n*filter\nCOMMIT\n",
    "present",
    "symlink\n",
    "special\n",
    "absent\n",
];

/// A random facts-step output: sections in any order, with real, mutated
/// or random bodies, the right nonce or a forged one.
fn facts_output(rng: &mut Rng, saves: &[String]) -> String {
    let mut s = String::new();
    if rng.chance(3) {
        s.push_str(&random_text(rng));
    }
    for _ in 0..rng.below(24) {
        let nonce = if rng.chance(10) { "FORGED" } else { "N" };
        let name = rng.pick(FACT_SECTIONS);
        s.push_str(&format!("\n@@rampart:{nonce}:{name}\n"));
        let body = match rng.below(4) {
            0 => rng.pick(FACT_BODIES).to_string(),
            1 => {
                let body = *rng.pick(FACT_BODIES);
                mutate(rng, body, "")
            }
            2 => {
                let save = &saves[rng.below(saves.len())];
                format!("{}@@rc=0\n", mutate(rng, save, ""))
            }
            _ => random_text(rng),
        };
        s.push_str(&body);
    }
    if rng.chance(4) {
        let cut = rng.below(s.len() + 1);
        s = String::from_utf8_lossy(&s.as_bytes()[..cut]).into_owned();
    }
    s
}

const KNOWN_HOSTS_SEED: &str = "\
# a comment
198.18.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
[198.18.0.3]:2222,web1 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV9U2w1zbgNwwHm3U0vFg=
|1|MDEyMzQ1Njc4OWFiY2RlZmdoaWo=|5xDlS1nYxGRo4C7tDlw0L/ZQ1ZQ= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
@revoked * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
*.example.com,!bad.example.com,?x ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ==
";

/// Every parser of host data, fed `iterations()` mutated and random inputs
/// per kind. A panic fails the test with the seed and iteration, so it can
/// be replayed.
#[test]
fn host_data_parsers_never_panic() {
    let (saves, lists) = seeds();
    let n = iterations();
    let base = seed();
    let spec = FirewallSpec {
        rules: [
            "-A INPUT -p tcp --dport 8080 -m comment --comment \"x y\" -j ACCEPT",
            "-A OUTPUT -m owner --uid-owner root -j ACCEPT",
            "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd",
        ]
        .iter()
        .filter_map(|l| Rule::parse(l).ok())
        .collect(),
        ..FirewallSpec::default()
    };
    let want4 = desired(&spec, Family::V4);
    let want6 = desired(&spec, Family::V6);
    let probe = firewall::canon_probe(&want4, &firewall::Ruleset::empty(Family::V4));
    let started = std::time::Instant::now();
    let (mut parsed_ok, mut lists_ok, mut canon_ok) = (0usize, 0usize, 0usize);
    let mut runs = 0usize;
    for i in 0..n {
        let mut rng = Rng::new(base ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let what = format!(
            "seed {base} iteration {i} (RAMPART_FUZZ_SEED={base} RAMPART_FUZZ_ITERS={})",
            i + 1
        );
        // iptables-save / -S, both families.
        let a = &saves[rng.below(saves.len())];
        let b = &saves[rng.below(saves.len())];
        let inputs = [
            mutate_line(&mut rng, a),
            mutate(&mut rng, a, b),
            random_text(&mut rng),
            {
                let cut = rng.below(a.len() + 1);
                String::from_utf8_lossy(&a.as_bytes()[..cut]).into_owned()
            },
        ];
        for text in &inputs {
            for (fam, want) in [(Family::V4, &want4), (Family::V6, &want6)] {
                runs += 1;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if let Ok(rs) = parse_save(text, fam) {
                        consume_ruleset(&rs, want);
                        true
                    } else {
                        false
                    }
                }));
                match r {
                    Ok(ok) => parsed_ok += usize::from(ok),
                    Err(_) => panic!("parse_save panicked, {what}, on {text:?}"),
                }
            }
        }
        // iptables -L.
        let l = &lists[rng.below(lists.len())];
        for text in [
            mutate_line(&mut rng, l),
            mutate(&mut rng, l, a),
            random_text(&mut rng),
        ] {
            runs += 1;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Ok(listing) = listing::parse_list(&text) {
                    let _ = listing.rule_counts();
                    let _ = firewall::listing_matches(&listing, &want4);
                    true
                } else {
                    false
                }
            }));
            match r {
                Ok(ok) => lists_ok += usize::from(ok),
                Err(_) => panic!("parse_list panicked, {what}, on {text:?}"),
            }
        }
        // The canon probe's output.
        for text in [
            format!("{HOST_CANON_MARKER}\n{}", mutate_line(&mut rng, &probe)),
            format!("{HOST_CANON_MARKER}\n{}", mutate(&mut rng, &probe, a)),
            mutate(&mut rng, a, &probe),
        ] {
            runs += 1;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Ok(hc) = host_canonical(&want4, &text) {
                    consume_ruleset(&hc.ruleset, &want4);
                    true
                } else {
                    false
                }
            }));
            match r {
                Ok(ok) => canon_ok += usize::from(ok),
                Err(_) => panic!("host_canonical panicked, {what}, on {text:?}"),
            }
        }
        // The facts step's sections.
        let out = facts_output(&mut rng, &saves);
        for text in [
            out.clone(),
            mutate(&mut rng, &out, a),
            random_text(&mut rng),
        ] {
            runs += 1;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let s = Sections::parse(&text, "N");
                let _ = s.names().count();
                let f = Facts::parse(&s);
                let _ = (f.has_loader(false), f.has_loader(true));
                if let Ok(t) = &f.save_v4 {
                    let _ = parse_save(t, Family::V4);
                }
            }));
            assert!(r.is_ok(), "Facts::parse panicked, {what}, on {text:?}");
        }
        // known_hosts.
        for text in [
            mutate_line(&mut rng, KNOWN_HOSTS_SEED),
            mutate(&mut rng, KNOWN_HOSTS_SEED, ""),
            random_text(&mut rng),
        ] {
            runs += 1;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let kh = KnownHosts::parse(&text);
                for (host, port) in [
                    ("198.18.0.2", 22),
                    ("198.18.0.3", 2222),
                    ("a.example.com", 22),
                ] {
                    let _ = kh.key_types(host, port);
                    let _ = kh.check(host, port, b"\0\0\0\x0bssh-ed25519junk");
                    let _ = kh.check(host, port, text.as_bytes());
                }
            }));
            assert!(r.is_ok(), "KnownHosts::parse panicked, {what}, on {text:?}");
        }
    }
    eprintln!(
        "fuzz: {n} iterations, {runs} inputs (parsed: {parsed_ok} iptables-save, {lists_ok} listings, {canon_ok} canon outputs), seed {base}, {:?}",
        started.elapsed()
    );
    assert!(
        n < 50 || (parsed_ok > n / 4 && lists_ok > n / 20 && canon_ok > n / 20),
        "the mutations rarely produce parseable input: the deep paths go untested"
    );
}
