//! The WIT call record a module sees, built from the customer's INVITE.

use switchyard_model::call::{Call, Caller, CallerHeader, Header};
use switchyard_model::{apply_number_rules, CallerSource, NumberRule};

use super::message::{display_of, uri_of, user_of, Message};
use super::transport::Peer;

/// Headers passed to modules besides any `X-` header.
const PASSED_HEADERS: &[&str] = &[
    "P-Asserted-Identity",
    "Privacy",
    "P-Preferred-Identity",
    "Remote-Party-ID",
    "Diversion",
];

/// Where a call came from, once admitted.
pub(super) struct Origin<'a> {
    pub account: &'a str,
    pub tenant: &'a str,
    pub ingress_gateway: &'a str,
    pub callee: &'a str,
    pub peer: Peer,
    /// Where its gateway reads the caller number, and how it rewrites it.
    pub caller_source: CallerSource,
    pub caller_rules: &'a [NumberRule],
}

impl<'a> Origin<'a> {
    /// A call from `peer` on mapping gateway `gateway_id`, to `callee`.
    pub(super) fn on(
        gateway_id: &'a str,
        gateway: &'a switchyard_model::MappingGateway,
        callee: &'a str,
        peer: Peer,
    ) -> Origin<'a> {
        Origin {
            account: &gateway.account,
            tenant: &gateway.tenant,
            ingress_gateway: gateway_id,
            callee,
            peer,
            caller_source: gateway.caller_source,
            caller_rules: &gateway.caller_rules,
        }
    }
}

/// The call `invite` offers, as the policy sees it.
pub(super) fn offered_call(invite: &Message, origin: &Origin<'_>, arrived_at_ms: u64) -> Call {
    let headers = invite
        .headers
        .iter()
        .filter(|(k, _)| {
            PASSED_HEADERS.iter().any(|p| p.eq_ignore_ascii_case(k))
                || k.len() > 2 && k[..2].eq_ignore_ascii_case("x-")
        })
        .map(|(name, value)| Header {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    Call {
        call_id: invite.call_id().to_string(),
        account: origin.account.to_string(),
        tenant: origin.tenant.to_string(),
        ingress_gateway: origin.ingress_gateway.to_string(),
        source_address: origin.peer.addr.to_string(),
        caller: caller(invite, origin),
        callee: origin.callee.to_string(),
        request_uri: invite.request_uri().unwrap_or_default().to_string(),
        headers,
        codecs: offered_codecs(&invite.body),
        arrived_at_ms,
    }
}

/// The calling party: its number read where the mapping gateway says (From when
/// that header is missing or empty), then through the gateway's caller rules.
fn caller(invite: &Message, origin: &Origin<'_>) -> Caller {
    let from = invite.header("From").unwrap_or_default();
    let display = display_of(from).map(str::to_string);
    let (user, source) = match origin.caller_source {
        CallerSource::RemotePartyId => invite
            .header("Remote-Party-ID")
            .map(|rpid| user_of(uri_of(rpid)))
            .filter(|u| !u.is_empty())
            .map(|u| (u.to_string(), CallerHeader::RemotePartyId)),
        CallerSource::Display => display
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| (d.trim().to_string(), CallerHeader::Display)),
        CallerSource::From => None,
    }
    .unwrap_or_else(|| (user_of(uri_of(from)).to_string(), CallerHeader::From));
    Caller {
        user: apply_number_rules(origin.caller_rules, &user),
        display,
        source,
    }
}

/// Codec names offered in an SDP body's audio stream, in preference order (payload
/// types neither mapped nor static are left out).
pub(super) fn offered_codecs(sdp: &[u8]) -> Vec<String> {
    crate::media::sdp::audio_formats(sdp)
        .into_iter()
        .map(|(_, name)| name)
        .filter(|name| !name.is_empty())
        .collect()
}

/// The voice codec an SDP answer settled on: its first audio payload that is not
/// DTMF or comfort noise.
pub(super) fn answered_codec(sdp: &[u8]) -> Option<String> {
    offered_codecs(sdp)
        .into_iter()
        .find(|c| !c.eq_ignore_ascii_case("telephone-event") && !c.eq_ignore_ascii_case("CN"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_model::{CallerSource, MappingGateway, NumberRule};

    fn invite(extra: &str) -> Message {
        let raw = format!(
            "INVITE sip:4420@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\n\
             From: \"02071110000\" <sip:1000@192.0.2.2>;tag=1\r\nTo: <sip:4420@192.0.2.1>\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        crate::sip::wire::parse(raw.as_bytes()).expect("an INVITE")
    }

    #[test]
    fn the_caller_is_read_where_the_gateway_says_then_rewritten() {
        let peer = Peer {
            addr: "192.0.2.2:5060".parse().unwrap(),
            transport: switchyard_model::Transport::Udp,
        };
        let caller_of = |source, extra: &str| {
            let gateway = MappingGateway {
                caller_source: source,
                caller_rules: vec![NumberRule {
                    prefix: "0".into(),
                    replace: Some("44".into()),
                    ..NumberRule::default()
                }],
                ..MappingGateway::for_account("t", "acme")
            };
            let origin = Origin::on("m", &gateway, "4420", peer);
            let c = caller(&invite(extra), &origin);
            (c.user, c.source)
        };
        let rpid = "Remote-Party-ID: <sip:02072220000@192.0.2.2>;party=calling\r\n";
        assert_eq!(
            caller_of(CallerSource::From, rpid),
            ("1000".into(), CallerHeader::From)
        );
        assert_eq!(
            caller_of(CallerSource::RemotePartyId, rpid),
            ("442072220000".into(), CallerHeader::RemotePartyId)
        );
        // No Remote-Party-ID: the From user, and the record says so.
        assert_eq!(
            caller_of(CallerSource::RemotePartyId, ""),
            ("1000".into(), CallerHeader::From)
        );
        assert_eq!(
            caller_of(CallerSource::Display, ""),
            ("442071110000".into(), CallerHeader::Display)
        );
    }

    #[test]
    fn codecs_from_sdp() {
        let sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18 0 101\r\na=rtpmap:101 telephone-event/8000\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        assert_eq!(
            super::offered_codecs(sdp),
            ["G729", "PCMU", "telephone-event"]
        );
        let answer = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 101 8\r\na=rtpmap:101 telephone-event/8000\r\n";
        assert_eq!(super::answered_codec(answer).as_deref(), Some("PCMA"));
        assert_eq!(super::answered_codec(b""), None);
    }
}
