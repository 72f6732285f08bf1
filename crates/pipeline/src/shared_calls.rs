//! Small reads' pages, gathered into composite calls: an org's tables are read several at once,
//! and those expected to be small (every run's little tables; an incremental run's changes) ask
//! for their first page here instead of on their own, and for their last pages too when the
//! cursor's `totalSize` says they are all that is left. The first to ask waits a moment for the
//! others started with it or just after, then sends them all, up to five query operations a
//! call (one API call, as Salesforce counts a composite call: see `sfetl_extract::PageAsk`).
//! With the deletion checks' counts riding along, the benchmark's incremental run after a night
//! costs 4 calls instead of 19.
//!
//! Any subrequest that fails (or a composite call that fails as a whole) is asked again on its
//! own, where the query's usual handling (describes after `INVALID_FIELD`, splits after
//! `QUERY_TIMEOUT`, retries) applies: a batched table behaves as an unbatched one, but for the
//! calls it saves.

use crate::pages::ArrowPages;
use futures_util::FutureExt;
use sfetl_extract::soql::SoqlQuery;
use sfetl_extract::{FirstPage, PageAsk, QUERIES_PER_CALL, QueryPage, SalesforceClient};
use sfetl_transform::DecodedPage;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// How long the first to ask waits for others (less when a call's worth have asked): tables
/// start as others end, a few milliseconds apart; a round trip saved is worth far more.
const WINDOW: Duration = Duration::from_millis(20);

/// The page requests of an org's run, waiting to be sent together.
#[derive(Default)]
pub struct SharedCalls {
    waiting: Mutex<Vec<Waiting>>,
    /// Told when a call's worth of query operations wait.
    full: Notify,
    /// Composite calls on their way, and told when one is answered: the tables whose pages
    /// they bring may ask for their last pages next, so a leader waits for them.
    in_flight: AtomicUsize,
    answered: Notify,
}

struct Waiting {
    ask: PageAsk,
    pages: ArrowPages,
    answer: oneshot::Sender<Vec<FirstPage<DecodedPage>>>,
}

/// The answers to one ask (none: ask on your own), with the API calls to charge its table (the
/// composite calls', to the table that sent them).
pub struct Shared {
    pub answers: Vec<FirstPage<DecodedPage>>,
    pub calls: u64,
}

impl SharedCalls {
    /// The first page of `query`, from a composite call shared with the other tables asking now
    /// (`None`: ask on your own), and the calls to charge.
    pub async fn first_page(
        &self,
        client: &SalesforceClient,
        query: &SoqlQuery,
        pages: &ArrowPages,
    ) -> (Option<QueryPage<DecodedPage>>, u64) {
        let shared = self.pages(client, PageAsk::First(query.clone()), pages).await;
        (shared.answers.into_iter().next().and_then(Result::ok), shared.calls)
    }

    /// The pages `ask` wants, from composite calls shared with the other tables asking now.
    pub async fn pages(&self, client: &SalesforceClient, ask: PageAsk, pages: &ArrowPages) -> Shared {
        let (answer, answered) = oneshot::channel();
        let leads = {
            let Ok(mut waiting) = self.waiting.lock() else { return Shared { answers: Vec::new(), calls: 0 } };
            let before: usize = waiting.iter().map(|w| w.ask.subrequests()).sum();
            let after = before + ask.subrequests();
            waiting.push(Waiting { ask, pages: pages.clone(), answer });
            if before < QUERIES_PER_CALL && after >= QUERIES_PER_CALL {
                self.full.notify_one();
            }
            waiting.len() == 1
        };
        if !leads {
            return Shared { answers: answered.await.unwrap_or_default(), calls: 0 };
        }
        // The tables read at once are polled in turn: while this one waits, the others started
        // with it, or just after, reach their first page and wait here too.
        self.gather().await;
        let batch = self.waiting.lock().map(|mut waiting| std::mem::take(&mut *waiting)).unwrap_or_default();
        // A call's worth noticed, not by this leader's wait, must not wake the next one early.
        let _ = self.full.notified().now_or_never();
        let calls = AtomicU64::new(0);
        // One ask alone gains nothing from a composite call: it goes as it would have.
        if batch.len() > 1 {
            let asks: Vec<(PageAsk, &ArrowPages)> = batch.iter().map(|w| (w.ask.clone(), &w.pages)).collect();
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            let answers = client.pages(&asks, &calls).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            drop(asks);
            for (waiting, answers) in batch.into_iter().zip(answers) {
                // A table no longer waiting (its org failed) needs no answer.
                let _ = waiting.answer.send(answers);
            }
        } else {
            for waiting in batch {
                let _ = waiting.answer.send(Vec::new());
            }
        }
        self.answered.notify_waiters();
        Shared { answers: answered.await.unwrap_or_default(), calls: calls.into_inner() }
    }

    /// The leader's wait: a window for the reads started with it, and while composite calls are
    /// on their way, a window after each is answered (the reads it answers may want their last
    /// pages, which can then share this call); cut short by a call's worth waiting.
    async fn gather(&self) {
        loop {
            let answered = self.answered.notified();
            let mut answered = std::pin::pin!(answered);
            answered.as_mut().enable();
            tokio::select! {
                _ = tokio::time::sleep(WINDOW) => {}
                _ = self.full.notified() => return,
            }
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::select! {
                _ = answered => {}
                _ = self.full.notified() => return,
            }
        }
    }
}
