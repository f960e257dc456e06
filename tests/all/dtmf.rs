//! DTMF through the relay, with SIPp for signalling (and SIP INFO) and the test's own
//! UDP sockets for RTP: telephone-events renumbered to each side's payload type,
//! converted to INFO and to tones and back, each key arriving exactly once, and a leg
//! in receive mode All locked to the first method it uses.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard::media::codec::{alaw_decode, alaw_encode, tone_share};
use switchyard_tests::sip::{carrier, Vendor};
use switchyard_tests::{TempDir, TestServer};
use tokio::net::UdpSocket;

use crate::media::{received, relaying_server, rtp, written_line, MediaCall, Script};

/// A-law silence.
const SILENCE: u8 = 0xD5;

/// Set the vendor gateway's media settings.
async fn vendor_media(s: &TestServer, vendor: &Vendor, media: Value) -> Result<()> {
    let gateway = json!({ "address": format!("127.0.0.1:{}", vendor.port), "media": media });
    let (status, body) = s
        .admin("PUT", "/api/v1/routing-gateways/vendor-a", Some(gateway))
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(())
}

/// One RTP packet of a telephone-event: `key`'s code, its end bit and duration.
fn event_packet(
    pt: u8,
    seq: u16,
    ts: u32,
    first: bool,
    code: u8,
    end: bool,
    duration: u16,
) -> Vec<u8> {
    let mut p = rtp(pt, seq, &[code, if end { 0x80 | 10 } else { 10 }]);
    p[1] |= if first { 0x80 } else { 0 };
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&duration.to_be_bytes());
    p
}

/// Two seconds of A-law voice (`voice(n)` for packet n) with, after `at` packets, the
/// telephone-event `(payload type, code)` sent as a phone sends it: four updates then
/// three end packets, all stamped with the event's start.
fn stream_with_event(
    voice: impl Fn(usize) -> Vec<u8>,
    event: Option<(u8, u8)>,
    at: usize,
) -> Vec<Vec<u8>> {
    let mut packets: Vec<Vec<u8>> = (0..at).map(|n| rtp(8, n as u16, &voice(n))).collect();
    if let Some((pt, code)) = event {
        let ts = at as u32 * 160;
        for i in 0..7u16 {
            let end = i >= 4;
            let duration = 160 * (i.min(4) + 1);
            packets.push(event_packet(
                pt,
                at as u16 + i,
                ts,
                i == 0,
                code,
                end,
                duration,
            ));
        }
    }
    let next = packets.len();
    packets.extend((next..100).map(|n| rtp(8, n as u16, &voice(n))));
    packets
}

