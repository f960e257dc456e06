//! Live runtime state, shared by every call and every module invocation: live
//! gateway state (health, calls in progress), traffic windows (ASR, ACD), caller-pool
//! loans, modules' sliding-window counters and indexed data tables, over the store
//! and the business clock. Nothing here is durable; every map is bounded (see
//! [`RuntimeCensus`]). It sits above `store/` and below billing, media, the policy
//! engine and SIP, which all read and feed it.

pub mod alarms;
pub mod events;
pub mod ledger;
pub mod lists;
pub mod live_calls;
pub mod metrics;
pub mod pools;
pub mod traffic;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use crate::clock::Clock;
use crate::store::{Row, Store, TableIndex};

use traffic::{Outcome, Summary, Windows};

/// Most distinct counter keys per module.
pub const MAX_COUNTER_KEYS: usize = 100_000;
/// Most events a counter remembers; a count within a window saturates here.
pub const MAX_COUNTER_EVENTS: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live state of a routing gateway, fed by the SIP layer (health checks, call counts,
/// statistics). A gateway with no entry is up with no traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayLive {
    /// False when health checks marked it down.
    pub down: bool,
    /// Calls in progress.
    pub current_calls: u32,
    /// Answer-seizure ratio over the window.
    pub asr: f32,
    /// Average call duration over the window, seconds.
    pub acd_secs: f32,
}

/// Entries the runtime state holds; none grows with the number of calls that have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeCensus {
    /// Gateways and accounts with traffic windows.
    pub traffic_keys: usize,
    /// Seconds kept over all windows (at most the window's length each).
    pub traffic_seconds: usize,
    /// Calls holding caller-pool numbers.
    pub calls_with_pool_numbers: usize,
    /// (gateway, number) pairs lent.
    pub pool_numbers_lent: usize,
    /// Modules' sliding-window counter keys (capped per module).
    pub module_counter_keys: usize,
    /// Routing gateways with live state.
    pub gateways_live: usize,
    /// Accounts with calls in progress (ended calls leave nothing).
    pub accounts_with_live_calls: usize,
    /// Module events kept (bounded by `events::MAX_EVENTS`).
    pub events: usize,
}

/// Length of the gateway statistics window reported to modules, seconds.
pub const GATEWAY_STATS_WINDOW_SECS: u32 = traffic::WINDOW_SECS;

/// One module's sliding-window counters: event times (ms) per counter key.
type CounterWindows = HashMap<String, VecDeque<u64>>;

/// The live state of the running switch.
pub struct Runtime {
    pub(crate) store: Store,
    /// The business clock: "now" for calendars, rates and modules.
    pub(crate) clock: Arc<Clock>,
    tables: RwLock<HashMap<(String, String), Arc<TableIndex>>>,
    /// By (tenant, module).
    counters: Mutex<HashMap<(String, String), CounterWindows>>,
    live: RwLock<HashMap<String, GatewayLive>>,
    gateway_traffic: Mutex<Windows>,
    account_traffic: Mutex<Windows>,
    /// Caller pool numbers lent to calls.
    pub(crate) pools: pools::Pools,
    /// By (tenant, module): (the second, bytes logged in it).
    log_budget: Mutex<HashMap<(String, String), (u64, u64)>>,
    /// Calls in progress per account, for modules' concurrency rules.
    pub(crate) live_calls: live_calls::LiveCalls,
    /// Events modules raised for operators.
    pub(crate) events: events::Events,
    /// The Prometheus metrics every layer feeds.
    pub metrics: Arc<metrics::Metrics>,
    /// Today's and this month's money and minutes per account.
    pub ledger: ledger::Ledger,
    /// Calls offered and module decisions so far, per tenant.
    activity: Mutex<HashMap<String, TenantActivity>>,
    /// Alarms active and recently cleared.
    pub alarms: alarms::Alarms,
}

/// A tenant's calls and module decisions since start (the dashboard's rates are
/// differences of these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TenantActivity {
    /// Calls offered on its gateways, refused ones included.
    pub calls: u64,
    /// Decisions asked of its modules.
    pub decisions: u64,
    /// Of them, failed (trap, deadline, bad answer ...): the fallback decided.
    pub failures: u64,
}

