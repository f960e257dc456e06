//! Real-time billing end to end: an account with a per-second rate and a small
//! balance, SIPp callers and vendors on loopback, balances and call records over REST.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard_tests::sip::{
    carrier, raw_invite, raw_request, scenario, wait_for_no_calls, wait_for_records, Sipp, Vendor,
};
use switchyard_tests::{Body, TempDir, TestServer, ADMIN};

/// 0.60 a minute, billed per second (0.01 a second), for every 44 number.
async fn bill_acme(s: &TestServer, balance: f64, credit: Option<f64>) -> Result<()> {
    let (status, body) = s
        .call(
            "PUT",
            "/api/v1/tables/acme-rates",
            ADMIN,
            Some(Body::Bytes(b"44,0.60,0,1,1\n".to_vec(), "text/csv")),
        )
        .await?;
    anyhow::ensure!(status == 200, "rates: {status} {body}");
    let account = match credit {
        Some(c) => json!({ "rate_table": "acme-rates", "prepaid": false, "credit_limit": c }),
        None => json!({ "rate_table": "acme-rates" }),
    };
    let (status, body) = s
        .admin("PUT", "/api/v1/accounts/acme", Some(account))
        .await?;
    anyhow::ensure!(status == 200, "account: {status} {body}");
    // The balance is not the PUT's to set once the account exists: it takes a payment.
    let (status, body) = s
        .admin(
            "POST",
            "/api/v1/accounts/acme/payments",
            Some(json!({ "amount": balance })),
        )
        .await?;
    anyhow::ensure!(status == 200, "payment: {status} {body}");
    Ok(())
}

async fn balance(s: &TestServer) -> Result<f64> {
    let (status, body) = s.admin("GET", "/api/v1/accounts/acme", None).await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    body["balance"]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("no balance in {body}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn a_call_is_cut_when_the_balance_runs_out_and_then_calls_are_refused() -> Result<()> {
    let dir = TempDir::new("billing-cut");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    bill_acme(&s, 0.03, None).await?;
    assert!(close(balance(&s).await?, 0.03));
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    let held = scenario("uac_until_bye.xml");
    Sipp::uac(
        s.server.sip.addr,
        &["-sf", &held.to_string_lossy(), "-s", "442071234567"],
        1,
        1,
    )?
    .succeeds()
    .await?;
    uas.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["reason"], "balance_exhausted", "{r}");
    // 0.03 buys 3 s: the call is cut then, both legs get a BYE.
    let held_ms = r["end_ms"].as_u64().unwrap_or(0) - r["answer_ms"].as_u64().unwrap_or(0);
    assert!((3_000..3_900).contains(&held_ms), "held {held_ms} ms: {r}");
    let b = &r["billing"];
    assert_eq!(b["billed_secs"], 3, "{r}");
    assert!(close(b["charge"].as_f64().unwrap_or(-1.0), 0.03), "{r}");
    assert!(
        close(b["balance_after"].as_f64().unwrap_or(-1.0), 0.0),
        "{r}"
    );
    assert_eq!(b["rate_prefix"], "44", "{r}");
    assert!(close(balance(&s).await?, 0.0));

    // Nothing left: the next call is refused before any vendor INVITE.
    let answer = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("broke-1", "442071234567"),
        Duration::from_secs(2),
    )
    .await?
    .unwrap_or_default();
    assert!(
        answer.starts_with("SIP/2.0 402 Payment Required"),
        "{answer}"
    );
    let records = wait_for_records(&s, 2).await?;
    let refused = records
        .iter()
        .find(|r| r["call_id"] == "broke-1")
        .expect("a record");
    assert_eq!(refused["reason"], "insufficient_balance", "{refused}");
    assert_eq!(refused["attempts"], json!([]), "{refused}");
    query_the_records(&s).await?;
    wait_for_no_calls(&s).await?;
    s.stop().await
}

