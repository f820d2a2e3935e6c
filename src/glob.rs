//! The one glob matcher of rampart: host patterns (`--limit`, plays'
//! `hosts:`, inventory groups), `preserve` chain patterns, and known_hosts
//! host patterns all match names the same way, so they share this code.

/// Shell-style glob match: `*`, `?`, `[set]`, `[a-z]`, `[!set]`; no escapes.
pub fn matches(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    glob_at(&p, &t, true)
}

/// Only `*` and `?` are special; `[` is a literal. For OpenSSH known_hosts,
/// where `[host]:port` is a name, not a character class.
pub fn matches_simple(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    glob_at(&p, &t, false)
}

fn glob_at(p: &[char], t: &[char], classes: bool) -> bool {
    // Iterative with one backtrack point for `*`: linear in practice.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') if classes => class_match(p, pi, t[ti]),
            Some(&c) if c == t[ti] => Some(pi + 1),
            _ => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Match `c` against the class starting at `p[start] == '['`; on a match,
/// the index just after the closing `]`. An unclosed `[` is a literal.
fn class_match(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = p.get(i) == Some(&'!');
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let a = *p.get(i)?;
        if a == ']' && !first {
            break;
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|b| *b != ']') {
            let b = p[i + 2];
            if a <= c && c <= b {
                hit = true;
            }
            i += 3;
        } else {
            if a == c {
                hit = true;
            }
            i += 1;
        }
    }
    (hit != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_questions_and_classes() {
        assert!(matches("web*", "web1"));
        assert!(matches("DOCKER*", "DOCKER-ISOLATION-STAGE-1"));
        assert!(!matches("DOCKER", "DOCKER-USER"));
        assert!(matches("KUBE-?VC-*", "KUBE-SVC-ABC"));
        assert!(matches("w?b[0-9]", "wab7"));
        assert!(!matches("[!m]*", "mx"));
        assert!(matches("*", ""));
        assert!(!matches("a*b*c", "axxbyy"));
    }

    #[test]
    fn simple_takes_brackets_literally() {
        assert!(matches_simple("[web1]:2222", "[web1]:2222"));
        assert!(!matches_simple("[web1]:2222", "w:2222"));
        assert!(matches_simple("*.example.com", "a.example.com"));
    }
}
