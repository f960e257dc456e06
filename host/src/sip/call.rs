//! One call through the B2BUA: admission, the policy's screen and route, the vendor
//! attempts with failover, then the two dialogs until one side hangs up. The customer
//! leg (A) and each vendor leg (B) are separate dialogs with their own Call-ID, tags,
//! CSeq, Via and Contact: nothing of one side's topology reaches the other.
//!
//! A call is one task. Its events (requests in either dialog, the ACK of our 2xx)
//! arrive on one channel; its client transactions report on their own channels.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

use crate::policy::{Attempt, Call, Decision, NextStep, Outcome, Verdict};
use switchyard_model::{
    AttemptRecord, CallRecord, EndReason, G729Mode, MediaSettings, RoutingGateway,
};

use super::admission::{Admit, Slot};
use super::digest::Challenge;
use super::live::{LiveCall, LiveMedia};
use super::message::{param, uri_of, user_of, Message, Outgoing};
use super::record::{answered_codec, call_record, Origin};
use super::session_timer::{parse_session_expires, LegTimer};
use super::transaction::{AckParts, ClientEvent, ServerTx, T1, T2, TIMER_64T1};
use super::transport::Peer;
use super::{a_key, b_key, parse_address, CallEvent, SipCore};
use super::{new_branch, new_tag};
use crate::media::codec::Codec;
use crate::media::{InfoDigit, Relay, Side};

/// Methods we accept, for Allow headers.
pub(super) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";

/// Headers of the customer's INVITE carried to the vendor unless the module says otherwise.
const CARRIED_HEADERS: &[&str] = &[
    "P-Asserted-Identity",
    "Privacy",
    "P-Preferred-Identity",
    "Diversion",
];

/// Decide on a new INVITE and, when admitted, start its call task.
pub(super) async fn start(core: Arc<SipCore>, invite: Message, tx: Arc<ServerTx>) {
    let peer = tx.peer;
    let call_id = invite.call_id().to_string();
    let reply =
        |code: u16, reason: &str| Outgoing::response(&invite, code, reason, Some(&new_tag()));
    match invite.max_forwards() {
        None => return core.txs.respond(&tx, reply(400, "Bad Max-Forwards")).await,
        Some(0) => return core.txs.respond(&tx, reply(483, "Too Many Hops")).await,
        Some(_) => {}
    }
    // An INVITE carrying one of our own vendor-leg Call-IDs has looped back to us.
    if core.dialogs().contains_key(&b_key(&call_id)) {
        return core.txs.respond(&tx, reply(482, "Loop Detected")).await;
    }
    let requested = invite
        .request_uri()
        .map(|u| user_of(u).to_string())
        .unwrap_or_default();
    let arrived_at_ms = core.policy.runtime().clock.now_ms();
    let mut admitted = core.admission.admit(peer.addr.ip(), &requested);
    if matches!(admitted, Admit::Unknown) {
        // Not a gateway's address: perhaps a phone, which must prove who it is.
        match authenticate_phone(&core, &invite, &tx).await {
            PhoneAuth::Admitted(gateway_id) => {
                admitted = core.admission.admit_on(&gateway_id, &requested)
            }
            PhoneAuth::Answered => return,
            PhoneAuth::NotAPhone => {}
        }
    }
    let (gateway_id, gateway, callee, slot) = match admitted {
        Admit::Accepted {
            gateway_id,
            gateway,
            callee,
            slot,
        } => (gateway_id, gateway, callee, slot),
        Admit::Unknown => {
            tracing::info!(%call_id, source = %peer.addr, "INVITE from an unknown source");
            if core.config.reply_unauthorized {
                let code = core.config.unauthorized_code;
                let reason = if code == 401 {
                    "Unauthorized"
                } else {
                    "Forbidden"
                };
                core.txs.respond(&tx, reply(code, reason)).await;
            } else {
                core.txs.abandon(&tx);
            }
            return;
        }
        Admit::Limited { why, gateway } => {
            tracing::info!(%call_id, source = %peer.addr, reason = %why, "call refused by a limit");
            let resp = reply(503, "Service Unavailable")
                .header("Reason", format!("SIP;cause=503;text=\"{why}\""));
            core.txs.respond(&tx, resp).await;
            // A refusal on a known gateway is the customer's call: it leaves a record.
            if let Some((gateway_id, gateway)) = gateway.map(|g| *g) {
                let origin = Origin::on(&gateway_id, &gateway, &requested, peer);
                let wit = call_record(&invite, &origin, arrived_at_ms);
                let record = new_call_record(&origin, &wit, &requested);
                save_refusal(&core.store, record, 503, &why, EndReason::Limit).await;
            }
            return;
        }
    };
    // RFC 4028: a session interval below our minimum is refused with 422.
    let min_se = core.config.session_min_se_secs;
    if let Some((secs, _)) = invite
        .header("Session-Expires")
        .and_then(parse_session_expires)
    {
        if secs < min_se {
            let resp =
                reply(422, "Session Interval Too Small").header("Min-SE", min_se.to_string());
            return core.txs.respond(&tx, resp).await;
        }
    }
    // The gateway's callee dial plan: routing, billing and the module see its result.
    let callee = switchyard_model::apply_number_rules(&gateway.callee_rules, &callee);
    let origin = Origin::on(&gateway_id, &gateway, &callee, peer);
    let wit = call_record(&invite, &origin, arrived_at_ms);
    let record = new_call_record(&origin, &wit, &requested);
    // A codec the caller's gateway pins must be in the offer: refused at once,
    // before any vendor INVITE.
    if let Err(why) =
        crate::media::negotiation::caller_offers_its_codec(&gateway.media, &invite.body)
    {
        tracing::info!(%call_id, reason = %why, "call refused");
        let resp = reply(488, "Not Acceptable Here")
            .header("Reason", format!("SIP;cause=488;text=\"{why}\""));
        core.txs.respond(&tx, resp).await;
        return save_refusal(&core.store, record, 488, &why, EndReason::CodecNotOffered).await;
    }
    // Billing refuses before any vendor INVITE, and the refusal is recorded.
    let billing = match core.billing.authorize(&gateway.account, &callee) {
        Ok(billing) => Some(billing),
        Err(refusal) => {
            tracing::info!(%call_id, account = %gateway.account, reason = %refusal.detail, "call refused by billing");
            let resp = reply(refusal.code, refusal.phrase).header(
                "Reason",
                format!(
                    "SIP;cause={};text=\"{}\"",
                    refusal.code,
                    refusal.detail.replace('"', "")
                ),
            );
            core.txs.respond(&tx, resp).await;
            let why = &refusal.detail;
            return save_refusal(&core.store, record, refusal.code, why, refusal.reason).await;
        }
    };
    core.txs
        .respond(&tx, Outgoing::response(&invite, 100, "Trying", None))
        .await;

    let (events_tx, events) = mpsc::channel(32);
    let a_tag = new_tag();
    let from = invite.header("From").unwrap_or_default().to_string();
    let key = a_key(&call_id, invite.from_tag().unwrap_or_default());
    core.dialogs().insert(key.clone(), events_tx.clone());
    let a = Leg {
        peer,
        call_id: call_id.clone(),
        local: format!("{};tag={a_tag}", invite.header("To").unwrap_or_default()),
        remote: from,
        target: invite
            .header("Contact")
            .map(|c| uri_of(c).to_string())
            .unwrap_or_else(|| format!("sip:{}", peer.addr)),
        cseq: 0,
        // A UAS's route set is the Record-Route as received (§12.1.1).
        route: invite
            .headers_named("Record-Route")
            .map(str::to_string)
            .collect(),
    };
    let span = tracing::info_span!("call", call_id = %call_id);
    let call = CallTask {
        core,
        invite,
        tx,
        a,
        a_tag,
        events,
        events_tx,
        keys: vec![key],
        wit,
        record,
        relayed_ringing: false,
        relayed_sdp: false,
        busy_gateway: None,
        billing,
        hangup: None,
        relay: None,
        relaying: false,
        transcoding: None,
        pinned: (None, None),
        info_digits: None,
        media_settings: Default::default(),
        g729_modes: Default::default(),
        g729_names: Default::default(),
        _slot: slot,
    };
    tokio::spawn(call.run().instrument(span));
}

