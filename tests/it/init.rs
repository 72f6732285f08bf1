//! The onboarding path end to end: `sfetl init`, the certificate registered as an External Client
//! App's (what new orgs create), the generated pipeline filled in, then `sfetl check` and
//! `sfetl extract` succeed.

use crate::support::{SimOrg, rows, sfetl, text};
use std::os::unix::fs::PermissionsExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_check_then_extract() {
    let org = SimOrg::start(150, 61).await;
    let dir = org.dir.path().join("onboarding");
    let run = sfetl(&["init", "acme", "--dir", &dir.to_string_lossy()], org.dir.path());
    assert!(run.status.success(), "{}", text(&run));
    let said = String::from_utf8_lossy(&run.stdout).to_string();
    for step in [
        "Customize Application",
        "Enable OAuth Settings",
        "https://login.salesforce.com/services/oauth2/success",
        "Use digital signatures",
        "(api)",
        "(refresh_token, offline_access)",
        "Admin approved users are pre-authorized",
        "multi-factor authentication",
        "External Client App Manager",
        "Enable JWT Bearer Flow",
    ] {
        assert!(said.contains(step), "`{step}` missing from:\n{said}");
    }
    let first = |text: &str| said.find(text).unwrap_or(usize::MAX);
    assert!(first("New External Client App") < first("New Connected App"), "External Client Apps come first");
    let (key, crt, pipeline) = (dir.join("keys/acme.key"), dir.join("keys/acme.crt"), dir.join("pipelines/acme.toml"));
    let mode = std::fs::metadata(&key).map(|m| m.permissions().mode() & 0o777).unwrap_or_default();
    assert_eq!(mode, 0o600, "the private key is readable by its owner only");

    // Never overwrites.
    let key_before = std::fs::read(&key).unwrap_or_default();
    let again = sfetl(&["init", "acme", "--dir", &dir.to_string_lossy()], org.dir.path());
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already exists"));
    assert_eq!(std::fs::read(&key).unwrap_or_default(), key_before);

    // The admin uploads the certificate to an External Client App and pre-authorizes the profile;
    // the user fills in the values: `url` is the org's My Domain, `login_url` its login host.
    org.sim.add_connected_app(sfetl_sim::ConnectedApp {
        consumer_key: "3MVG9onboarding".into(),
        certificate_pem: std::fs::read_to_string(&crt).unwrap_or_default(),
        authorized_profiles: vec!["System Administrator".into()],
        kind: sfetl_sim::AppKind::ExternalClientApp,
    });
    let filled = std::fs::read_to_string(&pipeline)
        .unwrap_or_default()
        .replace("https://CHANGE-ME.my.salesforce.com", &org.sim.my_domain_url())
        .replace("https://login.salesforce.com\"", &format!("{}\"", org.sim.url()))
        .replace("CHANGE-ME-consumer-key", "3MVG9onboarding")
        .replace("CHANGE-ME@example.com", &org.sim.integration_username())
        .replace("CHANGE-ME Company Name", "Acme Corp")
        + "exclude_user_types = []\n";
    std::fs::write(&pipeline, filled).unwrap_or_else(|e| panic!("{e}"));

    let check = sfetl(&["check", &pipeline.to_string_lossy()], &dir);
    assert!(check.status.success(), "{}", text(&check));
    let my_domain = org.sim.my_domain_url();
    assert!(
        text(&check).contains(&format!("token_url = \"{my_domain}\" and audience = \"{my_domain}\"")),
        "{}",
        text(&check)
    );
    let out = dir.join("data");
    let extract = sfetl(&["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()], &dir);
    assert!(extract.status.success(), "{}", text(&extract));
    assert_eq!(rows(&out, "SELECT count(*)::BIGINT FROM users")[0][0], "150");
}
