//! A call attempt's media plan, decided once from the two gateways' media settings
//! and the caller's offer: whether the attempt relays, which codec each side is pinned
//! to, whether (and between which codecs) the relay transcodes, and how each side
//! names G.729. Pure: no sockets, so every rule here is unit-tested.
//!
//! A pin on one side is enough: that side is offered only its codec. When the
//! caller's codec differs from the vendor's pinned one, the relay converts between
//! them if either gateway allows conversion; otherwise the attempt is refused (488).

use switchyard_model::{Codec, DtmfReceive, DtmfSend, G729Mode, MediaProxy, MediaSettings};

use super::codec::can_convert;
use super::sdp;

/// What an attempt does with its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPlan {
    /// The codec each side's gateway pins: (caller's, vendor's).
    pub pinned: (Option<Codec>, Option<Codec>),
    /// The codecs the relay converts between: (caller side's, vendor side's).
    pub transcode: Option<(Codec, Codec)>,
    /// How each side's gateway names G.729: (caller's, vendor's).
    pub g729_modes: (G729Mode, G729Mode),
    /// Whether the attempt relays its media from the start (the vendor's NAT, seen
    /// only in its answer, may still make it relay later).
    pub relay: bool,
}

/// The plan for a call from a gateway with `caller` settings, offering `offer` (empty
/// for a late offer), to one with `vendor` settings. `default_proxy` is the host's
/// media proxy mode for gateways that set none; `nat` says the caller's SDP address
/// is not where its signalling comes from. The error says why the attempt cannot be
/// made (the caller then gets 488).
pub fn plan(
    caller: &MediaSettings,
    vendor: &MediaSettings,
    offer: &[u8],
    default_proxy: MediaProxy,
    nat: bool,
) -> Result<MediaPlan, String> {
    let pinned = (caller.pinned(), vendor.pinned());
    let transcode = transcode_plan(caller, vendor, offer)?;
    let relay = transcode.is_some()
        || wants_relay(
            caller.proxy,
            vendor.proxy,
            default_proxy,
            nat || dtmf_needs_relay(caller, vendor),
        );
    Ok(MediaPlan {
        pinned,
        transcode,
        g729_modes: (caller.g729, vendor.g729),
        relay,
    })
}

/// Whether a call between these proxy settings relays its media. Either side asking
/// for On relays; Off on both (or Off and the default Off) passes SDP end to end;
/// Auto relays when `nat`.
pub fn wants_relay(
    caller: Option<MediaProxy>,
    vendor: Option<MediaProxy>,
    default_proxy: MediaProxy,
    nat: bool,
) -> bool {
    let mode = |m: Option<MediaProxy>| m.unwrap_or(default_proxy);
    match (mode(caller), mode(vendor)) {
        (MediaProxy::On, _) | (_, MediaProxy::On) => true,
        (MediaProxy::Off, MediaProxy::Off) => false,
        _ => nat,
    }
}

/// The codecs the relay converts between, (caller side's, vendor side's), when the
/// vendor's gateway pins a codec the caller will not use: the caller's gateway pins
/// another, or the caller did not offer it.
fn transcode_plan(
    caller: &MediaSettings,
    vendor: &MediaSettings,
    offer: &[u8],
) -> Result<Option<(Codec, Codec)>, String> {
    caller_offers_its_codec(caller, offer)?;
    let Some(theirs) = vendor.pinned() else {
        return Ok(None);
    };
    if offer.is_empty() {
        return Ok(None); // a late offer: nothing to compare until the vendor offers
    }
    let ours = match caller.pinned() {
        Some(ours) => ours,
        None if offers(offer, theirs) => return Ok(None),
        None => first_codec_offered(offer).ok_or_else(|| {
            format!(
                "the caller offered no codec the vendor's {} can be converted from",
                name(theirs)
            )
        })?,
    };
    if ours == theirs {
        return Ok(None);
    }
    if !(caller.allow_conversion || vendor.allow_conversion) {
        return Err(format!(
            "the vendor's gateway requires {} and the caller's codec is {}; \
             neither gateway allows conversion",
            name(theirs),
            name(ours)
        ));
    }
    for codec in [ours, theirs] {
        if !can_convert(codec) {
            return Err(format!(
                "{} cannot be transcoded here (the host is built without g729)",
                name(codec)
            ));
        }
    }
    Ok(Some((ours, theirs)))
}

/// Whether the gateways' DTMF settings ask for more than passing digits through as
/// they come, which only a relay can do (media proxy Auto then relays).
pub fn dtmf_needs_relay(caller: &MediaSettings, vendor: &MediaSettings) -> bool {
    let plain = |m: &MediaSettings| {
        m.dtmf_send == DtmfSend::Auto && m.dtmf_receive == DtmfReceive::All && m.use_peer_rfc2833
    };
    !plain(caller) || !plain(vendor) || caller.rfc2833_payload != vendor.rfc2833_payload
}

/// The caller's offer must include the codec its gateway pins ("Softswitch specified");
/// the error names the missing codec. An INVITE without SDP (late offer) passes.
pub fn caller_offers_its_codec(settings: &MediaSettings, offer: &[u8]) -> Result<(), String> {
    match settings.pinned() {
        Some(codec) if !offer.is_empty() && !offers(offer, codec) => Err(format!(
            "the caller did not offer {}, which its gateway requires",
            name(codec)
        )),
        _ => Ok(()),
    }
}

