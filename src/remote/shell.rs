//! The one place where shell text for a host is built.
//!
//! Guarantee 7 of SPEC §6: no value from an inventory or a playbook reaches a
//! remote shell unquoted. Every script rampart runs is sent on the standard
//! input of a fixed command (`sh -s`, or `sudo -n sh -s`), so the command line
//! that sshd hands to the login shell never carries a value; inside the script
//! every value goes through [`quote`], and file contents travel in heredocs
//! whose delimiter is chosen so that it cannot occur in the content.

use std::fmt::Write as _;

/// The fixed remote command: read a script from stdin, as root (`sudo -n`
/// when the inventory asks for `become`: never prompts, fails instead).
pub fn remote_command(become_: bool) -> &'static str {
    if become_ {
        "sudo -n -- sh -s"
    } else {
        "sh -s"
    }
}

/// POSIX single-quote `s`: safe for any byte string, including quotes,
/// newlines, `$`, backticks and leading dashes (callers put `--` where a
/// command takes options).
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b))
        && !s.starts_with('-')
    {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The prologue of every script: a known PATH (sudo's secure_path and
/// non-root logins may lack /sbin), the C locale (parsable output), a tight
/// umask (backups and rules are sensitive), and the section marker function.
pub const PROLOGUE: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
export PATH\nLC_ALL=C\nexport LC_ALL\numask 077\n\
sec() { printf '\\n@@rampart:%s\\n' \"$1\"; }\n";

/// Append a heredoc that writes `content` to the file `path` (quoted).
/// The delimiter is lengthened until it cannot appear as a line of `content`.
pub fn heredoc_to_file(script: &mut String, path: &str, content: &str) {
    let mut delim = String::from("RAMPART_EOF");
    while content.lines().any(|l| l == delim) {
        delim.push('_');
    }
    let _ = writeln!(script, "cat > {} <<'{}'", quote(path), delim);
    script.push_str(content);
    if !content.ends_with('\n') {
        script.push('\n');
    }
    script.push_str(&delim);
    script.push('\n');
}

/// Output of a script split at `@@rampart:NAME` marker lines.
#[derive(Debug, Default, Clone)]
pub struct Sections {
    items: Vec<(String, String)>,
}

impl Sections {
    /// Split `out` into named sections. Text before the first marker is
    /// kept under the empty name. A section's trailing blank lines are
    /// dropped (the marker function adds one).
    pub fn parse(out: &str) -> Sections {
        let mut items: Vec<(String, String)> = vec![(String::new(), String::new())];
        for line in out.split_inclusive('\n') {
            let bare = line.trim_end_matches('\n');
            if let Some(name) = bare.strip_prefix("@@rampart:") {
                items.push((name.to_string(), String::new()));
            } else if let Some(last) = items.last_mut() {
                last.1.push_str(line);
            }
        }
        for (_, body) in &mut items {
            while body.ends_with("\n\n") {
                body.pop();
            }
            if body == "\n" {
                body.clear();
            }
        }
        Sections { items }
    }

    /// The body of the first section called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_str())
    }

    /// The body, or "" when the section is absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_passes_plain_words() {
        assert_eq!(quote("/etc/iptables/rules.v4"), "/etc/iptables/rules.v4");
    }

    #[test]
    fn quote_neutralises_hostile_strings() {
        assert_eq!(quote("a'b"), "'a'\\''b'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("x; rm -rf /"), "'x; rm -rf /'");
        assert_eq!(quote("-rf"), "'-rf'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a\nb"), "'a\nb'");
    }

    #[test]
    fn heredoc_delimiter_never_collides() {
        let mut s = String::new();
        heredoc_to_file(&mut s, "/tmp/x", "RAMPART_EOF\nRAMPART_EOF_\n");
        assert!(s.ends_with("RAMPART_EOF__\n"));
    }

    #[test]
    fn sections_split_at_markers() {
        let out = "junk\n\n@@rampart:a\none\ntwo\n\n@@rampart:b\n\n@@rampart:c\nno newline\n";
        let s = Sections::parse(out);
        assert_eq!(s.text("a"), "one\ntwo\n");
        assert_eq!(s.text("b"), "");
        assert_eq!(s.text("c"), "no newline\n");
        assert_eq!(s.get("d"), None);
    }
}
