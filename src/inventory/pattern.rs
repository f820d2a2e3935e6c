//! Host patterns: what `--limit` and a play's `hosts:` accept.
//!
//! A pattern is a comma-separated list of terms. Terms are split on `,`
//! only, never on `:` as Ansible also allows: IPv6 addresses are valid host
//! names here (`address` defaults to the name), and a colon-split would cut
//! them apart. Each term is one of
//! - `all` or `*`: every host;
//! - a plain name: the host of that name, or every member of that group;
//! - a glob (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`) matched against the host's
//!   name and against the names of its groups;
//! - `!term`: exclusion, applied after the inclusions;
//! - `&term`: intersection: the host must also match this term.
//!
//! When a pattern has only exclusions and intersections, it starts from
//! `all` (so `--limit '!db'` means "everything but db").

/// One parsed term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Atom {
    All,
    Name(String),
    Glob(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Pattern {
    pub include: Vec<Atom>,
    pub intersect: Vec<Atom>,
    pub exclude: Vec<Atom>,
}

impl Pattern {
    /// Parse a pattern; the error is a sentence to show the user.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut p = Pattern::default();
        if text.trim().is_empty() {
            return Err("empty host pattern".into());
        }
        for raw in text.split(',') {
            let term = raw.trim();
            let (list, body) = if let Some(b) = term.strip_prefix('!') {
                (&mut p.exclude, b)
            } else if let Some(b) = term.strip_prefix('&') {
                (&mut p.intersect, b)
            } else {
                (&mut p.include, term)
            };
            let body = body.trim();
            if body.is_empty() {
                return Err(format!("empty term in host pattern '{text}'"));
            }
            list.push(Atom::parse(body).map_err(|e| format!("host pattern '{text}': {e}"))?);
        }
        Ok(p)
    }

    /// Does a host with this name and these groups match?
    pub fn matches(&self, name: &str, groups: &[String]) -> bool {
        let included =
            self.include.is_empty() || self.include.iter().any(|a| a.matches(name, groups));
        included
            && self.intersect.iter().all(|a| a.matches(name, groups))
            && !self.exclude.iter().any(|a| a.matches(name, groups))
    }

    /// Every plain name used in the pattern (to check that each names something).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.include
            .iter()
            .chain(&self.intersect)
            .chain(&self.exclude)
            .filter_map(|a| match a {
                Atom::Name(n) => Some(n.as_str()),
                _ => None,
            })
    }
}

impl Atom {
    fn parse(body: &str) -> Result<Atom, String> {
        if body == "all" || body == "*" {
            return Ok(Atom::All);
        }
        if body.contains(['*', '?', '[']) {
            check_glob(body)?;
            return Ok(Atom::Glob(body.to_string()));
        }
        if body.contains(']') {
            return Err(format!("unmatched ']' in '{body}'"));
        }
        if body.chars().any(char::is_whitespace) {
            return Err(format!("'{body}' contains whitespace"));
        }
        Ok(Atom::Name(body.to_string()))
    }

    fn matches(&self, name: &str, groups: &[String]) -> bool {
        match self {
            Atom::All => true,
            Atom::Name(n) => n == name || groups.iter().any(|g| g == n),
            Atom::Glob(g) => {
                crate::glob::matches(g, name) || groups.iter().any(|x| crate::glob::matches(g, x))
            }
        }
    }
}

/// Is `s` a glob (as opposed to a plain name)?
pub(crate) fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Check that every `[` of a glob is closed.
pub(crate) fn check_glob(g: &str) -> Result<(), String> {
    let c: Vec<char> = g.chars().collect();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '[' {
            // Same reading as `class_match`: `[!` negates, and a `]` right
            // after the opening (or the `!`) is a literal member.
            let mut j = i + 1;
            if c.get(j) == Some(&'!') {
                j += 1;
            }
            if c.get(j) == Some(&']') {
                j += 1;
            }
            while j < c.len() && c[j] != ']' {
                j += 1;
            }
            if j >= c.len() {
                return Err(format!("unclosed '[' in glob '{g}'"));
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn globs() {
        assert!(crate::glob::matches("web*", "web1"));
        assert!(crate::glob::matches("web*", "web"));
        assert!(!crate::glob::matches("web*", "mx1"));
        assert!(crate::glob::matches("w?b[0-9]", "wab7"));
        assert!(!crate::glob::matches("w?b[0-9]", "wabx"));
        assert!(crate::glob::matches("[!m]*", "web"));
        assert!(!crate::glob::matches("[!m]*", "mx"));
        assert!(crate::glob::matches("*x*y", "axbxxy"));
        assert!(crate::glob::matches("DOCKER*", "DOCKER-USER"));
        assert!(crate::glob::matches("f2b-*", "f2b-sshd"));
        assert!(!crate::glob::matches("f2b-*", "f2b"));
        assert!(check_glob("web[1-").is_err());
        assert!(check_glob("web[]]").is_ok());
    }

    #[test]
    fn terms_and_operators() {
        let web1 = ("web1", g(&["web", "eu"]));
        let web2 = ("web2", g(&["web", "us"]));
        let mx1 = ("mx1", g(&["mail", "eu"]));
        let m =
            |pat: &str, h: &(&str, Vec<String>)| Pattern::parse(pat).expect(pat).matches(h.0, &h.1);
        assert!(m("all", &mx1));
        assert!(m("*", &mx1));
        assert!(m("web", &web1) && !m("web", &mx1));
        assert!(m("web1,mx1", &mx1) && !m("web1,mx1", &web2));
        assert!(m("all,!web", &mx1) && !m("all,!web", &web1));
        assert!(m("!web", &mx1) && !m("!web", &web2));
        assert!(m("web,&eu", &web1) && !m("web,&eu", &web2));
        assert!(m("m*", &mx1), "glob over group and host names");
        assert!(m("e?", &web1), "glob over group names");
        assert!(m(" web , !web2 ", &web1) && !m(" web , !web2 ", &web2));
        assert!(
            m("2001:db8::25", &("2001:db8::25", vec![])),
            "no split on ':'"
        );
    }

    #[test]
    fn bad_patterns() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("web,,db").is_err());
        assert!(Pattern::parse("!").is_err());
        assert!(Pattern::parse("web[1").is_err());
        assert!(Pattern::parse("a b").is_err());
        let p = Pattern::parse("web,!db*,&eu").expect("valid");
        assert_eq!(p.names().collect::<Vec<_>>(), vec!["web", "eu"]);
    }
}
