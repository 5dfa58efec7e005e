//! Headers on every answer: `X-Content-Type-Options: nosniff` everywhere (errors and
//! 404s included), and `Cache-Control: no-store` on everything except the public,
//! person-free routes (health, metrics, the OpenAPI document and docs page). No-store
//! everywhere else is simpler and safer than a list of personal routes: students,
//! sessions, records, analytics, exports, jobs, photos and face crops are all personal.
//! The web UI's content-hashed files (`/assets/…`) set their own long-lived caching.

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{
        HeaderValue,
        header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS},
    },
};

/// Paths whose answers hold nothing personal and may be cached.
fn cacheable(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
        || path == "/docs"
        || path.starts_with("/docs/")
        || path.starts_with(crate::web_ui::ASSETS_PREFIX)
}

pub async fn security_headers<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let cacheable = cacheable(req.uri().path());
    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    let headers = resp.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !cacheable {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(resp)
}
