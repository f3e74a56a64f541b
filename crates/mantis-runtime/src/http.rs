//! HTTP serving and RFC 9457 problem bodies.

use crate::Result;
use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds `addr` (port 0 picks a free port; read it back with `local_addr`).
pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| crate::Error::Config(format!("cannot listen on {addr}: {e}")))
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "HTTP listening");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await?;
    Ok(())
}

/// An RFC 9457 problem body (`application/problem+json`), the shape of every HTTP error.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    /// A URI reference identifying the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Human explanation of this occurrence.
    pub detail: String,
    /// Per-field errors, each with a JSON pointer to the offending field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429 and 503.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// One invalid field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldError {
    /// JSON pointer, e.g. `/2/value`.
    pub pointer: String,
    /// What is wrong.
    pub detail: String,
}

impl Problem {
    /// A problem with `status`, a title and a detail.
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!(
                "https://mantis.dev/problems/{}",
                title.to_ascii_lowercase().replace(' ', "-")
            ),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Sets `Retry-After`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Invalid request", detail)
    }

    /// 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found", detail)
    }

    /// 503 Service Unavailable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            detail,
        )
    }

    /// 500 Internal Server Error (the detail is logged, not shown).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "an internal error occurred; see the service logs",
        )
    }

    /// Adds a field error.
    pub fn with_field(mut self, pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            pointer: pointer.into(),
            detail: detail.into(),
        });
        self
    }
}

/// Parses a JSON request body; a body that is not JSON, or not of the expected shape, is a
/// 400 problem naming where it went wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> std::result::Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request(
            "the request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request(format!(
            "the request body is not valid here: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// [`parse_json`] for bodies that must be one JSON object (serde would otherwise also read a
/// struct from an array of its fields).
pub fn parse_json_object<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> std::result::Result<T, Problem> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None | Some(b'{') => parse_json(body),
        Some(_) => Err(Problem::bad_request(
            "the request body must be a JSON object",
        )),
    }
}

/// Whether a `Content-Type` names JSON (`application/json`, any `…+json`, with parameters) or
/// newline-delimited JSON (the readings endpoint's other format).
fn is_json_media_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        media.as_str(),
        "application/json" | "application/x-ndjson" | "application/ndjson" | "application/jsonl"
    ) || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Every body the services' APIs read is JSON: a `POST`, `PUT` or `PATCH` whose body says it
/// is something else (a form, plain text, XML) is answered `415` with a problem body, rather
/// than read as JSON anyway or refused with a parse error about its first byte. A request
/// known to have no body is not checked, nor are other methods; a body without a `Content-Type` is left to the handler
/// (JSON handlers read it as JSON; ingestion's readings endpoint, which also takes NDJSON,
/// asks for one). Applied after routing ([`App::new`](crate::App::new) for every service,
/// the gateway to its own router), so an unknown path is still a 404.
pub async fn json_bodies(request: Request, next: Next) -> Response {
    let headers = request.headers();
    // Known empty (no length and no chunks over HTTP/1.1, a length of 0, an HTTP/2 stream
    // ended with its headers) or not.
    let has_body = axum::body::HttpBody::size_hint(request.body()).exact() != Some(0);
    let writes = matches!(
        *request.method(),
        axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH
    );
    let declared = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    match declared {
        Some(ct) if has_body && writes && !is_json_media_type(&ct) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            format!("the request body must be JSON (Content-Type: application/json), not `{ct}`"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Answers every client error with a problem body: axum's own rejections (a path segment that
/// is not UTF-8, a body over the size limit, a WebSocket request without its upgrade headers)
/// come as plain text otherwise. Their text becomes the detail; their headers are kept.
pub async fn problem_bodies(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    if !status.is_client_error() || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let title = status.canonical_reason().unwrap_or("Client error");
    let detail = if text.is_empty() {
        title.to_owned()
    } else {
        text
    };
    let mut answer = Problem::new(status, title, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The answer to a method a route does not take (405, a problem body).
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "this endpoint does not take this method",
    )
}

/// The answer to a path no route serves (404, a problem body).
pub async fn no_such_route(uri: Uri) -> Problem {
    Problem::not_found(format!("nothing is served at {}", uri.path()))
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut resp = (status, Json(self)).into_response();
        if let Some(secs) = retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}

impl From<mantis_store::Error> for Problem {
    fn from(e: mantis_store::Error) -> Self {
        match e {
            mantis_store::Error::Unavailable(d) => Self::unavailable(d),
            mantis_store::Error::NotFound { .. } => Self::not_found(e.to_string()),
            mantis_store::Error::Conflict(d) => Self::new(StatusCode::CONFLICT, "Conflict", d),
            mantis_store::Error::Stale(d) => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "Precondition Failed",
                format!("{d}; reload it and make the change again"),
            ),
            mantis_store::Error::Rejected(d) => Self::bad_request(format!(
                "a value cannot be stored: {d} (text must not contain NUL characters)"
            )),
            other => Self::internal(other),
        }
    }
}
