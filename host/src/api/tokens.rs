//! API tokens (admin only). The secret is returned once, at creation; only its hash is kept.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{new_secret, ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::store::{Role, TokenInfo};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list).post(create))
        .route("/api/v1/tokens/{name}", delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: Role,
    #[serde(default)]
    tenant: Option<String>,
    /// For an agent token: the account it acts as (its tenant is the account's).
    #[serde(default)]
    account: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, ApiJson<Value>)> {
    caller.require_admin()?;
    crate::names::check("token name", &req.name).map_err(ApiError::BadRequest)?;
    let tenant = grant_tenant(&state, req.role, req.tenant, req.account.as_deref())?;
    if state.store.tokens()?.iter().any(|t| t.name == req.name) {
        return Err(ApiError::Conflict(format!(
            "a token named {:?} exists",
            req.name
        )));
    }
    let info = TokenInfo {
        name: req.name,
        role: req.role,
        tenant,
        account: req.account,
        created_at_ms: crate::now_ms(),
    };
    let secret = new_secret();
    state.store.put_token(&secret, &info)?;
    state.store.commit().await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({ "token": secret, "info": info })),
    ))
}

/// The tenant a new token or user of `role` acts for: an agent's is its account's
/// (which must exist), anyone else's the one named (default "default").
pub(super) fn grant_tenant(
    state: &AppState,
    role: Role,
    tenant: Option<String>,
    account: Option<&str>,
) -> ApiResult<String> {
    let tenant = match (role, account) {
        (Role::Agent, Some(account)) => state
            .store
            .carrier_get::<switchyard_model::Account>(account)?
            .map(|a| a.tenant)
            .ok_or_else(|| ApiError::BadRequest(format!("account {account:?} does not exist")))?,
        (Role::Agent, None) => {
            return Err(ApiError::BadRequest(
                "an agent needs the account it acts as".into(),
            ))
        }
        (_, Some(_)) => {
            return Err(ApiError::BadRequest(
                "only agents are bound to an account".into(),
            ))
        }
        (_, None) => tenant.unwrap_or_else(|| "default".into()),
    };
    crate::names::check("tenant", &tenant).map_err(ApiError::BadRequest)?;
    Ok(tenant)
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Vec<TokenInfo>>> {
    caller.require_admin()?;
    Ok(ApiJson(state.store.tokens()?))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    caller.require_admin()?;
    if !state.store.delete_token(&name)? {
        return Err(ApiError::NotFound(format!("token {name:?}")));
    }
    state.store.commit().await?;
    Ok(ApiJson(json!({ "deleted": name })))
}
