//! A real org's connection settings, validated: URLs, the key (and who may read its file), the
//! certificate and CA files, the login route.

use crate::config::{Connection, OrgSettings};
use std::path::Path;

/// An optional file setting, read relative to the pipeline's directory: its path (for messages)
/// and content, or a complaint naming the setting when it cannot be read.
fn read_optional<T>(
    setting: &str,
    file: Option<&Path>,
    base: &Path,
    read: impl Fn(&Path) -> std::io::Result<T>,
    complain: &mut impl FnMut(&str, String),
) -> Option<(String, T)> {
    let path = base.join(file?);
    match read(&path) {
        Ok(content) => Some((path.display().to_string(), content)),
        Err(e) => {
            complain(setting, format!("`{}` cannot be read: {e}", path.display()));
            None
        }
    }
}

pub(crate) fn real_connection(
    org: &OrgSettings,
    base: &Path,
    complain: &mut impl FnMut(&str, String),
) -> Option<Connection> {
    let mut required = |key: &str, value: &Option<String>, what: &str| -> String {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => v.to_string(),
            _ => {
                complain(key, format!("is missing: {what}"));
                String::new()
            }
        }
    };
    let url = required("url", &org.url, "the org's URL, like https://company.my.salesforce.com");
    let client_id = required("client_id", &org.client_id, "the connected app's Consumer Key");
    let username = required("username", &org.username, "the Salesforce username to impersonate");
    let (url, sandbox) = my_domain(&url);
    let login_url = org
        .login_url
        .clone()
        .unwrap_or_else(|| if sandbox { "https://test.salesforce.com" } else { "https://login.salesforce.com" }.into());
    let pinned_route = (org.token_url.is_some() || org.audience.is_some()).then(|| sfetl_extract::LoginRoute {
        token_url: org.token_url.clone().unwrap_or_else(|| login_url.clone()),
        audience: org.audience.clone().unwrap_or_else(|| login_url.clone()),
    });
    let route_urls = pinned_route.iter().flat_map(|r| [("token_url", &r.token_url), ("audience", &r.audience)]);
    for (key, value) in [("url", &url), ("login_url", &login_url)].into_iter().chain(route_urls) {
        // https only; plain http for an exact loopback address (a simulator, a local proxy).
        let allowed = url::Url::parse(value).is_ok_and(|u| sfetl_extract::hosts::is_allowed_origin(&u));
        if !value.is_empty() && !allowed {
            complain(key, format!("is `{value}`: expected an https:// URL"));
        }
    }
    let private_key = match (&org.private_key_file, &org.private_key_env) {
        (Some(_), Some(_)) => {
            complain("private_key_file", "and `private_key_env` are both set: keep one".into());
            None
        }
        (None, None) => {
            complain("private_key_file", "is missing: give the path of the `.key` file (or `private_key_env`)".into());
            None
        }
        (Some(file), None) => {
            let path = base.join(file);
            match (std::fs::read_to_string(&path), key_mode(&path)) {
                // The key opens the whole org: only its owner may read it.
                (Ok(_), Some(mode)) if mode & 0o077 != 0 => {
                    complain(
                        "private_key_file",
                        format!(
                            "`{}` can be read by other users (mode {mode:o}): run `chmod 600 {}`, or give the key in `private_key_env`",
                            path.display(),
                            path.display()
                        ),
                    );
                    None
                }
                (Ok(pem), _) => Some(pem),
                (Err(e), _) => {
                    complain("private_key_file", format!("`{}` cannot be read: {e}", path.display()));
                    None
                }
            }
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(pem) if !pem.trim().is_empty() => Some(pem),
            _ => {
                complain("private_key_env", format!("names `{var}`, which is not set in the environment: export the PEM content of the `.key` file in it"));
                None
            }
        },
    }
    .map(sfetl_extract::Secret::new);
    if let Some(key) = &private_key
        && let Err(e) = sfetl_extract::encoding_key(key)
    {
        complain(if org.private_key_file.is_some() { "private_key_file" } else { "private_key_env" }, e.to_string());
    }
    let ca_file = read_optional("ca_file", org.ca_file.as_deref(), base, |p| std::fs::read(p), complain);
    let certificate = read_optional(
        "certificate_file",
        org.certificate_file.as_deref(),
        base,
        |p| std::fs::read_to_string(p),
        complain,
    );
    Some(Connection::Real {
        url,
        login_url,
        pinned_route,
        client_id,
        username,
        private_key: private_key?,
        certificate,
        ca_file,
    })
}

/// A file's permission bits.
fn key_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o777)
}

