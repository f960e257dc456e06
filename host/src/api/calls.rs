//! Call records (newest first) and live SIP counts.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, AppState, Caller, ScopedCaller};
use axum::response::IntoResponse;

use crate::store::CallQuery;
use switchyard_model::CallRecord;

/// Most records one listing returns.
const MAX_LIST: usize = 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/calls", get(list))
        .route("/api/v1/calls/{call_id}", get(show))
        .route("/api/v1/live-calls", get(live))
        .route(
            "/api/v1/live-calls/{call_id}",
            axum::routing::delete(hang_up),
        )
        .route("/api/v1/sip/stats", get(stats))
        .route("/api/v1/stats", get(traffic))
}

/// `GET /api/v1/calls?format=`: `csv` for a CSV export; JSON otherwise. (A second
/// extractor beside [`CallQuery`]: serde's flatten would turn its numbers into strings.)
#[derive(Deserialize)]
struct Format {
    #[serde(default)]
    format: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Query(query): Query<CallQuery>,
    Query(q): Query<Format>,
) -> ApiResult<axum::response::Response> {
    let mut query = query;
    query.limit = query.limit.clamp(1, MAX_LIST);
    query.within = caller.agent.as_ref().map(|a| a.subtree.clone());
    let (records, next) = state
        .store
        .query_calls(Some(&caller.caller.tenant), &query)
        .map_err(|e| match e {
            crate::store::Error::Missing(what) => {
                ApiError::BadRequest(format!("{what} is not a page cursor"))
            }
            e => e.into(),
        })?;
    Ok(match q.format.as_deref() {
        Some("csv") => {
            let mut csv = String::from(CSV_HEADER);
            for r in &records {
                csv.push_str(&csv_rows(r));
            }
            let mut resp = csv.into_response();
            resp.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/csv"),
            );
            if let Some(next) = next.and_then(|n| axum::http::HeaderValue::from_str(&n).ok()) {
                resp.headers_mut().insert("x-next-page", next);
            }
            resp
        }
        None | Some("json") => ApiJson(json!({ "calls": records, "next": next })).into_response(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format {other:?}: use json or csv"
            )))
        }
    })
}

/// One line per call, followed by one line per failed attempt of it (`record` says
/// which; an attempt line carries the call's ids with the attempt's gateway, numbers,
/// times and answer).
const CSV_HEADER: &str = "call_id,account,ingress_gateway,egress_gateway,caller_in,callee_in,caller_out,callee_out,invite_ms,answer_ms,end_ms,duration_secs,billed_secs,pdd_ms,final_code,reason,final_reason,result,charge,cost,profit,codec_in,codec_out,record,attempt,leg_call_id,timed_out\n";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_rows(r: &CallRecord) -> String {
    let opt = |o: &Option<String>| csv_field(o.as_deref().unwrap_or_default());
    let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    let money = |m: Option<switchyard_model::Money>| m.map(|m| m.to_string()).unwrap_or_default();
    let b = r.billing.as_ref();
    let mut rows = [
        csv_field(&r.call_id),
        csv_field(&r.account),
        csv_field(&r.ingress_gateway),
        opt(&r.egress_gateway),
        csv_field(&r.caller_in),
        csv_field(&r.callee_in),
        opt(&r.caller_out),
        opt(&r.callee_out),
        r.invite_ms.to_string(),
        num(r.answer_ms),
        r.end_ms.to_string(),
        r.duration_secs().to_string(),
        num(b.map(|b| b.billed_secs)),
        num(r.pdd_ms.map(u64::from)),
        r.final_code.to_string(),
        crate::names::variant_name(&r.reason),
        opt(&r.final_reason),
        crate::names::variant_name(&r.result()),
        money(b.map(|b| b.charge)),
        money(b.and_then(|b| b.cost)),
        money(b.map(|b| b.profit)),
        opt(&r.codec_in),
        opt(&r.codec_out),
        "call".into(),
        String::new(),
        String::new(),
        String::new(),
    ]
    .join(",");
    rows.push('\n');
    for (i, a) in r.attempts.iter().enumerate().filter(|(_, a)| a.failed()) {
        rows.push_str(
            &[
                csv_field(&r.call_id),
                csv_field(&r.account),
                csv_field(&r.ingress_gateway),
                csv_field(&a.gateway),
                csv_field(&r.caller_in),
                csv_field(&r.callee_in),
                csv_field(&a.caller),
                csv_field(&a.callee),
                a.started_ms.to_string(),
                String::new(),
                num(a.ended_ms),
                "0".into(),
                String::new(),
                num(a.pdd_ms.map(u64::from)),
                num(a.code.map(u64::from)),
                csv_field(&a.reason),
                String::new(),
                crate::names::variant_name(&a.result()),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "attempt".into(),
                (i + 1).to_string(),
                csv_field(&a.leg_call_id),
                a.timed_out.to_string(),
            ]
            .join(","),
        );
        rows.push('\n');
    }
    rows
}

