//! The WIT call record a module sees, built from the customer's INVITE.

use crate::policy::{Call, Caller, CallerHeader, Header};

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
}

impl<'a> Origin<'a> {
    /// A call from `peer` on mapping gateway `gateway_id`, to `callee`.
    pub(super) fn on(
        gateway_id: &'a str,
        gateway: &'a crate::store::MappingGateway,
        callee: &'a str,
        peer: Peer,
    ) -> Origin<'a> {
        Origin {
            account: &gateway.account,
            tenant: &gateway.tenant,
            ingress_gateway: gateway_id,
            callee,
            peer,
        }
    }
}

/// The call record for `invite`.
pub(super) fn call_record(invite: &Message, origin: &Origin<'_>, arrived_at_ms: u64) -> Call {
    let from = invite.header("From").unwrap_or_default();
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
        caller: Caller {
            user: user_of(uri_of(from)).to_string(),
            display: display_of(from).map(str::to_string),
            source: CallerHeader::From,
        },
        callee: origin.callee.to_string(),
        request_uri: invite.request_uri().unwrap_or_default().to_string(),
        headers,
        codecs: offered_codecs(&invite.body),
        arrived_at_ms,
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
