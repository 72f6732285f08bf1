//! `sfetl check`: walks each org's connection step by step, one pass/fail line each, and names the
//! setting or the connected-app setup step to fix.

use crate::pipeline::{Connection, OrgPlan};
use sfetl_extract::soql::SoqlQuery;
use sfetl_extract::{Error, SalesforceClient};
use sfetl_transform::tables;
use std::process::ExitCode;

/// One checked step.
#[derive(Debug, serde::Serialize)]
pub struct Step {
    pub org: String,
    pub step: String,
    pub ok: bool,
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
        self.steps.push(Step { org: self.org.clone(), step: step.into(), ok: true, detail: detail.into(), fix: None });
    }

    fn fail(&mut self, step: &str, detail: impl Into<String>, fix: impl Into<String>) {
        let fix = Some(fix.into());
        self.steps.push(Step { org: self.org.clone(), step: step.into(), ok: false, detail: detail.into(), fix });
    }
}

/// Every step for every org; the steps after a failed login are skipped (they need a session).
pub async fn check_org(org: &OrgPlan) -> Vec<Step> {
    let mut steps = Steps { org: org.name.clone(), steps: Vec::new() };
    steps.pass("settings", "every setting is present and well-formed");
    if let Connection::Real { private_key, certificate: Some((path, pem)), .. } = &org.connection {
        match sfetl_sim::keys::key_matches_certificate(private_key.expose(), pem) {
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
    let connection = match crate::run::connect(org).await {
        Ok(connection) => connection,
        Err(e) => {
            steps.fail("connection", crate::describe(&e), "check the settings above");
            return steps.steps;
        }
    };
    let login_url = connection.credentials.login_url.clone();
    let client = match SalesforceClient::new(connection.credentials, connection.settings) {
        Ok(client) => client,
        Err(e) => {
            steps.fail("connection", e.to_string(), "check `ca_file`");
            return steps.steps;
        }
    };
    match client.probe_login_url().await {
        Ok(()) => steps.pass("login URL", format!("{login_url} answers")),
        Err(e) => {
            let fix = "check `login_url` (https://login.salesforce.com, or https://test.salesforce.com for sandboxes) \
                       and this machine's network access to it";
            steps.fail("login URL", e.to_string(), fix);
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
            steps.fail("token exchange", e.to_string(), "check `login_url` and the network");
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
    for table in tables::ALL {
        let query = SoqlQuery::new(table.object, table.soql_fields()).limit(1);
        let step = format!("read {}", table.object);
        match client.query(&query).next_page().await {
            Ok(_) => {
                steps.pass(&step, format!("the user can read {} ({} fields)", table.object, table.soql_fields().len()))
            }
            Err(Error::Api { detail, .. }) if detail.code == "INVALID_TYPE" => steps.fail(
                &step,
                format!("{} is not visible to this user", table.object),
                "give the user \"View Setup and Configuration\" (in its profile or a permission set)",
            ),
            Err(Error::Api { detail, .. }) if detail.code == "INVALID_FIELD" => steps.fail(
                &step,
                detail.message.lines().last().unwrap_or_default().to_string(),
                "grant the user read access to the field (field-level security), or check `api_version`",
            ),
            Err(e) => steps.fail(&step, e.to_string(), "see the error"),
        }
    }
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
        Err(e) => steps.fail("API quota", e.to_string(), "see the error"),
    }
    steps.steps
}

/// Prints the steps (text or JSON); success only when every step passed.
pub fn report(steps: &[Step], json: bool) -> ExitCode {
    if json {
        println!("{}", serde_json::to_string_pretty(steps).unwrap_or_else(|_| "[]".into()));
    } else {
        for step in steps {
            let mark = if step.ok { "ok  " } else { "FAIL" };
            println!("{mark} {:<14} {:<34} {}", step.org, step.step, step.detail);
            if let Some(fix) = &step.fix {
                println!("     {:<14} {:<34} fix: {fix}", "", "");
            }
        }
        let failed = steps.iter().filter(|s| !s.ok).count();
        println!("{} passed, {failed} failed", steps.len() - failed);
    }
    if steps.iter().all(|s| s.ok) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
