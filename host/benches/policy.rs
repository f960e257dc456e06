//! Policy decision benchmark (run by scripts/bench-policy, not in CI): instantiate +
//! `route` on one thread over a `routes` data table of `--routes` rows, for the
//! prefix-router example and then the stock router (which also reads each gateway's
//! live state and settings). Prints, per module, `decisions/s N` and `p50`, `p90`,
//! `p95`, `p99` in us; the stock router's come last.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::arg;
use switchyard::policy::{Call, Caller, CallerHeader, HookCall, PolicyEngine, RunLimits};
use switchyard::store::{ModuleKey, Row, Store, TableInfo};
use switchyard_model::RoutingGateway;

/// Routing gateways the routes spread over.
const VENDORS: usize = 50;

fn main() -> anyhow::Result<()> {
    let (routes, iterations) = (arg("--routes", 1_000), arg("--iterations", 20_000));
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    let store = Store::open(&dir)?;
    // Routes "44000".."44000+n" plus a catch-all, so lookups do real prefix work.
    let mut rows: Vec<Row> = (0..routes)
        .map(|i| Row {
            key: format!("44{:06}", i),
            fields: vec![format!("vendor-{}", i % VENDORS)],
        })
        .collect();
    rows.push(Row {
        key: "4".into(),
        fields: vec!["vendor-0".into()],
    });
    store.put_table(&TableInfo::of("bench", "routes", &rows), &rows)?;
    for i in 0..VENDORS {
        let gateway = RoutingGateway {
            tenant: "bench".into(),
            capacity: 100,
            priority: (i % 3) as u32,
            ..RoutingGateway::default()
        };
        store.carrier_put(&format!("vendor-{i}"), &gateway)?;
    }
    let runtime = Arc::new(switchyard::runtime::Runtime::new(
        store,
        Arc::new(switchyard::clock::Clock::system()),
    ));
    let policy = PolicyEngine::start(runtime)?;
    println!("routes {}", rows.len());
    for name in ["prefix_router", "stock_router"] {
        let (per_sec, [p50, p90, p95, p99]) = measure(&policy, name, routes, iterations)?;
        println!("{name}");
        println!("decisions/s {per_sec:.0}");
        println!("p50 {p50:.1} us");
        println!("p90 {p90:.1} us");
        println!("p95 {p95:.1} us");
        println!("p99 {p99:.1} us");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Decisions per second and p50, p90, p95 and p99 (µs) of `iterations` decisions by
/// guest `name`.
fn measure(
    policy: &PolicyEngine,
    name: &str,
    routes: usize,
    iterations: usize,
) -> anyhow::Result<(f64, [f64; 4])> {
    // cargo runs benches from the package directory: find the shared target dir.
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let wasm = format!("{target}/wasm32-wasip2/release/{name}.wasm");
    let bytes = std::fs::read(&wasm)
        .map_err(|e| anyhow::anyhow!("{wasm}: {e} (run scripts/build-guests)"))?;
    let meta = policy.upload("bench", name, "", "bench", &bytes, usize::MAX)?;
    let key = ModuleKey {
        tenant: "bench".into(),
        name: name.into(),
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
        policy.simulate(&key, hook(i), limits)?; // warm-up
    }
    let mut times = Vec::with_capacity(iterations);
    let started = Instant::now();
    for i in 0..iterations {
        let h = hook(i);
        let t = Instant::now();
        let inv = policy.simulate(&key, h, limits)?;
        times.push(t.elapsed().as_nanos() as u64);
        anyhow::ensure!(
            matches!(&inv.answer, Ok(switchyard::policy::HookAnswer::Decision(switchyard::policy::Decision::Attempts(a))) if !a.is_empty()),
            "{name}: no attempts: {:?}",
            inv.answer
        );
    }
    let total = started.elapsed();
    times.sort_unstable();
    let pct =
        |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)] as f64 / 1000.0;
    Ok((
        iterations as f64 / total.as_secs_f64(),
        [0.50, 0.90, 0.95, 0.99].map(pct),
    ))
}
