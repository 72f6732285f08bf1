//! A Bulk API 2.0 result set read as it arrives: its CSV text is cut into whole records as the
//! body comes in and handed out a page at a time, so a set of a million records is never held
//! at once. Sets may then be as large as Salesforce gives them: one API call per set.
//!
//! Salesforce quotes every value (salesforce-api.md section 3), and a quoted value may hold
//! line breaks: a record ends at a line break outside quotes. A quote inside a value is written
//! twice, so counting quotes tells whether a line break is inside one.

use crate::client::StreamedBody;
use crate::error::{Error, Result};
use bytes::{Buf, BytesMut};
use std::collections::VecDeque;

/// One result set's body, and the records of it not yet handed out.
pub(crate) struct ResultSet {
    body: StreamedBody,
    job: String,
    records: RecordCutter,
    ended: bool,
    /// The set's header row, once read.
    header: Option<csv::StringRecord>,
    /// Data records to drop before handing any out: those a cut body had already given.
    skip: u64,
    /// Data records handed out (or skipped) from this body.
    pub read: u64,
}

impl ResultSet {
    /// The set `body` brings for `job`, its first `skip` data records dropped (read already from
    /// the same set before its body was cut). A record may take up to `record_limit` bytes.
    pub fn new(body: StreamedBody, job: &str, skip: u64, record_limit: u64) -> ResultSet {
        ResultSet {
            body,
            job: job.to_string(),
            records: RecordCutter::new(usize::try_from(record_limit).unwrap_or(usize::MAX)),
            ended: false,
            header: None,
            skip,
            read: 0,
        }
    }

    /// The next result set's locator (`None`: this was the last).
    pub fn next_locator(&self) -> Option<&String> {
        self.body.locator.as_ref()
    }

    /// The header and up to `page` records, `None` once the set is read. A transient error
    /// means the body was cut: the set may be asked for again, skipping [`ResultSet::read`].
    pub async fn next_page(&mut self, page: usize) -> Result<Option<(csv::StringRecord, Vec<csv::StringRecord>)>> {
        loop {
            let wanted = if self.header.is_none() { 1 } else { page.max(1) };
            if self.records.whole() >= wanted || (self.ended && self.records.whole() > 0) {
                let unreadable =
                    |e: csv::Error| Error::Bulk { job: self.job.clone(), message: format!("unreadable CSV: {e}") };
                let rows = self.records.take(wanted).map_err(unreadable)?;
                let Some(header) = self.header.clone() else {
                    self.header = rows.into_iter().next();
                    continue;
                };
                if let Some(row) = rows.iter().find(|row| row.len() != header.len()) {
                    let message = format!("a CSV record of {} values under {} columns", row.len(), header.len());
                    return Err(Error::Bulk { job: self.job.clone(), message });
                }
                let skipped = usize::try_from(self.skip).unwrap_or(usize::MAX).min(rows.len());
                self.skip -= skipped as u64;
                self.read += rows.len() as u64;
                if skipped < rows.len() {
                    return Ok(Some((header, rows.into_iter().skip(skipped).collect())));
                }
                continue;
            }
            if self.ended {
                if self.records.pending() > 0 {
                    return Err(self.cut("it ends inside a record"));
                }
                if let Some(announced) = self.body.records.filter(|&n| n != self.read) {
                    return Err(self.cut(&format!("{} records of the {announced} announced", self.read)));
                }
                return Ok(None);
            }
            match self.body.next_bytes().await? {
                Some(bytes) => {
                    if !self.records.receive(&bytes) {
                        let limit_mb = (self.records.limit >> 20) as u64;
                        return Err(Error::BodyTooLarge { url: self.body.url().to_string(), limit_mb });
                    }
                }
                None => {
                    self.ended = true;
                    self.records.end();
                }
            }
        }
    }

    fn cut(&self, why: &str) -> Error {
        Error::Transport {
            url: self.body.url().to_string(),
            message: format!("a Bulk API result set cut short: {why}"),
        }
    }
}

