//! What one table's read asks Salesforce for: the changes since its cursor, or the table whole
//! when the rows kept from the last run cannot be trusted to match a full read, and the SOQL
//! query that says so.

use crate::OrgError;
use crate::config::OrgPlan;
use crate::scope::UserScope;
use crate::state::Cursor;
use sfetl_extract::SalesforceClient;
use sfetl_extract::soql::{self, SoqlQuery};
use sfetl_transform::tables::TableDef;
use std::time::Duration;

/// How one table is read this run.
pub(crate) struct ReadPlan {
    /// The changes since this cursor; `None`: the table whole.
    pub since: Option<Cursor>,
    pub query: SoqlQuery,
    /// Calls spent deciding (a describe of the object).
    pub calls: u64,
}

/// Plans the read of `table`, whose last run left `since` and (`has_previous`) a file to merge
/// changes into. The table is read whole without either, and when the rows kept would differ
/// from a full read's though nothing changed in Salesforce:
/// - a cursor from before the table had an activity field cannot say which rows it moved in;
/// - users read under other scope settings than `scope`'s (`settings`: who is in the table,
///   and the `company` each is tagged with);
/// - a field missing when the rows were read and readable now (an admin granted it): the rows
///   read before have it empty. The describe that tells costs a call, and saves two: the query
///   leaves out the fields still missing from the start, instead of being refused for them and
///   describing the object then.
pub(crate) async fn plan(
    client: &SalesforceClient,
    org: &OrgPlan,
    table: &TableDef,
    since: Option<Cursor>,
    has_previous: bool,
    (scope, settings): (Option<&UserScope>, Option<&String>),
    now_millis: i64,
) -> Result<ReadPlan, OrgError> {
    let since = since.filter(|c| has_previous && (table.activity.is_none() || c.activity.is_some()));
    let since = match since {
        Some(cursor) if cursor.scope.as_ref() != settings => {
            tracing::info!(org = %org.name, table = table.name,
                "the scope settings are new: reading the table again whole");
            None
        }
        other => other,
    };
    let (mut calls, mut still_missing) = (0, Vec::new());
    let since = match since {
        Some(cursor) if !cursor.missing.is_empty() => {
            let counted = std::sync::atomic::AtomicU64::new(0);
            let fields: Vec<&str> = cursor.missing.iter().map(String::as_str).collect();
            still_missing = client.missing_fields_counted(table.object, &fields, &counted).await?;
            calls = counted.into_inner();
            match still_missing.len() < cursor.missing.len() {
                true => {
                    tracing::info!(org = %org.name, table = table.name,
                        "fields missing before are readable now: reading the table again whole");
                    None
                }
                false => Some(cursor),
            }
        }
        other => other,
    };
    let window = Window { since: since.as_ref(), overlap: org.incremental_overlap, now_millis };
    let query = table_query(table, &still_missing, window, scope.and_then(UserScope::soql_condition));
    Ok(ReadPlan { since, query, calls })
}

/// The time a read covers: the changes since a cursor (less the overlap), or every row.
#[derive(Clone, Copy)]
struct Window<'a> {
    since: Option<&'a Cursor>,
    overlap: Duration,
    now_millis: i64,
}

