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
    std::fs::write(dir.path().join("org.key"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        "[[orgs]]\nname = \"acme\"\nurl = \"https://acme.my.salesforce.com\"\nclient_id = \"x\"\nusername = \"u\"\n\
         private_key_file = \"org.key\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let run = sfetl(&["extract", &path.to_string_lossy()], dir.path());
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(text(&run).contains("private_key_file"), "{}", text(&run));
}
