//! Media settings of one gateway's leg: a mapping gateway's apply to the caller leg,
//! a routing gateway's to the callee leg (VOS3000 sets codec and DTMF "separately for
//! each gateway and each leg"), and the one codec and DTMF vocabulary the media layer
//! uses too.

use serde::{Deserialize, Serialize};

/// Whether the host relays a leg's RTP (SS_MEDIAPROXYMODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaProxy {
    /// SDP passes end to end; media flows directly.
    Off,
    /// Always relay ("Must On" in VOS3000).
    On,
    /// Relay only when needed: transcoding, DTMF conversion, NAT.
    Auto,
}

/// How a leg's codec is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecMode {
    /// Normal offer/answer between the endpoints.
    #[default]
    Auto,
    /// The leg uses `codec`, whatever the far end offers.
    Specified,
}

/// A voice codec: what a leg can be pinned to and what the relay converts between.
/// Every one runs at 8 kHz, so RTP timestamps carry over a conversion unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Codec {
    /// G.711 A-law, payload type 8.
    Pcma,
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.729, payload type 18 (10-byte frames of 10 ms; annex A decoders interwork).
    G729,
}

impl Codec {
    /// Its static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcma => 8,
            Codec::Pcmu => 0,
            Codec::G729 => 18,
        }
    }

    /// The codec of a static payload type.
    pub fn of_payload_type(pt: u8) -> Option<Codec> {
        [Codec::Pcma, Codec::Pcmu, Codec::G729]
            .into_iter()
            .find(|c| c.payload_type() == pt)
    }

    /// Bytes of 10 ms of it.
    pub fn frame_bytes(self) -> usize {
        match self {
            Codec::Pcma | Codec::Pcmu => 80,
            Codec::G729 => 10,
        }
    }

    /// Its `a=rtpmap` encoding name and clock.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Codec::Pcma => "PCMA/8000",
            Codec::Pcmu => "PCMU/8000",
            Codec::G729 => "G729/8000",
        }
    }
}

/// Which G.729 names the SDP offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum G729Mode {
    /// Follow the far end.
    #[default]
    Auto,
    /// Offer `G729`.
    G729,
    /// Offer `G729a`.
    G729a,
    /// Offer both and let the far end pick.
    G729AndG729a,
}

/// DTMF methods a leg accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfReceive {
    /// Any, locked to the first method seen on the leg.
    #[default]
    All,
    /// RFC 2833/4733 telephone-events only.
    Rfc2833,
    /// SIP INFO only.
    Info,
    /// Inband tones only.
    Inband,
}

/// DTMF method used towards a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfSend {
    /// By the receiver's abilities (RFC 2833 when it offers telephone-event).
    #[default]
    Auto,
    /// RFC 2833/4733 telephone-events.
    Rfc2833,
    /// SIP INFO (application/dtmf-relay).
    Info,
    /// Inband tones.
    Inband,
}

/// Media settings of one gateway's leg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Relay mode; none = the system default (`media_proxy_mode`).
    #[serde(default)]
    pub proxy: Option<MediaProxy>,
    /// Auto negotiation or a softswitch-specified codec.
    #[serde(default)]
    pub codec_mode: CodecMode,
    /// The specified codec (needed when `codec_mode` is `specified`).
    #[serde(default)]
    pub codec: Option<Codec>,
    /// Transcode when the two legs' codecs differ.
    #[serde(default)]
    pub allow_conversion: bool,
    /// G.729 names in the SDP.
    #[serde(default)]
    pub g729: G729Mode,
    /// DTMF methods accepted from the leg.
    #[serde(default)]
    pub dtmf_receive: DtmfReceive,
    /// DTMF method used towards the leg.
    #[serde(default)]
    pub dtmf_send: DtmfSend,
    /// Advertise telephone-event to this leg only when the other leg offered it;
    /// off advertises it always.
    #[serde(default = "yes")]
    pub use_peer_rfc2833: bool,
    /// Telephone-event payload type (96-127).
    #[serde(default = "rfc2833_payload")]
    pub rfc2833_payload: u8,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            proxy: None,
            codec_mode: CodecMode::Auto,
            codec: None,
            allow_conversion: false,
            g729: G729Mode::Auto,
            dtmf_receive: DtmfReceive::All,
            dtmf_send: DtmfSend::Auto,
            use_peer_rfc2833: yes(),
            rfc2833_payload: rfc2833_payload(),
        }
    }
}

impl MediaSettings {
    /// The codec this leg is pinned to, if any: `codec_mode` specified. The one
    /// statement of the pinned-codec rule.
    pub fn pinned(&self) -> Option<Codec> {
        match self.codec_mode {
            CodecMode::Specified => self.codec,
            CodecMode::Auto => None,
        }
    }

    /// Check the fields; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.codec_mode == CodecMode::Specified && self.codec.is_none() {
            return Err("media.codec_mode specified needs media.codec".into());
        }
        if !(96..=127).contains(&self.rfc2833_payload) {
            return Err(format!(
                "media.rfc2833_payload {} is outside the dynamic range 96-127",
                self.rfc2833_payload
            ));
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

fn rfc2833_payload() -> u8 {
    101
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_the_spec_names_and_refuse_nonsense() {
        let m: MediaSettings = serde_json::from_str(
            r#"{"proxy":"auto","codec_mode":"specified","codec":"G729","g729":"g729_and_g729a"}"#,
        )
        .unwrap();
        assert_eq!(
            (m.proxy, m.pinned(), m.g729, m.rfc2833_payload),
            (
                Some(MediaProxy::Auto),
                Some(Codec::G729),
                G729Mode::G729AndG729a,
                101
            )
        );
        assert!(m.check().is_ok());
        let no_codec: MediaSettings =
            serde_json::from_str(r#"{"codec_mode":"specified"}"#).unwrap();
        assert!(no_codec.check().is_err());
        let low: MediaSettings = serde_json::from_str(r#"{"rfc2833_payload":8}"#).unwrap();
        assert!(low.check().is_err());
        let auto: MediaSettings = serde_json::from_str(r#"{"codec":"PCMA"}"#).unwrap();
        assert_eq!(
            auto.pinned(),
            None,
            "a codec without codec_mode specified pins nothing"
        );
        assert!(serde_json::from_str::<MediaSettings>(r#"{"codec":"G723"}"#).is_err());
    }

    #[test]
    fn payload_types_name_their_codecs() {
        for c in [Codec::Pcma, Codec::Pcmu, Codec::G729] {
            assert_eq!(Codec::of_payload_type(c.payload_type()), Some(c));
        }
        assert_eq!(Codec::of_payload_type(101), None);
    }
}
