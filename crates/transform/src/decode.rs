//! Records straight into Arrow columns: a REST page's JSON is read once, each field's value
//! appended to its column as it is parsed (no map per record, no string per value); a Bulk
//! result set's CSV rows are appended by their header's field paths.
//!
//! Each table's field paths are laid out once as a tree (`Profile` -> `UserLicense` -> `Name`),
//! so a nested parent is followed as it is parsed. Salesforce sends fields in the order they
//! were selected (salesforce-api.md section 2): each key is first compared with the one after
//! the last found, and only searched for when that guess fails (an org without an optional
//! field, or a server that orders them otherwise).

use crate::batch::{Columns, Value};
use crate::companies::CompanyMatcher;
use crate::error::Result;
use crate::tables::{Source, TableDef};
use arrow::record_batch::RecordBatch;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::sync::Arc;

/// Decodes one table's records into batches of its schema; cheap to clone.
#[derive(Clone)]
pub struct TableDecoder {
    layout: Arc<Layout>,
    extracted_at: i64,
}

/// One page decoded: its records counted, and their batch or the first value that did not fit.
#[derive(Debug)]
pub struct DecodedPage {
    pub rows: usize,
    pub batch: Result<RecordBatch>,
}

struct Layout {
    table: &'static TableDef,
    root: Node,
    companies: CompanyMatcher,
}

/// The key of the object Salesforce adds to each record and parent (`type`, `url`).
const ATTRIBUTES: &str = "attributes";

/// The fields of one object (the record, or a parent) that columns read.
#[derive(Default)]
struct Node {
    names: Vec<&'static str>,
    slots: Vec<Slot>,
    /// The parents' fields, by [`Slot::Parent`].
    parents: Vec<Node>,
}

#[derive(Clone, Copy)]
enum Slot {
    Leaf(Leaf),
    Parent(usize),
}

/// Where a field's value goes.
#[derive(Clone, Copy)]
enum Leaf {
    Column(usize),
    /// `CompanyName`: its own column (when the table has one) and the matched company's.
    Company {
        column: Option<usize>,
        company: usize,
    },
}

impl Node {
    /// The slot of field `name`, trying the one after the last found first.
    fn find(&self, name: &str, hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|n| *n == name) {
            return Some(hint);
        }
        // Every record and parent object starts with `attributes` (its type and URL), which no
        // column reads (no Salesforce field has that name): a search of every name for it, per
        // object, was most of the key lookups' time.
        if name == ATTRIBUTES {
            return None;
        }
        self.names.iter().position(|n| *n == name)
    }

    /// The node of parent `name`, added if new.
    fn parent(&mut self, name: &'static str) -> &mut Node {
        let found = self.names.iter().zip(&self.slots).find_map(|(n, slot)| match slot {
            Slot::Parent(at) if *n == name => Some(*at),
            _ => None,
        });
        let at = found.unwrap_or_else(|| {
            self.names.push(name);
            self.slots.push(Slot::Parent(self.parents.len()));
            self.parents.push(Node::default());
            self.parents.len() - 1
        });
        &mut self.parents[at]
    }

    /// The leaf of a flat path (`Profile.UserLicense.Name`, as Bulk CSV headers name fields).
    fn leaf(&self, path: &str) -> Option<Leaf> {
        let (mut node, mut parts) = (self, path.split('.').peekable());
        while let Some(part) = parts.next() {
            match (node.slots[node.find(part, 0)?], parts.peek()) {
                (Slot::Parent(at), Some(_)) => node = &node.parents[at],
                (Slot::Leaf(leaf), None) => return Some(leaf),
                _ => return None,
            }
        }
        None
    }
}

