//! The served anomaly models: training from the store's feature history, versions in the model
//! registry (object storage), the promoted version of each asset loaded and hot-swapped.
//!
//! Every replica of the service polls the registry's promoted pointers (`reload`), so a model
//! promoted through any replica's API, or by the automatic trainer of another, is served by all
//! of them within one check interval; the replica that promotes swaps at once.

use crate::model::{AssetModel, TrainConfig, TrainError};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use mantis_domain::{AssetId, FeatureVector, SensorId, WorkOrderStatus};
use mantis_objects::registry::{ModelMetadata, ModelRegistry, ModelSeries, TrainingPeriod};
use mantis_store::{Store, WorkOrderFilter};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// The registry kind of anomaly models.
pub const MODEL_KIND: &str = "anomaly";
/// The format recorded with each version.
pub const MODEL_FORMAT: &str = "mantis-anomaly-ensemble-v1";

/// Why a model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The asset is not registered.
    #[error("asset {0} is not registered")]
    UnknownAsset(AssetId),
    /// The training data does not allow a model.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Another training of the asset is running.
    #[error("a model of asset {0} is being trained already")]
    Busy(AssetId),
    /// As many trainings as the service runs at once are running.
    #[error("{MAX_TRAININGS} anomaly models are being trained; try again when one ends")]
    TrainingsBusy,
    /// The version does not exist.
    #[error("asset {asset} has no model version {version}")]
    UnknownVersion {
        /// The asset.
        asset: AssetId,
        /// The version asked for.
        version: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mantis_store::Error),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] mantis_objects::Error),
}

/// A loaded model and its registry version.
pub struct Served {
    /// The registry version.
    pub version: u64,
    /// The model.
    pub model: AssetModel,
}

/// What a training produced.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trained {
    /// The asset.
    pub asset_id: AssetId,
    /// The registered version.
    pub version: u64,
    /// Whether it is now the served version.
    pub promoted: bool,
    /// First window start of the training data.
    pub trained_from: DateTime<Utc>,
    /// End of the training data.
    pub trained_to: DateTime<Utc>,
    /// What training measured.
    pub report: crate::model::TrainingReport,
}

/// The models of every asset.
pub struct Models {
    registry: ModelRegistry,
    store: Arc<dyn Store>,
    config: TrainConfig,
    served: RwLock<HashMap<AssetId, Arc<Served>>>,
    training: Mutex<HashSet<AssetId>>,
    /// Trainings at once (each reads its asset's history and takes a core).
    trainings: tokio::sync::Semaphore,
    /// Windows holding less of their expected samples are not learned from (as they are not
    /// scored): their features are those of a window cut short.
    min_window_fill: f64,
}

/// Trainings the service runs at once (the API's and the automatic trainer's).
pub const MAX_TRAININGS: usize = 2;

fn series(asset: AssetId) -> Result<ModelSeries, ModelError> {
    Ok(ModelSeries::new(MODEL_KIND, asset.to_string())?)
}

/// Removes the asset from the set of running trainings when dropped.
struct TrainingGuard<'a>(&'a Mutex<HashSet<AssetId>>, AssetId);

impl Drop for TrainingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(&self.1);
        }
    }
}

impl Models {
    /// Models kept in `registry`, trained from `store`'s feature history.
    pub fn new(registry: ModelRegistry, store: Arc<dyn Store>, config: TrainConfig) -> Self {
        Self {
            registry,
            store,
            config,
            served: RwLock::new(HashMap::new()),
            training: Mutex::new(HashSet::new()),
            trainings: tokio::sync::Semaphore::new(MAX_TRAININGS),
            min_window_fill: 0.0,
        }
    }

    /// Trains only on windows holding at least `fill` of their expected samples (the
    /// service's `min_window_fill`, below which windows are not scored either).
    pub fn with_min_window_fill(mut self, fill: f64) -> Self {
        self.min_window_fill = fill;
        self
    }

    /// The served model of `asset`, if any.
    pub fn served(&self, asset: AssetId) -> Option<Arc<Served>> {
        self.served.read().ok()?.get(&asset).cloned()
    }

    /// How many assets have a served model.
    pub fn served_count(&self) -> usize {
        self.served.read().map(|m| m.len()).unwrap_or(0)
    }

    fn swap(&self, asset: AssetId, served: Served) {
        if let Ok(mut map) = self.served.write() {
            tracing::info!(%asset, version = served.version, "anomaly model now served");
            map.insert(asset, Arc::new(served));
        }
    }

    /// Loads the promoted version of `asset` when it differs from the served one.
    pub async fn reload(&self, asset: AssetId) -> Result<(), ModelError> {
        let series = series(asset)?;
        let Some(promoted) = self.registry.promoted(&series).await? else {
            return Ok(());
        };
        if self.served(asset).is_some_and(|s| s.version == promoted) {
            return Ok(());
        }
        let served = self.prepare(asset, promoted).await?;
        // Checked again once decoded: a promotion or rollback through this replica meanwhile
        // has swapped in its own version, which this older read must not replace.
        if self.registry.promoted(&series).await? == Some(promoted) {
            self.swap(asset, served);
        }
        Ok(())
    }

