//! The carrier objects policy modules see before the full data model lands: accounts
//! (with their customer rate table), mapping gateways (customer side) and routing
//! gateways (vendor side, with their cost table). Ids are global, because the SIP
//! layer finds them by id; each object belongs to one tenant.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::agents::{self, effective_permissions, AgentScope, Permission, MAX_AGENT_DEPTH};
use super::gateway_settings::{
    check_number_rules, CallerPool, CallerSource, ExtraHeaders, IdentityMode, MediaSettings,
    NumberRule, PrivacyMode, RouteBy,
};
use super::{from_json, key, to_json, Result, Store};

/// A kind of carrier object stored as JSON under its id.
pub trait CarrierObject: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Collection name, also the REST path segment.
    const KIND: &'static str;
    /// Owning tenant.
    fn tenant(&self) -> &str;
    /// Set the owner (the API sets it from the caller's token).
    fn set_tenant(&mut self, tenant: String);
    /// Check the fields; the message says what is wrong.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    /// Derive stored fields from given ones before saving (the object's id given).
    fn prepare(&mut self, _id: &str) {}
    /// Check it against the other stored objects before `id` is stored as it.
    fn check_in(&self, _id: &str, _store: &Store) -> Result<(), String> {
        Ok(())
    }
    /// Why `id` may not be deleted, if it may not.
    fn check_delete(_id: &str, _store: &Store) -> Result<(), String> {
        Ok(())
    }
    /// Take from the object it replaces what a replacement may not change: secrets
    /// it left out, fields the server owns.
    fn keep_from(&mut self, _old: &Self) {}
    /// Remove secrets before the object is shown.
    fn redact(&mut self) {}
    /// Whether an agent token sees this object; agents see no object of a kind
    /// that does not say otherwise.
    fn agent_sees(&self, _id: &str, _agent: &AgentScope, _store: &Store) -> bool {
        false
    }
    /// Why an agent may not store this object as `id` (replacing `old`), if it may not.
    fn agent_may_store(
        &self,
        _id: &str,
        _old: Option<&Self>,
        _agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        Err(format!("agent tokens cannot change {}", Self::KIND))
    }
    /// Why an agent may not delete this object, if it may not.
    fn agent_may_delete(
        &self,
        _id: &str,
        _agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        Err(format!("agent tokens cannot delete {}", Self::KIND))
    }
}

impl MappingGateway {
    /// A gateway of `tenant` billing `account`, with every other setting at its default.
    pub fn for_account(tenant: &str, account: &str) -> MappingGateway {
        MappingGateway {
            tenant: tenant.into(),
            account: account.into(),
            sources: Vec::new(),
            tech_prefix: None,
            cps_limit: 0,
            max_calls: 0,
            caller_source: CallerSource::From,
            support_privacy: false,
            switch_limit: 0,
            route_by: RouteBy::Priority,
            min_profit: None,
            asr_threshold: None,
            asr_min_attempts: ten(),
            caller_rules: Vec::new(),
            callee_rules: Vec::new(),
            media: MediaSettings::default(),
        }
    }

    /// Whether calls from `ip` belong to this gateway.
    pub fn matches_source(&self, ip: std::net::IpAddr) -> bool {
        self.sources.iter().any(|s| crate::sip::ip_in(s, ip))
    }
}

/// A customer account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Owning tenant (set by the server).
    #[serde(default)]
    pub tenant: String,
    /// Data table holding the customer's rates (rows: prefix, per-minute,
    /// connection fee, first increment s, next increment s, effective from; see
    /// [`crate::billing::Rate`]). An account without one
    /// is not billed; with one, a number it has no rate for is refused.
    #[serde(default)]
    pub rate_table: Option<String>,
    /// False refuses its calls.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Prepaid: calls stop at a zero balance. Postpaid: at minus the credit limit.
    #[serde(default = "yes")]
    pub prepaid: bool,
    /// Money on the account. Set when the account is created; afterwards only
    /// payments and calls change it (a PUT keeps the stored balance).
    #[serde(default)]
    pub balance: crate::billing::Money,
    /// How far a postpaid balance may go below zero ("maximum credit allowed before
    /// call blocking").
    #[serde(default)]
    pub credit_limit: crate::billing::Money,
    /// Concurrent calls over all its gateways; 0 = unlimited.
    #[serde(default)]
    pub max_calls: u32,
    /// Number section limitation: when not empty, only callees starting with one of
    /// these may be called.
    #[serde(default)]
    pub allowed_prefixes: Vec<String>,
    /// Callees starting with one of these are refused.
    #[serde(default)]
    pub blocked_prefixes: Vec<String>,
    /// The agent account above it; an account with sub-accounts is an agent. Number
    /// sections apply down the tree: a call must pass its account's and every agent's.
    #[serde(default)]
    pub parent: Option<String>,
    /// Work calendar whose periods pick among `period_rate_tables`.
    #[serde(default)]
    pub calendar: Option<String>,
    /// Rate table per period name of the calendar; a number the period's table has no
    /// rate for falls back to `rate_table`.
    #[serde(default)]
    pub period_rate_tables: std::collections::BTreeMap<String, String>,
    /// Agent authorisations for tokens bound to this account; they must be a subset of
    /// the parent's, and are narrowed by every agent above it.
    #[serde(default)]
    pub permissions: std::collections::BTreeSet<Permission>,
}

