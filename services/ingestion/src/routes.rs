//! The ingestion HTTP API: `POST /api/v1/sensors/data` with one reading or an array of them
//! (`application/json`), or one reading per line (`application/x-ndjson`).

use crate::ingestor::{IngestError, Ingestor};
use crate::payload::{parse_body, parse_ndjson};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use mantis_bus::TraceContext;
use mantis_domain::{SourceProtocol, TenantId};
use mantis_runtime::{FieldError, Problem};
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    ingestor: Arc<Ingestor>,
    max_batch: usize,
    retry_after_secs: u64,
}

/// `POST /api/v1/sensors/data`.
pub(crate) fn router(ingestor: Arc<Ingestor>, max_batch: usize, retry_after_secs: u64) -> Router {
    Router::new()
        .route("/api/v1/sensors/data", post(post_readings))
        .layer(DefaultBodyLimit::max(mantis_runtime::MAX_READINGS_BODY))
        .with_state(AppState {
            ingestor,
            max_batch,
            retry_after_secs,
        })
}

/// How the body laid its readings out, to point at a refused one.
enum Shape {
    /// One reading object: `/field`.
    Single,
    /// An array: `/index/field`.
    Array,
    /// NDJSON, with the line of each reading: `/line/n/field`.
    Lines(Vec<usize>),
}

impl Shape {
    fn pointer(&self, index: usize, field: &str) -> String {
        match self {
            Self::Single => format!("/{field}"),
            Self::Array => format!("/{index}/{field}"),
            Self::Lines(lines) => {
                format!("/line/{}/{field}", lines.get(index).copied().unwrap_or(0))
            }
        }
    }
}

async fn post_readings(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let parsed = match content_type.as_str() {
        "application/json" => parse_body(&body, state.max_batch).map(|r| {
            let shape = if r.len() == 1 && !body.trim_ascii_start().starts_with(b"[") {
                Shape::Single
            } else {
                Shape::Array
            };
            (r, shape)
        }),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
            parse_ndjson(&body, state.max_batch).map(|(r, lines)| (r, Shape::Lines(lines)))
        }
        _ => {
            return Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                "send readings as application/json (one reading or an array) or application/x-ndjson (one reading per line)",
            )
            .into_response();
        }
    };
    let (readings, shape) = match parsed {
        Ok(r) => r,
        Err(p) => return p.into_response(),
    };
    // Forwarded by the gateway for an authenticated caller: that caller's tenant's sensors only.
    let tenant = match headers.get(mantis_runtime::TENANT_HEADER) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|t| TenantId::parse(t.trim()).ok()) {
            Some(t) => Some(t),
            None => {
                return Problem::bad_request(format!(
                    "header {} must be a tenant id (a UUID)",
                    mantis_runtime::TENANT_HEADER
                ))
                .into_response();
            }
        },
    };
    // Continue the caller's trace when it sent one.
    let trace = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .map(|t| t.child())
        .unwrap_or_else(TraceContext::new_root);
    match state
        .ingestor
        .accept_for(&readings, SourceProtocol::Rest, trace, tenant)
        .await
    {
        Ok(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        Err(IngestError::Rejected(rejections)) => {
            let mut p = Problem::bad_request(format!(
                "{} reading(s) refused; nothing was accepted",
                rejections.len()
            ));
            p.errors = rejections
                .into_iter()
                .map(|(i, r)| FieldError {
                    pointer: shape.pointer(i, r.field),
                    detail: format!("{}: {}", r.reason.as_str(), r.detail),
                })
                .collect();
            if let Some(first) = p.errors.first() {
                p.detail = format!("{} First: {} {}", p.detail, first.pointer, first.detail);
            }
            p.into_response()
        }
        // The bus being down is not a reason: readings then go to the edge buffer. This is a
        // full buffer (or a store that cannot validate them).
        Err(IngestError::Unavailable(reason)) => {
            let mut resp = Problem::unavailable(format!(
                "readings cannot be accepted right now ({reason}); retry later"
            ))
            .into_response();
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(state.retry_after_secs),
            );
            resp
        }
    }
}
