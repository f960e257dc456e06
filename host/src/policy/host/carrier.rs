//! `carrier`: routing and mapping gateways', groups' and calendars' settings as
//! operators stored them, and gateways' traffic, for the calling module's tenant.

use super::super::bindings::carrier::{
    CallerPool, ExtraHeaders, GroupSettings, Host, IdentityMode, MappingSettings, NumberAction,
    NumberRule, PoolSelection, PrivacyMode, RouteBy, RoutingSettings, Traffic,
};
use super::super::bindings::types::{CallerHeader, Error};
use super::PolicyState;
use crate::store;

impl Host for PolicyState {
    fn routing_gateway(&mut self, id: String) -> Result<RoutingSettings, Error> {
        let g: store::RoutingGateway = self.owned(&id, "routing gateway")?;
        Ok(RoutingSettings {
            id,
            tech_prefix: g.tech_prefix,
            pai: identity(g.pai),
            privacy: match g.privacy {
                store::PrivacyMode::None => PrivacyMode::None,
                store::PrivacyMode::Passthrough => PrivacyMode::PassThrough,
                store::PrivacyMode::Id => PrivacyMode::Id,
            },
            ppi: identity(g.ppi),
            caller_pool: g.caller_pool.map(|p| CallerPool {
                numbers: p.numbers,
                selection: match p.selection {
                    store::PoolSelection::RoundRobin => PoolSelection::RoundRobin,
                    store::PoolSelection::Random => PoolSelection::Random,
                },
                multiplexes: p.multiplexes,
                required: p.required,
            }),
            extra_headers: match g.extra_headers {
                store::ExtraHeaders::Only(names) => ExtraHeaders::Only(names),
                store::ExtraHeaders::Mode(store::ExtraHeadersMode::None) => ExtraHeaders::None,
                store::ExtraHeaders::Mode(store::ExtraHeadersMode::All) => ExtraHeaders::All,
            },
            caller_rules: g.caller_rules.iter().map(number_rule).collect(),
            callee_rules: g.callee_rules.iter().map(number_rule).collect(),
            pai_rules: g.pai_rules.iter().map(number_rule).collect(),
            allowed_customers: g.allowed_customers,
            blocked_customers: g.blocked_customers,
            protect: g.protect,
            switch_until_connect: g.switch_until_connect,
            stop_codes: g.stop_codes,
            invite_timeout_ms: g.invite_timeout_ms,
            cost_table: g.cost_table,
        })
    }

    fn mapping_gateway(&mut self, id: String) -> Result<MappingSettings, Error> {
        let g: store::MappingGateway = self.owned(&id, "mapping gateway")?;
        Ok(MappingSettings {
            id,
            account: g.account,
            caller_source: match g.caller_source {
                store::CallerSource::From => CallerHeader::From,
                store::CallerSource::RemotePartyId => CallerHeader::RemotePartyId,
                store::CallerSource::Display => CallerHeader::Display,
            },
            support_privacy: g.support_privacy,
            switch_limit: g.switch_limit,
            route_by: match g.route_by {
                store::RouteBy::Priority => RouteBy::Priority,
                store::RouteBy::Cost => RouteBy::Cost,
                store::RouteBy::Asr => RouteBy::Asr,
            },
            min_profit: g.min_profit,
            asr_threshold: g.asr_threshold,
            asr_min_attempts: g.asr_min_attempts,
        })
    }

    fn account_periods(&mut self, account: String, at_ms: u64) -> Vec<String> {
        let Ok(account) = self.owned::<store::Account>(&account, "account") else {
            return Vec::new();
        };
        let calendar = account
            .calendar
            .and_then(|id| self.owned::<crate::billing::Calendar>(&id, "calendar").ok());
        calendar.map_or_else(Vec::new, |c| {
            c.periods_at(at_ms)
                .into_iter()
                .map(str::to_string)
                .collect()
        })
    }

    fn gateway_group(&mut self, id: String) -> Result<GroupSettings, Error> {
        let g: store::GatewayGroup = self.owned(&id, "gateway group")?;
        Ok(GroupSettings {
            id,
            capacity: g.capacity,
            reserved: g.reserved,
        })
    }

    fn gateway_traffic(&mut self, id: String) -> Result<Traffic, Error> {
        let _: store::RoutingGateway = self.owned(&id, "routing gateway")?;
        let t = self.ctx.services.gateway_traffic(&id);
        Ok(Traffic {
            attempts: t.attempts,
            answered: t.answered,
            asr: t.asr,
            window_secs: t.window_secs,
        })
    }

    fn lease_caller_number(&mut self, id: String) -> Result<Option<String>, Error> {
        let g: store::RoutingGateway = self.owned(&id, "routing gateway")?;
        let pool = g
            .caller_pool
            .ok_or_else(|| Error::NotFound(format!("routing gateway {id:?} has no caller pool")))?;
        let services = &self.ctx.services;
        Ok(services.pools.lease(&id, &pool, &self.ctx.call_id))
    }
}

fn identity(mode: store::IdentityMode) -> IdentityMode {
    match mode {
        store::IdentityMode::None => IdentityMode::None,
        store::IdentityMode::Passthrough => IdentityMode::PassThrough,
        store::IdentityMode::Caller => IdentityMode::Caller,
    }
}

fn number_rule(rule: &store::NumberRule) -> NumberRule {
    NumberRule {
        prefix: rule.prefix.clone(),
        exact: rule.exact.clone(),
        min_len: rule.min_len,
        max_len: rule.max_len,
        action: match rule.action() {
            store::RuleAction::Strip(n) => NumberAction::Strip(n),
            store::RuleAction::Add(prefix) => NumberAction::AddPrefix(prefix.into()),
            store::RuleAction::Replace(to) => NumberAction::ReplaceMatched(to.into()),
            store::RuleAction::Keep => NumberAction::Keep,
        },
    }
}
