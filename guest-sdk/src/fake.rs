//! An in-memory [`Host`] for unit-testing module logic with plain `cargo test`.
//!
//! ```
//! use switchyard_sdk::fake::FakeHost;
//! use switchyard_sdk::Host;
//!
//! let host = FakeHost::new()
//!     .with_table("routes", &[("44", &["uk-vendor"]), ("4420", &["london-vendor"])])
//!     .with_now_ms(1_700_000_000_000);
//! let rows = host.table_longest_prefix("routes", "442071234567").unwrap();
//! assert_eq!(rows[0].fields, vec!["london-vendor".to_string()]);
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use crate::{
    CallerHeader, Error, ExtraHeaders, Gateway, GroupSettings, Host, IdentityMode, Level,
    LocalTime, MappingSettings, PrivacyMode, Rate, RouteBy, RoutingSettings, Row, Traffic,
};

/// A host whose data you set up in the test. Interior mutability lets hooks that
/// take `&dyn Host` change state and counters as the real host would.
#[derive(Debug, Default)]
pub struct FakeHost {
    gateways: Vec<Gateway>,
    routing: Vec<RoutingSettings>,
    mapping: Vec<MappingSettings>,
    periods: HashMap<String, Vec<String>>,
    groups: Vec<GroupSettings>,
    traffic: HashMap<String, Traffic>,
    /// Pool numbers lent so far, per (gateway, number); nothing comes back in the fake.
    leased: RefCell<HashMap<(String, String), u32>>,
    vendor_costs: HashMap<String, Vec<Rate>>,
    customer_rates: HashMap<String, Vec<Rate>>,
    tables: HashMap<String, Vec<Row>>,
    zones: HashMap<String, i32>,
    now_ms: RefCell<u64>,
    state: RefCell<BTreeMap<String, String>>,
    counters: RefCell<HashMap<String, Vec<u64>>>,
    logs: RefCell<Vec<(Level, String)>>,
    /// Calls in progress per account: callees.
    live: RefCell<HashMap<String, Vec<String>>>,
    events: RefCell<Vec<FakeEvent>>,
}

/// An event a module raised on the fake host.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeEvent {
    /// Its level.
    pub level: Level,
    /// What happened.
    pub kind: String,
    /// Whom it concerns.
    pub subject: String,
    /// In words.
    pub detail: String,
}

impl FakeHost {
    /// An empty host: no gateways, no tables, clock at the Unix epoch, zone "UTC" known.
    pub fn new() -> Self {
        let mut host = FakeHost::default();
        host.zones.insert("UTC".into(), 0);
        host
    }

    /// Add a routing gateway (`up`, with the given capacity and no calls).
    pub fn with_gateway(mut self, id: &str, up: bool, capacity: u32) -> Self {
        self.gateways.push(Gateway {
            id: id.into(),
            groups: Vec::new(),
            up,
            capacity,
            current_calls: 0,
            asr: 0.0,
            acd_secs: 0.0,
            window_secs: 300,
            priority: 0,
        });
        self
    }

    /// Add a fully specified routing gateway.
    pub fn with_gateway_record(mut self, gateway: Gateway) -> Self {
        self.gateways.push(gateway);
        self
    }

    /// Set a routing gateway's settings (start from [`routing_settings`]).
    pub fn with_routing_settings(mut self, settings: RoutingSettings) -> Self {
        self.routing.retain(|s| s.id != settings.id);
        self.routing.push(settings);
        self
    }

    /// Set a mapping gateway's settings (start from [`mapping_settings`]).
    pub fn with_mapping_settings(mut self, settings: MappingSettings) -> Self {
        self.mapping.retain(|s| s.id != settings.id);
        self.mapping.push(settings);
        self
    }

    /// Set a routing gateway's traffic: `attempts` in the window, `answered` of them.
    pub fn with_traffic(mut self, id: &str, attempts: u64, answered: u64) -> Self {
        let asr = match attempts {
            0 => 0.0,
            n => answered as f32 / n as f32,
        };
        let traffic = Traffic {
            attempts,
            answered,
            asr,
            window_secs: 300,
        };
        self.traffic.insert(id.into(), traffic);
        self
    }

    /// Define a gateway group (gateways join it through their `groups`).
    pub fn with_group(mut self, id: &str, capacity: u32, reserved: u32) -> Self {
        self.groups.push(GroupSettings {
            id: id.into(),
            capacity,
            reserved,
        });
        self
    }

    /// Put `account`'s work calendar in `periods`, whatever the time.
    pub fn with_account_periods(mut self, account: &str, periods: &[&str]) -> Self {
        let periods = periods.iter().map(|p| p.to_string()).collect();
        self.periods.insert(account.into(), periods);
        self
    }