impl TableDecoder {
    /// A decoder for `table`'s records, read at `extracted_at` (UTC millis), matching
    /// `CompanyName` against these legal entities.
    pub fn new(table: &'static TableDef, extracted_at: i64, companies: CompanyMatcher) -> TableDecoder {
        let mut root = Node::default();
        for (i, column) in table.columns.iter().enumerate() {
            if let Source::Field(path) = column.source {
                let mut node = &mut root;
                let mut parts = path.split('.').peekable();
                while let Some(part) = parts.next() {
                    if parts.peek().is_some() {
                        node = node.parent(part);
                    } else {
                        node.names.push(part);
                        node.slots.push(Slot::Leaf(Leaf::Column(i)));
                    }
                }
            }
        }
        if let Some(company) = table.columns.iter().position(|c| c.source == Source::Company) {
            match root.find("CompanyName", 0) {
                Some(at) => {
                    let column = match root.slots[at] {
                        Slot::Leaf(Leaf::Column(c)) => Some(c),
                        _ => None,
                    };
                    root.slots[at] = Slot::Leaf(Leaf::Company { column, company });
                }
                None => {
                    root.names.push("CompanyName");
                    root.slots.push(Slot::Leaf(Leaf::Company { column: None, company }));
                }
            }
        }
        TableDecoder { layout: Arc::new(Layout { table, root, companies }), extracted_at }
    }

    pub fn table(&self) -> &'static TableDef {
        self.layout.table
    }

    fn columns(&self, rows: usize) -> Columns<'_> {
        Columns::new(self.layout.table, self.extracted_at, &self.layout.companies, rows)
    }

    /// A REST page's `records` array. Only malformed JSON is an error here; a value that does
    /// not fit its column is the page's `batch` error.
    pub fn decode_json<'de, D: Deserializer<'de>>(&self, records: D) -> Result<DecodedPage, D::Error> {
        let mut columns = self.columns(2000);
        records.deserialize_seq(RecordsVisitor { root: &self.layout.root, columns: &mut columns })?;
        Ok(DecodedPage { rows: columns.rows(), batch: columns.finish() })
    }

    /// [`TableDecoder::decode_json`] of a JSON array held in text.
    pub fn decode_json_text(&self, records: &str) -> serde_json::Result<DecodedPage> {
        let mut deserializer = serde_json::Deserializer::from_str(records);
        let page = self.decode_json(&mut deserializer)?;
        deserializer.end()?;
        Ok(page)
    }

    /// Bulk API CSV rows: `header` names each value's field path; every value is text, and an
    /// empty one is null. Fields the table does not read are skipped.
    pub fn decode_text_rows<'h, 'r, R>(
        &self,
        header: impl IntoIterator<Item = &'h str>,
        rows: impl ExactSizeIterator<Item = R>,
    ) -> DecodedPage
    where
        R: IntoIterator<Item = &'r str>,
    {
        let leaves: Vec<Option<Leaf>> = header.into_iter().map(|path| self.layout.root.leaf(path)).collect();
        let mut columns = self.columns(rows.len());
        for row in rows {
            for (leaf, text) in leaves.iter().zip(row) {
                if let Some(leaf) = leaf {
                    put(&mut columns, *leaf, if text.is_empty() { Value::Null } else { Value::Text(text) });
                }
            }
            columns.end_record();
        }
        DecodedPage { rows: columns.rows(), batch: columns.finish() }
    }
}

/// A field's value into its column (and, for `CompanyName`, the matched company's).
fn put(columns: &mut Columns<'_>, leaf: Leaf, value: Value<'_>) {
    match leaf {
        Leaf::Column(column) => columns.set(column, value),
        Leaf::Company { column, company } => {
            if let Some(column) = column {
                columns.set(column, value);
            }
            match value {
                Value::Text(name) => columns.set_company(company, Some(name)),
                Value::Null => columns.set_company(company, None),
                other => columns.reject("company_name", other, "text"),
            }
        }
    }
}

/// The `records` array: one record after another into the columns.
struct RecordsVisitor<'a, 't> {
    root: &'a Node,
    columns: &'a mut Columns<'t>,
}

impl<'de> Visitor<'de> for RecordsVisitor<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ObjectSeed { node: self.root, name: "record", columns: &mut *self.columns })?
            .is_some()
        {
            self.columns.end_record();
        }
        Ok(())
    }
}

