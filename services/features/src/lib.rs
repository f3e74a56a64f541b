//! # mantis-features
//!
//! Consumes `sensor.windowed`, computes each window's feature vector with `mantis-dsp`'s
//! [`FeatureExtractor`], stores it in `sensor_features`, keeps the latest vector per sensor in
//! the online cache (in-process in the embedded mode, Redis in the cluster mode; TTL
//! `cache_ttl_secs`) and publishes it on `features.extracted`, keyed by asset.
//!
//! Vibration windows long enough for a spectrum get the full set (time domain, spectrum with
//! band energies and harmonics, db4 wavelet energies and entropies); other windows get the time
//! domain set. Every vector also records its window's sample count (`sample_count`) and the
//! version of its feature set. Stateless per window, so a redelivered window yields the same
//! vector and the keyed write ignores it.

use async_trait::async_trait;
use mantis_bus::Position;
use mantis_cache::Cache;
use mantis_domain::{FeatureVector, SensorType, Window};
use mantis_dsp::{FeatureConfig, FeatureExtractor};
use mantis_runtime::{
    App, HandleError, Handler, Infra, Publisher, RecordContext, Result, run_consumer,
};
use mantis_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Configuration of the feature-extraction service (`[features]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8003` (`mantis`, all services in one process:
    /// `127.0.0.1:8003`; this API takes no credentials).
    pub bind: String,
    /// How long the latest feature vector of a sensor stays in the online cache. Default 300 s.
    pub cache_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8003".into(),
            cache_ttl_secs: 300,
        }
    }
}

/// The consumer group of the service.
pub const GROUP: &str = "features";

/// Extractors kept at most (each holds FFT plans and buffers of its window lengths).
const MAX_EXTRACTORS: usize = 16;

/// Computes feature vectors, keeping one extractor per feature configuration (FFT plans and
/// buffers are reused from window to window).
#[derive(Default)]
pub struct Extractors {
    by_config: HashMap<(bool, u64), FeatureExtractor>,
    values: Vec<f64>,
}

impl Extractors {
    /// The feature configuration the service applies to `window`: the full vibration set when
    /// the window is long enough for it, the time-domain set otherwise.
    pub fn config_for(&mut self, window: &Window) -> Result<FeatureConfig, mantis_dsp::Error> {
        let fs = window.rate_hz();
        if window.sensor_type == SensorType::Vibration {
            let spectral = self.extractor(FeatureConfig::vibration(fs))?;
            if window.values.len() >= spectral.min_len() {
                return Ok(spectral.config().clone());
            }
        }
        Ok(FeatureConfig::time_only(fs))
    }

    fn extractor(
        &mut self,
        config: FeatureConfig,
    ) -> Result<&mut FeatureExtractor, mantis_dsp::Error> {
        let key = (config.spectral.is_some(), config.sample_rate_hz.to_bits());
        if self.by_config.len() >= MAX_EXTRACTORS && !self.by_config.contains_key(&key) {
            // Rates are few (one per sensor configuration), but an older window's rate is
            // estimated from its length: never let those pile up.
            self.by_config.clear();
        }
        match self.by_config.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                Ok(v.insert(FeatureExtractor::new(config)?))
            }
        }
    }

    /// The feature vector of `window`; the reason when none can be made of it (no usable
    /// samples, a rate the extractor cannot take).
    pub fn extract(&mut self, window: &Window) -> Result<FeatureVector, mantis_dsp::Error> {
        let config = self.config_for(window)?;
        let mut values = std::mem::take(&mut self.values);
        let extractor = self.extractor(config)?;
        let result = extractor.extract_into(&window.values, &mut values);
        let names = extractor.names();
        let version = extractor.version();
        let mut features: BTreeMap<String, f64> =
            names.iter().cloned().zip(values.iter().copied()).collect();
        self.values = values;
        result?;
        // How full the window was: consumers must not judge a machine on a window cut short.
        features.insert(
            FeatureVector::SAMPLE_COUNT.to_owned(),
            f64::from(window.count),
        );
        Ok(FeatureVector {
            asset_id: window.asset_id,
            sensor_id: window.sensor_id,
            sensor_type: window.sensor_type,
            window_start: window.window_start,
            window_end: window.window_end,
            feature_set_version: version.to_owned(),
            features,
        })
    }
}

struct FeatureHandler {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    cache_ttl: Duration,
    publisher: Publisher,
    extractors: Extractors,
}

#[async_trait]
impl Handler for FeatureHandler {
    type Input = Window;

