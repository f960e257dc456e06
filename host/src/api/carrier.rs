//! Accounts, mapping gateways, routing gateways and phones: one generic set of handlers
//! per kind.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::store::{Account, CarrierObject, MappingGateway, Phone, RoutingGateway};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{id}/payments", post(payment))
        .merge(kind::<Account>())
        .merge(kind::<MappingGateway>())
        .merge(kind::<RoutingGateway>())
        .merge(kind::<Phone>())
        .merge(kind::<crate::billing::Calendar>())
}

fn kind<T: CarrierObject>() -> Router<AppState> {
    Router::new()
        .route(&format!("/api/v1/{}", T::KIND), get(list::<T>))
        .route(
            &format!("/api/v1/{}/{{id}}", T::KIND),
            get(show::<T>).put(put::<T>).delete(remove::<T>),
        )
}

fn owned<T: CarrierObject>(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Option<T>> {
    match state.store.carrier_get::<T>(id)? {
        Some(o) if o.tenant() != caller.tenant => {
            Err(ApiError::NotFound(format!("{} {id:?}", T::KIND)))
        }
        other => Ok(other),
    }
}

async fn list<T: CarrierObject>(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<Value>> {
    let items: Vec<Value> = state
        .store
        .carrier_list::<T>(Some(&caller.tenant))?
        .into_iter()
        .map(|(id, mut o)| {
            o.redact();
            json!({ "id": id, "object": o })
        })
        .collect();
    Ok(ApiJson(json!({ T::KIND: items })))
}

async fn show<T: CarrierObject>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<T>> {
    owned::<T>(&state, &caller, &id)?
        .map(|mut o| {
            o.redact();
            ApiJson(o)
        })
        .ok_or_else(|| ApiError::NotFound(format!("{} {id:?}", T::KIND)))
}

async fn put<T: CarrierObject>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(mut object): ApiJson<T>,
) -> ApiResult<ApiJson<T>> {
    crate::names::check("id", &id).map_err(ApiError::BadRequest)?;
    if state
        .store
        .carrier_get::<T>(&id)?
        .is_some_and(|o| o.tenant() != caller.tenant)
    {
        return Err(ApiError::Conflict(format!(
            "{} id {id:?} is taken",
            T::KIND
        )));
    }
    object.set_tenant(caller.tenant.clone());
    object.validate().map_err(ApiError::BadRequest)?;
    object
        .check_in(&id, &state.store)
        .map_err(ApiError::BadRequest)?;
    object.prepare(&id);
    state.store.carrier_replace(&id, &mut object)?;
    state.store.commit().await?;
    object.redact();
    Ok(ApiJson(object))
}

async fn remove<T: CarrierObject>(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    if owned::<T>(&state, &caller, &id)?.is_none() {
        return Err(ApiError::NotFound(format!("{} {id:?}", T::KIND)));
    }
    T::check_delete(&id, &state.store).map_err(ApiError::Conflict)?;
    state.store.carrier_delete::<T>(&id)?;
    state.store.commit().await?;
    Ok(ApiJson(json!({ "deleted": id })))
}

/// A payment (or, negative, a correction) to an account's balance.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Payment {
    amount: crate::billing::Money,
}

async fn payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(payment): ApiJson<Payment>,
) -> ApiResult<ApiJson<Value>> {
    if owned::<Account>(&state, &caller, &id)?.is_none() {
        return Err(ApiError::NotFound(format!("accounts {id:?}")));
    }
    let balance = state
        .store
        .add_to_balance(&id, payment.amount)?
        .ok_or_else(|| ApiError::NotFound(format!("accounts {id:?}")))?;
    state.store.commit().await?;
    tracing::info!(account = %id, amount = %payment.amount, %balance, "payment");
    Ok(ApiJson(json!({ "account": id, "balance": balance })))
}
