//! What connecting to one org takes: credentials and settings from its plan, and for a simulated
//! org (the `demo` feature), a simulator started for it.

use crate::OrgError;
use crate::config::{Connection, OrgPlan};
use sfetl_extract::{ConnectionSettings, Credentials};

/// Credentials, settings and the URL the configuration expects; a simulated org serves as long
/// as this value lives.
pub struct OrgConnection {
    pub credentials: Credentials,
    pub settings: ConnectionSettings,
    pub expected_url: Option<String>,
    #[cfg(feature = "demo")]
    pub _simulator: Option<sfetl_sim::Sim>,
}

pub async fn connect(org: &OrgPlan) -> Result<OrgConnection, OrgError> {
    let settings = ConnectionSettings {
        api_version: org.api_version.clone(),
        batch_size: org.batch_size,
        pages_per_call: org.pages_per_call,
        quota: org.quota,
        retry: org.retry,
        max_body_bytes: org.max_body_bytes,
        ..ConnectionSettings::default()
    };
    match &org.connection {
        Connection::Real { url, login_url, pinned_route, client_id, username, private_key, ca_file, .. } => {
            let credentials = Credentials {
                login_url: login_url.clone(),
                client_id: client_id.clone(),
                username: username.clone(),
                private_key: private_key.clone(),
                my_domain_url: Some(url.clone()),
                pinned: pinned_route.clone(),
            };
            Ok(OrgConnection {
                credentials,
                settings: ConnectionSettings { ca_certificate: ca_file.clone(), ..settings },
                expected_url: Some(url.clone()),
                #[cfg(feature = "demo")]
                _simulator: None,
            })
        }
        #[cfg(feature = "demo")]
        Connection::Simulated(spec) => {
            let (sim, credentials) = crate::demo::start(org, spec).await.map_err(OrgError::Simulator)?;
            Ok(OrgConnection { credentials, settings, expected_url: None, _simulator: Some(sim) })
        }
        #[cfg(not(feature = "demo"))]
        Connection::Simulated(_) => Err(OrgError::NoSimulator),
    }
}
