//! Binding, simulating, rolling back, canaries, persistence across restart (including
//! the compiled-artifact cache).

use anyhow::Result;
use serde_json::json;
use switchyard::policy::Decision;
use switchyard_tests::{call, guest, version_of, Body, TempDir, TestServer, ADMIN};

async fn load_routes(s: &TestServer) -> Result<()> {
    let csv = b"# prefix,gateway,tech prefix\n44,uk-vendor\n4420,london,9#\n".to_vec();
    let (status, body) = s
        .call(
            "PUT",
            "/api/v1/tables/routes",
            ADMIN,
            Some(Body::Bytes(csv, "text/csv")),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

fn gateways(d: &Decision) -> Vec<String> {
    match d {
        Decision::Attempts(a) => a.iter().map(|a| a.gateway.clone()).collect(),
        Decision::Reject(r) => vec![format!("reject {}", r.code)],
    }
}

#[tokio::test]
async fn bind_simulate_rollback_and_in_flight_calls_keep_their_version() -> Result<()> {
    let dir = TempDir::new("bind");
    let s = TestServer::start(&dir.0).await?;
    load_routes(&s).await?;
    // Two versions of one module: the prefix router, then the failover router.
    let (v1, v2) = (
        version_of(&guest("prefix_router")),
        version_of(&guest("failover")),
    );
    assert_eq!(
        s.upload(ADMIN, "router", guest("prefix_router")).await?.0,
        201
    );
    assert_eq!(s.upload(ADMIN, "router", guest("failover")).await?.0, 201);

    let (status, sim) = s
        .admin(
            "POST",
            &format!("/api/v1/modules/router/versions/{v1}/simulate"),
            // The first decision of a version on a fresh thread of a debug build, among
            // the other tests, has taken 7.9 ms of CPU: the default 5 ms deadline would
            // test the machine's load. Bound calls get 200 ms (`bind_global`).
            Some(json!({ "call": { "callee": "442071234567" }, "deadline_ms": 200 })),
        )
        .await?;
    assert_eq!(status, 200, "{sim}");
    assert_eq!(
        sim["answer"]["decision"]["Attempts"][0]["callee"], "9#442071234567",
        "{sim}"
    );
    assert!(sim["elapsed_us"].as_u64().is_some());

    assert_eq!(
        s.admin(
            "PUT",
            "/api/v1/bindings/global",
            Some(json!({ "module": "router", "version": v1 }))
        )
        .await?
        .0,
        200
    );
    let c = call("call-1", "acme", "442071234567");
    let pinned = s.server.policy.for_call(&c).expect("bound");
    assert_eq!(pinned.version().version, v1);

    let (status, b) = s
        .admin(
            "PUT",
            "/api/v1/bindings/global",
            Some(json!({ "module": "router", "version": v2 })),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    // The call that started on v1 finishes on v1 (one gateway: the longest prefix)...
    assert_eq!(gateways(&pinned.route(&c).await.value), ["london"]);
    // ...while a new call gets v2 (every matching prefix).
    let fresh = s
        .server
        .policy
        .for_call(&call("call-2", "acme", "442071234567"))
        .expect("bound");
    assert_eq!(
        gateways(&fresh.route(&c).await.value),
        ["london", "uk-vendor"]
    );

    let (status, rolled) = s
        .admin("POST", "/api/v1/bindings/global/rollback", None)
        .await?;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["binding"]["version"], v1.as_str());
    assert_eq!(
        s.server
            .policy
            .for_call(&c)
            .expect("bound")
            .version()
            .version,
        v1
    );
    let (_, history) = s
        .admin("GET", "/api/v1/bindings/global/history", None)
        .await?;
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");

    let (status, _) = s
        .admin(
            "PUT",
            "/api/v1/bindings/global",
            Some(json!({ "module": "router", "version": "0".repeat(64) })),
        )
        .await?;
    assert_eq!(status, 404, "binding an unknown version is refused");
    let (status, _) = s
        .admin(
            "PUT",
            "/api/v1/bindings/global",
            Some(json!({ "module": "router", "version": v1, "deadline_ms": 0 })),
        )
        .await?;
    assert_eq!(status, 400);
    s.stop().await
}

#[tokio::test]
async fn most_specific_binding_wins() -> Result<()> {
    let dir = TempDir::new("scopes");
    let s = TestServer::start(&dir.0).await?;
    load_routes(&s).await?;
    let (v1, v2) = (
        version_of(&guest("prefix_router")),
        version_of(&guest("failover")),
    );
    s.upload(ADMIN, "router", guest("prefix_router")).await?;
    s.upload(ADMIN, "router", guest("failover")).await?;
    s.admin(
        "PUT",
        "/api/v1/bindings/global",
        Some(json!({ "module": "router", "version": v1 })),
    )
    .await?;
    s.admin(
        "PUT",
        "/api/v1/bindings/account:acme",
        Some(json!({ "module": "router", "version": v2 })),
    )
    .await?;
    s.admin(
        "PUT",
        "/api/v1/bindings/gateway:gw-in",
        Some(json!({ "module": "router", "version": v1 })),
    )
    .await?;
    let version = |account: &str, gw: &str| {
        let mut c = call("x", account, "44");
        c.ingress_gateway = gw.into();
        s.server
            .policy
            .for_call(&c)
            .expect("bound")
            .version()
            .version
            .clone()
    };
    assert_eq!(version("other", ""), v1, "global");
    assert_eq!(version("acme", ""), v2, "account beats global");
    assert_eq!(version("acme", "gw-in"), v1, "gateway beats account");
    s.stop().await
}

#[tokio::test]
async fn canary_takes_its_share_of_10000_call_ids_deterministically() -> Result<()> {
    let dir = TempDir::new("canary");
    let s = TestServer::start(&dir.0).await?;
    let (v1, v2) = (
        version_of(&guest("prefix_router")),
        version_of(&guest("failover")),
    );
    s.upload(ADMIN, "router", guest("prefix_router")).await?;
    s.upload(ADMIN, "router", guest("failover")).await?;
    let (status, body) = s
        .admin("PUT", "/api/v1/bindings/global", Some(json!({ "module": "router", "version": v1, "canary": { "version": v2, "percent": 10.0 } })))
        .await?;
    assert_eq!(status, 200, "{body}");
    let picks = |id: &str| {
        s.server
            .policy
            .for_call(&call(id, "a", "44"))
            .expect("bound")
    };
    let canaries = (0..10_000)
        .filter(|i| picks(&format!("{i}@host-a")).is_canary())
        .count();
    // Binomial(10000, 0.1): sd = 30; allow 4 sd.
    assert!(
        (880..=1120).contains(&canaries),
        "canary got {canaries} of 10000"
    );
    for i in 0..50 {
        let id = format!("repeat-{i}");
        let first = picks(&id);
        assert_eq!(
            first.is_canary(),
            picks(&id).is_canary(),
            "same Call-ID, same choice"
        );
        assert_eq!(
            &first.version().version,
            if first.is_canary() { &v2 } else { &v1 }
        );
    }
    s.stop().await
}

#[tokio::test]
async fn failing_canary_is_rolled_back_automatically_and_calls_still_get_answers() -> Result<()> {
    let dir = TempDir::new("auto-rollback");
    let s = TestServer::start(&dir.0).await?;
    load_routes(&s).await?;
    let (good, bad) = (
        version_of(&guest("prefix_router")),
        version_of(&guest("guest_trap")),
    );
    s.upload(ADMIN, "router", guest("prefix_router")).await?;
    s.upload(ADMIN, "router", guest("guest_trap")).await?;
    let rule = json!({ "window_secs": 60, "min_invocations": 10, "max_failure_rate": 0.2 });
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/bindings/global",
            Some(json!({
                "module": "router", "version": good,
                "canary": { "version": bad, "percent": 50.0, "auto_rollback": rule },
                "fallback": { "kind": "routes", "gateways": ["safe-vendor"] },
            })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let mut fallbacks = 0;
    for i in 0..200 {
        let c = call(&format!("ar-{i}"), "a", "442071234567");
        let decided = s.server.policy.for_call(&c).expect("bound").route(&c).await;
        match gateways(&decided.value).as_slice() {
            [gw] if gw == "safe-vendor" => fallbacks += 1,
            [gw] => assert_eq!(gw, "london"),
            other => panic!("unexpected decision {other:?}"),
        }
    }
    assert!(
        fallbacks >= 10,
        "the canary served and failed before rollback ({fallbacks})"
    );
    assert!(
        fallbacks < 100,
        "rolled back long before 200 calls ({fallbacks})"
    );
    let (_, binding) = s.admin("GET", "/api/v1/bindings/global", None).await?;
    assert_eq!(binding["canary"], serde_json::Value::Null);
    assert_eq!(binding["updated_by"], "auto-rollback");
    let (_, health) = s
        .admin(
            "GET",
            &format!("/api/v1/modules/router/versions/{bad}/health"),
            None,
        )
        .await?;
    assert!(
        health["health"]["failures"]["trap"].as_u64() >= Some(10),
        "{health}"
    );
    s.stop().await
}

#[tokio::test]
async fn modules_bindings_and_tables_survive_a_restart() -> Result<()> {
    let dir = TempDir::new("restart");
    let v1 = version_of(&guest("prefix_router"));
    {
        let s = TestServer::start(&dir.0).await?;
        load_routes(&s).await?;
        s.upload(ADMIN, "router", guest("prefix_router")).await?;
        assert_eq!(s.server.policy.compilations(), 1, "the upload compiles");
        s.admin(
            "PUT",
            "/api/v1/bindings/account:acme",
            Some(json!({ "module": "router", "version": v1, "deadline_ms": 20 })),
        )
        .await?;
        s.stop().await?;
    }
    let s = TestServer::start(&dir.0).await?;
    let (_, binding) = s
        .admin("GET", "/api/v1/bindings/account:acme", None)
        .await?;
    assert_eq!(
        (binding["version"].as_str(), binding["deadline_ms"].as_u64()),
        (Some(v1.as_str()), Some(20))
    );
    let c = call("after-restart", "acme", "442071234567");
    let decided = s.server.policy.for_call(&c).expect("bound").route(&c).await;
    assert!(decided.failure.is_none(), "{:?}", decided.failure);
    assert_eq!(gateways(&decided.value), ["london"]);
    assert_eq!(
        s.server.policy.compilations(),
        0,
        "a restart loads the cached compiled artifact instead of recompiling"
    );
    s.stop().await
}
