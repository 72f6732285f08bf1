//! The simulator on the wire: every error body, paging, cursors, quota, gzip, faults and TLS.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sfetl_sim::{AppCredentials, Fault, FaultRule, OrgSpec, Sim, SimConfig, Trigger};
use std::collections::HashSet;
use std::time::Duration;

async fn sim(users: usize, tweak: impl FnOnce(&mut SimConfig)) -> (Sim, AppCredentials) {
    let mut config = SimConfig::new(OrgSpec::new(11, users));
    tweak(&mut config);
    let sim = Sim::start(config).await.unwrap_or_else(|e| panic!("{e}"));
    let app = sim.create_connected_app("System Administrator").unwrap_or_else(|e| panic!("{e}"));
    (sim, app)
}

fn jwt(key_pem: &str, iss: &str, sub: &str, aud: &str, exp_in: i64) -> String {
    let claims = json!({ "iss": iss, "sub": sub, "aud": aud, "exp": chrono::Utc::now().timestamp() + exp_in });
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap_or_else(|e| panic!("{e}"))
}

async fn token_request(sim: &Sim, assertion: &str, grant: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", sim.url()))
        .form(&[("grant_type", grant), ("assertion", assertion)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

async fn login(sim: &Sim, app: &AppCredentials) -> String {
    let assertion = jwt(&app.key.private_key_pem, &app.consumer_key, &sim.integration_username(), sim.url(), 120);
    let (status, body) = token_request(sim, &assertion, GRANT).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap_or_default().to_string()
}

async fn get(sim: &Sim, token: &str, path: &str, batch: Option<u32>) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", sim.url())).bearer_auth(token);
    if let Some(n) = batch {
        request = request.header("Sforce-Query-Options", format!("batchSize={n}"));
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

async fn send_json(request: reqwest::RequestBuilder, token: &str, body: Value) -> Value {
    let response = request.bearer_auth(token).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    response.json().await.unwrap_or(Value::Null)
}

/// `GET /services/data/`: the versions list, which needs no session.
async fn versions(sim: &Sim) -> Value {
    let response = reqwest::get(format!("{}/services/data/", sim.url())).await.unwrap_or_else(|e| panic!("{e}"));
    response.json().await.unwrap_or(Value::Null)
}

fn query_path(soql: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    format!("/services/data/v66.0/query?q={encoded}")
}

#[tokio::test]
async fn login_succeeds_and_each_refusal_has_salesforces_body() {
    let (sim, app) = sim(100, |_| {}).await;
    let user = sim.integration_username();
    let key = &app.key.private_key_pem;
    let assertion = jwt(key, &app.consumer_key, &user, sim.url(), 120);
    let (status, body) = token_request(&sim, &assertion, GRANT).await;
    assert_eq!(status, 200);
    assert_eq!(body["instance_url"], sim.url());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["id"].as_str().is_some_and(|id| id.contains(&format!("/id/{}/005", sim.org_id()))));
    assert!(body.get("refresh_token").is_none() && body.get("expires_in").is_none());

    let other_key = sfetl_sim::keys::rsa_key_and_certificate("someone else").unwrap_or_else(|e| panic!("{e}"));
    let inactive = sim.username_where(|_, active| !active).unwrap_or_default();
    let outsider = sim.username_where(|p, active| p != "System Administrator" && active).unwrap_or_default();
    let cases = [
        (jwt(key, "nope", &user, sim.url(), 120), GRANT, "invalid_client_id", "client identifier invalid"),
        (
            jwt(&other_key.private_key_pem, &app.consumer_key, &user, sim.url(), 120),
            GRANT,
            "invalid_grant",
            "invalid assertion",
        ),
        (
            jwt(key, &app.consumer_key, &user, "https://test.salesforce.com", 120),
            GRANT,
            "invalid_grant",
            "audience is invalid",
        ),
        (jwt(key, &app.consumer_key, &user, sim.url(), -60), GRANT, "invalid_grant", "expired authorization code"),
        (jwt(key, &app.consumer_key, &user, sim.url(), 3600), GRANT, "invalid_grant", "invalid assertion"),
        (
            jwt(key, &app.consumer_key, &outsider, sim.url(), 120),
            GRANT,
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (jwt(key, &app.consumer_key, &inactive, sim.url(), 120), GRANT, "invalid_grant", "authentication failure"),
        ("not.a.jwt".to_string(), GRANT, "invalid_grant", "invalid assertion"),
        (assertion.clone(), "password", "unsupported_grant_type", "grant type not supported"),
    ];
    for (assertion, grant, error, description) in cases {
        let (status, body) = token_request(&sim, &assertion, grant).await;
        assert_eq!((status, &body), (400, &json!({ "error": error, "error_description": description })));
    }
}

#[tokio::test]
async fn pages_through_every_user_exactly_once() {
    let (sim, app) = sim(5000, |_| {}).await;
    let token = login(&sim, &app).await;
    let (status, _, mut page) =
        get(&sim, &token, &query_path("SELECT Id, Profile.UserLicense.Name, Manager.Name FROM User"), Some(200)).await;
    assert_eq!(status, 200);
    let mut ids = HashSet::new();
    let mut pages = 1;
    loop {
        assert_eq!(page["totalSize"], 5000);
        let records = page["records"].as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), 200);
        for r in &records {
            assert_eq!(r["attributes"]["type"], "User");
            assert_eq!(r["Profile"]["attributes"]["type"], "Profile");
            assert!(r["Profile"]["UserLicense"]["Name"].is_string());
            assert!(r["Manager"].is_null() || r["Manager"]["Name"].is_string());
            assert!(ids.insert(r["Id"].as_str().unwrap_or_default().to_string()), "duplicate {}", r["Id"]);
        }
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        let next = page["nextRecordsUrl"].as_str().unwrap_or_default().to_string();
        assert!(next.starts_with("/services/data/v66.0/query/01g"), "{next}");
        (_, _, page) = get(&sim, &token, &next, Some(200)).await;
        pages += 1;
    }
    assert_eq!((pages, ids.len()), (25, 5000));
    let (_, _, count) = get(&sim, &token, &query_path("SELECT COUNT() FROM User"), None).await;
    assert_eq!(count, json!({ "totalSize": 5000, "done": true, "records": [] }));
}

#[tokio::test]
async fn fields_come_in_selected_order_after_attributes() {
    let (sim, app) = sim(50, |_| {}).await;
    let token = login(&sim, &app).await;
    let body = reqwest::Client::new()
        .get(format!("{}{}", sim.url(), query_path("SELECT Name, Profile.Name, Id FROM User LIMIT 1")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let record = &body[body.find("\"records\":[").unwrap_or(0)..];
    let at = |key: &str| record.find(&format!("\"{key}\":")).unwrap_or(usize::MAX);
    assert!(record.starts_with("\"records\":[{\"attributes\":{\"type\":\"User\""), "{record}");
    assert!(at("Name") < at("Profile") && at("Profile") < at("Id"), "{record}");
}

#[tokio::test]
async fn batch_sizes_are_clamped_and_may_come_smaller() {
    let (sim, app) = sim(3000, |c| c.max_page_size = Some(300)).await;
    let token = login(&sim, &app).await;
    let size = |v: &Value| v["records"].as_array().map_or(0, Vec::len);
    let (_, _, page) = get(&sim, &token, &query_path("SELECT Id FROM User"), Some(50)).await;
    assert_eq!(size(&page), 200, "below 200 counts as 200");
    let (_, _, page) = get(&sim, &token, &query_path("SELECT Id FROM User"), Some(1000)).await;
    assert_eq!(size(&page), 300, "the org's own cap wins");
    let (sim, app) = self::sim(3000, |_| {}).await;
    let token = login(&sim, &app).await;
    let (_, _, page) = get(&sim, &token, &query_path("SELECT Id FROM User"), None).await;
    assert_eq!(size(&page), 2000, "default 2000");
}

#[tokio::test]
async fn locators_belong_to_their_session_and_expire() {
    let (sim, app) = sim(1000, |c| c.locator_idle_timeout = Duration::from_millis(300)).await;
    let token = login(&sim, &app).await;
    let other = login(&sim, &app).await;
    let (_, _, page) = get(&sim, &token, &query_path("SELECT Id FROM User"), Some(200)).await;
    let next = page["nextRecordsUrl"].as_str().unwrap_or_default().to_string();
    let (status, _, body) = get(&sim, &other, &next, Some(200)).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_QUERY_LOCATOR")));
    let (status, _, _) = get(&sim, &token, &next, Some(200)).await;
    assert_eq!(status, 200, "the owner may go on");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, body) = get(&sim, &token, &next, Some(200)).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_QUERY_LOCATOR")));

    // A cursor abandoned (never asked for again) goes once idle too, as the next one opens: each
    // holds the org's state as it was when opened.
    let (_, _, _) = get(&sim, &token, &query_path("SELECT Id FROM User"), Some(200)).await;
    assert_eq!(sim.open_cursors(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, _, _) = get(&sim, &token, &query_path("SELECT Id, Name FROM User"), Some(200)).await;
    assert_eq!(sim.open_cursors(), 1, "the abandoned cursor is gone, the new one open");
}

#[tokio::test]
async fn sessions_expire_and_headers_are_checked() {
    let (sim, app) = sim(50, |c| c.session_timeout = Duration::from_millis(300)).await;
    let token = login(&sim, &app).await;
    let path = query_path("SELECT Id FROM User");
    assert_eq!(get(&sim, &token, &path, None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, body) = get(&sim, &token, &path, None).await;
    assert_eq!(
        (status, body),
        (401, json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }]))
    );
    let response =
        reqwest::Client::new().get(format!("{}{path}", sim.url())).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(body[0]["errorCode"], "INVALID_AUTH_HEADER");
    let versions = versions(&sim).await;
    assert!(
        versions
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["version"] == "66.0" && x["url"] == "/services/data/v66.0"))
    );
}

