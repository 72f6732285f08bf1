//! Simulated orgs for `pipelines/demo.toml`: a simulator per org, with a connected app and a key
//! pair made for this run, so a fresh machine needs no Salesforce account.

use crate::config::{OrgPlan, SimulatedOrg};
use sfetl_extract::{Credentials, Secret};
use sfetl_sim::{OrgSpec, Sim, SimConfig, SimError};

pub async fn start(org: &OrgPlan, spec: &SimulatedOrg) -> Result<(Sim, Credentials), SimError> {
    let mut org_spec = OrgSpec::new(spec.seed, spec.users);
    org_spec.sandbox = spec.sandbox;
    // The same org all day: a re-run (incremental for users) finds nothing changed, as it would
    // on a quiet real org.
    let today = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    org_spec.as_of = today.unwrap_or(org_spec.as_of);
    if !org.company_names.is_empty() {
        org_spec.companies = org.company_names.clone();
    }
    org_spec.name =
        spec.org_name.clone().or_else(|| org.company_names.first().cloned()).unwrap_or_else(|| org.name.clone());
    let mut config = SimConfig::new(org_spec);
    config.state_country_picklists = spec.state_country_picklists;
    config.hidden_fields = spec.hidden_fields.clone();
    let sim = Sim::start(config).await?;
    let app = sim.create_connected_app("System Administrator")?;
    let username = sim.integration_username();
    if username.is_empty() {
        return Err(SimError::NoAdministrator { users: spec.users });
    }
    tracing::info!(org = %org.name, url = sim.url(), "started a simulated org");
    let credentials = Credentials {
        login_url: sim.url().to_string(),
        client_id: app.consumer_key,
        username,
        private_key: Secret::new(app.key.private_key_pem),
        my_domain_url: None,
        pinned: None,
    };
    Ok((sim, credentials))
}
