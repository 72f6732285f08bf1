//! Derived tables declared as [`CountedByKey`]: a derived table's rows counted per their key's
//! group (users per company and license), in one pass over it with each key's group and flag
//! held in a [`KeyMap`]; the table's SQL then completes the counts.

use crate::kept_by_key::{read, read_groups, rows_of, unfit};
use crate::key_map::KeyMap;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use foldhash::fast::RandomState;
use sfetl_load::{Error, ParquetSink, RowGroups};
use sfetl_transform::model::{CountedByKey, DerivedTable};
use std::collections::HashMap;
use std::sync::Arc;

/// The fewest rows a counting thread is given (see [`counts`]): two threads from two million.
const ROWS_PER_SHARE: usize = 1_000_000;

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
///
/// Many rows are counted on every core, each thread a share of the file's row groups: in an
/// incremental run at a million users (3.2 million rows) the derive took 1.0-1.4 s, 0.65-0.71
/// with two threads (3 interleaved runs each). At 100k users (360,000 rows) a second thread
/// saved nothing measurable and held 8 MiB more.
pub fn counts(spec: &CountedByKey, table: &DerivedTable, sink: &ParquetSink, org: &str) -> Result<RecordBatch, Error> {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let shares = cores.min(rows_of(sink, org, spec.rows)? / ROWS_PER_SHARE).max(1);
    counts_in_shares(spec, table, sink, org, shares)
}

/// [`counts`] with the file's row groups dealt out to `shares` threads.
pub(crate) fn counts_in_shares(
    spec: &CountedByKey,
    table: &DerivedTable,
    sink: &ParquetSink,
    org: &str,
    shares: usize,
) -> Result<RecordBatch, Error> {
    let keys = CountKeys::read(spec, table, sink, org)?;
    let shares = shares.max(1);
    let count_share = |share| -> Result<Counter<'_>, Error> {
        let mut counter = Counter::new(spec, table, &keys)?;
        let groups = RowGroups::Share { share, shares };
        for batch in read_groups(sink, org, spec.rows, &counter.columns(), table, groups)? {
            counter.add(&batch?, None)?;
        }
        Ok(counter)
    };
    // The first share on this thread, the others each on one of their own.
    let counter = std::thread::scope(|scope| {
        let others: Vec<_> = (1..shares).map(|share| scope.spawn(move || count_share(share))).collect();
        let mut counter = count_share(0)?;
        for other in others {
            counter.merge(other.join().map_err(|_| unfit(table, "a counting thread panicked".into()))??);
        }
        Ok::<_, Error>(counter)
    })?;
    counter.finish()
}

/// The keys rows are counted by: each key's group number with its flag in the top bit (4 bytes
/// a key), and the groups' values. Read once, it can be shared: the thread that makes
/// `user_subscriptions` keeps a row when its user is among these keys, and hands the counter
/// the [`KeyGroup`] it found for each row, so that no key is looked up twice.
pub struct CountKeys {
    keys: KeyMap<KeyGroup>,
    groups: Numbered,
}

/// What [`CountKeys`] holds for a key: its group's number and its flag (the top bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyGroup(u32);

impl CountKeys {
    /// The keys of the org's file of `spec.keys`.
    pub fn read(spec: &CountedByKey, table: &DerivedTable, sink: &ParquetSink, org: &str) -> Result<Self, Error> {
        let mut read_keys =
            CountKeys { keys: KeyMap::with_capacity(rows_of(sink, org, spec.keys)?), groups: Numbered::default() };
        for batch in read(sink, org, spec.keys, &[spec.key, spec.group, spec.flag], table)? {
            let batch = batch?;
            let ids = text(table, &batch, spec.keys, spec.key)?;
            let groups = text(table, &batch, spec.keys, spec.group)?;
            let flags = column(table, &batch, spec.keys, spec.flag)?;
            let flags = flags
                .as_boolean_opt()
                .ok_or_else(|| unfit(table, format!("{}.{} is not a flag", spec.keys, spec.flag)))?;
            for row in 0..batch.num_rows() {
                if ids.is_null(row) {
                    continue;
                }
                let group = read_keys.groups.number(groups.is_valid(row).then(|| groups.value(row)));
                let flag = flags.is_valid(row) && flags.value(row);
                if group >= FLAG {
                    return Err(unfit(table, format!("more than {FLAG} values of {}.{}", spec.keys, spec.group)));
                }
                read_keys.keys.insert(ids.value(row), KeyGroup(group | if flag { FLAG } else { 0 }));
            }
        }
        Ok(read_keys)
    }

    pub fn get(&self, key: &str) -> Option<KeyGroup> {
        self.keys.get(key).copied()
    }
}

