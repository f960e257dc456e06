//! The SIP trace over REST: `GET /api/v1/sip/trace` (JSON, oldest first) and
//! `GET /api/v1/sip/trace.pcap` (for tshark, sngrep, Wireshark), both filtered by
//! `call_id`, `number`, `address`, and `dropped=true` for what the shield dropped.
//! Messages cross tenants, so the trace is an admin's.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiResult, AppState, Caller};
use crate::sip::trace::{pcap, TraceEntry, TraceFilter};

/// Most messages one answer holds.
const MAX_LIMIT: usize = 5_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sip/trace", get(list))
        .route("/api/v1/sip/trace.pcap", get(download))
}

#[derive(Deserialize)]
struct Limit {
    #[serde(default)]
    limit: Option<usize>,
}

fn search(
    state: &AppState,
    caller: &Caller,
    filter: &TraceFilter,
    limit: Option<usize>,
) -> ApiResult<Vec<Arc<TraceEntry>>> {
    caller.require_admin()?;
    let sip = state
        .sip
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("SIP is not running".into()))?;
    let limit = limit.unwrap_or(500).clamp(1, MAX_LIMIT);
    Ok(sip.trace().search(filter, limit))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<TraceFilter>,
    Query(l): Query<Limit>,
) -> ApiResult<ApiJson<Vec<Arc<TraceEntry>>>> {
    Ok(ApiJson(search(&state, &caller, &filter, l.limit)?))
}

async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<TraceFilter>,
    Query(l): Query<Limit>,
) -> ApiResult<impl IntoResponse> {
    let entries = search(&state, &caller, &filter, l.limit)?;
    Ok((
        [
            (CONTENT_TYPE, "application/vnd.tcpdump.pcap"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"sip-trace.pcap\"",
            ),
        ],
        pcap(&entries),
    ))
}