/// Whether `sdp`'s audio offers `codec`, by static payload type or by name.
fn offers(sdp: &[u8], codec: Codec) -> bool {
    let name = name(codec);
    sdp::audio_formats(sdp)
        .iter()
        .any(|(pt, n)| *pt == codec.payload_type() || n.eq_ignore_ascii_case(&name))
}

/// The caller's most preferred codec this build can convert.
fn first_codec_offered(sdp: &[u8]) -> Option<Codec> {
    sdp::audio_formats(sdp)
        .iter()
        .filter_map(|(pt, _)| Codec::of_payload_type(*pt))
        .find(|c| can_convert(*c))
}

fn name(codec: Codec) -> String {
    crate::names::variant_name(&codec)
}

#[cfg(test)]
mod tests {
    use switchyard_model::CodecMode;

    use super::*;

    fn offer(formats: &str) -> Vec<u8> {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP {formats}\r\n"
        )
        .into_bytes()
    }

    fn pinned(codec: Codec, allow_conversion: bool) -> MediaSettings {
        MediaSettings {
            codec_mode: CodecMode::Specified,
            codec: Some(codec),
            allow_conversion,
            ..MediaSettings::default()
        }
    }

    fn plan_of(
        caller: &MediaSettings,
        vendor: &MediaSettings,
        formats: &str,
    ) -> Result<MediaPlan, String> {
        plan(caller, vendor, &offer(formats), MediaProxy::Auto, false)
    }

    #[test]
    fn a_vendor_pin_alone_transcodes_what_the_caller_offered() {
        let auto = MediaSettings::default();
        let plan = plan_of(&auto, &pinned(Codec::G729, true), "8 101");
        if cfg!(feature = "g729") {
            let p = plan.unwrap();
            assert_eq!(p.transcode, Some((Codec::Pcma, Codec::G729)));
            assert_eq!(p.pinned, (None, Some(Codec::G729)));
            assert!(p.relay, "transcoding relays");
        } else {
            let why = plan.unwrap_err();
            assert!(why.contains("without g729"), "{why}");
        }
    }

    #[test]
    fn a_vendor_pin_the_caller_offers_needs_no_conversion() {
        let auto = MediaSettings::default();
        let p = plan_of(&auto, &pinned(Codec::Pcma, true), "0 8 101").unwrap();
        assert_eq!((p.transcode, p.relay), (None, false));
        assert_eq!(p.pinned, (None, Some(Codec::Pcma)));
    }

    #[test]
    fn a_codec_mismatch_without_conversion_is_refused() {
        let auto = MediaSettings::default();
        let why = plan_of(&auto, &pinned(Codec::Pcmu, false), "8").unwrap_err();
        assert!(
            why.contains("requires PCMU") && why.contains("conversion"),
            "{why}"
        );
        let why = plan_of(
            &pinned(Codec::Pcma, false),
            &pinned(Codec::Pcmu, false),
            "8",
        )
        .unwrap_err();
        assert!(why.contains("codec is PCMA"), "{why}");
    }

    #[test]
    fn both_pins_convert_when_either_side_allows() {
        let p = plan_of(&pinned(Codec::Pcma, false), &pinned(Codec::Pcmu, true), "8").unwrap();
        assert_eq!(p.transcode, Some((Codec::Pcma, Codec::Pcmu)));
        let same = plan_of(&pinned(Codec::Pcma, true), &pinned(Codec::Pcma, true), "8").unwrap();
        assert_eq!(same.transcode, None);
    }

    #[test]
    fn the_caller_must_offer_its_own_pinned_codec() {
        let why = plan_of(&pinned(Codec::G729, false), &MediaSettings::default(), "8").unwrap_err();
        assert!(why.contains("did not offer G729"), "{why}");
        assert!(
            caller_offers_its_codec(&pinned(Codec::G729, false), b"").is_ok(),
            "late offer"
        );
    }

    #[test]
    fn a_late_offer_plans_no_conversion() {
        let p = plan(
            &MediaSettings::default(),
            &pinned(Codec::G729, true),
            b"",
            MediaProxy::Auto,
            false,
        )
        .unwrap();
        assert_eq!(p.transcode, None);
    }

    #[test]
    fn nothing_convertible_offered_is_refused() {
        let why = plan_of(
            &MediaSettings::default(),
            &pinned(Codec::Pcmu, true),
            "4 101",
        )
        .unwrap_err();
        assert!(why.contains("offered no codec"), "{why}");
    }

    #[test]
    fn on_beats_off_and_auto_follows_nat() {
        use MediaProxy::*;
        assert!(wants_relay(Some(On), Some(Off), Auto, false));
        assert!(!wants_relay(Some(Off), Some(Off), Auto, true));
        assert!(!wants_relay(None, None, Auto, false));
        assert!(wants_relay(None, Some(Off), Auto, true));
        assert!(!wants_relay(None, Some(Auto), Off, false));
        let nat = plan(
            &MediaSettings::default(),
            &MediaSettings::default(),
            &offer("8"),
            Auto,
            true,
        );
        assert!(nat.unwrap().relay);
    }

    #[test]
    fn auto_relays_for_dtmf_only_when_the_settings_ask_for_conversion() {
        let plain = MediaSettings::default();
        assert!(!dtmf_needs_relay(&plain, &plain));
        let info = MediaSettings {
            dtmf_send: DtmfSend::Info,
            ..MediaSettings::default()
        };
        assert!(dtmf_needs_relay(&plain, &info));
        assert!(plan_of(&plain, &info, "8").unwrap().relay);
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
}
