//! Bindings: which module version serves which scope, canaries, rollback.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::policy::limits::{DEFAULT_DEADLINE_MS, DEFAULT_MEMORY_MIB};
use crate::store::{Binding, BindingEvent, Canary, CarrierObject, Fallback, Hook, Scope, Slot};
use switchyard_model::{Account, MappingGateway};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/bindings", get(list))
        .route(
            "/api/v1/bindings/{scope}",
            get(show).put(put).delete(remove),
        )
        .route("/api/v1/bindings/{scope}/rollback", post(rollback))
        .route("/api/v1/bindings/{scope}/history", get(history))
}

/// `?hook=screen` addresses a scope's screen binding; without it, its call binding.
#[derive(Deserialize)]
struct HookQuery {
    #[serde(default)]
    hook: Option<String>,
}

fn parse_slot(scope: &str, query: &HookQuery) -> ApiResult<Slot> {
    let hook = match &query.hook {
        Some(h) => h.parse().map_err(ApiError::BadRequest)?,
        None => Hook::Call,
    };
    let scope = scope.parse().map_err(ApiError::BadRequest)?;
    Ok(Slot { hook, scope })
}

/// Whether the caller may bind `scope` for its tenant: the global scope is the admin's;
/// an account or mapping gateway must not belong to another tenant, nor may an existing
/// binding. A refusal looks like absence.
fn check_scope_owner(state: &AppState, caller: &Caller, slot: &Slot) -> ApiResult<()> {
    fn owner<T: CarrierObject>(state: &AppState, id: &str) -> ApiResult<Option<String>> {
        Ok(state
            .store
            .carrier_get::<T>(id)?
            .map(|o| o.tenant().to_string()))
    }
    let scope = &slot.scope;
    let object_owner = match scope {
        Scope::Global => {
            return caller
                .require_admin()
                .map_err(|_| ApiError::Forbidden("only admins bind the global scope".into()))
        }
        Scope::Account(id) => owner::<Account>(state, id)?,
        Scope::Gateway(id) => owner::<MappingGateway>(state, id)?,
    };
    let bound_owner = state.policy.binding(slot).map(|b| b.tenant.clone());
    if object_owner
        .into_iter()
        .chain(bound_owner)
        .any(|t| t != caller.tenant)
    {
        return Err(ApiError::NotFound(format!("scope {scope}")));
    }
    Ok(())
}

fn visible(caller: &Caller, b: &Binding) -> bool {
    caller.sees(&b.tenant)
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiJson<Vec<Binding>> {
    ApiJson(
        state
            .policy
            .bindings()
            .iter()
            .filter(|b| visible(&caller, b))
            .map(|b| (**b).clone())
            .collect(),
    )
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(scope): Path<String>,
    Query(query): Query<HookQuery>,
) -> ApiResult<ApiJson<Binding>> {
    let scope = parse_slot(&scope, &query)?;
    match state.policy.binding(&scope) {
        Some(b) if visible(&caller, &b) => Ok(ApiJson((*b).clone())),
        _ => Err(ApiError::NotFound(format!("binding for {scope}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindRequest {
    module: String,
    version: String,
    #[serde(default)]
    canary: Option<Canary>,
    #[serde(default)]
    fallback: Option<Fallback>,
    #[serde(default)]
    deadline_ms: Option<u32>,
    #[serde(default)]
    memory_mib: Option<u32>,
}

async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(scope): Path<String>,
    Query(query): Query<HookQuery>,
    ApiJson(req): ApiJson<BindRequest>,
) -> ApiResult<ApiJson<Binding>> {
    let scope = parse_slot(&scope, &query)?;
    check_scope_owner(&state, &caller, &scope)?;
    let binding = Binding {
        scope: scope.scope.clone(),
        hook: scope.hook,
        tenant: caller.tenant.clone(),
        module: req.module,
        version: req.version,
        canary: req.canary,
        fallback: req.fallback.unwrap_or_default(),
        deadline_ms: req.deadline_ms.unwrap_or(DEFAULT_DEADLINE_MS),
        memory_mib: req.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
        updated_at_ms: crate::now_ms(),
        updated_by: caller.principal.name.clone(),
    };
    let policy = state.policy.clone();
    let b = binding.clone();
    tokio::task::spawn_blocking(move || policy.set_binding(&scope, Some(b), "put")).await??;
    tracing::info!(scope = %binding.scope, module = %binding.module, version = %binding.version, "binding activated");
    Ok(ApiJson(binding))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(scope): Path<String>,
    Query(query): Query<HookQuery>,
) -> ApiResult<ApiJson<Value>> {
    let scope = parse_slot(&scope, &query)?;
    match state.policy.binding(&scope) {
        Some(b) if visible(&caller, &b) => {}
        _ => return Err(ApiError::NotFound(format!("binding for {scope}"))),
    }
    let policy = state.policy.clone();
    let s = scope.clone();
    tokio::task::spawn_blocking(move || policy.set_binding(&s, None, "delete")).await??;
    Ok(ApiJson(json!({ "deleted": scope.to_string() })))
}

async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(scope): Path<String>,
    Query(query): Query<HookQuery>,
) -> ApiResult<ApiJson<Value>> {
    let scope = parse_slot(&scope, &query)?;
    let owned = state.policy.binding(&scope).map(|b| visible(&caller, &b));
    let history = state.store.binding_history(&scope)?;
    let last_owner_ok = history
        .last()
        .is_some_and(|e| e.previous.as_ref().is_none_or(|b| visible(&caller, b)));
    if owned == Some(false) || !last_owner_ok {
        return Err(ApiError::NotFound(format!(
            "nothing to roll back for {scope}"
        )));
    }
    let policy = state.policy.clone();
    let s = scope.clone();
    let restored = tokio::task::spawn_blocking(move || policy.rollback(&s)).await??;
    match restored {
        Some(binding) => Ok(ApiJson(
            json!({ "scope": scope.to_string(), "binding": binding }),
        )),
        None => Err(ApiError::NotFound(format!(
            "nothing to roll back for {scope}"
        ))),
    }
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(scope): Path<String>,
    Query(query): Query<HookQuery>,
) -> ApiResult<ApiJson<Vec<BindingEvent>>> {
    let scope = parse_slot(&scope, &query)?;
    let events = state.store.binding_history(&scope)?;
    let visible_events: Vec<_> = events
        .into_iter()
        .filter(|e| e.previous.as_ref().is_none_or(|b| visible(&caller, b)))
        .collect();
    if !caller.is_admin()
        && state
            .policy
            .binding(&scope)
            .is_some_and(|b| !visible(&caller, &b))
    {
        return Err(ApiError::NotFound(format!("binding for {scope}")));
    }
    Ok(ApiJson(visible_events))
}
