//! The web manager's users (admin only). A user has a token's role, tenant and agent
//! account, and so exactly a token's permissions; the password is kept only as an
//! argon2id hash.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::store::{Role, UserInfo};

/// Shortest password accepted.
const MIN_PASSWORD: usize = 10;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list).post(create))
        .route("/api/v1/users/{name}", delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    role: Role,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

/// `POST /api/v1/users`: add a user, or give an existing one a new password and role.
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, ApiJson<Value>)> {
    caller.require_admin()?;
    crate::names::check("user name", &req.name).map_err(ApiError::BadRequest)?;
    if req.password.chars().count() < MIN_PASSWORD {
        return Err(ApiError::BadRequest(format!(
            "a password needs at least {MIN_PASSWORD} characters"
        )));
    }
    let tenant = super::tokens::grant_tenant(&state, req.role, req.tenant, req.account.as_deref())?;
    let info = UserInfo {
        name: req.name,
        role: req.role,
        tenant,
        account: req.account,
        created_at_ms: crate::now_ms(),
    };
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || crate::store::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let existed = state.store.user(&info.name)?.is_some();
    state.store.put_user(&info, &hash)?;
    state.store.commit().await?;
    // A changed user logs in again with what it is now.
    state.sessions.close_user(&info.name);
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, ApiJson(json!({ "user": info }))))
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Value>> {
    caller.require_admin()?;
    Ok(ApiJson(json!({ "users": state.store.users()? })))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    caller.require_admin()?;
    if name == caller.principal.name {
        return Err(ApiError::Conflict("you cannot delete yourself".into()));
    }
    if !state.store.delete_user(&name)? {
        return Err(ApiError::NotFound(format!("user {name:?}")));
    }
    state.store.commit().await?;
    state.sessions.close_user(&name);
    Ok(ApiJson(json!({ "deleted": name })))
}