    async fn load(&self, asset: AssetId, version: u64) -> Result<(), ModelError> {
        let served = self.prepare(asset, version).await?;
        self.swap(asset, served);
        Ok(())
    }

    /// `version` of `asset`'s model read from the registry and decoded, ready to serve.
    async fn prepare(&self, asset: AssetId, version: u64) -> Result<Served, ModelError> {
        let series = series(asset)?;
        let Some(found) = self.registry.get(&series, version).await? else {
            return Err(ModelError::UnknownVersion { asset, version });
        };
        let model = tokio::task::spawn_blocking(move || AssetModel::load(&found.bytes))
            .await
            .map_err(|e| TrainError::Format(e.to_string()))??;
        Ok(Served { version, model })
    }

    /// The feature history of each sensor of `asset` within `[from, to)`.
    async fn history(
        &self,
        asset: AssetId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<BTreeMap<SensorId, Vec<FeatureVector>>, ModelError> {
        let mut history = BTreeMap::new();
        // The newest windows of the period: training uses at most `max_windows` of them.
        let limit = u32::try_from(self.config.max_windows).unwrap_or(u32::MAX);
        for sensor in self.store.list_sensors(Some(asset)).await? {
            let vectors = full_enough(
                self.store
                    .recent_features(sensor.id, from, to, limit)
                    .await?,
                sensor.sampling_rate_hz,
                self.min_window_fill,
            );
            if !vectors.is_empty() {
                history.insert(sensor.id, vectors);
            }
        }
        Ok(history)
    }

    /// Until when `asset`'s windows count as normal operation: the creation of its oldest
    /// active work order (what came after may be the fault it is about), or now.
    pub async fn normal_until(&self, asset: AssetId) -> Result<DateTime<Utc>, ModelError> {
        let active = self
            .store
            .list_work_orders(&WorkOrderFilter {
                asset_id: Some(asset),
                statuses: vec![
                    WorkOrderStatus::Open,
                    WorkOrderStatus::Scheduled,
                    WorkOrderStatus::InProgress,
                ],
                limit: Some(1000),
                ..WorkOrderFilter::default()
            })
            .await?;
        Ok(active
            .iter()
            .map(|w| w.created_at)
            .min()
            .unwrap_or_else(Utc::now))
    }

    /// Since when `asset` is as new: its last failure or replacement (maintenance events), or
    /// the epoch. Windows before it belong to another life of the machine.
    pub async fn normal_since(&self, asset: AssetId) -> Result<DateTime<Utc>, ModelError> {
        // One indexed query, whatever else (inspections, repairs) was recorded since.
        Ok(self
            .store
            .last_life_end(asset)
            .await?
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH))
    }

