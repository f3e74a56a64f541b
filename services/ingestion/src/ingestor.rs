//! Validation and publishing of readings, shared by every source.

use crate::Config;
use crate::breaker::CircuitBreaker;
use crate::edge::EdgePublisher;
use crate::validate::{Rejection, TimeLimits, Verdict, validate};
use mantis_bus::{
    DLQ_CONNECTOR, DLQ_ORIGIN, DLQ_PROTOCOL, DLQ_REASON, OutboundRecord, TraceContext,
};
use mantis_connectors::Unreadable;
use mantis_domain::TenantId;
use mantis_domain::{AssetId, DataQualityIssue, QualityReason, Sensor, SensorId, SourceProtocol};
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
    /// Sensors by code. Codes are unique within a tenant, not across tenants: a code may name
    /// several sensors, and then a reading must say which (its `assetId`, or a `sensorId`).
    by_code: HashMap<String, Vec<SensorId>>,
    /// The tenant of each asset, for readings taken on behalf of one tenant (the gateway's).
    tenant_of: HashMap<AssetId, TenantId>,
    /// Sensor ids looked up alone and not found, and when: not asked again for
    /// [`RELOAD_AFTER`] (a device sending an unknown id does not cost a query per reading).
    missing: HashMap<SensorId, Instant>,
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

