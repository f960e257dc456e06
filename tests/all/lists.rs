//! Number blacklists and whitelists against real calls: each scope (global, account,
//! mapping gateway, routing gateway), exact and prefix entries, caller and callee,
//! checked after the mapping gateway's dial plan, refused with the list's own code,
//! and the call record naming the list and entry.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard_tests::sip::{
    call_records, carrier, put, raw_invite, raw_request, wait_for_no_calls, Sipp, Vendor,
};
use switchyard_tests::{eventually, TempDir, TestServer, ADMIN};

/// Load a data table from CSV text as the admin.
async fn table(s: &TestServer, name: &str, csv: &str) -> Result<()> {
    let (status, body) = s
        .call(
            "PUT",
            &format!("/api/v1/tables/{name}"),
            ADMIN,
            Some(switchyard_tests::Body::Bytes(
                csv.as_bytes().to_vec(),
                "text/csv",
            )),
        )
        .await?;
    anyhow::ensure!(status == 200, "table {name}: {status} {body}");
    Ok(())
}

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

async fn record(s: &TestServer, call_id: &str) -> Result<Value> {
    eventually(Duration::from_secs(10), "the call's record", || async {
        Ok(call_records(s)
            .await?
            .into_iter()
            .find(|r| r["call_id"] == call_id))
    })
    .await
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
    let r = record(&s, "bl-prefix").await?;
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
    let r = record(&s, "wl-miss").await?;
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
    let r = record(&s, "rg-barred").await?;
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
    let r = record(&s, "caller-barred").await?;
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
        record(&s, "disabled").await?
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
