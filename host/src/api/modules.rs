//! Modules: upload, list, inspect, health, simulate.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::policy::limits::{
    DEFAULT_DEADLINE_MS, DEFAULT_MEMORY_MIB, MAX_DEADLINE_MS, MAX_MEMORY_MIB,
};
use crate::policy::{HookCall, RunLimits, UploadError};
use crate::store::{ModuleKey, ModuleVersion};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/modules", get(list))
        .route("/api/v1/modules/{name}", post(upload).get(versions))
        .route("/api/v1/modules/{name}/versions/{version}", get(version))
        .route(
            "/api/v1/modules/{name}/versions/{version}/health",
            get(health),
        )
        .route(
            "/api/v1/modules/{name}/versions/{version}/simulate",
            post(simulate),
        )
        .route("/api/v1/modules/{name}/reset", post(reset))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    /// Counter and state keys starting with this go (`a:<account>:` for one account
    /// of the stock fraud rules); empty resets everything the module keeps.
    prefix: String,
}

/// Forget a module's sliding-window counters and persisted state under a prefix,
/// for every version of it: an operator clearing one account's fraud counters.
async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ResetRequest>,
) -> ApiResult<ApiJson<Value>> {
    if state
        .store
        .module_versions(&caller.tenant, Some(&name))?
        .is_empty()
    {
        return Err(ApiError::NotFound(format!("module {name:?}")));
    }
    let counters = state
        .policy
        .runtime()
        .reset_counters(&caller.tenant, &name, &req.prefix);
    let state_keys = state
        .store
        .state_delete_prefix(&caller.tenant, &name, &req.prefix)?;
    state.store.commit().await?;
    tracing::info!(module = %name, prefix = %req.prefix, counters, state_keys, by = %caller.principal.name, "module counters reset");
    Ok(ApiJson(
        json!({ "module": name, "prefix": req.prefix, "counters": counters, "state_keys": state_keys }),
    ))
}

#[derive(Deserialize)]
struct UploadParams {
    #[serde(default)]
    description: String,
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(params): Query<UploadParams>,
    body: Body,
) -> ApiResult<(StatusCode, ApiJson<ModuleVersion>)> {
    let limit = state.config.max_module_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::TooLarge(format!("module is larger than the limit of {limit} bytes"))
    })?;
    let policy = state.policy.clone();
    let (tenant, by) = (caller.tenant.clone(), caller.principal.name.clone());
    let meta = tokio::task::spawn_blocking(move || {
        policy.upload(&tenant, &name, &params.description, &by, &bytes, limit)
    })
    .await?
    .map_err(|e| match e {
        UploadError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
        UploadError::BadName(m) => ApiError::BadRequest(m),
        UploadError::Store(e) => e.into(),
        other => ApiError::Unprocessable(other.to_string()),
    })?;
    state.store.commit().await?;
    tracing::info!(module = %meta.key(), size = meta.size, "module version uploaded");
    Ok((StatusCode::CREATED, ApiJson(meta)))
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Value>> {
    let versions = state.store.module_versions(&caller.tenant, None)?;
    let mut modules: Vec<Value> = Vec::new();
    for v in versions {
        match modules.last_mut() {
            Some(m) if m["name"] == v.name.as_str() => {
                m["versions"].as_array_mut().expect("array").push(json!(v))
            }
            _ => modules.push(json!({ "name": v.name, "tenant": v.tenant, "versions": [v] })),
        }
    }
    Ok(ApiJson(json!({ "modules": modules })))
}

async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<ApiJson<Vec<ModuleVersion>>> {
    let versions = state.store.module_versions(&caller.tenant, Some(&name))?;
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("module {name:?}")));
    }
    Ok(ApiJson(versions))
}

fn key_of(caller: &Caller, name: String, version: String) -> ModuleKey {
    ModuleKey {
        tenant: caller.tenant.clone(),
        name,
        version,
    }
}

async fn existing(state: &AppState, key: &ModuleKey) -> ApiResult<ModuleVersion> {
    state
        .store
        .module_version(key)?
        .ok_or_else(|| ApiError::NotFound(format!("module version {key}")))
}

