//! Hostile: `route` never returns. Expect: cut at the deadline, fallback used.
use switchyard_sdk::{Call, Decision, Host, Policy};

struct Spin;

impl Policy for Spin {
    fn route(_: &dyn Host, call: &Call) -> Decision {
        let mut n: u64 = call.callee.len() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

switchyard_sdk::export_policy!(Spin);
