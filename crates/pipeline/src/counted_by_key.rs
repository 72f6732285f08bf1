//! Derived tables declared as [`CountedByKey`]: a derived table's rows counted per their key's
//! group (users per company and license), in one pass over it with each key's group and flag
//! held in a [`KeyMap`]; the table's SQL then completes the counts.

use crate::kept_by_key::{read, rows_of, unfit};
use crate::key_map::KeyMap;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use foldhash::fast::RandomState;
use sfetl_load::{Error, ParquetSink};
use sfetl_transform::model::{CountedByKey, DerivedTable};
use std::collections::HashMap;
use std::sync::Arc;

/// The most `by` columns a [`CountedByKey`] may have.
pub const MAX_BY: usize = 4;

/// The bit of a key's entry that holds its flag; the others, its group's number.
const FLAG: u32 = 1 << 31;

/// Text values numbered in the order first seen (`None` is a value too): a count's group is a
/// few numbers, not strings allocated per row.
#[derive(Default)]
struct Numbered {
    numbers: HashMap<Box<str>, u32, RandomState>,
    values: Vec<Option<Box<str>>>,
    null: Option<u32>,
}

impl Numbered {
    /// The number of `column`'s value in `row`; `last` (the row numbered before in this column
    /// and its number) spares looking up a value repeated, as a part of `user_subscriptions`
    /// repeats its kind, and often its license.
    fn number_in(&mut self, column: &StringArray, row: usize, last: &mut Option<(usize, u32)>) -> u32 {
        let value = column.is_valid(row).then(|| column.value(row));
        let repeated = last.filter(|&(before, _)| {
            let previous = column.is_valid(before).then(|| column.value(before));
            previous == value
        });
        let number = match repeated {
            Some((_, number)) => number,
            None => self.number(value),
        };
        *last = Some((row, number));
        number
    }

    fn number(&mut self, value: Option<&str>) -> u32 {
        let next = self.values.len() as u32;
        let number = match value {
            Some(value) => match self.numbers.get(value) {
                Some(&number) => return number,
                None => *self.numbers.entry(value.into()).or_insert(next),
            },
            None => *self.null.get_or_insert(next),
        };
        if number == next {
            self.values.push(value.map(Into::into));
        }
        number
    }

    fn value(&self, number: u32) -> Option<&str> {
        self.values.get(number as usize).and_then(|v| v.as_deref())
    }
}

/// The counts of `spec`, a row per group: the key's group, the `by` columns, `rows` (the rows
/// of the group) and `flagged` (those whose key's flag is true). A row whose key is NULL or not
/// among the keys is counted nowhere, as an inner join leaves it out.
pub fn counts(spec: &CountedByKey, table: &DerivedTable, sink: &ParquetSink, org: &str) -> Result<RecordBatch, Error> {
    let unfit = |detail| unfit(table, detail);
    if spec.by.len() > MAX_BY {
        return Err(unfit(format!("counted by {} columns, at most {MAX_BY}", spec.by.len())));
    }
    // Read by name: a file's columns come in its schema's order.
    let column = |batch: &RecordBatch, input: &str, name: &str| -> Result<ArrayRef, Error> {
        batch.column_by_name(name).cloned().ok_or_else(|| unfit(format!("{input}.{name} was not read")))
    };
    let text = |batch: &RecordBatch, input: &str, name: &str| -> Result<StringArray, Error> {
        let text = column(batch, input, name)?.as_string_opt::<i32>().cloned();
        text.ok_or_else(|| unfit(format!("{input}.{name} is not text")))
    };
    // Numbers 0..: the keys' groups; then, per `by` column, its values.
    let mut numbered: Vec<Numbered> = (0..=spec.by.len()).map(|_| Numbered::default()).collect();
    // Each key's group number, its flag in the top bit: 4 bytes a key.
    let mut keys: KeyMap<u32> = KeyMap::with_capacity(rows_of(sink, org, spec.keys)?);
    for batch in read(sink, org, spec.keys, &[spec.key, spec.group, spec.flag], table)? {
        let batch = batch?;
        let (ids, groups) = (text(&batch, spec.keys, spec.key)?, text(&batch, spec.keys, spec.group)?);
        let flags = column(&batch, spec.keys, spec.flag)?;
        let flags =
            flags.as_boolean_opt().ok_or_else(|| unfit(format!("{}.{} is not a flag", spec.keys, spec.flag)))?;
        for row in 0..batch.num_rows() {
            if ids.is_null(row) {
                continue;
            }
            let group = numbered[0].number(groups.is_valid(row).then(|| groups.value(row)));
            let flag = flags.is_valid(row) && flags.value(row);
            if group >= FLAG {
                return Err(unfit(format!("more than {FLAG} values of {}.{}", spec.keys, spec.group)));
            }
            keys.insert(ids.value(row), group | if flag { FLAG } else { 0 });
        }
    }
    let names: Vec<&str> = std::iter::once(spec.key).chain(spec.by.iter().copied()).collect();
    let mut counts: HashMap<[u32; MAX_BY + 1], (i64, i64), RandomState> = HashMap::default();
    for batch in read(sink, org, spec.rows, &names, table)? {
        let batch = batch?;
        let columns = names.iter().map(|name| text(&batch, spec.rows, name)).collect::<Result<Vec<_>, _>>()?;
        let mut last = [None; MAX_BY];
        for row in 0..batch.num_rows() {
            let Some(&key) = columns[0].is_valid(row).then(|| keys.get(columns[0].value(row))).flatten() else {
                continue;
            };
            let (group, flag) = (key & !FLAG, key & FLAG != 0);
            let mut at = [0u32; MAX_BY + 1];
            at[0] = group;
            for (by, column) in columns[1..].iter().enumerate() {
                at[by + 1] = numbered[by + 1].number_in(column, row, &mut last[by]);
            }
            let count = counts.entry(at).or_default();
            count.0 += 1;
            count.1 += i64::from(flag);
        }
    }
    let mut fields = vec![Field::new(spec.group, DataType::Utf8, true)];
    fields.extend(spec.by.iter().map(|name| Field::new(*name, DataType::Utf8, true)));
    fields.extend(["rows", "flagged"].map(|name| Field::new(name, DataType::Int64, false)));
    let mut columns: Vec<ArrayRef> = (0..=spec.by.len())
        .map(|index| -> ArrayRef {
            Arc::new(counts.keys().map(|at| numbered[index].value(at[index])).collect::<StringArray>())
        })
        .collect();
    columns.push(Arc::new(counts.values().map(|count| count.0).collect::<Int64Array>()));
    columns.push(Arc::new(counts.values().map(|count| count.1).collect::<Int64Array>()));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| unfit(e.to_string()))
}
