//! `GET /metrics`: the switch's Prometheus metrics (text format 0.0.4). They span
//! every tenant, so an admin's token is needed (Prometheus sends it as a bearer
//! token: `authorization: { credentials: ... }` in its scrape config).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::{ApiResult, AppState, Caller};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    let text = state.policy.runtime().metrics.encode();
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    ))
}
