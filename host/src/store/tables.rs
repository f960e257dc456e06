//! Data tables: named, tenant-scoped lists of rows (a key and string fields) that
//! operators load over REST and modules query through the `tables` interface.
//! Lookups run on an in-memory [`TableIndex`]; sled keeps the rows durable.

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use super::engine::Batch;
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
    /// Bytes of its keys and fields.
    #[serde(default)]
    pub bytes: u64,
}

impl TableInfo {
    /// The summary of `rows` as table `name` of `tenant`, loaded now.
    pub fn of(tenant: &str, name: &str, rows: &[Row]) -> TableInfo {
        TableInfo {
            tenant: tenant.into(),
            name: name.into(),
            rows: rows.len(),
            loaded_at_ms: crate::now_ms(),
            bytes: rows.iter().map(Row::bytes).sum(),
        }
    }
}

impl Row {
    /// Bytes of its key and fields.
    pub fn bytes(&self) -> u64 {
        (self.key.len() + self.fields.iter().map(String::len).sum::<usize>()) as u64
    }
}

/// What one tenant's data tables may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableQuota {
    /// Rows over all its tables.
    pub tenant_rows: u64,
    /// Bytes of keys and fields over all its tables.
    pub tenant_bytes: u64,
}

impl Default for TableQuota {
    fn default() -> Self {
        TableQuota {
            tenant_rows: 5_000_000,
            tenant_bytes: 512 << 20,
        }
    }
}

/// What a tenant's tables hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableUsage {
    /// Rows.
    pub rows: u64,
    /// Bytes of keys and fields.
    pub bytes: u64,
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
    /// Replace a table's rows (its summary beside them, in the same batch).
    pub fn put_table(&self, info: &TableInfo, rows: &[Row]) -> Result<()> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            info: &'a TableInfo,
            rows: &'a [Row],
        }
        let k = key(&[&info.tenant, &info.name]);
        let mut batch = Batch::default();
        batch.insert(&self.tables, k.clone(), to_json(&Borrowed { info, rows })?);
        batch.insert(&self.table_info, k, to_json(info)?);
        self.engine.apply(batch)
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
        self.table_info
            .scan_prefix(key(&[tenant, ""]))
            .map(|kv| from_json::<TableInfo>(&kv?.1))
            .collect()
    }

    /// What a tenant's tables hold, leaving out table `except` (the one being replaced).
    pub fn table_usage(&self, tenant: &str, except: &str) -> Result<TableUsage> {
        let mut usage = TableUsage::default();
        for info in self
            .tables(tenant)?
            .into_iter()
            .filter(|t| t.name != except)
        {
            usage.rows += info.rows as u64;
            usage.bytes += info.bytes;
        }
        Ok(usage)
    }

    /// Remove a table; false when it did not exist.
    pub fn delete_table(&self, tenant: &str, name: &str) -> Result<bool> {
        let k = key(&[tenant, name]);
        if self.tables.get(&k)?.is_none() {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.remove(&self.tables, k.clone());
        batch.remove(&self.table_info, k);
        self.engine.apply(batch)?;
        Ok(true)
    }

    /// Build the summaries of tables stored before they were kept apart (one pass
    /// over the rows, once).
    pub(super) fn index_table_info(&self) -> Result<()> {
        if self.table_info.key_count()? > 0 || self.tables.key_count()? == 0 {
            return Ok(());
        }
        let mut batch = Batch::default();
        for kv in self.tables.iter() {
            let (k, v) = kv?;
            let stored = from_json::<StoredTable>(&v)?;
            let mut info = stored.info;
            info.bytes = stored.rows.iter().map(Row::bytes).sum();
            batch.insert(&self.table_info, k, to_json(&info)?);
        }
        self.engine.apply(batch)
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
    fn summaries_are_kept_apart_and_rebuilt_for_tables_stored_without_them() {
        let dir = std::env::temp_dir().join(format!("sy-table-info-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let rows = vec![row("44", "uk"), row("4420", "london")];
        store
            .put_table(&TableInfo::of("t", "routes", &rows), &rows)
            .unwrap();
        store
            .put_table(&TableInfo::of("u", "other", &rows[..1]), &rows[..1])
            .unwrap();
        let listed = store.tables("t").unwrap();
        assert_eq!((listed.len(), listed[0].rows, listed[0].bytes), (1, 2, 14));
        assert_eq!(
            store.table_usage("t", "").unwrap(),
            TableUsage { rows: 2, bytes: 14 }
        );
        assert_eq!(
            store.table_usage("t", "routes").unwrap(),
            TableUsage::default()
        );
        // A data directory from before the summaries: only the rows are stored.
        for kv in store.table_info.iter() {
            store.table_info.remove(kv.unwrap().0).unwrap();
        }
        store.commit_blocking().unwrap();
        drop(store);
        let store = Store::reopen(&dir).unwrap();
        assert_eq!(store.tables("t").unwrap()[0].bytes, 14, "rebuilt on open");
        assert!(store.delete_table("t", "routes").unwrap());
        assert!(store.tables("t").unwrap().is_empty());
        assert_eq!(store.tables("u").unwrap().len(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn multibyte_numbers_do_not_panic() {
        let index = TableIndex::new(vec![row("é", "x"), row("44", "y")]);
        assert!(index.longest_prefix("4é").is_empty());
        assert_eq!(index.longest_prefix("é1").len(), 1);
    }
}
