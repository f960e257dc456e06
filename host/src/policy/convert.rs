//! The model's vocabulary as the WIT records modules see it, in one place: the
//! gateways' settings the `carrier` import returns, and the call and decisions each
//! hook takes and gives. Nothing else in the host names a generated record.

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

// The call and the decisions, across the sandbox's edge: the model's types on the
// host's side, the generated WIT records on the module's.

use super::bindings::types as wit;

fn wit_headers(headers: Vec<model::call::Header>) -> Vec<wit::Header> {
    headers
        .into_iter()
        .map(|h| wit::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

fn model_headers(headers: Vec<wit::Header>) -> Vec<model::call::Header> {
    headers
        .into_iter()
        .map(|h| model::call::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

/// The call as a module sees it.
pub(crate) fn wit_call(call: model::call::Call) -> wit::Call {
    use model::call::CallerHeader as Source;
    wit::Call {
        call_id: call.call_id,
        account: call.account,
        tenant: call.tenant,
        ingress_gateway: call.ingress_gateway,
        source_address: call.source_address,
        caller: wit::Caller {
            user: call.caller.user,
            display: call.caller.display,
            source: match call.caller.source {
                Source::From => CallerHeader::From,
                Source::RemotePartyId => CallerHeader::RemotePartyId,
                Source::Display => CallerHeader::Display,
                Source::PAssertedIdentity => CallerHeader::PAssertedIdentity,
            },
        },
        callee: call.callee,
        request_uri: call.request_uri,
        headers: wit_headers(call.headers),
        codecs: call.codecs,
        arrived_at_ms: call.arrived_at_ms,
    }
}

pub(crate) fn wit_attempt(a: model::call::Attempt) -> wit::Attempt {
    wit::Attempt {
        gateway: a.gateway,
        callee: a.callee,
        caller: a.caller,
        display: a.display,
        p_asserted_identity: a.p_asserted_identity,
        privacy: a.privacy,
        p_preferred_identity: a.p_preferred_identity,
        add_headers: wit_headers(a.add_headers),
        remove_headers: a.remove_headers,
        timeout_ms: a.timeout_ms,
    }
}

pub(crate) fn wit_outcome(o: model::call::Outcome) -> wit::Outcome {
    wit::Outcome {
        index: o.index,
        code: o.code,
        reason: o.reason,
        pdd_ms: o.pdd_ms,
        timed_out: o.timed_out,
    }
}

fn model_reject(r: wit::Reject) -> model::call::Reject {
    model::call::Reject {
        code: r.code,
        reason: r.reason,
    }
}

fn model_attempt(a: wit::Attempt) -> model::call::Attempt {
    model::call::Attempt {
        gateway: a.gateway,
        callee: a.callee,
        caller: a.caller,
        display: a.display,
        p_asserted_identity: a.p_asserted_identity,
        privacy: a.privacy,
        p_preferred_identity: a.p_preferred_identity,
        add_headers: model_headers(a.add_headers),
        remove_headers: a.remove_headers,
        timeout_ms: a.timeout_ms,
    }
}

pub(crate) fn model_verdict(v: wit::Verdict) -> model::call::Verdict {
    use model::call::Verdict;
    match v {
        wit::Verdict::Allow => Verdict::Allow,
        wit::Verdict::Reject(r) => Verdict::Reject(model_reject(r)),
        wit::Verdict::AllowWithLimits(l) => Verdict::AllowWithLimits(model::call::Limits {
            max_duration_secs: l.max_duration_secs,
        }),
    }
}

pub(crate) fn model_decision(d: wit::Decision) -> model::call::Decision {
    use model::call::Decision;
    match d {
        wit::Decision::Attempts(list) => {
            Decision::Attempts(list.into_iter().map(model_attempt).collect())
        }
        wit::Decision::Reject(r) => Decision::Reject(model_reject(r)),
    }
}

pub(crate) fn model_next_step(n: wit::NextStep) -> model::call::NextStep {
    use model::call::NextStep;
    match n {
        wit::NextStep::Continue => NextStep::Continue,
        wit::NextStep::Insert(a) => NextStep::Insert(model_attempt(a)),
        wit::NextStep::Stop(r) => NextStep::Stop(model_reject(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::call as m;

    fn call() -> m::Call {
        m::Call {
            call_id: "c1".into(),
            account: "acme".into(),
            tenant: "default".into(),
            ingress_gateway: "gw".into(),
            source_address: "127.0.0.2:5060".into(),
            caller: m::Caller {
                user: "100".into(),
                display: Some("Ann".into()),
                source: m::CallerHeader::PAssertedIdentity,
            },
            callee: "4420".into(),
            request_uri: "sip:4420@127.0.0.1".into(),
            headers: vec![m::Header {
                name: "Privacy".into(),
                value: "id".into(),
            }],
            codecs: vec!["PCMA".into()],
            arrived_at_ms: 7,
        }
    }

    fn json(value: &impl serde::Serialize) -> serde_json::Value {
        serde_json::to_value(value).unwrap()
    }

    /// The simulate API takes and gives the model's JSON; it must read as the WIT
    /// records' did, field for field.
    #[test]
    fn the_models_json_is_the_wit_records_json() {
        assert_eq!(json(&call()), json(&wit_call(call())));
        let mut attempt = m::Attempt::to("vendor", "4420");
        attempt.add_headers = call().headers;
        attempt.timeout_ms = Some(900);
        assert_eq!(json(&attempt), json(&wit_attempt(attempt.clone())));
        let outcome = m::Outcome {
            index: 1,
            code: Some(503),
            reason: "busy".into(),
            pdd_ms: None,
            timed_out: false,
        };
        assert_eq!(json(&outcome), json(&wit_outcome(outcome.clone())));
    }

    #[test]
    fn a_modules_answers_arrive_whole() {
        let wit_attempt = wit_attempt(m::Attempt {
            caller: Some("200".into()),
            p_asserted_identity: Some("<sip:200@x>".into()),
            remove_headers: vec!["Diversion".into()],
            ..m::Attempt::to("vendor", "4420")
        });
        let decision = model_decision(wit::Decision::Attempts(vec![wit_attempt.clone()]));
        let m::Decision::Attempts(list) = &decision else {
            panic!("{decision:?}")
        };
        assert_eq!(
            serde_json::to_value(&list[0]).unwrap(),
            serde_json::to_value(&wit_attempt).unwrap()
        );
        assert_eq!(
            model_next_step(wit::NextStep::Stop(wit::Reject {
                code: 486,
                reason: "Busy".into()
            })),
            m::NextStep::Stop(m::Reject {
                code: 486,
                reason: "Busy".into()
            })
        );
        assert_eq!(
            model_verdict(wit::Verdict::AllowWithLimits(wit::Limits {
                max_duration_secs: 60
            })),
            m::Verdict::AllowWithLimits(m::Limits {
                max_duration_secs: 60
            })
        );
    }
}
