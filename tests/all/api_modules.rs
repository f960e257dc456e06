//! Uploading good and bad modules, auth, the OpenAPI document.

use anyhow::Result;
use switchyard_tests::{guest, version_of, Body, TempDir, TestServer, ADMIN};

#[tokio::test]
async fn good_module_is_accepted_with_its_sha256_as_version_and_upload_is_idempotent() -> Result<()>
{
    let dir = TempDir::new("upload");
    let s = TestServer::start(&dir.0).await?;
    let bytes = guest("prefix_router");
    let (status, body) = s.upload(ADMIN, "router", bytes.clone()).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], version_of(&bytes));
    assert_eq!(body["world"], "switchyard:callctl/call-policy@0.1.0");
    assert_eq!(body["uploaded_by"], "env-admin");
    let (status, again) = s.upload(ADMIN, "router", bytes).await?;
    assert_eq!(
        (status, &again["uploaded_at_ms"]),
        (201, &body["uploaded_at_ms"])
    );
    let (_, list) = s.admin("GET", "/api/v1/modules", None).await?;
    assert_eq!(
        list["modules"][0]["versions"].as_array().map(Vec::len),
        Some(1)
    );
    s.stop().await
}

#[tokio::test]
async fn bad_uploads_are_rejected_with_the_reason() -> Result<()> {
    let dir = TempDir::new("bad-upload");
    let s = TestServer::start_with(&dir.0, 200_000).await?;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "junk",
            b"this is not wasm at all".to_vec(),
            422,
            "not a valid WebAssembly component",
        ),
        (
            "core",
            b"\0asm\x01\0\0\0".to_vec(),
            422,
            "core WebAssembly module",
        ),
        (
            "wrong-world",
            guest("guest-wrong-world"),
            422,
            "does not implement switchyard:callctl/call-policy@0.1.0",
        ),
        ("too-big", vec![0u8; 200_001], 413, "limit of 200000 bytes"),
        (
            "bad name!",
            guest("prefix_router"),
            400,
            "must be 1-64 characters",
        ),
    ];
    for (name, bytes, want_status, want_text) in cases {
        let path_name = name.replace(' ', "%20");
        let (status, body) = s.upload(ADMIN, &path_name, bytes).await?;
        assert_eq!(status, want_status, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(want_text), "{name}: {message}");
    }
    let (_, list) = s.admin("GET", "/api/v1/modules", None).await?;
    assert_eq!(
        list["modules"].as_array().map(Vec::len),
        Some(0),
        "nothing was stored"
    );
    s.stop().await
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() -> Result<()> {
    let dir = TempDir::new("auth");
    let s = TestServer::start(&dir.0).await?;
    let (status, body) = s
        .call("GET", "/api/v1/modules", "wrong-token", None)
        .await?;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = s.call("GET", "/api/v1/health", "", None).await?;
    assert_eq!(status, 200);
    let (status, body) = s
        .call(
            "PUT",
            "/api/v1/bindings/global",
            ADMIN,
            Some(Body::Bytes(b"{".to_vec(), "application/json")),
        )
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    s.stop().await
}

#[tokio::test]
async fn openapi_document_describes_every_route() -> Result<()> {
    let dir = TempDir::new("openapi");
    let s = TestServer::start(&dir.0).await?;
    let (status, doc) = s.call("GET", "/api/v1/openapi.json", "", None).await?;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    // Every file of the API, as it is now: a new file's routes are checked too.
    let api_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/api");
    let mut router_src = String::new();
    for entry in std::fs::read_dir(&api_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            router_src.push_str(&std::fs::read_to_string(&path)?);
        }
    }
    let mut routes: Vec<String> = router_src
        .split(".route(\n")
        .flat_map(|r| r.split(".route("))
        .skip(1)
        .filter_map(|r| r.trim_start().strip_prefix('"'))
        .map(|r| r.split('"').next().unwrap_or_default().to_string())
        // Generic per-kind routes (`/api/v1/{}`) are listed by kind below.
        .filter(|r| !r.contains("{}"))
        .collect();
    for kind in [
        "accounts",
        "mapping-gateways",
        "routing-gateways",
        "phones",
        "calendars",
        "gateway-groups",
        "number-lists",
        "address-lists",
    ] {
        routes.push(format!("/api/v1/{kind}"));
        routes.push(format!("/api/v1/{kind}/{{id}}"));
    }
    assert!(routes.len() > 30, "{routes:?}");
    assert!(routes.iter().any(|r| r == "/metrics"), "{routes:?}");
    for route in &routes {
        assert!(
            doc["paths"].get(route).is_some(),
            "openapi.json lacks {route}"
        );
    }
    // And the other way: each documented path and method is served (the fallback's
    // "no such endpoint" or a 405 would say it is not).
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let concrete = path.replace(['{', '}'], "");
        for (method, op) in item.as_object().expect("path item") {
            if op["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some()
            {
                // A stream never ends: its answer's head is what says it is served.
                let resp = reqwest::Client::new()
                    .get(format!("http://{}{concrete}", s.server.api_addr))
                    .bearer_auth(ADMIN)
                    .send()
                    .await?;
                assert_eq!(resp.status(), 200, "{path}");
                assert_eq!(
                    resp.headers()["content-type"],
                    "text/event-stream",
                    "{path}"
                );
                continue;
            }
            let (status, body) = s
                .call(&method.to_uppercase(), &concrete, ADMIN, None)
                .await?;
            let unserved = status == 405
                || body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("no such endpoint"));
            assert!(
                !unserved,
                "{method} {path} is documented but not served: {status} {body}"
            );
        }
    }
    Ok(())
}

/// The document passes a real OpenAPI validator (openapi-spec-validator, installed
/// by scripts/setup in the project's venv).
#[tokio::test]
async fn openapi_document_passes_a_validator() -> Result<()> {
    let dir = TempDir::new("openapi-valid");
    let s = TestServer::start(&dir.0).await?;
    let (status, doc) = s.call("GET", "/api/v1/openapi.json", "", None).await?;
    assert_eq!(status, 200);
    let file = dir.0.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc)?)?;
    let validator = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/bin/openapi-spec-validator");
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .map_err(|e| anyhow::anyhow!("{}: {e}; run scripts/setup", validator.display()))?;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