/// The record of a call as it arrives; `callee_in` is the number as dialled (before
/// the tech prefix is stripped).
fn new_call_record(origin: &Origin<'_>, wit: &Call, callee_in: &str) -> CallRecord {
    CallRecord {
        call_id: wit.call_id.clone(),
        tenant: origin.tenant.to_string(),
        account: origin.account.to_string(),
        ingress_gateway: origin.ingress_gateway.to_string(),
        egress_gateway: None,
        caller_in: wit.caller.user.clone(),
        callee_in: callee_in.to_string(),
        caller_out: None,
        callee_out: None,
        invite_ms: wit.arrived_at_ms,
        ring_ms: None,
        answer_ms: None,
        end_ms: 0,
        pdd_ms: None,
        final_code: 0,
        final_reason: None,
        codec_in: None,
        codec_out: None,
        reason: EndReason::FailoverExhausted,
        module: None,
        module_version: None,
        attempts: Vec::new(),
        billing: None,
    }
}

/// Record a call refused at setup with `code` and `why`: it ends as it arrives.
async fn save_refusal(
    store: &crate::store::Store,
    mut record: CallRecord,
    code: u16,
    why: &str,
    reason: EndReason,
) {
    record.final_code = code;
    record.final_reason = Some(why.to_string());
    record.end_ms = crate::now_ms();
    record.reason = reason;
    save_call_record(store, &record).await
}

/// Store a finished call's record and flush it: call records are money, so they are
/// durable (group commit) before the call is forgotten.
async fn save_call_record(store: &crate::store::Store, record: &CallRecord) {
    if let Err(e) = store.record_call(record.clone()).await {
        tracing::error!(call_id = %record.call_id, error = %e, "writing the call record failed");
    }
}

enum PhoneAuth {
    /// Authenticated: its mapping gateway.
    Admitted(String),
    /// Challenged or refused; the INVITE is answered.
    Answered,
    /// The From user is no phone of ours.
    NotAPhone,
}

/// Digest-authenticate an INVITE whose From user is a phone (spec decision 1).
async fn authenticate_phone(
    core: &Arc<SipCore>,
    invite: &Message,
    tx: &Arc<ServerTx>,
) -> PhoneAuth {
    let user = user_of(uri_of(invite.header("From").unwrap_or_default())).to_string();
    let Ok(Some(phone)) = core.store.carrier_get::<switchyard_model::Phone>(&user) else {
        return PhoneAuth::NotAPhone;
    };
    let proxy = core.config.auth_challenge_code != 401;
    let credentials = invite.header(if proxy {
        "Proxy-Authorization"
    } else {
        "Authorization"
    });
    let source = tx.peer.addr.ip();
    let verified = core.auth.verify(
        credentials,
        "INVITE",
        source,
        &user,
        super::registrar::ha1_of(&phone),
    );
    let refusal = match verified {
        Ok(()) => return PhoneAuth::Admitted(phone.mapping_gateway),
        Err(r) => r,
    };
    let tag = new_tag();
    let resp = match refusal {
        super::digest::Refusal::Suspended => {
            tracing::info!(%user, %source, "INVITE refused: suspended after failed authentication");
            Outgoing::response(invite, 403, "Suspended", Some(&tag))
        }
        _ => {
            let (code, reason, header) = if proxy {
                (407, "Proxy Authentication Required", "Proxy-Authenticate")
            } else {
                (401, "Unauthorized", "WWW-Authenticate")
            };
            let mut resp = Outgoing::response(invite, code, reason, Some(&tag));
            for c in core.auth.challenges() {
                resp.push(header, c);
            }
            resp
        }
    };
    core.txs.respond(tx, resp).await;
    PhoneAuth::Answered
}

/// One side of the call, as a dialog we take part in.
#[derive(Debug, Clone)]
struct Leg {
    /// Where its requests go.
    peer: Peer,
    call_id: String,
    /// Our name-addr with our tag (From of our requests).
    local: String,
    /// Their name-addr with their tag (To of our requests).
    remote: String,
    /// Request-URI of in-dialog requests (their Contact).
    target: String,
    /// Our last CSeq in this dialog.
    cseq: u32,
    /// Route headers of our in-dialog requests (RFC 3261 §12.1: the Record-Route of
    /// the request or response that made the dialog).
    route: Vec<String>,
}

