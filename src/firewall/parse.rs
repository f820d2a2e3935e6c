//! Text -> model: one rule line ([`parse_rule`]), a whole `iptables-save` or
//! `iptables -S` dump ([`parse_save`]).
//!
//! Two strictnesses, because the inputs have different owners:
//! - raw rules from a playbook are user input that ends up in a file fed to
//!   iptables-restore on a host: shell metacharacters outside double quotes,
//!   unknown options and bad values are refused with the character offset;
//! - dumps from a host are whatever the host's iptables printed: anything
//!   structurally sound is accepted, unknown modules are kept verbatim, and
//!   only text that cannot be iptables-save output is an error.

use super::canon::{self, Tok};
use super::model::{parse_cidr, Chain, Match, Neg, Rule, Ruleset, Table, Target};
use super::services::canonical_proto;
use super::spec::{Family, Policy};
use super::{ParseError, RuleError};

/// Characters refused outside double quotes in a playbook's raw rule: they
/// mean nothing to iptables-restore, so their presence means the text was
/// meant for a shell.
const METACHARS: &[char] = &[
    ';', '|', '&', '$', '`', '<', '>', '(', ')', '{', '}', '\\', '\'',
];

fn rerr<T>(offset: usize, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        offset,
        message: message.into(),
    })
}

/// Split a line the way iptables-restore does: whitespace separates tokens,
/// double quotes group (and may appear mid-token), inside them a backslash
/// escapes the next character.
pub(crate) fn tokenize(line: &str, strict: bool) -> Result<Vec<Tok>, RuleError> {
    let mut toks = Vec::new();
    let mut cur: Option<Tok> = None;
    let mut quote_start: Option<usize> = None;
    let mut escaped = false;
    for (i, c) in line.chars().enumerate() {
        if c == '\n' || (strict && c == '\r') {
            return rerr(i, "line break inside a rule");
        }
        // Quoted or not: a control character in a playbook's rule (an ESC
        // in a comment) would reach the host's rules and every terminal
        // that shows them. A host's dump may hold any (iptables-restore
        // splits lines at newlines only, so a comment can carry a carriage
        // return): read as printed, shown escaped (`report::inert`).
        if strict && c.is_control() {
            return rerr(i, "a control character is not allowed in a rule");
        }
        if let Some(_q) = quote_start {
            let t = cur.get_or_insert_with(|| Tok {
                text: String::new(),
                quoted: true,
                start: i,
            });
            if escaped {
                t.text.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quote_start = None;
            } else {
                t.text.push(c);
            }
            continue;
        }
        if c == ' ' || c == '\t' {
            if let Some(t) = cur.take() {
                toks.push(t);
            }
            continue;
        }
        if c == '"' {
            quote_start = Some(i);
            let t = cur.get_or_insert_with(|| Tok {
                text: String::new(),
                quoted: true,
                start: i,
            });
            t.quoted = true;
            continue;
        }
        if strict && METACHARS.contains(&c) {
            let what = match c {
                '\\' => "a backslash outside double quotes".to_string(),
                '\'' => "a single quote (use double quotes)".to_string(),
                c => format!("shell metacharacter {c:?} outside double quotes"),
            };
            return rerr(i, format!("{what} is not allowed in a rule"));
        }
        cur.get_or_insert_with(|| Tok {
            text: String::new(),
            quoted: false,
            start: i,
        })
        .text
        .push(c);
    }
    if let Some(q) = quote_start {
        return rerr(q, "unterminated double quote");
    }
    if let Some(t) = cur.take() {
        toks.push(t);
    }
    Ok(toks)
}

/// Is this token an option name (`-s`, `--dport`), as opposed to a value?
fn is_option(t: &Tok) -> bool {
    !t.quoted && t.text.len() >= 2 && t.text.starts_with('-')
}

fn is_bang(t: &Tok) -> bool {
    !t.quoted && t.text == "!"
}

/// Chain and target names: what iptables accepts (at most 28 characters,
/// no blanks, not starting with `-` or `!`).
fn check_name(t: &Tok, what: &str) -> Result<String, RuleError> {
    let n = &t.text;
    if n.is_empty()
        || n.chars().count() > 28
        || n.starts_with('-')
        || n.starts_with('!')
        || n.chars().any(|c| c.is_whitespace() || c == '"')
    {
        return rerr(t.start, format!("bad {what} name {n:?}"));
    }
    Ok(n.clone())
}

