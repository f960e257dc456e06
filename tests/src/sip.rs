//! SIP test helpers: a carrier set up over REST, SIPp peers on loopback, and a raw UDP
//! socket for what SIPp cannot express (silence, malformed input).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

use crate::{guest, version_of, Body, TestServer, ADMIN};

/// Longest any SIPp run may take before the test fails.
pub const SIPP_TIMEOUT: Duration = Duration::from_secs(90);

/// A free UDP port on 127.0.0.1 (closed again, so a peer can bind it).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A scenario file in `tests/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join(name)
}

/// A vendor in the test carrier.
pub struct Vendor {
    /// Routing gateway id.
    pub id: &'static str,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// INVITE timeout, ms (short for "silent vendor" tests).
    pub invite_timeout_ms: u32,
}

impl Vendor {
    /// A vendor on a fresh port with a 2 s INVITE timeout.
    pub fn new(id: &'static str) -> Vendor {
        Vendor {
            id,
            port: free_port(),
            invite_timeout_ms: 2_000,
        }
    }
}

/// Set up a carrier: account `acme`, mapping gateway `customers` for 127.0.0.1 with
/// `customer` merged over its defaults, the vendors as routing gateways, a catch-all
/// route to each in order, and the prefix-router example bound globally.
pub async fn carrier(s: &TestServer, customer: Value, vendors: &[&Vendor]) -> Result<()> {
    // Every call is rated: acme's own table prices every number at 0.
    let (status, body) = s
        .call(
            "PUT",
            "/api/v1/tables/acme-free",
            ADMIN,
            Some(Body::Bytes(b",0\n".to_vec(), "text/csv")),
        )
        .await?;
    anyhow::ensure!(status == 200, "rate table: {status} {body}");
    put(
        s,
        "/api/v1/accounts/acme",
        json!({ "rate_table": "acme-free" }),
    )
    .await?;
    let mut gateway = json!({ "account": "acme", "sources": ["127.0.0.1/32"] });
    if let (Some(g), Some(extra)) = (gateway.as_object_mut(), customer.as_object()) {
        g.extend(extra.clone());
    }
    put(s, "/api/v1/mapping-gateways/customers", gateway).await?;
    let mut routes = String::new();
    for v in vendors {
        put(
            s,
            &format!("/api/v1/routing-gateways/{}", v.id),
            json!({ "address": format!("127.0.0.1:{}", v.port), "invite_timeout_ms": v.invite_timeout_ms }),
        )
        .await?;
        routes.push_str(&format!(",{}\n", v.id));
    }
    let (status, body) = s
        .call(
            "PUT",
            "/api/v1/tables/routes",
            ADMIN,
            Some(Body::Bytes(routes.into_bytes(), "text/csv")),
        )
        .await?;
    anyhow::ensure!(status == 200, "routes table: {status} {body}");
    bind_global(s, "prefix_router").await
}

/// Upload guest `name` (as module "router") and bind it globally.
pub async fn bind_global(s: &TestServer, name: &str) -> Result<()> {
    let module = guest(name);
    let version = version_of(&module);
    let (status, body) = s.upload(ADMIN, "router", module).await?;
    anyhow::ensure!(status == 201, "upload: {status} {body}");
    put(
        s,
        "/api/v1/bindings/global",
        json!({ "module": "router", "version": version, "deadline_ms": 200 }),
    )
    .await
}

/// PUT `body` to `path` as the admin; an error unless it succeeds.
pub async fn put(s: &TestServer, path: &str, body: Value) -> Result<()> {
    let (status, answer) = s.admin("PUT", path, Some(body)).await?;
    anyhow::ensure!(
        (200..300).contains(&status),
        "PUT {path}: {status} {answer}"
    );
    Ok(())
}

/// A SIPp process, killed when dropped.
pub struct Sipp {
    child: Child,
    what: String,
}

