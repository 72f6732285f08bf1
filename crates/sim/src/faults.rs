//! Faults the simulator injects on request, so clients can be tested on what real orgs do to them.

use std::time::Duration;

/// What goes wrong with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 503 with an HTML maintenance page instead of JSON.
    ServiceUnavailableHtml,
    /// 500 `UNKNOWN_EXCEPTION`.
    InternalError,
    /// 400 `QUERY_TIMEOUT`.
    QueryTimeout,
    /// The connection drops before any body byte arrives.
    ResetConnection,
    /// The body stops half way and the connection closes.
    TruncatedBody,
    /// Half the body, then nothing for this long.
    StalledBody(Duration),
    /// The whole answer, this much later: a request that waited behind others (the org's, or
    /// the client's own other reads).
    SlowAnswer(Duration),
    /// Every open session expires before the request is handled (401 `INVALID_SESSION_ID`).
    ExpireSessions,
    /// Every query locator is forgotten before the request is handled.
    InvalidateLocators,
    /// 403 `REQUEST_LIMIT_EXCEEDED` with `ConcurrentRequests Limit exceeded.`: too many
    /// long-running requests in the org at this moment, not the daily quota.
    ConcurrentRequests,
    /// A token answer whose `instance_url` is this (what a man in the middle, or a DNS or proxy
    /// mix-up, would send): a client must not send the token there.
    ForeignInstance(String),
    /// A query page whose `nextRecordsUrl` is this text followed by the real one (`@host:port`
    /// turns a glued URL into another host).
    HostileNextUrl(String),
    /// 307 to this origin plus the request's path and query.
    Redirect(String),
    /// A query page (read through its `nextRecordsUrl`) whose `nextRecordsUrl` is itself again.
    RepeatNextUrl,
    /// A Bulk API result set whose `Sforce-Locator` is the one it was asked with again.
    RepeatLocator,
    /// A whole JSON answer with stray text after it: it does not parse (a token answer too).
    GarbledJson,
}

/// Which requests a fault hits, counted over the requests whose path contains the rule's filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// The n-th matching request from when the rule is added (1-based), once.
    Nth(u64),
    /// Every n-th matching request.
    EveryNth(u64),
    /// A share of matching requests, drawn from a seeded generator so runs repeat.
    Rate(f64),
}

#[derive(Debug, Clone)]
pub struct FaultRule {
    pub fault: Fault,
    pub trigger: Trigger,
    /// Only requests whose path contains this (e.g. `/query`); all API requests when `None`.
    pub path_contains: Option<String>,
    seen: u64,
    rng: u64,
}

impl FaultRule {
    pub fn new(fault: Fault, trigger: Trigger) -> FaultRule {
        FaultRule { fault, trigger, path_contains: None, seen: 0, rng: 0x9E37_79B9_7F4A_7C15 }
    }

    pub fn on_paths(mut self, fragment: &str) -> FaultRule {
        self.path_contains = Some(fragment.to_string());
        self
    }

    /// Whether this request is hit; advances the rule's count.
    pub(crate) fn hits(&mut self, path: &str) -> bool {
        let applies = match &self.path_contains {
            Some(fragment) => path.contains(fragment.as_str()),
            None => path.starts_with("/services/data/v") || path.starts_with("/services/oauth2"),
        };
        if !applies {
            return false;
        }
        self.seen += 1;
        match self.trigger {
            Trigger::Nth(n) => self.seen == n,
            Trigger::EveryNth(n) => n > 0 && self.seen.is_multiple_of(n),
            Trigger::Rate(share) => {
                // SplitMix64: a repeatable draw per rule, no shared generator to lock.
                self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.rng;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z as f64 / u64::MAX as f64) < share
            }
        }
    }
}

impl std::str::FromStr for FaultRule {
    type Err = String;

    /// `KIND@TRIGGER`, e.g. `503@rate=0.1`, `reset@nth=3`, `query-timeout@every=5`, `stall@nth=2`.
    fn from_str(s: &str) -> Result<FaultRule, String> {
        let (kind, trigger) = s.split_once('@').ok_or_else(|| format!("fault `{s}`: expected KIND@TRIGGER"))?;
        let fault = match kind {
            "503" => Fault::ServiceUnavailableHtml,
            "500" => Fault::InternalError,
            "query-timeout" => Fault::QueryTimeout,
            "reset" => Fault::ResetConnection,
            "truncate" => Fault::TruncatedBody,
            "stall" => Fault::StalledBody(Duration::from_secs(30)),
            "slow" => Fault::SlowAnswer(Duration::from_secs(5)),
            "expire-sessions" => Fault::ExpireSessions,
            "invalidate-locators" => Fault::InvalidateLocators,
            "concurrent-limit" => Fault::ConcurrentRequests,
            "foreign-instance" => Fault::ForeignInstance("https://evil.example".into()),
            "hostile-next-url" => Fault::HostileNextUrl("@evil.example".into()),
            "redirect" => Fault::Redirect("https://evil.example".into()),
            "repeat-next-url" => Fault::RepeatNextUrl,
            "repeat-locator" => Fault::RepeatLocator,
            "garbled-json" => Fault::GarbledJson,
            other => {
                return Err(format!(
                    "fault kind `{other}`: expected 503, 500, query-timeout, reset, truncate, stall, slow, expire-sessions, \
                     invalidate-locators, concurrent-limit, foreign-instance, hostile-next-url, redirect, \
                     repeat-next-url, repeat-locator or garbled-json"
                ));
            }
        };
        let (name, value) = trigger
            .split_once('=')
            .ok_or_else(|| format!("fault trigger `{trigger}`: expected nth=N, every=N or rate=R"))?;
        let bad = |_| format!("fault trigger `{trigger}`: `{value}` is not a number");
        let trigger = match name {
            "nth" => Trigger::Nth(value.parse().map_err(bad)?),
            "every" => Trigger::EveryNth(value.parse().map_err(bad)?),
            "rate" => Trigger::Rate(
                value.parse().map_err(|_| format!("fault trigger `{trigger}`: `{value}` is not a number"))?,
            ),
            other => return Err(format!("fault trigger `{other}`: expected nth, every or rate")),
        };
        Ok(FaultRule::new(fault, trigger))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_count_matching_requests() {
        let mut nth: FaultRule = "503@nth=2".parse().unwrap_or_else(|e| panic!("{e}"));
        let hits: Vec<bool> = (0..4).map(|_| nth.hits("/services/data/v66.0/query")).collect();
        assert_eq!(hits, [false, true, false, false]);
        let mut rate: FaultRule = "reset@rate=0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        let n = (0..10_000).filter(|_| rate.hits("/services/data/v66.0/query")).count();
        assert!((800..1200).contains(&n), "{n}");
        assert!(!rate.hits("/favicon.ico"));
        assert!("boom@nth=1".parse::<FaultRule>().is_err());
    }
}
