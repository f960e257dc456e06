//! Caller-ID / P-Asserted-Identity rewriter: normalises the caller number to E.164,
//! asserts it in P-Asserted-Identity, honours an incoming `Privacy: id` (keeping the
//! real number in PAI but hiding From), and routes by the `routes` table (first
//! gateway of the longest prefix).

use switchyard_sdk::numbers::{to_e164, NumberingPlan};
use switchyard_sdk::{Attempt, Call, Decision, Host, Policy};

pub struct PaiRewriter;

/// Domain used in asserted identities.
pub const IDENTITY_DOMAIN: &str = "switchyard.invalid";

fn plan() -> NumberingPlan {
    NumberingPlan {
        country_code: "44".into(),
        national_prefix: "0".into(),
        international_prefix: "00".into(),
    }
}

impl Policy for PaiRewriter {
    fn route(host: &dyn Host, call: &Call) -> Decision {
        let Some(caller) = to_e164(&call.caller.user, &plan()) else {
            return Decision::reject(484, "Caller number is not a valid number");
        };
        let gateway = match host.table_longest_prefix("routes", &call.callee) {
            Ok(rows) => rows.into_iter().find_map(|r| r.fields.into_iter().next()),
            Err(_) => None,
        };
        let Some(gateway) = gateway else {
            return Decision::reject(404, "No route");
        };
        let private = call
            .header("Privacy")
            .is_some_and(|p| p.split(';').any(|v| v.trim().eq_ignore_ascii_case("id")));
        let mut attempt = Attempt::to(gateway, &call.callee);
        attempt.p_asserted_identity = Some(format!("<sip:+{caller}@{IDENTITY_DOMAIN}>"));
        if private {
            attempt.privacy = Some("id".into());
            attempt.caller = Some("anonymous".into());
            attempt.display = Some("Anonymous".into());
        } else {
            attempt.caller = Some(caller);
        }
        Decision::Attempts(vec![attempt])
    }
}

switchyard_sdk::export_policy!(PaiRewriter);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::fake::FakeHost;
    use switchyard_sdk::{Caller, CallerHeader, Header};

    fn call(caller: &str, privacy: Option<&str>) -> Call {
        Call {
            call_id: "c1".into(),
            account: "acme".into(),
            tenant: "default".into(),
            ingress_gateway: String::new(),
            source_address: "127.0.0.1:5060".into(),
            caller: Caller {
                user: caller.into(),
                display: Some("Alice".into()),
                source: CallerHeader::From,
            },
            callee: "33123456".into(),
            request_uri: "sip:33123456@127.0.0.1".into(),
            headers: privacy
                .map(|p| {
                    vec![Header {
                        name: "privacy".into(),
                        value: p.into(),
                    }]
                })
                .unwrap_or_default(),
            codecs: vec![],
            arrived_at_ms: 0,
        }
    }

    fn host() -> FakeHost {
        FakeHost::new().with_table("routes", &[("33", &["fr-vendor"])])
    }

    fn only_attempt(d: Decision) -> Attempt {
        match d {
            Decision::Attempts(mut a) if a.len() == 1 => a.remove(0),
            other => panic!("expected one attempt, got {other:?}"),
        }
    }

    #[test]
    fn national_caller_becomes_e164_in_from_and_pai() {
        let a = only_attempt(PaiRewriter::route(&host(), &call("02079460000", None)));
        assert_eq!(a.gateway, "fr-vendor");
        assert_eq!(a.caller.as_deref(), Some("442079460000"));
        assert_eq!(
            a.p_asserted_identity.as_deref(),
            Some("<sip:+442079460000@switchyard.invalid>")
        );
        assert_eq!(a.privacy, None);
    }

    #[test]
    fn privacy_id_hides_from_but_keeps_the_asserted_identity() {
        let a = only_attempt(PaiRewriter::route(
            &host(),
            &call("+442079460000", Some("id;critical")),
        ));
        assert_eq!(a.privacy.as_deref(), Some("id"));
        assert_eq!(a.caller.as_deref(), Some("anonymous"));
        assert_eq!(
            a.p_asserted_identity.as_deref(),
            Some("<sip:+442079460000@switchyard.invalid>")
        );
    }

    #[test]
    fn garbage_caller_is_refused() {
        let d = PaiRewriter::route(&host(), &call("abc", None));
        assert!(matches!(d, Decision::Reject(r) if r.code == 484));
    }
}