impl Sipp {
    /// Start `sipp` with `args` (plus `-nostdin`, quiet output) in a scratch directory.
    pub fn spawn(args: &[&str]) -> Result<Sipp> {
        Sipp::spawn_in(&std::env::temp_dir().join("switchyard-sipp"), args)
    }

    /// Start `sipp` in `workdir`, where `-trace_msg` and friends write their logs.
    pub fn spawn_in(workdir: &Path, args: &[&str]) -> Result<Sipp> {
        std::fs::create_dir_all(workdir)?;
        let child = Command::new("sipp")
            .args(args)
            .arg("-nostdin")
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting sipp (scripts/setup installs the sip-tester package)")?;
        Ok(Sipp {
            child,
            what: args.join(" "),
        })
    }

    /// A vendor: SIPp `-sn uas` (or a scenario file) answering on `port`.
    pub fn uas(port: u16, scenario_args: &[&str], calls: u32) -> Result<Sipp> {
        let port = port.to_string();
        let calls = calls.to_string();
        let mut args = vec!["-i", "127.0.0.1", "-p", &port, "-m", &calls];
        args.extend_from_slice(scenario_args);
        Sipp::spawn(&args)
    }

    /// A caller placing `calls` calls at `rate` per second to `switch`.
    pub fn uac(switch: SocketAddr, scenario_args: &[&str], calls: u32, rate: u32) -> Result<Sipp> {
        let target = switch.to_string();
        let (calls, rate) = (calls.to_string(), rate.to_string());
        let mut args = vec![
            target.as_str(),
            "-i",
            "127.0.0.1",
            "-m",
            &calls,
            "-r",
            &rate,
        ];
        args.extend_from_slice(scenario_args);
        Sipp::spawn(&args)
    }

    /// Wait for it to exit, however its calls went (a test that ends some of them
    /// itself judges by the call records); an error only past [`SIPP_TIMEOUT`].
    pub async fn ends(mut self) -> Result<()> {
        self.exit().await.map(|_| ())
    }

    /// Its exit status; an error past [`SIPP_TIMEOUT`].
    async fn exit(&mut self) -> Result<std::process::ExitStatus> {
        match tokio::time::timeout(SIPP_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => bail!("sipp {} did not finish in {SIPP_TIMEOUT:?}", self.what),
        }
    }

    /// Wait for it to exit; an error when it fails (SIPp exits 0 only when every call
    /// succeeded) or outlives [`SIPP_TIMEOUT`].
    pub async fn succeeds(mut self) -> Result<()> {
        let status = self.exit().await?;
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut err).await;
            }
            bail!("sipp {} failed ({status}): {err}", self.what);
        }
        Ok(())
    }
}

/// Every message SIPp logged receiving in `workdir` (`-trace_msg`), whole.
pub fn received_messages(workdir: &Path) -> Result<Vec<String>> {
    let mut messages = Vec::new();
    for entry in std::fs::read_dir(workdir)? {
        let path = entry?.path();
        if !path.to_string_lossy().ends_with("_messages.log") {
            continue;
        }
        let log = std::fs::read_to_string(&path)?;
        // Each logged message follows a line of dashes and time, a line saying which
        // way it went, and a blank line.
        for block in log.split("----------------------------------------------- ") {
            let received = block
                .lines()
                .nth(1)
                .is_some_and(|l| l.contains("message received"));
            if let (true, Some((_, message))) = (received, block.split_once("\n\n")) {
                messages.push(message.trim().to_string());
            }
        }
    }
    Ok(messages)
}

/// Start lines of every message SIPp logged receiving in `workdir` (`-trace_msg`).
pub fn received_start_lines(workdir: &Path) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(workdir)? {
        let path = entry?.path();
        if !path.to_string_lossy().ends_with("_messages.log") {
            continue;
        }
        let log = std::fs::read_to_string(&path)?;
        let mut next_is_start = false;
        for line in log.lines() {
            if next_is_start && !line.trim().is_empty() {
                lines.push(line.trim().to_string());
                next_is_start = false;
            }
            if line.contains("message received") {
                next_is_start = true;
            }
        }
    }
    Ok(lines)
}

