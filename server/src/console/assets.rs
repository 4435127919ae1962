//! The console's own stylesheet and script, compiled into the binary and served with a
//! content hash as ETag (they change only with the binary).

use super::AppState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/assets/app.css",
            get(|h: HeaderMap| async move { asset(&h, CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|h: HeaderMap| async move { asset(&h, JS, "text/javascript; charset=utf-8") }),
        )
}

fn etag(body: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(body.as_bytes());
    format!("\"{}\"", data_encoding::HEXLOWER.encode(&d[..12]))
}

fn asset(h: &HeaderMap, body: &'static str, content_type: &'static str) -> Response {
    let tag = etag(body);
    if h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut resp = body.into_response();
    let hs = resp.headers_mut();
    hs.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        hs.insert(header::ETAG, v);
    }
    resp
}
