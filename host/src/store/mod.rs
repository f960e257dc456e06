//! Durable state: through the storage [`engine`] (sled, embedded), module versions and
//! their compiled artifacts, bindings, data tables, tokens, carrier objects and module
//! key-value state; call records in
//! an append-only journal of their own ([`call_log`]), since sled's memory grows with
//! every key it holds.
//!
//! Memory is bounded by [`StoreOptions`]: sled's page cache by `cache_bytes` (sled's
//! own default of 1 GiB was too much beside everything else on a 24 GiB box), the
//! journal by the size of its active segment.
//!
//! Every change that the REST API acknowledges, and every call record, goes through
//! [`Store::commit`], which flushes sled before returning: sled's own timer flushes
//! only every 500 ms, and an acknowledged change must survive a crash. Commits go to
//! one flusher thread that runs one `flush` for every commit waiting (group commit).
//! One flush at a time is also a necessity: many concurrent `flush_async` calls were
//! seen to deadlock sled 0.34 (1,000 calls ending at once, each flushing its record).
//!
//! This layer knows nothing of wasmtime or HTTP, and no type of sled leaves it: the
//! layers above see [`Store`]'s methods and the model's types, so another engine is a
//! change inside `store/` alone.

use std::sync::Arc;

mod agents;
mod audit;
mod bans;
mod bindings;
mod call_log;
mod calls;
mod carrier;
pub mod engine;
mod error;
mod module_state;
mod modules;
mod payments;
mod tables;
mod tokens;
mod users;

pub use agents::{AgentAccess, AgentScope};
pub use audit::{AuditEntry, AuditQuery};
pub use bindings::{AutoRollback, Binding, BindingEvent, Canary, Fallback, Hook, Scope, Slot};
pub use call_log::CallLogStats;
pub use calls::CallQuery;
pub use carrier::{CarrierObject, Snapshot};
use engine::{Engine, SledEngine, Tree};
pub use error::{Error, Result};
pub use module_state::{StateQuota, StateUsage};
pub use modules::{ModuleKey, ModuleVersion};
pub use payments::Payment;
pub use tables::{Row, TableIndex, TableInfo, TableQuota, TableUsage};
pub use tokens::{Principal, Role, TokenInfo};
pub use users::{hash_password, verify_password, UserInfo};

/// Handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
    modules: Tree,
    module_bytes: Tree,
    artifacts: Tree,
    bindings: Tree,
    binding_history: Tree,
    tables: Tree,
    /// The shield's bans by address.
    bans: Tree,
    /// Each table's summary, apart from its rows: listings and tenant totals read
    /// these without decoding any row.
    table_info: Tree,
    tokens: Tree,
    /// The web manager's users by name, with their password hashes.
    users: Tree,
    /// Logins and changes, by time.
    audit: Tree,
    module_state: Tree,
    carrier: Tree,
    /// Payments by account, then time.
    payments: Tree,
    /// Bookkeeping of the store itself (how far call charges are applied).
    meta: Tree,
    carrier_cache: Arc<carrier::CarrierCache>,
    /// Module state held, per tenant and module (for the quotas).
    state_usage: Arc<std::sync::Mutex<module_state::StateUsageBook>>,
    flusher: std::sync::mpsc::Sender<FlushRequest>,
    call_log: Arc<call_log::CallLog>,
    call_writer: std::sync::mpsc::Sender<calls::CallJob>,
    options: StoreOptions,
}

/// The call-record journal's folder inside the data directory.
const CALL_LOG_DIR: &str = "calls";

/// How much memory and disk the store may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, bytes.
    pub cache_bytes: u64,
    /// Size at which a call-record segment is sealed; the active one's index is in
    /// memory (about 40 bytes a record).
    pub segment_bytes: u64,
    /// Call records are deleted, a whole segment at a time, this long after they
    /// end; 0 keeps them for ever.
    pub retention_days: u32,
}

/// Default for `--store-cache-mb`.
pub const DEFAULT_CACHE_MB: u64 = 256;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_MB << 20,
            segment_bytes: call_log::DEFAULT_SEGMENT_BYTES,
            retention_days: 0,
        }
    }
}

/// A commit waiting for the next flush. It carries its own handle on the database,
/// so the flusher thread holds none while idle and ends with the last `Store`.
struct FlushRequest {
    engine: Arc<dyn Engine>,
    done: Box<dyn FnOnce(Result<()>) + Send>,
}

/// Run one flush per batch of waiting commits until every `Store` is gone.
fn run_flusher(requests: std::sync::mpsc::Receiver<FlushRequest>) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        batch.extend(requests.try_iter());
        let outcome = batch[0].engine.flush().map_err(|e| e.to_string());
        // Let go of the database before answering: a caller that closes its store
        // once committed must be able to reopen it at once.
        let waiting: Vec<_> = batch.into_iter().map(|request| request.done).collect();
        for done in waiting {
            done(
                outcome
                    .clone()
                    .map_err(|e| Error::Db(sled::Error::Io(std::io::Error::other(e)))),
            );
        }
    }
}

