//! The RTP relay with SIPp for signalling and the test's own UDP sockets for media:
//! packets cross the host both ways, the caller's media is latched to where it really
//! comes from, SDP the host does not understand passes through, PCMA and G.729 are
//! converted with the audio checked, and a relayed call whose media stops ends with
//! reason `rtp_timeout`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use switchyard::media::codec::{alaw_decode, alaw_encode, tone_share as share_at};
use switchyard::media::MediaConfig;
use switchyard_model::MediaProxy;
use switchyard_tests::sip::{carrier, scenario, wait_for_records, Sipp, Vendor};
use switchyard_tests::{TempDir, TestServer, ADMIN};
use tokio::net::UdpSocket;

/// The port a SIPp scenario wrote to `file` in `dir`, once it has.
pub(crate) async fn written_port(dir: &Path, file: &str) -> Result<u16> {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            if let Ok(port) = text.trim().parse() {
                return Ok(port);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("SIPp never wrote {file}")
}

/// Packets `socket` receives within `wait` of each other, with their sources.
pub(crate) async fn received(socket: &UdpSocket, wait: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(Ok((n, from))) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        got.push((buf[..n].to_vec(), from));
    }
    got
}

/// A server relaying every call's media on 100 ports from `ports` (tests running at
/// once need ranges of their own), with a 2 s RTP timeout, and one vendor.
pub(crate) async fn relaying_server(dir: &Path, ports: u16) -> Result<(TestServer, Vendor)> {
    media_server(dir, ports, MediaProxy::On).await
}

/// A server whose media proxy mode is `mode`, otherwise as [`relaying_server`].
async fn media_server(dir: &Path, ports: u16, mode: MediaProxy) -> Result<(TestServer, Vendor)> {
    let s = TestServer::start_configured(dir, |c| {
        c.sip.media = MediaConfig {
            proxy_mode: mode,
            port_start: ports,
            port_end: ports + 100,
            rtp_timeout_secs: 2,
        }
    })
    .await?;
    Ok((s, Vendor::new("vendor-a")))
}

/// What the parties of a [`MediaCall`] run: each side's scenario and its extra
/// `-key`s, and the ptime and telephone-event type of the vendor's answer.
pub(crate) struct Script<'a> {
    pub(crate) uac: &'a str,
    pub(crate) uac_keys: &'a [(&'a str, &'a str)],
    pub(crate) uas: &'a str,
    pub(crate) uas_keys: &'a [(&'a str, &'a str)],
    pub(crate) vendor_ptime_ms: u32,
    pub(crate) vendor_event_pt: &'a str,
    /// The address the vendor's SDP names (its NAT when not where it signals from).
    pub(crate) vendor_media_ip: &'a str,
}

impl Default for Script<'_> {
    fn default() -> Self {
        Script {
            uac: "uac_media.xml",
            uac_keys: &[],
            uas: "uas_media.xml",
            uas_keys: &[],
            vendor_ptime_ms: 20,
            vendor_event_pt: "96",
            vendor_media_ip: "127.0.0.1",
        }
    }
}

/// One call whose media ends at the test's sockets: the caller's SDP names
/// `caller_sdp`, the vendor answers `vendor_codec` at `vendor_sdp`.
pub(crate) struct MediaCall {
    pub(crate) uac: Sipp,
    pub(crate) uas: Sipp,
    pub(crate) caller_sdp: UdpSocket,
    pub(crate) vendor_sdp: UdpSocket,
    /// The host's relay address facing the caller, and facing the vendor.
    pub(crate) caller_side: SocketAddr,
    pub(crate) vendor_side: SocketAddr,
}

impl MediaCall {
    pub(crate) async fn start(
        s: &TestServer,
        dir: &Path,
        vendor: &Vendor,
        caller_formats: &str,
        vendor_codec: (&str, &str),
    ) -> Result<MediaCall> {
        let script = Script::default();
        Self::start_with(s, dir, vendor, caller_formats, vendor_codec, &script).await
    }

