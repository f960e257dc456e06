//! Durable state in sled: module versions and their compiled artifacts, bindings,
//! data tables, tokens, carrier objects, module key-value state and call records.
//!
//! Every change that the REST API acknowledges, and every call record, goes through
//! [`Store::commit`], which flushes sled before returning: sled's own timer flushes
//! only every 500 ms, and an acknowledged change must survive a crash. Commits go to
//! one flusher thread that runs one `flush` for every commit waiting (group commit).
//! One flush at a time is also a necessity: many concurrent `flush_async` calls were
//! seen to deadlock sled 0.34 (1,000 calls ending at once, each flushing its record).
//!
//! This layer knows nothing of wasmtime or HTTP.

use std::sync::Arc;

mod agents;
mod bindings;
mod calls;
mod carrier;
mod error;
mod gateway_settings;
mod module_state;
mod modules;
mod payments;
mod tables;
mod tokens;

pub use agents::{AgentScope, Permission};
pub use bindings::{AutoRollback, Binding, BindingEvent, Canary, Fallback, Scope};
pub use calls::{AttemptRecord, CallCharges, CallQuery, CallRecord, CallResult, EndReason};
pub use carrier::{
    Account, CarrierObject, GatewayGroup, MappingGateway, Phone, RoutingGateway, Snapshot,
};
pub use error::{Error, Result};
pub use gateway_settings::{
    apply_number_rules, CallerPool, CallerSource, Codec, CodecMode, DtmfReceive, DtmfSend,
    ExtraHeaders, ExtraHeadersMode, G729Mode, IdentityMode, MediaProxy, MediaSettings, NumberRule,
    PoolSelection, PrivacyMode, RouteBy, RuleAction,
};
pub use modules::{ModuleKey, ModuleVersion};
pub use payments::Payment;
pub use tables::{Row, TableIndex, TableInfo};
pub use tokens::{Principal, Role, TokenInfo};

/// Handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    modules: sled::Tree,
    module_bytes: sled::Tree,
    artifacts: sled::Tree,
    bindings: sled::Tree,
    binding_history: sled::Tree,
    tables: sled::Tree,
    tokens: sled::Tree,
    module_state: sled::Tree,
    carrier: sled::Tree,
    /// Payments by account, then time.
    payments: sled::Tree,
    calls: sled::Tree,
    /// Customer Call-ID → key in `calls`.
    call_index: sled::Tree,
    /// Account, NUL, key in `calls` (empty values): one account's records in order.
    calls_by_account: sled::Tree,
    /// Gateway (ingress, egress or attempted), NUL, key in `calls`.
    calls_by_gateway: sled::Tree,
    carrier_cache: Arc<carrier::CarrierCache>,
    flusher: std::sync::mpsc::Sender<FlushRequest>,
}

/// A commit waiting for the next flush. It carries its own handle on the database,
/// so the flusher thread holds none while idle and ends with the last `Store`.
struct FlushRequest {
    db: sled::Db,
    done: Box<dyn FnOnce(Result<()>) + Send>,
}

/// Run one flush per batch of waiting commits until every `Store` is gone.
fn run_flusher(requests: std::sync::mpsc::Receiver<FlushRequest>) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        batch.extend(requests.try_iter());
        let outcome = batch[0].db.flush().map(drop).map_err(|e| e.to_string());
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
    /// Open (or create) the database in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        let db = sled::Config::new().path(dir.join("db")).open()?;
        let (flusher, requests) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || run_flusher(requests))
            .map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        let store = Store {
            flusher,
            modules: db.open_tree("modules")?,
            module_bytes: db.open_tree("module_bytes")?,
            artifacts: db.open_tree("artifacts")?,
            bindings: db.open_tree("bindings")?,
            binding_history: db.open_tree("binding_history")?,
            tables: db.open_tree("tables")?,
            tokens: db.open_tree("tokens")?,
            module_state: db.open_tree("module_state")?,
            carrier: db.open_tree("carrier")?,
            payments: db.open_tree("payments")?,
            calls: db.open_tree("calls")?,
            call_index: db.open_tree("call_index")?,
            calls_by_account: db.open_tree("calls_by_account")?,
            calls_by_gateway: db.open_tree("calls_by_gateway")?,
            carrier_cache: Arc::default(),
            db,
        };
        store.index_old_call_records()?;
        Ok(store)
    }

    /// [`Store::open`] for tests that reopen a store they just dropped: sled's own
    /// background thread can hold the file lock for a moment after the last handle.
    #[cfg(test)]
    pub(crate) fn reopen(dir: &std::path::Path) -> Result<Store> {
        for _ in 0..100 {
            match Store::open(dir) {
                Err(Error::Db(sled::Error::Io(e))) if e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
        Store::open(dir)
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
                db: self.db.clone(),
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
fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(Error::Encode)
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(Error::Decode)
}
