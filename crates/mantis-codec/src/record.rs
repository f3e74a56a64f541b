//! The [`Record`] trait and how each domain type maps onto the latest schema of its topic
//! (field names as in `schemas/<topic>.v<N>.avsc`).

mod convert;

use crate::Result;
use convert::{
    array, avro_map, boolean, count, decode, double, fields, id, map, millis, nullable, optional,
    quality, record, string, symbol, text, timestamp,
};
use mantis_domain::{
    Alert, AlertKind, Anomaly, Contribution, Criticality, DataQualityIssue, FeatureVector,
    Priority, QualityReason, Reading, RulPrediction, SensorType, Severity, SourceProtocol, Window,
    WorkOrder, WorkOrderStatus,
};

/// A generic Avro value: the only Avro type in this crate's public API, used by [`Record`].
pub type AvroValue = apache_avro::types::Value;

/// A domain type published on a topic, convertible to and from the Avro value of the topic's
/// latest schema. Implemented here for every MANTIS topic; services use [`Codec`](crate::Codec)
/// rather than these methods.
pub trait Record: Sized {
    /// The topic the record is published on; its latest schema is the one written.
    const TOPIC: &'static str;

    /// The record as an Avro value of the topic's latest schema.
    fn to_avro(&self) -> AvroValue;

    /// Parses a value already resolved to the topic's latest schema into the domain type;
    /// a value that does not fit (bad UUID, quality 250, ...) is an
    /// [`Error::InvalidRecord`](crate::Error::InvalidRecord).
    fn from_avro(value: AvroValue) -> Result<Self>;
}

impl Record for Reading {
    const TOPIC: &'static str = "sensor.raw";

    fn to_avro(&self) -> AvroValue {
        record([
            ("timestamp", millis(&self.timestamp)),
            ("assetId", text(self.asset_id)),
            ("sensorId", text(self.sensor_id)),
            ("sensorCode", text(&self.sensor_code)),
            ("sensorType", text(self.sensor_type.as_str())),
            ("value", AvroValue::Double(self.value)),
            ("unit", text(&self.unit)),
            ("quality", AvroValue::Int(i32::from(self.quality.get()))),
            ("source", text(self.source.as_str())),
            (
                "metadata",
                // An empty map and no map mean the same to the domain; write the smaller one.
                nullable(
                    (!self.metadata.is_empty()).then(|| avro_map(&self.metadata, |v| text(v))),
                ),
            ),
        ])
    }

    fn from_avro(value: AvroValue) -> Result<Self> {
        decode(Self::TOPIC, value, |f| {
            Ok(Reading {
                timestamp: f.get("timestamp", timestamp)?,
                asset_id: f.get("assetId", id)?,
                sensor_id: f.get("sensorId", id)?,
                sensor_code: f.get("sensorCode", string)?,
                sensor_type: f.get("sensorType", symbol(SensorType::parse))?,
                value: f.get("value", double)?,
                unit: f.get("unit", string)?,
                quality: f.get("quality", quality)?,
                source: f.get("source", symbol(SourceProtocol::parse))?,
                metadata: f
                    .get("metadata", optional(map(string)))?
                    .unwrap_or_default(),
            })
        })
    }
}

impl Record for Window {
    const TOPIC: &'static str = "sensor.windowed";

    fn to_avro(&self) -> AvroValue {
        record([
            ("assetId", text(self.asset_id)),
            ("sensorId", text(self.sensor_id)),
            ("sensorType", text(self.sensor_type.as_str())),
            ("windowStart", millis(&self.window_start)),
            ("windowEnd", millis(&self.window_end)),
            ("count", AvroValue::Long(i64::from(self.count))),
            ("mean", AvroValue::Double(self.mean)),
            ("std", AvroValue::Double(self.std)),
            ("min", AvroValue::Double(self.min)),
            ("max", AvroValue::Double(self.max)),
            (
                "values",
                AvroValue::Array(self.values.iter().copied().map(AvroValue::Double).collect()),
            ),
            ("sampleRateHz", AvroValue::Double(self.sample_rate_hz)),
        ])
    }