#[tokio::test]
async fn soql_errors_come_as_salesforce_error_arrays() {
    let (sim, app) = sim(50, |_| {}).await;
    let token = login(&sim, &app).await;
    for (soql, code) in [
        ("SELECT Id Frm User", "MALFORMED_QUERY"),
        ("SELECT Nope FROM User", "INVALID_FIELD"),
        ("SELECT Id FROM Widget", "INVALID_TYPE"),
        ("SELECT Id FROM User WHERE LastLoginDate > '2024-01-01'", "INVALID_FIELD"),
    ] {
        let (status, _, body) = get(&sim, &token, &query_path(soql), None).await;
        assert_eq!(status, 400, "{soql}");
        assert_eq!(body[0]["errorCode"], code, "{soql}");
        assert!(body[0]["message"].is_string());
    }
}

#[tokio::test]
async fn quota_is_counted_reported_and_enforced() {
    let (sim, app) = sim(50, |c| {
        c.daily_api_max = 5;
        c.api_used_at_start = 2;
    })
    .await;
    let token = login(&sim, &app).await;
    let path = query_path("SELECT Id FROM User");
    let (_, headers, _) = get(&sim, &token, &path, None).await;
    assert_eq!(headers.get("sforce-limit-info").and_then(|h| h.to_str().ok()), Some("api-usage=3/5"));
    let (_, _, limits) = get(&sim, &token, "/services/data/v66.0/limits", None).await;
    assert_eq!(limits["DailyApiRequests"], json!({ "Max": 5, "Remaining": 1 }));
    assert_eq!(get(&sim, &token, &path, None).await.0, 200);
    let (status, _, body) = get(&sim, &token, &path, None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (403, Some("REQUEST_LIMIT_EXCEEDED")));
    sim.reset_day();
    assert_eq!(get(&sim, &token, &path, None).await.0, 200);
    assert_eq!(sim.api_usage(), (1, 5));
}

