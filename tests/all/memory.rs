//! Memory that stays flat: after a run of calls ends, every in-memory structure the
//! census counts is back where it started, and the call records went to the journal
//! (whose in-memory index is bounded by its segment size), not into memory.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use switchyard_tests::sip::{carrier, Sipp, Vendor};
use switchyard_tests::{TempDir, TestServer};

/// `calls` calls at `rate` per second, every one answered.
async fn place_calls(s: &TestServer, vendor: &Vendor, calls: u32, rate: u32) -> Result<()> {
    let uas = Sipp::uas(vendor.port, &["-sn", "uas"], calls)?;
    Sipp::uac(
        s.server.sip.addr,
        &["-sn", "uac", "-s", "442071234567", "-l", "500"],
        calls,
        rate,
    )?
    .succeeds()
    .await?;
    uas.succeeds().await
}

async fn stats(s: &TestServer) -> Result<Value> {
    let (status, stats) = s.admin("GET", "/api/v1/sip/stats", None).await?;
    anyhow::ensure!(status == 200, "{status} {stats}");
    Ok(stats)
}

/// The stats once `records` call records are stored and no call or dialog is left,
/// and with `transactions`, no transaction either (a server transaction lingers up to
/// 32 s: Timer J).
async fn settled(s: &TestServer, records: u64, transactions: bool) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = stats(s).await?;
        let sip = &stats["sip"];
        if stats["store"]["records"] == records
            && sip["calls"] == 0
            && sip["dialogs"] == 0
            && (!transactions || sip["client_transactions"] == 0 && sip["server_transactions"] == 0)
        {
            return Ok(stats);
        }
        if Instant::now() > deadline {
            bail!("not settled after 60 s: {stats}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_per_call_entry_in_memory_is_gone_once_a_thousand_calls_end() -> Result<()> {
    let dir = TempDir::new("memory-census");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    // One call first: what is kept per gateway and per account (traffic windows,
    // admission usage) exists from the first call on and is not per call.
    place_calls(&s, &vendor, 1, 1).await?;
    let before = settled(&s, 1, false).await?;
    let store = s.server.policy.runtime().store();
    let sled_keys = store.sled_keys()?;
    place_calls(&s, &vendor, 1000, 200).await?;
    let after = settled(&s, 1001, true).await?;
    // sled's memory grows with its keys: calls add none.
    assert_eq!(store.sled_keys()?, sled_keys);
    let (was, is) = (&before["sip"]["memory"], &after["sip"]["memory"]);
    for key in [
        "live_calls",
        "billing_reservations",
        "admission_keys",
        "admission_active",
        "digest_nonces",
        "digest_failure_keys",
        "tcp_connections",
    ] {
        assert_eq!(was[key], is[key], "{key}: before {was}, after {is}");
    }
    assert_eq!(is["live_calls"], 0, "{is}");
    assert_eq!(is["admission_active"], 0, "{is}");
    for key in [
        "traffic_keys",
        "calls_with_pool_numbers",
        "pool_numbers_lent",
        "module_counter_keys",
        "gateways_live",
    ] {
        assert_eq!(
            was["runtime"][key], is["runtime"][key],
            "{key}: before {was}, after {is}"
        );
    }
    // The traffic windows keep one entry a second (two keys: the vendor and the
    // account), not one per call.
    let seconds = is["runtime"]["traffic_seconds"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(seconds <= 2 * 301, "{is}");
    // Every record is in the journal and its active segment's index, none elsewhere.
    assert_eq!(is["call_journal_active_records"], 1001, "{is}");
    s.stop().await
}
