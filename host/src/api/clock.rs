//! The business clock (admin only): read it anywhere; move it only on a server started
//! with a settable clock, so labs and tests can route "at" any instant. The setting is
//! runtime state: a restart goes back to the system clock.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/clock", get(show).put(set))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    /// The instant it is to be now, milliseconds since the Unix epoch.
    now_ms: u64,
}

async fn show(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Value>> {
    caller.require_admin()?;
    Ok(ApiJson(describe(&state)))
}

async fn set(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SetClock>,
) -> ApiResult<ApiJson<Value>> {
    caller.require_admin()?;
    let clock = &state.policy.runtime().clock;
    clock
        .set_ms(req.now_ms)
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    tracing::warn!(now_ms = req.now_ms, "business clock moved by an admin");
    Ok(ApiJson(describe(&state)))
}

fn describe(state: &AppState) -> Value {
    let clock = &state.policy.runtime().clock;
    json!({
        "now_ms": clock.now_ms(),
        "offset_ms": clock.offset_ms(),
        "settable": clock.is_settable(),
    })
}
