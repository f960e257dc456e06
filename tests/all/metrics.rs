//! `/metrics` scraped by a real Prometheus (Debian's `prometheus`) while SIPp calls
//! run through the switch: its query API must return the series the calls made.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use switchyard_tests::sip::{carrier, free_port, one_call, wait_for_records, Sipp, Vendor};
use switchyard_tests::{eventually, TempDir, TestServer, ADMIN};

/// A Prometheus server scraping `target` every second, killed when dropped.
struct Prometheus {
    _child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
}

impl Prometheus {
    async fn scraping(dir: &std::path::Path, target: std::net::SocketAddr) -> Result<Prometheus> {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: switchyard\n    metrics_path: /metrics\n\
                 \x20   authorization:\n      credentials: {ADMIN}\n\
                 \x20   static_configs:\n      - targets: ['{target}']\n"
            ),
        )?;
        let port = free_port();
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting prometheus (scripts/setup installs it)")?;
        let p = Prometheus {
            _child: child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        eventually(Duration::from_secs(30), "prometheus ready", || async {
            let ready = p.http.get(format!("{}/-/ready", p.base)).send().await;
            Ok(ready.ok().filter(|r| r.status().is_success()).map(|_| ()))
        })
        .await?;
        Ok(p)
    }

    /// The instant vector `query` evaluates to: (labels, value) per series.
    async fn query(&self, query: &str) -> Result<Vec<(Value, f64)>> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(body["status"] == "success", "{query}: {body}");
        Ok(body["data"]["result"]
            .as_array()
            .context("a vector")?
            .iter()
            .map(|s| {
                let v = s["value"][1].as_str().and_then(|v| v.parse().ok());
                (s["metric"].clone(), v.unwrap_or(f64::NAN))
            })
            .collect())
    }

    /// Wait until `query` has a series whose value satisfies `ok`.
    async fn until(&self, query: &str, ok: impl Fn(f64) -> bool) -> Result<Vec<(Value, f64)>> {
        let last = std::sync::Mutex::new(Vec::new());
        let found = eventually(Duration::from_secs(30), query, || async {
            let series = self.query(query).await?;
            let hit = series.iter().any(|(_, v)| ok(*v));
            *last.lock().unwrap() = series.clone();
            Ok(hit.then_some(series))
        })
        .await;
        found.with_context(|| format!("last seen: {:?}", last.lock().unwrap()))
    }
}

#[tokio::test]
async fn prometheus_scrapes_calls_messages_attempts_and_modules_during_sipp_calls() -> Result<()> {
    let dir = TempDir::new("metrics");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let prometheus = Prometheus::scraping(&dir.0, s.server.api_addr).await?;
    prometheus
        .until("up{job=\"switchyard\"}", |v| v == 1.0)
        .await
        .context("the scrape of /metrics with the admin token succeeds")?;

    const CALLS: u32 = 20;
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], CALLS)?;
    let uac = Sipp::uac(
        s.server.sip.addr,
        &["-sn", "uac", "-s", "442071234567", "-d", "4000"],
        CALLS,
        10,
    )?;
    // While the calls are held, the gauges show them.
    prometheus
        .until("switchyard_calls_active", |v| v >= 1.0)
        .await?;
    prometheus
        .until("switchyard_sip_dialogs_active", |v| v >= 2.0)
        .await?;
    uac.succeeds().await?;
    uas.succeeds().await?;
    wait_for_records(&s, CALLS as usize).await?;

    let n = f64::from(CALLS);
    prometheus
        .until("switchyard_calls_total{result=\"caller_hangup\"}", |v| {
            v == n
        })
        .await?;
    prometheus
        .until(
            "switchyard_call_attempts_total{gateway=\"vendor-a\",code=\"200\"}",
            |v| v == n,
        )
        .await?;
    prometheus
        .until("switchyard_cdr_writes_total", |v| v == n)
        .await?;
    prometheus
        .until(
            "switchyard_sip_messages_total{direction=\"in\",method=\"INVITE\",status=\"request\"}",
            // Retransmissions are messages too.
            |v| v >= n,
        )
        .await?;
    prometheus
        .until(
            "switchyard_sip_messages_total{direction=\"out\",method=\"INVITE\",status=\"2xx\"}",
            |v| v >= n,
        )
        .await?;
    // Two decisions a call: the router screens the call (no screen binding here),
    // then routes it.
    let decisions = prometheus
        .until(
            "switchyard_module_invocations_total{module=\"router\",outcome=\"ok\"}",
            |v| v == 2.0 * n,
        )
        .await?;
    assert_eq!(decisions[0].0["tenant"], "default", "{decisions:?}");
    prometheus
        .until(
            "switchyard_module_decision_seconds_count{module=\"router\"}",
            |v| v == 2.0 * n,
        )
        .await?;
    prometheus
        .until("switchyard_calls_active", |v| v == 0.0)
        .await?;
    prometheus
        .until("switchyard_routing_gateways{state=\"up\"}", |v| v == 1.0)
        .await?;
    Ok(())
}

#[tokio::test]
async fn metrics_need_an_admin_token_and_name_no_call_or_number() -> Result<()> {
    let dir = TempDir::new("metrics-auth");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let record = one_call(&s, &vendor, "442079876543").await?;

    let (status, _) = s.call("GET", "/metrics", "", None).await?;
    assert_eq!(status, 401);
    let (status, body) = s.call("GET", "/metrics", ADMIN, None).await?;
    assert_eq!(status, 200);
    let text = body.as_str().context("text")?;
    assert!(
        text.contains("# TYPE switchyard_calls_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE switchyard_module_decision_seconds histogram"),
        "{text}"
    );
    assert!(
        !text.contains("442079876543"),
        "no number in a label: {text}"
    );
    let call_id = record["call_id"].as_str().context("call id")?;
    assert!(!text.contains(call_id), "no call id in a label");
    Ok(())
}
