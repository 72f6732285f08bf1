//! An org's shape: what a simulator needs to imitate it, and nothing personal. Per object, the
//! fields the integration user sees and their types; the API versions; the daily API limit; the
//! licenses with their keys and counts; how many users there are. No record of a person, no name,
//! no username crosses into it. `sfetl check --capture` writes it, `sfetl sim --shape` serves it:
//! a customer's bug report becomes a test.

use crate::client::SalesforceClient;
use crate::error::Result;
use crate::soql::SoqlQuery;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgShape {
    /// `sfetl/<version>`.
    pub captured_by: String,
    /// API versions the org serves.
    pub api_versions: Vec<String>,
    /// `DailyApiRequests.Max`.
    pub daily_api_requests: u64,
    /// `Organization.OrganizationType` (the edition) and `IsSandbox`.
    pub edition: Option<String>,
    pub is_sandbox: bool,
    pub users: u64,
    pub active_users: u64,
    pub objects: Vec<ObjectShape>,
    pub user_licenses: Vec<UserLicenseShape>,
    pub permission_set_licenses: Vec<PermissionSetLicenseShape>,
    pub package_licenses: Vec<PackageLicenseShape>,
}

/// One object as the integration user sees it; `readable` false when Salesforce says it does
/// not exist for the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectShape {
    pub name: String,
    pub readable: bool,
    pub fields: Vec<FieldShape>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldShape {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserLicenseShape {
    pub name: String,
    pub key: String,
    pub status: String,
    pub total: i64,
    pub used: i64,
    /// The user types of the profiles that carry it.
    pub user_types: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PermissionSetLicenseShape {
    pub developer_name: String,
    pub label: String,
    pub status: String,
    pub total: i64,
    pub used: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageLicenseShape {
    pub namespace: String,
    pub status: String,
    /// -1: a site license.
    pub allowed: i64,
    pub used: i64,
}

impl SalesforceClient {
    /// The shape of the org this client is logged in to, for `objects`. A few dozen API calls.
    pub async fn capture_shape(&self, objects: &[&str]) -> Result<OrgShape> {
        let text = |r: &Map<String, Value>, f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
        let int = |r: &Map<String, Value>, f: &str| r.get(f).and_then(Value::as_i64).unwrap_or_default();
        let organization = self.all_records(&SoqlQuery::new("Organization", ["OrganizationType", "IsSandbox"])).await?;
        let mut shapes = Vec::new();
        for object in objects {
            shapes.push(match self.described_fields(object).await {
                Ok(fields) => ObjectShape { name: object.to_string(), readable: true, fields },
                Err(e) if e.is_not_found() => ObjectShape { name: object.to_string(), readable: false, fields: vec![] },
                Err(e) => return Err(e),
            });
        }
        let profiles = self.all_records(&SoqlQuery::new("Profile", ["UserLicenseId", "UserType"])).await?;
        let licenses = SoqlQuery::new(
            "UserLicense",
            ["Id", "Name", "LicenseDefinitionKey", "Status", "TotalLicenses", "UsedLicenses"],
        );
        let user_licenses = self
            .all_records(&licenses)
            .await?
            .iter()
            .map(|r| {
                let mut user_types: Vec<String> = profiles
                    .iter()
                    .filter(|p| text(p, "UserLicenseId") == text(r, "Id"))
                    .map(|p| text(p, "UserType"))
                    .collect();
                user_types.sort();
                user_types.dedup();
                UserLicenseShape {
                    name: text(r, "Name"),
                    key: text(r, "LicenseDefinitionKey"),
                    status: text(r, "Status"),
                    total: int(r, "TotalLicenses"),
                    used: int(r, "UsedLicenses"),
                    user_types,
                }
            })
            .collect();
        let psl = SoqlQuery::new(
            "PermissionSetLicense",
            ["DeveloperName", "MasterLabel", "Status", "TotalLicenses", "UsedLicenses"],
        );
        let permission_set_licenses = self
            .all_records(&psl)
            .await?
            .iter()
            .map(|r| PermissionSetLicenseShape {
                developer_name: text(r, "DeveloperName"),
                label: text(r, "MasterLabel"),
                status: text(r, "Status"),
                total: int(r, "TotalLicenses"),
                used: int(r, "UsedLicenses"),
            })
            .collect();
        let packages =
            SoqlQuery::new("PackageLicense", ["NamespacePrefix", "Status", "AllowedLicenses", "UsedLicenses"]);
        let package_licenses = self
            .all_records(&packages)
            .await?
            .iter()
            .map(|r| PackageLicenseShape {
                namespace: text(r, "NamespacePrefix"),
                status: text(r, "Status"),
                allowed: int(r, "AllowedLicenses"),
                used: int(r, "UsedLicenses"),
            })
            .collect();
        let count = |condition: Option<&str>| {
            let query = SoqlQuery::new("User", ["COUNT()"]);
            let query = match condition {
                Some(c) => query.filter(c),
                None => query,
            };
            async move { Ok::<u64, crate::Error>(self.query(&query).next_page().await?.map_or(0, |p| p.total_size)) }
        };
        Ok(OrgShape {
            captured_by: concat!("sfetl/", env!("CARGO_PKG_VERSION")).into(),
            api_versions: self.org_versions().await?,
            daily_api_requests: self.read_limits().await?.max,
            edition: organization.first().map(|r| text(r, "OrganizationType")),
            is_sandbox: organization.first().and_then(|r| r.get("IsSandbox")).and_then(Value::as_bool).unwrap_or(false),
            users: count(None).await?,
            active_users: count(Some("IsActive = true")).await?,
            objects: shapes,
            user_licenses,
            permission_set_licenses,
            package_licenses,
        })
    }

    /// Every record of a (small) query, page after page.
    async fn all_records(&self, query: &SoqlQuery) -> Result<Vec<Map<String, Value>>> {
        let mut stream = self.query(query);
        let mut records = Vec::new();
        while let Some(page) = stream.next_page().await? {
            records.extend(page.records);
        }
        Ok(records)
    }
}
