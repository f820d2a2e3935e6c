//! `--shard K/N`: the K-th of N stable parts of the selected hosts, so that
//! N CI jobs (a matrix) cover a fleet exactly once between them.
//!
//! A host belongs to part `FNV-1a-64(name) mod N`, plus one. The hash is of
//! the inventory NAME only: the same host lands in the same part whatever
//! the inventory's order, whatever `--limit` selected beside it, and on
//! every machine (FNV-1a is fixed and portable; std's hasher is seeded per
//! process). Parts are not equal in size, only close to it on large fleets.

use std::fmt;

/// `K/N` with `1 <= K <= N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// FNV-1a, 64 bits, over the UTF-8 bytes of `s`.
pub fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Shard {
    /// Parse `K/N` (clap's value parser for `--shard`).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("expected K/N with 1 <= K <= N, like 2/4 (got '{s}')");
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { index: k, count: n })
    }

    /// Does the host named `name` belong to this part?
    pub fn contains(&self, name: &str) -> bool {
        fnv1a64(name) % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn parses() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::parse("1/1"), Ok(Shard { index: 1, count: 1 }));
        for bad in ["0/3", "4/3", "1/0", "x", "1/", "/2", "1/2/3", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parts_cover_every_name_exactly_once() {
        let names: Vec<String> = (0..500).map(|i| format!("web{i:03}")).collect();
        for n in 1..=7 {
            for name in &names {
                let owners = (1..=n)
                    .filter(|&k| Shard { index: k, count: n }.contains(name))
                    .count();
                assert_eq!(owners, 1, "{name} in {n} parts");
            }
        }
        // Roughly even on a large fleet.
        let first = names
            .iter()
            .filter(|n| Shard { index: 1, count: 4 }.contains(n))
            .count();
        assert!((80..=170).contains(&first), "{first}");
    }
}
