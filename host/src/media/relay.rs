//! One call's RTP relay: two legs, each an RTP and an RTCP socket on the host, one
//! facing the caller and one the vendor. A packet that arrives on one leg leaves by the
//! other towards that side's peer. Symmetric RTP: each side's peer is where its packets
//! really come from, and until it sends, the address its SDP gave. The first source
//! latches; another takes over only once the latched one has been quiet for
//! [`RELATCH_QUIET_MS`] (a NAT rebinding), so a stranger who learns a relay port cannot
//! divert a live stream or talk into it. New SDP from a side latches afresh.
//!
//! DTMF rides on the same relay (see [`super::dtmf`]): telephone-events are renumbered
//! to each side's payload type, or dropped and turned into an INFO or a tone; INFO
//! digits and tones found in G.711 audio become telephone-events. Each side's stream
//! stays continuous: packets the relay adds or drops shift the sequence numbers that
//! side sees.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::codec::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode, Codec, Transcoder};
use super::dtmf::{self, Delivery, Event, EventFate, LegDtmf, Method, ToneWriter};
use super::ports::PortLease;
use super::rtp;
use super::rtp_stats::{LegCounters, Reception, RtpTotals};
use super::transcode_pool::{Direction, TranscodePool};
use switchyard_model::MediaSettings;

mod forward;

use forward::*;

/// How long a side's latched source must be quiet before packets from another source
/// take its place: 25 packets of 20 ms audio.
const RELATCH_QUIET_MS: u64 = 500;

/// Which side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The customer's leg.
    Caller,
    /// The vendor's leg.
    Callee,
}

/// One side's sockets and where its media goes.
struct LegState {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    /// Where to send this side's RTP (RTCP goes to the next port).
    peer: Mutex<Option<SocketAddr>>,
    /// Whether `peer` is latched (where its RTP comes from) rather than from its SDP.
    latched: AtomicBool,
    /// Where its RTCP really comes from, once it has sent some.
    rtcp_peer: Mutex<Option<SocketAddr>>,
    /// Milliseconds since the relay started when this side last sent RTP.
    last_rtp_ms: AtomicU64,
    /// Converts this side's voice into the other side's codec, when they differ.
    transcoder: Mutex<Option<Arc<Direction>>>,
    /// This side's DTMF settings and state.
    dtmf: Mutex<LegDtmf>,
    /// Whether its audio is searched for tones (a cheap check on every packet).
    detect_inband: AtomicBool,
    /// The RTP stream the relay sends to this side.
    out: Mutex<OutStream>,
    /// Milliseconds of audio it wants per packet (its SDP's ptime; 20 by default).
    ptime_ms: Arc<AtomicU32>,
    /// The dynamic type its SDP gave G.729, 0 for none (it uses 18).
    g729_pt: AtomicU8,
    /// Its RTP figures (packets from it, to it, lost, jitter).
    counters: Arc<LegCounters>,
    /// The host's totals, which every packet to it also counts in.
    totals: Arc<RtpTotals>,
}

impl LegState {
    /// Latch this side's media to `source`, where a packet just came from. The first
    /// source wins; another takes over only after the latched one was quiet for
    /// [`RELATCH_QUIET_MS`]. False for a stranger's packet, which is dropped.
    fn latch(&self, source: SocketAddr, now_ms: u64) -> bool {
        let mut peer = lock(&self.peer);
        let quiet_ms = now_ms.saturating_sub(self.last_rtp_ms.load(Ordering::Relaxed));
        if self.latched.load(Ordering::Relaxed)
            && *peer != Some(source)
            && quiet_ms < RELATCH_QUIET_MS
        {
            return false;
        }
        if *peer != Some(source) {
            tracing::debug!(%source, "media latched");
        }
        *peer = Some(source);
        self.latched.store(true, Ordering::Relaxed);
        true
    }

    /// Make a relayed packet this side's (see [`OutStream::relayed`]).
    fn relayed(&self, packet: &mut [u8], voice: bool) {
        let g729_pt = self.g729_pt.load(Ordering::Relaxed);
        lock(&self.out).relayed(packet, voice, g729_pt);
        self.sent();
    }

    /// Count a packet sent to this side.
    fn sent(&self) {
        self.counters.sent();
        RtpTotals::add(&self.totals.sent);
    }

