//! A big table read through several REST query cursors at once, each over its own range of Ids
//! (as Salesforce's PK chunking splits a Bulk job): the pages of a sequential read each wait a
//! round trip, and in an org a continent away most of a read is that wait.
//!
//! The first page (ordered by Id) was read as usual; the rest is cut at Ids interpolated between
//! its last Id and the object's last ([`sfetl_extract::ids::id_cuts`]). The last range has no
//! upper bound, so rows created meanwhile are not missed. Each range is an ordinary query ordered
//! by Id: it resumes after a lost cursor and splits after a timeout on its own.
//!
//! The ranges partition the rows if Salesforce compares Ids byte by byte, as its own PK chunking
//! and keyset paging on Id assume. Every row is checked to lie within its range in that order:
//! whatever the org's order, the ranges cover every row, so if each row lies within the range
//! that returned it, none came twice; an org that answered otherwise fails the table, naming the
//! setting that reads page after page instead.
//!
//! Salesforce keeps a query cursor open per range. Before API 56.0 a user had at most 10 open at
//! once, the oldest released when an 11th opened ("QueryLocator", SOAP API Developer Guide).
//! With the 56.0 release the limit was removed, "universal, and applies to all versions" of the
//! APIs ("API Query Cursor Limits", Salesforce App Limits Cheatsheet); the simulator has none.
//! Asked for an older version sfetl still stays within 10 (the org's tables read at once hold one
//! each, the ranges share the rest): right under either reading, at the cost of fewer ranges.

use crate::OrgError;
use crate::pages::ArrowPages;
use arrow::array::{AsArray, RecordBatch};
use futures_util::stream::{BoxStream, SelectAll, StreamExt};
use sfetl_extract::soql::{SoqlQuery, quote};
use sfetl_extract::{QueryPage, SalesforceClient};
use sfetl_transform::DecodedPage;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Open query cursors a user may hold at once on API versions before 56.0.
const CURSORS_PER_USER: usize = 10;

/// Cursors an org's big tables may open beyond the one each table read at once holds: unlimited
/// from API 56.0, the rest of the 10 a user could hold before.
pub fn spare_cursors(api_version: &str, tables_at_once: usize) -> usize {
    let major = api_version.split('.').next().and_then(|major| major.parse::<u32>().ok());
    if major.is_some_and(|major| major >= 56) {
        Semaphore::MAX_PERMITS
    } else {
        CURSORS_PER_USER.saturating_sub(tables_at_once)
    }
}

/// The ranges being read; pages come in the order they arrive.
pub struct RangeReads<'c> {
    pages: SelectAll<BoxStream<'c, sfetl_extract::Result<RangePage>>>,
    /// Each range's Ids: after the first, up to the second (inclusive; `None`: no end).
    bounds: Vec<(String, Option<String>)>,
    object: String,
    /// Set when a range fails: the others end after the page they are reading.
    stop: Arc<AtomicBool>,
    /// The cursors the ranges hold beyond the table's own.
    _permits: Vec<OwnedSemaphorePermit>,
    /// So far, over the ranges: API calls (the last Id's query too), resumes after a lost
    /// cursor, splits after a timeout.
    pub tally: Tally,
    pub ranges: usize,
}

/// A page of one range (its index), with what it took.
type RangePage = (QueryPage<DecodedPage>, Tally, usize);

/// What queries cost and went through.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub calls: u64,
    pub resumes: u64,
    pub splits: u64,
}

impl Tally {
    /// What `stream` took so far.
    pub fn of(stream: &sfetl_extract::QueryStream<'_, ArrowPages>) -> Tally {
        Tally { calls: stream.api_calls(), resumes: u64::from(stream.resumes()), splits: stream.splits() as u64 }
    }

    fn since(self, before: Tally) -> Tally {
        Tally {
            calls: self.calls - before.calls,
            resumes: self.resumes - before.resumes,
            splits: self.splits - before.splits,
        }
    }

    pub fn add(&mut self, more: Tally) {
        self.calls += more.calls;
        self.resumes += more.resumes;
        self.splits += more.splits;
    }
}

/// Cursors this table may open beyond its own (up to `wanted`), taken from the org's spares.
pub fn take_spares(spares: &Arc<Semaphore>, wanted: usize) -> Vec<OwnedSemaphorePermit> {
    std::iter::from_fn(|| spares.clone().try_acquire_owned().ok()).take(wanted).collect()
}

