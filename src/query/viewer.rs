//! The built-in viewer: one page and its script and style, compiled into
//! the binary, so that nothing is fetched from the network.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

const INDEX: &str = include_str!("viewer/index.html");
const SCRIPT: &str = include_str!("viewer/viewer.js");
const STYLE: &str = include_str!("viewer/viewer.css");

/// A policy that lets the page use only itself: no inline script, no
/// other origin, so a cluster value that slipped into the DOM could not run.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/viewer/") }))
        .route("/viewer", get(|| async { Redirect::temporary("/viewer/") }))
        .route("/viewer/", get(|| async { page("text/html; charset=utf-8", INDEX) }))
        .route("/viewer/viewer.js", get(|| async { page("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/viewer/viewer.css", get(|| async { page("text/css; charset=utf-8", STYLE) }))
}

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
