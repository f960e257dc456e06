//! After a failed attempt: a code in the gateway's stop list, or any failure on a
//! gateway that does not switch until connect, goes back to the caller; anything
//! else (503, 408, time-outs ...) moves on to the next gateway.

use switchyard_sdk::{Attempt, Host, Level, NextStep, Outcome, Reject};

/// The code a failure without a final response counts as (RFC 3261 Timer B).
const TIMEOUT_CODE: u16 = 408;

/// What follows `outcome` of `attempt`.
pub fn next_step(host: &dyn Host, attempt: &Attempt, outcome: &Outcome) -> NextStep {
    let code = outcome.code.unwrap_or(TIMEOUT_CODE);
    let Ok(settings) = host.routing_gateway(&attempt.gateway) else {
        return NextStep::Continue;
    };
    let stop = if settings.stop_codes.contains(&code) {
        "a stop code"
    } else if !settings.switch_until_connect {
        "the gateway does not switch"
    } else {
        return NextStep::Continue;
    };
    host.log(
        Level::Info,
        &format!(
            "{} answered {code}: {stop}, no more gateways",
            attempt.gateway
        ),
    );
    NextStep::Stop(Reject {
        code,
        reason: outcome.reason.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::fake::{routing_settings, FakeHost};
    use switchyard_sdk::RoutingSettings;

    fn outcome(code: Option<u16>) -> Outcome {
        Outcome {
            index: 0,
            code,
            reason: "why".into(),
            pdd_ms: None,
            timed_out: code.is_none(),
        }
    }

    fn step(settings: RoutingSettings, code: Option<u16>) -> NextStep {
        let host = FakeHost::new().with_routing_settings(settings);
        next_step(&host, &Attempt::to("v", "4411"), &outcome(code))
    }

    #[test]
    fn stop_codes_end_the_hunt_and_other_failures_move_on() {
        for code in [403, 404, 486, 487, 603] {
            assert!(
                matches!(step(routing_settings("v"), Some(code)), NextStep::Stop(r) if r.code == code)
            );
        }
        for code in [Some(500), Some(503), Some(502), None] {
            assert!(
                matches!(step(routing_settings("v"), code), NextStep::Continue),
                "{code:?}"
            );
        }
        let own = RoutingSettings {
            stop_codes: vec![503],
            ..routing_settings("v")
        };
        assert!(matches!(step(own.clone(), Some(503)), NextStep::Stop(_)));
        assert!(matches!(step(own, Some(486)), NextStep::Continue));
    }

    #[test]
    fn a_gateway_that_does_not_switch_returns_any_failure_and_a_timeout_is_408() {
        let no_switch = RoutingSettings {
            switch_until_connect: false,
            ..routing_settings("v")
        };
        assert!(matches!(step(no_switch, None), NextStep::Stop(r) if r.code == 408));
    }
}
