//! A parsed query checked against the org's objects (INVALID_TYPE, INVALID_FIELD) and run.

use super::SoqlError;
use super::lexer::{LIKE_PERCENT, LIKE_UNDERSCORE};
use super::parser::{Expr, FieldRef, Literal, Query, Select};
use crate::objects::{self, FieldAccess, ObjectDef};
use crate::store::{IdBound, OrgData, Table};
use crate::value::{FieldKind, Value};
use std::cmp::Ordering;

/// One step of a resolved field path: the field index in `object`.
#[derive(Debug, Clone)]
struct Step {
    object: &'static ObjectDef,
    field: usize,
}

/// A field path resolved to field indexes: every step but the last is a lookup field.
#[derive(Debug, Clone)]
pub struct Path(Vec<Step>);

impl Path {
    fn kind(&self) -> FieldKind {
        let last = &self.0[self.0.len() - 1];
        last.object.fields[last.field].kind
    }

    /// `Profile.UserLicense.Name`: relationship names, then the field, as Salesforce spells them.
    fn display_name(&self) -> String {
        let mut parts: Vec<&str> = self.0[..self.0.len() - 1]
            .iter()
            .map(|s| s.object.fields[s.field].relationship.map_or("", |r| r.0))
            .collect();
        parts.push(self.name());
        parts.join(".")
    }

    fn name(&self) -> &'static str {
        let last = &self.0[self.0.len() - 1];
        last.object.fields[last.field].name
    }
}

/// The selected fields as Salesforce nests them: parents become objects, in first-use order.
#[derive(Debug, Clone)]
pub enum SelNode {
    Field { index: usize, name: &'static str },
    Parent { name: &'static str, lookup: usize, object: &'static ObjectDef, children: Vec<SelNode> },
}

#[derive(Debug, Clone)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare(Path, &'static str, Value),
    In(Path, Vec<Value>, bool),
    Like(Path, String),
}

/// A query ready to run against an org.
#[derive(Debug, Clone)]
pub struct Plan {
    pub object: &'static ObjectDef,
    /// `None` for `SELECT COUNT()`.
    pub selection: Option<Vec<SelNode>>,
    filter: Option<Filter>,
    order: Vec<(Path, bool, bool)>,
    /// The selected fields flat, in query order, with Salesforce's names (`Profile.Name`): the
    /// columns of a Bulk API CSV.
    pub columns: Vec<(String, Path)>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub has_order_by: bool,
    /// How Ids compare (the org's setting; Salesforce: byte by byte).
    pub ids: IdOrder,
}

/// How an org compares Ids in `ORDER BY Id` and `Id > '...'`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdOrder {
    /// Byte by byte, as Salesforce does: its PK chunking cuts at mixed-case Ids (Bulk API
    /// Developer Guide, "Use PK Chunking to Extract Large Data Sets").
    #[default]
    Bytes,
    /// Without regard to case, as SOQL compares text: not Salesforce's behaviour as documented,
    /// simulated to prove a client right should an org answer so.
    IgnoringCase,
}

/// Checks `query` against the objects and the fields `access` lets the user see.
pub fn plan(soql: &str, query: &Query, access: &FieldAccess) -> Result<Plan, SoqlError> {
    let object = objects::by_name(&query.object).ok_or_else(|| SoqlError {
        code: "INVALID_TYPE",
        message: super::diagram(
            soql,
            query.object_pos,
            &format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to \
                 append the '__c' after the entity name. Please reference your WSDL or the describe call for \
                 the appropriate names.",
                query.object
            ),
        ),
    })?;
    let mut columns = Vec::new();
    let selection = match &query.select {
        Select::Count => None,
        Select::Fields(fields) => {
            let mut nodes = Vec::new();
            for field in fields {
                let path = resolve(soql, object, field, access)?;
                columns.push((path.display_name(), path.clone()));
                if !insert(&mut nodes, &path.0) {
                    return Err(SoqlError {
                        code: "MALFORMED_QUERY",
                        message: format!("duplicate field selected: {}", field.path.join(".")),
                    });
                }
            }
            Some(nodes)
        }
    };
    let filter = query.filter.as_ref().map(|e| filter(soql, object, e, access)).transpose()?;
    let order = query
        .order_by
        .iter()
        .map(|k| Ok((resolve(soql, object, &k.field, access)?, k.descending, k.nulls_last)))
        .collect::<Result<_, SoqlError>>()?;
    Ok(Plan {
        object,
        selection,
        filter,
        order,
        columns,
        limit: query.limit,
        offset: query.offset,
        has_order_by: !query.order_by.is_empty(),
        ids: IdOrder::Bytes,
    })
}

