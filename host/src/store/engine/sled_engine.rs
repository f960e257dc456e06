//! The embedded engine: sled. Its own timer flushes only every 500 ms, so the store
//! flushes before it acknowledges (see [`super::super::Store::commit`]).

use std::sync::Arc;

use super::{Batch, Engine, Pairs, Tree, TreeEngine};
use crate::store::{Error, Result};

pub struct SledEngine {
    db: sled::Db,
}

impl SledEngine {
    /// Open (or create) the database at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &std::path::Path, cache_bytes: u64) -> Result<SledEngine> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()?;
        Ok(SledEngine { db })
    }
}

struct SledTree {
    name: String,
    tree: sled::Tree,
}

impl Engine for SledEngine {
    fn tree(&self, name: &str) -> Result<Tree> {
        Ok(Tree::new(Arc::new(SledTree {
            name: name.to_string(),
            tree: self.db.open_tree(name)?,
        })))
    }

    fn tree_names(&self) -> Result<Vec<String>> {
        Ok(self
            .db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect())
    }

    fn drop_tree(&self, name: &str) -> Result<bool> {
        Ok(self.db.drop_tree(name)?)
    }

    fn generate_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    fn apply(&self, batch: Batch) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let mut names: Vec<&str> = batch.writes.iter().map(|(t, ..)| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let trees = names
            .iter()
            .map(|n| self.db.open_tree(n))
            .collect::<sled::Result<Vec<_>>>()?;
        let result = trees.as_slice().transaction(|views| {
            for (tree, key, value) in &batch.writes {
                let view = &views[names.binary_search(&tree.as_str()).expect("named above")];
                match value {
                    Some(v) => view.insert(key.as_slice(), v.as_slice())?,
                    None => view.remove(key.as_slice())?,
                };
            }
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(())) => unreachable!("the batch never aborts"),
            Err(TransactionError::Storage(e)) => Err(Error::Db(e)),
        }
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

impl TreeEngine for SledTree {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.insert(key, value)?.map(|v| v.to_vec()))
    }

    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.remove(key)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Pairs<'_> {
        Box::new(self.tree.scan_prefix(prefix).map(|kv| {
            let (k, v) = kv?;
            Ok((k.to_vec(), v.to_vec()))
        }))
    }

    fn key_count(&self) -> Result<usize> {
        Ok(self.tree.len())
    }
}
