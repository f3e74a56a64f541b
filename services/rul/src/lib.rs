//! # mantis-rul
//!
//! Remaining-useful-life prediction. Consumes `features.extracted` and, with a model loaded,
//! publishes predictions on `rul.predicted`. Without a model it predicts nothing: it consumes
//! and commits (so it never holds the stream back), counts what it skipped, and says so in
//! `/health` and `/ready` under `model`. RUL models and their registry come with the RUL work.

use async_trait::async_trait;
use mantis_bus::Position;
use mantis_domain::FeatureVector;
use mantis_runtime::{App, HandleError, Handler, Infra, RecordContext, Result, run_consumer};
use mantis_telemetry::Health;
use serde::{Deserialize, Serialize};

/// Configuration of the RUL service (`[rul]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8005`.
    pub bind: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8005".into(),
        }
    }
}

/// The consumer group of the service.
pub const GROUP: &str = "rul";

struct RulHandler {
    skipped: u64,
    health: Health,
}

#[async_trait]
impl Handler for RulHandler {
    type Input = FeatureVector;

    async fn handle(
        &mut self,
        _fv: &FeatureVector,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        self.skipped += 1;
        metrics::counter!("mantis_rul_skipped_no_model_total").increment(1);
        self.health.set_detail(
            "featureVectorsWithoutPrediction",
            serde_json::json!(self.skipped),
        );
        Ok(ctx.done())
    }
}

/// Builds the RUL service.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    let health = App::health("rul", &infra);
    health.set_detail(
        "model",
        serde_json::json!({
            "loaded": false,
            "reason": "no RUL model is registered; no predictions are published",
        }),
    );
    tracing::warn!("no RUL model loaded: rul.predicted stays silent");
    let handler = RulHandler {
        skipped: 0,
        health: health.clone(),
    };
    Ok(App::new("rul", &config.bind, axum::Router::new(), health)
        .await?
        .worker("consumer", move |shutdown| {
            run_consumer(infra, GROUP, handler, shutdown)
        }))
}
