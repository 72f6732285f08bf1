//! What the crate's tests against the simulator share.

use crate::SalesforceClient;

/// A client of the simulated org, through a connected app for its System Administrators.
pub(crate) fn client_of(sim: &sfetl_sim::Sim, settings: crate::ConnectionSettings) -> SalesforceClient {
    let app = sim.create_connected_app("System Administrator").unwrap_or_else(|e| panic!("{e}"));
    let credentials = crate::Credentials {
        login_url: sim.url().to_string(),
        client_id: app.consumer_key.clone(),
        username: sim.integration_username(),
        private_key: crate::Secret::new(app.key.private_key_pem.clone()),
        my_domain_url: None,
        pinned: None,
    };
    SalesforceClient::new(credentials, settings).unwrap_or_else(|e| panic!("{e}"))
}
