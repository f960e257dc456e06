//! Media: whether a call's RTP is relayed, the relay itself and the SDP edits it
//! needs. Signalling (`sip/`) asks [`MediaEngine::wants_relay`] at each attempt and
//! starts a [`Relay`] when it says so; transcoding and DTMF conversion sit on the
//! same relay.

pub mod codec;
pub mod dtmf;
mod ports;
mod relay;
mod repacketize;
mod rtp;
pub mod sdp;
mod transcode_pool;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use ports::PortPool;
pub use relay::{InfoDigit, Relay, Side};

use crate::store::{CodecMode, MediaProxy, MediaSettings};
use codec::Codec;

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
}

impl MediaEngine {
    /// An engine over `config`'s port range.
    pub fn new(config: MediaConfig) -> MediaEngine {
        let ports = PortPool::new(config.port_start, config.port_end);
        MediaEngine {
            config,
            ports,
            transcoders: transcode_pool::TranscodePool::new(),
        }
    }

    /// Whether a call between these gateways' settings relays its media. Either side
    /// asking for On relays; Off on both (or Off and the default Off) passes SDP end
    /// to end; Auto relays when `nat` (a side's SDP address is not where its
    /// signalling comes from).
    pub fn wants_relay(
        &self,
        caller: Option<MediaProxy>,
        callee: Option<MediaProxy>,
        nat: bool,
    ) -> bool {
        let mode = |m: Option<MediaProxy>| m.unwrap_or(self.config.proxy_mode);
        match (mode(caller), mode(callee)) {
            (MediaProxy::On, _) | (_, MediaProxy::On) => true,
            (MediaProxy::Off, MediaProxy::Off) => false,
            _ => nat,
        }
    }

    /// Start a relay whose caller side listens on `caller_ip` and callee side on
    /// `callee_ip`; an error when the port range is used up.
    pub async fn relay(&self, caller_ip: IpAddr, callee_ip: IpAddr) -> std::io::Result<Relay> {
        let exhausted = || std::io::Error::other("the media port range is used up");
        let ports = [
            self.ports.lease().ok_or_else(exhausted)?,
            self.ports.lease().ok_or_else(exhausted)?,
        ];
        Relay::start(caller_ip, callee_ip, ports, self.transcoders.clone()).await
    }

    /// The codecs each side must use when both gateways pin a codec, the two differ
    /// and either allows conversion ("Allow codec conversion"): (caller's, vendor's).
    /// An error when that conversion is needed but the caller did not offer its codec,
    /// or a pinned codec cannot be converted.
    pub fn transcode_plan(
        caller: &MediaSettings,
        callee: &MediaSettings,
        offer: &[u8],
    ) -> Result<Option<(Codec, Codec)>, String> {
        let pinned = |m: &MediaSettings| match (m.codec_mode, m.codec) {
            (CodecMode::Specified, Some(c)) => Some(c),
            _ => None,
        };
        let (Some(a), Some(b)) = (pinned(caller), pinned(callee)) else {
            return Ok(None);
        };
        if a == b || !(caller.allow_conversion || callee.allow_conversion) {
            return Ok(None);
        }
        let convertible =
            |c| Codec::of(c).ok_or_else(|| format!("{c:?} cannot be transcoded here"));
        let (a, b) = (convertible(a)?, convertible(b)?);
        caller_offers_its_codec(caller, offer)?;
        Ok(Some((a, b)))
    }

    /// Relay ports free now.
    pub fn free_ports(&self) -> usize {
        self.ports.available()
    }

    /// Voice packets dropped because transcoding fell behind.
    pub fn transcode_drops(&self) -> usize {
        self.transcoders.dropped()
    }
}

/// Whether the gateways' DTMF settings ask for more than passing digits through as
/// they come, which only a relay can do (media proxy Auto then relays).
pub fn dtmf_needs_relay(caller: &MediaSettings, callee: &MediaSettings) -> bool {
    use crate::store::{DtmfReceive, DtmfSend};
    let plain = |m: &MediaSettings| {
        m.dtmf_send == DtmfSend::Auto && m.dtmf_receive == DtmfReceive::All && m.use_peer_rfc2833
    };
    !plain(caller) || !plain(callee) || caller.rfc2833_payload != callee.rfc2833_payload
}

/// The caller's offer must include the codec its gateway pins ("Softswitch specified");
/// the error names the missing codec. An INVITE without SDP (late offer) passes.
pub fn caller_offers_its_codec(settings: &MediaSettings, offer: &[u8]) -> Result<(), String> {
    let (CodecMode::Specified, Some(codec)) = (settings.codec_mode, settings.codec) else {
        return Ok(());
    };
    if offer.is_empty() {
        return Ok(());
    }
    let name = crate::names::variant_name(&codec);
    let static_pt = Codec::of(codec).map(Codec::payload_type);
    let offered = sdp::audio_formats(offer)
        .iter()
        .any(|(pt, n)| Some(*pt) == static_pt || n.eq_ignore_ascii_case(&name));
    match offered {
        true => Ok(()),
        false => Err(format!(
            "the caller did not offer {name}, which its gateway requires"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_beats_off_and_auto_follows_nat() {
        use MediaProxy::*;
        let engine = MediaEngine::new(MediaConfig::default());
        assert!(engine.wants_relay(Some(On), Some(Off), false));
        assert!(!engine.wants_relay(Some(Off), Some(Off), true));
        assert!(!engine.wants_relay(None, None, false));
        assert!(engine.wants_relay(None, Some(Off), true));
    }

    #[test]
    fn auto_relays_for_dtmf_only_when_the_settings_ask_for_conversion() {
        let plain = MediaSettings::default();
        assert!(!dtmf_needs_relay(&plain, &plain));
        let info = MediaSettings {
            dtmf_send: crate::store::DtmfSend::Info,
            ..MediaSettings::default()
        };
        assert!(dtmf_needs_relay(&plain, &info));
        let other_type = MediaSettings {
            rfc2833_payload: 96,
            ..MediaSettings::default()
        };
        assert!(dtmf_needs_relay(&other_type, &plain));
        let always = MediaSettings {
            use_peer_rfc2833: false,
            ..MediaSettings::default()
        };
        assert!(dtmf_needs_relay(&plain, &always));
    }

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
