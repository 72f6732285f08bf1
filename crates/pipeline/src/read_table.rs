//! One table of one org: REST pages (or, for a big full read, a Bulk API job after the first
//! page), scoped, built into batches and written to a new partition file; on an incremental run,
//! merged by Id with the previous file.

use crate::OrgError;
use crate::config::{BulkChoice, OrgPlan};
use crate::encoder::Encoder;
use crate::pages::{ArrowPages, PageWatch, Versions};
use crate::ranges::{RangeReads, Tally, take_spares};
use crate::read_plan::ReadPlan;
use crate::run::RunContext;
use crate::scope::UserScope;
use crate::shared_calls::SharedCalls;
use crate::state::Cursor;
use crate::summary::TableSummary;
use crate::verify;
use sfetl_extract::soql::{self, SoqlQuery};
use sfetl_extract::{BulkQuery, PollPace, QueryPage, QueryStream, RecordDecoder, SalesforceClient};
use sfetl_load::{FinishedFile, PartitionWriter, RowGroups};
use sfetl_transform::tables::TableDef;
use sfetl_transform::{CompanyMatcher, DecodedPage, TableDecoder};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// What the table reads of an org share: the query cursors spare for ranges, the small reads'
/// pages waiting for a composite call, and the permits to read on one's own.
pub(crate) struct OrgShared {
    pub spares: Arc<Semaphore>,
    pub calls: SharedCalls,
    /// `concurrency` permits: an incremental run starts every table at once (their first pages
    /// go together in composite calls), and a read that turns out to need calls of its own takes
    /// one first. A full run's reads, `concurrency` at once, always find one.
    pub own_reads: Semaphore,
    /// The quickest second page of the org's reads so far (see [`OrgShared::quickest_round_trip`]).
    pub round_trip: std::sync::Mutex<Option<std::time::Duration>>,
}

impl OrgShared {
    /// A read's second page's round trip, or the org's quickest so far if that was quicker: the
    /// org's distance does not change from table to table, but a page asked while the org's
    /// other big tables are being read in ranges waits behind their pages. Measured on the
    /// benchmark's simulated million users (client and org on the same 2 cores): asked 0.3 s
    /// after the users' ranges opened, the assignments' second page took over 0.26 s, and 2
    /// million rows went to a Bulk job, 20 s more than ranges took in the other runs.
    pub fn quickest_round_trip(&self, measured: std::time::Duration) -> std::time::Duration {
        let Ok(mut quickest) = self.round_trip.lock() else { return measured };
        let quickest = quickest.get_or_insert(measured);
        *quickest = (*quickest).min(measured);
        *quickest
    }

    /// Takes one of the `concurrency` permits for a read about to make calls of its own, unless
    /// it holds one already (`own`).
    pub async fn read_on_own<'s>(&'s self, own: &mut Option<tokio::sync::SemaphorePermit<'s>>) {
        if own.is_none() {
            *own = self.own_reads.acquire().await.ok();
        }
    }
}

/// One table read: its files (written whole, not yet in place), what it took, and the newest row
/// seen (the next cursor).
pub(crate) struct TableRead {
    pub files: Vec<FinishedFile>,
    pub summary: TableSummary,
    pub cursor: Option<Cursor>,
}

