//! The storage engine under [`super::Store`]: named trees of ordered byte keys, an
//! atomic write across trees, and a flush. Everything the store keeps outside the call
//! journal goes through this interface, so a second engine (PostgreSQL, a cluster
//! store) implements these few methods and nothing above `store/` changes.
//!
//! What the engine must guarantee:
//! - a tree's keys iterate in byte order (listings and prefix scans rely on it);
//! - [`Engine::apply`] is all or nothing across the trees it names (balances with
//!   their payment, or with the journal position they include);
//! - after [`Engine::flush`] returns, every write before it survives a crash.
//!
//! Read-modify-write is the store's business: the writers that need it (balances)
//! serialise under the store's own lock, then write with one [`Batch`].

use std::sync::Arc;

mod sled_engine;

pub use sled_engine::SledEngine;

use super::Result;

/// A tree's key-value pairs in key order.
pub type Pairs<'a> = Box<dyn DoubleEndedIterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// One storage engine.
pub trait Engine: Send + Sync {
    /// The tree called `name`, created empty if it does not exist.
    fn tree(&self, name: &str) -> Result<Tree>;
    /// Every tree's name.
    fn tree_names(&self) -> Result<Vec<String>>;
    /// Delete a tree and its contents; whether it existed.
    fn drop_tree(&self, name: &str) -> Result<bool>;
    /// A number never handed out before in this database, increasing.
    fn generate_id(&self) -> Result<u64>;
    /// Apply every write of `batch`, or none.
    fn apply(&self, batch: Batch) -> Result<()>;
    /// Make every write so far durable.
    fn flush(&self) -> Result<()>;
}

/// One tree of an engine.
pub trait TreeEngine: Send + Sync {
    fn name(&self) -> &str;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Store `value` under `key`; the value it replaced.
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Delete `key`; the value it had.
    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The pairs whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Pairs<'_>;
    /// How many keys the tree holds.
    fn key_count(&self) -> Result<usize>;
}

/// A handle on one tree; cheap to clone.
#[derive(Clone)]
pub struct Tree(Arc<dyn TreeEngine>);

impl Tree {
    pub fn new(tree: Arc<dyn TreeEngine>) -> Tree {
        Tree(tree)
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.0.get(key.as_ref())
    }

    pub fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        self.0.insert(key.as_ref(), value.as_ref())
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.0.remove(key.as_ref())
    }

    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Pairs<'_> {
        self.0.scan_prefix(prefix.as_ref())
    }

    /// Every pair, in key order.
    pub fn iter(&self) -> Pairs<'_> {
        self.0.scan_prefix(&[])
    }

    pub fn key_count(&self) -> Result<usize> {
        self.0.key_count()
    }
}

/// Writes to apply together: (tree, key, new value or `None` to delete).
#[derive(Default)]
pub struct Batch {
    pub writes: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn insert(&mut self, tree: &Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes
            .push((tree.name().to_string(), key.into(), Some(value.into())));
    }

    pub fn remove(&mut self, tree: &Tree, key: impl Into<Vec<u8>>) {
        self.writes
            .push((tree.name().to_string(), key.into(), None));
    }
}

/// What every engine must do, as tests: a second engine runs these against itself.
#[cfg(test)]
pub(crate) fn check_contract(engine: &dyn Engine) {
    let a = engine.tree("contract_a").unwrap();
    let b = engine.tree("contract_b").unwrap();
    for k in ["k/2", "k/10", "j/1", "k/1"] {
        a.insert(k, k.to_uppercase()).unwrap();
    }
    // Keys come back in byte order, forwards and backwards, prefix only.
    fn keys(pairs: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>) -> Vec<String> {
        pairs
            .map(|kv| String::from_utf8(kv.unwrap().0).unwrap())
            .collect()
    }
    assert_eq!(keys(a.scan_prefix("k/")), ["k/1", "k/10", "k/2"]);
    assert_eq!(keys(a.scan_prefix("k/").rev()), ["k/2", "k/10", "k/1"]);
    assert_eq!(a.key_count().unwrap(), 4);
    assert_eq!(
        a.insert("k/1", "new").unwrap().as_deref(),
        Some(&b"K/1"[..])
    );
    assert_eq!(a.remove("k/1").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(a.get("k/1").unwrap(), None);
    // A batch lands in both trees.
    let mut batch = Batch::default();
    batch.insert(&a, "both", "1");
    batch.insert(&b, "both", "2");
    engine.apply(batch).unwrap();
    assert_eq!(a.get("both").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(b.get("both").unwrap().as_deref(), Some(&b"2"[..]));
    let (first, second) = (engine.generate_id().unwrap(), engine.generate_id().unwrap());
    assert!(second > first);
    assert!(engine
        .tree_names()
        .unwrap()
        .iter()
        .any(|n| n == "contract_b"));
    assert!(engine.drop_tree("contract_b").unwrap());
    assert!(!engine
        .tree_names()
        .unwrap()
        .iter()
        .any(|n| n == "contract_b"));
    engine.flush().unwrap();
}

#[cfg(test)]
mod tests {
    #[test]
    fn sled_keeps_the_engine_contract() {
        let dir = std::env::temp_dir().join(format!("sy-engine-{}", std::process::id()));
        let engine = super::SledEngine::open(&dir, 8 << 20).unwrap();
        super::check_contract(&engine);
        drop(engine);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