    /// [`MediaCall::start`] with the parties' `script`. The vendor maps the script's
    /// telephone-event type (96 by default) to telephone-event, offered when its
    /// formats list it.
    pub(crate) async fn start_with(
        s: &TestServer,
        dir: &Path,
        vendor: &Vendor,
        caller_formats: &str,
        vendor_codec: (&str, &str),
        script: &Script<'_>,
    ) -> Result<MediaCall> {
        let caller_sdp = UdpSocket::bind("127.0.0.1:0").await?;
        let vendor_sdp = UdpSocket::bind("127.0.0.1:0").await?;
        let port = |s: &UdpSocket| s.local_addr().map(|a| a.port().to_string());
        let (caller_rtp, vendor_rtp) = (port(&caller_sdp)?, port(&vendor_sdp)?);
        let vendor_dir = dir.join("vendor");
        let vendor_port = vendor.port.to_string();
        let uas_path = scenario(script.uas).to_string_lossy().into_owned();
        let (vendor_codec_pt, vendor_ptime) = (
            vendor_codec.0.split(' ').next().unwrap_or_default(),
            script.vendor_ptime_ms.to_string(),
        );
        let mut args = vec![
            "-i",
            "127.0.0.1",
            "-p",
            &vendor_port,
            "-m",
            "1",
            "-sf",
            &uas_path,
            "-key",
            "vendor_rtp",
            &vendor_rtp,
            "-key",
            "vendor_pt",
            vendor_codec.0,
            "-key",
            "vendor_codec",
            vendor_codec.1,
            "-key",
            "vendor_codec_pt",
            vendor_codec_pt,
            "-key",
            "vendor_event_pt",
            script.vendor_event_pt,
            "-key",
            "vendor_ptime",
            &vendor_ptime,
            "-mi",
            script.vendor_media_ip,
        ];
        for (key, value) in script.uas_keys {
            args.extend(["-key", key, value]);
        }
        let uas = Sipp::spawn_in(&vendor_dir, &args)?;
        let caller_dir = dir.join("caller");
        let target = s.server.sip.addr.to_string();
        let uac_path = scenario(script.uac).to_string_lossy().into_owned();
        let mut args = vec![
            target.as_str(),
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-sf",
            &uac_path,
            "-key",
            "caller_rtp",
            &caller_rtp,
            "-key",
            "caller_formats",
            caller_formats,
        ];
        for (key, value) in script.uac_keys {
            args.extend(["-key", key, value]);
        }
        let uac = Sipp::spawn_in(&caller_dir, &args)?;
        let caller_side = written_port(&caller_dir, "caller_side_port")
            .await
            .context("the answer's audio port")?;
        let vendor_side = written_port(&vendor_dir, "vendor_side_port")
            .await
            .context("the offer's audio port")?;
        Ok(MediaCall {
            uac,
            uas,
            caller_sdp,
            vendor_sdp,
            caller_side: format!("127.0.0.1:{caller_side}").parse()?,
            vendor_side: format!("127.0.0.1:{vendor_side}").parse()?,
        })
    }

    /// Both SDPs name the host's relay, on two ports of its range.
    pub(crate) fn is_relayed(&self, s: &TestServer) {
        let range = s.server.sip.core.media_ports();
        for p in [self.caller_side.port(), self.vendor_side.port()] {
            assert!(range.contains(&p), "relay port {p} outside {range:?}");
        }
        assert_ne!(self.caller_side, self.vendor_side);
    }

