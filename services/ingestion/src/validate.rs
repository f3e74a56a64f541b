//! Checks of a reading against its sensor's metadata (pure, no I/O).

use mantis_domain::IncomingReading;
use mantis_domain::{QualityReason, Reading, Sensor, SourceProtocol, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a reading was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The quality reason reported on `data.quality.issues`.
    pub reason: QualityReason,
    /// The offending field (JSON member name).
    pub field: &'static str,
    /// Human explanation.
    pub detail: String,
}

/// The outcome of validating one reading.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Published on `sensor.raw`; each issue is also reported on `data.quality.issues`.
    Accept {
        /// The reading to publish.
        reading: Reading,
        /// Quality issues that do not prevent acceptance (out of range, low quality).
        issues: Vec<(QualityReason, String)>,
    },
    /// Refused; reported on `data.quality.issues`.
    Reject(Rejection),
}

/// Limits on timestamps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeLimits {
    pub(crate) max_future_skew: Duration,
    pub(crate) max_age: Duration,
}

/// Validates `incoming` against `sensor` (None: unknown sensor) at time `now`.
pub(crate) fn validate(
    incoming: &IncomingReading,
    sensor: Option<&Sensor>,
    source: SourceProtocol,
    now: Timestamp,
    limits: TimeLimits,
) -> Verdict {
    let reject = |reason, field, detail: String| {
        Verdict::Reject(Rejection {
            reason,
            field,
            detail,
        })
    };
    let Some(sensor) = sensor else {
        let (field, name) = match &incoming.sensor {
            mantis_domain::SensorRef::Id(id) => ("sensorId", id.to_string()),
            mantis_domain::SensorRef::Code(c) => ("sensorCode", c.clone()),
        };
        return reject(
            QualityReason::UnknownSensor,
            field,
            format!("sensor `{name}` is not registered"),
        );
    };
    if let Some(asset) = incoming.asset_id.filter(|a| *a != sensor.asset_id) {
        return reject(
            QualityReason::UnknownSensor,
            "assetId",
            format!(
                "sensor `{}` belongs to asset {}, not {asset}",
                sensor.code, sensor.asset_id
            ),
        );
    }
    if let Some(unit) = incoming.unit.as_ref().filter(|u| !sensor.unit_matches(u)) {
        return reject(
            QualityReason::UnitMismatch,
            "unit",
            format!(
                "sensor `{}` reports in `{}`, got `{unit}`",
                sensor.code, sensor.unit
            ),
        );
    }
    if !incoming.value.is_finite() {
        return reject(
            QualityReason::NotFinite,
            "value",
            "value is not a finite number".into(),
        );
    }
    let skew = chrono::Duration::from_std(limits.max_future_skew).unwrap_or(chrono::Duration::MAX);
    let age = chrono::Duration::from_std(limits.max_age).unwrap_or(chrono::Duration::MAX);
    // Checked: a limit set far beyond the calendar (to mean "none") must not overflow.
    if now
        .checked_add_signed(skew)
        .is_some_and(|latest| incoming.timestamp > latest)
    {
        return reject(
            QualityReason::BadTimestamp,
            "timestamp",
            format!(
                "{} is more than {}s in the future",
                incoming.timestamp.to_rfc3339(),
                skew.num_seconds()
            ),
        );
    }
    if now
        .checked_sub_signed(age)
        .is_some_and(|oldest| incoming.timestamp < oldest)
    {
        return reject(
            QualityReason::BadTimestamp,
            "timestamp",
            format!(
                "{} is older than {}s",
                incoming.timestamp.to_rfc3339(),
                age.num_seconds()
            ),
        );
    }
    let mut issues = Vec::new();
    if !sensor.in_range(incoming.value) {
        issues.push((
            QualityReason::OutOfRange,
            format!(
                "value {} outside [{}, {}] of sensor `{}`",
                incoming.value, sensor.min_value, sensor.max_value, sensor.code
            ),
        ));
    }
    if incoming.quality.is_low() {
        // A device connector says why (a Modbus exception, a timeout): keep it in the report.
        let why = incoming
            .metadata
            .get(IncomingReading::QUALITY_REASON)
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        issues.push((
            QualityReason::LowQuality,
            format!("quality {} is below 50{why}", incoming.quality.get()),
        ));
    }
    Verdict::Accept {
        reading: Reading {
            timestamp: incoming.timestamp,
            asset_id: sensor.asset_id,
            sensor_id: sensor.id,
            sensor_code: sensor.code.clone(),
            sensor_type: sensor.sensor_type,
            value: incoming.value,
            unit: sensor.unit.clone(),
            quality: incoming.quality,
            source,
            metadata: storable(&incoming.metadata),
        },
        issues,
    }
}

