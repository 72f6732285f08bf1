//! Legal entities and user types: `company` holds the configured spelling of a trimmed,
//! case-insensitive match; `company_filter = "only"` keeps those companies' users alone, with
//! names that need SOQL escaping; portal user types are left out unless asked for.

use crate::support::{SimOrg, is_portal, rows};
use sfetl_sim::{OrgSpec, SimConfig};
use std::collections::BTreeMap;

const TRICKY: &str = r"O'Brien \ Søn_50%";

async fn org() -> SimOrg {
    let mut spec = OrgSpec::new(71, 3000);
    spec.companies = vec!["Acme Corp".into(), TRICKY.into()];
    SimOrg::start_with(SimConfig::new(spec)).await
}

/// (user Id, company as matched independently of sfetl), for non-portal users.
fn expected(org: &SimOrg, configured: &[&str]) -> BTreeMap<String, String> {
    let data = org.sim.org();
    let users = data.table("User");
    (0..users.rows.len())
        .filter(|&i| !is_portal(users.get(i, "UserType").as_str().unwrap_or_default()))
        .map(|i| {
            let company_name = users.get(i, "CompanyName").as_str().map(|c| c.trim().to_lowercase());
            let company = configured.iter().find(|c| Some(c.to_lowercase()) == company_name).map_or("NULL", |c| c);
            (users.get(i, "Id").as_str().unwrap_or_default().to_string(), company.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_tagged_with_their_configured_company_and_portal_users_left_out() {
    let org = org().await;
    let out = org.out();
    org.extract(&org.pipeline_with_companies("tag", &["Acme Corp", TRICKY], ""));
    let expected = expected(&org, &["Acme Corp", TRICKY]);
    let got: BTreeMap<String, String> = rows(&out, "SELECT user_id, coalesce(company, 'NULL') FROM users")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(got, expected);
    // The variants really were there: padded, upper- and lower-cased spellings of both names.
    let spellings = rows(&out, "SELECT count(DISTINCT company_name)::BIGINT FROM users WHERE company IS NOT NULL");
    assert!(spellings[0][0].parse::<i64>().unwrap_or(0) >= 6, "{spellings:?}");
    assert!(org.sim.username_where(|_, _| true).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn company_filter_only_keeps_exactly_that_companys_users() {
    let org = org().await;
    let out = org.out();
    org.extract(&org.pipeline_with_companies("only", &[TRICKY], "company_filter = \"only\"\nexclude_user_types = []"));
    let data = org.sim.org();
    let users = data.table("User");
    let mut expected: Vec<String> = (0..users.rows.len())
        .filter(|&i| {
            users.get(i, "CompanyName").as_str().is_some_and(|c| c.trim().to_lowercase() == TRICKY.to_lowercase())
        })
        .filter_map(|i| users.get(i, "Id").as_str().map(String::from))
        .collect();
    expected.sort();
    let got: Vec<String> =
        rows(&out, "SELECT user_id FROM users ORDER BY 1").into_iter().map(|r| r[0].clone()).collect();
    assert!(expected.len() > 50, "the org must have users of that company");
    assert_eq!(got, expected);
    // Filtered by Salesforce: far fewer User records crossed the wire than the org has.
    let fetched: usize = org.sim.request_log().iter().filter(|r| r.object == Some("User")).map(|r| r.records).sum();
    assert!(fetched < users.rows.len() / 2, "{fetched} User records fetched");
}