    /// Silence: within 2 s the host hangs up both sides; the call's record.
    pub(crate) async fn ends_by_rtp_timeout(self, s: &TestServer) -> Result<Value> {
        self.uac.succeeds().await?;
        self.uas.succeeds().await?;
        let r = wait_for_records(s, 1).await?[0].clone();
        assert_eq!(r["reason"], "rtp_timeout", "{r}");
        // The call's relay ports go back to the pool as the call ends.
        let mut free = None;
        for _ in 0..40 {
            let (_, stats) = s.admin("GET", "/api/v1/sip/stats", None).await?;
            free = stats["sip"]["media_ports_free"].as_u64();
            if free == Some(50) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(free, Some(50), "relay ports returned");
        Ok(r)
    }
}

/// The carrier with `media` settings on both gateways, the caller's pinning
/// `customer` and the vendor's `vendor`.
async fn pin_codecs(
    s: &TestServer,
    vendor: &Vendor,
    media: &Value,
    customer: &str,
    vendor_codec: &str,
) -> Result<()> {
    let with = |codec: &str| {
        let mut m = media.clone();
        m["codec"] = json!(codec);
        m
    };
    carrier(s, json!({ "media": with(customer) }), &[vendor]).await?;
    let gateway =
        json!({ "address": format!("127.0.0.1:{}", vendor.port), "media": with(vendor_codec) });
    let (status, body) = s
        .admin("PUT", "/api/v1/routing-gateways/vendor-a", Some(gateway))
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(())
}

/// A relaying server (see [`relaying_server`]) whose caller's gateway pins PCMA and
/// vendor's G.729, both allowing conversion, both with G.729 negotiation `g729_mode`.
async fn transcoding_server(
    dir: &Path,
    ports: u16,
    g729_mode: &str,
) -> Result<(TestServer, Vendor)> {
    let (s, vendor) = relaying_server(dir, ports).await?;
    let media = json!({ "codec_mode": "specified", "allow_conversion": true, "g729": g729_mode });
    pin_codecs(&s, &vendor, &media, "PCMA", "G729").await?;
    Ok((s, vendor))
}

/// An RTP packet: version 2, `pt`, sequence `seq`, 20 ms of 8 kHz audio per step.
pub(crate) fn rtp(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x5157_4954u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// 20 ms of a `hz` tone starting at packet `n`.
fn tone(hz: f64, n: usize) -> [i16; 160] {
    std::array::from_fn(|i| {
        let t = (n * 160 + i) as f64 / 8000.0;
        (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
    })
}

/// Packet `n`'s 20 ms of a `hz` tone as G.729 (two frames).
fn g729_tone(encoder: &mut bcg729::Encoder, hz: f64, n: usize) -> Vec<u8> {
    let mut g729 = Vec::new();
    for half in tone(hz, n).chunks_exact(bcg729::FRAME_SAMPLES) {
        let mut bits = [0u8; bcg729::FRAME_BYTES];
        let half: &[i16; bcg729::FRAME_SAMPLES] = half.try_into().expect("a whole frame");
        let len = encoder.encode(half, &mut bits);
        g729.extend_from_slice(&bits[..len]);
    }
    g729
}

/// One second each way: a 1 kHz tone as PCMA from the caller, 440 Hz as G.729 (type
/// `vendor_pt`) from the vendor.
async fn tones_both_ways(call: &MediaCall, vendor_pt: u8) -> Result<()> {
    let mut encoder = bcg729::Encoder::new(false);
    for n in 0..50usize {
        let pcma: Vec<u8> = tone(1000.0, n).iter().map(|&s| alaw_encode(s)).collect();
        call.caller_sdp
            .send_to(&rtp(8, n as u16, &pcma), call.caller_side)
            .await?;
        let g729 = g729_tone(&mut encoder, 440.0, n);
        call.vendor_sdp
            .send_to(&rtp(vendor_pt, n as u16, &g729), call.vendor_side)
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn relayed_media_crosses_both_ways_latches_and_times_out() -> Result<()> {
    let dir = TempDir::new("media-relay");
    let (s, vendor) = relaying_server(&dir.0, 42_000).await?;
    carrier(&s, json!({}), &[&vendor]).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("8", "PCMA")).await?;
    call.is_relayed(&s);
    // The caller sends from another port than its SDP named (its NAT).
    let caller_nat = UdpSocket::bind("127.0.0.1:0").await?;
    for i in 0..50u8 {
        caller_nat.send_to(&[b'a', i], call.caller_side).await?;
        call.vendor_sdp
            .send_to(&[b'b', i], call.vendor_side)
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(300)).await;
    let at_caller = received(&caller_nat, Duration::from_millis(300)).await;
    // Both directions arrive, from the relay's side facing each party; the caller's
    // media goes where it came from, not to the port its SDP named.
    assert!(
        at_vendor.len() >= 45,
        "{} of 50 reached the vendor",
        at_vendor.len()
    );
    assert!(at_vendor
        .iter()
        .all(|(p, from)| p[0] == b'a' && *from == call.vendor_side));
    assert!(
        at_caller.len() >= 40,
        "{} of 50 reached the caller",
        at_caller.len()
    );
    assert!(at_caller
        .iter()
        .all(|(p, from)| p[0] == b'b' && *from == call.caller_side));
    assert!(
        received(&call.caller_sdp, Duration::from_millis(50))
            .await
            .len()
            <= 10
    );
    call.ends_by_rtp_timeout(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn the_live_view_counts_each_legs_rtp_loss_and_jitter() -> Result<()> {
    let dir = TempDir::new("media-rtp-stats");
    let (s, vendor) = relaying_server(&dir.0, 45_000).await?;
    carrier(&s, json!({}), &[&vendor]).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("8", "PCMA")).await?;
    let stranger = UdpSocket::bind("127.0.0.1:0").await?;
    // The caller sends 50 numbers, 5 of them never (lost on the way), each packet's
    // arrival alternately 5 and 35 ms after the last while its timestamp says 20: a
    // jittery line. The vendor sends 30 evenly. A stranger sends 3 to the caller's
    // port once the caller is latched.
    let lost = [7u16, 8, 20, 33, 41];
    for seq in 0..50u16 {
        if !lost.contains(&seq) {
            call.caller_sdp
                .send_to(&rtp(8, seq, &[0xd5; 160]), call.caller_side)
                .await?;
        }
        if seq < 30 {
            call.vendor_sdp
                .send_to(&rtp(8, 1000 + seq, &[0xd5; 160]), call.vendor_side)
                .await?;
        }
        if (10..13).contains(&seq) {
            stranger
                .send_to(&rtp(8, seq, &[0; 160]), call.caller_side)
                .await?;
        }
        let gap = if seq % 2 == 0 { 5 } else { 35 };
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
    // Every packet relayed has arrived once the far sockets have them all.
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(300)).await;
    let at_caller = received(&call.caller_sdp, Duration::from_millis(300)).await;
    assert_eq!((at_vendor.len(), at_caller.len()), (45, 30));
    let (_, live) = s.admin("GET", "/api/v1/live-calls", None).await?;
    let rtp_of = &live["calls"][0]["rtp"];
    let (caller, callee) = (&rtp_of["caller"], &rtp_of["callee"]);
    assert_eq!(
        [
            &caller["received"],
            &caller["lost"],
            &caller["loss_percent"],
            &caller["dropped"],
            &caller["sent"]
        ],
        [&json!(45), &json!(5), &json!(10.0), &json!(3), &json!(30)],
        "{live}"
    );
    assert_eq!(
        [&callee["received"], &callee["lost"], &callee["sent"]],
        [&json!(30), &json!(0), &json!(45)],
        "{live}"
    );
    // Arrivals 30 ms off each other against timestamps 20 ms apart: RFC 3550's
    // estimate climbs towards 15 ms; the vendor's even line stays well under it.
    let jitter = |leg: &Value| leg["jitter_ms"].as_f64().unwrap_or(-1.0);
    assert!(jitter(caller) > 5.0, "{live}");
    assert!(jitter(callee) < jitter(caller), "{live}");

    // The host's totals reach Prometheus.
    let (_, body) = s.call("GET", "/metrics", ADMIN, None).await?;
    let text = body.as_str().context("text")?;
    let sample = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(
        sample("switchyard_rtp_packets_total{direction=\"received\"}"),
        75.0
    );
    assert_eq!(
        sample("switchyard_rtp_packets_total{direction=\"sent\"}"),
        75.0
    );
    assert_eq!(
        sample("switchyard_rtp_dropped_packets_total{reason=\"stranger\"}"),
        3.0
    );
    assert_eq!(sample("switchyard_transcoder_directions_active"), 0.0);
    let numbers_out = [
        &live["calls"][0]["caller_out"],
        &live["calls"][0]["callee_out"],
    ];
    let r = call.ends_by_rtp_timeout(&s).await?;
    // The live view shows the numbers as the vendor got them, as the record does.
    assert_eq!(numbers_out, [&r["caller_out"], &r["callee_out"]], "{r}");
    assert!(r["callee_out"].is_string(), "{r}");
    s.stop().await
}

#[tokio::test]
async fn a_stranger_cannot_take_over_a_latched_stream_but_a_rebinding_can() -> Result<()> {
    let dir = TempDir::new("media-latch");
    let (s, vendor) = relaying_server(&dir.0, 44_600).await?;
    carrier(&s, json!({}), &[&vendor]).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("8", "PCMA")).await?;
    let (nat, stranger, rebound) = (
        UdpSocket::bind("127.0.0.1:0").await?,
        UdpSocket::bind("127.0.0.1:0").await?,
        UdpSocket::bind("127.0.0.1:0").await?,
    );
    // The caller talks from its NAT address while a stranger sends to the same relay
    // port; the vendor talks all along.
    for i in 0..25u8 {
        nat.send_to(&[b'a', i], call.caller_side).await?;
        stranger.send_to(&[b'x', i], call.caller_side).await?;
        call.vendor_sdp
            .send_to(&[b'b', i], call.vendor_side)
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(200)).await;
    assert!(
        at_vendor.len() >= 20,
        "{} reached the vendor",
        at_vendor.len()
    );
    assert!(
        at_vendor.iter().all(|(p, _)| p[0] == b'a'),
        "a stranger's packet got through"
    );
    assert!(received(&stranger, Duration::from_millis(50))
        .await
        .is_empty());
    assert!(received(&nat, Duration::from_millis(50)).await.len() >= 20);
    // The NAT rebinds: the old address falls silent, the new one takes over once the
    // old has been quiet long enough.
    for i in 25..60u8 {
        if i >= 50 {
            rebound.send_to(&[b'c', i], call.caller_side).await?;
        }
        call.vendor_sdp
            .send_to(&[b'b', i], call.vendor_side)
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(200)).await;
    assert!(at_vendor.len() >= 8 && at_vendor.iter().all(|(p, _)| p[0] == b'c'));
    assert!(received(&rebound, Duration::from_millis(50)).await.len() >= 8);
    call.ends_by_rtp_timeout(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn auto_mode_moves_a_vendor_behind_nat_to_the_relay_by_re_invite() -> Result<()> {
    let dir = TempDir::new("media-vendor-nat");
    let (s, vendor) = media_server(&dir.0, 44_400, MediaProxy::Auto).await?;
    carrier(&s, json!({}), &[&vendor]).await?;
    // The vendor signals from 127.0.0.1 but its SDP names 127.0.0.2; it sends its RTP
    // from 127.0.0.1, as a phone behind NAT would from its public address.
    let script = Script {
        uas: "uas_media_nat.xml",
        vendor_media_ip: "127.0.0.2",
        ..Script::default()
    };
    let call = MediaCall::start_with(&s, &dir.0, &vendor, "8 101", ("8", "PCMA"), &script).await?;
    // The first offer went direct (the caller's own port); the re-INVITE moved the
    // vendor to the relay, one origin version on, and the caller's answer names it.
    let vendor_dir = dir.0.join("vendor");
    assert_eq!(
        written_port(&vendor_dir, "vendor_first_port").await?,
        call.caller_sdp.local_addr()?.port()
    );
    call.is_relayed(&s);
    assert!(
        written_line(&vendor_dir, "vendor_reoffer_origin")
            .await?
            .starts_with("o=user1 53655765 2353687638 "),
        "{}",
        written_line(&vendor_dir, "vendor_reoffer_origin").await?
    );
    for i in 0..50u8 {
        call.caller_sdp
            .send_to(&rtp(8, i.into(), &[b'a', i]), call.caller_side)
            .await?;
        call.vendor_sdp
            .send_to(&rtp(8, i.into(), &[b'b', i]), call.vendor_side)
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both ways cross the relay: the vendor's media reaches the caller from the relay,
    // and the caller's reaches the vendor where it really sends from, not 127.0.0.2.
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(300)).await;
    let at_caller = received(&call.caller_sdp, Duration::from_millis(300)).await;
    assert!(
        at_vendor.len() >= 40,
        "{} of 50 reached the vendor",
        at_vendor.len()
    );
    assert!(at_vendor
        .iter()
        .all(|(p, from)| p[12] == b'a' && *from == call.vendor_side));
    assert!(
        at_caller.len() >= 45,
        "{} of 50 reached the caller",
        at_caller.len()
    );
    assert!(at_caller
        .iter()
        .all(|(p, from)| p[12] == b'b' && *from == call.caller_side));
    call.ends_by_rtp_timeout(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn a_pcma_caller_and_a_g729_vendor_hear_each_other_through_the_transcoder() -> Result<()> {
    let dir = TempDir::new("media-transcode");
    let (s, vendor) = transcoding_server(&dir.0, 42_200, "auto").await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("18", "G729")).await?;
    call.is_relayed(&s);

    tones_both_ways(&call, 18).await?;
    // The live view shows the answered call with both legs' codecs.
    let (_, live) = s.admin("GET", "/api/v1/live-calls", None).await?;
    let c = &live["calls"][0];
    assert_eq!(
        (
            &c["codec_in"],
            &c["codec_out"],
            &c["transcoded"],
            &c["egress_gateway"]
        ),
        (
            &json!("PCMA"),
            &json!("G729"),
            &json!(true),
            &json!("vendor-a")
        ),
        "{live}"
    );
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(300)).await;
    let at_caller = received(&call.caller_sdp, Duration::from_millis(300)).await;
    assert!(
        at_vendor.len() >= 45,
        "{} of 50 reached the vendor",
        at_vendor.len()
    );
    assert!(
        at_caller.len() >= 45,
        "{} of 50 reached the caller",
        at_caller.len()
    );

    vendor_hears_the_callers_tone_as_g729(&at_vendor);

    // The caller gets PCMA (payload type 8, 160 bytes) carrying the vendor's tone.
    let mut heard = Vec::new();
    for (packet, _) in &at_caller {
        assert_eq!(
            (packet[1] & 0x7f, packet.len() - 12),
            (8, 160),
            "{packet:?}"
        );
        heard.extend(packet[12..].iter().map(|&b| alaw_decode(b)));
    }
    let steady = &heard[1600..];
    assert!(
        share_at(steady, 440.0) > 0.7,
        "440 Hz share {}",
        share_at(steady, 440.0)
    );
    assert!(share_at(steady, 1000.0) < 0.05);

    let r = call.ends_by_rtp_timeout(&s).await?;
    let (_, live) = s.admin("GET", "/api/v1/live-calls", None).await?;
    assert_eq!(live["calls"], json!([]), "ended calls leave the live view");
    assert_eq!(
        (&r["codec_in"], &r["codec_out"]),
        (&json!("PCMA"), &json!("G729")),
        "{r}"
    );
    s.stop().await
}

#[tokio::test]
async fn with_the_proxy_off_sdp_passes_end_to_end() -> Result<()> {
    let dir = TempDir::new("media-direct");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.media.proxy_mode = MediaProxy::Off;
        // Nothing relays, so nothing times out: the call is ended at 2 s.
        c.sip.no_timer_max_duration_secs = 2;
    })
    .await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("8", "PCMA")).await?;
    // Each side is told the other's own address (the vendor also checked the
    // caller's unknown attribute arrived).
    assert_eq!(call.vendor_side, call.caller_sdp.local_addr()?);
    assert_eq!(call.caller_side, call.vendor_sdp.local_addr()?);
    call.uac.succeeds().await?;
    call.uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["reason"], "max_duration", "{r}");
    let (_, stats) = s.admin("GET", "/api/v1/sip/stats", None).await?;
    assert_eq!(
        stats["sip"]["media_ports_free"], 5000,
        "no relay ports taken"
    );
    s.stop().await
}

#[tokio::test]
async fn a_caller_without_its_gateways_pinned_codec_gets_488_and_no_vendor_invite() -> Result<()> {
    let dir = TempDir::new("media-488");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    let pinned = json!({ "media": { "codec_mode": "specified", "codec": "G729" } });
    carrier(&s, pinned, &[&vendor]).await?;
    let invite = pcma_only_invite("pcma-only");
    // The vendor's port stays quiet: nothing is sent to it.
    let vendor_socket = UdpSocket::bind(format!("127.0.0.1:{}", vendor.port)).await?;
    let answer = switchyard_tests::sip::raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &invite,
        Duration::from_secs(2),
    )
    .await?
    .unwrap_or_default();
    assert!(answer.starts_with("SIP/2.0 488"), "{answer}");
    assert!(answer.contains("did not offer G729"), "{answer}");
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(
        (&r["reason"], &r["attempts"]),
        (&json!("codec_not_offered"), &json!([])),
        "{r}"
    );
    assert!(received(&vendor_socket, Duration::from_millis(200))
        .await
        .is_empty());
    s.stop().await
}

/// The vendor got G.729 (payload type 18, 20 bytes per 20 ms) carrying the caller's
/// 1 kHz tone and none of its own 440 Hz.
fn vendor_hears_the_callers_tone_as_g729(at_vendor: &[(Vec<u8>, SocketAddr)]) {
    let mut decoder = bcg729::Decoder::new();
    let mut heard = Vec::new();
    for (packet, _) in at_vendor {
        assert_eq!(
            (packet[1] & 0x7f, packet.len() - 12),
            (18, 20),
            "{packet:?}"
        );
        for frame in packet[12..].chunks(bcg729::FRAME_BYTES) {
            let mut out = [0i16; bcg729::FRAME_SAMPLES];
            decoder.decode(Some(frame), &mut out);
            heard.extend_from_slice(&out);
        }
    }
    let steady = &heard[1600..];
    assert!(
        share_at(steady, 1000.0) > 0.7,
        "1 kHz share {}",
        share_at(steady, 1000.0)
    );
    assert!(share_at(steady, 440.0) < 0.05);
}

/// The carrier of [`carrier`] (the caller's gateway on `auto`) whose vendor gateway
/// pins G.729, allowing conversion or not.
async fn vendor_pins_g729(s: &TestServer, vendor: &Vendor, allow_conversion: bool) -> Result<()> {
    carrier(s, json!({}), &[vendor]).await?;
    let gateway = json!({
        "address": format!("127.0.0.1:{}", vendor.port),
        "media": { "codec_mode": "specified", "codec": "G729", "allow_conversion": allow_conversion }
    });
    let (status, body) = s
        .admin("PUT", "/api/v1/routing-gateways/vendor-a", Some(gateway))
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(())
}

#[tokio::test]
async fn a_vendor_pinned_to_g729_alone_is_offered_g729_and_hears_the_pcma_caller() -> Result<()> {
    let dir = TempDir::new("media-vendor-pin");
    let (s, vendor) = media_server(&dir.0, 44_800, MediaProxy::Auto).await?;
    vendor_pins_g729(&s, &vendor, true).await?;
    let call = MediaCall::start(&s, &dir.0, &vendor, "8 101", ("18", "G729")).await?;
    // Auto mode relays only because the call is transcoded.
    call.is_relayed(&s);
    let offer = written_line(&dir.0.join("vendor"), "vendor_offer").await?;
    let formats: Vec<&str> = offer.split(' ').skip(3).collect();
    assert_eq!(formats.first(), Some(&"18"), "{offer}");
    assert!(
        !formats.contains(&"8"),
        "the vendor is not offered PCMA: {offer}"
    );
    tones_both_ways(&call, 18).await?;
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(300)).await;
    assert!(
        at_vendor.len() >= 45,
        "{} of 50 reached the vendor",
        at_vendor.len()
    );
    vendor_hears_the_callers_tone_as_g729(&at_vendor);
    let at_caller = received(&call.caller_sdp, Duration::from_millis(300)).await;
    assert!(
        at_caller.len() >= 45,
        "{} of 50 reached the caller",
        at_caller.len()
    );
    assert!(
        at_caller.iter().all(|(p, _)| p[1] & 0x7f == 8),
        "the caller gets PCMA"
    );
    call.ends_by_rtp_timeout(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn a_vendor_pinned_to_g729_without_conversion_refuses_a_pcma_caller_with_488() -> Result<()> {
    let dir = TempDir::new("media-vendor-pin-488");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    vendor_pins_g729(&s, &vendor, false).await?;
    let invite = pcma_only_invite("pcma-to-g729");
    let vendor_socket = UdpSocket::bind(format!("127.0.0.1:{}", vendor.port)).await?;
    let answer = switchyard_tests::sip::raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &invite,
        Duration::from_secs(2),
    )
    .await?
    .unwrap_or_default();
    assert!(answer.starts_with("SIP/2.0 488"), "{answer}");
    assert!(
        answer.contains("requires G729"),
        "the Warning says why: {answer}"
    );
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["reason"], "codec_not_offered", "{r}");
    assert_eq!(r["attempts"][0]["gateway"], "vendor-a", "{r}");
    assert!(
        r["attempts"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("requires G729"),
        "{r}"
    );
    assert!(
        received(&vendor_socket, Duration::from_millis(200))
            .await
            .is_empty(),
        "no INVITE reaches the vendor"
    );
    s.stop().await
}

/// A raw INVITE (see `raw_invite`) offering PCMA only.
fn pcma_only_invite(call_id: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    switchyard_tests::sip::raw_invite(call_id, "442071234567").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    )
}