/// The two records of the test above (one cut answered call, one 402) through the
/// query filters, pagination and the CSV export.
async fn query_the_records(s: &TestServer) -> Result<()> {
    let ids = |body: &Value| -> Vec<String> {
        body["calls"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["call_id"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let get = |q: String| async move {
        let (status, body) = s.admin("GET", &format!("/api/v1/calls?{q}"), None).await?;
        anyhow::ensure!(status == 200, "{q}: {status} {body}");
        anyhow::Ok(body)
    };
    let answered = get("result=answered".into()).await?;
    assert_eq!(ids(&answered).len(), 1, "{answered}");
    assert_ne!(ids(&answered)[0], "broke-1");
    assert_eq!(ids(&get("result=failed".into()).await?), ["broke-1"]);
    assert_eq!(ids(&get("callee=2071".into()).await?).len(), 2);
    assert!(ids(&get("caller=nobody".into()).await?).is_empty());
    assert_eq!(ids(&get("account=acme".into()).await?).len(), 2);
    assert_eq!(ids(&get("gateway=customers".into()).await?).len(), 2);
    assert_eq!(ids(&get("gateway=vendor-a".into()).await?), ids(&answered));
    let later = switchyard::now_ms() + 3_600_000;
    assert!(ids(&get(format!("from_ms={later}")).await?).is_empty());
    // Newest first, one per page.
    let first = get("limit=1".into()).await?;
    assert_eq!(ids(&first), ["broke-1"]);
    let cursor = first["next"].as_str().expect("a next page").to_string();
    let second = get(format!("limit=1&before={cursor}")).await?;
    assert_eq!(ids(&second), ids(&answered));
    let (status, _) = s.admin("GET", "/api/v1/calls?before=zz", None).await?;
    assert_eq!(status, 400);
    // CSV export.
    let (status, csv) = s
        .call("GET", "/api/v1/calls?format=csv", ADMIN, None)
        .await?;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap_or_default().to_string();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("call_id,account,"), "{csv}");
    assert!(lines[1].starts_with("broke-1,acme,customers,,"), "{csv}");
    // The refusal says why in final_reason, quoted for its comma.
    assert!(
        lines[1].contains(
            r#",402,insufficient_balance,"balance covers 0.000000, the first increment costs 0.010000",failed,"#
        ),
        "{csv}"
    );
    assert!(
        lines[2].contains(",balance_exhausted,,answered,0.030000,"),
        "{csv}"
    );
    Ok(())
}

#[tokio::test]
async fn a_number_without_a_rate_is_refused_and_no_call_is_carried_unbilled() -> Result<()> {
    let dir = TempDir::new("billing-no-rate");
    let s = TestServer::start(&dir.0).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    // An account without a rate table carries nothing (spec decision 16).
    let (status, _) = s
        .admin("PUT", "/api/v1/accounts/acme", Some(json!({})))
        .await?;
    assert_eq!(status, 200);
    let answer = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("unrated-1", "442071234567"),
        Duration::from_secs(2),
    )
    .await?
    .unwrap_or_default();
    assert!(answer.starts_with("SIP/2.0 404 No Rate"), "{answer}");
    assert!(answer.contains("no rate table"), "{answer}");
    bill_acme(&s, 10.0, None).await?;
    let answer = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("norate-1", "33123456"),
        Duration::from_secs(2),
    )
    .await?
    .unwrap_or_default();
    assert!(answer.starts_with("SIP/2.0 404 No Rate"), "{answer}");
    let records = wait_for_records(&s, 2).await?;
    assert!(
        records.iter().all(|r| r["reason"] == "no_rate"),
        "{records:?}"
    );
    assert!(close(balance(&s).await?, 10.0));
    s.stop().await
}

