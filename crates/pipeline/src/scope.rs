//! Which users an org's `users` table keeps: the portal user types are left out by default (as
//! SaaS-management products count seats), and `company_filter = "only"` keeps the configured
//! legal entities only.

use crate::OrgError;
use crate::config::{CompanyFilter, OrgPlan};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use sfetl_extract::soql::{like_contains, quote};
use sfetl_transform::CompanyMatcher;
use sfetl_transform::tables::USERS;
use std::collections::HashSet;

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

    /// The settings that decide which users the table holds and the `company` each is tagged
    /// with, as text kept in the users' cursor: rows read under other settings are not rows an
    /// incremental read can merge into.
    pub fn settings(org: &OrgPlan) -> String {
        format!(
            "exclude_user_types {:?}; company_filter {:?}; company_names {:?}",
            org.exclude_user_types, org.company_filter, org.company_names
        )
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

    /// The rows of a `users` batch that belong in the table: not of an excluded user type (compared
    /// without regard to ASCII case), and, with `company_filter = "only"`, matching a configured
    /// company (the batch's `company` column is that match). The Ids of the rows left out are
    /// added to `left_out` when given: an incremental read asks for every changed user, in scope
    /// or not, and must tell whether those it leaves out were in the table.
    pub fn keep(&self, batch: &RecordBatch, left_out: Option<&mut HashSet<String>>) -> Result<RecordBatch, OrgError> {
        let column = |name: &str| batch.column_by_name(name).and_then(|c| c.as_string_opt::<i32>());
        let (Some(user_types), Some(companies)) = (column("user_type"), column("company")) else {
            return Ok(batch.clone());
        };
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|row| {
                let user_type = if user_types.is_valid(row) { user_types.value(row) } else { "" };
                let excluded = self.excluded_types.iter().any(|t| t.eq_ignore_ascii_case(user_type));
                Some(!excluded && (!self.only_companies || companies.is_valid(row)))
            })
            .collect();
        if let Some(left_out) = left_out {
            let ids = batch.column(0).as_string::<i32>();
            let dropped = keep.iter().zip(ids.iter()).filter(|(kept, _)| *kept != Some(true));
            left_out.extend(dropped.filter_map(|(_, id)| id.map(str::to_string)));
        }
        filter_record_batch(batch, &keep)
            .map_err(|source| sfetl_transform::Error::Arrow { table: USERS.name, source }.into())
    }
}
