//! The stock fraud rules (examples/fraud-guard) bound for `screen` beside a router
//! bound for the call, against real SIPp calls: calls per minute with warn and block
//! events and a reset per account; sequential dialling; high-risk destinations;
//! concurrency counted from the calls in progress with a duration cap, so calls that
//! ended stop counting.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard_tests::sip::{
    a_call_answered, call_records, carrier, put, raw_invite, raw_request, record_of, scenario,
    table, wait_for_no_calls, Sipp, Vendor,
};
use switchyard_tests::{eventually, guest, version_of, TempDir, TestServer, ADMIN};

/// The carrier of the SIP tests with the fraud rules bound globally for `screen`.
async fn screened_carrier(s: &TestServer, vendor: &Vendor) -> Result<()> {
    carrier(s, json!({}), &[vendor]).await?;
    let module = guest("fraud_guard");
    let version = version_of(&module);
    let (status, body) = s.upload(ADMIN, "fraud-guard", module).await?;
    anyhow::ensure!(status == 201, "upload: {status} {body}");
    put(
        s,
        "/api/v1/bindings/global?hook=screen",
        json!({ "module": "fraud-guard", "version": version, "deadline_ms": 200 }),
    )
    .await
}

/// One SIPp call to `callee` answered by a SIPp vendor.
async fn completed_call(s: &TestServer, vendor: &Vendor, callee: &str) -> Result<()> {
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac", "-s", callee], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await
}

/// A raw INVITE's final answer (for calls the screen refuses before any vendor).
async fn refused(s: &TestServer, call_id: &str, callee: &str) -> Result<String> {
    raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite(call_id, callee),
        Duration::from_secs(5),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no answer to {call_id}"))
}

async fn fraud_events(s: &TestServer) -> Result<Vec<Value>> {
    let (status, body) = s.admin("GET", "/api/v1/events?kind=fraud", None).await?;
    anyhow::ensure!(status == 200, "events: {status} {body}");
    Ok(body.as_array().cloned().unwrap_or_default())
}

