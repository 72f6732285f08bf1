//! Where the access token may go. Every URL is parsed (never glued as text); requests with the
//! token go only to the session's instance, which must be the org's configured host or a
//! Salesforce domain; a URL from a response is only ever a path under `/services/data/` on
//! that instance.

use crate::error::{Error, Result};
use url::{Host, Url};

/// Salesforce's own domains: an instance or My Domain host is a subdomain of one of these
/// (Salesforce Help, "My Domain URL Formats" and "Allowlist Salesforce IP Addresses and
/// Domains": salesforce.com, force.com, cloudforce.com; salesforce.mil for Government Cloud
/// Plus; sfcrmapps.cn for Alibaba Cloud in China).
pub const SALESFORCE_DOMAINS: [&str; 5] =
    ["salesforce.com", "force.com", "cloudforce.com", "salesforce.mil", "sfcrmapps.cn"];

/// Whether `url` is a plain origin sfetl may talk to: `https`, or `http` on an exact loopback
/// address (`127.0.0.1`, `::1`, `localhost`: a simulator, or a local proxy), without user name
/// or password.
pub fn is_allowed_origin(url: &Url) -> bool {
    let plain = url.username().is_empty() && url.password().is_none() && url.host().is_some();
    plain && (url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url)))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

fn is_salesforce_host(url: &Url) -> bool {
    let Some(Host::Domain(name)) = url.host() else { return false };
    let name = name.to_ascii_lowercase();
    url.scheme() == "https"
        && url.port().is_none()
        && SALESFORCE_DOMAINS.iter().any(|domain| name.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.')))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_or_known_default() == b.port_or_known_default()
}

/// The instance a token response names, if the token may go there: the same origin as one of
/// the `configured` URLs (the org's `url`, the login and token URLs), or a Salesforce host over
/// https. A loopback instance must be one of the configured origins exactly: another listener
/// on the machine is not the org.
pub fn trusted_instance(instance_url: &str, configured: &[&str]) -> Result<Url> {
    let refused = |why: &str| Error::ForeignInstance { instance_url: instance_url.to_string(), why: why.to_string() };
    let url = Url::parse(instance_url).map_err(|_| refused("it is not a URL"))?;
    if !is_allowed_origin(&url) {
        return Err(refused("it is not https"));
    }
    let configured: Vec<Url> = configured.iter().filter_map(|c| Url::parse(c).ok()).collect();
    if configured.iter().any(|c| same_origin(c, &url)) || is_salesforce_host(&url) {
        Ok(url)
    } else {
        Err(refused("it is neither the org's configured host nor a Salesforce domain"))
    }
}

/// `path` (from sfetl, or from a response: `nextRecordsUrl`) as a URL on the instance: only an
/// absolute path under `/services/data/`; anything that could name another host (`//host`,
/// `@host`, a scheme, a backslash) or leave the API (`..`) is refused.
pub fn api_url(instance: &Url, path: &str) -> Result<Url> {
    let refused = || Error::ForeignUrl { url: path.to_string() };
    let suspicious = path.contains("..") || path.contains('\\') || path.contains('@') || path.contains("//");
    if !path.starts_with("/services/data/") || suspicious || path.chars().any(char::is_control) {
        return Err(refused());
    }
    let url = instance.join(path).map_err(|_| refused())?;
    if !same_origin(&url, instance) || !url.path().starts_with("/services/data/") {
        return Err(refused());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_the_configured_host_or_salesforce() {
        let configured = ["https://acme.my.salesforce.com", "https://login.salesforce.com", "http://127.0.0.1:8443"];
        for good in [
            "https://acme.my.salesforce.com",
            "https://acme--uat.sandbox.my.salesforce.com",
            "https://na224.salesforce.com",
            "https://acme.my.salesforce.mil",
            "http://127.0.0.1:8443",
        ] {
            assert!(trusted_instance(good, &configured).is_ok(), "{good}");
        }
        for bad in [
            "https://evil.example",
            "https://salesforce.com.evil.example",
            "https://evilsalesforce.com",
            "http://acme.my.salesforce.com",
            "https://acme.my.salesforce.com:8443",
            "http://127.0.0.2:8443",
            "http://127.0.0.1:9999",
            "http://localhost.evil.example",
            "https://user:pw@acme.my.salesforce.com",
            "not a url",
        ] {
            assert!(trusted_instance(bad, &configured).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_response_url_is_only_a_path_under_the_api() -> Result<()> {
        let instance =
            Url::parse("https://acme.my.salesforce.com").map_err(|_| Error::ForeignUrl { url: "".into() })?;
        let next = api_url(&instance, "/services/data/v66.0/query/01gD0000002HU6KIAW-2000")?;
        assert_eq!(next.as_str(), "https://acme.my.salesforce.com/services/data/v66.0/query/01gD0000002HU6KIAW-2000");
        for hostile in [
            "@evil.example:443/services/data/v66.0/query/x",
            ".evil.example/services/data/v66.0/query/x",
            "//evil.example/services/data/v66.0/query/x",
            "https://evil.example/services/data/v66.0/query/x",
            "/services/data/../../oauth2/token",
            "/services/data/v66.0/query/x/..%2f..%2f",
            "/services/data\\v66.0",
            "/services/apexrest/x",
            "/services/data/v66.0/query/x\n",
        ] {
            assert!(api_url(&instance, hostile).is_err(), "{hostile}");
        }
        Ok(())
    }
}