    /// How a digit that came by `received` reaches this side.
    fn delivery(&self, received: Method) -> Delivery {
        let g711 = lock(&self.out).g711();
        lock(&self.dtmf).delivery(received, g711)
    }
}

/// The ptime of a side whose SDP names none (RFC 3551's default for G.711 and G.729).
const DEFAULT_PTIME_MS: u32 = 20;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A digit the call must send as a SIP INFO to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    /// The side to send it to.
    pub to: Side,
    /// The key.
    pub digit: char,
    /// How long it lasts, ms.
    pub duration_ms: u32,
}

/// The stream towards one side as sent: what its last packet was, how far the relay's
/// own packets have moved its sequence numbers, and the tone being written into it.
#[derive(Debug, Default)]
struct OutStream {
    /// SSRC, sequence number and timestamp of the last packet sent.
    last: Option<(u32, u16, u32)>,
    /// Added to every relayed sequence number.
    shift: u16,
    /// Payload type of the last voice packet sent.
    voice_pt: Option<u8>,
    tone: Option<ToneWriter>,
}

impl OutStream {
    fn g711(&self) -> bool {
        matches!(self.voice_pt, Some(0 | 8))
    }

    /// Make a relayed RTP packet this side's: its sequence number shifted, G.729 voice
    /// renumbered to `g729_pt` (the side's dynamic G.729 type; 0 for none), and a tone
    /// written over G.711 voice while one is due.
    fn relayed(&mut self, packet: &mut [u8], voice: bool, g729_pt: u8) {
        let Some(start) = rtp::payload_start(packet) else {
            return;
        };
        let seq = rtp::sequence(packet).wrapping_add(self.shift);
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        self.last = Some((rtp::ssrc(packet), seq, rtp::timestamp(packet)));
        if !voice {
            return;
        }
        if rtp::payload_type(packet) == 18 && g729_pt != 0 {
            rtp::set_payload_type(packet, g729_pt);
        }
        let pt = rtp::payload_type(packet);
        self.voice_pt = Some(pt);
        let Some(tone) = self.tone.as_mut() else {
            return;
        };
        let encode = match pt {
            8 => alaw_encode,
            0 => ulaw_encode,
            _ => return,
        };
        match tone.next_samples(packet.len() - start) {
            Some(samples) => {
                for (byte, sample) in packet[start..].iter_mut().zip(samples) {
                    *byte = encode(sample);
                }
            }
            None => self.tone = None,
        }
    }

    /// A relayed packet this side will not get.
    fn skipped(&mut self) {
        self.shift = self.shift.wrapping_sub(1);
    }

    /// A packet of the relay's own in this side's stream, an event's: the first one
    /// (`event_ts` none) starts it one frame after the last packet sent and carries the
    /// marker bit; the rest repeat its timestamp.
    fn added(&mut self, pt: u8, event_ts: Option<u32>, payload: &[u8]) -> (Vec<u8>, u32) {
        let (ssrc, seq, ts) = self.last.unwrap_or_else(|| {
            use rand::Rng;
            let mut rng = rand::rng();
            (rng.random(), rng.random(), rng.random())
        });
        let seq = seq.wrapping_add(1);
        self.shift = self.shift.wrapping_add(1);
        self.last = Some((ssrc, seq, ts));
        let first = event_ts.is_none();
        let event_ts = event_ts.unwrap_or(ts.wrapping_add(160));
        (
            rtp::packet(first, pt, seq, event_ts, ssrc, payload),
            event_ts,
        )
    }
}

/// What every forwarding task of a relay shares.
struct Shared {
    started: Instant,
    pool: Arc<TranscodePool>,
    /// Digits the call must send as INFO.
    info: mpsc::UnboundedSender<InfoDigit>,
    /// Set when the relay is dropped: tasks sending events stop.
    closed: AtomicBool,
}

/// A running relay; dropping it stops the forwarding and frees its ports.
pub struct Relay {
    caller: Arc<LegState>,
    callee: Arc<LegState>,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    info: Option<mpsc::UnboundedReceiver<InfoDigit>>,
    _ports: [PortLease; 2],
}