fn resolve(soql: &str, base: &'static ObjectDef, field: &FieldRef, access: &FieldAccess) -> Result<Path, SoqlError> {
    let mut object = base;
    let mut steps = Vec::new();
    let (last, parents) = field.path.split_last().unwrap_or((&field.path[0], &[]));
    for rel in parents {
        // A lookup field the user cannot see hides its relationship too.
        let visible = |&(lookup, _): &(usize, &str)| access.visible(object.name, object.fields[lookup].name);
        let (lookup, target) = object.relationship(rel).filter(visible).ok_or_else(|| {
            SoqlError::invalid_field(
                soql,
                field.pos,
                format!(
                    "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom \
                     relationship, be sure to append the '__r' after the custom relationship name. Please \
                     reference your WSDL or the describe call for the appropriate names."
                ),
            )
        })?;
        steps.push(Step { object, field: lookup });
        object = objects::by_name(target).unwrap_or(object);
    }
    let index =
        object.field_index(last).filter(|&i| access.visible(object.name, object.fields[i].name)).ok_or_else(|| {
            SoqlError::invalid_field(
                soql,
                field.pos,
                format!(
                    "No such column '{last}' on entity '{}'. If you are attempting to use a custom field, be sure to \
                 append the '__c' after the custom field name. Please reference your WSDL or the describe call \
                 for the appropriate names.",
                    object.name
                ),
            )
        })?;
    steps.push(Step { object, field: index });
    Ok(Path(steps))
}

/// Adds a path to the selection tree; false when the field is already selected.
fn insert(nodes: &mut Vec<SelNode>, steps: &[Step]) -> bool {
    let step = &steps[0];
    let def = &step.object.fields[step.field];
    if steps.len() == 1 {
        if nodes.iter().any(|n| matches!(n, SelNode::Field { index, .. } if *index == step.field)) {
            return false;
        }
        nodes.push(SelNode::Field { index: step.field, name: def.name });
        return true;
    }
    let (rel, _) = def.relationship.unwrap_or(("", ""));
    let existing = nodes.iter_mut().find_map(|n| match n {
        SelNode::Parent { lookup, children, .. } if *lookup == step.field => Some(children),
        _ => None,
    });
    match existing {
        Some(children) => insert(children, &steps[1..]),
        None => {
            let mut children = Vec::new();
            insert(&mut children, &steps[1..]);
            nodes.push(SelNode::Parent { name: rel, lookup: step.field, object: steps[1].object, children });
            true
        }
    }
}

fn filter(soql: &str, object: &'static ObjectDef, expr: &Expr, access: &FieldAccess) -> Result<Filter, SoqlError> {
    let all = |terms: &[Expr]| terms.iter().map(|t| filter(soql, object, t, access)).collect::<Result<Vec<_>, _>>();
    Ok(match expr {
        Expr::And(terms) => Filter::And(all(terms)?),
        Expr::Or(terms) => Filter::Or(all(terms)?),
        Expr::Not(inner) => Filter::Not(Box::new(filter(soql, object, inner, access)?)),
        Expr::Compare { field, op, value } => {
            let path = resolve(soql, object, field, access)?;
            let value = typed(soql, field, &path, value)?;
            Filter::Compare(path, op, value)
        }
        Expr::In { field, values, negated } => {
            let path = resolve(soql, object, field, access)?;
            let values = values.iter().map(|v| typed(soql, field, &path, v)).collect::<Result<_, _>>()?;
            Filter::In(path, values, *negated)
        }
        Expr::Like { field, pattern } => Filter::Like(resolve(soql, object, field, access)?, pattern.to_lowercase()),
    })
}