    async fn handle(
        &mut self,
        window: &Window,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        let features = self.extractors.extract(window).map_err(|e| {
            HandleError::Permanent(format!(
                "no features of the window of sensor {} at {}: {e}",
                window.sensor_id, window.window_start
            ))
        })?;
        self.store.insert_features(&features).await?;
        // The cache only speeds reads up: when it is down, readers fall back to the store.
        match serde_json::to_vec(&features) {
            Ok(json) => {
                let key =
                    mantis_cache::keys::latest_features(features.asset_id, features.sensor_id);
                if let Err(e) = self.cache.set(&key, json, self.cache_ttl).await {
                    metrics::counter!("mantis_cache_errors_total", "service" => "features")
                        .increment(1);
                    tracing::warn!(error = %e, "could not cache the latest feature vector");
                }
            }
            Err(e) => tracing::warn!(error = %e, "feature vector not serialisable for the cache"),
        }
        self.publisher
            .publish(
                Some(features.asset_id.to_string()),
                &features,
                ctx.trace,
                vec![],
            )
            .await?;
        metrics::counter!("mantis_feature_vectors_total", "set" => features.feature_set_version.clone())
            .increment(1);
        Ok(ctx.done())
    }
}

/// Builds the feature-extraction service.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    let health = App::health("features", &infra);
    health.set_detail(
        "featureSets",
        serde_json::json!([mantis_dsp::FULL_FEATURE_SET_VERSION]),
    );
    health.set_detail("cache", serde_json::json!(infra.cache.describe()));
    let handler = FeatureHandler {
        store: infra.store.clone(),
        cache: infra.cache.clone(),
        cache_ttl: Duration::from_secs(config.cache_ttl_secs.max(1)),
        publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "features"),
        extractors: Extractors::default(),
    };
    Ok(
        App::new("features", &config.bind, axum::Router::new(), health)
            .await?
            .worker("consumer", move |shutdown| {
                run_consumer(infra, GROUP, handler, shutdown)
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_domain::{AssetId, SensorId};

    fn window(sensor_type: SensorType, values: Vec<f64>, secs: i64) -> Window {
        let t = mantis_domain::timestamp_from_millis(0).expect("valid");
        Window {
            asset_id: AssetId::new_random(),
            sensor_id: SensorId::new_random(),
            sensor_type,
            window_start: t,
            window_end: t + chrono::Duration::seconds(secs),
            count: values.len() as u32,
            mean: 0.0,
            std: 1.0,
            min: -1.0,
            max: 1.0,
            values,
            sample_rate_hz: 0.0,
        }
    }

    #[test]
    fn a_slow_window_yields_the_time_features_and_its_sample_count() {
        let w = window(SensorType::Temperature, vec![1.0, -1.0, 1.0, -1.0], 4);
        let f = Extractors::default().extract(&w).expect("features");
        assert_eq!(f.features["rms"], 1.0);
        assert_eq!(f.features["peak_to_peak"], 2.0);
        assert_eq!(f.sample_count(), Some(4.0));
        assert!(!f.features.contains_key("spectral_peak_frequency_hz"));
        let empty = Window {
            values: vec![],
            ..w
        };
        let e = Extractors::default()
            .extract(&empty)
            .expect_err("nothing to extract");
        assert!(!e.to_string().is_empty(), "a reason for the dead letter");
    }

    #[test]
    fn a_vibration_window_gets_spectral_and_wavelet_features() {
        // 2 s at 1 kHz of a 50 Hz sine.
        let x: Vec<f64> = (0..2000)
            .map(|i| (2.0 * std::f64::consts::PI * 50.0 * i as f64 / 1000.0).sin())
            .collect();
        let f = Extractors::default()
            .extract(&window(SensorType::Vibration, x, 2))
            .expect("features");
        assert_eq!(f.feature_set_version, mantis_dsp::FULL_FEATURE_SET_VERSION);
        let peak = f.features["spectral_peak_frequency_hz"];
        assert!((peak - 50.0).abs() < 0.6, "peak at {peak} Hz");
        assert!(f.features.keys().any(|k| k.starts_with("wavelet_energy_")));
    }

    #[test]
    fn a_window_cut_short_by_a_gap_is_analysed_at_its_own_sample_rate() {
        // A 30 s window of a 1 kHz sensor of which a gap left the last 24 s: 24 000 samples of
        // a 50 Hz sine. Counted over the window's 30 s, the rate would read 800 Hz, the peak
        // 40 Hz.
        let x: Vec<f64> = (0..24_000)
            .map(|i| (2.0 * std::f64::consts::PI * 50.0 * i as f64 / 1000.0).sin())
            .collect();
        let mut w = window(SensorType::Vibration, x, 30);
        w.sample_rate_hz = 1000.0;
        let f = Extractors::default().extract(&w).expect("features");
        let peak = f.features["spectral_peak_frequency_hz"];
        assert!((peak - 50.0).abs() < 0.1, "peak at {peak} Hz");
    }

    #[test]
    fn extractors_stay_few_whatever_the_window_lengths() {
        let mut extractors = Extractors::default();
        for n in 2000..2100 {
            // Older records without a rate: each length implies another rate.
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).sin()).collect();
            extractors
                .extract(&window(SensorType::Vibration, x, 2))
                .expect("features");
            assert!(extractors.by_config.len() <= MAX_EXTRACTORS);
        }
    }
}