/// The org's API host from the `url` a user copied, and whether it is a sandbox. The browser's
/// Lightning host (`acme.lightning.force.com`) and the Setup host (`acme.my.salesforce-setup.com`)
/// are not API hosts: the API answers at My Domain (`acme.my.salesforce.com`); sandboxes are
/// `acme--uat.sandbox.my.salesforce.com` (enhanced domains) or `acme--uat.my.salesforce.com`
/// (salesforce-api.md section 7; Salesforce Help, "My Domain URL Formats").
pub fn my_domain(url: &str) -> (String, bool) {
    let trimmed = url.trim().trim_end_matches('/');
    let Some((scheme, rest)) = trimmed.split_once("://") else { return (trimmed.to_string(), false) };
    let host = rest.split('/').next().unwrap_or(rest).to_lowercase();
    let host = [".lightning.force.com", ".my.salesforce-setup.com"]
        .iter()
        .find_map(|suffix| host.strip_suffix(suffix))
        .map_or_else(|| host.clone(), |name| format!("{name}.my.salesforce.com"));
    let sandbox = host.ends_with(".sandbox.my.salesforce.com")
        || host.strip_suffix(".my.salesforce.com").is_some_and(|name| name.contains("--"));
    (format!("{scheme}://{host}"), sandbox)
}

#[cfg(test)]
mod tests {
    use super::my_domain;
    use crate::{Connection, Pipeline};

    /// A sandbox's Lightning address is normalised to its My Domain and makes the sandbox login
    /// host the default; a production org keeps login.salesforce.com; pinned routes are kept.
    #[test]
    fn a_sandbox_url_defaults_the_login_url_and_routes_can_be_pinned() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = sfetl_extract::keys::rsa_key_and_certificate("t").unwrap_or_else(|e| panic!("{e}"));
        let key_file = dir.path().join("k.key");
        std::fs::write(&key_file, key.private_key_pem).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let org = |name: &str, url: &str, extra: &str| {
            format!(
                "[[orgs]]\nname = \"{name}\"\nurl = \"{url}\"\nclient_id = \"c\"\nusername = \"u\"\n\
                 private_key_file = \"k.key\"\n{extra}\n"
            )
        };
        let text = [
            org("uat", "https://acme--uat.sandbox.lightning.force.com/lightning/page/home", ""),
            org("prod", "https://acme.lightning.force.com", "audience = \"https://acme.my.salesforce.com\""),
        ]
        .concat();
        std::fs::write(dir.path().join("p.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let pipeline = Pipeline::load(&dir.path().join("p.toml")).unwrap_or_else(|e| panic!("{e}"));
        let connections: Vec<_> = pipeline
            .orgs
            .iter()
            .map(|o| match &o.connection {
                Connection::Real { url, login_url, pinned_route, .. } => {
                    (url.clone(), login_url.clone(), pinned_route.clone())
                }
                Connection::Simulated(_) => panic!("real orgs"),
            })
            .collect();
        assert_eq!(connections[0].0, "https://acme--uat.sandbox.my.salesforce.com");
        assert_eq!(connections[0].1, "https://test.salesforce.com");
        assert_eq!(connections[0].2, None);
        assert_eq!(connections[1].0, "https://acme.my.salesforce.com");
        assert_eq!(connections[1].1, "https://login.salesforce.com");
        let pinned = connections[1].2.clone().unwrap_or_else(|| panic!("pinned"));
        assert_eq!(
            (pinned.token_url.as_str(), pinned.audience.as_str()),
            ("https://login.salesforce.com", "https://acme.my.salesforce.com")
        );
    }

    #[test]
    fn lightning_and_setup_hosts_become_my_domain_and_sandboxes_are_recognised() {
        let cases = [
            ("https://acme.my.salesforce.com/", "https://acme.my.salesforce.com", false),
            ("https://acme.lightning.force.com/lightning/page/home", "https://acme.my.salesforce.com", false),
            ("https://Acme.my.salesforce-setup.com", "https://acme.my.salesforce.com", false),
            ("https://acme--uat.sandbox.lightning.force.com", "https://acme--uat.sandbox.my.salesforce.com", true),
            ("https://acme--uat.sandbox.my.salesforce.com", "https://acme--uat.sandbox.my.salesforce.com", true),
            ("https://acme--uat.my.salesforce.com", "https://acme--uat.my.salesforce.com", true),
            ("http://127.0.0.1:8443", "http://127.0.0.1:8443", false),
        ];
        for (given, api, sandbox) in cases {
            assert_eq!(my_domain(given), (api.to_string(), sandbox), "{given}");
        }
    }
}
