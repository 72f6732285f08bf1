//! `sfetl check` against the simulator: each setup mistake fails its own step, names the fix, and
//! exits non-zero; a correct setup passes every step.

use crate::support::{SimOrg, sfetl, text};
use sfetl_sim::{OrgSpec, SimConfig};

async fn org_with(tweak: impl FnOnce(&mut SimConfig)) -> SimOrg {
    let mut config = SimConfig::new(OrgSpec::new(51, 120));
    tweak(&mut config);
    SimOrg::start_with(config).await
}

/// Runs `sfetl check --format json` and returns the exit code and the steps.
fn check(org: &SimOrg, pipeline: &std::path::Path) -> (Option<i32>, Vec<serde_json::Value>) {
    let run = sfetl(&["check", &pipeline.to_string_lossy(), "--format", "json"], org.dir.path());
    let steps: Vec<serde_json::Value> =
        serde_json::from_slice(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&run)));
    (run.status.code(), steps)
}

/// The check exited non-zero, its first failed step is `step`, and that step's detail and fix
/// use each of `words`.
fn assert_fails_at(what: &str, code: Option<i32>, steps: &[serde_json::Value], step: &str, words: &[&str]) {
    assert_eq!(code, Some(1), "{what}: {steps:?}");
    let failures: Vec<(String, String)> = steps
        .iter()
        .filter(|s| s["ok"] == false)
        .map(|s| (s["step"].as_str().unwrap_or_default().to_string(), format!("{} / {}", s["detail"], s["fix"])))
        .collect();
    let (failed_step, said) = failures.first().cloned().unwrap_or_default();
    assert_eq!(failed_step, step, "{what}: {failures:?}");
    for word in words {
        assert!(said.contains(word), "{what}: `{word}` missing in {said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_setup_passes_every_step() {
    let org = org_with(|_| {}).await;
    let (code, steps) = check(&org, &org.pipeline("good", ""));
    assert_eq!(code, Some(0), "{steps:?}");
    assert!(steps.len() >= 14 && steps.iter().all(|s| s["ok"] == true));
    let run = sfetl(&["check", &org.pipeline("good", "").to_string_lossy()], org.dir.path());
    assert!(String::from_utf8_lossy(&run.stdout).contains("passed, 0 failed"), "{}", text(&run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_setup_mistake_names_its_fix() {
    // (what is wrong, how the org or pipeline is set up, the failing step, words the fix must use)
    let org = org_with(|_| {}).await;
    let good = std::fs::read_to_string(org.pipeline("base", "")).unwrap_or_default();
    let other_key = sfetl_sim::keys::rsa_key_and_certificate("other").unwrap_or_else(|e| panic!("{e}"));
    crate::support::write_key(&org.dir.path().join("other.key"), &other_key.private_key_pem);
    std::fs::write(org.dir.path().join("other.crt"), &other_key.certificate_pem).unwrap_or_else(|e| panic!("{e}"));
    let outsider = org.sim.username_where(|p, active| p != "System Administrator" && active).unwrap_or_default();
    let cases: Vec<(&str, String, &str, &[&str])> = vec![
        (
            "wrong consumer key",
            good.replace(&org.app.consumer_key, "3MVG9wrong"),
            "token exchange",
            &["client_id", "Consumer Key"],
        ),
        (
            "key not the uploaded certificate's",
            good.replace("org.key", "other.key"),
            "token exchange",
            &["certificate", "Use digital signatures"],
        ),
        (
            "certificate file of another key",
            format!("{good}certificate_file = \"other.crt\"\n"),
            "private key",
            &["does not match", "setup step 2"],
        ),
        (
            "user not pre-authorized",
            good.replace(&org.sim.integration_username(), &outsider),
            "token exchange",
            &["pre-authorized", "setup step 3"],
        ),
        (
            "unreachable login URL",
            good.replace(&format!("login_url = \"{}\"", org.sim.url()), "login_url = \"http://127.0.0.1:9\""),
            "login URL",
            &["login_url"],
        ),
    ];
    for (what, pipeline_text, step, words) in cases {
        let path = org.dir.path().join("case.toml");
        std::fs::write(&path, pipeline_text).unwrap_or_else(|e| panic!("{e}"));
        let (code, steps) = check(&org, &path);
        assert_fails_at(what, code, &steps, step, words);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_side_problems_name_their_fix() {
    type Case = (&'static str, Box<dyn FnOnce(&mut SimConfig)>, &'static str, &'static [&'static str]);
    let cases: Vec<Case> = vec![
        (
            "sandbox user with the production login URL",
            Box::new(|c| c.login_audience = Some("https://test.salesforce.com".into())),
            "token exchange",
            &["login_url", "https://test.salesforce.com"],
        ),
        ("this machine's clock behind", Box::new(|c| c.clock_skew_seconds = 900), "token exchange", &["clock"]),
        (
            "object not readable",
            Box::new(|c| c.hidden_objects = vec!["PermissionSetLicense".into()]),
            "read PermissionSetLicense",
            &["View Setup and Configuration"],
        ),
    ];
    for (what, tweak, step, words) in cases {
        let org = org_with(tweak).await;
        let (code, steps) = check(&org, &org.pipeline("case", ""));
        assert_fails_at(what, code, &steps, step, words);
    }
}
