//! Tenants see, upload and bind only their own objects; others' answer 404.

use anyhow::Result;
use serde_json::json;
use switchyard_tests::{guest, version_of, Body, TempDir, TestServer};

async fn token(s: &TestServer, name: &str, tenant: &str) -> Result<String> {
    let (status, body) = s
        .admin(
            "POST",
            "/api/v1/tokens",
            Some(json!({ "name": name, "role": "tenant", "tenant": tenant })),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    Ok(body["token"].as_str().expect("token").to_string())
}

#[tokio::test]
async fn tenants_are_isolated_from_each_other() -> Result<()> {
    let dir = TempDir::new("tenancy");
    let s = TestServer::start(&dir.0).await?;
    let (a, b) = (
        token(&s, "alice", "carrier-a").await?,
        token(&s, "bob", "carrier-b").await?,
    );
    let v = version_of(&guest("prefix_router"));
    let (status, up) = s.upload(&a, "router", guest("prefix_router")).await?;
    assert_eq!((status, up["tenant"].as_str()), (201, Some("carrier-a")));
    assert_eq!(
        s.call(
            "PUT",
            "/api/v1/accounts/acme-a",
            &a,
            Some(Body::Json(json!({})))
        )
        .await?
        .0,
        200
    );
    let (status, bound) = s
        .call(
            "PUT",
            "/api/v1/bindings/account:acme-a",
            &a,
            Some(Body::Json(json!({ "module": "router", "version": v }))),
        )
        .await?;
    assert_eq!(status, 200, "{bound}");
    s.call(
        "PUT",
        "/api/v1/tables/routes",
        &a,
        Some(Body::Bytes(b"44,x\n".to_vec(), "text/csv")),
    )
    .await?;

    // Bob sees nothing of Alice's.
    let (status, list) = s.call("GET", "/api/v1/modules", &b, None).await?;
    assert_eq!((status, &list["modules"]), (200, &json!([])), "{list}");
    for path in [
        "/api/v1/modules/router".to_string(),
        format!("/api/v1/modules/router/versions/{v}"),
        format!("/api/v1/modules/router/versions/{v}/health"),
        "/api/v1/bindings/account:acme-a".into(),
        "/api/v1/tables/routes".into(),
        "/api/v1/accounts/acme-a".into(),
    ] {
        assert_eq!(s.call("GET", &path, &b, None).await?.0, 404, "{path}");
    }
    let (status, bindings) = s.call("GET", "/api/v1/bindings", &b, None).await?;
    assert_eq!((status, bindings), (200, json!([])));
    let sim = json!({ "call": { "callee": "44" } });
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/v1/modules/router/versions/{v}/simulate"),
            &b,
            Some(Body::Json(sim))
        )
        .await?
        .0,
        404
    );
    // Bob cannot take over Alice's scope, even with his own copy of the module.
    assert_eq!(s.upload(&b, "router", guest("prefix_router")).await?.0, 201);
    let bind = json!({ "module": "router", "version": v });
    assert_eq!(
        s.call(
            "PUT",
            "/api/v1/bindings/account:acme-a",
            &b,
            Some(Body::Json(bind.clone()))
        )
        .await?
        .0,
        404
    );
    assert_eq!(
        s.call("POST", "/api/v1/bindings/account:acme-a/rollback", &b, None)
            .await?
            .0,
        404
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/bindings/account:acme-a", &b, None)
            .await?
            .0,
        404
    );
    assert_eq!(
        s.call("PUT", "/api/v1/bindings/global", &b, Some(Body::Json(bind)))
            .await?
            .0,
        403
    );
    assert_eq!(s.call("GET", "/api/v1/tokens", &b, None).await?.0, 403);
    // Alice's binding is untouched, and the admin sees both tenants' work.
    let (status, still) = s
        .call("GET", "/api/v1/bindings/account:acme-a", &a, None)
        .await?;
    assert_eq!(
        (status, &still["tenant"]),
        (200, &json!("carrier-a")),
        "{still}"
    );
    let (status, admin_view) = s
        .admin("GET", "/api/v1/modules?tenant=carrier-b", None)
        .await?;
    assert_eq!(
        (status, &admin_view["modules"][0]["tenant"]),
        (200, &json!("carrier-b")),
        "{admin_view}"
    );
    s.stop().await
}

#[tokio::test]
async fn a_tenants_data_tables_are_held_to_their_quota_together() -> Result<()> {
    let dir = TempDir::new("tenancy-table-quota");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.table_quota = switchyard::store::TableQuota {
            tenant_rows: 5,
            tenant_bytes: 1_000,
        }
    })
    .await?;
    let (a, b) = (
        token(&s, "alice", "carrier-a").await?,
        token(&s, "bob", "carrier-b").await?,
    );
    let put = |token: &str, name: &str, rows: usize, width: usize| {
        let csv: String = (0..rows)
            .map(|i| format!("{i},{}\n", "x".repeat(width)))
            .collect();
        let (token, path) = (token.to_string(), format!("/api/v1/tables/{name}"));
        let s = &s;
        async move {
            s.call(
                "PUT",
                &path,
                &token,
                Some(Body::Bytes(csv.into_bytes(), "text/csv")),
            )
            .await
        }
    };
    assert_eq!(put(&a, "one", 3, 1).await?.0, 200);
    let (status, refused) = put(&a, "two", 3, 1).await?;
    assert_eq!(status, 413, "{refused}");
    assert!(
        refused.to_string().contains("6 rows") && refused.to_string().contains("5 rows"),
        "says what it would hold and the quota: {refused}"
    );
    // Replacing a table counts its new rows only; bytes count as rows do.
    assert_eq!(put(&a, "one", 5, 1).await?.0, 200);
    assert_eq!(put(&a, "one", 2, 600).await?.0, 413);
    // Another tenant has its own quota.
    assert_eq!(put(&b, "two", 5, 1).await?.0, 200);
    let (status, listed) = s.call("GET", "/api/v1/tables", &a, None).await?;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["rows"], 5, "{listed}");
    assert_eq!(listed[0]["bytes"], 10, "{listed}");
    s.stop().await
}
