//! Derived tables declared as [`KeptByKey`]: columns picked from inputs, the rows of some kept
//! only when their key is one of the keys', made in one pass over each input with the keys held
//! in a [`KeyMap`]. At a million users this took `user_subscriptions` from DuckDB's four pieces
//! (each reading every input again, its hash join of a piece's users the run's peak memory) to
//! one read of each input.

use crate::key_map::KeyMap;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray, new_null_array};
use arrow::compute::{filter, is_not_null};
use arrow::record_batch::RecordBatch;
use sfetl_load::{Error, ParquetSink, RowGroups};
use sfetl_transform::model::{self, Cell, DerivedTable, Keep, KeptByKey};
use sfetl_transform::tables;

/// Hands `table`'s rows, as `spec` declares them, to `write`: part after part, each part's input
/// file read once, in batches (the keys' input is read once more, its keys only, for the map).
pub fn derive(
    spec: &KeptByKey,
    table: &DerivedTable,
    sink: &ParquetSink,
    org: &str,
    mut write: impl FnMut(RecordBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut keys = KeyMap::with_capacity(rows_of(sink, org, spec.keys)?);
    for batch in read(sink, org, spec.keys, &[spec.key], table)? {
        let batch = batch?;
        let ids = batch.column(0).as_string_opt::<i32>();
        let ids = ids.ok_or_else(|| unfit(table, format!("{}.{} is not text", spec.keys, spec.key)))?;
        ids.iter().flatten().for_each(|id| keys.insert(id, ()));
    }
    derive_among(spec, table, sink, org, |id| keys.get(id).copied(), |kept| write(kept.batch))
}

/// A batch of a table made by key, with what the keys' map held for each row's key when its
/// part keeps rows by key (`None` for a part kept otherwise).
pub struct KeptBatch<V> {
    pub batch: RecordBatch,
    pub found: Option<Vec<V>>,
}

/// [`derive`] with the keys given (`find`: what a map of `spec.keys`' `spec.key` values holds
/// for a value, `None` when it is not one of them), held by the caller: a map the derive shares
/// with another.
pub fn derive_among<V: Copy>(
    spec: &KeptByKey,
    table: &DerivedTable,
    sink: &ParquetSink,
    org: &str,
    find: impl Fn(&str) -> Option<V>,
    mut write: impl FnMut(KeptBatch<V>) -> Result<(), Error>,
) -> Result<(), Error> {
    let unfit = |detail| unfit(table, detail);
    let schema = table.schema();
    for part in spec.parts {
        if part.cells.len() != schema.fields().len() {
            return Err(unfit(format!(
                "{}: {} values for {} columns",
                part.input,
                part.cells.len(),
                schema.fields().len()
            )));
        }
        let mut names: Vec<&str> = part
            .cells
            .iter()
            .filter_map(|cell| match cell {
                Cell::Column(name) => Some(*name),
                _ => None,
            })
            .collect();
        names.push(match part.keep {
            Keep::NotNull(column) => column,
            Keep::KeyAmongKeys => spec.key,
        });
        for batch in read(sink, org, part.input, &names, table)? {
            let batch = batch?;
            let column = |name: &str| {
                batch.column_by_name(name).ok_or_else(|| unfit(format!("{}.{name} was not read", part.input)))
            };
            let (kept, found) = match part.keep {
                Keep::NotNull(name) => (is_not_null(column(name)?.as_ref()).map_err(|e| unfit(e.to_string()))?, None),
                Keep::KeyAmongKeys => {
                    let key = column(spec.key)?;
                    let key = key
                        .as_string_opt::<i32>()
                        .ok_or_else(|| unfit(format!("{}.{} is not text", part.input, spec.key)))?;
                    let found: Vec<Option<V>> = key.iter().map(|k| k.and_then(&find)).collect();
                    let kept = found.iter().map(|v| Some(v.is_some())).collect::<BooleanArray>();
                    (kept, Some(found.into_iter().flatten().collect::<Vec<V>>()))
                }
            };
            let rows = kept.true_count();
            if rows == 0 {
                continue;
            }
            let columns = part.cells.iter().zip(schema.fields()).map(|(cell, field)| -> Result<ArrayRef, Error> {
                Ok(match cell {
                    Cell::Column(name) => {
                        let values = column(name)?;
                        if values.data_type() != field.data_type() {
                            return Err(unfit(format!(
                                "{}.{name} is {}, {} is {}",
                                part.input,
                                values.data_type(),
                                field.name(),
                                field.data_type()
                            )));
                        }
                        filter(values.as_ref(), &kept).map_err(|e| unfit(e.to_string()))?
                    }
                    Cell::Text(text) => {
                        std::sync::Arc::new(StringArray::from_iter_values(std::iter::repeat_n(text, rows)))
                    }
                    Cell::Null => new_null_array(field.data_type(), rows),
                })
            });
            let columns = columns.collect::<Result<Vec<_>, _>>()?;
            let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| unfit(e.to_string()))?;
            write(KeptBatch { batch, found })?;
        }
    }
    Ok(())
}

/// The org's file of the table `input` (raw, or derived before `table`), batch by batch, only
/// the columns `names`.
pub(crate) fn read(
    sink: &ParquetSink,
    org: &str,
    input: &str,
    names: &[&str],
    table: &DerivedTable,
) -> Result<impl Iterator<Item = Result<RecordBatch, Error>> + use<>, Error> {
    read_groups(sink, org, input, names, table, RowGroups::All)
}

/// [`read`], only the row groups `groups`.
pub(crate) fn read_groups(
    sink: &ParquetSink,
    org: &str,
    input: &str,
    names: &[&str],
    table: &DerivedTable,
    groups: RowGroups,
) -> Result<impl Iterator<Item = Result<RecordBatch, Error>> + use<>, Error> {
    let unfit = |detail| unfit(table, detail);
    let schema = schema_of(input).ok_or_else(|| unfit(format!("{input} is not a table")))?;
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let index = schema.index_of(name).map_err(|_| unfit(format!("{input} has no column {name}")))?;
        if !columns.contains(&index) {
            columns.push(index);
        }
    }
    let file = sink.existing(input, "org", org, &schema, Some(&columns), groups)?;
    file.ok_or_else(|| unfit(format!("{input} has no file of its schema")))
}

/// The rows of the org's file of `input` (0 without one): what a map of its keys will hold.
pub(crate) fn rows_of(sink: &ParquetSink, org: &str, input: &str) -> Result<usize, Error> {
    let Some(schema) = schema_of(input) else { return Ok(0) };
    Ok(sink.rows_of(input, "org", org, &schema)?.unwrap_or(0) as usize)
}

fn schema_of(input: &str) -> Option<arrow::datatypes::SchemaRef> {
    let raw = tables::ALL.iter().find(|t| t.name == input).map(|t| t.schema());
    raw.or_else(|| model::DERIVED.iter().find(|t| t.name == input).map(|t| t.schema()))
}

/// A spec or an input file that does not give `table` its declared columns.
pub(crate) fn unfit(table: &DerivedTable, detail: String) -> Error {
    Error::Schema { sql: table.name.to_string(), detail }
}
