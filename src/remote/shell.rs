//! Shell quoting, the fixed remote command, and the sections of a step's
//! output.
//!
//! No value from an inventory or a playbook reaches a remote shell unquoted
//! (docs/design.md, "Guarantees"): the command line sshd hands to the login
//! shell is fixed ([`remote_command`]: it never carries a value), scripts
//! travel on its standard input, and every value in them is a shell
//! variable assigned with [`quote`] (see [`super::script`]).

/// The fixed remote command: a shell reading its steps from stdin, as root
/// (`sudo -n` when the inventory asks for `become`: never prompts, fails
/// instead). Its one argument is the login shell's `$SSH_CONNECTION` (how
/// the host sees this connection, for the lockout prediction): sshd sets
/// it, and sudo's environment reset would drop it.
pub fn remote_command(become_: bool) -> &'static str {
    if become_ {
        "sudo -n -- sh -s \"$SSH_CONNECTION\""
    } else {
        "sh -s \"$SSH_CONNECTION\""
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

/// Output of a step split at its section markers: lines
/// `@@rampart:NONCE:NAME`, printed by `sec NAME` (`lib.sh`). The nonce is
/// random per connection, so no text a host prints (a rule comment, a
/// file's content) can start a section of its own.
#[derive(Debug, Default, Clone)]
pub struct Sections {
    items: Vec<(String, String)>,
}

impl Sections {
    /// Split `out` into named sections. Text before the first marker is
    /// kept under the empty name. A section's trailing blank lines are
    /// dropped (the marker function adds one).
    pub fn parse(out: &str, nonce: &str) -> Sections {
        let marker = format!("@@rampart:{nonce}:");
        let mut items: Vec<(String, String)> = vec![(String::new(), String::new())];
        for line in out.split_inclusive('\n') {
            let bare = line.trim_end_matches('\n');
            if let Some(name) = bare.strip_prefix(marker.as_str()) {
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

    /// Whether any section at all was printed (the step ran).
    pub fn any(&self) -> bool {
        self.items.len() > 1
    }

    /// The names of the sections, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.items.iter().skip(1).map(|(n, _)| n.as_str())
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
    fn sections_split_at_markers() {
        let out = "junk\n\n@@rampart:N:a\none\ntwo\n\n@@rampart:N:b\n\n@@rampart:N:c\nno newline\n@@rampart:FORGED:d\n";
        let s = Sections::parse(out, "N");
        assert_eq!(s.text("a"), "one\ntwo\n");
        assert_eq!(s.text("b"), "");
        assert_eq!(s.text("c"), "no newline\n@@rampart:FORGED:d\n");
        assert_eq!(s.get("d"), None);
    }
}