/// Reads one table of one org into a new (uncommitted) partition file, and for a table with a
/// history, every row read into this run's file of the history too. With a cursor (`since`)
/// and a previous file to merge into, only rows changed since the cursor, less the overlap, are
/// asked for; the previous file's other rows are carried over.
pub(crate) async fn read_table(
    client: &SalesforceClient,
    org: &OrgPlan,
    table: &'static TableDef,
    since: Option<Cursor>,
    run: &RunContext<'_>,
    shared: &OrgShared,
) -> Result<TableRead, OrgError> {
    let RunContext { sink, run_id, progress, .. } = *run;
    let started = Instant::now();
    let extracted_at = chrono::Utc::now().timestamp_millis();
    // Only the users table has a scope (user types, companies); the others keep every row.
    let scope = (table.object == "User").then(|| UserScope::new(org));
    let pages = ArrowPages(TableDecoder::new(table, extracted_at, CompanyMatcher::new(&org.company_names)));
    let schema = table.schema();
    // The previous file, for an incremental run; without one (first run, new layout), read all.
    let previous = match &since {
        Some(_) => sink.existing(table.name, "org", &org.name, &schema, None, RowGroups::All)?,
        None => None,
    };
    // Users read under other scope settings (`exclude_user_types`, `company_filter`,
    // `company_names`) are read again whole: their cursor keeps the settings they were read under.
    let scope_settings = scope.as_ref().map(|_| UserScope::settings(org));
    let ReadPlan { since, query, calls: describe_calls } = crate::read_plan::plan(
        client,
        org,
        table,
        since,
        previous.is_some(),
        (scope.as_ref(), scope_settings.as_ref()),
        extracted_at,
    )
    .await?;
    // A full read's history file holds exactly the table's rows: it is the table's file under a
    // second name (`FinishedFile::also_as`), not a second encoding of every row (a few percent
    // of a run's CPU, and a second row group of users held in memory). An incremental read's
    // history holds only the changes.
    let history = table.history.map(|name| (name, format!("{name}-{run_id}")));
    let (history, history_path) = match (history, &since) {
        (Some((name, stem)), None) => (None, Some(sink.new_file_path(name, "org", &org.name, &stem)?)),
        (Some((name, stem)), Some(_)) => (Some(sink.open_file(name, "org", &org.name, &stem, schema.clone())?), None),
        (None, _) => (None, None),
    };
    let writer = sink.open(table.name, "org", &org.name, schema.clone())?;
    // Parquet encoding is CPU and disk work: a blocking task encodes one page while the next is
    // fetched.
    let encoder = Encoder::start(writer, history);
    // Every run's little tables, and an incremental run's changes, are expected to be small. An
    // org read with `bulk = "always"` has every first page share calls: its big tables go on
    // through jobs, not pages of their own.
    let small = since.is_some() || !table.incremental;
    let batch = (small || org.bulk == BulkChoice::Always).then_some(&shared.calls);
    // A table checked by counts asks for Salesforce's total with its changes, in the same
    // composite call. Rows added between the two only cost a recount; a row deleted between
    // them is found by the next run, as one deleted after a separate count would be.
    // (A big table whose first page shares a call only to save calls has nothing to check.)
    let count_ahead = async {
        match table.verified_by.filter(|_| small).zip(batch) {
            Some((_, batch)) => batch.first_page(client, &verify::count_query(table.object), &pages).await,
            None => (None, 0),
        }
    };
    // A read not expected to be small reads on its own from the start.
    let mut own = match batch {
        Some(_) => None,
        None => shared.own_reads.acquire().await.ok(),
    };
    let (opened, (counted, count_calls)) =
        tokio::join!(open_query(client, &org.name, table, query, &pages, batch), count_ahead);
    let opened = opened?;
    let counted = counted.map(|page| page.total_size);
    let (query, mut stream, mut first) = (opened.query, opened.stream, Some(opened.first));
    let missing_fields: Vec<String> =
        table.soql_fields().into_iter().filter(|f| !query.fields.iter().any(|q| q == f)).map(String::from).collect();
    // Fields readable when the previous rows were read, missing now (access revoked): a full
    // read has their columns empty, so the rows kept from the previous file lose them too.
    let revoked: Vec<usize> = match &since {
        Some(cursor) => {
            let revoked = missing_fields.iter().filter(|field| !cursor.missing.contains(field));
            revoked.filter_map(|field| table.column_of(field)).collect()
        }
        None => Vec::new(),
    };
    // A full read chooses how to go on at its second page: a query's first page also pays for
    // running the query, so the second's round trip is the one the rest would repeat. An
    // incremental read chooses at its first: only between its pages and ranges of Ids, which
    // needs no round trip. Its changes are usually a page or two, but where most users log in
    // every day (as in many real orgs) they are half the users, and page after page they took
    // nearly as long as a full read (100k users, half of them logged in, 150 ms a request: 2.4 s
    // against 2.9).
    let (mut decided, mut received) = (false, 0u64);
    // Its next pages come a call each until then: pages chained in one call would be dropped
    // if the rest went to ranges or a job, and would time more than one round trip.
    stream.hold_chaining(!decided);
    // An optional object the org does not let the user read: the table is written empty.
    let mut done = opened.absent;
    let mut rest = Rest::Pages;
    let bar = progress.table(&org.name, table.name);
    let mut watch = PageWatch::new(table, since.as_ref());
    // Rows read that the table's scope leaves out (portal users, by default), by Id.
    let mut left_out = HashSet::new();
    while !done {
        let page = match &mut rest {
            Rest::Bulk(job) => job.next_decoded(&pages).await?,
            Rest::Ranges(ranges) => ranges.next_page().await?.map(|page| page.records),
            Rest::Pages => {
                let (second, asked) = (first.is_none(), Instant::now());
                // The last pages of a small read go with others' in a composite call; any other
                // page this read asks for on its own.
                let own_call = match batch.zip(stream.last_pages()).filter(|_| first.is_none()) {
                    Some((batch, ask)) => {
                        let answered = batch.pages(client, ask, &pages).await;
                        !stream.take_pages(answered.answers, answered.calls)
                    }
                    None => first.is_none(),
                };
                if own_call {
                    shared.read_on_own(&mut own).await;
                }
                match next_page(&mut first, &mut stream).await? {
                    Some(page) => {
                        bar.set_total(page.total_size);
                        received += page.records.rows as u64;
                        // Only an unsplit read may change course: after a QUERY_TIMEOUT split the
                        // page is one SystemModstamp window's, and the rest of the query after its
                        // last Id would miss the later windows' lower Ids. A read that saves calls
                        // chooses at its first page: the second's round trip matters only to a
                        // choice made for speed, and costs a call.
                        let saving = !second && saves_calls(client, org, page.total_size.saturating_sub(received));
                        if (second || saving || since.is_some()) && !decided && stream.splits() == 0 {
                            decided = true;
                            // The first page was asked with the query: its wait is not a round
                            // trip, and a choice that saves calls does not weigh one.
                            let round_trip = match second {
                                true => shared.quickest_round_trip(asked.elapsed()),
                                false => std::time::Duration::ZERO,
                            };
                            let job = since.is_none();
                            let left = Left { total: page.total_size, received, round_trip, job };
                            rest = choose_rest(client, org, &query, &pages, &page, left, &shared.spares).await?;
                            // Ranges are calls of the read's own (an incremental read's first page
                            // came in a call shared with other tables).
                            if !matches!(rest, Rest::Pages) {
                                shared.read_on_own(&mut own).await;
                            }
                        }
                        // Chosen, or ruled out by a split: the pages may come several to a call.
                        if second || decided {
                            stream.hold_chaining(false);
                        }
                        Some(page.records)
                    }
                    None => None,
                }
            }
        };
        let Some(page) = page else {
            done = true;
            continue;
        };
        let rows = page.rows as u64;
        let mut batch = page.batch?;
        watch.observe(&batch);
        if let Some(scope) = &scope {
            batch = scope.keep(&batch, since.is_some().then_some(&mut left_out))?;
        }
        if encoder.batches.send(batch).await.is_err() {
            // The encoder ends before the batches only on an error, which `finish` returns.
            break;
        }
        bar.advance(rows);
    }
    let (mut writer, mut history) = encoder.finish().await?;
    let PageWatch { newest, newest_activity, versions, groups: held, observed, .. } = watch;
    let changed = versions.unwrap_or_default();
    // The previous file's Ids, groups and stamps, against the rows read: for a table checked by
    // counts, the rows held per group; for any, whether it already holds all that was read.
    let (changed, scan) = match (&previous, &since) {
        (Some(_), Some(_)) => {
            let (sink, org_name) = (sink.clone(), org.name.clone());
            let held = held.filter(|_| table.verified_by.is_some());
            let left_out = std::mem::take(&mut left_out);
            tokio::task::spawn_blocking(move || -> Result<_, OrgError> {
                let scan = crate::previous::scan(&sink, table, &org_name, (&changed, &left_out), held)?;
                Ok((changed, scan))
            })
            .await??
        }
        _ => (changed, None),
    };
    // Deletions the changes do not show: the groups whose counts differ are read again.
    let mut recount = verify::Recount::default();
    if let Some(held) = scan.as_ref().and_then(|s| s.held.as_ref()) {
        let deleted = Deleted { held, counted, fields: &query.fields, changed: &changed };
        (recount, (writer, history)) =
            reread_deleted(client, org, table, deleted, &pages, (writer, history), (shared, &mut own)).await?;
    }
    drop(own);
    let fetched = writer.rows();
    // Nothing new (every row kept is a version the file holds, none left out is in it) and
    // nothing deleted: the previous file stays as it is.
    let unchanged = scan
        .as_ref()
        .filter(|scan| {
            let same =
                scan.holds_every_version && recount.stale.is_empty() && !recount.everything && revoked.is_empty();
            same && fetched + scan.left_out == observed
        })
        .map(|scan| scan.rows);
    let (rows, file) = match (unchanged, previous) {
        (Some(rows), _) => {
            // Dropped uncommitted, the new file leaves nothing behind.
            drop(writer);
            tracing::info!(org = %org.name, table = table.name, read = fetched, rows, "no change: the table keeps its file");
            (rows, None)
        }
        // Read again whole, the table keeps nothing of its previous file.
        (None, Some(previous)) if since.is_some() && !recount.everything => {
            let writer = crate::previous::merge(writer, previous, table, changed, (recount.stale, revoked)).await?;
            tracing::info!(org = %org.name, table = table.name, changed = fetched, rows = writer.rows(),
                "merged the changes into the table");
            (writer.rows(), Some(writer))
        }
        _ => (writer.rows(), Some(writer)),
    };
    bar.finish(rows);
    let mut tally = Tally::of(&stream);
    match &rest {
        Rest::Pages => {}
        Rest::Bulk(job) => tally.calls += job.api_calls(),
        Rest::Ranges(ranges) => tally.add(ranges.tally),
    }
    if tally.resumes > 0 || tally.splits > 0 {
        tracing::info!(org = %org.name, table = table.name, resumed = tally.resumes, split = tally.splits,
            "the query recovered: resumed after lost cursors, split after timeouts");
    }
    let api_calls = describe_calls + opened.calls + tally.calls + recount.calls + count_calls;
    let summary = TableSummary { table: table.name, rows, fetched, api_calls, elapsed: started.elapsed() };
    let activity = newest_activity.filter(|_| table.activity.is_some());
    let cursor = newest.map(|cursor| Cursor { activity, missing: missing_fields, scope: scope_settings, ..cursor });
    // Finished now, while other tables are still read: a file's last row group would otherwise
    // stay in memory, and be encoded after the last table, on the run's critical path.
    let files = tokio::task::spawn_blocking(move || -> Result<Vec<FinishedFile>, OrgError> {
        let mut finished = Vec::new();
        if let Some(file) = file {
            let mut file = file.finish()?;
            if let Some(path) = history_path {
                file.also_as(path);
            }
            finished.push(file);
        }
        if let Some(history) = history {
            finished.push(history.finish()?);
        }
        Ok(finished)
    })
    .await??;
    Ok(TableRead { files, summary, cursor })
}

