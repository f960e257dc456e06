//! Hostile guests end in the fallback, and the host keeps deciding ordinary calls.

use anyhow::Result;
use serde_json::json;
use switchyard::policy::{Decision, FailureKind};
use switchyard_tests::{call, guest, version_of, Body, TempDir, TestServer, ADMIN};

/// Each guest with the failure it must end in. Only the loop and the sleeper keep the
/// 5 ms default deadline; the others get a long one so the limit under test is what
/// stops them.
const HOSTILE: [(&str, FailureKind); 5] = [
    ("guest_infinite_loop", FailureKind::Deadline),
    ("guest_sleeper", FailureKind::Deadline),
    ("guest_memory_bomb", FailureKind::Memory),
    ("guest_trap", FailureKind::Trap),
    ("guest_huge_decision", FailureKind::Malformed),
];

async fn setup(s: &TestServer) -> Result<()> {
    let csv = b"44,uk-vendor\n".to_vec();
    s.call(
        "PUT",
        "/api/v1/tables/routes",
        ADMIN,
        Some(Body::Bytes(csv, "text/csv")),
    )
    .await?;
    for (name, _) in HOSTILE {
        let (status, body) = s.upload(ADMIN, name, guest(name)).await?;
        assert_eq!(status, 201, "{name}: {body}");
        let deadline_ms = if matches!(name, "guest_infinite_loop" | "guest_sleeper") {
            5
        } else {
            1_000
        };
        let bind = json!({
            "module": name, "version": version_of(&guest(name)), "deadline_ms": deadline_ms,
            "fallback": { "kind": "routes", "gateways": ["fallback-vendor"] },
        });
        let (status, body) = s
            .admin(
                "PUT",
                &format!("/api/v1/bindings/account:{name}"),
                Some(bind),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
    }
    s.upload(ADMIN, "router", guest("prefix_router")).await?;
    // Ordinary calls get a roomy deadline: on 2 loaded cores this test is about
    // isolation, not about how fast an honest module is.
    let bind = json!({ "module": "router", "version": version_of(&guest("prefix_router")), "deadline_ms": 200 });
    assert_eq!(
        s.admin("PUT", "/api/v1/bindings/global", Some(bind))
            .await?
            .0,
        200
    );
    Ok(())
}

#[tokio::test]
async fn each_hostile_guest_ends_in_the_fallback_with_its_failure_kind() -> Result<()> {
    let dir = TempDir::new("hostile");
    let s = TestServer::start(&dir.0).await?;
    setup(&s).await?;
    for (name, kind) in HOSTILE {
        let c = call(&format!("{name}-1"), name, "4420");
        let policy = s.server.policy.for_call(&c).expect("bound");
        let decided =
            tokio::time::timeout(std::time::Duration::from_secs(10), policy.route(&c)).await?;
        let failure = decided.failure.expect("hostile guest must fail");
        assert_eq!(failure.kind, kind, "{name}: {}", failure.message);
        match decided.value {
            Decision::Attempts(a) => assert_eq!(a[0].gateway, "fallback-vendor", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let (_, h) = s
            .admin(
                "GET",
                &format!(
                    "/api/v1/modules/{name}/versions/{}/health",
                    version_of(&guest(name))
                ),
                None,
            )
            .await?;
        assert_eq!(h["health"]["invocations"], 1, "{name}: {h}");
    }
    // The trap's own panic message reaches the failure report.
    let c = call("trap-msg", "guest_trap", "4420");
    let decided = s.server.policy.for_call(&c).expect("bound").route(&c).await;
    assert!(decided
        .failure
        .expect("fails")
        .message
        .contains("wasm trap"));
    s.stop().await
}

#[tokio::test]
async fn a_thousand_ordinary_decisions_succeed_while_hostile_guests_run() -> Result<()> {
    let inline = ordinary_decisions_among_hostile_guests("hostile-load").await?;
    assert_eq!(
        inline, 0,
        "on a current-thread runtime no decision runs on the only worker"
    );
    Ok(())
}

/// Production's runtime has a worker per core: there a version proven fast decides on
/// the calling worker, and the hostile versions (looping, sleeping, greedy, trapping)
/// still end on the blocking pool and in their fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_worker_per_core_fast_versions_decide_inline_and_hostile_ones_still_fall_back(
) -> Result<()> {
    let inline = ordinary_decisions_among_hostile_guests("hostile-lane").await?;
    assert!(
        inline > 0 && inline < 1_000,
        "the router, once proven fast, used the inline lane: {inline} of 1000"
    );
    Ok(())
}

/// A thousand ordinary decisions among ten rounds of every hostile guest: each hostile
/// decision falls back, each ordinary one routes as its table says. Returns how many
/// decisions ran in the inline lane.
async fn ordinary_decisions_among_hostile_guests(name: &str) -> Result<u64> {
    let dir = TempDir::new(name);
    let s = TestServer::start(&dir.0).await?;
    setup(&s).await?;
    let policy = s.server.policy.clone();
    let mut hostile = Vec::new();
    for round in 0..10 {
        for (name, _) in HOSTILE {
            let p = policy.clone();
            hostile.push(tokio::spawn(async move {
                let c = call(&format!("{name}-{round}"), name, "4420");
                p.for_call(&c)
                    .expect("bound")
                    .route(&c)
                    .await
                    .failure
                    .is_some()
            }));
        }
    }
    let mut ordinary = Vec::new();
    for i in 0..1_000 {
        let p = policy.clone();
        ordinary.push(tokio::spawn(async move {
            let c = call(&format!("ordinary-{i}"), "someone", "4420123");
            p.for_call(&c).expect("bound").route(&c).await
        }));
    }
    for h in hostile {
        assert!(h.await?, "every hostile decision fell back");
    }
    for (i, h) in ordinary.into_iter().enumerate() {
        let decided = h.await?;
        assert!(
            decided.failure.is_none(),
            "ordinary call {i}: {:?}",
            decided.failure
        );
        assert!(
            matches!(&decided.value, Decision::Attempts(a) if a[0].gateway == "uk-vendor"),
            "call {i}"
        );
    }
    let (status, _) = s.call("GET", "/api/v1/health", "", None).await?;
    assert_eq!(status, 200, "API still answers");
    let inline = policy.inline_decisions();
    s.stop().await?;
    Ok(inline)
}

#[tokio::test]
async fn a_greedy_module_is_held_to_its_state_quota_and_log_rate() -> Result<()> {
    let dir = TempDir::new("hostile-state-hog");
    let s = TestServer::start(&dir.0).await?;
    let v = version_of(&guest("guest_state_hog"));
    let (status, body) = s.upload(ADMIN, "hog", guest("guest_state_hog")).await?;
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/v1/modules/hog/versions/{v}/simulate");
    let mut stored = 0u64;
    let mut refusals = Vec::new();
    for n in 0..5 {
        let request = json!({ "deadline_ms": 1000, "call": { "call_id": format!("hog-{n}"), "callee": "4420" } });
        let (status, sim) = s.admin("POST", &path, Some(request)).await?;
        assert_eq!(status, 200, "{sim}");
        // The refusal is the module's to handle: its decision stands.
        assert_eq!(sim["failure"], serde_json::Value::Null, "{sim}");
        let report = sim["answer"]["decision"]["Attempts"][0]["add_headers"][0]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (count, refusal) = report
            .strip_prefix("stored=")
            .and_then(|r| r.split_once(";refusal="))
            .unwrap_or_else(|| panic!("report {report:?}"));
        stored += count.parse::<u64>()?;
        refusals.push(refusal.to_string());
        // Kept for the call within its bound (100 lines), whatever the log rate.
        assert_eq!(sim["logs"].as_array().map(Vec::len), Some(100), "n={n}");
    }
    // 4 MiB of 64 KiB values (each with its key) is 63 writes, over all decisions.
    assert_eq!(stored, 63, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|r| r.contains("LimitExceeded") && r.contains("4194304 bytes for the module")),
        "{refusals:?}"
    );
    let (_, health) = s
        .admin(
            "GET",
            &format!("/api/v1/modules/hog/versions/{v}/health"),
            None,
        )
        .await?;
    assert_eq!(health["health"]["quota_refusals"], 5, "{health}");
    assert_eq!(health["health"]["failures"]["trap"], 0, "{health}");
    s.stop().await
}
