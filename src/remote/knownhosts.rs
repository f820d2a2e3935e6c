//! known_hosts checking, done by rampart itself rather than by libssh2.
//!
//! Why not libssh2's own checker: rampart must tell "unknown host" (fail, or
//! trust on first use with `--accept-new-host-keys`) apart from "changed key"
//! (always fail, before any command runs), must understand OpenSSH's hashed
//! entries (`|1|salt|hash`), `[host]:port` entries, wildcards and `@revoked`,
//! and must ask the server for a key type it already knows (else a host with
//! a known ed25519 key that offers ecdsa first would look "changed").
//!
//! Trust rules (docs/design.md, "Guarantees"), whatever the order of the
//! lines and of the files read together ([`KnownHosts::extend`]: the user's
//! file, ssh_config's other `UserKnownHostsFile`s, then the global
//! `/etc/ssh/ssh_known_hosts`):
//! - a key marked `@revoked` for the host is refused, even when a plain
//!   line (earlier, later, in another file) lists the same key;
//! - `@cert-authority` lines name a CA, not a host key. rampart does not
//!   check certificates, so a host covered only by such a line has no key
//!   rampart could accept; it is NOT unknown (trusting its plain key on
//!   first use would bypass the CA the operator set up): it fails
//!   ([`Detail::CertAuthorityOnly`]).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The marker in front of a known_hosts line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// A host key.
    None,
    /// `@revoked`: this key must never be accepted.
    Revoked,
    /// `@cert-authority`: a CA key (certificates are not checked here).
    CertAuthority,
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
struct Entry {
    patterns: String,
    key_type: String,
    key: Vec<u8>,
    marker: Marker,
}

/// The outcome of checking a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is recorded for this host.
    Known,
    /// No key at all is recorded for this host.
    Unknown,
    /// Keys are recorded for this host, and the presented one is not among them.
    Changed,
    /// The presented key is marked `@revoked`.
    Revoked,
}

/// The finer outcome of [`KnownHosts::check_detailed`]: [`Verdict`] plus
/// the case the transport reports as [`Verdict::Changed`] today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    Known,
    Unknown,
    Changed,
    Revoked,
    /// No host key is recorded for this host, only `@cert-authority` lines
    /// match it: rampart does not do certificates, so nothing it could
    /// accept is recorded, and the host must not be trusted on first use.
    CertAuthorityOnly,
}

/// The parsed known_hosts file.
///
/// Indexed: a fleet's file holds a line per host, and a scan of every line
/// for each of a run's connections made the run's cost grow with the
/// square of the fleet (1000 hosts: 4 million pattern matches). Lines
/// whose patterns are plain host names are found by name; only the others
/// (wildcards, negations, hashed names) are matched one by one.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    /// Lowercased host name -> the entries (indices, in file order) whose
    /// pattern list is plain names only and names it.
    by_name: HashMap<String, Vec<usize>>,
    /// The entries with any other pattern list, in file order.
    scanned: Vec<usize>,
}

/// The name a host is recorded under: `host` on port 22, else `[host]:port`.
pub fn lookup_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// A file's length and modification time when it was read (`None`: it
/// did not exist).
type Stamp = Option<(u64, SystemTime)>;

/// The known_hosts files of a run, parsed once and shared by every
/// connection: a fleet's file holds a line per host, and parsing it for
/// each connection made a run's cost grow with the square of the fleet
/// (1000 hosts: 2000 parses of 1000 keys). Several files read as one
/// (ssh_config's `UserKnownHostsFile` list, the global file) are one
/// entry, merged once: a merge for each connection cloned every line of
/// the fleet's file (at 1000 hosts, 3000 allocations and ~300 KiB per
/// connection in flight). An entry is read again when any of its files'
/// length or modification time changed (trust on first use appends).
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<Vec<PathBuf>, Cached>>,
}

/// Files read as one: their stamps when read, and what they hold.
type Cached = (Vec<Stamp>, Arc<KnownHosts>);