fn details(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .rev()
        .map(|e| {
            let detail = e["detail"].as_str().unwrap_or_default();
            format!(
                "{} {}",
                e["level"].as_str().unwrap_or_default(),
                detail.split(':').next().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn fraud_rules_screen_beside_the_router_and_warn_block_and_reset_per_account() -> Result<()> {
    let dir = TempDir::new("fraud-cpm");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    screened_carrier(&s, &vendor).await?;
    // The two bindings are apart: the router serves the call, the fraud rules screen.
    let (_, call) = s.admin("GET", "/api/v1/bindings/global", None).await?;
    let (_, screen) = s
        .admin("GET", "/api/v1/bindings/global?hook=screen", None)
        .await?;
    assert_eq!(
        (&call["module"], &call["hook"]),
        (&json!("router"), &json!("call"))
    );
    assert_eq!(
        (&screen["module"], &screen["hook"]),
        (&json!("fraud-guard"), &json!("screen"))
    );

    // acme: warn past 1 call a minute, block past 2.
    table(&s, "fraud-accounts", "acme,1,2\n").await?;
    completed_call(&s, &vendor, "442071234567").await?;
    completed_call(&s, &vendor, "442071234568").await?;
    let answer = refused(&s, "cpm-3", "442071234569").await?;
    assert!(
        answer.starts_with("SIP/2.0 503 Call Rate Limit"),
        "{answer}"
    );
    let events = fraud_events(&s).await?;
    assert_eq!(
        details(&events),
        ["warn warn calls-per-minute", "error block calls-per-minute"],
        "{events:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["subject"] == "acme" && e["module"] == "fraud-guard"));
    assert_eq!(events[0]["call_id"], "cpm-3", "{events:?}");
    let r = record_of(&s, "cpm-3").await?;
    assert_eq!(
        (&r["reason"], &r["final_code"]),
        (&json!("rejected_by_module"), &json!(503)),
        "{r}"
    );

    // Reset acme: its next call goes through.
    let (status, reset) = s
        .admin(
            "POST",
            "/api/v1/modules/fraud-guard/reset",
            Some(json!({ "prefix": "a:acme:" })),
        )
        .await?;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["counters"], 1, "the account's one counter: {reset}");
    completed_call(&s, &vendor, "442071234570").await?;

    // Unbinding the screen leaves the router screening (its default lets calls by).
    let (status, _) = s
        .admin("DELETE", "/api/v1/bindings/global?hook=screen", None)
        .await?;
    assert_eq!(status, 200);
    completed_call(&s, &vendor, "442071234571").await?;
    completed_call(&s, &vendor, "442071234572").await?;
    // …and the screen's rollback restores it.
    let (status, back) = s
        .admin("POST", "/api/v1/bindings/global/rollback?hook=screen", None)
        .await?;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["binding"]["module"], "fraud-guard", "{back}");
    // The counters went on from the reset: one call since, one more now, then refused.
    completed_call(&s, &vendor, "442071234573").await?;
    let answer = refused(&s, "cpm-after-rollback", "442071234574").await?;
    assert!(
        answer.starts_with("SIP/2.0 503 Call Rate Limit"),
        "{answer}"
    );
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn sequential_dialling_and_high_risk_destinations_are_blocked() -> Result<()> {
    let dir = TempDir::new("fraud-seq");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    screened_carrier(&s, &vendor).await?;
    table(&s, "fraud-accounts", ",,,0,2\n").await?;
    table(&s, "fraud-high-risk", "881,block\n252,warn\n").await?;
    completed_call(&s, &vendor, "4420700").await?;
    completed_call(&s, &vendor, "4420701").await?;
    let answer = refused(&s, "seq-3", "4420702").await?;
    assert!(
        answer.starts_with("SIP/2.0 403 Sequential Dialling"),
        "{answer}"
    );
    let answer = refused(&s, "risk", "88112345").await?;
    assert!(
        answer.starts_with("SIP/2.0 403 High-Risk Destination"),
        "{answer}"
    );
    completed_call(&s, &vendor, "25261234").await?;
    let events = fraud_events(&s).await?;
    assert_eq!(
        details(&events),
        [
            "error block sequential",
            "error block high-risk",
            "warn warn high-risk"
        ],
        "{events:?}"
    );
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn concurrency_follows_the_calls_in_progress_and_a_destination_caps_duration() -> Result<()> {
    let dir = TempDir::new("fraud-concurrent");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    screened_carrier(&s, &vendor).await?;
    // 4420: at most one call at once, each cut after 2 s.
    table(&s, "fraud-destinations", "4420,,,0,1,2\n").await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 2)?;
    let held = scenario("uac_until_bye.xml");
    let first = Sipp::uac(
        s.server.sip.addr,
        &["-sf", &held.to_string_lossy(), "-s", "442071234567"],
        1,
        1,
    )?;
    a_call_answered(&s).await?;
    let answer = refused(&s, "second-at-once", "442071234568").await?;
    assert!(
        answer.starts_with("SIP/2.0 503 Too Many Concurrent Calls"),
        "{answer}"
    );
    first.succeeds().await?;
    let r = eventually(
        Duration::from_secs(10),
        "the first call's record",
        || async {
            Ok(call_records(&s)
                .await?
                .into_iter()
                .find(|r| r["callee_in"] == "442071234567"))
        },
    )
    .await?;
    assert_eq!(r["reason"], "max_duration", "{r}");
    let held_ms = r["end_ms"].as_u64().unwrap_or(0) - r["answer_ms"].as_u64().unwrap_or(0);
    assert!((2_000..2_900).contains(&held_ms), "held {held_ms} ms: {r}");
    // The ended call no longer counts: the next one is let through.
    Sipp::uac(
        s.server.sip.addr,
        &["-sn", "uac", "-s", "442071234569"],
        1,
        1,
    )?
    .succeeds()
    .await?;
    uas.succeeds().await?;
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn a_new_data_directory_binds_the_stock_fraud_rules_beside_the_stock_router() -> Result<()> {
    let dir = TempDir::new("fraud-demo");
    let s = TestServer::start_configured(&dir.0, |c| c.demo = true).await?;
    let (status, bindings) = s.admin("GET", "/api/v1/bindings", None).await?;
    assert_eq!(status, 200, "{bindings}");
    let bound: Vec<_> = bindings
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| (b["scope"].clone(), b["hook"].clone(), b["module"].clone()))
        .collect();
    assert_eq!(
        bound,
        [
            (json!("global"), json!("call"), json!("stock-router")),
            (json!("global"), json!("screen"), json!("fraud-guard")),
        ]
    );
    s.stop().await
}
