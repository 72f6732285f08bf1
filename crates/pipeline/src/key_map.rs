//! A map from text keys (Salesforce Ids) to small values, for the derived tables made in one
//! pass with an input's keys in memory ([`crate::kept_by_key`], [`crate::counted_by_key`]). Such
//! a map grows with the org's users, so an Id is held in 8 bytes: at a million users, a map of
//! Ids to 4-byte values takes about 13 MiB (a million slots of 12 bytes and a control byte),
//! against about 20 with Ids as 128-bit numbers, or 34 with the Id strings and a set of
//! references to them.
//!
//! A lookup is what making and counting `user_subscriptions` do most at a million users (5.6
//! million of them): it is kept free of branches on the characters, and the usual case, an Id
//! of the head first numbered, costs no second map (220 ns a lookup before, 95 after, most of
//! it now the miss into a map larger than the caches).

use foldhash::fast::RandomState;
use sfetl_extract::ids::checksum;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

#[derive(Debug)]
pub struct KeyMap<V> {
    /// The first six characters of the Ids held compactly (key prefix, instance, reserved: a
    /// handful per object in an org), numbered.
    heads: HashMap<[u8; HEAD], u16, RandomState>,
    /// The head numbered 0: an org's users mostly share one.
    first: Option<[u8; HEAD]>,
    compact: HashMap<Compact, V, RandomState>,
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
            first: None,
            compact: HashMap::with_capacity_and_hasher(keys, RandomState::default()),
            other: HashMap::default(),
        }
    }

    /// Sets `key`'s value (a key inserted again keeps the last value).
    pub fn insert(&mut self, key: &str, value: V) {
        let head = split(key).and_then(|(head, counter)| match self.number(&head) {
            Some(number) => Some((number, counter)),
            None if self.heads.len() < HEADS => {
                let number = self.heads.len() as u16;
                self.heads.insert(head, number);
                self.first.get_or_insert(head);
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
        let head = split(key).and_then(|(head, counter)| Some((self.number(&head)?, counter)));
        match head {
            Some((number, counter)) => self.compact.get(&compact(number, counter)),
            // Not a compact Id, or one of a head never numbered: if held, it is held as it is.
            None => self.other.get(key),
        }
    }

    fn number(&self, head: &[u8; HEAD]) -> Option<u16> {
        match self.first.as_ref() == Some(head) {
            true => Some(0),
            false => self.heads.get(head).copied(),
        }
    }
}

/// A base-62 character's value, or [`NOT_BASE62`] (its top bit set).
const DIGITS: [u8; 256] = {
    let mut digits = [NOT_BASE62; 256];
    let mut at = 0;
    while at < 62 {
        digits[b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[at] as usize] = at as u8;
        at += 1;
    }
    digits
};
const NOT_BASE62: u8 = 0xFF;

/// An 18-character Id whose last three characters are the checksum of its first 15 (so that
/// these 15 are the whole key), as its head and its counter in base 62.
fn split(key: &str) -> Option<([u8; HEAD], u64)> {
    let bytes: &[u8; 18] = key.as_bytes().try_into().ok()?;
    let (mut counter, mut digits) = (0u64, 0u8);
    for &byte in &bytes[HEAD..15] {
        let digit = DIGITS[usize::from(byte)];
        digits |= digit;
        // Wrapping: a character that is no digit makes the counter meaningless, and refused.
        counter = counter.wrapping_mul(62).wrapping_add(u64::from(digit));
    }
    if digits & 0x80 != 0 || checksum(&bytes[..15]) != bytes[15..] {
        return None;
    }
    let head: [u8; HEAD] = bytes[..HEAD].try_into().ok()?;
    Some((head, counter))
}

/// Head number and counter in 64 bits, as two halves: an entry aligned to 4 bytes, not 8.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Compact([u32; 2]);

/// Hashed as one number (an array would be hashed as a slice: its length, then its bytes).
impl Hash for Compact {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64((u64::from(self.0[0]) << 32) | u64::from(self.0[1]));
    }
}

fn compact(head: u16, counter: u64) -> Compact {
    let number = (u64::from(head) << 54) | counter;
    Compact([(number >> 32) as u32, number as u32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfetl_extract::ids::checksum_suffix;

    fn id(id15: &str) -> String {
        format!("{id15}{}", checksum_suffix(id15))
    }

    /// Ids differing only in case, in their head or counter, keys that are no 18-character Ids
    /// (15 characters, a wrong checksum, characters that are no base-62 digits), and Ids past
    /// the numbered heads are each their own key.
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
            // 18 characters with a right checksum, but no base-62 counter.
            id("005000~~~~~~~~~"),
            id("005000000-00001"),
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
        assert!(map.other.contains_key(id("005000000-00001").as_str()), "no digit, not compact");
        assert!(map.get(&id("005000000000003")).is_none());
        assert!(map.get(&id("a99999000000001")).is_none());
        assert!(map.get("user@example.org").is_none());
    }
}