/// `path`'s length and modification time now.
fn stamp(path: &Path) -> std::io::Result<Stamp> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.len(), m.modified()?))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Cache {
    /// The files of `paths` read as one, in order (a key in any is known,
    /// a key revoked in any is refused): from the cache while none of them
    /// changed. Err names the file that could not be read.
    pub fn load_all(&self, paths: &[&Path]) -> Result<Arc<KnownHosts>, (PathBuf, std::io::Error)> {
        let at = |p: &Path| p.to_path_buf();
        let stamps = paths
            .iter()
            .map(|p| stamp(p).map_err(|e| (at(p), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let key: Vec<PathBuf> = paths.iter().map(|p| at(p)).collect();
        // Held while parsing: the connections of a run's first wave wait
        // for one parse instead of each doing its own.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, kh)) = entries.get(&key) {
            if *s == stamps {
                return Ok(Arc::clone(kh));
            }
        }
        let mut files = paths
            .iter()
            .map(|p| KnownHosts::load(p).map_err(|e| (at(p), e)));
        let mut kh = files.next().transpose()?.unwrap_or_default();
        for f in files {
            kh.extend(f?);
        }
        let kh = Arc::new(kh);
        // The stamps from before the reads: a file that changed meanwhile
        // is read again next time, never kept stale.
        entries.insert(key, (stamps, Arc::clone(&kh)));
        Ok(kh)
    }

    /// `path` parsed, from the cache while the file is unchanged.
    pub fn load(&self, path: &Path) -> std::io::Result<Arc<KnownHosts>> {
        self.load_all(&[path]).map_err(|(_, e)| e)
    }
}

impl KnownHosts {
    /// Read `path`; a missing file is an empty one (every host unknown).
    pub fn load(path: &Path) -> std::io::Result<KnownHosts> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownHosts::default()),
            Err(e) => Err(e),
        }
    }

    /// Parse known_hosts text; lines that cannot be understood are skipped
    /// (as OpenSSH does). `@cert-authority` lines are kept only to tell a
    /// host that a CA covers from an unknown one.
    pub fn parse(text: &str) -> KnownHosts {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or("");
            let mut marker = Marker::None;
            if first.starts_with('@') {
                // OpenSSH compares markers case-sensitively; an unknown
                // marker makes the line invalid.
                marker = match first {
                    "@revoked" => Marker::Revoked,
                    "@cert-authority" => Marker::CertAuthority,
                    _ => continue,
                };
                first = fields.next().unwrap_or("");
            }
            let (Some(key_type), Some(key64)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(key) = B64.decode(key64) else { continue };
            entries.push(Entry {
                patterns: first.to_string(),
                key_type: key_type.to_string(),
                key,
                marker,
            });
        }
        let mut kh = KnownHosts::default();
        for e in entries {
            kh.push(e);
        }
        kh
    }

    /// Add an entry after the others, and index it.
    fn push(&mut self, e: Entry) {
        let i = self.entries.len();
        let plain = !e.patterns.starts_with("|1|") && !e.patterns.contains(['*', '?', '!']);
        if plain {
            for name in e.patterns.split(',').filter(|n| !n.is_empty()) {
                let slot = self.by_name.entry(name.to_ascii_lowercase()).or_default();
                if slot.last() != Some(&i) {
                    slot.push(i);
                }
            }
        } else {
            self.scanned.push(i);
        }
        self.entries.push(e);
    }

    /// Add the entries of another file, read as one with this
    /// (ssh_config's `UserKnownHostsFile` may name several: a key listed in
    /// any of them is known).
    pub fn extend(&mut self, other: KnownHosts) {
        for e in other.entries {
            self.push(e);
        }
    }

    /// The entries that match host `name`, in file order.
    fn for_host<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        let mut found: Vec<usize> = self
            .by_name
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        let scanned = self
            .scanned
            .iter()
            .copied()
            .filter(|&i| patterns_match(&self.entries[i].patterns, name));
        found.extend(scanned);
        found.sort_unstable();
        found.into_iter().map(move |i| &self.entries[i])
    }

    /// The key types recorded for this host, in file order, without repeats;
    /// used to ask the server for a key we can check.
    pub fn key_types(&self, address: &str, port: u16) -> Vec<String> {
        let name = lookup_name(address, port);
        let mut out: Vec<String> = Vec::new();
        for e in self.for_host(&name) {
            if e.marker == Marker::None && !out.contains(&e.key_type) {
                out.push(e.key_type.clone());
            }
        }
        out
    }

    /// Check the key blob (SSH wire format) the server presented.
    pub fn check(&self, address: &str, port: u16, key: &[u8]) -> Verdict {
        match self.check_detailed(address, port, key) {
            Detail::Known => Verdict::Known,
            Detail::Unknown => Verdict::Unknown,
            Detail::Changed => Verdict::Changed,
            Detail::Revoked => Verdict::Revoked,
            // Never Unknown (that could be trusted on first use): the
            // closest verdict that always fails, keys (a CA) are recorded
            // for the host and the presented one is not among them. The
            // transport may call check_detailed to say it in its own words.
            Detail::CertAuthorityOnly => Verdict::Changed,
        }
    }

    /// [`Self::check`], telling a host covered only by `@cert-authority`
    /// apart. Order never matters: a revoked key is refused wherever its
    /// `@revoked` line is; then a listed key is known; then any other
    /// recorded key means the presented one changed.
    pub fn check_detailed(&self, address: &str, port: u16, key: &[u8]) -> Detail {
        let name = lookup_name(address, port);
        let (mut listed, mut other_keys, mut ca) = (false, false, false);
        for e in self.for_host(&name) {
            match e.marker {
                Marker::Revoked if e.key == key => return Detail::Revoked,
                Marker::Revoked => {}
                Marker::CertAuthority => ca = true,
                Marker::None if e.key == key => listed = true,
                Marker::None => other_keys = true,
            }
        }
        if listed {
            Detail::Known
        } else if other_keys {
            Detail::Changed
        } else if ca {
            Detail::CertAuthorityOnly
        } else {
            Detail::Unknown
        }
    }
}

