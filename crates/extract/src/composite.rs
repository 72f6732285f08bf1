//! Several query pages in one API call, through the composite resource: "the entire series of
//! requests counts as a single call toward your API limits", up to 5 query operations a call
//! (REST API Developer Guide, "Send Multiple Requests Using Composite" and "Composite").
//! Two uses: several small queries' first pages (a run's little tables, or an incremental run's
//! changes), and the next pages of one query, chained by reference, at a fifth of the calls.
//! Salesforce runs the subrequests one after another, so a call takes as long as its pages would
//! one by one, less the round trips.

use crate::client::SalesforceClient;
use crate::error::{ApiError, Error, Result};
use crate::query::{PageSeed, QueryPage};
use crate::records::RecordDecoder;
use crate::soql::SoqlQuery;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::sync::atomic::AtomicU64;

/// Query operations one composite call may hold.
pub const QUERIES_PER_CALL: usize = 5;

/// Pages of one query a call brings by default. Measured on the benchmark's simulated org
/// (release build, 2 cores): at 100k users three pages a call took the API calls of a full read
/// from 201 to 93, and its wall time at 150 ms a request from 5.2 to 3.9 s, with peak memory
/// 5 MiB up and no time lost without latency; five took the calls to 76 for 14 MiB and 0.1 s
/// more without latency (a call's five pages are made one after another, then read at once),
/// and at 1M users 160 MiB against 140. Where calls are scarce, `pages_per_call = 5`.
pub const DEFAULT_PAGES_PER_CALL: usize = 3;

/// One subrequest's answer: a page, or Salesforce's error (as a request of its own would get).
pub type FirstPage<P> = Result<QueryPage<P>>;

/// What a composite call asks of one query: its first page (`query`, not `queryAll`), or
/// `count` pages from a `nextRecordsUrl` on, each after the first following the page before it
/// by reference, `@{ref.nextRecordsUrl}` ("You can use the output of one request as the input to
/// a subsequent request", "Send Multiple Requests Using Composite"). A reference past the last
/// page fails, and so do the subrequests after a failed one: ask only for the pages the
/// cursor's `totalSize` promises, and go on after the last page received.
#[derive(Debug, Clone)]
pub enum PageAsk {
    First(SoqlQuery),
    Next { url: String, count: usize },
}

impl PageAsk {
    /// The query operations it takes of a call.
    pub fn subrequests(&self) -> usize {
        match self {
            PageAsk::First(_) => 1,
            PageAsk::Next { count, .. } => (*count).clamp(1, QUERIES_PER_CALL),
        }
    }

    /// Its subrequests, answered under `a{ask}p{page}`.
    fn requests(&self, client: &SalesforceClient, ask: usize) -> Vec<(serde_json::Value, String)> {
        let version = client.api_version();
        match self {
            PageAsk::First(query) => {
                let q: String = url::form_urlencoded::byte_serialize(query.to_string().as_bytes()).collect();
                let url = format!("/services/data/v{version}/query?q={q}");
                let name = format!("/services/data/v{version}/query (composite: {})", query.object);
                vec![(client.query_subrequest(url, format!("a{ask}p0")), name)]
            }
            PageAsk::Next { url, .. } => (0..self.subrequests())
                .map(|i| {
                    let at = match i {
                        0 => url.clone(),
                        _ => format!("@{{a{ask}p{}.nextRecordsUrl}}", i - 1),
                    };
                    (client.query_subrequest(at, format!("a{ask}p{i}")), format!("{url} (composite, page {})", i + 1))
                })
                .collect(),
        }
    }
}

