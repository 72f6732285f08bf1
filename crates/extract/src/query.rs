//! The REST query API, one page at a time: `query?q=`, then `nextRecordsUrl` until `done`.

use crate::client::SalesforceClient;
use crate::error::Result;
use crate::soql::SoqlQuery;
use serde::Deserialize;
use serde_json::{Map, Value};

/// One page of records, as Salesforce sent them (with `attributes` and nested parents).
#[derive(Debug, Clone, Deserialize)]
pub struct QueryPage {
    /// Rows the whole query matches (repeated on every page).
    #[serde(rename = "totalSize")]
    pub total_size: u64,
    pub done: bool,
    #[serde(rename = "nextRecordsUrl")]
    pub next_records_url: Option<String>,
    pub records: Vec<Map<String, Value>>,
}

/// A query being paged through. Each `next_page` is one API call.
pub struct QueryStream<'c> {
    client: &'c SalesforceClient,
    soql: String,
    next: Option<String>,
    started: bool,
    include_deleted: bool,
}

impl SalesforceClient {
    /// Starts a query; no request is made until the first `next_page`.
    pub fn query(&self, query: &SoqlQuery) -> QueryStream<'_> {
        QueryStream { client: self, soql: query.to_string(), next: None, started: false, include_deleted: false }
    }

    /// Like `query`, through `queryAll` (deleted and archived rows too).
    pub fn query_all(&self, query: &SoqlQuery) -> QueryStream<'_> {
        QueryStream { include_deleted: true, ..self.query(query) }
    }
}

impl QueryStream<'_> {
    pub fn soql(&self) -> &str {
        &self.soql
    }

    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<QueryPage>> {
        let page: QueryPage = match (&self.next, self.started) {
            (None, true) => return Ok(None),
            (Some(next), _) => self.client.get(next, &[]).await?,
            (None, false) => {
                let resource = if self.include_deleted { "queryAll" } else { "query" };
                let path = format!("/services/data/v{}/{resource}", self.client.api_version());
                self.client.get(&path, &[("q", self.soql.as_str())]).await?
            }
        };
        self.started = true;
        self.next = if page.done { None } else { page.next_records_url.clone() };
        Ok(Some(page))
    }
}
