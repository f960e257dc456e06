//! Data tables: named, tenant-scoped lists of rows (a key and string fields) that
//! operators load over REST and modules query through the `tables` interface.
//! Lookups run on an in-memory [`TableIndex`]; sled keeps the rows durable.

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use super::{from_json, key, to_json, Result, Store};

/// One row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// A number prefix or an exact value.
    pub key: String,
    /// The row's other fields.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// A table's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Owning tenant.
    pub tenant: String,
    /// Table name.
    pub name: String,
    /// Number of rows.
    pub rows: usize,
    /// When it was loaded, Unix milliseconds.
    pub loaded_at_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredTable {
    info: TableInfo,
    rows: Vec<Row>,
}

/// Rows indexed for exact and prefix lookup. A prefix lookup costs one hash probe per
/// distinct key length, whatever the table's size.
#[derive(Debug, Default)]
pub struct TableIndex {
    rows: Vec<Row>,
    /// Fx hashing: keys are short digit strings probed once per key length per call.
    by_key: FxHashMap<String, Vec<u32>>,
    /// Distinct key lengths, longest first.
    key_lengths: Vec<usize>,
    /// One view of the rows built for a use (a compiled rate table), made on first use
    /// and dropped with the index when the table is reloaded.
    derived: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

impl TableIndex {
    /// Index `rows`, keeping their order within each key.
    pub fn new(rows: Vec<Row>) -> TableIndex {
        let mut by_key: FxHashMap<String, Vec<u32>> =
            FxHashMap::with_capacity_and_hasher(rows.len(), Default::default());
        for (i, row) in rows.iter().enumerate() {
            by_key.entry(row.key.clone()).or_default().push(i as u32);
        }
        let mut key_lengths: Vec<usize> = by_key.keys().map(String::len).collect();
        key_lengths.sort_unstable_by(|a, b| b.cmp(a));
        key_lengths.dedup();
        TableIndex {
            rows,
            by_key,
            key_lengths,
            derived: std::sync::OnceLock::new(),
        }
    }

    /// The view `build` makes of this table, built once. None when the table already
    /// holds a view of another type (the caller then builds its own).
    pub fn derived<T: std::any::Any + Send + Sync>(
        &self,
        build: impl FnOnce(&TableIndex) -> T,
    ) -> Option<&T> {
        self.derived
            .get_or_init(|| Box::new(build(self)))
            .downcast_ref::<T>()
    }

    fn rows_of(&self, key: &str) -> Option<impl Iterator<Item = &Row>> {
        self.by_key
            .get(key)
            .map(|ids| ids.iter().map(|&i| &self.rows[i as usize]))
    }

    /// Rows whose key equals `key`.
    pub fn exact(&self, key: &str) -> Vec<Row> {
        self.rows_of(key)
            .map(|r| r.cloned().collect())
            .unwrap_or_default()
    }

    /// Rows of every key that prefixes `number`, longest key first.
    pub fn prefixes<'a>(&'a self, number: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.key_lengths
            .iter()
            .filter(move |&&len| len <= number.len())
            .filter_map(move |&len| number.get(..len).and_then(|p| self.rows_of(p)))
            .flatten()
    }

    /// Rows of the longest key that prefixes `number`.
    pub fn longest_prefix(&self, number: &str) -> Vec<Row> {
        let Some(first) = self.prefixes(number).next() else {
            return Vec::new();
        };
        self.exact(&first.key.clone())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// All rows in load order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }
}

impl Store {
    /// Replace a table's rows.
    pub fn put_table(&self, info: &TableInfo, rows: &[Row]) -> Result<()> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            info: &'a TableInfo,
            rows: &'a [Row],
        }
        self.tables.insert(
            key(&[&info.tenant, &info.name]),
            to_json(&Borrowed { info, rows })?,
        )?;
        Ok(())
    }

    /// A table's summary and rows.
    pub fn table(&self, tenant: &str, name: &str) -> Result<Option<(TableInfo, Vec<Row>)>> {
        Ok(self
            .tables
            .get(key(&[tenant, name]))?
            .map(|v| from_json::<StoredTable>(&v))
            .transpose()?
            .map(|t| (t.info, t.rows)))
    }

    /// Summaries of a tenant's tables.
    pub fn tables(&self, tenant: &str) -> Result<Vec<TableInfo>> {
        self.tables
            .scan_prefix(key(&[tenant, ""]))
            .map(|kv| Ok(from_json::<StoredTable>(&kv?.1)?.info))
            .collect()
    }

    /// Remove a table; false when it did not exist.
    pub fn delete_table(&self, tenant: &str, name: &str) -> Result<bool> {
        Ok(self.tables.remove(key(&[tenant, name]))?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, field: &str) -> Row {
        Row {
            key: key.into(),
            fields: vec![field.into()],
        }
    }

    #[test]
    fn longest_prefix_returns_every_row_of_the_longest_key_in_load_order() {
        let index = TableIndex::new(vec![
            row("44", "uk-a"),
            row("4420", "london-a"),
            row("4420", "london-b"),
            row("1", "nanp"),
        ]);
        let fields = |rows: Vec<Row>| {
            rows.into_iter()
                .map(|r| r.fields[0].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(index.longest_prefix("442071234")),
            ["london-a", "london-b"]
        );
        assert_eq!(fields(index.longest_prefix("4413")), ["uk-a"]);
        assert!(index.longest_prefix("33").is_empty());
        assert!(index.longest_prefix("").is_empty());
        let all: Vec<_> = index
            .prefixes("442071")
            .map(|r| r.fields[0].as_str())
            .collect();
        assert_eq!(all, ["london-a", "london-b", "uk-a"]);
        assert_eq!(fields(index.exact("44")), ["uk-a"]);
    }

    #[test]
    fn multibyte_numbers_do_not_panic() {
        let index = TableIndex::new(vec![row("é", "x"), row("44", "y")]);
        assert!(index.longest_prefix("4é").is_empty());
        assert_eq!(index.longest_prefix("é1").len(), 1);
    }
}