/// What tells a table checked by counts which rows were deleted in Salesforce: the rows its
/// previous file holds per group, Salesforce's total asked with the changes, and what the read
/// asked and received.
struct Deleted<'a> {
    held: &'a verify::GroupCounts,
    counted: Option<u64>,
    fields: &'a [String],
    changed: &'a Versions,
}

/// Rows deleted in Salesforce that the changes do not show: the groups (`table.verified_by`)
/// whose counts differ from Salesforce's, or the whole table when no group's does, are read
/// again into `files` (the rows read already left out). What was stale, with every call spent.
async fn reread_deleted<'s>(
    client: &SalesforceClient,
    org: &OrgPlan,
    table: &'static TableDef,
    deleted: Deleted<'_>,
    pages: &ArrowPages,
    files: (PartitionWriter, Option<PartitionWriter>),
    (shared, own): (&'s OrgShared, &mut Option<tokio::sync::SemaphorePermit<'s>>),
) -> Result<(verify::Recount, (PartitionWriter, Option<PartitionWriter>)), OrgError> {
    let Some(group_field) = table.verified_by else { return Ok((verify::Recount::default(), files)) };
    let mut recount = verify::stale_groups(client, table.object, group_field, deleted.held, deleted.counted).await?;
    if !recount.everything && recount.stale.is_empty() {
        return Ok((recount, files));
    }
    shared.read_on_own(own).await;
    tracing::info!(org = %org.name, table = table.name, groups = recount.stale.len(), whole = recount.everything,
        "rows were deleted in Salesforce: reading these groups again");
    let encoder = Encoder::start(files.0, files.1);
    let filters: Vec<Option<String>> = match recount.everything {
        true => vec![None],
        false => verify::group_filters(group_field, &recount.stale).into_iter().map(Some).collect(),
    };
    for filter in filters {
        let mut again = SoqlQuery::new(table.object, deleted.fields.to_vec()).order_by("Id");
        if let Some(filter) = filter {
            again = again.filter(filter);
        }
        let mut again = client.query_decoded(&again, pages.clone());
        while let Some(page) = again.next_page().await? {
            let fresh =
                crate::previous::kept_rows(&page.records.batch?, deleted.changed, (0, &BTreeSet::new()), table.name)?;
            if encoder.batches.send(fresh).await.is_err() {
                break;
            }
        }
        recount.calls += again.api_calls();
    }
    Ok((recount, encoder.finish().await?))
}

