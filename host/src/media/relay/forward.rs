//! The relay's packet paths: RTP and RTCP from one leg to the other, with DTMF
//! converted on the way, and digits delivered as events, tones or INFO.

use super::*;

/// Send `digit` to `to` (the side `to_side`) the way `delivery` says.
pub(super) fn deliver(
    to: &Arc<LegState>,
    to_side: Side,
    shared: &Arc<Shared>,
    delivery: Delivery,
    digit: char,
    duration_ms: u32,
) {
    tracing::info!(%digit, ?delivery, to = ?to_side, "DTMF converted");
    match delivery {
        Delivery::Rfc2833(pt) => {
            if let Some(code) = dtmf::event_of_digit(digit) {
                tokio::spawn(send_event(
                    to.clone(),
                    shared.clone(),
                    pt,
                    code,
                    duration_ms,
                ));
            }
        }
        Delivery::Info => {
            let _ = shared.info.send(InfoDigit {
                to: to_side,
                digit,
                duration_ms,
            });
        }
        Delivery::Inband => lock(&to.out).tone = ToneWriter::new(digit, duration_ms),
        Delivery::AsIs => {}
    }
}

/// Send one telephone-event into `to`'s stream in real time.
pub(super) async fn send_event(
    to: Arc<LegState>,
    shared: Arc<Shared>,
    pt: u8,
    code: u8,
    duration_ms: u32,
) {
    let mut event_ts = None;
    for event in dtmf::event_payloads(code, duration_ms) {
        let Some(peer) = *lock(&to.peer) else {
            return;
        };
        if shared.closed.load(Ordering::Relaxed) {
            return;
        }
        let (packet, ts) = lock(&to.out).added(pt, event_ts, &event.bytes());
        event_ts = Some(ts);
        let _ = to.rtp.send_to(&packet, peer).await;
        to.sent();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Copy RTCP arriving from one side out of the other side's RTCP socket, latching
/// each side's RTCP address.
pub(super) async fn forward_rtcp(from: Arc<LegState>, to: Arc<LegState>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, source)) = from.rtcp.recv_from(&mut buf).await else {
            continue;
        };
        *lock(&from.rtcp_peer) = Some(source);
        let rtp_peer = *lock(&to.peer);
        let target = lock(&to.rtcp_peer)
            .or_else(|| rtp_peer.map(|p| SocketAddr::new(p.ip(), p.port().wrapping_add(1))));
        if let Some(target) = target {
            let _ = to.rtcp.send_to(&buf[..n], target).await;
        }
    }
}

/// One direction of the relay: from one side to the other.
pub(super) struct Way {
    pub(super) from: Arc<LegState>,
    pub(super) to: Arc<LegState>,
    pub(super) to_side: Side,
    pub(super) shared: Arc<Shared>,
}

/// Copy RTP arriving from one side out of the other side's socket towards its peer:
/// voice converted when the codecs differ, telephone-events renumbered or converted,
/// tones in G.711 voice looked for.
pub(super) async fn forward_rtp(way: Way) {
    let Way {
        from, to, shared, ..
    } = &way;
    let mut buf = vec![0u8; 2048];
    let mut reception = Reception::default();
    loop {
        let Ok((n, source)) = from.rtp.recv_from(&mut buf).await else {
            continue;
        };
        let elapsed = shared.started.elapsed();
        let now_ms = elapsed.as_millis() as u64;
        if !from.latch(source, now_ms) {
            from.counters.dropped();
            RtpTotals::add(&from.totals.dropped_stranger);
            continue;
        }
        from.last_rtp_ms.store(now_ms, Ordering::Relaxed);
        let packet = &mut buf[..n];
        let start = rtp::payload_start(packet);
        if start.is_some() {
            let (ssrc, seq, ts) = (
                rtp::ssrc(packet),
                rtp::sequence(packet),
                rtp::timestamp(packet),
            );
            reception.arrived(&from.counters, ssrc, seq, ts, elapsed.as_micros() as u64);
            RtpTotals::add(&from.totals.received);
        }
        let Some(target) = *lock(&to.peer) else {
            from.counters.dropped();
            RtpTotals::add(&from.totals.dropped_unrouted);
            continue;
        };
        let Some(start) = start else {
            // Not RTP (a STUN or keep-alive packet): as it is.
            let _ = to.rtp.send_to(packet, target).await;
            continue;
        };
        let pt = rtp::payload_type(packet);
        if lock(&from.dtmf).is_event(pt) {
            match way.event_fate(packet, start) {
                EventFate::Forward(out_pt) => {
                    rtp::set_payload_type(packet, out_pt);
                    to.relayed(packet, false);
                    let _ = to.rtp.send_to(packet, target).await;
                }
                EventFate::Drop => lock(&to.out).skipped(),
            }
            continue;
        }
        if from.detect_inband.load(Ordering::Relaxed) {
            way.detect_tone(packet, start);
        }
        // G.729 under a dynamic type of this side's is G.729 (18) from here on.
        let g729_pt = from.g729_pt.load(Ordering::Relaxed);
        if g729_pt != 0 && pt == g729_pt {
            rtp::set_payload_type(packet, 18);
        }
        let pt = rtp::payload_type(packet);
        // Voice in the codec this side converts from goes to its transcoding worker.
        let direction = lock(&from.transcoder).clone();
        if let Some(direction) = direction {
            if pt == direction.reads().payload_type() {
                shared.pool.submit(&direction, packet.to_vec(), target);
                continue;
            }
        }
        to.relayed(packet, true);
        let _ = to.rtp.send_to(packet, target).await;
    }
}

impl Way {
    /// What becomes of a telephone-event packet: the first packet of each event (a new
    /// timestamp) decides for all of them, so a key counts once.
    fn event_fate(&self, packet: &[u8], start: usize) -> EventFate {
        let ts = rtp::timestamp(packet);
        let accepted = {
            let mut d = lock(&self.from.dtmf);
            match d.current {
                Some((t, fate)) if t == ts => return fate,
                _ => d.accepts(Method::Rfc2833),
            }
        };
        let delivery = self.to.delivery(Method::Rfc2833);
        let digit = Event::parse(&packet[start..]).and_then(|e| dtmf::digit_of_event(e.code));
        let fate = match (accepted, delivery, digit) {
            (false, ..) => EventFate::Drop,
            (true, Delivery::Rfc2833(pt), _) => EventFate::Forward(pt),
            (true, Delivery::AsIs, _) => EventFate::Forward(rtp::payload_type(packet)),
            (true, other, Some(digit)) => {
                self.deliver(other, digit);
                EventFate::Drop
            }
            (true, _, None) => EventFate::Drop,
        };
        lock(&self.from.dtmf).current = Some((ts, fate));
        fate
    }

    /// Look for a key in a G.711 voice packet and send it on the other way.
    fn detect_tone(&self, packet: &[u8], start: usize) {
        let decode = match rtp::payload_type(packet) {
            8 => alaw_decode,
            0 => ulaw_decode,
            _ => return,
        };
        let samples: Vec<i16> = packet[start..].iter().map(|&b| decode(b)).collect();
        let digit = {
            let mut d = lock(&self.from.dtmf);
            match d.detector.push(&samples) {
                Some(digit) if d.detects_inband() && d.accepts(Method::Inband) => digit,
                _ => return,
            }
        };
        self.deliver(self.to.delivery(Method::Inband), digit);
    }

    fn deliver(&self, delivery: Delivery, digit: char) {
        let duration = dtmf::DEFAULT_DURATION_MS;
        deliver(
            &self.to,
            self.to_side,
            &self.shared,
            delivery,
            digit,
            duration,
        );
    }
}