impl Leg {
    /// Our dialog with a vendor that answered our INVITE (`ours`) with the 2xx `resp`.
    fn answered(resp: &Message, peer: Peer, ours: &AckParts) -> Leg {
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
    fn dialog_request(&self, method: &str, via: &str, cseq: u32) -> Outgoing {
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
    fn ack_parts(&self, via: &str, branch: &str) -> AckParts {
        AckParts {
            uri: self.target.clone(),
            via: format!("{via};branch={branch};rport"),
            from: self.local.clone(),
            call_id: self.call_id.clone(),
            cseq: self.cseq,
        }
    }

    /// A new in-dialog request and its branch.
    fn request(&mut self, method: &str, via: &str) -> (Outgoing, String) {
        self.cseq += 1;
        let branch = new_branch();
        let req = self.dialog_request(method, &super::via_with_branch(via, &branch), self.cseq);
        (req, branch)
    }
}

struct CallTask {
    core: Arc<SipCore>,
    invite: Message,
    tx: Arc<ServerTx>,
    a: Leg,
    a_tag: String,
    events: mpsc::Receiver<CallEvent>,
    events_tx: mpsc::Sender<CallEvent>,
    keys: Vec<String>,
    wit: Call,
    record: CallRecord,
    relayed_ringing: bool,
    relayed_sdp: bool,
    /// The routing gateway whose live call count this call holds.
    busy_gateway: Option<String>,
    /// The account's rate and reserved money; taken when the call settles.
    billing: Option<crate::billing::Authorization>,
    /// The BYE that ended the call, answered after the record is written: a party
    /// that saw its hang-up accepted finds the call's record even after a crash.
    hangup: Option<(Arc<ServerTx>, Box<Message>)>,
    /// The RTP relay, once an attempt needed one; SDP through it is rewritten while
    /// `relaying` (the current attempt, then the answered call, uses it).
    relay: Option<Relay>,
    relaying: bool,
    /// Codecs of (caller, vendor) when the relay converts between them.
    transcoding: Option<(Codec, Codec)>,
    /// Codecs the (caller's, vendor's) gateways pin, each side offered only its own.
    pinned: (Option<Codec>, Option<Codec>),
    /// Digits the relay converted that go out as SIP INFO.
    info_digits: Option<mpsc::UnboundedReceiver<InfoDigit>>,
    /// Media settings of the (caller's, vendor's) gateways for the current attempt.
    media_settings: (MediaSettings, MediaSettings),
    /// G.729 negotiation modes of the (caller's, vendor's) gateways.
    g729_modes: (G729Mode, G729Mode),
    /// The G.729 name each side used in its own SDP (caller, vendor): Auto mirrors it.
    g729_names: std::sync::Mutex<[Option<String>; 2]>,
    _slot: Slot,
}

/// Why an attempt on a full routing gateway was skipped.
const AT_CAPACITY: &str = "gateway at capacity";

/// INVITEs one attempt may send after the first: a challenge and a 422, with room for a
/// stale nonce.
const MAX_RESENDS: u32 = 3;

/// What changes when an attempt INVITEs its vendor again.
enum Resend {
    /// Answer this digest challenge.
    Authorize(Challenge),
    /// Offer this session interval (and Min-SE).
    SessionInterval(u32),
}

/// How one attempt ended.
enum AttemptEnd {
    Answered {
        b: Leg,
        b_invite: mpsc::Receiver<ClientEvent>,
        answer: Box<Message>,
    },
    Failed(Outcome),
    Skipped(String),
    /// Skipped because the media plan refuses the caller's codecs for this gateway.
    Unacceptable(String),
    CallerCancelled,
}

/// The established call's in-flight relayed request.
struct Relayed {
    from_a: bool,
    method: String,
    origin: Arc<ServerTx>,
    origin_req: Box<Message>,
    responses: mpsc::Receiver<ClientEvent>,
}

impl CallTask {
    /// Our Via towards `peer`, without its branch.
    fn via(&self, peer: Peer) -> String {
        self.core.via_base(peer)
    }

    fn contact(&self, peer: Peer) -> String {
        self.core.contact("switchyard", peer)
    }

    /// Answer the caller with a final failure, and record it as the call's.
    async fn reply(&mut self, code: u16, reason: &str) {
        self.record.final_code = code;
        // An empty phrase is the standard one for the code: nothing to add.
        self.record.final_reason = (!reason.is_empty()).then(|| reason.to_string());
        let resp = Outgoing::response(&self.invite, code, reason, Some(&self.a_tag));
        self.core.txs.respond(&self.tx, resp).await;
    }

    async fn run(mut self) {
        self.publish();
        let reason = self.decide_and_connect().await;
        self.finish(reason).await;
    }

    /// Show the call as it stands in the live view.
    fn publish(&self) {
        self.core
            .live
            .update(LiveCall::of(&self.record, self.live_media()));
    }

    /// The relay, while this call's media goes through it.
    fn active_relay(&self) -> Option<&Relay> {
        self.relay.as_ref().filter(|_| self.relaying)
    }

    /// What the live view shows of the call's media: whether it is relayed and
    /// transcoded, and the DTMF methods the relay has seen each leg use.
    fn live_media(&self) -> LiveMedia {
        let relay = self.active_relay();
        LiveMedia {
            relayed: relay.is_some(),
            transcoded: relay.is_some() && self.transcoding.is_some(),
            dtmf: [Side::Caller, Side::Callee].map(|side| relay.and_then(|r| r.dtmf_method(side))),
        }
    }

    /// Screen, route, try the attempts; then, if answered, carry the call to its end.
    async fn decide_and_connect(&mut self) -> EndReason {
        let Some(policy) = self.core.policy.for_call(&self.wit) else {
            tracing::warn!("no routing module bound; refusing the call");
            self.reply(503, "No Routing Policy").await;
            return EndReason::NoPolicy;
        };
        let key = policy.version().clone();
        self.record.module = Some(format!("{}/{}", key.tenant, key.name));
        self.record.module_version = Some(key.version.clone());

        // The screen's limit holds whatever the session timers do.
        let mut max_duration = 0;
        match policy.screen(&self.wit).await.value {
            Verdict::Allow => {}
            Verdict::AllowWithLimits(l) => max_duration = l.max_duration_secs,
            Verdict::Reject(r) => {
                tracing::info!(code = r.code, reason = %r.reason, "screen rejected the call");
                self.reply(r.code, &r.reason).await;
                return EndReason::RejectedByModule;
            }
        }
        let mut attempts: std::collections::VecDeque<Attempt> =
            match policy.route(&self.wit).await.value {
                Decision::Reject(r) => {
                    self.reply(r.code, &r.reason).await;
                    return EndReason::RejectedByModule;
                }
                Decision::Attempts(list) => list.into(),
            };
        if attempts.is_empty() {
            self.reply(404, "No Route").await;
            return EndReason::NoRoute;
        }

        let limit = self.core.config.gateway_switch_limit.max(1) as usize;
        let mut index = 0u32;
        let mut last_failure: Option<(u16, String)> = None;
        let mut all_skipped = true;
        let mut all_unacceptable = true;
        while let Some(attempt) = attempts.pop_front() {
            if self
                .record
                .attempts
                .iter()
                .filter(|a| !a.leg_call_id.is_empty())
                .count()
                >= limit
            {
                tracing::info!(limit, "gateway switch limit reached");
                break;
            }
            let end = self.attempt(&attempt, index).await;
            all_unacceptable &= matches!(end, AttemptEnd::Unacceptable(_));
            // The attempt is over: a pool number borrowed for its gateway is free again,
            // or, answered, those borrowed for the others are.
            let answered = matches!(end, AttemptEnd::Answered { .. });
            self.core
                .policy
                .runtime()
                .pools
                .release_where(&self.record.call_id, |g| (g == attempt.gateway) != answered);
            match end {
                AttemptEnd::Answered {
                    b,
                    b_invite,
                    answer,
                } => {
                    return self
                        .connected(b, b_invite, *answer, &attempt, max_duration)
                        .await;
                }
                AttemptEnd::CallerCancelled => {
                    self.record.final_code = 487;
                    return EndReason::CallerCancel;
                }
                AttemptEnd::Skipped(why) | AttemptEnd::Unacceptable(why) => {
                    tracing::info!(gateway = %attempt.gateway, reason = %why, "attempt skipped");
                    self.record.attempts.push(AttemptRecord {
                        gateway: attempt.gateway.clone(),
                        leg_call_id: String::new(),
                        callee: attempt.callee.clone(),
                        caller: self.caller_for(&attempt),
                        started_ms: crate::now_ms(),
                        pdd_ms: None,
                        code: None,
                        reason: why,
                        timed_out: false,
                        ended_ms: Some(crate::now_ms()),
                    });
                }
                AttemptEnd::Failed(outcome) => {
                    all_skipped = false;
                    tracing::info!(gateway = %attempt.gateway, code = ?outcome.code, timed_out = outcome.timed_out, "attempt failed");
                    if let Some(code) = outcome.code {
                        last_failure = Some((code, outcome.reason.clone()));
                    }
                    if outcome.timed_out && self.core.config.stop_switch_after_invite_timeout {
                        break;
                    }
                    match policy
                        .on_attempt_failed(&self.wit, &attempt, &outcome)
                        .await
                        .value
                    {
                        NextStep::Continue => {}
                        NextStep::Insert(next) => attempts.push_front(next),
                        NextStep::Stop(r) => {
                            self.reply(r.code, &r.reason).await;
                            return EndReason::CalleeRejected;
                        }
                    }
                }
            }
            index += 1;
        }
        // Every gateway tried refused the caller's codecs: that is the caller's offer
        // being unacceptable (RFC 3261 §21.4.26), not the gateways being busy.
        if all_unacceptable && !self.record.attempts.is_empty() {
            let why = self.record.attempts.last().map(|a| a.reason.clone());
            let resp =
                Outgoing::response(&self.invite, 488, "Not Acceptable Here", Some(&self.a_tag))
                    .header(
                        "Warning",
                        format!("304 switchyard \"{}\"", why.as_deref().unwrap_or_default()),
                    );
            self.core.txs.respond(&self.tx, resp).await;
            self.record.final_code = 488;
            self.record.final_reason = why;
            return EndReason::CodecNotOffered;
        }
        // Spec decision 18: when every attempt fails the caller gets 503.
        if all_skipped {
            // Nothing was sent: every gateway was full, down or unusable. Say which.
            let why = self
                .record
                .attempts
                .last()
                .map_or("no usable gateway", |a| a.reason.as_str())
                .to_string();
            let resp = Outgoing::response(
                &self.invite,
                503,
                "All Gateways Busy Or Down",
                Some(&self.a_tag),
            )
            .header("Reason", format!("SIP;cause=503;text=\"{why}\""));
            self.core.txs.respond(&self.tx, resp).await;
            self.record.final_code = 503;
            self.record.final_reason = Some(why);
            let at_capacity = self.record.attempts.iter().all(|a| a.reason == AT_CAPACITY);
            return if at_capacity && !self.record.attempts.is_empty() {
                EndReason::Limit
            } else {
                EndReason::FailoverExhausted
            };
        }
        let (code, reason) = {
            match last_failure {
                Some((code, reason))
                    if (400..700).contains(&code) && code != 408 && !(500..600).contains(&code) =>
                {
                    (code, reason)
                }
                _ => (503, "All Routes Failed".to_string()),
            }
        };
        self.reply(code, &reason).await;
        EndReason::FailoverExhausted
    }

    /// Decide whether this attempt relays its media (the gateways' media proxy
    /// settings; Auto relays when the caller's SDP address is not where its
    /// signalling comes from) and start the relay on the first that does. The error
    /// says why an attempt that needs the relay cannot have it.
    async fn prepare_media(
        &mut self,
        vendor: &RoutingGateway,
        vendor_peer: Peer,
    ) -> Result<(), AttemptEnd> {
        let customer = self
            .core
            .store
            .carrier_get::<switchyard_model::MappingGateway>(&self.record.ingress_gateway)
            .ok()
            .flatten();
        let caller_audio = crate::media::sdp::audio_endpoint(&self.invite.body);
        let nat = caller_audio.is_some_and(|a| a.ip() != self.a.peer.addr.ip());
        let customer_media = customer.map(|g| g.media).unwrap_or_default();
        let plan = crate::media::negotiation::plan(
            &customer_media,
            &vendor.media,
            &self.invite.body,
            self.core.media.config.proxy_mode,
            nat,
        )
        .map_err(AttemptEnd::Unacceptable)?;
        self.pinned = plan.pinned;
        self.g729_modes = plan.g729_modes;
        self.transcoding = plan.transcode;
        self.relaying = plan.relay;
        self.media_settings = (customer_media, vendor.media.clone());
        if self.relaying {
            self.start_relay(vendor_peer)
                .await
                .map_err(AttemptEnd::Skipped)?;
        }
        if let (Some(relay), Some((caller, vendor))) = (&self.relay, self.transcoding) {
            tracing::info!(
                caller = caller.rtpmap(),
                vendor = vendor.rtpmap(),
                "transcoding"
            );
            relay.transcode(caller, vendor);
        }
        Ok(())
    }

    /// The call's relay, started if it has none, set for the gateways' DTMF settings.
    async fn start_relay(&mut self, vendor_peer: Peer) -> Result<(), String> {
        if self.relay.is_none() {
            let transports = self.core.txs.transports();
            let caller_ip = transports.advertised_for(self.a.peer.addr).ip();
            let vendor_ip = transports.advertised_for(vendor_peer.addr).ip();
            let relay = self
                .core
                .media
                .relay(caller_ip, vendor_ip)
                .await
                .map_err(|e| format!("media relay: {e}"))?;
            tracing::info!(
                caller_side = relay.local_port(Side::Caller),
                vendor_side = relay.local_port(Side::Callee),
                "relaying media"
            );
            self.relay = Some(relay);
        }
        if let Some(relay) = self.relay.as_mut() {
            let (customer, vendor) = &self.media_settings;
            relay.configure_dtmf(customer, vendor);
            if self.info_digits.is_none() {
                self.info_digits = relay.take_info_digits();
            }
        }
        Ok(())
    }

    /// In Auto mode the vendor's NAT shows only in its answer: its SDP names another
    /// address than its signalling comes from, while our offer has already sent it the
    /// caller's. The call then relays after all; true when the vendor must be
    /// re-INVITEd towards the relay (the caller's answer names the relay already).
    async fn relay_for_vendor_nat(&mut self, answer: &Message, vendor_peer: Peer) -> bool {
        if self.relaying || self.invite.body.is_empty() {
            return false;
        }
        let Some(audio) = crate::media::sdp::audio_endpoint(&answer.body) else {
            return false;
        };
        let (customer, vendor) = (&self.media_settings.0, &self.media_settings.1);
        if audio.ip() == vendor_peer.addr.ip()
            || !self
                .core
                .media
                .wants_relay(customer.proxy, vendor.proxy, true)
        {
            return false;
        }
        if let Err(why) = self.start_relay(vendor_peer).await {
            tracing::warn!(%audio, "vendor's media is behind NAT but cannot be relayed: {why}");
            return false;
        }
        tracing::info!(%audio, vendor = %vendor_peer.addr, "vendor's media is behind NAT; relaying");
        self.relaying = true;
        true
    }

    /// SDP from `from` as the other side must get it: through the relay while the
    /// call relays its media, unchanged otherwise.
    fn carry_sdp(&self, body: &[u8], from: Side) -> Vec<u8> {
        if body.is_empty() {
            return Vec::new();
        }
        let carried = match self.active_relay() {
            Some(relay) => relay.carry_sdp(body, from),
            None => body.to_vec(),
        };
        let carried = self.offer_own_codec(carried, from.other());
        self.name_g729(&carried, body, from)
    }

    /// Each side hears of its own codec only: the one the relay converts to, or the
    /// one its gateway pins, when the SDP has it.
    fn offer_own_codec(&self, sdp: Vec<u8>, to: Side) -> Vec<u8> {
        let to_caller = to == Side::Caller;
        let (codec, encodes) = match (self.transcoding, self.pinned) {
            (Some((caller, vendor)), _) => (if to_caller { caller } else { vendor }, true),
            (None, (caller, vendor)) => match if to_caller { caller } else { vendor } {
                Some(codec) => (codec, false),
                None => return sdp,
            },
        };
        let has = crate::media::sdp::audio_formats(&sdp)
            .iter()
            .any(|(pt, _)| *pt == codec.payload_type());
        match encodes || has {
            true => crate::media::sdp::offer_only(&sdp, codec, encodes).unwrap_or(sdp),
            false => sdp,
        }
    }

    /// Whether an INFO from one side goes on to the other as it is. A DTMF INFO of a
    /// relayed call is the relay's to convert or refuse; anything else goes on.
    fn info_goes_on(&self, msg: &Message, from_a: bool) -> bool {
        let Some(relay) = self.active_relay() else {
            return true;
        };
        let content_type = msg.content_type().unwrap_or_default();
        match crate::media::dtmf::parse_info(content_type, &msg.body) {
            Some((digit, duration_ms)) => {
                let from = if from_a { Side::Caller } else { Side::Callee };
                relay.info_digit(from, digit, duration_ms)
            }
            None => true,
        }
    }

    /// `sdp`, carried from `from` (whose own SDP was `original`), with its G.729
    /// formats named as the receiving side's gateway says.
    fn name_g729(&self, sdp: &[u8], original: &[u8], from: Side) -> Vec<u8> {
        let (from_i, to_i) = match from {
            Side::Caller => (0, 1),
            Side::Callee => (1, 0),
        };
        let mode = [self.g729_modes.0, self.g729_modes.1][to_i];
        let mut names = self.g729_names.lock().unwrap_or_else(|e| e.into_inner());
        // Most SDP never names G.729: then, in Auto, there is nothing to note or mirror
        // and no need to read it twice more.
        let names_g729 = |b: &[u8]| b.windows(4).any(|w| w.eq_ignore_ascii_case(b"G729"));
        if mode == G729Mode::Auto && names[to_i].is_none() && !names_g729(original) {
            return sdp.to_vec();
        }
        if let Some(name) = crate::media::sdp::g729_name(original) {
            names[from_i] = Some(name);
        }
        crate::media::sdp::with_g729_names(sdp, mode, names[to_i].as_deref())
            .unwrap_or_else(|| sdp.to_vec())
    }

    fn caller_for(&self, attempt: &Attempt) -> String {
        attempt
            .caller
            .clone()
            .unwrap_or_else(|| self.wit.caller.user.clone())
    }

    /// Send one vendor INVITE and follow it to an answer, a failure or the caller's CANCEL.
    async fn attempt(&mut self, attempt: &Attempt, index: u32) -> AttemptEnd {
        let core = self.core.clone();
        let gateway = match core.store.carrier_get::<RoutingGateway>(&attempt.gateway) {
            Ok(Some(g)) if g.tenant == self.wit.tenant => g,
            Ok(_) => return AttemptEnd::Skipped("unknown routing gateway".into()),
            Err(e) => return AttemptEnd::Skipped(format!("store error: {e}")),
        };
        if !gateway.enabled {
            return AttemptEnd::Skipped("gateway disabled".into());
        }
        let live = core.policy.runtime().gateway_live(&attempt.gateway);
        if live.down {
            return AttemptEnd::Skipped("gateway down".into());
        }
        if gateway.capacity > 0 && live.current_calls >= gateway.capacity {
            return AttemptEnd::Skipped(AT_CAPACITY.into());
        }
        let Some(addr) = gateway.address.as_deref().and_then(parse_address) else {
            return AttemptEnd::Skipped("gateway has no usable address".into());
        };
        let peer = Peer {
            addr,
            transport: gateway.transport,
        };
        self.hold_gateway(&attempt.gateway);

        let advertised = core.txs.transports().advertised_for(peer.addr);
        let caller = self.caller_for(attempt);
        let call_id = core.new_call_id();
        let tag = new_tag();
        let branch = new_branch();
        let uri = format!("sip:{}@{}", attempt.callee, addr);
        let display = attempt
            .display
            .clone()
            .or_else(|| self.wit.caller.display.clone());
        let from_addr = format!("<sip:{caller}@{}>", host_of(advertised));
        let from = match display {
            Some(d) => format!("\"{}\" {from_addr};tag={tag}", d.replace('"', "")),
            None => format!("{from_addr};tag={tag}"),
        };
        let to = format!("<{uri}>");
        let via = self.core.via(peer, &branch);
        let max_forwards = self.invite.max_forwards().unwrap_or(70).saturating_sub(1);
        let mut req = Outgoing::request("INVITE", &uri)
            .header("Via", &via)
            .header("Max-Forwards", max_forwards.to_string())
            .header("From", &from)
            .header("To", &to)
            .header("Call-ID", &call_id)
            .header("CSeq", "1 INVITE")
            .header("Contact", self.contact(peer))
            .header("Allow", ALLOW)
            .header("Supported", "timer")
            .header(
                "Session-Expires",
                self.core.config.session_ttl_secs.to_string(),
            )
            .header("Min-SE", self.core.config.session_min_se_secs.to_string());
        for name in CARRIED_HEADERS {
            for v in self.invite.headers_named(name) {
                req.push(name, v);
            }
        }
        let rewrites = [
            ("P-Asserted-Identity", &attempt.p_asserted_identity),
            ("Privacy", &attempt.privacy),
            ("P-Preferred-Identity", &attempt.p_preferred_identity),
        ];
        for (name, value) in rewrites {
            if let Some(v) = value {
                req.remove(name);
                req.push(name, v);
            }
        }
        for name in &attempt.remove_headers {
            req.remove(name);
        }
        for h in &attempt.add_headers {
            req.push(&h.name, &h.value);
        }
        if let Err(end) = self.prepare_media(&gateway, peer).await {
            return end;
        }
        let offer = self.carry_sdp(&self.invite.body, Side::Caller);
        let mut req = req.body(self.invite.content_type(), &offer);

        let b_key = b_key(&call_id);
        self.core
            .dialogs()
            .insert(b_key.clone(), self.events_tx.clone());
        self.keys.push(b_key);
        let mut invite = AckParts {
            uri: uri.clone(),
            via: via.clone(),
            from: from.clone(),
            call_id: call_id.clone(),
            cseq: 1,
        };
        let mut responses = core
            .txs
            .request(req.clone(), &branch, "INVITE", peer, Some(invite.clone()))
            .await;
        let mut resends = 0;
        tracing::info!(gateway = %attempt.gateway, %addr, leg = %call_id, callee = %attempt.callee, "attempt {index}");
        self.publish();
        let started = Instant::now();
        self.record.attempts.push(AttemptRecord {
            gateway: attempt.gateway.clone(),
            leg_call_id: call_id.clone(),
            callee: attempt.callee.clone(),
            caller,
            started_ms: crate::now_ms(),
            pdd_ms: None,
            code: None,
            reason: String::new(),
            timed_out: false,
            ended_ms: None,
        });
        let invite_timeout = Duration::from_millis(u64::from(
            attempt
                .timeout_ms
                .or(gateway.invite_timeout_ms)
                .unwrap_or(self.core.config.invite_timeout_ms),
        ));
        let progress_timeout = Duration::from_millis(u64::from(
            gateway
                .progress_timeout_ms
                .unwrap_or(self.core.config.progress_timeout_ms),
        ));
        let mut deadline = started + invite_timeout;
        let mut provisional = false;
        let mut pdd_ms = None;
        let outcome =
            |code: Option<u16>, reason: String, timed_out: bool, pdd_ms: Option<u32>| Outcome {
                index,
                code,
                reason,
                pdd_ms,
                timed_out,
            };
        let end = loop {
            tokio::select! {
                event = responses.recv() => match event {
                    None | Some(ClientEvent::Timeout) => break AttemptEnd::Failed(outcome(None, "no answer".into(), true, pdd_ms)),
                    Some(ClientEvent::Response(resp)) => {
                        let code = resp.status().unwrap_or(0);
                        if code < 200 {
                            if !provisional {
                                provisional = true;
                                deadline = started + progress_timeout;
                            }
                            if code > 100 {
                                pdd_ms.get_or_insert(started.elapsed().as_millis() as u32);
                                self.relay_provisional(&resp).await;
                            }
                            continue;
                        }
                        if code < 300 {
                            let b = Leg::answered(&resp, peer, &invite);
                            break AttemptEnd::Answered { b, b_invite: responses, answer: resp };
                        }
                        if resends < MAX_RESENDS {
                            if let Some(change) = self.resend_change(&resp, &gateway) {
                                // Same dialog, next CSeq, new transaction; the transaction
                                // layer has ACKed the refusal hop by hop.
                                resends += 1;
                                let branch = new_branch();
                                invite.via = self.core.via(peer, &branch);
                                invite.cseq += 1;
                                req.set("Via", &invite.via);
                                req.set("CSeq", format!("{} INVITE", invite.cseq));
                                match change {
                                    Resend::Authorize(mut challenge) => {
                                        let user = gateway.auth_user.as_deref().unwrap_or_default();
                                        let password = gateway.auth_password.as_deref().unwrap_or_default();
                                        challenge.authorize(&mut req, user, password, "INVITE", &uri);
                                    }
                                    Resend::SessionInterval(secs) => {
                                        req.set("Session-Expires", secs.to_string());
                                        req.set("Min-SE", secs.to_string());
                                    }
                                }
                                tracing::info!(gateway = %attempt.gateway, code, "attempt {index}: INVITE again");
                                responses = core.txs.request(req.clone(), &branch, "INVITE", peer, Some(invite.clone())).await;
                                deadline = Instant::now() + invite_timeout;
                                continue;
                            }
                        }
                        break AttemptEnd::Failed(outcome(Some(code), resp.reason(), false, pdd_ms));
                    }
                },
                _ = sleep_until(deadline) => {
                    tracing::info!(gateway = %attempt.gateway, provisional, "attempt timed out");
                    self.cancel_leg(&invite, &to, peer, provisional, responses).await;
                    let reason = if provisional { "no answer after ringing" } else { "no response" };
                    break AttemptEnd::Failed(outcome(None, reason.into(), true, pdd_ms));
                }
                event = self.events.recv() => match event {
                    Some(CallEvent::Request { msg, tx }) if msg.is(rsip::Method::Cancel) => {
                        core.txs.respond(&tx, Outgoing::response(&msg, 200, "OK", None)).await;
                        self.reply(487, "Request Terminated").await;
                        self.cancel_leg(&invite, &to, peer, provisional, responses).await;
                        break AttemptEnd::CallerCancelled;
                    }
                    Some(CallEvent::Request { msg, tx }) => {
                        // Nothing else belongs in an early dialog we relay.
                        let resp = Outgoing::response(&msg, 491, "Request Pending", None);
                        core.txs.respond(&tx, resp).await;
                    }
                    Some(CallEvent::Ack(_)) | None => {}
                },
            }
        };
        // The attempt's record and the gateway's call count follow how it ended.
        match &end {
            AttemptEnd::Answered { answer, .. } => {
                self.set_attempt_result(answer.status(), answer.reason(), false, pdd_ms)
            }
            AttemptEnd::Failed(o) => {
                self.set_attempt_result(o.code, o.reason.clone(), o.timed_out, pdd_ms)
            }
            AttemptEnd::CallerCancelled => {
                self.set_attempt_result(None, "caller cancelled".into(), false, pdd_ms)
            }
            AttemptEnd::Skipped(_) | AttemptEnd::Unacceptable(_) => {}
        }
        if !matches!(end, AttemptEnd::Answered { .. }) {
            self.release_gateway();
        }
        end
    }

    /// Feed the traffic statistics: each attempt sent to its gateway, the call to its
    /// account.
    fn count_traffic(&self) {
        use crate::runtime::traffic::Outcome;
        let runtime = self.core.policy.runtime();
        let r = &self.record;
        let at_ms = r.end_ms;
        for a in r.attempts.iter().filter(|a| !a.leg_call_id.is_empty()) {
            let answered = a.code.is_some_and(|c| (200..300).contains(&c));
            let duration_secs = if answered { r.duration_secs() } else { 0 };
            runtime.record_attempt(
                &a.gateway,
                Outcome {
                    at_ms,
                    answered,
                    duration_secs,
                    pdd_ms: a.pdd_ms,
                },
            );
        }
        let answered = r.answer_ms.is_some();
        runtime.record_call(
            &r.account,
            Outcome {
                at_ms,
                answered,
                duration_secs: r.duration_secs(),
                pdd_ms: r.pdd_ms,
            },
        );
    }

    /// How to INVITE a vendor again after its refusal `resp`, if we can: answer its
    /// digest challenge with the gateway's credentials (RFC 3261 §22.2), or offer the
    /// session interval its 422 asks for (RFC 4028 §6).
    fn resend_change(&self, resp: &Message, gateway: &RoutingGateway) -> Option<Resend> {
        match resp.status()? {
            401 | 407 if gateway.auth_user.is_some() => Challenge::of(resp).map(Resend::Authorize),
            422 => resp
                .header("Min-SE")
                .and_then(|v| v.split(';').next()?.trim().parse().ok())
                .filter(|secs| *secs > self.core.config.session_ttl_secs.min(86_400))
                .map(Resend::SessionInterval),
            _ => None,
        }
    }

    fn set_attempt_result(
        &mut self,
        code: Option<u16>,
        reason: String,
        timed_out: bool,
        pdd_ms: Option<u32>,
    ) {
        if let Some(a) = self.record.attempts.last_mut() {
            a.code = code;
            a.reason = reason;
            a.timed_out = timed_out;
            a.pdd_ms = pdd_ms;
            a.ended_ms = Some(crate::now_ms());
        }
    }

    fn hold_gateway(&mut self, id: &str) {
        self.release_gateway();
        self.core.policy.runtime().adjust_current_calls(id, 1);
        self.busy_gateway = Some(id.to_string());
    }

    fn release_gateway(&mut self) {
        if let Some(id) = self.busy_gateway.take() {
            self.core.policy.runtime().adjust_current_calls(&id, -1);
        }
    }

    /// Relay a vendor's 18x to the caller. One ringback only: after failover a second
    /// vendor's 180 is not relayed again; a first SDP (early media) still is.
    async fn relay_provisional(&mut self, resp: &Message) {
        let has_sdp = !resp.body.is_empty();
        let first_early_media = has_sdp && !self.relayed_sdp;
        if self.relayed_ringing && !first_early_media {
            return;
        }
        let code = resp.status().unwrap_or(180);
        let body = self.carry_sdp(&resp.body, Side::Callee);
        let out = Outgoing::response(&self.invite, code, &resp.reason(), Some(&self.a_tag))
            .header("Contact", self.contact(self.a.peer))
            .body(resp.content_type(), &body);
        self.core.txs.respond(&self.tx, out).await;
        self.relayed_ringing = true;
        self.relayed_sdp |= has_sdp;
        if self.record.ring_ms.is_none() {
            let now = crate::now_ms();
            self.record.ring_ms = Some(now);
            self.record.pdd_ms = Some(now.saturating_sub(self.record.invite_ms) as u32);
        }
    }

    /// Give up on a vendor INVITE: CANCEL it once it has a provisional answer (RFC 3261
    /// §9.1), and keep its transaction open a while to ACK the 487 — or to ACK and BYE
    /// a 200 that crossed our CANCEL.
    async fn cancel_leg(
        &self,
        invite: &AckParts,
        to: &str,
        peer: Peer,
        provisional: bool,
        mut responses: mpsc::Receiver<ClientEvent>,
    ) {
        let core = self.core.clone();
        if provisional {
            // §9.1: the CANCEL copies the INVITE's Request-URI, Via, From, To, Call-ID
            // and CSeq number.
            let cancel = Outgoing::dialog_request(
                "CANCEL",
                &invite.uri,
                &invite.via,
                &invite.from,
                to,
                &invite.call_id,
                invite.cseq,
            );
            let branch = param(&invite.via, "branch").unwrap_or_default().to_string();
            send_and_forget(&core, cancel, &branch, "CANCEL", peer).await;
        }
        let via_base = self.via(peer);
        let invite = invite.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + TIMER_64T1;
            while let Ok(Some(ClientEvent::Response(resp))) =
                tokio::time::timeout_at(deadline, responses.recv()).await
            {
                let code = resp.status().unwrap_or(0);
                if (200..300).contains(&code) {
                    // The BYE follows the INVITE's CSeq.
                    let mut leg = Leg::answered(&resp, peer, &invite);
                    send_ack(&core, &leg, invite.cseq, &via_base).await;
                    send_bye(&core, &mut leg, &via_base).await;
                    break;
                }
                if code >= 300 {
                    break; // the transaction layer ACKed it
                }
            }
        });
    }