/// A literal as a value of the field's type; Salesforce rejects quoted dates, unquoted strings...
fn typed(soql: &str, field: &FieldRef, path: &Path, literal: &Literal) -> Result<Value, SoqlError> {
    let kind = path.kind();
    let value = match (kind, literal) {
        (_, Literal::Null) => Some(Value::Null),
        (FieldKind::Id | FieldKind::Reference | FieldKind::String, Literal::Str(s)) => {
            Some(Value::str(s.replace(LIKE_PERCENT, "%").replace(LIKE_UNDERSCORE, "_")))
        }
        (FieldKind::Boolean, Literal::Bool(b)) => Some(Value::Bool(*b)),
        (FieldKind::Int, Literal::Number(n)) => Some(Value::Int(*n as i64)),
        (FieldKind::DateTime, Literal::DateTime(t)) => Some(Value::DateTime(*t)),
        (FieldKind::Date, Literal::Date(d)) => Some(Value::Date(*d)),
        _ => None,
    };
    value.ok_or_else(|| {
        let (type_name, quoted) = match kind {
            FieldKind::DateTime => ("dateTime", "should not be enclosed in quotes"),
            FieldKind::Date => ("date", "should not be enclosed in quotes"),
            FieldKind::Boolean => ("boolean", "should not be enclosed in quotes"),
            FieldKind::Int => ("double", "should not be enclosed in quotes"),
            _ => ("string", "should be enclosed in quotes"),
        };
        SoqlError::invalid_field(
            soql,
            field.pos,
            format!("value of filter criterion for field '{}' must be of type {type_name} and {quoted}", path.name()),
        )
    })
}

/// The value at a path from row `row` of the plan's object; `Null` through an empty lookup.
pub fn value_at<'d>(data: &'d OrgData, object: &'static ObjectDef, row: usize, path: &Path) -> &'d Value {
    value_in(data, data.table(object.name), row, path)
}

/// [`value_at`] with the object's table at hand: a query compares values of every row, and
/// finding the table by name for each one was a tenth of the simulator's time.
fn value_in<'d>(data: &'d OrgData, table: &'d Table, row: usize, path: &Path) -> &'d Value {
    let mut table = table;
    let mut row = &table.rows[row];
    for step in &path.0[..path.0.len() - 1] {
        let target = step.object.fields[step.field].relationship.map_or("", |r| r.1);
        let Some(id) = row[step.field].as_str() else { return &Value::Null };
        table = data.table(target);
        match table.by_id(id) {
            Some(parent) => row = parent,
            None => return &Value::Null,
        }
    }
    &row[path.0[path.0.len() - 1].field]
}

impl Plan {
    /// The first lower and upper bound the filter's terms set on the object's own Id (`Id >
    /// '…' AND Id <= '…'`), each with whether it is included; none unless Ids compare byte by
    /// byte, the order the rows are kept in.
    fn id_bounds(&self) -> (IdBound<'_>, IdBound<'_>) {
        let (mut after, mut before) = (None, None);
        if self.ids != IdOrder::Bytes {
            return (after, before);
        }
        let terms = match &self.filter {
            Some(Filter::And(terms)) => terms.iter().collect(),
            Some(term) => vec![term],
            None => Vec::new(),
        };
        for term in terms {
            let Filter::Compare(path, op, Value::Str(id)) = term else { continue };
            if path.0.len() != 1 || path.0[0].field != 0 || path.kind() != FieldKind::Id {
                continue;
            }
            let id: &str = id;
            match *op {
                ">" => after = after.or(Some((id, false))),
                ">=" => after = after.or(Some((id, true))),
                "<" => before = before.or(Some((id, false))),
                "<=" => before = before.or(Some((id, true))),
                "=" => (after, before) = (after.or(Some((id, true))), before.or(Some((id, true)))),
                _ => {}
            }
        }
        (after, before)
    }

