//! Hostile: `route` panics (a trap). Expect: fallback used, failure counted as a trap.
use switchyard_sdk::{Call, Decision, Host, Policy};

struct Crash;

impl Policy for Crash {
    fn route(_: &dyn Host, call: &Call) -> Decision {
        panic!("guest crashed on purpose for call {}", call.call_id)
    }
}

switchyard_sdk::export_policy!(Crash);
