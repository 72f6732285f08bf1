//! The connection check (`sfetl check`): walks an org's connection step by step, one pass/fail
//! step each, naming the setting or the connected-app setup step to fix.

use crate::config::{Connection, OrgPlan};
use sfetl_extract::soql::{self, SoqlQuery};
use sfetl_extract::{Error, SalesforceClient, why_missing};
use sfetl_transform::tables::{self, TableDef};
use std::path::{Path, PathBuf};

/// One checked step.
#[derive(Debug, serde::Serialize)]
pub struct Step {
    pub org: String,
    pub step: String,
    pub ok: bool,
    /// Passed, with something to look at (the run works, the numbers may be off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
    pub detail: String,
    /// What to change when the step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

struct Steps {
    org: String,
    steps: Vec<Step>,
}

impl Steps {
    fn pass(&mut self, step: &str, detail: impl Into<String>) {
        self.push(step, true, false, detail.into(), None);
    }

    fn warn(&mut self, step: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(step, true, true, detail.into(), Some(fix.into()));
    }

    fn fail(&mut self, step: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(step, false, false, detail.into(), Some(fix.into()));
    }

    fn push(&mut self, step: &str, ok: bool, warning: bool, detail: String, fix: Option<String>) {
        self.steps.push(Step { org: self.org.clone(), step: step.into(), ok, warning, detail, fix });
    }
}

/// Every step for every org; the steps after a failed login are skipped (they need a session).
/// With `capture`, the org's shape is written there too.
pub async fn check_org(org: &OrgPlan, capture: Option<&Path>) -> Vec<Step> {
    let mut steps = Steps { org: org.name.clone(), steps: Vec::new() };
    steps.pass("settings", "every setting is present and well-formed");
    if let Connection::Real { private_key, certificate: Some((path, pem)), .. } = &org.connection {
        match sfetl_extract::keys::key_matches_certificate(private_key.expose(), pem) {
            Ok(true) => steps.pass("private key", format!("parses and matches the certificate {path}")),
            Ok(false) => steps.fail(
                "private key",
                format!("does not match the certificate {path}"),
                "give the `.key` made together with the `.crt` uploaded to the connected app (setup step 2)",
            ),
            Err(e) => steps.fail("private key", e, "check `private_key_file` and `certificate_file`"),
        }
    } else {
        steps.pass("private key", "parses as an RSA private key");
    }
    let connection = match crate::connect::connect(org).await {
        Ok(connection) => connection,
        Err(e) => {
            steps.fail("connection", crate::chain(&e), "check the settings above");
            return steps.steps;
        }
    };
    let login_url = connection.credentials.login_url.clone();
    let client = match SalesforceClient::new(connection.credentials, connection.settings) {
        Ok(client) => client,
        Err(e) => {
            steps.fail("connection", crate::chain(&e), "check `ca_file`");
            return steps.steps;
        }
    };
    match client.probe_login_url().await {
        Ok(()) => steps.pass("login URL", format!("{login_url} answers")),
        Err(e) => {
            let fix = "check `login_url` (https://login.salesforce.com, or https://test.salesforce.com for sandboxes) \
                       and this machine's network access to it";
            steps.fail("login URL", crate::chain(&e), fix);
            return steps.steps;
        }
    }
    let session = match client.login().await {
        Ok(session) => {
            steps.pass("token exchange", "Salesforce accepted the signed assertion");
            session
        }
        Err(Error::Login { source, .. }) => {
            steps.fail("token exchange", source.to_string(), "see the setting or setup step named above");
            return steps.steps;
        }
        Err(e) => {
            steps.fail("token exchange", crate::chain(&e), "check `login_url` and the network");
            return steps.steps;
        }
    };
    match &connection.expected_url {
        Some(url) if url.trim_end_matches('/') != session.instance_url => steps.fail(
            "instance URL",
            format!("Salesforce returned {}, `url` says {url}", session.instance_url),
            "set `url` to the instance URL Salesforce returned (Setup > My Domain)",
        ),
        _ => steps.pass("instance URL", session.instance_url.clone()),
    }
    let login_url = login_url.trim_end_matches('/');
    if let Some(route) = client.login_route().filter(|r| r.token_url != login_url || r.audience != login_url) {
        steps.pass(
            "login route",
            format!(
                "the login URL was refused; the token came from {} with audience {}: pin it with token_url = \"{}\" and audience = \"{}\"",
                route.token_url, route.audience, route.token_url, route.audience
            ),
        );
    }
    for table in tables::ALL {
        check_table(&client, table, &mut steps).await;
    }
    check_user_visibility(&client, &mut steps).await;
    match client.read_limits().await {
        Ok(usage) => {
            let share = usage.used as f64 / usage.max.max(1) as f64;
            let detail = format!("{} of {} daily API requests used ({:.0} %)", usage.used, usage.max, share * 100.0);
            if share >= org.quota.daily_share {
                steps.fail("API quota", detail, "wait for the 24-hour window to move on, or raise `quota_daily_share`");
            } else {
                steps.pass("API quota", detail);
            }
        }
        Err(e) if e.is_refused() => steps.warn(
            "API quota",
            crate::chain(&e),
            "grant \"View Setup and Configuration\" to read the quota before a run; without it the guard goes by the usage each answer reports",
        ),
        Err(e) => steps.fail("API quota", crate::chain(&e), "see the error"),
    }
    if let Some(path) = capture {
        capture_shape(&client, path, &mut steps).await;
    }
    steps.steps
}

/// Where one org's shape goes: `path` itself, or with several orgs `<stem>-<org>.<ext>`.
pub fn capture_path(path: &Path, org: &str, several: bool) -> PathBuf {
    if !several {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let extension = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}-{org}{extension}"))
}

/// Writes the org's shape for `sfetl sim --shape` (replacing an earlier capture atomically).
async fn capture_shape(client: &SalesforceClient, path: &Path, steps: &mut Steps) {
    const STEP: &str = "capture";
    let objects: Vec<&str> = tables::ALL.iter().map(|t| t.object).collect();
    let shape = match client.capture_shape(&objects).await {
        Ok(shape) => shape,
        Err(e) => return steps.fail(STEP, crate::chain(&e), "see the error"),
    };
    let written = serde_json::to_vec_pretty(&shape).map_err(std::io::Error::other).and_then(|json| {
        let temp = path.with_extension("json.tmp");
        std::fs::write(&temp, json)?;
        std::fs::rename(&temp, path)
    });
    match written {
        Ok(()) => steps.pass(
            STEP,
            format!(
                "wrote {} ({} objects, {} licenses, no personal data): sfetl sim --shape {0}",
                path.display(),
                shape.objects.len(),
                shape.user_licenses.len() + shape.permission_set_licenses.len() + shape.package_licenses.len()
            ),
        ),
        Err(e) => steps.fail(STEP, format!("{}: {e}", path.display()), "choose a writable `--capture` path"),
    }
}

/// Whether the user can read the table's object and fields. A missing optional field passes with
/// its name and why (the run leaves its column empty); a missing required one fails.
async fn check_table(client: &SalesforceClient, table: &TableDef, steps: &mut Steps) {
    let fields = table.soql_fields();
    let query = SoqlQuery::new(table.object, fields.clone()).limit(1);
    let step = format!("read {}", table.object);
    let refusal = match client.query(&query).next_page().await {
        Ok(_) => {
            steps.pass(&step, format!("the user can read {} ({} fields)", table.object, fields.len()));
            return;
        }
        Err(e) => e,
    };
    match &refusal {
        Error::Api { .. } if refusal.is_object_unreadable() && table.optional_object.is_some() => {
            let why = table.optional_object.unwrap_or_default();
            steps.warn(&step, format!("not readable, so {why}"), "see above, or accept the table empty");
        }
        Error::Api { detail, .. } if detail.code == "INVALID_TYPE" => steps.fail(
            &step,
            format!("{} is not visible to this user", table.object),
            "give the user \"View Setup and Configuration\" (in its profile or a permission set)",
        ),
        Error::Api { .. } if refusal.is_invalid_field() => match client.missing_fields(table.object, &fields).await {
            Ok(missing) => {
                let (optional, required): (Vec<_>, Vec<_>) = missing.iter().partition(|f| table.field_is_optional(f));
                let explain = |fields: &[&String]| {
                    let named: Vec<String> =
                        fields.iter().map(|f| format!("{}.{f} ({})", table.object, why_missing(f))).collect();
                    named.join("; ")
                };
                if let Some(first) = required.first() {
                    steps.fail(&step, format!("missing required fields: {}", explain(&required)), why_missing(first));
                } else if optional.is_empty() {
                    steps.fail(&step, crate::chain(&refusal), "see the error");
                } else {
                    let detail = format!("readable; these columns will stay empty: {}", explain(&optional));
                    steps.warn(&step, detail, "grant the fields, or accept the empty columns");
                }
            }
            Err(e) => steps.fail(&step, crate::chain(&e), "see the error"),
        },
        _ => steps.fail(&step, crate::chain(&refusal), "see the error"),
    }
}

/// Whether the user sees every user Salesforce counts: per user license, the active users the
/// user can query against `UsedLicenses`. Sharing settings that restrict user visibility hide
/// users from queries but not from the counts, and then every `held_by_*` figure is short.
/// One `COUNT()` query per license in use.
async fn check_user_visibility(client: &SalesforceClient, steps: &mut Steps) {
    const STEP: &str = "user visibility";
    let fix = "give the integration user \"View All Users\" (in its profile or a permission set), or open user sharing (Setup > Sharing Settings > User: Public Read Only)";
    let licenses =
        SoqlQuery::new("UserLicense", ["Id", "Name", "UsedLicenses"]).filter("UsedLicenses > 0").order_by("Id");
    let mut short = Vec::new();
    let mut stream = client.query(&licenses);
    loop {
        let page = match stream.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => return steps.fail(STEP, crate::chain(&e), "see the error"),
        };
        for license in &page.records {
            let (Some(id), Some(used)) = (license["Id"].as_str(), license["UsedLicenses"].as_u64()) else { continue };
            let count = SoqlQuery::new("User", ["COUNT()"])
                .filter("IsActive = true")
                .filter(format!("Profile.UserLicenseId = {}", soql::quote(id)));
            let visible = match client.query(&count).next_page().await {
                Ok(page) => page.map_or(0, |p| p.total_size),
                Err(e) => return steps.fail(STEP, crate::chain(&e), "see the error"),
            };
            if visible < used {
                short.push(format!("{} ({visible} of {used})", license["Name"].as_str().unwrap_or(id)));
            }
        }
    }
    if short.is_empty() {
        steps.pass(STEP, "the user sees every active user Salesforce counts per license");
    } else {
        steps.warn(STEP, format!("the user sees fewer active users than Salesforce counts: {}", short.join(", ")), fix);
    }
}
