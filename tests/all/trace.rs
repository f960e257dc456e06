//! The SIP trace: a SIPp call's messages searched over REST by Call-ID and number,
//! exported as pcap that tshark reads, copied as HEP v3 to a real collector
//! (`sngrep -L`), and what the shield dropped kept apart and marked.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use switchyard_tests::sip::{carrier, free_port, one_call, raw_request, Vendor};
use switchyard_tests::{eventually, TempDir, TestServer, ADMIN};

/// The SIP messages tshark finds in `pcap`: (Call-ID, request method or status code).
fn tshark_sip(pcap: &Path) -> Result<Vec<(String, String)>> {
    let out = std::process::Command::new("tshark")
        .args([
            "-n",
            "--enable-heuristic",
            "sip_udp",
            "-Y",
            "sip",
            "-T",
            "fields",
        ])
        .args([
            "-e",
            "sip.Call-ID",
            "-e",
            "sip.Method",
            "-e",
            "sip.Status-Code",
            "-r",
        ])
        .arg(pcap)
        .output()
        .context("tshark (scripts/setup installs it)")?;
    anyhow::ensure!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let what = if f.get(1).is_some_and(|m| !m.is_empty()) {
                f[1]
            } else {
                f.get(2).copied().unwrap_or_default()
            };
            (f[0].to_string(), what.to_string())
        })
        .collect())
}

async fn trace(s: &TestServer, query: &str) -> Result<Vec<Value>> {
    let (status, body) = s
        .admin("GET", &format!("/api/v1/sip/trace?{query}"), None)
        .await?;
    anyhow::ensure!(status == 200, "trace: {status} {body}");
    Ok(body.as_array().context("a list")?.clone())
}

fn first_line(e: &Value) -> &str {
    e["message"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_calls_messages_are_traced_exported_as_pcap_and_copied_over_hep() -> Result<()> {
    let dir = TempDir::new("trace");
    // A real HEP collector: sngrep listening, writing what it receives to a pcap.
    let hep_port = free_port();
    let hep_pcap = dir.0.join("hep.pcap");
    let mut sngrep = tokio::process::Command::new("sngrep")
        .args(["-N", "-q", "-L", &format!("udp:127.0.0.1:{hep_port}"), "-O"])
        .arg(&hep_pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("sngrep (scripts/setup installs it)")?;
    eventually(Duration::from_secs(10), "sngrep listening", || async {
        Ok(std::net::UdpSocket::bind(("127.0.0.1", hep_port))
            .is_err()
            .then_some(()))
    })
    .await?;

    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.trace.hep = Some(format!("127.0.0.1:{hep_port}").parse().expect("address"));
    })
    .await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let record = one_call(&s, &vendor, "442071234567").await?;
    let call_id = record["call_id"].as_str().context("call id")?;
    let leg = record["attempts"][0]["leg_call_id"]
        .as_str()
        .context("leg")?;

    // The customer's leg, by its Call-ID, in order.
    let a_leg = trace(&s, &format!("call_id={call_id}")).await?;
    let ladder: Vec<(String, String)> = a_leg
        .iter()
        .map(|e| {
            (
                e["direction"].as_str().unwrap_or_default().to_string(),
                first_line(e).to_string(),
            )
        })
        .collect();
    assert!(
        ladder[0].0 == "in" && ladder[0].1.starts_with("INVITE "),
        "{ladder:?}"
    );
    for (direction, start) in [("out", "SIP/2.0 200"), ("in", "ACK "), ("in", "BYE ")] {
        assert!(
            ladder
                .iter()
                .any(|(d, l)| d == direction && l.starts_with(start)),
            "{direction} {start} missing from {ladder:?}"
        );
    }
    assert!(a_leg
        .iter()
        .all(|e| e["call_id"] == call_id && e["dropped"].is_null()));

    // By number: both legs (the vendor's has a Call-ID of ours).
    let by_number = trace(&s, "number=442071234567").await?;
    let invites: Vec<&str> = by_number
        .iter()
        .filter(|e| first_line(e).starts_with("INVITE "))
        .map(|e| e["call_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(invites, [call_id, leg], "{by_number:?}");
    let out_invite = by_number
        .iter()
        .find(|e| e["call_id"] == leg)
        .context("B leg")?;
    assert_eq!(out_invite["direction"], "out");
    assert_eq!(out_invite["remote"], format!("127.0.0.1:{}", vendor.port));

    // The same search as pcap: tshark reads the same messages.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!(
            "http://{}/api/v1/sip/trace.pcap?number=442071234567",
            s.server.api_addr
        ))
        .bearer_auth(ADMIN)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let pcap = dir.0.join("trace.pcap");
    std::fs::write(&pcap, resp.bytes().await?)?;
    let seen = tshark_sip(&pcap)?;
    assert_eq!(seen.len(), by_number.len(), "{seen:?}");
    assert!(
        seen.contains(&(call_id.to_string(), "INVITE".into())),
        "{seen:?}"
    );
    assert!(seen.contains(&(leg.to_string(), "200".into())), "{seen:?}");

    // The HEP collector got the call too.
    let pid = sngrep.id().context("sngrep pid")?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    tokio::time::timeout(Duration::from_secs(10), sngrep.wait()).await??;
    let captured = tshark_sip(&hep_pcap)?;
    for (id, what) in [
        (call_id, "INVITE"),
        (call_id, "BYE"),
        (leg, "INVITE"),
        (leg, "200"),
    ] {
        assert!(
            captured.contains(&(id.to_string(), what.to_string())),
            "HEP lacks {id} {what}: {captured:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn what_the_shield_drops_is_traced_apart_and_marked() -> Result<()> {
    let dir = TempDir::new("trace-dropped");
    let s = TestServer::start(&dir.0).await?;
    let (status, body) = s
        .admin(
            "POST",
            "/api/v1/security/bans",
            Some(json!({ "address": "127.0.0.5", "reason": "test", "secs": 600 })),
        )
        .await?;
    assert!((200..300).contains(&status), "{status} {body}");
    let options =
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKdrop\r\n\
                   From: <sip:probe@127.0.0.5>;tag=1\r\nTo: <sip:probe@127.0.0.1>\r\n\
                   Call-ID: dropped-probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let answer = raw_request(
        "127.0.0.5:0",
        s.server.sip.addr,
        options,
        Duration::from_millis(500),
    )
    .await?;
    assert!(
        answer.is_none(),
        "a banned source gets no answer: {answer:?}"
    );

    let dropped = eventually(
        Duration::from_secs(5),
        "the dropped probe traced",
        || async {
            let found = trace(&s, "dropped=true&address=127.0.0.5").await?;
            Ok((!found.is_empty()).then_some(found))
        },
    )
    .await?;
    assert_eq!(dropped[0]["call_id"], "dropped-probe");
    assert_eq!(dropped[0]["dropped"], "shield");
    assert!(
        trace(&s, "call_id=dropped-probe").await?.is_empty(),
        "dropped messages are not among the calls'"
    );
    let (status, _) = s.call("GET", "/api/v1/sip/trace", "", None).await?;
    assert_eq!(status, 401);
    Ok(())
}
