//! What real orgs do that a single picture of Salesforce misses (salesforce-api.md section 7):
//! fields that exist only in some orgs or are hidden by field-level security, logins that do not
//! move `SystemModstamp`, the two meanings of `REQUEST_LIMIT_EXCEEDED`, API versions, and the
//! token host and audience that External Client Apps and orgs blocking the login hosts need.

use crate::support::{SimOrg, rows, sfetl, text};
use sfetl_sim::value::Value;
use sfetl_sim::{AppKind, Fault, FaultRule, OrgSpec, SimConfig, Trigger};

fn count(out: &std::path::Path, sql: &str) -> i64 {
    rows(out, sql)[0][0].parse().unwrap_or(-1)
}

/// Orgs without State and Country/Territory Picklists have no `User.CountryCode`; field-level
/// security hid `Department`. Every table is published, the two columns stay empty, and the
/// warnings say which field is missing and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_an_org_lacks_or_hides_leave_their_columns_empty() {
    let mut config = SimConfig::new(OrgSpec::new(41, 1500));
    config.state_country_picklists = false;
    config.hidden_fields = vec!["User.Department".into()];
    let org = SimOrg::start_with(config).await;
    let run = org.extract(&org.pipeline("shaped", "exclude_user_types = []"));
    let log = text(&run);
    assert!(
        log.contains("User.CountryCode is missing") && log.contains("State and Country/Territory Picklists"),
        "{log}"
    );
    assert!(log.contains("User.Department is missing") && log.contains("field-level security"), "{log}");

    let out = org.out();
    assert_eq!(count(&out, "SELECT count(*) FROM users"), 1500);
    assert_eq!(count(&out, "SELECT count(*) FROM users WHERE country_code IS NOT NULL OR department IS NOT NULL"), 0);
    assert!(count(&out, "SELECT count(*) FROM users WHERE country IS NOT NULL AND title IS NOT NULL") > 1000);
    for table in sfetl_transform::tables::ALL {
        assert!(count(&out, &format!("SELECT count(*) FROM {}", table.name)) > 0, "{} is published", table.name);
    }
    assert!(count(&out, "SELECT count(*) FROM license_utilization") > 0);
    // One refused query and the describes of the objects along the users' field paths.
    let describes = org.sim.request_log().iter().filter(|r| r.path.ends_with("/describe")).count();
    assert_eq!(describes, 3, "User, Profile and UserLicense");

    // An org that has every field pays nothing for the check.
    let full = SimOrg::start(300, 42).await;
    full.extract(&full.pipeline("full", ""));
    assert!(!full.sim.request_log().iter().any(|r| r.path.ends_with("/describe") || r.status == 400));
    assert!(count(&full.out(), "SELECT count(*) FROM users WHERE country_code IS NOT NULL") > 0);
}

/// A field the license model needs cannot be left out: the org fails, naming the field and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_required_field_fails_the_org_naming_the_fix() {
    let mut config = SimConfig::new(OrgSpec::new(43, 200));
    config.hidden_fields = vec!["User.LastLoginDate".into()];
    let org = SimOrg::start_with(config).await;
    let pipeline = org.pipeline("strict", "");
    let out = org.out();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let log = text(&run);
    assert!(log.contains("User.LastLoginDate cannot be read in this org, and `users` needs it"), "{log}");
    assert!(log.contains("grant Read on it"), "{log}");

    let check = sfetl(&["check", &pipeline.to_string_lossy()], org.dir.path());
    let report = text(&check);
    assert_eq!(check.status.code(), Some(1), "{report}");
    assert!(report.contains("missing required fields: User.LastLoginDate"), "{report}");
}

/// `sfetl check` on an org lacking optional fields passes, and says which columns stay empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_columns_that_will_stay_empty() {
    let mut config = SimConfig::new(OrgSpec::new(44, 100));
    config.state_country_picklists = false;
    let org = SimOrg::start_with(config).await;
    let check = sfetl(&["check", &org.pipeline("c", "").to_string_lossy()], org.dir.path());
    let report = text(&check);
    assert!(check.status.success(), "{report}");
    assert!(report.contains("these columns will stay empty: User.CountryCode"), "{report}");
}

