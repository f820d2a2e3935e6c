//! Ansible inventories as Ansible reads them from disk: `-i DIR` (every
//! inventory file of a directory), and the `group_vars/` and `host_vars/`
//! directories beside the inventory (inside it for `-i DIR`).
//!
//! Files of an inventory directory, as Ansible picks them: in name order,
//! subdirectories too, skipping hidden names, `group_vars`, `host_vars`,
//! names ending in `~` and the extensions Ansible ignores (`.orig .cfg
//! .retry .pyc .pyo .swp .bak .rpm .md .txt .rst`). Each must be an Ansible
//! INI or YAML inventory; a rampart inventory there is an error (its
//! `defaults` could not mean anything next to Ansible's vars). Scripts are
//! not run: a file is read as text.
//!
//! Vars files, as Ansible finds them for an entity (a group, `all`, or a
//! host) named NAME: the first that exists of `NAME`, `NAME.yml`,
//! `NAME.yaml`, `NAME.json`; when it is a directory, every file in it (and
//! below) without an extension or with one of those, in name order, later
//! files winning. Where rampart says more than Ansible: a vars file that
//! names no group or host of the inventory is named in a warning (a typo
//! would otherwise silently drop variables), so are the files shadowed by
//! the first one, and a file `NAME.EXT` with another extension for an
//! existing NAME is an error (its variables would be lost). A file
//! encrypted with Ansible Vault is skipped with a warning: rampart never
//! reads secrets from files.

use std::path::{Path, PathBuf};

use super::ansible::{parse_vars_file, Model};
use super::resolve::Parsed;
use super::{detect_format, Format};
use crate::error::InputError;

/// Extensions a vars file may have (besides none).
const VARS_EXTS: [&str; 3] = ["yml", "yaml", "json"];

/// Extensions Ansible skips in an inventory directory.
const IGNORED_EXTS: [&str; 12] = [
    "orig", "cfg", "retry", "pyc", "pyo", "swp", "bak", "rpm", "md", "txt", "rst", "sample",
];

/// An Ansible inventory file, with the vars directories beside it.
pub(crate) fn load_file(path: &Path, text: &str) -> Result<Parsed, InputError> {
    let mut m = Model::default();
    add_file(&mut m, path, text)?;
    let dir = super::base_dir(path);
    let mut warnings = Vec::new();
    load_vars(&mut m, &dir, &mut warnings)?;
    let mut p = m.finish(path, &dir)?;
    p.warnings.extend(warnings);
    Ok(p)
}

/// `-i DIR`: every inventory file in it, then its vars directories.
pub(crate) fn load_dir(dir: &Path) -> Result<Parsed, InputError> {
    let mut m = Model::default();
    let mut files = Vec::new();
    inventory_files(dir, &mut files, 0)?;
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| InputError::whole_file(f, format!("cannot read inventory: {e}")))?;
        add_file(&mut m, f, &text)?;
    }
    let mut warnings = Vec::new();
    load_vars(&mut m, dir, &mut warnings)?;
    let mut p = m.finish(dir, dir)?;
    p.warnings.extend(warnings);
    Ok(p)
}

fn add_file(m: &mut Model, path: &Path, text: &str) -> Result<(), InputError> {
    match detect_format(text) {
        Format::AnsibleIni => m.add_ini(path, text),
        Format::AnsibleYaml => m.add_yaml(path, text),
        Format::Native => Err(InputError::whole_file(
            path,
            "a rampart inventory cannot be one file of an inventory directory \
             (only Ansible INI or YAML files; pass it with -i on its own)",
        )),
    }
}

fn ext_of(name: &str) -> Option<&str> {
    name.rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty())
}

/// Directory entries in name order, hidden ones and backups (`~`) left out.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, InputError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| InputError::whole_file(dir, format!("cannot read directory: {e}")))?;
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.starts_with('.') && !n.ends_with('~'))
        .collect();
    out.sort();
    Ok(out)
}

