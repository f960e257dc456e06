//! Bearer tokens and tenancy. An admin may act for any tenant (`?tenant=`, default
//! "default"); a tenant token acts for its own tenant only, and another tenant's
//! objects answer 404 as if they did not exist.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::store::{Principal, Role};

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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let principal = state
            .store
            .token_by_secret(secret.trim())?
            .ok_or(ApiError::Unauthorized)?;
        let tenant = match principal.role {
            Role::Tenant => principal.tenant.clone(),
            Role::Admin => {
                let Query(p) = Query::<TenantParam>::try_from_uri(&parts.uri)
                    .map_err(|e| ApiError::BadRequest(e.body_text()))?;
                let tenant = p.tenant.unwrap_or_else(|| principal.tenant.clone());
                crate::names::check("tenant", &tenant).map_err(ApiError::BadRequest)?;
                tenant
            }
        };
        Ok(Caller { principal, tenant })
    }
}
