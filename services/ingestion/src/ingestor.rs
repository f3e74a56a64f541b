//! Validation and publishing of readings, shared by every source.

use crate::Config;
use crate::breaker::CircuitBreaker;
use crate::edge::EdgePublisher;
use crate::validate::{Rejection, TimeLimits, Verdict, validate};
use mantis_bus::{OutboundRecord, TraceContext};
use mantis_domain::{DataQualityIssue, QualityReason, Sensor, SensorId, SourceProtocol};
use mantis_domain::{IncomingReading, SensorRef};
use mantis_runtime::{Infra, Publisher};
use mantis_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// Why a batch could not be ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Some readings were refused; none of the batch was published on `sensor.raw`.
    #[error("{} reading(s) refused", .0.len())]
    Rejected(Vec<(usize, Rejection)>),
    /// The bus or the database is unavailable; the client should retry.
    #[error("ingestion is unavailable: {0}")]
    Unavailable(String),
}

/// What was accepted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Readings published on `sensor.raw`.
    pub accepted: usize,
    /// Data-quality issues reported for them (out of range, low quality).
    pub quality_issues: usize,
}

#[derive(Default)]
struct SensorCache {
    by_id: HashMap<SensorId, Sensor>,
    by_code: HashMap<String, SensorId>,
    loaded_at: Option<Instant>,
    /// When a reload last failed: not tried again for [`RELOAD_AFTER`] (the store is away; what
    /// is known serves meanwhile, and lookups do not queue behind a reload that times out).
    failed_at: Option<Instant>,
}

/// Validates readings against sensor metadata and publishes them (through the edge buffer
/// while the bus is unavailable, when the service has one).
pub struct Ingestor {
    store: Arc<dyn Store>,
    publisher: Publisher,
    edge: Arc<EdgePublisher>,
    sensors: RwLock<SensorCache>,
    limits: TimeLimits,
}

/// Sensor metadata is reloaded at most this often when an unknown sensor shows up.
const RELOAD_AFTER: Duration = Duration::from_secs(2);
/// A known sensor's metadata is trusted this long, then read again: a unit, range or asset
/// changed by an administrator applies within a minute, without a restart.
const SENSOR_TTL: Duration = Duration::from_secs(60);

