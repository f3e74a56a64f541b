//! The dashboard's static files, embedded at build time (see `build.rs`), and the answer to
//! every path nothing else serves.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use mantis_runtime::Problem;

include!(concat!(env!("OUT_DIR"), "/dashboard.rs"));

fn file(path: &str) -> Option<(&'static [u8], &'static str)> {
    FILES
        .iter()
        .find(|(url, _, _)| *url == path)
        .map(|(_, body, ty)| (*body, *ty))
}

/// Serves a dashboard file; the dashboard itself for `/` and any other page path (it routes
/// in the browser); a problem body for unknown API paths.
pub(crate) async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/ws" || path.starts_with("/ws/") {
        return Problem::not_found("no such endpoint").into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "the dashboard's files are read with GET",
        )
        .into_response();
    }
    let (body, ty, immutable) = match file(path) {
        Some((body, ty)) => (body, ty, path.starts_with("/assets/")),
        None if path.starts_with("/assets/") || path.contains('.') => {
            return Problem::not_found("no such file").into_response();
        }
        None => match file("/index.html") {
            Some((body, ty)) => (body, ty, false),
            None => return not_built(),
        },
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn not_built() -> Response {
    Html(
        "<!doctype html><title>MANTIS</title><h1>MANTIS</h1>\
         <p>This build carries no dashboard (dashboard/dist was empty when it was compiled). \
         The API is at <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p>",
    )
    .into_response()
}

/// Whether the dashboard was embedded.
pub(crate) fn embedded() -> bool {
    file("/index.html").is_some()
}
