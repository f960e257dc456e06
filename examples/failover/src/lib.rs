//! Failover policy: every gateway whose prefix matches the callee (longest prefix
//! first, table order within a prefix, at most 8) is an attempt. After a failure:
//! 486 and 603 end the call (the callee said no), 503 and time-outs move on, and
//! anything else follows the SDK's stock rule.

use switchyard_sdk::{
    default_next_step, Attempt, Call, Decision, Host, NextStep, Outcome, Policy, Reject,
};

pub struct Failover;

/// Most attempts a call gets.
pub const MAX_ATTEMPTS: u32 = 8;

impl Policy for Failover {
    fn route(host: &dyn Host, call: &Call) -> Decision {
        let rows = host
            .table_prefixes("routes", &call.callee, MAX_ATTEMPTS)
            .unwrap_or_default();
        let attempts: Vec<Attempt> = rows
            .iter()
            .filter_map(|r| r.fields.first())
            .map(|gw| Attempt::to(gw, &call.callee))
            .collect();
        if attempts.is_empty() {
            Decision::reject(404, "No route")
        } else {
            Decision::Attempts(attempts)
        }
    }

    fn on_attempt_failed(_: &dyn Host, _: &Call, _: &Attempt, outcome: &Outcome) -> NextStep {
        match outcome.code {
            Some(code @ (486 | 603)) => NextStep::Stop(Reject {
                code,
                reason: outcome.reason.clone(),
            }),
            Some(503) | None => NextStep::Continue,
            _ if outcome.timed_out => NextStep::Continue,
            _ => default_next_step(outcome),
        }
    }
}

switchyard_sdk::export_policy!(Failover);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::fake::FakeHost;

    fn outcome(code: Option<u16>, timed_out: bool) -> Outcome {
        Outcome {
            index: 0,
            code,
            reason: "x".into(),
            pdd_ms: None,
            timed_out,
        }
    }

    fn next(code: Option<u16>, timed_out: bool) -> NextStep {
        let call = test_call();
        Failover::on_attempt_failed(
            &FakeHost::new(),
            &call,
            &Attempt::to("a", "1"),
            &outcome(code, timed_out),
        )
    }

    fn test_call() -> Call {
        Call {
            call_id: "c".into(),
            account: String::new(),
            tenant: String::new(),
            ingress_gateway: String::new(),
            source_address: String::new(),
            caller: switchyard_sdk::Caller {
                user: "1".into(),
                display: None,
                source: switchyard_sdk::CallerHeader::From,
            },
            callee: "4420".into(),
            request_uri: String::new(),
            headers: vec![],
            codecs: vec![],
            arrived_at_ms: 0,
        }
    }

    #[test]
    fn busy_and_decline_stop_the_call() {
        assert!(matches!(next(Some(486), false), NextStep::Stop(r) if r.code == 486));
        assert!(matches!(next(Some(603), false), NextStep::Stop(r) if r.code == 603));
    }

    #[test]
    fn unavailable_and_timeouts_move_on() {
        assert!(matches!(next(Some(503), false), NextStep::Continue));
        assert!(matches!(next(None, true), NextStep::Continue));
        assert!(matches!(next(Some(408), true), NextStep::Continue));
        assert!(matches!(next(Some(500), false), NextStep::Continue));
        assert!(matches!(next(Some(404), false), NextStep::Stop(r) if r.code == 404));
    }

    #[test]
    fn every_matching_prefix_is_an_attempt_longest_first() {
        let host = FakeHost::new().with_table(
            "routes",
            &[("44", &["uk"]), ("4420", &["london"]), ("", &["world"])],
        );
        let Decision::Attempts(a) = Failover::route(&host, &test_call()) else {
            panic!()
        };
        let gws: Vec<_> = a.iter().map(|a| a.gateway.as_str()).collect();
        assert_eq!(gws, ["london", "uk", "world"]);
    }
}
