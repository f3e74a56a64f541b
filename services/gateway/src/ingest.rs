//! `POST /api/v1/sensors/data` through the gateway: readings from machines and third parties
//! that authenticate (an API key, typically), forwarded to the ingestion service with the
//! caller's tenant, so that a caller reaches only its own tenant's sensors. The ingestion
//! service's own port takes no credentials and is not reachable from other hosts; this is the
//! way in for devices that post readings over the network.

use crate::api::ApiState;
use crate::auth::Principal;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mantis_runtime::Problem;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;

/// Largest body forwarded: the ingestion service's own limit.
pub(crate) const MAX_BODY: usize = mantis_runtime::MAX_READINGS_BODY;
/// How long a forwarded request may take (the ingestion service answers within its bus's
/// publish timeout).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// `Retry-After` when the ingestion service cannot be reached.
const RETRY_AFTER_SECS: u64 = 5;

/// Where readings are forwarded.
#[derive(Clone)]
pub(crate) struct Upstream {
    /// `<ingestion url>/api/v1/sensors/data`, or none when the gateway was given no ingestion
    /// service.
    url: Option<String>,
    http: reqwest::Client,
}

impl Upstream {
    /// The ingestion service at `base` (e.g. `http://ingestion:8001`); empty: none.
    pub(crate) fn new(base: &str) -> Result<Self, String> {
        let base = base.trim().trim_end_matches('/');
        let url = if base.is_empty() {
            None
        } else {
            let parsed =
                url::Url::parse(base).map_err(|e| format!("ingestion_url `{base}`: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("ingestion_url `{base}`: must be an http(s) URL"));
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(format!(
                    "ingestion_url `{base}`: the service's base URL, without a query or fragment"
                ));
            }
            Some(format!("{base}/api/v1/sensors/data"))
        };
        // Straight to the service: no proxy from the environment (it would take loopback and
        // in-cluster calls, tenant header included, elsewhere), no redirects (the tenant header
        // would follow them to whatever host they name).
        let http = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { url, http })
    }
}

/// A reading as posted (the body is one of these, an array of them, or, as
/// `application/x-ndjson`, one per line).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documents the request body; the ingestion service parses it
pub(crate) struct ReadingIn {
    /// RFC 3339 time, or milliseconds since the epoch.
    #[schema(value_type = String, example = "2026-11-23T10:00:00Z")]
    timestamp: String,
    /// The sensor (or give `sensorCode`).
    #[schema(value_type = Option<String>, format = Uuid)]
    sensor_id: Option<String>,
    /// The sensor's code, e.g. `MTR-001-VIB` (with `assetId` when several tenants share it).
    sensor_code: Option<String>,
    /// The asset the sensor is mounted on (optional; checked when given).
    #[schema(value_type = Option<String>, format = Uuid)]
    asset_id: Option<String>,
    /// The measured value.
    value: f64,
    /// The unit, checked against the sensor's.
    unit: Option<String>,
    /// 0–100; default 100.
    #[schema(minimum = 0, maximum = 100)]
    quality: Option<u8>,
    /// Free-form labels (at most 16 KiB in all).
    metadata: Option<BTreeMap<String, String>>,
}

/// What was taken.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documents the ingestion service's answer, forwarded as it came
pub(crate) struct ReadingsAccepted {
    /// Readings published.
    accepted: u64,
    /// Data-quality issues reported for them (out of range, low quality).
    quality_issues: u64,
}

/// Post readings of the caller's tenant's sensors: one reading, an array of them (JSON), or
/// one per line (`application/x-ndjson`). All or nothing: when any reading is refused, none is
/// taken, and the problem points at each refused one. 503 with `Retry-After` when they cannot
/// be taken now.
#[utoipa::path(post, path = "/api/v1/sensors/data", tag = "plant",
    request_body(content = Vec<ReadingIn>, description = "one reading, or an array of them"),
    responses(
        (status = 202, body = ReadingsAccepted, description = "taken"),
        (status = 413, description = "The body is over 16 MiB"),
        (status = 415, description = "The body is neither JSON nor NDJSON"),
    ))]
pub(crate) async fn post_readings(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(url) = s.ingest.url.as_deref() else {
        return unavailable("no ingestion service is configured ([gateway] ingestion_url)");
    };
    let mut request = s
        .ingest
        .http
        .post(url)
        .header(mantis_runtime::TENANT_HEADER, who.tenant_id.to_string())
        .body(body);
    for name in [
        header::CONTENT_TYPE.as_str(),
        "traceparent",
        "tracestate",
        "x-request-id",
    ] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.clone());
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, url, "ingestion service unreachable");
            return unavailable("the ingestion service cannot be reached; retry later");
        }
    };
    let status = answer.status();
    let mut kept = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(value) = answer.headers().get(&name) {
            kept.insert(name, value.clone());
        }
    }
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            response.headers_mut().extend(kept);
            response
        }
        Err(e) => {
            // The readings may have been taken: the caller retries, and the store keeps one
            // reading per sensor and time.
            tracing::warn!(error = %e, url, "ingestion service answer lost");
            unavailable("the ingestion service's answer was lost; retry later")
        }
    }
}

fn unavailable(detail: &str) -> Response {
    let mut response = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable",
        detail,
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}
