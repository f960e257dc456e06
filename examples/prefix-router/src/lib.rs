//! Prefix router: the callee's longest matching prefix in the `routes` data table
//! picks the routing gateways, tried in table order. Row layout:
//! `prefix, gateway[, tech-prefix]`. Gateways the host reports down are skipped.

use switchyard_sdk::{Attempt, Call, Decision, Host, Policy};

/// The data table this module reads.
pub const ROUTES_TABLE: &str = "routes";

pub struct PrefixRouter;

impl Policy for PrefixRouter {
    fn route(host: &dyn Host, call: &Call) -> Decision {
        let rows = match host.table_longest_prefix(ROUTES_TABLE, &call.callee) {
            Ok(rows) => rows,
            Err(e) => return Decision::reject(503, format!("routes table: {e:?}")),
        };
        let attempts: Vec<Attempt> = rows
            .iter()
            .filter_map(|row| {
                let gateway = row.fields.first()?;
                if host.gateway(gateway).is_ok_and(|g| !g.up) {
                    return None;
                }
                let tech_prefix = row.fields.get(1).map_or("", String::as_str);
                Some(Attempt::to(
                    gateway,
                    format!("{tech_prefix}{}", call.callee),
                ))
            })
            .collect();
        if attempts.is_empty() {
            Decision::reject(404, "No route")
        } else {
            Decision::Attempts(attempts)
        }
    }
}

switchyard_sdk::export_policy!(PrefixRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::fake::FakeHost;
    use switchyard_sdk::{Caller, CallerHeader};

    pub(crate) fn call(callee: &str) -> Call {
        Call {
            call_id: "c1".into(),
            account: "acme".into(),
            tenant: "default".into(),
            ingress_gateway: "gw-in".into(),
            source_address: "127.0.0.1:5060".into(),
            caller: Caller {
                user: "1000".into(),
                display: None,
                source: CallerHeader::From,
            },
            callee: callee.into(),
            request_uri: format!("sip:{callee}@127.0.0.1"),
            headers: vec![],
            codecs: vec!["PCMA".into()],
            arrived_at_ms: 0,
        }
    }

    fn host() -> FakeHost {
        FakeHost::new()
            .with_gateway("uk", true, 10)
            .with_gateway("london", true, 10)
            .with_gateway("london-backup", false, 10)
            .with_table(
                ROUTES_TABLE,
                &[
                    ("44", &["uk"]),
                    ("4420", &["london", "9#"]),
                    ("4420", &["london-backup"]),
                ],
            )
    }

    #[test]
    fn longest_prefix_picks_gateways_with_tech_prefix_and_skips_down_ones() {
        let Decision::Attempts(attempts) = PrefixRouter::route(&host(), &call("442071234567"))
        else {
            panic!("expected attempts");
        };
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].gateway, "london");
        assert_eq!(attempts[0].callee, "9#442071234567");
    }

    #[test]
    fn unknown_destination_is_rejected_with_404() {
        let Decision::Reject(r) = PrefixRouter::route(&host(), &call("33123")) else {
            panic!("expected reject");
        };
        assert_eq!(r.code, 404);
    }
}
