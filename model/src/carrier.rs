//! Carrier objects: accounts (with their customer rate tables), mapping gateways
//! (customer side), routing gateways (vendor side, with their cost tables), phones and
//! gateway groups. Ids are global, because the SIP layer finds them by id; each object
//! belongs to one tenant. Each checks its own fields here, without I/O; checks against
//! other stored objects belong to the store.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::address::{is_host_port, valid_source, Transport};
use crate::credentials::{ha1, Algorithm, REALM};
use crate::gateway::{CallerPool, CallerSource, ExtraHeaders, IdentityMode, PrivacyMode, RouteBy};
use crate::media::MediaSettings;
use crate::numbers::{check_number_rules, NumberRule};
use crate::Money;

/// The eight agent authorisations of VOS3000 (manual §2.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// 1. Add, delete and modify sub-accounts (their rates, limits and prefixes too).
    Accounts,
    /// 2. Add, delete and modify phones of the subtree.
    Phones,
    /// 3. Calling-card batches (kept for parity; Switchyard has no phone cards yet).
    PhoneCards,
    /// 4. Add and delete mapping gateways of the subtree.
    AddDeleteGateways,
    /// 5. Modify a gateway's address, prefixes and other settings.
    ModifyGateways,
    /// 6. Modify a gateway's capacity (concurrent calls, CPS).
    GatewayCapacity,
    /// 7. Pay into its own account and see its payments.
    OwnPayments,
    /// 8. Pay into sub-accounts and see their payments.
    SubAccountPayments,
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
        self.sources.iter().any(|s| crate::address::ip_in(s, ip))
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
    /// `Rate` in the host's billing). An account without one
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
    pub balance: Money,
    /// How far a postpaid balance may go below zero ("maximum credit allowed before
    /// call blocking").
    #[serde(default)]
    pub credit_limit: Money,
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
    pub permissions: BTreeSet<Permission>,
}

impl Default for Account {
    /// What a PUT of `{}` stores: enabled, prepaid, unbilled, nothing on it.
    fn default() -> Self {
        Account {
            tenant: String::new(),
            rate_table: None,
            enabled: yes(),
            prepaid: yes(),
            balance: Money::ZERO,
            credit_limit: Money::ZERO,
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
    pub fn funds(&self) -> Money {
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
    pub transport: Transport,
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

/// Response codes after which a carrier normally stops trying other vendors: the
/// callee was reached and said no, or the number is wrong everywhere (forbidden, no
/// such number, busy, cancelled, declined). A gateway that names no `stop_codes` has
/// these; the host's fallback failover and the SDK's stock rule use them too.
pub const DEFAULT_STOP_CODES: [u16; 5] = [403, 404, 486, 487, 603];

fn default_stop_codes() -> Vec<u16> {
    DEFAULT_STOP_CODES.to_vec()
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
            transport: Transport::Udp,
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

impl Account {
    /// Check the fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.credit_limit < Money::ZERO {
            return Err("credit_limit must not be negative".into());
        }
        Ok(())
    }
}

impl MappingGateway {
    /// Check the fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        check_number_rules("caller_rules", &self.caller_rules)?;
        check_number_rules("callee_rules", &self.callee_rules)?;
        if let Some(m) = self.min_profit.filter(|m| !m.is_finite()) {
            return Err(format!("min_profit {m} is not a number"));
        }
        if let Some(t) = self.asr_threshold.filter(|t| !(0.0..=1.0).contains(t)) {
            return Err(format!("asr_threshold {t} is outside 0-1"));
        }
        if let Some(bad) = self.sources.iter().find(|s| !valid_source(s)) {
            return Err(format!(
                "source {bad:?} is not an IP address or CIDR prefix"
            ));
        }
        self.media.check()
    }
}

impl RoutingGateway {
    /// Check the fields; the message says what is wrong. The address is checked for
    /// its form only: a name is resolved when the gateway is called.
    pub fn check(&self) -> Result<(), String> {
        if let Some(a) = &self.address {
            if !is_host_port(a) {
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

    /// Keep the stored password when a replacement for the same user leaves it out.
    pub fn keep_secret_from(&mut self, old: &RoutingGateway) {
        if self.auth_password.is_none() && self.auth_user == old.auth_user {
            self.auth_password = old.auth_password.clone();
        }
    }

    /// Remove the password before the gateway is shown.
    pub fn redact(&mut self) {
        self.auth_password = None;
    }
}

impl Phone {
    /// Check the fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match &self.password {
            Some(p) if p.len() < 8 => Err("password must be at least 8 characters".into()),
            None if self.ha1_md5.is_empty() => Err("password is required".into()),
            _ => Ok(()),
        }
    }

    /// Replace a given password by its HA1 values for user `id` (never stored).
    pub fn hash_password(&mut self, id: &str) {
        if let Some(password) = self.password.take() {
            self.ha1_md5 = ha1(Algorithm::Md5, id, REALM, &password);
            self.ha1_sha256 = ha1(Algorithm::Sha256, id, REALM, &password);
        }
    }
}

impl GatewayGroup {
    /// Check the fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match self.reserved > self.capacity && self.capacity > 0 {
            true => Err(format!(
                "reserved {} is above capacity {}",
                self.reserved, self.capacity
            )),
            false => Ok(()),
        }
    }
}
