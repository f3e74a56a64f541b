//! A built service: its HTTP listener, router and background workers.

use crate::{Infra, Result};
use axum::Router;
use futures::future::BoxFuture;
use mantis_telemetry::Health;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Worker = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, Result<()>> + Send>;

/// A service ready to run: the listener is bound (so tests can read the real port before
/// running), workers are not started yet.
pub struct App {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    workers: Vec<(String, Worker)>,
}

impl App {
    /// Binds `bind` and serves `routes` plus `/health`, `/ready` and `/metrics` for `health`
    /// (with the infrastructure's readiness checks added by the caller). Every client error is
    /// a problem body: a path no route serves (404), a method a route does not take (405), a
    /// body that is not JSON (415) and the framework's own refusals (a body over the size
    /// limit, a malformed query).
    pub async fn new(
        name: &'static str,
        bind: &str,
        routes: Router,
        health: Health,
    ) -> Result<Self> {
        let listener = crate::bind(bind).await?;
        // After routing: an unknown path is a 404 whatever its body.
        let routes = if routes.has_routes() {
            routes.route_layer(axum::middleware::from_fn(crate::json_bodies))
        } else {
            routes
        };
        let router = routes
            .merge(mantis_telemetry::ops_router(health))
            .fallback(crate::no_such_route)
            .method_not_allowed_fallback(crate::method_not_allowed)
            .layer(axum::middleware::from_fn(crate::problem_bodies));
        Ok(Self {
            name,
            listener,
            router,
            workers: Vec::new(),
        })
    }

    /// [`App::new`] for `routes` that answer unknown paths themselves (the gateway serves the
    /// dashboard there) and make their own problem bodies.
    pub async fn with_own_fallback(
        name: &'static str,
        bind: &str,
        routes: Router,
        health: Health,
    ) -> Result<Self> {
        let listener = crate::bind(bind).await?;
        let router = routes.merge(mantis_telemetry::ops_router(health));
        Ok(Self {
            name,
            listener,
            router,
            workers: Vec::new(),
        })
    }

    /// The health of a service named `name` with the readiness checks of `infra`.
    pub fn health(name: &'static str, infra: &Infra) -> Health {
        Health::with_checks(name, infra.readiness_checks())
    }

    /// Adds a background worker started by [`App::run`]; it must return when its token is
    /// cancelled.
    pub fn worker<F, Fut>(mut self, label: impl Into<String>, f: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        self.workers
            .push((label.into(), Box::new(move |t| Box::pin(f(t)))));
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The service name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs the HTTP server and the workers until `shutdown` is cancelled or one of them fails
    /// (then the others are stopped too). Workers finish their record in flight first.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let local = shutdown.child_token();
        let mut set = tokio::task::JoinSet::new();
        let name = self.name;
        for (label, worker) in self.workers {
            let token = local.clone();
            set.spawn(async move { (label, worker(token).await) });
        }
        let http_token = local.clone();
        let (listener, router) = (self.listener, self.router);
        set.spawn(async move {
            (
                "http".to_owned(),
                crate::serve(listener, router, http_token).await,
            )
        });
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            let (label, result) = match joined {
                Ok(r) => r,
                Err(e) => (
                    "task".to_owned(),
                    Err(crate::Error::Other(format!("task panicked: {e}"))),
                ),
            };
            match result {
                Ok(()) => tracing::debug!(service = name, worker = %label, "stopped"),
                Err(e) => {
                    tracing::error!(service = name, worker = %label, error = %e, "failed; stopping the service");
                    local.cancel();
                    first_error.get_or_insert(e);
                }
            }
            // A worker that ends without shutdown being requested is a failure of the service.
            if !local.is_cancelled() {
                tracing::error!(service = name, worker = %label, "ended unexpectedly; stopping the service");
                local.cancel();
                first_error.get_or_insert(crate::Error::Other(format!(
                    "{name}: {label} ended unexpectedly"
                )));
            }
        }
        tracing::info!(service = name, "stopped");
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