/// The table's query, without the fields `missing`: ordered by Id (so that a lost cursor resumes
/// after the last row received), the table's own condition and recent days, then the changes
/// since the cursor, or on a full read the users' scope (`scope`).
fn table_query(table: &TableDef, missing: &[String], window: Window<'_>, scope: Option<String>) -> SoqlQuery {
    let fields = table.soql_fields().into_iter().filter(|f| !missing.iter().any(|m| m == f));
    let mut query = SoqlQuery::new(table.object, fields).order_by("Id");
    if let Some(condition) = table.condition {
        query = query.filter(condition);
    }
    if let Some((field, days)) = table.recent {
        let from = chrono::DateTime::from_timestamp_millis(window.now_millis - i64::from(days) * 86_400_000);
        let day = from.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "1970-01-01".into());
        query = query.filter(format!("{field} >= {day}"));
    }
    let Some(cursor) = window.since else {
        // On a full read Salesforce leaves out most unwanted users. An incremental read asks for
        // every changed user, so that one who left the scope is removed from the table too.
        return match scope {
            Some(scope) => query.filter(scope),
            None => query,
        };
    };
    // Rows committed late can carry a SystemModstamp a little behind the newest one seen.
    let overlap = window.overlap.as_millis() as i64;
    let changed = format!("SystemModstamp >= {}", soql::datetime(cursor.system_modstamp - overlap));
    query.filter(match (table.activity, cursor.activity) {
        // A login moves LastLoginDate but not (reliably) SystemModstamp: ask for both. A login
        // does not move a user into or out of the scope (a new profile or company is an edit,
        // which moves SystemModstamp): the logins of users out of it (a customer community's,
        // night after night) are not asked for.
        (Some(field), Some(at)) => {
            let logins = format!("{field} >= {}", soql::datetime(at - overlap));
            match scope {
                Some(scope) => format!("{changed} OR ({logins} AND {scope})"),
                None => format!("{changed} OR {logins}"),
            }
        }
        _ => changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfetl_transform::tables::{PERMISSION_SET_LICENSE_ASSIGNMENTS, USERS};

    const SCOPE: &str = "UserType NOT IN ('powerpartner')";
    /// 2026-11-30T00:00:00Z, and a minute.
    const NIGHT: i64 = 1_795_996_800_000;
    const MINUTE: i64 = 60_000;

    fn cursor(activity: Option<i64>) -> Cursor {
        Cursor { system_modstamp: NIGHT, id: "005000000000001AAA".into(), activity, missing: vec![], scope: None }
    }

    fn window(since: Option<&Cursor>) -> Window<'_> {
        Window { since, overlap: Duration::from_secs(60), now_millis: NIGHT }
    }

    fn where_clause(query: &SoqlQuery) -> String {
        let text = query.to_string();
        assert!(text.ends_with(" ORDER BY Id"), "{text}");
        let (_, conditions) = text.split_once(" WHERE ").unwrap_or((&text, ""));
        conditions.trim_end_matches(" ORDER BY Id").to_string()
    }

    /// A full read of the users asks Salesforce to leave out those out of the scope; an
    /// incremental one asks for every edit (a user may have left the scope) but only the logins
    /// of users in it, both from a minute before the cursor.
    #[test]
    fn the_scope_bounds_a_full_read_and_only_the_logins_of_an_incremental_one() {
        let full = table_query(&USERS, &[], window(None), Some(SCOPE.into()));
        assert_eq!(where_clause(&full), SCOPE);
        let since = cursor(Some(NIGHT + MINUTE));
        let changes = table_query(&USERS, &[], window(Some(&since)), Some(SCOPE.into()));
        assert_eq!(
            where_clause(&changes),
            format!(
                "SystemModstamp >= {} OR (LastLoginDate >= {} AND {SCOPE})",
                soql::datetime(NIGHT - MINUTE),
                soql::datetime(NIGHT)
            )
        );
        let everyone = table_query(&USERS, &[], window(Some(&since)), None);
        assert!(where_clause(&everyone).ends_with(&format!("OR LastLoginDate >= {}", soql::datetime(NIGHT))));
    }

    /// A cursor without the newest login (written before the table had one) asks for edits only;
    /// a table without an activity field too.
    #[test]
    fn only_a_cursor_with_the_newest_login_asks_for_logins() {
        let edits = format!("SystemModstamp >= {}", soql::datetime(NIGHT - MINUTE));
        let since = cursor(None);
        assert_eq!(where_clause(&table_query(&USERS, &[], window(Some(&since)), None)), edits);
        let assignments = table_query(&PERMISSION_SET_LICENSE_ASSIGNMENTS, &[], window(Some(&since)), None);
        assert_eq!(where_clause(&assignments), edits);
    }

    /// The fields an org still lacks are left out of the query, and only those.
    #[test]
    fn missing_fields_are_left_out() {
        let missing = vec!["Department".to_string(), "CountryCode".to_string()];
        let query = table_query(&USERS, &missing, window(None), None);
        let asked: Vec<String> = USERS.soql_fields().into_iter().map(String::from).collect();
        let expected: Vec<&String> = asked.iter().filter(|f| !missing.contains(f)).collect();
        assert_eq!(query.fields.iter().collect::<Vec<_>>(), expected);
        assert_eq!(query.fields.len() + 2, asked.len());
    }
}