async fn show(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(call_id): Path<String>,
) -> ApiResult<ApiJson<CallRecord>> {
    match state.store.call_record(&call_id)? {
        Some(r)
            if r.tenant == caller.caller.tenant
                && caller.agent.as_ref().is_none_or(|a| a.covers(&r.account)) =>
        {
            Ok(ApiJson(r))
        }
        _ => Err(ApiError::NotFound(format!("call {call_id:?}"))),
    }
}

/// Calls in progress of the caller's tenant (an agent: of its subtree), oldest first,
/// with each leg's codec and media path.
async fn live(State(state): State<AppState>, caller: ScopedCaller) -> ApiResult<ApiJson<Value>> {
    let calls = state.sip.as_ref().map_or_else(Vec::new, |sip| {
        sip.live.list(|c| {
            c.tenant == caller.caller.tenant
                && caller.agent.as_ref().is_none_or(|a| a.covers(&c.account))
        })
    });
    Ok(ApiJson(json!({ "calls": calls })))
}

/// `DELETE /api/v1/live-calls/{call_id}`: hang an answered call up (both legs get a
/// BYE; its record says `operator_hangup`).
async fn hang_up(
    State(state): State<AppState>,
    caller: ScopedCaller,
    Path(call_id): Path<String>,
) -> ApiResult<(axum::http::StatusCode, ApiJson<Value>)> {
    let sip = state
        .sip
        .as_ref()
        .ok_or_else(|| ApiError::NotFound(format!("call {call_id:?}")))?;
    let visible = sip.live.get(&call_id).is_some_and(|c| {
        c.tenant == caller.caller.tenant
            && caller.agent.as_ref().is_none_or(|a| a.covers(&c.account))
    });
    if !visible {
        return Err(ApiError::NotFound(format!(
            "call {call_id:?} is not in progress"
        )));
    }
    match sip.hang_up(&call_id).await {
        crate::sip::HangUp::Ending => Ok((
            axum::http::StatusCode::ACCEPTED,
            ApiJson(json!({ "hanging_up": call_id })),
        )),
        crate::sip::HangUp::NotAnswered => Err(ApiError::Conflict(format!(
            "call {call_id:?} is not answered yet"
        ))),
        crate::sip::HangUp::NoSuchCall => Err(ApiError::NotFound(format!(
            "call {call_id:?} is not in progress"
        ))),
    }
}

async fn stats(State(state): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Value>> {
    caller.require_admin()?;
    let sip = state.sip.as_ref().map(|s| s.stats());
    let upstream = state.sip.as_ref().map(|s| s.upstream_status());
    let store = state.store.call_log_stats();
    Ok(ApiJson(
        json!({ "sip": sip, "upstream": upstream, "store": store }),
    ))
}

/// Traffic over the statistics window per routing gateway (with its live state) and per
/// account, for the caller's tenant; an agent sees only its subtree's accounts.
async fn traffic(State(state): State<AppState>, caller: ScopedCaller) -> ApiResult<ApiJson<Value>> {
    let runtime = state.policy.runtime();
    let tenant = &caller.caller.tenant;
    let mut gateways = serde_json::Map::new();
    let vendors = match caller.agent {
        None => state
            .store
            .carrier_list::<switchyard_model::RoutingGateway>(Some(tenant))?,
        Some(_) => Vec::new(),
    };
    for (id, _) in vendors {
        let live = runtime.gateway_live(&id);
        let mut entry = serde_json::to_value(runtime.gateway_traffic(&id)).unwrap_or_default();
        entry["current_calls"] = json!(live.current_calls);
        entry["down"] = json!(live.down);
        gateways.insert(id, entry);
    }
    let mut accounts = serde_json::Map::new();
    for (id, _) in state
        .store
        .carrier_list::<switchyard_model::Account>(Some(tenant))?
        .into_iter()
        .filter(|(id, _)| caller.agent.as_ref().is_none_or(|a| a.covers(id)))
    {
        let mut entry = serde_json::to_value(runtime.account_traffic(&id)).unwrap_or_default();
        entry["current_calls"] = json!(state.sip.as_ref().map_or(0, |s| s.account_calls(&id)));
        accounts.insert(id, entry);
    }
    Ok(ApiJson(
        json!({ "gateways": gateways, "accounts": accounts }),
    ))
}
