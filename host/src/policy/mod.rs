//! The policy engine: every per-call decision (screen, route, failover) is made by a
//! sandboxed WebAssembly component implementing `switchyard:callctl/call-policy`.
//!
//! - [`engine`] configures wasmtime (component model, epochs, pooling allocator);
//! - [`invoke`] runs one hook on a fresh instance within a deadline and memory cap;
//! - [`host`] implements the WIT imports, [`runtime`] holds what they read;
//! - [`validate`] checks a module's answer before anyone uses it;
//! - [`health`] counts invocations and failures per version;
//! - this file ties them to the store: uploads, bindings (with canary and
//!   rollback) and the [`BoundPolicy`] a call holds for its whole life.
//!
//! A failing module never fails a call: the binding's fallback answers instead, the
//! failure is counted against the module version and logged with the call id.

mod bindings;
mod bound;
mod budget;
mod convert;
pub mod engine;
mod epoch;
mod error;
pub mod health;
mod host;
pub mod invoke;
mod lane;
pub mod limits;
mod state;
pub mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use crate::runtime::Runtime;
pub use bindings::{POLICY_INTERFACE, WORLD};
pub use bound::{fallback_decision, stock_next_step, BoundPolicy, Decided};
pub use error::{BindError, UploadError};
pub use health::{FailureKind, HealthReport};
pub use invoke::{Failure, HookAnswer, HookCall, Invocation, LoadedModule, RunLimits};
pub use state::LogLine;
pub use switchyard_model::call::{
    Attempt, Call, Caller, CallerHeader, Decision, Header, Limits, NextStep, Outcome, Reject,
    Verdict,
};

use crate::store::{Binding, Fallback, Hook, ModuleKey, ModuleVersion, Scope, Slot, Store};
use health::HealthBoard;
use limits::*;
use state::PolicyState;

/// The engine and its registry of loaded modules and active bindings.
pub struct PolicyEngine {
    engine: Engine,
    engine_hash: String,
    linker: Linker<PolicyState>,
    runtime: Arc<Runtime>,
    health: HealthBoard,
    loaded: RwLock<HashMap<ModuleKey, Arc<LoadedModule>>>,
    bindings: RwLock<HashMap<Slot, Arc<Binding>>>,
    /// Serialises binding changes (API, rollback, auto-rollback) against each other.
    binding_changes: Mutex<()>,
    /// One running guest per core, so guests are not time-sliced against each other
    /// (each decision's latency is its own). Further decisions queue here.
    running: tokio::sync::Semaphore,
    /// Decisions running on tokio workers (see [`lane`]).
    inline_lane: tokio::sync::Semaphore,
    /// Decisions that ran in the inline lane since start.
    inline_decisions: std::sync::atomic::AtomicU64,
    /// Components compiled from source by this engine (cache misses), for operators
    /// and for the test that a restart loads cached artifacts instead.
    compilations: std::sync::atomic::AtomicU64,
    ticker: epoch::EpochTicker,
}

