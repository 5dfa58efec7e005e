//! The web UI for teachers and admins (`api/web`, a React app whose built bundle
//! `api/web/dist` is committed): `index.html` at `/` and its content-hashed files under
//! `/assets/`, a prefix no API operation uses; the app routes with the URL's `#`.
//! The bundle is embedded in the binary (also the production build without the
//! in-process worker), so a fresh clone serves it without Node.js.

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/dist"]
struct Bundle;

/// Where the bundle's files are served; they are named by their content's hash, so
/// they may be cached for good (`response_headers` leaves their `Cache-Control` alone).
pub const ASSETS_PREFIX: &str = "/assets/";

/// The page loads only its own scripts and styles and talks only to this API; photos
/// and face crops are shown from `blob:` URLs of what it fetched with the key.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn file(path: &str) -> Option<(Vec<u8>, String)> {
    let f = Bundle::get(path)?;
    let mime = f.metadata.mimetype().to_string();
    Some((f.data.into_owned(), mime))
}

/// Answers `GET /` and `GET /assets/…` with the app; everything else goes on to the
/// API. (A middleware rather than routes: the OpenAPI service is nested at `/`, and
/// poem's catch-all of that nest would shadow a route for `/` itself.)
pub async fn serve<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        let path = req.uri().path();
        if path == "/" {
            return Ok(index());
        }
        if let Some(file) = path.strip_prefix(ASSETS_PREFIX) {
            return Ok(asset(file));
        }
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// `GET /`: the app.
fn index() -> Response {
    let Some((body, _)) = file("index.html") else {
        // Only a build whose api/web/dist was emptied gets here.
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("the web UI is not built: run scripts/web.sh build");
    };
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        )
        .header(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"))
        .header(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        )
        .body(body)
}

/// `GET /assets/{path}`: a file of the bundle.
fn asset(path: &str) -> Response {
    match file(&format!("assets/{path}")) {
        Some((body, mime)) => Response::builder()
            .content_type(mime)
            .header(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE))
            .body(body),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_has_an_index_whose_assets_are_embedded() {
        let (html, mime) = file("index.html").expect("api/web/dist/index.html is embedded");
        assert!(mime.starts_with("text/html"), "{mime}");
        let html = String::from_utf8(html).unwrap();
        let referenced: Vec<&str> = html
            .split(['"', '\''])
            .filter(|s| s.starts_with(ASSETS_PREFIX))
            .collect();
        assert!(
            referenced.iter().any(|s| s.ends_with(".js")),
            "index.html loads no script from {ASSETS_PREFIX}: {html}"
        );
        for path in referenced {
            assert!(
                file(path.trim_start_matches('/')).is_some(),
                "{path} is referenced by index.html but not embedded"
            );
        }
    }
}
