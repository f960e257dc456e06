//! Uses every host service and reports what it saw in the decision, so tests can
//! check the host's side of each import: logs, stdout, state, counters, tables,
//! gateways, rates, clock, and that WASI gives no files or environment.
use switchyard_sdk::{Attempt, Call, Decision, Host, Level, NextStep, Outcome, Policy, Verdict};

struct Logger;

impl Policy for Logger {
    fn screen(host: &dyn Host, call: &Call) -> Verdict {
        host.log(Level::Info, &format!("screening {}", call.callee));
        Verdict::Allow
    }

    fn route(host: &dyn Host, call: &Call) -> Decision {
        host.log(
            Level::Info,
            &format!("routing {} for {}", call.callee, call.account),
        );
        println!("hello from stdout");
        let runs = host
            .state_get("runs")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        host.state_set("runs", &runs.to_string())
            .expect("state set");
        let counted = host.incr("calls", 60).expect("incr");
        let route = host
            .table_longest_prefix("routes", &call.callee)
            .ok()
            .and_then(|rows| rows.first().and_then(|r| r.fields.first().cloned()))
            .unwrap_or_else(|| "none".into());
        let gateways = host
            .gateways()
            .iter()
            .map(|g| format!("{}:{}", g.id, g.up))
            .collect::<Vec<_>>()
            .join(",");
        let cost = match host.vendor_cost(&route, &call.callee) {
            Ok(Some(r)) => format!("{}@{}", r.prefix, r.per_minute),
            Ok(None) => "none".into(),
            Err(e) => format!("{e:?}"),
        };
        let local = host
            .local_time("Europe/London", call.arrived_at_ms)
            .map(|t| format!("{:02}:{:02}", t.hour, t.minute));
        let bad_zone = host.local_time("Mars/Olympus", 0).is_err();
        let files =
            std::fs::read_dir("/").is_ok() || std::fs::read_to_string("/etc/passwd").is_ok();
        let env = std::env::vars().count();
        let mut a = Attempt::to(route, &call.callee);
        a.add_headers = vec![switchyard_sdk::Header {
            name: "X-Report".into(),
            value: format!(
                "runs={runs};counted={counted};gateways={gateways};cost={cost};local={};bad_zone={bad_zone};files={files};env={env}",
                local.unwrap_or_default()
            ),
        }];
        Decision::Attempts(vec![a])
    }

    fn on_attempt_failed(_: &dyn Host, _: &Call, _: &Attempt, outcome: &Outcome) -> NextStep {
        if outcome.timed_out {
            NextStep::Insert(Attempt::to("after-timeout", "1"))
        } else {
            NextStep::Continue
        }
    }
}

switchyard_sdk::export_policy!(Logger);
