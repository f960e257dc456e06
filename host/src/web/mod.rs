//! The web manager's pages: one HTML page, its script and its style sheet, built into
//! the binary (no CDN, no front-end build). `/` leads to `/manager/`. The page does
//! everything through the REST API with its session cookie, so it can do exactly what
//! its user's role may and nothing else; only sources on the manager's allow-list are
//! served.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::api::session::{source_of, WebConfig};

const INDEX: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/app.css");

/// The page may load only its own script and style and talk only to its own origin;
/// no other site may frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The manager's routes; `web` says who may reach them.
pub fn routes(web: WebConfig) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/manager/") }))
        .route("/manager", get(|| async { Redirect::to("/manager/") }))
        // Browsers ask for it whatever the page says; there is none.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/manager/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/manager/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/manager/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .layer(axum::middleware::from_fn_with_state(web, allow_listed))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // A new binary serves new assets at the same names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn allow_listed(State(web): State<WebConfig>, request: Request, next: Next) -> Response {
    match web.check(source_of(request.extensions())) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}
