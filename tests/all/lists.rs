//! Number blacklists and whitelists against real calls: each scope (global, account,
//! mapping gateway, routing gateway), exact and prefix entries, caller and callee,
//! checked after the mapping gateway's dial plan, refused with the list's own code,
//! and the call record naming the list and entry.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard_tests::sip::{
    a_call_answered, carrier, put, raw_invite, raw_request, record_of, table, wait_for_no_calls,
    Sipp, Vendor,
};
use switchyard_tests::{eventually, TempDir, TestServer};

/// A raw INVITE from the customer's address (127.0.0.1) to `callee`: its final answer.
async fn invite(s: &TestServer, call_id: &str, callee: &str) -> Result<String> {
    raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite(call_id, callee),
        Duration::from_secs(5),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no answer to {call_id}"))
}

#[tokio::test]
async fn number_lists_refuse_at_each_scope_and_the_record_names_list_and_entry() -> Result<()> {
    let dir = TempDir::new("lists");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    // The dial plan strips an international 00: lists see the number after it.
    carrier(
        &s,
        json!({ "callee_rules": [{ "prefix": "00", "strip": 2 }] }),
        &[&vendor],
    )
    .await?;

    // Global, callee, prefix entry, a code of the list's own.
    table(&s, "satellite", "881,prefix\n8821234,\n").await?;
    put(
        &s,
        "/api/v1/number-lists/no-satellite",
        json!({ "scope": "global", "table": "satellite", "code": 603, "reason": "Satellite Barred" }),
    )
    .await?;
    let answer = invite(&s, "bl-prefix", "0088112345").await?;
    assert!(
        answer.starts_with("SIP/2.0 603 Satellite Barred"),
        "{answer}"
    );
    assert!(
        answer.contains("entry 881"),
        "the Reason header says why: {answer}"
    );
    let r = record_of(&s, "bl-prefix").await?;
    assert_eq!(r["reason"], "number_listed", "{r}");
    assert_eq!(r["final_code"], 603, "{r}");
    assert_eq!(
        r["refused_by"],
        json!({ "list": "no-satellite", "entry": "881", "number": "88112345", "side": "callee" }),
        "{r}"
    );
    assert!(r["attempts"].as_array().is_some_and(Vec::is_empty), "{r}");

    // Account, callee, an allow list: only 44… and one exact number get through.
    table(&s, "acme-allowed", "44,prefix\n3312345,exact\n").await?;
    put(
        &s,
        "/api/v1/number-lists/acme-only",
        json!({ "scope": "account:acme", "kind": "allow", "table": "acme-allowed" }),
    )
    .await?;
    let answer = invite(&s, "wl-miss", "33123456").await?;
    assert!(
        answer.starts_with("SIP/2.0 403 Number Not Allowed"),
        "{answer}"
    );
    let r = record_of(&s, "wl-miss").await?;
    assert_eq!(
        r["refused_by"],
        json!({ "list": "acme-only", "entry": null, "number": "33123456", "side": "callee" }),
        "an exact entry is not a prefix: {r}"
    );

    // Routing gateway: the vendor refuses 4479…, so its attempt is skipped.
    table(&s, "vendor-a-barred", "4479,prefix\n").await?;
    put(
        &s,
        "/api/v1/number-lists/vendor-a-barred",
        json!({ "scope": "routing-gateway:vendor-a", "table": "vendor-a-barred" }),
    )
    .await?;
    let answer = invite(&s, "rg-barred", "447912345678").await?;
    assert!(answer.starts_with("SIP/2.0 503"), "{answer}");
    let r = record_of(&s, "rg-barred").await?;
    let attempt = &r["attempts"][0];
    assert_eq!(attempt["gateway"], "vendor-a", "{r}");
    assert_eq!(attempt["leg_call_id"], "", "nothing was sent: {r}");
    assert!(
        attempt["reason"]
            .as_str()
            .is_some_and(|w| w.contains("vendor-a-barred") && w.contains("entry 4479")),
        "{r}"
    );

    // A call on no list (and on the allow list, and the exact whitelisted number)
    // goes through.
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 2)?;
    for callee in ["442071234567", "003312345"] {
        Sipp::uac(s.server.sip.addr, &["-sn", "uac", "-s", callee], 1, 1)?
            .succeeds()
            .await?;
    }
    uas.succeeds().await?;

    // Mapping gateway, caller, exact entry: the raw INVITEs' caller is "tester".
    table(&s, "bad-callers", "tester\n").await?;
    put(
        &s,
        "/api/v1/number-lists/bad-callers",
        json!({ "scope": "mapping-gateway:customers", "number": "caller", "table": "bad-callers" }),
    )
    .await?;
    let answer = invite(&s, "caller-barred", "442071234567").await?;
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    let r = record_of(&s, "caller-barred").await?;
    assert_eq!(r["refused_by"]["side"], "caller", "{r}");
    assert_eq!(r["refused_by"]["entry"], "tester", "{r}");

    // A disabled list is kept but not checked.
    put(
        &s,
        "/api/v1/number-lists/no-satellite",
        json!({ "scope": "global", "table": "satellite", "enabled": false }),
    )
    .await?;
    put(
        &s,
        "/api/v1/number-lists/bad-callers",
        json!({ "scope": "mapping-gateway:customers", "number": "caller", "table": "bad-callers", "enabled": false }),
    )
    .await?;
    let r = {
        let answer = invite(&s, "disabled", "0088112345").await?;
        assert!(
            !answer.contains("Satellite Barred"),
            "the disabled list refused: {answer}"
        );
        record_of(&s, "disabled").await?
    };
    assert_eq!(
        r["refused_by"]["list"], "acme-only",
        "the allow list still holds: {r}"
    );

    // Bad lists are refused with the reason.
    for (body, why) in [
        (
            json!({ "scope": "gateway:x", "table": "t" }),
            "routing-gateway:<id>",
        ),
        (
            json!({ "scope": "global", "table": "t", "code": 200 }),
            "200",
        ),
        (json!({ "scope": "global", "table": "" }), "table"),
    ] {
        let (status, answer) = s
            .admin("PUT", "/api/v1/number-lists/bad", Some(body))
            .await?;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(why), "{answer}");
    }
    wait_for_no_calls(&s).await?;
    s.stop().await
}