    /// How much history `asset` has within `[since, until)`: (windows of its best-covered
    /// sensor, span first → last).
    pub async fn history_span(
        &self,
        asset: AssetId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<(usize, chrono::Duration)>, ModelError> {
        let history = self.history(asset, since, until).await?;
        Ok(history
            .values()
            .filter_map(|v| {
                let (first, last) = (v.first()?, v.last()?);
                Some((v.len(), last.window_end - first.window_start))
            })
            .max_by_key(|(n, _)| *n))
    }

    /// Trains a model of `asset` on its windows within `[from, to)`, registers it and, when
    /// `promote`, serves it.
    pub async fn train(
        &self,
        asset: AssetId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        promote: bool,
    ) -> Result<Trained, ModelError> {
        if self.store.get_asset(asset).await?.is_none() {
            return Err(ModelError::UnknownAsset(asset));
        }
        {
            let mut running = self.training.lock().map_err(|_| ModelError::Busy(asset))?;
            if !running.insert(asset) {
                return Err(ModelError::Busy(asset));
            }
        }
        let _guard = TrainingGuard(&self.training, asset);
        let Ok(_slot) = self.trainings.try_acquire() else {
            return Err(ModelError::TrainingsBusy);
        };
        let history = self.history(asset, from, to).await?;
        let config = self.config.clone();
        // Trained and serialised off the async workers (both take CPU for a while).
        let (model, bytes) = tokio::task::spawn_blocking(move || {
            let model = AssetModel::train(asset, &history, &config)?;
            let bytes = model.save()?;
            Ok::<_, TrainError>((model, bytes))
        })
        .await
        .map_err(|e| TrainError::Format(e.to_string()))??;
        let mut metadata = ModelMetadata::new(MODEL_FORMAT);
        metadata.training_period = Some(TrainingPeriod {
            from: model.trained_from,
            to: model.trained_to,
        });
        metadata.metrics = BTreeMap::from([
            (
                "training_alarm_rate".to_owned(),
                model.report.training_alarm_rate,
            ),
            ("training_seconds".to_owned(), model.report.seconds),
            ("sensors".to_owned(), model.sensors.len() as f64),
            (
                "windows".to_owned(),
                model.report.windows.values().sum::<usize>() as f64,
            ),
        ]);
        metadata.contract = serde_json::json!({
            "sensors": model
                .sensors
                .iter()
                .map(|(id, m)| (id.to_string(), m.features.clone()))
                .collect::<BTreeMap<_, _>>(),
            "alarmScale": crate::model::ALARM_SCALE,
        });
        let series = series(asset)?;
        let version = self
            .registry
            .register(&series, Bytes::from(bytes), metadata)
            .await?;
        let trained = Trained {
            asset_id: asset,
            version,
            promoted: promote,
            trained_from: model.trained_from,
            trained_to: model.trained_to,
            report: model.report.clone(),
        };
        if promote {
            self.registry.promote(&series, version).await?;
            self.swap(asset, Served { version, model });
        }
        metrics::counter!("mantis_anomaly_models_trained_total").increment(1);
        Ok(trained)
    }

    /// Serves `version` of `asset` (it must exist).
    pub async fn promote(&self, asset: AssetId, version: u64) -> Result<(), ModelError> {
        let series = series(asset)?;
        if self.registry.version(&series, version).await?.is_none() {
            return Err(ModelError::UnknownVersion { asset, version });
        }
        // Decoded first: a version that cannot serve is never promoted.
        let served = self.prepare(asset, version).await?;
        self.registry.promote(&series, version).await?;
        self.swap(asset, served);
        Ok(())
    }

    /// Serves the version promoted before the current one; returns it. A version that cannot
    /// serve is not rolled back to: the promoted version stays.
    pub async fn rollback(&self, asset: AssetId) -> Result<u64, ModelError> {
        let series = series(asset)?;
        let target = self.registry.rollback_target(&series).await?;
        let served = self.prepare(asset, target).await?;
        let version = self.registry.rollback(&series).await?;
        if version == target {
            self.swap(asset, served);
        } else {
            // Another promotion or rollback came in between.
            self.load(asset, version).await?;
        }
        Ok(version)
    }

    /// The registered versions of `asset`, oldest first, with the promoted one.
    pub async fn versions(
        &self,
        asset: AssetId,
    ) -> Result<(Vec<mantis_objects::registry::ModelVersion>, Option<u64>), ModelError> {
        let series = series(asset)?;
        Ok((
            self.registry.versions(&series).await?,
            self.registry.promoted(&series).await?,
        ))
    }
}

/// The fraction of the `expected` samples a window of `count` holds: 1 when the expectation
/// is unknown, and when at most one sample is missing (a window of a slow sensor, expecting a
/// few, is not cut short by one lost reading; a sampling instant near the window's edge may
/// fall either side of it).
pub(crate) fn window_fill(count: f64, expected: f64) -> f64 {
    if expected <= 0.0 || expected - count <= 1.0 {
        1.0
    } else {
        count / expected
    }
}

/// The windows of `vectors` holding at least `min_fill` of the samples a sensor sampled at
/// `rate_hz` gives over their span (all when the rate or a count is unknown).
fn full_enough(vectors: Vec<FeatureVector>, rate_hz: f64, min_fill: f64) -> Vec<FeatureVector> {
    if !(rate_hz > 0.0 && min_fill > 0.0) {
        return vectors;
    }
    vectors
        .into_iter()
        .filter(|fv| {
            let expected =
                rate_hz * (fv.window_end - fv.window_start).num_milliseconds() as f64 / 1000.0;
            fv.sample_count()
                .is_none_or(|count| window_fill(count, expected) >= min_fill)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cut_short_are_not_learned_from() {
        let fv = |start_s: i64, count: f64| FeatureVector {
            asset_id: AssetId(uuid::Uuid::nil()),
            sensor_id: SensorId(uuid::Uuid::nil()),
            sensor_type: mantis_domain::SensorType::Vibration,
            window_start: DateTime::from_timestamp(start_s, 0).expect("time"),
            window_end: DateTime::from_timestamp(start_s + 10, 0).expect("time"),
            feature_set_version: "v".into(),
            features: [(FeatureVector::SAMPLE_COUNT.to_owned(), count)].into(),
        };
        // 100 Hz over 10 s: 1 000 expected.
        let kept = full_enough(
            vec![fv(0, 1000.0), fv(10, 400.0), fv(20, 600.0)],
            100.0,
            0.5,
        );
        assert_eq!(
            kept.iter()
                .map(|f| f.window_start.timestamp())
                .collect::<Vec<_>>(),
            vec![0, 20]
        );
        // Unknown rate: nothing to judge by.
        assert_eq!(full_enough(vec![fv(0, 1.0)], 0.0, 0.5).len(), 1);
        // A slow sensor (0.4 Hz: 4 expected) losing one reading is not cut short; two are.
        assert_eq!(
            full_enough(vec![fv(0, 3.0), fv(10, 2.0)], 0.4, 0.8)
                .iter()
                .map(|f| f.window_start.timestamp())
                .collect::<Vec<_>>(),
            vec![0]
        );
        assert_eq!(window_fill(11.0, 10.0), 1.0, "a sample more than expected");
        assert_eq!(window_fill(7.0, 10.0), 0.7);
    }
}
