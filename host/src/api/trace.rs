//! The SIP trace over REST: `GET /api/v1/sip/trace` (JSON, oldest first) and
//! `GET /api/v1/sip/trace.pcap` (for tshark, sngrep, Wireshark), both filtered by
//! `call_id`, `number`, `address`, and `dropped=true` for what the shield dropped.
//! Messages cross tenants, so the trace is an admin's; one call's ladder,
//! `GET /api/v1/calls/{call_id}/sip`, is for whoever may see the call.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiResult, AppState, Caller, ScopedCaller};
use crate::sip::trace::{pcap, TraceEntry, TraceFilter};

/// Most messages one answer holds.
const MAX_LIMIT: usize = 5_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sip/trace", get(list))
        .route("/api/v1/sip/trace.pcap", get(download))
        .route("/api/v1/calls/{call_id}/sip", get(ladder))
}

/// `GET /api/v1/calls/{call_id}/sip`: one call's messages on both legs, oldest first,
/// for whoever may see the call (its ladder diagram in the manager).
async fn ladder(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(call_id): Path<String>,
) -> ApiResult<ApiJson<Vec<Arc<TraceEntry>>>> {
    let visible = |tenant: &str, account: &str| {
        tenant == caller.caller.tenant && caller.agent.as_ref().is_none_or(|a| a.covers(account))
    };
    let sip = state
        .sip
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("SIP is not running".into()))?;
    let mut call_ids = vec![call_id.clone()];
    match state.store.call_record(&call_id)? {
        Some(r) if visible(&r.tenant, &r.account) => {
            call_ids.extend(r.attempts.iter().map(|a| a.leg_call_id.clone()));
        }
        _ if sip
            .live
            .get(&call_id)
            .is_some_and(|c| visible(&c.tenant, &c.account)) => {}
        _ => return Err(ApiError::NotFound(format!("call {call_id:?}"))),
    }
    let mut messages = Vec::new();
    for id in call_ids.iter().filter(|id| !id.is_empty()) {
        let filter = TraceFilter {
            call_id: Some(id.clone()),
            ..TraceFilter::default()
        };
        messages.extend(sip.trace().search(&filter, MAX_LIMIT));
    }
    messages.sort_by_key(|m| m.seq);
    Ok(ApiJson(messages))
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