/// Does a comma-separated pattern list match `name`? Negated patterns
/// (`!pat`) veto a match; `|1|salt|hash` entries are hashed host names.
fn patterns_match(patterns: &str, name: &str) -> bool {
    if let Some(rest) = patterns.strip_prefix("|1|") {
        return hashed_match(rest, name);
    }
    let mut matched = false;
    for pat in patterns.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if glob(neg, name) {
                return false;
            }
        } else if glob(pat, name) {
            matched = true;
        }
    }
    matched
}

fn hashed_match(rest: &str, name: &str) -> bool {
    let Some((salt64, hash64)) = rest.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (B64.decode(salt64), B64.decode(hash64)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH-style wildcard match (`*`, `?`; `[` is literal, as in
/// `[host]:port`), case-insensitive like host names.
pub fn glob(pattern: &str, text: &str) -> bool {
    crate::glob::matches_simple(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
}

/// The key type named inside an SSH wire-format public key blob.
pub fn blob_key_type(key: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(key.get(0..4)?.try_into().ok()?) as usize;
    let name = key.get(4..4 + len)?;
    std::str::from_utf8(name).ok().map(str::to_string)
}

/// Serialises appends from all host threads of this process, so two new
/// hosts never interleave their lines.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

/// Record a newly trusted key (trust on first use), creating the file (0600)
/// and its directory when needed. One line, one write, O_APPEND.
pub fn append(path: &Path, address: &str, port: u16, key: &[u8]) -> std::io::Result<()> {
    let key_type = blob_key_type(key).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "host key blob has no type name",
        )
    })?;
    let line = format!(
        "{} {} {}\n",
        lookup_name(address, port),
        key_type,
        B64.encode(key)
    );
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut opts = OpenOptions::new();
    opts.create(true).append(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    // A hand-edited file may lack its final newline: appending right after
    // it would glue the new entry onto the last one and break both.
    if ends_without_newline(&mut f)? {
        f.write_all(b"\n")?;
    }
    f.write_all(line.as_bytes())
}

/// True when the file is not empty and its last byte is not a newline.
fn ends_without_newline(f: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    if f.metadata()?.len() == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_parses_a_file_once_and_again_when_it_grows() {
        let dir = std::env::temp_dir().join(format!("rampart-khcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("known_hosts");
        let _ = std::fs::remove_file(&path);
        let cache = Cache::default();
        let key = blob("ssh-ed25519", b"k1");
        // Missing: empty, every host unknown.
        let none = cache.load(&path).expect("missing is empty");
        assert_eq!(none.check("198.18.0.2", 22, &key), Verdict::Unknown);
        append(&path, "198.18.0.2", 22, &key).expect("append");
        let first = cache.load(&path).expect("load");
        assert_eq!(first.check("198.18.0.2", 22, &key), Verdict::Known);
        // Unchanged: the same parse, shared.
        let again = cache.load(&path).expect("load");
        assert!(Arc::ptr_eq(&first, &again));
        // Appended (trust on first use): read again.
        let key2 = blob("ssh-ed25519", b"k2");
        append(&path, "198.18.0.3", 22, &key2).expect("append");
        let grown = cache.load(&path).expect("load");
        assert!(!Arc::ptr_eq(&first, &grown));
        assert_eq!(grown.check("198.18.0.3", 22, &key2), Verdict::Known);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (kind.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn known_unknown_changed() {
        let k1 = blob("ssh-ed25519", b"one");
        let k2 = blob("ssh-ed25519", b"two");
        let text = format!("198.18.0.2 ssh-ed25519 {}\n", B64.encode(&k1));
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("198.18.0.2", 22, &k1), Verdict::Known);
        assert_eq!(kh.check("198.18.0.2", 22, &k2), Verdict::Changed);
        assert_eq!(kh.check("198.18.0.3", 22, &k1), Verdict::Unknown);
        assert_eq!(kh.check("198.18.0.2", 2222, &k1), Verdict::Unknown);
        assert_eq!(
            kh.key_types("198.18.0.2", 22),
            vec!["ssh-ed25519".to_string()]
        );
    }

    #[test]
    fn files_read_as_one_are_merged_once_and_again_when_one_changes() {
        let dir = std::env::temp_dir().join(format!("rampart-khmerge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (user, global) = (dir.join("known_hosts"), dir.join("ssh_known_hosts"));
        let (k1, k2) = (blob("ssh-ed25519", b"k1"), blob("ssh-ed25519", b"k2"));
        append(&user, "198.18.0.2", 22, &k1).expect("append");
        let cache = Cache::default();
        let paths = [user.as_path(), global.as_path()];
        // The global file is missing: the user's alone.
        let first = cache.load_all(&paths).expect("load");
        assert_eq!(first.check("198.18.0.2", 22, &k1), Verdict::Known);
        assert!(Arc::ptr_eq(&first, &cache.load_all(&paths).expect("load")));
        // A key in either file is known; a change to either is seen.
        append(&global, "198.18.0.3", 22, &k2).expect("append");
        let grown = cache.load_all(&paths).expect("load");
        assert!(!Arc::ptr_eq(&first, &grown));
        assert_eq!(grown.check("198.18.0.3", 22, &k2), Verdict::Known);
        assert_eq!(grown.check("198.18.0.2", 22, &k1), Verdict::Known);
        // A file that cannot be read is named.
        let unreadable = dir.join("a-dir");
        std::fs::create_dir_all(&unreadable).expect("dir");
        let (file, _) = cache
            .load_all(&[user.as_path(), unreadable.as_path()])
            .expect_err("a directory is not a known_hosts file");
        assert_eq!(file, unreadable);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_index_finds_what_a_scan_would_in_file_order() {
        let ed = blob("ssh-ed25519", b"e");
        let rsa = blob("ssh-rsa", b"r");
        let ec = blob("ecdsa-sha2-nistp256", b"c");
        // A hashed line for h0500 (salt "salt"), computed as OpenSSH does.
        let mut mac = Hmac::<Sha1>::new_from_slice(b"salt").expect("hmac");
        mac.update(b"h0500");
        let hashed = format!(
            "|1|{}|{}",
            B64.encode(b"salt"),
            B64.encode(mac.finalize().into_bytes())
        );
        let mut text = String::new();
        text.push_str(&format!("h05* ecdsa-sha2-nistp256 {}\n", B64.encode(&ec)));
        for i in 0..2000 {
            text.push_str(&format!(
                "h{i:04},10.0.{}.{} ssh-ed25519 {}\n",
                i / 250,
                i % 250,
                B64.encode(&ed)
            ));
        }
        text.push_str(&format!("{hashed} ssh-rsa {}\n", B64.encode(&rsa)));
        text.push_str(&format!("H0500 ssh-ed25519 {}\n", B64.encode(&ed)));
        let kh = KnownHosts::parse(&text);
        // Wildcard first, the plain line, the hashed one; the repeat of a
        // key type (another case of the name) is not listed twice.
        assert_eq!(
            kh.key_types("h0500", 22),
            ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]
        );
        assert_eq!(kh.check("h0500", 22, &rsa), Verdict::Known);
        assert_eq!(kh.check("10.0.2.0", 22, &ed), Verdict::Known);
        assert_eq!(kh.check("h1999", 22, &rsa), Verdict::Changed);
        assert_eq!(kh.check("h2000", 22, &ed), Verdict::Unknown);
        // Read together with another file: its entries come after.
        let mut both = KnownHosts::parse(&format!("h1999 ssh-rsa {}\n", B64.encode(&rsa)));
        both.extend(KnownHosts::parse(&text));
        assert_eq!(both.key_types("h1999", 22), ["ssh-rsa", "ssh-ed25519"]);
        assert_eq!(both.check("h0500", 22, &rsa), Verdict::Known);
    }

    #[test]
    fn port_entries_and_wildcards() {
        let k = blob("ssh-ed25519", b"k");
        let text = format!(
            "[web1]:2222 ssh-ed25519 {k}\n*.example.com,!bad.example.com ssh-ed25519 {k}\n",
            k = B64.encode(&k)
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("web1", 2222, &k), Verdict::Known);
        assert_eq!(kh.check("web1", 22, &k), Verdict::Unknown);
        assert_eq!(kh.check("a.example.com", 22, &k), Verdict::Known);
        assert_eq!(kh.check("bad.example.com", 22, &k), Verdict::Unknown);
    }

    #[test]
    fn hashed_entries() {
        let k = blob("ssh-ed25519", b"k");
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("hmac key");
        mac.update(b"203.0.113.10");
        let hash = mac.finalize().into_bytes();
        let text = format!(
            "|1|{}|{} ssh-ed25519 {}\n",
            B64.encode(salt),
            B64.encode(hash),
            B64.encode(&k)
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("203.0.113.10", 22, &k), Verdict::Known);
        assert_eq!(kh.check("203.0.113.11", 22, &k), Verdict::Unknown);
    }

    #[test]
    fn revoked_and_garbage() {
        let k = blob("ssh-ed25519", b"k");
        let text = format!(
            "garbage\n@revoked * ssh-ed25519 {}\n# comment\n",
            B64.encode(&k)
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("any", 22, &k), Verdict::Revoked);
    }

    /// `@revoked` wins whatever the order: before or after the plain line,
    /// in the same file or another one read with it.
    #[test]
    fn revoked_wins_in_any_order_and_any_file() {
        let k = blob("ssh-ed25519", b"k");
        let other = blob("ssh-ed25519", b"other");
        let plain = format!("198.18.0.2 ssh-ed25519 {}\n", B64.encode(&k));
        let revoked = format!("@revoked 198.18.0.2 ssh-ed25519 {}\n", B64.encode(&k));
        for text in [format!("{plain}{revoked}"), format!("{revoked}{plain}")] {
            let kh = KnownHosts::parse(&text);
            assert_eq!(kh.check("198.18.0.2", 22, &k), Verdict::Revoked, "{text}");
            assert!(kh
                .key_types("198.18.0.2", 22)
                .contains(&"ssh-ed25519".to_string()));
            assert_eq!(kh.check("198.18.0.2", 22, &other), Verdict::Changed);
        }
        // The user file lists it, the global file (read after) revokes it.
        let mut kh = KnownHosts::parse(&plain);
        kh.extend(KnownHosts::parse(&format!(
            "@revoked * ssh-ed25519 {}\n",
            B64.encode(&k)
        )));
        assert_eq!(kh.check("198.18.0.2", 22, &k), Verdict::Revoked);
        // Revoked for another host only: this one still knows it.
        let kh = KnownHosts::parse(&format!(
            "{plain}@revoked other ssh-ed25519 {}\n",
            B64.encode(&k)
        ));
        assert_eq!(kh.check("198.18.0.2", 22, &k), Verdict::Known);
    }

    /// A host a CA covers is neither known nor unknown: rampart does not
    /// check certificates, and must not trust its plain key on first use.
    #[test]
    fn cert_authority_only_is_never_trusted() {
        let ca = blob("ssh-ed25519", b"ca");
        let k = blob("ssh-ed25519", b"k");
        let text = format!(
            "@cert-authority *.example.com,198.18.0.* ssh-ed25519 {}\n",
            B64.encode(&ca)
        );
        let kh = KnownHosts::parse(&text);
        for host in ["web.example.com", "198.18.0.2"] {
            assert_eq!(
                kh.check_detailed(host, 22, &k),
                Detail::CertAuthorityOnly,
                "{host}"
            );
            assert_ne!(kh.check(host, 22, &k), Verdict::Unknown, "{host}");
            assert_ne!(kh.check(host, 22, &k), Verdict::Known, "{host}");
            // Not even the CA's own key is a host key.
            assert_ne!(kh.check(host, 22, &ca), Verdict::Known, "{host}");
            assert!(kh.key_types(host, 22).is_empty(), "{host}");
        }
        assert_eq!(kh.check("other.org", 22, &k), Verdict::Unknown);
        // A plain line for the host decides as usual.
        let kh = KnownHosts::parse(&format!(
            "{text}web.example.com ssh-ed25519 {}\n",
            B64.encode(&k)
        ));
        assert_eq!(kh.check("web.example.com", 22, &k), Verdict::Known);
        // Unknown markers make the line invalid, as in OpenSSH.
        let kh = KnownHosts::parse(&format!("@Revoked * ssh-ed25519 {}\n", B64.encode(&k)));
        assert_eq!(kh.check("x", 22, &k), Verdict::Unknown);
    }

    #[test]
    fn append_then_known() {
        let dir = std::env::temp_dir().join(format!("rampart-kh-{}", std::process::id()));
        let path = dir.join("sub/known_hosts");
        let k = blob("ssh-ed25519", b"k");
        append(&path, "198.18.0.9", 2222, &k).expect("append");
        let kh = KnownHosts::load(&path).expect("load");
        assert_eq!(kh.check("198.18.0.9", 2222, &k), Verdict::Known);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn append_after_a_last_line_without_newline() {
        let dir = std::env::temp_dir().join(format!("rampart-kh-nl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("known_hosts");
        let old = blob("ssh-ed25519", b"old");
        let new = blob("ssh-ed25519", b"new");
        std::fs::write(
            &path,
            format!("198.18.0.8 ssh-ed25519 {}", B64.encode(&old)),
        )
        .expect("write");
        append(&path, "198.18.0.9", 22, &new).expect("append");
        let kh = KnownHosts::load(&path).expect("load");
        assert_eq!(kh.check("198.18.0.8", 22, &old), Verdict::Known);
        assert_eq!(kh.check("198.18.0.9", 22, &new), Verdict::Known);
        let _ = std::fs::remove_dir_all(dir);
    }
}
