//! Accounts, mapping gateways, routing gateways, phones, calendars and gateway
//! groups: one generic set of handlers per kind, open to agent tokens as far as each
//! kind allows ([`AgentAccess::agent_sees`]); payments and the sub-account tree.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, ScopedCaller};
use crate::store::{AgentAccess, CarrierObject, Payment};
use switchyard_model::{Account, MappingGateway, Permission, Phone, RoutingGateway};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{id}/payments", get(payments).post(pay))
        .route("/api/v1/accounts/{id}/sub-accounts", get(sub_accounts))
        .merge(kind::<Account>())
        .merge(kind::<MappingGateway>())
        .merge(kind::<RoutingGateway>())
        .merge(kind::<Phone>())
        .merge(kind::<crate::billing::Calendar>())
        .merge(kind::<switchyard_model::GatewayGroup>())
        .merge(kind::<switchyard_model::NumberList>())
        .merge(kind::<switchyard_model::AddressList>())
}

fn kind<T: CarrierObject + AgentAccess>() -> Router<AppState> {
    Router::new()
        .route(&format!("/api/v1/{}", T::KIND), get(list::<T>))
        .route(
            &format!("/api/v1/{}/{{id}}", T::KIND),
            get(show::<T>).put(put::<T>).delete(remove::<T>),
        )
}

/// The object `id` of kind `T` if the caller may see it: of its tenant and, for an
/// agent, in its subtree. Others' objects answer as if they did not exist.
fn owned<T: CarrierObject + AgentAccess>(
    state: &AppState,
    caller: &ScopedCaller,
    id: &str,
) -> ApiResult<Option<T>> {
    match state.store.carrier_get::<T>(id)? {
        Some(o) if !sees(state, caller, id, &o) => Err(not_found::<T>(id)),
        other => Ok(other),
    }
}

fn sees<T: CarrierObject + AgentAccess>(
    state: &AppState,
    caller: &ScopedCaller,
    id: &str,
    o: &T,
) -> bool {
    o.tenant() == caller.caller.tenant
        && caller
            .agent
            .as_ref()
            .is_none_or(|agent| o.agent_sees(id, agent, &state.store))
}

fn not_found<T: CarrierObject + AgentAccess>(id: &str) -> ApiError {
    ApiError::NotFound(format!("{} {id:?}", T::KIND))
}

async fn list<T: CarrierObject + AgentAccess>(
    State(state): State<AppState>,
    caller: ScopedCaller,
) -> ApiResult<ApiJson<Value>> {
    let items: Vec<Value> = state
        .store
        .carrier_list::<T>(Some(&caller.caller.tenant))?
        .into_iter()
        .filter(|(id, o)| sees(&state, &caller, id, o))
        .map(|(id, mut o)| {
            o.redact();
            json!({ "id": id, "object": o })
        })
        .collect();
    Ok(ApiJson(json!({ T::KIND: items })))
}

async fn show<T: CarrierObject + AgentAccess>(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<T>> {
    owned::<T>(&state, &caller, &id)?
        .map(|mut o| {
            o.redact();
            ApiJson(o)
        })
        .ok_or_else(|| not_found::<T>(&id))
}

async fn put<T: CarrierObject + AgentAccess>(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(id): Path<String>,
    ApiJson(mut object): ApiJson<T>,
) -> ApiResult<ApiJson<T>> {
    crate::names::check("id", &id).map_err(ApiError::BadRequest)?;
    let old = state.store.carrier_get::<T>(&id)?;
    if old.as_ref().is_some_and(|o| !sees(&state, &caller, &id, o)) {
        return Err(ApiError::Conflict(format!(
            "{} id {id:?} is taken",
            T::KIND
        )));
    }
    object.set_tenant(caller.caller.tenant.clone());
    object.validate().map_err(ApiError::BadRequest)?;
    if let Some(agent) = &caller.agent {
        object
            .agent_may_store(&id, old.as_ref(), agent, &state.store)
            .map_err(ApiError::Forbidden)?;
    }
    object
        .check_in(&id, &state.store)
        .map_err(ApiError::BadRequest)?;
    object.prepare(&id);
    state.store.carrier_replace(&id, &mut object)?;
    state.store.commit().await?;
    object.redact();
    Ok(ApiJson(object))
}

async fn remove<T: CarrierObject + AgentAccess>(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    let object = owned::<T>(&state, &caller, &id)?.ok_or_else(|| not_found::<T>(&id))?;
    if let Some(agent) = &caller.agent {
        object
            .agent_may_delete(&id, agent, &state.store)
            .map_err(ApiError::Forbidden)?;
    }
    T::check_delete(&id, &state.store).map_err(ApiError::Conflict)?;
    state.store.carrier_delete::<T>(&id)?;
    state.store.commit().await?;
    Ok(ApiJson(json!({ "deleted": id })))
}

/// `?direct=true` lists only the first level below the agent.
#[derive(serde::Deserialize)]
struct SubAccountsQuery {
    #[serde(default)]
    direct: bool,
}

/// An agent's sub-accounts: its children (`direct`) or its whole subtree.
async fn sub_accounts(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(id): Path<String>,
    Query(q): Query<SubAccountsQuery>,
) -> ApiResult<ApiJson<Value>> {
    owned::<Account>(&state, &caller, &id)?.ok_or_else(|| not_found::<Account>(&id))?;
    let scope = state
        .store
        .agent_scope(&id)?
        .ok_or_else(|| not_found::<Account>(&id))?;
    let items: Vec<Value> = state
        .store
        .carrier_list::<Account>(Some(&caller.caller.tenant))?
        .into_iter()
        .filter(|(sub, a)| match q.direct {
            true => a.parent.as_deref() == Some(id.as_str()),
            false => scope.is_below(sub),
        })
        .map(|(sub, a)| json!({ "id": sub, "object": a }))
        .collect();
    Ok(ApiJson(json!({ "agent": id, "accounts": items })))
}

/// A payment (or, negative, a correction) to an account's balance.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPayment {
    amount: switchyard_model::Money,
    #[serde(default)]
    note: String,
}

/// The account `id` if the caller may see its payments and pay into it: an agent
/// needs flag 7 for its own account and flag 8 for those below it.
fn payable(state: &AppState, caller: &ScopedCaller, id: &str) -> ApiResult<Account> {
    let account = owned::<Account>(state, caller, id)?.ok_or_else(|| not_found::<Account>(id))?;
    if let Some(agent) = &caller.agent {
        let flag = match id == agent.account {
            true => Permission::OwnPayments,
            false => Permission::SubAccountPayments,
        };
        agent.require(flag).map_err(ApiError::Forbidden)?;
    }
    Ok(account)
}

async fn pay(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewPayment>,
) -> ApiResult<ApiJson<Payment>> {
    payable(&state, &caller, &id)?;
    let payment = state
        .store
        .pay(&id, req.amount, &caller.caller.principal.name, &req.note)?
        .ok_or_else(|| not_found::<Account>(&id))?;
    state.store.commit().await?;
    tracing::info!(account = %id, amount = %payment.amount, balance = %payment.balance_after, by = %payment.by, "payment");
    Ok(ApiJson(payment))
}

/// `?limit=` payments, newest first (default 100, at most 1000).
#[derive(serde::Deserialize)]
struct PaymentsQuery {
    #[serde(default)]
    limit: Option<usize>,
}

async fn payments(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(id): Path<String>,
    Query(q): Query<PaymentsQuery>,
) -> ApiResult<ApiJson<Value>> {
    payable(&state, &caller, &id)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(ApiJson(
        json!({ "account": id, "payments": state.store.payments(&id, limit)? }),
    ))
}