impl Store {
    /// Open (or create) the database in `dir` with the default options.
    pub fn open(dir: &std::path::Path) -> Result<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Open (or create) the database in `dir`.
    pub fn open_with(dir: &std::path::Path, options: StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        let db: Arc<dyn Engine> = Arc::new(SledEngine::open(&dir.join("db"), options.cache_bytes)?);
        // Opened after sled, whose lock keeps a second process out of both.
        let call_log = Arc::new(call_log::CallLog::open(
            &dir.join(CALL_LOG_DIR),
            options.segment_bytes,
        )?);
        let (call_writer, jobs) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("call-writer".into())
            .spawn(move || calls::run_call_writer(jobs))
            .map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        let (flusher, requests) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || run_flusher(requests))
            .map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        let mut store = Store {
            flusher,
            modules: db.tree("modules")?,
            module_bytes: db.tree("module_bytes")?,
            artifacts: db.tree("artifacts")?,
            bindings: db.tree("bindings")?,
            binding_history: db.tree("binding_history")?,
            tables: db.tree("tables")?,
            bans: db.tree("bans")?,
            table_info: db.tree("table_info")?,
            tokens: db.tree("tokens")?,
            users: db.tree("users")?,
            audit: db.tree("audit")?,
            module_state: db.tree("module_state")?,
            carrier: db.tree("carrier")?,
            payments: db.tree("payments")?,
            meta: db.tree("meta")?,
            carrier_cache: Arc::default(),
            state_usage: Arc::default(),
            engine: db,
            call_log,
            call_writer,
            options,
        };
        store.migrate_sled_call_records(dir)?;
        store.index_table_info()?;
        store.replay_charges()?;
        store.expire_call_records()?;
        Ok(store)
    }

    /// [`Store::open`] for tests that reopen a store they just dropped: sled's own
    /// background thread can hold the file lock for a moment after the last handle.
    #[cfg(test)]
    pub(crate) fn reopen(dir: &std::path::Path) -> Result<Store> {
        Store::reopen_with(dir, StoreOptions::default())
    }

    /// [`Store::reopen`] with options.
    #[cfg(test)]
    pub(crate) fn reopen_with(dir: &std::path::Path, options: StoreOptions) -> Result<Store> {
        for _ in 0..100 {
            match Store::open_with(dir, options) {
                Err(Error::Db(sled::Error::Io(e))) if e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
        Store::open_with(dir, options)
    }

    /// Keys in every tree of the engine: what sled's memory grows with. Nothing is written
    /// there per call (a leak check counts it before and after calls). Reads every
    /// key: for tests and diagnostics, not for a hot path.
    pub fn sled_keys(&self) -> Result<usize> {
        let mut keys = 0;
        for name in self.engine.tree_names()? {
            keys += self.engine.tree(&name)?.key_count()?;
        }
        Ok(keys)
    }

    /// Delete call records older than the retention, whole segments at a time.
    pub fn expire_call_records(&self) -> Result<usize> {
        if self.options.retention_days == 0 {
            return Ok(0);
        }
        let cutoff =
            crate::now_ms().saturating_sub(u64::from(self.options.retention_days) * 86_400_000);
        let removed = self.call_log.expire(cutoff, self.charges_applied()?)?;
        if removed > 0 {
            tracing::info!(
                segments = removed,
                "deleted call records past their retention"
            );
        }
        Ok(removed)
    }

    /// Make every write so far durable. Call before acknowledging a change.
    pub async fn commit(&self) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.request_flush(Box::new(move |r| {
            let _ = tx.send(r);
        }))?;
        rx.await.unwrap_or_else(|_| Err(flusher_gone()))
    }

    /// Blocking [`Store::commit`], for code already off the async reactor.
    pub fn commit_blocking(&self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.request_flush(Box::new(move |r| {
            let _ = tx.send(r);
        }))?;
        rx.recv().unwrap_or_else(|_| Err(flusher_gone()))
    }

    fn request_flush(&self, done: Box<dyn FnOnce(Result<()>) + Send>) -> Result<()> {
        self.flusher
            .send(FlushRequest {
                engine: self.engine.clone(),
                done,
            })
            .map_err(|_| flusher_gone())
    }
}

fn flusher_gone() -> Error {
    Error::Db(sled::Error::Io(std::io::Error::other(
        "the store flusher thread stopped",
    )))
}

/// Keys joined with a NUL, which no name we accept contains.
/// An empty scratch directory for a unit test's store.
#[cfg(test)]
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(Error::Encode)
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(Error::Decode)
}
