//! Events modules raised (fraud warnings and blocks), newest first. A tenant sees its
//! own; an admin sees every tenant's.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiJson, AppState, Caller};
use crate::runtime::events::{Event, EventFilter};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/events", get(list))
}

/// Most events one listing returns.
const MAX_LIMIT: usize = 1_000;

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    /// Only events with a higher `seq` (to poll for new ones).
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiJson<Vec<Event>> {
    let filter = EventFilter {
        tenant: (!caller.is_admin()).then_some(caller.tenant.as_str()),
        kind: q.kind.as_deref(),
        subject: q.subject.as_deref(),
        after: q.after,
        since_ms: 0,
    };
    let limit = q.limit.unwrap_or(100).min(MAX_LIMIT);
    ApiJson(state.policy.runtime().events.list(&filter, limit))
}
