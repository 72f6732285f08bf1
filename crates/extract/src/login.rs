//! The OAuth 2.0 JWT bearer flow: sign an RS256 assertion with the connected app's private key
//! and trade it for an access token. There is no refresh token: when a session dies, sign again.
//!
//! Where the token is asked for and which `aud` the assertion names depends on the org
//! (salesforce-api.md sections 1 and 7): a connected app takes the login host for both; an
//! External Client App (new orgs since Winter '26) takes the org's My Domain URL as audience and
//! answers `app_not_found` to the login host; GovCloud and orgs that block the login hosts take
//! the token request at My Domain with `aud` still the login host. Unless the pipeline pins a
//! [`LoginRoute`], the routes are tried in that order, and the one that worked is kept.

use crate::error::{Error, LoginError, Result};
use crate::secret::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// The connector settings that log in (the seed's Login URL, Client ID, Username, private key).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `https://login.salesforce.com`, `https://test.salesforce.com`, or a My Domain URL.
    pub login_url: String,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The user to impersonate.
    pub username: String,
    /// PEM content of the `.key` file.
    pub private_key: Secret,
    /// The org's My Domain URL (the `url` setting), tried when the login host refuses the route.
    pub my_domain_url: Option<String>,
    /// A route pinned by the `token_url` / `audience` settings: the only one tried.
    pub pinned: Option<LoginRoute>,
}

/// Where the assertion is posted (`{token_url}/services/oauth2/token`) and the `aud` it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRoute {
    pub token_url: String,
    pub audience: String,
}

impl Credentials {
    /// The routes to try, in order: the pinned one alone, or the login host, then My Domain as
    /// token host and audience (External Client Apps), then My Domain as token host with the
    /// login host as audience (login hosts blocked).
    pub fn routes(&self) -> Vec<LoginRoute> {
        if let Some(pinned) = &self.pinned {
            return vec![pinned.clone()];
        }
        let login = self.login_url.trim_end_matches('/').to_string();
        let route =
            |token_url: &str, audience: &str| LoginRoute { token_url: token_url.into(), audience: audience.into() };
        let mut routes = vec![route(&login, &login)];
        if let Some(my_domain) = self.my_domain_url.as_deref().map(|u| u.trim_end_matches('/')) {
            for candidate in [route(my_domain, my_domain), route(my_domain, &login)] {
                if !routes.contains(&candidate) {
                    routes.push(candidate);
                }
            }
        }
        routes
    }
}

/// A live session: the token and the instance that REST calls go to.
#[derive(Debug, Clone)]
pub struct LoginSession {
    pub access_token: Secret,
    /// The instance, checked ([`crate::hosts::trusted_instance`]): where the token may go.
    pub instance: url::Url,
    pub instance_url: String,
    /// `https://login.salesforce.com/id/<orgId>/<userId>`.
    pub identity_url: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct TokenRefusal {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Checks that the key parses, before any request.
pub fn encoding_key(private_key: &Secret) -> Result<EncodingKey, LoginError> {
    EncodingKey::from_rsa_pem(private_key.expose().as_bytes()).map_err(|e| LoginError::BadPrivateKey(e.to_string()))
}

/// Logs in through `route`.
pub(crate) async fn login(
    http: &reqwest::Client,
    credentials: &Credentials,
    route: &LoginRoute,
) -> Result<LoginSession> {
    let login_url = route.token_url.trim_end_matches('/');
    let fail = |source| Error::Login { login_url: login_url.to_string(), source };
    let key = encoding_key(&credentials.private_key).map_err(fail)?;
    let claims = Claims {
        iss: &credentials.client_id,
        sub: &credentials.username,
        aud: route.audience.trim_end_matches('/'),
        // Salesforce accepts an expiry at most three minutes ahead.
        exp: chrono::Utc::now().timestamp() + 170,
    };
    let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| fail(LoginError::BadPrivateKey(e.to_string())))?;
    let url = format!("{login_url}/services/oauth2/token");
    let response = http
        .post(&url)
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())])
        .send()
        .await
        .map_err(|e| Error::Transport { url: url.clone(), message: crate::error::chain(&e) })?;
    let status = response.status();
    // A token answer is small: a megabyte is plenty.
    let body = crate::body::read_body(response, &url, 1 << 20).await?;
    // Both answers are JSON; anything else (an HTML error page, a cut body) is unexpected. The
    // token endpoint's body is never quoted: a success that does not parse may hold the token.
    let unexpected = || Error::UnexpectedBody {
        url: url.clone(),
        status: status.as_u16(),
        excerpt: "the token endpoint's answer is not shown".into(),
        retry_after: None,
    };
    if status.is_success() {
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|_| unexpected())?;
        let mut configured = vec![credentials.login_url.as_str(), route.token_url.as_str()];
        configured.extend(credentials.my_domain_url.as_deref());
        let instance = crate::hosts::trusted_instance(&token.instance_url, &configured)?;
        return Ok(LoginSession {
            access_token: Secret::new(token.access_token),
            instance_url: instance.as_str().trim_end_matches('/').to_string(),
            instance,
            identity_url: token.id,
        });
    }
    let refusal: TokenRefusal = serde_json::from_slice(&body).map_err(|_| unexpected())?;
    Err(fail(explain(refusal, &credentials.username)))
}

/// Maps Salesforce's `error` (and, for `invalid_grant`, its description) to the setup step to fix.
fn explain(refusal: TokenRefusal, username: &str) -> LoginError {
    let description = refusal.error_description.to_lowercase();
    match refusal.error.as_str() {
        "invalid_client_id" => LoginError::UnknownClientId,
        "app_not_found" => LoginError::AppNotFound,
        "invalid_grant" if description.contains("approved") => LoginError::NotPreAuthorized,
        "invalid_grant" if description.contains("audience") => LoginError::WrongAudience,
        "invalid_grant" if description.contains("expired") => LoginError::Expired,
        "invalid_grant" if description.contains("assertion") => LoginError::CertificateMismatch,
        "invalid_grant" if description.contains("authentication failure") || description.contains("user") => {
            LoginError::UserRefused { username: username.to_string() }
        }
        _ => LoginError::Other { error: refusal.error, description: refusal.error_description },
    }
}
