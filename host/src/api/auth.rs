//! Bearer tokens, web sessions and tenancy. An admin may act for any tenant (`?tenant=`, default
//! "default"); a tenant token acts for its own tenant only, and another tenant's
//! objects answer 404 as if they did not exist. An agent token acts inside its
//! account's subtree, and only on the handlers that take [`ScopedCaller`]: every other
//! handler takes [`Caller`], which turns agent tokens away.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::Method;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::store::{AgentScope, Principal, Role};

/// The authenticated caller and the tenant it acts for.
pub struct Caller {
    /// Its token.
    pub principal: Principal,
    /// The tenant requests act on.
    pub tenant: String,
}

impl Caller {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }

    /// Refuse non-admins.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs an admin token".into()))
        }
    }

    /// Whether the caller may see an object owned by `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        self.is_admin() || self.principal.tenant == tenant
    }
}

#[derive(Deserialize)]
struct TenantParam {
    tenant: Option<String>,
}

/// A caller that may be an agent token: the handlers that serve agents take this.
pub struct ScopedCaller {
    /// The token and the tenant it acts for.
    pub caller: Caller,
    /// For an agent token, the subtree and flags it acts within.
    pub agent: Option<AgentScope>,
}

impl ScopedCaller {
    /// Refuse agents.
    pub fn require_not_agent(&self) -> Result<(), ApiError> {
        match self.agent {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden("agent tokens cannot do this".into())),
        }
    }
}

impl FromRequestParts<AppState> for ScopedCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = principal(parts, state)?;
        let (tenant, agent) = match principal.role {
            Role::Tenant => (principal.tenant.clone(), None),
            Role::Admin => (admin_tenant(parts, &principal)?, None),
            Role::Agent => {
                let scope = principal
                    .account
                    .as_deref()
                    .map(|a| state.store.agent_scope(a))
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| {
                        ApiError::Forbidden("this agent token's account no longer exists".into())
                    })?;
                (scope.tenant.clone(), Some(scope))
            }
        };
        Ok(ScopedCaller {
            caller: Caller { principal, tenant },
            agent,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = principal(parts, state)?;
        let tenant = match principal.role {
            Role::Tenant => principal.tenant.clone(),
            Role::Admin => admin_tenant(parts, &principal)?,
            Role::Agent => {
                return Err(ApiError::Forbidden(
                    "agent tokens may use only accounts, payments, mapping gateways, phones, \
                     calls and stats"
                        .into(),
                ))
            }
        };
        Ok(Caller { principal, tenant })
    }
}

/// The credentials a request carries: a bearer token, else a session cookie.
enum Credentials<'a> {
    Token(&'a str),
    Session(&'a str),
}

fn credentials(parts: &Parts) -> Option<Credentials<'_>> {
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(secret) => Some(Credentials::Token(secret.trim())),
        None => super::session::cookie(&parts.headers).map(Credentials::Session),
    }
}

/// Who the request's credentials name, with no lockout, CSRF or allow-list check and
/// no session touched (for the audit log).
pub(super) fn identify(parts: &Parts, state: &AppState) -> Option<Principal> {
    match credentials(parts)? {
        Credentials::Token(secret) => state.store.token_by_secret(secret).ok().flatten(),
        Credentials::Session(secret) => state
            .sessions
            .get(secret, crate::now_ms(), false)
            .map(|(p, _)| p),
    }
}

/// The caller the request's token or session names. A source that keeps presenting
/// bad tokens is locked out (429), good token or not, until its lockout lapses. A
/// session is honoured only from the manager's allowed networks, and its changes only
/// with its CSRF token.
fn principal(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let source = super::session::source_of(&parts.extensions);
    let now_ms = crate::now_ms();
    if let Some(secs) = source.and_then(|ip| state.lockout.locked_for(ip, now_ms)) {
        return Err(ApiError::LockedOut(secs));
    }
    let secret = match credentials(parts).ok_or(ApiError::Unauthorized)? {
        Credentials::Token(secret) => secret,
        Credentials::Session(secret) => return session_principal(parts, state, secret, source),
    };
    match state.store.token_by_secret(secret)? {
        Some(principal) => {
            if let Some(ip) = source {
                state.lockout.succeeded(ip);
            }
            Ok(principal)
        }
        None => {
            if let Some(ip) = source {
                tracing::info!(source = %ip, "API request with a bad token");
                if state.lockout.failed(ip, now_ms) {
                    return Err(ApiError::LockedOut(
                        state.lockout.locked_for(ip, now_ms).unwrap_or(1),
                    ));
                }
            }
            Err(ApiError::Unauthorized)
        }
    }
}

fn session_principal(
    parts: &Parts,
    state: &AppState,
    secret: &str,
    source: Option<std::net::IpAddr>,
) -> Result<Principal, ApiError> {
    state.config.web.check(source)?;
    let (principal, csrf) = state
        .sessions
        .get(secret, crate::now_ms(), true)
        .ok_or(ApiError::Unauthorized)?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let presented = parts
        .headers
        .get(super::session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok());
    if !safe && presented != Some(csrf.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "a change made with a session needs its CSRF token in {}",
            super::session::CSRF_HEADER
        )));
    }
    Ok(principal)
}

/// The tenant an admin acts for: `?tenant=`, else its own.
fn admin_tenant(parts: &Parts, principal: &Principal) -> Result<String, ApiError> {
    let Query(p) = Query::<TenantParam>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let tenant = p.tenant.unwrap_or_else(|| principal.tenant.clone());
    crate::names::check("tenant", &tenant).map_err(ApiError::BadRequest)?;
    Ok(tenant)
}
