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

/// What the established call's loop waits on, one variant per source; each is
/// handled by a method of its own.
enum Event {
    /// A digit the relay converted, to go out as SIP INFO.
    InfoDigit(InfoDigit),
    /// The once-a-second check that both sides still send RTP.
    RtpCheck,
    /// Time to retransmit our 2xx (no ACK yet).
    Retransmit2xx,
    /// The maximum call duration is reached.
    MaxDuration,
    /// The billing quota granted so far is used up.
    QuotaDue,
    /// A leg's session timer is due.
    SessionTimerDue,
    /// An answer to our own session refresh.
    RefreshAnswer(ClientEvent),
    /// An answer to our re-INVITE moving the vendor's media to the relay.
    NatReinviteAnswer(ClientEvent),
    /// The vendor's INVITE transaction again: a retransmitted 2xx.
    VendorRetransmission(Box<Message>),
    /// An answer to a request relayed from one dialog to the other.
    RelayedAnswer(ClientEvent),
    /// A request in either dialog or the ACK of our 2xx; none when the host stops.
    Dialog(Option<CallEvent>),
}

/// The state of an answered call between its events.
pub(super) struct Established {
    pub(super) b: Leg,
    pub(super) b_invite: mpsc::Receiver<ClientEvent>,
    pub(super) via_a: String,
    pub(super) via_b: String,
    /// Our INVITE's CSeq: its 2xx retransmissions are ACKed again with it.
    pub(super) invite_cseq: u32,
    /// Our ACK to the vendor, once sent (a late offer waits for the caller's ACK).
    pub(super) b_ack: Option<SdpBody>,
    /// Our own re-INVITE moving the vendor's media to the relay, while in flight.
    pub(super) nat_reinvite: Option<mpsc::Receiver<ClientEvent>>,
    pub(super) a_timer: Option<LegTimer>,
    pub(super) b_timer: Option<LegTimer>,
    /// Our 2xx to the caller, retransmitted until its ACK (RFC 3261 §13.3.1.4).
    pub(super) ok: Outgoing,
    pub(super) answered_at: Instant,
    pub(super) retransmit_at: Option<Instant>,
    pub(super) retransmit_interval: Duration,
    pub(super) max_duration_secs: u32,
    pub(super) max_end: Option<Instant>,
    /// When the billing quota granted so far runs out.
    pub(super) quota_end: Option<Instant>,
    /// The request relayed from one dialog to the other, while in flight.
    pub(super) relayed: Option<Relayed>,
    /// Our own session refresh in flight: (on the caller's leg?, its responses).
    pub(super) refreshing: Option<(bool, mpsc::Receiver<ClientEvent>)>,
    pub(super) info_digits: Option<mpsc::UnboundedReceiver<InfoDigit>>,
    pub(super) rtp_timeout: u64,
    pub(super) published_media: LiveMedia,
}

/// The next message on an optional channel; never, when there is none.
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next message on the channel `rx` finds in `slot`; never, when it is empty.
async fn recv_in<S, T>(
    slot: &mut Option<S>,
    rx: fn(&mut S) -> &mut mpsc::Receiver<T>,
) -> Option<T> {
    match slot.as_mut() {
        Some(s) => rx(s).recv().await,
        None => std::future::pending().await,
    }
}

/// [`recv_opt`] for an unbounded channel.
async fn recv_opt_unbounded<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The status of a client transaction's event (408 for its timeout).
fn status_of(event: &ClientEvent) -> u16 {
    match event {
        ClientEvent::Response(r) => r.status().unwrap_or(0),
        ClientEvent::Timeout => 408,
    }
}