impl Default for Account {
    /// What a PUT of `{}` stores: enabled, prepaid, unbilled, nothing on it.
    fn default() -> Self {
        Account {
            tenant: String::new(),
            rate_table: None,
            enabled: yes(),
            prepaid: yes(),
            balance: crate::billing::Money::ZERO,
            credit_limit: crate::billing::Money::ZERO,
            max_calls: 0,
            allowed_prefixes: Vec::new(),
            blocked_prefixes: Vec::new(),
            parent: None,
            calendar: None,
            period_rate_tables: Default::default(),
            permissions: Default::default(),
        }
    }
}

impl Account {
    /// Whether its number section limitation lets it call `callee`.
    pub fn may_call(&self, callee: &str) -> bool {
        let starts = |p: &String| callee.starts_with(p.as_str());
        (self.allowed_prefixes.is_empty() || self.allowed_prefixes.iter().any(starts))
            && !self.blocked_prefixes.iter().any(starts)
    }

    /// What its calls may still spend (before other calls' reservations).
    pub fn funds(&self) -> crate::billing::Money {
        match self.prepaid {
            true => self.balance,
            false => self.balance + self.credit_limit,
        }
    }
}

/// A customer-side gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingGateway {
    /// Owning tenant (set by the server).
    #[serde(default)]
    pub tenant: String,
    /// Account the gateway's calls are billed to.
    pub account: String,
    /// Source addresses it calls from: IPs or CIDR prefixes (`10.0.0.0/8`, `::1`).
    #[serde(default)]
    pub sources: Vec<String>,
    /// When set, only callees starting with it match this gateway; it is stripped.
    #[serde(default)]
    pub tech_prefix: Option<String>,
    /// New calls per second accepted; 0 = unlimited.
    #[serde(default)]
    pub cps_limit: u32,
    /// Concurrent calls; 0 = unlimited.
    #[serde(default)]
    pub max_calls: u32,
    /// Where the caller number is read.
    #[serde(default)]
    pub caller_source: CallerSource,
    /// Let the caller's Privacy header through (needed for a vendor's `privacy:
    /// passthrough`).
    #[serde(default)]
    pub support_privacy: bool,
    /// Routing gateways one of its calls may try; 0 = no limit.
    #[serde(default)]
    pub switch_limit: u32,
    /// How gateways of one prefix are ordered for its calls.
    #[serde(default)]
    pub route_by: RouteBy,
    /// Skip a vendor whose cost per minute is above the customer's rate less this.
    #[serde(default)]
    pub min_profit: Option<f64>,
    /// Demote, within its prefix, a vendor whose answer-seizure ratio over the
    /// statistics window is below this (0-1; SS_GATEWAYASRROUTESORTCONFIG) ...
    #[serde(default)]
    pub asr_threshold: Option<f32>,
    /// ... once it has had at least this many attempts in the window.
    #[serde(default = "ten")]
    pub asr_min_attempts: u32,
    /// Caller dial plan: rewrites of the caller number as it arrives, before routing,
    /// billing and the module see it (first matching rule).
    #[serde(default)]
    pub caller_rules: Vec<NumberRule>,
    /// Callee dial plan, likewise (after the tech prefix is stripped).
    #[serde(default)]
    pub callee_rules: Vec<NumberRule>,
    /// Media settings of the caller leg.
    #[serde(default)]
    pub media: MediaSettings,
}

