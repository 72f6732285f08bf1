//! The REST query API, one page at a time: `query?q=`, then `nextRecordsUrl` until `done`.
//!
//! A query ordered by `Id` survives the loss of its cursor: when the locator expires or the session
//! that owned it dies (`INVALID_QUERY_LOCATOR`, `INVALID_SESSION_ID`), the query is asked again
//! for the rows after the last Id received (`Id > 'last'`), so no row is missed or repeated.
//!
//! A query Salesforce gives up on (`QUERY_TIMEOUT`, which retrying does not cure) is split on
//! `SystemModstamp`: the time range is halved and each half is asked for in turn, halving again
//! until each part answers.

use crate::client::SalesforceClient;
use crate::error::{Error, Result};
use crate::records::{JsonRecords, RecordDecoder};
use crate::soql::{SoqlQuery, datetime, quote};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// One page of records: by default JSON maps with their nested parents (without the
/// `attributes` objects, which nothing reads), or what the query's [`RecordDecoder`] made of them.
#[derive(Debug, Clone)]
pub struct QueryPage<P = Vec<Map<String, Value>>> {
    /// Rows the whole query matches (repeated on every page; the first answer's count after a
    /// resumed query).
    pub total_size: u64,
    pub done: bool,
    pub next_records_url: Option<String>,
    pub records: P,
}

/// A REST query page's envelope, its `records` decoded by `D` in the same pass.
pub(crate) struct PageSeed<'d, D>(pub(crate) &'d D);

impl<'de, D: RecordDecoder> DeserializeSeed<'de> for PageSeed<'_, D> {
    type Value = QueryPage<D::Page>;
    fn deserialize<De: Deserializer<'de>>(self, deserializer: De) -> std::result::Result<Self::Value, De::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, D: RecordDecoder> Visitor<'de> for PageSeed<'_, D> {
    type Value = QueryPage<D::Page>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a query page")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let (mut total_size, mut done, mut next_records_url, mut records) = (None, None, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "totalSize" => total_size = Some(map.next_value()?),
                "done" => done = Some(map.next_value()?),
                "nextRecordsUrl" => next_records_url = map.next_value()?,
                "records" => records = Some(map.next_value_seed(RecordsSeed(self.0))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(QueryPage {
            total_size: total_size.ok_or_else(|| A::Error::missing_field("totalSize"))?,
            done: done.ok_or_else(|| A::Error::missing_field("done"))?,
            next_records_url,
            records: records.ok_or_else(|| A::Error::missing_field("records"))?,
        })
    }
}

/// A whole body as one page, nothing after it. The body is checked to be UTF-8 at once, rather
/// than string by string (which took a third of the parse).
fn decode_page<D: RecordDecoder>(decoder: &D, body: &[u8]) -> serde_json::Result<QueryPage<D::Page>> {
    let text =
        std::str::from_utf8(body).map_err(|e| serde::de::Error::custom(format!("the page is not UTF-8: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let page = PageSeed(decoder).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(page)
}

struct RecordsSeed<'d, D>(&'d D);

impl<'de, D: RecordDecoder> DeserializeSeed<'de> for RecordsSeed<'_, D> {
    type Value = D::Page;
    fn deserialize<De: Deserializer<'de>>(self, deserializer: De) -> std::result::Result<Self::Value, De::Error> {
        self.0.decode_json(deserializer)
    }
}

/// How many times one query may be restarted after losing its cursor.
const MAX_RESUMES: u32 = 10;

/// A `SystemModstamp` range still to read, `[from, to)` in epoch milliseconds, with the last Id
/// already received from it.
#[derive(Debug, Clone)]
struct Window {
    from: i64,
    to: i64,
    after_id: Option<String>,
}