async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<ApiJson<ModuleVersion>> {
    Ok(ApiJson(
        existing(&state, &key_of(&caller, name, version)).await?,
    ))
}

async fn health(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<ApiJson<Value>> {
    let key = key_of(&caller, name, version);
    let meta = existing(&state, &key).await?;
    Ok(ApiJson(
        json!({ "module": meta, "health": state.policy.health(&key) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateRequest {
    /// "screen", "route" (default) or "on_attempt_failed".
    #[serde(default = "route_hook")]
    hook: String,
    /// The call; missing fields take neutral defaults.
    call: Value,
    #[serde(default)]
    attempt: Option<Value>,
    #[serde(default)]
    outcome: Option<Value>,
    #[serde(default)]
    now_ms: Option<u64>,
    #[serde(default)]
    deadline_ms: Option<u32>,
    #[serde(default)]
    memory_mib: Option<u32>,
}

fn route_hook() -> String {
    "route".into()
}

/// `overrides` laid over `defaults`, one level of objects deep.
fn with_defaults(defaults: Value, overrides: Value) -> Result<Value, ApiError> {
    let (Value::Object(mut base), Value::Object(over)) = (defaults, overrides) else {
        return Err(ApiError::BadRequest(
            "call, attempt and outcome must be JSON objects".into(),
        ));
    };
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(inner)), Value::Object(v)) => inner.extend(v),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
    Ok(Value::Object(base))
}

fn default_call(tenant: &str) -> Value {
    json!({
        "call_id": format!("simulate-{}", crate::now_ms()), "account": "", "tenant": tenant,
        "ingress_gateway": "", "source_address": "127.0.0.1:5060",
        "caller": { "user": "anonymous", "display": null, "source": "From" },
        "callee": "", "request_uri": "", "headers": [], "codecs": [], "arrived_at_ms": crate::now_ms(),
    })
}

fn build_hook(req: &SimulateRequest, tenant: &str) -> Result<HookCall, ApiError> {
    let mut hook =
        json!({ "hook": req.hook, "call": with_defaults(default_call(tenant), req.call.clone())? });
    if req.hook == "on_attempt_failed" {
        let attempt = req
            .attempt
            .clone()
            .ok_or_else(|| ApiError::BadRequest("on_attempt_failed needs `attempt`".into()))?;
        hook["attempt"] = with_defaults(
            json!({ "gateway": "", "callee": "", "caller": null, "display": null, "p_asserted_identity": null,
                    "privacy": null, "p_preferred_identity": null, "add_headers": [], "remove_headers": [], "timeout_ms": null }),
            attempt,
        )?;
        hook["outcome"] = with_defaults(
            json!({ "index": 0, "code": null, "reason": "", "pdd_ms": null, "timed_out": false }),
            req.outcome.clone().unwrap_or(json!({})),
        )?;
    }
    serde_json::from_value(hook).map_err(|e| ApiError::BadRequest(format!("simulate request: {e}")))
}

async fn simulate(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<SimulateRequest>,
) -> ApiResult<ApiJson<Value>> {
    let key = key_of(&caller, name, version);
    existing(&state, &key).await?;
    let hook = build_hook(&req, &caller.tenant)?;
    let limits = RunLimits {
        deadline_ms: req
            .deadline_ms
            .unwrap_or(DEFAULT_DEADLINE_MS)
            .clamp(1, MAX_DEADLINE_MS),
        memory_mib: req
            .memory_mib
            .unwrap_or(DEFAULT_MEMORY_MIB)
            .clamp(1, MAX_MEMORY_MIB),
        now_ms: req.now_ms,
    };
    let policy = state.policy.clone();
    let k = key.clone();
    let inv = tokio::task::spawn_blocking(move || policy.simulate(&k, hook, limits)).await??;
    let (answer, failure) = match inv.answer {
        Ok(a) => (Some(a), None),
        Err(f) => (None, Some(f)),
    };
    Ok(ApiJson(json!({
        "module": key, "answer": answer, "failure": failure, "logs": inv.logs,
        "dropped_logs": inv.dropped_logs, "elapsed_us": inv.elapsed_us, "cpu_us": inv.cpu_us,
    })))
}