#[tokio::test]
async fn gzip_when_asked() {
    let (sim, app) = sim(500, |_| {}).await;
    let token = login(&sim, &app).await;
    let raw = reqwest::Client::builder().no_gzip().build().unwrap_or_else(|e| panic!("{e}"));
    let response = raw
        .get(format!("{}{}", sim.url(), query_path("SELECT Id, Name FROM User")))
        .bearer_auth(&token)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.headers().get("content-encoding").and_then(|h| h.to_str().ok()), Some("gzip"));
    let bytes = response.bytes().await.unwrap_or_default();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    // A client that decompresses sees the same JSON.
    let (_, _, page) = get(&sim, &token, &query_path("SELECT Id, Name FROM User"), None).await;
    assert_eq!(page["totalSize"], 500);
}

#[tokio::test]
async fn faults_break_requests_the_way_real_orgs_do() {
    let (sim, app) = sim(500, |_| {}).await;
    let token = login(&sim, &app).await;
    let path = query_path("SELECT Id FROM User");
    let client = reqwest::Client::new();
    let fetch = |p: String| {
        let client = client.clone();
        let url = format!("{}{p}", sim.url());
        let token = token.clone();
        async move { client.get(url).bearer_auth(token).send().await }
    };
    sim.add_fault(FaultRule::new(Fault::ServiceUnavailableHtml, Trigger::Nth(1)));
    let response = fetch(path.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.text().await.unwrap_or_default().starts_with("<html>"));
    sim.clear_faults();

    sim.add_fault(FaultRule::new(Fault::QueryTimeout, Trigger::Nth(1)));
    let body: Value = fetch(path.clone()).await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or(Value::Null);
    assert_eq!(body[0]["errorCode"], "QUERY_TIMEOUT");
    sim.clear_faults();

    for fault in [Fault::ResetConnection, Fault::TruncatedBody] {
        sim.add_fault(FaultRule::new(fault.clone(), Trigger::Nth(1)));
        let outcome = match fetch(path.clone()).await {
            Ok(response) => response.bytes().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(outcome.is_err(), "{fault:?} must break the body");
        sim.clear_faults();
    }

    sim.add_fault(FaultRule::new(Fault::ExpireSessions, Trigger::Nth(1)));
    assert_eq!(fetch(path.clone()).await.map(|r| r.status().as_u16()).ok(), Some(401));
    sim.clear_faults();

    let logged = sim.request_log();
    assert!(logged.iter().any(|r| r.status == 503) && logged.iter().any(|r| r.status == 401));
}

#[tokio::test]
async fn serves_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tls_dir = dir.path().to_path_buf();
    let (sim, _) = sim(20, |c| c.tls_dir = Some(tls_dir)).await;
    assert!(sim.url().starts_with("https://127.0.0.1:"));
    let pem = std::fs::read(sim.ca_file().unwrap_or_else(|| panic!("no CA file"))).unwrap_or_default();
    let cert = reqwest::Certificate::from_pem(&pem).unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder().tls_certs_only([cert]).build().unwrap_or_else(|e| panic!("{e}"));
    let response = client.get(format!("{}/services/data/", sim.url())).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        reqwest::Client::new().get(format!("{}/services/data/", sim.url())).send().await.is_err(),
        "untrusted without the CA"
    );
}

