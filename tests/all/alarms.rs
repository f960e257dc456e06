//! Alarms: a running switch raises and clears them as its figures cross their
//! thresholds, lists them over REST and posts each change to a webhook (a real HTTP
//! receiver on loopback).

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use switchyard::runtime::alarms::{AlarmConfig, Thresholds};
use switchyard_tests::sip::{carrier, put, Vendor};
use switchyard_tests::{eventually, TempDir, TestServer};

/// An HTTP server that answers 200 to every POST and hands its JSON body on.
async fn webhook() -> Result<(String, mpsc::UnboundedReceiver<Value>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/alarms", listener.local_addr()?);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut conn = BufReader::new(stream);
                // One request after another on a kept-alive connection.
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if conn.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if conn.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, rx))
}

/// The next change the webhook got for `kind` of `subject`.
async fn posted(
    rx: &mut mpsc::UnboundedReceiver<Value>,
    kind: &str,
    subject: &str,
) -> Result<Value> {
    let wait = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(change) = rx.recv().await {
            if change["alarm"]["kind"] == kind && change["alarm"]["subject"] == subject {
                return Some(change);
            }
        }
        None
    });
    match wait.await {
        Ok(Some(change)) => Ok(change),
        _ => anyhow::bail!("no {kind} change for {subject} reached the webhook"),
    }
}

/// The alarm of `kind` on `subject` in the listing's `list` (active or cleared).
async fn listed(s: &TestServer, list: &str, kind: &str, subject: &str) -> Result<Option<Value>> {
    let (status, body) = s.admin("GET", "/api/v1/alarms", None).await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(body[list].as_array().and_then(|alarms| {
        alarms
            .iter()
            .find(|a| a["kind"] == kind && a["subject"] == subject)
            .cloned()
    }))
}

#[tokio::test]
async fn low_balance_and_a_dead_gateway_raise_alarms_that_clear_and_reach_the_webhook() -> Result<()>
{
    let dir = TempDir::new("alarms");
    let (url, mut changes) = webhook().await?;
    let s = TestServer::start_configured(&dir.0, |c| {
        c.alarms = AlarmConfig {
            interval_secs: 1,
            webhook: Some(url),
            thresholds: Thresholds {
                balance_below: 5.0,
                ..Thresholds::default()
            },
            ..AlarmConfig::default()
        }
    })
    .await?;
    let dead = Vendor::new("vendor-dead");
    // The carrier's account is rated and starts with nothing on it.
    carrier(&s, json!({}), &[&dead]).await?;
    let raised = posted(&mut changes, "low_balance", "acme").await?;
    assert_eq!(raised["event"], "raised", "{raised}");
    assert_eq!(
        (&raised["alarm"]["value"], &raised["alarm"]["threshold"]),
        (&json!(0.0), &json!(5.0)),
        "{raised}"
    );
    let active = listed(&s, "active", "low_balance", "acme").await?;
    assert!(
        active.is_some_and(|a| a["severity"] == "warning" && a["cleared_ms"].is_null()),
        "listed as active"
    );

    // A payment lifts the balance over the threshold: the alarm clears.
    let (status, body) = s
        .admin(
            "POST",
            "/api/v1/accounts/acme/payments",
            Some(json!({ "amount": 20 })),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let cleared = posted(&mut changes, "low_balance", "acme").await?;
    assert_eq!(cleared["event"], "cleared", "{cleared}");
    assert!(listed(&s, "active", "low_balance", "acme").await?.is_none());
    let cleared = listed(&s, "cleared", "low_balance", "acme").await?;
    assert!(
        cleared.is_some_and(|a| a["cleared_ms"].as_u64() >= a["raised_ms"].as_u64()),
        "listed as cleared"
    );

    // Health checks mark the silent vendor down: a major alarm on that gateway.
    put(
        &s,
        "/api/v1/routing-gateways/vendor-dead",
        json!({ "address": format!("127.0.0.1:{}", dead.port), "options_interval_secs": 1, "down_after": 2 }),
    )
    .await?;
    let down = posted(&mut changes, "gateway_down", "vendor-dead").await?;
    assert_eq!(
        (
            &down["event"],
            &down["alarm"]["severity"],
            &down["alarm"]["scope"]
        ),
        (&json!("raised"), &json!("major"), &json!("gateway")),
        "{down}"
    );
    eventually(Duration::from_secs(5), "gateway_down listed", || async {
        listed(&s, "active", "gateway_down", "vendor-dead").await
    })
    .await?;
    s.stop().await
}