/// Send `packets` from `socket` to `to`, one every 20 ms.
async fn play(socket: &UdpSocket, to: SocketAddr, packets: &[Vec<u8>]) -> Result<()> {
    for p in packets {
        socket.send_to(p, to).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

type Received = Vec<(Vec<u8>, SocketAddr)>;

/// Play `to_vendor` from the caller and `to_caller` from the vendor at once; what the
/// vendor and the caller then received.
async fn exchange(
    call: &MediaCall,
    to_vendor: &[Vec<u8>],
    to_caller: &[Vec<u8>],
) -> Result<(Received, Received)> {
    let (a, b) = tokio::join!(
        play(&call.caller_sdp, call.caller_side, to_vendor),
        play(&call.vendor_sdp, call.vendor_side, to_caller)
    );
    a?;
    b?;
    Ok((
        received(&call.vendor_sdp, Duration::from_millis(300)).await,
        received(&call.caller_sdp, Duration::from_millis(300)).await,
    ))
}

/// The telephone-events among `packets`: (timestamp, code, end) of those with `pt`.
fn events(packets: &[(Vec<u8>, SocketAddr)], pt: u8) -> Vec<(u32, u8, bool)> {
    packets
        .iter()
        .filter(|(p, _)| p.len() >= 16 && p[1] & 0x7f == pt)
        .map(|(p, _)| {
            let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
            (ts, p[12], p[13] & 0x80 != 0)
        })
        .collect()
}

/// The keys (event codes) `packets` carry as telephone-events of type `pt`, one per
/// event however many packets it took; and the event packets of any other type.
fn keys(packets: &[(Vec<u8>, SocketAddr)], pt: u8) -> Vec<u8> {
    let mut keys: Vec<(u32, u8)> = events(packets, pt)
        .iter()
        .map(|(ts, code, _)| (*ts, *code))
        .collect();
    keys.dedup();
    keys.into_iter().map(|(_, code)| code).collect()
}

/// Sequence numbers in `packets` (RTP only) run on without a gap.
fn continuous(packets: &[(Vec<u8>, SocketAddr)]) -> bool {
    let seqs: Vec<u16> = packets
        .iter()
        .filter(|(p, _)| p.len() >= 12)
        .map(|(p, _)| u16::from_be_bytes([p[2], p[3]]))
        .collect();
    seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
}

/// The key SIPp wrote to `file` in `dir` (one line per INFO it got), if any.
fn info_keys(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

fn silence(_: usize) -> Vec<u8> {
    vec![SILENCE; 160]
}

#[tokio::test]
async fn telephone_events_take_each_sides_payload_type_and_arrive_once() -> Result<()> {
    let dir = TempDir::new("dtmf-renumber");
    let (s, vendor) = relaying_server(&dir.0, 43_000).await?;
    carrier(&s, json!({}), &[&vendor]).await?;
    vendor_media(&s, &vendor, json!({ "rfc2833_payload": 96 })).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("8 96", "PCMA")).await?;
    call.is_relayed(&s);
    // The vendor is offered its gateway's type; the caller's answer keeps its own.
    assert_eq!(
        written_line(&dir.0.join("vendor"), "vendor_offer").await?,
        format!("m=audio {} RTP/AVP 8 96", call.vendor_side.port())
    );
    assert_eq!(
        written_line(&dir.0.join("caller"), "caller_answer").await?,
        format!("m=audio {} RTP/AVP 8 101", call.caller_side.port())
    );
    let (to_vendor, to_caller) = (
        stream_with_event(silence, Some((101, 5)), 40),
        stream_with_event(silence, Some((96, 11)), 40),
    );
    let (at_vendor, at_caller) = exchange(&call, &to_vendor, &to_caller).await?;
    // Key 5 reaches the vendor as type 96 (all seven packets, ending three times), key
    // # reaches the caller as type 101; nothing arrives under the other's type.
    assert_eq!(keys(&at_vendor, 96), [5], "{:?}", events(&at_vendor, 96));
    assert_eq!(events(&at_vendor, 96).iter().filter(|e| e.2).count(), 3);
    assert!(events(&at_vendor, 101).is_empty());
    assert_eq!(keys(&at_caller, 101), [11], "{:?}", events(&at_caller, 101));
    assert!(events(&at_caller, 96).is_empty());
    assert!(continuous(&at_vendor) && continuous(&at_caller));
    call.ends_by_rtp_timeout(&s).await?;
    assert_eq!(info_keys(&dir.0.join("vendor"), "vendor_info"), "");
    s.stop().await
}

#[tokio::test]
async fn telephone_events_become_sip_info_both_ways() -> Result<()> {
    let dir = TempDir::new("dtmf-to-info");
    let (s, vendor) = relaying_server(&dir.0, 43_200).await?;
    let info = json!({ "dtmf_send": "info" });
    carrier(&s, json!({ "media": info }), &[&vendor]).await?;
    vendor_media(&s, &vendor, info.clone()).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("8 96", "PCMA")).await?;
    let (to_vendor, to_caller) = (
        stream_with_event(silence, Some((101, 7)), 40),
        stream_with_event(silence, Some((96, 9)), 40),
    );
    let (at_vendor, at_caller) = exchange(&call, &to_vendor, &to_caller).await?;
    // The events stop at the relay; the voice goes on, its numbering unbroken.
    for pt in [96, 101] {
        assert!(events(&at_vendor, pt).is_empty() && events(&at_caller, pt).is_empty());
    }
    assert!(at_vendor.len() >= 85 && at_caller.len() >= 85);
    assert!(continuous(&at_vendor) && continuous(&at_caller));
    // Each SIPp got exactly one INFO (a second would fail its scenario).
    call.ends_by_rtp_timeout(&s).await?;
    assert_eq!(info_keys(&dir.0.join("vendor"), "vendor_info"), "7");
    assert_eq!(info_keys(&dir.0.join("caller"), "caller_info"), "9");
    s.stop().await
}

#[tokio::test]
async fn a_sip_info_becomes_telephone_events_of_the_vendors_type() -> Result<()> {
    let dir = TempDir::new("dtmf-from-info");
    let (s, vendor) = relaying_server(&dir.0, 43_400).await?;
    carrier(&s, json!({}), &[&vendor]).await?;
    vendor_media(
        &s,
        &vendor,
        json!({ "dtmf_send": "rfc2833", "rfc2833_payload": 96 }),
    )
    .await?;
    // The vendor does not offer telephone-events; its gateway says to send them anyway.
    let call = MediaCall::start_with(
        &s,
        &dir.0,
        &vendor,
        "8 101",
        ("8", "PCMA"),
        &Script {
            uac: "uac_media_info.xml",
            uac_keys: &[("digit", "3")],
            ..Script::default()
        },
    )
    .await?;
    play(
        &call.caller_sdp,
        call.caller_side,
        &stream_with_event(silence, None, 0),
    )
    .await?;
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(300)).await;
    assert_eq!(keys(&at_vendor, 96), [3], "{:?}", events(&at_vendor, 96));
    let ends = events(&at_vendor, 96).iter().filter(|e| e.2).count();
    assert_eq!(ends, 3);
    assert!(continuous(&at_vendor), "added packets keep the numbering");
    call.ends_by_rtp_timeout(&s).await?;
    // The INFO ended at the host (answered 200, as the caller's scenario checks).
    assert_eq!(info_keys(&dir.0.join("vendor"), "vendor_info"), "");
    s.stop().await
}