impl CallTask {
    /// The vendor answered: ACK it, answer the caller, and relay the dialogs until the end.
    pub(super) async fn connected(
        &mut self,
        b: Leg,
        b_invite: mpsc::Receiver<ClientEvent>,
        answer: Message,
        attempt: &Attempt,
        max_duration_secs: u32,
    ) -> EndReason {
        let mut est = self
            .answer(b, b_invite, answer, attempt, max_duration_secs)
            .await;
        let far_future = est.answered_at + Duration::from_secs(86400 * 365);
        let watch_rtp = self.relaying && est.rtp_timeout > 0;
        let mut rtp_check = tokio::time::interval(Duration::from_secs(1));
        let reason = loop {
            let next_timer = next_timer(&est.a_timer, &est.b_timer);
            let event = tokio::select! {
                Some(d) = recv_opt_unbounded(&mut est.info_digits) => Event::InfoDigit(d),
                _ = rtp_check.tick(), if watch_rtp => Event::RtpCheck,
                _ = sleep_until(est.retransmit_at.unwrap_or(far_future)), if est.retransmit_at.is_some() => Event::Retransmit2xx,
                _ = sleep_until(est.max_end.unwrap_or(far_future)), if est.max_end.is_some() => Event::MaxDuration,
                _ = sleep_until(est.quota_end.unwrap_or(far_future)), if est.quota_end.is_some() => Event::QuotaDue,
                _ = sleep_until(next_timer.unwrap_or(far_future)), if next_timer.is_some() => Event::SessionTimerDue,
                Some(e) = recv_in(&mut est.refreshing, |(_, rx)| rx) => Event::RefreshAnswer(e),
                Some(e) = recv_opt(&mut est.nat_reinvite) => Event::NatReinviteAnswer(e),
                Some(ClientEvent::Response(resp)) = est.b_invite.recv() => Event::VendorRetransmission(resp),
                Some(e) = recv_in(&mut est.relayed, |r| &mut r.responses) => Event::RelayedAnswer(e),
                event = self.events.recv() => Event::Dialog(event),
            };
            let end = match event {
                Event::InfoDigit(d) => self.on_info_digit(&mut est, d).await,
                Event::RtpCheck => self.on_rtp_check(&mut est),
                Event::Retransmit2xx => self.on_retransmit_2xx(&mut est).await,
                Event::MaxDuration => {
                    tracing::info!(
                        max_duration_secs = est.max_duration_secs,
                        "maximum call duration reached"
                    );
                    Some(EndReason::MaxDuration)
                }
                Event::QuotaDue => self.on_quota_due(&mut est),
                Event::SessionTimerDue => self.on_session_timer(&mut est).await,
                Event::RefreshAnswer(e) => self.on_refresh_answer(&mut est, e),
                Event::NatReinviteAnswer(e) => self.on_nat_reinvite_answer(&mut est, e).await,
                Event::VendorRetransmission(resp) => {
                    self.on_vendor_retransmission(&est, &resp).await
                }
                Event::RelayedAnswer(e) => self.on_relayed_answer(&mut est, e).await,
                Event::Dialog(None) => Some(EndReason::Shutdown),
                Event::Dialog(Some(CallEvent::HangUp)) => {
                    tracing::info!("an operator hung the call up");
                    Some(EndReason::OperatorHangup)
                }
                Event::Dialog(Some(CallEvent::Ack(msg))) => {
                    self.on_caller_ack(&mut est, &msg).await
                }
                Event::Dialog(Some(CallEvent::Request { msg, tx })) => {
                    self.on_request(&mut est, msg, tx).await
                }
            };
            if let Some(reason) = end {
                break reason;
            }
        };
        // Hang up whichever side did not.
        if reason != EndReason::CalleeHangup {
            send_bye(&self.core, &mut est.b, &est.via_b).await;
        }
        if reason != EndReason::CallerHangup {
            let mut a = self.a.clone();
            send_bye(&self.core, &mut a, &est.via_a).await;
        }
        reason
    }

    async fn on_info_digit(&mut self, est: &mut Established, d: InfoDigit) -> Option<EndReason> {
        let (leg, via) = match d.to {
            Side::Caller => (&mut self.a, &est.via_a),
            Side::Callee => (&mut est.b, &est.via_b),
        };
        send_info_digit(&self.core, leg, via, d).await;
        None
    }

    /// Publish a change of the legs' DTMF methods; end the call when a side has
    /// sent no RTP for the timeout.
    fn on_rtp_check(&mut self, est: &mut Established) -> Option<EndReason> {
        let media = self.live_media();
        if media != est.published_media {
            est.published_media = media;
            self.publish();
        }
        let relay = self.active_relay().expect("a relaying call has its relay");
        let silent = [Side::Caller, Side::Callee].map(|side| relay.silent_secs(side));
        let i = silent.iter().position(|s| *s >= est.rtp_timeout)?;
        tracing::info!(
            side = ["caller", "vendor"][i],
            silent_secs = silent[i],
            "RTP timeout"
        );
        Some(EndReason::RtpTimeout)
    }

    async fn on_retransmit_2xx(&mut self, est: &mut Established) -> Option<EndReason> {
        if est.answered_at.elapsed() >= TIMER_64T1 {
            tracing::warn!("caller never acknowledged the 200; ending the call");
            return Some(EndReason::AckTimeout);
        }
        self.core.txs.send_stateless(&est.ok, self.a.peer).await;
        est.retransmit_interval = (est.retransmit_interval * 2).min(T2);
        est.retransmit_at = Some(Instant::now() + est.retransmit_interval);
        None
    }

