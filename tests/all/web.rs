//! The web manager in Debian's Chromium, driven by Playwright (`tests/web/manager.mjs`,
//! one scenario per test) against a running switch: login and lockout, the dashboard
//! and current calls while SIPp calls run, a hang-up, the call records and their CSV,
//! a call's SIP ladder, modules uploaded, bound, canaried, rolled back and simulated
//! through the forms, and a tenant that sees only its own. Screenshots of each page
//! are left in `target/web-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use switchyard_tests::sip::{carrier, put, wait_for_records, Sipp, Vendor};
use switchyard_tests::{guest, version_of, Body, TempDir, TestServer, ADMIN, ADMIN_PASSWORD};

/// Longest one scenario may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("web-screenshots")
}

/// Run one scenario of `manager.mjs` against `s` with `settings` added to what every
/// scenario gets; its output is the error when it fails.
async fn scenario(s: &TestServer, name: &str, settings: Value) -> Result<()> {
    let shots = screenshots().join(name);
    std::fs::create_dir_all(&shots)?;
    let mut env = json!({
        "base": format!("http://{}", s.server.api_addr),
        "admin_password": ADMIN_PASSWORD,
        "shots": shots,
    });
    if let (Some(e), Some(extra)) = (env.as_object_mut(), settings.as_object()) {
        e.extend(extra.clone());
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
    let run = tokio::process::Command::new("node")
        .arg("manager.mjs")
        .arg(name)
        .current_dir(&dir)
        .env("SWITCHYARD_WEB", env.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCENARIO_TIMEOUT, run)
        .await
        .with_context(|| format!("scenario {name} did not finish in {SCENARIO_TIMEOUT:?}"))?
        .context("running node (scripts/setup installs it and playwright-core)")?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "scenario {name} failed:\n{log}");
    Ok(())
}

async fn audit(s: &TestServer) -> Result<Vec<Value>> {
    let (status, body) = s.admin("GET", "/api/v1/audit?limit=1000", None).await?;
    anyhow::ensure!(status == 200, "audit: {status} {body}");
    Ok(body["entries"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn a_login_is_locked_out_after_repeated_failures_and_each_is_audited() -> Result<()> {
    let dir = TempDir::new("web-lockout");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.web.login_lockout.max_failures = 3;
    })
    .await?;
    scenario(&s, "lockout", json!({ "max_failures": 3 })).await?;
    let failed: Vec<Value> = audit(&s)
        .await?
        .into_iter()
        .filter(|e| e["action"] == "login")
        .collect();
    assert_eq!(failed.len(), 3, "each refused login is audited: {failed:?}");
    assert!(failed
        .iter()
        .all(|e| e["who"] == "admin" && e["status"] == 401 && e["source"] == "127.0.0.1"));
    s.stop().await
}

#[tokio::test]
async fn the_manager_follows_sipp_calls_hangs_one_up_and_finds_their_records() -> Result<()> {
    let dir = TempDir::new("web-calls");
    // Any balance under 1,000 alarms, so the alarms page has one to show.
    let s = TestServer::start_configured(&dir.0, |c| {
        c.alarms.interval_secs = 1;
        c.alarms.thresholds.balance_below = 1_000.0;
    })
    .await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    // Priced, so that the dashboard has income to show.
    let (status, body) = s
        .call(
            "PUT",
            "/api/v1/tables/acme-rates",
            ADMIN,
            Some(Body::Bytes(b",0.60,0,1,1\n".to_vec(), "text/csv")),
        )
        .await?;
    anyhow::ensure!(status == 200, "rates: {status} {body}");
    put(
        &s,
        "/api/v1/accounts/acme",
        json!({ "rate_table": "acme-rates", "prepaid": false, "credit_limit": 100.0 }),
    )
    .await?;

    // One call a second, each held 12 s: the browser sees calls set up and held.
    const CALLS: u32 = 8;
    let callee = "442071234567";
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], CALLS)?;
    let uac = Sipp::uac(
        s.server.sip.addr,
        &["-sn", "uac", "-s", callee, "-d", "12000"],
        CALLS,
        1,
    )?;
    let browsing = scenario(
        &s,
        "calls",
        json!({ "callee": callee, "calls": CALLS, "page_size": 5 }),
    );
    // The scenario waits for every call to end before it reads the records.
    let (browsed, _, _) = tokio::join!(browsing, uac.ends(), uas.ends());
    let records = wait_for_records(&s, CALLS as usize).await?;
    browsed.with_context(|| format!("the records: {}", Value::from(records.clone())))?;
    let reasons: Vec<&str> = records
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "operator_hangup").count(),
        1,
        "the manager's hang-up ended one call: {reasons:?}"
    );
    let changes = audit(&s).await?;
    assert!(
        changes.iter().any(|e| e["who"] == "admin"
            && e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("DELETE /api/v1/live-calls/"))
            && e["status"] == 202),
        "the hang-up is audited with its user: {changes:?}"
    );
    s.stop().await
}

