//! The model registry: numbered versions of each kind of model per scope, in an object store,
//! and which version is promoted (served).
//!
//! A [`ModelSeries`] names a kind of model (`anomaly`, `rul`, …) and a scope (an asset id, or
//! `fleet`). Its objects are:
//!
//! ```text
//! models/{kind}/{scope}/v000001/model.bin   the model's bytes (any format)
//! models/{kind}/{scope}/v000001/meta.json   ModelVersion: metadata, size, CRC-32 of model.bin
//! models/{kind}/{scope}/promoted.json       the promoted version and the ones before it
//! ```
//!
//! A version exists once its `meta.json` does; `model.bin` is written first, so a listed version
//! always has its bytes. A registration that crashed between the two leaves a `model.bin` alone:
//! that number is never listed and never reused.
//!
//! ## Concurrent registrations
//!
//! Version numbers increase per series. Within one process, registrations and promotions of a
//! series are serialised by a lock shared by every [`ModelRegistry`] over the same store (keyed
//! by [`ObjectStore::describe`]), so racing registrations get distinct, consecutive numbers.
//!
//! Across processes the registry takes the number after the highest one that has any object and
//! claims it by writing `v…/model.bin` only where none is ([`ObjectStore::put_new`]: a hard link
//! on local disk, `If-None-Match: *` on S3), moving on to the next number when another writer
//! has it: of processes racing for a number, one gets it. (moto, the S3 server of our tests,
//! checks `If-None-Match` but not atomically; AWS S3 and MinIO do.) Should a store ever let two
//! writers through, the collision cannot go unnoticed: `meta.json` records the size and CRC-32
//! of the bytes it describes, and [`ModelRegistry::get`] answers [`Error::Corrupt`] when the two
//! files come from different writers. The replicas of a MANTIS service also take a lease in the
//! store before an automatic training of a series (one trains it, the others load what it
//! promotes); promotions are last-writer-wins across processes.

use crate::{Error, ObjectStore, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, PoisonError};

/// How many taken version numbers a registration steps over before giving up.
const MAX_CLAIM_ATTEMPTS: usize = 16;
/// How many earlier promotions `promoted.json` remembers for rollbacks.
const MAX_PROMOTION_HISTORY: usize = 50;
/// Longest kind or scope, in bytes.
const MAX_NAME_LEN: usize = 128;

/// One kind of model for one scope, e.g. `anomaly` for the fleet or `rul` for an asset: the
/// series that versions are numbered in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelSeries {
    kind: String,
    scope: String,
}

impl ModelSeries {
    /// The series of `kind` models for `scope`. Each must be 1 to 128 ASCII letters, digits,
    /// `-`, `_` or `.`, not starting with `.` (a UUID asset id qualifies), else
    /// [`Error::Invalid`].
    pub fn new(kind: impl Into<String>, scope: impl Into<String>) -> Result<Self> {
        let (kind, scope) = (kind.into(), scope.into());
        check_name("kind", &kind)?;
        check_name("scope", &scope)?;
        Ok(Self { kind, scope })
    }

    /// The kind of model (`anomaly`, `rul`, …).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// What the models are for (an asset id, `fleet`, …).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    fn prefix(&self) -> String {
        format!("models/{}/{}", self.kind, self.scope)
    }

    fn version_prefix(&self, version: u64) -> String {
        format!("{}/v{version:06}", self.prefix())
    }

    fn model_key(&self, version: u64) -> String {
        format!("{}/model.bin", self.version_prefix(version))
    }

    fn meta_key(&self, version: u64) -> String {
        format!("{}/meta.json", self.version_prefix(version))
    }

    fn promoted_key(&self) -> String {
        format!("{}/promoted.json", self.prefix())
    }
}

impl std::fmt::Display for ModelSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.scope)
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the model {what} `{name}` must be 1 to {MAX_NAME_LEN} ASCII letters, digits, `-`, \
             `_` or `.`, not starting with `.`"
        )))
    }
}