    /// Load a data table from `(key, fields)` pairs, in order.
    pub fn with_table(mut self, name: &str, rows: &[(&str, &[&str])]) -> Self {
        let rows = rows
            .iter()
            .map(|(key, fields)| Row {
                key: key.to_string(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
            })
            .collect();
        self.tables.insert(name.into(), rows);
        self
    }

    /// Set a vendor cost prefix for `gateway`.
    pub fn with_vendor_cost(mut self, gateway: &str, rate: Rate) -> Self {
        self.vendor_costs
            .entry(gateway.into())
            .or_default()
            .push(rate);
        self
    }

    /// Set a customer rate prefix for `account`.
    pub fn with_customer_rate(mut self, account: &str, rate: Rate) -> Self {
        self.customer_rates
            .entry(account.into())
            .or_default()
            .push(rate);
        self
    }

    /// Know time zone `name` as a fixed offset from UTC (no DST in the fake).
    pub fn with_zone(mut self, name: &str, utc_offset_secs: i32) -> Self {
        self.zones.insert(name.into(), utc_offset_secs);
        self
    }

    /// Set the clock.
    pub fn with_now_ms(self, now_ms: u64) -> Self {
        self.set_now_ms(now_ms);
        self
    }

    /// Move the clock (counters' windows follow it).
    pub fn set_now_ms(&self, now_ms: u64) {
        *self.now_ms.borrow_mut() = now_ms;
    }

    /// Every line logged so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    /// Set the calls of `account` in progress (their callees), as `live_calls` counts them.
    pub fn set_live_calls(&self, account: &str, callees: &[&str]) {
        self.live.borrow_mut().insert(
            account.into(),
            callees.iter().map(|c| c.to_string()).collect(),
        );
    }

    /// Every event raised so far.
    pub fn events(&self) -> Vec<FakeEvent> {
        self.events.borrow().clone()
    }
}

/// A routing gateway's settings as the switch stores a gateway configured with `{}`:
/// no tech prefix or pool, no identity headers, switching on, the default stop codes.
pub fn routing_settings(id: &str) -> RoutingSettings {
    RoutingSettings {
        id: id.into(),
        tech_prefix: None,
        pai: IdentityMode::None,
        privacy: PrivacyMode::None,
        ppi: IdentityMode::None,
        caller_pool: None,
        extra_headers: ExtraHeaders::None,
        caller_rules: Vec::new(),
        callee_rules: Vec::new(),
        pai_rules: Vec::new(),
        allowed_customers: Vec::new(),
        blocked_customers: Vec::new(),
        protect: false,
        switch_until_connect: true,
        stop_codes: crate::STOP_SWITCHING_CODES.to_vec(),
        invite_timeout_ms: None,
        cost_table: None,
    }
}

/// A mapping gateway's settings as the switch stores one for `account` with nothing
/// else set: caller from From, no privacy, no switch limit, priority order, no
/// minimum profit.
pub fn mapping_settings(id: &str, account: &str) -> MappingSettings {
    MappingSettings {
        id: id.into(),
        account: account.into(),
        caller_source: CallerHeader::From,
        support_privacy: false,
        switch_limit: 0,
        route_by: RouteBy::Priority,
        min_profit: None,
        asr_threshold: None,
        asr_min_attempts: 10,
    }
}

fn longest_rate(rates: Option<&Vec<Rate>>, number: &str) -> Option<Rate> {
    rates?
        .iter()
        .filter(|r| number.starts_with(&r.prefix))
        .max_by_key(|r| r.prefix.len())
        .cloned()
}

impl Host for FakeHost {
    fn gateways(&self) -> Vec<Gateway> {
        self.gateways.clone()
    }
    fn gateway(&self, id: &str) -> Result<Gateway, Error> {
        self.gateways
            .iter()
            .find(|g| g.id == id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("gateway {id}")))
    }
    fn vendor_cost(&self, gateway: &str, number: &str) -> Result<Option<Rate>, Error> {
        Ok(longest_rate(self.vendor_costs.get(gateway), number))
    }
    fn customer_rate(&self, account: &str, number: &str) -> Result<Option<Rate>, Error> {
        Ok(longest_rate(self.customer_rates.get(account), number))
    }
    fn now_ms(&self) -> u64 {
        *self.now_ms.borrow()
    }
    fn local_time(&self, zone: &str, at_ms: u64) -> Result<LocalTime, Error> {
        let offset = *self
            .zones
            .get(zone)
            .ok_or_else(|| Error::NotFound(format!("time zone {zone}")))?;
        Ok(crate::time::civil_from_unix((at_ms / 1000) as i64, offset))
    }
    fn table_exact(&self, table: &str, key: &str) -> Result<Vec<Row>, Error> {
        Ok(self
            .rows(table)?
            .iter()
            .filter(|r| r.key == key)
            .cloned()
            .collect())
    }
    fn table_longest_prefix(&self, table: &str, number: &str) -> Result<Vec<Row>, Error> {
        let rows = self.rows(table)?;
        let best = rows
            .iter()
            .filter(|r| number.starts_with(&r.key))
            .map(|r| r.key.len())
            .max();
        Ok(match best {
            Some(len) => rows
                .iter()
                .filter(|r| r.key.len() == len && number.starts_with(&r.key))
                .cloned()
                .collect(),
            None => Vec::new(),
        })
    }
    fn table_prefixes(&self, table: &str, number: &str, max_rows: u32) -> Result<Vec<Row>, Error> {
        let mut matching: Vec<Row> = self
            .rows(table)?
            .iter()
            .filter(|r| number.starts_with(&r.key))
            .cloned()
            .collect();
        // Stable sort keeps load order within one key.
        matching.sort_by_key(|r| std::cmp::Reverse(r.key.len()));
        matching.truncate(max_rows as usize);
        Ok(matching)
    }
    fn state_get(&self, key: &str) -> Option<String> {
        self.state.borrow().get(key).cloned()
    }
    fn state_set(&self, key: &str, value: &str) -> Result<(), Error> {
        self.state.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }
    fn state_delete(&self, key: &str) {
        self.state.borrow_mut().remove(key);
    }
    fn incr(&self, key: &str, window_secs: u32) -> Result<u64, Error> {
        let now = self.now_ms();
        self.counters
            .borrow_mut()
            .entry(key.into())
            .or_default()
            .push(now);
        self.count(key, window_secs)
    }
    fn count(&self, key: &str, window_secs: u32) -> Result<u64, Error> {
        let now = self.now_ms();
        let since = now.saturating_sub(u64::from(window_secs) * 1000);
        Ok(self.counters.borrow().get(key).map_or(0, |hits| {
            hits.iter().filter(|&&t| t > since && t <= now).count() as u64
        }))
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.into()));
    }
    fn live_calls(&self, account: &str, callee_prefix: &str) -> u32 {
        self.live.borrow().get(account).map_or(0, |calls| {
            calls
                .iter()
                .filter(|c| c.starts_with(callee_prefix))
                .count() as u32
        })
    }
    fn event(&self, level: Level, kind: &str, subject: &str, detail: &str) {
        self.events.borrow_mut().push(FakeEvent {
            level,
            kind: kind.into(),
            subject: subject.into(),
            detail: detail.into(),
        });
    }
    fn routing_gateway(&self, id: &str) -> Result<RoutingSettings, Error> {
        self.routing
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("routing gateway {id:?}")))
    }
    fn mapping_gateway(&self, id: &str) -> Result<MappingSettings, Error> {
        self.mapping
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("mapping gateway {id:?}")))
    }
    fn account_periods(&self, account: &str, _at_ms: u64) -> Vec<String> {
        self.periods.get(account).cloned().unwrap_or_default()
    }
    fn gateway_group(&self, id: &str) -> Result<GroupSettings, Error> {
        self.groups
            .iter()
            .find(|g| g.id == id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("gateway group {id:?}")))
    }
    fn gateway_traffic(&self, id: &str) -> Result<Traffic, Error> {
        Ok(self.traffic.get(id).cloned().unwrap_or(Traffic {
            attempts: 0,
            answered: 0,
            asr: 0.0,
            window_secs: 300,
        }))
    }
    /// The first number of the gateway's pool (from its routing settings) under its
    /// multiplex limit, in pool order.
    fn lease_caller_number(&self, id: &str) -> Result<Option<String>, Error> {
        let pool = self
            .routing_gateway(id)?
            .caller_pool
            .ok_or_else(|| Error::NotFound(format!("routing gateway {id:?} has no caller pool")))?;
        let mut leased = self.leased.borrow_mut();
        let free = pool.numbers.iter().find(|n| {
            leased
                .get(&(id.to_string(), n.to_string()))
                .copied()
                .unwrap_or(0)
                < pool.multiplexes.max(1)
        });
        Ok(free.map(|n| {
            *leased.entry((id.to_string(), n.clone())).or_default() += 1;
            n.clone()
        }))
    }
}

impl FakeHost {
    fn rows(&self, table: &str) -> Result<&Vec<Row>, Error> {
        self.tables
            .get(table)
            .ok_or_else(|| Error::NotFound(format!("table {table}")))
    }
}
