//! The call's media: the plan of each attempt ([`crate::media::negotiation`]), the
//! relay, and the SDP each side is shown (relay addresses, its own codec, G.729
//! names).

use super::*;

impl CallTask {
    /// Decide whether this attempt relays its media (the gateways' media proxy
    /// settings; Auto relays when the caller's SDP address is not where its
    /// signalling comes from) and start the relay on the first that does. The error
    /// says why an attempt that needs the relay cannot have it.
    pub(super) async fn prepare_media(
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
    pub(super) async fn start_relay(&mut self, vendor_peer: Peer) -> Result<(), String> {
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
    pub(super) async fn relay_for_vendor_nat(
        &mut self,
        answer: &Message,
        vendor_peer: Peer,
    ) -> bool {
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
    pub(super) fn carry_sdp(&self, body: &[u8], from: Side) -> Vec<u8> {
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
    pub(super) fn offer_own_codec(&self, sdp: Vec<u8>, to: Side) -> Vec<u8> {
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
    pub(super) fn info_goes_on(&self, msg: &Message, from_a: bool) -> bool {
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
    pub(super) fn name_g729(&self, sdp: &[u8], original: &[u8], from: Side) -> Vec<u8> {
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
}
