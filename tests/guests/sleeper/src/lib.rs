//! Hostile: `route` sleeps for an hour at a time, forever. A WASI sleep uses no CPU, so
//! only the host's timer rule can stop it. Expect: its timers fire at once, the loop
//! spins, and the CPU deadline cuts it; the fallback is used.
use std::time::Duration;

use switchyard_sdk::{Call, Decision, Host, Policy};

struct Sleeper;

impl Policy for Sleeper {
    fn route(_: &dyn Host, _: &Call) -> Decision {
        loop {
            std::thread::sleep(Duration::from_secs(3_600));
        }
    }
}

switchyard_sdk::export_policy!(Sleeper);
