//! Answers' bodies: read up to a size limit and inflated when they come gzipped, big ones into
//! memory maps kept from answer to answer.

use crate::error::{Error, Result};

/// Whether an answer's body comes gzipped (`Content-Encoding: gzip`).
pub(crate) fn is_gzipped(headers: &reqwest::header::HeaderMap) -> bool {
    let encoding = headers.get(reqwest::header::CONTENT_ENCODING);
    encoding.is_some_and(|e| e.as_bytes().eq_ignore_ascii_case(b"gzip"))
}

/// The answer's body, inflated when it came gzipped, refused once it passes `limit` bytes (a
/// gzip bomb or a hostile server cannot fill the memory).
pub(crate) async fn read_body(mut response: reqwest::Response, url: &str, limit: u64) -> Result<bytes::Bytes> {
    let too_large = || Error::BodyTooLarge { url: url.to_string(), limit_mb: limit >> 20 };
    let transport = |e: reqwest::Error| Error::Transport { url: url.to_string(), message: crate::error::chain(&e) };
    let gzipped = is_gzipped(response.headers());
    let mut body = bytes::BytesMut::with_capacity(response.content_length().unwrap_or(0).min(limit) as usize);
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if !gzipped {
        return Ok(body.freeze());
    }
    match gunzip(&body, limit) {
        Ok(inflated) => Ok(inflated),
        Err(Gunzip::TooLarge) => Err(too_large()),
        Err(Gunzip::Corrupt(why)) => {
            Err(Error::Transport { url: url.to_string(), message: format!("a gzip body that does not inflate: {why}") })
        }
    }
}

#[derive(Debug)]
enum Gunzip {
    TooLarge,
    Corrupt(String),
}

/// Inflates a gzip body. Its last four bytes give the inflated size of its last member (RFC
/// 1952, ISIZE): a body of one member, as Salesforce sends, inflates in one call into a buffer
/// of that size. One that does not end there (several members, or a size that lies) is
/// inflated again as a stream. Never past `limit`.
fn gunzip(gzipped: &[u8], limit: u64) -> std::result::Result<bytes::Bytes, Gunzip> {
    gunzip_into(gzipped, limit, &KEPT_MAPS)
}

/// [`gunzip`], a big answer inflated into a map of `kept`'s.
fn gunzip_into(gzipped: &[u8], limit: u64, kept: &'static KeptMaps) -> std::result::Result<bytes::Bytes, Gunzip> {
    if !gzipped.starts_with(&[0x1f, 0x8b]) {
        return Err(Gunzip::Corrupt("no gzip header".into()));
    }
    let trailer = gzipped.len().checked_sub(4).and_then(|at| gzipped[at..].try_into().ok());
    let size = u64::from(trailer.map(u32::from_le_bytes).unwrap_or(0));
    if size > limit {
        return Err(Gunzip::TooLarge);
    }
    let mut inflated = InflatedBody::new(size as usize, kept);
    // Window bits 16 + 15: a gzip header, then a deflate stream of up to a 32 KiB window.
    let mut inflate = zlib_rs::Inflate::new(true, 16 + 15);
    let done = inflate.decompress(gzipped, inflated.as_mut(), zlib_rs::InflateFlush::Finish);
    let whole = inflate.total_in() == gzipped.len() as u64 && inflate.total_out() == size;
    if done == Ok(zlib_rs::Status::StreamEnd) && whole {
        return Ok(inflated.into_bytes());
    }
    gunzip_stream(gzipped, limit)
}

/// Answers from this size up are inflated into an anonymous memory map instead of a `Vec`.
/// glibc's malloc serves such a block with a map too, but when it is freed, raises its
/// threshold for mapping to the block's size (up to 32 MiB: `M_MMAP_THRESHOLD`'s dynamic
/// adjustment, mallopt(3)), and every allocation under that size comes from its heaps from then
/// on, where freed memory stays with the process: composite calls of five pages cost 40 MiB more
/// peak memory at 100k users that way. Maps of our own leave malloc's threshold alone, and up
/// to [`SPARE_MAP_BYTES`] of them are kept for the next answers ([`AnswerMap`]).
const MAPPED_BODY_BYTES: usize = 256 << 10;

/// The answers' maps kept for the next answers, process-wide.
static KEPT_MAPS: KeptMaps = KeptMaps::new();

