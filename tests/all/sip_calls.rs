//! Calls through the B2BUA with SIPp peers on loopback: the customer is a SIPp uac,
//! each vendor a SIPp uas (or nothing, for a silent vendor); the prefix-router module
//! decides; call records over REST tell what happened.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard_tests::sip::{
    carrier, raw_invite, raw_request, received_start_lines, scenario, wait_for_no_calls,
    wait_for_records, Sipp, Vendor,
};
use switchyard_tests::{eventually, TempDir, TestServer};

fn path(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

fn codes(record: &Value) -> Vec<Value> {
    record["attempts"]
        .as_array()
        .map(|a| a.iter().map(|a| a["code"].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn basic_call_completes_and_leaves_a_call_record() -> Result<()> {
    let dir = TempDir::new("sip-basic");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    Sipp::uac(
        s.server.sip.addr,
        &["-sn", "uac", "-s", "442071234567"],
        1,
        1,
    )?
    .succeeds()
    .await?;
    uas.succeeds().await?;
    let records = wait_for_records(&s, 1).await?;
    let r = &records[0];
    assert_eq!(r["final_code"], 200, "{r}");
    assert_eq!(r["reason"], "caller_hangup", "{r}");
    assert_eq!(r["ingress_gateway"], "customers");
    assert_eq!(r["egress_gateway"], "vendor-a");
    assert_eq!(r["callee_in"], "442071234567");
    assert_eq!(r["module"], "default/router");
    assert!(r["answer_ms"].as_u64() >= r["invite_ms"].as_u64());
    // The vendor leg is a dialog of its own: a different Call-ID.
    assert_ne!(r["attempts"][0]["leg_call_id"], r["call_id"]);
    let call_id = r["call_id"].as_str().unwrap_or_default();
    let (status, one) = s
        .admin("GET", &format!("/api/v1/calls/{call_id}"), None)
        .await?;
    assert_eq!((status, &one), (200, r));
    let (status, _) = s.admin("GET", "/api/v1/calls/no-such-call", None).await?;
    assert_eq!(status, 404);
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn failover_from_503_past_a_silent_vendor_to_an_answer() -> Result<()> {
    let dir = TempDir::new("sip-failover");
    let s = TestServer::start(&dir.0).await?;
    let (busy, silent, good) = (
        Vendor::new("vendor-503"),
        Vendor {
            invite_timeout_ms: 1_000,
            ..Vendor::new("vendor-silent")
        },
        Vendor::new("vendor-ok"),
    );
    carrier(&s, json!({}), &[&busy, &silent, &good]).await?;
    let rejecting = Sipp::uas(busy.port, &["-sf", &path("uas_unavailable.xml")], 1)?;
    let answering = Sipp::uas(good.port, &["-sn", "uas"], 1)?;
    let caller_dir = dir.0.join("caller");
    let target = s.server.sip.addr.to_string();
    Sipp::spawn_in(
        &caller_dir,
        &[
            &target,
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-sn",
            "uac",
            "-trace_msg",
        ],
    )?
    .succeeds()
    .await?;
    rejecting.succeeds().await?;
    answering.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(codes(r), [json!(503), Value::Null, json!(200)], "{r}");
    assert_eq!(r["attempts"][1]["timed_out"], true, "{r}");
    // Both the 503 vendor and the answering one rang: the caller heard one ringback.
    let ringing = received_start_lines(&caller_dir)?
        .iter()
        .filter(|l| l.starts_with("SIP/2.0 180"))
        .count();
    assert_eq!(ringing, 1);
    // Traffic statistics: per gateway attempt, per account call; modules see the ASR.
    let (status, stats) = s.admin("GET", "/api/v1/stats", None).await?;
    assert_eq!(status, 200, "{stats}");
    let g = &stats["gateways"];
    assert_eq!(
        (
            g["vendor-503"]["attempts"].as_u64(),
            g["vendor-503"]["asr"].as_f64()
        ),
        (Some(1), Some(0.0)),
        "{stats}"
    );
    assert_eq!(
        (
            g["vendor-ok"]["answered"].as_u64(),
            g["vendor-ok"]["asr"].as_f64()
        ),
        (Some(1), Some(1.0)),
        "{stats}"
    );
    assert_eq!(g["vendor-ok"]["window_secs"], 300, "{stats}");
    let acme = &stats["accounts"]["acme"];
    assert_eq!(
        (acme["attempts"].as_u64(), acme["answered"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    assert_eq!(s.server.policy.runtime().gateway_live("vendor-ok").asr, 1.0);
    assert_eq!(r["egress_gateway"], "vendor-ok");
    assert_eq!(r["final_code"], 200);
    // SIPp's uac offers PCMU only; both legs' codec is what the answer chose.
    assert_eq!(
        (&r["codec_in"], &r["codec_out"]),
        (&json!("PCMU"), &json!("PCMU"))
    );
    // The CSV export has the call, then one line per failed attempt.
    let (status, csv) = s
        .call(
            "GET",
            "/api/v1/calls?format=csv",
            switchyard_tests::ADMIN,
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap_or_default().to_string();
    let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let header = &lines[0];
    let column = |row: &Vec<&str>, name: &str| {
        let i = header.iter().position(|h| *h == name).expect(name);
        row[i].to_string()
    };
    let summary: Vec<[String; 5]> = lines[1..]
        .iter()
        .map(|row| {
            [
                "record",
                "attempt",
                "egress_gateway",
                "final_code",
                "result",
            ]
            .map(|name| column(row, name))
        })
        .collect();
    assert_eq!(
        summary,
        [
            ["call", "", "vendor-ok", "200", "answered"],
            ["attempt", "1", "vendor-503", "503", "failed"],
            ["attempt", "2", "vendor-silent", "", "no_answer"],
        ]
        .map(|row| row.map(str::to_string)),
        "{csv}"
    );
    assert_eq!(column(&lines[3], "timed_out"), "true", "{csv}");
    s.stop().await
}

#[tokio::test]
async fn busy_vendor_ends_the_call_without_failover() -> Result<()> {
    let dir = TempDir::new("sip-busy");
    let s = TestServer::start(&dir.0).await?;
    let (busy, spare) = (Vendor::new("vendor-busy"), Vendor::new("vendor-spare"));
    carrier(&s, json!({}), &[&busy, &spare]).await?;
    let rejecting = Sipp::uas(busy.port, &["-sf", &path("uas_busy.xml")], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sf", &path("uac_fail.xml")], 1, 1)?
        .succeeds()
        .await?;
    rejecting.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["final_code"], 486, "{r}");
    assert_eq!(codes(r), [json!(486)], "486 stops switching: {r}");
    assert_eq!(r["reason"], "callee_rejected");
    s.stop().await
}

#[tokio::test]
async fn caller_cancel_while_ringing_cancels_the_vendor_leg() -> Result<()> {
    let dir = TempDir::new("sip-cancel");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-ring");
    carrier(&s, json!({}), &[&vendor]).await?;
    let ringing = Sipp::uas(vendor.port, &["-sf", &path("uas_ring.xml")], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sf", &path("uac_cancel.xml")], 1, 1)?
        .succeeds()
        .await?;
    // The vendor saw our CANCEL, answered 487 and got its ACK.
    ringing.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(
        (r["final_code"].clone(), r["reason"].clone()),
        (json!(487), json!("caller_cancel")),
        "{r}"
    );
    assert!(r["ring_ms"].is_u64(), "the 180 was relayed: {r}");
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn compact_header_invite_completes() -> Result<()> {
    let dir = TempDir::new("sip-compact");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sf", &path("uac_compact.xml")], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    assert_eq!(wait_for_records(&s, 1).await?[0]["final_code"], 200);
    s.stop().await
}

#[tokio::test]
async fn unknown_source_gets_403_or_silence() -> Result<()> {
    let dir = TempDir::new("sip-unknown");
    let s = TestServer::start(&dir.0).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    // 127.0.0.2 is not among the mapping gateway's sources (127.0.0.1/32).
    let answer = raw_request(
        "127.0.0.2:0",
        s.server.sip.addr,
        &raw_invite("unknown-1", "4420"),
        Duration::from_secs(2),
    )
    .await?;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("SIP/2.0 403")),
        "{answer:?}"
    );
    s.stop().await?;

    let dir = TempDir::new("sip-silent");
    let s = TestServer::start_configured(&dir.0, |c| c.sip.reply_unauthorized = false).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let answer = raw_request(
        "127.0.0.2:0",
        s.server.sip.addr,
        &raw_invite("unknown-2", "4420"),
        Duration::from_secs(2),
    )
    .await?;
    assert_eq!(answer, None, "unknown sources get no answer at all");
    // A known source is still served by the same server: its call reaches the
    // vendor, whose 486 it hears.
    let rejecting = Sipp::uas(vendor.port, &["-sf", &path("uas_busy.xml")], 1)?;
    let known = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("known-1", "4420"),
        // SIPp may still be starting: the vendor INVITE is retransmitted until it answers.
        Duration::from_secs(5),
    )
    .await?;
    assert!(
        known
            .as_deref()
            .is_some_and(|a| a.starts_with("SIP/2.0 486")),
        "a known source's call reaches the vendor: {known:?}"
    );
    rejecting.succeeds().await?;
    s.stop().await
}

#[tokio::test]
async fn cps_limit_answers_503_with_a_reason() -> Result<()> {
    let dir = TempDir::new("sip-cps");
    let s = TestServer::start(&dir.0).await?;
    // The vendor is silent: admitted calls ring out; only the limit's answers matter.
    carrier(
        &s,
        json!({ "cps_limit": 2 }),
        &[&Vendor::new("vendor-silent")],
    )
    .await?;
    let mut limited = 0;
    let mut answers = Vec::new();
    for i in 0..5 {
        let invite = raw_invite(&format!("cps-{i}"), "4420");
        let answer = raw_request(
            "127.0.0.1:0",
            s.server.sip.addr,
            &invite,
            Duration::from_millis(150),
        )
        .await?;
        if let Some(a) = &answer {
            if a.starts_with("SIP/2.0 503") && a.contains("CPS limit 2") {
                limited += 1;
            }
        }
        answers.push(answer);
    }
    assert_eq!(limited, 3, "{answers:?}");
    // Each refusal leaves a record of its own on the customer's account.
    let records = wait_for_records(&s, 3).await?;
    let refused: Vec<_> = records.iter().filter(|r| r["reason"] == "limit").collect();
    assert_eq!(refused.len(), 3, "{records:?}");
    for r in refused {
        assert_eq!(r["final_code"], 503, "{r}");
        // The record says why in words, as the Reason header told the caller.
        let why = r["final_reason"].as_str().unwrap_or_default();
        assert!(why.contains("CPS limit 2"), "{r}");
        assert_eq!(r["account"], "acme", "{r}");
        assert_eq!(r["ingress_gateway"], "customers", "{r}");
        assert_eq!(r["callee_in"], "4420", "{r}");
        assert!(r["attempts"].as_array().is_some_and(Vec::is_empty), "{r}");
    }
    s.stop().await
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_host_keeps_serving() -> Result<()> {
    let dir = TempDir::new("sip-malformed");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let bad = "INVITE sip:4420@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKbad\r\n\
               From: <sip:a@LOCAL>;tag=1\r\nTo: <sip:4420@127.0.0.1>\r\nCall-ID: bad-1\r\n\
               CSeq: one INVITE\r\nContent-Length: 0\r\n\r\n";
    let answer = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        bad,
        Duration::from_secs(2),
    )
    .await?;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("SIP/2.0 400")),
        "{answer:?}"
    );
    for junk in ["\r\n\r\n", "GARBAGE\r\n\r\n", "INVITE\r\n\r\n\u{0}\u{1}"] {
        raw_request(
            "127.0.0.1:0",
            s.server.sip.addr,
            junk,
            Duration::from_millis(100),
        )
        .await?;
    }
    // Still serving.
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    s.stop().await
}

#[tokio::test]
async fn calls_complete_under_10_percent_packet_loss() -> Result<()> {
    let dir = TempDir::new("sip-loss");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 20)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac", "-lost", "10"], 20, 10)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    let records = wait_for_records(&s, 20).await?;
    assert!(
        records.iter().all(|r| r["final_code"] == 200),
        "{records:?}"
    );
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn a_thousand_calls_at_a_steady_rate_leave_no_dialog_behind() -> Result<()> {
    let dir = TempDir::new("sip-thousand");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1000)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac"], 1000, 100)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    let records = wait_for_records(&s, 1000).await?;
    assert_eq!(
        records.iter().filter(|r| r["final_code"] == 200).count(),
        1000
    );
    let stats = wait_for_no_calls(&s).await?;
    assert_eq!(stats["sip"]["client_transactions"], 0, "{stats}");
    s.stop().await
}

#[tokio::test]
async fn re_invite_and_update_are_relayed_across_the_dialogs() -> Result<()> {
    let dir = TempDir::new("sip-reinvite");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sf", &path("uas_reinvite.xml")], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sf", &path("uac_reinvite.xml")], 1, 1)?
        .succeeds()
        .await?;
    // The vendor checked the relayed re-INVITE carried the caller's new SDP, T.38
    // image stream and attributes included.
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(
        (r["final_code"].clone(), r["reason"].clone()),
        (json!(200), json!("caller_hangup")),
        "{r}"
    );
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn vendor_down_by_options_is_skipped_without_an_invite() -> Result<()> {
    let dir = TempDir::new("sip-options");
    let s = TestServer::start(&dir.0).await?;
    let (dead, alive) = (Vendor::new("vendor-dead"), Vendor::new("vendor-alive"));
    carrier(&s, json!({}), &[&dead, &alive]).await?;
    // Ping the dead vendor every second; two silences mark it down.
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/routing-gateways/vendor-dead",
            Some(json!({ "address": format!("127.0.0.1:{}", dead.port), "options_interval_secs": 1, "down_after": 2 })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    marked_down(&s, "vendor-dead").await?;
    let uas = Sipp::uas(alive.port, &["-sn", "uas"], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    // The prefix router itself leaves down gateways out; the host would skip them too.
    assert_eq!(r["egress_gateway"], "vendor-alive", "{r}");
    assert!(
        r["attempts"].as_array().is_some_and(|a| a
            .iter()
            .all(|a| a["gateway"] != "vendor-dead" || a["leg_call_id"] == "")),
        "no INVITE went to the down vendor: {r}"
    );
    s.stop().await
}

/// Wait until health checks mark `gateway` down.
async fn marked_down(s: &TestServer, gateway: &str) -> Result<()> {
    eventually(
        Duration::from_secs(10),
        &format!("{gateway} marked down"),
        || async {
            Ok(s.server
                .policy
                .runtime()
                .gateway_live(gateway)
                .down
                .then_some(()))
        },
    )
    .await
}

/// Ping `vendor` every second, marking it down after two silences and up after
/// `up_after` answers.
async fn pinged(s: &TestServer, vendor: &Vendor, up_after: u32) -> Result<()> {
    let (status, body) = s
        .admin(
            "PUT",
            &format!("/api/v1/routing-gateways/{}", vendor.id),
            Some(json!({ "address": format!("127.0.0.1:{}", vendor.port),
                         "options_interval_secs": 1, "down_after": 2, "up_after": up_after })),
        )
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(())
}

#[tokio::test]
async fn the_host_skips_a_down_gateway_its_routes_name() -> Result<()> {
    let dir = TempDir::new("sip-host-skips-down");
    let s = TestServer::start(&dir.0).await?;
    let (dead, alive) = (Vendor::new("vendor-dead"), Vendor::new("vendor-alive"));
    carrier(&s, json!({}), &[&dead, &alive]).await?;
    pinged(&s, &dead, 2).await?;
    marked_down(&s, "vendor-dead").await?;
    // A module that traps: the binding's fallback routes name the down gateway first,
    // so no router has left it out and only the host can skip it.
    let trap = switchyard_tests::guest("guest_trap");
    let version = switchyard_tests::version_of(&trap);
    let (status, body) = s.upload(switchyard_tests::ADMIN, "router", trap).await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/bindings/global",
            Some(json!({ "module": "router", "version": version,
                         "fallback": { "kind": "routes", "gateways": ["vendor-dead", "vendor-alive"] } })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let uas = Sipp::uas(alive.port, &["-sn", "uas"], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["egress_gateway"], "vendor-alive", "{r}");
    let first = &r["attempts"][0];
    assert_eq!(
        (&first["gateway"], &first["reason"], &first["leg_call_id"]),
        (&json!("vendor-dead"), &json!("gateway down"), &json!("")),
        "the down gateway is skipped without an INVITE: {r}"
    );
    s.stop().await
}

#[tokio::test]
async fn a_down_gateway_comes_back_after_up_after_answered_pings() -> Result<()> {
    let dir = TempDir::new("sip-up-after");
    let s = TestServer::start(&dir.0).await?;
    let (flaky, steady) = (Vendor::new("vendor-flaky"), Vendor::new("vendor-steady"));
    carrier(&s, json!({}), &[&flaky, &steady]).await?;
    pinged(&s, &flaky, 2).await?;
    pinged(&s, &steady, 3).await?;
    marked_down(&s, "vendor-flaky").await?;
    marked_down(&s, "vendor-steady").await?;
    // Each vendor answers exactly two pings, then is silent again.
    let flaky_answers = Sipp::uas(flaky.port, &["-sf", &path("uas_options.xml")], 2)?;
    let steady_answers = Sipp::uas(steady.port, &["-sf", &path("uas_options.xml")], 2)?;
    flaky_answers.succeeds().await?;
    steady_answers.succeeds().await?;
    // Two answers are enough for up_after 2 ...
    eventually(Duration::from_secs(5), "vendor-flaky up again", || async {
        Ok((!s.server.policy.runtime().gateway_live("vendor-flaky").down).then_some(()))
    })
    .await?;
    // ... not for up_after 3 (it was checked in the same health-check round).
    assert!(
        s.server.policy.runtime().gateway_live("vendor-steady").down,
        "two answered pings must not bring back a gateway with up_after 3"
    );
    s.stop().await
}

/// One call whose caller runs `scenario` against a vendor answering with the stock
/// `uas`, on a server whose Min-SE is lowered to 2 s (RFC 4028's 90 s floor would
/// make the test take minutes); the call's record.
async fn session_timer_call(tag: &str, scenario: &str) -> Result<Value> {
    let dir = TempDir::new(tag);
    let s = TestServer::start_configured(&dir.0, |c| c.sip.session_min_se_secs = 2).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sf", &path(scenario)], 1, 1)?
        .succeeds()
        .await?;
    // The vendor got its BYE too (the stock uas scenario ends on it).
    uas.succeeds().await?;
    let r = wait_for_records(&s, 1).await?[0].clone();
    wait_for_no_calls(&s).await?;
    s.stop().await?;
    Ok(r)
}

#[tokio::test]
async fn we_refresh_the_session_when_the_caller_makes_us_the_refresher() -> Result<()> {
    // The caller's scenario fails unless two UPDATEs arrive, each within 6 s.
    let r = session_timer_call("sip-we-refresh", "uac_timer_refreshed.xml").await?;
    assert_eq!(
        r["reason"], "caller_hangup",
        "refreshed sessions do not expire: {r}"
    );
    Ok(())
}

#[tokio::test]
async fn phone_registers_and_its_invite_is_challenged() -> Result<()> {
    let dir = TempDir::new("sip-phone");
    // SIPp answers MD5 challenges only; SHA-256 is covered by the lockout test.
    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.digest_algorithms = vec![switchyard_model::credentials::Algorithm::Md5]
    })
    .await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/phones/alice",
            Some(json!({ "mapping_gateway": "customers", "password": "alice-secret-1" })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("password").is_none(),
        "the password is never returned: {body}"
    );
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    // From 127.0.0.2: not the mapping gateway's address, so only the credentials admit it.
    Sipp::uac(
        s.server.sip.addr,
        &[
            "-sf",
            &path("uac_phone.xml"),
            "-i",
            "127.0.0.2",
            "-key",
            "user",
            "alice",
            "-au",
            "alice",
            "-ap",
            "alice-secret-1",
        ],
        1,
        1,
    )?
    .succeeds()
    .await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(
        (r["final_code"].clone(), r["ingress_gateway"].clone()),
        (json!(200), json!("customers")),
        "{r}"
    );
    let (_, stats) = s.admin("GET", "/api/v1/sip/stats", None).await?;
    assert_eq!(stats["sip"]["registrations"], 1, "{stats}");
    s.stop().await
}

/// REGISTER alice from a fresh loopback port: challenged, then answered with SHA-256.
/// `attempt` keeps each REGISTER's branch its own (a repeated branch is a
/// retransmission, answered from the transaction). The final answer's start line.
async fn register_alice(s: &TestServer, password: &str, attempt: u32) -> Result<String> {
    use switchyard_model::credentials::{ha1, response, Algorithm, REALM};
    let register = |n: u32, auth: &str| {
        let n = attempt * 10 + n;
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKreg{n}\r\n\
             From: <sip:alice@127.0.0.1>;tag=r{n}\r\nTo: <sip:alice@127.0.0.1>\r\n\
             Call-ID: reg-{n}@test\r\nCSeq: {n} REGISTER\r\nContact: <sip:alice@LOCAL>\r\n\
             Expires: 300\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    let wait = Duration::from_secs(2);
    let challenge = raw_request("127.0.0.1:0", s.server.sip.addr, &register(1, ""), wait)
        .await?
        .unwrap_or_default();
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| anyhow::anyhow!("no challenge: {challenge}"))?;
    let h = ha1(Algorithm::Sha256, "alice", REALM, password);
    let uri = "sip:127.0.0.1";
    let r = response(
        Algorithm::Sha256,
        &h,
        "REGISTER",
        uri,
        nonce,
        Some(("auth", "00000001", "c0ffee")),
    );
    let auth = format!(
        "Authorization: Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{r}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
    );
    let answer = raw_request("127.0.0.1:0", s.server.sip.addr, &register(2, &auth), wait)
        .await?
        .unwrap_or_default();
    Ok(answer.lines().next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_registration_from_a_new_address_replaces_the_old_unless_replace_is_off() -> Result<()> {
    for replace in [true, false] {
        let dir = TempDir::new("sip-register-replace");
        let s = TestServer::start_configured(&dir.0, |c| c.sip.register_replace = replace).await?;
        carrier(&s, json!({}), &[]).await?;
        let (status, body) = s
            .admin(
                "PUT",
                "/api/v1/phones/alice",
                Some(json!({ "mapping_gateway": "customers", "password": "alice-secret-1" })),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            register_alice(&s, "alice-secret-1", 1).await?,
            "SIP/2.0 200 OK"
        );
        // The same phone from another address (port) while the first binding lives.
        let second = register_alice(&s, "alice-secret-1", 2).await?;
        if replace {
            assert_eq!(second, "SIP/2.0 200 OK");
        } else {
            assert_eq!(second, "SIP/2.0 403 Registered Elsewhere");
        }
        let (_, stats) = s.admin("GET", "/api/v1/sip/stats", None).await?;
        assert_eq!(stats["sip"]["registrations"], 1, "{stats}");
        s.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn wrong_passwords_lock_the_phone_out_even_with_the_right_one() -> Result<()> {
    use switchyard_model::credentials::{ha1, response, Algorithm, REALM};
    let dir = TempDir::new("sip-lockout");
    let s = TestServer::start_configured(&dir.0, |c| c.sip.auth_max_retry = 3).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    s.admin(
        "PUT",
        "/api/v1/phones/bob",
        Some(json!({ "mapping_gateway": "customers", "password": "bob-secret-22" })),
    )
    .await?;
    let register = |cseq: u32, authorization: Option<String>| {
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bKlock{cseq}\r\n\
             From: <sip:bob@127.0.0.1>;tag=b1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: lock-1\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:bob@LOCAL>\r\nExpires: 300\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    let credentials = |challenge: &str, password: &str| {
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .and_then(|n| n.split('"').next())
            .unwrap_or_default()
            .to_string();
        let h = ha1(Algorithm::Sha256, "bob", REALM, password);
        let r = response(
            Algorithm::Sha256,
            &h,
            "REGISTER",
            "sip:127.0.0.1",
            &nonce,
            Some(("auth", "00000001", "c0ffee")),
        );
        format!("Digest username=\"bob\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1\", response=\"{r}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\"")
    };
    let switch = s.server.sip.addr;
    let wait = Duration::from_secs(2);
    let challenge = raw_request("127.0.0.3:0", switch, &register(1, None), wait)
        .await?
        .unwrap_or_default();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    assert!(
        challenge.contains("algorithm=SHA-256"),
        "SHA-256 is offered first: {challenge}"
    );
    // The right password is accepted...
    let ok = raw_request(
        "127.0.0.3:0",
        switch,
        &register(2, Some(credentials(&challenge, "bob-secret-22"))),
        wait,
    )
    .await?;
    assert!(
        ok.as_deref().is_some_and(|a| a.starts_with("SIP/2.0 200")),
        "{ok:?}"
    );
    // ...three wrong ones suspend the user...
    let mut last = None;
    for cseq in 3..6 {
        last = raw_request(
            "127.0.0.3:0",
            switch,
            &register(cseq, Some(credentials(&challenge, "guess"))),
            wait,
        )
        .await?;
    }
    assert!(
        last.as_deref()
            .is_some_and(|a| a.starts_with("SIP/2.0 403")),
        "{last:?}"
    );
    // ...and then even the right one is refused.
    let fresh = raw_request("127.0.0.3:0", switch, &register(7, None), wait)
        .await?
        .unwrap_or_default();
    let refused = raw_request(
        "127.0.0.3:0",
        switch,
        &register(8, Some(credentials(&fresh, "bob-secret-22"))),
        wait,
    )
    .await?;
    assert!(
        refused
            .as_deref()
            .is_some_and(|a| a.starts_with("SIP/2.0 403")),
        "{refused:?}"
    );
    s.stop().await
}

#[tokio::test]
async fn session_interval_below_min_se_gets_422() -> Result<()> {
    let dir = TempDir::new("sip-422");
    let s = TestServer::start(&dir.0).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    let invite = raw_invite("se-1", "4420").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer\r\nSession-Expires: 30\r\n",
    );
    let answer = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &invite,
        Duration::from_secs(2),
    )
    .await?;
    let answer = answer.unwrap_or_default();
    assert!(answer.starts_with("SIP/2.0 422"), "{answer}");
    assert!(answer.contains("Min-SE: 90"), "{answer}");
    s.stop().await
}

#[tokio::test]
async fn unrefreshed_session_is_hung_up_on_both_legs() -> Result<()> {
    let r = session_timer_call("sip-session", "uac_timer_silent.xml").await?;
    assert_eq!(r["reason"], "session_timeout", "{r}");
    let held = r["end_ms"].as_u64().unwrap_or(0) - r["answer_ms"].as_u64().unwrap_or(0);
    assert!(
        (2_000..4_000).contains(&held),
        "hung up {held} ms after answer: {r}"
    );
    Ok(())
}

#[tokio::test]
async fn calls_over_tcp_complete() -> Result<()> {
    let dir = TempDir::new("sip-tcp");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 3)?;
    // The customer calls over TCP (one connection); the vendor answers over UDP.
    Sipp::uac(s.server.sip.addr, &["-sn", "uac", "-t", "t1"], 3, 3)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    let records = wait_for_records(&s, 3).await?;
    assert!(
        records.iter().all(|r| r["final_code"] == 200),
        "{records:?}"
    );
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn late_offer_answer_in_the_callers_ack_reaches_the_vendor() -> Result<()> {
    let dir = TempDir::new("sip-late-offer");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sf", &path("uas_late_offer.xml")], 1)?;
    Sipp::uac(
        s.server.sip.addr,
        &["-sf", &path("uac_late_offer.xml")],
        1,
        1,
    )?
    .succeeds()
    .await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["final_code"], 200);
    // The vendor offered PCMA and PCMU; the caller's ACK answered PCMA.
    assert_eq!(
        (&r["codec_in"], &r["codec_out"]),
        (&json!("PCMA"), &json!("PCMA")),
        "{r}"
    );
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn vendor_route_set_is_followed_in_the_ack_and_bye() -> Result<()> {
    let dir = TempDir::new("sip-record-route");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sf", &path("uas_record_route.xml")], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn a_routing_loop_gets_482_and_exhausted_hops_get_483() -> Result<()> {
    let dir = TempDir::new("sip-loops");
    let s = TestServer::start(&dir.0).await?;
    // The "vendor" is the switch itself: our vendor INVITE comes back to us from a
    // customer address, carrying our own vendor-leg Call-ID.
    let looped = Vendor::new("vendor-loop");
    carrier(&s, json!({}), &[&looped]).await?;
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/routing-gateways/vendor-loop",
            Some(json!({ "address": s.server.sip.addr.to_string() })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let answer = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("loop-1", "4420"),
        Duration::from_secs(5),
    )
    .await?
    .unwrap_or_default();
    // The last vendor answer, reason phrase as received, goes back to the caller.
    assert!(
        answer.starts_with("SIP/2.0 482 Loop Detected\r\n"),
        "{answer}"
    );
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["call_id"], "loop-1", "{r}");
    assert_eq!(codes(r), [json!(482)], "{r}");

    let no_hops = raw_invite("hops-1", "4420").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let answer = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &no_hops,
        Duration::from_secs(2),
    )
    .await?
    .unwrap_or_default();
    assert!(answer.starts_with("SIP/2.0 483"), "{answer}");
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn a_full_routing_gateway_refuses_with_503_and_a_reason() -> Result<()> {
    let dir = TempDir::new("sip-capacity");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-small");
    carrier(&s, json!({}), &[&vendor]).await?;
    // One call at a time; a ringing call gives up after 1.5 s.
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/routing-gateways/vendor-small",
            Some(json!({ "address": format!("127.0.0.1:{}", vendor.port),
                         "capacity": 1, "progress_timeout_ms": 1500 })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let uas = Sipp::uas(vendor.port, &["-sf", &path("uas_ring.xml")], 1)?;
    // The first call rings on the vendor and holds its only place ...
    let first = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("cap-1", "4420"),
        // SIPp may still be starting: the vendor INVITE is retransmitted until it rings.
        Duration::from_secs(3),
    )
    .await?;
    assert!(
        first
            .as_deref()
            .is_some_and(|a| a.starts_with("SIP/2.0 180")),
        "{first:?}"
    );
    eventually(
        Duration::from_secs(2),
        "the first call holds vendor-small",
        || async {
            let live = s.server.policy.runtime().gateway_live("vendor-small");
            Ok((live.current_calls == 1).then_some(()))
        },
    )
    .await?;
    // ... so the second is refused without an INVITE, saying why.
    let second = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("cap-2", "4420"),
        Duration::from_secs(2),
    )
    .await?;
    assert!(
        second
            .as_deref()
            .is_some_and(|a| a.starts_with("SIP/2.0 503")
                && a.contains("Reason: SIP;cause=503;text=\"gateway at capacity\"")),
        "{second:?}"
    );
    uas.succeeds().await?;
    let records = wait_for_records(&s, 2).await?;
    let refused = records
        .iter()
        .find(|r| r["call_id"] == "cap-2")
        .expect("cap-2 record");
    assert_eq!(refused["reason"], "limit", "{refused}");
    assert_eq!(refused["attempts"][0]["leg_call_id"], "", "{refused}");
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn info_is_relayed_and_the_vendors_bye_reaches_the_caller() -> Result<()> {
    let dir = TempDir::new("sip-info-bye");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sf", &path("uas_info_then_bye.xml")], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sf", &path("uac_info.xml")], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["reason"], "callee_hangup", "{r}");
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn calls_over_ipv6_complete_on_both_legs() -> Result<()> {
    let dir = TempDir::new("sip-ipv6");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.listen = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()]
    })
    .await?;
    let switch_v6 = s.server.sip.addrs[1];
    assert!(switch_v6.is_ipv6(), "{:?}", s.server.sip.addrs);
    let vendor = Vendor::new("vendor-v6");
    carrier(&s, json!({ "sources": ["::1"] }), &[&vendor]).await?;
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/routing-gateways/vendor-v6",
            Some(json!({ "address": format!("[::1]:{}", vendor.port) })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let port = vendor.port.to_string();
    let uas = Sipp::spawn(&["-i", "::1", "-p", &port, "-m", "1", "-sn", "uas"])?;
    let target = switch_v6.to_string();
    Sipp::spawn(&[&target, "-i", "::1", "-m", "1", "-r", "1", "-sn", "uac"])?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["final_code"], 200, "{r}");
    assert_eq!(r["ingress_gateway"], "customers", "{r}");
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn vendor_digest_challenge_is_answered_with_the_gateways_credentials() -> Result<()> {
    let dir = TempDir::new("sip-vendor-auth");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-auth");
    carrier(&s, json!({}), &[&vendor]).await?;
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/routing-gateways/vendor-auth",
            Some(json!({ "address": format!("127.0.0.1:{}", vendor.port),
                         "auth_user": "carrier", "auth_password": "s3cret" })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let uas = Sipp::uas(vendor.port, &["-sf", &path("uas_challenge.xml")], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["final_code"], 200, "{r}");
    // One attempt: the challenge was answered within it, not failed over.
    assert_eq!(codes(r), [json!(200)], "{r}");
    wait_for_no_calls(&s).await?;
    s.stop().await
}

/// How many successful registrations the server reports with each gateway.
async fn upstream_registrations(s: &TestServer) -> Result<Value> {
    let (status, body) = s.admin("GET", "/api/v1/sip/stats", None).await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(body["upstream"].clone())
}

#[tokio::test]
async fn registers_upstream_refreshes_and_unregisters_on_removal_and_on_shutdown() -> Result<()> {
    let dir = TempDir::new("sip-upstream");
    let s = TestServer::start(&dir.0).await?;
    let (removed, kept) = (Vendor::new("vendor-removed"), Vendor::new("vendor-kept"));
    let registrar = path("uas_registrar.xml");
    let removed_uas = Sipp::uas(removed.port, &["-sf", &registrar], 1)?;
    let kept_uas = Sipp::uas(kept.port, &["-sf", &registrar], 1)?;
    for v in [&removed, &kept] {
        let (status, body) = s
            .admin(
                "PUT",
                &format!("/api/v1/routing-gateways/{}", v.id),
                Some(
                    json!({ "address": format!("127.0.0.1:{}", v.port), "register": true,
                             "auth_user": "carrier", "auth_password": "s3cret" }),
                ),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.get("auth_password").is_none_or(Value::is_null),
            "password shown: {body}"
        );
    }
    // Registered after the challenge, then refreshed halfway through the 2 s granted.
    let upstream = eventually(
        Duration::from_secs(10),
        "two registrations each",
        || async {
            let upstream = upstream_registrations(&s).await?;
            let both = [removed.id, kept.id]
                .iter()
                .all(|id| upstream[id]["registrations"].as_u64() >= Some(2));
            Ok(both.then_some(upstream))
        },
    )
    .await?;
    for id in [removed.id, kept.id] {
        assert_eq!(upstream[id]["registered"], true, "{upstream}");
        assert_eq!(upstream[id]["granted_secs"], 3600, "{upstream}");
    }
    // Removing a gateway unregisters from it; the scenario checks Expires: 0.
    let (status, body) = s
        .admin(
            "DELETE",
            &format!("/api/v1/routing-gateways/{}", removed.id),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    removed_uas.succeeds().await?;
    // Shutting down unregisters from the rest before the listeners close.
    s.stop().await?;
    kept_uas.succeeds().await
}