async fn auto_listed(s: &TestServer) -> Result<Vec<Value>> {
    let (status, body) = s
        .admin("GET", "/api/v1/security/auto-blacklist", None)
        .await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(body.as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn the_dynamic_blacklist_lists_a_failing_number_until_lifted_or_lapsed() -> Result<()> {
    let dir = TempDir::new("lists-auto");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.auto_blacklist = switchyard::sip::auto_blacklist::AutoBlacklistConfig {
            min_calls: 3,
            window_secs: 60,
            max_bad_ratio: 0.6,
            list_secs: 2,
            ..Default::default()
        }
    })
    .await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let busy = switchyard_tests::sip::scenario("uas_busy.xml");
    let uas = Sipp::uas(vendor.port, &["-sf", &busy.to_string_lossy()], 7)?;
    let busy_calls = |tag: &'static str| {
        let s = &s;
        async move {
            for i in 0..3 {
                let answer = invite(s, &format!("{tag}-{i}"), "442071234567").await?;
                anyhow::ensure!(answer.starts_with("SIP/2.0 486"), "{answer}");
            }
            Ok::<_, anyhow::Error>(())
        }
    };
    busy_calls("busy").await?;
    let answer = invite(&s, "listed", "442071234567").await?;
    assert!(
        answer.starts_with("SIP/2.0 403 Number Blacklisted"),
        "{answer}"
    );
    let r = record_of(&s, "listed").await?;
    assert_eq!(
        r["refused_by"],
        json!({ "list": "auto-blacklist", "entry": "tester", "number": "tester", "side": "caller" }),
        "{r}"
    );
    let listed = auto_listed(&s).await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (&listed[0]["number"], &listed[0]["tenant"]),
        (&json!("tester"), &json!("default"))
    );
    assert!(
        listed[0]["reason"]
            .as_str()
            .is_some_and(|w| w.contains("3 of 3")),
        "{listed:?}"
    );

    // Lifted by an operator: the next call goes to the vendor again.
    let (status, _) = s
        .admin("DELETE", "/api/v1/security/auto-blacklist/tester", None)
        .await?;
    assert_eq!(status, 204);
    busy_calls("again").await?;
    let answer = invite(&s, "listed-again", "442071234567").await?;
    assert!(
        answer.starts_with("SIP/2.0 403 Number Blacklisted"),
        "{answer}"
    );
    // Lapsed after its 2 s.
    let until = auto_listed(&s).await?[0]["until_ms"].as_u64().unwrap_or(0);
    eventually(Duration::from_secs(5), "the listing to lapse", || async {
        Ok((switchyard::now_ms() > until).then_some(()))
    })
    .await?;
    let answer = invite(&s, "lapsed", "442071234567").await?;
    assert!(answer.starts_with("SIP/2.0 486"), "{answer}");
    assert!(auto_listed(&s).await?.is_empty());
    uas.succeeds().await?;
    s.stop().await
}

