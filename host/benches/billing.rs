//! Billing benchmark (run by scripts/bench-billing, not in CI):
//! - rated lookups per second on one thread: the rate of a number in a 100,000-prefix
//!   rate table in effect now, as call setup asks it (the table's one-time compile on
//!   first use is inside the timed loop);
//! - durable call-record writes per second: `record_call` of billed calls (journal
//!   append and sync, then the debit), from many concurrent calls, as call ends do;
//!   against the anchor of sled's own group commit (insert + flushed commit) from
//!   the same writers, and their ratio.
//!
//! - call-record queries over a large store (`--cdrs`, default 1,000,000 records of
//!   10,000 accounts): newest page, one account's page, one gateway's page, and a
//!   callee substring search, each the median of 20 runs; and a search that matches
//!   nothing, so reads every record.
//!
//! Prints `lookups N/s`, `cdr N/s` and the `query ... ms` lines last.

mod common;

use common::arg;
use std::sync::Arc;
use std::time::Instant;

use switchyard::billing::Rate;
use switchyard::store::{Row, Store, TableIndex};
use switchyard_model::Money;
use switchyard_model::{Account, AttemptRecord, CallCharges, CallRecord, EndReason};

fn main() -> anyhow::Result<()> {
    let (prefixes, lookups, records, writers, cdrs) = (
        arg("--prefixes", 100_000),
        arg("--lookups", 2_000_000),
        arg("--records", 20_000),
        arg("--writers", 200),
        arg("--cdrs", 1_000_000),
    );

    // 100,000 prefixes of 3 to 8 digits, like a real A-Z table.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let rows: Vec<Row> = (0..prefixes)
        .map(|i| {
            let len = 3 + (i % 6);
            let key: String = format!("{:08}", next() % 100_000_000)[..len].to_string();
            Row {
                key,
                fields: vec![
                    format!("0.{:04}", i % 10_000),
                    "0".into(),
                    "60".into(),
                    "6".into(),
                ],
            }
        })
        .collect();
    let table = TableIndex::new(rows);
    let numbers: Vec<String> = (0..4096)
        .map(|_| format!("{:012}", next() % 1_000_000_000_000))
        .collect();
    let now_ms = switchyard::now_ms();
    let started = Instant::now();
    let mut found = 0usize;
    for i in 0..lookups {
        if let Some(rate) =
            Rate::lookup(&table, &numbers[i % numbers.len()], now_ms).map_err(anyhow::Error::msg)?
        {
            found += usize::from(rate.per_minute >= Money::ZERO);
        }
    }
    let lookups_per_sec = lookups as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(found > 0, "no number matched a prefix");

    // Durable call records, as many calls ending at once write them.
    let dir = std::env::temp_dir().join(format!("switchyard-bench-billing-{}", std::process::id()));
    let store = Store::open(&dir)?;
    store.carrier_put(
        "acct",
        &Account {
            tenant: "bench".into(),
            balance: Money::from_units(1e6),
            ..Account::default()
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = Arc::new(store);
    let started = Instant::now();
    // As Billing::settle does at a call's end.
    write_concurrently(&runtime, &store, writers, records, |w, n| {
        record(&format!("bench-{w}-{n}"))
    })?;
    let cdr_per_sec = records as f64 / started.elapsed().as_secs_f64();
    let left = store
        .carrier_get::<Account>("acct")?
        .map(|a| a.balance)
        .unwrap_or_default();
    anyhow::ensure!(
        left == Money::from_units(1e6) - Money(Money::from_units(0.01).0 * records as i64),
        "balance {left} does not match {records} charges"
    );
    // The anchor, in the same run: sled's own group commit, as call records were
    // written before the journal (a value of a record's size inserted, then the
    // store's flushed group commit), from the same number of writers.
    let account = Account {
        tenant: "bench".into(),
        ..Account::default()
    };
    let started = Instant::now();
    let anchor_store = store.clone();
    concurrently(&runtime, writers, records, move |w, n| {
        let (store, account) = (anchor_store.clone(), account.clone());
        async move {
            store.carrier_put(&format!("anchor-{w}-{n}"), &account)?;
            store.commit().await?;
            anyhow::Ok(())
        }
    })?;
    let sled_per_sec = records as f64 / started.elapsed().as_secs_f64();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);

    println!("prefixes {prefixes}");
    println!("lookups {lookups_per_sec:.0}/s");
    println!("sled group commit {sled_per_sec:.0}/s");
    println!("cdr {cdr_per_sec:.0}/s");
    println!("cdr ratio {:.2}", cdr_per_sec / sled_per_sec);
    println!("cdrs {cdrs}");
    // Each query figure is printed as it is measured: a run over a store larger than
    // memory can take long, and what it measured so far is kept.
    let result = query_times(&dir, cdrs, |what, value| {
        match what {
            "disk bytes per record" => println!("{what} {value:.0}"),
            _ => println!("query {what} {value:.2} ms"),
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Load `cdrs` records of 10,000 accounts over 100 vendors, then time the queries,
/// handing each figure to `report` as it is measured.
fn query_times(
    dir: &std::path::Path,
    cdrs: usize,
    mut report: impl FnMut(&str, f64),
) -> anyhow::Result<()> {
    use switchyard::store::CallQuery;
    let store = Arc::new(Store::open(dir)?);
    let base = switchyard::now_ms() - cdrs as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // One writer: the records go in in end-time order.
    write_concurrently(&runtime, &store, 1, cdrs, move |_, n| {
        let mut r = record(&format!("q-{n}"));
        r.account = format!("acct-{}", n % 10_000);
        r.egress_gateway = Some(format!("vendor-{}", n % 100));
        r.attempts[0].gateway = format!("vendor-{}", n % 100);
        r.callee_in = format!("44{:010}", n);
        r.end_ms = base + n as u64;
        r.billing = None;
        r
    })?;
    let bytes = store.call_log_stats().disk_bytes;
    // `want`: the records the query must find, when known.
    let timed =
        |query: CallQuery, want: Option<usize>, runs_wanted: usize| -> anyhow::Result<f64> {
            let mut runs = Vec::new();
            for _ in 0..runs_wanted {
                let started = Instant::now();
                let (found, _) = store.query_calls(Some("bench"), &query)?;
                runs.push(started.elapsed().as_secs_f64() * 1e3);
                anyhow::ensure!(
                    want.is_none_or(|w| found.len() == w),
                    "{} records, wanted {want:?}",
                    found.len()
                );
            }
            runs.sort_by(f64::total_cmp);
            Ok(runs[runs.len() / 2])
        };
    let time = |query, want| timed(query, want, 20);
    // The records of one account and of one vendor (at most a page of 100).
    let account = 1234 % cdrs.clamp(1, 10_000);
    let of_account = (0..cdrs).filter(|n| n % 10_000 == account).count().min(100);
    let of_vendor = (0..cdrs).filter(|n| n % 100 == 7).count().min(100);
    report("disk bytes per record", bytes as f64 / cdrs.max(1) as f64);
    report("newest", time(CallQuery::default(), Some(100.min(cdrs)))?);
    let of = |account: Option<String>, gateway: Option<String>| CallQuery {
        account,
        gateway,
        ..CallQuery::default()
    };
    report(
        "account",
        time(of(Some(format!("acct-{account}")), None), Some(of_account))?,
    );
    report(
        "gateway",
        time(of(None, Some("vendor-7".into())), Some(of_vendor))?,
    );
    let callee = |callee: &str| CallQuery {
        callee: Some(callee.into()),
        ..CallQuery::default()
    };
    report("callee", time(callee("1234"), None)?);
    // Matches nothing: the page reads its whole budget (200,000 records, or every
    // record of a smaller store) and ends with a cursor.
    report("no-match page", timed(callee("none"), Some(0), 3)?);
    Ok(())
}

/// Write `records` records made by `make(writer, n)` from `writers` concurrent tasks,
/// each waiting for its record to be durable before the next, as calls ending do.
fn write_concurrently(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<Store>,
    writers: usize,
    records: usize,
    make: impl Fn(usize, usize) -> CallRecord + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let store = store.clone();
    concurrently(runtime, writers, records, move |w, n| {
        let (store, record) = (store.clone(), make(w, n));
        async move {
            store.record_call(record).await?;
            anyhow::Ok(())
        }
    })
}

/// Run `op(writer, n)` `records` times from `writers` concurrent tasks, each task
/// awaiting one before starting its next.
fn concurrently<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    writers: usize,
    records: usize,
    op: F,
) -> anyhow::Result<()>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let op = op.clone();
            let per_writer = records / writers + usize::from(w < records % writers);
            tasks.spawn(async move {
                for n in 0..per_writer {
                    op(w, n * writers + w).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })
}

/// A record as a routed, answered and billed call leaves it.
fn record(call_id: &str) -> CallRecord {
    CallRecord {
        call_id: call_id.into(),
        tenant: "bench".into(),
        account: "acct".into(),
        ingress_gateway: "in".into(),
        egress_gateway: Some("out".into()),
        caller_in: "1000".into(),
        callee_in: "442071234567".into(),
        caller_out: Some("1000".into()),
        callee_out: Some("442071234567".into()),
        invite_ms: switchyard::now_ms(),
        ring_ms: None,
        answer_ms: None,
        end_ms: switchyard::now_ms(),
        pdd_ms: None,
        final_code: 200,
        final_reason: None,
        codec_in: Some("PCMA".into()),
        codec_out: Some("PCMA".into()),
        reason: EndReason::CallerHangup,
        module: Some("admin/stock-router".into()),
        module_version: Some(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        ),
        attempts: vec![AttemptRecord {
            gateway: "out".into(),
            leg_call_id: format!("b-{call_id}"),
            callee: "442071234567".into(),
            caller: "1000".into(),
            started_ms: switchyard::now_ms(),
            pdd_ms: Some(120),
            code: Some(200),
            reason: "OK".into(),
            timed_out: false,
            ended_ms: Some(switchyard::now_ms()),
        }],
        billing: Some(CallCharges {
            billed_secs: 60,
            rate_prefix: "44".into(),
            charge: Money::from_units(0.01),
            cost: None,
            profit: Money::from_units(0.01),
            balance_after: Money::ZERO,
        }),
        refused_by: None,
    }
}
