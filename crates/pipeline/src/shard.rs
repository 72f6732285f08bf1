//! `--shard I/N`: which of a pipeline's orgs one of N workers extracts.

use std::fmt;
use std::str::FromStr;

/// Worker `index` of `count` (0-based), as `--shard 2/5` or `SFETL_SHARD=2/5` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether this worker extracts the org named `org`. Decided by the name alone (FNV-1a, a
    /// fixed function: the same in every version and on every machine), so N workers started
    /// with the same N cover every org once however the pipeline's orgs are ordered, and an org
    /// added to the pipeline does not move the others.
    pub fn owns(&self, org: &str) -> bool {
        fnv1a(org.as_bytes()) % u64::from(self.count) == u64::from(self.index)
    }
}

/// FNV-1a (64 bits): a fixed hash, the same in every version and on every machine.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is not a shard: write I/N with 0 <= I < N, e.g. 0/3 for the first of 3 workers");
        let (index, count) = text.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) =
            (index.trim().parse().map_err(|_| bad())?, count.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
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
    fn every_org_has_exactly_one_shard() {
        let orgs: Vec<String> = (0..300).map(|n| format!("org-{n:03}")).collect();
        for count in 1..=7 {
            let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
            for org in &orgs {
                assert_eq!(shards.iter().filter(|s| s.owns(org)).count(), 1, "{org} with {count} shards");
            }
            // Spread: no shard of 300 orgs is empty or holds more than twice its share.
            for shard in &shards {
                let held = orgs.iter().filter(|o| shard.owns(o)).count();
                assert!(held > 0 && held <= 2 * 300 / count as usize, "{shard}: {held}");
            }
        }
    }

    #[test]
    fn the_assignment_is_fixed_by_the_name() {
        // The values of FNV-1a 64 for these names, so a change of the function is caught.
        let three = |org: &str| (0..3).find(|&index| Shard { index, count: 3 }.owns(org));
        let fnv = |org: &str| {
            org.bytes().fold(0xcbf29ce484222325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3)) % 3
        };
        for org in ["acme", "globex", "initech"] {
            assert_eq!(three(org).map(u64::from), Some(fnv(org)));
        }
        assert_eq!(fnv("a"), 0xaf63dc4c8601ec8c % 3, "FNV-1a 64 of \"a\" (published test vector)");
    }

    #[test]
    fn shards_parse_or_say_what_to_write() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/3", "0/0", "-1/2"] {
            let err = bad.parse::<Shard>().err().unwrap_or_default();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
    }
}