impl PolicyEngine {
    /// Start the engine over the runtime state's store: load the bindings and compile (or load the cached
    /// artifacts of) every bound module, so the first call does not pay for it.
    pub fn start(runtime: Arc<Runtime>) -> anyhow::Result<Arc<PolicyEngine>> {
        let store = runtime.store().clone();
        let engine = engine::build().map_err(|e| anyhow::anyhow!("starting wasmtime: {e:#}"))?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking host imports: {e:#}"))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let policy = Arc::new(PolicyEngine {
            engine_hash: engine::compatibility_hash(&engine),
            ticker: epoch::EpochTicker::start(&engine),
            engine,
            linker,
            runtime,
            health: HealthBoard::default(),
            loaded: RwLock::default(),
            bindings: RwLock::default(),
            binding_changes: Mutex::default(),
            compilations: Default::default(),
            inline_lane: tokio::sync::Semaphore::new(cores),
            inline_decisions: Default::default(),
            running: tokio::sync::Semaphore::new(cores),
        });
        for binding in store.bindings()? {
            for version in binding_versions(&binding) {
                if let Err(e) = policy.load(&binding_key(&binding, version)) {
                    tracing::error!(scope = %binding.scope, error = %e, "bound module does not load");
                }
            }
            policy
                .write_bindings()
                .insert(binding.slot(), Arc::new(binding));
        }
        Ok(policy)
    }

    /// The shared runtime (tables, counters, live gateway state).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn store(&self) -> &Store {
        &self.runtime.store
    }

    fn write_bindings(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Slot, Arc<Binding>>> {
        self.bindings.write().unwrap_or_else(|e| e.into_inner())
    }

    // ---- modules -------------------------------------------------------------------

    /// Validate and register an uploaded component. Blocking (compiles): call it off
    /// the reactor. The caller commits the store before acknowledging.
    pub fn upload(
        &self,
        tenant: &str,
        name: &str,
        description: &str,
        uploaded_by: &str,
        bytes: &[u8],
        max_bytes: usize,
    ) -> Result<ModuleVersion, UploadError> {
        crate::names::check("module name", name).map_err(UploadError::BadName)?;
        if bytes.len() > max_bytes {
            return Err(UploadError::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
            return Err(UploadError::CoreModule);
        }
        let component = self
            .compile(bytes)
            .map_err(|e| UploadError::NotAComponent(format!("{e:#}")))?;
        let pre = self.prelink(&component).map_err(|(kind, msg)| match kind {
            LinkFailure::Imports => UploadError::UnsupportedImports(msg),
            LinkFailure::Exports => UploadError::WrongWorld(msg),
        })?;
        let meta = ModuleVersion {
            tenant: tenant.into(),
            name: name.into(),
            version: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
            uploaded_by: uploaded_by.into(),
            uploaded_at_ms: crate::now_ms(),
            description: description.into(),
            world: WORLD.into(),
        };
        let key = meta.key();
        if let Some(existing) = self.store().module_version(&key)? {
            return Ok(existing);
        }
        self.store().put_module_version(&meta, bytes)?;
        self.cache_artifact(&key, &component);
        self.loaded_mut().insert(
            key,
            Arc::new(LoadedModule {
                meta: meta.clone(),
                pre,
                lane: Default::default(),
            }),
        );
        Ok(meta)
    }

    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        self.compilations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Component::new(&self.engine, bytes)
    }

    /// How many components this engine compiled from source since it started.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many decisions ran on the calling tokio worker (the inline lane, see
    /// [`lane`]) instead of the blocking pool since it started.
    pub fn inline_decisions(&self) -> u64 {
        self.inline_decisions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn loaded_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ModuleKey, Arc<LoadedModule>>> {
        self.loaded.write().unwrap_or_else(|e| e.into_inner())
    }

    fn prelink(
        &self,
        component: &Component,
    ) -> Result<bindings::CallPolicyPre<PolicyState>, (LinkFailure, String)> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| (LinkFailure::Imports, format!("{e:#}")))?;
        bindings::CallPolicyPre::new(pre).map_err(|e| (LinkFailure::Exports, format!("{e:#}")))
    }

    fn cache_artifact(&self, key: &ModuleKey, component: &Component) {
        match component.serialize() {
            Ok(artifact) => {
                if let Err(e) = self.store().put_artifact(key, &self.engine_hash, &artifact) {
                    tracing::warn!(module = %key, error = %e, "caching the compiled module failed");
                }
            }
            Err(e) => {
                tracing::warn!(module = %key, error = %e, "serializing the compiled module failed")
            }
        }
    }

    /// A loaded module version, compiling it (or loading its cached artifact) on first use.
    pub fn load(&self, key: &ModuleKey) -> Result<Arc<LoadedModule>, BindError> {
        if let Some(m) = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Ok(m.clone());
        }
        let unknown = || BindError::UnknownVersion(key.to_string());
        let meta = self.store().module_version(key)?.ok_or_else(unknown)?;
        let unloadable = |e: String| BindError::Unloadable(key.to_string(), e);
        let component = match self.store().artifact(key, &self.engine_hash)? {
            // SAFETY: the artifact was produced by `Component::serialize` of an engine with
            // the same compatibility hash and stored in our own database, never taken
            // from a client; wasmtime's own checks reject a mismatched engine.
            #[allow(unsafe_code, reason = "loading our own cached compiled artifact")]
            Some(artifact) => unsafe { Component::deserialize(&self.engine, &artifact) }
                .map_err(|e| unloadable(format!("{e:#}")))?,
            None => {
                let bytes = self.store().module_bytes(key)?.ok_or_else(unknown)?;
                let c = self
                    .compile(&bytes)
                    .map_err(|e| unloadable(format!("{e:#}")))?;
                self.cache_artifact(key, &c);
                c
            }
        };
        let pre = self.prelink(&component).map_err(|(_, e)| unloadable(e))?;
        let module = Arc::new(LoadedModule {
            meta,
            pre,
            lane: Default::default(),
        });
        self.loaded_mut().insert(key.clone(), module.clone());
        Ok(module)
    }

    /// Run `hook` on a version, outside any binding (the `simulate` API). Blocking.
    pub fn simulate(
        &self,
        key: &ModuleKey,
        hook: HookCall,
        limits: RunLimits,
    ) -> Result<Invocation, BindError> {
        let module = self.load(key)?;
        let call_id = hook.call().call_id.clone();
        let inv = invoke::run(
            &self.engine,
            &self.ticker,
            &self.runtime,
            &module,
            hook,
            limits,
        );
        // A simulated call ends here: caller pool numbers it borrowed come back.
        self.runtime.pools.release(&call_id);
        self.health.record(
            key,
            inv.elapsed_us,
            inv.answer.as_ref().err().map(|f| f.kind),
            &inv.logs,
            inv.quota_refusals,
        );
        Ok(inv)
    }

    /// Health of a version.
    pub fn health(&self, key: &ModuleKey) -> HealthReport {
        self.health.report(key)
    }

    // ---- bindings ------------------------------------------------------------------

    /// The active bindings.
    pub fn bindings(&self) -> Vec<Arc<Binding>> {
        let mut all: Vec<_> = self
            .bindings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|b| b.slot());
        all
    }

    /// The binding of a slot.
    pub fn binding(&self, scope: &Slot) -> Option<Arc<Binding>> {
        self.bindings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .cloned()
    }

    /// Activate `binding` (or with `None` remove the scope's binding) atomically: calls
    /// already holding a [`BoundPolicy`] finish on the version they started with.
    /// Blocking (may compile; flushes before returning).
    pub fn set_binding(
        &self,
        scope: &Slot,
        binding: Option<Binding>,
        action: &str,
    ) -> Result<(), BindError> {
        if let Some(b) = &binding {
            validate_binding(b)?;
            for version in binding_versions(b) {
                self.load(&binding_key(b, version))?;
            }
        }
        let _serial = self
            .binding_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.store().set_binding(scope, binding.as_ref(), action)?;
        self.store().commit_blocking()?;
        self.install(scope, binding);
        Ok(())
    }

    fn install(&self, scope: &Slot, binding: Option<Binding>) {
        let mut bindings = self.write_bindings();
        match binding {
            Some(b) => bindings.insert(scope.clone(), Arc::new(b)),
            None => bindings.remove(scope),
        };
    }

    /// Restore the binding the scope's last change replaced. `Ok(None)` when the scope
    /// has no history. Blocking (flushes before returning).
    pub fn rollback(&self, scope: &Slot) -> Result<Option<Option<Binding>>, BindError> {
        let _serial = self
            .binding_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(restored) = self.store().rollback_binding(scope)? else {
            return Ok(None);
        };
        if let Some(b) = &restored {
            for version in binding_versions(b) {
                self.load(&binding_key(b, version))?;
            }
        }
        self.store().commit_blocking()?;
        self.install(scope, restored.clone());
        Ok(Some(restored))
    }

    /// The policy for a new call's routing and failover: the most specific call
    /// binding (mapping gateway, then account, then global), with the canary chosen
    /// by a hash of the Call-ID. `None` when nothing is bound.
    pub fn for_call(self: &Arc<Self>, call: &Call) -> Option<BoundPolicy> {
        self.bound(Hook::Call, call)
    }

    /// The policy that screens a new call when a screen binding applies to it; other
    /// calls are screened by their [`for_call`](Self::for_call) module.
    pub fn screen_for(self: &Arc<Self>, call: &Call) -> Option<BoundPolicy> {
        self.bound(Hook::Screen, call)
    }

    fn bound(self: &Arc<Self>, hook: Hook, call: &Call) -> Option<BoundPolicy> {
        let scopes = [
            (!call.ingress_gateway.is_empty())
                .then(|| Scope::Gateway(call.ingress_gateway.clone())),
            (!call.account.is_empty()).then(|| Scope::Account(call.account.clone())),
            Some(Scope::Global),
        ];
        let binding = scopes
            .into_iter()
            .flatten()
            .find_map(|scope| self.binding(&Slot { hook, scope }))?;
        let canary = binding
            .canary
            .as_ref()
            .filter(|c| canary_bucket(&call.call_id) < (c.percent * 100.0).round() as u64);
        let version = canary.map_or(binding.version.as_str(), |c| c.version.as_str());
        let key = binding_key(&binding, version);
        let module = match self.load(&key) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(call_id = %call.call_id, module = %key, error = %e, "bound module unavailable; using fallback");
                None
            }
        };
        Some(BoundPolicy {
            engine: self.clone(),
            module,
            key,
            is_canary: canary.is_some(),
            binding,
        })
    }

    fn after_invocation(&self, bound: &BoundPolicy, inv: &Invocation) {
        let failure = inv.answer.as_ref().err();
        self.health.record(
            &bound.key,
            inv.elapsed_us,
            failure.map(|f| f.kind),
            &inv.logs,
            inv.quota_refusals,
        );
        self.runtime.metrics.module_decision(
            &bound.key.tenant,
            &bound.key.name,
            &bound.key.version,
            failure.map_or("ok", |f| f.kind.as_str()),
            inv.elapsed_us as f64 / 1e6,
        );
        self.runtime
            .module_decided(&bound.key.tenant, failure.is_some());
        if bound.is_canary && failure.is_some() {
            self.judge_canary(&bound.binding, &bound.key);
        }
    }

    /// Roll a canary back when its failure rate over the window passes its threshold.
    fn judge_canary(&self, binding: &Binding, key: &ModuleKey) {
        let Some(rule) = binding
            .canary
            .as_ref()
            .and_then(|c| c.auto_rollback.as_ref())
        else {
            return;
        };
        let since = crate::now_ms().saturating_sub(u64::from(rule.window_secs) * 1000);
        let (n, failed) = self.health.window(key, since);
        if n < u64::from(rule.min_invocations)
            || (failed as f64) / (n as f64) <= rule.max_failure_rate
        {
            return;
        }
        let _serial = self
            .binding_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Another call may have rolled it back (or an operator changed it) meanwhile.
        let Some(current) = self.binding(&binding.slot()) else {
            return;
        };
        if current.canary.as_ref().map(|c| &c.version) != Some(&key.version) {
            return;
        }
        let mut rolled = (*current).clone();
        rolled.canary = None;
        rolled.updated_at_ms = crate::now_ms();
        rolled.updated_by = "auto-rollback".into();
        let stored = self
            .store()
            .set_binding(&binding.slot(), Some(&rolled), "auto-rollback")
            .and_then(|()| self.store().commit_blocking());
        match stored {
            Ok(()) => {
                tracing::warn!(scope = %binding.scope, canary = %key, decisions = n, failures = failed, "canary rolled back automatically");
                self.install(&binding.slot(), Some(rolled));
            }
            Err(e) => {
                tracing::error!(scope = %binding.scope, error = %e, "canary auto-rollback could not be stored")
            }
        }
    }
}