/// The call records of the server, newest first.
pub async fn call_records(s: &TestServer) -> Result<Vec<Value>> {
    let (status, body) = s.admin("GET", "/api/v1/calls?limit=1000", None).await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(body["calls"].as_array().cloned().unwrap_or_default())
}

/// Wait until `n` call records exist (a call's record is written as it ends).
pub async fn wait_for_records(s: &TestServer, n: usize) -> Result<Vec<Value>> {
    for _ in 0..100 {
        let records = call_records(s).await?;
        if records.len() >= n {
            return Ok(records);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("fewer than {n} call records after 10 s")
}

/// Load data table `name` from CSV text as the admin; an error unless it succeeds.
pub async fn table(s: &TestServer, name: &str, csv: &str) -> Result<()> {
    let (status, body) = s
        .call(
            "PUT",
            &format!("/api/v1/tables/{name}"),
            ADMIN,
            Some(Body::Bytes(csv.as_bytes().to_vec(), "text/csv")),
        )
        .await?;
    anyhow::ensure!(status == 200, "table {name}: {status} {body}");
    Ok(())
}

/// The record of call `call_id`, once it is written.
pub async fn record_of(s: &TestServer, call_id: &str) -> Result<Value> {
    crate::eventually(Duration::from_secs(10), "the call's record", || async {
        Ok(call_records(s)
            .await?
            .into_iter()
            .find(|r| r["call_id"] == call_id))
    })
    .await
}

/// Wait until some call in progress has been answered.
pub async fn a_call_answered(s: &TestServer) -> Result<()> {
    crate::eventually(Duration::from_secs(10), "a call answered", || async {
        let (_, live) = s.admin("GET", "/api/v1/live-calls", None).await?;
        Ok(live["calls"]
            .as_array()
            .is_some_and(|calls| calls.iter().any(|c| c["answer_ms"].is_u64()))
            .then_some(()))
    })
    .await
}

/// Wait until no call or dialog is live (transactions may linger for Timer J/H).
pub async fn wait_for_no_calls(s: &TestServer) -> Result<Value> {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, stats) = s.admin("GET", "/api/v1/sip/stats", None).await?;
        if stats["sip"]["calls"] == 0 && stats["sip"]["dialogs"] == 0 {
            return Ok(stats);
        }
        last = stats;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("calls still live after 10 s: {last}")
}

/// A raw SIP request over UDP from `from` to the switch; the first response within
/// `wait`, or `None` for silence.
pub async fn raw_request(
    from: &str,
    switch: SocketAddr,
    request: &str,
    wait: Duration,
) -> Result<Option<String>> {
    let socket = UdpSocket::bind(from).await?;
    let local = socket.local_addr()?;
    let request = request.replace("LOCAL", &local.to_string());
    socket.send_to(request.as_bytes(), switch).await?;
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Err(_) => return Ok(None),
            Ok(r) => {
                let (n, _) = r?;
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                // 100 Trying is not the answer we are waiting for.
                if !text.starts_with("SIP/2.0 100") {
                    return Ok(Some(text));
                }
            }
        }
    }
}

/// An INVITE for [`raw_request`] (`LOCAL` becomes the sender's address).
pub fn raw_invite(call_id: &str, callee: &str) -> String {
    format!(
        "INVITE sip:{callee}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK{call_id}\r\n\
         From: <sip:tester@LOCAL>;tag=t{call_id}\r\n\
         To: <sip:{callee}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:tester@LOCAL>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Place one SIPp call to `callee`, answered by SIPp as `vendor`; its call record.
pub async fn one_call(s: &TestServer, vendor: &Vendor, callee: &str) -> Result<Value> {
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], 1)?;
    Sipp::uac(s.server.sip.addr, &["-sn", "uac", "-s", callee], 1, 1)?
        .succeeds()
        .await?;
    uas.succeeds().await?;
    Ok(wait_for_records(s, 1).await?.remove(0))
}
