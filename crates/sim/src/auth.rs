//! The OAuth 2.0 JWT bearer flow as Salesforce checks it, and the sessions it opens.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// A connected app: consumer key, uploaded certificate, and the profiles pre-authorized under
/// "Admin approved users are pre-authorized".
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub consumer_key: String,
    pub certificate_pem: String,
    pub authorized_profiles: Vec<String>,
    pub kind: AppKind,
}

/// The two kinds of app a JWT bearer integration is set up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Setup > App Manager > New Connected App: the audience is the login host.
    ConnectedApp,
    /// Setup > External Client App Manager (new orgs since Winter '26): the audience must be the
    /// org's My Domain URL; the login host as audience answers `app_not_found` (salesforce-api.md
    /// section 7).
    ExternalClientApp,
}

/// The error of a refused token request: HTTP 400 with `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRefusal {
    pub error: &'static str,
    pub description: &'static str,
}

const fn refuse(error: &'static str, description: &'static str) -> LoginRefusal {
    LoginRefusal { error, description }
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
}

/// Who a valid assertion logs in as, for the caller to check against the org's users.
#[derive(Debug)]
pub struct Assertion {
    pub username: String,
}

/// Checks a JWT bearer assertion in Salesforce's order: the app, the signature, the audience, the
/// expiry. The user checks (exists, active, pre-authorized) follow in the server, which knows the org.
/// `audience` is what a connected app accepts (the login host), `my_domain` what an External
/// Client App accepts.
pub fn verify_assertion(
    jwt: &str,
    apps: &[ConnectedApp],
    audience: &str,
    my_domain: &str,
    now_epoch: i64,
) -> Result<(Assertion, ConnectedApp), LoginRefusal> {
    let invalid = refuse("invalid_grant", "invalid assertion");
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| invalid.clone())?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid);
    }
    let claims: Claims =
        jsonwebtoken::dangerous::insecure_decode(jwt).map(|t| t.claims).map_err(|_| invalid.clone())?;
    let app = apps
        .iter()
        .find(|a| Some(&a.consumer_key) == claims.iss.as_ref())
        .ok_or(refuse("invalid_client_id", "client identifier invalid"))?;
    let key = public_key(&app.certificate_pem).ok_or(invalid.clone())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation).map_err(|_| invalid.clone())?;
    let names = |wanted: &str| match &claims.aud {
        Some(serde_json::Value::String(aud)) => aud.trim_end_matches('/') == wanted.trim_end_matches('/'),
        Some(serde_json::Value::Array(list)) => {
            list.iter().any(|a| a.as_str().map(|a| a.trim_end_matches('/')) == Some(wanted.trim_end_matches('/')))
        }
        _ => false,
    };
    match app.kind {
        AppKind::ConnectedApp if !names(audience) => return Err(refuse("invalid_grant", "audience is invalid")),
        // Salesforce's answer when an External Client App is addressed through the login host.
        AppKind::ExternalClientApp if names(audience) && !names(my_domain) => {
            return Err(refuse("app_not_found", "External client app is not installed in this org"));
        }
        AppKind::ExternalClientApp if !names(my_domain) => {
            return Err(refuse("invalid_grant", "audience is invalid"));
        }
        _ => {}
    }
    match claims.exp {
        Some(exp) if exp < now_epoch => return Err(refuse("invalid_grant", "expired authorization code")),
        Some(exp) if exp > now_epoch + 180 + 5 => return Err(invalid),
        None => return Err(invalid),
        Some(_) => {}
    }
    let username = claims.sub.ok_or(invalid)?;
    Ok((Assertion { username }, app.clone()))
}

fn public_key(certificate_pem: &str) -> Option<DecodingKey> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data))
}

/// An open session: who it belongs to and when it was last used (sessions time out idle).
#[derive(Debug, Clone)]
pub struct Session {
    pub last_used: Instant,
}

impl Session {
    pub fn expired(&self, timeout: Duration) -> bool {
        self.last_used.elapsed() > timeout
    }
}

/// `00D...!AQ...`: the org Id, then an opaque part.
pub fn new_access_token(org_id: &str) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut rng = rand::rng();
    let opaque: String = (0..96).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect();
    format!("{}!AQ{opaque}", &org_id[..15.min(org_id.len())])
}