    /// The vendor answered: ACK it, answer the caller, and relay the dialogs until the end.
    async fn connected(
        &mut self,
        mut b: Leg,
        mut b_invite: mpsc::Receiver<ClientEvent>,
        answer: Message,
        attempt: &Attempt,
        max_duration_secs: u32,
    ) -> EndReason {
        let via_b = self.via(b.peer);
        // Our INVITE's CSeq: its 2xx retransmissions are ACKed again with it.
        let invite_cseq = b.cseq;
        // A late offer (the caller's INVITE had no SDP; the vendor's 2xx makes the
        // offer) is answered in the caller's ACK, so the vendor's ACK waits for it.
        // Otherwise the vendor is ACKed now.
        let mut b_ack: Option<SdpBody> = None;
        if !self.invite.body.is_empty() {
            let body = SdpBody::default();
            send_ack_with(&self.core, &b, invite_cseq, &via_b, &body).await;
            b_ack = Some(body);
        }
        // Our own re-INVITE moving the vendor's media to the relay, while in flight.
        let mut nat_reinvite = match self.relay_for_vendor_nat(&answer, b.peer).await {
            true => Some(self.reinvite_to_relay(&mut b, &via_b).await),
            false => None,
        };
        let config = &self.core.config;
        let timer = |secs: u32, we_refresh: bool| {
            LegTimer::new(
                secs,
                we_refresh,
                config.session_update_segment,
                config.session_timeout_early_hangup_secs,
            )
        };
        // The caller's leg: its Session-Expires, refreshed by whom it asked (uac default).
        let mut a_timer = self
            .invite
            .header("Session-Expires")
            .and_then(parse_session_expires)
            .map(|(secs, refresher)| timer(secs, refresher.as_deref() == Some("uas")));
        // The vendor's leg: what its 2xx says; "uac" is us.
        let mut b_timer = answer
            .header("Session-Expires")
            .and_then(parse_session_expires)
            .map(|(secs, refresher)| timer(secs, refresher.as_deref() != Some("uas")));
        let mut ok = Outgoing::response(&self.invite, 200, "OK", Some(&self.a_tag))
            .header("Contact", self.contact(self.a.peer))
            .header("Allow", ALLOW);
        if let Some(t) = &a_timer {
            ok.push("Session-Expires", session_expires(t, true));
            ok.push("Require", "timer");
        }
        let answer_body = self.carry_sdp(&answer.body, Side::Callee);
        let ok = ok.body(answer.content_type(), &answer_body);
        if let Some(relay) = self.active_relay() {
            relay.reset_silence();
        }
        // Spec decision 4: the no-timer maximum applies when neither leg runs a timer.
        let no_timer_limit = if a_timer.is_none() && b_timer.is_none() {
            config.no_timer_max_duration_secs
        } else {
            0
        };
        let max_duration_secs = match (max_duration_secs, no_timer_limit) {
            (0, n) | (n, 0) => n,
            (a, b) => a.min(b),
        };
        let ok_bytes = ok.clone();
        self.core.txs.respond(&self.tx, ok).await;
        let now = crate::now_ms();
        self.record.answer_ms = Some(now);
        self.record.final_code = 200;
        // Each leg's codec is the one its answer chose (they differ when the relay
        // transcodes). With a late offer the answer is the caller's ACK (below).
        if !self.invite.body.is_empty() {
            self.record.codec_in = answered_codec(&answer_body);
            self.record.codec_out = answered_codec(&answer.body);
        }
        self.record.egress_gateway = Some(attempt.gateway.clone());
        self.record.callee_out = Some(attempt.callee.clone());
        self.record.caller_out = Some(self.caller_for(attempt));
        if self.record.pdd_ms.is_none() {
            self.record.pdd_ms = Some(now.saturating_sub(self.record.invite_ms) as u32);
        }
        tracing::info!(gateway = %attempt.gateway, "answered");
        self.publish();

        let via_a = self.via(self.a.peer);
        // Our 2xx is retransmitted until the caller's ACK (RFC 3261 §13.3.1.4).
        let answered_at = Instant::now();
        let mut retransmit_at = Some(answered_at + T1);
        let mut interval = T1;
        let max_end = (max_duration_secs > 0)
            .then(|| answered_at + Duration::from_secs(u64::from(max_duration_secs)));
        // A billed call talks on quotas of its balance; when one runs out it asks for
        // the next, and ends when there is none.
        let mut quota_end = match self.billing.as_mut() {
            Some(auth) => self
                .core
                .billing
                .grant(auth)
                .map(|secs| answered_at + Duration::from_secs(secs)),
            None => None,
        };
        let mut relayed: Option<Relayed> = None;
        // Our own session refresh in flight: (on the caller's leg?, its responses).
        let mut refreshing: Option<(bool, mpsc::Receiver<ClientEvent>)> = None;
        let far_future = answered_at + Duration::from_secs(86400 * 365);
        // A relayed call checks each second that both sides still send RTP.
        let rtp_timeout = u64::from(self.core.config.media.rtp_timeout_secs);
        let watch_rtp = self.relaying && rtp_timeout > 0;
        let mut rtp_check = tokio::time::interval(Duration::from_secs(1));
        let mut info_digits = self.info_digits.take().filter(|_| self.relaying);
        let mut published_media = self.live_media();

        let reason = loop {
            tokio::select! {
                Some(d) = async { match info_digits.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    let (leg, via) = if d.to == Side::Caller { (&mut self.a, &via_a) } else { (&mut b, &via_b) };
                    send_info_digit(&self.core, leg, via, d).await;
                }
                _ = rtp_check.tick(), if watch_rtp => {
                    // The live view follows the legs' DTMF methods.
                    let media = self.live_media();
                    if media != published_media {
                        published_media = media;
                        self.publish();
                    }
                    let relay = self.active_relay().expect("a relaying call has its relay");
                    let silent = [Side::Caller, Side::Callee].map(|side| relay.silent_secs(side));
                    if let Some(i) = silent.iter().position(|s| *s >= rtp_timeout) {
                        tracing::info!(side = ["caller", "vendor"][i], silent_secs = silent[i], "RTP timeout");
                        break EndReason::RtpTimeout;
                    }
                }
                _ = sleep_until(retransmit_at.unwrap_or(far_future)), if retransmit_at.is_some() => {
                    if answered_at.elapsed() >= TIMER_64T1 {
                        tracing::warn!("caller never acknowledged the 200; ending the call");
                        break EndReason::AckTimeout;
                    }
                    self.core.txs.send_stateless(&ok_bytes, self.a.peer).await;
                    interval = (interval * 2).min(T2);
                    retransmit_at = Some(Instant::now() + interval);
                }
                _ = sleep_until(max_end.unwrap_or(far_future)), if max_end.is_some() => {
                    tracing::info!(max_duration_secs, "maximum call duration reached");
                    break EndReason::MaxDuration;
                }
                _ = sleep_until(quota_end.unwrap_or(far_future)), if quota_end.is_some() => {
                    let more = match self.billing.as_mut() {
                        Some(auth) => self.core.billing.grant(auth),
                        None => None,
                    };
                    match more {
                        Some(0) => {
                            tracing::info!(talked_secs = answered_at.elapsed().as_secs(), "balance exhausted");
                            break EndReason::BalanceExhausted;
                        }
                        Some(secs) => quota_end = quota_end.map(|q| q + Duration::from_secs(secs)),
                        None => quota_end = None,
                    }
                }
                _ = sleep_until(next_timer(&a_timer, &b_timer).unwrap_or(far_future)), if next_timer(&a_timer, &b_timer).is_some() => {
                    let on_a = a_timer.as_ref().is_some_and(|t| t.due <= Instant::now());
                    let t = if on_a { a_timer.as_mut() } else { b_timer.as_mut() }.expect("a timer is due");
                    if !t.we_refresh {
                        tracing::info!(leg = if on_a { "caller" } else { "vendor" }, "session not refreshed in time");
                        break EndReason::SessionTimeout;
                    }
                    t.refreshing();
                    let header = session_expires(t, false);
                    let (leg, via) = if on_a { (&mut self.a, &via_a) } else { (&mut b, &via_b) };
                    let peer = leg.peer;
                    let (mut update, branch) = leg.request("UPDATE", via);
                    update.push("Session-Expires", header);
                    update.push("Supported", "timer");
                    let rx = self.core.txs.request(update, &branch, "UPDATE", peer, None).await;
                    refreshing = Some((on_a, rx));
                }
                Some(event) = async { match refreshing.as_mut() { Some((_, rx)) => rx.recv().await, None => std::future::pending().await } } => {
                    let on_a = refreshing.as_ref().is_some_and(|(a, _)| *a);
                    let code = match &event { ClientEvent::Response(r) => r.status().unwrap_or(0), ClientEvent::Timeout => 408 };
                    if code < 200 { continue; }
                    refreshing = None;
                    let t = if on_a { a_timer.as_mut() } else { b_timer.as_mut() };
                    match (code, t) {
                        ((200..=299), Some(t)) => t.refreshed(),
                        // Glare: try again shortly.
                        (491, Some(t)) => t.due = Instant::now() + Duration::from_secs(2),
                        _ => {
                            tracing::info!(code, leg = if on_a { "caller" } else { "vendor" }, "session refresh failed");
                            break EndReason::SessionTimeout;
                        }
                    }
                }
                Some(event) = async { match nat_reinvite.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    let code = match &event { ClientEvent::Response(r) => r.status().unwrap_or(0), ClientEvent::Timeout => 408 };
                    if code < 200 { continue; }
                    nat_reinvite = None;
                    match event {
                        ClientEvent::Response(resp) if code < 300 => {
                            send_ack(&self.core, &b, resp.cseq().0, &via_b).await;
                            // The vendor's new answer may name another address.
                            let _ = self.carry_sdp(&resp.body, Side::Callee);
                            if let Some(t) = b_timer.as_mut() {
                                t.refreshed();
                            }
                            tracing::info!("vendor's media moved to the relay");
                        }
                        // The call goes on; the RTP timeout ends it if no media flows.
                        _ => tracing::warn!(code, "vendor refused to move its media to the relay"),
                    }
                }
                // The vendor retransmits its 200 when our ACK was lost.
                Some(ClientEvent::Response(resp)) = b_invite.recv() => {
                    if resp.status().is_some_and(|c| (200..300).contains(&c)) && resp.cseq().0 == invite_cseq {
                        if let Some(body) = &b_ack {
                            send_ack_with(&self.core, &b, invite_cseq, &via_b, body).await;
                        }
                    }
                }
                Some(event) = async { match relayed.as_mut() { Some(r) => r.responses.recv().await, None => std::future::pending().await } } => {
                    let r = relayed.as_ref().expect("selected only when some");
                    match event {
                        ClientEvent::Timeout => {
                            let resp = Outgoing::response(&r.origin_req, 408, "Request Timeout", None);
                            self.core.txs.respond(&r.origin, resp).await;
                            relayed = None;
                        }
                        ClientEvent::Response(resp) => {
                            let code = resp.status().unwrap_or(0);
                            if code == 100 { continue; }
                            let from_a = r.from_a;
                            let mut out = Outgoing::response(&r.origin_req, code, &resp.reason(), None)
                                .header("Contact", self.contact(if from_a { self.a.peer } else { b.peer }));
                            if (200..300).contains(&code) && matches!(r.method.as_str(), "INVITE" | "UPDATE") {
                                // A successful re-INVITE / UPDATE refreshes both legs' sessions.
                                let (origin_timer, other_timer) = if from_a { (&mut a_timer, &mut b_timer) } else { (&mut b_timer, &mut a_timer) };
                                if let Some(t) = origin_timer.as_mut() {
                                    t.refreshed();
                                    out.push("Session-Expires", session_expires(t, from_a));
                                    out.push("Require", "timer");
                                }
                                if let Some(t) = other_timer.as_mut() {
                                    t.refreshed();
                                }
                            }
                            let body = self.carry_sdp(&resp.body, if from_a { Side::Callee } else { Side::Caller });
                            let out = out.body(resp.content_type(), &body);
                            self.core.txs.respond(&r.origin, out).await;
                            if code >= 200 {
                                if r.method == "INVITE" && code < 300 {
                                    // The re-INVITE's 2xx is ACKed on the leg that gave it.
                                    let (leg, via) = if from_a { (&b, &via_b) } else { (&self.a, &via_a) };
                                    send_ack(&self.core, leg, resp.cseq().0, via).await;
                                }
                                relayed = None;
                            }
                        }
                    }
                }
                event = self.events.recv() => {
                    let Some(event) = event else { break EndReason::Shutdown };
                    let (msg, tx) = match event {
                        CallEvent::Ack(msg) => {
                            if msg.call_id() == self.a.call_id {
                                retransmit_at = None;
                                if b_ack.is_none() {
                                    let mut body = SdpBody::of(&msg);
                                    body.bytes = self.carry_sdp(&body.bytes, Side::Caller);
                                    self.record.codec_in = answered_codec(&msg.body);
                                    self.record.codec_out = answered_codec(&body.bytes);
                                    send_ack_with(&self.core, &b, invite_cseq, &via_b, &body).await;
                                    b_ack = Some(body);
                                }
                            }
                            continue;
                        }
                        CallEvent::Request { msg, tx } => (msg, tx),
                    };
                    let from_a = msg.call_id() == self.a.call_id;
                    let method = msg.method().map(|m| m.to_string()).unwrap_or_default();
                    match method.as_str() {
                        "BYE" => {
                            // Answered once the call's record is durable (see finish).
                            self.hangup = Some((tx, msg));
                            break if from_a { EndReason::CallerHangup } else { EndReason::CalleeHangup };
                        }
                        "CANCEL" => {
                            // Too late to cancel an answered call; the CANCEL itself succeeds.
                            self.core.txs.respond(&tx, Outgoing::response(&msg, 200, "OK", None)).await;
                        }
                        // A DTMF INFO the relay converted (or the leg's receive mode
                        // refused) ends here.
                        "INFO" if !self.info_goes_on(&msg, from_a) => {
                            self.core.txs.respond(&tx, Outgoing::response(&msg, 200, "OK", None)).await;
                        }
                        // Glare with our own re-INVITE (RFC 3261 §14.2).
                        _ if relayed.is_some() || (nat_reinvite.is_some() && !from_a && matches!(method.as_str(), "INVITE" | "UPDATE")) => {
                            let code = if method == "INVITE" || method == "UPDATE" { 491 } else { 500 };
                            let resp = Outgoing::response(&msg, code, "Request Pending", None).header("Retry-After", "1");
                            self.core.txs.respond(&tx, resp).await;
                        }
                        _ => {
                            let (leg, via) = if from_a { (&mut b, &via_b) } else { (&mut self.a, &via_a) };
                            let peer = leg.peer;
                            let (mut req, branch) = leg.request(&method, via);
                            if matches!(method.as_str(), "INVITE" | "UPDATE") {
                                req.push("Contact", self.contact(peer));
                            }
                            // Session timers are per leg: the target leg gets its own.
                            for name in ["Supported", "Content-Disposition"] {
                                for v in msg.headers_named(name) {
                                    req.push(name, v);
                                }
                            }
                            let target_timer = if from_a { &b_timer } else { &a_timer };
                            if let (Some(t), true) = (target_timer, matches!(method.as_str(), "INVITE" | "UPDATE")) {
                                req.push("Session-Expires", session_expires(t, !from_a));
                            }
                            let body = self.carry_sdp(&msg.body, if from_a { Side::Caller } else { Side::Callee });
                            let req = req.body(msg.content_type(), &body);
                            let ack = (method == "INVITE").then(|| {
                                let (leg, via) = if from_a { (&b, &via_b) } else { (&self.a, &via_a) };
                                leg.ack_parts(via, &branch)
                            });
                            let responses = self.core.txs.request(req, &branch, &method, peer, ack).await;
                            relayed = Some(Relayed { from_a, method, origin: tx, origin_req: msg, responses });
                        }
                    }
                }
            }
        };
        // Hang up whichever side did not.
        if reason != EndReason::CalleeHangup {
            send_bye(&self.core, &mut b, &via_b).await;
        }
        if reason != EndReason::CallerHangup {
            let mut a = self.a.clone();
            send_bye(&self.core, &mut a, &via_a).await;
        }
        reason
    }