impl<'c> RangeReads<'c> {
    /// Cuts the rows of `query` (ordered by Id) after Id `after` into one range more than
    /// `permits`, and starts reading them; `None` when the rows are too few to cut (then the
    /// permits go back). Costs one call, for the object's last Id.
    pub async fn open(
        client: &'c SalesforceClient,
        query: &SoqlQuery,
        pages: &ArrowPages,
        after: &str,
        permits: Vec<OwnedSemaphorePermit>,
    ) -> Result<Option<RangeReads<'c>>, OrgError> {
        let last_query =
            SoqlQuery { fields: vec!["Id".into()], order_by: Some("Id DESC".into()), limit: Some(1), ..query.clone() };
        let mut last = client.query(&last_query);
        let page = last.next_page().await?;
        let calls = last.api_calls();
        let last_id = page.and_then(|p| p.records.first()?.get("Id")?.as_str().map(str::to_string));
        let cuts = last_id.map(|last| sfetl_extract::ids::id_cuts(after, &last, permits.len() + 1)).unwrap_or_default();
        if cuts.is_empty() {
            return Ok(None);
        }
        let mut streams = SelectAll::new();
        let mut bounds = Vec::new();
        let stop = Arc::new(AtomicBool::new(false));
        for i in 0..=cuts.len() {
            let from = if i == 0 { after } else { cuts[i - 1].as_str() };
            let mut range = query.clone().filter(format!("Id > {}", quote(from)));
            if let Some(cut) = cuts.get(i) {
                range = range.filter(format!("Id <= {}", quote(cut)));
            }
            streams.push(range_pages(client.query_decoded(&range, pages.clone()), i, stop.clone()));
            bounds.push((from.to_string(), cuts.get(i).cloned()));
        }
        let ranges = streams.len();
        // The permits not needed (cuts too close to make them all) go back now.
        let permits = permits.into_iter().take(ranges - 1).collect();
        let tally = Tally { calls, ..Tally::default() };
        let object = query.object.clone();
        Ok(Some(RangeReads { pages: streams, bounds, object, stop, _permits: permits, tally, ranges }))
    }

    /// The next page of any range, or `None` when every range is read. After an error the other
    /// ranges' requests under way are awaited (their pages dropped): a request cut off might
    /// or might not count against the org's quota, and the calls reported must be the calls
    /// Salesforce counted.
    pub async fn next_page(&mut self) -> Result<Option<QueryPage<DecodedPage>>, OrgError> {
        let (page, tally, range) = match self.pages.next().await {
            None => return Ok(None),
            Some(Ok(next)) => next,
            Some(Err(error)) => {
                self.stop.store(true, Ordering::SeqCst);
                while let Some(next) = self.pages.next().await {
                    if let Ok((_, tally, _)) = next {
                        self.tally.add(tally);
                    }
                }
                return Err(error.into());
            }
        };
        self.tally.add(tally);
        if let Ok(batch) = &page.records.batch
            && let Some(id) = outside(batch, &self.bounds[range])
        {
            let (from, to) = &self.bounds[range];
            return Err(OrgError::IdOrder {
                object: self.object.clone(),
                id,
                range: format!("after {from}{}", to.as_ref().map(|to| format!(" up to {to}")).unwrap_or_default()),
            });
        }
        Ok(Some(page))
    }
}

/// The first Id of the batch (its first column) that lies outside `(from, to]`, byte by byte.
fn outside(batch: &RecordBatch, (from, to): &(String, Option<String>)) -> Option<String> {
    let ids = batch.column(0).as_string_opt::<i32>()?;
    ids.iter()
        .flatten()
        .find(|id| *id <= from.as_str() || to.as_ref().is_some_and(|to| *id > to.as_str()))
        .map(str::to_string)
}

/// Range `index`'s pages, each with what it took (retries, resumes and splits included).
fn range_pages<'c>(
    stream: sfetl_extract::QueryStream<'c, ArrowPages>,
    index: usize,
    stop: Arc<AtomicBool>,
) -> BoxStream<'c, sfetl_extract::Result<RangePage>> {
    futures_util::stream::unfold(Some((stream, Tally::default())), move |state| {
        let stop = stop.clone();
        async move {
            let (mut stream, counted) = state?;
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            match stream.next_page().await {
                Ok(Some(page)) => {
                    let now = Tally::of(&stream);
                    Some((Ok((page, now.since(counted), index)), Some((stream, now))))
                }
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use arrow::array::{RecordBatch, StringArray};
    use std::sync::Arc;

    #[test]
    fn a_row_outside_its_range_is_found() {
        let batch = |ids: &[&str]| {
            let column = Arc::new(StringArray::from(ids.to_vec()));
            RecordBatch::try_from_iter([("id", column as arrow::array::ArrayRef)]).unwrap_or_else(|e| panic!("{e}"))
        };
        let bounds = ("005B".to_string(), Some("005D".to_string()));
        assert_eq!(super::outside(&batch(&["005C", "005D"]), &bounds), None);
        assert_eq!(super::outside(&batch(&["005C", "005b"]), &bounds).as_deref(), Some("005b"));
        assert_eq!(super::outside(&batch(&["005B"]), &bounds).as_deref(), Some("005B"));
        assert_eq!(super::outside(&batch(&["005z"]), &("005B".to_string(), None)), None);
    }

    #[test]
    fn ten_cursors_before_api_56_and_no_limit_since() {
        assert_eq!(super::spare_cursors("55.0", 4), 6);
        assert_eq!(super::spare_cursors("52.0", 12), 0);
        assert!(super::spare_cursors("56.0", 4) > 1000);
        assert!(super::spare_cursors("66.0", 64) > 1000);
    }
}