/// A login moves `LastLoginDate` and nothing else. An incremental run must still see it, or
/// `inactive_licensed_users` lists people who log in every day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_reach_an_incremental_run() {
    let org = SimOrg::start(3000, 45).await;
    let pipeline = org.pipeline("logins", "exclude_user_types = []");
    let out = org.out();
    org.extract(&pipeline);
    let inactive_before = count(&out, "SELECT count(*) FROM inactive_licensed_users");

    // 300 users who had not logged in for 90 days or more (or never) log in now.
    let now = chrono::Utc::now().timestamp() * 1000;
    let data = org.sim.org();
    let users = data.table("User");
    let stale: Vec<String> = (0..users.rows.len())
        .filter(|&i| match users.get(i, "LastLoginDate") {
            Value::DateTime(t) => now - t > 100 * 86_400_000,
            _ => true,
        })
        .filter_map(|i| users.get(i, "Id").as_str().map(String::from))
        .take(300)
        .collect();
    assert_eq!(stale.len(), 300);
    org.sim.log_in(&stale, now);
    let before = org.sim.request_log().len();
    org.extract(&pipeline);
    let fetched: usize =
        org.sim.request_log()[before..].iter().filter(|r| r.object == Some("User")).map(|r| r.records).sum();
    assert!((300..1000).contains(&fetched), "an incremental read of the logins, not a full one: {fetched}");

    // users equals the org, login for login.
    let data = org.sim.org();
    let users = data.table("User");
    let mut expected: Vec<Vec<String>> = (0..users.rows.len())
        .map(|i| {
            let login = match users.get(i, "LastLoginDate") {
                Value::DateTime(t) => t.to_string(),
                _ => "NULL".into(),
            };
            vec![users.get(i, "Id").as_str().unwrap_or_default().to_string(), login]
        })
        .collect();
    expected.sort();
    let read = rows(&out, "SELECT user_id, coalesce(epoch_ms(last_login_at)::VARCHAR, 'NULL') FROM users ORDER BY ALL");
    assert_eq!(read, expected);
    // user_history keeps the version before and after each login.
    let ids: Vec<String> = stale.iter().map(|id| format!("'{id}'")).collect();
    let versions = count(&out, &format!("SELECT count(*) FROM user_history WHERE user_id IN ({})", ids.join(",")));
    assert_eq!(versions, 600);
    // inactive_licensed_users equals a full read of the same org.
    let full = org.dir.path().join("full");
    let run =
        sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &full.to_string_lossy(), "--full"], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    let inactive = "SELECT user_id FROM inactive_licensed_users ORDER BY 1";
    assert_eq!(rows(&out, inactive), rows(&full, inactive));
    let logged_in =
        count(&out, &format!("SELECT count(*) FROM inactive_licensed_users WHERE user_id IN ({})", ids.join(",")));
    assert_eq!(logged_in, 0, "nobody who just logged in is inactive");
    assert!(count(&out, "SELECT count(*) FROM inactive_licensed_users") < inactive_before);
}

/// `ConcurrentRequests Limit exceeded` is transient: one retry, and the org completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_requests_limit_costs_a_retry_not_the_org() {
    let org = SimOrg::start(2500, 46).await;
    org.sim.add_fault(FaultRule::new(Fault::ConcurrentRequests, Trigger::Nth(2)).on_paths("/query/"));
    let run = org.extract(&org.pipeline("busy", "exclude_user_types = []"));
    assert!(text(&run).contains("requests retried after transient failures"), "{}", text(&run));
    let log = org.sim.request_log();
    assert_eq!(log.iter().filter(|r| r.status == 403).count(), 1);
    assert_eq!(count(&org.out(), "SELECT count(*) FROM users"), 2500);
    assert_eq!(rows(&org.out(), "SELECT status FROM runs")[0][0], "succeeded");
}

/// Calls are labelled for the org's usage reports and use the newest version both sides know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_labelled_and_use_the_newest_common_api_version() {
    let mut config = SimConfig::new(OrgSpec::new(47, 100));
    config.max_api_version = Some("64.0".into());
    let org = SimOrg::start_with(config).await;
    org.extract(&org.pipeline("old", ""));
    let log = org.sim.request_log();
    // Calls, and the subrequests of composite calls.
    let path = |r: &&sfetl_sim::LoggedRequest| r.path.trim_start_matches("composite:").to_string();
    let api: Vec<_> = log.iter().filter(|r| path(r).starts_with("/services/data/v")).collect();
    assert!(api.len() > 8);
    assert!(
        api.iter().all(|r| path(r).starts_with("/services/data/v64.0/")),
        "{:?}",
        api.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let label = format!("client=sfetl/{}", env!("CARGO_PKG_VERSION"));
    assert!(log.iter().all(|r| r.call_options.as_deref() == Some(label.as_str())));
}

