//! The RTP relay with SIPp for signalling and the test's own UDP sockets for media:
//! packets cross the host both ways, the caller's media is latched to where it really
//! comes from, SDP the host does not understand passes through, and a relayed call
//! whose media stops ends with reason `rtp_timeout`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use switchyard::media::MediaConfig;
use switchyard::store::MediaProxy;
use switchyard_tests::sip::{carrier, scenario, wait_for_records, Sipp, Vendor};
use switchyard_tests::{TempDir, TestServer};
use tokio::net::UdpSocket;

/// The port a SIPp scenario wrote to `file` in `dir`, once it has.
async fn written_port(dir: &Path, file: &str) -> Result<u16> {
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

/// Packets `socket` receives within `wait`, with their sources.
async fn received(socket: &UdpSocket, wait: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(Ok((n, from))) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        got.push((buf[..n].to_vec(), from));
    }
    got
}

#[tokio::test]
async fn relayed_media_crosses_both_ways_latches_and_times_out() -> Result<()> {
    let dir = TempDir::new("media-relay");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.media = MediaConfig {
            proxy_mode: MediaProxy::On,
            port_start: 42_000,
            port_end: 42_100,
            rtp_timeout_secs: 2,
        }
    })
    .await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    // The ports the SDPs name; the caller then sends from another one (its NAT).
    let caller_sdp = UdpSocket::bind("127.0.0.1:0").await?;
    let caller_nat = UdpSocket::bind("127.0.0.1:0").await?;
    let vendor_sdp = UdpSocket::bind("127.0.0.1:0").await?;
    let port = |s: &UdpSocket| s.local_addr().map(|a| a.port().to_string());
    let (caller_rtp, vendor_rtp) = (port(&caller_sdp)?, port(&vendor_sdp)?);

    let vendor_dir = dir.0.join("vendor");
    let vendor_port = vendor.port.to_string();
    let uas = Sipp::spawn_in(
        &vendor_dir,
        &[
            "-i",
            "127.0.0.1",
            "-p",
            &vendor_port,
            "-m",
            "1",
            "-sf",
            &scenario("uas_media.xml").to_string_lossy(),
            "-key",
            "vendor_rtp",
            &vendor_rtp,
        ],
    )?;
    let caller_dir = dir.0.join("caller");
    let target = s.server.sip.addr.to_string();
    let uac = Sipp::spawn_in(
        &caller_dir,
        &[
            &target,
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-sf",
            &scenario("uac_media.xml").to_string_lossy(),
            "-key",
            "caller_rtp",
            &caller_rtp,
        ],
    )?;
    let caller_side = written_port(&caller_dir, "caller_side_port")
        .await
        .context("the answer's audio port")?;
    let vendor_side = written_port(&vendor_dir, "vendor_side_port")
        .await
        .context("the offer's audio port")?;
    for p in [caller_side, vendor_side] {
        assert!(
            (42_000..42_100).contains(&p),
            "relay port {p} outside the range"
        );
    }
    assert_ne!(caller_side, vendor_side);
    let caller_side: SocketAddr = format!("127.0.0.1:{caller_side}").parse()?;
    let vendor_side: SocketAddr = format!("127.0.0.1:{vendor_side}").parse()?;

    // One second of packets each way, 50 a second.
    for i in 0..50u8 {
        caller_nat.send_to(&[b'a', i], caller_side).await?;
        vendor_sdp.send_to(&[b'b', i], vendor_side).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_vendor = received(&vendor_sdp, Duration::from_millis(300)).await;
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
        .all(|(p, from)| p[0] == b'a' && *from == vendor_side));
    assert!(
        at_caller.len() >= 40,
        "{} of 50 reached the caller",
        at_caller.len()
    );
    assert!(at_caller
        .iter()
        .all(|(p, from)| p[0] == b'b' && *from == caller_side));
    assert!(received(&caller_sdp, Duration::from_millis(50)).await.len() <= 10);

    // Silence: 2 s later the host hangs up both sides.
    uac.succeeds().await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
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
    s.stop().await
}