/// What a Bulk API job costs before its first result: Salesforce queues and runs it (10-15
/// seconds for a small job, in the README's and the simulator's experience), and sfetl polls it
/// every second.
const BULK_JOB_SECONDS: f64 = 12.0;
/// And per row: Salesforce's processing of the job, then the CSV's download and decoding. An
/// estimate (the simulator's 5 µs a row, as no measurement of real orgs is at hand): a job over
/// a million rows is not a 12-second affair.
const BULK_ROW_SECONDS: f64 = 5e-6;
/// Pages left after the first below which a read goes on as it began.
const PAGES_WORTH_CUTTING: u64 = 4;

/// Where a read stands when it chooses how to go on.
struct Left {
    /// Rows the query matches, rows received so far.
    total: u64,
    received: u64,
    /// The last page's round trip.
    round_trip: std::time::Duration,
    /// Whether a Bulk API job may read the rest (not for an incremental read's changes).
    job: bool,
}

/// How the rest of a table is read after its first pages.
enum Rest<'c> {
    /// Page after page of the query as opened.
    Pages,
    /// One Bulk API job for the rows after the first page's.
    Bulk(Box<BulkQuery<'c>>),
    /// Several queries at once, over ranges of Ids.
    Ranges(RangeReads<'c>),
}

/// Chooses how a read goes on after its second page (ordered by Id), or after its first when it
/// saves calls ([`saves_calls`]) or reads changes (an incremental read, which takes no job, and
/// saving calls, no ranges either):
/// - a Bulk API job, for a table over `bulk_threshold` rows, always with `bulk = "always"`, or
///   when its remaining pages would take twice as long as a job ([`BULK_JOB_SECONDS`] and
///   [`BULK_ROW_SECONDS`]) even read in ranges at the second page's round trip, or spend more
///   than a tenth of the org's remaining daily API requests (a job takes a handful);
/// - ranges of Ids read at once, when enough pages are left and spare cursors allow;
/// - otherwise the query's own pages.
async fn choose_rest<'c>(
    client: &'c SalesforceClient,
    org: &OrgPlan,
    query: &SoqlQuery,
    pages: &ArrowPages,
    page: &QueryPage<DecodedPage>,
    Left { total, received, round_trip, job }: Left,
    spares: &Arc<Semaphore>,
) -> Result<Rest<'c>, OrgError> {
    let left = total.saturating_sub(received);
    let Some(after) = ArrowPages::last_id(&page.records).filter(|_| !page.done && left > 0) else {
        return Ok(Rest::Pages);
    };
    let saving_calls = saves_calls(client, org, left);
    // Changes read to save calls go on page after page: ranges cost a call more each (at 100k
    // users half logged in, 13 calls for the users' changes against 7), and a job is no choice.
    if !job && saving_calls {
        return Ok(Rest::Pages);
    }
    let pages_left = left.div_ceil(u64::from(org.batch_size).max(1));
    // Ranges of two pages at least; one cursor is the table's own.
    let wanted = (pages_left as usize / 2).min(org.parallel_cursors - 1);
    let permits = if pages_left >= PAGES_WORTH_CUTTING { take_spares(spares, wanted) } else { Vec::new() };
    let over_threshold = job && org.bulk_threshold.is_some_and(|rows| total > rows);
    let rest_seconds = pages_left as f64 * round_trip.as_secs_f64() / (permits.len() + 1) as f64;
    // A job is a commitment (its wait cannot be cut short) and one slow page can mislead: it
    // must promise to be twice as fast.
    let job_seconds = BULK_JOB_SECONDS + left as f64 * BULK_ROW_SECONDS;
    if over_threshold && (saving_calls || rest_seconds > 2.0 * job_seconds) {
        // A few calls instead of one per page. The job (which takes no ORDER BY) reads the same
        // rows after the first page's last Id. Chosen to save calls, it is polled sparingly too.
        let rest = SoqlQuery { order_by: None, ..query.clone() }.filter(format!("Id > {}", soql::quote(&after)));
        let pace = if saving_calls { PollPace::Sparing } else { PollPace::Prompt };
        tracing::info!(org = %org.name, object = %query.object, rows = total, ?pace,
            "reading the rest through a Bulk API query job");
        return Ok(Rest::Bulk(Box::new(client.bulk_query(&rest).pace(pace))));
    }
    if permits.is_empty() {
        return Ok(Rest::Pages);
    }
    Ok(match RangeReads::open(client, query, pages, &after, permits).await? {
        Some(ranges) => {
            tracing::info!(org = %org.name, object = %query.object, ranges = ranges.ranges, pages = pages_left,
                "reading the rest in ranges of Ids at once");
            Rest::Ranges(ranges)
        }
        None => Rest::Pages,
    })
}

