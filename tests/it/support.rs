//! Shared helpers: a simulated org with a connected app, a pipeline file for it, the binary.

use sfetl_sim::{AppCredentials, OrgData, OrgSpec, Sim, SimConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct SimOrg {
    pub sim: Sim,
    pub app: AppCredentials,
    pub dir: tempfile::TempDir,
}

impl SimOrg {
    pub async fn start(users: usize, seed: u64) -> SimOrg {
        Self::start_with(SimConfig::new(OrgSpec::new(seed, users))).await
    }

    pub async fn start_with(config: SimConfig) -> SimOrg {
        let sim = Sim::start(config).await.unwrap_or_else(|e| panic!("simulator: {e}"));
        let app = sim.create_connected_app("System Administrator").unwrap_or_else(|e| panic!("app: {e}"));
        Self::with_app(sim, app)
    }

    /// A started simulator with the app the integration logs in through.
    pub fn with_app(sim: Sim, app: AppCredentials) -> SimOrg {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        write_key(&dir.path().join("org.key"), &app.key.private_key_pem);
        SimOrg { sim, app, dir }
    }

    /// Writes a pipeline for this org (slug `name`) with extra org settings appended.
    pub fn pipeline(&self, name: &str, extra: &str) -> PathBuf {
        self.pipeline_as(name, &self.sim.integration_username(), extra)
    }

    pub fn pipeline_as(&self, name: &str, username: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, self.org_block(name, username, extra)).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// A pipeline whose `url` and `login_url` are these (the simulator's My Domain and login host).
    pub fn pipeline_at(&self, name: &str, url: &str, login_url: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        let block = self.org_block_at(name, &self.sim.integration_username(), url, login_url, extra);
        std::fs::write(&path, block).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// This org's `[[orgs]]` table, its key by absolute path (so that it may join another pipeline).
    pub fn org_block(&self, name: &str, username: &str, extra: &str) -> String {
        self.org_block_at(name, username, self.sim.url(), self.sim.url(), extra)
    }

    fn org_block_at(&self, name: &str, username: &str, url: &str, login_url: &str, extra: &str) -> String {
        format!(
            "[[orgs]]\nname = \"{name}\"\ncompany_names = [\"Acme Corp\"]\nurl = \"{url}\"\nlogin_url = \"{login_url}\"\n\
             client_id = \"{key}\"\nusername = \"{username}\"\nprivate_key_file = {key_file}\n{extra}\n",
            key = self.app.consumer_key,
            key_file = toml_string(&self.dir.path().join("org.key").to_string_lossy()),
        )
    }

    /// Like [`SimOrg::pipeline`], with these `company_names`.
    pub fn pipeline_with_companies(&self, name: &str, companies: &[&str], extra: &str) -> PathBuf {
        let path = self.pipeline(name, extra);
        let names: Vec<String> = companies.iter().map(|c| toml_string(c)).collect();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .replace("company_names = [\"Acme Corp\"]", &format!("company_names = [{}]", names.join(", ")));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// Runs `sfetl extract` on a pipeline into [`SimOrg::out`] and insists that it succeeds.
    pub fn extract(&self, pipeline: &Path) -> Output {
        self.extract_with_env(pipeline, &[])
    }

    /// Like [`SimOrg::extract`], with extra environment variables.
    pub fn extract_with_env(&self, pipeline: &Path, vars: &[(&str, &str)]) -> Output {
        let run = self.run_extract(pipeline, vars);
        assert!(run.status.success(), "{}", text(&run));
        run
    }

    /// Runs `sfetl extract` on a pipeline into [`SimOrg::out`], however it ends.
    pub fn run_extract(&self, pipeline: &Path, vars: &[(&str, &str)]) -> Output {
        let out = self.out();
        let args = ["extract", &pipeline.to_string_lossy(), "--out", &out.to_string_lossy()];
        sfetl_env(&args, self.dir.path(), vars)
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

pub fn sfetl(args: &[&str], cwd: &Path) -> Output {
    sfetl_env(args, cwd, &[])
}

/// Runs the binary with extra environment variables.
pub fn sfetl_env(args: &[&str], cwd: &Path, vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfetl"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .envs(vars.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running sfetl: {e}"))
}

/// Writes a private key as `sfetl init` does: readable by its owner only (sfetl refuses others).
pub fn write_key(path: &Path, pem: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap_or_else(|e| panic!("{e}"));
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

pub fn toml_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The Ids of every row of `object` in the simulated org, sorted.
pub fn org_ids(org: &SimOrg, object: &str) -> Vec<String> {
    let data = org.sim.org();
    let source = data.table(object);
    let mut ids: Vec<String> =
        (0..source.rows.len()).filter_map(|i| source.get(i, "Id").as_str().map(String::from)).collect();
    ids.sort();
    ids
}

/// The values of `column` of `table` in the warehouse, sorted.
pub fn column_sorted(out: &Path, table: &str, column: &str) -> Vec<String> {
    rows(out, &format!("SELECT {column} FROM {table} ORDER BY 1")).into_iter().map(|r| r[0].clone()).collect()
}

/// Every table's rows (without `extracted_at`), sorted, as text.
pub fn all_tables(out: &Path) -> Vec<(String, Vec<Vec<String>>)> {
    sfetl_transform::tables::ALL
        .iter()
        .map(|t| {
            (t.name.to_string(), rows(out, &format!("SELECT * EXCLUDE (extracted_at) FROM {} ORDER BY ALL", t.name)))
        })
        .collect()
}

/// Runs SQL on the warehouse with DuckDB directly; every value as text (NULL as "NULL").
pub fn rows(out: &Path, sql: &str) -> Vec<Vec<String>> {
    let db = duckdb::Connection::open(out.join("warehouse.duckdb")).unwrap_or_else(|e| panic!("open: {e}"));
    let mut statement = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut result = statement.query([]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out_rows = Vec::new();
    while let Some(row) = result.next().unwrap_or_else(|e| panic!("{e}")) {
        let n = row.as_ref().column_count();
        out_rows.push(
            (0..n)
                .map(|i| match row.get_ref(i).map(|v| v.to_owned()) {
                    Ok(duckdb::types::Value::Null) => "NULL".to_string(),
                    Ok(duckdb::types::Value::Text(s)) => s,
                    Ok(duckdb::types::Value::Boolean(b)) => b.to_string(),
                    Ok(duckdb::types::Value::BigInt(v)) => v.to_string(),
                    Ok(duckdb::types::Value::Int(v)) => v.to_string(),
                    Ok(other) => format!("{other:?}"),
                    Err(e) => panic!("{e}"),
                })
                .collect(),
        );
    }
    out_rows
}

/// The portal user types sfetl leaves out of `users` by default.
pub fn is_portal(user_type: &str) -> bool {
    ["powerpartner", "cspliteportal", "customersuccess", "powercustomersuccess"]
        .contains(&user_type.to_lowercase().as_str())
}

/// Every license of the org (user, permission set, package) by Id: whether it counts as paid
/// (`is_paid` true; false for free and unknown ones), by the rule the README states, worked out
/// here from the org's records and the rulebook's table. `free_here` is the pipeline's
/// `free_licenses`.
pub fn paid_licenses(data: &OrgData, free_here: &[&str]) -> HashMap<String, bool> {
    use sfetl_transform::rulebook::{LicenseKind, RULES};
    let text = |v: &sfetl_sim::value::Value| v.as_str().unwrap_or_default().to_string();
    let mut paid = HashMap::new();
    for (object, kind, name, key) in [
        ("UserLicense", "user_license", "Name", "LicenseDefinitionKey"),
        ("PermissionSetLicense", "permission_set_license", "DeveloperName", "DeveloperName"),
        ("PackageLicense", "package_license", "NamespacePrefix", "NamespacePrefix"),
    ] {
        let table = data.table(object);
        for i in 0..table.rows.len() {
            let (name, key) = (text(table.get(i, name)), text(table.get(i, key)));
            let rule = RULES.iter().find(|r| r.kind == kind && r.key == key).map(|r| r.billing);
            let is_paid = if free_here.contains(&name.as_str()) || text(table.get(i, "Status")) == "Free" {
                false
            } else {
                match rule {
                    Some(billing) => matches!(billing, LicenseKind::PaidSeat | LicenseKind::LoginBased),
                    None => kind == "user_license" && (name.ends_with("Login") || key.ends_with("Login")),
                }
            };
            paid.insert(text(table.get(i, "Id")), is_paid);
        }
    }
    paid
}