fn check_iface(t: &Tok) -> Result<String, RuleError> {
    let n = &t.text;
    if n.is_empty() || n.len() > 15 || n.contains(|c: char| c.is_whitespace() || c == '/') {
        return rerr(t.start, format!("bad interface name {n:?}"));
    }
    Ok(n.clone())
}

/// Where option tokens currently go.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Generic,
    Match(usize),
    Target,
}

/// Parse one `-A CHAIN ...` line. See the module doc for `strict`.
pub(crate) fn parse_rule(line: &str, strict: bool) -> Result<Rule, RuleError> {
    let toks = tokenize(line, strict)?;
    let first = match toks.first() {
        Some(t) => t,
        None => return rerr(0, "empty rule"),
    };
    if first.quoted || (first.text != "-A" && first.text != "--append") {
        return rerr(first.start, "a rule must start with -A CHAIN");
    }
    let chain_tok = match toks.get(1) {
        Some(t) if !is_option(t) => t,
        _ => {
            return rerr(
                first.start + first.text.chars().count(),
                "-A needs a chain name",
            )
        }
    };
    let mut rule = Rule::new(&check_name(chain_tok, "chain")?);
    let mut ctx = Ctx::Generic;
    let end = line.chars().count();
    let mut i = 2;
    while i < toks.len() {
        let mut negated = false;
        let bang = &toks[i];
        if is_bang(bang) {
            negated = true;
            i += 1;
            match toks.get(i) {
                Some(t) if is_option(t) => {}
                _ => return rerr(bang.start, "! must be followed by an option"),
            }
        }
        let t = &toks[i];
        if !is_option(t) {
            return rerr(t.start, format!("unexpected argument {:?}", t.text));
        }
        // The argument of a generic option.
        let arg = |i: usize| -> Result<&Tok, RuleError> {
            match toks.get(i + 1) {
                Some(a) => Ok(a),
                None => rerr(end, format!("option {} needs an argument", t.text)),
            }
        };
        let no_neg = |what: &str| -> Result<(), RuleError> {
            if negated {
                return rerr(bang.start, format!("{what} cannot be negated"));
            }
            Ok(())
        };
        let dup = |set: bool| -> Result<(), RuleError> {
            if set {
                return rerr(t.start, format!("option {} given twice", t.text));
            }
            Ok(())
        };
        match t.text.as_str() {
            "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                let a = arg(i)?;
                let cidr = parse_cidr(&a.text).or_else(|m| rerr(a.start, m))?;
                let v = Some(Neg {
                    negated,
                    value: cidr,
                });
                if t.text.starts_with("-s") || t.text.starts_with("--s") {
                    dup(rule.src.is_some())?;
                    rule.src = v;
                } else {
                    dup(rule.dst.is_some())?;
                    rule.dst = v;
                }
                i += 2;
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let a = arg(i)?;
                let v = Some(Neg {
                    negated,
                    value: check_iface(a)?,
                });
                if t.text.starts_with("-i") || t.text.starts_with("--i") {
                    dup(rule.in_iface.is_some())?;
                    rule.in_iface = v;
                } else {
                    dup(rule.out_iface.is_some())?;
                    rule.out_iface = v;
                }
                i += 2;
            }
            "-p" | "--protocol" => {
                let a = arg(i)?;
                dup(rule.proto.is_some())?;
                // A host's dump is already canonical and only the host knows
                // how it names protocols (1.8.11 prints `47` where 1.8.9
                // prints `gre`): keep it as printed.
                let p = match canonical_proto(&a.text) {
                    _ if !strict && !a.text.is_empty() => a.text.clone(),
                    Some(p) => p,
                    None => return rerr(a.start, format!("unknown protocol {:?}", a.text)),
                };
                if p != "all" || negated {
                    rule.proto = Some(Neg { negated, value: p });
                }
                i += 2;
            }
            "-f" | "--fragment" => {
                dup(rule.fragment.is_some())?;
                rule.fragment = Some(negated);
                i += 1;
            }
            "-c" | "--set-counters" => {
                // Counters given to iptables-restore; never part of a rule's identity.
                no_neg("-c")?;
                match (toks.get(i + 1), toks.get(i + 2)) {
                    (Some(p), Some(b))
                        if p.text.bytes().all(|c| c.is_ascii_digit())
                            && b.text.bytes().all(|c| c.is_ascii_digit()) => {}
                    _ => return rerr(t.start, "-c needs two numbers"),
                }
                i += 3;
            }
            "-m" | "--match" => {
                no_neg("-m")?;
                let a = arg(i)?;
                let name = check_name(a, "match")?;
                rule.matches.push(Match {
                    name,
                    opts: Vec::new(),
                });
                ctx = Ctx::Match(rule.matches.len() - 1);
                i += 2;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                no_neg(&t.text)?;
                dup(rule.target.is_some())?;
                let a = arg(i)?;
                rule.target = Some(Target {
                    goto: t.text.starts_with("-g") || t.text.starts_with("--g"),
                    name: check_name(a, "target")?,
                    opts: Vec::new(),
                });
                ctx = Ctx::Target;
                i += 2;
            }
            name => {
                i = module_option(&toks, i, name, negated, &mut rule, &mut ctx, strict, end)?;
            }
        }
    }
    for m in &mut rule.matches {
        canon::finish_match(m);
    }
    if let Some(t) = rule.target.as_mut() {
        canon::finish_target(t);
    }
    if strict {
        if let Some(t) = rule.target.as_ref() {
            if t.goto && canon::is_known_target(&t.name) && !canon::is_verdict(&t.name) {
                return rerr(0, format!("-g needs a chain, {} is a target", t.name));
            }
        }
    }
    match rule.family_hints() {
        (true, true) => rerr(0, "the rule mixes IPv4 and IPv6"),
        (true, false) => {
            canon::apply_family(&mut rule, Family::V4);
            Ok(rule)
        }
        (false, true) => {
            canon::apply_family(&mut rule, Family::V6);
            Ok(rule)
        }
        _ => Ok(rule),
    }
}

