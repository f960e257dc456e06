//! A greedy module: every decision tries to store 100 values of 64 KiB under new
//! keys (6.4 MB) and to write 1 MB to the log; it reports how many writes the host
//! took and the first refusal. The host must refuse past the module's state quota
//! and rate-limit its log, and the decision itself must still stand.
use switchyard_sdk::{Attempt, Call, Decision, Host, Level, Policy};

struct StateHog;

impl Policy for StateHog {
    fn route(host: &dyn Host, call: &Call) -> Decision {
        let value = "x".repeat(64 * 1024);
        let mut stored = 0;
        let mut refusal = String::new();
        for i in 0..100 {
            match host.state_set(&format!("{}-{i}", call.call_id), &value) {
                Ok(()) => stored += 1,
                Err(e) => {
                    refusal = format!("{e:?}");
                    break;
                }
            }
        }
        let line = "y".repeat(10 * 1024);
        for _ in 0..100 {
            host.log(Level::Info, &line);
        }
        let mut a = Attempt::to("vendor", &call.callee);
        a.add_headers = vec![switchyard_sdk::Header {
            name: "X-Report".into(),
            value: format!("stored={stored};refusal={refusal}"),
        }];
        Decision::Attempts(vec![a])
    }
}

switchyard_sdk::export_policy!(StateHog);
