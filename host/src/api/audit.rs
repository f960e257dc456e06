//! The audit log over REST, and the middleware that writes it: every request that may
//! change something (any method but GET, HEAD and OPTIONS) is recorded after it is
//! answered, with who sent it (requests without valid credentials are not), from where, and the status. Logins and logouts are
//! recorded by their own handlers, which know the user name even when it is wrong.

use axum::extract::{Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{ApiJson, ApiResult, AppState, Caller};
use crate::store::{AuditEntry, AuditQuery};

/// Most entries one listing returns.
const MAX_LIST: usize = 1_000;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(list))
}

/// `GET /api/v1/audit`: newest first; an admin sees every tenant's, a tenant its own.
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(mut query): Query<AuditQuery>,
) -> ApiResult<ApiJson<Value>> {
    query.limit = query.limit.clamp(1, MAX_LIST);
    query.tenant = (!caller.is_admin()).then(|| caller.tenant.clone());
    Ok(ApiJson(
        json!({ "entries": state.store.audit_log(&query)? }),
    ))
}

/// Record every change request once answered.
pub(super) async fn record_changes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let reads = matches!(
        request.method(),
        &Method::GET | &Method::HEAD | &Method::OPTIONS
    );
    let path = request.uri().path().to_string();
    if reads || matches!(path.as_str(), "/api/v1/login" | "/api/v1/logout") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // Requests without valid credentials change nothing and are not kept: a stranger
    // must not be able to fill the disk with them (the lockout deals with them).
    let Some(who) = super::auth::identify(&parts, &state) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let source = super::session::source_of(&parts.extensions);
    let action = match parts.uri.query() {
        Some(query) => format!("{} {path}?{query}", parts.method),
        None => format!("{} {path}", parts.method),
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    let entry = AuditEntry {
        at_ms: crate::now_ms(),
        who: who.name,
        tenant: who.tenant,
        source: source.map(|ip| ip.to_string()),
        action,
        status: response.status().as_u16(),
    };
    let written = match state.store.audit(&entry) {
        Ok(()) => state.store.commit().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(error) = written {
        tracing::error!(%error, action = %entry.action, "writing the audit log failed");
    }
    response
}