/// An option of a match or of the target: decide which one owns it the way
/// iptables does (a loaded module that declares it, else the protocol's
/// implicit match), take its arguments, store it canonically. Returns the
/// index of the next token.
#[allow(clippy::too_many_arguments)]
fn module_option(
    toks: &[Tok],
    i: usize,
    name: &str,
    negated: bool,
    rule: &mut Rule,
    ctx: &mut Ctx,
    strict: bool,
    end: usize,
) -> Result<usize, RuleError> {
    let t = &toks[i];
    enum Owner {
        Match(usize, Option<usize>),
        Target(Option<usize>),
        Implicit(&'static str, usize),
    }
    let target_arity = rule
        .target
        .as_ref()
        .and_then(|tg| canon::target_opt_arity(&tg.name, name));
    let known_match = rule
        .matches
        .iter()
        .enumerate()
        .rev()
        .find_map(|(k, m)| canon::match_opt_arity(&m.name, name).map(|n| (k, n)));
    let implicit = rule
        .proto
        .as_ref()
        .filter(|p| !p.negated)
        .and_then(|p| canon::implicit_match(&p.value))
        .filter(|m| rule.matches.iter().all(|x| x.name != *m))
        .and_then(|m| canon::match_opt_arity(m, name).map(|n| (m, n)));
    let owner = match (*ctx, target_arity, known_match, implicit) {
        (Ctx::Target, Some(n), _, _) => Owner::Target(Some(n)),
        (_, _, Some((k, n)), _) => Owner::Match(k, Some(n)),
        (_, _, _, Some((m, n))) => Owner::Implicit(m, n),
        (Ctx::Target, None, _, _) => {
            let tname = rule.target.as_ref().map(|t| t.name.as_str()).unwrap_or("");
            if strict && canon::is_known_target(tname) {
                return rerr(t.start, format!("target {tname} has no option {name}"));
            }
            Owner::Target(None)
        }
        (Ctx::Match(k), _, _, _) => {
            let mname = rule.matches.get(k).map(|m| m.name.as_str()).unwrap_or("");
            if strict && canon::is_known_match(mname) {
                return rerr(t.start, format!("match {mname} has no option {name}"));
            }
            Owner::Match(k, None)
        }
        (Ctx::Generic, _, _, _) => {
            return rerr(t.start, format!("unknown option {name}"));
        }
    };
    let arity = match owner {
        Owner::Match(_, n) | Owner::Target(n) => n,
        Owner::Implicit(_, n) => Some(n),
    };
    // Known options take exactly their arity (like getopt, whatever the
    // next tokens look like); unknown ones take every following value.
    let args: Vec<Tok> = match arity {
        Some(n) => {
            if toks.len() < i + 1 + n {
                return rerr(end, format!("option {name} needs {n} argument(s)"));
            }
            toks[i + 1..i + 1 + n].to_vec()
        }
        None => toks[i + 1..]
            .iter()
            .take_while(|a| !is_option(a) && !is_bang(a))
            .cloned()
            .collect(),
    };
    let next = i + 1 + args.len();
    if arity == Some(0) {
        if let Some(a) = toks.get(next).filter(|a| !is_option(a) && !is_bang(a)) {
            return rerr(a.start, format!("option {name} takes no argument"));
        }
    }
    let to_rerr = |(o, m): (usize, String)| RuleError {
        offset: o,
        message: m,
    };
    match owner {
        Owner::Target(_) => {
            let tg = match rule.target.as_mut() {
                Some(tg) => tg,
                None => return rerr(t.start, format!("unknown option {name}")),
            };
            let o = canon::normalize_target_opt(&tg.name, name, negated, &args).map_err(to_rerr)?;
            tg.opts.push(o);
        }
        Owner::Match(k, _) => {
            let m = match rule.matches.get_mut(k) {
                Some(m) => m,
                None => return rerr(t.start, format!("unknown option {name}")),
            };
            let o = canon::normalize_match_opt(&m.name, name, negated, &args).map_err(to_rerr)?;
            m.opts.push(o);
        }
        Owner::Implicit(mname, _) => {
            let o = canon::normalize_match_opt(mname, name, negated, &args).map_err(to_rerr)?;
            rule.matches.push(Match {
                name: mname.to_string(),
                opts: vec![o],
            });
            if *ctx != Ctx::Target {
                *ctx = Ctx::Match(rule.matches.len() - 1);
            }
        }
    }
    Ok(next)
}

/// Options that make no sense without a given protocol are checked by
/// iptables when the rule is inserted; rampart checks the common one here so
/// the playbook fails before any host is touched.
pub(crate) fn check_proto_requirements(rule: &Rule) -> Result<(), RuleError> {
    let proto = rule.proto.as_ref().map(|p| p.value.as_str());
    for m in &rule.matches {
        let needs: &[&str] = match m.name.as_str() {
            "tcp" => &["tcp"],
            "udp" => &["udp"],
            "sctp" => &["sctp"],
            "dccp" => &["dccp"],
            "multiport" => &["tcp", "udp", "udplite", "sctp", "dccp"],
            _ => continue,
        };
        if !proto.is_some_and(|p| needs.contains(&p)) {
            return rerr(
                0,
                format!("-m {} needs -p {}", m.name, needs.join(" or -p ")),
            );
        }
    }
    Ok(())
}

fn perr<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// Drop a `[pkts:bytes]` prefix (`iptables-save -c`).
fn strip_counters(line: &str) -> &str {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some((inner, after)) = rest.split_once(']') {
            if inner.split_once(':').is_some_and(|(p, b)| {
                p.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
            }) {
                return after.trim_start();
            }
        }
    }
    t
}