/// CSV text cut into whole records as it arrives.
struct RecordCutter {
    /// Text received and not yet taken.
    text: BytesMut,
    /// Bytes taken off the front of `text` so far: the positions below count from the start.
    consumed: usize,
    /// Where each whole record in `text` ends (just after its line break).
    ends: VecDeque<usize>,
    /// Whether the end of `text` is inside quotes.
    in_quotes: bool,
    /// The most bytes an unfinished record may take.
    limit: usize,
}

impl RecordCutter {
    fn new(limit: usize) -> RecordCutter {
        RecordCutter { text: BytesMut::new(), consumed: 0, ends: VecDeque::new(), in_quotes: false, limit }
    }

    /// Whole records received and not taken.
    fn whole(&self) -> usize {
        self.ends.len()
    }

    /// Bytes received past the last whole record.
    fn pending(&self) -> usize {
        self.consumed + self.text.len() - self.ends.back().copied().unwrap_or(self.consumed)
    }

    /// Adds `bytes` and notes where the records they complete end; `false` once an unfinished
    /// record passes the limit.
    fn receive(&mut self, bytes: &[u8]) -> bool {
        let from = self.text.len();
        self.text.extend_from_slice(bytes);
        for at in memchr::memchr2_iter(b'"', b'\n', &self.text[from..]) {
            let at = from + at;
            if self.text[at] == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if !self.in_quotes {
                self.ends.push_back(self.consumed + at + 1);
            }
        }
        self.pending() <= self.limit
    }

    /// The text has ended: a last record without its line break is whole too.
    fn end(&mut self) {
        if !self.in_quotes && self.pending() > 0 {
            self.ends.push_back(self.consumed + self.text.len());
        }
    }

    /// Up to `count` whole records, parsed.
    fn take(&mut self, count: usize) -> std::result::Result<Vec<csv::StringRecord>, csv::Error> {
        let count = count.min(self.ends.len());
        let Some(end) = self.ends.drain(..count).next_back() else { return Ok(Vec::new()) };
        let records = self.text.split_to(end - self.consumed).freeze();
        self.consumed = end;
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(records.reader());
        let mut rows = Vec::with_capacity(count);
        let mut row = csv::StringRecord::new();
        while reader.read_record(&mut row)? {
            rows.push(row.clone());
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However the text is cut into chunks, the same records come out: quoted commas, doubled
    /// quotes and line breaks inside values included, and a last record without a line break.
    #[test]
    fn records_are_whole_however_the_text_arrives() {
        let text = "\"Id\",\"Name\",\"About\"\n\"005A\",\"O'Brien, \"\"Zo\u{eb}\"\"\",\"two\nlines\"\n\
                    \"005B\",\"\",\"\"\"\"\n\"005C\",\"c\",\"end\"";
        let expected = [
            vec!["Id", "Name", "About"],
            vec!["005A", "O'Brien, \"Zo\u{eb}\"", "two\nlines"],
            vec!["005B", "", "\""],
            vec!["005C", "c", "end"],
        ];
        for chunk in 1..=text.len() {
            let mut cutter = RecordCutter::new(1 << 20);
            let mut rows = Vec::new();
            for part in text.as_bytes().chunks(chunk) {
                assert!(cutter.receive(part));
                rows.extend(cutter.take(2).unwrap_or_else(|e| panic!("{e}")));
            }
            cutter.end();
            rows.extend(cutter.take(10).unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(cutter.pending(), 0);
            let rows: Vec<Vec<&str>> = rows.iter().map(|r| r.iter().collect()).collect();
            assert_eq!(rows, expected, "in chunks of {chunk} bytes");
        }
    }

    /// A record that never ends (a hostile or broken body) is refused at the limit, and one cut
    /// inside quotes is left unfinished, not taken.
    #[test]
    fn an_endless_record_is_refused_and_a_cut_one_is_not_whole() {
        let mut cutter = RecordCutter::new(100);
        assert!(cutter.receive(b"\"Id\"\n\""));
        assert!(!cutter.receive(&[b'x'; 200]));
        let mut cutter = RecordCutter::new(100);
        assert!(cutter.receive(b"\"Id\"\n\"005A\",\"half"));
        cutter.end();
        assert_eq!(cutter.whole(), 1, "the header only");
        assert!(cutter.pending() > 0);
    }
}
