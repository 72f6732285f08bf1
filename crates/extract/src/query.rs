//! The REST query API, one page at a time: `query?q=`, then `nextRecordsUrl` until `done`.
//!
//! A query ordered by `Id` survives the loss of its cursor: when the locator expires or the session
//! that owned it dies (`INVALID_QUERY_LOCATOR`, `INVALID_SESSION_ID`), the query is asked again
//! for the rows after the last Id received (`Id > 'last'`), so no row is missed or repeated.

use crate::client::SalesforceClient;
use crate::error::Result;
use crate::soql::{SoqlQuery, quote};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One page of records, as Salesforce sent them (with `attributes` and nested parents).
#[derive(Debug, Clone, Deserialize)]
pub struct QueryPage {
    /// Rows the whole query matches (repeated on every page; the first answer's count after a
    /// resumed query).
    #[serde(rename = "totalSize")]
    pub total_size: u64,
    pub done: bool,
    #[serde(rename = "nextRecordsUrl")]
    pub next_records_url: Option<String>,
    pub records: Vec<Map<String, Value>>,
}

/// How many times one query may be restarted after losing its cursor.
const MAX_RESUMES: u32 = 10;

/// A query being paged through. Each `next_page` is one API call (more after a failure).
pub struct QueryStream<'c> {
    client: &'c SalesforceClient,
    query: SoqlQuery,
    include_deleted: bool,
    next: Option<String>,
    started: bool,
    total_size: Option<u64>,
    last_id: Option<String>,
    resumes: u32,
}

impl SalesforceClient {
    /// Starts a query; no request is made until the first `next_page`. Order it by `Id` to make
    /// it resumable.
    pub fn query(&self, query: &SoqlQuery) -> QueryStream<'_> {
        QueryStream {
            client: self,
            query: query.clone(),
            include_deleted: false,
            next: None,
            started: false,
            total_size: None,
            last_id: None,
            resumes: 0,
        }
    }

    /// Like `query`, through `queryAll` (deleted and archived rows too).
    pub fn query_all(&self, query: &SoqlQuery) -> QueryStream<'_> {
        QueryStream { include_deleted: true, ..self.query(query) }
    }
}

impl QueryStream<'_> {
    /// Times the query was asked again after losing its cursor.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    fn resumable(&self) -> bool {
        self.query.order_by.as_deref().is_some_and(|o| o.trim().eq_ignore_ascii_case("Id"))
    }

    /// The query as asked now: after a lost cursor, only the rows past the last Id received.
    fn current_soql(&self) -> String {
        match &self.last_id {
            None => self.query.to_string(),
            Some(last) => {
                let after = format!("Id > {}", quote(last));
                let filter = match &self.query.filter {
                    Some(filter) => format!("({filter}) AND {after}"),
                    None => after,
                };
                SoqlQuery { filter: Some(filter), ..self.query.clone() }.to_string()
            }
        }
    }

    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<QueryPage>> {
        loop {
            let result: Result<QueryPage> = match (&self.next, self.started) {
                (None, true) => return Ok(None),
                (Some(next), _) => self.client.get(next, &[]).await,
                (None, false) => {
                    let resource = if self.include_deleted { "queryAll" } else { "query" };
                    let path = format!("/services/data/v{}/{resource}", self.client.api_version());
                    self.client.get(&path, &[("q", self.current_soql().as_str())]).await
                }
            };
            match result {
                Ok(mut page) => {
                    self.started = true;
                    self.next = if page.done { None } else { page.next_records_url.clone() };
                    let total = *self.total_size.get_or_insert(page.total_size);
                    page.total_size = total;
                    if let Some(id) = page.records.last().and_then(|r| r.get("Id")).and_then(Value::as_str) {
                        self.last_id = Some(id.to_string());
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
                Err(e) => return Err(e),
            }
        }
    }
}