impl Runtime {
    /// Whether a module may send `bytes` more to the switch's log this second,
    /// at most `per_sec` a second; counts them if so.
    pub fn may_log(
        &self,
        tenant: &str,
        module: &str,
        bytes: u64,
        per_sec: u64,
        now_ms: u64,
    ) -> bool {
        let second = now_ms / 1_000;
        let mut budget = self.log_budget.lock().unwrap_or_else(|e| e.into_inner());
        let entry = budget
            .entry((tenant.to_string(), module.to_string()))
            .or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        if entry.1 + bytes > per_sec {
            return false;
        }
        entry.1 += bytes;
        true
    }

    /// Runtime state over `store`, with nothing live yet.
    pub fn new(store: Store, clock: Arc<Clock>) -> Runtime {
        Runtime {
            store,
            clock,
            tables: RwLock::default(),
            counters: Mutex::default(),
            log_budget: Mutex::default(),
            live: RwLock::default(),
            gateway_traffic: Mutex::default(),
            account_traffic: Mutex::default(),
            pools: Default::default(),
            live_calls: Default::default(),
            events: Default::default(),
            metrics: Default::default(),
            ledger: Default::default(),
            activity: Mutex::default(),
            alarms: Default::default(),
        }
    }

    fn count_activity(&self, tenant: &str, count: impl FnOnce(&mut TenantActivity)) {
        let mut activity = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        match activity.get_mut(tenant) {
            Some(a) => count(a),
            None => count(activity.entry(tenant.to_string()).or_default()),
        }
    }

    /// Count a call offered to `tenant`.
    pub fn call_offered(&self, tenant: &str) {
        self.count_activity(tenant, |a| a.calls += 1);
    }

    /// Count one module decision of `tenant`'s.
    pub fn module_decided(&self, tenant: &str, failed: bool) {
        self.count_activity(tenant, |a| {
            a.decisions += 1;
            a.failures += u64::from(failed);
        });
    }

    /// `tenant`'s calls and decisions so far.
    pub fn activity(&self, tenant: &str) -> TenantActivity {
        let activity = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        activity.get(tenant).copied().unwrap_or_default()
    }

