use super::*;

#[test]
fn next_version_raises_only_the_origins_session_version() {
    let next = with_next_version(OFFER.as_bytes());
    let next = std::str::from_utf8(&next).unwrap();
    assert_eq!(next, OFFER.replace("o=- 1 1 IN", "o=- 1 2 IN"));
    assert_eq!(with_next_version(b"v=0\r\ns=-\r\n"), b"v=0\r\ns=-\r\n");
}

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
    m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
    a=silenceSupp:off - - - -\r\na=rtcp:4001\r\nm=image 5000 udptl t38\r\na=T38FaxVersion:0\r\n";

#[test]
fn the_audio_endpoint_is_its_port_at_the_address_that_applies() {
    assert_eq!(
        audio_endpoint(OFFER.as_bytes()),
        Some("192.0.2.10:4000".parse().unwrap())
    );
    let media_level = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                       m=audio 7000 RTP/AVP 0\r\nc=IN IP6 2001:db8::5\r\n";
    assert_eq!(
        audio_endpoint(media_level.as_bytes()),
        Some("[2001:db8::5]:7000".parse().unwrap())
    );
    assert_eq!(audio_endpoint(b"v=0\r\nm=video 6000 RTP/AVP 96\r\n"), None);
}

#[test]
fn relaying_moves_only_the_audio_and_keeps_everything_else() {
    let ours: IpAddr = "203.0.113.7".parse().unwrap();
    let out = relay_audio(OFFER.as_bytes(), ours, 10_002).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\n\
         m=audio 10002 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=silenceSupp:off - - - -\r\na=rtcp:10003\r\nm=image 5000 udptl t38\r\n\
         c=IN IP4 192.0.2.10\r\na=T38FaxVersion:0\r\n"
    );
    assert_eq!(
        audio_endpoint(out.as_bytes()),
        Some("203.0.113.7:10002".parse().unwrap())
    );
    assert!(relay_audio(b"v=0\r\nm=image 5000 udptl t38\r\n", ours, 10_002).is_none());
}

#[test]
fn offering_one_codec_keeps_telephone_events_and_other_streams() {
    use crate::media::codec::Codec;
    let out = String::from_utf8(offer_only(OFFER.as_bytes(), Codec::G729, true).unwrap()).unwrap();
    assert!(
        out.contains(
            "m=audio 4000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n"
        ),
        "{out}"
    );
    assert!(!out.contains("PCMA"), "{out}");
    assert!(
        out.contains("a=rtpmap:101 telephone-event/8000\r\na=silenceSupp:off - - - -"),
        "{out}"
    );
    assert!(
        out.contains("m=image 5000 udptl t38\r\na=T38FaxVersion:0\r\n"),
        "{out}"
    );
    assert_eq!(
        audio_formats(out.as_bytes()),
        [
            (18, "G729".to_string()),
            (101, "telephone-event".to_string())
        ]
    );
}

#[test]
fn a_malformed_attribute_is_read_around_and_t38_lines_stay_out_of_audio() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
               m=audio 6000 RTP/AVP 8 0\r\na=rtpmap:8 0 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
               m=image 7000 udptl t38\r\nc=IN IP4 192.0.2.99\r\n";
    assert_eq!(
        audio_endpoint(sdp.as_bytes()),
        Some("192.0.2.1:6000".parse().unwrap())
    );
    assert_eq!(
        audio_formats(sdp.as_bytes()),
        [(8, "PCMA".to_string()), (0, "PCMU".to_string())]
    );
    assert_eq!(audio_endpoint(b"v=0\r\nm=audio 6000 RTP/AVP 0\r\n"), None);
}

#[test]
fn telephone_events_are_replaced_by_the_legs_own_payload_type() {
    let (out, pt) = with_telephone_event(OFFER.as_bytes(), Some(96)).unwrap();
    assert_eq!(pt, Some(96));
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("m=audio 4000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=silenceSupp:off - - - -\r\na=rtcp:4001\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\nm=image"),
        "{out}"
    );
    assert_eq!(telephone_event(out.as_bytes()), Some(96));
    // Removed, and a type a codec holds gives way.
    let none = String::from_utf8(with_telephone_event(OFFER.as_bytes(), None).unwrap().0).unwrap();
    assert!(
        none.contains("m=audio 4000 RTP/AVP 8\r\n") && !none.contains("telephone-event"),
        "{none}"
    );
    let (clash, pt) = with_telephone_event(OFFER.as_bytes(), Some(8)).unwrap();
    assert_eq!((telephone_event(&clash), pt), (Some(96), Some(96)));
    let (added, _) = with_telephone_event(b"v=0\nm=audio 5 RTP/AVP 0\n", Some(101)).unwrap();
    assert_eq!(
        String::from_utf8(added).unwrap(),
        "v=0\nm=audio 5 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n"
    );
}