/// A record or a parent object (or null: an empty lookup), its fields into their columns.
struct ObjectSeed<'a, 't> {
    node: &'a Node,
    /// The relationship's name, for an error.
    name: &'static str,
    columns: &'a mut Columns<'t>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or null")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut hint = 0;
        while let Some(found) = map.next_key_seed(KeySeed { node: self.node, hint })? {
            let Some(at) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            hint = at + 1;
            let columns = &mut *self.columns;
            match self.node.slots[at] {
                Slot::Leaf(leaf) => map.next_value_seed(ValueSeed { columns, leaf })?,
                Slot::Parent(parent) => {
                    let node = &self.node.parents[parent];
                    map.next_value_seed(ObjectSeed { node, name: self.node.names[at], columns })?
                }
            }
        }
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.columns.reject(self.name, Value::Bool(v), "an object");
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.columns.reject(self.name, Value::Int(v), "an object");
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.columns.reject(self.name, Value::Float(v as f64), "an object");
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.columns.reject(self.name, Value::Float(v), "an object");
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.columns.reject(self.name, Value::Text(v), "an object");
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.columns.reject(self.name, Value::Text("[...]"), "an object");
        Ok(())
    }
}

/// A key, as the slot it fills (`None`: a field no column reads, such as `attributes`).
struct KeySeed<'a> {
    node: &'a Node,
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, name: &str) -> Result<Option<usize>, E> {
        Ok(self.node.find(name, self.hint))
    }
}

/// A field's value into its leaf's columns.
struct ValueSeed<'a, 't> {
    columns: &'a mut Columns<'t>,
    leaf: Leaf,
}

impl ValueSeed<'_, '_> {
    fn put(self, value: Value<'_>) {
        put(self.columns, self.leaf, value);
    }

    /// An object or array where a field's value belongs.
    fn unexpected(self, what: &'static str) {
        let name = match self.leaf {
            Leaf::Column(column) | Leaf::Company { column: Some(column), .. } => self.columns.column_name(column),
            Leaf::Company { column: None, .. } => "company_name",
        };
        self.columns.reject(name, Value::Text(what), "a single value");
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.put(Value::Null);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.put(Value::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.put(Value::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.put(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.put(Value::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.put(Value::Text(v));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.unexpected("{...}");
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.unexpected("[...]");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{PROFILES, USERS};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMillisecondType;

    fn decode(table: &'static TableDef, json: &str) -> RecordBatch {
        let decoder = TableDecoder::new(table, 7, CompanyMatcher::new(&["Acme Corp".into()]));
        let page = decoder.decode_json_text(json).unwrap_or_else(|e| panic!("{e}"));
        page.batch.unwrap_or_else(|e| panic!("{e}"))
    }

    fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
        let column = batch.column_by_name(column).unwrap_or_else(|| panic!("{column}")).as_string::<i32>();
        column.is_valid(row).then(|| column.value(row).to_string())
    }

    #[test]
    fn follows_parents_keeps_nulls_and_skips_attributes() {
        let batch = decode(
            &PROFILES,
            r#"[{"attributes":{"type":"Profile","url":"/x"},"Id":"00e1","Name":"Standard User","UserType":"Standard",
                 "UserLicenseId":"1001","UserLicense":{"attributes":{"type":"UserLicense"},"Name":"Salesforce"},
                 "SystemModstamp":"2024-01-15T10:30:00.000+0000"},
                {"attributes":{"type":"Profile"},"Id":"00e2","Name":"Zoë's \"profile\"","UserType":null,
                 "UserLicenseId":null,"UserLicense":null,"SystemModstamp":"2024-01-15T10:30:00.000+0000"}]"#,
        );
        assert_eq!(batch.schema(), PROFILES.schema());
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(text(&batch, "user_license_name", 0).as_deref(), Some("Salesforce"));
        assert_eq!(text(&batch, "user_license_name", 1), None);
        assert_eq!(text(&batch, "name", 1).as_deref(), Some("Zoë's \"profile\""));
        let stamps = batch.column(5).as_primitive::<TimestampMillisecondType>();
        assert_eq!(stamps.value(0), 1_705_314_600_000);
        let extracted = batch.column(6).as_primitive::<TimestampMillisecondType>();
        assert_eq!((extracted.value(0), extracted.value(1)), (7, 7));
    }

    /// The decoder skips every `attributes` key unread ([`Node::find`]): no column may read a
    /// field of that name, at any depth.
    #[test]
    fn no_column_reads_a_field_named_attributes() {
        for table in crate::tables::ALL {
            for column in table.columns {
                if let Source::Field(path) = column.source {
                    assert!(!path.split('.').any(|part| part == ATTRIBUTES), "{}.{}", table.name, column.name);
                }
            }
        }
    }

    #[test]
    fn fields_in_any_order_missing_or_unknown_land_in_their_columns() {
        // An org without the optional fields, a server that orders fields otherwise, and a field
        // no column reads.
        let batch = decode(
            &USERS,
            r#"[{"Username":"a@x","Id":"005A","Unknown":{"deep":[1,2]},"IsActive":true,"CompanyName":" acme corp ",
                 "Profile":{"UserLicense":{"Name":"Salesforce","Id":"100A"},"Name":"Std"}},
                {"Id":"005B","CompanyName":"Other","Profile":null,"IsActive":false}]"#,
        );
        assert_eq!(text(&batch, "user_id", 0).as_deref(), Some("005A"));
        assert_eq!(text(&batch, "username", 0).as_deref(), Some("a@x"));
        assert_eq!(text(&batch, "user_license_id", 0).as_deref(), Some("100A"));
        assert_eq!(text(&batch, "profile_name", 0).as_deref(), Some("Std"));
        assert_eq!(text(&batch, "company", 0).as_deref(), Some("Acme Corp"));
        assert_eq!(text(&batch, "company_name", 0).as_deref(), Some(" acme corp "));
        assert_eq!(
            (text(&batch, "company", 1), text(&batch, "profile_name", 1), text(&batch, "email", 1)),
            (None, None, None)
        );
        assert_eq!(batch.column_by_name("is_active").map(|c| c.as_boolean().value(1)), Some(false));
    }