    /// Every tenant's calls and decisions so far.
    pub fn activities(&self) -> Vec<(String, TenantActivity)> {
        let activity = self.activity.lock().unwrap_or_else(|e| e.into_inner());
        activity.iter().map(|(t, a)| (t.clone(), *a)).collect()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A tenant's table, indexed (loaded from the store on first use).
    pub(crate) fn table(
        &self,
        tenant: &str,
        name: &str,
    ) -> crate::store::Result<Option<Arc<TableIndex>>> {
        let k = (tenant.to_string(), name.to_string());
        if let Some(index) = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k)
        {
            return Ok(Some(index.clone()));
        }
        let Some((_, rows)) = self.store.table(tenant, name)? else {
            return Ok(None);
        };
        let index = Arc::new(TableIndex::new(rows));
        self.tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, index.clone());
        Ok(Some(index))
    }

    /// Install a freshly loaded table (after it was stored), or forget a deleted one.
    pub(crate) fn replace_table(&self, tenant: &str, name: &str, rows: Option<Vec<Row>>) {
        let k = (tenant.to_string(), name.to_string());
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        match rows {
            Some(rows) => tables.insert(k, Arc::new(TableIndex::new(rows))),
            None => tables.remove(&k),
        };
    }

    /// Count an event for a module's counter `key` at `now_ms`, or only read it when
    /// `record` is false; returns the events within the last `window_ms`.
    pub(crate) fn counter(
        &self,
        tenant: &str,
        module: &str,
        key: &str,
        window_ms: u64,
        now_ms: u64,
        record: bool,
    ) -> Result<u64, String> {
        let mut all = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let module_counters = all.entry((tenant.into(), module.into())).or_default();
        if !module_counters.contains_key(key) {
            if !record {
                return Ok(0);
            }
            if module_counters.len() >= MAX_COUNTER_KEYS {
                return Err(format!(
                    "a module may keep at most {MAX_COUNTER_KEYS} counters"
                ));
            }
        }
        let events = module_counters.entry(key.into()).or_default();
        if record {
            if events.len() >= MAX_COUNTER_EVENTS {
                events.pop_front();
            }
            events.push_back(now_ms);
        }
        // Events are in arrival order; times may step back with a simulated clock, so count
        // rather than trusting order for the window's lower edge.
        let since = now_ms.saturating_sub(window_ms);
        Ok(events.iter().filter(|&&t| t > since && t <= now_ms).count() as u64)
    }

    /// Forget a module's counters whose key starts with `prefix` (an operator resetting
    /// one account's fraud counters, say); returns how many went.
    pub fn reset_counters(&self, tenant: &str, module: &str, prefix: &str) -> usize {
        let mut all = lock(&self.counters);
        let Some(counters) = all.get_mut(&(tenant.to_string(), module.to_string())) else {
            return 0;
        };
        let before = counters.len();
        counters.retain(|key, _| !key.starts_with(prefix));
        before - counters.len()
    }

    /// The live state of a routing gateway, its ASR and ACD over the traffic window.
    pub fn gateway_live(&self, id: &str) -> GatewayLive {
        let mut live = self
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .unwrap_or_default();
        let traffic = self.gateway_traffic(id);
        live.asr = traffic.asr;
        live.acd_secs = traffic.acd_secs;
        live
    }

    /// Count a finished attempt on a routing gateway.
    pub fn record_attempt(&self, gateway: &str, outcome: Outcome) {
        lock(&self.gateway_traffic).record(gateway, outcome);
    }

    /// Count a finished call of an account.
    pub fn record_call(&self, account: &str, outcome: Outcome) {
        lock(&self.account_traffic).record(account, outcome);
    }

    /// What the runtime state holds in memory, for the census.
    pub fn census(&self) -> RuntimeCensus {
        let (gateway_keys, gateway_seconds) = lock(&self.gateway_traffic).census();
        let (account_keys, account_seconds) = lock(&self.account_traffic).census();
        let (calls_with_pool_numbers, pool_numbers_lent) = self.pools.loans();
        RuntimeCensus {
            traffic_keys: gateway_keys + account_keys,
            traffic_seconds: gateway_seconds + account_seconds,
            calls_with_pool_numbers,
            pool_numbers_lent,
            module_counter_keys: lock(&self.counters).values().map(|c| c.len()).sum(),
            gateways_live: self.live.read().unwrap_or_else(|e| e.into_inner()).len(),
            accounts_with_live_calls: self.live_calls.accounts(),
            events: self.events.len(),
        }
    }

    /// A routing gateway's traffic over the window.
    pub fn gateway_traffic(&self, id: &str) -> Summary {
        lock(&self.gateway_traffic).summary(id, crate::now_ms())
    }

    /// An account's traffic over the window.
    pub fn account_traffic(&self, id: &str) -> Summary {
        lock(&self.account_traffic).summary(id, crate::now_ms())
    }

    /// Count a call starting (+1) or ending (-1) on a routing gateway.
    pub fn adjust_current_calls(&self, id: &str, delta: i32) {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let entry = live.entry(id.to_string()).or_default();
        entry.current_calls = entry.current_calls.saturating_add_signed(delta);
    }

    /// Set a routing gateway's live state (from health checks and call statistics).
    pub fn set_gateway_live(&self, id: &str, live: GatewayLive) {
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.into(), live);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_modules_log_rate_holds_per_second_and_per_module() {
        let dir = std::env::temp_dir().join(format!("sy-log-rate-{}", std::process::id()));
        let store = crate::store::Store::open(&dir).unwrap();
        let runtime = super::Runtime::new(store, std::sync::Arc::default());
        let took = |module: &str, at_ms: u64| {
            (0..100)
                .filter(|_| runtime.may_log("t", module, 4_096, 65_536, at_ms))
                .count()
        };
        assert_eq!(took("a", 1_000), 16, "64 KiB of 4 KiB lines");
        assert_eq!(took("a", 1_999), 0, "the same second");
        assert_eq!(took("b", 1_999), 16, "another module has its own");
        assert_eq!(took("a", 2_000), 16, "a new second");
        drop(runtime);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
