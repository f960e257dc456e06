//! Call records (newest first) and live SIP counts.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::store::CallRecord;

/// Most records one listing returns.
const MAX_LIST: usize = 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/calls", get(list))
        .route("/api/v1/calls/{call_id}", get(show))
        .route("/api/v1/sip/stats", get(stats))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<ApiJson<Value>> {
    let records = state
        .store
        .call_records(Some(&caller.tenant), q.limit.min(MAX_LIST))?;
    Ok(ApiJson(json!({ "calls": records })))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(call_id): Path<String>,
) -> ApiResult<ApiJson<CallRecord>> {
    match state.store.call_record(&call_id)? {
        Some(r) if r.tenant == caller.tenant => Ok(ApiJson(r)),
        _ => Err(ApiError::NotFound(format!("call {call_id:?}"))),
    }
}

async fn stats(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Value>> {
    caller.require_admin()?;
    let sip = state.sip.as_ref().map(|s| s.stats());
    let upstream = state.sip.as_ref().map(|s| s.upstream_status());
    Ok(ApiJson(json!({ "sip": sip, "upstream": upstream })))
}
