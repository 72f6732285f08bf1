//! Salesforce record Ids: 15 case-sensitive characters plus a 3-character case-insensitive suffix.

pub use sfetl_extract::ids::checksum_suffix;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Builds the 18-character Id of record number `n` of an object with `key_prefix` (e.g. `005`).
///
/// The layout follows real Ids: key prefix, a pod/instance part, then a base-62 counter; the
/// suffix encodes which of the first 15 characters are upper case, as Salesforce computes it.
pub fn record_id(key_prefix: &str, pod: &str, n: u64) -> String {
    debug_assert_eq!(key_prefix.len(), 3);
    let mut id = String::with_capacity(18);
    id.push_str(key_prefix);
    id.push_str(pod);
    let width = 15 - id.len();
    let mut digits = vec![b'0'; width];
    let mut rest = n;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    id.push_str(std::str::from_utf8(&digits).unwrap_or_default());
    let suffix = checksum_suffix(&id);
    id.push_str(&suffix);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_eighteen_characters_with_the_prefix() {
        let id = record_id("005", "5g0", 12345);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("0055g0"));
        assert_ne!(record_id("005", "5g0", 1), record_id("005", "5g0", 2));
    }
}
