//! The shield's bans (admin only): list them with why and since when, ban a source by
//! hand, lift a ban. Bans are stored: a restart keeps the ones still in force.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::sip::auto_blacklist::Listing;
use crate::sip::shield::{Ban, Shield};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/security/bans", get(list).post(ban))
        .route("/api/v1/security/bans/{address}", delete(lift))
        .route("/api/v1/security/auto-blacklist", get(auto_listed))
        .route(
            "/api/v1/security/auto-blacklist/{number}",
            delete(auto_lift),
        )
}

fn core(state: &AppState) -> ApiResult<&Arc<crate::sip::SipCore>> {
    state
        .sip
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this server runs no SIP".into()))
}

/// Caller numbers the dynamic blacklist holds: a tenant's own, or every tenant's for
/// an admin.
async fn auto_listed(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<Vec<Listing>>> {
    let tenant = (!caller.is_admin()).then_some(caller.tenant.as_str());
    Ok(ApiJson(
        core(&state)?
            .auto_blacklist
            .listings(tenant, crate::now_ms()),
    ))
}

/// Lift one of the caller's tenant's listings.
async fn auto_lift(
    State(state): State<AppState>,
    caller: Caller,
    Path(number): Path<String>,
) -> ApiResult<StatusCode> {
    match core(&state)?.auto_blacklist.lift(&caller.tenant, &number) {
        true => {
            tracing::info!(tenant = %caller.tenant, %number, by = %caller.principal.name, "automatic listing lifted");
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::NotFound(format!(
            "{number} is not blacklisted for {}",
            caller.tenant
        ))),
    }
}

/// Longest ban an operator may set: a year.
const MAX_BAN_SECS: u32 = 366 * 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBan {
    address: String,
    reason: String,
    secs: u32,
}

fn shield(state: &AppState) -> ApiResult<&Arc<Shield>> {
    state
        .sip
        .as_ref()
        .map(|sip| sip.shield())
        .ok_or_else(|| ApiError::NotFound("this server runs no SIP".into()))
}

fn address(text: &str) -> ApiResult<IpAddr> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("{text:?} is not an IP address")))
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Vec<Ban>>> {
    caller.require_admin()?;
    Ok(ApiJson(shield(&state)?.bans(crate::now_ms())))
}

async fn ban(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewBan>,
) -> ApiResult<(StatusCode, ApiJson<Ban>)> {
    caller.require_admin()?;
    let ip = address(&req.address)?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::BadRequest("a ban needs a reason".into()));
    }
    if !(1..=MAX_BAN_SECS).contains(&req.secs) {
        return Err(ApiError::BadRequest(format!(
            "secs must be 1..={MAX_BAN_SECS}"
        )));
    }
    let reason = format!("{} (by {})", req.reason.trim(), caller.principal.name);
    let ban = shield(&state)?.ban(ip, reason, req.secs, crate::now_ms());
    // An operator's ban is configuration: durable before it is acknowledged.
    state.store.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(ban)))
}

async fn lift(
    State(state): State<AppState>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    match shield(&state)?.unban(address(&text)?) {
        true => {
            state.store.commit().await?;
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::NotFound(format!("no ban on {text}"))),
    }
}