    /// Send the vendor (leg `b`) the caller's offer again, now through the relay, as a
    /// re-INVITE; its responses.
    async fn reinvite_to_relay(&self, b: &mut Leg, via_b: &str) -> mpsc::Receiver<ClientEvent> {
        let offer =
            crate::media::sdp::with_next_version(&self.carry_sdp(&self.invite.body, Side::Caller));
        let peer = b.peer;
        let (req, branch) = b.request("INVITE", via_b);
        let req = req
            .header("Contact", self.contact(peer))
            .body(self.invite.content_type(), &offer);
        let ack = b.ack_parts(via_b, &branch);
        self.core
            .txs
            .request(req, &branch, "INVITE", peer, Some(ack))
            .await
    }

    /// Unregister the dialogs, free the gateway, write the call record.
    async fn finish(mut self, reason: EndReason) {
        self.core.live.remove(&self.record.call_id);
        {
            let mut dialogs = self.core.dialogs();
            for k in &self.keys {
                dialogs.remove(k);
            }
        }
        self.release_gateway();
        // Caller pool numbers the module borrowed for this call come back.
        self.core
            .policy
            .runtime()
            .pools
            .release(&self.record.call_id);
        self.record.end_ms = crate::now_ms();
        self.record.reason = reason;
        if self.record.egress_gateway.is_none() {
            if let Some(last) = self
                .record
                .attempts
                .iter()
                .rev()
                .find(|a| !a.leg_call_id.is_empty())
            {
                self.record.egress_gateway = Some(last.gateway.clone());
                self.record.callee_out = Some(last.callee.clone());
                self.record.caller_out = Some(last.caller.clone());
            }
        }
        tracing::info!(reason = ?reason, code = self.record.final_code, attempts = self.record.attempts.len(), "call ended");
        self.count_traffic();
        match self.billing.take() {
            Some(auth) => self.core.billing.settle(auth, &mut self.record).await,
            None => save_call_record(&self.core.store, &self.record).await,
        }
        if let Some((tx, bye)) = self.hangup.take() {
            let ok = Outgoing::response(&bye, 200, "OK", None);
            self.core.txs.respond(&tx, ok).await;
        }
    }
}