/// A vendor-side gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingGateway {
    /// Owning tenant (set by the server).
    #[serde(default)]
    pub tenant: String,
    /// Groups it belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Maximum concurrent calls; 0 = unlimited.
    #[serde(default)]
    pub capacity: u32,
    /// Routing priority, lower first.
    #[serde(default)]
    pub priority: u32,
    /// False takes it out of service.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Data table holding its cost rates (same row layout as an account's rate table).
    #[serde(default)]
    pub cost_table: Option<String>,
    /// Work calendar whose periods pick among `period_cost_tables`.
    #[serde(default)]
    pub calendar: Option<String>,
    /// Cost table per period name of the calendar; a number the period's table has no
    /// rate for falls back to `cost_table`.
    #[serde(default)]
    pub period_cost_tables: std::collections::BTreeMap<String, String>,
    /// SIP address `host:port` (IPv6 as `[::1]:5060`); a gateway without one is skipped.
    #[serde(default)]
    pub address: Option<String>,
    /// Transport to reach it.
    #[serde(default)]
    pub transport: crate::sip::Transport,
    /// No provisional answer within this time fails the attempt over; ms.
    #[serde(default)]
    pub invite_timeout_ms: Option<u32>,
    /// Provisional but no final answer within this time fails the attempt over; ms.
    #[serde(default)]
    pub progress_timeout_ms: Option<u32>,
    /// Send an OPTIONS ping this often, seconds; none = no health checks.
    #[serde(default)]
    pub options_interval_secs: Option<u32>,
    /// Unanswered pings in a row that mark it down.
    #[serde(default = "three")]
    pub down_after: u32,
    /// Answered pings in a row that bring it back up.
    #[serde(default = "two")]
    pub up_after: u32,
    /// Digest username answering the gateway's 401/407 challenges (calls and
    /// registration); also the user we register as.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// Its password. Kept, since answering a challenge needs it, but never shown: the
    /// API leaves it out, and a PUT without one keeps the stored one for the same user.
    #[serde(default)]
    pub auth_password: Option<String>,
    /// Register to the gateway as a user agent (needs `address` and `auth_user`).
    #[serde(default)]
    pub register: bool,
    /// Registration expiry asked for, s (20-7200); none = the server's
    /// `ua_register_expires_secs` (SS_SIP_USER_AGENT_EXPIRE).
    #[serde(default)]
    pub register_expires_secs: Option<u32>,
    /// Prepended to the callee towards this vendor.
    #[serde(default)]
    pub tech_prefix: Option<String>,
    /// New calls per second sent to it; 0 = unlimited.
    #[serde(default)]
    pub cps_limit: u32,
    /// P-Asserted-Identity towards it.
    #[serde(default)]
    pub pai: IdentityMode,
    /// Privacy towards it.
    #[serde(default)]
    pub privacy: PrivacyMode,
    /// P-Preferred-Identity towards it.
    #[serde(default)]
    pub ppi: IdentityMode,
    /// Caller numbers to send instead of the caller's own.
    #[serde(default)]
    pub caller_pool: Option<CallerPool>,
    /// Extra headers of the caller's INVITE that go on to it (the stock router copies
    /// them).
    #[serde(default)]
    pub extra_headers: ExtraHeaders,
    /// Caller dial plan towards this vendor (the stock router applies it, before the
    /// identity headers are built).
    #[serde(default)]
    pub caller_rules: Vec<NumberRule>,
    /// Callee dial plan towards this vendor, applied before the tech prefix.
    #[serde(default)]
    pub callee_rules: Vec<NumberRule>,
    /// Dial plan of the caller number in the P-Asserted-Identity (and
    /// P-Preferred-Identity) built for this vendor, after `caller_rules`.
    #[serde(default)]
    pub pai_rules: Vec<NumberRule>,
    /// Only calls from these mapping gateways may use it; empty lets every one.
    #[serde(default)]
    pub allowed_customers: Vec<String>,
    /// Calls from these mapping gateways may not use it.
    #[serde(default)]
    pub blocked_customers: Vec<String>,
    /// Protect route: tried only after every normal gateway of the call failed or was
    /// skipped.
    #[serde(default)]
    pub protect: bool,
    /// Switch gateway until connect: a failure here moves the call to the next
    /// gateway; false returns it to the caller.
    #[serde(default = "yes")]
    pub switch_until_connect: bool,
    /// Final responses from it that end the hunt at once and go back to the caller.
    #[serde(default = "default_stop_codes")]
    pub stop_codes: Vec<u16>,
    /// Media settings of the callee leg.
    #[serde(default)]
    pub media: MediaSettings,
}