/// An External Client App takes the org's My Domain as audience; an org blocking its login hosts
/// takes the token at My Domain with the login host as audience. sfetl finds the route from the
/// settings of the setup guide, and `sfetl check` names the lines that pin it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_org_shape_logs_in_and_check_names_the_route() {
    for (kind, blocked, token_url_is_my_domain, audience_is_my_domain) in
        [(AppKind::ExternalClientApp, false, true, true), (AppKind::ConnectedApp, true, true, false)]
    {
        let mut config = SimConfig::new(OrgSpec::new(48, 100));
        config.login_hosts_blocked = blocked;
        let sim = sfetl_sim::Sim::start(config).await.unwrap_or_else(|e| panic!("{e}"));
        let app = sim.create_app(kind, "System Administrator").unwrap_or_else(|e| panic!("{e}"));
        let org = SimOrg::with_app(sim, app);
        let (login_host, my_domain) = (org.sim.url().to_string(), org.sim.my_domain_url());
        let pipeline = org.pipeline_at("shape", &my_domain, &login_host, "");
        org.extract(&pipeline);
        assert!(count(&org.out(), "SELECT count(*) FROM users") > 0);

        let check = sfetl(&["check", &pipeline.to_string_lossy()], org.dir.path());
        let report = text(&check);
        assert!(check.status.success(), "{report}");
        let expected_token = if token_url_is_my_domain { &my_domain } else { &login_host };
        let expected_audience = if audience_is_my_domain { &my_domain } else { &login_host };
        let pin = format!("token_url = \"{expected_token}\" and audience = \"{expected_audience}\"");
        assert!(report.contains(&pin), "{kind:?}: {report}");

        // Pinned, the route is the only one tried: one token request per login.
        let pinned = org.pipeline_at(
            "pinned",
            &my_domain,
            &login_host,
            &format!("token_url = \"{expected_token}\"\naudience = \"{expected_audience}\""),
        );
        let before = org.sim.request_log().len();
        org.extract(&pinned);
        let tokens: Vec<u16> = org.sim.request_log()[before..]
            .iter()
            .filter(|r| r.path.ends_with("/oauth2/token"))
            .map(|r| r.status)
            .collect();
        assert_eq!(tokens, [200], "{kind:?}");
    }
}

/// Sharing settings can hide users from the integration user while Salesforce still counts them:
/// `sfetl check` warns, per license, and names the permission that fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_when_the_user_cannot_see_every_user() {
    let mut config = SimConfig::new(OrgSpec::new(49, 400));
    config.hidden_user_every = Some(10);
    let org = SimOrg::start_with(config).await;
    let check = sfetl(&["check", &org.pipeline("sharing", "").to_string_lossy()], org.dir.path());
    let report = text(&check);
    assert!(check.status.success(), "a warning, not a failure: {report}");
    assert!(
        report.contains("warn") && report.contains("the user sees fewer active users than Salesforce counts"),
        "{report}"
    );
    assert!(report.contains("View All Users"), "{report}");
    assert!(report.contains("or open user sharing (Setup > Sharing Settings"), "{report}");

    let open = SimOrg::start(400, 49).await;
    let report = text(&sfetl(&["check", &open.pipeline("open", "").to_string_lossy()], open.dir.path()));
    assert!(report.contains("the user sees every active user Salesforce counts per license"), "{report}");
}

