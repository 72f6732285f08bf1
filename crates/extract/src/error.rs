//! What can go wrong talking to Salesforce, with what to do about it.

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `outer: cause: root cause` (reqwest's own message is
/// only "error sending request"; the cause says what went wrong).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A refused login, explained in terms of the connected app's setup steps.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "the private key is not a PEM RSA private key ({0}); give the content of the `.key` file made with the certificate"
    )]
    BadPrivateKey(String),
    #[error(
        "Salesforce does not know this consumer key (invalid_client_id): set `client_id` to the connected app's Consumer Key (setup step 2)"
    )]
    UnknownClientId,
    #[error(
        "Salesforce refused the signature (invalid assertion): the certificate uploaded to the connected app (\"Use digital signatures\", setup step 2) does not match this private key; upload the `.crt` made from this `.key`"
    )]
    CertificateMismatch,
    #[error(
        "wrong login URL for this org (audience is invalid): sandboxes log in at https://test.salesforce.com, production orgs at https://login.salesforce.com; check `login_url`"
    )]
    WrongAudience,
    #[error(
        "no app with this consumer key answers at this audience (app_not_found): an External Client App takes the org's My Domain URL as audience; set `url` to it (https://company.my.salesforce.com), or pin `audience`"
    )]
    AppNotFound,
    #[error(
        "the user is not pre-authorized for the connected app (user hasn't approved this consumer): in the app's Manage > Edit Policies choose \"Admin approved users are pre-authorized\", then add the user's profile or a permission set under Manage Profiles / Manage Permission Sets (setup step 3)"
    )]
    NotPreAuthorized,
    #[error(
        "the login assertion had expired when Salesforce read it (expired authorization code): check this machine's clock"
    )]
    Expired,
    #[error(
        "Salesforce refused the user `{username}` (authentication failure): it must exist, be active and not frozen, and have no multi-factor authentication configured; check `username`"
    )]
    UserRefused { username: String },
    #[error("login refused: {error}: {description}")]
    Other { error: String, description: String },
}

/// An error body from the REST API: `[{"errorCode", "message"}]` and the HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("HTTP {status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<std::time::Duration>,
}

impl LoginError {
    /// A refusal that another token host or audience may not give: the app or the user may be
    /// fine, seen through the right door. The others concern the key, the clock or the user's
    /// pre-authorization, which no route changes.
    pub fn may_be_the_route(&self) -> bool {
        matches!(
            self,
            LoginError::WrongAudience
                | LoginError::AppNotFound
                | LoginError::UnknownClientId
                | LoginError::UserRefused { .. }
                | LoginError::Other { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("login to {login_url} failed")]
    Login { login_url: String, source: LoginError },
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url} answered {detail}")]
    Api { url: String, detail: ApiError },
    #[error("{url} answered HTTP {status} with a body that is not Salesforce JSON ({excerpt})")]
    UnexpectedBody { url: String, status: u16, excerpt: String, retry_after: Option<std::time::Duration> },
    #[error("CA certificate `{path}`: {message}")]
    CaFile { path: String, message: String },
    #[error(
        "daily API quota exhausted (REQUEST_LIMIT_EXCEEDED): the org allows no more API calls until its 24-hour window moves on"
    )]
    QuotaExhausted,
    #[error("stopped by the quota guard: {0}")]
    QuotaGuard(String),
    #[error(
        "Bulk API query job {job} failed ({message}); set `bulk_threshold = 0` to read this org through the REST query API only"
    )]
    Bulk { job: String, message: String },
    #[error(
        "Salesforce's token answer names the instance {instance_url}, and {why}: sfetl sends the access token nowhere else than the org's `url` host or a Salesforce domain; check `url`, `login_url` and the network between this machine and Salesforce"
    )]
    ForeignInstance { instance_url: String, why: String },
    #[error(
        "a response pointed at `{url}`, which is not a path under /services/data/ on the org's instance: refused (the access token goes nowhere else)"
    )]
    ForeignUrl { url: String },
    #[error(
        "{url} answered HTTP {status}, a redirect to `{location}`: sfetl follows no redirect with the access token; set `url` to the org's My Domain (Setup > My Domain)"
    )]
    Redirect { url: String, status: u16, location: String },
    #[error(
        "{url} answered more than {limit_mb} MB (after decompression): refused; raise `max_response_mb` if this org's pages really are that large"
    )]
    BodyTooLarge { url: String, limit_mb: u64 },
    #[error(
        "the query of {object} went round in circles ({why}): stopped, so that it neither loops nor spends the API quota; nothing of it is kept"
    )]
    Looping { object: String, why: String },
    #[error(
        "the org offers API versions {offered}, none of which sfetl reads ({}..={}); pin one with `api_version`",
        crate::client::OLDEST_API_VERSION,
        crate::client::NEWEST_API_VERSION
    )]
    NoCommonApiVersion { offered: String },
}

