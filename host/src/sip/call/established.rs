//! The established call: our 2xx retransmitted until the caller's ACK, session
//! timers, billing quotas, the RTP timeout, the NAT re-INVITE, requests relayed
//! between the dialogs, and the BYEs that end it.

use super::*;

/// The established call's in-flight relayed request.
pub(super) struct Relayed {
    from_a: bool,
    method: String,
    origin: Arc<ServerTx>,
    origin_req: Box<Message>,
    responses: mpsc::Receiver<ClientEvent>,
}

/// The Session-Expires value for a leg's timer. `we_are_uas`: we answered that leg's
/// INVITE (the caller's leg), so "uas" names us there and "uac" names the caller.
pub(super) fn session_expires(t: &LegTimer, we_are_uas: bool) -> String {
    let refresher = match (t.we_refresh, we_are_uas) {
        (true, true) | (false, false) => "uas",
        _ => "uac",
    };
    format!("{};refresher={refresher}", t.interval.as_secs())
}

/// The earliest due time of the legs' timers.
pub(super) fn next_timer(a: &Option<LegTimer>, b: &Option<LegTimer>) -> Option<Instant> {
    [a, b].into_iter().flatten().map(|t| t.due).min()
}

impl CallTask {
    /// The vendor answered: ACK it, answer the caller, and relay the dialogs until the end.
    pub(super) async fn connected(
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
    pub(super) async fn reinvite_to_relay(
        &self,
        b: &mut Leg,
        via_b: &str,
    ) -> mpsc::Receiver<ClientEvent> {
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
}
