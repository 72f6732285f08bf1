//! The simulated org's records: one table per sObject, rows in field order, Ids indexed.

use crate::objects::{self, ObjectDef};
use crate::value::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub type Row = Vec<Value>;

/// One end of a range of Ids, and whether it is in the range.
pub type IdBound<'a> = Option<(&'a str, bool)>;

/// All records of one sObject type.
#[derive(Debug, Clone)]
pub struct Table {
    pub def: &'static ObjectDef,
    pub rows: Vec<Row>,
    by_id: HashMap<Arc<str>, usize>,
    /// Whether the rows are in increasing order of their Ids, byte by byte (as generated and
    /// added): a query can then find a range of Ids as Salesforce's Id index does.
    ids_ascending: bool,
}

impl Table {
    pub fn new(def: &'static ObjectDef) -> Table {
        Table { def, rows: Vec::new(), by_id: HashMap::new(), ids_ascending: true }
    }

    pub fn push(&mut self, row: Row) {
        debug_assert_eq!(row.len(), self.def.fields.len(), "row of {}", self.def.name);
        let id = row.first().and_then(Value::as_str);
        let last = self.rows.last().and_then(|last| last.first()).and_then(Value::as_str);
        self.ids_ascending &= match (last, id) {
            (_, None) => false,
            (None, Some(_)) => self.rows.is_empty(),
            (Some(last), Some(id)) => last < id,
        };
        if let Some(Value::Str(id)) = row.first() {
            self.by_id.insert(id.clone(), self.rows.len());
        }
        self.rows.push(row);
    }

    /// Whether the rows are in increasing order of their Ids, byte by byte.
    pub fn in_id_order(&self) -> bool {
        self.ids_ascending
    }

    /// The rows whose Id is after `after` and before `before` (each end included or not), when
    /// the rows are in Id order; `None` otherwise.
    pub fn id_window(&self, after: IdBound, before: IdBound) -> Option<std::ops::Range<usize>> {
        if !self.ids_ascending {
            return None;
        }
        fn key(row: &Row) -> &str {
            row.first().and_then(Value::as_str).unwrap_or_default()
        }
        let start = match after {
            Some((from, inclusive)) => {
                self.rows.partition_point(|row| if inclusive { key(row) < from } else { key(row) <= from })
            }
            None => 0,
        };
        let end = match before {
            Some((to, inclusive)) => {
                self.rows.partition_point(|row| if inclusive { key(row) <= to } else { key(row) < to })
            }
            None => self.rows.len(),
        };
        Some(start..end.max(start))
    }

    pub fn by_id(&self, id: &str) -> Option<&Row> {
        self.by_id.get(id).map(|&i| &self.rows[i])
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Removes the rows `keep` rejects and rebuilds the Id index.
    pub fn retain(&mut self, mut keep: impl FnMut(&Row) -> bool) {
        // Rows keep their order.
        self.rows.retain(|row| keep(row));
        self.by_id = self
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| row.first().and_then(Value::as_str).map(|id| (Arc::from(id), i)))
            .collect();
    }

    /// The index of `field` (by name) in each row; panics only on a field name this crate misspelt.
    pub fn column(&self, field: &str) -> usize {
        self.def.field_index(field).unwrap_or_else(|| panic!("{}.{field}", self.def.name))
    }

    /// The value of `field` (by name) in row `i`; panics only on a field name this crate misspelt.
    pub fn get(&self, i: usize, field: &str) -> &Value {
        &self.rows[i][self.column(field)]
    }

    pub fn set(&mut self, i: usize, field: &str, value: Value) {
        let idx = self.column(field);
        self.ids_ascending &= idx != 0;
        self.rows[i][idx] = value;
    }
}

/// Every table of one org. Cloned (copy-on-write behind an `Arc`) when the org is changed while
/// query cursors still read the previous state, as Salesforce cursors do. Each table is shared
/// between the clones until it is changed: a night's edits to `User` copy that table, not the
/// millions of assignments beside it, while an abandoned cursor keeps the old state for the 15
/// minutes of its idle timeout (a 1M-user simulator otherwise grew by a whole org, about 2.4 GB,
/// per night and incremental run, and was killed for lack of memory after ten).
#[derive(Debug, Clone)]
pub struct OrgData {
    tables: HashMap<&'static str, Arc<Table>>,
}

impl OrgData {
    pub fn new() -> OrgData {
        OrgData { tables: objects::ALL.iter().map(|def| (def.name, Arc::new(Table::new(def)))).collect() }
    }

    pub fn table(&self, object: &str) -> &Table {
        &self.tables[objects::by_name(object).map_or(object, |o| o.name)]
    }

    pub fn table_mut(&mut self, object: &str) -> &mut Table {
        let name = objects::by_name(object).map_or(object, |o| o.name);
        Arc::make_mut(self.tables.get_mut(name).unwrap_or_else(|| panic!("no table {object}")))
    }
}

impl OrgData {
    /// The Ids of the users whose UserLogin is frozen: active, but refused at login.
    pub fn frozen_users(&self) -> std::collections::HashSet<&str> {
        let logins = self.table("UserLogin");
        let (user, frozen) = (logins.column("UserId"), logins.column("IsFrozen"));
        logins.rows.iter().filter(|row| row[frozen] == Value::Bool(true)).filter_map(|row| row[user].as_str()).collect()
    }

    /// Whether `user_id`'s UserLogin is frozen. Asked at every login: one pass over the logins,
    /// no set of them (which made a login at 100k users cost the simulator 5-70 ms).
    pub fn is_frozen(&self, user_id: &str) -> bool {
        let logins = self.table("UserLogin");
        let (user, frozen) = (logins.column("UserId"), logins.column("IsFrozen"));
        logins.rows.iter().any(|row| row[frozen] == Value::Bool(true) && row[user].as_str() == Some(user_id))
    }
}

impl Default for OrgData {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_copy_shares_every_table_it_did_not_change() {
        let mut before = OrgData::new();
        let def = objects::by_name("User").expect("User is modelled");
        let mut row = vec![Value::Null; def.fields.len()];
        row[0] = Value::str("005000000000001AAA");
        before.table_mut("User").push(row);
        let mut after = before.clone();
        after.table_mut("User").set(0, "Title", Value::str("Changed"));
        assert!(std::ptr::eq(before.table("PermissionSetLicenseAssign"), after.table("PermissionSetLicenseAssign")));
        assert!(!std::ptr::eq(before.table("User"), after.table("User")));
        assert_eq!(before.table("User").get(0, "Title"), &Value::Null, "the snapshot keeps its state");
        assert_eq!(after.table("User").get(0, "Title"), &Value::str("Changed"));
    }
}