/// The stop-switching codes of a gateway that names none: busy, cancelled, forbidden,
/// no such number, declined.
fn default_stop_codes() -> Vec<u16> {
    vec![403, 404, 486, 487, 603]
}

/// A phone: a SIP user that registers and places calls with digest credentials. Its id
/// is the username. The password given in a PUT is replaced by its HA1 values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phone {
    /// Owning tenant (set by the server).
    #[serde(default)]
    pub tenant: String,
    /// Mapping gateway whose account, limits and module binding its calls use.
    pub mapping_gateway: String,
    /// The password, on input only: never stored or returned.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// MD5(user:realm:password).
    #[serde(default)]
    pub ha1_md5: String,
    /// SHA-256(user:realm:password).
    #[serde(default)]
    pub ha1_sha256: String,
}

impl CarrierObject for Phone {
    const KIND: &'static str = "phones";
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn set_tenant(&mut self, tenant: String) {
        self.tenant = tenant;
    }
    fn validate(&self) -> Result<(), String> {
        match &self.password {
            Some(p) if p.len() < 8 => Err("password must be at least 8 characters".into()),
            None if self.ha1_md5.is_empty() => Err("password is required".into()),
            _ => Ok(()),
        }
    }
    fn agent_sees(&self, _id: &str, agent: &AgentScope, store: &Store) -> bool {
        agents::phones::sees(self, agent, store)
    }
    fn agent_may_store(
        &self,
        _id: &str,
        old: Option<&Self>,
        agent: &AgentScope,
        store: &Store,
    ) -> Result<(), String> {
        if let Some(old) = old {
            agents::phones::may_change(old, agent, store)?;
        }
        agents::phones::may_change(self, agent, store)
    }
    fn agent_may_delete(&self, _id: &str, agent: &AgentScope, store: &Store) -> Result<(), String> {
        agents::phones::may_change(self, agent, store)
    }
    fn prepare(&mut self, id: &str) {
        use crate::sip::digest::{ha1, Algorithm, REALM};
        if let Some(password) = self.password.take() {
            self.ha1_md5 = ha1(Algorithm::Md5, id, REALM, &password);
            self.ha1_sha256 = ha1(Algorithm::Sha256, id, REALM, &password);
        }
    }
}

impl Default for RoutingGateway {
    /// What a PUT of `{}` stores.
    fn default() -> Self {
        RoutingGateway {
            tenant: String::new(),
            groups: Vec::new(),
            capacity: 0,
            priority: 0,
            enabled: yes(),
            cost_table: None,
            calendar: None,
            period_cost_tables: Default::default(),
            address: None,
            transport: crate::sip::Transport::Udp,
            invite_timeout_ms: None,
            progress_timeout_ms: None,
            options_interval_secs: None,
            down_after: three(),
            up_after: two(),
            auth_user: None,
            auth_password: None,
            register: false,
            register_expires_secs: None,
            tech_prefix: None,
            cps_limit: 0,
            pai: IdentityMode::None,
            privacy: PrivacyMode::None,
            ppi: IdentityMode::None,
            caller_pool: None,
            extra_headers: ExtraHeaders::default(),
            caller_rules: Vec::new(),
            callee_rules: Vec::new(),
            pai_rules: Vec::new(),
            allowed_customers: Vec::new(),
            blocked_customers: Vec::new(),
            protect: false,
            switch_until_connect: yes(),
            stop_codes: default_stop_codes(),
            media: MediaSettings::default(),
        }
    }
}

fn three() -> u32 {
    3
}

fn ten() -> u32 {
    10
}

fn two() -> u32 {
    2
}

fn yes() -> bool {
    true
}