/// Sensors read alone from the store (ids the cache does not know yet) per batch at most:
/// enough for a batch of sensors registered a moment ago (the whole cache is read again two
/// seconds after it last was), not one read or two per reading of a batch of ids that name no
/// sensor.
const SINGLE_READS_PER_BATCH: usize = 1_000;
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

    /// The sensor `incoming` names: by id, or by code (on the asset it names, when the code
    /// names sensors of several tenants); among the sensors of `tenant` only, when given. An id
    /// the cache does not know although it was read less than [`RELOAD_AFTER`] ago (a sensor
    /// registered just now) is read alone from the store.
    ///
    /// `reads_left` bounds those single reads for a batch: a batch of thousands of unknown ids
    /// costs at most [`SINGLE_READS_PER_BATCH`] reads of the store; the ids past it are
    /// unknown until the next reload of the cache. An id the cache knows as another tenant's
    /// is not read again.
    async fn lookup(
        &self,
        incoming: &IncomingReading,
        tenant: Option<TenantId>,
        reads_left: &mut usize,
    ) -> Result<Found, IngestError> {
        let found = self.lookup_cached(incoming, tenant).await?;
        let (Found::Unknown, SensorRef::Id(id)) = (&found, &incoming.sensor) else {
            return Ok(found);
        };
        {
            let cache = self.sensors.read().await;
            // Known, but another tenant's: the store would say the same.
            if cache.by_id.contains_key(id)
                || cache
                    .missing
                    .get(id)
                    .is_some_and(|t| t.elapsed() < RELOAD_AFTER)
            {
                return Ok(found);
            }
        }
        let Some(left) = reads_left.checked_sub(1) else {
            return Ok(found);
        };
        *reads_left = left;
        let unavailable = |e: mantis_store::Error| IngestError::Unavailable(e.to_string());
        let sensor = self.store.get_sensor(*id).await.map_err(unavailable)?;
        let asset = match &sensor {
            Some(s) => self
                .store
                .get_asset(s.asset_id)
                .await
                .map_err(unavailable)?,
            None => None,
        };
        let mut cache = self.sensors.write().await;
        match (sensor, asset) {
            (Some(sensor), Some(asset)) => {
                cache.tenant_of.insert(asset.id, asset.tenant_id);
                let ids = cache.by_code.entry(sensor.code.clone()).or_default();
                if !ids.contains(&sensor.id) {
                    ids.push(sensor.id);
                }
                cache.missing.remove(&sensor.id);
                cache.by_id.insert(sensor.id, sensor);
                drop(cache);
                self.lookup_cached(incoming, tenant).await
            }
            _ => {
                if cache.missing.len() >= 10_000 {
                    cache.missing.clear();
                }
                cache.missing.insert(*id, Instant::now());
                Ok(found)
            }
        }
    }

    /// [`Ingestor::lookup`] from the cache of every sensor, read again when it is old or does
    /// not know the reference (at most every [`RELOAD_AFTER`]).
    async fn lookup_cached(
        &self,
        incoming: &IncomingReading,
        tenant: Option<TenantId>,
    ) -> Result<Found, IngestError> {
        let find = |c: &SensorCache| {
            let visible = |s: &&Sensor| {
                tenant.is_none_or(|t| c.tenant_of.get(&s.asset_id).is_some_and(|of| *of == t))
            };
            match &incoming.sensor {
                SensorRef::Id(id) => c.by_id.get(id).filter(visible).cloned().map(Found::Sensor),
                SensorRef::Code(code) => {
                    let named: Vec<&Sensor> = c
                        .by_code
                        .get(code)
                        .into_iter()
                        .flatten()
                        .filter_map(|id| c.by_id.get(id))
                        .filter(visible)
                        .collect();
                    match named.as_slice() {
                        [] => None,
                        [one] => Some(Found::Sensor((*one).clone())),
                        many => match incoming.asset_id {
                            Some(asset) => Some(
                                many.iter()
                                    .find(|s| s.asset_id == asset)
                                    .map_or(Found::Ambiguous(many.len()), |s| {
                                        Found::Sensor((*s).clone())
                                    }),
                            ),
                            None => Some(Found::Ambiguous(many.len())),
                        },
                    }
                }
            }
        };
        // What the cache says contradicts the reading's asset (a sensor moved, or registered
        // since under the same code by another tenant): worth reading the sensors again.
        let contradicts = |found: &Found| match (found, incoming.asset_id) {
            (Found::Sensor(s), Some(asset)) => s.asset_id != asset,
            (Found::Ambiguous(_), Some(_)) => true,
            _ => false,
        };
        let settled = |c: &SensorCache| -> Option<Result<Found, IngestError>> {
            let age = c.loaded_at.map(|t| t.elapsed());
            let backing_off = c.failed_at.is_some_and(|t| t.elapsed() < RELOAD_AFTER);
            let recent = age.is_some_and(|a| a < RELOAD_AFTER);
            match find(c) {
                Some(s) if contradicts(&s) && !recent && !backing_off => None,
                Some(s) if backing_off || age.is_some_and(|a| a < SENSOR_TTL) => Some(Ok(s)),
                None if recent => Some(Ok(Found::Unknown)),
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
        let loaded = match self.store.list_sensors(None).await {
            Ok(sensors) => self
                .store
                .list_assets(None)
                .await
                .map(|assets| (sensors, assets)),
            Err(e) => Err(e),
        };
        match loaded {
            Ok((all, assets)) => {
                cache.tenant_of = assets.into_iter().map(|a| (a.id, a.tenant_id)).collect();
                let mut by_code: HashMap<String, Vec<SensorId>> = HashMap::new();
                for s in &all {
                    by_code.entry(s.code.clone()).or_default().push(s.id);
                }
                cache.by_code = by_code;
                cache.by_id = all.into_iter().map(|s| (s.id, s)).collect();
                cache.loaded_at = Some(Instant::now());
                cache.failed_at = None;
                Ok(find(&cache).unwrap_or(Found::Unknown))
            }
            // Metadata known from before still serves while the store is away.
            Err(e) => {
                cache.failed_at = Some(Instant::now());
                match find(&cache) {
                    Some(known) => {
                        tracing::warn!(error = %e, "sensor metadata not refreshed; using what is known");
                        Ok(known)
                    }
                    None => Err(IngestError::Unavailable(e.to_string())),
                }
            }
        }
    }

    /// Validates `batch` and publishes it. All or nothing as far as refusals go: when any
    /// reading is refused, none is published on `sensor.raw`, every refusal is reported on
    /// `data.quality.issues`, and the refusals are returned with their batch index.
    pub async fn accept(
        &self,
        batch: &[IncomingReading],
        source: SourceProtocol,
        trace: TraceContext,
    ) -> Result<Accepted, IngestError> {
        self.accept_for(batch, source, trace, None).await
    }

    /// As [`Ingestor::accept`], on behalf of `tenant` when given: a sensor of another tenant
    /// is then unknown (readings that the gateway forwards for an authenticated caller).
    pub async fn accept_for(
        &self,
        batch: &[IncomingReading],
        source: SourceProtocol,
        trace: TraceContext,
        tenant: Option<TenantId>,
    ) -> Result<Accepted, IngestError> {
        self.accept_checked(batch, source, trace, tenant, false)
            .await
    }

    /// As [`Ingestor::accept`] for a device's readings, which the device (or its broker) is
    /// told were taken: refusals count as taken only once their report is kept, so when it
    /// cannot be (bus down, edge buffer full) the batch is `Unavailable` and comes again. An
    /// HTTP client instead gets its 400 whatever happens to the report (a 503 would have it
    /// retry a batch that can never pass).
    pub async fn accept_from_device(
        &self,
        batch: &[IncomingReading],
        source: SourceProtocol,
        trace: TraceContext,
    ) -> Result<Accepted, IngestError> {
        self.accept_checked(batch, source, trace, None, true).await
    }

    #[tracing::instrument(skip_all, fields(readings = batch.len(), %source))]
    async fn accept_checked(
        &self,
        batch: &[IncomingReading],
        source: SourceProtocol,
        trace: TraceContext,
        tenant: Option<TenantId>,
        report_required: bool,
    ) -> Result<Accepted, IngestError> {
        let now = chrono::Utc::now();
        let mut verdicts = Vec::with_capacity(batch.len());
        let mut reads_left = SINGLE_READS_PER_BATCH;
        for incoming in batch {
            let verdict = match self.lookup(incoming, tenant, &mut reads_left).await? {
                Found::Sensor(sensor) => (
                    validate(incoming, Some(&sensor), source, now, self.limits),
                    Some(sensor),
                ),
                Found::Unknown => (validate(incoming, None, source, now, self.limits), None),
                Found::Ambiguous(n) => (Verdict::Reject(ambiguous_code(incoming, n)), None),
            };
            verdicts.push(verdict);
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
            // The client's error is answered whatever happens to its report: a bus down (and a
            // full or absent edge buffer) must not turn a 400 into a 503 that has the client
            // retry a batch that will never pass.
            if let Err(e) = self.send(issues).await {
                if report_required {
                    return Err(IngestError::Unavailable(format!(
                        "{} refused reading(s) could not be reported: {e}",
                        rejected.len()
                    )));
                }
                metrics::counter!("mantis_quality_reports_lost_total").increment(1);
                tracing::warn!(error = %e, refused = rejected.len(), "refused readings not reported to data.quality.issues");
            }
            // Counted once the refusal is final (a device's batch whose report could not be
            // kept comes again).
            for (_, r) in &rejected {
                metrics::counter!("mantis_readings_rejected_total", "reason" => r.reason.as_str())
                    .increment(1);
            }
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

    /// Keeps device messages that yielded no reading on the dead-letter topic `dlq.ingestion`
    /// (through the edge buffer while the bus is away): the payload as the device sent it (its
    /// first [`MAX_DEAD_LETTER_PAYLOAD`] bytes, the full length then in
    /// `mantis.dlq.payload-bytes`), keyed by connector, with the reason (`mantis.dlq.reason`),
    /// the connector, its protocol and the message's origin (`mantis.dlq.connector`,
    /// `.protocol`, `.origin`).
    pub async fn keep_unreadable(&self, messages: Vec<Unreadable>) -> Result<(), IngestError> {
        let topic = crate::edge::dead_letter_topic();
        let mut protocols = Vec::with_capacity(messages.len());
        let letters: Vec<OutboundRecord> = messages
            .into_iter()
            .map(|m| {
                protocols.push(m.protocol.as_str());
                let mut payload = m.payload;
                let full = payload.len();
                payload.truncate(MAX_DEAD_LETTER_PAYLOAD);
                let mut letter = OutboundRecord::new(
                    topic.clone(),
                    Some(m.connector.clone().into_bytes()),
                    payload,
                    TraceContext::new_root(),
                )
                .with_header(
                    DLQ_REASON,
                    mantis_domain::clip(&m.reason, MAX_DEAD_LETTER_REASON).into_bytes(),
                )
                .with_header(DLQ_CONNECTOR, m.connector.into_bytes())
                .with_header(DLQ_PROTOCOL, m.protocol.as_str().as_bytes().to_vec())
                .with_header(DLQ_ORIGIN, m.origin.into_bytes());
                if full > MAX_DEAD_LETTER_PAYLOAD {
                    letter = letter.with_header("mantis.dlq.payload-bytes", full.to_string());
                }
                letter
            })
            .collect();
        self.edge
            .send_dead_letters(letters)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        for protocol in &protocols {
            // Dead-lettered, or (no topic takes them) dropped: `mantis_dead_letters_dropped_total`.
            metrics::counter!("mantis_unreadable_messages_total", "protocol" => *protocol)
                .increment(1);
        }
        tracing::debug!(messages = protocols.len(), %topic, "unreadable device messages handed to the dead-letter topic");
        Ok(())
    }

    /// The publisher (edge buffer and circuit breaker) of this ingestor.
    pub fn edge(&self) -> &Arc<EdgePublisher> {
        &self.edge
    }
}

/// Bytes of a device message kept in its dead letter at most (below every broker's record
/// limit; the rest is cut off).
pub(crate) const MAX_DEAD_LETTER_PAYLOAD: usize = 256 << 10;

/// Characters of a dead letter's reason kept at most (the connectors keep as many; any other
/// caller is held to it here): with the payload, the letter stays below every broker's limit.
pub(crate) const MAX_DEAD_LETTER_REASON: usize = 4_096;

/// What a reading's sensor reference names.
enum Found {
    /// One sensor.
    Sensor(Sensor),
    /// No sensor.
    Unknown,
    /// A code that names this many sensors (of as many tenants), none of them on the asset
    /// the reading names, or the reading names no asset.
    Ambiguous(usize),
}

/// The refusal of a reading whose sensor code names sensors of several tenants: taking any of
/// them could put one tenant's readings on another's machine.
fn ambiguous_code(incoming: &IncomingReading, sensors: usize) -> Rejection {
    let code = match &incoming.sensor {
        SensorRef::Code(code) => code.as_str(),
        SensorRef::Id(_) => "",
    };
    let detail = match incoming.asset_id {
        Some(asset) => format!(
            "sensor code `{code}` names {sensors} sensors (of different tenants), none on asset {asset}: send `sensorId`"
        ),
        None => format!(
            "sensor code `{code}` names {sensors} sensors (of different tenants): send `sensorId`, or `assetId` with the code"
        ),
    };
    Rejection {
        reason: QualityReason::UnknownSensor,
        field: if incoming.asset_id.is_some() {
            "assetId"
        } else {
            "sensorCode"
        },
        detail,
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