/// The answers' maps kept for reuse. A fresh map's pages fault in one by one, each zeroed by the
/// kernel, for every answer: a third of sfetl's system time. Keeping 16 MiB of them (interleaved
/// full reads, this machine): 100k users 0.93-0.96 s against 1.01-1.03 (medians of 5-6 pairs),
/// a million 8.1 s against 8.9-9.1 (3 pairs, system time 0.6-0.7 s against 1.3-1.5), for 14-16
/// MiB more at the peak at either size (95 and 117 MiB against 80 and 103). 8 MiB saved a
/// third of that time; 24 and 32 no more than 16. (An earlier trial, judged by memory alone,
/// had found keeping maps not worth it: 111-118 MiB at 100k users against 103-106.)
const SPARE_MAP_BYTES: usize = 16 << 20;

/// Gives the answers' maps kept for the next answers back to the system: a program that runs
/// pipelines from time to time holds no memory for them in between.
pub fn release_kept_answer_maps() {
    KEPT_MAPS.release();
}

/// Maps of answers already read, kept for the next answers (up to [`SPARE_MAP_BYTES`] in all).
struct KeptMaps(std::sync::Mutex<Vec<memmap2::MmapMut>>);

impl KeptMaps {
    const fn new() -> KeptMaps {
        KeptMaps(std::sync::Mutex::new(Vec::new()))
    }

    /// The smallest kept map of `len` bytes or more: a small answer does not hold a map a big
    /// one could use.
    fn take(&self, len: usize) -> Option<memmap2::MmapMut> {
        let mut kept = self.0.lock().ok()?;
        let fits = kept.iter().enumerate().filter(|(_, map)| map.len() >= len);
        let smallest = fits.min_by_key(|(_, map)| map.len()).map(|(at, _)| at)?;
        Some(kept.swap_remove(smallest))
    }

    fn give_back(&self, map: memmap2::MmapMut) {
        if let Ok(mut kept) = self.0.lock()
            && kept.iter().map(|map| map.len()).sum::<usize>() + map.len() <= SPARE_MAP_BYTES
        {
            kept.push(map);
        }
    }

    fn release(&self) {
        if let Ok(mut kept) = self.0.lock() {
            kept.clear();
        }
    }
}

/// A map holding an answer of `len` bytes, given back to where it was kept when dropped. A map
/// kept before still holds an earlier answer past `len`: only the first `len` bytes, all
/// written by the inflater, are ever read.
struct AnswerMap {
    map: Option<memmap2::MmapMut>,
    len: usize,
    kept: &'static KeptMaps,
}

impl AnswerMap {
    fn new(len: usize, kept: &'static KeptMaps) -> std::io::Result<AnswerMap> {
        let map = match kept.take(len) {
            Some(map) => map,
            // Whole mebibytes, so that a map fits the next answers of about the same size.
            None => memmap2::MmapMut::map_anon(len.next_multiple_of(1 << 20))?,
        };
        Ok(AnswerMap { map: Some(map), len, kept })
    }

    fn as_mut(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().map_or(&mut [], |map| &mut map[..self.len])
    }
}

impl AsRef<[u8]> for AnswerMap {
    fn as_ref(&self) -> &[u8] {
        self.map.as_deref().map_or(&[], |map| &map[..self.len])
    }
}

impl Drop for AnswerMap {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            self.kept.give_back(map);
        }
    }
}

/// An inflated answer's buffer.
enum InflatedBody {
    Heap(Vec<u8>),
    Mapped(AnswerMap),
}

impl InflatedBody {
    fn new(size: usize, kept: &'static KeptMaps) -> InflatedBody {
        if size < MAPPED_BODY_BYTES {
            return InflatedBody::Heap(vec![0; size]);
        }
        match AnswerMap::new(size, kept) {
            Ok(map) => InflatedBody::Mapped(map),
            Err(_) => InflatedBody::Heap(vec![0; size]),
        }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            InflatedBody::Heap(buffer) => buffer,
            InflatedBody::Mapped(map) => map.as_mut(),
        }
    }

    fn into_bytes(self) -> bytes::Bytes {
        match self {
            InflatedBody::Heap(buffer) => buffer.into(),
            InflatedBody::Mapped(map) => bytes::Bytes::from_owner(map),
        }
    }
}