#[tokio::test]
async fn concurrent_calls_share_the_balance_without_overspending() -> Result<()> {
    let dir = TempDir::new("billing-concurrent");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    // Postpaid: 0.02 on the account plus 0.03 of credit buy 5 s in all.
    bill_acme(&s, 0.02, Some(0.03)).await?;
    let _uas = Sipp::uas(vendor.port, &["-sn", "uas"], 2)?;
    let held = scenario("uac_until_bye.xml");
    // Two calls at once, each willing to talk until hung up on. Whether the second is
    // refused at setup or cut at answer depends on timing; the money may not.
    let caller = Sipp::uac(
        s.server.sip.addr,
        &["-sf", &held.to_string_lossy(), "-s", "4420"],
        2,
        10,
    )?;
    let records = wait_for_records(&s, 2).await?;
    drop(caller);
    let charged: f64 = records
        .iter()
        .filter_map(|r| r["billing"]["charge"].as_f64())
        .sum();
    assert!(charged <= 0.05 + 1e-9, "overspent: {charged} {records:?}");
    assert!(
        charged >= 0.04 - 1e-9,
        "the first call used the money: {charged} {records:?}"
    );
    let left = balance(&s).await?;
    assert!(
        close(left, 0.02 - charged),
        "balance {left} after {charged}"
    );
    assert!(left >= -0.03 - 1e-9, "below the credit limit: {left}");
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn number_sections_and_the_account_call_limit_refuse_calls() -> Result<()> {
    let dir = TempDir::new("billing-sections");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/accounts/acme",
            Some(
                json!({ "rate_table": "acme-free", "allowed_prefixes": ["44"],
                        "blocked_prefixes": ["4490"], "max_calls": 1 }),
            ),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/routing-gateways/vendor-a",
            Some(json!({ "address": format!("127.0.0.1:{}", vendor.port), "progress_timeout_ms": 1500 })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let ask = |call_id: &'static str, callee: &'static str, wait_ms: u64| {
        let invite = raw_invite(call_id, callee);
        let to = s.server.sip.addr;
        async move {
            raw_request("127.0.0.1:0", to, &invite, Duration::from_millis(wait_ms))
                .await
                .map(Option::unwrap_or_default)
        }
    };
    for (call_id, callee) in [("france", "33123456"), ("premium", "449012345")] {
        let answer = ask(call_id, callee, 2_000).await?;
        assert!(answer.starts_with("SIP/2.0 403"), "{callee}: {answer}");
    }
    // One call at a time for the account: a ringing call holds its place.
    let uas = Sipp::uas(
        vendor.port,
        &["-sf", &scenario("uas_ring.xml").to_string_lossy()],
        1,
    )?;
    let first = ask("first", "442071234567", 3_000).await?;
    assert!(first.starts_with("SIP/2.0 180"), "{first}");
    let (_, stats) = s.admin("GET", "/api/v1/stats", None).await?;
    assert_eq!(stats["accounts"]["acme"]["current_calls"], 1, "{stats}");
    let second = ask("second", "442071234567", 2_000).await?;
    assert!(
        second.starts_with("SIP/2.0 503") && second.contains("account concurrent call limit 1"),
        "{second}"
    );
    uas.succeeds().await?;
    let records = wait_for_records(&s, 4).await?;
    let reason = |id: &str| {
        records
            .iter()
            .find(|r| r["call_id"] == id)
            .map(|r| r["reason"].clone())
    };
    assert_eq!(reason("france"), Some(json!("number_not_allowed")));
    assert_eq!(reason("premium"), Some(json!("number_not_allowed")));
    assert_eq!(reason("second"), Some(json!("limit")));
    wait_for_no_calls(&s).await?;
    s.stop().await
}

#[tokio::test]
async fn a_100000_prefix_rate_table_loads_and_exports_as_loaded() -> Result<()> {
    let dir = TempDir::new("billing-bulk");
    let s = TestServer::start(&dir.0).await?;
    let csv: String = (0..100_000)
        .map(|i| format!("{},0.{:04},0,60,6\n", 100_000 + i, i % 10_000))
        .collect();
    let (status, body) = s
        .call(
            "PUT",
            "/api/v1/tables/bulk-rates",
            ADMIN,
            Some(Body::Bytes(csv.clone().into_bytes(), "text/csv")),
        )
        .await?;
    assert_eq!((status, &body["rows"]), (200, &json!(100_000)), "{body}");
    let (status, exported) = s
        .call("GET", "/api/v1/tables/bulk-rates?format=csv", ADMIN, None)
        .await?;
    assert_eq!(status, 200);
    assert!(
        exported.as_str() == Some(csv.as_str()),
        "the export differs from the import"
    );
    s.stop().await
}

#[tokio::test]
async fn calendars_are_checked_when_stored() -> Result<()> {
    let dir = TempDir::new("billing-calendars");
    let s = TestServer::start(&dir.0).await?;
    let bad = json!({ "time_zone": "Mars/Olympus" });
    let (status, body) = s.admin("PUT", "/api/v1/calendars/uk", Some(bad)).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("IANA"), "{body}");
    let good = json!({ "time_zone": "Europe/London", "holidays": ["2026-12-25"],
        "periods": [{ "name": "night", "start": "22:00", "end": "06:00" }] });
    let (status, body) = s.admin("PUT", "/api/v1/calendars/uk", Some(good)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["working_days"], json!([1, 2, 3, 4, 5]), "{body}");
    let account = json!({ "calendar": "uk", "period_rate_tables": { "night": "night-rates" } });
    let (status, body) = s
        .admin("PUT", "/api/v1/accounts/acme", Some(account))
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["period_rate_tables"]["night"], "night-rates");
    s.stop().await
}

