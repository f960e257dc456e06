//! Identity headers towards a vendor, by its gateway's modes:
//! P-Asserted-Identity and P-Preferred-Identity none / pass through / caller, and
//! Privacy none / pass through (when the caller's mapping gateway supports privacy) /
//! id. The host passes the caller's own header on unless an attempt replaces or
//! removes it.

use switchyard_sdk::numbers::apply_gateway_rules;
use switchyard_sdk::{Attempt, Call, IdentityMode, PrivacyMode, RoutingSettings};

const PAI: &str = "P-Asserted-Identity";
const PPI: &str = "P-Preferred-Identity";
const PRIVACY: &str = "Privacy";

/// `attempt` with the identity headers `settings` ask for; `supports_privacy` is the
/// caller's mapping gateway's say on passing its Privacy header on.
pub fn apply(
    call: &Call,
    supports_privacy: bool,
    settings: &RoutingSettings,
    mut attempt: Attempt,
) -> Attempt {
    let caller = attempt
        .caller
        .clone()
        .unwrap_or_else(|| call.caller.user.clone());
    // The gateway's dial plan for the identity headers has the last word on the number.
    let asserted = apply_gateway_rules(&settings.pai_rules, &caller);
    let own = || format!("<sip:{asserted}@{}>", uri_host(&call.request_uri));
    match settings.pai {
        IdentityMode::None => attempt.remove_headers.push(PAI.into()),
        IdentityMode::PassThrough => {}
        IdentityMode::Caller => attempt.p_asserted_identity = Some(own()),
    }
    match settings.ppi {
        IdentityMode::None => attempt.remove_headers.push(PPI.into()),
        IdentityMode::PassThrough => {}
        IdentityMode::Caller => attempt.p_preferred_identity = Some(own()),
    }
    match settings.privacy {
        PrivacyMode::PassThrough if supports_privacy => {}
        PrivacyMode::None | PrivacyMode::PassThrough => attempt.remove_headers.push(PRIVACY.into()),
        PrivacyMode::Id => attempt.privacy = Some("id".into()),
    }
    attempt
}

/// The host part of a SIP URI (`sip:user@host:port;params` gives `host:port`): the
/// switch's own address as the caller reached it.
fn uri_host(uri: &str) -> &str {
    let rest = uri.split_once('@').map_or(uri, |(_, h)| h);
    rest.split([';', '?', '>']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::call;
    use switchyard_sdk::fake::routing_settings;

    fn apply_with(settings: RoutingSettings, support_privacy: bool) -> Attempt {
        apply(
            &call("4411"),
            support_privacy,
            &settings,
            Attempt::to("v", "4411"),
        )
    }

    #[test]
    fn none_removes_each_header_pass_through_keeps_the_callers() {
        let none = apply_with(routing_settings("v"), true);
        assert_eq!(none.remove_headers, [PAI, PPI, PRIVACY]);
        let through = apply_with(
            RoutingSettings {
                pai: IdentityMode::PassThrough,
                ppi: IdentityMode::PassThrough,
                privacy: PrivacyMode::PassThrough,
                ..routing_settings("v")
            },
            true,
        );
        assert!(through.remove_headers.is_empty());
        assert_eq!((through.p_asserted_identity, through.privacy), (None, None));
    }

    #[test]
    fn caller_mode_builds_the_identity_from_the_caller_at_the_switch() {
        let a = apply_with(
            RoutingSettings {
                pai: IdentityMode::Caller,
                ppi: IdentityMode::Caller,
                privacy: PrivacyMode::Id,
                ..routing_settings("v")
            },
            false,
        );
        assert_eq!(
            a.p_asserted_identity.as_deref(),
            Some("<sip:1000@192.0.2.1:5060>")
        );
        assert_eq!(
            a.p_preferred_identity.as_deref(),
            Some("<sip:1000@192.0.2.1:5060>")
        );
        assert_eq!(a.privacy.as_deref(), Some("id"));
        assert!(a.remove_headers.is_empty());
    }

    #[test]
    fn the_pai_dial_plan_rewrites_only_the_identity_headers_number() {
        let a = apply_with(
            RoutingSettings {
                pai: IdentityMode::Caller,
                pai_rules: vec![switchyard_sdk::NumberRule {
                    prefix: String::new(),
                    exact: None,
                    min_len: None,
                    max_len: None,
                    action: switchyard_sdk::NumberAction::AddPrefix("+44".into()),
                }],
                ..routing_settings("v")
            },
            false,
        );
        assert_eq!(
            a.p_asserted_identity.as_deref(),
            Some("<sip:+441000@192.0.2.1:5060>")
        );
        assert_eq!(a.caller, None, "the From number stays");
    }

    #[test]
    fn privacy_passes_through_only_when_the_mapping_gateway_supports_it() {
        let settings = RoutingSettings {
            privacy: PrivacyMode::PassThrough,
            ..routing_settings("v")
        };
        let removed = |support| {
            apply_with(settings.clone(), support)
                .remove_headers
                .contains(&PRIVACY.to_string())
        };
        assert!(removed(false));
        assert!(!removed(true));
    }
}