macro_rules! owned_by_tenant {
    ($ty:ty, $kind:literal, $validate:expr) => {
        owned_by_tenant!(@impl $ty, $kind, fn validate(&self) -> Result<(), String> {
            let check: fn(&$ty) -> Result<(), String> = $validate;
            check(self)
        });
    };
    ($ty:ty, $kind:literal) => {
        owned_by_tenant!(@impl $ty, $kind,);
    };
    (@impl $ty:ty, $kind:literal, $($validate:item)?) => {
        impl CarrierObject for $ty {
            const KIND: &'static str = $kind;
            fn tenant(&self) -> &str {
                &self.tenant
            }
            fn set_tenant(&mut self, tenant: String) {
                self.tenant = tenant;
            }
            $($validate)?
        }
    };
}
impl CarrierObject for Account {
    const KIND: &'static str = "accounts";
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn set_tenant(&mut self, tenant: String) {
        self.tenant = tenant;
    }
    fn validate(&self) -> Result<(), String> {
        if self.credit_limit < crate::billing::Money::ZERO {
            return Err("credit_limit must not be negative".into());
        }
        Ok(())
    }
    fn keep_from(&mut self, old: &Self) {
        // Calls and payments own the balance once the account exists.
        self.balance = old.balance;
    }
    fn check_in(&self, id: &str, store: &Store) -> Result<(), String> {
        let accounts = store
            .carrier_snapshot::<Account>()
            .map_err(|e| e.to_string())?;
        // Walk up from the parent: it must exist in the same tenant, and the walk must
        // not come back to this account.
        let mut next = self.parent.as_deref();
        let mut depth = 0;
        while let Some(up) = next {
            if up == id {
                return Err(format!("parent {up:?} would make a loop"));
            }
            depth += 1;
            if depth > MAX_AGENT_DEPTH {
                return Err(format!("agent tree deeper than {MAX_AGENT_DEPTH}"));
            }
            match accounts.get(up) {
                Some(a) if a.tenant == self.tenant => next = a.parent.as_deref(),
                _ => return Err(format!("parent account {up:?} does not exist")),
            }
        }
        // A sub-agent holds at most what its parent holds.
        let held = match &self.parent {
            Some(parent) => effective_permissions(&accounts, parent),
            None => return Ok(()),
        };
        match self.permissions.iter().find(|p| !held.contains(p)) {
            Some(extra) => Err(format!(
                "permission {} is not held by parent {:?}",
                crate::names::variant_name(extra),
                self.parent.as_deref().unwrap_or_default()
            )),
            None => Ok(()),
        }
    }
    fn agent_sees(&self, id: &str, agent: &AgentScope, _store: &Store) -> bool {
        agents::accounts::sees(id, agent)
    }
    fn agent_may_store(
        &self,
        id: &str,
        old: Option<&Self>,
        agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        agents::accounts::may_store(id, self, old, agent)
    }
    fn agent_may_delete(&self, id: &str, agent: &AgentScope, _store: &Store) -> Result<(), String> {
        agents::accounts::may_delete(id, agent)
    }
    fn check_delete(id: &str, store: &Store) -> Result<(), String> {
        let accounts = store
            .carrier_snapshot::<Account>()
            .map_err(|e| e.to_string())?;
        match accounts
            .iter()
            .find(|(_, a)| a.parent.as_deref() == Some(id))
        {
            Some((child, _)) => Err(format!(
                "agent {id:?} has sub-account {child:?}: delete those first"
            )),
            None => Ok(()),
        }
    }
}
owned_by_tenant!(crate::billing::Calendar, "calendars", |c| c.check());
owned_by_tenant!(
    GatewayGroup,
    "gateway-groups",
    |g| match g.reserved > g.capacity && g.capacity > 0 {
        true => Err(format!(
            "reserved {} is above capacity {}",
            g.reserved, g.capacity
        )),
        false => Ok(()),
    }
);