/// The time range of the data a model was trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingPeriod {
    /// First instant of the training data.
    pub from: DateTime<Utc>,
    /// Last instant of the training data (not before `from`).
    pub to: DateTime<Utc>,
}

/// What the trainer says about a model when registering it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// When the model was trained.
    pub created_at: DateTime<Utc>,
    /// The data it was trained on, when it comes from a time range.
    #[serde(default)]
    pub training_period: Option<TrainingPeriod>,
    /// Evaluation metrics by name (`rmse`, `precision`, …); finite numbers only.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// The format of the bytes, e.g. `onnx`, `mantis-iforest-v1`, `forust-json`.
    pub format: String,
    /// What the serving side needs to use it (feature names and order, window, units), free
    /// form; `null` when there is nothing to say.
    #[serde(default)]
    pub contract: serde_json::Value,
}

impl ModelMetadata {
    /// Metadata of a model in `format` trained now, without period, metrics or contract.
    pub fn new(format: impl Into<String>) -> Self {
        Self {
            created_at: Utc::now(),
            training_period: None,
            metrics: BTreeMap::new(),
            format: format.into(),
            contract: serde_json::Value::Null,
        }
    }

    fn check(&self) -> Result<()> {
        if self.format.trim().is_empty() {
            return Err(Error::Invalid("the model format is empty".into()));
        }
        if let Some((name, value)) = self.metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "the metric `{name}` is {value}; metrics must be finite numbers"
            )));
        }
        if let Some(p) = &self.training_period
            && p.to < p.from
        {
            return Err(Error::Invalid(format!(
                "the training period ends ({}) before it starts ({})",
                p.to, p.from
            )));
        }
        Ok(())
    }
}

/// A registered version: what `meta.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The kind of model.
    pub kind: String,
    /// Its scope.
    pub scope: String,
    /// The version number, from 1, increasing per series.
    pub version: u64,
    /// Size of `model.bin` in bytes.
    pub size_bytes: u64,
    /// CRC-32 of `model.bin`, checked when the model is read.
    pub crc32: u32,
    /// What the trainer said.
    pub metadata: ModelMetadata,
}

/// A registered model: its version record and its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The version record.
    pub version: ModelVersion,
    /// The model's bytes, as registered.
    pub bytes: Bytes,
}

/// One promotion: which version became the served one, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// The promoted version.
    pub version: u64,
    /// When it became the promoted version.
    pub promoted_at: DateTime<Utc>,
}

/// `promoted.json`: the current promotion and the ones it replaced, oldest first.
#[derive(Debug, Serialize, Deserialize)]
struct PromotedPointer {
    version: u64,
    promoted_at: DateTime<Utc>,
    #[serde(default)]
    previous: Vec<Promotion>,
}

/// The model registry over an object store. Cheap to clone; clones share the store.
#[derive(Clone, Debug)]
pub struct ModelRegistry {
    store: Arc<dyn ObjectStore>,
}

impl ModelRegistry {
    /// A registry keeping its models in `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// The store the models are kept in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores `model` with `metadata` as the next version of `series` and returns its number
    /// (1 for the first). Not promoted: see [`promote`](Self::promote). Invalid metadata (an
    /// empty format, a non-finite metric, a period ending before it starts) is
    /// [`Error::Invalid`]; see the module docs for registrations racing across processes.
    #[tracing::instrument(skip(self, model, metadata), fields(series = %series, size = model.len()))]
    pub async fn register(
        &self,
        series: &ModelSeries,
        model: Bytes,
        metadata: ModelMetadata,
    ) -> Result<u64> {
        metadata.check()?;
        let lock = self.series_lock(series);
        let _serialised = lock.lock().await;
        let mut version = self.highest_claimed(series).await? + 1;
        let mut record = ModelVersion {
            kind: series.kind.clone(),
            scope: series.scope.clone(),
            version,
            size_bytes: model.len() as u64,
            crc32: crc32fast::hash(&model),
            metadata,
        };
        for _ in 0..MAX_CLAIM_ATTEMPTS {
            record.version = version;
            let meta = serde_json::to_vec_pretty(&record)
                .map_err(|e| Error::Invalid(format!("the metadata cannot be stored: {e}")))?;
            // model.bin is the first object of a version, written only where none is: if one
            // is, another writer has claimed this number since we listed.
            if !self
                .store
                .put_new(&series.model_key(version), model.clone())
                .await?
            {
                tracing::warn!(version, "model version already taken; trying the next one");
                version += 1;
                continue;
            }
            self.store
                .put(&series.meta_key(version), Bytes::from(meta))
                .await?;
            tracing::info!(version, format = %record.metadata.format, "model version registered");
            return Ok(version);
        }
        Err(Error::Conflict(format!(
            "model `{series}`: {MAX_CLAIM_ATTEMPTS} version numbers in a row were taken by other \
             writers"
        )))
    }

