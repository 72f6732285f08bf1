//! `sfetl init NAME`: the key pair and certificate for a new External Client App or connected app,
//! a pipeline file with every setting explained, and the Salesforce steps in the order a person
//! does them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where `init` writes, relative to `dir`.
pub struct InitFiles {
    pub key: PathBuf,
    pub certificate: PathBuf,
    pub pipeline: PathBuf,
}

pub fn files(dir: &Path, name: &str) -> InitFiles {
    InitFiles {
        key: dir.join("keys").join(format!("{name}.key")),
        certificate: dir.join("keys").join(format!("{name}.crt")),
        pipeline: dir.join("pipelines").join(format!("{name}.toml")),
    }
}

/// Writes the three files; refuses (naming the file) when any already exists.
pub fn run(dir: &Path, name: &str) -> Result<InitFiles, String> {
    let slug_ok =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !slug_ok {
        return Err(format!(
            "`{name}`: the name must be a slug of lower-case letters, digits, `-` or `_` (it names files and folders)"
        ));
    }
    let files = files(dir, name);
    for path in [&files.key, &files.certificate, &files.pipeline] {
        if path.exists() {
            return Err(format!(
                "{} already exists: sfetl init never overwrites a key or a pipeline; choose another name or remove it",
                path.display()
            ));
        }
    }
    let credentials =
        sfetl_extract::keys::rsa_key_and_certificate(&format!("sfetl {name}")).map_err(|e| e.to_string())?;
    for path in [&files.key, &files.pipeline] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
    }
    write_new(&files.key, &credentials.private_key_pem, 0o600)?;
    write_new(&files.certificate, &credentials.certificate_pem, 0o644)?;
    write_new(&files.pipeline, &pipeline_text(name), 0o644)?;
    Ok(files)
}

/// Creates `path` (never replacing a file) with `mode`.
fn write_new(path: &Path, content: &str, mode: u32) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(content.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn pipeline_text(name: &str) -> String {
    format!(
        r#"# Pipeline for the org "{name}", written by `sfetl init {name}`. Fill in the values marked CHANGE-ME,
# then check the connection with `sfetl check pipelines/{name}.toml` and run `sfetl extract pipelines/{name}.toml`.

# Where the Parquet files and warehouse.duckdb go, relative to the working directory.
output = "data"
# A user who has not logged in for this many days (or never) counts as inactive in the views and the report.
inactive_days = 90

[[orgs]]
# A short slug: it names folders and fills the `org` column.
name = "{name}"
# Your legal entities, one per entry, as users' Company field spells them (Setup > Users > a user > Company).
company_names = ["CHANGE-ME Company Name"]
# Your org's URL: Setup > My Domain > Current My Domain URL, with https:// (the Lightning address works too).
# An External Client App takes it as the JWT audience.
url = "https://CHANGE-ME.my.salesforce.com"
# https://login.salesforce.com for production, https://test.salesforce.com for a sandbox.
login_url = "https://login.salesforce.com"
# If `sfetl check` says the login URL was refused and names another route, pin it here:
# token_url = "https://CHANGE-ME.my.salesforce.com"
# audience = "https://CHANGE-ME.my.salesforce.com"
# The app's Consumer Key (External Client App: Settings > OAuth Settings; connected app: Manage Consumer Details).
client_id = "CHANGE-ME-consumer-key"
# The user sfetl acts as: its profile or a permission set pre-authorized for the app (setup step 3),
# "View Setup and Configuration" granted, and no multi-factor authentication configured.
username = "CHANGE-ME@example.com"
# The private key sfetl signs with (keep it secret: mode 0600) and the certificate you upload to the app.
private_key_file = "../keys/{name}.key"
certificate_file = "../keys/{name}.crt"
# Optional:
# free_licenses = ["Salesforce Integration"]   # licenses free in your contract: not counted as paid
# exclude_user_types = []    # keep portal users too (left out by default)
# company_filter = "only"    # keep only the users of company_names
# bulk_threshold = 100000    # full reads of more rows use a Bulk API 2.0 job; 0: never
"#
    )
}

/// The connected-app steps, in the order a person does them.
pub fn instructions(files: &InitFiles) -> String {
    format!(
        "Wrote\n  {key} (private key, mode 0600: keep it secret)\n  {crt} (certificate: upload it to Salesforce)\n  {pipeline}\n\n\
         Now, in Salesforce, as an admin with \"Customize Application\" and either \"Modify All Data\" or \"Manage Connected Apps\".\n\
         Orgs created since Winter '26 use an External Client App (A); older orgs may use a connected app (B).\n\
         A1. Setup > External Client App Manager > New External Client App: a name, your email, distribution state Local.\n\
         A2. API (Enable OAuth Settings): select Enable OAuth; callback URL https://login.salesforce.com/services/oauth2/success;\n    \
             OAuth scopes: Manage user data via APIs (api) and Perform requests at any time (refresh_token, offline_access);\n    \
             Flow Enablement: select Enable JWT Bearer Flow and upload {crt}. Create.\n\
         A3. Policies > OAuth Policies > Permitted Users: \"Admin approved users are pre-authorized\";\n    \
             under App Policies add the integration user's profile or a permission set. Save.\n\
         A4. Settings > OAuth Settings > Consumer Key and Secret: copy the Consumer Key.\n\
         B1. Setup > App Manager > New Connected App: a name and your email.\n\
         B2. API (Enable OAuth Settings): select Enable OAuth Settings; the same callback URL;\n    \
             select Use digital signatures and upload {crt}; the same two OAuth scopes. Save.\n\
         B3. On the app: Manage > Edit Policies > OAuth Policies > Permitted Users: \"Admin approved users are pre-authorized\"; Save.\n    \
             Then Manage Profiles or Manage Permission Sets: add the integration user's profile or a permission set.\n\
         B4. View > Manage Consumer Details: copy the Consumer Key.\n\
         Then:\n\
         5. The integration user must not have multi-factor authentication configured, and needs \"View Setup and Configuration\"\n   \
            (and \"Manage Users\" to report frozen users).\n\
         6. Fill in {pipeline}: the Consumer Key, the username, and url = your My Domain (External Client Apps take it as the audience).\n\
         7. sfetl check {pipeline}   (it names the token host and audience that worked)   then   sfetl extract {pipeline}\n",
        key = files.key.display(),
        crt = files.certificate.display(),
        pipeline = files.pipeline.display(),
    )
}
