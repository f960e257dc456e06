//! Extra headers of the caller's INVITE (its `X-` headers) that go on to a vendor, by
//! the gateway's `extra-headers`: none, all, or those it names. The identity headers
//! have modes of their own (see [`crate::identity`]).

use switchyard_sdk::{Attempt, Call, ExtraHeaders};

/// `attempt` carrying the caller's extra headers that `extra` lets through.
pub fn pass_extra(call: &Call, extra: &ExtraHeaders, mut attempt: Attempt) -> Attempt {
    let allowed = |name: &str| match extra {
        ExtraHeaders::None => false,
        ExtraHeaders::All => true,
        ExtraHeaders::Only(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
    };
    let passed = call
        .headers
        .iter()
        .filter(|h| is_extra(&h.name) && allowed(&h.name));
    attempt.add_headers.extend(passed.cloned());
    attempt
}

fn is_extra(name: &str) -> bool {
    name.len() > 2 && name[..2].eq_ignore_ascii_case("x-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::call;
    use switchyard_sdk::Header;

    fn passed(extra: ExtraHeaders) -> Vec<String> {
        let mut c = call("4411");
        for name in ["X-Customer-Ref", "x-secret"] {
            c.headers.push(Header {
                name: name.into(),
                value: "1".into(),
            });
        }
        let a = pass_extra(&c, &extra, Attempt::to("v", "4411"));
        a.add_headers.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn none_all_or_the_named_extra_headers_go_on_but_never_the_identity_ones() {
        assert!(passed(ExtraHeaders::None).is_empty());
        assert_eq!(passed(ExtraHeaders::All), ["X-Customer-Ref", "x-secret"]);
        let only = ExtraHeaders::Only(vec!["x-customer-ref".into()]);
        assert_eq!(passed(only), ["X-Customer-Ref"]);
    }
}