#[tokio::test]
async fn bulk_query_jobs_run_poll_and_page_csv() {
    let (sim, app) = sim(2500, |c| {
        c.bulk_fixed_cost = Duration::from_millis(300);
        c.bulk_per_record = Duration::from_micros(1);
    })
    .await;
    let token = login(&sim, &app).await;
    let client = reqwest::Client::new();
    let jobs = format!("{}/services/data/v66.0/jobs/query", sim.url());
    let create = |query: &str| {
        client.post(&jobs).bearer_auth(&token).json(&json!({ "operation": "query", "query": query })).send()
    };
    for refused in ["SELECT Id FROM User ORDER BY Id", "SELECT Id FROM User LIMIT 5", "SELECT COUNT() FROM User"] {
        let response = create(refused).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status().as_u16(), 400, "{refused}");
    }
    let job: Value = create("SELECT Id, Name, Profile.Name FROM User")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(job["state"], "UploadComplete");
    assert_eq!((job["object"].as_str(), job["contentType"].as_str()), (Some("User"), Some("CSV")));
    let id = job["id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("750"));
    let status_url = format!("{jobs}/{id}");
    let mut states = Vec::new();
    loop {
        let (_, _, status) = get(&sim, &token, &format!("/services/data/v66.0/jobs/query/{id}"), None).await;
        let state = status["state"].as_str().unwrap_or_default().to_string();
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        if state == "JobComplete" {
            assert_eq!(status["numberRecordsProcessed"], 2500);
            break;
        }
        assert!(states.len() < 4, "{states:?} ({status_url})");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(states.last().map(String::as_str), Some("JobComplete"));
    assert!(states.contains(&"InProgress".to_string()), "{states:?}");

    let mut locator: Option<String> = None;
    let mut ids = HashSet::new();
    let mut sets = 0;
    loop {
        let mut url = format!("{jobs}/{id}/results?maxRecords=1000");
        if let Some(l) = &locator {
            url.push_str(&format!("&locator={l}"));
        }
        let response = client.get(url).bearer_auth(&token).send().await.unwrap_or_else(|e| panic!("{e}"));
        let header = |name: &str| response.headers().get(name).and_then(|h| h.to_str().ok()).map(String::from);
        let (next, count) = (header("sforce-locator"), header("sforce-numberofrecords"));
        let csv = response.text().await.unwrap_or_default();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("\"Id\",\"Name\",\"Profile.Name\""));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(count, Some(rows.len().to_string()));
        for row in rows {
            assert!(row.starts_with('"'));
            ids.insert(row.split(',').next().unwrap_or_default().to_string());
        }
        sets += 1;
        match next.as_deref() {
            Some("null") => break,
            other => locator = other.map(String::from),
        }
    }
    assert_eq!((sets, ids.len()), (3, 2500));

    // Aborted and failed jobs.
    let job: Value =
        create("SELECT Id FROM User").await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or(Value::Null);
    let aborted = send_json(
        client.patch(format!("{jobs}/{}", job["id"].as_str().unwrap_or_default())),
        &token,
        json!({ "state": "Aborted" }),
    )
    .await;
    assert_eq!(aborted["state"], "Aborted");
    let (sim, app) = self::sim(20, |c| c.bulk_failure = Some("InternalServerError".into())).await;
    let token = login(&sim, &app).await;
    let job = send_json(
        reqwest::Client::new().post(format!("{}/services/data/v66.0/jobs/query", sim.url())),
        &token,
        json!({ "operation": "query", "query": "SELECT Id FROM User" }),
    )
    .await;
    let (_, _, status) =
        get(&sim, &token, &format!("/services/data/v66.0/jobs/query/{}", job["id"].as_str().unwrap_or_default()), None)
            .await;
    assert_eq!(
        (status["state"].as_str(), status["errorMessage"].as_str()),
        (Some("Failed"), Some("InternalServerError"))
    );
}