/// Whether a full read should spend as few API calls as it can: with `bulk = "always"`, or when
/// the pages of its `left` rows would spend more than a tenth of the org's remaining daily
/// requests.
fn saves_calls(client: &SalesforceClient, org: &OrgPlan, left: u64) -> bool {
    let pages_left = left.div_ceil(u64::from(org.batch_size).max(1));
    let scarce = client.api_usage().is_some_and(|usage| pages_left > usage.max.saturating_sub(usage.used) / 10);
    org.bulk == BulkChoice::Always || scarce
}

/// The first page, already read when the query was opened, then the stream's next pages.
async fn next_page(
    first: &mut Option<Option<QueryPage<DecodedPage>>>,
    stream: &mut QueryStream<'_, ArrowPages>,
) -> sfetl_extract::Result<Option<QueryPage<DecodedPage>>> {
    match first.take() {
        Some(page) => Ok(page),
        None => stream.next_page().await,
    }
}

/// A table's query, started: the query as finally asked, its stream, the first page, and the API
/// calls spent before that stream (a refused first attempt and the describes).
struct OpenQuery<'c> {
    query: SoqlQuery,
    stream: QueryStream<'c, ArrowPages>,
    first: Option<QueryPage<DecodedPage>>,
    calls: u64,
    /// The object is optional and not readable here: nothing to read.
    absent: bool,
}