#[tokio::test]
async fn gateway_media_and_identity_settings_are_checked_when_stored() -> Result<()> {
    let dir = TempDir::new("billing-gateway-settings");
    let s = TestServer::start(&dir.0).await?;
    let (status, body) = put(&s, "/api/v1/accounts/acme", json!({})).await?;
    assert_eq!(status, 200, "{body}");
    let customer = json!({ "account": "acme", "caller_source": "remote_party_id",
        "support_privacy": true,
        "media": { "proxy": "on", "codec_mode": "specified", "codec": "PCMA",
                   "allow_conversion": true } });
    let (status, body) = put(&s, "/api/v1/mapping-gateways/c1", customer).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["media"]["codec"], &body["media"]["rfc2833_payload"]),
        (&json!("PCMA"), &json!(101))
    );
    let vendor = json!({ "pai": "caller", "privacy": "passthrough", "ppi": "none",
        "caller_pool": { "numbers": ["4420000001", "4420000002"], "multiplexes": 1 },
        "media": { "codec_mode": "specified", "codec": "G729", "g729": "g729_and_g729a",
                   "dtmf_send": "info", "use_peer_rfc2833": false } });
    let (status, body) = put(&s, "/api/v1/routing-gateways/v1", vendor).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["caller_pool"]["selection"], "round_robin", "{body}");
    for (path, bad, why) in [
        (
            "/api/v1/routing-gateways/v2",
            json!({ "media": { "codec_mode": "specified" } }),
            "codec",
        ),
        (
            "/api/v1/routing-gateways/v2",
            json!({ "media": { "rfc2833_payload": 8 } }),
            "96-127",
        ),
        (
            "/api/v1/routing-gateways/v2",
            json!({ "pai": "always" }),
            "unknown variant",
        ),
        (
            "/api/v1/routing-gateways/v2",
            json!({ "caller_pool": { "numbers": [] } }),
            "empty",
        ),
        (
            "/api/v1/mapping-gateways/c2",
            json!({ "account": "acme", "media": { "proxy": "must" } }),
            "unknown variant",
        ),
    ] {
        let (status, body) = put(&s, path, bad).await?;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(why), "{why}: {body}");
    }
    s.stop().await
}

async fn put(s: &TestServer, path: &str, body: Value) -> Result<(u16, Value)> {
    s.admin("PUT", path, Some(body)).await
}

#[tokio::test]
async fn an_agents_number_sections_bind_its_sub_accounts() -> Result<()> {
    let dir = TempDir::new("billing-agents");
    let s = TestServer::start(&dir.0).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    let (status, body) = put(&s, "/api/v1/accounts/acme", json!({ "parent": "nobody" })).await?;
    assert_eq!(status, 400, "a parent that does not exist: {body}");
    let (status, body) = put(
        &s,
        "/api/v1/accounts/reseller",
        json!({ "allowed_prefixes": ["880"] }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(&s, "/api/v1/accounts/acme", json!({ "parent": "reseller" })).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(&s, "/api/v1/accounts/reseller", json!({ "parent": "acme" })).await?;
    assert_eq!(status, 400, "a loop: {body}");
    let (status, body) = s.admin("DELETE", "/api/v1/accounts/reseller", None).await?;
    assert_eq!(status, 409, "an agent with sub-accounts: {body}");
    // acme itself allows everything; its agent only 880.
    let answer = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("uk-1", "442071234567"),
        Duration::from_secs(2),
    )
    .await?
    .unwrap_or_default();
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(r["reason"], "number_not_allowed", "{r}");
    s.stop().await
}