#[tokio::test]
async fn a_stalled_body_hits_the_clients_read_timeout_and_latency_is_added() {
    let (sim, app) = sim(100, |c| c.latency_per_request = Some(Duration::from_millis(150))).await;
    let token = login(&sim, &app).await;
    let path = query_path("SELECT Id FROM User");
    let started = std::time::Instant::now();
    assert_eq!(get(&sim, &token, &path, None).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150), "latency per request applied");
    sim.add_fault(FaultRule::new(Fault::StalledBody(Duration::from_secs(5)), Trigger::Nth(1)));
    let client =
        reqwest::Client::builder().read_timeout(Duration::from_millis(500)).build().unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let outcome = match client.get(format!("{}{path}", sim.url())).bearer_auth(&token).send().await {
        Ok(response) => response.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let err = outcome.err().unwrap_or_else(|| panic!("a stalled body must time out"));
    assert!(err.is_timeout() || err.is_body(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "the client gave up before the stall ended");
}

#[tokio::test]
async fn changes_to_the_org_show_in_later_queries_with_recounted_licenses() {
    let (sim, app) = sim(300, |_| {}).await;
    let token = login(&sim, &app).await;
    let active_soql = "SELECT COUNT() FROM User WHERE IsActive = true";
    let (_, _, before) = get(&sim, &token, &query_path(active_soql), None).await;
    let used = |sim: &Sim| {
        let org = sim.org();
        let licenses = org.table("UserLicense");
        (0..licenses.rows.len())
            .map(|i| match licenses.get(i, "UsedLicenses") {
                sfetl_sim::value::Value::Int(n) => *n,
                _ => 0,
            })
            .sum::<i64>()
    };
    let used_before = used(&sim);
    let admin = sim.integration_username();
    sim.update_org(|org| {
        let users = org.table_mut("User");
        let mut changed = 0;
        for i in 0..users.rows.len() {
            let is_admin = users.get(i, "Username").as_str() == Some(admin.as_str());
            if changed < 10 && !is_admin && users.get(i, "IsActive") == &sfetl_sim::value::Value::Bool(true) {
                users.set(i, "IsActive", sfetl_sim::value::Value::Bool(false));
                changed += 1;
            }
        }
    });
    let (_, _, after) = get(&sim, &token, &query_path(active_soql), None).await;
    assert_eq!(after["totalSize"].as_i64(), before["totalSize"].as_i64().map(|n| n - 10));
    assert_eq!(used(&sim), used_before - 10, "UsedLicenses counts active users only");
}

#[tokio::test]
async fn internal_errors_invalidated_locators_and_per_record_latency() {
    let (sim, app) = sim(1000, |c| c.latency_per_record = Some(Duration::from_micros(500))).await;
    let token = login(&sim, &app).await;
    sim.add_fault(FaultRule::new(Fault::InternalError, Trigger::Nth(1)));
    let (status, _, body) = get(&sim, &token, &query_path("SELECT Id FROM User"), None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (500, Some("UNKNOWN_EXCEPTION")));
    sim.clear_faults();

    let started = std::time::Instant::now();
    let (_, _, page) = get(&sim, &token, &query_path("SELECT Id FROM User"), Some(200)).await;
    assert!(started.elapsed() >= Duration::from_millis(100), "200 records at 0.5 ms each");
    let next = page["nextRecordsUrl"].as_str().unwrap_or_default().to_string();
    sim.add_fault(FaultRule::new(Fault::InvalidateLocators, Trigger::Nth(1)).on_paths("/query/"));
    let (status, _, body) = get(&sim, &token, &next, Some(200)).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_QUERY_LOCATOR")));
}

/// Orgs differ (salesforce-api.md section 7): a field the org lacks or hides is an
/// `INVALID_FIELD` for the whole query and absent from the describe; the version list stops at
/// the org's release.
#[tokio::test]
async fn fields_an_org_lacks_are_invalid_and_absent_from_the_describe() {
    let (sim, app) = sim(50, |c| {
        c.state_country_picklists = false;
        c.hidden_fields = vec!["User.Department".into()];
        c.max_api_version = Some("64.0".into());
    })
    .await;
    let token = login(&sim, &app).await;
    let (status, _, body) =
        get(&sim, &token, &query_path("SELECT Id, CountryCode FROM User").replace("v66.0", "v64.0"), None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_FIELD")), "{body}");
    let (status, _, body) = get(&sim, &token, "/services/data/v64.0/sobjects/User/describe", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["fields"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
    assert!(names.contains(&"Country") && names.contains(&"ProfileId"));
    assert!(!names.contains(&"CountryCode") && !names.contains(&"Department"));
    let profile = body["fields"].as_array().into_iter().flatten().find(|f| f["name"] == "ProfileId");
    assert_eq!(
        profile.map(|f| (&f["relationshipName"], &f["referenceTo"][0])),
        Some((&json!("Profile"), &json!("Profile")))
    );
    let (status, _, body) = get(&sim, &token, "/services/data/v64.0/sobjects/Widget/describe", None).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (404, Some("NOT_FOUND")));
    let (status, _, _) = get(&sim, &token, "/services/data/v66.0/limits", None).await;
    assert_eq!(status, 404, "v66.0 is newer than the org");
    let versions = versions(&sim).await;
    assert_eq!(versions.as_array().and_then(|v| v.last()).map(|v| &v["version"]), Some(&json!("64.0")));
}

/// External Client Apps take the My Domain URL as audience and answer `app_not_found` to the
/// login host; an org blocking its login hosts takes tokens at My Domain only.
#[tokio::test]
async fn app_kinds_and_blocked_login_hosts_answer_like_salesforce() {
    let (org, _) = sim(50, |_| {}).await;
    let app =
        org.create_app(sfetl_sim::AppKind::ExternalClientApp, "System Administrator").unwrap_or_else(|e| panic!("{e}"));
    let user = org.integration_username();
    let at_login_host = jwt(&app.key.private_key_pem, &app.consumer_key, &user, org.url(), 120);
    let (status, body) = token_request(&org, &at_login_host, GRANT).await;
    assert_eq!((status, &body["error"]), (400, &json!("app_not_found")), "{body}");
    assert_eq!(body["error_description"], "External client app is not installed in this org");
    let my_domain = jwt(&app.key.private_key_pem, &app.consumer_key, &user, &org.my_domain_url(), 120);
    let (status, body) = token_request(&org, &my_domain, GRANT).await;
    assert_eq!(status, 200, "{body}");

    let (blocked, app) = sim(50, |c: &mut SimConfig| c.login_hosts_blocked = true).await;
    let assertion =
        jwt(&app.key.private_key_pem, &app.consumer_key, &blocked.integration_username(), blocked.url(), 120);
    let (status, _) = token_request(&blocked, &assertion, GRANT).await;
    assert_eq!(status, 400, "the login host is refused");
    let response = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", blocked.my_domain_url()))
        .form(&[("grant_type", GRANT), ("assertion", assertion.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(body["instance_url"].as_str(), Some(blocked.my_domain_url().as_str()));
}

/// `ConcurrentRequests Limit exceeded.` shares its errorCode with the daily quota.
#[tokio::test]
async fn the_concurrent_requests_limit_shares_the_daily_quotas_error_code() {
    let (sim, app) = sim(50, |_| {}).await;
    sim.add_fault(FaultRule::new(Fault::ConcurrentRequests, Trigger::Nth(1)).on_paths("/query"));
    let token = login(&sim, &app).await;
    let (status, _, body) = get(&sim, &token, &query_path("SELECT Id FROM User"), None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!([{ "message": "ConcurrentRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED" }])
    );
}

/// A frozen user is active but cannot log in (salesforce-api.md section 7): the token request
/// gets the same refusal as an inactive user's.
#[tokio::test]
async fn a_frozen_user_cannot_log_in() {
    let (sim, app) = sim(300, |_| {}).await;
    let data = sim.org();
    let users = data.table("User");
    let frozen = data
        .frozen_users()
        .into_iter()
        .filter_map(|id| users.index_of(id))
        .find(|&u| users.get(u, "IsActive") == &sfetl_sim::value::Value::Bool(true));
    let Some(frozen) = frozen else { panic!("the org has no frozen active user") };
    let username = users.get(frozen, "Username").as_str().unwrap_or_default();
    let assertion = jwt(&app.key.private_key_pem, &app.consumer_key, username, sim.url(), 120);
    let (status, body) = token_request(&sim, &assertion, GRANT).await;
    assert_eq!(
        (status, &body["error"], &body["error_description"]),
        (400, &json!("invalid_grant"), &json!("authentication failure"))
    );
}

/// One composite call: a query's first page, then its next pages by reference to the page
/// before ("You can use the output of one request as the input to a subsequent request", REST
/// API Developer Guide, "Send Multiple Requests Using Composite"); a reference past the last
/// page is not executed. One API call for all of it; six query operations are too many.
#[tokio::test]
async fn a_composite_call_chains_a_querys_pages_by_reference() {
    let (sim, app) = sim(1100, |_| {}).await;
    let token = login(&sim, &app).await;
    let url = format!("{}/services/data/v66.0/composite", sim.url());
    let query = query_path("SELECT Id FROM User");
    let mut requests = vec![json!({ "method": "GET", "url": query, "referenceId": "p0" })];
    for i in 1..5 {
        requests.push(json!({ "method": "GET", "url": format!("@{{p{}.nextRecordsUrl}}", i - 1), "referenceId": format!("p{i}") }));
    }
    // Subrequests take the call's headers (the page size here) unless they set their own.
    let post = |url: &str| reqwest::Client::new().post(url).header("Sforce-Query-Options", "batchSize=300");
    let used = sim.api_usage().0;
    let body = json!({ "allOrNone": false, "compositeRequest": requests });
    let answer = send_json(post(&url), &token, body.clone()).await;
    assert_eq!(sim.api_usage().0, used + 1, "one call");
    let answers = answer["compositeResponse"].as_array().cloned().unwrap_or_default();
    assert_eq!(answers.len(), 5);
    let mut ids = HashSet::new();
    for (i, answer) in answers.iter().take(4).enumerate() {
        assert_eq!(
            (answer["httpStatusCode"].as_u64(), answer["referenceId"].as_str()),
            (Some(200), Some(&*format!("p{i}")))
        );
        assert_eq!(answer["body"]["done"], i == 3, "page {i}");
        for record in answer["body"]["records"].as_array().into_iter().flatten() {
            assert!(ids.insert(record["Id"].as_str().unwrap_or_default().to_string()));
        }
    }
    assert_eq!(ids.len(), 1100, "every user once, in pages of 300");
    // The last page has no nextRecordsUrl: the reference to it names nothing.
    assert_eq!(answers[4]["httpStatusCode"], 400);
    let message = answers[4]["body"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("p3.nextRecordsUrl"), "{message}");

    // A sixth query operation, by reference or not, is refused before anything runs.
    let mut six = body["compositeRequest"].as_array().cloned().unwrap_or_default();
    six.push(json!({ "method": "GET", "url": "@{p4.nextRecordsUrl}", "referenceId": "p5" }));
    let refused = send_json(post(&url), &token, json!({ "allOrNone": false, "compositeRequest": six })).await;
    assert_eq!(refused[0]["errorCode"], "INVALID_INPUT", "{refused}");

    // An org that does not resolve references answers the chained subrequest, not the call.
    let (sim, app) = self::sim(1100, |c| c.composite_references = false).await;
    let token = login(&sim, &app).await;
    let url = format!("{}/services/data/v66.0/composite", sim.url());
    let answer = send_json(post(&url), &token, body).await;
    let statuses: Vec<u64> = answer["compositeResponse"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["httpStatusCode"].as_u64())
        .collect();
    assert_eq!(statuses, [200, 404, 404, 404, 404]);
}
