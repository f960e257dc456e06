//! Fraud guard, run as `screen` before routing:
//! - destinations in the `blocked-prefixes` table are refused (403);
//! - an account placing more than `max-cpm` calls a minute (module state key
//!   `max-cpm`, default 30) is refused (503) for the rest of the window;
//! - a destination prefix listed in `watched-prefixes` (`prefix, calls-per-minute,
//!   max-duration-secs`) is refused past its rate, and its calls get a duration cap.
//!
//! Routing itself is left to the SDK default, so pair it with a router in practice.

use switchyard_sdk::{Call, Host, Level, Limits, Policy, Reject, Verdict};

pub struct FraudGuard;

/// Calls a minute an account may place when `max-cpm` is not set.
pub const DEFAULT_MAX_CPM: u64 = 30;

fn reject(code: u16, reason: &str) -> Verdict {
    Verdict::Reject(Reject {
        code,
        reason: reason.into(),
    })
}

impl Policy for FraudGuard {
    fn screen(host: &dyn Host, call: &Call) -> Verdict {
        if !host
            .table_longest_prefix("blocked-prefixes", &call.callee)
            .unwrap_or_default()
            .is_empty()
        {
            host.log(Level::Warn, &format!("blocked destination {}", call.callee));
            return reject(403, "Destination blocked");
        }
        let max_cpm = host
            .state_get("max-cpm")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_CPM);
        let account_calls = host.incr(&format!("cpm:{}", call.account), 60).unwrap_or(0);
        if account_calls > max_cpm {
            host.log(
                Level::Warn,
                &format!("account {} over {max_cpm} calls/min", call.account),
            );
            return reject(503, "Call rate limit");
        }
        let watched = host
            .table_longest_prefix("watched-prefixes", &call.callee)
            .unwrap_or_default();
        if let Some(row) = watched.first() {
            let limit: u64 = row
                .fields
                .first()
                .and_then(|f| f.parse().ok())
                .unwrap_or(u64::MAX);
            let calls = host.incr(&format!("dest:{}", row.key), 60).unwrap_or(0);
            if calls > limit {
                host.log(
                    Level::Warn,
                    &format!("prefix {} over {limit} calls/min", row.key),
                );
                return reject(503, "Destination rate limit");
            }
            if let Some(max) = row.fields.get(1).and_then(|f| f.parse().ok()) {
                return Verdict::AllowWithLimits(Limits {
                    max_duration_secs: max,
                });
            }
        }
        Verdict::Allow
    }
}

switchyard_sdk::export_policy!(FraudGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::fake::FakeHost;
    use switchyard_sdk::{Caller, CallerHeader};

    fn call(account: &str, callee: &str) -> Call {
        Call {
            call_id: "c".into(),
            account: account.into(),
            tenant: "t".into(),
            ingress_gateway: String::new(),
            source_address: String::new(),
            caller: Caller {
                user: "1".into(),
                display: None,
                source: CallerHeader::From,
            },
            callee: callee.into(),
            request_uri: String::new(),
            headers: vec![],
            codecs: vec![],
            arrived_at_ms: 0,
        }
    }

    fn host() -> FakeHost {
        FakeHost::new()
            .with_table("blocked-prefixes", &[("881", &[])])
            .with_table("watched-prefixes", &[("252", &["2", "120"])])
            .with_now_ms(1_000_000)
    }

    #[test]
    fn blocked_destination_is_refused() {
        assert!(
            matches!(FraudGuard::screen(&host(), &call("a", "88112345")), Verdict::Reject(r) if r.code == 403)
        );
    }

    #[test]
    fn account_rate_limit_applies_per_minute_window() {
        let host = host();
        host.state_set("max-cpm", "3").unwrap();
        for _ in 0..3 {
            assert!(matches!(
                FraudGuard::screen(&host, &call("a", "4420")),
                Verdict::Allow
            ));
        }
        assert!(
            matches!(FraudGuard::screen(&host, &call("a", "4420")), Verdict::Reject(r) if r.code == 503)
        );
        assert!(
            matches!(
                FraudGuard::screen(&host, &call("b", "4420")),
                Verdict::Allow
            ),
            "other accounts unaffected"
        );
        host.set_now_ms(1_000_000 + 61_000);
        assert!(
            matches!(
                FraudGuard::screen(&host, &call("a", "4420")),
                Verdict::Allow
            ),
            "window slid"
        );
    }

    #[test]
    fn watched_prefix_gets_a_duration_cap_then_a_rate_limit() {
        let host = host();
        for _ in 0..2 {
            assert!(matches!(FraudGuard::screen(&host, &call("a", "25261")),
                Verdict::AllowWithLimits(l) if l.max_duration_secs == 120));
        }
        assert!(
            matches!(FraudGuard::screen(&host, &call("a", "25261")), Verdict::Reject(r) if r.code == 503)
        );
    }
}