/// A query being paged through. Each `next_page` is one API call (more after a failure).
pub struct QueryStream<'c, D: RecordDecoder = JsonRecords> {
    client: &'c SalesforceClient,
    decoder: D,
    query: SoqlQuery,
    include_deleted: bool,
    next: Option<String>,
    started: bool,
    total_size: Option<u64>,
    last_id: Option<String>,
    resumes: u32,
    /// The time range being read, once the query had to be split, and the ranges still to read.
    window: Option<Window>,
    pending: Vec<Window>,
    received: u64,
    received_before_window: u64,
    splits: usize,
    calls: AtomicU64,
    /// Every `nextRecordsUrl` followed: one seen again means the server is going round.
    followed: std::collections::HashSet<String>,
    /// Pages a call brought beyond the one returned, in order.
    ahead: VecDeque<QueryPage<D::Page>>,
    /// Rows the current cursor holds after the pages received, by its `totalSize`. A page is
    /// never bigger than the batch size asked (it may be smaller), so at least that many rows
    /// divided by the batch size pages are left: the pages one call may safely chain.
    cursor_left: Option<u64>,
    /// Pages one call may bring; 1 once a chained page failed where the one before it promised more.
    pages_per_call: usize,
    /// A page a call until the caller has chosen how to read the rest ([`QueryStream::hold_chaining`]).
    held: bool,
}

impl SalesforceClient {
    /// Starts a query; no request is made until the first `next_page`. Order it by `Id` to make
    /// it resumable.
    pub fn query(&self, query: &SoqlQuery) -> QueryStream<'_> {
        self.query_decoded(query, JsonRecords)
    }

    /// Like `query`, each page's records decoded by `decoder`.
    pub fn query_decoded<D: RecordDecoder>(&self, query: &SoqlQuery, decoder: D) -> QueryStream<'_, D> {
        QueryStream {
            client: self,
            decoder,
            query: query.clone(),
            include_deleted: false,
            next: None,
            started: false,
            total_size: None,
            last_id: None,
            resumes: 0,
            window: None,
            pending: Vec::new(),
            received: 0,
            received_before_window: 0,
            followed: std::collections::HashSet::new(),
            splits: 0,
            calls: AtomicU64::new(0),
            ahead: VecDeque::new(),
            cursor_left: None,
            pages_per_call: self.pages_per_call(),
            held: false,
        }
    }

    /// A query whose first page was read already (in a composite call): the stream goes on with
    /// the pages after it.
    pub fn query_after<D: RecordDecoder>(
        &self,
        query: &SoqlQuery,
        decoder: D,
        first: &QueryPage<D::Page>,
    ) -> QueryStream<'_, D> {
        let mut stream = self.query_decoded(query, decoder);
        stream.started = true;
        stream.next = if first.done { None } else { first.next_records_url.clone() };
        stream.followed.extend(stream.next.clone());
        stream.total_size = Some(first.total_size);
        stream.received = D::rows(&first.records) as u64;
        stream.cursor_left = Some(first.total_size.saturating_sub(stream.received));
        stream.last_id = D::last_id(&first.records);
        stream
    }

    /// Like `query`, through `queryAll` (deleted and archived rows too).
    pub fn query_all(&self, query: &SoqlQuery) -> QueryStream<'_> {
        QueryStream { include_deleted: true, ..self.query(query) }
    }
}