/// The Session-Expires value for a leg's timer. `we_are_uas`: we answered that leg's
/// INVITE (the caller's leg), so "uas" names us there and "uac" names the caller.
fn session_expires(t: &LegTimer, we_are_uas: bool) -> String {
    let refresher = match (t.we_refresh, we_are_uas) {
        (true, true) | (false, false) => "uas",
        _ => "uac",
    };
    format!("{};refresher={refresher}", t.interval.as_secs())
}

/// The earliest due time of the legs' timers.
fn next_timer(a: &Option<LegTimer>, b: &Option<LegTimer>) -> Option<Instant> {
    [a, b].into_iter().flatten().map(|t| t.due).min()
}

/// The ACK of a 2xx: its own transaction-less request in the dialog.
async fn send_ack(core: &Arc<SipCore>, leg: &Leg, cseq: u32, via: &str) {
    send_ack_with(core, leg, cseq, via, &SdpBody::default()).await
}

/// A message body with its Content-Type (empty: none).
#[derive(Debug, Clone, Default)]
struct SdpBody {
    content_type: Option<String>,
    bytes: Vec<u8>,
}

impl SdpBody {
    fn of(msg: &Message) -> SdpBody {
        SdpBody {
            content_type: msg.content_type().map(str::to_string),
            bytes: msg.body.clone(),
        }
    }
}