fn g729(formats: &str, maps: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
         m=audio 6000 RTP/AVP {formats}\r\n{maps}"
    )
}

fn named(sdp: &[u8]) -> Vec<(u8, String)> {
    audio_formats(sdp)
}

#[test]
fn g729_names_follow_the_gateways_mode() {
    let plain = g729(
        "18 101",
        "a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let annex_a = with_g729_names(plain.as_bytes(), G729Mode::G729a, None).unwrap();
    assert_eq!(
        named(&annex_a),
        [
            (18, "G729a".to_string()),
            (101, "telephone-event".to_string())
        ]
    );
    assert_eq!(
        with_g729_names(&annex_a, G729Mode::G729, None).map(|s| named(&s)),
        Some(named(plain.as_bytes()))
    );
    // Already as wanted, or no G.729 at all: nothing to do.
    assert_eq!(
        with_g729_names(plain.as_bytes(), G729Mode::G729, None),
        None
    );
    let pcma = g729("8", "a=rtpmap:8 PCMA/8000\r\n");
    assert_eq!(
        with_g729_names(pcma.as_bytes(), G729Mode::G729a, None),
        None
    );
    // A bare static 18 gets an rtpmap with the name.
    let bare = g729("0 18", "");
    let out = with_g729_names(bare.as_bytes(), G729Mode::G729a, None).unwrap();
    assert_eq!(
        named(&out),
        [(0, "PCMU".to_string()), (18, "G729a".to_string())]
    );
    // Auto mirrors the name the receiving side used, and leaves it otherwise.
    let mirrored = with_g729_names(plain.as_bytes(), G729Mode::Auto, Some("G729A")).unwrap();
    assert_eq!(named(&mirrored)[0], (18, "G729A".to_string()));
    assert_eq!(
        with_g729_names(plain.as_bytes(), G729Mode::Auto, None),
        None
    );
}

#[test]
fn both_g729_variants_are_offered_when_the_mode_says_so() {
    let plain = g729(
        "18 101",
        "a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let both = with_g729_names(plain.as_bytes(), G729Mode::G729AndG729a, None).unwrap();
    assert_eq!(
        named(&both),
        [
            (18, "G729".to_string()),
            (96, "G729a".to_string()),
            (101, "telephone-event".to_string())
        ]
    );
    assert_eq!(with_g729_names(&both, G729Mode::G729AndG729a, None), None);
    let annex_a = g729("97", "a=rtpmap:97 G729a/8000\r\n");
    let both = with_g729_names(annex_a.as_bytes(), G729Mode::G729AndG729a, None).unwrap();
    assert_eq!(
        named(&both),
        [(97, "G729a".to_string()), (18, "G729".to_string())]
    );
}

#[test]
fn remembered_readings_answer_only_for_the_same_bytes() {
    let at = |port: u16| {
        format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
    };
    // More bodies than a thread remembers, then each again: every answer is its own.
    let ports: Vec<u16> = (0..RECENT_READINGS as u16 * 2)
        .map(|n| 4000 + 2 * n)
        .collect();
    for _ in 0..2 {
        for &port in &ports {
            let endpoint = audio_endpoint(at(port).as_bytes());
            assert_eq!(endpoint, Some(SocketAddr::from(([192, 0, 2, 1], port))));
        }
    }
    // A body that differs in one byte from one just read is read afresh.
    let pcmu = at(4000);
    let pcma = pcmu.replace("RTP/AVP 0", "RTP/AVP 8");
    assert_eq!(
        audio_formats(pcmu.as_bytes()),
        vec![(0, "PCMU".to_string())]
    );
    assert_eq!(
        audio_formats(pcma.as_bytes()),
        vec![(8, "PCMA".to_string())]
    );
    assert_eq!(audio(b"not sdp").map(|a| a.endpoint), None);
    assert_eq!(audio(b"not sdp").map(|a| a.endpoint), None);
}
