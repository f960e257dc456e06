//! Logins for the web manager: a user name and password become a session, carried by
//! an HttpOnly, SameSite=Strict cookie. A session acts with exactly its user's role,
//! through the same handlers as a token (see [`super::auth`]). Changes made with a
//! session must carry its CSRF token in `X-CSRF-Token` (the page reads it from the
//! login answer or `GET /api/v1/session`); another site can neither read it nor, with
//! SameSite, send the cookie. Failed logins count towards a lockout of their source,
//! and only sources on the manager's allow-list may log in or use a session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use axum::extract::{ConnectInfo, FromRequest, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::lockout::LockoutConfig;
use super::{new_secret, ApiError, ApiJson, ApiResult, AppState};
use crate::store::{AuditEntry, Principal, Role};

/// The session cookie's name.
pub const COOKIE: &str = "switchyard_session";
/// The header a session's changes carry its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sessions held at most; past it the longest idle are closed.
const MAX_SESSIONS: usize = 10_000;

/// The web manager's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Networks that may log in and use sessions (VOS3000 "Web Access Control");
    /// empty: any.
    pub allow: Vec<IpNet>,
    /// A session unused this long is closed, s.
    pub session_idle_secs: u32,
    /// Lockout of sources that keep failing to log in.
    pub login_lockout: LockoutConfig,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            allow: Vec::new(),
            session_idle_secs: 1_800,
            login_lockout: LockoutConfig {
                max_failures: 5,
                window_secs: 300,
                lock_secs: 300,
            },
        }
    }
}

impl WebConfig {
    /// Whether `source` may use the manager.
    pub fn allows(&self, source: Option<IpAddr>) -> bool {
        self.allow.is_empty() || source.is_some_and(|ip| self.allow.iter().any(|n| n.contains(&ip)))
    }

    /// [`WebConfig::allows`] as the refusal the pages, logins and sessions answer.
    pub fn check(&self, source: Option<IpAddr>) -> ApiResult<()> {
        if self.allows(source) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "the web manager is not open to this address".into(),
            ))
        }
    }
}

struct Session {
    principal: Principal,
    csrf: String,
    last_used_ms: u64,
}

/// The open sessions, by the hash of their cookie (the cookie itself is not kept).
/// In memory: a restart logs everyone out.
pub struct Sessions {
    idle_ms: u64,
    open: Mutex<HashMap<String, Session>>,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Sessions {
    pub fn new(idle_secs: u32) -> Sessions {
        Sessions {
            idle_ms: u64::from(idle_secs) * 1_000,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open a session for `principal`: (cookie secret, CSRF token).
    fn open(&self, principal: Principal, now_ms: u64) -> (String, String) {
        let (secret, csrf) = (new_secret(), new_secret());
        let mut open = self.lock();
        if open.len() >= MAX_SESSIONS {
            open.retain(|_, s| now_ms.saturating_sub(s.last_used_ms) < self.idle_ms);
            if open.len() >= MAX_SESSIONS {
                if let Some(oldest) = open
                    .iter()
                    .min_by_key(|(_, s)| s.last_used_ms)
                    .map(|(k, _)| k.clone())
                {
                    open.remove(&oldest);
                }
            }
        }
        let session = Session {
            principal,
            csrf: csrf.clone(),
            last_used_ms: now_ms,
        };
        open.insert(hash(&secret), session);
        (secret, csrf)
    }

    /// The session `secret` opens, if it is open and not idle too long: its principal
    /// and CSRF token. `touch` counts this as a use.
    pub(super) fn get(
        &self,
        secret: &str,
        now_ms: u64,
        touch: bool,
    ) -> Option<(Principal, String)> {
        let key = hash(secret);
        let mut open = self.lock();
        let session = open.get_mut(&key)?;
        if now_ms.saturating_sub(session.last_used_ms) >= self.idle_ms {
            open.remove(&key);
            return None;
        }
        if touch {
            session.last_used_ms = now_ms;
        }
        Some((session.principal.clone(), session.csrf.clone()))
    }

    fn close(&self, secret: &str) -> Option<Principal> {
        self.lock().remove(&hash(secret)).map(|s| s.principal)
    }

    /// Close every session of the user `name` (it was deleted).
    pub(super) fn close_user(&self, name: &str) {
        self.lock().retain(|_, s| s.principal.name != name);
    }
}

/// The session cookie's value in `headers`, if any.
pub(super) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The request's source address, when the server passes it on.
pub fn source_of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/session", get(show))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    name: String,
    password: String,
}

/// What a session's page needs to know of it.
#[derive(Serialize)]
struct SessionView<'a> {
    name: &'a str,
    role: Role,
    tenant: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    csrf: &'a str,
}

impl<'a> SessionView<'a> {
    fn of(p: &'a Principal, csrf: &'a str) -> SessionView<'a> {
        SessionView {
            name: &p.name,
            role: p.role,
            tenant: &p.tenant,
            account: p.account.as_deref(),
            csrf,
        }
    }
}