#[tokio::test]
async fn the_dynamic_blacklist_lists_a_number_holding_too_many_calls() -> Result<()> {
    let dir = TempDir::new("lists-auto-concurrent");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.auto_blacklist = switchyard::sip::auto_blacklist::AutoBlacklistConfig {
            max_concurrent: 1,
            ..Default::default()
        }
    })
    .await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    // SIPp's caller is "sipp"; it holds its call for 3 s.
    let first = Sipp::uac(
        s.server.sip.addr,
        &["-sn", "uac", "-s", "442071234567", "-d", "3000"],
        1,
        1,
    )?;
    a_call_answered(&s).await?;
    let second = raw_request(
        "127.0.0.1:0",
        s.server.sip.addr,
        &raw_invite("second", "442071234568").replace("sip:tester@", "sip:sipp@"),
        Duration::from_secs(5),
    )
    .await?
    .unwrap_or_default();
    assert!(
        second.starts_with("SIP/2.0 403 Number Blacklisted"),
        "{second}"
    );
    let listed = auto_listed(&s).await?;
    assert!(
        listed[0]["reason"]
            .as_str()
            .is_some_and(|w| w.contains("2 calls at once")),
        "{listed:?}"
    );
    first.succeeds().await?;
    uas.succeeds().await?;
    wait_for_no_calls(&s).await?;
    s.stop().await
}

async fn invite_from(s: &TestServer, from: &str, call_id: &str) -> Result<String> {
    raw_request(
        from,
        s.server.sip.addr,
        &raw_invite(call_id, "442071234567"),
        Duration::from_secs(5),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no answer to {call_id}"))
}

#[tokio::test]
async fn a_tenants_address_lists_refuse_sources_its_gateways_would_take() -> Result<()> {
    let dir = TempDir::new("lists-address");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({ "sources": ["127.0.0.0/8"] }), &[&vendor]).await?;
    let busy = switchyard_tests::sip::scenario("uas_busy.xml");
    let uas = Sipp::uas(vendor.port, &["-sf", &busy.to_string_lossy()], 2)?;
    put(
        &s,
        "/api/v1/address-lists/bad-hosts",
        json!({ "sources": ["127.0.0.6", "127.0.1.0/24"] }),
    )
    .await?;
    // Another tenant's list says nothing about this tenant's calls.
    put(
        &s,
        "/api/v1/address-lists/theirs?tenant=other",
        json!({ "sources": ["127.0.0.1"] }),
    )
    .await?;
    let answer = invite_from(&s, "127.0.0.6:0", "denied").await?;
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    let r = record_of(&s, "denied").await?;
    assert_eq!(r["reason"], "address_listed", "{r}");
    assert!(
        r["final_reason"]
            .as_str()
            .is_some_and(|w| w.contains("bad-hosts") && w.contains("127.0.0.6")),
        "{r}"
    );
    assert!(invite_from(&s, "127.0.1.9:0", "denied-cidr")
        .await?
        .starts_with("SIP/2.0 403"));
    assert!(invite_from(&s, "127.0.0.1:0", "allowed")
        .await?
        .starts_with("SIP/2.0 486"));

    put(
        &s,
        "/api/v1/address-lists/only-these",
        json!({ "kind": "allow", "sources": ["127.0.0.1/32", "127.0.0.2"] }),
    )
    .await?;
    let answer = invite_from(&s, "127.0.0.7:0", "not-allowed").await?;
    assert!(answer.contains("not on allow list only-these"), "{answer}");
    assert!(invite_from(&s, "127.0.0.2:0", "on-allow")
        .await?
        .starts_with("SIP/2.0 486"));
    let (status, bad) = s
        .admin(
            "PUT",
            "/api/v1/address-lists/bad",
            Some(json!({ "sources": ["127.0.0.300"] })),
        )
        .await?;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("127.0.0.300"), "{bad}");
    uas.succeeds().await?;
    s.stop().await
}