/// Starts the query and reads its first page. An org that lacks one of the fields, or hides it
/// from the user by field-level security, answers `INVALID_FIELD` for the whole query
/// (salesforce-api.md section 7): then the objects' describes say which fields are missing, the
/// optional ones are left out (their columns stay, NULL, with a warning naming each field and
/// why) and the query is asked again; a missing required field fails the table, naming the fix.
/// An org that has every field pays nothing for this.
async fn open_query<'c>(
    client: &'c SalesforceClient,
    org: &str,
    table: &'static TableDef,
    mut query: SoqlQuery,
    pages: &ArrowPages,
    batch: Option<&SharedCalls>,
) -> Result<OpenQuery<'c>, OrgError> {
    let mut stream = client.query_decoded(&query, pages.clone());
    // A small table's first page may come in a composite call with others' (or, when that
    // failed, on its own, as any other's).
    let (first, batched_calls) = match batch {
        Some(batch) => {
            let (page, calls) = batch.first_page(client, &query, pages).await;
            match page {
                Some(page) => {
                    stream = client.query_after(&query, pages.clone(), &page);
                    (Ok(Some(page)), calls)
                }
                None => (stream.next_page().await, calls),
            }
        }
        None => (stream.next_page().await, 0),
    };
    let refusal = match first {
        Err(e) if e.is_invalid_field() => e,
        // What a user without access to the object gets (as for setup objects without "View
        // Setup and Configuration"): an optional object is then left empty.
        Err(e) if e.is_object_unreadable() && table.optional_object.is_some() => {
            tracing::warn!(
                org,
                table = table.name,
                "{} is not readable here: {}",
                table.object,
                table.optional_object.unwrap_or_default()
            );
            return Ok(OpenQuery { first: None, query, stream, calls: batched_calls, absent: true });
        }
        other => return Ok(OpenQuery { first: other?, query, stream, calls: batched_calls, absent: false }),
    };
    let calls = std::sync::atomic::AtomicU64::new(stream.api_calls() + batched_calls);
    let fields: Vec<&str> = query.fields.iter().map(String::as_str).collect();
    let missing = client.missing_fields_counted(table.object, &fields, &calls).await?;
    if missing.is_empty() {
        // The refusal is about something else (a filter, say): report it as it is.
        return Err(refusal.into());
    }
    if let Some(required) = missing.iter().find(|f| !table.field_is_optional(f)) {
        return Err(OrgError::RequiredFieldMissing {
            object: table.object,
            field: required.clone(),
            table: table.name,
            why: sfetl_extract::why_missing(required),
        });
    }
    for field in &missing {
        tracing::warn!(
            org,
            table = table.name,
            "{}.{field} is missing in this org, so its column stays empty: {}",
            table.object,
            sfetl_extract::why_missing(field)
        );
    }
    query.fields.retain(|f| !missing.contains(f));
    let mut stream = client.query_decoded(&query, pages.clone());
    let first = stream.next_page().await?;
    Ok(OpenQuery { query, stream, first, calls: calls.into_inner(), absent: false })
}