    fn from_avro(value: AvroValue) -> Result<Self> {
        decode(Self::TOPIC, value, |f| {
            Ok(Window {
                asset_id: f.get("assetId", id)?,
                sensor_id: f.get("sensorId", id)?,
                sensor_type: f.get("sensorType", symbol(SensorType::parse))?,
                window_start: f.get("windowStart", timestamp)?,
                window_end: f.get("windowEnd", timestamp)?,
                count: f.get("count", count)?,
                mean: f.get("mean", double)?,
                std: f.get("std", double)?,
                min: f.get("min", double)?,
                max: f.get("max", double)?,
                values: f.get("values", array(double))?,
                sample_rate_hz: f.get("sampleRateHz", double)?,
            })
        })
    }
}

impl Record for FeatureVector {
    const TOPIC: &'static str = "features.extracted";

    fn to_avro(&self) -> AvroValue {
        record([
            ("assetId", text(self.asset_id)),
            ("sensorId", text(self.sensor_id)),
            ("sensorType", text(self.sensor_type.as_str())),
            ("windowStart", millis(&self.window_start)),
            ("windowEnd", millis(&self.window_end)),
            ("featureSetVersion", text(&self.feature_set_version)),
            (
                "features",
                avro_map(&self.features, |v| AvroValue::Double(*v)),
            ),
        ])
    }

    fn from_avro(value: AvroValue) -> Result<Self> {
        decode(Self::TOPIC, value, |f| {
            Ok(FeatureVector {
                asset_id: f.get("assetId", id)?,
                sensor_id: f.get("sensorId", id)?,
                sensor_type: f.get("sensorType", symbol(SensorType::parse))?,
                window_start: f.get("windowStart", timestamp)?,
                window_end: f.get("windowEnd", timestamp)?,
                feature_set_version: f.get("featureSetVersion", string)?,
                features: f.get("features", map(double))?,
            })
        })
    }
}

impl Record for Anomaly {
    const TOPIC: &'static str = "anomaly.detected";

    fn to_avro(&self) -> AvroValue {
        let contributions = self.contributions.iter().map(|c| {
            record([
                ("feature", text(&c.feature)),
                ("sensorId", text(c.sensor_id)),
                ("value", AvroValue::Double(c.value)),
                ("zScore", AvroValue::Double(c.z_score)),
            ])
        });
        record([
            ("id", text(self.id)),
            ("assetId", text(self.asset_id)),
            ("sensorId", text(self.sensor_id)),
            ("windowStart", millis(&self.window_start)),
            ("detectedAt", millis(&self.detected_at)),
            ("score", AvroValue::Double(self.score)),
            ("threshold", AvroValue::Double(self.threshold)),
            ("severity", text(self.severity.as_str())),
            ("criticality", text(self.criticality.as_str())),
            ("method", text(&self.method)),
            ("contributions", AvroValue::Array(contributions.collect())),
        ])
    }

    fn from_avro(value: AvroValue) -> Result<Self> {
        decode(Self::TOPIC, value, |f| {
            Ok(Anomaly {
                id: f.get("id", id)?,
                asset_id: f.get("assetId", id)?,
                sensor_id: f.get("sensorId", id)?,
                window_start: f.get("windowStart", timestamp)?,
                detected_at: f.get("detectedAt", timestamp)?,
                score: f.get("score", double)?,
                threshold: f.get("threshold", double)?,
                severity: f.get("severity", symbol(Severity::parse))?,
                criticality: f.get("criticality", symbol(Criticality::parse))?,
                method: f.get("method", string)?,
                contributions: f.get("contributions", array(contribution))?,
            })
        })
    }
}

fn contribution(value: AvroValue) -> convert::Conv<Contribution> {
    let mut f = fields(value)?;
    Ok(Contribution {
        feature: f.get("feature", string)?,
        sensor_id: f.get("sensorId", id)?,
        value: f.get("value", double)?,
        z_score: f.get("zScore", double)?,
    })
}

impl Record for RulPrediction {
    const TOPIC: &'static str = "rul.predicted";

    fn to_avro(&self) -> AvroValue {
        record([
            ("assetId", text(self.asset_id)),
            ("predictedAt", millis(&self.predicted_at)),
            ("rulCycles", AvroValue::Double(self.rul_cycles)),
            ("confidenceLower", AvroValue::Double(self.confidence_lower)),
            ("confidenceUpper", AvroValue::Double(self.confidence_upper)),
            ("modelVersion", text(&self.model_version)),
        ])
    }

