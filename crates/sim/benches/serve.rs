//! How fast the simulator serves User records as JSON pages over HTTP, on one core (server and
//! client share a single-threaded runtime), against a baseline measured in the same run: the
//! same records serialised with serde_json from ready `serde_json::Value`s, with no HTTP at all.
//!
//! `just bench` runs it; the target is 500,000 records per second.

use sfetl_sim::{OrgSpec, Sim, SimConfig};
use std::time::Instant;

const USERS: usize = 200_000;
const SOQL: &str = "SELECT Id, Username, Email, Name, FirstName, LastName, IsActive, UserType, ProfileId, \
    Profile.Name, Profile.UserLicense.Id, Profile.UserLicense.Name, CompanyName, Department, Title, \
    LastLoginDate, CreatedDate, SystemModstamp FROM User";

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let sim = Sim::start(SimConfig::new(OrgSpec::new(1, USERS))).await.unwrap_or_else(|e| panic!("{e}"));
        let app = sim.create_connected_app("System Administrator").unwrap_or_else(|e| panic!("{e}"));
        let token = login(&sim, &app).await;
        // Plain JSON is the target's figure; gzip (what sfetl asks for) is reported beside it.
        let plain = reqwest::Client::builder().no_gzip().build().unwrap_or_else(|e| panic!("{e}"));
        let sim_rate = records_per_second(&plain, &sim, &token).await;
        let gzip_rate = records_per_second(&reqwest::Client::new(), &sim, &token).await;
        let baseline_rate = serde_json_baseline(&sim);
        println!("simulator: {USERS} User records as JSON pages over HTTP = {sim_rate:.0} records/s (one core)");
        println!("  gzip   : the same, compressed and decompressed = {gzip_rate:.0} records/s");
        println!("baseline : serde_json from ready Values, no HTTP = {baseline_rate:.0} records/s");
        println!("ratio    : simulator / baseline = {:.2}", sim_rate / baseline_rate);
        println!("target   : 500000 records/s -> {}", if sim_rate >= 500_000.0 { "met" } else { "NOT met" });
    });
}

/// The best of two passes over every user (the first also warms up).
async fn records_per_second(client: &reqwest::Client, sim: &Sim, token: &str) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..2 {
        let started = Instant::now();
        let served = page_through(client, sim, token).await;
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(served, USERS, "every record served once");
    }
    USERS as f64 / best
}

async fn login(sim: &Sim, app: &sfetl_sim::AppCredentials) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let claims = serde_json::json!({
        "iss": app.consumer_key, "sub": sim.integration_username(), "aud": sim.url(),
        "exp": chrono::Utc::now().timestamp() + 120,
    });
    let key = EncodingKey::from_rsa_pem(app.key.private_key_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let assertion =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", sim.url()))
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    body["access_token"].as_str().unwrap_or_default().to_string()
}

/// Pages through the query reading raw bytes: the client does as little as possible, so the
/// figure is the server's.
async fn page_through(client: &reqwest::Client, sim: &Sim, token: &str) -> usize {
    let encoded: String = url::form_urlencoded::byte_serialize(SOQL.as_bytes()).collect();
    let mut next = Some(format!("/services/data/v66.0/query?q={encoded}"));
    let mut records = 0;
    while let Some(path) = next.take() {
        let body = client
            .get(format!("{}{path}", sim.url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let text = std::str::from_utf8(&body).unwrap_or_default();
        records += text.matches("{\"attributes\":{\"type\":\"User\"").count();
        next = text.find("\"nextRecordsUrl\":\"").map(|at| {
            let rest = &text[at + 18..];
            rest[..rest.find('"').unwrap_or(0)].to_string()
        });
    }
    records
}

fn serde_json_baseline(sim: &Sim) -> f64 {
    let data = sim.org();
    let users = data.table("User");
    let values: Vec<serde_json::Value> = (0..users.rows.len())
        .map(|i| {
            let mut record = serde_json::Map::new();
            record.insert(
                "attributes".into(),
                serde_json::json!({"type": "User", "url": "/services/data/v66.0/sobjects/User/x"}),
            );
            for field in [
                "Id",
                "Username",
                "Email",
                "Name",
                "FirstName",
                "LastName",
                "IsActive",
                "UserType",
                "ProfileId",
                "CompanyName",
                "Department",
                "Title",
                "LastLoginDate",
                "CreatedDate",
                "SystemModstamp",
            ] {
                let v = match users.get(i, field) {
                    sfetl_sim::value::Value::Str(s) => serde_json::Value::from(s.to_string()),
                    sfetl_sim::value::Value::Bool(b) => serde_json::Value::from(*b),
                    sfetl_sim::value::Value::DateTime(t) => {
                        serde_json::Value::from(sfetl_sim::value::format_datetime(*t))
                    }
                    _ => serde_json::Value::Null,
                };
                record.insert(field.into(), v);
            }
            record.insert(
                "Profile".into(),
                serde_json::json!({"attributes": {"type": "Profile"}, "Name": "Standard User",
                "UserLicense": {"attributes": {"type": "UserLicense"}, "Id": "100x", "Name": "Salesforce"}}),
            );
            serde_json::Value::Object(record)
        })
        .collect();
    #[derive(serde::Serialize)]
    struct Page<'a> {
        #[serde(rename = "totalSize")]
        total_size: usize,
        done: bool,
        records: &'a [serde_json::Value],
    }
    let started = Instant::now();
    let mut bytes = 0;
    for page in values.chunks(2000) {
        bytes +=
            serde_json::to_vec(&Page { total_size: USERS, done: false, records: page }).map(|v| v.len()).unwrap_or(0);
    }
    assert!(bytes > 0);
    values.len() as f64 / started.elapsed().as_secs_f64()
}
