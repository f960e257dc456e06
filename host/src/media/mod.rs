//! Media: whether a call's RTP is relayed, the relay itself and the SDP edits it
//! needs. Signalling (`sip/`) asks [`MediaEngine::wants_relay`] at each attempt and
//! starts a [`Relay`] when it says so; transcoding and DTMF conversion sit on the
//! same relay.

pub mod codec;
pub mod dtmf;
pub mod negotiation;
mod ports;
mod relay;
mod repacketize;
mod rtp;
pub mod rtp_stats;
pub mod sdp;
mod transcode_pool;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use negotiation::MediaPlan;
pub use ports::PortPool;
pub use relay::{InfoDigit, Relay, Side};
pub use rtp_stats::{LegCounters, LegRtp, MediaStats};

use switchyard_model::MediaProxy;

/// Media settings of the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Relay mode of gateways that do not set one (SS_MEDIAPROXYMODE). Auto relays
    /// when a side is behind NAT.
    pub proxy_mode: MediaProxy,
    /// First relay port (SS_MEDIAPROXYPORT_START).
    pub port_start: u16,
    /// Last relay port (SS_MEDIAPROXYPORT_END).
    pub port_end: u16,
    /// A relayed, answered call in which one side sends no RTP for this long ends
    /// with reason `rtp_timeout` (SS_RTP_TIMEOUT); 0 = never.
    pub rtp_timeout_secs: u32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            proxy_mode: MediaProxy::Auto,
            port_start: 10_000,
            port_end: 20_000,
            rtp_timeout_secs: 30,
        }
    }
}

/// The host's media side: its settings and its relay ports.
pub struct MediaEngine {
    /// Its settings.
    pub config: MediaConfig,
    ports: Arc<PortPool>,
    transcoders: Arc<transcode_pool::TranscodePool>,
    totals: Arc<rtp_stats::RtpTotals>,
}

impl MediaEngine {
    /// An engine over `config`'s port range.
    pub fn new(config: MediaConfig) -> MediaEngine {
        let ports = PortPool::new(config.port_start, config.port_end);
        let totals = Arc::<rtp_stats::RtpTotals>::default();
        MediaEngine {
            config,
            ports,
            transcoders: transcode_pool::TranscodePool::new(totals.clone()),
            totals,
        }
    }

    /// Whether a call between these proxy settings relays its media; see
    /// [`negotiation::wants_relay`].
    pub fn wants_relay(
        &self,
        caller: Option<MediaProxy>,
        callee: Option<MediaProxy>,
        nat: bool,
    ) -> bool {
        negotiation::wants_relay(caller, callee, self.config.proxy_mode, nat)
    }

    /// Start a relay whose caller side listens on `caller_ip` and callee side on
    /// `callee_ip`; an error when the port range is used up.
    pub async fn relay(&self, caller_ip: IpAddr, callee_ip: IpAddr) -> std::io::Result<Relay> {
        let exhausted = || std::io::Error::other("the media port range is used up");
        let ports = [
            self.ports.lease().ok_or_else(exhausted)?,
            self.ports.lease().ok_or_else(exhausted)?,
        ];
        Relay::start(
            caller_ip,
            callee_ip,
            ports,
            self.transcoders.clone(),
            self.totals.clone(),
        )
        .await
    }

    /// Relay ports free now.
    pub fn free_ports(&self) -> usize {
        self.ports.available()
    }

    /// Packets relayed and dropped, and the transcoders' load, over every relay.
    pub fn stats(&self) -> MediaStats {
        self.totals.read(self.transcoders.workers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn recv(s: &tokio::net::UdpSocket, buf: &mut [u8]) -> (usize, std::net::SocketAddr) {
        tokio::time::timeout(std::time::Duration::from_secs(2), s.recv_from(buf))
            .await
            .expect("a packet")
            .unwrap()
    }

    #[tokio::test]
    async fn packets_cross_to_the_latched_peer_both_ways() {
        let engine = MediaEngine::new(MediaConfig {
            port_start: 41_000,
            port_end: 41_100,
            ..MediaConfig::default()
        });
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let relay = engine.relay(lo, lo).await.unwrap();
        let caller = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let callee = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The callee's SDP address; the caller's is learnt from its first packet.
        relay.set_peer(Side::Callee, callee.local_addr().unwrap());
        let to_caller_side = std::net::SocketAddr::new(lo, relay.local_port(Side::Caller));
        let to_callee_side = std::net::SocketAddr::new(lo, relay.local_port(Side::Callee));
        let mut buf = [0u8; 64];
        caller
            .send_to(b"from-caller", to_caller_side)
            .await
            .unwrap();
        let (n, from) = recv(&callee, &mut buf).await;
        assert_eq!((&buf[..n], from), (&b"from-caller"[..], to_callee_side));
        callee
            .send_to(b"from-callee", to_callee_side)
            .await
            .unwrap();
        let (n, from) = recv(&caller, &mut buf).await;
        assert_eq!((&buf[..n], from), (&b"from-callee"[..], to_caller_side));
        assert_eq!(relay.silent_secs(Side::Caller), 0);
        assert_eq!(engine.free_ports(), 48);
        drop(relay);
        assert_eq!(engine.free_ports(), 50);
    }
}