/// The `m=` line a SIPp scenario wrote to `file` in `dir`.
pub(crate) async fn written_line(dir: &Path, file: &str) -> Result<String> {
    // SIPp writes these from an `exec` action, which may finish after the message
    // the test awaited: wait for the line rather than read too early.
    let path = dir.join(file);
    switchyard_tests::eventually(
        Duration::from_secs(5),
        &format!("SIPp writing {file}"),
        || async {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            Ok((!text.trim().is_empty()).then(|| text.trim().to_string()))
        },
    )
    .await
}

#[tokio::test]
async fn each_side_is_offered_only_the_codec_its_gateway_pins() -> Result<()> {
    let dir = TempDir::new("media-pinned");
    let s = TestServer::start_configured(&dir.0, |c| c.sip.no_timer_max_duration_secs = 2).await?;
    let vendor = Vendor::new("vendor-a");
    let pinned = json!({ "codec_mode": "specified" });
    pin_codecs(&s, &vendor, &pinned, "PCMA", "PCMA").await?;
    // The caller offers PCMU, PCMA and G.729; the vendor answers PCMA and PCMU.
    let call = MediaCall::start(&s, &dir.0, &vendor, "0 8 18 101", ("8 0", "PCMA")).await?;
    call.uac.succeeds().await?;
    call.uas.succeeds().await?;
    let port = call.caller_sdp.local_addr()?.port();
    assert_eq!(
        written_line(&dir.0.join("vendor"), "vendor_offer").await?,
        format!("m=audio {port} RTP/AVP 8 101")
    );
    let port = call.vendor_sdp.local_addr()?.port();
    assert_eq!(
        written_line(&dir.0.join("caller"), "caller_answer").await?,
        format!("m=audio {port} RTP/AVP 8")
    );
    s.stop().await
}