    /// Ask billing for the next quota; end the call when the balance has none.
    fn on_quota_due(&mut self, est: &mut Established) -> Option<EndReason> {
        let more = match self.billing.as_mut() {
            Some(auth) => self.core.billing.grant(auth),
            None => None,
        };
        match more {
            Some(0) => {
                tracing::info!(
                    talked_secs = est.answered_at.elapsed().as_secs(),
                    "balance exhausted"
                );
                return Some(EndReason::BalanceExhausted);
            }
            Some(secs) => est.quota_end = est.quota_end.map(|q| q + Duration::from_secs(secs)),
            None => est.quota_end = None,
        }
        None
    }

    /// A leg's session timer is due: refresh it with an UPDATE when we are its
    /// refresher, else the session has expired.
    async fn on_session_timer(&mut self, est: &mut Established) -> Option<EndReason> {
        let on_a = est
            .a_timer
            .as_ref()
            .is_some_and(|t| t.due <= Instant::now());
        let t = if on_a {
            est.a_timer.as_mut()
        } else {
            est.b_timer.as_mut()
        }
        .expect("a timer is due");
        if !t.we_refresh {
            tracing::info!(
                leg = if on_a { "caller" } else { "vendor" },
                "session not refreshed in time"
            );
            return Some(EndReason::SessionTimeout);
        }
        t.refreshing();
        let header = session_expires(t, false);
        let (leg, via) = if on_a {
            (&mut self.a, &est.via_a)
        } else {
            (&mut est.b, &est.via_b)
        };
        let peer = leg.peer;
        let (mut update, branch) = leg.request("UPDATE", via);
        update.push("Session-Expires", header);
        update.push("Supported", "timer");
        let rx = self
            .core
            .txs
            .request(update, &branch, "UPDATE", peer, None)
            .await;
        est.refreshing = Some((on_a, rx));
        None
    }

    fn on_refresh_answer(
        &mut self,
        est: &mut Established,
        event: ClientEvent,
    ) -> Option<EndReason> {
        let code = status_of(&event);
        if code < 200 {
            return None;
        }
        let on_a = est.refreshing.take().is_some_and(|(a, _)| a);
        let t = if on_a {
            est.a_timer.as_mut()
        } else {
            est.b_timer.as_mut()
        };
        match (code, t) {
            ((200..=299), Some(t)) => t.refreshed(),
            // Glare: try again shortly.
            (491, Some(t)) => t.due = Instant::now() + Duration::from_secs(2),
            _ => {
                tracing::info!(
                    code,
                    leg = if on_a { "caller" } else { "vendor" },
                    "session refresh failed"
                );
                return Some(EndReason::SessionTimeout);
            }
        }
        None
    }

    async fn on_nat_reinvite_answer(
        &mut self,
        est: &mut Established,
        event: ClientEvent,
    ) -> Option<EndReason> {
        let code = status_of(&event);
        if code < 200 {
            return None;
        }
        est.nat_reinvite = None;
        match event {
            ClientEvent::Response(resp) if code < 300 => {
                send_ack(&self.core, &est.b, resp.cseq().0, &est.via_b).await;
                // The vendor's new answer may name another address.
                let _ = self.carry_sdp(&resp.body, Side::Callee);
                if let Some(t) = est.b_timer.as_mut() {
                    t.refreshed();
                }
                tracing::info!("vendor's media moved to the relay");
            }
            // The call goes on; the RTP timeout ends it if no media flows.
            _ => tracing::warn!(code, "vendor refused to move its media to the relay"),
        }
        None
    }

    /// The vendor retransmits its 200 when our ACK was lost: ACK it again.
    async fn on_vendor_retransmission(
        &mut self,
        est: &Established,
        resp: &Message,
    ) -> Option<EndReason> {
        if resp.status().is_some_and(|c| (200..300).contains(&c))
            && resp.cseq().0 == est.invite_cseq
        {
            if let Some(body) = &est.b_ack {
                send_ack_with(&self.core, &est.b, est.invite_cseq, &est.via_b, body).await;
            }
        }
        None
    }