#[tokio::test]
async fn modules_are_uploaded_bound_canaried_rolled_back_and_simulated_in_the_manager() -> Result<()>
{
    let dir = TempDir::new("web-modules");
    let s = TestServer::start(&dir.0).await?;
    put(&s, "/api/v1/accounts/acme", json!({})).await?;
    let modules = dir.0.join("modules");
    std::fs::create_dir_all(&modules)?;
    let (a, b) = (guest("prefix_router"), guest("stock_router"));
    std::fs::write(modules.join("a.wasm"), &a)?;
    std::fs::write(modules.join("b.wasm"), &b)?;
    scenario(
        &s,
        "modules",
        json!({
            "module_a": modules.join("a.wasm"), "version_a": version_of(&a),
            "module_b": modules.join("b.wasm"), "version_b": version_of(&b),
            "scope": "account:acme",
            "simulate_call": {
                "caller": { "user": "15551230000", "display": null, "source": "From" },
                "callee": "442071234567", "account": "acme",
            },
        }),
    )
    .await?;
    // What the forms did is what the API holds.
    let (status, binding) = s
        .admin("GET", "/api/v1/bindings/account:acme", None)
        .await?;
    assert_eq!(status, 200, "{binding}");
    assert_eq!(binding["version"], version_of(&a));
    assert!(
        binding["canary"].is_null(),
        "rolled back to the binding without canary: {binding}"
    );
    // The forms went through the API, as the admin: the audit log has each step.
    let steps: Vec<(String, u64)> = audit(&s)
        .await?
        .iter()
        .filter(|e| e["who"] == "admin")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["status"].as_u64().unwrap_or(0),
            )
        })
        .rev()
        .collect();
    let bind = "PUT /api/v1/bindings/account%3Aacme?hook=call".to_string();
    let simulate = format!(
        "POST /api/v1/modules/ui-router/versions/{}/simulate",
        version_of(&a)
    );
    assert_eq!(
        steps,
        [
            ("login".to_string(), 200),
            (
                "POST /api/v1/modules/ui-router?description=uploaded+from+the+manager".to_string(),
                201
            ),
            (
                "POST /api/v1/modules/ui-router?description=uploaded+from+the+manager".to_string(),
                201
            ),
            (bind.clone(), 200),
            (bind.clone(), 200),
            (
                "POST /api/v1/bindings/account%3Aacme/rollback?hook=call".to_string(),
                200
            ),
            (bind, 404),
            (simulate, 200),
        ][..],
        "log in, upload twice, bind, canary, roll back, a refused binding, simulate"
    );
    s.stop().await
}

#[tokio::test]
async fn a_tenant_user_made_in_the_manager_sees_only_its_own_tenant() -> Result<()> {
    let dir = TempDir::new("web-tenant");
    let s = TestServer::start(&dir.0).await?;
    put(&s, "/api/v1/accounts/acme", json!({})).await?;
    put(&s, "/api/v1/accounts/beta-1?tenant=beta", json!({})).await?;
    scenario(
        &s,
        "tenant",
        json!({
            "tenant_user": "beta-ops", "tenant_password": "beta-password-9", "tenant": "beta",
            "tenant_account": "beta-1", "other_account": "acme",
        }),
    )
    .await?;
    let (status, users) = s.admin("GET", "/api/v1/users", None).await?;
    assert_eq!(status, 200);
    let made = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "beta-ops"))
        .cloned();
    assert_eq!(
        made.map(|u| (u["role"].clone(), u["tenant"].clone())),
        Some((json!("tenant"), json!("beta")))
    );
    let entries = audit(&s).await?;
    assert!(
        entries.iter().any(|e| e["who"] == "admin"
            && e["action"] == "POST /api/v1/users"
            && e["status"] == 201),
        "the user's creation is audited: {entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["who"] == "beta-ops" && e["action"] == "login" && e["status"] == 200),
        "the tenant's login is audited: {entries:?}"
    );
    s.stop().await
}
