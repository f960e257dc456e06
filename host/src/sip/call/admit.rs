//! Admission: the checks a new INVITE passes before any policy runs (loops,
//! Max-Forwards, session interval, the caller's codec, limits, phone digest auth,
//! billing), and the call record of a call refused there.

use super::*;

/// Decide on a new INVITE and, when admitted, start its call task.
pub(in crate::sip) async fn start(core: Arc<SipCore>, invite: Message, tx: Arc<ServerTx>) {
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
    let arrived_at_ms = core.runtime.clock.now_ms();
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
                let call = offered_call(&invite, &origin, arrived_at_ms);
                let record = new_call_record(&origin, &call, &requested);
                core.runtime.call_offered(&call.tenant);
                save_refusal(&core, record, 503, &why, EndReason::Limit);
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
    let call = offered_call(&invite, &origin, arrived_at_ms);
    let mut record = new_call_record(&origin, &call, &requested);
    core.runtime.call_offered(&call.tenant);
    // The tenant's own address lists, beside the switch-wide ones the shield applies.
    match core.runtime.address_refusal(&call.tenant, peer.addr.ip()) {
        Ok(None) => {}
        Ok(Some(why)) => {
            tracing::info!(%call_id, reason = %why, "call refused by an address list");
            let resp =
                reply(403, "Forbidden").header("Reason", format!("SIP;cause=403;text=\"{why}\""));
            core.txs.respond(&tx, resp).await;
            return save_refusal(&core, record, 403, &why, EndReason::AddressListed);
        }
        Err(e) => tracing::error!(%call_id, error = %e, "address lists unreadable; not checked"),
    }
    // Number lists see the numbers after the gateway's dial plan (spec decision 8).
    let scopes = [
        ListScope::Global,
        ListScope::Account(gateway.account.clone()),
        ListScope::MappingGateway(gateway_id.clone()),
    ];
    match core
        .runtime
        .number_refusal(&call.tenant, &scopes, &call.caller.user, &call.callee)
    {
        Ok(None) => {}
        Ok(Some(refusal)) => {
            let why = refusal.hit.describe();
            tracing::info!(%call_id, reason = %why, "call refused by a number list");
            let resp = reply(refusal.code, &refusal.phrase).header(
                "Reason",
                format!("SIP;cause={};text=\"{why}\"", refusal.code),
            );
            core.txs.respond(&tx, resp).await;
            record.refused_by = Some(refusal.hit);
            let code = refusal.code;
            return save_refusal(&core, record, code, &why, EndReason::NumberListed);
        }
        Err(e) => tracing::error!(%call_id, error = %e, "number lists unreadable; not checked"),
    }
    // The dynamic blacklist: listed already, or listed by holding too many calls now.
    let caller = call.caller.user.as_str();
    let (active_caller, listed_now) =
        core.auto_blacklist
            .enter(&call.tenant, caller, arrived_at_ms);
    let listed = core
        .auto_blacklist
        .listed(&call.tenant, caller, arrived_at_ms);
    if let Some(listing) = listed.or(listed_now) {
        if core.auto_blacklist.bans_sources() {
            let (reason, secs) = super::super::auto_blacklist::source_reason(&listing);
            core.shield()
                .ban(peer.addr.ip(), reason, secs, arrived_at_ms);
        }
        let why = format!(
            "caller {caller} is blacklisted automatically: {}",
            listing.reason
        );
        tracing::info!(%call_id, reason = %why, "call refused by the dynamic blacklist");
        let resp = reply(403, "Number Blacklisted")
            .header("Reason", format!("SIP;cause=403;text=\"{why}\""));
        core.txs.respond(&tx, resp).await;
        record.refused_by = Some(switchyard_model::ListHit {
            list: AUTO_BLACKLIST.into(),
            entry: Some(caller.to_string()),
            number: caller.to_string(),
            side: switchyard_model::NumberSide::Caller,
        });
        return save_refusal(&core, record, 403, &why, EndReason::NumberListed);
    }
    // A codec the caller's gateway pins must be in the offer: refused at once,
    // before any vendor INVITE.
    if let Err(why) =
        crate::media::negotiation::caller_offers_its_codec(&gateway.media, &invite.body)
    {
        tracing::info!(%call_id, reason = %why, "call refused");
        let resp = reply(488, "Not Acceptable Here")
            .header("Reason", format!("SIP;cause=488;text=\"{why}\""));
        core.txs.respond(&tx, resp).await;
        return save_refusal(&core, record, 488, &why, EndReason::CodecNotOffered);
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
            return save_refusal(&core, record, refusal.code, why, refusal.reason);
        }
    };
    core.txs
        .respond(&tx, Outgoing::response(&invite, 100, "Trying", None))
        .await;
    let live = core
        .runtime
        .live_calls
        .enter(&call.tenant, &call.account, &call.callee);

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
        call,
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
        _live: live,
        _active_caller: active_caller,
    };
    tokio::spawn(call.run().instrument(span));
}

