//! The model's vocabulary as the WIT records modules see it: the gateways' settings
//! the `carrier` import returns. (The call itself still travels through the SIP
//! layer as the WIT `Call`; giving it a model type of its own is left to do.)

use switchyard_model as model;

use super::bindings::carrier::{
    CallerPool, ExtraHeaders, IdentityMode, MappingSettings, NumberAction, NumberRule,
    PoolSelection, PrivacyMode, RouteBy, RoutingSettings,
};
use super::bindings::types::CallerHeader;

/// A routing gateway's settings as the `carrier` import shows them.
pub(crate) fn routing_settings(id: String, g: model::RoutingGateway) -> RoutingSettings {
    RoutingSettings {
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
    }
}

/// A mapping gateway's settings as the `carrier` import shows them.
pub(crate) fn mapping_settings(id: String, g: model::MappingGateway) -> MappingSettings {
    MappingSettings {
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
