//! The REST API, versioned under `/api/v1`. [`router`] builds the whole API; each
//! file keeps its routes next to their handlers. Every accepted change is flushed to
//! disk before the answer goes out.

pub mod alarms;
mod audit;
mod auth;
mod bindings;
mod calls;
mod carrier;
mod clock;
pub mod dashboard;
mod error;
mod events;
pub mod https;
pub mod lockout;
mod metrics;
mod modules;
mod security;
pub mod session;
mod tables;
mod tokens;
mod trace;
mod users;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use rand::RngCore;

pub use auth::{Caller, ScopedCaller};
pub use error::{ApiError, ApiJson, ApiResult};

use crate::config::Config;
use crate::policy::PolicyEngine;
use crate::sip::SipCore;
use crate::store::Store;

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    policy: Arc<PolicyEngine>,
    config: Arc<Config>,
    sip: Option<Arc<SipCore>>,
    /// Sources locked out after bad tokens.
    lockout: Arc<lockout::Lockout>,
    /// Sources locked out after failed logins.
    logins: Arc<lockout::Lockout>,
    /// The web manager's open sessions.
    sessions: Arc<session::Sessions>,
    /// The dashboard's last hour.
    history: Arc<dashboard::History>,
}

impl AppState {
    /// State over a store and a running engine.
    pub fn new(
        store: Store,
        policy: Arc<PolicyEngine>,
        sip: Option<Arc<SipCore>>,
        config: Config,
    ) -> AppState {
        AppState {
            store,
            policy,
            lockout: Arc::new(lockout::Lockout::new(config.api_lockout)),
            logins: Arc::new(lockout::Lockout::new(config.web.login_lockout)),
            sessions: Arc::new(session::Sessions::new(config.web.session_idle_secs)),
            history: Arc::default(),
            config: Arc::new(config),
            sip,
        }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/v1/health",
            get(|| async { ApiJson(serde_json::json!({ "status": "ok" })) }),
        )
        .route(
            "/api/v1/openapi.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI,
                )
            }),
        )
        .merge(modules::routes())
        .merge(bindings::routes())
        .merge(tables::routes())
        .merge(carrier::routes())
        .merge(calls::routes())
        .merge(tokens::routes())
        .merge(clock::routes())
        .merge(security::routes())
        .merge(events::routes())
        .merge(metrics::routes())
        .merge(trace::routes())
        .merge(session::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .merge(dashboard::routes())
        .merge(alarms::routes())
        .fallback(|| async {
            ApiError::NotFound("no such endpoint; see /api/v1/openapi.json".into())
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record_changes,
        ))
        .with_state(state)
}

/// A fresh random secret (256 bits, hex).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
