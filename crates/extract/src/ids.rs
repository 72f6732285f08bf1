//! Salesforce record Ids: 15 case-sensitive base-62 characters (key prefix, instance, counter),
//! plus a 3-character suffix that makes them unique without regard to case. And Id ranges, to
//! read one big object through several query cursors at once, as Salesforce's own PK chunking
//! splits a Bulk job (`WHERE Id >= '001300000000000' AND Id < '00130000000132G'`).

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The 3-character suffix that turns a 15-character Id into its 18-character form: for each
/// group of five characters, which of them are upper case.
pub fn checksum_suffix(id15: &str) -> String {
    let groups = id15.len().div_ceil(5);
    checksum(id15.as_bytes()).iter().take(groups).map(|&c| c as char).collect()
}

/// The suffix of [`checksum_suffix`] as bytes, for the groups of five of the first 15 bytes.
/// Without a branch per character (half of an Id's letters are upper case, at random): this
/// check runs for every key a derived table is made or counted by, millions at a million users.
pub fn checksum(id15: &[u8]) -> [u8; 3] {
    let mut upper = 0usize;
    for (at, byte) in id15.iter().take(15).enumerate() {
        upper |= usize::from(byte.is_ascii_uppercase()) << at;
    }
    [SUFFIX[upper & 31], SUFFIX[(upper >> 5) & 31], SUFFIX[upper >> 10]]
}

/// Up to `parts - 1` Ids that cut the Ids after `after` up to `last` into ranges of about equal
/// width, in increasing order, each strictly between them (none when the two are too close).
///
/// The cuts are interpolated on the characters after the two Ids' common prefix, in base 62
/// ordered byte by byte (`0-9`, `A-Z`, `a-z`): the order of `ORDER BY Id` and `Id > '...'`, which
/// keyset paging relies on, and in which Salesforce's own PK chunking cuts (its documented chunk
/// `WHERE Id >= '001300000000000' AND Id < '00130000000132G'`, Bulk API Developer Guide, "Use PK
/// Chunking to Extract Large Data Sets"). Whoever reads the ranges checks that each row it gets
/// lies within its range, in case an org compares Ids otherwise.
pub fn id_cuts(after: &str, last: &str, parts: usize) -> Vec<String> {
    let (Some(a), Some(b)) = (after.get(..15), last.get(..15)) else { return Vec::new() };
    if a >= b || parts < 2 || !a.bytes().chain(b.bytes()).all(|c| rank(c).is_some()) {
        return Vec::new();
    }
    let prefix = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    // Nine base-62 digits fit a u64; the characters after them are a rounding error.
    let width = (15 - prefix).min(9);
    let value =
        |id: &str| id.as_bytes()[prefix..prefix + width].iter().fold(0u128, |v, &c| v * 62 + rank(c).unwrap_or(0));
    let (low, high) = (value(a), value(b));
    let mut cuts: Vec<String> = Vec::new();
    for i in 1..parts {
        let mut digits = vec![b'0'; 15 - prefix];
        let mut v = low + (high - low) * i as u128 / parts as u128;
        for slot in digits[..width].iter_mut().rev() {
            *slot = BASE62[(v % 62) as usize];
            v /= 62;
        }
        let cut = format!("{}{}", &a[..prefix], String::from_utf8_lossy(&digits));
        if cut.as_str() > a && cut.as_str() < b && cuts.last().is_none_or(|previous| previous[..15] < *cut) {
            let suffix = checksum_suffix(&cut);
            cuts.push(cut + &suffix);
        }
    }
    cuts
}

fn rank(c: u8) -> Option<u128> {
    BASE62.iter().position(|&d| d == c).map(|p| p as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_matches_known_salesforce_ids() {
        // Ids quoted in Salesforce's documentation with their 18-character forms.
        assert_eq!(checksum_suffix("005D0000001KyEI"), "IA0");
        assert_eq!(checksum_suffix("00D000000000062"), "EAA");
    }

    #[test]
    fn cuts_are_increasing_between_the_ids_and_share_the_rows_evenly() {
        // Sequential Ids, as Salesforce hands them out: the counter runs through 0-9, A-Z, a-z.
        let id = |n: u64| {
            let mut digits = vec![b'0'; 9];
            let mut rest = n;
            for slot in digits.iter_mut().rev() {
                *slot = BASE62[(rest % 62) as usize];
                rest /= 62;
            }
            let id15 = format!("0Pa8n5{}", String::from_utf8_lossy(&digits));
            let suffix = checksum_suffix(&id15);
            id15 + &suffix
        };
        let ids: Vec<String> = (1..=208_000).map(id).collect();
        let (after, last) = (&ids[1999], &ids[ids.len() - 1]);
        let cuts = id_cuts(after, last, 6);
        assert_eq!(cuts.len(), 5, "{cuts:?}");
        let mut previous = after.clone();
        let mut bounds = vec![after.clone()];
        for cut in &cuts {
            assert_eq!(cut.len(), 18);
            assert!(*cut > previous && cut < last, "{cut}");
            assert_eq!(&cut[15..], checksum_suffix(&cut[..15]));
            previous = cut.clone();
            bounds.push(cut.clone());
        }
        bounds.push(format!("{last}~"));
        let per_range: Vec<usize> =
            bounds.windows(2).map(|w| ids.iter().filter(|id| **id > w[0] && **id <= w[1]).count()).collect();
        let even = (ids.len() - 2000) / 6;
        assert!(per_range.iter().all(|&n| n.abs_diff(even) < even / 10), "{per_range:?}");
        // Ids too close to cut, or in the wrong order, give no cuts.
        assert!(id_cuts(&ids[0], &ids[1], 4).is_empty());
        assert!(id_cuts(last, after, 4).is_empty());
        assert!(id_cuts("short", last, 4).is_empty());
    }
}