/// Routing gateways sharing a name in their `groups` share this capacity; the last
/// `reserved` lines are kept for failover and protect-route attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayGroup {
    /// Owning tenant (set by the server).
    #[serde(default)]
    pub tenant: String,
    /// Calls in progress the group's gateways may carry together; 0 = unlimited.
    #[serde(default)]
    pub capacity: u32,
    /// Of those, lines a call's first attempt may not take.
    #[serde(default)]
    pub reserved: u32,
}
impl CarrierObject for MappingGateway {
    const KIND: &'static str = "mapping-gateways";
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn set_tenant(&mut self, tenant: String) {
        self.tenant = tenant;
    }
    fn validate(&self) -> Result<(), String> {
        check_number_rules("caller_rules", &self.caller_rules)?;
        check_number_rules("callee_rules", &self.callee_rules)?;
        if let Some(m) = self.min_profit.filter(|m| !m.is_finite()) {
            return Err(format!("min_profit {m} is not a number"));
        }
        if let Some(t) = self.asr_threshold.filter(|t| !(0.0..=1.0).contains(t)) {
            return Err(format!("asr_threshold {t} is outside 0-1"));
        }
        if let Some(bad) = self.sources.iter().find(|s| !crate::sip::valid_source(s)) {
            return Err(format!(
                "source {bad:?} is not an IP address or CIDR prefix"
            ));
        }
        self.media.check()
    }
    fn agent_sees(&self, _id: &str, agent: &AgentScope, _store: &Store) -> bool {
        agents::mapping_gateways::sees(self, agent)
    }
    fn agent_may_store(
        &self,
        _id: &str,
        old: Option<&Self>,
        agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        if let Some(old) = old {
            if !agents::mapping_gateways::sees(old, agent) {
                return Err("that gateway is not in the agent's tree".into());
            }
        }
        agents::mapping_gateways::may_store(self, old, agent)
    }
    fn agent_may_delete(
        &self,
        _id: &str,
        agent: &AgentScope,
        _store: &Store,
    ) -> Result<(), String> {
        agent.require(Permission::AddDeleteGateways)
    }
}
impl CarrierObject for RoutingGateway {
    const KIND: &'static str = "routing-gateways";
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn set_tenant(&mut self, tenant: String) {
        self.tenant = tenant;
    }
    fn validate(&self) -> Result<(), String> {
        if let Some(a) = &self.address {
            if crate::sip::parse_address(a).is_none() {
                return Err(format!("address {a:?} is not host:port"));
            }
        }
        self.media.check()?;
        if let Some(pool) = &self.caller_pool {
            pool.check()?;
        }
        check_number_rules("caller_rules", &self.caller_rules)?;
        check_number_rules("callee_rules", &self.callee_rules)?;
        check_number_rules("pai_rules", &self.pai_rules)?;
        self.extra_headers.check()?;
        if let Some(bad) = self.stop_codes.iter().find(|c| !(300..=699).contains(*c)) {
            return Err(format!("stop code {bad} is not a final failure (300-699)"));
        }
        if self.register && (self.address.is_none() || self.auth_user.is_none()) {
            return Err("register needs address and auth_user".into());
        }
        match self.register_expires_secs {
            Some(s) if !(20..=7200).contains(&s) => {
                Err(format!("register_expires_secs {s} is outside 20-7200"))
            }
            _ => Ok(()),
        }
    }
    fn keep_from(&mut self, old: &Self) {
        if self.auth_password.is_none() && self.auth_user == old.auth_user {
            self.auth_password = old.auth_password.clone();
        }
    }
    fn redact(&mut self) {
        self.auth_password = None;
    }
}

/// Decoded carrier objects, one snapshot per kind, loaded from sled on first use and
/// dropped by every change to that kind. The SIP layer reads gateways on every INVITE
/// and modules on every decision; they change only through the API.
#[derive(Default)]
pub(crate) struct CarrierCache {
    /// `KIND` → `Arc<BTreeMap<String, T>>` of that kind's type.
    kinds: std::sync::RwLock<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
}

/// Every object of one kind by id.
pub type Snapshot<T> = Arc<BTreeMap<String, T>>;

