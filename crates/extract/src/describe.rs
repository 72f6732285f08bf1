//! Which fields an org lets the integration user read. Orgs differ (salesforce-api.md section 7):
//! `User.CountryCode` exists only with State and Country/Territory Picklists, `Division` only with
//! Divisions, and field-level security can hide any field. A query naming one such field fails
//! whole (`INVALID_FIELD`), so after that answer the caller asks here which of its fields are
//! missing, from the objects' describes (`GET .../sobjects/{object}/describe`, whose `fields`
//! list only what the user may see: REST API Developer Guide, "sObject Describe").

use crate::client::SalesforceClient;
use crate::error::Result;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Deserialize)]
struct Describe {
    fields: Vec<DescribedField>,
}

#[derive(Debug, Clone, Deserialize)]
struct DescribedField {
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(rename = "relationshipName")]
    relationship_name: Option<String>,
    #[serde(rename = "referenceTo", default)]
    reference_to: Vec<String>,
}

impl SalesforceClient {
    /// The paths of `fields` (as SOQL selects them: `Name`, `Profile.UserLicense.Name`) that do not
    /// exist for this user on `object`. Costs one API call per object along the paths.
    pub async fn missing_fields(&self, object: &str, fields: &[&str]) -> Result<Vec<String>> {
        self.missing_fields_counted(object, fields, &AtomicU64::new(0)).await
    }

    /// Like [`SalesforceClient::missing_fields`], adding the API calls made to `calls`.
    pub async fn missing_fields_counted(
        &self,
        object: &str,
        fields: &[&str],
        calls: &AtomicU64,
    ) -> Result<Vec<String>> {
        let mut describes: HashMap<String, Describe> = HashMap::new();
        let mut missing = Vec::new();
        for &path in fields {
            let mut current = object.to_string();
            // Owned, so that the future stays `Send` for any caller (borrowed pieces held across
            // the awaits below hit a known gap in the compiler's lifetime reasoning).
            let mut parents: Vec<String> = path.split('.').map(String::from).collect();
            let last = parents.pop().unwrap_or_default();
            let mut found = true;
            for relationship in &parents {
                let describe = self.describe_cached(&mut describes, &current, calls).await?;
                let lookup = describe
                    .fields
                    .iter()
                    .find(|f| f.relationship_name.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(relationship)));
                match lookup.and_then(|f| f.reference_to.first()) {
                    Some(target) => current = target.clone(),
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                let describe = self.describe_cached(&mut describes, &current, calls).await?;
                found = describe.fields.iter().any(|f| f.name.eq_ignore_ascii_case(&last));
            }
            if !found {
                missing.push(path.to_string());
            }
        }
        Ok(missing)
    }

    /// The fields of `object` the user sees, with their describe types.
    pub(crate) async fn described_fields(&self, object: &str) -> Result<Vec<crate::shape::FieldShape>> {
        let mut describes = HashMap::new();
        let describe = self.describe_cached(&mut describes, object, &AtomicU64::new(0)).await?;
        Ok(describe
            .fields
            .iter()
            .map(|f| crate::shape::FieldShape { name: f.name.clone(), kind: f.kind.clone() })
            .collect())
    }

    async fn describe_cached<'a>(
        &self,
        describes: &'a mut HashMap<String, Describe>,
        object: &str,
        calls: &AtomicU64,
    ) -> Result<&'a Describe> {
        let key = object.to_lowercase();
        if !describes.contains_key(&key) {
            let path = format!("/services/data/v{}/sobjects/{object}/describe", self.api_version());
            let describe: Describe = self.get_counted(&path, &[], calls).await?;
            describes.insert(key.clone(), describe);
        }
        Ok(&describes[&key])
    }
}

/// Why a field may be missing from an org, for the warning that names it.
pub fn why_missing(field: &str) -> &'static str {
    let name = field.rsplit('.').next().unwrap_or(field);
    if name.ends_with("CountryCode") || name.ends_with("StateCode") {
        "the org has no State and Country/Territory Picklists (Setup > State and Country/Territory Picklists)"
    } else if name == "Division" {
        "the org has no Divisions (Setup > Company Information > Enable Divisions)"
    } else {
        "field-level security hides it from the integration user (grant Read on it in the user's profile or a permission set)"
    }
}