#[tokio::test]
async fn receive_mode_all_locks_a_leg_to_its_first_method() -> Result<()> {
    let dir = TempDir::new("dtmf-lock");
    let (s, vendor) = relaying_server(&dir.0, 43_600).await?;
    carrier(&s, json!({}), &[&vendor]).await?;
    vendor_media(&s, &vendor, json!({ "rfc2833_payload": 96 })).await?;
    // Key 1 by telephone-event at once, then key 2 by INFO a second later.
    let call = MediaCall::start_with(
        &s,
        &dir.0,
        &vendor,
        "8 101",
        ("8 96", "PCMA"),
        &Script {
            uac: "uac_media_info.xml",
            uac_keys: &[("digit", "2")],
            ..Script::default()
        },
    )
    .await?;
    let stream = stream_with_event(silence, Some((101, 1)), 10);
    // The vendor sends nothing, so the call ends by RTP timeout 2 s in; the live view
    // (refreshed each second) shows the method each leg is locked to before that.
    play(&call.caller_sdp, call.caller_side, &stream[..60]).await?;
    let (_, live) = s.admin("GET", "/api/v1/live-calls", None).await?;
    let c = &live["calls"][0];
    assert_eq!(
        (&c["caller_dtmf"], &c["callee_dtmf"]),
        (&json!("rfc2833"), &Value::Null),
        "{live}"
    );
    play(&call.caller_sdp, call.caller_side, &stream[60..]).await?;
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(300)).await;
    assert_eq!(keys(&at_vendor, 96), [1], "{:?}", events(&at_vendor, 96));
    call.ends_by_rtp_timeout(&s).await?;
    assert_eq!(info_keys(&dir.0.join("vendor"), "vendor_info"), "");
    s.stop().await
}

/// How many A-law packets among `packets` carry both tones of a key.
fn toned_packets(packets: &[(Vec<u8>, SocketAddr)], low: f64, high: f64) -> usize {
    packets
        .iter()
        .filter(|(p, _)| p[1] & 0x7f == 8)
        .filter(|(p, _)| {
            let pcm: Vec<i16> = p[12..].iter().map(|&b| alaw_decode(b)).collect();
            tone_share(&pcm, low) > 0.3 && tone_share(&pcm, high) > 0.3
        })
        .count()
}

/// 20 ms of A-law: `key`'s two tones from packet 20 to 24 (100 ms), silence otherwise.
fn keyed_voice(low: f64, high: f64) -> impl Fn(usize) -> Vec<u8> {
    move |n| {
        if !(20..25).contains(&n) {
            return silence(n);
        }
        (0..160)
            .map(|i| {
                let t = (n * 160 + i) as f64 / 8000.0;
                let tau = 2.0 * std::f64::consts::PI;
                alaw_encode((5000.0 * ((tau * low * t).sin() + (tau * high * t).sin())) as i16)
            })
            .collect()
    }
}