/// A hash no password matches, verified against when the user does not exist so
/// that an unknown name takes as long to refuse as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::store::hash_password(&new_secret()));

/// `response` with the session cookie set to `value` (`attributes` after the usual
/// ones); Secure when the API is served over HTTPS.
fn with_cookie(
    state: &AppState,
    mut response: Response,
    value: &str,
    attributes: &str,
) -> ApiResult<Response> {
    let secure = if state.config.api_tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{attributes}{secure}");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// Record a login or logout in the audit log, durably.
async fn audit(
    state: &AppState,
    who: &str,
    tenant: &str,
    source: Option<IpAddr>,
    action: &str,
    status: u16,
) -> ApiResult<()> {
    state.store.audit(&AuditEntry {
        at_ms: crate::now_ms(),
        who: who.into(),
        tenant: tenant.into(),
        source: source.map(|ip| ip.to_string()),
        action: action.into(),
        status,
    })?;
    state.store.commit().await?;
    Ok(())
}

async fn login(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let source = source_of(request.extensions());
    state.config.web.check(source)?;
    let now_ms = crate::now_ms();
    if let Some(secs) = source.and_then(|ip| state.logins.locked_for(ip, now_ms)) {
        return Err(ApiError::LockedOut(secs));
    }
    let ApiJson(req) = ApiJson::<Login>::from_request(request, &state).await?;
    let stored = state.store.user(&req.name)?;
    let password = req.password;
    let hash = stored
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |(_, hash)| hash.clone());
    let good = tokio::task::spawn_blocking(move || crate::store::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = stored.filter(|_| good).map(|(user, _)| user);
    let Some(user) = user else {
        audit(&state, &req.name, "", source, "login", 401).await?;
        tracing::info!(user = %req.name, source = ?source, "failed web login");
        if let Some(ip) = source {
            if state.logins.failed(ip, now_ms) {
                return Err(ApiError::LockedOut(
                    state.logins.locked_for(ip, now_ms).unwrap_or(1),
                ));
            }
        }
        return Ok((
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": {
                "code": "unauthorized", "message": "wrong user name or password" } })),
        )
            .into_response());
    };
    if let Some(ip) = source {
        state.logins.succeeded(ip);
    }
    audit(&state, &user.name, &user.tenant, source, "login", 200).await?;
    let principal = user;
    let (secret, csrf) = state.sessions.open(principal.clone(), now_ms);
    let response = ApiJson(SessionView::of(&principal, &csrf)).into_response();
    with_cookie(&state, response, &secret, "")
}

async fn logout(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let source = source_of(request.extensions());
    if let Some(principal) =
        cookie(request.headers()).and_then(|secret| state.sessions.close(secret))
    {
        audit(
            &state,
            &principal.name,
            &principal.tenant,
            source,
            "logout",
            200,
        )
        .await?;
    }
    let response = ApiJson(json!({ "logged_out": true })).into_response();
    with_cookie(&state, response, "", "; Max-Age=0")
}

/// `GET /api/v1/session`: who the session cookie logs in as, with its CSRF token.
async fn show(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    state.config.web.check(source_of(request.extensions()))?;
    let (principal, csrf) = cookie(request.headers())
        .and_then(|secret| state.sessions.get(secret, crate::now_ms(), true))
        .ok_or(ApiError::Unauthorized)?;
    Ok(ApiJson(SessionView::of(&principal, &csrf)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str) -> Principal {
        Principal {
            name: name.into(),
            role: Role::Tenant,
            tenant: "t".into(),
            account: None,
            created_at_ms: 0,
        }
    }

    #[test]
    fn a_session_lapses_when_idle_and_closes_with_its_user() {
        let sessions = Sessions::new(10);
        let (secret, csrf) = sessions.open(principal("alice"), 0);
        let (p, c) = sessions.get(&secret, 9_000, true).unwrap();
        assert_eq!((p.name.as_str(), c.as_str()), ("alice", csrf.as_str()));
        // Used at 9 s, so still open at 18 s; idle from then, gone at 28 s.
        assert!(sessions.get(&secret, 18_000, true).is_some());
        assert!(sessions.get(&secret, 28_000, true).is_none());
        assert!(sessions.get("made up", 0, true).is_none());
        let (bob, _) = sessions.open(principal("bob"), 0);
        sessions.close_user("bob");
        assert!(sessions.get(&bob, 1, true).is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others_and_the_allow_list_holds() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; switchyard_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers), Some("abc"));
        let mut web = WebConfig::default();
        assert!(web.allows(None), "open when no list is set");
        web.allow = vec!["127.0.0.0/30".parse().unwrap()];
        assert!(web.allows(Some("127.0.0.2".parse().unwrap())));
        assert!(!web.allows(Some("127.0.0.9".parse().unwrap())));
        assert!(!web.allows(None));
    }
}
