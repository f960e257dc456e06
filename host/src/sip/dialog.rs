//! The dialog layer: one side of a B2BUA call as a dialog of its own (RFC 3261 §12):
//! its Call-ID, tags, CSeq, remote target and route set, and the in-dialog requests
//! we send on it (ACK, BYE, INFO, CANCEL).

use std::sync::Arc;

use super::message::{uri_of, Message, Outgoing};
use super::new_branch;
use super::transaction::AckParts;
use super::transport::Peer;
use super::SipCore;
use crate::media::InfoDigit;

/// One side of the call, as a dialog we take part in.
#[derive(Debug, Clone)]
pub(super) struct Leg {
    /// Where its requests go.
    pub(super) peer: Peer,
    pub(super) call_id: String,
    /// Our name-addr with our tag (From of our requests).
    pub(super) local: String,
    /// Their name-addr with their tag (To of our requests).
    pub(super) remote: String,
    /// Request-URI of in-dialog requests (their Contact).
    pub(super) target: String,
    /// Our last CSeq in this dialog.
    pub(super) cseq: u32,
    /// Route headers of our in-dialog requests (RFC 3261 §12.1: the Record-Route of
    /// the request or response that made the dialog).
    pub(super) route: Vec<String>,
}

impl Leg {
    /// Our dialog with a vendor that answered our INVITE (`ours`) with the 2xx `resp`.
    pub(super) fn answered(resp: &Message, peer: Peer, ours: &AckParts) -> Leg {
        let mut route: Vec<String> = resp
            .headers_named("Record-Route")
            .map(str::to_string)
            .collect();
        // A UAC's route set is the Record-Route in reverse (§12.1.2).
        route.reverse();
        Leg {
            peer,
            call_id: ours.call_id.clone(),
            local: ours.from.clone(),
            remote: resp.header("To").unwrap_or_default().to_string(),
            target: resp
                .header("Contact")
                .map(|c| uri_of(c).to_string())
                .unwrap_or_else(|| ours.uri.clone()),
            cseq: ours.cseq,
            route,
        }
    }

    /// The start of an in-dialog request with CSeq `cseq`: its dialog headers and route set.
    pub(super) fn dialog_request(&self, method: &str, via: &str, cseq: u32) -> Outgoing {
        let mut req = Outgoing::dialog_request(
            method,
            &self.target,
            via,
            &self.local,
            &self.remote,
            &self.call_id,
            cseq,
        );
        for r in &self.route {
            req.push("Route", r);
        }
        req
    }

    /// What acknowledges a failure of our last INVITE on this leg, sent with `via`'s
    /// `branch`.
    pub(super) fn ack_parts(&self, via: &str, branch: &str) -> AckParts {
        AckParts {
            uri: self.target.clone(),
            via: format!("{via};branch={branch};rport"),
            from: self.local.clone(),
            call_id: self.call_id.clone(),
            cseq: self.cseq,
        }
    }

    /// A new in-dialog request and its branch.
    pub(super) fn request(&mut self, method: &str, via: &str) -> (Outgoing, String) {
        self.cseq += 1;
        let branch = new_branch();
        let req = self.dialog_request(method, &super::via_with_branch(via, &branch), self.cseq);
        (req, branch)
    }
}

/// The ACK of a 2xx: its own transaction-less request in the dialog.
pub(super) async fn send_ack(core: &Arc<SipCore>, leg: &Leg, cseq: u32, via: &str) {
    send_ack_with(core, leg, cseq, via, &SdpBody::default()).await
}

/// A message body with its Content-Type (empty: none).
#[derive(Debug, Clone, Default)]
pub(super) struct SdpBody {
    pub(super) content_type: Option<String>,
    pub(super) bytes: Vec<u8>,
}

impl SdpBody {
    pub(super) fn of(msg: &Message) -> SdpBody {
        SdpBody {
            content_type: msg.content_type().map(str::to_string),
            bytes: msg.body.clone(),
        }
    }
}

/// An ACK for a 2xx, carrying `body` (the caller's answer to a late offer).
pub(super) async fn send_ack_with(
    core: &Arc<SipCore>,
    leg: &Leg,
    cseq: u32,
    via: &str,
    body: &SdpBody,
) {
    let ack = leg
        .dialog_request("ACK", &format!("{via};branch={};rport", new_branch()), cseq)
        .body(body.content_type.as_deref(), &body.bytes);
    core.txs.send_stateless(&ack, leg.peer).await;
}

/// BYE a leg.
pub(super) async fn send_bye(core: &Arc<SipCore>, leg: &mut Leg, via: &str) {
    let (bye, branch) = leg.request("BYE", via);
    send_and_forget(core, bye, &branch, "BYE", leg.peer).await;
}

/// Send a converted digit to a leg as an `application/dtmf-relay` INFO.
pub(super) async fn send_info_digit(core: &Arc<SipCore>, leg: &mut Leg, via: &str, d: InfoDigit) {
    let (info, branch) = leg.request("INFO", via);
    let body = crate::media::dtmf::info_body(d.digit, d.duration_ms);
    let info = info.body(Some("application/dtmf-relay"), body.as_bytes());
    send_and_forget(core, info, &branch, "INFO", leg.peer).await;
}

/// Send a request whose answer nobody waits for; its transaction runs on without us
/// (retransmission, timeout).
pub(super) async fn send_and_forget(
    core: &Arc<SipCore>,
    req: Outgoing,
    branch: &str,
    method: &str,
    peer: Peer,
) {
    core.txs.request_detached(req, branch, method, peer).await;
}

/// Host part for URIs we write (IPv6 in brackets).
pub(super) fn host_of(addr: std::net::SocketAddr) -> String {
    match addr {
        std::net::SocketAddr::V4(a) => a.to_string(),
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}