#[tokio::test]
async fn telephone_events_become_tones_and_tones_become_telephone_events() -> Result<()> {
    let dir = TempDir::new("dtmf-inband");
    let (s, vendor) = relaying_server(&dir.0, 43_800).await?;
    carrier(&s, json!({}), &[&vendor]).await?;
    vendor_media(&s, &vendor, json!({ "dtmf_send": "inband" })).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("8", "PCMA")).await?;
    // The caller presses 9 by telephone-event; the vendor's audio carries key 3
    // (697 and 1477 Hz).
    let (to_vendor, to_caller) = (
        stream_with_event(silence, Some((101, 9)), 40),
        stream_with_event(keyed_voice(697.0, 1477.0), None, 0),
    );
    let (at_vendor, at_caller) = exchange(&call, &to_vendor, &to_caller).await?;

    // The vendor hears key 9 (852 and 1477 Hz) in its audio, and gets no events.
    assert!(events(&at_vendor, 101).is_empty());
    let toned = toned_packets(&at_vendor, 852.0, 1477.0);
    assert!(
        (4..=6).contains(&toned),
        "{toned} packets carry key 9's tones"
    );

    // The caller gets key 3 once as a telephone-event of its type, and the tone itself
    // stays in the audio.
    assert_eq!(keys(&at_caller, 101), [3], "{:?}", events(&at_caller, 101));
    let voice = at_caller.iter().filter(|(p, _)| p[1] & 0x7f == 8).count();
    assert!(voice >= 85, "{voice} voice packets");
    assert!(continuous(&at_caller));
    call.ends_by_rtp_timeout(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn the_callers_side_gets_tones_and_its_tones_become_the_vendors_events() -> Result<()> {
    let dir = TempDir::new("dtmf-inband-caller");
    let (s, vendor) = relaying_server(&dir.0, 44_000).await?;
    let inband = json!({ "media": { "dtmf_send": "inband" } });
    carrier(&s, inband, &[&vendor]).await?;
    vendor_media(&s, &vendor, json!({ "rfc2833_payload": 96 })).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("8 96", "PCMA")).await?;
    // The vendor presses 9 by telephone-event; the caller's audio carries key 3.
    let (to_vendor, to_caller) = (
        stream_with_event(keyed_voice(697.0, 1477.0), None, 0),
        stream_with_event(silence, Some((96, 9)), 40),
    );
    let (at_vendor, at_caller) = exchange(&call, &to_vendor, &to_caller).await?;

    // The caller's gateway wants tones: key 9 (852 and 1477 Hz) in its audio, no events.
    assert!(events(&at_caller, 96).is_empty() && events(&at_caller, 101).is_empty());
    let toned = toned_packets(&at_caller, 852.0, 1477.0);
    assert!(
        (4..=6).contains(&toned),
        "{toned} packets carry key 9's tones"
    );
    // The vendor, which answered telephone-events, gets key 3 once as its type 96.
    assert_eq!(keys(&at_vendor, 96), [3], "{:?}", events(&at_vendor, 96));
    assert!(continuous(&at_vendor) && continuous(&at_caller));
    call.ends_by_rtp_timeout(&s).await?;
    assert_eq!(info_keys(&dir.0.join("vendor"), "vendor_info"), "");
    s.stop().await
}

#[tokio::test]
async fn sip_infos_become_the_callers_events_and_the_vendors_tones() -> Result<()> {
    let dir = TempDir::new("dtmf-info-both");
    let (s, vendor) = relaying_server(&dir.0, 44_200).await?;
    let rfc2833 = json!({ "media": { "dtmf_send": "rfc2833" } });
    carrier(&s, rfc2833, &[&vendor]).await?;
    vendor_media(&s, &vendor, json!({ "dtmf_send": "inband" })).await?;
    // Each side sends one INFO a second into the call: the caller key 4, the vendor 6.
    let call = MediaCall::start_with(
        &s,
        &dir.0,
        &vendor,
        "8 101",
        ("8", "PCMA"),
        &Script {
            uac: "uac_media_info.xml",
            uac_keys: &[("digit", "4")],
            uas: "uas_media_info.xml",
            uas_keys: &[("digit", "6")],
            ..Script::default()
        },
    )
    .await?;
    let voice = stream_with_event(silence, None, 0);
    let (at_vendor, at_caller) = exchange(&call, &voice, &voice).await?;

    // Key 6 reaches the caller once as telephone-events of its own type 101.
    assert_eq!(keys(&at_caller, 101), [6], "{:?}", events(&at_caller, 101));
    assert!(continuous(&at_caller), "added packets keep the numbering");
    // Key 4 reaches the vendor as its two tones (770 and 1209 Hz), not as an event.
    assert!(events(&at_vendor, 101).is_empty() && events(&at_vendor, 96).is_empty());
    let toned = toned_packets(&at_vendor, 770.0, 1209.0);
    assert!(
        (4..=8).contains(&toned),
        "{toned} packets carry key 4's tones"
    );
    call.ends_by_rtp_timeout(&s).await?;
    // Both INFOs ended at the host, each answered 200 (as both scenarios check).
    assert_eq!(info_keys(&dir.0.join("vendor"), "vendor_info"), "");
    assert_eq!(info_keys(&dir.0.join("caller"), "caller_info"), "");
    s.stop().await
}
