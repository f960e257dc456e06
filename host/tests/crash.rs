//! Crash safety of billing: `kill -9` the built `switchyard serve` in the middle of a
//! billed call load, start it again on the same data, and check that every call the
//! caller saw end has its record and that the balance is exactly the starting balance
//! minus the records' charges. Uses the embedded demo carrier with a rate table added,
//! SIPp as caller and vendor on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{serve, Served};

const TOKEN: &str = "crash-test-admin-token-0123456789";

async fn rest(served: &Served, method: &str, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", served.api);
    let mut req = client
        .request(method.parse().expect("a method"), &url)
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("REST call");
    let status = resp.status();
    let value: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {value}");
    value
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn sipp(dir: &Path, args: &[&str]) -> Child {
    Command::new("sipp")
        .args(args)
        .arg("-nostdin")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting sipp (scripts/setup installs sip-tester)")
}

/// Calls whose BYE the caller saw answered, by Call-ID, from SIPp's message log.
fn calls_seen_ended(dir: &Path) -> Vec<String> {
    let mut ended = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the caller's directory") {
        let path = entry.expect("an entry").path();
        if !path.to_string_lossy().ends_with("_messages.log") {
            continue;
        }
        let log = std::fs::read_to_string(&path).expect("the message log");
        // Entries start with a line of dashes, then "UDP message received|sent ...".
        for entry in log.split("-----------------------------------------------") {
            let Some((_, message)) = entry.split_once("message received") else {
                continue;
            };
            let bye_ok = message.contains("SIP/2.0 200")
                && message.lines().any(|l| l.trim_end() == "CSeq: 2 BYE");
            if let Some(call_id) = bye_ok
                .then(|| message.lines().find_map(|l| l.strip_prefix("Call-ID: ")))
                .flatten()
            {
                ended.push(call_id.trim().to_string());
            }
        }
    }
    ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_billed_load_loses_no_record_and_no_money() {
    let root: PathBuf =
        std::env::temp_dir().join(format!("switchyard-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (data, caller_dir) = (root.join("data"), root.join("caller"));
    std::fs::create_dir_all(&caller_dir).expect("scratch directory");
    let vendor_port = free_port();

    let served = serve(&data, TOKEN, &[]);
    // The demo carrier, billed: 0.01 a second for everything, 100 on the account.
    rest(
        &served,
        "PUT",
        "/api/v1/routing-gateways/demo-vendor",
        Some(json!({ "address": format!("127.0.0.1:{vendor_port}") })),
    )
    .await;
    let client = reqwest::Client::new();
    let table = client
        .put(format!("{}/api/v1/tables/demo-rates", served.api))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(",0.60,0,1,1\n")
        .send()
        .await
        .expect("rates upload");
    assert!(table.status().is_success(), "rates: {}", table.status());
    rest(
        &served,
        "PUT",
        "/api/v1/accounts/demo",
        Some(json!({ "rate_table": "demo-rates" })),
    )
    .await;
    let start = 100.0;
    rest(
        &served,
        "POST",
        "/api/v1/accounts/demo/payments",
        Some(json!({ "amount": start })),
    )
    .await;

    // Calls of about 1 s, 20 a second, until the host dies.
    let port = vendor_port.to_string();
    let mut vendor = sipp(&caller_dir, &["-sn", "uas", "-i", "127.0.0.1", "-p", &port]);
    let mut caller = sipp(
        &caller_dir,
        &[
            &served.sip,
            "-sn",
            "uac",
            "-i",
            "127.0.0.1",
            "-r",
            "20",
            "-d",
            "1000",
            "-m",
            "400",
            "-trace_msg",
        ],
    );
    // Load until 40 calls have ended at the caller (about 3 s), then kill mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while calls_seen_ended(&caller_dir).len() < 40 {
        assert!(
            Instant::now() < deadline,
            "only {} calls ended within 30 s",
            calls_seen_ended(&caller_dir).len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(served); // SIGKILL
    let _ = caller.kill();
    let _ = caller.wait();
    let _ = vendor.kill();
    let _ = vendor.wait();

    let ended = calls_seen_ended(&caller_dir);
    assert!(
        ended.len() >= 40,
        "too few calls ended before the kill to mean anything: {}",
        ended.len()
    );

    let served = serve(&data, TOKEN, &[]);
    let records = rest(&served, "GET", "/api/v1/calls?limit=1000", None).await["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for call_id in &ended {
        assert!(
            records.iter().any(|r| r["call_id"] == call_id.as_str()),
            "the caller saw {call_id} end, but it has no record ({} records)",
            records.len()
        );
    }
    let charged: f64 = records
        .iter()
        .filter_map(|r| r["billing"]["charge"].as_f64())
        .sum();
    let balance = rest(&served, "GET", "/api/v1/accounts/demo", None).await["balance"]
        .as_f64()
        .unwrap_or(f64::NAN);
    assert!(
        (balance - (start - charged)).abs() < 1e-6,
        "balance {balance} != {start} - {charged} over {} records",
        records.len()
    );
    assert!(charged > 0.0, "nothing was charged");
    drop(served);
    let started = Instant::now();
    while std::fs::remove_dir_all(&root).is_err() && started.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