impl Relay {
    /// Start relaying between two legs bound on `ports` (their RTP ports; RTCP on the
    /// next one each).
    pub(super) async fn start(
        caller_ip: std::net::IpAddr,
        callee_ip: std::net::IpAddr,
        ports: [PortLease; 2],
        pool: Arc<TranscodePool>,
        totals: Arc<RtpTotals>,
    ) -> std::io::Result<Relay> {
        let bind = |ip, port| UdpSocket::bind(SocketAddr::new(ip, port));
        let leg = |rtp, rtcp| {
            Arc::new(LegState {
                rtp: Arc::new(rtp),
                rtcp: Arc::new(rtcp),
                peer: Mutex::new(None),
                latched: AtomicBool::new(false),
                rtcp_peer: Mutex::new(None),
                last_rtp_ms: AtomicU64::new(0),
                transcoder: Mutex::new(None),
                dtmf: Mutex::new(LegDtmf::new(&MediaSettings::default())),
                detect_inband: AtomicBool::new(false),
                out: Mutex::new(OutStream::default()),
                ptime_ms: Arc::new(AtomicU32::new(DEFAULT_PTIME_MS)),
                g729_pt: AtomicU8::new(0),
                counters: Arc::default(),
                totals: totals.clone(),
            })
        };
        let (a, b) = (ports[0].port(), ports[1].port());
        let caller = leg(bind(caller_ip, a).await?, bind(caller_ip, a + 1).await?);
        let callee = leg(bind(callee_ip, b).await?, bind(callee_ip, b + 1).await?);
        let (info_tx, info_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            started: Instant::now(),
            pool,
            info: info_tx,
            closed: AtomicBool::new(false),
        });
        let mut tasks = JoinSet::new();
        for (from, to, to_side) in [
            (&caller, &callee, Side::Callee),
            (&callee, &caller, Side::Caller),
        ] {
            tasks.spawn(forward_rtp(Way {
                from: from.clone(),
                to: to.clone(),
                to_side,
                shared: shared.clone(),
            }));
            tasks.spawn(forward_rtcp(from.clone(), to.clone()));
        }
        Ok(Relay {
            caller,
            callee,
            shared,
            tasks,
            info: Some(info_rx),
            _ports: ports,
        })
    }

    fn leg(&self, side: Side) -> &Arc<LegState> {
        match side {
            Side::Caller => &self.caller,
            Side::Callee => &self.callee,
        }
    }

    /// The host's RTP port facing `side` (the port to put in that side's SDP).
    pub fn local_port(&self, side: Side) -> u16 {
        self.local_addr(side).map(|a| a.port()).unwrap_or_default()
    }

    /// The host's RTP address facing `side`.
    pub fn local_addr(&self, side: Side) -> Option<SocketAddr> {
        self.leg(side).rtp.local_addr().ok()
    }

    /// `sdp` from `from` as the other side gets it: its audio moved to the relay's
    /// address facing that side, its telephone-events replaced by the ones the other
    /// side's gateway asks for, and `from`'s own audio address noted as where the
    /// relay sends to it (until its packets say otherwise). Unchanged when it has no
    /// audio stream.
    pub fn carry_sdp(&self, sdp: &[u8], from: Side) -> Vec<u8> {
        let to = from.other();
        let view = super::sdp::audio(sdp).unwrap_or_default();
        if let Some(endpoint) = view.endpoint {
            self.set_peer(from, endpoint);
        }
        let Some(moved) = self
            .local_addr(to)
            .and_then(|ours| super::sdp::relay_audio(sdp, ours.ip(), ours.port()))
        else {
            return sdp.to_vec();
        };
        let own = view.telephone_event();
        let sender = self.leg(from);
        lock(&sender.dtmf).saw_sdp(own);
        let ptime = view.ptime.unwrap_or(DEFAULT_PTIME_MS);
        sender.ptime_ms.store(ptime, Ordering::Relaxed);
        let g729_pt = view.dynamic_g729().unwrap_or(0);
        sender.g729_pt.store(g729_pt, Ordering::Relaxed);
        let pt = lock(&self.leg(to).dtmf).advertised_pt(own.is_some());
        let (carried, pt) = super::sdp::with_telephone_event(&moved, pt).unwrap_or((moved, None));
        if let Some(pt) = pt {
            lock(&self.leg(to).dtmf).note_pt(pt);
        }
        self.refresh_detection();
        carried
    }

    /// Where `side`'s SDP says it receives audio; media goes there until it sends.
    pub fn set_peer(&self, side: Side, addr: SocketAddr) {
        let leg = self.leg(side);
        let mut peer = lock(&leg.peer);
        *peer = Some(addr);
        leg.latched.store(false, Ordering::Relaxed);
    }

    /// The RTP counters of the (caller's, vendor's) legs, which keep counting while
    /// the relay runs.
    pub fn counters(&self) -> [Arc<LegCounters>; 2] {
        [self.caller.counters.clone(), self.callee.counters.clone()]
    }

    /// Seconds since `side` last sent RTP (since the relay started, when it never did).
    pub fn silent_secs(&self, side: Side) -> u64 {
        let now = self.shared.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.leg(side).last_rtp_ms.load(Ordering::Relaxed)) / 1000
    }

    /// Convert voice between the sides: `caller` is the caller side's codec, `callee`
    /// the vendor side's. Other payloads (telephone-events, comfort noise) pass as they
    /// are.
    pub fn transcode(&self, caller: Codec, callee: Codec) {
        // Converted packets leave through the receiving side's stream (its sequence
        // shift, its tone).
        let direction = |from: Codec, to: Codec, leg: &Arc<LegState>| {
            let out = leg.clone();
            let finish = Box::new(move |packet: &mut [u8]| out.relayed(packet, true));
            self.shared.pool.direction(
                Transcoder::new(from, to),
                leg.ptime_ms.clone(),
                leg.rtp.clone(),
                finish,
            )
        };
        *lock(&self.caller.transcoder) = Some(direction(caller, callee, &self.callee));
        *lock(&self.callee.transcoder) = Some(direction(callee, caller, &self.caller));
    }

    /// Each side's gateway DTMF settings (at each attempt: the vendor's may differ).
    pub fn configure_dtmf(&self, caller: &MediaSettings, callee: &MediaSettings) {
        *lock(&self.caller.dtmf) = LegDtmf::new(caller);
        *lock(&self.callee.dtmf) = LegDtmf::new(callee);
        self.refresh_detection();
    }

    /// The digits the call must send as SIP INFO (taken once).
    pub fn take_info_digits(&mut self) -> Option<mpsc::UnboundedReceiver<InfoDigit>> {
        self.info.take()
    }

    /// A digit `from` sent by SIP INFO: whether the INFO goes on to the other side as
    /// it is. When not, the digit was refused by `from`'s receive mode, or sent on as
    /// telephone-events or a tone.
    pub fn info_digit(&self, from: Side, digit: char, duration_ms: u32) -> bool {
        if !lock(&self.leg(from).dtmf).accepts(Method::Info) {
            tracing::info!(%digit, "DTMF by INFO refused by the leg's receive mode");
            return false;
        }
        self.refresh_detection();
        let to = self.leg(from.other());
        match to.delivery(Method::Info) {
            Delivery::AsIs | Delivery::Info => true,
            other => {
                deliver(to, from.other(), &self.shared, other, digit, duration_ms);
                false
            }
        }
    }

    /// The DTMF method `side` is locked to, once it has sent a digit.
    pub fn dtmf_method(&self, side: Side) -> Option<Method> {
        lock(&self.leg(side).dtmf).locked()
    }

    /// Tones are searched for in a side's audio only when it may send them and a tone
    /// found there would reach the other side some other way.
    fn refresh_detection(&self) {
        for (from, to) in [(&self.caller, &self.callee), (&self.callee, &self.caller)] {
            let converts = to.delivery(Method::Inband) != Delivery::AsIs;
            let detects = lock(&from.dtmf).detects_inband();
            from.detect_inband
                .store(detects && converts, Ordering::Relaxed);
        }
    }

    /// Restart both sides' silence clocks (at answer: silence before it is normal).
    pub fn reset_silence(&self) {
        let now = self.shared.started.elapsed().as_millis() as u64;
        for leg in [&self.caller, &self.callee] {
            leg.last_rtp_ms.store(now, Ordering::Relaxed);
        }
    }
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.tasks.abort_all();
    }
}
