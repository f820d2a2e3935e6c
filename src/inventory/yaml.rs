//! YAML plumbing shared by the inventory and the playbook: turning
//! `serde_norway` errors into [`InputError`]s with a 1-based `line:column`,
//! and finding the position of a node *after* parsing.
//!
//! Why this exists: serde_norway only knows where a node is while it is
//! being deserialized. Local mistakes (a bad port, an unknown service) are
//! therefore caught inside custom `Deserialize` impls, so that the error
//! carries the node's position. Cross-references (a group naming a host
//! defined further down, a duplicate host) are only known once the whole
//! file is read; for those, [`locate`] re-reads the text with a seed that
//! walks to one node and fails there on purpose, which makes serde_norway
//! report that node's position. Reading a small file twice is cheap; spans
//! threaded through every type would not be.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::InputError;

/// Convert a serde_norway error into an [`InputError`] for `file`.
///
/// serde_norway's `Location` is already 1-based (it adds 1 to libyaml's
/// 0-based mark). The " at line N column M" it appends for that same
/// position is dropped, because the position is printed up front; other
/// positions (libyaml's "while parsing a flow sequence at line 3 column 12")
/// are kept: they say where the unfinished construct began.
pub(crate) fn input_error(file: &Path, e: &serde_norway::Error) -> InputError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let msg = e
        .to_string()
        .replace(&format!(" at line {line} column {column}"), "");
    // serde_norway names the node by its path, e.g. `hosts.web1.port: ...`;
    // a path from a top-level sequence starts with a stray `.` (`.[0]...`).
    let msg = match msg.strip_prefix(".[") {
        Some(rest) => format!("[{rest}"),
        None => msg,
    };
    InputError::new(file, line, column, msg)
}

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// The value under this key of a mapping (the first occurrence).
    Key(String),
    /// The `n`-th (0-based) occurrence of this key itself, in a mapping:
    /// used to point at a duplicate key.
    KeyItself(String, usize),
    /// The element at this index of a sequence.
    Index(usize),
}

/// The 1-based (line, column) of the node at `path` in `text`, if it exists.
pub(crate) fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let de = serde_norway::Deserializer::from_str(text);
    match (Locate { path }).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| (l.line(), l.column())),
    }
}

/// An [`InputError`] at the node `path` of `text` (or the whole file when
/// the node cannot be found).
pub(crate) fn error_at(
    file: &Path,
    text: &str,
    path: &[Seg],
    msg: impl Into<String>,
) -> InputError {
    let (line, column) = locate(text, path).unwrap_or((0, 0));
    InputError::new(file, line, column, msg)
}

struct Locate<'a> {
    path: &'a [Seg],
}

/// Fails on whatever node it is given: the failure carries that node's position.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("nothing (position probe)")
    }
}

impl<'de> DeserializeSeed<'de> for Locate<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.path.first() {
            None => d.deserialize_any(Here),
            Some(Seg::Index(_)) => d.deserialize_any(self),
            Some(_) => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Locate<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping or sequence")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            Some(x) => x,
            None => return Ok(()),
        };
        let mut seen = 0usize;
        loop {
            match first {
                Seg::KeyItself(k, n) => {
                    let probe = KeyProbe {
                        target: k,
                        fail: seen == *n,
                    };
                    match map.next_key_seed(probe)? {
                        None => return Ok(()),
                        Some(true) => seen += 1,
                        Some(false) => {}
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                Seg::Key(k) => {
                    let probe = KeyProbe {
                        target: k,
                        fail: false,
                    };
                    match map.next_key_seed(probe)? {
                        None => return Ok(()),
                        Some(true) if seen == 0 => {
                            seen += 1;
                            map.next_value_seed(Locate { path: rest })?;
                        }
                        Some(_) => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Seg::Index(_) => {
                    // A sequence step against a mapping: not found.
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    return Ok(());
                }
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            Some(x) => x,
            None => return Ok(()),
        };
        let Seg::Index(i) = first else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        for _ in 0..*i {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Locate { path: rest })?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    // Scalars where a container was expected: the path does not exist.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Reads a mapping key as text; says whether it equals `target`, and fails
/// on it (to report its position) when `fail` is set and it matches.
struct KeyProbe<'a> {
    target: &'a str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        if v == self.target {
            if self.fail {
                return Err(E::custom("position probe"));
            }
            Ok(true)
        } else {
            Ok(false)
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.visit_str(if v { "true" } else { "false" })
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// A mapping key validated against a fixed list of field names, so that an
/// unknown key is reported at the key itself (serde's derive does the same
/// for structs; this is for hand-written map visitors).
pub(crate) struct FieldName(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldName {
    type Value = &'static str;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldName {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "one of {}", self.0.join(", "))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'static str, E> {
        self.0
            .iter()
            .find(|f| **f == v)
            .copied()
            .ok_or_else(|| E::unknown_field(v, self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a:\n  b: [1, 2, 3]\n  c:\n    d: x\nlist:\n  - one\n  - two: 2\na: again\n";

    #[test]
    fn locates_nodes_one_based() {
        assert_eq!(locate(DOC, &[Seg::Key("a".into())]), Some((2, 3)));
        assert_eq!(
            locate(
                DOC,
                &[Seg::Key("a".into()), Seg::Key("b".into()), Seg::Index(2)]
            ),
            Some((2, 13))
        );
        assert_eq!(
            locate(
                DOC,
                &[
                    Seg::Key("a".into()),
                    Seg::Key("c".into()),
                    Seg::Key("d".into())
                ]
            ),
            Some((4, 8))
        );
        assert_eq!(
            locate(
                DOC,
                &[
                    Seg::Key("list".into()),
                    Seg::Index(1),
                    Seg::KeyItself("two".into(), 0)
                ]
            ),
            Some((7, 5))
        );
        assert_eq!(locate(DOC, &[Seg::KeyItself("a".into(), 1)]), Some((8, 1)));
        assert_eq!(locate(DOC, &[Seg::Key("zzz".into())]), None);
        assert_eq!(locate(DOC, &[Seg::Key("list".into()), Seg::Index(9)]), None);
    }
}
