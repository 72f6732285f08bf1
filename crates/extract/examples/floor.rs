//! The benchmark's floor: what a client that only downloads would take to fetch every table's
//! rows from the simulator, at the pipeline's concurrency. It logs in as sfetl does, then for
//! each table asks its query (the same fields and filters) and follows `nextRecordsUrl`, reading
//! each page's bytes and discarding them: no JSON parsing, no Arrow, no Parquet.
//!
//! Usage: floor SIM_DIR [CONCURRENCY]  (SIM_DIR as `sfetl sim --dir` writes it). Prints one JSON
//! line: seconds, pages and bytes.

use futures_util::StreamExt;
use sfetl_extract::soql::SoqlQuery;
use sfetl_extract::{ConnectionSettings, Credentials, SalesforceClient, Secret};
use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).ok_or("usage: floor SIM_DIR [CONCURRENCY]")?);
    let concurrency: usize = args.get(2).map_or(Ok(4), |c| c.parse())?;
    let pipeline: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("pipeline.toml"))?)?;
    let org = pipeline["orgs"].as_array().and_then(|orgs| orgs.first()).ok_or("no org in pipeline.toml")?;
    let text = |key: &str| org.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let ca_file = text("ca_file");
    let credentials = Credentials {
        login_url: text("login_url"),
        client_id: text("client_id"),
        username: text("username"),
        private_key: Secret::new(std::fs::read_to_string(dir.join(text("private_key_file")))?),
        my_domain_url: Some(text("url")),
        pinned: None,
    };
    let ca = (!ca_file.is_empty()).then(|| std::fs::read(&ca_file).map(|pem| (ca_file.clone(), pem))).transpose()?;
    let settings = ConnectionSettings { ca_certificate: ca.clone(), ..ConnectionSettings::default() };
    let client = SalesforceClient::new(credentials, settings)?;
    let session = client.login().await?;
    let version = client.api_version();
    let mut http = reqwest::Client::builder();
    if let Some((_, pem)) = &ca {
        http = http.tls_certs_merge([reqwest::Certificate::from_pem(pem)?]);
    }
    let http = http.build()?;
    let started = Instant::now();
    let reads = sfetl_transform::tables::ALL.iter().map(|table| {
        let mut query = SoqlQuery::new(table.object, table.soql_fields()).order_by("Id");
        if let Some(condition) = table.condition {
            query = query.filter(condition);
        }
        if let Some((field, days)) = table.recent {
            let from = chrono::Utc::now() - chrono::TimeDelta::days(i64::from(days));
            query = query.filter(format!("{field} >= {}", from.format("%Y-%m-%d")));
        }
        if table.object == "User" {
            // The pipeline's default scope (sfetl_pipeline::PORTAL_USER_TYPES): no portal users.
            query = query
                .filter("UserType NOT IN ('PowerPartner', 'CSPLitePortal', 'CustomerSuccess', 'PowerCustomerSuccess')");
        }
        let (http, session, version) = (&http, &session, &version);
        async move {
            let (mut pages, mut bytes) = (0u64, 0u64);
            let mut url =
                format!("{}/services/data/v{version}/query?q={}", session.instance_url, encode(&query.to_string()));
            loop {
                let gzipped = http
                    .get(&url)
                    .bearer_auth(session.access_token.expose())
                    .header("Sforce-Query-Options", "batchSize=2000")
                    .header("Accept-Encoding", "gzip")
                    .send()
                    .await?
                    .bytes()
                    .await?;
                // Inflated as any client would (flate2's default backend): the next page's
                // address is inside.
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&gzipped[..]), &mut body)
                    .map_err(|e| format!("{url}: {e}"))?;
                pages += 1;
                bytes += body.len() as u64;
                match next_records_url(&body) {
                    Some(next) => url = format!("{}{next}", session.instance_url),
                    None => return Ok::<_, Box<dyn std::error::Error + Send + Sync>>((pages, bytes)),
                }
            }
        }
    });
    let results: Vec<_> = futures_util::stream::iter(reads).buffer_unordered(concurrency).collect().await;
    let (mut pages, mut bytes) = (0, 0);
    for result in results {
        let (p, b) = result.map_err(|e| e.to_string())?;
        pages += p;
        bytes += b;
    }
    println!("{{\"seconds\": {:.3}, \"pages\": {pages}, \"bytes\": {bytes}}}", started.elapsed().as_secs_f64());
    Ok(())
}

/// The `nextRecordsUrl` of a page, found without parsing the page: it comes before `records`.
fn next_records_url(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"nextRecordsUrl\":\"";
    let head = &body[..body.len().min(512)];
    let at = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let end = head[at..].iter().position(|&b| b == b'"')? + at;
    String::from_utf8(head[at..end].to_vec()).ok()
}

/// The query as a URL parameter value.
fn encode(soql: &str) -> String {
    url::form_urlencoded::byte_serialize(soql.as_bytes()).collect()
}