impl Ingestor {
    /// An ingestor over `infra` that publishes directly, behind a circuit breaker, without an
    /// edge buffer (tools such as the batch import, which stop and resume instead).
    pub fn new(infra: &Infra, config: Config) -> Self {
        let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "ingestion");
        let edge = EdgePublisher::new(
            publisher,
            infra.bus.clone(),
            Arc::new(CircuitBreaker::new(config.circuit_breaker.clone())),
            None,
            config.edge_buffer.clone(),
        );
        Self::with_edge(infra, config, Arc::new(edge))
    }

    /// An ingestor over `infra` that publishes through `edge`.
    pub fn with_edge(infra: &Infra, config: Config, edge: Arc<EdgePublisher>) -> Self {
        Self {
            store: infra.store.clone(),
            publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "ingestion"),
            edge,
            sensors: RwLock::new(SensorCache::default()),
            limits: TimeLimits {
                max_future_skew: Duration::from_secs(config.max_future_skew_secs),
                max_age: Duration::from_secs(config.max_age_secs),
            },
        }
    }

    async fn lookup(&self, r: &SensorRef) -> Result<Option<Sensor>, IngestError> {
        let find = |c: &SensorCache| match r {
            SensorRef::Id(id) => c.by_id.get(id).cloned(),
            SensorRef::Code(code) => c.by_code.get(code).and_then(|id| c.by_id.get(id)).cloned(),
        };
        let settled = |c: &SensorCache| -> Option<Result<Option<Sensor>, IngestError>> {
            let age = c.loaded_at.map(|t| t.elapsed());
            let backing_off = c.failed_at.is_some_and(|t| t.elapsed() < RELOAD_AFTER);
            match find(c) {
                Some(s) if backing_off || age.is_some_and(|a| a < SENSOR_TTL) => Some(Ok(Some(s))),
                None if age.is_some_and(|a| a < RELOAD_AFTER) => Some(Ok(None)),
                None if backing_off => Some(Err(IngestError::Unavailable(
                    "sensor metadata cannot be read".into(),
                ))),
                _ => None,
            }
        };
        if let Some(answer) = settled(&*self.sensors.read().await) {
            return answer;
        }
        let mut cache = self.sensors.write().await;
        // Another lookup may have reloaded (or failed to) while this one waited.
        if let Some(answer) = settled(&cache) {
            return answer;
        }
        match self.store.list_sensors(None).await {
            Ok(all) => {
                cache.by_code = all.iter().map(|s| (s.code.clone(), s.id)).collect();
                cache.by_id = all.into_iter().map(|s| (s.id, s)).collect();
                cache.loaded_at = Some(Instant::now());
                cache.failed_at = None;
                Ok(find(&cache))
            }
            // Metadata known from before still serves while the store is away.
            Err(e) => {
                cache.failed_at = Some(Instant::now());
                match find(&cache) {
                    Some(known) => {
                        tracing::warn!(error = %e, "sensor metadata not refreshed; using what is known");
                        Ok(Some(known))
                    }
                    None => Err(IngestError::Unavailable(e.to_string())),
                }
            }
        }
    }

    /// Validates `batch` and publishes it. All or nothing as far as refusals go: when any
    /// reading is refused, none is published on `sensor.raw`, every refusal is reported on
    /// `data.quality.issues`, and the refusals are returned with their batch index.
    #[tracing::instrument(skip_all, fields(readings = batch.len(), %source))]
    pub async fn accept(
        &self,
        batch: &[IncomingReading],
        source: SourceProtocol,
        trace: TraceContext,
    ) -> Result<Accepted, IngestError> {
        let now = chrono::Utc::now();
        let mut verdicts = Vec::with_capacity(batch.len());
        for incoming in batch {
            let sensor = self.lookup(&incoming.sensor).await?;
            verdicts.push((
                validate(incoming, sensor.as_ref(), source, now, self.limits),
                sensor,
            ));
        }
        let rejected: Vec<(usize, Rejection)> = verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, (v, _))| match v {
                Verdict::Reject(r) => Some((i, r.clone())),
                Verdict::Accept { .. } => None,
            })
            .collect();
        if !rejected.is_empty() {
            let mut issues = Vec::with_capacity(rejected.len());
            for (i, r) in &rejected {
                metrics::counter!("mantis_readings_rejected_total", "reason" => r.reason.as_str())
                    .increment(1);
                let sensor = verdicts.get(*i).and_then(|(_, s)| s.as_ref());
                let incoming = &batch[*i];
                let issue = DataQualityIssue {
                    timestamp: incoming.timestamp,
                    asset_id: sensor.map(|s| s.asset_id).or(incoming.asset_id),
                    sensor_id: sensor.map(|s| s.id).or(match &incoming.sensor {
                        SensorRef::Id(id) => Some(*id),
                        SensorRef::Code(_) => None,
                    }),
                    value: incoming.value,
                    unit: incoming.unit.clone().unwrap_or_default(),
                    quality: incoming.quality,
                    reason: r.reason,
                    detail: r.detail.clone(),
                };
                issues.push(self.issue_record(&issue, trace)?);
            }
            self.send(issues).await?;
            return Err(IngestError::Rejected(rejected));
        }
        let mut accepted = Accepted {
            accepted: 0,
            quality_issues: 0,
        };
        // Every record of the batch, in order: each reading followed by its quality issues.
        let mut records = Vec::with_capacity(verdicts.len());
        for (verdict, _) in verdicts {
            let Verdict::Accept { reading, issues } = verdict else {
                continue;
            };
            records.push(
                self.publisher
                    .to_record(
                        Some(reading.asset_id.to_string()),
                        &reading,
                        trace.child(),
                        vec![],
                    )
                    .map_err(|e| IngestError::Unavailable(e.to_string()))?,
            );
            accepted.accepted += 1;
            for (reason, detail) in issues {
                metrics::counter!("mantis_readings_quality_issues_total", "reason" => reason.as_str())
                    .increment(1);
                let issue = quality_issue(&reading, reason, detail);
                records.push(self.issue_record(&issue, trace)?);
                accepted.quality_issues += 1;
            }
        }
        self.send(records).await?;
        metrics::counter!("mantis_readings_accepted_total", "source" => source.as_str())
            .increment(accepted.accepted as u64);
        Ok(accepted)
    }

    fn issue_record(
        &self,
        issue: &DataQualityIssue,
        trace: TraceContext,
    ) -> Result<OutboundRecord, IngestError> {
        self.publisher
            .to_record(
                issue.asset_id.map(|a| a.to_string()),
                issue,
                trace.child(),
                vec![],
            )
            .map_err(|e| IngestError::Unavailable(e.to_string()))
    }

    /// Publishes `records` in order (to the edge buffer while the bus is unavailable).
    async fn send(&self, records: Vec<OutboundRecord>) -> Result<(), IngestError> {
        if records.is_empty() {
            return Ok(());
        }
        self.edge
            .send_all(records)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))
    }

    /// The publisher (edge buffer and circuit breaker) of this ingestor.
    pub fn edge(&self) -> &Arc<EdgePublisher> {
        &self.edge
    }
}

fn quality_issue(
    reading: &mantis_domain::Reading,
    reason: QualityReason,
    detail: String,
) -> DataQualityIssue {
    DataQualityIssue {
        timestamp: reading.timestamp,
        asset_id: Some(reading.asset_id),
        sensor_id: Some(reading.sensor_id),
        value: reading.value,
        unit: reading.unit.clone(),
        quality: reading.quality,
        reason,
        detail,
    }
}