impl Error {
    /// Worth trying again: the network, 5xx, and bodies cut short.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            // A 2xx whose body does not parse was cut short on the way.
            Error::UnexpectedBody { status, .. } => *status >= 500 || (200..300).contains(status),
            // QUERY_TIMEOUT is not: the same query times out again (the query stream splits it).
            // REQUEST_LIMIT_EXCEEDED reaches here only when it is not the daily quota.
            Error::Api { detail, .. } => detail.status >= 500 || detail.code == "REQUEST_LIMIT_EXCEEDED",
            _ => false,
        }
    }

    /// The org's API quota stopped the run (exhausted, or the guard's share reached).
    pub fn is_quota_stop(&self) -> bool {
        matches!(self, Error::QuotaExhausted | Error::QuotaGuard(_))
    }

    /// How long the server asked to wait, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Api { detail, .. } => detail.retry_after,
            Error::UnexpectedBody { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The query cursor is gone (expired, or opened by a session that died): restart the query.
    pub fn is_invalid_locator(&self) -> bool {
        matches!(self, Error::Api { detail, .. } if detail.code == "INVALID_QUERY_LOCATOR")
    }

    /// Salesforce gave up on the query: ask for less at a time.
    pub fn is_query_timeout(&self) -> bool {
        matches!(self, Error::Api { detail, .. } if detail.code == "QUERY_TIMEOUT")
    }

    /// A field of the query does not exist for this user (the org lacks it, or field-level
    /// security hides it).
    pub fn is_invalid_field(&self) -> bool {
        matches!(self, Error::Api { detail, .. } if detail.code == "INVALID_FIELD")
    }

    /// The object cannot be read here: it does not exist for this user (`INVALID_TYPE`, what an
    /// org without the object, or a user without access to a setup object, gets), or the user
    /// lacks a permission it needs (`INSUFFICIENT_ACCESS…`: which of the two an org answers for a
    /// given object is not always documented, so both count).
    pub fn is_object_unreadable(&self) -> bool {
        matches!(self, Error::Api { detail, .. }
            if detail.code == "INVALID_TYPE" || detail.code.starts_with("INSUFFICIENT_ACCESS"))
    }

    /// The user may not use the resource: 403, other than the concurrent-requests limit (what
    /// Salesforce answers a user without a permission the resource needs is not always
    /// documented: `/limits` needs "View Setup and Configuration").
    fn is_forbidden(&self) -> bool {
        matches!(self, Error::Api { detail, .. } if detail.status == 403 && detail.code != "REQUEST_LIMIT_EXCEEDED")
    }

    /// The user may not read the resource, by either of the answers above.
    pub fn is_refused(&self) -> bool {
        self.is_object_unreadable() || self.is_forbidden()
    }

    /// The resource does not exist for this user (a describe of an object it may not see).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { detail, .. } if detail.status == 404 || detail.code == "NOT_FOUND")
    }

    /// Why Salesforce refused the login, when it did.
    pub fn login_refusal(&self) -> Option<&LoginError> {
        match self {
            Error::Login { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The session died: log in again.
    pub fn is_invalid_session(&self) -> bool {
        matches!(self, Error::Api { detail, .. } if detail.code == "INVALID_SESSION_ID")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> Error {
        Error::Api {
            url: "u".into(),
            detail: ApiError { status, code: code.into(), message: String::new(), retry_after: None },
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        for code in ["MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE", "QUERY_TIMEOUT", "INVALID_QUERY_LOCATOR"] {
            assert!(!api(400, code).is_transient(), "{code}");
        }
        assert!(!Error::Login { login_url: "l".into(), source: LoginError::UnknownClientId }.is_transient());
        assert!(!Error::QuotaExhausted.is_transient());
        assert!(api(500, "UNKNOWN_EXCEPTION").is_transient());
        assert!(api(503, "SERVER_UNAVAILABLE").is_transient());
        for code in ["INVALID_TYPE", "INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY"] {
            assert!(api(400, code).is_object_unreadable(), "{code}");
        }
        assert!(!api(400, "INVALID_FIELD").is_object_unreadable());
        assert!(api(403, "FUNCTIONALITY_NOT_ENABLED").is_forbidden() && api(403, "INSUFFICIENT_ACCESS").is_forbidden());
        assert!(!api(403, "REQUEST_LIMIT_EXCEEDED").is_forbidden() && !api(400, "INVALID_FIELD").is_forbidden());
        assert!(api(400, "INVALID_TYPE").is_refused() && api(403, "FUNCTIONALITY_NOT_ENABLED").is_refused());
        assert!(
            api(403, "REQUEST_LIMIT_EXCEEDED").is_transient(),
            "ConcurrentRequests: the daily kind is QuotaExhausted"
        );
        let html = Error::UnexpectedBody { url: "u".into(), status: 503, excerpt: "<html>".into(), retry_after: None };
        assert!(html.is_transient());
        assert!(Error::Transport { url: "u".into(), message: "reset".into() }.is_transient());
    }
}