    fn from_avro(value: AvroValue) -> Result<Self> {
        decode(Self::TOPIC, value, |f| {
            Ok(RulPrediction {
                asset_id: f.get("assetId", id)?,
                predicted_at: f.get("predictedAt", timestamp)?,
                rul_cycles: f.get("rulCycles", double)?,
                confidence_lower: f.get("confidenceLower", double)?,
                confidence_upper: f.get("confidenceUpper", double)?,
                model_version: f.get("modelVersion", string)?,
            })
        })
    }
}

impl Record for WorkOrder {
    const TOPIC: &'static str = "maintenance.scheduled";

    fn to_avro(&self) -> AvroValue {
        record([
            ("id", text(self.id)),
            ("code", text(&self.code)),
            ("assetId", text(self.asset_id)),
            ("cause", text(&self.cause)),
            ("priority", text(self.priority.as_str())),
            ("status", text(self.status.as_str())),
            ("createdAt", millis(&self.created_at)),
            ("dueBy", millis(&self.due_by)),
            ("description", text(&self.description)),
            ("rule", text(&self.rule)),
            ("triggerEvent", text(&self.trigger_event)),
        ])
    }

    fn from_avro(value: AvroValue) -> Result<Self> {
        decode(Self::TOPIC, value, |f| {
            Ok(WorkOrder {
                id: f.get("id", id)?,
                code: f.get("code", string)?,
                asset_id: f.get("assetId", id)?,
                cause: f.get("cause", string)?,
                priority: f.get("priority", symbol(Priority::parse))?,
                status: f.get("status", symbol(WorkOrderStatus::parse))?,
                created_at: f.get("createdAt", timestamp)?,
                due_by: f.get("dueBy", timestamp)?,
                description: f.get("description", string)?,
                rule: f.get("rule", string)?,
                trigger_event: f.get("triggerEvent", string)?,
            })
        })
    }
}

impl Record for Alert {
    const TOPIC: &'static str = "alerts.critical";

    fn to_avro(&self) -> AvroValue {
        record([
            ("id", text(self.id)),
            ("assetId", text(self.asset_id)),
            ("severity", text(self.severity.as_str())),
            ("kind", text(self.kind.as_str())),
            ("message", text(&self.message)),
            ("createdAt", millis(&self.created_at)),
            ("workOrderId", nullable(self.work_order_id.map(text))),
            ("triggerEvent", text(&self.trigger_event)),
            ("notifyOnCall", AvroValue::Boolean(self.notify_on_call)),
        ])
    }

    fn from_avro(value: AvroValue) -> Result<Self> {
        decode(Self::TOPIC, value, |f| {
            Ok(Alert {
                id: f.get("id", id)?,
                asset_id: f.get("assetId", id)?,
                severity: f.get("severity", symbol(Severity::parse))?,
                kind: f.get("kind", symbol(AlertKind::parse))?,
                message: f.get("message", string)?,
                created_at: f.get("createdAt", timestamp)?,
                work_order_id: f.get("workOrderId", optional(id))?,
                trigger_event: f.get("triggerEvent", string)?,
                notify_on_call: f.get("notifyOnCall", boolean)?,
            })
        })
    }
}

impl Record for DataQualityIssue {
    const TOPIC: &'static str = "data.quality.issues";

    fn to_avro(&self) -> AvroValue {
        record([
            ("timestamp", millis(&self.timestamp)),
            ("assetId", nullable(self.asset_id.map(text))),
            ("sensorId", nullable(self.sensor_id.map(text))),
            ("value", AvroValue::Double(self.value)),
            ("unit", text(&self.unit)),
            ("quality", AvroValue::Int(i32::from(self.quality.get()))),
            ("reason", text(self.reason.as_str())),
            ("detail", text(&self.detail)),
        ])
    }

    fn from_avro(value: AvroValue) -> Result<Self> {
        decode(Self::TOPIC, value, |f| {
            Ok(DataQualityIssue {
                timestamp: f.get("timestamp", timestamp)?,
                asset_id: f.get("assetId", optional(id))?,
                sensor_id: f.get("sensorId", optional(id))?,
                value: f.get("value", double)?,
                unit: f.get("unit", string)?,
                quality: f.get("quality", quality)?,
                reason: f.get("reason", symbol(QualityReason::parse))?,
                detail: f.get("detail", string)?,
            })
        })
    }
}