fn parse_policy(word: &str) -> Option<Option<Policy>> {
    match word {
        "-" => Some(None),
        "ACCEPT" => Some(Some(Policy::Accept)),
        "DROP" => Some(Some(Policy::Drop)),
        _ => None,
    }
}

/// Parse `iptables-save` (or `iptables -S`) output. Comment lines and
/// counters are ignored; unknown matches are kept as opaque, exact rules.
/// Empty text is a ruleset with no tables (nf_tables with nothing loaded).
pub fn parse_save(text: &str, family: Family) -> Result<Ruleset, ParseError> {
    let mut rs = Ruleset::empty(family);
    let mut open: Option<(Table, usize)> = None;
    // `iptables -S` has no table headers: everything is the filter table.
    let mut listing: Option<Table> = None;
    let mut last_line = 0;
    for (idx, raw) in text.lines().enumerate() {
        let n = idx + 1;
        last_line = n;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            if let Some((t, at)) = &open {
                return perr(n, format!("table {} (line {at}) has no COMMIT", t.name));
            }
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return perr(n, format!("bad table header {line:?}"));
            }
            if rs.table(name).is_some() || (name == "filter" && listing.is_some()) {
                return perr(n, format!("table {name} appears twice"));
            }
            open = Some((Table::new(name), n));
            continue;
        }
        if line == "COMMIT" {
            match open.take() {
                Some((t, _)) => rs.tables.push(t),
                None => return perr(n, "COMMIT outside a table"),
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(':') {
            let table = match open.as_mut() {
                Some((t, _)) => t,
                None => return perr(n, "chain declaration outside a table"),
            };
            let mut words = rest.split_whitespace();
            let (name, pol) = match (words.next(), words.next()) {
                (Some(c), Some(p)) => (c, p),
                _ => return perr(n, format!("bad chain line {line:?}")),
            };
            let policy = match parse_policy(pol) {
                Some(p) => p,
                None => return perr(n, format!("bad policy {pol:?} for chain {name}")),
            };
            if table.chain(name).is_some() {
                return perr(n, format!("chain {name} declared twice"));
            }
            table.chains.push(Chain {
                name: name.to_string(),
                policy,
                rules: Vec::new(),
            });
            continue;
        }
        let line = strip_counters(line);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("-P") | Some("-N") => {
                if open.is_some() {
                    return perr(n, format!("{} inside a *table block", words[0]));
                }
                if rs.table("filter").is_some() {
                    return perr(n, "iptables -S lines after an iptables-save filter table");
                }
                let table = listing.get_or_insert_with(|| Table::new("filter"));
                let name = match words.get(1) {
                    Some(c) => *c,
                    None => return perr(n, format!("{} needs a chain name", words[0])),
                };
                if table.chain(name).is_some() {
                    return perr(n, format!("chain {name} declared twice"));
                }
                let policy = if words[0] == "-P" {
                    match words.get(2).and_then(|p| parse_policy(p)) {
                        Some(Some(p)) => Some(p),
                        _ => return perr(n, format!("bad policy line {line:?}")),
                    }
                } else {
                    None
                };
                table.chains.push(Chain {
                    name: name.to_string(),
                    policy,
                    rules: Vec::new(),
                });
            }
            Some("-A") | Some("--append") => {
                let mut rule = parse_rule(line, false).map_err(|e| ParseError {
                    line: n,
                    message: format!("{e}: {line}"),
                })?;
                canon::apply_family(&mut rule, family);
                let table = match open.as_mut() {
                    Some((t, _)) => t,
                    None => {
                        if rs.table("filter").is_some() {
                            return perr(n, "rule outside a table");
                        }
                        listing.get_or_insert_with(|| Table::new("filter"))
                    }
                };
                match table.chain_mut(rule.chain()) {
                    Some(c) => c.rules.push(rule),
                    None => return perr(n, format!("rule for undeclared chain {}", rule.chain())),
                }
            }
            _ => return perr(n, format!("unrecognized line {line:?}")),
        }
    }
    if let Some((t, at)) = open {
        return perr(
            last_line.max(at),
            format!("table {} (line {at}) has no COMMIT", t.name),
        );
    }
    if let Some(t) = listing {
        rs.tables.insert(0, t);
    }
    Ok(rs)
}

impl Rule {
    /// Parse one `-A CHAIN ...` line in iptables-save syntax, validating it.
    /// Shell metacharacters outside double quotes are rejected; options are
    /// stored in the form iptables-save prints (see the module docs).
    pub fn parse(line: &str) -> Result<Rule, RuleError> {
        let rule = parse_rule(line, true)?;
        check_proto_requirements(&rule)?;
        Ok(rule)
    }

    /// This rule as it reads back from `family`'s iptables-save (REJECT's
    /// default `--reject-with`, recent's default `--mask`).
    pub fn for_family(&self, family: Family) -> Rule {
        let mut r = self.clone();
        canon::apply_family(&mut r, family);
        r
    }
}