impl SalesforceClient {
    /// The pages each ask wants, in as few composite calls as hold them ([`QUERIES_PER_CALL`]
    /// query operations a call; an ask is never split), the calls made at once: for each ask,
    /// an answer per page asked, each decoded by the ask's decoder. A subrequest that fails gets
    /// that failure; a call that fails as a whole leaves its asks without answers (an empty
    /// list: ask again on your own).
    pub async fn pages<D: RecordDecoder>(
        &self,
        asks: &[(PageAsk, &D)],
        calls: &AtomicU64,
    ) -> Vec<Vec<FirstPage<D::Page>>> {
        let mut chunks: Vec<&[(PageAsk, &D)]> = Vec::new();
        let (mut from, mut taken) = (0, 0);
        for (i, (ask, _)) in asks.iter().enumerate() {
            if taken + ask.subrequests() > QUERIES_PER_CALL {
                chunks.push(&asks[from..i]);
                (from, taken) = (i, 0);
            }
            taken += ask.subrequests();
        }
        chunks.push(&asks[from..]);
        let answered =
            futures_util::future::join_all(chunks.into_iter().filter(|c| !c.is_empty()).map(|chunk| async move {
                let mut requests = Vec::new();
                let (mut names, mut decoders, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
                for (i, (ask, decoder)) in chunk.iter().enumerate() {
                    let asked = ask.requests(self, i);
                    sizes.push(asked.len());
                    decoders.extend(std::iter::repeat_n(*decoder, asked.len()));
                    for (request, name) in asked {
                        requests.push(request);
                        names.push(name);
                    }
                }
                match self.composite(requests, &decoders, calls, |i| names[i].clone()).await {
                    Ok(pages) => {
                        let mut pages = pages.into_iter();
                        sizes.into_iter().map(|n| pages.by_ref().take(n).collect()).collect::<Vec<Vec<_>>>()
                    }
                    Err(e) => {
                        tracing::debug!("a composite call failed ({e}); its queries ask on their own");
                        (0..chunk.len()).map(|_| Vec::new()).collect()
                    }
                }
            }))
            .await;
        answered.into_iter().flatten().collect()
    }

    /// `count` pages of one query from its `nextRecordsUrl` on, in one call (at most
    /// [`QUERIES_PER_CALL`]), chained by reference ([`PageAsk::Next`]).
    pub(crate) async fn next_pages<D: RecordDecoder>(
        &self,
        next: &str,
        count: usize,
        decoder: &D,
        calls: &AtomicU64,
    ) -> Result<Vec<FirstPage<D::Page>>> {
        let requests = PageAsk::Next { url: next.to_string(), count }.requests(self, 0);
        let (requests, names): (Vec<_>, Vec<_>) = requests.into_iter().unzip();
        let decoders = vec![decoder; requests.len()];
        self.composite(requests, &decoders, calls, |i| names[i].clone()).await
    }

    /// A query subrequest: a GET of `url`, answered under `reference`. The page size goes on
    /// each subrequest too: whether the call's own header reaches them is not documented.
    pub(crate) fn query_subrequest(&self, url: String, reference: String) -> serde_json::Value {
        serde_json::json!({
            "method": "GET",
            "url": url,
            "referenceId": reference,
            "httpHeaders": { "Sforce-Query-Options": format!("batchSize={}", self.batch_size()) },
        })
    }

    /// One composite call of query subrequests, each answer decoded by its decoder; `url` names
    /// a subrequest in errors.
    async fn composite<D: RecordDecoder>(
        &self,
        requests: Vec<serde_json::Value>,
        decoders: &[&D],
        calls: &AtomicU64,
        url: impl Fn(usize) -> String,
    ) -> Result<Vec<FirstPage<D::Page>>> {
        let subrequests = requests.len();
        let body = serde_json::json!({ "allOrNone": false, "compositeRequest": requests });
        let path = format!("/services/data/v{}/composite", self.api_version());
        let answers = self.post_decoded(&path, &body, calls, |body| decode(decoders, body)).await?;
        if answers.len() != subrequests {
            let why = format!("{} answers to {subrequests} subrequests", answers.len());
            return Err(Error::UnexpectedBody { url: path, status: 200, excerpt: why, retry_after: None });
        }
        let pages = answers.into_iter().enumerate().map(|(i, answer)| match answer {
            (200, Body::Page(page)) => Ok(page),
            (status, Body::Errors(errors)) if !errors.is_empty() => {
                let first = errors.into_iter().next().unwrap_or_default();
                let detail = ApiError { status, code: first.error_code, message: first.message, retry_after: None };
                Err(Error::Api { url: url(i), detail })
            }
            (status, _) => Err(Error::UnexpectedBody {
                url: url(i),
                status,
                excerpt: "a subrequest answer that is neither a page nor errors".into(),
                retry_after: None,
            }),
        });
        Ok(pages.collect())
    }
}

/// A subrequest's body: a query page, or an error list.
enum Body<P> {
    Page(QueryPage<P>),
    Errors(Vec<ErrorBody>),
    Other,
}

#[derive(Default, serde::Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorCode", default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

/// `{"compositeResponse": [{"body": ..., "httpStatusCode": 200, "referenceId": ...}, ...]}`, each
/// body decoded by its subrequest's decoder as it is parsed.
fn decode<D: RecordDecoder>(decoders: &[&D], body: &[u8]) -> serde_json::Result<Vec<(u16, Body<D::Page>)>> {
    // Checked to be UTF-8 at once, as a page of its own is (crate::query::decode_page).
    let text =
        std::str::from_utf8(body).map_err(|e| serde::de::Error::custom(format!("the answer is not UTF-8: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let answers = Envelope(decoders).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(answers)
}

struct Envelope<'d, D>(&'d [&'d D]);

impl<'de, D: RecordDecoder> DeserializeSeed<'de> for Envelope<'_, D> {
    type Value = Vec<(u16, Body<D::Page>)>;
    fn deserialize<De: Deserializer<'de>>(self, deserializer: De) -> std::result::Result<Self::Value, De::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, D: RecordDecoder> Visitor<'de> for Envelope<'_, D> {
    type Value = Vec<(u16, Body<D::Page>)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a composite response")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut answers = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "compositeResponse" {
                answers = Some(map.next_value_seed(Answers(self.0))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        answers.ok_or_else(|| serde::de::Error::missing_field("compositeResponse"))
    }
}

struct Answers<'d, D>(&'d [&'d D]);

impl<'de, D: RecordDecoder> DeserializeSeed<'de> for Answers<'_, D> {
    type Value = Vec<(u16, Body<D::Page>)>;
    fn deserialize<De: Deserializer<'de>>(self, deserializer: De) -> std::result::Result<Self::Value, De::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, D: RecordDecoder> Visitor<'de> for Answers<'_, D> {
    type Value = Vec<(u16, Body<D::Page>)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("subrequest answers")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        let mut answers = Vec::new();
        // Answers come in the order of the subrequests; one too many is an error of its own.
        while let Some(decoder) = self.0.get(answers.len()) {
            match seq.next_element_seed(Answer(*decoder))? {
                Some(answer) => answers.push(answer),
                None => return Ok(answers),
            }
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(serde::de::Error::custom("more answers than subrequests"));
        }
        Ok(answers)
    }
}

struct Answer<'d, D>(&'d D);

impl<'de, D: RecordDecoder> DeserializeSeed<'de> for Answer<'_, D> {
    type Value = (u16, Body<D::Page>);
    fn deserialize<De: Deserializer<'de>>(self, deserializer: De) -> std::result::Result<Self::Value, De::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, D: RecordDecoder> Visitor<'de> for Answer<'_, D> {
    type Value = (u16, Body<D::Page>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a subrequest answer")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let (mut status, mut body) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "httpStatusCode" => status = Some(map.next_value()?),
                "body" => body = Some(map.next_value_seed(BodySeed(self.0))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let status = status.ok_or_else(|| serde::de::Error::missing_field("httpStatusCode"))?;
        Ok((status, body.unwrap_or(Body::Other)))
    }
}

struct BodySeed<'d, D>(&'d D);

impl<'de, D: RecordDecoder> DeserializeSeed<'de> for BodySeed<'_, D> {
    type Value = Body<D::Page>;
    fn deserialize<De: Deserializer<'de>>(self, deserializer: De) -> std::result::Result<Self::Value, De::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, D: RecordDecoder> Visitor<'de> for BodySeed<'_, D> {
    type Value = Body<D::Page>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a query page or a list of errors")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        PageSeed(self.0).visit_map(map).map(Body::Page)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        let mut errors = Vec::new();
        while let Some(error) = seq.next_element::<ErrorBody>()? {
            errors.push(error);
        }
        Ok(Body::Errors(errors))
    }
    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(Body::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::JsonRecords;

    #[test]
    fn each_answer_is_decoded_by_its_own_decoder_whatever_its_key_order() {
        let body = br#"{"compositeResponse":[
            {"body":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Organization"},"Id":"00D1"}]},
             "httpHeaders":{},"httpStatusCode":200,"referenceId":"q0"},
            {"httpStatusCode":400,"referenceId":"q1",
             "body":[{"message":"No such column 'CountryCode' on entity 'User'","errorCode":"INVALID_FIELD"}]},
            {"referenceId":"q2","httpStatusCode":200,
             "body":{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v66.0/query/01gX-1","records":[{"Id":"005A"}]}}
        ]}"#;
        let decoders = [&JsonRecords, &JsonRecords, &JsonRecords];
        let answers = decode(&decoders, body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answers.len(), 3);
        match &answers[0] {
            (200, Body::Page(page)) => assert_eq!(page.records[0]["Id"], "00D1"),
            _ => panic!("the first answer is a page"),
        }
        match &answers[1] {
            (400, Body::Errors(errors)) => assert_eq!(errors[0].error_code, "INVALID_FIELD"),
            _ => panic!("the second answer is an error"),
        }
        match &answers[2] {
            (200, Body::Page(page)) => {
                assert!(!page.done);
                assert_eq!(page.next_records_url.as_deref(), Some("/services/data/v66.0/query/01gX-1"));
            }
            _ => panic!("the third answer is a page"),
        }
        // More answers than subrequests is not Salesforce's composite.
        assert!(decode(&decoders[..2], body).is_err());
    }
}