/// Free-form tags as every store can keep them: a NUL character (which PostgreSQL refuses in
/// text, and which would otherwise cost the reading itself at storage) becomes U+FFFD.
fn storable(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let clean = |s: &String| {
        if s.contains('\0') {
            s.replace('\0', "\u{FFFD}")
        } else {
            s.clone()
        }
    };
    metadata.iter().map(|(k, v)| (clean(k), clean(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_domain::SensorRef;
    use mantis_domain::{AssetId, Quality, SensorId, SensorType};

    fn sensor() -> Sensor {
        Sensor {
            id: SensorId::new_random(),
            asset_id: AssetId::new_random(),
            code: "P-1-PRS".into(),
            sensor_type: SensorType::Pressure,
            unit: "bar".into(),
            min_value: 0.0,
            max_value: 10.0,
            sampling_rate_hz: 1.0,
        }
    }

    fn incoming(s: &Sensor, value: f64) -> IncomingReading {
        IncomingReading {
            timestamp: now(),
            asset_id: None,
            sensor: SensorRef::Id(s.id),
            value,
            unit: Some("bar".into()),
            quality: Quality::GOOD,
            metadata: Default::default(),
        }
    }

    fn now() -> Timestamp {
        mantis_domain::timestamp_from_millis(1_763_892_000_000).expect("valid")
    }

    const LIMITS: TimeLimits = TimeLimits {
        max_future_skew: Duration::from_secs(300),
        max_age: Duration::from_secs(3600),
    };

    fn run(i: &IncomingReading, s: Option<&Sensor>) -> Verdict {
        validate(i, s, SourceProtocol::Rest, now(), LIMITS)
    }

    #[test]
    fn a_good_reading_is_accepted_with_the_sensor_metadata() {
        let s = sensor();
        match run(&incoming(&s, 5.0), Some(&s)) {
            Verdict::Accept { reading, issues } => {
                assert!(issues.is_empty());
                assert_eq!(reading.asset_id, s.asset_id);
                assert_eq!(reading.sensor_type, SensorType::Pressure);
            }
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[test]
    fn limits_beyond_the_calendar_mean_no_limit_rather_than_a_panic() {
        let s = sensor();
        let mut i = incoming(&s, 5.0);
        i.timestamp = now() - chrono::Duration::days(3650);
        let unlimited = TimeLimits {
            max_future_skew: Duration::from_secs(u64::MAX),
            max_age: Duration::from_secs(u64::MAX),
        };
        let verdict = validate(&i, Some(&s), SourceProtocol::Batch, now(), unlimited);
        assert!(matches!(verdict, Verdict::Accept { .. }), "{verdict:?}");
        i.timestamp = now() + chrono::Duration::days(3650);
        let verdict = validate(&i, Some(&s), SourceProtocol::Batch, now(), unlimited);
        assert!(matches!(verdict, Verdict::Accept { .. }), "{verdict:?}");
    }

    #[test]
    fn a_nul_character_in_a_tag_does_not_cost_the_reading() {
        let s = sensor();
        let mut i = incoming(&s, 5.0);
        i.metadata.insert("line\0".into(), "L\u{0}2".into());
        match run(&i, Some(&s)) {
            Verdict::Accept { reading, issues } => {
                assert!(issues.is_empty());
                assert_eq!(
                    reading.metadata.get("line\u{FFFD}").map(String::as_str),
                    Some("L\u{FFFD}2")
                );
            }
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[test]
    fn out_of_range_and_low_quality_are_accepted_but_reported() {
        let s = sensor();
        let mut i = incoming(&s, 12.0);
        i.quality = Quality::new(10).expect("valid");
        i.metadata.insert(
            IncomingReading::QUALITY_REASON.into(),
            "Modbus exception 0x02".into(),
        );
        match run(&i, Some(&s)) {
            Verdict::Accept { issues, .. } => {
                let reasons: Vec<_> = issues.iter().map(|(r, _)| *r).collect();
                assert_eq!(
                    reasons,
                    vec![QualityReason::OutOfRange, QualityReason::LowQuality]
                );
                // The device's reason is kept in the report.
                assert_eq!(issues[1].1, "quality 10 is below 50: Modbus exception 0x02");
            }
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[test]
    fn unknown_sensor_wrong_unit_wrong_asset_nan_and_bad_times_are_refused() {
        let s = sensor();
        let reason = |v: Verdict| match v {
            Verdict::Reject(r) => (r.reason, r.field),
            other => panic!("expected rejection, got {other:?}"),
        };
        assert_eq!(
            reason(run(&incoming(&s, 1.0), None)),
            (QualityReason::UnknownSensor, "sensorId")
        );
        let mut i = incoming(&s, 1.0);
        i.unit = Some("psi".into());
        assert_eq!(
            reason(run(&i, Some(&s))),
            (QualityReason::UnitMismatch, "unit")
        );
        let mut i = incoming(&s, 1.0);
        i.asset_id = Some(AssetId::new_random());
        assert_eq!(
            reason(run(&i, Some(&s))),
            (QualityReason::UnknownSensor, "assetId")
        );
        assert_eq!(
            reason(run(&incoming(&s, f64::NAN), Some(&s))),
            (QualityReason::NotFinite, "value")
        );
        let mut i = incoming(&s, 1.0);
        i.timestamp = now() + chrono::Duration::seconds(301);
        assert_eq!(
            reason(run(&i, Some(&s))),
            (QualityReason::BadTimestamp, "timestamp")
        );
        i.timestamp = now() - chrono::Duration::seconds(3601);
        assert_eq!(
            reason(run(&i, Some(&s))),
            (QualityReason::BadTimestamp, "timestamp")
        );
    }
}
