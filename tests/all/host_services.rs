//! The host side of every import, seen from inside a real guest (tests/guests/logger).

use anyhow::Result;
use serde_json::json;
use switchyard_tests::{guest, version_of, Body, TempDir, TestServer, ADMIN};

#[tokio::test]
async fn guest_sees_tables_state_counters_gateways_rates_clock_and_an_empty_wasi() -> Result<()> {
    let dir = TempDir::new("services");
    let s = TestServer::start(&dir.0).await?;
    let v = version_of(&guest("guest_logger"));
    assert_eq!(
        s.upload(ADMIN, "logger", guest("guest_logger")).await?.0,
        201
    );
    let routes = json!({ "rows": [ { "key": "44", "fields": ["uk-vendor"] } ] });
    assert_eq!(
        s.admin("PUT", "/api/v1/tables/routes", Some(routes))
            .await?
            .0,
        200
    );
    let costs = b"44,0.0123,0,60,60\n4420,0.0100\n".to_vec();
    assert_eq!(
        s.call(
            "PUT",
            "/api/v1/tables/uk-costs",
            ADMIN,
            Some(Body::Bytes(costs, "text/csv"))
        )
        .await?
        .0,
        200
    );
    let gw = json!({ "capacity": 30, "cost_table": "uk-costs" });
    assert_eq!(
        s.admin("PUT", "/api/v1/routing-gateways/uk-vendor", Some(gw))
            .await?
            .0,
        200
    );
    assert_eq!(
        s.admin(
            "PUT",
            "/api/v1/routing-gateways/old-vendor",
            Some(json!({ "enabled": false }))
        )
        .await?
        .0,
        200
    );

    // 2024-07-01T12:34:00Z is 13:34 in London (BST).
    // A roomy deadline: this checks what the imports answer, in a debug build.
    let request = json!({ "deadline_ms": 500, "call": { "callee": "441134960000", "account": "acme", "arrived_at_ms": 1_719_837_240_000u64 } });
    let path = format!("/api/v1/modules/logger/versions/{v}/simulate");
    let mut reports = Vec::new();
    for _ in 0..2 {
        let (status, sim) = s.admin("POST", &path, Some(request.clone())).await?;
        assert_eq!(status, 200, "{sim}");
        assert_eq!(sim["failure"], serde_json::Value::Null, "{sim}");
        let attempt = &sim["answer"]["decision"]["Attempts"][0];
        assert_eq!(attempt["gateway"], "uk-vendor");
        reports.push(
            attempt["add_headers"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        let logs: Vec<(String, String)> = sim["logs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                (
                    l["level"].as_str().unwrap_or("").into(),
                    l["message"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        assert!(
            logs.contains(&("info".into(), "routing 441134960000 for acme".into())),
            "{logs:?}"
        );
        assert!(
            logs.contains(&("stdout".into(), "hello from stdout".into())),
            "{logs:?}"
        );
    }
    assert!(
        reports[0].starts_with("runs=1;counted=1;"),
        "{}",
        reports[0]
    );
    assert!(
        reports[1].starts_with("runs=2;counted=2;"),
        "state and counters persist between calls: {}",
        reports[1]
    );
    for expected in [
        "gateways=old-vendor:false,uk-vendor:true",
        "cost=44@0.0123",
        "local=13:34",
        "bad_zone=true",
        "files=false",
        "env=0",
    ] {
        assert!(
            reports[1].contains(expected),
            "{expected} missing from {}",
            reports[1]
        );
    }
    let (_, health) = s
        .admin(
            "GET",
            &format!("/api/v1/modules/logger/versions/{v}/health"),
            None,
        )
        .await?;
    assert_eq!(health["health"]["invocations"], 2);
    assert!(
        health["health"]["recent_logs"]
            .as_array()
            .is_some_and(|l| l.len() >= 4),
        "{health}"
    );
    s.stop().await
}

#[tokio::test]
async fn simulate_runs_the_failover_hook() -> Result<()> {
    let dir = TempDir::new("sim-failover");
    let s = TestServer::start(&dir.0).await?;
    let v = version_of(&guest("failover"));
    s.upload(ADMIN, "failover", guest("failover")).await?;
    let path = format!("/api/v1/modules/failover/versions/{v}/simulate");
    for (code, expect_stop) in [(486, true), (503, false)] {
        let req = json!({
            "hook": "on_attempt_failed", "call": { "callee": "4420" },
            "attempt": { "gateway": "a", "callee": "4420" },
            "outcome": { "code": code, "reason": "x" },
        });
        let (status, sim) = s.admin("POST", &path, Some(req)).await?;
        assert_eq!(status, 200, "{sim}");
        assert_eq!(
            sim["answer"]["next_step"].get("Stop").is_some(),
            expect_stop,
            "{code}: {sim}"
        );
    }
    let (status, err) = s
        .admin("POST", &path, Some(json!({ "hook": "nope", "call": {} })))
        .await?;
    assert_eq!(status, 400, "{err}");
    s.stop().await
}