    /// Pass the answer to a relayed request back to the side that sent it.
    async fn on_relayed_answer(
        &mut self,
        est: &mut Established,
        event: ClientEvent,
    ) -> Option<EndReason> {
        let r = est.relayed.as_ref().expect("selected only when some");
        let resp = match event {
            ClientEvent::Timeout => {
                let resp = Outgoing::response(&r.origin_req, 408, "Request Timeout", None);
                self.core.txs.respond(&r.origin, resp).await;
                est.relayed = None;
                return None;
            }
            ClientEvent::Response(resp) => resp,
        };
        let code = resp.status().unwrap_or(0);
        if code == 100 {
            return None;
        }
        let from_a = r.from_a;
        let mut out = Outgoing::response(&r.origin_req, code, &resp.reason(), None).header(
            "Contact",
            self.contact(if from_a { self.a.peer } else { est.b.peer }),
        );
        if (200..300).contains(&code) && matches!(r.method.as_str(), "INVITE" | "UPDATE") {
            // A successful re-INVITE / UPDATE refreshes both legs' sessions.
            let (origin_timer, other_timer) = if from_a {
                (&mut est.a_timer, &mut est.b_timer)
            } else {
                (&mut est.b_timer, &mut est.a_timer)
            };
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
                let (leg, via) = if from_a {
                    (&est.b, &est.via_b)
                } else {
                    (&self.a, &est.via_a)
                };
                send_ack(&self.core, leg, resp.cseq().0, via).await;
            }
            est.relayed = None;
        }
        None
    }

    /// The caller's ACK of our 2xx stops its retransmission; for a late offer it
    /// carries the answer, which goes on in our ACK to the vendor.
    async fn on_caller_ack(&mut self, est: &mut Established, msg: &Message) -> Option<EndReason> {
        if msg.call_id() != self.a.call_id {
            return None;
        }
        est.retransmit_at = None;
        if est.b_ack.is_none() {
            let mut body = SdpBody::of(msg);
            body.bytes = self.carry_sdp(&body.bytes, Side::Caller);
            self.record.codec_in = answered_codec(&msg.body);
            self.record.codec_out = answered_codec(&body.bytes);
            send_ack_with(&self.core, &est.b, est.invite_cseq, &est.via_b, &body).await;
            est.b_ack = Some(body);
        }
        None
    }

    /// A request in either dialog: BYE ends the call, CANCEL is too late, glare is
    /// refused, anything else is relayed to the other dialog.
    async fn on_request(
        &mut self,
        est: &mut Established,
        msg: Box<Message>,
        tx: Arc<ServerTx>,
    ) -> Option<EndReason> {
        let from_a = msg.call_id() == self.a.call_id;
        let method = msg.method().map(|m| m.to_string()).unwrap_or_default();
        let refresh = matches!(method.as_str(), "INVITE" | "UPDATE");
        match method.as_str() {
            "BYE" => {
                // Answered once the call's record is durable (see finish).
                self.hangup = Some((tx, msg));
                return Some(if from_a {
                    EndReason::CallerHangup
                } else {
                    EndReason::CalleeHangup
                });
            }
            "CANCEL" => {
                // Too late to cancel an answered call; the CANCEL itself succeeds.
                self.core
                    .txs
                    .respond(&tx, Outgoing::response(&msg, 200, "OK", None))
                    .await;
            }
            // A DTMF INFO the relay converted (or the leg's receive mode refused) ends here.
            "INFO" if !self.info_goes_on(&msg, from_a) => {
                self.core
                    .txs
                    .respond(&tx, Outgoing::response(&msg, 200, "OK", None))
                    .await;
            }
            // Glare with our own re-INVITE (RFC 3261 §14.2).
            _ if est.relayed.is_some() || (est.nat_reinvite.is_some() && !from_a && refresh) => {
                let code = if refresh { 491 } else { 500 };
                let resp = Outgoing::response(&msg, code, "Request Pending", None)
                    .header("Retry-After", "1");
                self.core.txs.respond(&tx, resp).await;
            }
            _ => self.relay_request(est, msg, tx, from_a, method).await,
        }
        None
    }

    /// Send a request of one dialog on in the other, as our own request there.
    async fn relay_request(
        &mut self,
        est: &mut Established,
        msg: Box<Message>,
        tx: Arc<ServerTx>,
        from_a: bool,
        method: String,
    ) {
        let refresh = matches!(method.as_str(), "INVITE" | "UPDATE");
        let (leg, via) = if from_a {
            (&mut est.b, &est.via_b)
        } else {
            (&mut self.a, &est.via_a)
        };
        let peer = leg.peer;
        let (mut req, branch) = leg.request(&method, via);
        let ack = (method == "INVITE").then(|| leg.ack_parts(via, &branch));
        if refresh {
            req.push("Contact", self.contact(peer));
        }
        // Session timers are per leg: the target leg gets its own.
        for name in ["Supported", "Content-Disposition"] {
            for v in msg.headers_named(name) {
                req.push(name, v);
            }
        }
        let target_timer = if from_a { &est.b_timer } else { &est.a_timer };
        if let (Some(t), true) = (target_timer, refresh) {
            req.push("Session-Expires", session_expires(t, !from_a));
        }
        let body = self.carry_sdp(&msg.body, if from_a { Side::Caller } else { Side::Callee });
        let req = req.body(msg.content_type(), &body);
        let responses = self
            .core
            .txs
            .request(req, &branch, &method, peer, ack)
            .await;
        est.relayed = Some(Relayed {
            from_a,
            method,
            origin: tx,
            origin_req: msg,
            responses,
        });
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
