//! Policy decision benchmark (run by scripts/bench-policy, not in CI): instantiate +
//! `route` of the prefix-router example over a data table, on one thread.
//! Prints `decisions/s N`, `p50 X us`, `p99 Y us` last.

mod common;

use common::arg;
use std::time::Instant;

use switchyard::policy::{Call, Caller, CallerHeader, HookCall, PolicyEngine, RunLimits};
use switchyard::store::{ModuleKey, Row, Store, TableInfo};

fn main() -> anyhow::Result<()> {
    let (routes, iterations) = (arg("--routes", 1_000), arg("--iterations", 20_000));
    // cargo runs benches from the package directory: find the shared target dir.
    let wasm = std::env::var("BENCH_WASM").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
        format!("{target}/wasm32-wasip2/release/prefix_router.wasm")
    });
    let bytes = std::fs::read(&wasm)
        .map_err(|e| anyhow::anyhow!("{wasm}: {e} (run scripts/build-guests)"))?;

    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    let store = Store::open(&dir)?;
    // Routes "44000".."44000+n" plus a catch-all, so lookups do real prefix work.
    let mut rows: Vec<Row> = (0..routes)
        .map(|i| Row {
            key: format!("44{:06}", i),
            fields: vec![format!("vendor-{}", i % 50)],
        })
        .collect();
    rows.push(Row {
        key: "4".into(),
        fields: vec!["default-vendor".into()],
    });
    store.put_table(
        &TableInfo {
            tenant: "bench".into(),
            name: "routes".into(),
            rows: rows.len(),
            loaded_at_ms: 0,
        },
        &rows,
    )?;
    let policy = PolicyEngine::start(store)?;
    let meta = policy.upload("bench", "router", "", "bench", &bytes, usize::MAX)?;
    let key = ModuleKey {
        tenant: "bench".into(),
        name: "router".into(),
        version: meta.version,
    };
    let limits = RunLimits {
        deadline_ms: 1_000,
        memory_mib: 16,
        now_ms: None,
    };

    let hook = |i: usize| HookCall::Route {
        call: Call {
            call_id: format!("bench-{i}"),
            account: "acme".into(),
            tenant: "bench".into(),
            ingress_gateway: String::new(),
            source_address: "127.0.0.1:5060".into(),
            caller: Caller {
                user: "1000".into(),
                display: None,
                source: CallerHeader::From,
            },
            callee: format!("44{:06}123", i % routes.max(1)),
            request_uri: String::new(),
            headers: vec![],
            codecs: vec!["PCMA".into()],
            arrived_at_ms: 0,
        },
    };
    for i in 0..1_000 {
        policy.simulate(&key, &hook(i), limits)?; // warm-up
    }
    let mut times = Vec::with_capacity(iterations);
    let started = Instant::now();
    for i in 0..iterations {
        let h = hook(i);
        let t = Instant::now();
        let inv = policy.simulate(&key, &h, limits)?;
        times.push(t.elapsed().as_nanos() as u64);
        anyhow::ensure!(inv.answer.is_ok(), "decision failed: {:?}", inv.answer);
    }
    let total = started.elapsed();
    times.sort_unstable();
    let pct =
        |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)] as f64 / 1000.0;
    let _ = std::fs::remove_dir_all(&dir);
    println!("routes {}", rows.len());
    println!("decisions/s {:.0}", iterations as f64 / total.as_secs_f64());
    println!("p50 {:.1} us", pct(0.50));
    println!("p99 {:.1} us", pct(0.99));
    Ok(())
}
