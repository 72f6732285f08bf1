//! Small tables' first pages, gathered into composite calls: an org's tables are read a few at
//! once, and those expected to be small (every run's little tables; an incremental run's changes)
//! ask for their first page here instead of on their own. The first to ask waits a moment for
//! the others started with it or just after, then sends them all, up to five queries a call (one
//! API call, as Salesforce counts a composite call: see `sfetl_extract::first_pages`). With the
//! deletion checks' counts riding along, the benchmark's incremental run after a night costs 9
//! calls instead of 19.
//!
//! Any subrequest that fails (or a composite call that fails as a whole) is asked again on its
//! own, where the query's usual handling (describes after `INVALID_FIELD`, splits after
//! `QUERY_TIMEOUT`, retries) applies: a batched table behaves as an unbatched one, but for the
//! calls it saves.

use crate::pages::ArrowPages;
use futures_util::FutureExt;
use sfetl_extract::soql::SoqlQuery;
use sfetl_extract::{QUERIES_PER_CALL, QueryPage, SalesforceClient};
use sfetl_transform::DecodedPage;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// How long the first to ask waits for others (less when a call's worth have asked): tables
/// start as others end, a few milliseconds apart; a round trip saved is worth far more.
const WINDOW: Duration = Duration::from_millis(20);

/// The first-page requests of an org's run, waiting to be sent together.
#[derive(Default)]
pub struct FirstPages {
    waiting: Mutex<Vec<Waiting>>,
    /// Told when a call's worth of queries wait.
    full: Notify,
}

struct Waiting {
    query: SoqlQuery,
    pages: ArrowPages,
    answer: oneshot::Sender<Option<QueryPage<DecodedPage>>>,
}

/// A batched first page: the page, with the API calls to charge its table (the composite
/// call's, to the table that sent it); or `None`: ask on your own.
pub struct Batched {
    pub page: Option<QueryPage<DecodedPage>>,
    pub calls: u64,
}

impl FirstPages {
    /// The first page of `query`, from a composite call shared with the other tables asking now.
    pub async fn first_page(&self, client: &SalesforceClient, query: &SoqlQuery, pages: &ArrowPages) -> Batched {
        let (answer, answered) = oneshot::channel();
        let leads = {
            let Ok(mut waiting) = self.waiting.lock() else { return Batched { page: None, calls: 0 } };
            waiting.push(Waiting { query: query.clone(), pages: pages.clone(), answer });
            if waiting.len() == QUERIES_PER_CALL {
                self.full.notify_one();
            }
            waiting.len() == 1
        };
        if !leads {
            return Batched { page: answered.await.ok().flatten(), calls: 0 };
        }
        // The tables read at once are polled in turn: while this one waits, the others started
        // with it, or just after, reach their first page and wait here too.
        tokio::select! {
            _ = tokio::time::sleep(WINDOW) => {}
            _ = self.full.notified() => {}
        }
        let batch = self.waiting.lock().map(|mut waiting| std::mem::take(&mut *waiting)).unwrap_or_default();
        // A call's worth noticed, not by this leader's wait, must not wake the next one early.
        let _ = self.full.notified().now_or_never();
        let calls = AtomicU64::new(0);
        if batch.len() > 1 {
            let queries: Vec<(SoqlQuery, ArrowPages)> =
                batch.iter().map(|w| (w.query.clone(), w.pages.clone())).collect();
            let answers = match client.first_pages(&queries, &calls).await {
                Ok(answers) => answers.into_iter().map(Result::ok).collect(),
                Err(error) => {
                    tracing::debug!("a composite call failed ({error}); each query asks on its own");
                    Vec::new()
                }
            };
            let mut answers = answers.into_iter();
            for waiting in batch {
                // A table no longer waiting (its org failed) needs no answer.
                let _ = waiting.answer.send(answers.next().flatten());
            }
        } else {
            for waiting in batch {
                let _ = waiting.answer.send(None);
            }
        }
        Batched { page: answered.await.ok().flatten(), calls: calls.into_inner() }
    }
}
