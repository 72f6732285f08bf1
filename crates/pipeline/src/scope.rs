//! Which users an org's `users` table keeps: the portal user types are left out by default (as
//! SaaS-management products count seats), and `company_filter = "only"` keeps the configured
//! legal entities only.

use crate::config::{CompanyFilter, OrgPlan};
use serde_json::{Map, Value};
use sfetl_extract::soql::{like_contains, quote};
use sfetl_transform::CompanyMatcher;

pub struct UserScope {
    excluded_types: Vec<String>,
    companies: CompanyMatcher,
    only_companies: bool,
}

impl UserScope {
    pub fn new(org: &OrgPlan) -> UserScope {
        UserScope {
            excluded_types: org.exclude_user_types.iter().map(|t| t.to_lowercase()).collect(),
            companies: CompanyMatcher::new(&org.company_names),
            only_companies: org.company_filter == CompanyFilter::Only,
        }
    }

    /// The SOQL condition that leaves out most unwanted users on Salesforce's side (for a full
    /// read). `CompanyName` is matched with `LIKE '%name%'`, since SOQL cannot trim; the exact
    /// trimmed match is [`UserScope::keeps`].
    pub fn soql_condition(&self) -> Option<String> {
        let mut conditions = Vec::new();
        if !self.excluded_types.is_empty() {
            let types: Vec<String> = self.excluded_types.iter().map(|t| quote(t)).collect();
            conditions.push(format!("UserType NOT IN ({})", types.join(", ")));
        }
        if self.only_companies {
            let names: Vec<String> =
                self.companies.names().map(|n| format!("CompanyName LIKE {}", like_contains(n.trim()))).collect();
            conditions.push(format!("({})", names.join(" OR ")));
        }
        (!conditions.is_empty()).then(|| conditions.join(" AND "))
    }

    /// Whether a User record belongs in the table.
    pub fn keeps(&self, record: &Map<String, Value>) -> bool {
        let user_type = record.get("UserType").and_then(Value::as_str).unwrap_or_default().to_lowercase();
        if self.excluded_types.contains(&user_type) {
            return false;
        }
        !self.only_companies || self.companies.matching(record.get("CompanyName").and_then(Value::as_str)).is_some()
    }
}