/// `sfetl check --capture` writes what the simulator needs to imitate an org, without personal
/// data; a simulator started from it has the same fields, objects, versions and licenses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_shape_makes_a_simulator_of_the_same_org() {
    let mut config = SimConfig::new(OrgSpec::new(50, 600));
    config.state_country_picklists = false;
    config.hidden_fields = vec!["User.Department".into()];
    config.hidden_objects = vec!["ActiveFeatureLicenseMetric".into()];
    config.max_api_version = Some("65.0".into());
    config.daily_api_max = 50_000;
    let original = SimOrg::start_with(config).await;
    let shape_file = original.dir.path().join("org-shape.json");
    let check = sfetl(
        &["check", &original.pipeline("real", "").to_string_lossy(), "--capture", &shape_file.to_string_lossy()],
        original.dir.path(),
    );
    assert!(check.status.success(), "{}", text(&check));
    let json = std::fs::read_to_string(&shape_file).unwrap_or_else(|e| panic!("{e}"));
    // Nothing personal: no username, email or name of any user.
    let data = original.sim.org();
    let users = data.table("User");
    for i in 0..users.rows.len() {
        for field in ["Username", "Name", "LastName"] {
            let value = users.get(i, field).as_str().unwrap_or_default();
            assert!(value.len() < 4 || !json.contains(value), "{field} {value} leaked into the shape");
        }
    }
    let shape: sfetl_extract::shape::OrgShape = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((shape.users, shape.daily_api_requests), (600, 50_000));

    let copy = SimOrg::start_with(SimConfig::from_shape(&shape, 9)).await;
    let run = copy.extract(&copy.pipeline("copy", "exclude_user_types = []"));
    let log = text(&run);
    assert!(log.contains("User.CountryCode is missing") && log.contains("User.Department is missing"), "{log}");
    assert!(log.contains("usage metrics are not collected"), "{log}");
    let api: Vec<_> = copy.sim.request_log().into_iter().filter(|r| r.path.starts_with("/services/data/v")).collect();
    assert!(api.iter().all(|r| r.path.starts_with("/services/data/v65.0/")));
    // The same licenses, by name and key, with about as many holders.
    let licenses = |org: &SimOrg| {
        let data = org.sim.org();
        let table = data.table("UserLicense");
        let mut out: Vec<(String, String, i64)> = (0..table.rows.len())
            .map(|i| {
                let text = |f| table.get(i, f).as_str().unwrap_or_default().to_string();
                let used = match table.get(i, "UsedLicenses") {
                    Value::Int(n) => *n,
                    _ => 0,
                };
                (text("Name"), text("LicenseDefinitionKey"), used)
            })
            .collect();
        out.sort();
        out
    };
    let (a, b) = (licenses(&original), licenses(&copy));
    assert_eq!(a.iter().map(|l| (&l.0, &l.1)).collect::<Vec<_>>(), b.iter().map(|l| (&l.0, &l.1)).collect::<Vec<_>>());
    let salesforce = |l: &[(String, String, i64)]| l.iter().find(|l| l.1 == "SFDC").map_or(0, |l| l.2);
    let (x, y) = (salesforce(&a), salesforce(&b));
    assert!((x - y).abs() * 4 <= x.max(1), "Salesforce seats used: {x} in the org, {y} in its copy");

    let bad = original.dir.path().join("bad.json");
    std::fs::write(&bad, "{}").unwrap_or_else(|e| panic!("{e}"));
    let refused = sfetl(&["sim", "--shape", &bad.to_string_lossy()], original.dir.path());
    assert!(!refused.status.success());
    assert!(text(&refused).contains("not an org shape written by `sfetl check --capture`"), "{}", text(&refused));
}

/// A warehouse whose orgs never wrote `user_logins` (a first run stopped before it) still has
/// `users` with `is_frozen`, and every view built on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_views_stand_without_user_logins() {
    let org = SimOrg::start(300, 51).await;
    org.extract(&org.pipeline("first", ""));
    let out = org.out();
    std::fs::remove_dir_all(out.join("user_logins")).unwrap_or_else(|e| panic!("{e}"));
    // A run whose only org fails at login publishes the warehouse again over the files there are.
    let broken = org.pipeline_as("broken", "nobody@example.com", "");
    let run = sfetl(&["extract", &broken.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert_eq!(count(&out, "SELECT count(*) FROM users WHERE is_frozen"), 0);
    assert!(count(&out, "SELECT count(*) FROM license_utilization WHERE held_by_users > 0") > 0);
    assert!(count(&out, "SELECT count(*) FROM inactive_licensed_users") > 0);
    assert!(!text(&run).contains("left out of the warehouse"), "{}", text(&run));
}

/// `/limits` is served to users with "View Setup and Configuration" only (REST API Developer
/// Guide, "Limits"), which an integration user may lack. The run does not read it: the quota
/// guard goes by the usage every answer reports ("Limit Info Header"), and still stops in time;
/// `check` warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_read_the_limits_is_still_guarded() {
    let mut config = SimConfig::new(OrgSpec::new(52, 3000));
    config.limits_refused = true;
    config.daily_api_max = 1000;
    config.api_used_at_start = 770; // 30 requests left below the guard's 80 %
    let org = SimOrg::start_with(config).await;
    let pipeline = org.pipeline("nolimits", "batch_size = 200\npages_per_call = 1");
    let check = sfetl(&["check", &pipeline.to_string_lossy()], org.dir.path());
    let report = text(&check);
    assert!(check.status.success(), "a warning, not a failure: {report}");
    assert!(report.contains("View Setup and Configuration"), "{report}");

    let out = org.out();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    let said = text(&run);
    assert_eq!(run.status.code(), Some(4), "stopped by the guard: {said}");
    assert!(!org.sim.request_log().iter().any(|r| r.path.contains("/limits") && r.status == 200));
    let (used, max) = org.sim.api_usage();
    assert!(used <= max * 8 / 10, "the org's usage stayed within 80 %: {used}/{max}");

    org.sim.reset_day();
    let run = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(count(&out, "SELECT count(*) FROM user_licenses"), org.sim.org().table("UserLicense").rows.len() as i64);
}
