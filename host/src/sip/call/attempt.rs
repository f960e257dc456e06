//! One attempt: the vendor INVITE (with challenge and 422 resends), its provisional
//! responses relayed to the caller, its final answer or timeout, and cancelling it.

use super::*;

impl CallTask {
    pub(super) fn caller_for(&self, attempt: &Attempt) -> String {
        attempt
            .caller
            .clone()
            .unwrap_or_else(|| self.call.caller.user.clone())
    }

    /// Send one vendor INVITE and follow it to an answer, a failure or the caller's CANCEL.
    pub(super) async fn attempt(&mut self, attempt: &Attempt, index: u32) -> AttemptEnd {
        let core = self.core.clone();
        let gateway = match core.store.carrier_get::<RoutingGateway>(&attempt.gateway) {
            Ok(Some(g)) if g.tenant == self.call.tenant => g,
            Ok(_) => return AttemptEnd::Skipped("unknown routing gateway".into()),
            Err(e) => return AttemptEnd::Skipped(format!("store error: {e}")),
        };
        if !gateway.enabled {
            return AttemptEnd::Skipped("gateway disabled".into());
        }
        let scopes = [ListScope::RoutingGateway(attempt.gateway.clone())];
        let caller = self.caller_for(attempt);
        match core
            .runtime
            .number_refusal(&self.call.tenant, &scopes, &caller, &attempt.callee)
        {
            Ok(None) => {}
            Ok(Some(refusal)) => return AttemptEnd::Skipped(refusal.hit.describe()),
            Err(e) => return AttemptEnd::Skipped(format!("store error: {e}")),
        }
        let live = core.runtime.gateway_live(&attempt.gateway);
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
            .or_else(|| self.call.caller.display.clone());
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
                            break AttemptEnd::Answered(Answered { b, b_invite: responses, answer: resp });
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
                    // An operator's hang-up waits for the answer (the API refuses it before).
                    Some(CallEvent::Ack(_) | CallEvent::HangUp) | None => {}
                },
            }
        };
        // The attempt's record and the gateway's call count follow how it ended.
        match &end {
            AttemptEnd::Answered(Answered { answer, .. }) => {
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
        if !matches!(end, AttemptEnd::Answered(_)) {
            self.release_gateway();
        }
        end
    }

    /// How to INVITE a vendor again after its refusal `resp`, if we can: answer its
    /// digest challenge with the gateway's credentials (RFC 3261 §22.2), or offer the
    /// session interval its 422 asks for (RFC 4028 §6).
    pub(super) fn resend_change(&self, resp: &Message, gateway: &RoutingGateway) -> Option<Resend> {
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

    pub(super) fn set_attempt_result(
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

    pub(super) fn hold_gateway(&mut self, id: &str) {
        self.release_gateway();
        self.core.runtime.adjust_current_calls(id, 1);
        self.busy_gateway = Some(id.to_string());
    }

    pub(super) fn release_gateway(&mut self) {
        if let Some(id) = self.busy_gateway.take() {
            self.core.runtime.adjust_current_calls(&id, -1);
        }
    }

    /// Relay a vendor's 18x to the caller. One ringback only: after failover a second
    /// vendor's 180 is not relayed again; a first SDP (early media) still is.
    pub(super) async fn relay_provisional(&mut self, resp: &Message) {
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
    pub(super) async fn cancel_leg(
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
}