/// [`counts`] made a batch of `spec.rows` at a time, from whatever hands them over: the org's
/// file, or the thread that makes that table (a full read counts `user_subscriptions` as it is
/// made, on a core the derive otherwise left idle, rather than reading it back afterwards).
pub struct Counter<'k> {
    spec: &'k CountedByKey,
    table: &'k DerivedTable,
    keys: &'k CountKeys,
    /// Per `by` column, its values numbered.
    numbered: Vec<Numbered>,
    counts: HashMap<[u32; MAX_BY + 1], (i64, i64), RandomState>,
}

impl<'k> Counter<'k> {
    /// A counter by `keys` (read for `spec`), nothing counted yet.
    pub fn new(spec: &'k CountedByKey, table: &'k DerivedTable, keys: &'k CountKeys) -> Result<Self, Error> {
        if spec.by.len() > MAX_BY {
            return Err(unfit(table, format!("counted by {} columns, at most {MAX_BY}", spec.by.len())));
        }
        let numbered = spec.by.iter().map(|_| Numbered::default()).collect();
        Ok(Counter { spec, table, keys, numbered, counts: HashMap::default() })
    }

    /// The columns of `spec.rows` a batch must hold (others are ignored): the key, then `by`.
    pub fn columns(&self) -> Vec<&'k str> {
        std::iter::once(self.spec.key).chain(self.spec.by.iter().copied()).collect()
    }

    /// Counts the rows of `batch`, a batch of `spec.rows`; `found`, when given, is each row's
    /// key as these keys hold it (found by whoever kept the rows by them), not looked up again.
    pub fn add(&mut self, batch: &RecordBatch, found: Option<&[KeyGroup]>) -> Result<(), Error> {
        let rows = self.spec.rows;
        let columns =
            self.columns().iter().map(|name| text(self.table, batch, rows, name)).collect::<Result<Vec<_>, _>>()?;
        if found.is_some_and(|found| found.len() != batch.num_rows()) {
            return Err(unfit(self.table, format!("{rows}: a batch's rows and their keys differ in number")));
        }
        let mut last = [None; MAX_BY];
        for row in 0..batch.num_rows() {
            let key = match found {
                Some(found) => Some(found[row]),
                None => columns[0].is_valid(row).then(|| self.keys.get(columns[0].value(row))).flatten(),
            };
            let Some(KeyGroup(key)) = key else { continue };
            let (group, flag) = (key & !FLAG, key & FLAG != 0);
            let mut at = [0u32; MAX_BY + 1];
            at[0] = group;
            for (by, column) in columns[1..].iter().enumerate() {
                at[by + 1] = self.numbered[by].number_in(column, row, &mut last[by]);
            }
            let count = self.counts.entry(at).or_default();
            count.0 += 1;
            count.1 += i64::from(flag);
        }
        Ok(())
    }

    /// Adds `other`'s counts (by the same keys, of other rows) to these.
    pub(crate) fn merge(&mut self, other: Counter<'k>) {
        for (at, (rows, flagged)) in other.counts {
            let mut mine = at;
            for (by, numbered) in other.numbered.iter().enumerate() {
                mine[by + 1] = self.numbered[by].number(numbered.value(at[by + 1]));
            }
            let count = self.counts.entry(mine).or_default();
            count.0 += rows;
            count.1 += flagged;
        }
    }

    /// The counts, a row per group (see [`counts`]).
    pub fn finish(self) -> Result<RecordBatch, Error> {
        let spec = self.spec;
        let mut fields = vec![Field::new(spec.group, DataType::Utf8, true)];
        fields.extend(spec.by.iter().map(|name| Field::new(*name, DataType::Utf8, true)));
        fields.extend(["rows", "flagged"].map(|name| Field::new(name, DataType::Int64, false)));
        let value = |index: usize, number: u32| match index {
            0 => self.keys.groups.value(number),
            by => self.numbered[by - 1].value(number),
        };
        let mut columns: Vec<ArrayRef> = (0..=spec.by.len())
            .map(|index| -> ArrayRef {
                Arc::new(self.counts.keys().map(|at| value(index, at[index])).collect::<StringArray>())
            })
            .collect();
        columns.push(Arc::new(self.counts.values().map(|count| count.0).collect::<Int64Array>()));
        columns.push(Arc::new(self.counts.values().map(|count| count.1).collect::<Int64Array>()));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| unfit(self.table, e.to_string()))
    }
}

/// A batch's column by name (a file's columns come in its schema's order).
fn column(table: &DerivedTable, batch: &RecordBatch, input: &str, name: &str) -> Result<ArrayRef, Error> {
    batch.column_by_name(name).cloned().ok_or_else(|| unfit(table, format!("{input}.{name} was not read")))
}

fn text(table: &DerivedTable, batch: &RecordBatch, input: &str, name: &str) -> Result<StringArray, Error> {
    let text = column(table, batch, input, name)?.as_string_opt::<i32>().cloned();
    text.ok_or_else(|| unfit(table, format!("{input}.{name} is not text")))
}