/// Inflates a gzip body of any number of members as a stream, up to `limit` bytes.
fn gunzip_stream(gzipped: &[u8], limit: u64) -> std::result::Result<bytes::Bytes, Gunzip> {
    use std::io::Read;
    let mut inflated = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(gzipped).take(limit + 1);
    decoder.read_to_end(&mut inflated).map_err(|e| Gunzip::Corrupt(e.to_string()))?;
    if inflated.len() as u64 > limit {
        return Err(Gunzip::TooLarge);
    }
    Ok(inflated.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).and_then(|()| encoder.finish()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// One member inflates in one call; several (valid gzip, which one call would cut at the
    /// first) and a trailer that lies go the streaming way, which the limit bounds too.
    #[test]
    fn gunzips_one_member_or_several_within_the_limit() {
        let page: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{{\"Id\":\"005{i:015}\"}},").into_bytes()).collect();
        // Five megabytes (inflated into a map of its own), and a kilobyte (into a Vec).
        let one = gzip(&page);
        assert_eq!(gunzip(&one, 1 << 30).map(|b| b.to_vec()).ok(), Some(page.clone()));
        assert_eq!(gunzip(&gzip(&page[..1000]), 1 << 30).map(|b| b.to_vec()).ok(), Some(page[..1000].to_vec()));

        let mut two = gzip(&page[..1000]);
        two.extend(gzip(&page[1000..]));
        assert_eq!(gunzip(&two, 1 << 30).map(|b| b.to_vec()).ok(), Some(page.clone()));

        let limit = page.len() as u64 - 1;
        assert!(matches!(gunzip(&one, limit), Err(Gunzip::TooLarge)));
        // The last member's size says 1000 bytes: the stream is read, and stopped at the limit.
        let mut bomb = gzip(&page);
        bomb.extend(gzip(&page[..1000]));
        assert!(matches!(gunzip(&bomb, limit), Err(Gunzip::TooLarge)));

        let mut lying = one.clone();
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(gunzip(&lying, 1 << 30), Err(Gunzip::Corrupt(_))));
        assert!(matches!(gunzip(b"not gzip at all", 1 << 30), Err(Gunzip::Corrupt(_))));
    }

    /// Answers inflated into maps kept from earlier ones hold their own bytes, no more: a map
    /// given back holds a bigger answer's bytes past the next one's end.
    #[test]
    fn answers_in_maps_used_again_hold_their_own_bytes() {
        // Maps of their own: other tests' answers go to the process's.
        let kept: &'static KeptMaps = Box::leak(Box::new(KeptMaps::new()));
        let answer = |n: u32, fill: u8| -> Vec<u8> {
            (0..n).flat_map(|i| format!("{{\"Id\":\"005{i:015}\",\"x\":{fill}}},").into_bytes()).collect()
        };
        let sizes = [(150_000, b'1'), (60_000, b'2'), (120_000, b'3'), (30_000, b'4'), (150_000, b'5')];
        let answers: Vec<Vec<u8>> = sizes.iter().map(|&(n, fill)| answer(n, fill)).collect();
        assert!(answers.iter().all(|a| a.len() >= MAPPED_BODY_BYTES), "each is inflated into a map");
        let mut held = Vec::new();
        for round in 0..3 {
            for (i, answer) in answers.iter().enumerate() {
                let inflated = gunzip_into(&gzip(answer), 1 << 30, kept).unwrap_or_else(|e| panic!("{e:?}"));
                assert_eq!(inflated.len(), answer.len(), "round {round}, answer {i}");
                assert!(inflated[..] == answer[..], "round {round}, answer {i}");
                // Some answers outlive the next ones, as pages waiting to be encoded do.
                if i % 2 == 0 {
                    held.push((inflated, i));
                }
            }
            for (inflated, i) in held.drain(..) {
                assert!(inflated[..] == answers[i][..], "round {round}, answer {i} held");
            }
        }
        let bytes = || -> usize { kept.0.lock().map(|maps| maps.iter().map(|map| map.len()).sum()).unwrap_or(0) };
        assert!(bytes() > 0 && bytes() <= SPARE_MAP_BYTES, "{} bytes of maps kept", bytes());
        kept.release();
        assert_eq!(bytes(), 0, "given back at the end of a run");
    }
}