fn inventory_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), InputError> {
    if depth > 16 {
        return Err(InputError::whole_file(
            dir,
            "inventory directories nested too deep",
        ));
    }
    for (name, path) in entries(dir)? {
        if depth == 0 && (name == "group_vars" || name == "host_vars") {
            continue;
        }
        if ext_of(&name).is_some_and(|e| IGNORED_EXTS.contains(&e)) {
            continue;
        }
        if path.is_dir() {
            inventory_files(&path, out, depth + 1)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Every vars file of a vars directory (recursively), in name order.
fn vars_dir_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), InputError> {
    if depth > 16 {
        return Err(InputError::whole_file(
            dir,
            "vars directories nested too deep",
        ));
    }
    for (name, path) in entries(dir)? {
        let ext = ext_of(&name);
        if path.is_dir() {
            if ext.is_none() {
                vars_dir_files(&path, out, depth + 1)?;
            }
        } else if ext.is_none_or(|e| VARS_EXTS.contains(&e)) {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Group,
    Host,
}

/// Read `group_vars/` and `host_vars/` under `dir` into the model.
fn load_vars(m: &mut Model, dir: &Path, warnings: &mut Vec<String>) -> Result<(), InputError> {
    for (sub, kind) in [("group_vars", Kind::Group), ("host_vars", Kind::Host)] {
        let vdir = dir.join(sub);
        if !vdir.is_dir() {
            continue;
        }
        let known = |m: &Model, name: &str| match kind {
            Kind::Group => m.has_group(name) || name == "ungrouped",
            Kind::Host => m.has_host(name),
        };
        let what = match kind {
            Kind::Group => "group",
            Kind::Host => "host",
        };
        // Which entity each entry is for, and which entries are read.
        for (name, path) in entries(&vdir)? {
            let ext = ext_of(&name);
            let stem = match ext {
                Some(e) => &name[..name.len() - e.len() - 1],
                None => name.as_str(),
            };
            let label = format!("{sub}/{name}");
            let entity = if known(m, &name) {
                name.clone()
            } else if ext.is_some_and(|e| VARS_EXTS.contains(&e)) && known(m, stem) {
                stem.to_string()
            } else if ext.is_some() && known(m, stem) {
                return Err(InputError::whole_file(
                    &path,
                    format!(
                        "unknown variables file format '.{}' (Ansible reads {stem}, {stem}.yml, {stem}.yaml, {stem}.json, or a directory {stem}/)",
                        ext.unwrap_or_default()
                    ),
                ));
            } else {
                warnings.push(format!(
                    "{label} names no {what} of this inventory: not read"
                ));
                continue;
            };
            // Ansible reads the first of NAME, NAME.yml, NAME.yaml, NAME.json.
            let first = std::iter::once(entity.clone())
                .chain(VARS_EXTS.iter().map(|e| format!("{entity}.{e}")))
                .find(|c| vdir.join(c).exists());
            if first.as_deref() != Some(name.as_str()) {
                warnings.push(format!(
                    "{label} is not read: {sub}/{} is (Ansible reads only the first of {entity}, {entity}.yml, {entity}.yaml, {entity}.json)",
                    first.unwrap_or_default()
                ));
                continue;
            }
            let mut files = Vec::new();
            if path.is_dir() {
                vars_dir_files(&path, &mut files, 0)?;
            } else {
                files.push(path.clone());
            }
            for f in files {
                let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
                let text = std::fs::read_to_string(&f).map_err(|e| {
                    InputError::whole_file(&f, format!("cannot read variables file: {e}"))
                })?;
                if text.trim_start().starts_with("$ANSIBLE_VAULT;") {
                    warnings.push(format!(
                        "{rel} is encrypted with Ansible Vault: not read (rampart never reads secrets from files)"
                    ));
                    continue;
                }
                if text.lines().all(|l| {
                    l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---"
                }) {
                    continue;
                }
                let vars = parse_vars_file(&f, &rel, &text)?;
                match kind {
                    Kind::Group => m.add_group_file_vars(&entity, &vars),
                    Kind::Host => m.add_host_file_vars(&entity, &vars),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Inventory, LoadOptions, SshConfigChoice};
    use std::path::{Path, PathBuf};

    /// A fresh directory with these files (relative path -> content).
    fn tree(files: &[(&str, &str)]) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rampart-ansible-dir-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        dir
    }

    fn load(p: &Path) -> Result<Inventory, crate::error::InputError> {
        Inventory::load_with(
            p,
            &LoadOptions {
                ssh_config: Some(SshConfigChoice::None),
            },
        )
    }

    const INI: &str = "\
[web]
web1
web2 ansible_user=inv_host
[prod:children]
web
[all:vars]
ansible_port=1001
[prod:vars]
ansible_port=1002
ansible_user=inv_prod
[web:vars]
ansible_user=inv_web
";

    const VAULTED: &str = concat!("$", "ANSIBLE_VAULT;1.1;AES256\n6162\n");

    #[test]
    fn ansible_precedence_with_vars_files() {
        let dir = tree(&[
            ("hosts.ini", INI),
            (
                "group_vars/all.yml",
                "---\nansible_port: 2001\nansible_ssh_private_key_file: keys/all\nansible_python_interpreter: /usr/bin/python3\napp_port: 8080\n",
            ),
            ("group_vars/prod.yml", "ansible_port: 2002\n"),
            ("group_vars/web/main.yml", "ansible_user: gv_web\n"),
            (
                "group_vars/web/z.yaml",
                "ansible_ssh_common_args: '-J jumper@bastion:2222 -o StrictHostKeyChecking=no'\n",
            ),
            ("group_vars/web/notes.txt", "not read\n"),
            ("group_vars/webz.yml", "ansible_user: typo\n"),
            ("host_vars/web2.yml", "ansible_port: 3000\n"),
            ("host_vars/web1", "ansible_host: 192.0.2.1\n"),
            ("host_vars/web1.yml", "ansible_host: 192.0.2.99\n"),
            ("group_vars/web/vault.yml", VAULTED),
        ]);
        let inv = load(&dir.join("hosts.ini")).expect("loads");
        let web1 = inv.host("web1").expect("web1");
        let web2 = inv.host("web2").expect("web2");
        // group_vars of a group beat group_vars/all and inventory-file vars.
        assert_eq!(web1.reach.port, 2002);
        assert_eq!(web1.sources.port, "group_vars/prod.yml");
        assert_eq!(web1.reach.user, "gv_web");
        assert_eq!(web1.sources.user, "group_vars/web/main.yml");
        assert_eq!(
            web1.reach.address, "192.0.2.1",
            "host_vars/web1 is read first"
        );
        assert_eq!(
            web1.reach.identity_file.as_deref(),
            Some(dir.join("keys/all").as_path())
        );
        let jumps: Vec<String> = web1.reach.jumps.iter().map(|j| j.endpoint()).collect();
        assert_eq!(jumps, ["jumper@bastion:2222"]);
        assert_eq!(web1.sources.jumps, "group_vars/web/z.yaml");
        // Inventory-file host vars beat group_vars; host_vars beat both.
        assert_eq!(web2.reach.user, "inv_host");
        assert_eq!(web2.reach.port, 3000);
        let all = inv.warnings.join("\n");
        assert!(
            all.contains("ansible_python_interpreter (group_vars/all.yml)"),
            "{all}"
        );
        assert!(
            all.contains("ansible_ssh_common_args '-o StrictHostKeyChecking=no'"),
            "{all}"
        );
        assert!(!all.contains("app_port"), "{all}");
        assert!(
            all.contains("group_vars/webz.yml names no group of this inventory"),
            "{all}"
        );
        assert!(all.contains("host_vars/web1.yml is not read"), "{all}");
        assert!(
            all.contains("group_vars/web/vault.yml is encrypted with Ansible Vault"),
            "{all}"
        );
        let unused_lines = inv
            .warnings
            .iter()
            .filter(|w| w.contains("does not use"))
            .count();
        assert_eq!(unused_lines, 1, "one warning for all unused settings");
    }

    #[test]
    fn a_directory_of_inventory_files() {
        let dir = tree(&[
            ("10-web.ini", "[web]\nweb1\nweb2\n"),
            (
                "20-db.yml",
                "all:\n  children:\n    db:\n      hosts:\n        db1:\n          ansible_host: 192.0.2.5\n",
            ),
            ("sub/30-more.ini", "[web]\nweb3\n"),
            ("README.md", "# not an inventory\n"),
            ("old.ini~", "[web]\nnever\n"),
            (".hidden", "[web]\nnever2\n"),
            ("group_vars/web.yml", "ansible_user: deploy\n"),
            ("host_vars/db1.yaml", "ansible_port: 2222\n"),
        ]);
        let inv = load(&dir).expect("loads");
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name()).collect();
        assert_eq!(names, ["web1", "web2", "db1", "web3"]);
        assert_eq!(inv.host("web3").expect("web3").reach.user, "deploy");
        let db1 = inv.host("db1").expect("db1");
        assert_eq!(
            (db1.reach.address.as_str(), db1.reach.port),
            ("192.0.2.5", 2222)
        );
        assert_eq!(db1.groups, ["db"]);
    }

    #[test]
    fn bad_vars_files_are_errors() {
        let dir = tree(&[("hosts.ini", INI), ("group_vars/web.toml", "x = 1\n")]);
        let e = load(&dir.join("hosts.ini")).expect_err("unknown format");
        assert!(e.file.ends_with("group_vars/web.toml"), "{e}");
        assert!(
            e.message.contains("unknown variables file format '.toml'"),
            "{e}"
        );

        let dir = tree(&[
            ("hosts.ini", INI),
            ("group_vars/web", "ansible_user=deploy\n"),
        ]);
        let e = load(&dir.join("hosts.ini")).expect_err("INI in a vars file");
        assert!(
            e.message.contains("a variables file is a YAML mapping"),
            "{e}"
        );

        let dir = tree(&[
            ("hosts.ini", INI),
            ("group_vars/all.yml", "a: 1\nansible_become_password: x\n"),
        ]);
        let e = load(&dir.join("hosts.ini")).expect_err("password");
        assert_eq!((e.line, e.column), (2, 26), "{e}");
        assert!(e.message.contains("never reads passwords"), "{e}");

        let dir = tree(&[("a.ini", "[web]\nweb1\n"), ("b.yml", "hosts:\n  x:\n")]);
        let e = load(&dir).expect_err("native in a directory");
        assert!(e.file.ends_with("b.yml"), "{e}");

        let dir = tree(&[(
            "hosts.ini",
            "[web]\nweb1 ansible_ssh_extra_args='-J bad:port'\n",
        )]);
        let e = load(&dir.join("hosts.ini")).expect_err("bad -J");
        assert_eq!((e.line, e.column), (2, 6), "{e}");
        assert!(e.message.contains("bad jump host 'bad:port'"), "{e}");
    }
}
