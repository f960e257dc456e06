//! Hostile: `route` answers 10,000 attempts with header-injection attempts in them.
//! Expect: rejected as malformed, fallback used.
use switchyard_sdk::{Attempt, Call, Decision, Host, Policy};

struct Flood;

impl Policy for Flood {
    fn route(_: &dyn Host, call: &Call) -> Decision {
        Decision::Attempts(
            (0..10_000)
                .map(|i| {
                    let mut a = Attempt::to(format!("gw-{i}"), &call.callee);
                    a.display = Some("x\r\nVia: evil".into());
                    a
                })
                .collect(),
        )
    }
}

switchyard_sdk::export_policy!(Flood);