/// An ACK for a 2xx, carrying `body` (the caller's answer to a late offer).
async fn send_ack_with(core: &Arc<SipCore>, leg: &Leg, cseq: u32, via: &str, body: &SdpBody) {
    let ack = leg
        .dialog_request("ACK", &format!("{via};branch={};rport", new_branch()), cseq)
        .body(body.content_type.as_deref(), &body.bytes);
    core.txs.send_stateless(&ack, leg.peer).await;
}

/// BYE a leg.
async fn send_bye(core: &Arc<SipCore>, leg: &mut Leg, via: &str) {
    let (bye, branch) = leg.request("BYE", via);
    send_and_forget(core, bye, &branch, "BYE", leg.peer).await;
}

/// Send a converted digit to a leg as an `application/dtmf-relay` INFO.
async fn send_info_digit(core: &Arc<SipCore>, leg: &mut Leg, via: &str, d: InfoDigit) {
    let (info, branch) = leg.request("INFO", via);
    let body = crate::media::dtmf::info_body(d.digit, d.duration_ms);
    let info = info.body(Some("application/dtmf-relay"), body.as_bytes());
    send_and_forget(core, info, &branch, "INFO", leg.peer).await;
}

/// Send a request whose answer nobody waits for; its transaction runs on without us
/// (retransmission, timeout).
async fn send_and_forget(
    core: &Arc<SipCore>,
    req: Outgoing,
    branch: &str,
    method: &str,
    peer: Peer,
) {
    let mut rx = core.txs.request(req, branch, method, peer, None).await;
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
}

/// Host part for URIs we write (IPv6 in brackets).
fn host_of(addr: std::net::SocketAddr) -> String {
    match addr {
        std::net::SocketAddr::V4(a) => a.to_string(),
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}