impl Store {
    /// Every object of a kind by id, from memory.
    pub fn carrier_snapshot<T: CarrierObject>(&self) -> Result<Snapshot<T>> {
        let cached = |kinds: &HashMap<&'static str, Arc<dyn Any + Send + Sync>>| {
            kinds
                .get(T::KIND)
                .and_then(|any| any.clone().downcast::<BTreeMap<String, T>>().ok())
        };
        if let Some(snapshot) = cached(
            &self
                .carrier_cache
                .kinds
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        ) {
            return Ok(snapshot);
        }
        // Load under the write lock, so a change that lands meanwhile cannot be
        // overwritten by an older snapshot.
        let mut kinds = self
            .carrier_cache
            .kinds
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = cached(&kinds) {
            return Ok(snapshot);
        }
        let prefix = key(&[T::KIND, ""]);
        let mut all = BTreeMap::new();
        for kv in self.carrier.scan_prefix(&prefix) {
            let (k, v) = kv?;
            all.insert(
                String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                from_json::<T>(&v)?,
            );
        }
        let snapshot = Arc::new(all);
        kinds.insert(T::KIND, snapshot.clone());
        Ok(snapshot)
    }

    /// The cache's write lock: held across a change so no stale snapshot is cached.
    pub(super) fn carrier_cache_lock(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<&'static str, Arc<dyn Any + Send + Sync>>> {
        self.carrier_cache
            .kinds
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// One object by id.
    pub fn carrier_get<T: CarrierObject>(&self, id: &str) -> Result<Option<T>> {
        Ok(self.carrier_snapshot::<T>()?.get(id).cloned())
    }

    /// Create or replace an object.
    pub fn carrier_put<T: CarrierObject>(&self, id: &str, object: &T) -> Result<()> {
        let mut kinds = self
            .carrier_cache
            .kinds
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.carrier.insert(key(&[T::KIND, id]), to_json(object)?)?;
        kinds.remove(T::KIND);
        Ok(())
    }

    /// Create or replace an object as a client asked: what it may not change is taken
    /// from the stored one ([`CarrierObject::keep_from`]) under the same lock that
    /// calls settle under, so a call charged meanwhile is not undone.
    pub fn carrier_replace<T: CarrierObject>(&self, id: &str, object: &mut T) -> Result<()> {
        let mut kinds = self.carrier_cache_lock();
        let k = key(&[T::KIND, id]);
        if let Some(old) = self.carrier.get(&k)? {
            object.keep_from(&from_json::<T>(&old)?);
        }
        self.carrier.insert(k, to_json(object)?)?;
        kinds.remove(T::KIND);
        Ok(())
    }

    /// Remove an object; false when it did not exist.
    pub fn carrier_delete<T: CarrierObject>(&self, id: &str) -> Result<bool> {
        let mut kinds = self
            .carrier_cache
            .kinds
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let existed = self.carrier.remove(key(&[T::KIND, id]))?.is_some();
        kinds.remove(T::KIND);
        Ok(existed)
    }

    /// Every object of a kind with its id, optionally only a tenant's.
    pub fn carrier_list<T: CarrierObject>(&self, tenant: Option<&str>) -> Result<Vec<(String, T)>> {
        Ok(self
            .carrier_snapshot::<T>()?
            .iter()
            .filter(|(_, object)| tenant.is_none_or(|t| t == object.tenant()))
            .map(|(id, object)| (id.clone(), object.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(tenant: &str, account: &str) -> MappingGateway {
        MappingGateway::for_account(tenant, account)
    }

    #[test]
    fn empty_objects_get_the_defaults() {
        let parsed: RoutingGateway = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, RoutingGateway::default());
        let parsed: Account = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, Account::default());
    }

    #[test]
    fn cached_reads_follow_every_change_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("switchyard-carrier-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).unwrap();
            assert!(store.carrier_get::<MappingGateway>("gw").unwrap().is_none());
            store.carrier_put("gw", &gateway("a", "acct-1")).unwrap();
            assert_eq!(
                store
                    .carrier_get::<MappingGateway>("gw")
                    .unwrap()
                    .unwrap()
                    .account,
                "acct-1"
            );
            store.carrier_put("gw", &gateway("a", "acct-2")).unwrap();
            store.carrier_put("other", &gateway("b", "acct-3")).unwrap();
            assert_eq!(
                store
                    .carrier_get::<MappingGateway>("gw")
                    .unwrap()
                    .unwrap()
                    .account,
                "acct-2"
            );
            let ids = |t| {
                store
                    .carrier_list::<MappingGateway>(t)
                    .unwrap()
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(Some("b")), ["other"]);
            assert_eq!(ids(None), ["gw", "other"]);
            // Another kind under the same id is a different object.
            assert!(store.carrier_get::<RoutingGateway>("gw").unwrap().is_none());
            assert!(store.carrier_delete::<MappingGateway>("other").unwrap());
            assert!(!store.carrier_delete::<MappingGateway>("other").unwrap());
            assert_eq!(ids(None), ["gw"]);
            store.commit_blocking().unwrap();
        }
        let store = Store::reopen(&dir).unwrap();
        assert_eq!(
            store
                .carrier_get::<MappingGateway>("gw")
                .unwrap()
                .unwrap()
                .account,
            "acct-2"
        );
        assert!(store
            .carrier_get::<MappingGateway>("other")
            .unwrap()
            .is_none());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
