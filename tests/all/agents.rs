//! Agent (reseller) tokens: an agent sees and changes only its own subtree, as far as
//! its eight authorisation flags allow, and a sub-agent never holds more than its parent.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard_tests::sip::{raw_invite, raw_request, wait_for_records};
use switchyard_tests::{Body, TempDir, TestServer};

/// An agent token for `account`.
async fn agent_token(s: &TestServer, name: &str, account: &str) -> Result<String> {
    let (status, body) = s
        .admin(
            "POST",
            "/api/v1/tokens",
            Some(json!({ "name": name, "role": "agent", "account": account })),
        )
        .await?;
    anyhow::ensure!(status == 201, "agent token: {status} {body}");
    Ok(body["token"].as_str().unwrap_or_default().to_string())
}

/// `method path` as `token` with a JSON body.
async fn ask(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    s.call(method, path, token, body.map(Body::Json)).await
}

/// The ids in a listing.
fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn an_agent_works_only_in_its_subtree_and_within_its_flags() -> Result<()> {
    let dir = TempDir::new("agents");
    let s = TestServer::start(&dir.0).await?;
    let top_flags = json!([
        "accounts",
        "phones",
        "add_delete_gateways",
        "modify_gateways",
        "own_payments",
        "sub_account_payments"
    ]);
    for (id, body) in [
        ("top", json!({ "permissions": top_flags })),
        ("other", json!({ "enabled": false })),
    ] {
        let (status, answer) = s
            .admin("PUT", &format!("/api/v1/accounts/{id}"), Some(body))
            .await?;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, body) = s
        .admin(
            "POST",
            "/api/v1/tokens",
            Some(json!({ "name": "loose", "role": "agent" })),
        )
        .await?;
    assert_eq!(status, 400, "an agent token needs an account: {body}");
    let top = agent_token(&s, "top-agent", "top").await?;

    // Sub-accounts: under its tree, starting at zero, never its own account.
    let sub1 = json!({ "parent": "top", "enabled": false, "permissions": ["accounts", "phones"] });
    let cases = [
        ("sub1", sub1.clone(), 200, "a sub-account"),
        ("sub2", json!({}), 403, "an orphan"),
        (
            "sub2",
            json!({ "parent": "other" }),
            403,
            "under someone else",
        ),
        (
            "sub2",
            json!({ "parent": "top", "balance": 5 }),
            403,
            "minted money",
        ),
        (
            "top",
            json!({ "permissions": top_flags }),
            403,
            "its own account",
        ),
        (
            "other",
            json!({ "parent": "top" }),
            409,
            "another's account",
        ),
        (
            "sub2",
            json!({ "parent": "sub1", "permissions": ["own_payments"] }),
            400,
            "a flag sub1 does not hold",
        ),
        (
            "sub2",
            json!({ "parent": "sub1", "permissions": ["phones"] }),
            200,
            "a sub-sub-account",
        ),
    ];
    for (id, body, want, what) in cases {
        let (status, answer) = ask(
            &s,
            &top,
            "PUT",
            &format!("/api/v1/accounts/{id}"),
            Some(body),
        )
        .await?;
        assert_eq!(status, want, "{what}: {answer}");
    }
    let (_, list) = ask(&s, &top, "GET", "/api/v1/accounts", None).await?;
    assert_eq!(ids(&list, "accounts"), ["sub1", "sub2", "top"]);
    assert_eq!(
        ask(&s, &top, "GET", "/api/v1/accounts/other", None)
            .await?
            .0,
        404
    );
    let (_, direct) = ask(
        &s,
        &top,
        "GET",
        "/api/v1/accounts/top/sub-accounts?direct=true",
        None,
    )
    .await?;
    assert_eq!(ids(&direct, "accounts"), ["sub1"]);
    let (_, all) = ask(&s, &top, "GET", "/api/v1/accounts/top/sub-accounts", None).await?;
    assert_eq!(ids(&all, "accounts"), ["sub1", "sub2"]);

    // The sub-agent sees only its own subtree.
    let sub1_token = agent_token(&s, "sub1-agent", "sub1").await?;
    let (_, list) = ask(&s, &sub1_token, "GET", "/api/v1/accounts", None).await?;
    assert_eq!(ids(&list, "accounts"), ["sub1", "sub2"]);
    assert_eq!(
        ask(&s, &sub1_token, "GET", "/api/v1/accounts/top", None)
            .await?
            .0,
        404
    );

    // Payments: flag 7 for its own account, flag 8 below it; each is kept.
    let pay = |amount: f64| Some(json!({ "amount": amount, "note": "top-up" }));
    let (status, paid) = ask(&s, &top, "POST", "/api/v1/accounts/sub1/payments", pay(2.5)).await?;
    assert_eq!(
        (status, paid["balance_after"].as_f64()),
        (200, Some(2.5)),
        "{paid}"
    );
    assert_eq!(
        ask(&s, &top, "POST", "/api/v1/accounts/top/payments", pay(1.0))
            .await?
            .0,
        200
    );
    assert_eq!(
        ask(
            &s,
            &top,
            "POST",
            "/api/v1/accounts/other/payments",
            pay(1.0)
        )
        .await?
        .0,
        404
    );
    let (status, body) = ask(
        &s,
        &sub1_token,
        "POST",
        "/api/v1/accounts/sub2/payments",
        pay(1.0),
    )
    .await?;
    assert_eq!(status, 403, "sub1 lacks sub_account_payments: {body}");
    let (_, history) = ask(&s, &top, "GET", "/api/v1/accounts/sub1/payments", None).await?;
    let history = history["payments"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (&history[0]["by"], &history[0]["note"]),
        (&json!("top-agent"), &json!("top-up"))
    );

    // Mapping gateways: add with flag 4, change settings with 5, capacity needs 6.
    let gw = |account: &str, source: &str, max_calls: u32| {
        Some(json!({ "account": account, "sources": [source], "max_calls": max_calls }))
    };
    let gw_path = "/api/v1/mapping-gateways/gw-sub1";
    for (body, want, what) in [
        (gw("sub1", "127.0.0.2/32", 0), 200, "a gateway for sub1"),
        (gw("sub1", "127.0.0.4/32", 0), 200, "new sources"),
        (
            gw("sub1", "127.0.0.4/32", 5),
            403,
            "capacity without flag 6",
        ),
        (gw("other", "127.0.0.4/32", 0), 403, "moved out of its tree"),
    ] {
        let (status, answer) = ask(&s, &top, "PUT", gw_path, body).await?;
        assert_eq!(status, want, "{what}: {answer}");
    }
    let (status, _) = s
        .admin(
            "PUT",
            "/api/v1/mapping-gateways/gw-other",
            gw("other", "127.0.0.3/32", 0),
        )
        .await?;
    assert_eq!(status, 200);
    let (_, list) = ask(&s, &top, "GET", "/api/v1/mapping-gateways", None).await?;
    assert_eq!(ids(&list, "mapping-gateways"), ["gw-sub1"]);

    // Phones on its gateways, with flag 2.
    let phone = json!({ "mapping_gateway": "gw-sub1", "password": "secret-123" });
    assert_eq!(
        ask(&s, &top, "PUT", "/api/v1/phones/1001", Some(phone))
            .await?
            .0,
        200
    );
    let phone = json!({ "mapping_gateway": "gw-other", "password": "secret-123" });
    assert_eq!(
        ask(&s, &top, "PUT", "/api/v1/phones/1002", Some(phone))
            .await?
            .0,
        403
    );

    // Everything else is closed to agents.
    for (method, path) in [
        ("GET", "/api/v1/modules"),
        ("GET", "/api/v1/bindings"),
        ("GET", "/api/v1/tables"),
        ("PUT", "/api/v1/routing-gateways/v1"),
        ("GET", "/api/v1/tokens"),
    ] {
        let (status, body) = ask(&s, &top, method, path, Some(json!({}))).await?;
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
    let (_, vendors) = ask(&s, &top, "GET", "/api/v1/routing-gateways", None).await?;
    assert_eq!(ids(&vendors, "routing-gateways"), Vec::<String>::new());

    // Call records: only its subtree's. Both accounts are disabled, so each call is
    // refused with a record.
    for (source, call_id) in [("127.0.0.4:0", "sub1-call"), ("127.0.0.3:0", "other-call")] {
        let answer = raw_request(
            source,
            s.server.sip.addr,
            &raw_invite(call_id, "4420"),
            Duration::from_secs(2),
        )
        .await?
        .unwrap_or_default();
        assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    }
    wait_for_records(&s, 2).await?;
    let (_, calls) = ask(&s, &top, "GET", "/api/v1/calls", None).await?;
    let seen: Vec<&str> = calls["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["call_id"].as_str())
        .collect();
    assert_eq!(seen, ["sub1-call"], "{calls}");
    assert_eq!(
        ask(&s, &top, "GET", "/api/v1/calls/other-call", None)
            .await?
            .0,
        404
    );
    let (_, stats) = ask(&s, &top, "GET", "/api/v1/stats", None).await?;
    let mut accounts: Vec<&String> = stats["accounts"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    accounts.sort();
    assert_eq!(accounts, ["sub1", "sub2", "top"], "{stats}");

    // An agent with sub-accounts cannot be deleted; a leaf can.
    assert_eq!(
        ask(&s, &top, "DELETE", "/api/v1/accounts/sub1", None)
            .await?
            .0,
        409
    );
    assert_eq!(
        ask(&s, &top, "DELETE", "/api/v1/accounts/top", None)
            .await?
            .0,
        403
    );

    // Taking a flag from the top agent takes it from everyone below at once.
    let (status, _) = s
        .admin(
            "PUT",
            "/api/v1/accounts/top",
            Some(json!({ "permissions": ["phones", "own_payments"] })),
        )
        .await?;
    assert_eq!(status, 200);
    for token in [&top, &sub1_token] {
        let (status, body) = ask(
            &s,
            token,
            "PUT",
            "/api/v1/accounts/sub3",
            Some(json!({ "parent": "sub1" })),
        )
        .await?;
        assert_eq!(status, 403, "accounts flag withdrawn: {body}");
    }
    assert_eq!(
        ask(&s, &sub1_token, "DELETE", "/api/v1/accounts/sub2", None)
            .await?
            .0,
        403
    );
    s.stop().await
}
