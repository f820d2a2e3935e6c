//! The layering of docs/design.md ("Layers"), checked on the source: a
//! layer that starts using what it must not fails here, in CI, before it
//! becomes a habit. Test code (after a file's first `#[cfg(test)]`, and
//! modules declared test-only) is exempt: tests may reach across layers.

use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every .rs file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("a dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Module files a `mod.rs` declares as test-only (`#[cfg(test)] mod x;`).
fn test_only_modules(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string(dir.join("mod.rs")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].trim() == "#[cfg(test)]")
        .filter_map(|w| {
            w[1].trim()
                .strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .map(|m| dir.join(format!("{m}.rs")))
        .collect()
}

/// The non-test code of a file, with comments removed.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = text.split("#[cfg(test)]").next().unwrap_or("");
    body.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files of `layer` (a dir under src/) whose code contains one of `banned`.
fn offences(layer: &str, banned: &[&str]) -> Vec<String> {
    let dir = src().join(layer);
    let skip = test_only_modules(&dir);
    let mut found = Vec::new();
    for f in files(&dir).into_iter().filter(|f| !skip.contains(f)) {
        let c = code(&f);
        for b in banned {
            if c.contains(b) {
                found.push(format!(
                    "{} uses {b}",
                    f.strip_prefix(src()).unwrap_or(&f).display()
                ));
            }
        }
    }
    found
}

#[test]
fn the_pure_core_does_no_io_and_calls_no_other_layer() {
    let found = offences(
        "firewall",
        &[
            "ssh2",
            "tokio",
            "libc::",
            "std::fs",
            "std::process",
            "std::net::Tcp",
            "std::net::Udp",
            "std::io::std",
            "std::env",
            "println!",
            "eprintln!",
            "crate::remote",
            "crate::converge",
            "crate::report",
            "crate::lab",
            "crate::app",
            "crate::cli",
            "crate::inventory",
            "crate::playbook",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn only_the_transport_speaks_ssh() {
    let mut found = Vec::new();
    for layer in [
        "converge",
        "firewall",
        "inventory",
        "playbook",
        "report",
        "lab",
    ] {
        found.extend(offences(layer, &["ssh2"]));
    }
    for f in ["app.rs", "cli.rs", "main.rs", "lib.rs", "error.rs"] {
        if code(&src().join(f)).contains("ssh2") {
            found.push(format!("{f} uses ssh2"));
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn no_import_cycles_between_layers() {
    let mut found = offences("lab", &["crate::cli"]);
    found.extend(offences("inventory", &["crate::playbook"]));
    found.extend(offences(
        "remote",
        &[
            "crate::converge",
            "crate::report",
            "crate::playbook",
            "crate::app",
        ],
    ));
    found.extend(offences(
        "converge",
        &["crate::report", "crate::app", "crate::cli"],
    ));
    // firewall/parse uses firewall/canon, never the other way round.
    let canon = code(&src().join("firewall/canon.rs"));
    if canon.contains("super::parse") || canon.contains("firewall::parse") {
        found.push("firewall/canon.rs uses firewall/parse".into());
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_engine_never_prints() {
    let found = offences(
        "converge",
        &[
            "println!",
            "eprintln!",
            "print!(",
            "std::io::stdout",
            "std::io::stderr",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}
