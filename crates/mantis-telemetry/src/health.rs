//! Liveness, readiness and status endpoints.

use async_trait::async_trait;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};

/// A dependency whose availability decides readiness (the bus, the database...).
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// Name shown in `/ready`.
    fn name(&self) -> &str;
    /// `Ok` when usable, `Err(reason)` otherwise.
    async fn check(&self) -> Result<(), String>;
}

struct Inner {
    service: String,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    details: Mutex<Map<String, Value>>,
}

/// Health state of one service: readiness checks and free-form status details that the
/// service updates as it runs (e.g. whether a model is loaded).
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

impl Health {
    /// Health of `service` with no checks yet.
    pub fn new(service: impl Into<String>) -> Self {
        Self::with_checks(service, Vec::new())
    }

    /// Health of `service` with readiness checks.
    pub fn with_checks(service: impl Into<String>, checks: Vec<Arc<dyn ReadinessCheck>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                service: service.into(),
                checks,
                details: Mutex::new(Map::new()),
            }),
        }
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Sets a status detail shown by `/health` and `/ready`.
    pub fn set_detail(&self, key: &str, value: Value) {
        if let Ok(mut d) = self.inner.details.lock() {
            d.insert(key.to_owned(), value);
        }
    }

    /// A copy of the status details.
    pub fn details(&self) -> Map<String, Value> {
        self.inner
            .details
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Runs every readiness check; `(ready, per-check results)`.
    pub async fn readiness(&self) -> (bool, Map<String, Value>) {
        let mut ready = true;
        let mut results = Map::new();
        for check in &self.inner.checks {
            let r = check.check().await;
            if r.is_err() {
                ready = false;
            }
            results.insert(
                check.name().to_owned(),
                match r {
                    Ok(()) => json!({"status": "up"}),
                    Err(reason) => json!({"status": "down", "reason": reason}),
                },
            );
        }
        (ready, results)
    }
}

async fn health_handler(State(h): State<Health>) -> impl IntoResponse {
    Json(json!({"status": "ok", "service": h.service(), "details": h.details()}))
}

async fn ready_handler(State(h): State<Health>) -> impl IntoResponse {
    let (ready, checks) = h.readiness().await;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "service": h.service(),
        "checks": checks,
        "details": h.details(),
    });
    (code, Json(body))
}

async fn metrics_handler() -> impl IntoResponse {
    match crate::metrics_handle() {
        Some(h) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            h.render(),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/plain; version=0.0.4")],
            String::from("# metrics recorder not installed\n"),
        ),
    }
}

/// `/health` (liveness: the process runs), `/ready` (every check passes; 503 otherwise) and
/// `/metrics` (Prometheus text format).
pub fn ops_router(health: Health) -> Router {
    Router::new()
        .route("/health", get(health_handler))
        .route("/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(health)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Down;
    #[async_trait]
    impl ReadinessCheck for Down {
        fn name(&self) -> &str {
            "database"
        }
        async fn check(&self) -> Result<(), String> {
            Err("connection refused".into())
        }
    }

    #[tokio::test]
    async fn ready_is_503_with_the_failing_check_named() {
        let app = ops_router(Health::with_checks("x", vec![Arc::new(Down)]));
        let resp = app
            .oneshot(Request::get("/ready").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["checks"]["database"]["reason"], "connection refused");
    }

    #[tokio::test]
    async fn health_reports_details() {
        let h = Health::new("rul");
        h.set_detail("model", json!({"loaded": false}));
        let resp = ops_router(h)
            .oneshot(
                Request::get("/health")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["details"]["model"]["loaded"], false);
    }
}