    /// Every registered version of `series`, oldest (lowest number) first. A version whose
    /// record cannot be read (a damaged or foreign `meta.json`) is left out with an error in
    /// the log, so that one damaged object does not hide the others (its number is never
    /// reused; [`version`](Self::version) and [`get`](Self::get) of it answer
    /// [`Error::Corrupt`]).
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn versions(&self, series: &ModelSeries) -> Result<Vec<ModelVersion>> {
        let numbers = self
            .version_numbers(series, |file| file == "meta.json")
            .await?;
        // A few reads at a time: fast on S3 without flooding it when there are many versions.
        let records: Vec<Option<ModelVersion>> = futures::stream::iter(numbers)
            .map(|v| async move {
                match self.version_record(series, v).await {
                    Err(Error::Corrupt(why)) => {
                        tracing::error!(version = v, error = %why, "model version left out of the listing: its record is damaged");
                        Ok(None)
                    }
                    other => other,
                }
            })
            .buffered(8)
            .try_collect()
            .await?;
        Ok(records.into_iter().flatten().collect())
    }

    /// The record of `version` of `series` (without its bytes), `None` when not registered.
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn version(
        &self,
        series: &ModelSeries,
        version: u64,
    ) -> Result<Option<ModelVersion>> {
        self.version_record(series, version).await
    }

    /// `version` of `series` with its bytes, `None` when not registered. Bytes that do not
    /// match the recorded size and CRC-32 are [`Error::Corrupt`].
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn get(&self, series: &ModelSeries, version: u64) -> Result<Option<Model>> {
        let Some(record) = self.version_record(series, version).await? else {
            return Ok(None);
        };
        let key = series.model_key(version);
        let bytes =
            self.store.get(&key).await?.ok_or_else(|| {
                Error::Corrupt(format!("`{key}` is missing but its metadata exists"))
            })?;
        if bytes.len() as u64 != record.size_bytes || crc32fast::hash(&bytes) != record.crc32 {
            return Err(Error::Corrupt(format!(
                "`{key}` ({} bytes) does not match its metadata ({} bytes, CRC-32 {:08x}); two \
                 writers may have registered the same version",
                bytes.len(),
                record.size_bytes,
                record.crc32
            )));
        }
        Ok(Some(Model {
            version: record,
            bytes,
        }))
    }

    /// Makes `version` the promoted version of `series`, remembering the one it replaces for
    /// [`rollback`](Self::rollback). Promoting the version already promoted changes nothing.
    /// An unregistered version is [`Error::NotFound`].
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn promote(&self, series: &ModelSeries, version: u64) -> Result<()> {
        let lock = self.series_lock(series);
        let _serialised = lock.lock().await;
        if !self.store.exists(&series.meta_key(version)).await? {
            return Err(Error::NotFound {
                what: "model version",
                id: format!("{series}/v{version}"),
            });
        }
        let mut previous = match self.pointer(series).await? {
            Some(current) if current.version == version => return Ok(()),
            Some(current) => {
                let mut previous = current.previous;
                previous.push(Promotion {
                    version: current.version,
                    promoted_at: current.promoted_at,
                });
                previous
            }
            None => Vec::new(),
        };
        if previous.len() > MAX_PROMOTION_HISTORY {
            previous.drain(..previous.len() - MAX_PROMOTION_HISTORY);
        }
        self.write_pointer(
            series,
            &PromotedPointer {
                version,
                promoted_at: Utc::now(),
                previous,
            },
        )
        .await?;
        tracing::info!(version, "model version promoted");
        Ok(())
    }

