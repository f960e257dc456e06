//! The demo carrier `switchyard serve` creates in an empty data directory, so a first
//! run completes calls with nothing configured: customers on 127.0.0.0/8, one vendor
//! `demo-vendor` at 127.0.0.1:5090, a catch-all route to it, the stock router bound
//! globally and the stock fraud rules bound globally for `screen`.

use std::sync::Arc;

use crate::policy::limits::{DEFAULT_DEADLINE_MS, DEFAULT_MEMORY_MIB};
use crate::policy::PolicyEngine;
use crate::store::{Binding, Fallback, Hook, Row, Scope, Store, TableInfo};
use switchyard_model::{Account, MappingGateway, RoutingGateway};

/// The stock router, embedded at build time (empty when it was not built).
const DEMO_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demo-module.wasm"));
/// The stock fraud rules, bound for `screen` (empty when not built).
const FRAUD_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fraud-module.wasm"));

/// Tenant of the demo objects.
pub const DEMO_TENANT: &str = "default";

/// Create the demo carrier when the store has no carrier objects and no bindings.
/// Blocking (compiles the module): call it off the reactor.
pub fn seed_if_empty(store: &Store, policy: &Arc<PolicyEngine>) -> anyhow::Result<bool> {
    let empty = store.carrier_list::<MappingGateway>(None)?.is_empty()
        && store.carrier_list::<RoutingGateway>(None)?.is_empty()
        && store.bindings()?.is_empty();
    if !empty {
        return Ok(false);
    }
    // Every call is rated: the demo account's table prices every number at 0.
    let free = vec![Row {
        key: String::new(),
        fields: vec!["0".into()],
    }];
    store.put_table(&TableInfo::of(DEMO_TENANT, "demo-free", &free), &free)?;
    store.carrier_put(
        "demo",
        &Account {
            tenant: DEMO_TENANT.into(),
            rate_table: Some("demo-free".into()),
            ..Account::default()
        },
    )?;
    store.carrier_put(
        "demo-customers",
        &MappingGateway {
            sources: vec!["127.0.0.0/8".into(), "::1".into()],
            ..MappingGateway::for_account(DEMO_TENANT, "demo")
        },
    )?;
    store.carrier_put(
        "demo-vendor",
        &RoutingGateway {
            tenant: DEMO_TENANT.into(),
            address: Some("127.0.0.1:5090".into()),
            ..RoutingGateway::default()
        },
    )?;
    // An empty prefix matches every number: the catch-all route.
    let rows = vec![Row {
        key: String::new(),
        fields: vec!["demo-vendor".into()],
    }];
    store.put_table(&TableInfo::of(DEMO_TENANT, "routes", &rows), &rows)?;
    if DEMO_MODULE.is_empty() || FRAUD_MODULE.is_empty() {
        tracing::warn!("demo carrier created without its modules: run scripts/build-guests before building switchyard");
    } else {
        bind_stock(
            policy,
            "stock-router",
            "the stock router (demo carrier)",
            DEMO_MODULE,
            Hook::Call,
        )?;
        bind_stock(
            policy,
            "fraud-guard",
            "the stock fraud rules (tables fraud-accounts, fraud-destinations, fraud-high-risk)",
            FRAUD_MODULE,
            Hook::Screen,
        )?;
    }
    store.commit_blocking()?;
    tracing::info!(
        "created the demo carrier: customers 127.0.0.0/8 -> demo-vendor at 127.0.0.1:5090"
    );
    Ok(true)
}

/// Upload one of the embedded stock modules and bind it globally for `hook`.
fn bind_stock(
    policy: &Arc<PolicyEngine>,
    name: &str,
    description: &str,
    bytes: &[u8],
    hook: Hook,
) -> anyhow::Result<()> {
    let version = policy
        .upload(DEMO_TENANT, name, description, "demo", bytes, usize::MAX)
        .map_err(|e| anyhow::anyhow!("stock module {name}: {e}"))?;
    let binding = Binding {
        scope: Scope::Global,
        hook,
        tenant: DEMO_TENANT.into(),
        module: name.into(),
        version: version.version,
        canary: None,
        deadline_ms: DEFAULT_DEADLINE_MS,
        memory_mib: DEFAULT_MEMORY_MIB,
        fallback: Fallback::default(),
        updated_by: "demo".into(),
        updated_at_ms: crate::now_ms(),
    };
    let slot = binding.slot();
    policy
        .set_binding(&slot, Some(binding), "put")
        .map_err(|e| anyhow::anyhow!("binding {name}: {e}"))
}