/// The `refused_by` list name of the dynamic blacklist.
pub(in crate::sip) const AUTO_BLACKLIST: &str = "auto-blacklist";

/// The record of a call as it arrives; `callee_in` is the number as dialled (before
/// the tech prefix is stripped).
pub(super) fn new_call_record(origin: &Origin<'_>, call: &Call, callee_in: &str) -> CallRecord {
    CallRecord {
        call_id: call.call_id.clone(),
        tenant: origin.tenant.to_string(),
        account: origin.account.to_string(),
        ingress_gateway: origin.ingress_gateway.to_string(),
        egress_gateway: None,
        caller_in: call.caller.user.clone(),
        callee_in: callee_in.to_string(),
        caller_out: None,
        callee_out: None,
        invite_ms: call.arrived_at_ms,
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
        refused_by: None,
    }
}

/// Record a call refused at setup with `code` and `why`: it ends as it arrives.
pub(super) fn save_refusal(
    core: &SipCore,
    mut record: CallRecord,
    code: u16,
    why: &str,
    reason: EndReason,
) {
    record.final_code = code;
    record.final_reason = Some(why.to_string());
    record.end_ms = crate::now_ms();
    record.reason = reason;
    super::finish::count_ended(core, &record);
    core.runtime.ledger.record(&record);
    // The refusal is answered already, so nothing waits for its record: the message
    // reader that runs this goes on at once, where a burst of refusals each waiting
    // for its own sync would hold up every other message behind them.
    let metrics = core.runtime.metrics.clone();
    let call_id = record.call_id.clone();
    core.store.record_call_then(record, move |written| {
        super::finish::count_written(&metrics, &call_id, written)
    });
}

pub(super) enum PhoneAuth {
    /// Authenticated: its mapping gateway.
    Admitted(String),
    /// Challenged or refused; the INVITE is answered.
    Answered,
    /// The From user is no phone of ours.
    NotAPhone,
}

/// Digest-authenticate an INVITE whose From user is a phone (spec decision 1).
pub(super) async fn authenticate_phone(
    core: &Arc<SipCore>,
    invite: &Message,
    tx: &Arc<ServerTx>,
) -> PhoneAuth {
    let user = user_of(uri_of(invite.header("From").unwrap_or_default())).to_string();
    use crate::sip::registrar::{credentials_of, ha1_for, Credentials};
    let checked_against = credentials_of(core, &user);
    if let Credentials::Unknown = checked_against {
        return PhoneAuth::NotAPhone;
    }
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
        ha1_for(&checked_against),
    );
    let refusal = match (verified, checked_against) {
        (Ok(()), Credentials::Phone(phone)) => return PhoneAuth::Admitted(phone.mapping_gateway),
        (Ok(()), _) => crate::sip::digest::Refusal::Wrong,
        (Err(r), _) => r,
    };
    let tag = new_tag();
    let resp = match refusal {
        crate::sip::digest::Refusal::Suspended => {
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