enum LinkFailure {
    Imports,
    Exports,
}

fn binding_key(b: &Binding, version: &str) -> ModuleKey {
    ModuleKey {
        tenant: b.tenant.clone(),
        name: b.module.clone(),
        version: version.into(),
    }
}

fn binding_versions(b: &Binding) -> impl Iterator<Item = &str> {
    std::iter::once(b.version.as_str()).chain(b.canary.as_ref().map(|c| c.version.as_str()))
}

fn validate_binding(b: &Binding) -> Result<(), BindError> {
    let invalid = |m: String| Err(BindError::Invalid(m));
    if !(1..=MAX_DEADLINE_MS).contains(&b.deadline_ms) {
        return invalid(format!("deadline_ms must be 1..={MAX_DEADLINE_MS}"));
    }
    if !(1..=MAX_MEMORY_MIB).contains(&b.memory_mib) {
        return invalid(format!("memory_mib must be 1..={MAX_MEMORY_MIB}"));
    }
    if let Some(c) = &b.canary {
        if !(0.0..=100.0).contains(&c.percent) {
            return invalid("canary percent must be 0..=100".into());
        }
        if let Some(r) = &c.auto_rollback {
            if !(0.0..=1.0).contains(&r.max_failure_rate) || r.window_secs == 0 {
                return invalid(
                    "auto_rollback needs window_secs > 0 and max_failure_rate in 0..=1".into(),
                );
            }
        }
    }
    match &b.fallback {
        Fallback::Reject { code, .. } if !(400..=699).contains(code) => {
            invalid("fallback reject code must be 400..=699".into())
        }
        Fallback::Routes { gateways } if gateways.is_empty() || gateways.len() > MAX_ATTEMPTS => {
            invalid(format!("fallback routes need 1..={MAX_ATTEMPTS} gateways"))
        }
        _ => Ok(()),
    }
}

/// Deterministic bucket 0..10_000 of a Call-ID (FNV-1a), for the canary split.
pub fn canary_bucket(call_id: &str) -> u64 {
    let hash = call_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % 10_000
}