    #[test]
    fn bulk_csv_text_reads_like_rest_json() {
        let rest = decode(
            &USERS,
            r#"[{"Id":"005A","IsActive":true,"Profile":{"Name":"Std","UserLicense":{"Name":"Salesforce"}},
                 "LastLoginDate":"2024-01-15T10:30:00.000+0000","CompanyName":"Acme Corp"}]"#,
        );
        let decoder = TableDecoder::new(&USERS, 7, CompanyMatcher::new(&["Acme Corp".into()]));
        let header =
            ["Id", "IsActive", "Profile.Name", "Profile.UserLicense.Name", "LastLoginDate", "CompanyName", "Other"];
        let row = ["005A", "true", "Std", "Salesforce", "2024-01-15T10:30:00.000+0000", "Acme Corp", "x"];
        let bulk = decoder.decode_text_rows(header, [row].into_iter());
        assert_eq!(bulk.rows, 1);
        assert_eq!(bulk.batch.unwrap_or_else(|e| panic!("{e}")), rest);
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_column_without_failing_the_parse() {
        let decoder = TableDecoder::new(&USERS, 0, CompanyMatcher::default());
        let page = decoder.decode_json_text(r#"[{"Id":"005x","IsActive":"yes"},{"Id":"005y","Name":{"a":1}}]"#);
        let page = page.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(page.rows, 2);
        let err = page.batch.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("users.is_active") && err.contains("\"yes\""), "{err}");
        let page = decoder.decode_json_text(r#"[{"Id":"005y","Name":{"a":1}}]"#).unwrap_or_else(|e| panic!("{e}"));
        let err = page.batch.map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("users.name"), "{err}");
        // Malformed JSON is the page's own error (retried as garbled).
        assert!(decoder.decode_json_text(r#"[{"Id":"005x""#).is_err());
    }
}
