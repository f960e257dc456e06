//! Answering the caller once a vendor answered: the vendor's ACK (unless a late
//! offer waits for the caller's), the NAT re-INVITE, the leg timers, our 200 and the
//! record of the answer; the [`Established`] state the call then runs on.

use super::established::{session_expires, Established};
use super::*;

impl CallTask {
    /// ACK the vendor (unless the caller's ACK carries the answer to a late offer),
    /// move its media to the relay if its NAT needs it, answer the caller, and record
    /// the answer: the established call's first state.
    pub(super) async fn answer(
        &mut self,
        mut b: Leg,
        b_invite: mpsc::Receiver<ClientEvent>,
        answer: Message,
        attempt: &Attempt,
        max_duration_secs: u32,
    ) -> Established {
        let via_b = self.via(b.peer);
        let invite_cseq = b.cseq;
        let mut b_ack: Option<SdpBody> = None;
        if !self.invite.body.is_empty() {
            let body = SdpBody::default();
            send_ack_with(&self.core, &b, invite_cseq, &via_b, &body).await;
            b_ack = Some(body);
        }
        let nat_reinvite = match self.relay_for_vendor_nat(&answer, b.peer).await {
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
        let a_timer = self
            .invite
            .header("Session-Expires")
            .and_then(parse_session_expires)
            .map(|(secs, refresher)| timer(secs, refresher.as_deref() == Some("uas")));
        // The vendor's leg: what its 2xx says; "uac" is us.
        let b_timer = answer
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
        let rtp_timeout = u64::from(config.media.rtp_timeout_secs);
        self.core.txs.respond(&self.tx, ok.clone()).await;
        let now = crate::now_ms();
        self.record.answer_ms = Some(now);
        self.record.final_code = 200;
        // Each leg's codec is the one its answer chose (they differ when the relay
        // transcodes). With a late offer the answer is the caller's ACK.
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

        let answered_at = Instant::now();
        // A billed call talks on quotas of its balance; when one runs out it asks for
        // the next, and ends when there is none.
        let quota_end = match self.billing.as_mut() {
            Some(auth) => self
                .core
                .billing
                .grant(auth)
                .map(|secs| answered_at + Duration::from_secs(secs)),
            None => None,
        };
        Established {
            via_a: self.via(self.a.peer),
            via_b,
            b,
            b_invite,
            invite_cseq,
            b_ack,
            nat_reinvite,
            a_timer,
            b_timer,
            ok,
            answered_at,
            retransmit_at: Some(answered_at + T1),
            retransmit_interval: T1,
            max_duration_secs,
            max_end: (max_duration_secs > 0)
                .then(|| answered_at + Duration::from_secs(u64::from(max_duration_secs))),
            quota_end,
            relayed: None,
            refreshing: None,
            info_digits: self.info_digits.take().filter(|_| self.relaying),
            rtp_timeout,
            published_media: self.live_media(),
        }
    }
}