/// The (sequence number, timestamp, payload length) of each received RTP packet.
fn shapes(packets: &[(Vec<u8>, SocketAddr)]) -> Vec<(u16, u32, usize)> {
    packets
        .iter()
        .map(|(p, _)| {
            let seq = u16::from_be_bytes([p[2], p[3]]);
            (
                seq,
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                p.len() - 12,
            )
        })
        .collect()
}

/// `packets` are `count` in number, each with `bytes` of payload, numbered on without a
/// gap and `step` timestamp units apart.
fn evenly_cut(
    packets: &[(u16, u32, usize)],
    count: std::ops::RangeInclusive<usize>,
    bytes: usize,
    step: u32,
) {
    assert!(count.contains(&packets.len()), "{} packets", packets.len());
    for pair in packets.windows(2) {
        assert_eq!(pair[0].2, bytes, "{packets:?}");
        assert_eq!(pair[1].0, pair[0].0.wrapping_add(1), "{packets:?}");
        assert_eq!(pair[1].1, pair[0].1.wrapping_add(step), "{packets:?}");
    }
}

#[tokio::test]
async fn transcoded_audio_is_repacketised_to_each_sides_ptime() -> Result<()> {
    let dir = TempDir::new("media-ptime");
    let (s, vendor) = transcoding_server(&dir.0, 42_400, "auto").await?;
    // The vendor asks for 40 ms packets; the caller's SDP names no ptime (20 ms).
    let script = Script {
        vendor_ptime_ms: 40,
        ..Script::default()
    };
    let call = MediaCall::start_with(&s, &dir.0, &vendor, "8 101", ("18", "G729"), &script).await?;
    let mut encoder = bcg729::Encoder::new(false);
    for n in 0..50usize {
        let pcma: Vec<u8> = tone(1000.0, n).iter().map(|&s| alaw_encode(s)).collect();
        call.caller_sdp
            .send_to(&rtp(8, n as u16, &pcma), call.caller_side)
            .await?;
        // Every other 20 ms the vendor sends 40 ms: four G.729 frames of 440 Hz.
        if n % 2 == 1 {
            let mut g729 = g729_tone(&mut encoder, 440.0, n - 1);
            g729.extend(g729_tone(&mut encoder, 440.0, n));
            let mut packet = rtp(18, (n / 2) as u16, &g729);
            packet[4..8].copy_from_slice(&((n as u32 - 1) * 160).to_be_bytes());
            call.vendor_sdp.send_to(&packet, call.vendor_side).await?;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_vendor = shapes(&received(&call.vendor_sdp, Duration::from_millis(300)).await);
    let at_caller = shapes(&received(&call.caller_sdp, Duration::from_millis(300)).await);
    // 50 packets of 20 ms reach the vendor as 25 of 40 ms (four 10-byte frames each);
    // 25 packets of 40 ms reach the caller as 50 of 20 ms PCMA.
    evenly_cut(&at_vendor, 23..=25, 40, 320);
    evenly_cut(&at_caller, 46..=50, 160, 160);
    call.ends_by_rtp_timeout(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn a_vendor_offered_both_g729_names_may_pick_g729a_at_a_dynamic_type() -> Result<()> {
    let dir = TempDir::new("media-g729a");
    let (s, vendor) = transcoding_server(&dir.0, 42_600, "g729_and_g729a").await?;
    // The vendor answers G729a at 96, the type the offer gave it.
    let script = Script {
        vendor_event_pt: "100",
        ..Script::default()
    };
    let call =
        MediaCall::start_with(&s, &dir.0, &vendor, "8 101", ("96", "G729a"), &script).await?;
    assert_eq!(
        written_line(&dir.0.join("vendor"), "vendor_offer").await?,
        format!("m=audio {} RTP/AVP 18 96 101", call.vendor_side.port())
    );
    tones_both_ways(&call, 96).await?;
    let at_vendor = received(&call.vendor_sdp, Duration::from_millis(300)).await;
    let at_caller = received(&call.caller_sdp, Duration::from_millis(300)).await;
    // The vendor gets G.729 under its own type 96; the caller hears the vendor's tone.
    assert!(
        at_vendor.len() >= 45,
        "{} reached the vendor",
        at_vendor.len()
    );
    assert!(at_vendor.iter().all(|(p, _)| p[1] & 0x7f == 96));
    let heard: Vec<i16> = at_caller
        .iter()
        .filter(|(p, _)| p[1] & 0x7f == 8)
        .flat_map(|(p, _)| p[12..].iter().map(|&b| alaw_decode(b)).collect::<Vec<_>>())
        .collect();
    assert!(
        heard.len() >= 45 * 160,
        "{} samples reached the caller",
        heard.len()
    );
    let share = share_at(&heard[1600..], 440.0);
    assert!(share > 0.7, "440 Hz share {share}");
    call.ends_by_rtp_timeout(&s).await?;
    s.stop().await
}
