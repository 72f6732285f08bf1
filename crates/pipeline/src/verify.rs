//! Deletions an incremental read cannot see. A removed license assignment leaves no row with a
//! newer `SystemModstamp` (it is gone, not in the recycle bin), so a table read by its changes
//! keeps it. After the changes are merged, the table's rows are counted against Salesforce's
//! `SELECT COUNT()`: new and changed rows are all read, so the local count can only be higher,
//! by the deletions missed. Equal counts (the usual case) cost one API call. Otherwise each
//! group's rows (each license's assignments) are counted the same way, and the groups whose
//! counts differ are read again whole. `COUNT()` counts rows, whatever a license's
//! `UsedLicenses` counts (active users only or not: salesforce-api.md section 7 says it differs by
//! license), so the check does not depend on that reading.

use crate::OrgError;
use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use sfetl_extract::SalesforceClient;
use sfetl_extract::soql::{SoqlQuery, quote};
use std::collections::{BTreeSet, HashMap};

/// Rows held per group (the group column's value; `""` for none).
pub type GroupCounts = HashMap<String, u64>;

/// Adds a batch's rows to the counts.
pub fn count_groups(counts: &mut GroupCounts, batch: &RecordBatch, group: usize) {
    let groups = batch.column(group).as_string::<i32>();
    for row in 0..batch.num_rows() {
        count_row(counts, groups, row);
    }
}

/// Adds one row to the count of its group (`""` for none). The group's name is copied only for
/// a group not counted yet: a scan counts every row of a file into a few groups.
pub fn count_row(counts: &mut GroupCounts, groups: &StringArray, row: usize) {
    let key = if groups.is_valid(row) { groups.value(row) } else { "" };
    match counts.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

/// The groups to read again (or the whole table), and the API calls spent finding them.
#[derive(Debug, Default)]
pub struct Recount {
    pub stale: BTreeSet<String>,
    /// The totals differ but no group's count does (rows held in no group, say): read it all.
    pub everything: bool,
    pub calls: u64,
}

/// Compares the rows held with Salesforce's counts: nothing stale when the totals agree, else
/// the groups whose counts differ (or, if none does, the whole table: the rows moved in a way
/// the counts per group cannot place).
///
/// `counted`: Salesforce's total, when it was asked already (with the table's changes, in one
/// composite call).
pub async fn stale_groups(
    client: &SalesforceClient,
    object: &str,
    group_field: &str,
    held: &GroupCounts,
    counted: Option<u64>,
) -> Result<Recount, OrgError> {
    let mut calls = 0;
    let total: u64 = held.values().sum();
    let salesforce_total = match counted {
        Some(counted) => counted,
        None => count_rows(client, object, None, &mut calls).await?,
    };
    if salesforce_total == total {
        return Ok(Recount { stale: BTreeSet::new(), everything: false, calls });
    }
    let mut stale = BTreeSet::new();
    for (group, rows) in held {
        let filter = if group.is_empty() {
            format!("{group_field} = null")
        } else {
            format!("{group_field} = {}", quote(group))
        };
        if count_rows(client, object, Some(filter), &mut calls).await? != *rows {
            stale.insert(group.clone());
        }
    }
    let everything = stale.is_empty();
    Ok(Recount { stale, everything, calls })
}

/// `SELECT COUNT() FROM object`: the whole table's count.
pub fn count_query(object: &str) -> SoqlQuery {
    SoqlQuery::new(object, ["COUNT()"])
}

/// `SELECT COUNT() FROM object [WHERE filter]`, adding the calls it took to `calls`.
async fn count_rows(
    client: &SalesforceClient,
    object: &str,
    filter: Option<String>,
    calls: &mut u64,
) -> Result<u64, OrgError> {
    let mut query = count_query(object);
    if let Some(filter) = filter {
        query = query.filter(filter);
    }
    let mut stream = client.query(&query);
    let page = stream.next_page().await?;
    *calls += stream.api_calls();
    Ok(page.map_or(0, |p| p.total_size))
}

/// The SOQL conditions that select the stale groups' rows, a hundred groups each.
pub fn group_filters(group_field: &str, stale: &BTreeSet<String>) -> Vec<String> {
    let named: Vec<&String> = stale.iter().filter(|g| !g.is_empty()).collect();
    let mut filters: Vec<String> = named
        .chunks(100)
        .map(|chunk| {
            let quoted: Vec<String> = chunk.iter().map(|g| quote(g)).collect();
            format!("{group_field} IN ({})", quoted.join(", "))
        })
        .collect();
    if stale.contains("") {
        filters.push(format!("{group_field} = null"));
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_groups_are_asked_a_hundred_at_a_time() {
        let stale: BTreeSet<String> = (0..150).map(|i| format!("0PL{i:03}")).chain([String::new()]).collect();
        let filters = group_filters("PermissionSetLicenseId", &stale);
        assert_eq!(filters.len(), 3);
        assert!(filters[0].starts_with("PermissionSetLicenseId IN ('0PL000', '0PL001'"), "{}", filters[0]);
        assert_eq!(filters[0].matches(", ").count(), 99);
        assert_eq!(filters[2], "PermissionSetLicenseId = null");
    }
}
