//! One call's RTP relay: two legs, each an RTP and an RTCP socket on the host, one
//! facing the caller and one the vendor. A packet that arrives on one leg leaves by the
//! other towards that side's peer. Symmetric RTP: each side's peer is where its packets
//! really come from (latched on every packet, so a NAT rebinding is followed), and
//! until it sends, the address its SDP gave.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use super::codec::{Codec, Transcoder};
use super::ports::PortLease;
use super::transcode_pool::{rtp_payload_start, Direction, TranscodePool};

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
    /// Where its RTCP really comes from, once it has sent some.
    rtcp_peer: Mutex<Option<SocketAddr>>,
    /// Milliseconds since the relay started when this side last sent RTP.
    last_rtp_ms: AtomicU64,
    /// Converts this side's voice into the other side's codec, when they differ.
    transcoder: Mutex<Option<Arc<Direction>>>,
}

/// A running relay; dropping it stops the forwarding and frees its ports.
pub struct Relay {
    caller: Arc<LegState>,
    callee: Arc<LegState>,
    started: Instant,
    tasks: JoinSet<()>,
    pool: Arc<TranscodePool>,
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
    ) -> std::io::Result<Relay> {
        let bind = |ip, port| UdpSocket::bind(SocketAddr::new(ip, port));
        let leg = |rtp, rtcp| {
            Arc::new(LegState {
                rtp: Arc::new(rtp),
                rtcp: Arc::new(rtcp),
                peer: Mutex::new(None),
                rtcp_peer: Mutex::new(None),
                last_rtp_ms: AtomicU64::new(0),
                transcoder: Mutex::new(None),
            })
        };
        let (a, b) = (ports[0].port(), ports[1].port());
        let caller = leg(bind(caller_ip, a).await?, bind(caller_ip, a + 1).await?);
        let callee = leg(bind(callee_ip, b).await?, bind(callee_ip, b + 1).await?);
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for (from, to) in [(&caller, &callee), (&callee, &caller)] {
            tasks.spawn(forward(
                from.clone(),
                to.clone(),
                false,
                started,
                pool.clone(),
            ));
            tasks.spawn(forward(
                from.clone(),
                to.clone(),
                true,
                started,
                pool.clone(),
            ));
        }
        Ok(Relay {
            caller,
            callee,
            started,
            tasks,
            pool,
            _ports: ports,
        })
    }

    fn leg(&self, side: Side) -> &LegState {
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
    /// address facing that side, and `from`'s own audio address noted as where the
    /// relay sends to it (until its packets say otherwise). Unchanged when it has no
    /// audio stream.
    pub fn carry_sdp(&self, sdp: &[u8], from: Side) -> Vec<u8> {
        let to = match from {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        };
        if let Some(endpoint) = super::sdp::audio_endpoint(sdp) {
            self.set_peer(from, endpoint);
        }
        self.local_addr(to)
            .and_then(|ours| super::sdp::relay_audio(sdp, ours.ip(), ours.port()))
            .unwrap_or_else(|| sdp.to_vec())
    }

    /// Where `side`'s SDP says it receives audio; media goes there until it sends.
    pub fn set_peer(&self, side: Side, addr: SocketAddr) {
        *self
            .leg(side)
            .peer
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }

    /// Seconds since `side` last sent RTP (since the relay started, when it never did).
    pub fn silent_secs(&self, side: Side) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.leg(side).last_rtp_ms.load(Ordering::Relaxed)) / 1000
    }

    /// Convert voice between the sides: `caller` is the caller side's codec, `callee`
    /// the vendor side's. Other payloads (telephone-events, comfort noise) pass as they
    /// are.
    pub fn transcode(&self, caller: Codec, callee: Codec) {
        let caller_to_callee = self
            .pool
            .direction(Transcoder::new(caller, callee), self.callee.rtp.clone());
        let callee_to_caller = self
            .pool
            .direction(Transcoder::new(callee, caller), self.caller.rtp.clone());
        *self
            .caller
            .transcoder
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(caller_to_callee);
        *self
            .callee
            .transcoder
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(callee_to_caller);
    }

    /// Restart both sides' silence clocks (at answer: silence before it is normal).
    pub fn reset_silence(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        for leg in [&self.caller, &self.callee] {
            leg.last_rtp_ms.store(now, Ordering::Relaxed);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Copy packets arriving on `from` (its RTP or RTCP socket) out of `to`'s matching
/// socket towards `to`'s peer.
async fn forward(
    from: Arc<LegState>,
    to: Arc<LegState>,
    rtcp: bool,
    started: Instant,
    pool: Arc<TranscodePool>,
) {
    let (socket, out) = match rtcp {
        false => (&from.rtp, &to.rtp),
        true => (&from.rtcp, &to.rtcp),
    };
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, source)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        // Latch: this side's media goes back to where it comes from.
        if rtcp {
            *from.rtcp_peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
        } else {
            *from.peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
            from.last_rtp_ms
                .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        let rtp_peer = *to.peer.lock().unwrap_or_else(|e| e.into_inner());
        let target = match rtcp {
            false => rtp_peer,
            true => to
                .rtcp_peer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .or_else(|| rtp_peer.map(|p| SocketAddr::new(p.ip(), p.port().wrapping_add(1)))),
        };
        let Some(target) = target else {
            continue;
        };
        // Voice in the codec this side converts from goes to its transcoding worker;
        // anything else (telephone-events, comfort noise, RTCP) as it is.
        if !rtcp {
            let direction = from
                .transcoder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(direction) = direction {
                let voice = rtp_payload_start(&buf[..n]).is_some()
                    && buf[1] & 0x7f == direction.reads().payload_type();
                if voice {
                    pool.submit(&direction, buf[..n].to_vec(), target);
                    continue;
                }
            }
        }
        let _ = out.send_to(&buf[..n], target).await;
    }
}
