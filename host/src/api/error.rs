//! One JSON error shape for every failure: `{"error": {"code": "...", "message": "..."}}`.
//! Client mistakes say what is wrong; server faults are logged and answered generically.

use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API failure.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed or a field is out of range.
    BadRequest(String),
    /// 401: no token, or an unknown one.
    Unauthorized,
    /// 403: the token may not do this.
    Forbidden(String),
    /// 404: no such object (or another tenant's).
    NotFound(String),
    /// 409: conflicts with existing state.
    Conflict(String),
    /// 413: body too large.
    TooLarge(String),
    /// 429: the source is locked out for this many more seconds.
    LockedOut(u64),
    /// 422: a module upload was refused for what it is.
    Unprocessable(String),
    /// 500: our fault; details go to the log only.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send a valid token as `Authorization: Bearer <token>`, or log in".into(),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", m),
            ApiError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, "rejected", m),
            ApiError::LockedOut(secs) => {
                let body = axum::Json(serde_json::json!({ "error": {
                    "code": "locked_out",
                    "message": format!("too many bad credentials from this address; try again in {secs} s"),
                }}));
                let retry = [(axum::http::header::RETRY_AFTER, secs.to_string())];
                return (StatusCode::TOO_MANY_REQUESTS, retry, body).into_response();
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering an API request");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log".into(),
                )
            }
        };
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: String,
        }
        (
            status,
            axum::Json(Body {
                error: Inner { code, message },
            }),
        )
            .into_response()
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<crate::policy::BindError> for ApiError {
    fn from(e: crate::policy::BindError) -> Self {
        use crate::policy::BindError::*;
        match e {
            UnknownVersion(_) => ApiError::NotFound(e.to_string()),
            Invalid(m) => ApiError::BadRequest(m),
            Unloadable(..) => ApiError::Conflict(e.to_string()),
            Store(e) => e.into(),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

/// `Json` whose rejections use our error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