    /// Promotes again the version that was promoted before the current one, forgetting the
    /// current one, and returns it. [`Error::NoRollback`] when there is no earlier promotion.
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn rollback(&self, series: &ModelSeries) -> Result<u64> {
        let lock = self.series_lock(series);
        let _serialised = lock.lock().await;
        let no_rollback = || Error::NoRollback {
            series: series.to_string(),
        };
        let current = self.pointer(series).await?.ok_or_else(no_rollback)?;
        let mut previous = current.previous;
        let back = previous.pop().ok_or_else(no_rollback)?;
        // The version gone back to must still be there and intact: a pointer to bytes that are
        // missing or damaged would leave every reader without a model.
        if self.get(series, back.version).await?.is_none() {
            return Err(Error::NotFound {
                what: "model version",
                id: format!("{series}/v{}", back.version),
            });
        }
        self.write_pointer(
            series,
            &PromotedPointer {
                version: back.version,
                promoted_at: Utc::now(),
                previous,
            },
        )
        .await?;
        tracing::info!(
            from = current.version,
            to = back.version,
            "model promotion rolled back"
        );
        Ok(back.version)
    }

    /// The version a [`rollback`](Self::rollback) of `series` would go back to now
    /// ([`Error::NoRollback`] when none): for a caller that checks it can serve that version
    /// before rolling back.
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn rollback_target(&self, series: &ModelSeries) -> Result<u64> {
        self.pointer(series)
            .await?
            .and_then(|p| p.previous.last().map(|b| b.version))
            .ok_or_else(|| Error::NoRollback {
                series: series.to_string(),
            })
    }

    /// The promoted version of `series`, `None` before the first promotion.
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn promoted(&self, series: &ModelSeries) -> Result<Option<u64>> {
        Ok(self.pointer(series).await?.map(|p| p.version))
    }

    /// The promoted model of `series` with its bytes, `None` before the first promotion.
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn load_promoted(&self, series: &ModelSeries) -> Result<Option<Model>> {
        let Some(version) = self.promoted(series).await? else {
            return Ok(None);
        };
        match self.get(series, version).await? {
            Some(model) => Ok(Some(model)),
            None => Err(Error::Corrupt(format!(
                "`{}` promotes version {version}, which is not registered",
                series.promoted_key()
            ))),
        }
    }

    /// The promotions that a rollback can return to, oldest first, then the current one last;
    /// empty before the first promotion.
    #[tracing::instrument(skip(self), fields(series = %series))]
    pub async fn promotions(&self, series: &ModelSeries) -> Result<Vec<Promotion>> {
        Ok(match self.pointer(series).await? {
            Some(p) => {
                let mut all = p.previous;
                all.push(Promotion {
                    version: p.version,
                    promoted_at: p.promoted_at,
                });
                all
            }
            None => Vec::new(),
        })
    }

    /// The lock serialising writes to `series` in this process, shared by every registry
    /// over the same store.
    fn series_lock(&self, series: &ModelSeries) -> Arc<tokio::sync::Mutex<()>> {
        type Locks = std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;
        static LOCKS: LazyLock<Locks> = LazyLock::new(Default::default);
        // A panic while holding this map cannot leave it inconsistent (one insert), so a
        // poisoned lock is used as is.
        let mut locks = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
        locks
            .entry(format!("{}|{}", self.store.describe(), series.prefix()))
            .or_default()
            .clone()
    }

