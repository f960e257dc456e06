//! The host services a module may call, as one trait so module logic can be tested
//! natively against [`crate::fake::FakeHost`].

use crate::wit::switchyard::callctl as imports;
use crate::{
    Error, Gateway, GroupSettings, Level, LocalTime, MappingSettings, Rate, RoutingSettings, Row,
    Traffic,
};

/// Services the switch offers a module. See the WIT files for the full contract.
pub trait Host {
    /// Every routing gateway of the tenant, with live state.
    fn gateways(&self) -> Vec<Gateway>;
    /// One routing gateway by id.
    fn gateway(&self, id: &str) -> Result<Gateway, Error>;
    /// Vendor cost of `number` through `gateway`.
    fn vendor_cost(&self, gateway: &str, number: &str) -> Result<Option<Rate>, Error>;
    /// Customer rate of `number` for `account`.
    fn customer_rate(&self, account: &str, number: &str) -> Result<Option<Rate>, Error>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Civil time at `at_ms` in IANA zone `zone`.
    fn local_time(&self, zone: &str, at_ms: u64) -> Result<LocalTime, Error>;
    /// Rows of `table` whose key equals `key`.
    fn table_exact(&self, table: &str, key: &str) -> Result<Vec<Row>, Error>;
    /// Rows of the longest key of `table` that prefixes `number`.
    fn table_longest_prefix(&self, table: &str, number: &str) -> Result<Vec<Row>, Error>;
    /// Rows of every key of `table` that prefixes `number`, longest first.
    fn table_prefixes(&self, table: &str, number: &str, max_rows: u32) -> Result<Vec<Row>, Error>;
    /// Persisted module state: the value under `key`.
    fn state_get(&self, key: &str) -> Option<String>;
    /// Persisted module state: store `value` under `key`.
    fn state_set(&self, key: &str, value: &str) -> Result<(), Error>;
    /// Persisted module state: remove `key`.
    fn state_delete(&self, key: &str);
    /// Count an event under `key`; returns the count within the last `window_secs`.
    fn incr(&self, key: &str, window_secs: u32) -> Result<u64, Error>;
    /// The count under `key` within the last `window_secs`, without counting.
    fn count(&self, key: &str, window_secs: u32) -> Result<u64, Error>;
    /// Log a line (tagged with the call id by the host).
    fn log(&self, level: Level, message: &str);
    /// A routing gateway's settings: tech prefix, identity modes, caller pool, failover
    /// rules. Default: not found (a host of your own need not carry them).
    fn routing_gateway(&self, id: &str) -> Result<RoutingSettings, Error> {
        Err(Error::NotFound(format!("routing gateway {id:?}")))
    }
    /// A mapping gateway's settings (a call's `ingress_gateway`). Default: not found.
    fn mapping_gateway(&self, id: &str) -> Result<MappingSettings, Error> {
        Err(Error::NotFound(format!("mapping gateway {id:?}")))
    }
    /// A routing gateway's traffic over the statistics window. Default: not found.
    fn gateway_traffic(&self, id: &str) -> Result<Traffic, Error> {
        Err(Error::NotFound(format!("routing gateway {id:?}")))
    }
    /// Borrow one of gateway `id`'s caller pool numbers for this call (None when
    /// each is at its multiplex limit). Default: not found.
    fn lease_caller_number(&self, id: &str) -> Result<Option<String>, Error> {
        Err(Error::NotFound(format!(
            "routing gateway {id:?} has no caller pool"
        )))
    }
    /// A gateway group's shared capacity and reserved lines. Default: not found.
    fn gateway_group(&self, id: &str) -> Result<GroupSettings, Error> {
        Err(Error::NotFound(format!("gateway group {id:?}")))
    }
    /// The periods of `account`'s work calendar at `at_ms`. Default: none.
    fn account_periods(&self, account: &str, at_ms: u64) -> Vec<String> {
        let _ = (account, at_ms);
        Vec::new()
    }
    /// Calls of `account` in progress whose callee starts with `callee_prefix`, this
    /// one included. Default: none.
    fn live_calls(&self, account: &str, callee_prefix: &str) -> u32 {
        let _ = (account, callee_prefix);
        0
    }
    /// Raise an event for operators (listed by `GET /api/v1/events`). Default: a log line.
    fn event(&self, level: Level, kind: &str, subject: &str, detail: &str) {
        self.log(level, &format!("event {kind} {subject}: {detail}"));
    }
}

/// The real host: each method is a WIT import. Only usable inside the switch.
#[derive(Debug, Clone, Copy, Default)]
pub struct WasmHost;

impl Host for WasmHost {
    fn gateways(&self) -> Vec<Gateway> {
        imports::gateways::snapshot()
    }
    fn gateway(&self, id: &str) -> Result<Gateway, Error> {
        imports::gateways::get(id)
    }
    fn vendor_cost(&self, gateway: &str, number: &str) -> Result<Option<Rate>, Error> {
        imports::rates::vendor_cost(gateway, number)
    }
    fn customer_rate(&self, account: &str, number: &str) -> Result<Option<Rate>, Error> {
        imports::rates::customer_rate(account, number)
    }
    fn now_ms(&self) -> u64 {
        imports::clock::now_ms()
    }
    fn local_time(&self, zone: &str, at_ms: u64) -> Result<LocalTime, Error> {
        imports::clock::to_local(zone, at_ms)
    }
    fn table_exact(&self, table: &str, key: &str) -> Result<Vec<Row>, Error> {
        imports::tables::exact(table, key)
    }
    fn table_longest_prefix(&self, table: &str, number: &str) -> Result<Vec<Row>, Error> {
        imports::tables::longest_prefix(table, number)
    }
    fn table_prefixes(&self, table: &str, number: &str, max_rows: u32) -> Result<Vec<Row>, Error> {
        imports::tables::prefixes(table, number, max_rows)
    }
    fn state_get(&self, key: &str) -> Option<String> {
        imports::state::get(key)
    }
    fn state_set(&self, key: &str, value: &str) -> Result<(), Error> {
        imports::state::set(key, value)
    }
    fn state_delete(&self, key: &str) {
        imports::state::delete(key)
    }
    fn incr(&self, key: &str, window_secs: u32) -> Result<u64, Error> {
        imports::state::incr(key, window_secs)
    }
    fn count(&self, key: &str, window_secs: u32) -> Result<u64, Error> {
        imports::state::count(key, window_secs)
    }
    fn log(&self, level: Level, message: &str) {
        imports::log::log(level, message)
    }
    fn routing_gateway(&self, id: &str) -> Result<RoutingSettings, Error> {
        imports::carrier::routing_gateway(id)
    }
    fn mapping_gateway(&self, id: &str) -> Result<MappingSettings, Error> {
        imports::carrier::mapping_gateway(id)
    }
    fn gateway_group(&self, id: &str) -> Result<GroupSettings, Error> {
        imports::carrier::gateway_group(id)
    }
    fn gateway_traffic(&self, id: &str) -> Result<Traffic, Error> {
        imports::carrier::gateway_traffic(id)
    }
    fn lease_caller_number(&self, id: &str) -> Result<Option<String>, Error> {
        imports::carrier::lease_caller_number(id)
    }
    fn account_periods(&self, account: &str, at_ms: u64) -> Vec<String> {
        imports::carrier::account_periods(account, at_ms)
    }
    fn live_calls(&self, account: &str, callee_prefix: &str) -> u32 {
        imports::carrier::live_calls(account, callee_prefix)
    }
    fn event(&self, level: Level, kind: &str, subject: &str, detail: &str) {
        imports::log::event(level, kind, subject, detail)
    }
}