impl<D: RecordDecoder> QueryStream<'_, D> {
    /// Times the query was asked again after losing its cursor.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    fn resumable(&self) -> bool {
        self.query.order_by.as_deref().is_some_and(|o| o.trim().eq_ignore_ascii_case("Id"))
    }

    /// API calls this query made so far, retries included.
    pub fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Times the query had to be split after `QUERY_TIMEOUT`.
    pub fn splits(&self) -> usize {
        self.splits
    }

    /// The query as asked now: within the current time window, past the last Id received.
    fn current_soql(&self) -> String {
        let mut query = self.query.clone();
        if let Some(window) = &self.window {
            query = query
                .filter(format!("SystemModstamp >= {}", datetime(window.from)))
                .filter(format!("SystemModstamp < {}", datetime(window.to)));
        }
        if let Some(last) = &self.last_id {
            query = query.filter(format!("Id > {}", quote(last)));
        }
        query.to_string()
    }

    /// Halves the current time window (the whole history, at first); false when it is already
    /// down to a second and cannot be split further.
    fn split(&mut self) -> bool {
        let current = self.window.take().unwrap_or(Window {
            from: 0,
            to: chrono::Utc::now().timestamp_millis() + 86_400_000,
            after_id: None,
        });
        if current.to - current.from < 2_000 {
            self.window = Some(current);
            return false;
        }
        let middle = current.from + (current.to - current.from) / 2 / 1000 * 1000;
        // Rows of the window already received (ordered by Id) may lie in either half.
        let after_id = self.last_id.clone();
        self.pending.push(Window { from: middle, to: current.to, after_id: after_id.clone() });
        self.window = Some(Window { from: current.from, to: middle, after_id });
        self.received_before_window = self.received;
        self.splits += 1;
        true
    }

    /// Moves on to the next pending time window; false when none is left.
    fn next_window(&mut self) -> bool {
        match self.pending.pop() {
            Some(window) => {
                self.last_id = window.after_id.clone();
                self.window = Some(window);
                self.received_before_window = self.received;
                self.next = None;
                self.started = false;
                true
            }
            None => false,
        }
    }

    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<QueryPage<D::Page>>> {
        loop {
            if self.next.is_none() && self.started {
                if self.next_window() {
                    continue;
                }
                return Ok(None);
            }
            let decode = |body: &[u8]| decode_page(&self.decoder, body);
            let chained = self.pages_to_chain();
            let result = match (self.ahead.pop_front(), &self.next) {
                (Some(page), _) => Ok(page),
                (None, Some(next)) if chained > 1 => {
                    let next = next.clone();
                    self.next_pages(&next, chained).await
                }
                (None, Some(next)) => self.next_page_alone(next).await,
                (None, None) => {
                    let resource = if self.include_deleted { "queryAll" } else { "query" };
                    let path = format!("/services/data/v{}/{resource}", self.client.api_version());
                    self.client.get_decoded(&path, &[("q", self.current_soql().as_str())], &self.calls, decode).await
                }
            };
            match result {
                Ok(mut page) => {
                    let rows = D::rows(&page.records) as u64;
                    if !self.started {
                        // A window's first page counts what it holds; earlier windows are done.
                        let estimate = self.received_before_window + page.total_size;
                        self.total_size = Some(self.total_size.map_or(estimate, |t| t.max(estimate)));
                        self.cursor_left = Some(page.total_size);
                    }
                    self.cursor_left = self.cursor_left.map(|left| left.saturating_sub(rows));
                    self.started = true;
                    self.next = if page.done { None } else { page.next_records_url.clone() };
                    // A page that is not the last brings records and a cursor not followed before:
                    // otherwise the query would loop until the quota guard stopped it.
                    let looping = |why: &str| Error::Looping { object: self.query.object.clone(), why: why.into() };
                    match &self.next {
                        None if !page.done => return Err(looping("a page that is not the last has no next page")),
                        Some(_) if D::rows(&page.records) == 0 => {
                            return Err(looping("a page with no records is not the last"));
                        }
                        Some(next) if !self.followed.insert(next.clone()) => {
                            return Err(looping("a next page that was already read"));
                        }
                        _ => {}
                    }
                    self.received += rows;
                    page.total_size = self.total_size.unwrap_or(page.total_size);
                    if let Some(id) = D::last_id(&page.records) {
                        self.last_id = Some(id);
                    }
                    return Ok(Some(page));
                }
                Err(e)
                    if (e.is_invalid_locator() || e.is_invalid_session())
                        && self.resumable()
                        && self.resumes < MAX_RESUMES =>
                {
                    self.resumes += 1;
                    tracing::info!(object = %self.query.object, after = ?self.last_id, "query cursor lost ({e}); asking again for the rest");
                    if e.is_invalid_session() {
                        self.client.login().await?;
                    }
                    self.next = None;
                    self.started = false;
                }
                Err(e) if e.is_query_timeout() && self.next.is_none() && self.resumable() => {
                    if !self.split() {
                        return Err(e);
                    }
                    tracing::info!(object = %self.query.object, "query timed out; splitting it by SystemModstamp");
                    self.started = false;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// While `held`, a page a call: a caller that may read the rest another way (ranges of Ids,
    /// a Bulk job) after the next page does not pay for pages it would drop, and times the next
    /// page's round trip alone.
    pub fn hold_chaining(&mut self, held: bool) {
        self.held = held;
    }

    /// Pages the next call may bring: as many as the cursor surely has left, up to the setting.
    fn pages_to_chain(&self) -> usize {
        if self.held {
            return 1;
        }
        let batch = u64::from(self.client.batch_size()).max(1);
        let surely = self.cursor_left.map_or(1, |left| left.div_ceil(batch));
        (surely.min(self.pages_per_call as u64) as usize).max(1)
    }

    /// The page at `next` (a `nextRecordsUrl`), in a call of its own.
    async fn next_page_alone(&self, next: &str) -> Result<QueryPage<D::Page>> {
        self.client.get_decoded(next, &[], &self.calls, |body| decode_page(&self.decoder, body)).await
    }

    /// The pages the next call would ask for, when they are all the query has left (the
    /// cursor's `totalSize` promises no more): a caller may then ask for them in a composite
    /// call shared with other queries, and hand the answers over ([`QueryStream::take_pages`]).
    pub fn last_pages(&self) -> Option<crate::PageAsk> {
        let next = self.next.as_ref().filter(|_| self.ahead.is_empty() && self.started)?;
        let count = self.pages_to_chain();
        let batch = u64::from(self.client.batch_size()).max(1);
        let left = self.cursor_left?;
        (left <= count as u64 * batch).then(|| crate::PageAsk::Next { url: next.clone(), count })
    }

    /// Pages asked for elsewhere, as [`QueryStream::last_pages`] said (with the calls they
    /// cost): the next `next_page` calls return them. Answers that failed are asked again by
    /// the stream itself (an empty list, or a failed first page: that page on its own). False
    /// when no page was taken: the next page is then a call of the stream's own.
    pub fn take_pages(&mut self, answers: Vec<crate::FirstPage<D::Page>>, calls: u64) -> bool {
        self.calls.fetch_add(calls, Ordering::SeqCst);
        let mut answers = answers.into_iter();
        let Some(Ok(first)) = answers.next() else { return false };
        self.ahead.push_back(first);
        self.keep_chained(answers);
        true
    }

    /// `count` pages from `next` on in one composite call: the first page's answer, with the
    /// pages after it kept in `ahead`. When the first subrequest fails (or the call), that page
    /// is asked again on its own, where the usual handling (retries, a lost cursor) applies.
    async fn next_pages(&mut self, next: &str, count: usize) -> Result<QueryPage<D::Page>> {
        let object = &self.query.object;
        let answers = match self.client.next_pages(next, count, &self.decoder, &self.calls).await {
            Ok(answers) => answers,
            Err(e) => {
                tracing::info!(%object, "a composite call of pages failed ({e}); reading page by page");
                self.pages_per_call = 1;
                Vec::new()
            }
        };
        let mut answers = answers.into_iter();
        let Some(Ok(first)) = answers.next() else { return self.next_page_alone(next).await };
        if !first.done {
            self.keep_chained(answers);
        }
        Ok(first)
    }

    /// The answers after a chain's first page, kept in `ahead` while each page before promised
    /// more. A chained page that fails is read by the next call, from the last page received;
    /// when the page before it promised more, the rest of the query is read page by page: an
    /// org that refuses references costs one call more, not the read.
    fn keep_chained(&mut self, answers: impl Iterator<Item = crate::FirstPage<D::Page>>) {
        let mut promised = self.ahead.back().is_none_or(|page| !page.done);
        for answer in answers {
            match answer {
                Ok(page) if promised => {
                    promised = !page.done;
                    self.ahead.push_back(page);
                }
                Ok(_) => break,
                Err(e) => {
                    if promised {
                        tracing::info!(object = %self.query.object, "a chained page failed ({e}); reading page by page");
                        self.pages_per_call = 1;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::client_of;

    async fn sim(users: usize, tweak: impl FnOnce(&mut sfetl_sim::SimConfig)) -> sfetl_sim::Sim {
        let mut config = sfetl_sim::SimConfig::new(sfetl_sim::OrgSpec::new(7, users));
        tweak(&mut config);
        sfetl_sim::Sim::start(config).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every User Id in pages of 500, `pages_per_call` to a call; the Ids in order and the calls.
    async fn read_ids(sim: &sfetl_sim::Sim, pages_per_call: usize) -> (Vec<String>, u64) {
        let settings = crate::ConnectionSettings { batch_size: 500, pages_per_call, ..Default::default() };
        let client = client_of(sim, settings);
        let mut stream = client.query(&SoqlQuery::new("User", ["Id"]).order_by("Id"));
        let mut ids = Vec::new();
        while let Some(page) = stream.next_page().await.unwrap_or_else(|e| panic!("{e}")) {
            ids.extend(page.records.iter().filter_map(|r| r["Id"].as_str().map(String::from)));
        }
        (ids, stream.api_calls())
    }

    /// Chained subrequests that failed: none when each call asks only for the pages promised.
    fn failed_subrequests(sim: &sfetl_sim::Sim) -> usize {
        sim.request_log().iter().filter(|r| r.path.starts_with("composite:") && r.status != 200).count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_chained_in_composite_calls_bring_every_row_once_in_fewer_calls() {
        let sim = sim(4_000, |_| {}).await;
        let (one_by_one, calls) = read_ids(&sim, 1).await;
        let pages = one_by_one.len().div_ceil(500) as u64;
        assert_eq!(calls, pages, "a call per page");
        let (chained, calls) = read_ids(&sim, 3).await;
        assert_eq!(chained, one_by_one, "the same rows in the same order");
        // The first page on its own (its totalSize tells how many follow), the rest three a call.
        assert_eq!(calls, 1 + (pages - 1).div_ceil(3));
        assert_eq!(failed_subrequests(&sim), 0);
        let mut unique = chained.clone();
        unique.dedup();
        assert_eq!(unique.len(), chained.len(), "no row twice");
    }

    /// Salesforce may answer smaller pages than asked (salesforce-api.md, section 2): more pages
    /// than the batch size promises, never fewer, so a chain never runs past the last page.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smaller_pages_than_asked_are_chained_within_what_the_cursor_holds() {
        let sim = sim(4_000, |config| config.max_page_size = Some(300)).await;
        let (one_by_one, single_calls) = read_ids(&sim, 1).await;
        let (chained, calls) = read_ids(&sim, 5).await;
        assert_eq!(chained, one_by_one);
        assert!(calls < single_calls / 2, "{calls} calls against {single_calls}");
        assert_eq!(failed_subrequests(&sim), 0);
    }

    /// The other reading of the composite resource: an org (or a proxy) that does not resolve
    /// `@{a0p0.nextRecordsUrl}`. The read completes, page by page after the first call found out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_org_that_does_not_resolve_references_is_read_page_by_page() {
        let sim = sim(4_000, |config| config.composite_references = false).await;
        let (one_by_one, single_calls) = read_ids(&sim, 1).await;
        let (chained, calls) = read_ids(&sim, 3).await;
        assert_eq!(chained, one_by_one);
        assert_eq!(calls, single_calls, "the composite call still brought its first page");
        let composites = sim.request_log().iter().filter(|r| r.path.ends_with("/composite")).count();
        assert_eq!(composites, 1, "chaining was tried once");
    }
}
