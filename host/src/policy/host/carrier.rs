//! `carrier`: routing and mapping gateways', groups' and calendars' settings as
//! operators stored them, and gateways' traffic, for the calling module's tenant.

use super::super::bindings::carrier::{
    CallerPool, ExtraHeaders, GroupSettings, Host, IdentityMode, MappingSettings, NumberAction,
    NumberRule, PoolSelection, PrivacyMode, RouteBy, RoutingSettings, Traffic,
};
use super::super::bindings::types::{CallerHeader, Error};
use super::PolicyState;
use switchyard_model as model;

impl Host for PolicyState {
    fn routing_gateway(&mut self, id: String) -> Result<RoutingSettings, Error> {
        let g: model::RoutingGateway = self.owned(&id, "routing gateway")?;
        Ok(RoutingSettings {
            id,
            tech_prefix: g.tech_prefix,
            pai: identity(g.pai),
            privacy: match g.privacy {
                model::PrivacyMode::None => PrivacyMode::None,
                model::PrivacyMode::Passthrough => PrivacyMode::PassThrough,
                model::PrivacyMode::Id => PrivacyMode::Id,
            },
            ppi: identity(g.ppi),
            caller_pool: g.caller_pool.map(|p| CallerPool {
                numbers: p.numbers,
                selection: match p.selection {
                    model::PoolSelection::RoundRobin => PoolSelection::RoundRobin,
                    model::PoolSelection::Random => PoolSelection::Random,
                },
                multiplexes: p.multiplexes,
                required: p.required,
            }),
            extra_headers: match g.extra_headers {
                model::ExtraHeaders::Only(names) => ExtraHeaders::Only(names),
                model::ExtraHeaders::Mode(model::ExtraHeadersMode::None) => ExtraHeaders::None,
                model::ExtraHeaders::Mode(model::ExtraHeadersMode::All) => ExtraHeaders::All,
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
        let g: model::MappingGateway = self.owned(&id, "mapping gateway")?;
        Ok(MappingSettings {
            id,
            account: g.account,
            caller_source: match g.caller_source {
                model::CallerSource::From => CallerHeader::From,
                model::CallerSource::RemotePartyId => CallerHeader::RemotePartyId,
                model::CallerSource::Display => CallerHeader::Display,
            },
            support_privacy: g.support_privacy,
            switch_limit: g.switch_limit,
            route_by: match g.route_by {
                model::RouteBy::Priority => RouteBy::Priority,
                model::RouteBy::Cost => RouteBy::Cost,
                model::RouteBy::Asr => RouteBy::Asr,
            },
            min_profit: g.min_profit,
            asr_threshold: g.asr_threshold,
            asr_min_attempts: g.asr_min_attempts,
        })
    }

    fn account_periods(&mut self, account: String, at_ms: u64) -> Vec<String> {
        let Ok(account) = self.owned::<model::Account>(&account, "account") else {
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
        let g: model::GatewayGroup = self.owned(&id, "gateway group")?;
        Ok(GroupSettings {
            id,
            capacity: g.capacity,
            reserved: g.reserved,
        })
    }

    fn gateway_traffic(&mut self, id: String) -> Result<Traffic, Error> {
        let _: model::RoutingGateway = self.owned(&id, "routing gateway")?;
        let t = self.ctx.runtime.gateway_traffic(&id);
        Ok(Traffic {
            attempts: t.attempts,
            answered: t.answered,
            asr: t.asr,
            window_secs: t.window_secs,
        })
    }

    fn lease_caller_number(&mut self, id: String) -> Result<Option<String>, Error> {
        let g: model::RoutingGateway = self.owned(&id, "routing gateway")?;
        let pool = g
            .caller_pool
            .ok_or_else(|| Error::NotFound(format!("routing gateway {id:?} has no caller pool")))?;
        let runtime = &self.ctx.runtime;
        Ok(runtime.pools.lease(&id, &pool, &self.ctx.call_id))
    }
}

fn identity(mode: model::IdentityMode) -> IdentityMode {
    match mode {
        model::IdentityMode::None => IdentityMode::None,
        model::IdentityMode::Passthrough => IdentityMode::PassThrough,
        model::IdentityMode::Caller => IdentityMode::Caller,
    }
}

fn number_rule(rule: &model::NumberRule) -> NumberRule {
    NumberRule {
        prefix: rule.prefix.clone(),
        exact: rule.exact.clone(),
        min_len: rule.min_len,
        max_len: rule.max_len,
        action: match rule.action() {
            model::RuleAction::Strip(n) => NumberAction::Strip(n),
            model::RuleAction::Add(prefix) => NumberAction::AddPrefix(prefix.into()),
            model::RuleAction::Replace(to) => NumberAction::ReplaceMatched(to.into()),
            model::RuleAction::Keep => NumberAction::Keep,
        },
    }
}