    /// Row indexes of the plan's object that match and the user `sees`, in the query's order,
    /// after OFFSET and LIMIT.
    pub fn run(&self, data: &OrgData, sees: impl Fn(usize) -> bool) -> Vec<u32> {
        let table = data.table(self.object.name);
        // Salesforce finds a range of Ids by its Id index (Id is indexed on every object: "Working
        // with Very Large SOQL Queries", SOQL and SOSL Reference; PK chunking's ranges rely on it:
        // Bulk API Developer Guide, "Use PK Chunking to Extract Large Data Sets"); so does the
        // simulator when its rows are in Id order. Only the cost differs: every term is still
        // checked on each row, so the rows are the same either way.
        let (after, before) = self.id_bounds();
        let window = table.id_window(after, before).unwrap_or(0..table.rows.len());
        let found = |&i: &usize| sees(i) && self.filter.as_ref().is_none_or(|f| matches(data, table, i, f, self.ids));
        // Ordered by Id alone, rows in Id order (byte by byte, as the index keeps them) come out
        // of the index so: nothing to sort. `ORDER BY Id DESC LIMIT 1` reads it from the end.
        let by_id = match self.order.as_slice() {
            [(path, descending, _)] if path.0.len() == 1 && path.0[0].field == 0 && path.kind() == FieldKind::Id => {
                Some(*descending).filter(|_| self.ids == IdOrder::Bytes && table.in_id_order())
            }
            _ => None,
        };
        let mut rows: Vec<u32> = match (by_id, self.limit) {
            // Walking the index, the rows past OFFSET + LIMIT are never looked at: the object's
            // last Id (`ORDER BY Id DESC LIMIT 1`) costs one row, not a scan of the table.
            (Some(descending), Some(limit)) => {
                let wanted = self.offset.unwrap_or(0).saturating_add(limit);
                let walk: Box<dyn Iterator<Item = usize>> =
                    if descending { Box::new(window.rev()) } else { Box::new(window) };
                walk.filter(found).take(wanted).map(|i| i as u32).collect()
            }
            _ => window.filter(found).map(|i| i as u32).collect(),
        };
        if let Some(descending) = by_id {
            if descending && self.limit.is_none() {
                rows.reverse();
            }
        } else if !self.order.is_empty() {
            rows.sort_by(|&a, &b| {
                for (path, descending, nulls_last) in &self.order {
                    let (va, vb) = (value_in(data, table, a as usize, path), value_in(data, table, b as usize, path));
                    let ord = match (va.is_null(), vb.is_null()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => {
                            if *nulls_last {
                                Ordering::Greater
                            } else {
                                Ordering::Less
                            }
                        }
                        (false, true) => {
                            if *nulls_last {
                                Ordering::Less
                            } else {
                                Ordering::Greater
                            }
                        }
                        _ => {
                            let o = compare(va, vb, path.kind(), self.ids).unwrap_or(Ordering::Equal);
                            if *descending { o.reverse() } else { o }
                        }
                    };
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                Ordering::Equal
            });
        }
        let skip = self.offset.unwrap_or(0).min(rows.len());
        rows.drain(..skip);
        if let Some(limit) = self.limit {
            rows.truncate(limit);
        }
        rows
    }
}

fn matches(data: &OrgData, table: &Table, row: usize, f: &Filter, ids: IdOrder) -> bool {
    match f {
        Filter::And(terms) => terms.iter().all(|t| matches(data, table, row, t, ids)),
        Filter::Or(terms) => terms.iter().any(|t| matches(data, table, row, t, ids)),
        Filter::Not(inner) => !matches(data, table, row, inner, ids),
        Filter::Compare(path, op, literal) => {
            let value = value_in(data, table, row, path);
            if literal.is_null() || value.is_null() {
                let both = literal.is_null() == value.is_null();
                return match *op {
                    "=" => both,
                    "!=" => !both,
                    _ => false,
                };
            }
            match *op {
                "=" => return equal(value, literal, path.kind(), ids),
                "!=" => return !equal(value, literal, path.kind(), ids),
                _ => {}
            }
            let ord = compare(value, literal, path.kind(), ids);
            match *op {
                "<" => ord == Some(Ordering::Less),
                "<=" => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                ">" => ord == Some(Ordering::Greater),
                ">=" => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                _ => false,
            }
        }
        Filter::In(path, values, negated) => {
            let value = value_in(data, table, row, path);
            let found =
                values.iter().any(|v| if v.is_null() { value.is_null() } else { equal(value, v, path.kind(), ids) });
            found != *negated
        }
        Filter::Like(path, pattern) => {
            value_in(data, table, row, path).as_str().is_some_and(|s| like(&s.to_lowercase(), pattern))
        }
    }
}

/// SOQL compares text case-insensitively, but Ids (case-sensitive by nature) byte by byte: the
/// order `ORDER BY Id` gives is the one `Id > '...'` follows, so keyset paging on Id is exact.
fn compare(a: &Value, b: &Value, kind: FieldKind, ids: IdOrder) -> Option<Ordering> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) if matches!(kind, FieldKind::Id | FieldKind::Reference) => match ids {
            IdOrder::Bytes => Some(x.cmp(y)),
            IdOrder::IgnoringCase => Some(cmp_ignoring_ascii_case(x, y)),
        },
        // Every filter compares each row's value: ASCII text (nearly all of it) is compared
        // without making lowercase copies, which was a third of the simulator's time.
        (Value::Str(x), Value::Str(y)) if x.is_ascii() && y.is_ascii() => Some(cmp_ignoring_ascii_case(x, y)),
        (Value::Str(x), Value::Str(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Whether `compare` finds `a` and `b` equal, told without ordering them: every row of a query
/// is checked against its `=` and `IN` terms (`UserType NOT IN (...)`: four texts per user),
/// and ordering texts a byte at a time was a tenth of the simulator's time serving a full read.
fn equal(a: &Value, b: &Value, kind: FieldKind, ids: IdOrder) -> bool {
    let id = matches!(kind, FieldKind::Id | FieldKind::Reference);
    match (a, b) {
        (Value::Str(x), Value::Str(y)) if id && ids == IdOrder::Bytes => x == y,
        // Equal ignoring ASCII case is what `cmp_ignoring_ascii_case` finds equal, for any text.
        (Value::Str(x), Value::Str(y)) if id || (x.is_ascii() && y.is_ascii()) => x.eq_ignore_ascii_case(y),
        _ => compare(a, b, kind, ids) == Some(Ordering::Equal),
    }
}

/// The order of `x` and `y` with ASCII letters compared without regard to case, and without
/// making lowercase copies.
fn cmp_ignoring_ascii_case(x: &str, y: &str) -> Ordering {
    x.bytes().map(|b| b.to_ascii_lowercase()).cmp(y.bytes().map(|b| b.to_ascii_lowercase()))
}

/// LIKE with `%` and `_` as wildcards; `\%` and `\_` (lexed as private-use characters) and
/// every other character, a backslash included, match themselves.
fn like(text: &str, pattern: &str) -> bool {
    enum P {
        Any,
        One,
        Char(char),
    }
    let mut parts = Vec::new();
    for c in pattern.chars() {
        parts.push(match c {
            '%' => P::Any,
            '_' => P::One,
            LIKE_PERCENT => P::Char('%'),
            LIKE_UNDERSCORE => P::Char('_'),
            c => P::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // Dynamic programming over (pattern prefix, text prefix).
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for part in &parts {
        let mut next = vec![false; text.len() + 1];
        for i in 0..=text.len() {
            match part {
                P::Any => next[i] = reach[i] || (i > 0 && next[i - 1]),
                P::One => next[i] = i > 0 && reach[i - 1],
                P::Char(c) => next[i] = i > 0 && reach[i - 1] && text[i - 1] == *c,
            }
        }
        reach = next;
    }
    reach[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{OrgSpec, generate};
    use crate::soql::parse;

    fn run(data: &OrgData, soql: &str) -> Result<Vec<u32>, SoqlError> {
        run_with(data, soql, &FieldAccess::default())
    }

    fn run_with(data: &OrgData, soql: &str, access: &FieldAccess) -> Result<Vec<u32>, SoqlError> {
        let q = parse(soql)?;
        Ok(plan(soql, &q, access)?.run(data, |_| true))
    }

    #[test]
    fn fields_the_org_lacks_or_hides_are_invalid_fields() {
        let data = generate(&OrgSpec::new(3, 50));
        let access = FieldAccess::new(false, &["User.Department".into(), "User.ManagerId".into()]);
        for soql in [
            "SELECT Id, CountryCode FROM User",
            "SELECT Id FROM User WHERE department = 'IT'",
            "SELECT Id, Manager.Name FROM User",
        ] {
            let error = run_with(&data, soql, &access).unwrap_err();
            assert_eq!(error.code, "INVALID_FIELD", "{soql}");
            assert!(run(&data, soql).is_ok(), "{soql} is fine where the field is visible");
        }
        let error = run_with(&data, "SELECT Id, CountryCode FROM User", &access).unwrap_err();
        assert!(
            error.message.ends_with(
                "No such column 'CountryCode' on entity 'User'. If you are attempting to use a custom field, be sure \
             to append the '__c' after the custom field name. Please reference your WSDL or the describe call \
             for the appropriate names."
            ),
            "{}",
            error.message
        );
        assert!(run_with(&data, "SELECT Id, Country FROM User", &access).is_ok());
    }

    /// Text compares ignoring case, ASCII or not; Ids byte by byte (`0-9`, `A-Z`, `a-z`), or
    /// ignoring case where the org's Id order does.
    #[test]
    fn text_compares_ignoring_case_and_ids_by_their_bytes() {
        let text =
            |a: &str, b: &str| compare(&Value::Str(a.into()), &Value::Str(b.into()), FieldKind::String, IdOrder::Bytes);
        assert_eq!(text("Standard", "STANDARD"), Some(Ordering::Equal));
        assert_eq!(text("apple", "Banana"), Some(Ordering::Less));
        assert_eq!(text("Zeta", "alpha"), Some(Ordering::Greater));
        assert_eq!(text("ab", "ABC"), Some(Ordering::Less));
        assert_eq!(text("Ærøskøbing", "ærøskøbing"), Some(Ordering::Equal));
        assert_eq!(text("Øst", "zulu"), Some(Ordering::Greater));
        let id = |a: &str, b: &str, order| compare(&Value::Str(a.into()), &Value::Str(b.into()), FieldKind::Id, order);
        assert_eq!(id("005Z", "005a", IdOrder::Bytes), Some(Ordering::Less));
        assert_eq!(id("005z", "005A", IdOrder::Bytes), Some(Ordering::Greater));
        assert_eq!(id("005z", "005Z", IdOrder::IgnoringCase), Some(Ordering::Equal));
        assert_eq!(id("005Z", "005a", IdOrder::IgnoringCase), Some(Ordering::Greater));
    }

    /// A range of Ids found through the rows' Id order has exactly the rows a scan finds,
    /// whatever the bounds and the other terms; rows out of Id order are scanned.
    #[test]
    fn id_ranges_have_the_rows_a_scan_finds() {
        let mut data = generate(&OrgSpec::new(3, 500));
        let users = data.table("User");
        assert!(users.id_window(None, None).is_some(), "generated in Id order");
        let ids: Vec<String> =
            (0..users.rows.len()).filter_map(|i| users.get(i, "Id").as_str().map(String::from)).collect();
        let scan = |data: &OrgData, low: &str, high: &str, extra: &str| -> Vec<u32> {
            let users = data.table("User");
            let mut rows: Vec<u32> = (0..users.rows.len() as u32)
                .filter(|&i| users.get(i as usize, "Id").as_str().is_some_and(|id| id > low && id <= high))
                .filter(|&i| extra.is_empty() || users.get(i as usize, "IsActive") == &Value::Bool(true))
                .collect();
            rows.sort_by_key(|&i| users.get(i as usize, "Id").as_str().map(String::from));
            rows
        };
        for (low, high) in [(&ids[10], &ids[200]), (&ids[0], &ids[499]), (&ids[300], &ids[300]), (&ids[400], &ids[100])]
        {
            for extra in ["", " AND IsActive = true"] {
                let soql = format!("SELECT Id FROM User WHERE Id > '{low}' AND Id <= '{high}'{extra} ORDER BY Id");
                assert_eq!(run(&data, &soql), Ok(scan(&data, low, high, extra)), "{soql}");
            }
        }
        let last_id = "SELECT Id FROM User ORDER BY Id DESC LIMIT 2";
        assert_eq!(run(&data, last_id), Ok(vec![499, 498]));
        let between = |low: &str, high: &str| format!("SELECT Id FROM User WHERE Id >= '{low}' AND Id < '{high}'");
        assert_eq!(run(&data, &between(&ids[5], &ids[9])).map(|r| r.len()), Ok(4));
        assert_eq!(run(&data, &format!("SELECT Id FROM User WHERE Id = '{}'", ids[7])).map(|r| r.len()), Ok(1));
        // An Id changed in place: the rows are no longer known to be in order, and are scanned.
        let last = ids.len() - 1;
        data.table_mut("User").set(last, "Id", Value::Str("0050000000000AAAAA".into()));
        assert!(data.table("User").id_window(None, None).is_none());
        let soql = format!("SELECT Id FROM User WHERE Id > '{}' AND Id <= '{}' ORDER BY Id", "005", ids[20]);
        let found = run(&data, &soql).unwrap_or_default();
        assert!(found.contains(&(last as u32)), "{found:?}");
        assert_eq!(found, scan(&data, "005", &ids[20], ""));
        assert_eq!(run(&data, last_id), Ok(vec![498, 497]), "sorted: the changed Id sorts first");
    }

    /// `=` and `IN` tell equality apart from ordering: they must find equal exactly what
    /// `compare` orders as equal, for text in any case and script, Ids in either order, and the
    /// other kinds.
    #[test]
    fn equality_is_what_the_order_finds_equal() {
        let texts = [
            "Standard",
            "STANDARD",
            "standard ",
            "PowerPartner",
            "powerpartner",
            "Ærøskøbing",
            "ærøskøbing",
            "ÆRØSKØBING",
            "005Z",
            "005z",
            "005a",
            "",
        ];
        let values: Vec<Value> = texts
            .iter()
            .map(|t| Value::Str((*t).into()))
            .chain([Value::Int(3), Value::Int(4), Value::Bool(true), Value::Date(3), Value::DateTime(3)])
            .collect();
        for kind in [FieldKind::String, FieldKind::Id, FieldKind::Reference, FieldKind::Int, FieldKind::Date] {
            for ids in [IdOrder::Bytes, IdOrder::IgnoringCase] {
                for a in &values {
                    for b in &values {
                        let ordered = compare(a, b, kind, ids) == Some(Ordering::Equal);
                        assert_eq!(equal(a, b, kind, ids), ordered, "{a:?} = {b:?} as {kind:?}, {ids:?}");
                    }
                }
            }
        }
        let data = generate(&OrgSpec::new(3, 200));
        let portal = "SELECT Id FROM User WHERE UserType IN ('powerpartner', 'CSPLITEPORTAL')";
        let not_portal = "SELECT Id FROM User WHERE NOT UserType IN ('powerpartner', 'CSPLITEPORTAL')";
        let (portal, not_portal) = (run(&data, portal).unwrap_or_default(), run(&data, not_portal).unwrap_or_default());
        assert!(
            !portal.is_empty() && portal.len() + not_portal.len() == 200,
            "{} + {}",
            portal.len(),
            not_portal.len()
        );
    }

    /// Ordered by Id with a LIMIT, the rows are walked through the index and the walk stops once
    /// OFFSET + LIMIT rows are found: the same rows as a scan keeps, in either direction, with
    /// other terms; and rows the user does not see are skipped before the LIMIT counts them.
    #[test]
    fn limits_walked_through_the_index_keep_the_rows_a_scan_keeps() {
        let data = generate(&OrgSpec::new(3, 500));
        for filter in ["", " WHERE IsActive = true"] {
            for direction in ["", " DESC"] {
                let all = run(&data, &format!("SELECT Id FROM User{filter} ORDER BY Id{direction}"));
                let all = all.unwrap_or_default();
                for (limit, offset) in [(1, 0), (7, 0), (7, 5), (600, 0), (3, 2000)] {
                    let soql =
                        format!("SELECT Id FROM User{filter} ORDER BY Id{direction} LIMIT {limit} OFFSET {offset}");
                    let kept: Vec<u32> = all.iter().skip(offset).take(limit).copied().collect();
                    assert_eq!(run(&data, &soql), Ok(kept), "{soql}");
                }
            }
        }
        // The last row hidden from the user (sharing): the last Id it sees is the one before.
        let soql = "SELECT Id FROM User ORDER BY Id DESC LIMIT 1";
        let plan = plan(soql, &parse(soql).unwrap_or_else(|e| panic!("{e:?}")), &FieldAccess::default());
        let plan = plan.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(plan.run(&data, |row| row != 499), vec![498]);
        assert_eq!(plan.run(&data, |row| row % 2 == 0), vec![498]);
    }

    #[test]
    fn like_handles_wildcards_and_escapes() {
        assert!(like("o'brien & søn", "o'brien%"));
        assert!(like("a_b", "a\u{E001}b"));
        assert!(!like("axb", "a\u{E001}b"));
        assert!(like("o'brien \\ søn_50%", "%\\ søn\u{E001}50\u{E000}%"));
        assert!(like("axb", "a_b"));
        assert!(!like("ab", "a_b"));
    }

    #[test]
    fn filters_sorts_and_checks_fields() {
        let data = generate(&OrgSpec::new(3, 500));
        let users = data.table("User");
        let active = (0..users.rows.len()).filter(|&i| users.get(i, "IsActive") == &Value::Bool(true)).count();
        assert_eq!(run(&data, "SELECT Id FROM User WHERE IsActive = true").map(|r| r.len()), Ok(active));
        assert_eq!(run(&data, "select id from user where isactive = false").map(|r| r.len()), Ok(500 - active));
        let sorted =
            run(&data, "SELECT Id FROM User ORDER BY LastLoginDate DESC NULLS LAST, Id LIMIT 400").unwrap_or_default();
        assert_eq!(sorted.len(), 400);
        let logins: Vec<_> = sorted.iter().map(|&i| users.get(i as usize, "LastLoginDate").clone()).collect();
        assert!(logins.windows(2).all(|w| match (&w[0], &w[1]) {
            (Value::DateTime(a), Value::DateTime(b)) => a >= b,
            (_, Value::Null) => true,
            _ => false,
        }));
        let via_parent =
            run(&data, "SELECT Id FROM User WHERE Profile.UserLicense.Name = 'salesforce'").unwrap_or_default();
        assert!(!via_parent.is_empty());
        let by_id = run(&data, "SELECT Id FROM User ORDER BY Id").unwrap_or_default();
        let ids: Vec<&str> = by_id.iter().filter_map(|&i| users.get(i as usize, "Id").as_str()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ORDER BY Id is byte order");
        let after =
            run(&data, &format!("SELECT Id FROM User WHERE Id > '{}' ORDER BY Id", ids[249])).unwrap_or_default();
        assert_eq!(after, by_id[250..], "keyset on Id continues exactly");
        assert_eq!(run(&data, "SELECT Foo FROM User").unwrap_err().code, "INVALID_FIELD");
        assert_eq!(run(&data, "SELECT Id FROM Widget").unwrap_err().code, "INVALID_TYPE");
        assert_eq!(
            run(&data, "SELECT Id FROM User WHERE CreatedDate > '2024-01-01'").unwrap_err().code,
            "INVALID_FIELD"
        );
        assert_eq!(run(&data, "SELECT Id, id FROM User").unwrap_err().code, "MALFORMED_QUERY");
    }
}
