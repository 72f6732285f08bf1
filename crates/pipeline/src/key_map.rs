//! A map from text keys (Salesforce Ids) to small values, for the derived tables made in one
//! pass with an input's keys in memory ([`crate::kept_by_key`], [`crate::counted_by_key`]). Such
//! a map grows with the org's users, so an Id is held in 8 bytes: at a million users, a map of
//! Ids to 4-byte values takes about 13 MiB (a million slots of 12 bytes and a control byte),
//! against about 20 with Ids as 128-bit numbers, or 34 with the Id strings and a set of
//! references to them.

use foldhash::fast::RandomState;
use sfetl_extract::ids::checksum;
use std::collections::HashMap;

#[derive(Debug)]
pub struct KeyMap<V> {
    /// The first six characters of the Ids held compactly (key prefix, instance, reserved: a
    /// handful per object in an org), numbered.
    heads: HashMap<[u8; HEAD], u16, RandomState>,
    compact: HashMap<[u32; 2], V, RandomState>,
    /// Every other key, as it is.
    other: HashMap<Box<str>, V, RandomState>,
}

/// The characters of an Id before its 9-character counter.
const HEAD: usize = 6;
/// Heads numbered at most: their number takes the 10 bits above a counter's 54 (62^9 < 2^54).
const HEADS: usize = 1 << 10;

impl<V> KeyMap<V> {
    pub fn with_capacity(keys: usize) -> KeyMap<V> {
        KeyMap {
            heads: HashMap::default(),
            compact: HashMap::with_capacity_and_hasher(keys, RandomState::default()),
            other: HashMap::default(),
        }
    }

    /// Sets `key`'s value (a key inserted again keeps the last value).
    pub fn insert(&mut self, key: &str, value: V) {
        let head = split(key).and_then(|(head, counter)| match self.heads.get(&head) {
            Some(&number) => Some((number, counter)),
            None if self.heads.len() < HEADS => {
                let number = self.heads.len() as u16;
                self.heads.insert(head, number);
                Some((number, counter))
            }
            // Past the numbered heads, an Id is held as any other key, for good.
            None => None,
        });
        match head {
            Some((number, counter)) => self.compact.insert(compact(number, counter), value),
            None => self.other.insert(key.into(), value),
        };
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        let head = split(key).and_then(|(head, counter)| Some((*self.heads.get(&head)?, counter)));
        match head {
            Some((number, counter)) => self.compact.get(&compact(number, counter)),
            // Not a compact Id, or one of a head never numbered: if held, it is held as it is.
            None => self.other.get(key),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// An 18-character Id whose last three characters are the checksum of its first 15 (so that
/// these 15 are the whole key), as its head and its counter in base 62.
fn split(key: &str) -> Option<([u8; HEAD], u64)> {
    let bytes: &[u8; 18] = key.as_bytes().try_into().ok()?;
    let mut counter = 0u64;
    for &byte in &bytes[HEAD..15] {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'A'..=b'Z' => byte - b'A' + 10,
            b'a'..=b'z' => byte - b'a' + 36,
            _ => return None,
        };
        counter = counter * 62 + u64::from(digit);
    }
    if checksum(&bytes[..15]) != bytes[15..] {
        return None;
    }
    let head: [u8; HEAD] = bytes[..HEAD].try_into().ok()?;
    Some((head, counter))
}

/// Head number and counter in 64 bits, as two halves: an entry aligned to 4 bytes, not 8.
fn compact(head: u16, counter: u64) -> [u32; 2] {
    let number = (u64::from(head) << 54) | counter;
    [(number >> 32) as u32, number as u32]
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfetl_extract::ids::checksum_suffix;

    fn id(id15: &str) -> String {
        format!("{id15}{}", checksum_suffix(id15))
    }

    /// Ids differing only in case, in their head or counter, keys that are no 18-character Ids
    /// (15 characters, a wrong checksum, other characters), and Ids past the numbered heads are
    /// each their own key.
    #[test]
    fn every_distinct_key_is_its_own_entry() {
        let mut keys = vec![
            id("005000000000001"),
            id("005000000000001").to_lowercase(),
            "005000000000001AAB".to_string(),
            "005000000000001".to_string(),
            id("005000000000002"),
            id("005zz0000000001"),
            id("0PL000zzzzzzzzz"),
            id("0PL000000000000"),
            "".to_string(),
            "user@example.com".to_string(),
            "005000000000001AAAA".to_string(),
        ];
        // More heads than are numbered.
        keys.extend((0..HEADS + 5).map(|n| id(&format!("a{:05}000000001", n))));
        let mut map = KeyMap::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            map.insert(key, index);
        }
        for (index, key) in keys.iter().enumerate() {
            assert_eq!(map.get(key), Some(&index), "{key}");
        }
        assert!(!map.other.is_empty() && map.compact.len() > HEADS, "both forms are held");
        assert!(!map.contains(&id("005000000000003")));
        assert!(!map.contains(&id("a99999000000001")));
        assert!(!map.contains("user@example.org"));
    }
}