    /// Version numbers of `series` that have a file for which `file` is true.
    async fn version_numbers(
        &self,
        series: &ModelSeries,
        file: impl Fn(&str) -> bool,
    ) -> Result<BTreeSet<u64>> {
        let prefix = series.prefix();
        let listed = self.store.list(&prefix).await?;
        Ok(listed
            .iter()
            .filter_map(|o| {
                let rest = o.key.strip_prefix(&prefix)?.strip_prefix("/v")?;
                let (number, name) = rest.split_once('/')?;
                let all_digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
                (all_digits && file(name)).then(|| number.parse::<u64>().ok())?
            })
            .collect())
    }

    /// The highest version number of `series` that has any object (0 when none).
    async fn highest_claimed(&self, series: &ModelSeries) -> Result<u64> {
        let numbers = self.version_numbers(series, |_| true).await?;
        Ok(numbers.last().copied().unwrap_or(0))
    }

    async fn version_record(
        &self,
        series: &ModelSeries,
        version: u64,
    ) -> Result<Option<ModelVersion>> {
        let key = series.meta_key(version);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let record: ModelVersion = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Corrupt(format!("`{key}` is not a model version record: {e}")))?;
        if record.version != version || record.kind != series.kind || record.scope != series.scope {
            return Err(Error::Corrupt(format!(
                "`{key}` describes {}/{}/v{}",
                record.kind, record.scope, record.version
            )));
        }
        Ok(Some(record))
    }

    async fn pointer(&self, series: &ModelSeries) -> Result<Option<PromotedPointer>> {
        let key = series.promoted_key();
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("`{key}` is not a promotion pointer: {e}")))
    }

    async fn write_pointer(&self, series: &ModelSeries, pointer: &PromotedPointer) -> Result<()> {
        let json = serde_json::to_vec_pretty(pointer)
            .map_err(|e| Error::Invalid(format!("the promotion cannot be stored: {e}")))?;
        self.store
            .put(&series.promoted_key(), Bytes::from(json))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_scopes_are_single_safe_names() {
        assert!(ModelSeries::new("anomaly", "fleet").is_ok());
        assert!(ModelSeries::new("rul", "4f1c0a2e-1b8e-4c5e-9d0a-000000000001").is_ok());
        for (kind, scope) in [
            ("", "fleet"),
            ("anomaly", ""),
            ("a/b", "fleet"),
            ("anomaly", ".."),
            ("anomaly", ".hidden"),
            ("anomaly", "fleet one"),
            ("anomaly", "flëet"),
        ] {
            assert!(
                matches!(ModelSeries::new(kind, scope), Err(Error::Invalid(_))),
                "{kind:?}/{scope:?} should be invalid"
            );
        }
    }

    #[test]
    fn the_layout_is_versioned_directories_and_a_pointer() {
        let s = ModelSeries::new("rul", "pump-7").expect("valid");
        assert_eq!(s.model_key(3), "models/rul/pump-7/v000003/model.bin");
        assert_eq!(s.meta_key(3), "models/rul/pump-7/v000003/meta.json");
        assert_eq!(s.promoted_key(), "models/rul/pump-7/promoted.json");
        assert_eq!(s.to_string(), "rul/pump-7");
    }

    #[test]
    fn metadata_with_non_finite_metrics_or_a_reversed_period_is_invalid() {
        let mut m = ModelMetadata::new("onnx");
        assert!(m.check().is_ok());
        m.metrics.insert("rmse".into(), f64::NAN);
        assert!(matches!(m.check(), Err(Error::Invalid(ref s)) if s.contains("rmse")));
        let mut m = ModelMetadata::new("onnx");
        let now = Utc::now();
        m.training_period = Some(TrainingPeriod {
            from: now,
            to: now - chrono::Duration::days(1),
        });
        assert!(matches!(m.check(), Err(Error::Invalid(_))));
        assert!(matches!(
            ModelMetadata::new(" ").check(),
            Err(Error::Invalid(_))
        ));
    }
}
