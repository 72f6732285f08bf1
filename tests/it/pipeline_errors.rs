//! Bad pipeline files are refused before any request, naming the file, the org and the setting.

use crate::support::{sfetl, text};

#[test]
fn every_problem_is_named_before_any_request() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[orgs]]\nname = \"Acme Prod\"\nurl = \"ftp://acme\"\nclient_id = \"x\"\nusername = \"u\"\n\
         private_key_file = \"missing.key\"\nbatch_size = 5000\nca_file = \"missing-ca.crt\"\n\
         certificate_file = \"missing.crt\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let run = sfetl(&["extract", &path.to_string_lossy()], dir.path());
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    let said = text(&run);
    for needle in [
        "bad.toml",
        "org `Acme Prod`",
        "`name`",
        "`url`",
        "`private_key_file`",
        "missing.key",
        "`batch_size`",
        "`ca_file`",
        "missing-ca.crt",
        "`certificate_file`",
        "missing.crt",
    ] {
        assert!(said.contains(needle), "missing {needle} in:\n{said}");
    }
    assert!(!dir.path().join("data").exists(), "nothing is written for a bad pipeline");
}

#[test]
fn a_key_that_is_not_a_key_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    crate::support::write_key(
        &dir.path().join("org.key"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let path = org_with_key_file(dir.path());
    let run = sfetl(&["extract", &path.to_string_lossy()], dir.path());
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(text(&run).contains("private_key_file"), "{}", text(&run));
}

/// The key opens the whole org: a key file others can read is refused, naming the `chmod`.
#[test]
fn a_key_readable_by_others_is_refused_with_the_chmod_to_run() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key = sfetl_extract::keys::rsa_key_and_certificate("k").unwrap_or_else(|e| panic!("{e}"));
    let key_file = dir.path().join("org.key");
    crate::support::write_key(&key_file, &key.private_key_pem);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap_or_else(|e| panic!("{e}"));
    let path = org_with_key_file(dir.path());
    let run = sfetl(&["extract", &path.to_string_lossy()], dir.path());
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(text(&run).contains(&format!("run `chmod 600 {}`", key_file.display())), "{}", text(&run));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o400)).unwrap_or_else(|e| panic!("{e}"));
    let check = sfetl(&["check", &path.to_string_lossy()], dir.path());
    assert!(!text(&check).contains("chmod"), "an owner-only key passes: {}", text(&check));
}

/// A pipeline of one real org whose key is `org.key` beside it.
fn org_with_key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        "[[orgs]]\nname = \"acme\"\nurl = \"https://acme.my.salesforce.com\"\nclient_id = \"x\"\nusername = \"u\"\n\
         private_key_file = \"org.key\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    path
}

/// A simulated org too small to have an active System Administrator says so, instead of a login
/// refused for an empty user name.
#[test]
fn a_simulated_org_without_an_administrator_says_to_give_it_more_users() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("tiny.toml");
    // Seed 7 with 21 users draws no active System Administrator.
    let text_of = "[[orgs]]\nname = \"tiny\"\ncompany_names = [\"Acme Corp\"]\nsimulated = { users = 21, seed = 7 }\n";
    std::fs::write(&path, text_of).unwrap_or_else(|e| panic!("{e}"));
    let run =
        sfetl(&["extract", &path.to_string_lossy(), "--out", &dir.path().join("data").to_string_lossy()], dir.path());
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let said = text(&run);
    assert!(said.contains("21 users include no active System Administrator"), "{said}");
    assert!(!said.contains("refused the user ``"), "{said}");
}
